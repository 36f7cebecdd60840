//! Administrators.

use super::{on_pool, on_tx, Store, Tx};
use crate::error::CoreError;
use crate::model::*;

#[derive(sqlx::FromRow)]
struct AdminRow {
    id: i64,
    username: String,
    role: String,
    created_at: i64,
    last_sign_in_at: Option<i64>,
    must_change_password: bool,
}

impl From<AdminRow> for AdminView {
    fn from(r: AdminRow) -> Self {
        AdminView {
            id: AdminId(r.id),
            username: r.username,
            role: Role::parse(&r.role).unwrap_or(Role::Viewer),
            created_at: r.created_at,
            last_sign_in_at: r.last_sign_in_at,
            must_change_password: r.must_change_password,
        }
    }
}

#[derive(sqlx::FromRow)]
struct CredentialsRow {
    #[sqlx(flatten)]
    admin: AdminRow,
    password_hash: String,
}

const ADMIN_BY_ID: &str =
    "SELECT id, username, role, created_at, last_sign_in_at, must_change_password FROM administrators WHERE id = $1";
/// Usernames match whatever their case (unique so on both backends).
const ADMIN_BY_NAME: &str =
    "SELECT id, username, role, created_at, last_sign_in_at, must_change_password FROM administrators WHERE lower(username) = lower($1)";

fn taken(username: &str) -> impl FnOnce(sqlx::Error) -> CoreError + '_ {
    move |e| match CoreError::from(e) {
        CoreError::Conflict(_) => CoreError::invalid("username", format!("the username \"{username}\" is taken")),
        other => other,
    }
}

impl Store {
    pub async fn admin_count(&self) -> Result<i64, CoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar("SELECT COUNT(*) FROM administrators").fetch_one(p).await?))
    }

    /// The administrator and their password hash, for sign-in.
    pub async fn admin_credentials(&self, username: &str) -> Result<Option<(AdminView, String)>, CoreError> {
        let row: Option<CredentialsRow> = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT id, username, role, created_at, last_sign_in_at, must_change_password, password_hash FROM administrators \
             WHERE lower(username) = lower($1)"
        )
        .bind(username.trim())
        .fetch_optional(p)
        .await?
        });
        Ok(row.map(|r| (r.admin.into(), r.password_hash)))
    }

    pub async fn admin(&self, id: AdminId) -> Result<Option<AdminView>, CoreError> {
        let row: Option<AdminRow> =
            on_pool!(self, |p| sqlx::query_as(ADMIN_BY_ID).bind(id.0).fetch_optional(p).await?);
        Ok(row.map(Into::into))
    }

    pub async fn admin_by_username(&self, username: &str) -> Result<Option<AdminView>, CoreError> {
        let row: Option<AdminRow> =
            on_pool!(self, |p| sqlx::query_as(ADMIN_BY_NAME).bind(username.trim()).fetch_optional(p).await?);
        Ok(row.map(Into::into))
    }

    pub async fn list_admins(&self) -> Result<Vec<AdminView>, CoreError> {
        let rows: Vec<AdminRow> = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT id, username, role, created_at, last_sign_in_at, must_change_password FROM administrators ORDER BY lower(username)"
        )
        .fetch_all(p)
        .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

impl Tx {
    pub async fn admin(&mut self, id: AdminId) -> Result<Option<AdminView>, CoreError> {
        let row: Option<AdminRow> = on_tx!(self, |c| sqlx::query_as(ADMIN_BY_ID).bind(id.0).fetch_optional(c).await?);
        Ok(row.map(Into::into))
    }

