//! Counts of failed sign-ins and failed client authentications, in the
//! database so that every instance on it throttles together. The rules are
//! in `crate::throttle` and `crate::ratelimit`.

use super::{on_pool, on_tx, on_writer, Store, Tx};
use crate::error::CoreError;
use crate::throttle::SignInFailures;

#[derive(sqlx::FromRow)]
struct FailuresRow {
    failures: i64,
    last_at: i64,
}

impl Store {
    /// Counts one failed client authentication against each of `keys` in
    /// `minute`. `false` when a key has reached its limit (nothing more is
    /// counted then): a read first, so a flood past the limit writes
    /// nothing; then a conditional upsert per key, so concurrent failures
    /// on several instances cannot count past a limit. A minute only moves
    /// forward: an instance whose clock is a little behind counts into the
    /// newer minute rather than resetting it.
    pub async fn count_failed_client_auth(&self, keys: &[(String, i64)], minute: i64) -> Result<bool, CoreError> {
        for (key, limit) in keys {
            let failures: Option<i64> = on_pool!(self, |p| sqlx::query_scalar(
                "SELECT failures FROM client_auth_failures WHERE key = $1 AND minute >= $2"
            )
            .bind(key)
            .bind(minute)
            .fetch_optional(p)
            .await?);
            if failures.is_some_and(|n| n >= *limit) {
                return Ok(false);
            }
        }
        for (key, limit) in keys {
            let counted: Option<i64> = on_writer!(self, |w| sqlx::query_scalar(
                "INSERT INTO client_auth_failures AS f (key, minute, failures) VALUES ($1, $2, 1) \
                 ON CONFLICT (key) DO UPDATE SET \
                   failures = CASE WHEN EXCLUDED.minute > f.minute THEN 1 ELSE f.failures + 1 END, \
                   minute = CASE WHEN EXCLUDED.minute > f.minute THEN EXCLUDED.minute ELSE f.minute END \
                 WHERE EXCLUDED.minute > f.minute OR f.failures < $3 \
                 RETURNING failures"
            )
            .bind(key)
            .bind(minute)
            .bind(limit)
            .fetch_optional(w)
            .await?);
            if counted.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub async fn sign_in_failures(&self, key: &str) -> Result<Option<SignInFailures>, CoreError> {
        let row: Option<FailuresRow> =
            on_pool!(self, |p| sqlx::query_as("SELECT failures, last_at FROM sign_in_failures WHERE key = $1")
                .bind(key)
                .fetch_optional(p)
                .await?);
        Ok(row.map(|r| SignInFailures { failures: r.failures, last_at: r.last_at }))
    }

    /// Forgets throttle counts that no longer matter: sign-in failures
    /// older than `window` seconds, client-authentication minutes before
    /// the current one.
    pub async fn prune_throttles(&self, now: i64, window: i64) -> Result<u64, CoreError> {
        let sign_ins = on_writer!(self, |w| sqlx::query("DELETE FROM sign_in_failures WHERE last_at < $1")
            .bind(now - window)
            .execute(w)
            .await?
            .rows_affected());
        let clients = on_writer!(self, |w| sqlx::query("DELETE FROM client_auth_failures WHERE minute < $1")
            .bind(now.div_euclid(60))
            .execute(w)
            .await?
            .rows_affected());
        Ok(sign_ins + clients)
    }
}

impl Tx {
    pub async fn sign_in_failures(&mut self, key: &str) -> Result<Option<SignInFailures>, CoreError> {
        let row: Option<FailuresRow> =
            on_tx!(self, |c| sqlx::query_as("SELECT failures, last_at FROM sign_in_failures WHERE key = $1")
                .bind(key)
                .fetch_optional(c)
                .await?);
        Ok(row.map(|r| SignInFailures { failures: r.failures, last_at: r.last_at }))
    }

    /// Keeps `f` for `key`, or forgets the key when `f` is `None`.
    pub async fn set_sign_in_failures(&mut self, key: &str, f: Option<SignInFailures>) -> Result<(), CoreError> {
        match f {
            Some(f) => on_tx!(self, |c| sqlx::query(
                "INSERT INTO sign_in_failures (key, failures, last_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET failures = EXCLUDED.failures, last_at = EXCLUDED.last_at"
            )
            .bind(key)
            .bind(f.failures)
            .bind(f.last_at)
            .execute(c)
            .await?
            .rows_affected()),
            None => on_tx!(self, |c| sqlx::query("DELETE FROM sign_in_failures WHERE key = $1")
                .bind(key)
                .execute(c)
                .await?
                .rows_affected()),
        };
        Ok(())
    }
}
