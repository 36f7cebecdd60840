//! Client secrets (the current one and a previous one during an overlap),
//! their last uses, and the last few addresses tokens and secrets were
//! used from.

use super::{on_pool, on_tx, Db, Store, Tx};
use crate::error::CoreError;
use crate::model::*;
use crate::secret::SecretDigest;
use std::collections::HashMap;

#[derive(sqlx::FromRow)]
struct SecretRow {
    id: i64,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    last_used_ip: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AddressRow {
    subject: i64,
    ip: String,
    last_seen_at: i64,
}

/// `$1` the application, `$2` now: the secrets that still work.
const SECRETS_OF: &str = "SELECT id, created_at, expires_at, last_used_at, last_used_ip FROM client_secrets \
     WHERE application_id = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY (expires_at IS NOT NULL), id DESC";
const SECRET_ADDRESSES_OF: &str = "SELECT secret_id AS subject, ip, last_seen_at FROM secret_addresses \
     WHERE secret_id IN (SELECT id FROM client_secrets WHERE application_id = $1) ORDER BY last_seen_at DESC, ip";

/// Addresses by subject (token or secret id), latest first, at most
/// [`RECENT_ADDRESSES_KEPT`] each.
fn group_addresses(rows: Vec<AddressRow>) -> HashMap<i64, Vec<AddressSeen>> {
    let mut by_subject: HashMap<i64, Vec<AddressSeen>> = HashMap::new();
    for r in rows {
        let seen = by_subject.entry(r.subject).or_default();
        if seen.len() < RECENT_ADDRESSES_KEPT {
            seen.push(AddressSeen { ip: r.ip, last_seen_at: r.last_seen_at });
        }
    }
    by_subject
}

fn secret_views(rows: Vec<SecretRow>, addresses: Vec<AddressRow>) -> Vec<SecretView> {
    let mut addresses = group_addresses(addresses);
    rows.into_iter()
        .map(|r| SecretView {
            id: SecretId(r.id),
            current: r.expires_at.is_none(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            last_used_ip: r.last_used_ip,
            recent_addresses: addresses.remove(&r.id).unwrap_or_default(),
        })
        .collect()
}

/// Which kind of credential a recorded use belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UsedCredential {
    Token(TokenId),
    Secret(SecretId),
}

/// One credential's uses since the last flush: the latest, and the latest
/// time of each distinct address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialUse {
    pub credential: UsedCredential,
    pub at: i64,
    pub ip: Option<String>,
    pub addresses: Vec<(String, i64)>,
}

impl Store {
    /// The live secrets of an application, current first.
    pub async fn secrets_of(&self, app: ApplicationId, now: i64) -> Result<Vec<SecretView>, CoreError> {
        let rows: Vec<SecretRow> =
            on_pool!(self, |p| sqlx::query_as(SECRETS_OF).bind(app.0).bind(now).fetch_all(p).await?);
        let addresses: Vec<AddressRow> =
            on_pool!(self, |p| sqlx::query_as(SECRET_ADDRESSES_OF).bind(app.0).fetch_all(p).await?);
        Ok(secret_views(rows, addresses))
    }

