//! Prometheus metrics, scraped and parsed after known traffic: counters
//! move by exactly the requests sent. One test in its own binary, because
//! the recorder is global to the process.

mod common;

use axum::body::Body;
use axum::http::{header, Request};
use common::*;
use std::collections::HashMap;
use tower::ServiceExt;

/// Samples by name and sorted labels.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

async fn scrape(metrics: &axum::Router) -> (Samples, prometheus_parse::Scrape) {
    let res = metrics.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(body_bytes(res).await).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("exposition parses");
    let mut samples = Samples::new();
    for s in &scrape.samples {
        let mut labels: Vec<(String, String)> = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.sort();
        let value = match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => continue,
        };
        samples.insert((s.metric.clone(), labels), value);
    }
    (samples, scrape)
}

fn get(s: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut l: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    l.sort();
    s.get(&(name.to_owned(), l)).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_by_exactly_the_requests_sent() {
    let t = test_app().await;
    let handle = keygate_server::metrics::install().expect("a recorder");
    let metrics = keygate_server::metrics::router(t.state.clone(), handle);
    let billing = t.create_app("billing", "applications:read").await;
    // Warm the label sets up, then take the baseline.
    let token = t.obtain_token(&billing, None).await;
    let (before, _) = scrape(&metrics).await;

    for _ in 0..3 {
        t.obtain_token(&billing, None).await;
    }
    for _ in 0..2 {
        let res = t.token_request(Some((&billing.app.client_id, "kgs_wrong")), "grant_type=client_credentials").await;
        assert_eq!(res.status(), 401);
    }
    let res = t.token_request(Some(("kgc_nobody", "kgs_wrong")), "grant_type=client_credentials").await;
    assert_eq!(res.status(), 401);
    for _ in 0..4 {
        assert_eq!(t.get_with_token("/api/v1/me", &token).await.status(), 200);
    }
    assert_eq!(t.get_with_token("/api/v1/applications/7", &token).await.status(), 404);
    assert_eq!(t.get_with_token("/api/v1/audit-events", &token).await.status(), 403);
    // Not found on the public listener: metrics are only on their own.
    let public = t.send(Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(public.status(), 404);

    let (after, scrape_text) = scrape(&metrics).await;
    let moved = |name: &str, labels: &[(&str, &str)]| get(&after, name, labels) - get(&before, name, labels);
    let token_ep = [("endpoint", "/oauth2/token")];
    assert_eq!(moved("keygate_http_requests_total", &[token_ep[0], ("status", "2xx")]), 3.0);
    assert_eq!(moved("keygate_http_requests_total", &[token_ep[0], ("status", "4xx")]), 3.0);
    assert_eq!(moved("keygate_http_requests_total", &[("endpoint", "/api/v1/me"), ("status", "2xx")]), 4.0);
    assert_eq!(moved("keygate_http_requests_total", &[("endpoint", "/api/v1/applications"), ("status", "4xx")]), 1.0);
    assert_eq!(moved("keygate_http_requests_total", &[("endpoint", "/api/v1/audit-events"), ("status", "4xx")]), 1.0);
    assert_eq!(moved("keygate_http_requests_total", &[("endpoint", "console"), ("status", "4xx")]), 1.0);
    assert_eq!(moved("keygate_tokens_issued_total", &[("format", "opaque")]), 3.0);
    assert_eq!(moved("keygate_refusals_total", &[token_ep[0], ("reason", "wrong_secret")]), 2.0);
    assert_eq!(moved("keygate_refusals_total", &[token_ep[0], ("reason", "unknown_client")]), 1.0);
    assert_eq!(moved("keygate_refusals_total", &[("endpoint", "/api/v1/audit-events"), ("reason", "scope")]), 1.0);
    // /me four times and the 404; the 403 is a refusal, not a use.
    assert_eq!(moved("keygate_token_uses_total", &[]), 5.0);
    // Six token requests were timed (the histogram's count).
    let count = |s: &Samples| get(s, "keygate_http_request_duration_seconds_count", &token_ep);
    assert_eq!(count(&after) - count(&before), 6.0);
    // Issuer batches: at least one batch per token (each request waited alone).
    assert!(get(&after, "keygate_issuer_batch_size_count", &[]) >= 4.0);
    for gauge in [
        "keygate_issuer_queue_depth",
        "keygate_last_used_pending",
        "keygate_activity_pending",
        "keygate_webhook_deliveries_pending",
    ] {
        assert!(after.contains_key(&(gauge.to_owned(), vec![])), "{gauge} is exposed");
    }
    assert!(get(&after, "keygate_db_pool_connections", &[("state", "idle")]) >= 1.0);
    assert!(get(&after, "keygate_last_used_pending", &[]) >= 1.0, "uses wait for the flush");
    // No label carries an application's name or id.
    for s in &scrape_text.samples {
        for (k, v) in s.labels.iter() {
            assert!(!v.contains("billing") && !v.contains(&billing.app.client_id), "{}: {k}={v}", s.metric);
        }
    }
    // Documented.
    assert!(scrape_text.docs.contains_key("keygate_refusals_total"));
}
