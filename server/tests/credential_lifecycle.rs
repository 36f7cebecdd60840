//! Secret rotation with an overlap, the impact preview, network
//! allowlists (with and without a trusted proxy) and webhooks, through the
//! real router on either backend; webhook deliveries go to a real HTTP
//! receiver and are checked with an independent HMAC.

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request};
use base64::Engine;
use common::*;
use hmac::Mac;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const ALL: &str =
    "applications:read applications:write tokens:read tokens:write audit:read webhooks:read webhooks:write";

fn from(req: Request<Body>, peer: &str) -> Request<Body> {
    let mut req = req;
    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(format!("{peer}:40000").parse().unwrap()));
    req
}

fn api(method: Method, path: &str, token: &str, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {token}"));
    let body = match body {
        Some(v) => {
            b = b.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    b.body(body).unwrap()
}

fn token_request(client_id: &str, secret: &str) -> Request<Body> {
    Request::post("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, basic_header(client_id, secret))
        .body(Body::from("grant_type=client_credentials"))
        .unwrap()
}

async fn status_of(t: &TestApp, req: Request<Body>) -> u16 {
    t.send(req).await.status().as_u16()
}

async fn bot(t: &TestApp) -> (Created, String) {
    let c = t.create_app("ops-bot", ALL).await;
    let token = t.obtain_token(&c, None).await;
    (c, token)
}

#[tokio::test]
async fn regenerating_with_an_overlap_keeps_both_secrets_until_it_ends() {
    let t = test_app().await;
    let (_bot, admin) = bot(&t).await;
    let target = t.create_app("billing-sync", "").await;
    let id = target.app.id.0;
    let before = t.obtain_token(&target, None).await;

    // The impact preview lists tokens: it takes tokens:read as well.
    let reader = t.create_app("reader", "applications:read").await;
    let reader_token = t.obtain_token(&reader, None).await;
    let path = format!("/api/v1/applications/{id}/secret/impact");
    assert_eq!(status_of(&t, api(Method::GET, &path, &reader_token, None)).await, 403);
    // The impact preview first.
    let impact =
        json(t.send(api(Method::GET, &format!("/api/v1/applications/{id}/secret/impact"), &admin, None)).await).await;
    assert_eq!(impact["active_tokens"], 1);
    assert_eq!(impact["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(impact["secrets"][0]["current"], true);

    let body = json!({"previous_secret_valid_for": 3600, "revoke_tokens": false});
    let res = t.send(api(Method::POST, &format!("/api/v1/applications/{id}/secret"), &admin, Some(body))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let r = json(res).await;
    let new_secret = r["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(r["tokens_revoked"], 0);
    let until = r["previous_secret_expires_at"].as_i64().unwrap();
    assert!(until > keygate_server::now() + 3500);

    // Both secrets get tokens; the old token still works.
    assert_eq!(status_of(&t, token_request(&target.app.client_id, &target.secret)).await, 200);
    assert_eq!(status_of(&t, token_request(&target.app.client_id, &new_secret)).await, 200);
    assert_eq!(t.get_with_token("/api/v1/me", &before).await.status(), 200);

    let got = json(t.send(api(Method::GET, &format!("/api/v1/applications/{id}"), &admin, None)).await).await;
    let secrets = got["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2);
    assert_eq!(secrets[0]["current"], true);
    assert_eq!(secrets[1]["expires_at"], until);
    let previous = secrets[1]["id"].as_i64().unwrap();
    let current = secrets[0]["id"].as_i64().unwrap();

    // Ending the current secret is refused; ending the previous one works.
    let path = |s: i64| format!("/api/v1/applications/{id}/secrets/{s}");
    assert_eq!(status_of(&t, api(Method::DELETE, &path(current), &admin, None)).await, 409);
    assert_eq!(status_of(&t, api(Method::DELETE, &path(previous), &admin, None)).await, 204);
    assert_eq!(status_of(&t, api(Method::DELETE, &path(previous), &admin, None)).await, 404);
    assert_eq!(status_of(&t, token_request(&target.app.client_id, &target.secret)).await, 401);
    assert_eq!(status_of(&t, token_request(&target.app.client_id, &new_secret)).await, 200);

    // Without a body: the secret and every token at once, as before.
    let res = t.send(api(Method::POST, &format!("/api/v1/applications/{id}/secret"), &admin, None)).await;
    assert_eq!(res.status(), 200);
    let r = json(res).await;
    assert!(r["tokens_revoked"].as_u64().unwrap() >= 2);
    assert!(r["previous_secret_expires_at"].is_null());
    assert_eq!(status_of(&t, token_request(&target.app.client_id, &new_secret)).await, 401);
    assert_eq!(t.get_with_token("/api/v1/me", &before).await.status(), 401);

    // Bad bodies change nothing.
    for bad in
        [json!({"previous_secret_valid_for": 10}), json!({"revoke": false}), json!({"previous_secret_valid_for": "1h"})]
    {
        let res =
            t.send(api(Method::POST, &format!("/api/v1/applications/{id}/secret"), &admin, Some(bad.clone()))).await;
        assert_eq!(res.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn allowlists_guard_token_requests_api_use_forward_auth_and_introspection() {
    let t = test_app().await;
    let (_bot, admin) = bot(&t).await;
    let target = t.create_app("fenced", "applications:read").await;
    let id = target.app.id.0;
    let token = t.obtain_token(&target, None).await;
    let res = t
        .send(api(
            Method::PATCH,
            &format!("/api/v1/applications/{id}"),
            &admin,
            Some(json!({"allowed_networks": ["10.20.0.0/16"]})),
        ))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["allowed_networks"], json!(["10.20.0.0/16"]));

    // Token requests.
    assert_eq!(status_of(&t, from(token_request(&target.app.client_id, &target.secret), "10.20.3.4")).await, 200);
    let res = t.send(from(token_request(&target.app.client_id, &target.secret), "10.99.0.1")).await;
    assert_eq!(res.status(), 401);
    assert_eq!(json(res).await["error"], "invalid_client");
    // Through a trusted proxy (loopback by default) the forwarded address counts.
    let via_proxy = |xff: &str| {
        let mut req = token_request(&target.app.client_id, &target.secret);
        req.headers_mut().insert("x-forwarded-for", xff.parse().unwrap());
        from(req, "127.0.0.1")
    };
    assert_eq!(status_of(&t, via_proxy("10.20.9.9")).await, 200);
    assert_eq!(status_of(&t, via_proxy("10.99.9.9")).await, 401);
    // An untrusted peer cannot claim an address.
    let mut spoofed = token_request(&target.app.client_id, &target.secret);
    spoofed.headers_mut().insert("x-forwarded-for", "10.20.9.9".parse().unwrap());
    assert_eq!(status_of(&t, from(spoofed, "192.0.2.50")).await, 401);

    // Token uses: the API, forward-auth.
    let me = |peer: &str| from(api(Method::GET, "/api/v1/me", &token, None), peer);
    assert_eq!(status_of(&t, me("10.20.0.1")).await, 200);
    let res = t.send(me("10.99.0.1")).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().contains("invalid_token"));
    let fa = |peer: &str| from(api(Method::GET, "/oauth2/forward-auth", &token, None), peer);
    assert_eq!(status_of(&t, fa("10.20.0.1")).await, 200);
    assert_eq!(status_of(&t, fa("10.99.0.1")).await, 401);

    // Introspection: the introspecting client's own allowlist applies.
    let introspect = |peer: &str| {
        from(
            Request::post("/oauth2/introspect")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, basic_header(&target.app.client_id, &target.secret))
                .body(Body::from(format!("token={token}")))
                .unwrap(),
            peer,
        )
    };
    let ok = t.send(introspect("10.20.0.1")).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(json(ok).await["active"], true);
    assert_eq!(status_of(&t, introspect("10.99.0.1")).await, 401);

    // Every refusal is audited with the reason.
    let refusals: Vec<(String, Value)> =
        t.audit_actions().await.into_iter().filter(|(_, d)| d["reason"] == "address_not_allowed").collect();
    assert!(refusals.iter().any(|(a, _)| a == "client.authentication_failed"));
    assert!(refusals.iter().any(|(a, d)| a == "token.refused" && d["via"] == "api"));
    assert!(refusals.iter().any(|(a, d)| a == "token.refused" && d["via"] == "forward_auth"));

    // Invalid networks: a field error; shutting yourself out: a warning.
    let res = t
        .send(api(
            Method::PATCH,
            &format!("/api/v1/applications/{id}"),
            &admin,
            Some(json!({"allowed_networks": ["10.0.0.0/99"]})),
        ))
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["field"], "allowed_networks");
    let own = t.create_app("self-fencing", "applications:write").await;
    let own_token = t.obtain_token(&own, None).await;
    let res = t
        .send(from(
            api(
                Method::PATCH,
                &format!("/api/v1/applications/{}", own.app.id),
                &own_token,
                Some(json!({"allowed_networks": ["10.0.0.0/8"]})),
            ),
            "192.0.2.1",
        ))
        .await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert!(body["warnings"][0].as_str().unwrap().contains("192.0.2.1"), "{body}");
}

/// What the receiver saw: headers and body of each request.
type Seen = Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>;

/// A receiver that answers 500 to the first `failures` requests, then 204.
async fn receiver(failures: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let log = log.clone();
            async move {
                let mut log = log.lock().unwrap();
                log.push((headers, body));
                if log.len() <= failures {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "not yet")
                } else {
                    (axum::http::StatusCode::NO_CONTENT, "")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

/// The Standard Webhooks signature, computed here from the secret.
fn verify(secret: &str, headers: &axum::http::HeaderMap, body: &str) {
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(headers["webhook-signature"].to_str().unwrap(), expected);
}

async fn deliver(t: &TestApp, now: i64) -> usize {
    let client = keygate_server::webhook_sender::http_client().unwrap();
    keygate_server::webhook_sender::deliver_due(&t.store, &keygate::jwt::KeyEncryptionKey::for_tests(1), &client, now)
        .await
        .unwrap()
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_logged() {
    let t = test_app().await;
    let (_bot, admin) = bot(&t).await;
    let (url, seen) = receiver(1).await;
    let res = t
        .send(api(
            Method::POST,
            "/api/v1/webhooks",
            &admin,
            Some(json!({"url": url, "events": ["application"], "description": "ops"})),
        ))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let created = json(res).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let hook = created["id"].as_i64().unwrap();
    assert!(secret.starts_with("whsec_"));
    let listed = json(t.send(api(Method::GET, "/api/v1/webhooks", &admin, None)).await).await;
    assert!(listed.to_string().find("whsec_").is_none(), "the secret is shown once: {listed}");

    // An application event queues a delivery; the first attempt fails.
    let res = t.send(api(Method::POST, "/api/v1/applications", &admin, Some(json!({"name": "watched"})))).await;
    assert_eq!(res.status(), 201);
    let now = keygate_server::now();
    assert_eq!(deliver(&t, now).await, 1);
    assert_eq!(deliver(&t, now + 4).await, 0, "nothing before the back-off");
    assert_eq!(deliver(&t, now + 5).await, 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0["webhook-id"], seen[1].0["webhook-id"], "the same message ID on every attempt");
    for (headers, body) in &seen {
        verify(&secret, headers, body);
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["type"], "application.created");
        assert_eq!(v["data"]["target"]["name"], "watched");
        assert!(!body.contains("kgs_") && !body.contains("kgt_"));
    }

    let log = json(t.send(api(Method::GET, &format!("/api/v1/webhooks/{hook}/deliveries"), &admin, None)).await).await;
    let d = &log["items"][0];
    assert_eq!(d["state"], "delivered");
    assert_eq!(d["attempts"][0]["status"], 500);
    assert_eq!(d["attempts"][0]["response_excerpt"], "not yet");
    assert_eq!(d["attempts"][1]["status"], 204);

    // A test event, and "retry now" on a delivered one sends it again.
    let res = t.send(api(Method::POST, &format!("/api/v1/webhooks/{hook}/test"), &admin, None)).await;
    assert_eq!(res.status(), 202);
    let delivery = json(res).await["delivery_id"].as_i64().unwrap();
    assert_eq!(deliver(&t, now + 6).await, 1);
    let path = format!("/api/v1/webhooks/{hook}/deliveries/{delivery}/retry");
    assert_eq!(status_of(&t, api(Method::POST, &path, &admin, None)).await, 202);
    assert_eq!(deliver(&t, keygate_server::now() + 7).await, 1);

    // Changes, refusals, removal.
    let res =
        t.send(api(Method::PATCH, &format!("/api/v1/webhooks/{hook}"), &admin, Some(json!({"enabled": false})))).await;
    assert_eq!(json(res).await["enabled"], false);
    for (bad, field) in [
        (json!({"url": "file:///etc/passwd", "events": ["token"]}), "url"),
        (json!({"url": "ftp://x/", "events": ["token"]}), "url"),
        (json!({"url": "https://ok.internal/", "events": ["token.stolen"]}), "events"),
        (json!({"url": "https://ok.internal/", "events": []}), "events"),
    ] {
        let res = t.send(api(Method::POST, "/api/v1/webhooks", &admin, Some(bad.clone()))).await;
        assert_eq!(res.status(), 400, "{bad}");
        assert_eq!(json(res).await["field"], field, "{bad}");
    }
    // A webhook receives audit events: managing one takes audit:read too.
    let half = t.create_app("hooks-only", "webhooks:read webhooks:write").await;
    let half_token = t.obtain_token(&half, None).await;
    let res = t
        .send(api(
            Method::POST,
            "/api/v1/webhooks",
            &half_token,
            Some(json!({"url": "https://x.internal/", "events": ["admin"]})),
        ))
        .await;
    assert_eq!(res.status(), 403);
    assert!(json(res).await["error_description"].as_str().unwrap().contains("audit:read"));
    let res = t
        .send(api(
            Method::PATCH,
            &format!("/api/v1/webhooks/{hook}"),
            &half_token,
            Some(json!({"url": "https://evil.example/"})),
        ))
        .await;
    assert_eq!(res.status(), 403);
    let viewer = t.create_app("viewer", "webhooks:read").await;
    let viewer_token = t.obtain_token(&viewer, None).await;
    assert_eq!(status_of(&t, api(Method::DELETE, &format!("/api/v1/webhooks/{hook}"), &viewer_token, None)).await, 403);
    assert_eq!(status_of(&t, api(Method::DELETE, &format!("/api/v1/webhooks/{hook}"), &admin, None)).await, 204);
    assert_eq!(status_of(&t, api(Method::GET, &format!("/api/v1/webhooks/{hook}"), &admin, None)).await, 404);
}

#[tokio::test]
async fn a_receiver_that_redirects_is_a_failed_attempt() {
    let t = test_app().await;
    let (_bot, admin) = bot(&t).await;
    let app = axum::Router::new().route(
        "/moved",
        axum::routing::post(|| async { axum::response::Redirect::temporary("http://127.0.0.1:9/elsewhere") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let res = t
        .send(api(
            Method::POST,
            "/api/v1/webhooks",
            &admin,
            Some(json!({"url": format!("http://{addr}/moved"), "events": ["token.revoked"]})),
        ))
        .await;
    let hook = json(res).await["id"].as_i64().unwrap();
    t.send(api(Method::POST, &format!("/api/v1/webhooks/{hook}/test"), &admin, None)).await;
    assert_eq!(deliver(&t, keygate_server::now()).await, 1);
    let log = json(t.send(api(Method::GET, &format!("/api/v1/webhooks/{hook}/deliveries"), &admin, None)).await).await;
    let d = &log["items"][0];
    assert_eq!(d["state"], "pending", "a redirect is not followed and not a success: {d}");
    assert_eq!(d["attempts"][0]["status"], 307);
}

#[tokio::test]
async fn a_receiver_that_hangs_holds_up_only_its_own_deliveries() {
    let t = test_app().await;
    let (_bot, admin) = bot(&t).await;
    let (ok_url, seen) = receiver(0).await;
    let hang = axum::Router::new().route(
        "/hang",
        axum::routing::post(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            ""
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_url = format!("http://{}/hang", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hang).await.unwrap() });
    for url in [&hang_url, &ok_url] {
        let res = t
            .send(api(Method::POST, "/api/v1/webhooks", &admin, Some(json!({"url": url, "events": ["application"]}))))
            .await;
        assert_eq!(res.status(), 201);
    }
    let sender =
        keygate_server::webhook_sender::spawn(t.store.clone(), keygate::jwt::KeyEncryptionKey::for_tests(1)).unwrap();
    for i in 0..10 {
        let res =
            t.send(api(Method::POST, "/api/v1/applications", &admin, Some(json!({"name": format!("app-{i}")})))).await;
        assert_eq!(res.status(), 201);
    }
    // All ten reach the healthy receiver, in order, well before the hung
    // one's first attempt times out (10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    while seen.lock().unwrap().len() < 10 {
        assert!(std::time::Instant::now() < deadline, "only {} delivered", seen.lock().unwrap().len());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let names: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| {
            serde_json::from_str::<Value>(body).unwrap()["data"]["target"]["name"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(names, (0..10).map(|i| format!("app-{i}")).collect::<Vec<_>>());
    sender.abort();
}

#[tokio::test]
async fn a_secret_sent_as_the_client_id_is_never_logged_or_audited() {
    let t = test_app().await;
    let c = t.create_app("swapped", "").await;
    let res = t
        .token_request(
            None,
            &format!("grant_type=client_credentials&client_id={}&client_secret={}", c.secret, c.app.client_id),
        )
        .await;
    assert_eq!(res.status(), 401);
    let audit = t.audit_actions().await;
    let (_, details) = audit.iter().find(|(a, _)| a == "client.authentication_failed").unwrap();
    assert_eq!(details["client_id"], "<a client secret, not shown>");
    assert!(!audit.iter().any(|(_, d)| d.to_string().contains(&c.secret)));
}
