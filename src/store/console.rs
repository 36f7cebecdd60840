//! What the console keeps between requests: sessions, one-time secrets
//! waiting to be shown, setup codes, and the keys every instance shares.
//! None of it holds a secret in clear: sessions and setup codes are found
//! by digest, flashes are sealed under a key the database never sees.

use super::{on_pool, on_tx, on_writer, Store, Tx};
use crate::error::CoreError;
use crate::model::{AdminId, AdminView, Role};
use crate::secret::SecretDigest;

/// How long a one-time secret waits to be shown.
pub const FLASH_TTL_SECONDS: i64 = 600;
/// How long a setup link works (every start prints a new one while no
/// administrator exists).
pub const SETUP_CODE_TTL_SECONDS: i64 = 86_400;

#[derive(sqlx::FromRow)]
struct SessionRow {
    data: String,
    expires_at: i64,
    admin_id: Option<i64>,
    username: Option<String>,
    role: Option<String>,
    created_at: Option<i64>,
    last_sign_in_at: Option<i64>,
    must_change_password: Option<bool>,
    session_binding: Option<String>,
}

/// A console session as stored, and the administrator it names with
/// their current session binding.
#[derive(PartialEq, Eq)]
pub struct StoredSession {
    pub data: String,
    pub expires_at: i64,
    admin: Option<(AdminView, String)>,
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The data holds the binding, which stands in for a password.
        f.debug_struct("StoredSession")
            .field("expires_at", &self.expires_at)
            .field("admin", &self.admin.as_ref().map(|(a, _)| a))
            .finish_non_exhaustive()
    }
}

impl StoredSession {
    /// The administrator the session names, while `binding` (kept in the
    /// session at sign-in) is still theirs: no password reset since, not a
    /// later administrator under a reused id. As `Store::admin_for_session`.
    pub fn admin_bound_to(&self, admin_id: AdminId, binding: &str) -> Option<&AdminView> {
        let (admin, current) = self.admin.as_ref()?;
        let same = !binding.is_empty()
            && admin.id == admin_id
            && bool::from(subtle::ConstantTimeEq::ct_eq(current.as_bytes(), binding.as_bytes()));
        same.then_some(admin)
    }
}

impl Store {
    /// Stores a new session; `false` when its ID is taken already.
    pub async fn insert_session(
        &self,
        id: &SecretDigest,
        admin_id: Option<i64>,
        data: &str,
        expires_at: i64,
    ) -> Result<bool, CoreError> {
        let inserted = on_writer!(self, |w| sqlx::query(
            "INSERT INTO console_sessions (id_digest, admin_id, data, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id_digest) DO NOTHING"
        )
        .bind(id.as_bytes())
        .bind(admin_id)
        .bind(data)
        .bind(expires_at)
        .execute(w)
        .await?
        .rows_affected());
        Ok(inserted == 1)
    }

    /// Saves an existing session. One that was ended meanwhile (signed
    /// out, or its administrator's password reset) stays ended: a request
    /// that loaded it before cannot bring it back.
    pub async fn save_session(
        &self,
        id: &SecretDigest,
        admin_id: Option<i64>,
        data: &str,
        expires_at: i64,
    ) -> Result<(), CoreError> {
        on_writer!(self, |w| sqlx::query(
            "UPDATE console_sessions SET admin_id = $2, data = $3, expires_at = $4 WHERE id_digest = $1"
        )
        .bind(id.as_bytes())
        .bind(admin_id)
        .bind(data)
        .bind(expires_at)
        .execute(w)
        .await?
        .rows_affected());
        Ok(())
    }

