//! Applications: create, change (settings, enabled), delete, regenerate the secret.

use super::{check_known_scopes, Caller, Permission};
use crate::audit_action::AuditAction;
use crate::error::CoreError;
use crate::model::*;
use crate::scope::ScopeSet;
use crate::secret::{generate_client_id, ClientSecret};
use crate::store::Store;
use serde_json::json;

const WRITE: Permission = Permission::Change("applications:write");

/// Creates an application; the secret is returned here and never again.
pub async fn create_application(
    store: &Store,
    caller: &Caller,
    settings: ApplicationSettings,
) -> Result<(ApplicationView, ClientSecret), CoreError> {
    caller.require(WRITE)?;
    caller.check_grantable(&settings.scopes)?;
    caller.check_may_make_introspector(settings.introspects.as_deref())?;
    let settings = settings.validated()?;
    let secret = ClientSecret::generate();
    let mut tx = store.write().await?;
    check_known_scopes(&mut tx, &settings.scopes).await?;
    check_introspected_server(&mut tx, settings.introspects.as_deref()).await?;
    let id = tx.insert_application(&settings, &generate_client_id(), &secret.digest(), caller.now).await?;
    tx.record_audit(&caller.record(AuditAction::ApplicationCreated).on_application(id, &settings.name)).await?;
    let view = tx.require_application(id, caller.now).await?;
    tx.commit().await?;
    Ok((view, secret))
}

/// A change to an application; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplicationChange {
    pub name: Option<String>,
    pub notes: Option<String>,
    pub scopes: Option<ScopeSet>,
    pub token_ttl_seconds: Option<i64>,
    pub max_tokens: Option<i64>,
    pub rate_per_second: Option<i64>,
    pub rate_per_hour: Option<i64>,
    pub token_format: Option<TokenFormat>,
    /// `Some(None)` makes it an ordinary application again.
    pub introspects: Option<Option<String>>,
    /// CIDR networks; `Some(vec![])` allows anywhere again.
    pub allowed_networks: Option<Vec<String>>,
    /// `false` revokes every token of the application in the same
    /// transaction; `true` later does not bring them back.
    pub enabled: Option<bool>,
}

impl ApplicationChange {
    /// Every setting replaced (the console's settings form).
    pub fn settings(s: ApplicationSettings) -> Self {
        ApplicationChange {
            name: Some(s.name),
            notes: Some(s.notes),
            scopes: Some(s.scopes),
            token_ttl_seconds: Some(s.token_ttl_seconds),
            max_tokens: Some(s.max_tokens),
            rate_per_second: Some(s.rate_per_second),
            rate_per_hour: Some(s.rate_per_hour),
            token_format: Some(s.token_format),
            introspects: Some(s.introspects),
            allowed_networks: Some(s.allowed_networks),
            enabled: None,
        }
    }

    pub fn enabled(enabled: bool) -> Self {
        ApplicationChange { enabled: Some(enabled), ..Default::default() }
    }

    fn apply(&self, current: &ApplicationView) -> ApplicationSettings {
        let mut s = ApplicationSettings::of(current);
        let c = self.clone();
        s.name = c.name.unwrap_or(s.name);
        s.notes = c.notes.unwrap_or(s.notes);
        s.scopes = c.scopes.unwrap_or(s.scopes);
        s.token_ttl_seconds = c.token_ttl_seconds.unwrap_or(s.token_ttl_seconds);
        s.max_tokens = c.max_tokens.unwrap_or(s.max_tokens);
        s.rate_per_second = c.rate_per_second.unwrap_or(s.rate_per_second);
        s.rate_per_hour = c.rate_per_hour.unwrap_or(s.rate_per_hour);
        s.token_format = c.token_format.unwrap_or(s.token_format);
        s.introspects = c.introspects.unwrap_or(s.introspects);
        s.allowed_networks = c.allowed_networks.unwrap_or(s.allowed_networks);
        s
    }
}

/// Refuses to make an application the introspection client of a resource
/// server that does not exist.
async fn check_introspected_server(tx: &mut crate::store::Tx, identifier: Option<&str>) -> Result<(), CoreError> {
    let Some(identifier) = identifier else { return Ok(()) };
    if tx.resource_server_by_identifier(identifier).await?.is_none() {
        return Err(CoreError::invalid("introspects", format!("no resource server has the identifier {identifier}")));
    }
    Ok(())
}

/// The settings that differ, by their field names.
fn changed_fields(before: &ApplicationSettings, after: &ApplicationSettings) -> Vec<&'static str> {
    let differs = [
        ("name", before.name != after.name),
        ("notes", before.notes != after.notes),
        ("scopes", before.scopes != after.scopes),
        ("token_ttl_seconds", before.token_ttl_seconds != after.token_ttl_seconds),
        ("max_tokens", before.max_tokens != after.max_tokens),
        ("rate_per_second", before.rate_per_second != after.rate_per_second),
        ("rate_per_hour", before.rate_per_hour != after.rate_per_hour),
        ("token_format", before.token_format != after.token_format),
        ("introspects", before.introspects != after.introspects),
        ("allowed_networks", before.allowed_networks != after.allowed_networks),
    ];
    differs.into_iter().filter(|(_, changed)| *changed).map(|(field, _)| field).collect()
}

