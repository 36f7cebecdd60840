//! Last-use tracking without a database write per request: uses of tokens
//! and client secrets are kept in memory (the latest per credential, and
//! the latest time of each distinct address) and flushed in one batch by a
//! background task every few seconds and at shutdown.

use crate::error::CoreError;
use crate::model::{SecretId, TokenId, RECENT_ADDRESSES_KEPT};
use crate::store::{CredentialUse, Store, UsedCredential};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Pending {
    at: i64,
    ip: Option<String>,
    /// Distinct addresses with their latest time, at most the number kept.
    addresses: Vec<(String, i64)>,
}

impl Pending {
    fn note(&mut self, at: i64, ip: Option<String>) {
        if let Some(ip) = &ip {
            match self.addresses.iter_mut().find(|(seen, _)| seen == ip) {
                Some(entry) => entry.1 = entry.1.max(at),
                None => {
                    self.addresses.push((ip.clone(), at));
                    if self.addresses.len() > RECENT_ADDRESSES_KEPT {
                        // Drop the address seen longest ago.
                        self.addresses.sort_by_key(|a| std::cmp::Reverse(a.1));
                        self.addresses.truncate(RECENT_ADDRESSES_KEPT);
                    }
                }
            }
        }
        if at >= self.at {
            self.at = at;
            self.ip = ip.or(self.ip.take());
        }
    }
}

/// An address already stored for a credential is written again only when
/// its time has moved on this much: a busy token used from the same few
/// addresses costs no address writes between refreshes.
const ADDRESS_REFRESH_SECONDS: i64 = 60;
/// Bound of the memory of written addresses (it is only an optimisation).
const MAX_REMEMBERED_ADDRESSES: usize = 200_000;

#[derive(Debug, Default)]
pub struct UsageTracker {
    pending: Mutex<HashMap<UsedCredential, Pending>>,
    /// When each (credential, address) was last written, by this process.
    written: Mutex<HashMap<(UsedCredential, String), i64>>,
}

impl UsageTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a token use; cheap (one short lock, no I/O).
    pub fn record(&self, token: TokenId, at: i64, ip: Option<String>) {
        self.note(UsedCredential::Token(token), at, ip);
    }

    /// Notes that a client secret authenticated a request.
    pub fn record_secret(&self, secret: SecretId, at: i64, ip: Option<String>) {
        self.note(UsedCredential::Secret(secret), at, ip);
    }

    fn note(&self, credential: UsedCredential, at: i64, ip: Option<String>) {
        if let Ok(mut map) = self.pending.lock() {
            map.entry(credential).or_default().note(at, ip);
        }
    }

    /// The use recorded but not yet flushed for one token (for views that
    /// want to be current without waiting for the flush).
    pub fn pending_for(&self, token: TokenId) -> Option<i64> {
        self.pending.lock().ok().and_then(|m| m.get(&UsedCredential::Token(token)).map(|p| p.at))
    }

    pub fn pending_count(&self) -> usize {
        self.pending.lock().map(|m| m.len()).unwrap_or(0)
    }

    fn put_back(&self, uses: impl IntoIterator<Item = CredentialUse>) {
        if let Ok(mut map) = self.pending.lock() {
            for u in uses {
                let entry = map.entry(u.credential).or_default();
                for (ip, at) in u.addresses {
                    entry.note(at, Some(ip));
                }
                entry.note(u.at, u.ip);
            }
        }
    }

    /// Writes everything pending; on failure the batch is put back so the
    /// next flush retries it.
    pub async fn flush(&self, store: &Store) -> Result<usize, CoreError> {
        let batch: Vec<CredentialUse> = match self.pending.lock() {
            Ok(mut map) => map
                .drain()
                .map(|(credential, p)| CredentialUse { credential, at: p.at, ip: p.ip, addresses: p.addresses })
                .collect(),
            Err(_) => return Ok(0),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let token_uses: Vec<(TokenId, i64, Option<String>)> = batch
            .iter()
            .filter_map(|u| match u.credential {
                UsedCredential::Token(id) => Some((id, u.at, u.ip.clone())),
                UsedCredential::Secret(_) => None,
            })
            .collect();
        let busy = match store.record_token_uses(&token_uses).await {
            Ok(busy) => busy,
            Err(e) => {
                self.put_back(batch);
                return Err(e);
            }
        };
        // Rows another writer held just then: next time, addresses and all.
        let busy: std::collections::HashSet<UsedCredential> = busy.into_iter().map(UsedCredential::Token).collect();
        let (later, now): (Vec<CredentialUse>, Vec<CredentialUse>) =
            batch.into_iter().partition(|u| busy.contains(&u.credential));
        let written = now.len();
        self.put_back(later);
        let now = self.drop_fresh_addresses(now);
        if let Err(e) = store.record_credential_uses(&now).await {
            // The token times are written; the addresses and secret uses
            // are retried (writing a time twice changes nothing).
            self.put_back(now);
            return Err(e);
        }
        self.remember_addresses(&now);
        Ok(written)
    }

    /// Leaves out addresses stored less than [`ADDRESS_REFRESH_SECONDS`]
    /// before their new time (new addresses always go through).
    fn drop_fresh_addresses(&self, mut uses: Vec<CredentialUse>) -> Vec<CredentialUse> {
        let Ok(written) = self.written.lock() else { return uses };
        for u in &mut uses {
            u.addresses.retain(|(ip, at)| {
                written.get(&(u.credential, ip.clone())).is_none_or(|stored| at - stored >= ADDRESS_REFRESH_SECONDS)
            });
        }
        uses
    }

    fn remember_addresses(&self, uses: &[CredentialUse]) {
        let Ok(mut written) = self.written.lock() else { return };
        if written.len() > MAX_REMEMBERED_ADDRESSES {
            written.clear();
        }
        for u in uses {
            for (ip, at) in &u.addresses {
                written.insert((u.credential, ip.clone()), *at);
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

    #[test]
    fn keeps_the_latest_distinct_addresses() {
        let mut p = Pending::default();
        for (i, ip) in ["a", "b", "a", "c", "d", "e", "f"].iter().enumerate() {
            p.note(i as i64, Some(ip.to_string()));
        }
        let mut ips: Vec<&str> = p.addresses.iter().map(|(ip, _)| ip.as_str()).collect();
        ips.sort();
        // "b" (seen at 1) is the oldest of six distinct addresses.
        assert_eq!(ips, ["a", "c", "d", "e", "f"]);
        assert_eq!(p.addresses.iter().find(|(ip, _)| ip == "a").map(|e| e.1), Some(2));
        assert_eq!((p.at, p.ip.as_deref()), (6, Some("f")));
    }
}
