//! Administrators.

use super::{Store, Tx};
use crate::error::CoreError;
use crate::model::*;
use sqlx::Row;

#[derive(sqlx::FromRow)]
struct AdminRow {
    id: i64,
    username: String,
    role: String,
    created_at: i64,
    last_sign_in_at: Option<i64>,
}

impl From<AdminRow> for AdminView {
    fn from(r: AdminRow) -> Self {
        AdminView {
            id: AdminId(r.id),
            username: r.username,
            role: Role::parse(&r.role).unwrap_or(Role::Viewer),
            created_at: r.created_at,
            last_sign_in_at: r.last_sign_in_at,
        }
    }
}

const ADMIN_COLUMNS: &str = "id, username, role, created_at, last_sign_in_at";

async fn admin_by_id<'c, E: sqlx::SqliteExecutor<'c>>(e: E, id: AdminId) -> Result<Option<AdminView>, CoreError> {
    let sql = format!("SELECT {ADMIN_COLUMNS} FROM administrators WHERE id = $1");
    Ok(sqlx::query_as::<_, AdminRow>(&sql).bind(id.0).fetch_optional(e).await?.map(Into::into))
}

fn taken(username: &str) -> impl FnOnce(sqlx::Error) -> CoreError + '_ {
    move |e| match CoreError::from(e) {
        CoreError::Conflict(_) => CoreError::invalid("username", format!("the username \"{username}\" is taken")),
        other => other,
    }
}

impl Store {
    pub async fn admin_count(&self) -> Result<i64, CoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM administrators").fetch_one(&self.pool).await?)
    }

    /// The administrator and their password hash, for sign-in.
    pub async fn admin_credentials(&self, username: &str) -> Result<Option<(AdminView, String)>, CoreError> {
        let sql = format!("SELECT {ADMIN_COLUMNS}, password_hash FROM administrators WHERE username = $1");
        let row = sqlx::query(&sql).bind(username.trim()).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(r) => {
                let hash: String = r.try_get("password_hash")?;
                let admin = AdminView {
                    id: AdminId(r.try_get("id")?),
                    username: r.try_get("username")?,
                    role: Role::parse(r.try_get::<String, _>("role")?.as_str()).unwrap_or(Role::Viewer),
                    created_at: r.try_get("created_at")?,
                    last_sign_in_at: r.try_get("last_sign_in_at")?,
                };
                Some((admin, hash))
            }
            None => None,
        })
    }

    pub async fn admin(&self, id: AdminId) -> Result<Option<AdminView>, CoreError> {
        admin_by_id(&self.pool, id).await
    }

    pub async fn admin_by_username(&self, username: &str) -> Result<Option<AdminView>, CoreError> {
        let sql = format!("SELECT {ADMIN_COLUMNS} FROM administrators WHERE username = $1");
        Ok(sqlx::query_as::<_, AdminRow>(&sql).bind(username.trim()).fetch_optional(&self.pool).await?.map(Into::into))
    }

    pub async fn list_admins(&self) -> Result<Vec<AdminView>, CoreError> {
        let sql = format!("SELECT {ADMIN_COLUMNS} FROM administrators ORDER BY username");
        Ok(sqlx::query_as::<_, AdminRow>(&sql).fetch_all(&self.pool).await?.into_iter().map(Into::into).collect())
    }
}

impl Tx {
    pub async fn admin(&mut self, id: AdminId) -> Result<Option<AdminView>, CoreError> {
        admin_by_id(self.conn(), id).await
    }

    /// Inserts an administrator (the username already validated).
    pub async fn insert_admin(
        &mut self,
        username: &str,
        password_hash: &str,
        role: Role,
        now: i64,
    ) -> Result<AdminView, CoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO administrators (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now)
        .fetch_one(self.conn())
        .await
        .map_err(taken(username))?;
        Ok(AdminView { id: AdminId(id), username: username.to_owned(), role, created_at: now, last_sign_in_at: None })
    }

    /// Inserts the first owner, only while there is no administrator at
    /// all; `None` when someone else got there first.
    pub async fn insert_first_owner(
        &mut self,
        username: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<AdminView>, CoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO administrators (username, password_hash, role, created_at) \
             SELECT $1, $2, 'owner', $3 WHERE NOT EXISTS (SELECT 1 FROM administrators) RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now)
        .fetch_optional(self.conn())
        .await?;
        Ok(id.map(|id| AdminView {
            id: AdminId(id),
            username: username.to_owned(),
            role: Role::Owner,
            created_at: now,
            last_sign_in_at: None,
        }))
    }

    /// Changes a role unless that would leave no owner; `Ok(false)` then.
    /// The count and the change are one statement, so two owners demoting
    /// each other at once cannot both succeed.
    pub async fn set_admin_role(&mut self, id: AdminId, role: Role) -> Result<bool, CoreError> {
        let done = sqlx::query(
            "UPDATE administrators SET role = $1 WHERE id = $2 AND (role != 'owner' OR $1 = 'owner' \
             OR (SELECT COUNT(*) FROM administrators WHERE role = 'owner') > 1)",
        )
        .bind(role.as_str())
        .bind(id.0)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes an administrator unless they are the last owner; `Ok(false)` then.
    pub async fn delete_admin(&mut self, id: AdminId) -> Result<bool, CoreError> {
        let done = sqlx::query(
            "DELETE FROM administrators WHERE id = $1 AND (role != 'owner' \
             OR (SELECT COUNT(*) FROM administrators WHERE role = 'owner') > 1)",
        )
        .bind(id.0)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_admin_password(&mut self, id: AdminId, password_hash: &str) -> Result<bool, CoreError> {
        let done = sqlx::query("UPDATE administrators SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id.0)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn record_sign_in(&mut self, id: AdminId, now: i64) -> Result<(), CoreError> {
        sqlx::query("UPDATE administrators SET last_sign_in_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.0)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
