//! Webhooks, their delivery queue and the log of attempts.

use super::{on_pool, on_tx, on_writer, Db, Store, Tx};
use crate::error::CoreError;
use crate::model::*;
use std::collections::HashMap;

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: i64,
    url: String,
    description: String,
    events: String,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
    pending: i64,
    failed: i64,
    last_delivered_at: Option<i64>,
}

impl From<WebhookRow> for WebhookView {
    fn from(r: WebhookRow) -> Self {
        WebhookView {
            id: WebhookId(r.id),
            url: r.url,
            description: r.description,
            events: r.events.split(' ').filter(|e| !e.is_empty()).map(str::to_owned).collect(),
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
            pending: r.pending,
            failed: r.failed,
            last_delivered_at: r.last_delivered_at,
        }
    }
}

const WEBHOOK_COLUMNS: &str = "w.id, w.url, w.description, w.events, w.enabled, w.created_at, w.updated_at, \
     (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'pending') AS pending, \
     (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'failed') AS failed, \
     (SELECT MAX(d.finished_at) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'delivered') \
     AS last_delivered_at";

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    webhook_id: i64,
    message_id: String,
    event_type: String,
    state: String,
    created_at: i64,
    next_attempt_at: Option<i64>,
    finished_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    delivery_id: i64,
    at: i64,
    duration_ms: i64,
    status: Option<i64>,
    error: Option<String>,
    response_excerpt: String,
}

/// A delivery claimed for an attempt, with what sending it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub webhook_id: i64,
    pub message_id: String,
    pub event_type: String,
    pub payload: String,
    pub attempts: i64,
    pub url: String,
    pub claimed_until: i64,
    #[sqlx(default)]
    pub secret_sealed: Vec<u8>,
}

/// `LIKE` pattern matching one space-delimited word exactly.
fn word_pattern(word: &str) -> String {
    let escaped = word.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("% {escaped} %")
}

/// How long a sender holds a claimed delivery before another may take it
/// (longer than the 10-second request timeout).
pub const CLAIM_SECONDS: i64 = 60;

impl Store {
    pub async fn list_webhooks(&self) -> Result<Vec<WebhookView>, CoreError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w ORDER BY w.id");
        let rows: Vec<WebhookRow> = on_pool!(self, |p| sqlx::query_as(&sql).fetch_all(p).await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn webhook(&self, id: WebhookId) -> Result<Option<WebhookView>, CoreError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.id = $1");
        let row: Option<WebhookRow> = on_pool!(self, |p| sqlx::query_as(&sql).bind(id.0).fetch_optional(p).await?);
        Ok(row.map(Into::into))
    }

    pub async fn require_webhook(&self, id: WebhookId) -> Result<WebhookView, CoreError> {
        self.webhook(id).await?.ok_or(CoreError::NotFound("webhook"))
    }

    /// A webhook's latest deliveries, newest first, each with its attempts.
    pub async fn deliveries(&self, webhook: WebhookId, limit: i64) -> Result<Vec<DeliveryView>, CoreError> {
        let limit = limit.clamp(1, 200);
        let rows: Vec<DeliveryRow> = on_pool!(self, |p| sqlx::query_as(
            "SELECT id, webhook_id, message_id, event_type, state, created_at, next_attempt_at, finished_at \
             FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2"
        )
        .bind(webhook.0)
        .bind(limit)
        .fetch_all(p)
        .await?);
        let attempts: Vec<AttemptRow> = on_pool!(self, |p| sqlx::query_as(
            "SELECT delivery_id, at, duration_ms, status, error, response_excerpt FROM webhook_attempts \
             WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2) \
             ORDER BY id"
        )
        .bind(webhook.0)
        .bind(limit)
        .fetch_all(p)
        .await?);
        let mut by_delivery: HashMap<i64, Vec<AttemptView>> = HashMap::new();
        for a in attempts {
            by_delivery.entry(a.delivery_id).or_default().push(AttemptView {
                at: a.at,
                duration_ms: a.duration_ms,
                status: a.status,
                error: a.error,
                response_excerpt: a.response_excerpt,
            });
        }
        Ok(rows
            .into_iter()
            .map(|r| DeliveryView {
                id: DeliveryId(r.id),
                webhook_id: WebhookId(r.webhook_id),
                message_id: r.message_id,
                event_type: r.event_type,
                state: DeliveryState::parse(&r.state).unwrap_or(DeliveryState::Pending),
                created_at: r.created_at,
                next_attempt_at: r.next_attempt_at,
                finished_at: r.finished_at,
                attempts: by_delivery.remove(&r.id).unwrap_or_default(),
            })
            .collect())
    }

