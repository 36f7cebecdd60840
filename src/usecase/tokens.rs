//! Named tokens: mint and revoke; and an application revoking its own token.

use super::{Caller, Permission};
use crate::audit_action::AuditAction;
use crate::client::ClientRecord;
use crate::error::CoreError;
use crate::model::*;
use crate::scope::ScopeSet;
use crate::secret::AccessToken;
use crate::store::{ActorKind, AuditRecord, Store, TokenContext};
use serde_json::json;

const WRITE: Permission = Permission::Change("tokens:write");

/// A minted token, shown once.
#[derive(Debug)]
pub struct MintedToken {
    pub view: TokenView,
    pub token: AccessToken,
}

/// What the caller asks for when minting a named token.
#[derive(Debug, Clone)]
pub struct MintRequest {
    pub name: String,
    pub scopes: ScopeSet,
    pub expiry: TokenExpiry,
}

/// Mints a named token (console, API or CLI). Named tokens do not count
/// against the token endpoint's cap: an administrator chose each one.
pub async fn mint_token(
    store: &Store,
    caller: &Caller,
    application: ApplicationId,
    request: MintRequest,
) -> Result<MintedToken, CoreError> {
    caller.require(WRITE)?;
    let app = store.require_application(application, caller.now).await?;
    caller.check_ceiling(store, &app, "mint_token").await?;
    caller.check_grantable(&request.scopes)?;
    let name = validate_name(&request.name).map_err(|e| match e {
        CoreError::Invalid { message, .. } => CoreError::invalid("name", message.replace("a name", "a token name")),
        other => other,
    })?;
    let expires_at = request.expiry.resolve(caller.now)?;
    let source = match caller.actor {
        super::Actor::Administrator(_) => TokenSource::Console,
        super::Actor::Application { .. } | super::Actor::Cli => TokenSource::Api,
    };
    let token = AccessToken::generate();
    let mut tx = store.write().await?;
    // Under the row lock, a disable or a new secret of this application
    // waits for this token and then revokes it too, never misses it.
    tx.lock_application(application).await?;
    let app = tx.require_application(application, caller.now).await?;
    caller.recheck_ceiling(&app)?;
    if !app.enabled {
        return Err(CoreError::Refused("the application is disabled; enable it before creating tokens for it".into()));
    }
    let allowed = ScopeSet::from_names(&app.scopes).unwrap_or_default();
    let outside: Vec<String> = request.scopes.not_in(&allowed).iter().map(|s| s.to_string()).collect();
    if !outside.is_empty() {
        return Err(CoreError::invalid("scopes", format!("the application is not allowed: {}", outside.join(", "))));
    }
    let audience = crate::grant::audience_of(&request.scopes, &tx.scope_servers().await?);
    let id = tx
        .insert_named_token(application, &token, &name, &request.scopes, &audience, source, caller.now, expires_at)
        .await?;
    tx.record_audit(
        &caller
            .record(AuditAction::TokenMinted)
            .on_application(application, &app.name)
            .with("minted_token_id", json!(id.0))
            .with("name", json!(name))
            .with("expires_at", json!(expires_at)),
    )
    .await?;
    tx.count_activity(application, caller.now, crate::activity::ActivityKind::Issued).await?;
    let view = tx.token(id).await?.ok_or(CoreError::NotFound("token"))?;
    tx.commit().await?;
    Ok(MintedToken { view, token })
}

/// Revokes a token by id. Revoking a revoked token changes nothing and
/// writes no event; `Ok(false)` then.
pub async fn revoke_token(store: &Store, caller: &Caller, id: TokenId) -> Result<bool, CoreError> {
    caller.require(WRITE)?;
    let token = store.token(id).await?.ok_or(CoreError::NotFound("token"))?;
    let app = store.require_application(token.application_id, caller.now).await?;
    caller.check_ceiling(store, &app, "revoke_token").await?;
    let reason = match caller.actor {
        super::Actor::Administrator(_) => "revoked_in_console",
        super::Actor::Application { .. } => "revoked_via_api",
        super::Actor::Cli => "revoked_via_cli",
    };
    let mut tx = store.write().await?;
    tx.lock_application(app.id).await?;
    caller.recheck_ceiling(&tx.require_application(app.id, caller.now).await?)?;
    if !tx.revoke_token(id, reason, caller.now).await? {
        return Ok(false);
    }
    tx.record_audit(
        &caller
            .record(AuditAction::TokenRevoked)
            .on_application(app.id, &app.name)
            .with("revoked_token_id", json!(id.0))
            .with("token", json!(token.name.unwrap_or(token.display_prefix))),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// RFC 7009: an authenticated client revokes one of its own tokens.
pub async fn revoke_own_token(
    store: &Store,
    client: &ClientRecord,
    token: &TokenContext,
    now: i64,
    ip: Option<String>,
) -> Result<bool, CoreError> {
    if token.application_id != client.id {
        return Ok(false);
    }
    let mut tx = store.write().await?;
    if !tx.revoke_token(token.token_id, "revoked_by_client", now).await? {
        return Ok(false);
    }
    let mut record = AuditRecord::new(now, ActorKind::Application, AuditAction::TokenRevoked)
        .on_application(client.id, &client.name)
        .from_ip(ip)
        .with("revoked_token_id", json!(token.token_id.0))
        .with("token", json!(token.token_name.clone().unwrap_or_else(|| format!("token {}", token.token_id))))
        .with("via", json!("oauth2/revoke"));
    record.actor_id = Some(client.id.0);
    record.actor_name = Some(client.name.clone());
    tx.record_audit(&record).await?;
    tx.commit().await?;
    Ok(true)
}
