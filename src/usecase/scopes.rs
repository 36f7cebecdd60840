//! The scope catalogue: add and delete scopes for your own services.

use super::{Caller, Permission};
use crate::audit_action::AuditAction;
use crate::error::CoreError;
use crate::model::ScopeView;
use crate::scope::ScopeName;
use crate::store::Store;
use serde_json::json;

const WRITE: Permission = Permission::Change("scopes:write");
pub const MAX_SCOPE_DESCRIPTION_LEN: usize = 500;

/// Adds a scope of your own, attached to a resource server (by its
/// identifier) or not.
pub async fn add_scope(
    store: &Store,
    caller: &Caller,
    name: &str,
    description: &str,
    resource_server: Option<&str>,
) -> Result<ScopeView, CoreError> {
    caller.require(WRITE)?;
    let name = ScopeName::parse(name.trim()).map_err(|m| CoreError::invalid("name", m))?;
    let description = description.trim();
    if description.contains('\0') {
        return Err(CoreError::invalid("description", "a description may not contain NUL characters"));
    }
    if description.is_empty() || description.chars().count() > MAX_SCOPE_DESCRIPTION_LEN {
        return Err(CoreError::invalid(
            "description",
            format!("a description has 1 to {MAX_SCOPE_DESCRIPTION_LEN} characters"),
        ));
    }
    let mut tx = store.write().await?;
    let server = super::resource_servers::named_server(&mut tx, resource_server).await?;
    tx.insert_scope(name.as_str(), description, server.as_ref().map(|s| s.id), caller.now).await?;
    tx.record_audit(
        &caller
            .record(AuditAction::ScopeCreated)
            .on("scope", None, name.as_str())
            .with("description", json!(description))
            .with("resource_server", json!(server.as_ref().map(|s| &s.identifier))),
    )
    .await?;
    let view = tx.scope(name.as_str()).await?.ok_or(CoreError::NotFound("scope"))?;
    tx.commit().await?;
    Ok(view)
}

/// Deletes a scope of your own. Built-in scopes stay, and so does a scope
/// some application is still allowed: deleting it would silently change
/// what that application's tokens reach.
pub async fn delete_scope(store: &Store, caller: &Caller, name: &str) -> Result<ScopeView, CoreError> {
    caller.require(WRITE)?;
    let mut tx = store.write().await?;
    // No application may be given the scope while it is being deleted.
    tx.serialize(crate::store::LOCK_SCOPES).await?;
    let scope = tx.scope(name.trim()).await?.ok_or(CoreError::NotFound("scope"))?;
    if scope.builtin {
        return Err(CoreError::Refused(format!("{} is one of Keygate's own scopes and cannot be deleted", scope.name)));
    }
    let holders = tx.applications_with_scope(&scope.name).await?;
    if !holders.is_empty() {
        let shown: Vec<&str> = holders.iter().take(5).map(String::as_str).collect();
        let more = if holders.len() > 5 { format!(" and {} more", holders.len() - 5) } else { String::new() };
        return Err(CoreError::Refused(format!(
            "{} application(s) are allowed {} ({}{more}); remove it from them first",
            holders.len(),
            scope.name,
            shown.join(", ")
        )));
    }
    tx.delete_scope(&scope.name).await?;
    tx.record_audit(&caller.record(AuditAction::ScopeDeleted).on("scope", None, &scope.name)).await?;
    tx.commit().await?;
    Ok(scope)
}
