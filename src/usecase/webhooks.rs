//! Webhooks: add, change, remove, send a test event, retry a delivery;
//! and the sender's side: claim what is due, record each attempt.

use super::{Caller, Permission};
use crate::audit_action::AuditAction;
use crate::error::CoreError;
use crate::jwt::KeyEncryptionKey;
use crate::model::*;
use crate::store::{ClaimedDelivery, Store};
use crate::webhook::{self, WebhookSecret};
use serde_json::json;

const WRITE: Permission = Permission::Change("webhooks:write");

/// Webhook changes need `webhooks:write`; and since a webhook receives
/// audit events, a token that points one somewhere must be able to read
/// the audit log itself (`audit:read`), or it would read it through a
/// receiver of its own.
fn require_manager(caller: &Caller) -> Result<(), CoreError> {
    caller.require(WRITE)?;
    if matches!(caller.actor, super::Actor::Application { .. }) {
        caller.require(Permission::Change("audit:read"))?;
    }
    Ok(())
}

/// What a webhook is, as asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
}

impl WebhookSettings {
    fn validated(self) -> Result<Self, CoreError> {
        let description = self.description.trim().to_owned();
        if description.chars().count() > webhook::MAX_DESCRIPTION_LEN
            || description.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(CoreError::invalid(
                "description",
                "a description has at most 500 characters, no control characters",
            ));
        }
        Ok(WebhookSettings {
            url: webhook::validate_url(&self.url)?,
            events: webhook::validate_events(&self.events)?,
            description,
        })
    }
}

/// A change to a webhook; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// Adds a webhook; its signing secret is returned here and never again.
pub async fn create_webhook(
    store: &Store,
    caller: &Caller,
    kek: &KeyEncryptionKey,
    settings: WebhookSettings,
) -> Result<(WebhookView, WebhookSecret), CoreError> {
    require_manager(caller)?;
    let s = settings.validated()?;
    let secret = WebhookSecret::generate();
    let sealed = kek.seal_secret(secret.expose().as_bytes())?;
    let mut tx = store.write().await?;
    let id = tx.insert_webhook(&s.url, &s.description, &s.events, &sealed, caller.now).await?;
    tx.record_audit(
        &caller
            .record(AuditAction::WebhookCreated)
            .on("webhook", Some(id.0), &webhook::shown_url(&s.url))
            .with("events", json!(s.events)),
    )
    .await?;
    let view = tx.webhook(id).await?.ok_or(CoreError::NotFound("webhook"))?;
    tx.commit().await?;
    Ok((view, secret))
}

pub async fn update_webhook(
    store: &Store,
    caller: &Caller,
    id: WebhookId,
    change: WebhookChange,
) -> Result<WebhookView, CoreError> {
    require_manager(caller)?;
    let mut tx = store.write().await?;
    let current = tx.webhook(id).await?.ok_or(CoreError::NotFound("webhook"))?;
    let s = WebhookSettings {
        url: change.url.unwrap_or(current.url.clone()),
        events: change.events.unwrap_or(current.events.clone()),
        description: change.description.unwrap_or(current.description.clone()),
    }
    .validated()?;
    let enabled = change.enabled.unwrap_or(current.enabled);
    tx.update_webhook(id, &s.url, &s.description, &s.events, enabled, caller.now).await?;
    let changed: Vec<&str> = [
        ("url", s.url != current.url),
        ("events", s.events != current.events),
        ("description", s.description != current.description),
        ("enabled", enabled != current.enabled),
    ]
    .into_iter()
    .filter(|(_, c)| *c)
    .map(|(f, _)| f)
    .collect();
    if !changed.is_empty() {
        tx.record_audit(
            &caller
                .record(AuditAction::WebhookUpdated)
                .on("webhook", Some(id.0), &webhook::shown_url(&s.url))
                .with("changed", json!(changed)),
        )
        .await?;
    }
    let view = tx.webhook(id).await?.ok_or(CoreError::NotFound("webhook"))?;
    tx.commit().await?;
    Ok(view)
}

/// Removes a webhook with its queued deliveries and their log.
pub async fn delete_webhook(store: &Store, caller: &Caller, id: WebhookId) -> Result<WebhookView, CoreError> {
    require_manager(caller)?;
    let mut tx = store.write().await?;
    let current = tx.webhook(id).await?.ok_or(CoreError::NotFound("webhook"))?;
    tx.delete_webhook(id).await?;
    tx.record_audit(&caller.record(AuditAction::WebhookDeleted).on(
        "webhook",
        Some(id.0),
        &webhook::shown_url(&current.url),
    ))
    .await?;
    tx.commit().await?;
    Ok(current)
}

