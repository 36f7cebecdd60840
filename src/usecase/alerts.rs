//! Lifecycle alerts: named tokens about to expire, overlaps about to end,
//! applications gone dormant. Each fires once per thing and threshold, is
//! audited, and so reaches the webhooks that want it.

use crate::audit_action::AuditAction;
use crate::error::CoreError;
use crate::store::{ActorKind, AuditRecord, Store};
use serde_json::json;

/// At most this many alerts of each kind fire in one run; the rest are
/// still due on the next (a first run over thousands of dormant
/// applications stays a minute's worth of writes, not an hour's).
const ALERTS_PER_RUN: usize = 1_000;

/// Checks everything once at `now`; returns how many alerts fired. Safe to
/// run on every instance at once: the first to mark an alert fires it.
pub async fn fire_due_alerts(store: &Store, now: i64, dormant_after_days: i64) -> Result<usize, CoreError> {
    fire_due_alerts_up_to(store, now, dormant_after_days, ALERTS_PER_RUN).await
}

/// As `fire_due_alerts`, at most `per_kind` alerts of each kind.
pub(crate) async fn fire_due_alerts_up_to(
    store: &Store,
    now: i64,
    dormant_after_days: i64,
    per_kind: usize,
) -> Result<usize, CoreError> {
    let due = store.due_alerts(now, dormant_after_days, per_kind).await?;
    let mut fired = 0;
    for t in &due.expiring_tokens {
        // Keyed by the expiry too: a token given a new expiry can warn
        // again (the store's query matches this key).
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
    for s in &due.ending_overlaps {
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
    for a in &due.dormant_applications {
        let last_active = a.last_used_at.unwrap_or(a.created_at);
        let threshold = format!("dormant:{last_active}");
        let record = AuditRecord::new(now, ActorKind::System, AuditAction::ApplicationDormant)
            .on_application(a.application_id, &a.application_name)
            .details(json!({ "days": dormant_after_days, "last_used_at": a.last_used_at }));
        fired += usize::from(fire_once(store, "application.dormant", a.application_id.0, &threshold, &record).await?);
    }
    // An expiry alert fires at most 7 days before its expiry (the key holds
    // the expiry), so a mark 8 days old belongs to a token or overlap that
    // has ended: nothing reads it again, and the table stays small.
    store.forget_expiry_alerts(now - 8 * 86_400).await?;
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
