//! Prometheus metrics: `keygate serve --metrics-addr ADDR` serves
//! `GET /metrics` on a listener of its own (off by default, so the public
//! listener never exposes them). Recorded through the `metrics` facade
//! and rendered by `metrics-exporter-prometheus`; without a recorder every
//! call here is a no-op.
//!
//! No label names an application (the console's charts do that); labels
//! are bounded: endpoint families, status classes, refusal reasons.

use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use keygate::activity::ActivityKind;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Request latency buckets, in seconds (sub-millisecond to 10 s).
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Issuer batch sizes (requests per transaction).
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());

tokio::task_local! {
    /// The endpoint label of the request being answered, for refusals.
    static ENDPOINT: &'static str;
}

/// Installs the process's recorder (once; later calls return the same
/// handle).
pub fn install() -> Result<PrometheusHandle, String> {
    let _one_at_a_time = INSTALLING.lock().map_err(|_| "metrics installation panicked".to_owned())?;
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("keygate_http_request_duration_seconds".into()), &LATENCY_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full("keygate_issuer_batch_size".into()), &BATCH_BUCKETS))
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("could not install the metrics recorder: {e}"))?;
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("keygate_http_requests_total", "HTTP requests answered, by endpoint and status class");
    describe_histogram!(
        "keygate_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer a request (to its headers), by endpoint"
    );
    describe_counter!("keygate_tokens_issued_total", "Access tokens issued by the token endpoint, by format");
    describe_counter!("keygate_token_uses_total", "Successful token uses (API, forward-auth, introspection)");
    describe_counter!("keygate_refusals_total", "Refused requests, by endpoint and reason");
    describe_histogram!("keygate_issuer_batch_size", "Token requests committed in one issuer transaction");
    describe_gauge!("keygate_issuer_queue_depth", "Token requests waiting behind the issuer's current batch");
    describe_gauge!("keygate_last_used_pending", "Credential uses held in memory for the next last-used flush");
    describe_gauge!("keygate_activity_pending", "Activity counts held in memory for the next flush");
    describe_gauge!("keygate_webhook_deliveries_pending", "Webhook deliveries waiting for an attempt (all instances)");
    describe_gauge!("keygate_db_pool_connections", "Database pool connections, by state (idle, in_use)");
}

/// A token issued, used or refused (the activity counter's events).
pub fn activity(kind: ActivityKind) {
    match kind {
        // Issuance is counted with its format in `token_issued`.
        ActivityKind::Issued => {}
        ActivityKind::Used => metrics::counter!("keygate_token_uses_total").increment(1),
        ActivityKind::Refused(reason) => refusal(reason.as_str()),
    }
}

/// A refusal; `reason` is one of a fixed set, the endpoint that of the
/// request being answered.
pub fn refusal(reason: &'static str) {
    let endpoint = ENDPOINT.try_with(|e| *e).unwrap_or("other");
    metrics::counter!("keygate_refusals_total", "endpoint" => endpoint, "reason" => reason).increment(1);
}

pub fn token_issued(format: keygate::TokenFormat) {
    metrics::counter!("keygate_tokens_issued_total", "format" => format.as_str()).increment(1);
}

/// The endpoint label of a path: a fixed set, never an id or a name.
pub fn endpoint_of(path: &str) -> &'static str {
    const EXACT: [&str; 8] = [
        "/oauth2/token",
        "/oauth2/introspect",
        "/oauth2/revoke",
        "/oauth2/jwks",
        "/oauth2/forward-auth",
        "/.well-known/oauth-authorization-server",
        "/healthz",
        "/api/v1/openapi.json",
    ];
    if let Some(e) = EXACT.iter().find(|e| **e == path) {
        return e;
    }
    const API: [&str; 10] = [
        "/api/v1/me",
        "/api/v1/activity",
        "/api/v1/applications",
        "/api/v1/tokens",
        "/api/v1/audit-events",
        "/api/v1/scopes",
        "/api/v1/resource-servers",
        "/api/v1/stats",
        "/api/v1/attention",
        "/api/v1/webhooks",
    ];
    if let Some(family) = API.iter().find(|f| path == **f || path.strip_prefix(**f).is_some_and(|r| r.starts_with('/')))
    {
        return family;
    }
    if path.starts_with("/api/") {
        "/api/v1/other"
    } else if path.starts_with("/pkg/") {
        "static"
    } else if path.starts_with("/console/fn/") {
        "console_function"
    } else {
        "console"
    }
}

/// Counts every request and its latency, by endpoint and status class.
pub async fn track(req: Request<Body>, next: axum::middleware::Next) -> Response {
    let endpoint = endpoint_of(req.uri().path());
    let started = std::time::Instant::now();
    let response = ENDPOINT.scope(endpoint, next.run(req)).await;
    let class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("keygate_http_requests_total", "endpoint" => endpoint, "status" => class).increment(1);
    metrics::histogram!("keygate_http_request_duration_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics` on the metrics listener: the gauges read at scrape time
/// (queues, pool), then everything rendered.
async fn scrape(State((state, handle)): State<(AppState, PrometheusHandle)>) -> Response {
    metrics::gauge!("keygate_last_used_pending").set(state.usage.pending_count() as f64);
    metrics::gauge!("keygate_activity_pending").set(state.activity.pending() as f64);
    match state.store.pending_deliveries().await {
        Ok(n) => metrics::gauge!("keygate_webhook_deliveries_pending").set(n as f64),
        Err(e) => tracing::warn!(error = %e, "metrics: could not count pending webhook deliveries"),
    }
    let pool = state.store.pool_use();
    metrics::gauge!("keygate_db_pool_connections", "state" => "idle").set(pool.idle as f64);
    metrics::gauge!("keygate_db_pool_connections", "state" => "in_use").set(pool.in_use as f64);
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
}

/// The metrics listener's router.
pub fn router(state: AppState, handle: PrometheusHandle) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") })
        .with_state((state, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_labels_never_carry_ids() {
        assert_eq!(endpoint_of("/oauth2/token"), "/oauth2/token");
        assert_eq!(endpoint_of("/api/v1/applications/42/secret"), "/api/v1/applications");
        assert_eq!(endpoint_of("/api/v1/applicationsX"), "/api/v1/other");
        assert_eq!(endpoint_of("/api/v1/tokens/9"), "/api/v1/tokens");
        assert_eq!(endpoint_of("/pkg/keygate.1234.wasm"), "static");
        assert_eq!(endpoint_of("/applications/42"), "console");
        assert_eq!(endpoint_of("/console/fn/list_applications"), "console_function");
    }
}
