//! Audit events as sentences a person reads: "alice regenerated the secret
//! of billing-sync".

use crate::model::AuditEventView;

pub fn describe(e: &AuditEventView) -> String {
    let actor = e.actor.as_str();
    let target = e.target.as_deref().unwrap_or("an application");
    let d = &e.details;
    let count = d.get("count").and_then(|c| c.as_i64()).filter(|c| *c > 1);
    let times = count.map(|c| format!(" ({c} times)")).unwrap_or_default();
    let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    match e.action.as_str() {
        "application.created" => format!("{actor} created the application {target}"),
        "application.updated" => format!("{actor} changed the settings of {target}"),
        "application.enabled" => format!("{actor} enabled {target}"),
        "application.disabled" => format!("{actor} disabled {target}"),
        "application.deleted" => format!("{actor} deleted the application {target}"),
        "application.secret_regenerated" => {
            let n = d.get("tokens_revoked").and_then(|v| v.as_i64()).unwrap_or(0);
            format!("{actor} regenerated the secret of {target} ({n} token(s) revoked)")
        }
        "application.access_refused" => {
            let missing = d
                .get("missing_scopes")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            format!("{actor} was refused {} on {target}: its token lacks {missing}", s("operation").replace('_', " "))
        }
        "token.minted" => format!("{actor} created the token \"{}\" for {target}", s("name")),
        "token.revoked" => format!("{actor} revoked a token of {target}"),
        "token.refused" => {
            let reason = s("reason").replace("revoked:", "revoked (").replace('_', " ");
            let reason = if reason.contains('(') { format!("{reason})") } else { reason };
            format!("{target} used a refused token: {reason}{times}")
        }
        "client.authentication_failed" => {
            format!("Failed client authentication for {}: {}{times}", s("client_id"), s("reason").replace('_', " "))
        }
        "admin.sign_in" => format!("{actor} signed in"),
        "admin.sign_in_failed" => format!("Failed sign-in as \"{}\"", s("username")),
        "admin.sign_out" => format!("{actor} signed out"),
        "admin.owner_created" => format!("{actor} created the owner account through the setup link"),
        "admin.created" => format!("{actor} added the administrator {target} as {}", s("role")),
        "admin.role_changed" => format!("{actor} made {target} {}", s("role")),
        "admin.removed" => format!("{actor} removed the administrator {target}"),
        "scope.created" => format!("{actor} added the scope {target}"),
        other => format!("{actor}: {other} {target}"),
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
        }
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
