//! Resource servers: the APIs that accept Keygate tokens. Their identifier
//! is the audience of the tokens meant for them, so it never changes once
//! created; the name may.

use super::{Caller, Permission};
use crate::audit_action::AuditAction;
use crate::error::CoreError;
use crate::model::*;
use crate::store::Store;
use serde_json::json;

const WRITE: Permission = Permission::Change("scopes:write");

pub async fn add_resource_server(
    store: &Store,
    caller: &Caller,
    name: &str,
    identifier: &str,
) -> Result<ResourceServerView, CoreError> {
    caller.require(WRITE)?;
    let name = validate_name(name)?;
    let identifier = validate_identifier(identifier)?;
    let mut tx = store.write().await?;
    let id = tx.insert_resource_server(&name, &identifier, caller.now).await?;
    tx.record_audit(
        &caller
            .record(AuditAction::ResourceServerCreated)
            .on("resource_server", Some(id.0), &name)
            .with("identifier", json!(identifier)),
    )
    .await?;
    let view = tx.require_resource_server(id).await?;
    tx.commit().await?;
    Ok(view)
}

/// Renames a resource server (its identifier stays: tokens carry it).
pub async fn rename_resource_server(
    store: &Store,
    caller: &Caller,
    id: ResourceServerId,
    name: &str,
) -> Result<ResourceServerView, CoreError> {
    caller.require(WRITE)?;
    let name = validate_name(name)?;
    let mut tx = store.write().await?;
    let before = tx.require_resource_server(id).await?;
    if before.name == name {
        return Ok(before);
    }
    tx.rename_resource_server(id, &name).await?;
    tx.record_audit(
        &caller
            .record(AuditAction::ResourceServerUpdated)
            .on("resource_server", Some(id.0), &name)
            .with("previous_name", json!(before.name)),
    )
    .await?;
    let view = tx.require_resource_server(id).await?;
    tx.commit().await?;
    Ok(view)
}

/// Deletes a resource server of your own once no scope belongs to it:
/// deleting one with scopes would silently change the audience of every
/// token asked for with them. Its introspection clients lose that right.
pub async fn delete_resource_server(
    store: &Store,
    caller: &Caller,
    id: ResourceServerId,
) -> Result<ResourceServerView, CoreError> {
    caller.require(WRITE)?;
    let mut tx = store.write().await?;
    tx.serialize(crate::store::LOCK_SCOPES).await?;
    let server = tx.require_resource_server(id).await?;
    if server.builtin {
        return Err(CoreError::Refused(format!("{} is Keygate's own API and cannot be deleted", server.name)));
    }
    if !server.scopes.is_empty() {
        return Err(CoreError::Refused(format!(
            "{} scope(s) belong to {} ({}); attach them elsewhere or delete them first",
            server.scopes.len(),
            server.name,
            server.scopes.join(", ")
        )));
    }
    tx.delete_resource_server(id).await?;
    tx.record_audit(
        &caller
            .record(AuditAction::ResourceServerDeleted)
            .on("resource_server", Some(id.0), &server.name)
            .with("identifier", json!(server.identifier))
            .with("introspection_clients", json!(server.introspection_clients)),
    )
    .await?;
    tx.commit().await?;
    Ok(server)
}

/// The resource server an identifier names (`None` or blank: none), or a
/// field error for one that does not exist.
pub(super) async fn named_server(
    tx: &mut crate::store::Tx,
    identifier: Option<&str>,
) -> Result<Option<ResourceServerView>, CoreError> {
    let Some(identifier) = identifier.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    let found = tx.resource_server_by_identifier(identifier).await?;
    found.map(Some).ok_or_else(|| CoreError::invalid("resource_server", "no resource server has this identifier"))
}

/// Attaches a scope of your own to a resource server (by identifier), or
/// detaches it (`None`). Keygate's own scopes stay with its API. Tokens
/// already issued reach a server through Keygate's checks only while they
/// hold one of its scopes (see `Store::check_token`).
pub async fn attach_scope(
    store: &Store,
    caller: &Caller,
    scope: &str,
    resource_server: Option<&str>,
) -> Result<ScopeView, CoreError> {
    caller.require(WRITE)?;
    let mut tx = store.write().await?;
    tx.serialize(crate::store::LOCK_SCOPES).await?;
    let current = tx.scope(scope.trim()).await?.ok_or(CoreError::NotFound("scope"))?;
    // Moving a scope changes where the tokens of the applications allowed
    // it reach: a token may move a scope some application is allowed only
    // when it holds that scope itself.
    let held = crate::scope::ScopeSet::parse(&current.name).unwrap_or_default();
    if caller.check_grantable(&held).is_err() && !tx.applications_with_scope(&current.name).await?.is_empty() {
        return Err(CoreError::Forbidden {
            message: format!(
                "applications are allowed {}; only a token that holds it may move it to another resource server",
                current.name
            ),
            missing_scopes: vec![current.name.clone()],
        });
    }
    if current.builtin {
        return Err(CoreError::Refused(format!(
            "{} is one of Keygate's own scopes; it belongs to Keygate's API",
            current.name
        )));
    }
    let server = named_server(&mut tx, resource_server).await?;
    if server.as_ref().map(|s| &s.identifier) == current.resource_server.as_ref() {
        return Ok(current);
    }
    tx.set_scope_resource_server(&current.name, server.as_ref().map(|s| s.id)).await?;
    tx.record_audit(
        &caller
            .record(AuditAction::ScopeAttached)
            .on("scope", None, &current.name)
            .with("resource_server", json!(server.as_ref().map(|s| &s.identifier)))
            .with("previous_resource_server", json!(current.resource_server)),
    )
    .await?;
    let view = tx.scope(&current.name).await?.ok_or(CoreError::NotFound("scope"))?;
    tx.commit().await?;
    Ok(view)
}
