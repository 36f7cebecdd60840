//! Resource servers: the APIs that accept Keygate tokens, and which scopes
//! belong to which.

use super::{on_pool, on_tx, Store, Tx};
use crate::error::CoreError;
use crate::model::*;

#[derive(sqlx::FromRow)]
struct ResourceServerRow {
    id: i64,
    name: String,
    identifier: String,
    builtin: bool,
    created_at: i64,
}

const COLUMNS: &str = "id, name, identifier, builtin, created_at";

/// `(resource server id, name)` pairs, for scopes and introspection clients.
type Members = Vec<(i64, String)>;

fn views(rows: Vec<ResourceServerRow>, scopes: Members, clients: Members) -> Vec<ResourceServerView> {
    rows.into_iter()
        .map(|r| ResourceServerView {
            scopes: scopes.iter().filter(|(id, _)| *id == r.id).map(|(_, n)| n.clone()).collect(),
            introspection_clients: clients.iter().filter(|(id, _)| *id == r.id).map(|(_, n)| n.clone()).collect(),
            id: ResourceServerId(r.id),
            name: r.name,
            identifier: r.identifier,
            builtin: r.builtin,
            created_at: r.created_at,
        })
        .collect()
}

const MEMBER_SCOPES: &str =
    "SELECT resource_server_id, name FROM scopes WHERE resource_server_id IS NOT NULL ORDER BY name";
const MEMBER_CLIENTS: &str = "SELECT introspects_resource_server_id, name FROM applications \
     WHERE introspects_resource_server_id IS NOT NULL ORDER BY lower(name)";

impl Store {
    pub async fn list_resource_servers(&self) -> Result<Vec<ResourceServerView>, CoreError> {
        let sql = format!("SELECT {COLUMNS} FROM resource_servers ORDER BY builtin DESC, lower(name)");
        let rows: Vec<ResourceServerRow> = on_pool!(self, |p| sqlx::query_as(&sql).fetch_all(p).await?);
        let scopes: Members = on_pool!(self, |p| sqlx::query_as(MEMBER_SCOPES).fetch_all(p).await?);
        let clients: Members = on_pool!(self, |p| sqlx::query_as(MEMBER_CLIENTS).fetch_all(p).await?);
        Ok(views(rows, scopes, clients))
    }

    pub async fn resource_server(&self, id: ResourceServerId) -> Result<Option<ResourceServerView>, CoreError> {
        Ok(self.list_resource_servers().await?.into_iter().find(|r| r.id == id))
    }

    /// `(scope, identifier)` for every scope that belongs to a resource server.
    pub async fn scope_servers(&self) -> Result<Vec<(String, String)>, CoreError> {
        Ok(on_pool!(self, |p| sqlx::query_as(SCOPE_SERVERS).fetch_all(p).await?))
    }

    /// Identifiers of every resource server, for checking `resource` values.
    pub async fn resource_server_identifiers(&self) -> Result<Vec<String>, CoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar("SELECT identifier FROM resource_servers").fetch_all(p).await?))
    }
}

const SCOPE_SERVERS: &str =
    "SELECT s.name, r.identifier FROM scopes s JOIN resource_servers r ON r.id = s.resource_server_id";

impl Tx {
    /// [`Store::scope_servers`], inside the transaction.
    pub async fn scope_servers(&mut self) -> Result<Vec<(String, String)>, CoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as(SCOPE_SERVERS).fetch_all(c).await?))
    }

    pub async fn resource_server_by_identifier(
        &mut self,
        identifier: &str,
    ) -> Result<Option<ResourceServerView>, CoreError> {
        let sql = format!("SELECT {COLUMNS} FROM resource_servers WHERE identifier = $1");
        let row: Option<ResourceServerRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(identifier).fetch_optional(c).await?);
        let Some(row) = row else { return Ok(None) };
        let scopes: Members = on_tx!(self, |c| sqlx::query_as(MEMBER_SCOPES).fetch_all(c).await?);
        let clients: Members = on_tx!(self, |c| sqlx::query_as(MEMBER_CLIENTS).fetch_all(c).await?);
        Ok(views(vec![row], scopes, clients).pop())
    }

    pub async fn require_resource_server(&mut self, id: ResourceServerId) -> Result<ResourceServerView, CoreError> {
        let identifier: Option<String> =
            on_tx!(self, |c| sqlx::query_scalar("SELECT identifier FROM resource_servers WHERE id = $1")
                .bind(id.0)
                .fetch_optional(c)
                .await?);
        let identifier = identifier.ok_or(CoreError::NotFound("resource server"))?;
        self.resource_server_by_identifier(&identifier).await?.ok_or(CoreError::NotFound("resource server"))
    }

    pub async fn insert_resource_server(
        &mut self,
        name: &str,
        identifier: &str,
        now: i64,
    ) -> Result<ResourceServerId, CoreError> {
        let id: i64 = on_tx!(self, |c| sqlx::query_scalar(
            "INSERT INTO resource_servers (name, identifier, builtin, created_at) VALUES ($1, $2, FALSE, $3) \
             RETURNING id"
        )
        .bind(name)
        .bind(identifier)
        .bind(now)
        .fetch_one(c)
        .await
        .map_err(|e| match CoreError::from(e) {
            CoreError::Conflict(_) =>
                CoreError::invalid("identifier", "a resource server with this name or identifier already exists",),
            other => other,
        })?);
        Ok(ResourceServerId(id))
    }

    pub async fn rename_resource_server(&mut self, id: ResourceServerId, name: &str) -> Result<(), CoreError> {
        on_tx!(self, |c| sqlx::query("UPDATE resource_servers SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id.0)
            .execute(c)
            .await
            .map_err(|e| match CoreError::from(e) {
                CoreError::Conflict(_) => CoreError::invalid("name", "a resource server with this name already exists"),
                other => other,
            })?
            .rows_affected());
        Ok(())
    }

    /// Deletes a resource server of your own that no scope belongs to any
    /// more, and makes its introspection clients ordinary applications.
    pub async fn delete_resource_server(&mut self, id: ResourceServerId) -> Result<(), CoreError> {
        on_tx!(self, |c| sqlx::query(
            "UPDATE applications SET introspects_resource_server_id = NULL WHERE introspects_resource_server_id = $1"
        )
        .bind(id.0)
        .execute(c)
        .await?
        .rows_affected());
        on_tx!(self, |c| sqlx::query("DELETE FROM resource_servers WHERE id = $1 AND builtin = FALSE")
            .bind(id.0)
            .execute(c)
            .await?
            .rows_affected());
        self.clients_changed = true;
        Ok(())
    }

    /// Attaches a scope to a resource server, or detaches it (`None`).
    pub async fn set_scope_resource_server(
        &mut self,
        scope: &str,
        server: Option<ResourceServerId>,
    ) -> Result<(), CoreError> {
        on_tx!(self, |c| sqlx::query("UPDATE scopes SET resource_server_id = $1 WHERE name = $2")
            .bind(server.map(|s| s.0))
            .bind(scope)
            .execute(c)
            .await?
            .rows_affected());
        // Client records carry which scope belongs to which server.
        self.clients_changed = true;
        Ok(())
    }
}
