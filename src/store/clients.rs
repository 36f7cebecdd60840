//! Client records for authentication, with a short-lived cache.

use super::{on_pool, scope_set, Store};
use crate::client::{ClientRecord, LiveSecret};
use crate::error::CoreError;
use crate::model::{ApplicationId, SecretId, TokenFormat};
use crate::network::AllowedNetworks;
use crate::secret::SecretDigest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CLIENT_CACHE_TTL: Duration = Duration::from_secs(2);
/// PostgreSQL channel on which a change to applications is announced, so
/// every instance drops its cached client records at once.
pub(super) const CHANGED_CHANNEL: &str = "keygate_clients_changed";
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
    /// Which resource server each scope belongs to, for the bearer check
    /// (cleared with the client records: both change with the catalogue).
    #[allow(clippy::type_complexity)]
    scope_servers: Arc<Mutex<Option<(Arc<Vec<(String, String)>>, Instant)>>>,
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
        if let Ok(mut map) = self.scope_servers.lock() {
            *map = None;
        }
    }
}

const CLIENT_COLUMNS: &str = "id, client_id, name, allowed_networks, enabled, scopes, token_ttl_seconds, max_tokens, \
     rate_per_second, rate_per_hour, token_format, \
     (SELECT r.identifier FROM resource_servers r WHERE r.id = introspects_resource_server_id) AS introspects";

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: i64,
    client_id: String,
    name: String,
    allowed_networks: String,
    enabled: bool,
    scopes: String,
    token_ttl_seconds: i64,
    max_tokens: i64,
    rate_per_second: i64,
    rate_per_hour: i64,
    token_format: String,
    introspects: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SecretRow {
    id: i64,
    secret_hash: Vec<u8>,
    expires_at: Option<i64>,
}

/// Live secrets of an application, the current one first. `$1` is the application.
pub(super) const LIVE_SECRETS: &str = "SELECT id, secret_hash, expires_at FROM client_secrets \
     WHERE application_id = $1 ORDER BY (expires_at IS NOT NULL), id DESC";

fn client_record(
    r: ClientRow,
    secrets: Vec<SecretRow>,
    scope_servers: &[(String, String)],
) -> Result<ClientRecord, CoreError> {
    let scopes = scope_set(&r.scopes);
    Ok(ClientRecord {
        scope_servers: scope_servers.iter().filter(|(scope, _)| scopes.contains(scope)).cloned().collect(),
        token_format: TokenFormat::parse(&r.token_format).unwrap_or_default(),
        introspects: r.introspects,
        id: ApplicationId(r.id),
        client_id: r.client_id,
        name: r.name,
        secrets: secrets
            .into_iter()
            .map(|s| {
                Ok(LiveSecret {
                    id: SecretId(s.id),
                    digest: SecretDigest::from_slice(&s.secret_hash)
                        .ok_or_else(|| CoreError::Internal("stored secret digest has the wrong length".into()))?,
                    expires_at: s.expires_at,
                })
            })
            .collect::<Result<_, CoreError>>()?,
        allowed_networks: AllowedNetworks::from_stored(&r.allowed_networks),
        enabled: r.enabled,
        scopes,
        token_ttl_seconds: r.token_ttl_seconds,
        max_tokens: r.max_tokens,
        rate_per_second: r.rate_per_second,
        rate_per_hour: r.rate_per_hour,
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
        let row: Option<ClientRow> = on_pool!(self, |p| sqlx::query_as(&sql).bind(client_id).fetch_optional(p).await?);
        self.with_scope_servers(row).await
    }

    pub async fn client_by_id(&self, id: ApplicationId) -> Result<Option<ClientRecord>, CoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM applications WHERE id = $1");
        let row: Option<ClientRow> = on_pool!(self, |p| sqlx::query_as(&sql).bind(id.0).fetch_optional(p).await?);
        self.with_scope_servers(row).await
    }

    /// [`Store::scope_servers`], from a cache kept as briefly as client
    /// records and cleared by the same changes.
    pub async fn scope_servers_cached(&self) -> Result<Arc<Vec<(String, String)>>, CoreError> {
        if let Ok(map) = self.clients.scope_servers.lock() {
            if let Some((map, at)) = map.as_ref() {
                if at.elapsed() < CLIENT_CACHE_TTL {
                    return Ok(map.clone());
                }
            }
        }
        let fresh = Arc::new(self.scope_servers().await?);
        if let Ok(mut map) = self.clients.scope_servers.lock() {
            *map = Some((fresh.clone(), Instant::now()));
        }
        Ok(fresh)
    }

    async fn with_scope_servers(&self, row: Option<ClientRow>) -> Result<Option<ClientRecord>, CoreError> {
        let Some(row) = row else { return Ok(None) };
        let secrets: Vec<SecretRow> =
            on_pool!(self, |p| sqlx::query_as(LIVE_SECRETS).bind(row.id).fetch_all(p).await?);
        let servers = self.scope_servers().await?;
        client_record(row, secrets, &servers).map(Some)
    }
}

/// Listens for application changes committed by any instance (PostgreSQL)
/// and clears this instance's client cache on each, so an old secret is
/// refused everywhere within moments (the cache's own lifetime bounds it
/// if the listener is down: it reconnects, clearing the cache each time).
pub(super) fn listen_for_changes(pool: sqlx::PgPool, cache: ClientCache) {
    tokio::spawn(async move {
        loop {
            if pool.is_closed() {
                return;
            }
            match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(CHANGED_CHANNEL).await {
                        tracing::warn!(error = %e, "cannot listen for client changes; retrying");
                    } else {
                        cache.forget_all();
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(_)) => cache.forget_all(),
                                // The connection dropped: anything may have changed meanwhile.
                                Ok(None) => cache.forget_all(),
                                Err(_) if pool.is_closed() => return,
                                Err(e) => {
                                    tracing::warn!(error = %e, "client change listener failed; reconnecting");
                                    break;
                                }
                            }
                            if pool.is_closed() {
                                return;
                            }
                        }
                    }
                }
                Err(_) if pool.is_closed() => return,
                Err(e) => tracing::warn!(error = %e, "cannot connect the client change listener; retrying"),
            }
            cache.forget_all();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}
