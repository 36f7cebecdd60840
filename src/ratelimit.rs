//! Per-application rate limits (a per-second and an hourly quota, fixed
//! windows as BeyondTrust reports them), and a limiter for failed client
//! authentication keyed by client ID and by source address. The
//! per-application limits count in memory on SQLite (one server process)
//! and in the database on PostgreSQL (`store::rates`); failed
//! authentications are counted in the database on both. `now_ms` is passed in.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// The verdict for one request, with what the response headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// The hourly quota (`X-RateLimit-Limit`).
    pub limit: i64,
    /// Left in this hour after this request (`X-RateLimit-Remaining`).
    pub remaining: i64,
    /// Unix seconds when the hourly window resets (`X-RateLimit-Reset`).
    pub reset_at: i64,
    /// Seconds to wait when refused (`Retry-After`).
    pub retry_after: i64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Windows {
    second: i64,
    in_second: i64,
    hour: i64,
    in_hour: i64,
}

/// Counts requests per key in the current second and the current hour.
#[derive(Debug, Default)]
pub struct RateLimiter<K: Eq + Hash> {
    counters: Mutex<HashMap<K, Windows>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    pub fn new() -> Self {
        RateLimiter { counters: Mutex::new(HashMap::new()) }
    }

    /// Counts one request against `per_second` and `per_hour` and says
    /// whether it may proceed. Refused requests are not counted, so a
    /// client that backs off regains its quota.
    pub fn check(&self, key: &K, per_second: i64, per_hour: i64, now_ms: i64) -> RateDecision {
        let sec = now_ms.div_euclid(1000);
        let hour = sec.div_euclid(3600);
        let reset_at = (hour + 1) * 3600;
        let mut map = match self.counters.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let w = map.entry(key.clone()).or_default();
        if w.second != sec {
            w.second = sec;
            w.in_second = 0;
        }
        if w.hour != hour {
            w.hour = hour;
            w.in_hour = 0;
        }
        if w.in_hour >= per_hour {
            return RateDecision {
                allowed: false,
                limit: per_hour,
                remaining: 0,
                reset_at,
                retry_after: (reset_at - sec).max(1),
            };
        }
        if w.in_second >= per_second {
            let retry = ((sec + 1) * 1000 - now_ms + 999) / 1000;
            return RateDecision {
                allowed: false,
                limit: per_hour,
                remaining: (per_hour - w.in_hour).max(0),
                reset_at,
                retry_after: retry.max(1),
            };
        }
        w.in_second += 1;
        w.in_hour += 1;
        RateDecision {
            allowed: true,
            limit: per_hour,
            remaining: (per_hour - w.in_hour).max(0),
            reset_at,
            retry_after: 0,
        }
    }

    /// Drops counters of windows that have passed, so memory stays bounded.
    pub fn prune(&self, now_ms: i64) {
        let hour = now_ms.div_euclid(1000).div_euclid(3600);
        if let Ok(mut map) = self.counters.lock() {
            map.retain(|_, w| w.hour == hour);
        }
    }

    pub fn len(&self) -> usize {
        self.counters.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Failed client authentications allowed per minute for one client ID from
/// one address, and for one address whatever client IDs it tries. Past
/// them, a *wrong* secret is answered 429 instead of 401 and no longer
/// audited one by one. There is no limit per client ID alone: anyone could
/// then lock a client out by failing on purpose, and a correct secret is
/// never refused because of failures (secrets carry 256 bits, so guessing
/// is hopeless anyway; the limit only keeps floods out of the log).
pub const FAILED_AUTH_PER_CLIENT_AND_ADDRESS_PER_MINUTE: i64 = 10;
pub const FAILED_AUTH_PER_ADDRESS_PER_MINUTE: i64 = 30;

/// The keys a failed client authentication counts against, with their
/// limits. The client ID is cut to the longest one Keygate makes room for,
/// for the check and the count alike.
pub fn failed_auth_keys(client_id: &str, ip: Option<&str>) -> [(String, i64); 2] {
    let ip = ip.unwrap_or("-");
    // Control characters (a NUL would not even store) are dropped.
    let client: String = client_id.chars().filter(|c| !c.is_control()).take(64).collect();
    [
        (format!("ca:{client}|{ip}"), FAILED_AUTH_PER_CLIENT_AND_ADDRESS_PER_MINUTE),
        (format!("a:{ip}"), FAILED_AUTH_PER_ADDRESS_PER_MINUTE),
    ]
}

/// The minute window `now_ms` falls in, and the seconds until it ends.
pub fn failed_auth_window(now_ms: i64) -> (i64, i64) {
    let sec = now_ms.div_euclid(1000);
    let minute = sec.div_euclid(60);
    (minute, (minute + 1) * 60 - sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_second_limit_and_hourly_remaining() {
        let l = RateLimiter::new();
        let t = 1_800_000_000_000;
        for i in 0..3 {
            let d = l.check(&1, 3, 10, t + i);
            assert!(d.allowed);
            assert_eq!(d.remaining, 10 - 1 - i);
        }
        let refused = l.check(&1, 3, 10, t + 500);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, 1);
        assert_eq!(refused.remaining, 7);
        assert!(l.check(&1, 3, 10, t + 1000).allowed);
        assert!(l.check(&2, 3, 10, t).allowed, "keys are independent");
    }

    #[test]
    fn hourly_quota_then_reset() {
        let l = RateLimiter::new();
        let hour_start = 1_800_000_000 / 3600 * 3600 * 1000;
        for i in 0..5 {
            assert!(l.check(&1, 100, 5, hour_start + i * 1000).allowed);
        }
        let d = l.check(&1, 100, 5, hour_start + 10_000);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after, 3600 - 10);
        assert!(l.check(&1, 100, 5, hour_start + 3_600_000).allowed);
        l.prune(hour_start + 3_600_000);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn failed_auth_keys_are_bounded_and_windows_end_on_the_minute() {
        let long = "x".repeat(10_000);
        let [(k, _), (a, _)] = failed_auth_keys(&long, Some("10.0.0.1"));
        assert!(k.len() < 100);
        assert_eq!(a, "a:10.0.0.1");
        let t = 1_800_000_000_000 / 60_000 * 60_000;
        assert_eq!(failed_auth_window(t + 1000), (t / 60_000, 59));
    }
}
