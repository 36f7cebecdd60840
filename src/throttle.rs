//! Slows down repeated failed sign-ins, per username-and-address and per
//! address. After a few failures for one key each further attempt must wait,
//! doubling up to a ceiling. Pure rules with `now` passed in; the counts
//! live in the database (`sign_in_failures`), so every instance on one
//! database throttles together, and the sign-in use case applies these
//! rules in one serialised transaction.
//!
//! An attempt is *admitted* before its password is checked and counts as a
//! failure from that moment, so parallel attempts cannot all slip past the
//! check before the first failure is recorded, and an attempt whose request
//! went away (or whose server died) mid-check stays a failure. A success
//! takes the count back and clears the username key.

/// How many failures a kind of key gets for free, then how the wait grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub free_failures: i64,
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
pub const WINDOW_SECONDS: i64 = 3600;

/// What is kept per key: failures (admitted attempts included) and the
/// time of the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInFailures {
    pub failures: i64,
    pub last_at: i64,
}

/// How an admitted attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    /// The password was never checked (the server was busy): the attempt
    /// is taken back.
    NotChecked,
}

/// Which of an attempt's keys: the account (username and address) or the
/// address alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Account,
    Address,
}

/// The keys a sign-in attempt is throttled by.
pub fn sign_in_keys(username: &str, ip: Option<&str>) -> [(String, ThrottlePolicy, KeyKind); 2] {
    let ip = ip.unwrap_or("-");
    // The username is cut so an attacker cannot grow the keys, and control
    // characters (a NUL would not even store) are dropped.
    let user: String = username.trim().to_lowercase().chars().filter(|c| !c.is_control()).take(64).collect();
    [(format!("u:{user}|{ip}"), PER_ACCOUNT, KeyKind::Account), (format!("a:{ip}"), PER_ADDRESS, KeyKind::Address)]
}

fn recent(f: &SignInFailures, now: i64) -> i64 {
    if now - f.last_at < WINDOW_SECONDS {
        f.failures
    } else {
        0
    }
}

/// Seconds to wait before another attempt on this key, if any.
pub fn wait_for(f: Option<&SignInFailures>, policy: ThrottlePolicy, now: i64) -> Option<i64> {
    let f = f?;
    let counted = recent(f, now);
    if counted < policy.free_failures {
        return None;
    }
    let exp = (counted - policy.free_failures).min(16);
    let delay = (policy.base_delay_seconds << exp).min(policy.max_delay_seconds);
    let wait = f.last_at + delay - now;
    (wait > 0).then_some(wait)
}

/// The record once an attempt is admitted: one failure more, now.
pub fn admitted(f: Option<&SignInFailures>, now: i64) -> SignInFailures {
    SignInFailures { failures: f.map_or(0, |f| recent(f, now)) + 1, last_at: now }
}

/// The record once an admitted attempt ended, `None` when nothing is left
/// to keep. A success forgets the account key's failures; the address
/// keeps its record (one good password does not excuse guessing at other
/// accounts from there), less the attempt that succeeded.
pub fn finished(f: SignInFailures, kind: KeyKind, outcome: AttemptOutcome, now: i64) -> Option<SignInFailures> {
    let f = match (outcome, kind) {
        (AttemptOutcome::Failed, _) => SignInFailures { last_at: now, ..f },
        (AttemptOutcome::Succeeded, KeyKind::Account) => return None,
        (AttemptOutcome::Succeeded | AttemptOutcome::NotChecked, _) => SignInFailures { failures: f.failures - 1, ..f },
    };
    (f.failures > 0).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The rules over a map, as the use case applies them over rows.
    #[derive(Default)]
    struct Map(HashMap<String, SignInFailures>);

    impl Map {
        fn try_reserve(&mut self, keys: &[(String, ThrottlePolicy, KeyKind)], now: i64) -> Result<(), i64> {
            if let Some(w) = keys.iter().filter_map(|(k, p, _)| wait_for(self.0.get(k), *p, now)).max() {
                return Err(w);
            }
            for (k, _, _) in keys {
                let a = admitted(self.0.get(k), now);
                self.0.insert(k.clone(), a);
            }
            Ok(())
        }

        fn finish(&mut self, keys: &[(String, ThrottlePolicy, KeyKind)], outcome: AttemptOutcome, now: i64) {
            for (k, _, kind) in keys {
                let Some(f) = self.0.get(k).copied() else { continue };
                match finished(f, *kind, outcome, now) {
                    Some(f) => self.0.insert(k.clone(), f),
                    None => self.0.remove(k),
                };
            }
        }
    }

    #[test]
    fn first_failures_are_free_then_delays_double() {
        let mut t = Map::default();
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
        let mut t = Map::default();
        let keys = sign_in_keys("alice", Some("10.0.0.1"));
        let admitted = (0..40).filter(|_| t.try_reserve(&keys, 1000).is_ok()).count();
        assert_eq!(admitted, 3, "only the free attempts may run at once");
        for _ in 0..3 {
            t.finish(&keys, AttemptOutcome::Failed, 1000);
        }
        assert!(t.try_reserve(&keys, 1000).is_err());
    }

    #[test]
    fn an_attempt_that_never_finishes_stays_a_failure_until_the_window_ends() {
        let mut t = Map::default();
        let keys = sign_in_keys("alice", Some("10.0.0.1"));
        for _ in 0..3 {
            t.try_reserve(&keys, 10).unwrap();
        }
        assert!(t.try_reserve(&keys, 11).is_err());
        assert!(t.try_reserve(&keys, 10 + WINDOW_SECONDS).is_ok());
    }

    #[test]
    fn success_releases_the_account_but_the_address_remembers() {
        let mut t = Map::default();
        let keys = sign_in_keys("alice", Some("10.0.0.1"));
        t.try_reserve(&keys, 10).unwrap();
        t.finish(&keys, AttemptOutcome::Failed, 10);
        t.try_reserve(&keys, 11).unwrap();
        t.finish(&keys, AttemptOutcome::Succeeded, 11);
        assert_eq!(t.0.len(), 1, "only the address key is left");
        assert_eq!(t.0[&keys[1].0].failures, 1, "the failure, not the success");
    }

    #[test]
    fn an_unchecked_attempt_is_taken_back() {
        let mut t = Map::default();
        let keys = sign_in_keys("alice", Some("10.0.0.1"));
        t.try_reserve(&keys, 10).unwrap();
        t.finish(&keys, AttemptOutcome::NotChecked, 10);
        assert!(t.0.is_empty());
    }

    #[test]
    fn one_address_guessing_many_accounts_is_slowed() {
        let mut t = Map::default();
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
        let mut t = Map::default();
        let keys = sign_in_keys("k", None);
        // Forty failures, as if each waited its turn.
        for (key, _, _) in &keys {
            let f = (0..40).fold(None, |f, _| Some(admitted(f.as_ref(), 1000)));
            t.0.insert(key.clone(), f.unwrap());
        }
        assert_eq!(t.try_reserve(&keys, 1000), Err(300));
        assert!(t.try_reserve(&keys, 1000 + WINDOW_SECONDS).is_ok());
    }

    #[test]
    fn long_usernames_make_bounded_keys() {
        let long = "x".repeat(100_000);
        let [(k, _, _), _] = sign_in_keys(&long, Some("10.0.0.1"));
        assert!(k.len() < 100);
    }
}
