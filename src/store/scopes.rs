//! The scope catalogue.

use super::{on_pool, on_tx, Store, Tx};
use crate::error::CoreError;
use crate::model::*;

#[derive(sqlx::FromRow)]
struct ScopeRow {
    name: String,
    description: String,
    builtin: bool,
    resource_server: Option<String>,
}

impl From<ScopeRow> for ScopeView {
    fn from(r: ScopeRow) -> Self {
        ScopeView { name: r.name, description: r.description, builtin: r.builtin, resource_server: r.resource_server }
    }
}

impl Store {
    pub async fn list_scopes(&self) -> Result<Vec<ScopeView>, CoreError> {
        let rows: Vec<ScopeRow> = on_pool!(self, |p| sqlx::query_as(
            "SELECT s.name, s.description, s.builtin, r.identifier AS resource_server FROM scopes s \
             LEFT JOIN resource_servers r ON r.id = s.resource_server_id ORDER BY s.builtin DESC, s.name"
        )
        .fetch_all(p)
        .await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

impl Tx {
    pub async fn scope(&mut self, name: &str) -> Result<Option<ScopeView>, CoreError> {
        let row: Option<ScopeRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT s.name, s.description, s.builtin, r.identifier AS resource_server FROM scopes s \
                 LEFT JOIN resource_servers r ON r.id = s.resource_server_id WHERE s.name = $1"
        )
        .bind(name)
        .fetch_optional(c)
        .await?);
        Ok(row.map(Into::into))
    }

    /// Every scope name in the catalogue.
    pub async fn scope_names(&mut self) -> Result<Vec<String>, CoreError> {
        Ok(on_tx!(self, |c| sqlx::query_scalar("SELECT name FROM scopes").fetch_all(c).await?))
    }

    pub async fn insert_scope(
        &mut self,
        name: &str,
        description: &str,
        server: Option<ResourceServerId>,
        now: i64,
    ) -> Result<(), CoreError> {
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO scopes (name, description, builtin, created_at, resource_server_id) \
             VALUES ($1, $2, FALSE, $3, $4)"
        )
        .bind(name)
        .bind(description)
        .bind(now)
        .bind(server.map(|s| s.0))
        .execute(c)
        .await
        .map_err(|e| match CoreError::from(e) {
            CoreError::Conflict(_) => CoreError::invalid("name", format!("the scope \"{name}\" already exists")),
            other => other,
        })?
        .rows_affected());
        Ok(())
    }

    pub async fn delete_scope(&mut self, name: &str) -> Result<bool, CoreError> {
        let done = on_tx!(self, |c| sqlx::query("DELETE FROM scopes WHERE name = $1 AND builtin = FALSE")
            .bind(name)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Names of the applications allowed `scope`.
    pub async fn applications_with_scope(&mut self, scope: &str) -> Result<Vec<String>, CoreError> {
        // Scopes are stored space-delimited; padding both sides makes the
        // match exact (no scope name contains a space).
        Ok(match &mut self.inner {
            super::TxInner::Sqlite(t) => {
                sqlx::query_scalar(
                    "SELECT name FROM applications WHERE instr(' ' || scopes || ' ', ' ' || $1 || ' ') > 0 \
                     ORDER BY lower(name)",
                )
                .bind(scope)
                .fetch_all(&mut **t)
                .await?
            }
            super::TxInner::Postgres(t) => {
                sqlx::query_scalar(
                    "SELECT name FROM applications WHERE strpos(' ' || scopes || ' ', ' ' || $1 || ' ') > 0 \
                     ORDER BY lower(name)",
                )
                .bind(scope)
                .fetch_all(&mut **t)
                .await?
            }
        })
    }
}
