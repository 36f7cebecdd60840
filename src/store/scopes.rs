//! The scope catalogue.

use super::{Store, Tx};
use crate::error::CoreError;
use crate::model::*;
use sqlx::Row;

fn scope_view(r: sqlx::sqlite::SqliteRow) -> Result<ScopeView, sqlx::Error> {
    Ok(ScopeView { name: r.try_get("name")?, description: r.try_get("description")?, builtin: r.try_get("builtin")? })
}

impl Store {
    pub async fn list_scopes(&self) -> Result<Vec<ScopeView>, CoreError> {
        let rows = sqlx::query("SELECT name, description, builtin FROM scopes ORDER BY builtin DESC, name")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(scope_view).collect::<Result<_, sqlx::Error>>().map_err(Into::into)
    }
}

impl Tx {
    pub async fn scope(&mut self, name: &str) -> Result<Option<ScopeView>, CoreError> {
        let row = sqlx::query("SELECT name, description, builtin FROM scopes WHERE name = $1")
            .bind(name)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(scope_view).transpose()?)
    }

    /// Every scope name in the catalogue.
    pub async fn scope_names(&mut self) -> Result<Vec<String>, CoreError> {
        Ok(sqlx::query_scalar("SELECT name FROM scopes").fetch_all(self.conn()).await?)
    }

    pub async fn insert_scope(&mut self, name: &str, description: &str, now: i64) -> Result<(), CoreError> {
        sqlx::query("INSERT INTO scopes (name, description, builtin, created_at) VALUES ($1, $2, 0, $3)")
            .bind(name)
            .bind(description)
            .bind(now)
            .execute(self.conn())
            .await
            .map_err(|e| match CoreError::from(e) {
                CoreError::Conflict(_) => CoreError::invalid("name", format!("the scope \"{name}\" already exists")),
                other => other,
            })?;
        Ok(())
    }

    pub async fn delete_scope(&mut self, name: &str) -> Result<bool, CoreError> {
        let done =
            sqlx::query("DELETE FROM scopes WHERE name = $1 AND builtin = 0").bind(name).execute(self.conn()).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Names of the applications allowed `scope`.
    pub async fn applications_with_scope(&mut self, scope: &str) -> Result<Vec<String>, CoreError> {
        // Scopes are stored space-delimited; padding both sides makes the
        // match exact (no scope name contains a space).
        Ok(sqlx::query_scalar(
            "SELECT name FROM applications WHERE instr(' ' || scopes || ' ', ' ' || $1 || ' ') > 0 ORDER BY name",
        )
        .bind(scope)
        .fetch_all(self.conn())
        .await?)
    }
}