    /// Deliveries waiting for an attempt, over every webhook (metrics).
    pub async fn pending_deliveries(&self) -> Result<i64, CoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'"
        )
        .fetch_one(p)
        .await?))
    }

    /// Claims up to `limit` deliveries due at `now` for this sender: each
    /// is held for [`CLAIM_SECONDS`], so several instances send each once.
    pub async fn claim_due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<ClaimedDelivery>, CoreError> {
        // The oldest due delivery of each webhook that has none in flight:
        // one at a time per receiver, in order, so a receiver that hangs
        // holds up only its own queue. The outer conditions repeat the
        // claimable ones: PostgreSQL re-checks those (not the subquery) on
        // a row another instance claimed meanwhile, and then skips it.
        const DUE: &str = "SELECT id FROM webhook_deliveries WHERE id IN ( \
               SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at, id) AS n \
                 FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
                 AND (claimed_until IS NULL OR claimed_until <= $1) \
                 AND webhook_id IN (SELECT id FROM webhooks WHERE enabled = TRUE) \
                 AND webhook_id NOT IN (SELECT webhook_id FROM webhook_deliveries WHERE claimed_until > $1)) AS due \
               WHERE n = 1) \
             AND state = 'pending' AND (claimed_until IS NULL OR claimed_until <= $1) \
             ORDER BY next_attempt_at, id LIMIT $3";
        const RETURNING: &str = "RETURNING {d}id, {d}webhook_id, {d}message_id, {d}event_type, {d}payload, \
             {d}attempts, {d}claimed_until, (SELECT url FROM webhooks w WHERE w.id = {d}webhook_id) AS url";
        let mut claimed: Vec<ClaimedDelivery> = match &self.db {
            // One writer at a time: the claim cannot race on SQLite.
            Db::Sqlite { writer, .. } => {
                sqlx::query_as(&format!(
                    "UPDATE webhook_deliveries SET claimed_until = $2 WHERE id IN ({DUE}) {}",
                    RETURNING.replace("{d}", "")
                ))
                .bind(now)
                .bind(now + CLAIM_SECONDS)
                .bind(limit)
                .fetch_all(writer)
                .await?
            }
            // The rows are locked once, in a materialised step, and rows
            // another instance holds are skipped, never waited for.
            Db::Postgres { pool, .. } => {
                sqlx::query_as(&format!(
                    "WITH due AS MATERIALIZED ({DUE} FOR UPDATE SKIP LOCKED) \
                     UPDATE webhook_deliveries AS d SET claimed_until = $2 FROM due WHERE d.id = due.id {}",
                    RETURNING.replace("{d}", "d.")
                ))
                .bind(now)
                .bind(now + CLAIM_SECONDS)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
        };
        for c in &mut claimed {
            c.secret_sealed = on_pool!(self, |p| sqlx::query_scalar::<_, Vec<u8>>(
                "SELECT secret_sealed FROM webhooks WHERE id = $1"
            )
            .bind(c.webhook_id)
            .fetch_optional(p)
            .await?
            .unwrap_or_default());
        }
        Ok(claimed)
    }

    /// Records one attempt and where the delivery stands after it, if the
    /// sender still holds its claim (`claimed_until` as claimed); `false`
    /// when it does not (the claim lapsed and another sender took over).
    pub async fn record_delivery_attempt(
        &self,
        delivery: i64,
        claimed_until: i64,
        attempt: &AttemptView,
        state: DeliveryState,
        attempts: i64,
        next_attempt_at: Option<i64>,
    ) -> Result<bool, CoreError> {
        let mut tx = self.write().await?;
        let finished = (state != DeliveryState::Pending).then_some(attempt.at);
        let updated = on_tx!(tx, |c| sqlx::query(
            "UPDATE webhook_deliveries SET state = $2, attempts = $3, next_attempt_at = $4, finished_at = $5, \
             claimed_until = NULL WHERE id = $1 AND claimed_until = $6"
        )
        .bind(delivery)
        .bind(state.as_str())
        .bind(attempts)
        .bind(next_attempt_at)
        .bind(finished)
        .bind(claimed_until)
        .execute(c)
        .await?
        .rows_affected());
        if updated == 0 {
            return Ok(false);
        }
        on_tx!(tx, |c| sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, at, duration_ms, status, error, response_excerpt) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(delivery)
        .bind(attempt.at)
        .bind(attempt.duration_ms)
        .bind(attempt.status)
        .bind(&attempt.error)
        .bind(&attempt.response_excerpt)
        .execute(c)
        .await?
        .rows_affected());
        tx.commit().await?;
        Ok(true)
    }

    /// Forgets finished deliveries (and their attempts) older than `before`.
    pub async fn prune_deliveries(&self, before: i64) -> Result<u64, CoreError> {
        Ok(on_writer!(self, |w| sqlx::query(
            "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND finished_at < $1"
        )
        .bind(before)
        .execute(w)
        .await?
        .rows_affected()))
    }
}

