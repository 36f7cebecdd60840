//! Audit events as sentences a person reads: "alice regenerated the secret
//! of billing-sync".

use crate::audit_action::AuditAction;
use crate::model::AuditEventView;

pub fn describe(e: &AuditEventView) -> String {
    let actor = e.actor.as_str();
    let target = e.target.as_deref().unwrap_or("an application");
    let d = &e.details;
    let count = d.get("count").and_then(|c| c.as_i64()).filter(|c| *c > 1);
    let times = count.map(|c| format!(" ({c} times)")).unwrap_or_default();
    let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let Some(action) = AuditAction::parse(&e.action) else {
        return format!("{actor}: {} {target}", e.action);
    };
    use AuditAction as A;
    match action {
        A::ApplicationCreated => format!("{actor} created the application {target}"),
        A::ApplicationUpdated => format!("{actor} changed the settings of {target}"),
        A::ApplicationEnabled => format!("{actor} enabled {target}"),
        A::ApplicationDisabled => format!("{actor} disabled {target}"),
        A::ApplicationDeleted => format!("{actor} deleted the application {target}"),
        A::ApplicationSecretRegenerated => {
            let n = d.get("tokens_revoked").and_then(|v| v.as_i64()).unwrap_or(0);
            let tokens = if d.get("tokens_kept").and_then(|v| v.as_bool()) == Some(true) {
                "tokens kept".to_owned()
            } else {
                format!("{n} token(s) revoked")
            };
            match d.get("previous_secret_expires_at").and_then(|v| v.as_i64()) {
                Some(until) => format!(
                    "{actor} regenerated the secret of {target} ({tokens}; the previous secret works until {})",
                    crate::time_fmt::exact_utc(until)
                ),
                None => format!("{actor} regenerated the secret of {target} ({tokens})"),
            }
        }
        A::ApplicationPreviousSecretRevoked => format!("{actor} ended the overlap of {target}'s previous secret"),
        A::ApplicationDormant => {
            format!("{target} has not been used for {} days", d.get("days").and_then(|v| v.as_i64()).unwrap_or(0))
        }
        A::TokenExpiring => format!("The token \"{}\" of {target} expires {}", s("name"), s("expires_in")),
        A::SecretExpiring => format!("The previous secret of {target} stops working {}", s("expires_in")),
        A::WebhookCreated => format!("{actor} added the webhook {target}"),
        A::WebhookUpdated => format!("{actor} changed the webhook {target}"),
        A::WebhookDeleted => format!("{actor} removed the webhook {target}"),
        A::ApplicationAccessRefused => {
            let missing = d
                .get("missing_scopes")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            format!("{actor} was refused {} on {target}: its token lacks {missing}", s("operation").replace('_', " "))
        }
        A::TokenMinted => format!("{actor} created the token \"{}\" for {target}", s("name")),
        A::TokenRevoked => match d.get("token_name").and_then(|v| v.as_str()) {
            Some(token) => format!("{actor} revoked the token \"{token}\" of {target}"),
            None => format!("{actor} revoked a token of {target}"),
        },
        A::TokenExtended => {
            let at = |k: &str| d.get(k).and_then(|v| v.as_i64()).map(crate::time_fmt::exact_utc).unwrap_or_default();
            format!(
                "{actor} changed the expiry of the token \"{}\" of {target} from {} to {}",
                s("name"),
                at("previous_expires_at"),
                at("expires_at")
            )
        }
        A::TokenRotated => match d.get("previous_expires_at").and_then(|v| v.as_i64()) {
            Some(until) => format!(
                "{actor} rotated the token \"{}\" of {target} (the previous value works until {})",
                s("name"),
                crate::time_fmt::exact_utc(until)
            ),
            None => format!("{actor} rotated the token \"{}\" of {target} (the previous value was revoked)", s("name")),
        },
        A::TokenRefused => {
            let reason = s("reason").replace("revoked:", "revoked (").replace('_', " ");
            let reason = if reason.contains('(') { format!("{reason})") } else { reason };
            match d.get("token").and_then(|v| v.as_str()) {
                Some(token) => format!("{target} used the refused token \"{token}\": {reason}{times}"),
                None => format!("{target} used a refused token: {reason}{times}"),
            }
        }
        A::ApplicationRateLimited => {
            let limit = match s("limit").as_str() {
                "per_hour" => {
                    format!("its hourly quota of {} requests", d.get("per_hour").and_then(|v| v.as_i64()).unwrap_or(0))
                }
                _ => format!(
                    "its limit of {} requests a second",
                    d.get("per_second").and_then(|v| v.as_i64()).unwrap_or(0)
                ),
            };
            format!("{target} was refused for going over {limit}{times}")
        }
        A::ApplicationScopeRefused => {
            let asked = match s("requested").as_str() {
                "" => "nothing".to_owned(),
                r => format!("\"{r}\""),
            };
            format!("{target} was refused a token ({}): it asked for {asked}{times}", s("error"))
        }
        A::TokenEvicted => format!(
            "{target} reached its cap of {} valid tokens: its oldest token was revoked for a new one{times}",
            d.get("cap").and_then(|v| v.as_i64()).unwrap_or(0)
        ),
        A::ClientAuthenticationFailed => {
            let client = match &e.target {
                Some(name) => format!("{name} ({})", s("client_id")),
                None => s("client_id"),
            };
            format!("Failed client authentication for {client}: {}{times}", s("reason").replace('_', " "))
        }
        A::AdminSignIn => format!("{actor} signed in"),
        A::AdminSignInFailed if s("via") == "password_change" => {
            format!("{actor} gave a wrong current password when changing their password")
        }
        A::AdminSignInFailed => format!("Failed sign-in as \"{}\"", s("username")),
        A::AdminSignOut => format!("{actor} signed out"),
        A::AdminOwnerCreated => format!("{actor} created the owner account through the setup link"),
        A::AdminCreated => format!("{actor} added the administrator {target} as {}", s("role")),
        A::AdminRoleChanged => format!("{actor} made {target} {}", s("role")),
        A::AdminRemoved => format!("{actor} removed the administrator {target}"),
        A::AdminPasswordReset => format!("{actor} set a new password for {target}"),
        A::AdminPasswordChanged => format!("{actor} changed their password"),
        A::ScopeCreated => format!("{actor} added the scope {target}"),
        A::ScopeDeleted => format!("{actor} deleted the scope {target}"),
        A::ScopeAttached => match d.get("resource_server").and_then(|v| v.as_str()) {
            Some(server) => format!("{actor} attached the scope {target} to the resource server {server}"),
            None => format!("{actor} detached the scope {target} from its resource server"),
        },
        A::ResourceServerCreated => format!("{actor} added the resource server {target} ({})", s("identifier")),
        A::ResourceServerUpdated => format!("{actor} renamed the resource server {} to {target}", s("previous_name")),
        A::ResourceServerDeleted => format!("{actor} deleted the resource server {target}"),
        A::SigningKeyCreated => {
            format!(
                "{actor} created the {} signing key {target}, signing from {}",
                s("algorithm"),
                s("signs_from_text")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AuditEventId;

    fn ev(action: &str, details: serde_json::Value) -> AuditEventView {
        AuditEventView {
            id: AuditEventId(1),
            at: 0,
            actor: "alice".into(),
            action: action.into(),
            target: Some("billing-sync".into()),
            client_ip: None,
            details,
            application_id: None,
        }
    }

    #[test]
    fn refusals_name_the_application_and_the_token() {
        let e =
            ev("client.authentication_failed", serde_json::json!({"client_id": "kgc_abc", "reason": "wrong_secret"}));
        assert_eq!(describe(&e), "Failed client authentication for billing-sync (kgc_abc): wrong secret");
        let unknown = AuditEventView {
            target: None,
            ..ev("client.authentication_failed", serde_json::json!({"client_id": "kgc_zz", "reason": "unknown_client"}))
        };
        assert_eq!(describe(&unknown), "Failed client authentication for kgc_zz: unknown client");
        let e = ev("token.refused", serde_json::json!({"reason": "expired", "token": "deploy"}));
        assert_eq!(describe(&e), "billing-sync used the refused token \"deploy\": expired");
        let e = ev("token.revoked", serde_json::json!({"token": "deploy", "token_name": "deploy"}));
        assert_eq!(describe(&e), "alice revoked the token \"deploy\" of billing-sync");
        let e = ev("token.revoked", serde_json::json!({"token": "kgt_AbCdEfGh"}));
        assert_eq!(describe(&e), "alice revoked a token of billing-sync");
    }

    #[test]
    fn newly_audited_failures_read_as_sentences() {
        let e =
            ev("application.rate_limited", serde_json::json!({"limit": "per_second", "per_second": 20, "count": 7}));
        assert_eq!(describe(&e), "billing-sync was refused for going over its limit of 20 requests a second (7 times)");
        let e = ev("application.rate_limited", serde_json::json!({"limit": "per_hour", "per_hour": 15000, "count": 1}));
        assert_eq!(describe(&e), "billing-sync was refused for going over its hourly quota of 15000 requests");
        let e =
            ev("application.scope_refused", serde_json::json!({"error": "invalid_scope", "requested": "audit:write"}));
        assert_eq!(describe(&e), "billing-sync was refused a token (invalid_scope): it asked for \"audit:write\"");
        let e = ev("token.evicted", serde_json::json!({"cap": 30, "count": 2}));
        assert_eq!(
            describe(&e),
            "billing-sync reached its cap of 30 valid tokens: its oldest token was revoked for a new one (2 times)"
        );
    }

    #[test]
    fn sentences() {
        assert_eq!(
            describe(&ev("application.secret_regenerated", serde_json::json!({"tokens_revoked": 3}))),
            "alice regenerated the secret of billing-sync (3 token(s) revoked)"
        );
        assert_eq!(
            describe(&ev("token.refused", serde_json::json!({"reason": "revoked:secret_regenerated", "count": 4}))),
            "billing-sync used a refused token: revoked (secret regenerated) (4 times)"
        );
        assert_eq!(
            describe(&ev("token.refused", serde_json::json!({"reason": "expired", "count": 1}))),
            "billing-sync used a refused token: expired"
        );
    }
}
