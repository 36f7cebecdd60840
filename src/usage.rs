//! Last-use tracking without a database write per request: uses are kept in
//! memory (latest per token) and flushed in one transaction by a background
//! task every few seconds and at shutdown.

use crate::error::CoreError;
use crate::model::TokenId;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct UsageTracker {
    pending: Mutex<HashMap<TokenId, (i64, Option<String>)>>,
}

impl UsageTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a use; cheap (one short lock, no I/O).
    pub fn record(&self, token: TokenId, at: i64, ip: Option<String>) {
        if let Ok(mut map) = self.pending.lock() {
            let entry = map.entry(token).or_insert((at, None));
            if at >= entry.0 {
                *entry = (at, ip.or(entry.1.take()));
            }
        }
    }

    /// The use recorded but not yet flushed for one token (for views that
    /// want to be current without waiting for the flush).
    pub fn pending_for(&self, token: TokenId) -> Option<i64> {
        self.pending.lock().ok().and_then(|m| m.get(&token).map(|(at, _)| *at))
    }

    pub fn pending_count(&self) -> usize {
        self.pending.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Writes everything pending; on failure the batch is put back so the
    /// next flush retries it.
    pub async fn flush(&self, store: &Store) -> Result<usize, CoreError> {
        let batch: Vec<(TokenId, i64, Option<String>)> = match self.pending.lock() {
            Ok(mut map) => map.drain().map(|(id, (at, ip))| (id, at, ip)).collect(),
            Err(_) => return Ok(0),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        match store.record_token_uses(&batch).await {
            Ok(busy) => {
                // Rows another writer held just then: next time.
                let busy: std::collections::HashSet<TokenId> = busy.into_iter().collect();
                for (id, at, ip) in batch.iter().filter(|u| busy.contains(&u.0)) {
                    self.record(*id, *at, ip.clone());
                }
                Ok(batch.len() - busy.len())
            }
            Err(e) => {
                for (id, at, ip) in batch {
                    self.record(id, at, ip);
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_use_per_token() {
        let t = UsageTracker::new();
        t.record(TokenId(1), 10, Some("a".into()));
        t.record(TokenId(1), 5, Some("b".into()));
        t.record(TokenId(2), 7, None);
        assert_eq!(t.pending_for(TokenId(1)), Some(10));
        assert_eq!(t.pending_count(), 2);
    }
}