    /// The recent addresses of the given tokens.
    pub async fn token_addresses_for(&self, tokens: &[TokenId]) -> Result<HashMap<i64, Vec<AddressSeen>>, CoreError> {
        if tokens.is_empty() {
            return Ok(HashMap::new());
        }
        // Integers only, so the list can be written into the statement:
        // one shape for both backends.
        let ids = tokens.iter().map(|t| t.0.to_string()).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT token_id AS subject, ip, last_seen_at FROM token_addresses WHERE token_id IN ({ids}) \
             ORDER BY last_seen_at DESC, ip"
        );
        let rows: Vec<AddressRow> = on_pool!(self, |p| sqlx::query_as(&sql).fetch_all(p).await?);
        Ok(group_addresses(rows))
    }

    /// Writes a batch of secret uses and of addresses (tokens' and
    /// secrets'), keeping the latest few distinct addresses of each. Token
    /// last-use times themselves go through [`Store::record_token_uses`].
    pub async fn record_credential_uses(&self, uses: &[CredentialUse]) -> Result<(), CoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        // One order for every writer: no deadlock between instances.
        let mut uses: Vec<&CredentialUse> = uses.iter().collect();
        uses.sort_by_key(|u| u.credential);
        const SECRET_USE: &str =
            "UPDATE client_secrets SET last_used_at = $1, last_used_ip = COALESCE($2, last_used_ip) \
             WHERE id = $3 AND (last_used_at IS NULL OR last_used_at <= $1)";
        let statements = |credential: UsedCredential| match credential {
            UsedCredential::Token(_) => (
                "INSERT INTO token_addresses (token_id, ip, last_seen_at) SELECT id, $2, $3 FROM tokens WHERE id = $1 \
                 ON CONFLICT (token_id, ip) DO UPDATE SET last_seen_at = CASE \
                 WHEN excluded.last_seen_at > token_addresses.last_seen_at THEN excluded.last_seen_at \
                 ELSE token_addresses.last_seen_at END",
                "DELETE FROM token_addresses WHERE token_id = $1 AND ip NOT IN ( \
                 SELECT ip FROM token_addresses WHERE token_id = $1 ORDER BY last_seen_at DESC, ip LIMIT $2)",
            ),
            UsedCredential::Secret(_) => (
                "INSERT INTO secret_addresses (secret_id, ip, last_seen_at) SELECT id, $2, $3 FROM client_secrets \
                 WHERE id = $1 ON CONFLICT (secret_id, ip) DO UPDATE SET last_seen_at = CASE \
                 WHEN excluded.last_seen_at > secret_addresses.last_seen_at THEN excluded.last_seen_at \
                 ELSE secret_addresses.last_seen_at END",
                "DELETE FROM secret_addresses WHERE secret_id = $1 AND ip NOT IN ( \
                 SELECT ip FROM secret_addresses WHERE secret_id = $1 ORDER BY last_seen_at DESC, ip LIMIT $2)",
            ),
        };
        let subject = |c: UsedCredential| match c {
            UsedCredential::Token(t) => t.0,
            UsedCredential::Secret(s) => s.0,
        };
        macro_rules! write_all {
            ($tx:expr) => {{
                for u in &uses {
                    if let UsedCredential::Secret(id) = u.credential {
                        sqlx::query(SECRET_USE).bind(u.at).bind(&u.ip).bind(id.0).execute(&mut *$tx).await?;
                    }
                    if u.addresses.is_empty() {
                        continue;
                    }
                    let (upsert, trim) = statements(u.credential);
                    for (ip, at) in &u.addresses {
                        sqlx::query(upsert).bind(subject(u.credential)).bind(ip).bind(at).execute(&mut *$tx).await?;
                    }
                    sqlx::query(trim)
                        .bind(subject(u.credential))
                        .bind(RECENT_ADDRESSES_KEPT as i64)
                        .execute(&mut *$tx)
                        .await?;
                }
            }};
        }
        match &self.db {
            Db::Sqlite { writer, .. } => {
                let mut tx = writer.begin().await?;
                write_all!(tx);
                tx.commit().await?;
            }
            Db::Postgres { pool, .. } => {
                let mut tx = pool.begin().await?;
                write_all!(tx);
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

impl Tx {
    pub async fn secrets_of(&mut self, app: ApplicationId, now: i64) -> Result<Vec<SecretView>, CoreError> {
        let rows: Vec<SecretRow> =
            on_tx!(self, |c| sqlx::query_as(SECRETS_OF).bind(app.0).bind(now).fetch_all(c).await?);
        let addresses: Vec<AddressRow> =
            on_tx!(self, |c| sqlx::query_as(SECRET_ADDRESSES_OF).bind(app.0).fetch_all(c).await?);
        Ok(secret_views(rows, addresses))
    }

    /// Adds the current secret of a new application.
    pub async fn insert_secret(
        &mut self,
        app: ApplicationId,
        secret: &SecretDigest,
        now: i64,
    ) -> Result<SecretId, CoreError> {
        let id: i64 = on_tx!(self, |c| sqlx::query_scalar(
            "INSERT INTO client_secrets (application_id, secret_hash, created_at) VALUES ($1, $2, $3) RETURNING id"
        )
        .bind(app.0)
        .bind(secret.as_bytes().to_vec())
        .bind(now)
        .fetch_one(c)
        .await?);
        self.clients_changed = true;
        Ok(SecretId(id))
    }

    /// Makes `secret` the current secret. The current one is kept working
    /// until `previous_until` (an overlap) or dropped at once; any older
    /// previous secret is dropped, so at most two are ever live.
    pub async fn replace_secret(
        &mut self,
        app: ApplicationId,
        secret: &SecretDigest,
        previous_until: Option<i64>,
        now: i64,
    ) -> Result<SecretId, CoreError> {
        let removed = if previous_until.is_some() { RemovedSecrets::Previous } else { RemovedSecrets::All };
        self.keep_last_use_of(app, removed).await?;
        on_tx!(self, |c| sqlx::query(
            "DELETE FROM client_secrets WHERE application_id = $1 AND expires_at IS NOT NULL"
        )
        .bind(app.0)
        .execute(c)
        .await?
        .rows_affected());
        match previous_until {
            Some(until) => on_tx!(self, |c| sqlx::query(
                "UPDATE client_secrets SET expires_at = $2 WHERE application_id = $1 AND expires_at IS NULL"
            )
            .bind(app.0)
            .bind(until)
            .execute(c)
            .await?
            .rows_affected()),
            None => on_tx!(self, |c| sqlx::query(
                "DELETE FROM client_secrets WHERE application_id = $1 AND expires_at IS NULL"
            )
            .bind(app.0)
            .execute(c)
            .await?
            .rows_affected()),
        };
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE applications SET secret_regenerated_at = $1, updated_at = $1 WHERE id = $2"
        )
        .bind(now)
        .bind(app.0)
        .execute(c)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(CoreError::NotFound("application"));
        }
        self.insert_secret(app, secret, now).await
    }

    /// Ends a previous secret's overlap now; `false` when the application
    /// has no such previous secret.
    pub async fn drop_previous_secret(&mut self, app: ApplicationId, secret: SecretId) -> Result<bool, CoreError> {
        self.keep_last_use_of(app, RemovedSecrets::One(secret)).await?;
        let done = on_tx!(self, |c| sqlx::query(
            "DELETE FROM client_secrets WHERE id = $1 AND application_id = $2 AND expires_at IS NOT NULL"
        )
        .bind(secret.0)
        .bind(app.0)
        .execute(c)
        .await?
        .rows_affected());
        self.clients_changed = true;
        Ok(done == 1)
    }

    /// Keeps on the application the latest use of secrets about to be
    /// deleted, so that deleting a used secret never makes the application
    /// look unused (see `last_used_of_a`). Takes the application's row
    /// before any secret's (the lock order every writer keeps).
    async fn keep_last_use_of(&mut self, app: ApplicationId, removed: RemovedSecrets) -> Result<(), CoreError> {
        let used: Option<i64> = match removed {
            RemovedSecrets::All => on_tx!(self, |c| sqlx::query_scalar(
                "SELECT MAX(last_used_at) FROM client_secrets WHERE application_id = $1"
            )
            .bind(app.0)
            .fetch_one(c)
            .await?),
            RemovedSecrets::Previous => on_tx!(self, |c| sqlx::query_scalar(
                "SELECT MAX(last_used_at) FROM client_secrets WHERE application_id = $1 AND expires_at IS NOT NULL"
            )
            .bind(app.0)
            .fetch_one(c)
            .await?),
            RemovedSecrets::One(secret) => on_tx!(self, |c| sqlx::query_scalar(
                "SELECT MAX(last_used_at) FROM client_secrets WHERE application_id = $1 AND id = $2"
            )
            .bind(app.0)
            .bind(secret.0)
            .fetch_one(c)
            .await?),
        };
        if let Some(at) = used {
            on_tx!(self, |c| sqlx::query(
                "UPDATE applications SET removed_credentials_last_used_at = $2 WHERE id = $1 \
                 AND (removed_credentials_last_used_at IS NULL OR removed_credentials_last_used_at < $2)"
            )
            .bind(app.0)
            .bind(at)
            .execute(c)
            .await?
            .rows_affected());
        }
        Ok(())
    }
}

/// Which of an application's secrets a change deletes.
#[derive(Debug, Clone, Copy)]
enum RemovedSecrets {
    /// Every one (a regeneration without an overlap).
    All,
    /// The previous one, if any (a regeneration with an overlap).
    Previous,
    One(SecretId),
}