/// Changes an application's settings and whether it is enabled. Audits
/// `application.updated` (naming the fields that changed) when a setting
/// changed, and `application.enabled` or `application.disabled` when that
/// changed; disabling revokes every token in the same transaction.
pub async fn update_application(
    store: &Store,
    caller: &Caller,
    id: ApplicationId,
    change: ApplicationChange,
) -> Result<ApplicationView, CoreError> {
    caller.require(WRITE)?;
    let current = store.require_application(id, caller.now).await?;
    let operation = match change.enabled {
        Some(false) if change == ApplicationChange::enabled(false) => "disable",
        Some(true) if change == ApplicationChange::enabled(true) => "enable",
        _ => "update",
    };
    caller.check_ceiling(store, &current, operation).await?;
    if let Some(scopes) = &change.scopes {
        caller.check_grantable(scopes)?;
    }
    if let Some(introspects) = &change.introspects {
        caller.check_may_make_introspector(introspects.as_deref())?;
    }
    let mut tx = store.write().await?;
    // Read again under the row lock: the change applies to what is stored
    // now, so a concurrent change is neither undone nor misreported.
    tx.lock_application(id).await?;
    let current = tx.require_application(id, caller.now).await?;
    caller.recheck_ceiling(&current)?;
    let before = ApplicationSettings::of(&current);
    let after = change.apply(&current).validated()?;
    let enabled = change.enabled.unwrap_or(current.enabled);
    if after.scopes != before.scopes {
        check_known_scopes(&mut tx, &after.scopes).await?;
    }
    if after.introspects != before.introspects {
        check_introspected_server(&mut tx, after.introspects.as_deref()).await?;
    }
    tx.update_application(id, &after, enabled, caller.now).await?;
    let fields = changed_fields(&before, &after);
    if !fields.is_empty() {
        let record = caller
            .record(AuditAction::ApplicationUpdated)
            .on_application(id, &after.name)
            .with("changed", json!(fields));
        tx.record_audit(&record).await?;
    }
    if enabled != current.enabled {
        let record = if enabled {
            caller.record(AuditAction::ApplicationEnabled).on_application(id, &after.name)
        } else {
            let revoked = tx.revoke_application_tokens(id, "application_disabled", caller.name(), caller.now).await?;
            caller
                .record(AuditAction::ApplicationDisabled)
                .on_application(id, &after.name)
                .with("tokens_revoked", json!(revoked))
        };
        tx.record_audit(&record).await?;
    }
    let view = tx.require_application(id, caller.now).await?;
    tx.commit().await?;
    Ok(view)
}

/// Deletes an application with its tokens; returns what it was.
pub async fn delete_application(
    store: &Store,
    caller: &Caller,
    id: ApplicationId,
) -> Result<ApplicationView, CoreError> {
    caller.require(WRITE)?;
    let current = store.require_application(id, caller.now).await?;
    caller.check_ceiling(store, &current, "delete").await?;
    let mut tx = store.write().await?;
    tx.lock_application(id).await?;
    let current = tx.require_application(id, caller.now).await?;
    caller.recheck_ceiling(&current)?;
    if !tx.delete_application(id).await? {
        return Err(CoreError::NotFound("application"));
    }
    tx.record_audit(
        &caller
            .record(AuditAction::ApplicationDeleted)
            .on_application(id, &current.name)
            .with("active_tokens", json!(current.active_tokens)),
    )
    .await?;
    tx.commit().await?;
    Ok(current)
}

/// Shortest and longest overlap during which a previous secret keeps working.
pub const MIN_OVERLAP_SECONDS: i64 = 3600;
pub const MAX_OVERLAP_SECONDS: i64 = 30 * 86_400;

/// How a secret is replaced. The default is today's: the old secret and
/// every token die at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretRegeneration {
    /// Keep the current secret working this many seconds more.
    pub previous_secret_valid_for: Option<i64>,
    /// Revoke every token of the application now; `false` lets them run
    /// to their own expiry.
    pub revoke_tokens: bool,
}

impl Default for SecretRegeneration {
    fn default() -> Self {
        SecretRegeneration { previous_secret_valid_for: None, revoke_tokens: true }
    }
}

impl SecretRegeneration {
    fn validated(self) -> Result<Self, CoreError> {
        if let Some(overlap) = self.previous_secret_valid_for {
            if !(MIN_OVERLAP_SECONDS..=MAX_OVERLAP_SECONDS).contains(&overlap) {
                return Err(CoreError::invalid(
                    "previous_secret_valid_for",
                    "the previous secret may stay valid from 1 hour (3600 seconds) to 30 days (2592000 seconds)",
                ));
            }
        }
        Ok(self)
    }
}

