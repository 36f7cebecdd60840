//! Named tokens: mint, extend, rotate and revoke; and an application
//! revoking its own token.

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
    /// Other active named tokens of the application with the same name
    /// (case-insensitive): allowed, but worth a warning, since a list of
    /// two "deploy" tokens says nothing about which to revoke.
    pub namesakes: i64,
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
    let namesakes = tx.active_named_tokens_called(application, &name, caller.now).await?;
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
    Ok(MintedToken { view, token, namesakes })
}

/// The longest a rotated token's previous value keeps working.
pub const MAX_ROTATION_OVERLAP_SECONDS: i64 = 30 * 86_400;

/// A named token that `extend` or `rotate` may change: it exists, was
/// minted by an administrator or the API (token-endpoint tokens are
/// short-lived and capped; a client asks for a new one), and is still
/// valid; its application is within the caller's reach and enabled.
async fn changeable_named_token(
    tx: &mut crate::store::Tx,
    caller: &Caller,
    id: TokenId,
    operation: &str,
) -> Result<(TokenView, ApplicationView), CoreError> {
    let application = tx.token(id).await?.ok_or(CoreError::NotFound("token"))?.application_id;
    tx.lock_application(application).await?;
    // Read again under the lock: a revocation that held it has committed.
    let token = tx.token(id).await?.ok_or(CoreError::NotFound("token"))?;
    let app = tx.require_application(token.application_id, caller.now).await?;
    caller.recheck_ceiling(&app)?;
    if token.source == TokenSource::TokenEndpoint {
        return Err(CoreError::Refused(format!(
            "only named tokens can be {operation}; a token from the token endpoint is short-lived: the client asks for a new one"
        )));
    }
    match token.state(caller.now) {
        TokenState::Active => {}
        TokenState::Revoked => {
            return Err(CoreError::Refused(format!("the token is revoked and cannot be {operation}")))
        }
        TokenState::Expired => {
            return Err(CoreError::Refused(format!(
                "the token has expired and cannot be {operation}; create a new one"
            )))
        }
    }
    if let Some(successor) = token.replaced_by {
        // Its overlap is the switch-over the rotation allowed; lengthening
        // it, or giving it a second successor, would undo the rotation.
        return Err(CoreError::Refused(format!(
            "the token was rotated: token {} replaced it, and this value works only until its overlap ends; \
             the new token can be {operation} instead",
            successor.0
        )));
    }
    if !app.enabled {
        return Err(CoreError::Refused(format!(
            "the application is disabled; enable it before its tokens can be {operation}"
        )));
    }
    Ok((token, app))
}

fn revoked_meanwhile() -> CoreError {
    CoreError::Refused("the token was revoked meanwhile".into())
}

/// Gives a named token a new expiry; its value stays the same, so nothing
/// that holds it has to change. The new expiry may be earlier or later,
/// within the two years any named token may live from now.
pub async fn extend_token(
    store: &Store,
    caller: &Caller,
    id: TokenId,
    expiry: TokenExpiry,
) -> Result<TokenView, CoreError> {
    caller.require(WRITE)?;
    let before = store.token(id).await?.ok_or(CoreError::NotFound("token"))?;
    let app = store.require_application(before.application_id, caller.now).await?;
    caller.check_ceiling(store, &app, "extend_token").await?;
    // Lengthening a token is granting its scopes anew.
    caller.check_grantable(&ScopeSet::from_names(&before.scopes).map_err(CoreError::Internal)?)?;
    let expires_at = expiry.resolve(caller.now)?;
    let mut tx = store.write().await?;
    let (token, app) = changeable_named_token(&mut tx, caller, id, "extended").await?;
    if token.expires_at == expires_at {
        return Err(CoreError::invalid("expires_at", "the token already expires then"));
    }
    if !tx.set_token_expiry(id, expires_at).await? {
        return Err(revoked_meanwhile());
    }
    tx.record_audit(
        &caller
            .record(AuditAction::TokenExtended)
            .on_application(app.id, &app.name)
            .with("extended_token_id", json!(id.0))
            .with("name", json!(token.name))
            .with("previous_expires_at", json!(token.expires_at))
            .with("expires_at", json!(expires_at)),
    )
    .await?;
    let view = tx.token(id).await?.ok_or(CoreError::NotFound("token"))?;
    tx.commit().await?;
    Ok(view)
}

/// How a rotation treats the token it replaces.
#[derive(Debug, Clone)]
pub struct RotateRequest {
    /// The new token's expiry; by default it lives as long as the old one
    /// was made to (from now, at most two years).
    pub expiry: Option<TokenExpiry>,
    /// How long the old value keeps working (never past its own expiry);
    /// 0 revokes it at once.
    pub previous_valid_for: i64,
}

/// A rotation's outcome: the new token (shown once) and the old one as it
/// is now (revoked, or expiring at the end of the overlap).
#[derive(Debug)]
pub struct RotatedToken {
    pub minted: MintedToken,
    pub previous: TokenView,
}

