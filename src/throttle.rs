//! Slows down repeated failed sign-ins, per username-and-address and per
//! address. After a few failures for one key each further attempt must wait,
//! doubling up to a ceiling. Pure logic with `now` passed in; the server
//! holds it behind a lock.
//!
//! An attempt is *reserved* before its password is checked and counts as a
//! failure while it is in flight, so parallel attempts cannot all slip past
//! the check before the first failure is recorded: reserving and checking
//! are one step under one lock. A success releases the reservation and
//! clears the username key; a failure turns it into a recorded failure.

use std::collections::HashMap;

/// How many failures a kind of key gets for free, then how the wait grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub free_failures: u32,
    pub base_delay_seconds: i64,
    pub max_delay_seconds: i64,
}

/// One username from one address: three free tries.
pub const PER_ACCOUNT: ThrottlePolicy =
    ThrottlePolicy { free_failures: 3, base_delay_seconds: 2, max_delay_seconds: 300 };
/// One address, whatever usernames it tries: room for a few people behind
/// one NAT who mistype, not for guessing across many accounts.
pub const PER_ADDRESS: ThrottlePolicy =
    ThrottlePolicy { free_failures: 10, base_delay_seconds: 2, max_delay_seconds: 300 };

/// Failures older than this are forgotten.
const WINDOW_SECONDS: i64 = 3600;
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// Attempts reserved and not yet finished; they count as failures.
    in_flight: u32,
    last_at: i64,
}

/// How a reserved attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    /// The password was never checked (the server was busy, or the
    /// request went away): the reservation is simply released.
    NotChecked,
}

#[derive(Debug, Default)]
pub struct SignInThrottle {
    failures: HashMap<String, Failures>,
}

/// The keys a sign-in attempt is throttled by.
pub fn sign_in_keys(username: &str, ip: Option<&str>) -> [(String, ThrottlePolicy); 2] {
    let ip = ip.unwrap_or("-");
    // The username is cut so an attacker cannot grow the map's keys.
    let user: String = username.trim().to_lowercase().chars().take(64).collect();
    [(format!("u:{user}|{ip}"), PER_ACCOUNT), (format!("a:{ip}"), PER_ADDRESS)]
}

impl SignInThrottle {
    pub fn new() -> Self {
        Self::default()
    }

    fn wait_for(&self, key: &str, policy: ThrottlePolicy, now: i64) -> Option<i64> {
        let f = self.failures.get(key)?;
        let recent = if now - f.last_at < WINDOW_SECONDS { f.count } else { 0 };
        let counted = recent + f.in_flight;
        if counted < policy.free_failures {
            return None;
        }
        let exp = (counted - policy.free_failures).min(16);
        let delay = (policy.base_delay_seconds << exp).min(policy.max_delay_seconds);
        // An attempt in flight has not failed yet; treat it as failing now.
        let last = if f.in_flight > 0 { now } else { f.last_at };
        let wait = last + delay - now;
        (wait > 0).then_some(wait)
    }

    /// Reserves an attempt for every key, or `Err(seconds)` to wait (the
    /// longest wait any key asks for) and reserves nothing.
    pub fn try_reserve(&mut self, keys: &[(String, ThrottlePolicy)], now: i64) -> Result<(), i64> {
        let wait = keys.iter().filter_map(|(k, p)| self.wait_for(k, *p, now)).max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        if self.failures.len() >= MAX_KEYS {
            self.failures.retain(|_, f| f.in_flight > 0 || now - f.last_at < WINDOW_SECONDS);
        }
        for (k, _) in keys {
            let e = self.failures.entry(k.clone()).or_insert(Failures { count: 0, in_flight: 0, last_at: now });
            if e.in_flight == 0 && now - e.last_at >= WINDOW_SECONDS {
                e.count = 0;
            }
            e.in_flight += 1;
        }
        Ok(())
    }

