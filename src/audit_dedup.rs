//! De-duplication of noisy audit events (refused tokens, failed client
//! authentication): one event per key (e.g. token and reason) per minute,
//! whose `count` grows in memory and is written with the periodic flush, so
//! a misbehaving client can flood neither the log nor the database.

use std::collections::HashMap;
use std::sync::Mutex;

pub const WINDOW_SECONDS: i64 = 60;

#[derive(Debug, Clone, Copy)]
struct Entry {
    event_id: Option<i64>,
    window_start: i64,
    count: i64,
    dirty: bool,
}

#[derive(Debug, Default)]
pub struct AuditDeduper {
    entries: Mutex<HashMap<String, Entry>>,
}

impl AuditDeduper {
    pub fn new() -> Self {
        Self::default()
    }

    /// `true` when an event must be written for `key` (the first in its
    /// window); `false` when it is folded into the existing event's count.
    pub fn observe(&self, key: &str, now: i64) -> bool {
        let mut map = match self.entries.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if map.len() > 50_000 {
            map.retain(|_, e| now - e.window_start < WINDOW_SECONDS || e.dirty);
        }
        match map.get_mut(key) {
            Some(e) if now - e.window_start < WINDOW_SECONDS => {
                e.count += 1;
                e.dirty = true;
                false
            }
            _ => {
                map.insert(key.to_owned(), Entry { event_id: None, window_start: now, count: 1, dirty: false });
                true
            }
        }
    }

    /// Remembers which stored event carries the count for `key`.
    pub fn attach(&self, key: &str, event_id: i64) {
        if let Ok(mut map) = self.entries.lock() {
            if let Some(e) = map.get_mut(key) {
                e.event_id = Some(event_id);
            }
        }
    }

    /// Counts changed since the last call, as (event id, count).
    pub fn take_dirty(&self) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        if let Ok(mut map) = self.entries.lock() {
            for e in map.values_mut() {
                if e.dirty {
                    if let Some(id) = e.event_id {
                        out.push((id, e.count));
                        e.dirty = false;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_key_per_minute_with_count() {
        let d = AuditDeduper::new();
        assert!(d.observe("t1:expired", 100));
        d.attach("t1:expired", 7);
        assert!(!d.observe("t1:expired", 110));
        assert!(!d.observe("t1:expired", 159));
        assert!(d.observe("t2:expired", 110));
        assert_eq!(d.take_dirty(), vec![(7, 3)]);
        assert!(d.take_dirty().is_empty());
        assert!(d.observe("t1:expired", 160), "a new window starts a new event");
    }
}