    /// Inserts an administrator (the username already validated).
    /// `chosen_by_them`: the password is theirs, else they change it at
    /// their first sign-in.
    pub async fn insert_admin(
        &mut self,
        username: &str,
        password_hash: &str,
        role: Role,
        chosen_by_them: bool,
        now: i64,
    ) -> Result<AdminView, CoreError> {
        let id: i64 = on_tx!(self, |c| {
            sqlx::query_scalar(
                "INSERT INTO administrators (username, password_hash, role, created_at, session_binding, \
             must_change_password) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(username)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(now)
            .bind(SessionBinding::generate().0)
            .bind(!chosen_by_them)
            .fetch_one(c)
            .await
            .map_err(taken(username))?
        });
        Ok(AdminView {
            id: AdminId(id),
            username: username.to_owned(),
            role,
            created_at: now,
            last_sign_in_at: None,
            must_change_password: !chosen_by_them,
        })
    }

    /// Inserts the first owner, only while there is no administrator at
    /// all; `None` when someone else got there first.
    pub async fn insert_first_owner(
        &mut self,
        username: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<AdminView>, CoreError> {
        let id: Option<i64> = on_tx!(self, |c| sqlx::query_scalar(
            "INSERT INTO administrators (username, password_hash, role, created_at, session_binding) \
             SELECT $1, $2, 'owner', $3, $4 WHERE NOT EXISTS (SELECT 1 FROM administrators) RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now)
        .bind(SessionBinding::generate().0)
        .fetch_optional(c)
        .await?);
        Ok(id.map(|id| AdminView {
            id: AdminId(id),
            username: username.to_owned(),
            role: Role::Owner,
            created_at: now,
            last_sign_in_at: None,
            must_change_password: false,
        }))
    }

    /// Changes a role unless that would leave no owner; `Ok(false)` then.
    /// The count and the change are one statement, so two owners demoting
    /// each other at once cannot both succeed.
    pub async fn set_admin_role(&mut self, id: AdminId, role: Role) -> Result<bool, CoreError> {
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE administrators SET role = $1 WHERE id = $2 AND (role != 'owner' OR $1 = 'owner' \
             OR (SELECT COUNT(*) FROM administrators WHERE role = 'owner') > 1)",
        )
        .bind(role.as_str())
        .bind(id.0)
        .execute(c)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Removes an administrator unless they are the last owner; `Ok(false)` then.
    pub async fn delete_admin(&mut self, id: AdminId) -> Result<bool, CoreError> {
        let done = on_tx!(self, |c| sqlx::query(
            "DELETE FROM administrators WHERE id = $1 AND (role != 'owner' \
             OR (SELECT COUNT(*) FROM administrators WHERE role = 'owner') > 1)",
        )
        .bind(id.0)
        .execute(c)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Sets a password someone else chose (a reset), which its owner must
    /// change at the next sign-in, and draws a new session binding, which
    /// ends every session made with the old one; returns the new binding.
    /// (Their own choice goes through [`Tx::replace_own_password`].)
    pub async fn set_admin_password(
        &mut self,
        id: AdminId,
        password_hash: &str,
    ) -> Result<Option<SessionBinding>, CoreError> {
        let binding = SessionBinding::generate();
        let done = on_tx!(self, |c| {
            sqlx::query(
            "UPDATE administrators SET password_hash = $1, session_binding = $3, must_change_password = TRUE WHERE id = $2"
        )
        .bind(password_hash)
        .bind(id.0)
        .bind(&binding.0)
        .execute(c)
        .await?
        .rows_affected()
        });
        Ok((done == 1).then_some(binding))
    }

    /// Replaces an administrator's own password, only while the stored
    /// hash is still `checked_hash` (one statement: a reset committing
    /// meanwhile on another instance is never overwritten). Draws a new
    /// session binding and returns it; `None` when the hash had changed.
    pub async fn replace_own_password(
        &mut self,
        id: AdminId,
        checked_hash: &str,
        new_hash: &str,
    ) -> Result<Option<SessionBinding>, CoreError> {
        let binding = SessionBinding::generate();
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE administrators SET password_hash = $1, session_binding = $3, must_change_password = FALSE \
             WHERE id = $2 AND password_hash = $4"
        )
        .bind(new_hash)
        .bind(id.0)
        .bind(&binding.0)
        .bind(checked_hash)
        .execute(c)
        .await?
        .rows_affected());
        Ok((done == 1).then_some(binding))
    }

    /// Records a sign-in with the password hash it was checked against,
    /// and returns the binding the session must carry. `None` when the
    /// administrator was removed, or their password changed, since the
    /// check: then there is nobody to sign in.
    pub async fn record_sign_in(
        &mut self,
        id: AdminId,
        checked_hash: &str,
        now: i64,
    ) -> Result<Option<SessionBinding>, CoreError> {
        let binding: Option<String> = on_tx!(self, |c| sqlx::query_scalar(
            "UPDATE administrators SET last_sign_in_at = $1 WHERE id = $2 AND password_hash = $3 \
             RETURNING session_binding"
        )
        .bind(now)
        .bind(id.0)
        .bind(checked_hash)
        .fetch_optional(c)
        .await?);
        Ok(binding.filter(|b| !b.is_empty()).map(SessionBinding))
    }
}