    /// A session while it has not expired, with the administrator it
    /// names read in the same query (one round trip per console page
    /// instead of two).
    pub async fn load_session(&self, id: &SecretDigest, now: i64) -> Result<Option<StoredSession>, CoreError> {
        let row: Option<SessionRow> = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT s.data, s.expires_at, a.id AS admin_id, a.username, a.role, a.created_at, a.last_sign_in_at, \
             a.must_change_password, a.session_binding FROM console_sessions s LEFT JOIN administrators a ON a.id = s.admin_id \
             WHERE s.id_digest = $1 AND s.expires_at > $2"
        )
        .bind(id.as_bytes())
        .bind(now)
        .fetch_optional(p)
        .await?
        });
        Ok(row.map(|r| {
            let admin = match (r.admin_id, r.username, r.role, r.created_at, r.session_binding) {
                (Some(id), Some(username), Some(role), Some(created_at), Some(binding)) => Some((
                    AdminView {
                        id: AdminId(id),
                        username,
                        role: Role::parse(&role).unwrap_or(Role::Viewer),
                        created_at,
                        last_sign_in_at: r.last_sign_in_at,
                        must_change_password: r.must_change_password.unwrap_or(false),
                    },
                    binding,
                )),
                _ => None,
            };
            StoredSession { data: r.data, expires_at: r.expires_at, admin }
        }))
    }

    pub async fn delete_session(&self, id: &SecretDigest) -> Result<(), CoreError> {
        on_writer!(self, |w| sqlx::query("DELETE FROM console_sessions WHERE id_digest = $1")
            .bind(id.as_bytes())
            .execute(w)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Keeps a sealed one-time value for one application's page.
    pub async fn put_flash(
        &self,
        id: &SecretDigest,
        application_id: i64,
        sealed: &[u8],
        now: i64,
    ) -> Result<(), CoreError> {
        on_writer!(self, |w| sqlx::query(
            "INSERT INTO console_flashes (id_digest, application_id, sealed, created_at) VALUES ($1, $2, $3, $4)"
        )
        .bind(id.as_bytes())
        .bind(application_id)
        .bind(sealed)
        .bind(now)
        .execute(w)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Takes a flash out (it is shown once) if it belongs to this
    /// application's page and was made at `not_before` or later.
    pub async fn take_flash(
        &self,
        id: &SecretDigest,
        application_id: i64,
        not_before: i64,
    ) -> Result<Option<Vec<u8>>, CoreError> {
        Ok(on_writer!(self, |w| sqlx::query_scalar(
            "DELETE FROM console_flashes WHERE id_digest = $1 AND application_id = $2 AND created_at >= $3 \
             RETURNING sealed"
        )
        .bind(id.as_bytes())
        .bind(application_id)
        .bind(not_before)
        .fetch_optional(w)
        .await?))
    }

    /// Adds a one-time setup code (by digest); any instance accepts it.
    pub async fn add_setup_code(&self, code: &SecretDigest, now: i64) -> Result<(), CoreError> {
        on_writer!(self, |w| sqlx::query(
            "INSERT INTO setup_codes (code_digest, created_at) VALUES ($1, $2) ON CONFLICT (code_digest) DO NOTHING"
        )
        .bind(code.as_bytes())
        .bind(now)
        .execute(w)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Whether `code` is a setup code made at `not_before` or later.
    pub async fn setup_code_exists(&self, code: &SecretDigest, not_before: i64) -> Result<bool, CoreError> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM setup_codes WHERE code_digest = $1 AND created_at >= $2"
        )
        .bind(code.as_bytes())
        .bind(not_before)
        .fetch_one(p)
        .await?);
        Ok(n > 0)
    }

    /// The key called `name` that every instance uses; the first instance
    /// to ask stores `fresh`, every later call gets that one back.
    pub async fn shared_key(&self, name: &str, fresh: &[u8], now: i64) -> Result<Vec<u8>, CoreError> {
        on_writer!(self, |w| sqlx::query(
            "INSERT INTO server_keys (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING"
        )
        .bind(name)
        .bind(fresh)
        .bind(now)
        .execute(w)
        .await?
        .rows_affected());
        Ok(on_writer!(self, |w| sqlx::query_scalar("SELECT value FROM server_keys WHERE name = $1")
            .bind(name)
            .fetch_one(w)
            .await?))
    }

    /// Replaces a shared key's stored value, if it still is `old`.
    pub async fn replace_shared_key(&self, name: &str, old: &[u8], new: &[u8]) -> Result<(), CoreError> {
        on_writer!(self, |w| sqlx::query("UPDATE server_keys SET value = $1 WHERE name = $2 AND value = $3")
            .bind(new)
            .bind(name)
            .bind(old)
            .execute(w)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Deletes expired sessions, flashes older than `flash_not_before` and
    /// setup codes past their day.
    pub async fn prune_console_state(&self, now: i64, flash_not_before: i64) -> Result<u64, CoreError> {
        on_writer!(self, |w| sqlx::query("DELETE FROM setup_codes WHERE created_at < $1")
            .bind(now - SETUP_CODE_TTL_SECONDS)
            .execute(w)
            .await?
            .rows_affected());
        let sessions = on_writer!(self, |w| sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(w)
            .await?
            .rows_affected());
        let flashes = on_writer!(self, |w| sqlx::query("DELETE FROM console_flashes WHERE created_at < $1")
            .bind(flash_not_before)
            .execute(w)
            .await?
            .rows_affected());
        Ok(sessions + flashes)
    }
}

impl Tx {
    /// Whether `code` is a setup code made at `not_before` or later.
    pub async fn setup_code_exists(&mut self, code: &SecretDigest, not_before: i64) -> Result<bool, CoreError> {
        let n: i64 = on_tx!(self, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM setup_codes WHERE code_digest = $1 AND created_at >= $2"
        )
        .bind(code.as_bytes())
        .bind(not_before)
        .fetch_one(c)
        .await?);
        Ok(n > 0)
    }

    /// Ends every console session of an administrator.
    pub async fn end_admin_sessions(&mut self, admin_id: i64) -> Result<u64, CoreError> {
        Ok(on_tx!(self, |c| sqlx::query("DELETE FROM console_sessions WHERE admin_id = $1")
            .bind(admin_id)
            .execute(c)
            .await?
            .rows_affected()))
    }

    /// Every setup code ends when the first owner exists.
    pub async fn clear_setup_codes(&mut self) -> Result<(), CoreError> {
        on_tx!(self, |c| sqlx::query("DELETE FROM setup_codes").execute(c).await?.rows_affected());
        Ok(())
    }
}
