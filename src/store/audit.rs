//! The audit log.

use super::{on_pool, on_tx, Db, Page, Store, Tx};
use crate::audit_action::AuditAction;
use crate::error::CoreError;
use crate::model::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    Administrator,
    Application,
    Anonymous,
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Administrator => "administrator",
            ActorKind::Application => "application",
            ActorKind::Anonymous => "anonymous",
            ActorKind::System => "system",
        }
    }
}

/// One audit event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub at: i64,
    pub actor_kind: ActorKind,
    pub actor_id: Option<i64>,
    pub actor_name: Option<String>,
    pub action: AuditAction,
    pub target_kind: Option<&'static str>,
    pub target_id: Option<i64>,
    pub target_name: Option<String>,
    pub application_id: Option<ApplicationId>,
    pub client_ip: Option<String>,
    pub details: serde_json::Value,
}

impl AuditRecord {
    pub fn new(at: i64, actor_kind: ActorKind, action: AuditAction) -> Self {
        AuditRecord {
            at,
            actor_kind,
            actor_id: None,
            actor_name: None,
            action,
            target_kind: None,
            target_id: None,
            target_name: None,
            application_id: None,
            client_ip: None,
            details: serde_json::Value::Object(Default::default()),
        }
    }
    pub fn by_admin(at: i64, admin: &AdminView, action: AuditAction) -> Self {
        let mut r = Self::new(at, ActorKind::Administrator, action);
        r.actor_id = Some(admin.id.0);
        r.actor_name = Some(admin.username.clone());
        r
    }
    pub fn on_application(mut self, id: ApplicationId, name: &str) -> Self {
        self.target_kind = Some("application");
        self.target_id = Some(id.0);
        self.target_name = Some(name.to_owned());
        self.application_id = Some(id);
        self
    }
    pub fn on(mut self, kind: &'static str, id: Option<i64>, name: &str) -> Self {
        self.target_kind = Some(kind);
        self.target_id = id;
        self.target_name = Some(name.to_owned());
        self
    }
    pub fn from_ip(mut self, ip: Option<String>) -> Self {
        self.client_ip = ip;
        self
    }
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
    /// Adds one field to the details.
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        if let serde_json::Value::Object(map) = &mut self.details {
            map.insert(key.to_owned(), value);
        }
        self
    }
}

/// The audit filter for every refusal of an application: refused token
/// uses and failed client authentications.
pub const REFUSALS_FILTER: &str = "refusals";

/// Filters of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub application_id: Option<ApplicationId>,
    /// Part of an application's name or client ID (case-insensitive): its
    /// events, and those of deleted applications whose name matched.
    pub application_match: Option<String>,
    /// An exact action (`token.refused`) or a family (`token`).
    pub action: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub page: i64,
    pub per_page: i64,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    actor_kind: String,
    actor_name: Option<String>,
    action: String,
    target_name: Option<String>,
    client_ip: Option<String>,
    details: String,
    live_application_id: Option<i64>,
}

impl From<AuditRow> for AuditEventView {
    fn from(r: AuditRow) -> Self {
        AuditEventView {
            id: AuditEventId(r.id),
            at: r.at,
            actor: r.actor_name.unwrap_or(r.actor_kind),
            action: r.action,
            target: r.target_name,
            client_ip: r.client_ip,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            application_id: r.live_application_id.map(ApplicationId),
        }
    }
}

/// An event's columns, and the id of the application it concerns while
/// that application exists (created before the event: ids can be reused).
const AUDIT_COLUMNS: &str = "e.id, e.at, e.actor_kind, e.actor_name, e.action, e.target_name, e.client_ip, e.details, \
     (SELECT a.id FROM applications a WHERE a.id = e.application_id AND a.created_at <= e.at) AS live_application_id";

const INSERT: &str = "INSERT INTO audit_events (at, actor_kind, actor_id, actor_name, action, target_kind, target_id, \
     target_name, application_id, client_ip, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id";

/// Binds an event to [`INSERT`]. Every text in it is bounded here, whoever
/// wrote it, so no request can grow the log by more than a few KiB.
macro_rules! bind_event {
    ($query:expr, $r:expr) => {{
        let r: &AuditRecord = $r;
        let bound = |s: &Option<String>| s.as_deref().map(|s| bounded_text(s, MAX_AUDIT_TEXT_LEN));
        $query
            .bind(r.at)
            .bind(r.actor_kind.as_str())
            .bind(r.actor_id)
            .bind(bound(&r.actor_name))
            .bind(r.action.as_str())
            .bind(r.target_kind)
            .bind(r.target_id)
            .bind(bound(&r.target_name))
            .bind(r.application_id.map(|a| a.0))
            .bind(bound(&r.client_ip))
            .bind(bounded_json(&r.details).to_string())
    }};
}

