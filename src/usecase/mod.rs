//! The use cases: one function per administrative operation, called alike
//! by the console's server functions, the REST API and the CLI, which only
//! parse, call and render.
//!
//! Each takes a [`Caller`] (who acts, `now`, the client address), checks
//! the rule (the administrator's role; for an application token, the scope
//! the route needs, the scope ceiling and the scopes it may grant), makes
//! the change and writes its audit event in one transaction ([`Tx`]), and
//! returns a typed result. So the same operation leaves the same event
//! whichever way it came in; only the actor and `via` differ.

pub mod activity;
pub mod admins;
pub mod alerts;
pub mod applications;
pub mod keys;
pub mod resource_servers;
pub mod scopes;
pub mod tokens;
pub mod webhooks;

use crate::audit_action::AuditAction;
use crate::error::CoreError;
use crate::model::*;
use crate::scope::ScopeSet;
use crate::store::{ActorKind, AuditRecord, Store, TokenContext};
use serde_json::json;

/// Who acts.
#[derive(Debug, Clone)]
pub enum Actor {
    /// A signed-in console administrator, with the role read at this request.
    Administrator(AdminView),
    /// An application calling the API with one of its tokens.
    Application { id: ApplicationId, name: String, token_id: TokenId, scopes: ScopeSet },
    /// Someone with the server's database: the command line.
    Cli,
}

/// Who acts, when, and from where.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub now: i64,
    pub ip: Option<String>,
}

/// What an operation needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// A change: administrators who are not viewers; tokens with this scope.
    Change(&'static str),
    /// Administrators' accounts: owners only, never a token.
    Owner,
}

impl Caller {
    pub fn administrator(admin: AdminView, now: i64, ip: Option<String>) -> Self {
        Caller { actor: Actor::Administrator(admin), now, ip }
    }

    pub fn application(token: &TokenContext, now: i64, ip: Option<String>) -> Self {
        Caller {
            actor: Actor::Application {
                id: token.application_id,
                name: token.application_name.clone(),
                token_id: token.token_id,
                scopes: token.scopes.clone(),
            },
            now,
            ip,
        }
    }

    pub fn cli(now: i64) -> Self {
        Caller { actor: Actor::Cli, now, ip: None }
    }

    /// Who this caller is, as a revoked token names who revoked it.
    pub fn name(&self) -> &str {
        match &self.actor {
            Actor::Administrator(admin) => &admin.username,
            Actor::Application { name, .. } => name,
            Actor::Cli => "the CLI",
        }
    }

