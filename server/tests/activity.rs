//! Activity charts through the real router, on either backend: known
//! traffic (issued, used, refused for each reason the token endpoint and
//! the API can give) comes back exactly from the activity API and the
//! console pages, and the refusal list links to the audit log.

mod common;

use axum::body::Body;
use axum::http::{header, Request};
use common::*;
use serde_json::json;

async fn activity(t: &TestApp, token: &str, path: &str) -> serde_json::Value {
    let res = t.get_with_token(path, token).await;
    assert_eq!(res.status(), 200, "{path}");
    json(res).await
}

#[tokio::test]
async fn traffic_comes_back_exactly_in_the_charts() {
    let t = test_app().await;
    let reader = t.create_app("reader", "applications:read").await;
    let billing = t.create_app("billing", "applications:read tokens:read").await;

    // Billing: 3 tokens issued, 5 successful API calls, 2 wrong secrets,
    // 1 refused scope (asked at the token endpoint), 1 revoked token used,
    // 1 route refused for lack of a scope.
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(t.obtain_token(&billing, None).await);
    }
    for _ in 0..5 {
        assert_eq!(t.get_with_token("/api/v1/me", &tokens[0]).await.status(), 200);
    }
    for _ in 0..2 {
        let res = t.token_request(Some((&billing.app.client_id, "kgs_wrong")), "grant_type=client_credentials").await;
        assert_eq!(res.status(), 401);
    }
    let res = t
        .token_request(
            Some((&billing.app.client_id, &billing.secret)),
            "grant_type=client_credentials&scope=audit:read",
        )
        .await;
    assert_eq!(res.status(), 400);
    let revoke = Request::post("/oauth2/revoke")
        .header(header::AUTHORIZATION, basic_header(&billing.app.client_id, &billing.secret))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={}", tokens[2])))
        .unwrap();
    assert_eq!(t.send(revoke).await.status(), 200);
    assert_eq!(t.get_with_token("/api/v1/me", &tokens[2]).await.status(), 401);
    assert_eq!(t.get_with_token("/api/v1/audit-events", &tokens[1]).await.status(), 403);

    // The reader's own token: 1 issued, and its reads below are uses.
    let reader_token = t.obtain_token(&reader, None).await;
    t.state.flush().await;

    let path = format!("/api/v1/applications/{}/activity?range=24h", billing.app.id);
    let a = activity(&t, &reader_token, &path).await;
    assert_eq!(a["range"], "24h");
    assert_eq!(a["bucket_seconds"], 3600);
    assert_eq!(a["buckets"].as_array().unwrap().len(), 24);
    let totals = &a["totals"];
    assert_eq!(totals["issued"], 3, "{a}");
    // Five calls of /me; the audit read refused for its scope is no use.
    assert_eq!(totals["used"], 5, "{a}");
    assert_eq!(
        totals["refused"],
        json!({"wrong_secret": 2, "invalid_token": 1, "rate_limited": 0, "scope": 2, "address_not_allowed": 0, "disabled": 0}),
        "{a}"
    );
    // Everything happened within the last bar.
    let last = a["buckets"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["issued"], 3);

    for range in ["7d", "30d"] {
        let wide =
            activity(&t, &reader_token, &format!("/api/v1/applications/{}/activity?range={range}", billing.app.id))
                .await;
        for k in ["issued", "used", "refused"] {
            assert_eq!(wide["totals"][k], a["totals"][k], "{range} {k}");
        }
    }
    let bad =
        t.get_with_token(&format!("/api/v1/applications/{}/activity?range=1y", billing.app.id), &reader_token).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(json(bad).await["field"], "range");
    assert_eq!(t.get_with_token("/api/v1/applications/999999/activity", &reader_token).await.status(), 404);

    let overview = activity(&t, &reader_token, "/api/v1/activity?range=24h").await;
    assert_eq!(overview["series"]["totals"]["issued"], 4);
    assert_eq!(overview["busiest"][0]["application_name"], "billing");
    assert_eq!(overview["most_refused"][0]["application_name"], "billing");
    assert_eq!(overview["most_refused"][0]["refused"], 5);
    assert_eq!(overview["most_refused"].as_array().unwrap().len(), 1, "the reader was never refused");

    // The refusals filter of the audit log lists both kinds of refusal.
    let audit_reader = t.create_app("auditor", "audit:read").await;
    let audit_token = t.obtain_token(&audit_reader, None).await;
    let refusals =
        activity(&t, &audit_token, &format!("/api/v1/audit-events?action=refusals&application_id={}", billing.app.id))
            .await;
    let actions: std::collections::BTreeSet<String> =
        refusals["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        actions.into_iter().collect::<Vec<_>>(),
        ["application.scope_refused", "client.authentication_failed", "token.refused"]
    );
}

#[tokio::test]
async fn the_console_draws_the_charts_without_javascript() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let billing = t.create_app("billing", "applications:read").await;
    let token = t.obtain_token(&billing, None).await;
    for _ in 0..4 {
        t.get_with_token("/api/v1/me", &token).await;
    }
    t.token_request(Some((&billing.app.client_id, "kgs_wrong")), "grant_type=client_credentials").await;
    t.state.flush().await;

    let res = page(&t, &format!("/applications/{}?range=7d", billing.app.id), Some(&cookie)).await;
    assert_eq!(res.status(), 200);
    let html = String::from_utf8(body_bytes(res).await).unwrap();
    for needle in [
        "data-testid=\"chart-uses\"",
        "data-testid=\"chart-refusals\"",
        "<svg",
        "Refusals by reason, per 6 hours (UTC)",
        // The text table for screen readers, and a bar's figures.
        "data-testid=\"activity-table\"",
        "successful uses 4, tokens issued 1",
        "wrong secret 1",
        "In the last 7 days: tokens issued 1, successful uses 4, refusals 1.",
        // The selected range is marked.
        "aria-current=\"page\"",
        // The refusal list, linking to the audit log filtered to it.
        "data-testid=\"recent-refusals\"",
        "wrong_secret",
    ] {
        assert!(html.contains(needle), "the page lacks {needle}");
    }
    // By client ID: unique, where "billing" could be part of another name.
    assert!(html.contains(&format!("/audit?application={}&amp;action=refusals", billing.app.client_id)));

    let res = page(&t, "/", Some(&cookie)).await;
    let html = String::from_utf8(body_bytes(res).await).unwrap();
    for needle in
        ["Activity of all applications", "data-testid=\"busiest\"", "data-testid=\"most-refused\"", ">billing</a>"]
    {
        assert!(html.contains(needle), "the overview lacks {needle}");
    }
    let res = page(&t, "/audit?application=billing&action=refusals", Some(&cookie)).await;
    let html = String::from_utf8(body_bytes(res).await).unwrap();
    assert!(html.contains("client.authentication_failed"), "the filtered audit log lists the refusal");
}