/// What a webhook receives of an audit event: the event as the log
/// holds it (never a secret or a token: the log holds none).
fn webhook_data(id: i64, r: &AuditRecord) -> serde_json::Value {
    let bound = |s: &Option<String>| s.as_deref().map(|s| bounded_text(s, MAX_AUDIT_TEXT_LEN));
    serde_json::json!({
        "id": id,
        "action": r.action.as_str(),
        "at": r.at,
        "actor": { "kind": r.actor_kind.as_str(), "id": r.actor_id, "name": bound(&r.actor_name) },
        "target": { "kind": r.target_kind, "id": r.target_id, "name": bound(&r.target_name) },
        "application_id": r.application_id.map(|a| a.0),
        "client_ip": bound(&r.client_ip),
        "details": bounded_json(&r.details),
    })
}

impl Tx {
    /// Records the audit event of the change this transaction makes, and
    /// queues it for every webhook that wants it, in the same transaction.
    pub async fn record_audit(&mut self, r: &AuditRecord) -> Result<AuditEventId, CoreError> {
        let id: i64 = on_tx!(self, |c| bind_event!(sqlx::query_scalar(INSERT), r).fetch_one(c).await?);
        let payload = crate::webhook::payload(r.action.as_str(), r.at, webhook_data(id, r));
        let queued = self
            .enqueue_event(r.action.as_str(), r.action.family(), &payload, &crate::webhook::new_message_id(), r.at)
            .await?;
        self.deliveries_queued += queued;
        Ok(AuditEventId(id))
    }
}

impl Store {
    /// Records an event that goes with no change (a refusal, a sign-in
    /// failure, a folded repeat), with its webhook deliveries.
    pub async fn record_audit(&self, r: &AuditRecord) -> Result<AuditEventId, CoreError> {
        let mut tx = self.write().await?;
        let id = tx.record_audit(r).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Sets the `count` of de-duplicated audit events, in one transaction.
    pub async fn update_audit_counts(&self, counts: &[(i64, i64)]) -> Result<(), CoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        match &self.db {
            Db::Sqlite { writer, .. } => {
                let mut tx = writer.begin().await?;
                for (id, count) in counts {
                    sqlx::query("UPDATE audit_events SET details = json_set(details, '$.count', $1) WHERE id = $2")
                        .bind(count)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            Db::Postgres { pool, .. } => {
                let mut tx = pool.begin().await?;
                for (id, count) in counts {
                    sqlx::query(
                        "UPDATE audit_events SET details = jsonb_set(details::jsonb, '{count}', to_jsonb($1::bigint))::text \
                         WHERE id = $2",
                    )
                    .bind(count)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    pub async fn recent_audit_events(&self, limit: i64) -> Result<Vec<AuditEventView>, CoreError> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events e ORDER BY id DESC LIMIT $1");
        let rows: Vec<AuditRow> =
            on_pool!(self, |p| sqlx::query_as(&sql).bind(limit.clamp(1, 500)).fetch_all(p).await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Audit events, newest first, filtered and paged.
    pub async fn list_audit_events(&self, q: &AuditQuery) -> Result<Page<AuditEventView>, CoreError> {
        let per_page = q.per_page.clamp(1, 500);
        let page = q.page.max(1);
        let refusals = AuditAction::REFUSALS.iter().map(|a| format!("'{}'", a.as_str())).collect::<Vec<_>>().join(", ");
        let filter = format!(
            "WHERE ($1 IS NULL OR application_id = $1) \
             AND ($2 IS NULL OR action = $2 OR substr(action, 1, length($2) + 1) = $2 || '.' \
                  OR ($2 = 'refusals' AND action IN ({refusals}))) \
             AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4) \
             AND ($5 IS NULL OR application_id IN (SELECT id FROM applications \
                    WHERE lower(name) LIKE $5 ESCAPE '\\' OR lower(client_id) LIKE $5 ESCAPE '\\') \
                  OR (target_kind = 'application' AND lower(target_name) LIKE $5 ESCAPE '\\'))"
        );
        let pattern = q.application_match.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(|s| {
            let escaped = s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        let total: i64 = on_pool!(self, |p| sqlx::query_scalar(&format!("SELECT COUNT(*) FROM audit_events {filter}"))
            .bind(q.application_id.map(|a| a.0))
            .bind(&q.action)
            .bind(q.since)
            .bind(q.until)
            .bind(&pattern)
            .fetch_one(p)
            .await?);
        let rows: Vec<AuditRow> = on_pool!(self, |p| sqlx::query_as(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events e {filter} ORDER BY id DESC LIMIT $6 OFFSET $7"
        ))
        .bind(q.application_id.map(|a| a.0))
        .bind(&q.action)
        .bind(q.since)
        .bind(q.until)
        .bind(&pattern)
        .bind(per_page)
        .bind((page - 1).saturating_mul(per_page))
        .fetch_all(p)
        .await?);
        let items = rows.into_iter().map(Into::into).collect();
        Ok(Page { items, total, page, per_page })
    }
}