/// A new secret, shown once.
#[derive(Debug)]
pub struct RegeneratedSecret {
    pub application: ApplicationView,
    pub secret: ClientSecret,
    pub secret_id: SecretId,
    /// Tokens revoked with the old secret.
    pub tokens_revoked: u64,
    /// Until when the previous secret keeps working, with an overlap.
    pub previous_secret_expires_at: Option<i64>,
}

/// Replaces the secret as `how` says, in one transaction: the previous
/// secret dropped or kept for an overlap (at most two live), the tokens
/// revoked or kept. A token request that proved a secret a moment before
/// is refused by the issuer unless that secret still works when it inserts.
pub async fn regenerate_secret(
    store: &Store,
    caller: &Caller,
    id: ApplicationId,
    how: SecretRegeneration,
) -> Result<RegeneratedSecret, CoreError> {
    caller.require(WRITE)?;
    let how = how.validated()?;
    let current = store.require_application(id, caller.now).await?;
    caller.check_ceiling(store, &current, "regenerate_secret").await?;
    let secret = ClientSecret::generate();
    let previous_until = how.previous_secret_valid_for.map(|s| caller.now.saturating_add(s));
    let mut tx = store.write().await?;
    tx.lock_application(id).await?;
    caller.recheck_ceiling(&tx.require_application(id, caller.now).await?)?;
    let secret_id = tx.replace_secret(id, &secret.digest(), previous_until, caller.now).await?;
    let revoked = if how.revoke_tokens {
        tx.revoke_application_tokens(id, "secret_regenerated", caller.name(), caller.now).await?
    } else {
        0
    };
    let application = tx.require_application(id, caller.now).await?;
    tx.record_audit(
        &caller
            .record(AuditAction::ApplicationSecretRegenerated)
            .on_application(id, &application.name)
            .with("tokens_revoked", json!(revoked))
            .with("tokens_kept", json!(!how.revoke_tokens))
            .with("previous_secret_expires_at", json!(previous_until)),
    )
    .await?;
    tx.commit().await?;
    Ok(RegeneratedSecret {
        application,
        secret,
        secret_id,
        tokens_revoked: revoked,
        previous_secret_expires_at: previous_until,
    })
}

/// Ends an overlap early: the previous secret stops working now. The
/// current secret cannot be removed this way (regenerate it instead).
pub async fn end_previous_secret(
    store: &Store,
    caller: &Caller,
    id: ApplicationId,
    secret: SecretId,
) -> Result<ApplicationView, CoreError> {
    caller.require(WRITE)?;
    let current = store.require_application(id, caller.now).await?;
    caller.check_ceiling(store, &current, "end_previous_secret").await?;
    let mut tx = store.write().await?;
    tx.lock_application(id).await?;
    let app = tx.require_application(id, caller.now).await?;
    caller.recheck_ceiling(&app)?;
    match app.secrets.iter().find(|s| s.id == secret) {
        None => return Err(CoreError::NotFound("secret")),
        Some(s) if s.current => {
            return Err(CoreError::Refused("this is the current secret; regenerate the secret to replace it".into()))
        }
        Some(_) => {}
    }
    if !tx.drop_previous_secret(id, secret).await? {
        return Err(CoreError::NotFound("secret"));
    }
    tx.record_audit(
        &caller
            .record(AuditAction::ApplicationPreviousSecretRevoked)
            .on_application(id, &app.name)
            .with("secret_id", json!(secret.0)),
    )
    .await?;
    let view = tx.require_application(id, caller.now).await?;
    tx.commit().await?;
    Ok(view)
}

/// The impact of regenerating an application's secret now. It lists
/// tokens, so a token caller needs the application within its ceiling (the
/// route also asks for `tokens:read`).
pub async fn secret_impact(store: &Store, caller: &Caller, id: ApplicationId) -> Result<SecretImpact, CoreError> {
    let now = caller.now;
    let app = store.require_application(id, now).await?;
    caller.check_ceiling(store, &app, "secret_impact").await?;
    let tokens = store.active_tokens(id, now).await?;
    Ok(SecretImpact { application_id: id, active_tokens: tokens.len() as i64, tokens, secrets: app.secrets })
}

/// A warning when a change would lock the caller's own token out: an
/// application changing its own allowlist so that its current address is
/// outside it. The change is still made (the administrator may mean it).
pub fn own_lockout_warning(caller: &Caller, id: ApplicationId, view: &ApplicationView) -> Option<String> {
    let super::Actor::Application { id: own, .. } = &caller.actor else { return None };
    if *own != id {
        return None;
    }
    let networks = crate::network::AllowedNetworks::parse_list(&view.allowed_networks).ok()?;
    let ip = caller.ip.as_deref().and_then(|ip| ip.parse().ok());
    (!networks.admits(ip)).then(|| {
        format!(
            "allowed_networks does not include this request's address ({}): this application's next request from \
             here will be refused",
            caller.ip.as_deref().unwrap_or("unknown")
        )
    })
}