impl Tx {
    pub async fn insert_webhook(
        &mut self,
        url: &str,
        description: &str,
        events: &[String],
        secret_sealed: &[u8],
        now: i64,
    ) -> Result<WebhookId, CoreError> {
        let id: i64 = on_tx!(self, |c| sqlx::query_scalar(
            "INSERT INTO webhooks (url, description, events, secret_sealed, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, TRUE, $5, $5) RETURNING id"
        )
        .bind(url)
        .bind(description)
        .bind(events.join(" "))
        .bind(secret_sealed)
        .bind(now)
        .fetch_one(c)
        .await?);
        Ok(WebhookId(id))
    }

    pub async fn webhook(&mut self, id: WebhookId) -> Result<Option<WebhookView>, CoreError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.id = $1");
        let row: Option<WebhookRow> = on_tx!(self, |c| sqlx::query_as(&sql).bind(id.0).fetch_optional(c).await?);
        Ok(row.map(Into::into))
    }

    pub async fn update_webhook(
        &mut self,
        id: WebhookId,
        url: &str,
        description: &str,
        events: &[String],
        enabled: bool,
        now: i64,
    ) -> Result<(), CoreError> {
        let done = on_tx!(self, |c| {
            sqlx::query(
            "UPDATE webhooks SET url = $2, description = $3, events = $4, enabled = $5, updated_at = $6 WHERE id = $1"
        )
        .bind(id.0)
        .bind(url)
        .bind(description)
        .bind(events.join(" "))
        .bind(enabled)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
        });
        if done == 0 {
            return Err(CoreError::NotFound("webhook"));
        }
        Ok(())
    }

    pub async fn delete_webhook(&mut self, id: WebhookId) -> Result<bool, CoreError> {
        let done = on_tx!(self, |c| sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id.0)
            .execute(c)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Queues an event for every enabled webhook that wants it (by its
    /// action or its family), in this transaction.
    pub async fn enqueue_event(
        &mut self,
        event_type: &str,
        family: &str,
        payload: &str,
        message_id: &str,
        now: i64,
    ) -> Result<u64, CoreError> {
        Ok(on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, message_id, event_type, payload, created_at, state, attempts, \
             next_attempt_at) \
             SELECT id, $1, $2, $3, $4, 'pending', 0, $4 FROM webhooks WHERE enabled = TRUE \
             AND ((' ' || events || ' ') LIKE $5 ESCAPE '\\' OR (' ' || events || ' ') LIKE $6 ESCAPE '\\')"
        )
        .bind(message_id)
        .bind(event_type)
        .bind(payload)
        .bind(now)
        .bind(word_pattern(event_type))
        .bind(word_pattern(family))
        .execute(c)
        .await?
        .rows_affected()
        }))
    }

    /// Queues a delivery for one webhook, whatever events it wants (a test).
    pub async fn enqueue_for_webhook(
        &mut self,
        webhook: WebhookId,
        event_type: &str,
        payload: &str,
        message_id: &str,
        now: i64,
    ) -> Result<DeliveryId, CoreError> {
        let id: i64 = on_tx!(self, |c| {
            sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (webhook_id, message_id, event_type, payload, created_at, state, attempts, \
             next_attempt_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $5) RETURNING id"
        )
        .bind(webhook.0)
        .bind(message_id)
        .bind(event_type)
        .bind(payload)
        .bind(now)
        .fetch_one(c)
        .await?
        });
        Ok(DeliveryId(id))
    }

    /// Makes a delivery due now again (pending, its attempts kept).
    pub async fn retry_delivery(
        &mut self,
        webhook: WebhookId,
        delivery: DeliveryId,
        now: i64,
    ) -> Result<bool, CoreError> {
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $3, finished_at = NULL \
             WHERE id = $1 AND webhook_id = $2"
        )
        .bind(delivery.0)
        .bind(webhook.0)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected());
        Ok(done == 1)
    }
}
