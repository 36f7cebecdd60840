//! Lifecycle alerts: named tokens about to expire, overlaps about to end,
//! applications gone dormant. Each fires once per thing and threshold, is
//! audited, and so reaches the webhooks that want it.

use crate::audit_action::AuditAction;
use crate::error::CoreError;
use crate::store::{ActorKind, AuditRecord, Store};
use serde_json::json;

/// Checks everything once at `now`; returns how many alerts fired. Safe to
/// run on every instance at once: the first to mark an alert fires it.
pub async fn fire_due_alerts(store: &Store, now: i64, dormant_after_days: i64) -> Result<usize, CoreError> {
    let attention = store.needs_attention(now, dormant_after_days).await?;
    let mut fired = 0;
    for t in &attention.expiring_tokens {
        // Keyed by the expiry too: a token given a new expiry can warn again.
        let threshold = format!("7d:{}", t.expires_at);
        let record = AuditRecord::new(now, ActorKind::System, AuditAction::TokenExpiring)
            .on_application(t.application_id, &t.application_name)
            .details(json!({
                "token_id": t.token_id.0,
                "name": t.name,
                "expires_at": t.expires_at,
                "expires_in": crate::time_fmt::relative(t.expires_at, now),
            }));
        fired += usize::from(fire_once(store, "token.expiring", t.token_id.0, &threshold, &record).await?);
    }
    for s in &attention.ending_overlaps {
        let threshold = format!("24h:{}", s.expires_at);
        let record = AuditRecord::new(now, ActorKind::System, AuditAction::SecretExpiring)
            .on_application(s.application_id, &s.application_name)
            .details(json!({
                "secret_id": s.secret_id.0,
                "expires_at": s.expires_at,
                "expires_in": crate::time_fmt::relative(s.expires_at, now),
            }));
        fired += usize::from(fire_once(store, "secret.expiring", s.secret_id.0, &threshold, &record).await?);
    }
    for a in &attention.dormant_applications {
        // Once per dormancy: not again until the application is used after
        // the last warning (a last use that moves back, as when old tokens
        // are pruned, does not count as new).
        let last_active = a.last_used_at.unwrap_or(a.created_at);
        if store.alert_last_fired("application.dormant", a.application_id.0).await?.is_some_and(|f| f >= last_active) {
            continue;
        }
        let threshold = format!("dormant:{last_active}");
        let record = AuditRecord::new(now, ActorKind::System, AuditAction::ApplicationDormant)
            .on_application(a.application_id, &a.application_name)
            .details(json!({ "days": dormant_after_days, "last_used_at": a.last_used_at }));
        fired += usize::from(fire_once(store, "application.dormant", a.application_id.0, &threshold, &record).await?);
    }
    Ok(fired)
}

async fn fire_once(
    store: &Store,
    kind: &str,
    subject: i64,
    threshold: &str,
    record: &AuditRecord,
) -> Result<bool, CoreError> {
    let mut tx = store.write().await?;
    if !tx.mark_alert_fired(kind, subject, threshold, record.at).await? {
        return Ok(false);
    }
    tx.record_audit(record).await?;
    tx.commit().await?;
    Ok(true)
}
