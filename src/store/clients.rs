//! Client records for authentication, with a short-lived cache.

use super::{scope_set, Store};
use crate::client::ClientRecord;
use crate::error::CoreError;
use crate::model::ApplicationId;
use crate::secret::SecretDigest;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CLIENT_CACHE_TTL: Duration = Duration::from_secs(2);
const CLIENT_CACHE_MAX: usize = 50_000;

/// Client records by client ID, kept briefly so client authentication
/// (token endpoint, introspection, revocation) costs no query. Any change
/// to an application through this store clears it at once; a change made
/// by another process (the CLI) is seen within [`CLIENT_CACHE_TTL`].
/// Issuance re-checks the secret in its write transaction regardless.
/// Unknown client IDs are cached too, so a wrong secret for a known client
/// and any secret for an unknown one cost the same (no timing oracle for
/// which client IDs exist).
#[derive(Clone, Debug, Default)]
pub(super) struct ClientCache {
    #[allow(clippy::type_complexity)]
    entries: Arc<Mutex<HashMap<String, (Option<ClientRecord>, Instant)>>>,
}

impl ClientCache {
    fn get(&self, client_id: &str) -> Option<Option<ClientRecord>> {
        let cache = self.entries.lock().ok()?;
        let (record, at) = cache.get(client_id)?;
        (at.elapsed() < CLIENT_CACHE_TTL).then(|| record.clone())
    }

    fn put(&self, client_id: &str, record: Option<ClientRecord>) {
        if let Ok(mut cache) = self.entries.lock() {
            if cache.len() >= CLIENT_CACHE_MAX {
                cache.retain(|_, (_, at)| at.elapsed() < CLIENT_CACHE_TTL);
                if cache.len() >= CLIENT_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(client_id.to_owned(), (record, Instant::now()));
        }
    }

    pub(super) fn forget_all(&self) {
        if let Ok(mut cache) = self.entries.lock() {
            cache.clear();
        }
    }
}

const CLIENT_COLUMNS: &str =
    "id, client_id, name, secret_hash, enabled, scopes, token_ttl_seconds, max_tokens, rate_per_second, rate_per_hour";

fn client_record(r: sqlx::sqlite::SqliteRow) -> Result<ClientRecord, CoreError> {
    let hash: Vec<u8> = r.try_get("secret_hash")?;
    Ok(ClientRecord {
        id: ApplicationId(r.try_get("id")?),
        client_id: r.try_get("client_id")?,
        name: r.try_get("name")?,
        secret_hash: SecretDigest::from_slice(&hash)
            .ok_or_else(|| CoreError::Internal("stored secret digest has the wrong length".into()))?,
        enabled: r.try_get("enabled")?,
        scopes: scope_set(&r.try_get::<String, _>("scopes")?),
        token_ttl_seconds: r.try_get("token_ttl_seconds")?,
        max_tokens: r.try_get("max_tokens")?,
        rate_per_second: r.try_get("rate_per_second")?,
        rate_per_hour: r.try_get("rate_per_hour")?,
    })
}

impl Store {
    /// Like [`Store::client_by_client_id`], from the short-lived cache when it can.
    pub async fn client_for_authentication(&self, client_id: &str) -> Result<Option<ClientRecord>, CoreError> {
        if let Some(cached) = self.clients.get(client_id) {
            return Ok(cached);
        }
        let found = self.client_by_client_id(client_id).await?;
        self.clients.put(client_id, found.clone());
        Ok(found)
    }

    pub async fn client_by_client_id(&self, client_id: &str) -> Result<Option<ClientRecord>, CoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM applications WHERE client_id = $1");
        sqlx::query(&sql).bind(client_id).fetch_optional(&self.pool).await?.map(client_record).transpose()
    }

    pub async fn client_by_id(&self, id: ApplicationId) -> Result<Option<ClientRecord>, CoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM applications WHERE id = $1");
        sqlx::query(&sql).bind(id.0).fetch_optional(&self.pool).await?.map(client_record).transpose()
    }
}
