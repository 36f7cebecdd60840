//! JWT signing keys, their private halves sealed under the key-encryption
//! key (see `crate::jwt`).

use super::{on_pool, on_tx, Store, Tx};
use crate::error::CoreError;
use crate::jwt::{KeyAlgorithm, KeySchedule, NewSigningKey};

/// A signing key as stored, with when the last token it signed expires.
#[derive(Clone)]
pub struct StoredSigningKey {
    pub schedule: KeySchedule,
    pub algorithm: KeyAlgorithm,
    pub public_jwk: String,
    pub sealed_private_key: Vec<u8>,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("schedule", &self.schedule)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    algorithm: String,
    public_jwk: String,
    private_key: Vec<u8>,
    created_at: i64,
    signs_from: i64,
    signed_until: Option<i64>,
}

const KEYS: &str = "SELECT k.kid, k.algorithm, k.public_jwk, k.private_key, k.created_at, k.signs_from, \
     (SELECT MAX(t.expires_at) FROM tokens t WHERE t.signing_key_id = k.kid) AS signed_until \
     FROM signing_keys k ORDER BY k.signs_from, k.kid";

fn stored(rows: Vec<KeyRow>) -> Vec<StoredSigningKey> {
    rows.into_iter()
        .map(|r| StoredSigningKey {
            schedule: KeySchedule {
                kid: r.kid,
                created_at: r.created_at,
                signs_from: r.signs_from,
                signed_until: r.signed_until,
            },
            algorithm: KeyAlgorithm::parse(&r.algorithm).unwrap_or_default(),
            public_jwk: r.public_jwk,
            sealed_private_key: r.private_key,
        })
        .collect()
}

impl Store {
    /// Every signing key, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, CoreError> {
        let rows: Vec<KeyRow> = on_pool!(self, |p| sqlx::query_as(KEYS).fetch_all(p).await?);
        Ok(stored(rows))
    }
}

impl Tx {
    pub async fn signing_keys(&mut self) -> Result<Vec<StoredSigningKey>, CoreError> {
        let rows: Vec<KeyRow> = on_tx!(self, |c| sqlx::query_as(KEYS).fetch_all(c).await?);
        Ok(stored(rows))
    }

    /// Deletes keys that have not started signing yet.
    pub async fn delete_waiting_signing_keys(&mut self, now: i64) -> Result<u64, CoreError> {
        Ok(on_tx!(self, |c| sqlx::query("DELETE FROM signing_keys WHERE signs_from > $1")
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()))
    }

    pub async fn insert_signing_key(
        &mut self,
        key: &NewSigningKey,
        now: i64,
        signs_from: i64,
    ) -> Result<(), CoreError> {
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, public_jwk, private_key, created_at, signs_from) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(&key.kid)
        .bind(key.algorithm.as_str())
        .bind(&key.public_jwk)
        .bind(&key.sealed_private_key)
        .bind(now)
        .bind(signs_from)
        .execute(c)
        .await?
        .rows_affected());
        Ok(())
    }
}