/// Replaces a named token's value: a new token with the same name and
/// scopes, and the old one revoked now or kept for an overlap, so the
/// services holding it can switch without an outage. One transaction: the
/// new token exists if and only if the old one was revoked or shortened.
pub async fn rotate_token(
    store: &Store,
    caller: &Caller,
    id: TokenId,
    request: RotateRequest,
) -> Result<RotatedToken, CoreError> {
    caller.require(WRITE)?;
    if !(0..=MAX_ROTATION_OVERLAP_SECONDS).contains(&request.previous_valid_for) {
        return Err(CoreError::invalid(
            "previous_valid_for",
            "the previous token's overlap is 0 (revoke it now) to 2,592,000 seconds (30 days)",
        ));
    }
    let before = store.token(id).await?.ok_or(CoreError::NotFound("token"))?;
    let app = store.require_application(before.application_id, caller.now).await?;
    caller.check_ceiling(store, &app, "rotate_token").await?;
    let scopes = ScopeSet::from_names(&before.scopes).map_err(CoreError::Internal)?;
    caller.check_grantable(&scopes)?;
    let expires_at = match &request.expiry {
        Some(expiry) => expiry.resolve(caller.now)?,
        None => caller.now + (before.expires_at - before.created_at).clamp(1, MAX_NAMED_TTL_SECONDS),
    };
    let token = AccessToken::generate();
    let mut tx = store.write().await?;
    let (old, app) = changeable_named_token(&mut tx, caller, id, "rotated").await?;
    let allowed = ScopeSet::from_names(&app.scopes).unwrap_or_default();
    let outside: Vec<String> = scopes.not_in(&allowed).iter().map(|s| s.to_string()).collect();
    if !outside.is_empty() {
        return Err(CoreError::Refused(format!(
            "the application is no longer allowed {}; create a new token with the scopes it has",
            outside.join(", ")
        )));
    }
    let name = old.name.clone().unwrap_or_default();
    let audience = crate::grant::audience_of(&scopes, &tx.scope_servers().await?);
    let source = match caller.actor {
        super::Actor::Administrator(_) => TokenSource::Console,
        super::Actor::Application { .. } | super::Actor::Cli => TokenSource::Api,
    };
    let new_id =
        tx.insert_named_token(app.id, &token, &name, &scopes, &audience, source, caller.now, expires_at).await?;
    // A revocation that held the application's row before this one (RFC
    // 7009, by the client) may have come first: then nothing of the
    // rotation stays.
    let previous_expires_at = if request.previous_valid_for == 0 {
        if !tx.revoke_token(id, "rotated", caller.name(), caller.now).await? {
            return Err(revoked_meanwhile());
        }
        None
    } else {
        let until = old.expires_at.min(caller.now + request.previous_valid_for);
        if !tx.set_token_expiry(id, until).await? {
            return Err(revoked_meanwhile());
        }
        Some(until)
    };
    tx.set_token_replaced_by(id, new_id).await?;
    tx.record_audit(
        &caller
            .record(AuditAction::TokenRotated)
            .on_application(app.id, &app.name)
            .with("name", json!(name))
            .with("previous_token_id", json!(id.0))
            .with("minted_token_id", json!(new_id.0))
            .with("expires_at", json!(expires_at))
            .with("previous_expires_at", json!(previous_expires_at)),
    )
    .await?;
    tx.count_activity(app.id, caller.now, crate::activity::ActivityKind::Issued).await?;
    let view = tx.token(new_id).await?.ok_or(CoreError::NotFound("token"))?;
    let previous = tx.token(id).await?.ok_or(CoreError::NotFound("token"))?;
    tx.commit().await?;
    // The token it replaces shares its name by design: no warning.
    Ok(RotatedToken { minted: MintedToken { view, token, namesakes: 0 }, previous })
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
    if !tx.revoke_token(id, reason, caller.name(), caller.now).await? {
        return Ok(false);
    }
    tx.record_audit(
        &caller
            .record(AuditAction::TokenRevoked)
            .on_application(app.id, &app.name)
            .with("revoked_token_id", json!(id.0))
            .with("token_name", json!(token.name))
            .with("token", json!(token.name.clone().unwrap_or(token.display_prefix))),
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
    // The application's row before the token's, as the issuer takes them.
    tx.lock_application(client.id).await?;
    if !tx.revoke_token(token.token_id, "revoked_by_client", &client.name, now).await? {
        return Ok(false);
    }
    let mut record = AuditRecord::new(now, ActorKind::Application, AuditAction::TokenRevoked)
        .on_application(client.id, &client.name)
        .from_ip(ip)
        .with("revoked_token_id", json!(token.token_id.0))
        .with("token_name", json!(token.token_name))
        .with("token", json!(token.token_name.clone().unwrap_or_else(|| format!("token {}", token.token_id))))
        .with("via", json!("oauth2/revoke"));
    record.actor_id = Some(client.id.0);
    record.actor_name = Some(client.name.clone());
    tx.record_audit(&record).await?;
    tx.commit().await?;
    Ok(true)
}