    /// The entry point, as audit events name it.
    pub fn via(&self) -> &'static str {
        match self.actor {
            Actor::Administrator(_) => "console",
            Actor::Application { .. } => "api",
            Actor::Cli => "cli",
        }
    }

    /// An audit record of this caller: actor, address and `via`.
    pub fn record(&self, action: AuditAction) -> AuditRecord {
        let mut r = match &self.actor {
            Actor::Administrator(admin) => AuditRecord::by_admin(self.now, admin, action),
            Actor::Application { id, name, token_id, .. } => {
                let mut r = AuditRecord::new(self.now, ActorKind::Application, action);
                r.actor_id = Some(id.0);
                r.actor_name = Some(name.clone());
                r.with("actor_token_id", json!(token_id.0))
            }
            Actor::Cli => AuditRecord::new(self.now, ActorKind::System, action),
        };
        r.client_ip = self.ip.clone();
        r.with("via", json!(self.via()))
    }

    /// Refuses a caller without `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), CoreError> {
        match (&self.actor, permission) {
            (Actor::Cli, _) => Ok(()),
            (Actor::Administrator(a), Permission::Change(_)) if a.role.can_write() => Ok(()),
            (Actor::Administrator(a), Permission::Change(_)) => {
                Err(CoreError::forbidden(format!("{} is a viewer; viewers cannot change anything", a.username)))
            }
            (Actor::Administrator(a), Permission::Owner) if a.role == Role::Owner => Ok(()),
            (Actor::Administrator(_), Permission::Owner) => {
                Err(CoreError::forbidden("only owners manage administrators"))
            }
            (Actor::Application { scopes, .. }, Permission::Change(scope)) if scopes.contains(scope) => Ok(()),
            (Actor::Application { .. }, Permission::Change(scope)) => Err(CoreError::Forbidden {
                message: format!("this operation needs the scope {scope}"),
                missing_scopes: vec![scope.to_owned()],
            }),
            (Actor::Application { .. }, Permission::Owner) => {
                Err(CoreError::forbidden("administrators are managed in the console or the CLI, not the API"))
            }
        }
    }

    /// An application token cannot hand out scopes it does not hold, so a
    /// token with `applications:write` cannot widen anyone's reach.
    pub fn check_grantable(&self, scopes: &ScopeSet) -> Result<(), CoreError> {
        let Actor::Application { scopes: held, .. } = &self.actor else { return Ok(()) };
        let beyond: Vec<String> = scopes.not_in(held).iter().map(|s| s.to_string()).collect();
        if beyond.is_empty() {
            return Ok(());
        }
        Err(CoreError::Forbidden {
            message: format!("the calling token does not hold, so cannot grant: {}", beyond.join(", ")),
            missing_scopes: beyond,
        })
    }

    /// An application token may act on an application only when that
    /// application's allowed scopes are all in the token: otherwise a token
    /// with `applications:write` could take over a more powerful
    /// application by regenerating its secret or minting a token for it.
    /// Refusals are audited (outside the refused change's transaction).
    pub async fn check_ceiling(
        &self,
        store: &Store,
        target: &ApplicationView,
        operation: &str,
    ) -> Result<(), CoreError> {
        let beyond = self.beyond_ceiling(target)?;
        if beyond.is_empty() {
            return Ok(());
        }
        let record = self
            .record(AuditAction::ApplicationAccessRefused)
            .on_application(target.id, &target.name)
            .with("reason", json!("scope_ceiling"))
            .with("operation", json!(operation))
            .with("missing_scopes", json!(beyond));
        if let Err(e) = store.record_audit(&record).await {
            tracing::error!(error = %e, "could not audit a refused operation");
        }
        Err(ceiling_refusal(beyond))
    }

    /// The ceiling again, on the application as the change's transaction
    /// read it (an administrator may have widened its scopes meanwhile).
    /// Not audited: the transaction holds the writer.
    pub fn recheck_ceiling(&self, target: &ApplicationView) -> Result<(), CoreError> {
        let beyond = self.beyond_ceiling(target)?;
        if beyond.is_empty() {
            Ok(())
        } else {
            Err(ceiling_refusal(beyond))
        }
    }

    /// What the target application reaches that this caller's token does
    /// not: its scopes, and `introspect` when it is a resource server's
    /// introspection client (it reads other applications' tokens).
    fn beyond_ceiling(&self, target: &ApplicationView) -> Result<Vec<String>, CoreError> {
        let Actor::Application { scopes: held, .. } = &self.actor else { return Ok(Vec::new()) };
        // A stored scope list that does not parse is refused, never read as empty.
        let mut reach = ScopeSet::from_names(&target.scopes).map_err(|e| {
            CoreError::Internal(format!("stored scopes of application {} do not parse: {e}", target.id))
        })?;
        if target.introspects.is_some() {
            reach = reach.union(&ScopeSet::parse(crate::scope::INTROSPECT_SCOPE).unwrap_or_default());
        }
        Ok(reach.not_in(held).iter().map(|s| s.to_string()).collect())
    }

    /// Making an application a resource server's introspection client lets
    /// it read tokens of other applications: a token may do that only when
    /// it holds `introspect` itself.
    pub fn check_may_make_introspector(&self, introspects: Option<&str>) -> Result<(), CoreError> {
        let Actor::Application { scopes: held, .. } = &self.actor else { return Ok(()) };
        if introspects.is_none() || held.contains(crate::scope::INTROSPECT_SCOPE) {
            return Ok(());
        }
        Err(CoreError::Forbidden {
            message: "making an application an introspection client needs a token with the introspect scope".into(),
            missing_scopes: vec![crate::scope::INTROSPECT_SCOPE.to_owned()],
        })
    }
}

fn ceiling_refusal(beyond: Vec<String>) -> CoreError {
    CoreError::Forbidden {
        message: format!(
            "the application holds scopes the calling token does not ({}); a token may act only on \
             applications whose scopes it holds itself",
            beyond.join(", ")
        ),
        missing_scopes: beyond,
    }
}

/// Refuses scopes that are not in the catalogue, naming them.
async fn check_known_scopes(tx: &mut crate::store::Tx, scopes: &ScopeSet) -> Result<(), CoreError> {
    if scopes.is_empty() {
        return Ok(());
    }
    // A scope deleted meanwhile must not end up allowed (see `delete_scope`).
    tx.serialize(crate::store::LOCK_SCOPES).await?;
    let known = tx.scope_names().await?;
    let unknown: Vec<&str> = scopes.iter().map(|s| s.as_str()).filter(|s| !known.iter().any(|k| k == s)).collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "scopes",
            format!("unknown scope(s): {} (add them to the scope catalogue first)", unknown.join(", ")),
        ))
    }
}

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