/// Queues a `webhook.test` event for this webhook alone.
pub async fn send_test_event(store: &Store, caller: &Caller, id: WebhookId) -> Result<DeliveryId, CoreError> {
    require_manager(caller)?;
    let mut tx = store.write().await?;
    let hook = tx.webhook(id).await?.ok_or(CoreError::NotFound("webhook"))?;
    let data = json!({ "webhook_id": hook.id, "message": "A test event from Keygate", "sent_by": caller.via() });
    let payload = webhook::payload(webhook::TEST_EVENT, caller.now, data);
    let delivery =
        tx.enqueue_for_webhook(id, webhook::TEST_EVENT, &payload, &webhook::new_message_id(), caller.now).await?;
    tx.commit().await?;
    store.wake_sender();
    Ok(delivery)
}

/// Makes a delivery due now again, whatever its state.
pub async fn retry_delivery(
    store: &Store,
    caller: &Caller,
    id: WebhookId,
    delivery: DeliveryId,
) -> Result<(), CoreError> {
    require_manager(caller)?;
    let mut tx = store.write().await?;
    if !tx.retry_delivery(id, delivery, caller.now).await? {
        return Err(CoreError::NotFound("delivery"));
    }
    tx.commit().await?;
    store.wake_sender();
    Ok(())
}

/// A delivery ready to send: where, what, and its headers' values.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub webhook_id: WebhookId,
    pub url: String,
    pub event_type: String,
    pub body: String,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    pub message_id: String,
    pub timestamp: i64,
    pub signature: String,
    pub attempts_before: i64,
    /// The claim this sender holds; an attempt is recorded only under it.
    pub claimed_until: i64,
}

/// Claims the deliveries due at `now` and signs each for sending now. A
/// delivery whose secret cannot be opened (another key file) fails its
/// attempt with that reason instead of being sent unsigned.
pub async fn claim_due(
    store: &Store,
    kek: &KeyEncryptionKey,
    now: i64,
    limit: i64,
) -> Result<Vec<DueDelivery>, CoreError> {
    let claimed = store.claim_due_deliveries(now, limit).await?;
    let mut due = Vec::with_capacity(claimed.len());
    for c in claimed {
        let secret = kek
            .open_secret(&c.secret_sealed)
            .and_then(|plain| String::from_utf8(plain).ok())
            .and_then(WebhookSecret::from_stored);
        let c_claim = c.claimed_until;
        let ClaimedDelivery { id, webhook_id, message_id, event_type, payload, attempts, url, .. } = c;
        let Some(secret) = secret else {
            let attempt = AttemptView {
                at: now,
                duration_ms: 0,
                status: None,
                error: Some("the signing secret cannot be opened with this server's key file".into()),
                response_excerpt: String::new(),
            };
            store.record_delivery_attempt(id, c_claim, &attempt, DeliveryState::Failed, attempts + 1, None).await?;
            continue;
        };
        due.push(DueDelivery {
            id,
            webhook_id: WebhookId(webhook_id),
            signature: secret.sign(&message_id, now, &payload),
            url,
            event_type,
            body: payload,
            message_id,
            timestamp: now,
            attempts_before: attempts,
            claimed_until: c_claim,
        });
    }
    Ok(due)
}

/// Records an attempt: delivered on success; else due again after the
/// back-off, or failed for good once the schedule is spent. `None` when the
/// claim had lapsed and another sender took the delivery over (its own
/// attempt is the one recorded).
pub async fn record_attempt(
    store: &Store,
    delivery: &DueDelivery,
    attempt: AttemptView,
    succeeded: bool,
) -> Result<Option<DeliveryState>, CoreError> {
    let attempts = delivery.attempts_before + 1;
    let (state, next) = if succeeded {
        (DeliveryState::Delivered, None)
    } else {
        match webhook::next_attempt_at(attempts, attempt.at) {
            Some(next) => (DeliveryState::Pending, Some(next)),
            None => (DeliveryState::Failed, None),
        }
    };
    let recorded =
        store.record_delivery_attempt(delivery.id, delivery.claimed_until, &attempt, state, attempts, next).await?;
    Ok(recorded.then_some(state))
}
