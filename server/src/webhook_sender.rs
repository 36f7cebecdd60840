//! Sends queued webhook deliveries: claims what is due, POSTs each with
//! the Standard Webhooks headers, and records every attempt. Outgoing
//! requests connect within 5 s, finish within 10 s, follow no redirect and
//! read at most a few KiB of the answer.

use keygate::jwt::KeyEncryptionKey;
use keygate::model::AttemptView;
use keygate::store::Store;
use keygate::usecase::webhooks::{self, DueDelivery};
use keygate::CoreError;
use std::time::{Duration, Instant};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer's body kept in the log.
const EXCERPT_BYTES: usize = 512;
/// The most of an answer's body read at all.
const READ_BYTES: usize = 4096;
/// Most deliveries in flight at once (each to a different webhook).
const IN_FLIGHT: usize = 32;
/// How often the sender looks for deliveries queued by other instances
/// (or made due by the back-off).
const POLL: Duration = Duration::from_secs(1);

/// The client webhooks are sent with.
pub fn http_client() -> Result<reqwest::Client, CoreError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Keygate-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CoreError::Internal(format!("cannot build the webhook client: {e}")))
}

/// Claims one batch of deliveries due at `now`, sends them concurrently
/// and records each attempt; returns how many were attempted. One batch
/// per call, so every claim and signature carries a fresh `now`.
pub async fn deliver_due(
    store: &Store,
    kek: &KeyEncryptionKey,
    client: &reqwest::Client,
    now: i64,
) -> Result<usize, CoreError> {
    let due = webhooks::claim_due(store, kek, now, IN_FLIGHT as i64).await?;
    let attempted = due.len();
    futures_util::future::join_all(due.into_iter().map(|d| send_and_record(store, client, d, now))).await;
    Ok(attempted)
}

async fn send_and_record(store: &Store, client: &reqwest::Client, d: DueDelivery, now: i64) {
    let (attempt, ok) = send(client, &d, now).await;
    match webhooks::record_attempt(store, &d, attempt, ok).await {
        Ok(Some(state)) => tracing::info!(
            delivery = d.id,
            webhook = d.webhook_id.0,
            event = %d.event_type,
            state = state.as_str(),
            "webhook attempt"
        ),
        Ok(None) => tracing::warn!(delivery = d.id, "a webhook attempt outlived its claim; not recorded"),
        Err(e) => tracing::error!(error = %e, delivery = d.id, "could not record a webhook attempt"),
    }
}

/// One attempt: the status and the start of the body, or why there was no answer.
async fn send(client: &reqwest::Client, d: &DueDelivery, at: i64) -> (AttemptView, bool) {
    let started = Instant::now();
    let result = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.message_id)
        .header("webhook-timestamp", d.timestamp.to_string())
        .header("webhook-signature", &d.signature)
        .body(d.body.clone())
        .send()
        .await;
    let (status, error, excerpt) = match result {
        Ok(mut response) => {
            let status = response.status();
            let mut body = Vec::new();
            while body.len() < READ_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            body.truncate(EXCERPT_BYTES);
            let excerpt = keygate::bounded_text(&String::from_utf8_lossy(&body), EXCERPT_BYTES);
            (Some(i64::from(status.as_u16())), None, excerpt)
        }
        Err(e) => (None, Some(describe(&e)), String::new()),
    };
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    let attempt = AttemptView {
        at,
        duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        status,
        error,
        response_excerpt: excerpt,
    };
    (attempt, ok)
}

/// Why a request got no answer, in words (never the URL's query).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out (connect 5 s, total 10 s)".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_redirect() {
        "redirects are not followed".into()
    } else {
        "the request failed".into()
    }
}

/// The sender's loop: claims what is due while sends are free, each send
/// running on its own (a slow receiver never holds up another), and wakes
/// when this process queues a delivery, when a send finishes, and every
/// second for other instances' deliveries and retries coming due.
pub fn spawn(store: Store, kek: KeyEncryptionKey) -> Result<tokio::task::JoinHandle<()>, CoreError> {
    let client = http_client()?;
    let free = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let finished = std::sync::Arc::new(tokio::sync::Notify::new());
    Ok(tokio::spawn(async move {
        loop {
            let room = free.available_permits();
            let mut claimed = 0;
            if room > 0 {
                let now = crate::now();
                match webhooks::claim_due(&store, &kek, now, room as i64).await {
                    Ok(due) => {
                        claimed = due.len();
                        for d in due {
                            let Ok(permit) = free.clone().try_acquire_owned() else { break };
                            let (store, client, finished) = (store.clone(), client.clone(), finished.clone());
                            tokio::spawn(async move {
                                send_and_record(&store, &client, d, now).await;
                                drop(permit);
                                finished.notify_one();
                            });
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "claiming webhook deliveries failed; retrying"),
                }
            }
            if claimed > 0 {
                continue;
            }
            tokio::select! {
                _ = store.delivery_queued() => {}
                _ = finished.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }))
}