    /// Ends a reserved attempt. A success forgets the account key's
    /// failures (the address keeps its record: one good password does not
    /// excuse guessing at other accounts from there).
    pub fn finish(&mut self, keys: &[(String, ThrottlePolicy)], outcome: AttemptOutcome, now: i64) {
        for (i, (k, _)) in keys.iter().enumerate() {
            let Some(e) = self.failures.get_mut(k) else { continue };
            e.in_flight = e.in_flight.saturating_sub(1);
            match outcome {
                AttemptOutcome::Succeeded if i == 0 => e.count = 0,
                AttemptOutcome::Succeeded | AttemptOutcome::NotChecked => {}
                AttemptOutcome::Failed => {
                    e.count = e.count.saturating_add(1);
                    e.last_at = now;
                }
            }
            if e.count == 0 && e.in_flight == 0 {
                self.failures.remove(k);
            }
        }
    }

    /// How many keys are tracked (memory stays bounded).
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_failures_are_free_then_delays_double() {
        let mut t = SignInThrottle::new();
        let keys = sign_in_keys("Alice", Some("10.0.0.1"));
        for i in 0..3 {
            assert!(t.try_reserve(&keys, 100 + i).is_ok());
            t.finish(&keys, AttemptOutcome::Failed, 100 + i);
        }
        assert_eq!(t.try_reserve(&keys, 102), Err(2));
        assert!(t.try_reserve(&keys, 104).is_ok());
        t.finish(&keys, AttemptOutcome::Failed, 104);
        assert_eq!(t.try_reserve(&keys, 104), Err(4));
        // Another account from another address is not slowed down.
        assert!(t.try_reserve(&sign_in_keys("bob", Some("10.0.0.2")), 104).is_ok());
    }

    #[test]
    fn parallel_attempts_are_counted_before_they_finish() {
        let mut t = SignInThrottle::new();
        let keys = sign_in_keys("alice", Some("10.0.0.1"));
        let admitted = (0..40).filter(|_| t.try_reserve(&keys, 1000).is_ok()).count();
        assert_eq!(admitted, 3, "only the free attempts may run at once");
        for _ in 0..3 {
            t.finish(&keys, AttemptOutcome::Failed, 1000);
        }
        assert!(t.try_reserve(&keys, 1000).is_err());
    }

    #[test]
    fn success_releases_the_account_but_the_address_remembers() {
        let mut t = SignInThrottle::new();
        let keys = sign_in_keys("alice", Some("10.0.0.1"));
        t.try_reserve(&keys, 10).unwrap();
        t.finish(&keys, AttemptOutcome::Failed, 10);
        t.try_reserve(&keys, 11).unwrap();
        t.finish(&keys, AttemptOutcome::Succeeded, 11);
        assert_eq!(t.len(), 1, "only the address key is left");
    }

    #[test]
    fn one_address_guessing_many_accounts_is_slowed() {
        let mut t = SignInThrottle::new();
        for i in 0..PER_ADDRESS.free_failures {
            let keys = sign_in_keys(&format!("user{i}"), Some("10.0.0.9"));
            t.try_reserve(&keys, 50).unwrap();
            t.finish(&keys, AttemptOutcome::Failed, 50);
        }
        assert!(t.try_reserve(&sign_in_keys("someone-else", Some("10.0.0.9")), 50).is_err());
        assert!(t.try_reserve(&sign_in_keys("someone-else", Some("10.0.0.8")), 50).is_ok());
    }

    #[test]
    fn delay_is_capped_and_window_forgets() {
        let mut t = SignInThrottle::new();
        let keys = sign_in_keys("k", None);
        for _ in 0..40 {
            t.try_reserve(&keys, 0).ok();
            t.finish(&keys, AttemptOutcome::Failed, 1000);
        }
        assert_eq!(t.try_reserve(&keys, 1000), Err(300));
        assert!(t.try_reserve(&keys, 1000 + WINDOW_SECONDS).is_ok());
    }

    #[test]
    fn long_usernames_make_bounded_keys() {
        let long = "x".repeat(100_000);
        let [(k, _), _] = sign_in_keys(&long, Some("10.0.0.1"));
        assert!(k.len() < 100);
    }
}
