//! Slows down repeated failed sign-ins: after a few failures for one key
//! (username and source address), each further attempt must wait, doubling
//! up to a ceiling. Pure logic with `now` passed in; the server holds it.

use std::collections::HashMap;

const FREE_FAILURES: u32 = 3;
const BASE_DELAY_SECONDS: i64 = 2;
const MAX_DELAY_SECONDS: i64 = 300;
/// Failures older than this are forgotten.
const WINDOW_SECONDS: i64 = 3600;
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last_at: i64,
}

#[derive(Debug, Default)]
pub struct SignInThrottle {
    failures: HashMap<String, Failures>,
}

impl SignInThrottle {
    pub fn new() -> Self {
        Self::default()
    }

    /// `Err(seconds)` when the key must wait that long before trying again.
    pub fn check(&self, key: &str, now: i64) -> Result<(), i64> {
        match self.failures.get(key) {
            Some(f) if now - f.last_at < WINDOW_SECONDS && f.count >= FREE_FAILURES => {
                let exp = (f.count - FREE_FAILURES).min(16);
                let delay = (BASE_DELAY_SECONDS << exp).min(MAX_DELAY_SECONDS);
                let wait = f.last_at + delay - now;
                if wait > 0 {
                    Err(wait)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&mut self, key: &str, now: i64) {
        if self.failures.len() >= MAX_KEYS {
            self.failures.retain(|_, f| now - f.last_at < WINDOW_SECONDS);
        }
        let entry = self.failures.entry(key.to_owned()).or_insert(Failures { count: 0, last_at: now });
        if now - entry.last_at >= WINDOW_SECONDS {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last_at = now;
    }

    pub fn record_success(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_failures_are_free_then_delays_double() {
        let mut t = SignInThrottle::new();
        for i in 0..3 {
            assert!(t.check("k", 100 + i).is_ok());
            t.record_failure("k", 100 + i);
        }
        assert_eq!(t.check("k", 102), Err(2));
        assert!(t.check("k", 104).is_ok());
        t.record_failure("k", 104);
        assert_eq!(t.check("k", 104), Err(4));
        t.record_success("k");
        assert!(t.check("k", 104).is_ok());
    }

    #[test]
    fn delay_is_capped_and_window_forgets() {
        let mut t = SignInThrottle::new();
        for _ in 0..40 {
            t.record_failure("k", 1000);
        }
        assert_eq!(t.check("k", 1000), Err(MAX_DELAY_SECONDS));
        assert!(t.check("k", 1000 + WINDOW_SECONDS).is_ok());
    }
}
