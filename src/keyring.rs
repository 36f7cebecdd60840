//! The signing keys a running server holds open: read from the store,
//! opened with the key-encryption key, refreshed every few seconds so a key
//! rotated in by another instance (or the CLI) is known long before it
//! signs (it is published [`KEY_PUBLISH_LEAD_SECONDS`] ahead).
//!
//! [`KEY_PUBLISH_LEAD_SECONDS`]: crate::jwt::KEY_PUBLISH_LEAD_SECONDS

use crate::client::ClientRecord;
use crate::error::CoreError;
use crate::grant;
use crate::jwt::{self, AccessTokenClaims, KeyEncryptionKey, KeyState, OpenedKey};
use crate::scope::ScopeSet;
use crate::secret::AccessToken;
use crate::store::{Store, TokenToIssue};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REFRESH: Duration = Duration::from_secs(5);

pub struct Keyring {
    store: Store,
    kek: KeyEncryptionKey,
    issuer: String,
    opened: Mutex<Option<(Instant, Arc<Vec<OpenedKey>>)>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl Keyring {
    pub fn new(store: Store, kek: KeyEncryptionKey, issuer: String) -> Self {
        Keyring { store, kek, issuer, opened: Mutex::new(None) }
    }

    pub fn key_encryption_key(&self) -> &KeyEncryptionKey {
        &self.kek
    }

    /// The keys that sign now or will: opened once per refresh.
    async fn signing_keys(&self, now: i64) -> Result<Arc<Vec<OpenedKey>>, CoreError> {
        if let Ok(cache) = self.opened.lock() {
            if let Some((at, keys)) = cache.as_ref() {
                if at.elapsed() < REFRESH && jwt::signing_key_at(&schedules(keys), now).is_some() {
                    return Ok(keys.clone());
                }
            }
        }
        let stored = self.store.signing_keys().await?;
        let all: Vec<jwt::KeySchedule> = stored.iter().map(|k| k.schedule.clone()).collect();
        let mut opened = Vec::new();
        for k in stored {
            let state = jwt::key_state(&k.schedule, &all, now);
            if !matches!(state, KeyState::Next | KeyState::Signing) {
                continue;
            }
            match OpenedKey::open(k.schedule, k.algorithm, &k.sealed_private_key, &self.kek) {
                Ok(key) => opened.push(key),
                // The signing key must open; a waiting one that does not is
                // reported, and signing goes on with the current key.
                Err(e) if state == KeyState::Signing => return Err(e),
                Err(e) => tracing::error!(error = %e, "a waiting signing key cannot be opened"),
            }
        }
        let opened = Arc::new(opened);
        if let Ok(mut cache) = self.opened.lock() {
            *cache = Some((Instant::now(), opened.clone()));
        }
        Ok(opened)
    }

    /// Signs an RFC 9068 access token for `client` with the key that signs
    /// at `now`, ready to be recorded by its digest.
    pub async fn sign_access_token(
        &self,
        client: &ClientRecord,
        scopes: ScopeSet,
        audience: Vec<String>,
        now: i64,
    ) -> Result<TokenToIssue, CoreError> {
        let keys = self.signing_keys(now).await?;
        let schedule = jwt::signing_key_at(&schedules(&keys), now).cloned();
        let key = schedule
            .and_then(|s| keys.iter().find(|k| k.schedule.kid == s.kid))
            .ok_or_else(|| CoreError::Unavailable("no signing key is available yet".into()))?;
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: client.client_id.clone(),
            aud: audience.clone(),
            exp: grant::expiry(now, client.token_ttl_seconds),
            iat: now,
            jti: AccessTokenClaims::new_jti(),
            client_id: client.client_id.clone(),
            scope: scopes.to_string(),
        };
        let token = AccessToken::from_presented(key.sign(&claims)?);
        Ok(TokenToIssue { token, scopes, audience, signing_key_id: Some(key.schedule.kid.clone()), proven_by: None })
    }
}

fn schedules(keys: &[OpenedKey]) -> Vec<jwt::KeySchedule> {
    keys.iter().map(|k| k.schedule.clone()).collect()
}

/// The JWKS at `now`: every published key's public JWK.
pub async fn jwks(store: &Store, now: i64) -> Result<serde_json::Value, CoreError> {
    let stored = store.signing_keys().await?;
    let all: Vec<jwt::KeySchedule> = stored.iter().map(|k| k.schedule.clone()).collect();
    Ok(jwt::jwks(stored.iter().filter(|k| jwt::published(&k.schedule, &all, now)).map(|k| k.public_jwk.as_str())))
}
