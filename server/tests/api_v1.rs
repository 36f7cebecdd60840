//! The management API, introspection, revocation, rate limits and the
//! audit trail, through the real router.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, Response};
use common::*;
use serde_json::{json, Value};

const ALL: &str = "applications:read applications:write tokens:read tokens:write audit:read";

async fn call(t: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Response<Body> {
    let mut b = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {token}"));
    let body = match body {
        Some(v) => {
            b = b.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    t.send(b.body(body).unwrap()).await
}

async fn admin_bot(t: &TestApp) -> (Created, String) {
    let c = t.create_app("admin-bot", ALL).await;
    let token = t.obtain_token(&c, None).await;
    (c, token)
}

fn form(path: &str, auth: (&str, &str), body: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, basic_header(auth.0, auth.1))
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn applications_crud_with_audit_by_the_calling_application() {
    let t = test_app().await;
    let (_bot, token) = admin_bot(&t).await;
    let res = call(
        &t,
        Method::POST,
        "/api/v1/applications",
        &token,
        Some(json!({"name": "billing-sync", "notes": "nightly", "scopes": ["tokens:read"], "max_tokens": 5})),
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let created = json(res).await;
    let id = created["application"]["id"].as_i64().unwrap();
    assert!(created["client_secret"].as_str().unwrap().starts_with("kgs_"));
    assert_eq!(created["application"]["max_tokens"], 5);
    assert_eq!(created["application"]["token_ttl_seconds"], 3600);

    let got = json(call(&t, Method::GET, &format!("/api/v1/applications/{id}"), &token, None).await).await;
    assert_eq!(got["name"], "billing-sync");
    assert!(got.get("client_secret").is_none() && !got.to_string().contains("kgs_"));

    let list = json(call(&t, Method::GET, "/api/v1/applications?search=billing&per_page=10", &token, None).await).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], id);

    let res = call(
        &t,
        Method::PATCH,
        &format!("/api/v1/applications/{id}"),
        &token,
        Some(json!({"enabled": false, "notes": "paused"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let patched = json(res).await;
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["notes"], "paused");
    assert_eq!(patched["scopes"], json!(["tokens:read"]));

    let res =
        call(&t, Method::PATCH, &format!("/api/v1/applications/{id}"), &token, Some(json!({"colour": "red"}))).await;
    assert_eq!(res.status(), 400);
    assert!(json(res).await["error_description"].as_str().unwrap().contains("unknown field"));
    let res = call(&t, Method::POST, "/api/v1/applications", &token, Some(json!({"name": "  "}))).await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["field"], "name");
    let res = call(&t, Method::POST, "/api/v1/applications", &token, Some(json!({"name": "billing-sync"}))).await;
    assert_eq!(res.status(), 400);
    let res = t
        .send(
            Request::post("/api/v1/applications")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), 400);
    let res = call(&t, Method::GET, "/api/v1/applications?page=abc", &token, None).await;
    assert_eq!(res.status(), 400);
    // The list's sorts and status filters, by name; an unknown one says which exist.
    // (billing-sync was disabled above.)
    for query in ["sort=last_used", "sort=active_tokens&status=disabled", "status=never_used&sort=name"] {
        let list = json(call(&t, Method::GET, &format!("/api/v1/applications?{query}"), &token, None).await).await;
        assert!(list["items"].as_array().unwrap().iter().any(|a| a["id"] == id), "{query}");
    }
    let list = json(call(&t, Method::GET, "/api/v1/applications?status=enabled", &token, None).await).await;
    assert!(list["items"].as_array().unwrap().iter().all(|a| a["id"] != id && a["enabled"] == true));
    let res = call(&t, Method::GET, "/api/v1/applications?sort=oldest", &token, None).await;
    assert_eq!(res.status(), 400);
    assert!(json(res).await["error_description"].as_str().unwrap().contains("last_used"));
    let res = call(&t, Method::GET, "/api/v1/applications?status=asleep", &token, None).await;
    assert_eq!(res.status(), 400);

    assert_eq!(call(&t, Method::DELETE, &format!("/api/v1/applications/{id}"), &token, None).await.status(), 204);
    let res = call(&t, Method::GET, &format!("/api/v1/applications/{id}"), &token, None).await;
    assert_eq!(res.status(), 404);
    assert_eq!(json(res).await["error"], "not_found");
    assert_eq!(call(&t, Method::GET, "/api/v1/applications/nope", &token, None).await.status(), 404);

    let events = json(
        call(&t, Method::GET, &format!("/api/v1/audit-events?action=application&application_id={id}"), &token, None)
            .await,
    )
    .await;
    let actions: Vec<&str> =
        events["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    // One PATCH that changed a setting and disabled the application: both events.
    assert_eq!(
        actions,
        vec!["application.deleted", "application.disabled", "application.updated", "application.created"]
    );
    assert!(events["items"].as_array().unwrap().iter().all(|e| e["actor"] == "admin-bot"));
}

#[tokio::test]
async fn scopes_are_checked_per_route_and_cannot_be_widened() {
    let t = test_app().await;
    let reader = t.create_app("reader", "applications:read").await;
    let token = t.obtain_token(&reader, None).await;
    assert_eq!(call(&t, Method::GET, "/api/v1/applications", &token, None).await.status(), 200);
    for (m, path) in [
        (Method::POST, "/api/v1/applications"),
        (Method::GET, "/api/v1/audit-events"),
        (Method::GET, "/api/v1/applications/1/tokens"),
    ] {
        let res = call(&t, m, path, &token, Some(json!({"name": "x"}))).await;
        assert_eq!(res.status(), 403, "{path}");
        let challenge = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
        assert_eq!(json(res).await["error"], "insufficient_scope");
    }
    // A writer without audit:read cannot grant audit:read.
    let writer = t.create_app("writer", "applications:write").await;
    let wt = t.obtain_token(&writer, None).await;
    let res =
        call(&t, Method::POST, "/api/v1/applications", &wt, Some(json!({"name": "sneaky", "scopes": ["audit:read"]})))
            .await;
    assert_eq!(res.status(), 403);
    let res = call(
        &t,
        Method::PATCH,
        &format!("/api/v1/applications/{}", writer.app.id),
        &wt,
        Some(json!({"scopes": ["applications:write", "audit:read"]})),
    )
    .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn tokens_mint_list_revoke_and_secret_regeneration() {
    let t = test_app().await;
    let (bot, token) = admin_bot(&t).await;
    let target = t.create_app("target", "tokens:read").await;
    let path = format!("/api/v1/applications/{}/tokens", target.app.id);
    let res = call(
        &t,
        Method::POST,
        &path,
        &token,
        Some(json!({"name": "ci deploy", "scopes": ["tokens:read"], "expires_in": 86400})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let minted = json(res).await;
    let named = minted["access_token"].as_str().unwrap().to_owned();
    assert_eq!(minted["token"]["name"], "ci deploy");
    assert_eq!(minted["token"]["source"], "api");
    assert_eq!(call(&t, Method::GET, "/api/v1/me", &named, None).await.status(), 200);

    let res =
        call(&t, Method::POST, &path, &token, Some(json!({"name": "x", "expires_in": 10, "expires_at": 99}))).await;
    assert_eq!(res.status(), 400);
    let res =
        call(&t, Method::POST, &path, &token, Some(json!({"name": "x", "scopes": ["audit:read"], "expires_in": 10})))
            .await;
    assert_eq!(res.status(), 400, "audit:read is not among target's allowed scopes");

    let list = json(call(&t, Method::GET, &path, &token, None).await).await;
    let item = &list["items"][0];
    assert_eq!(item["state"], "active");
    assert!(item["last_used_at"].is_i64(), "pending uses are shown before the flush: {item}");
    assert!(item.get("token_hash").is_none());

    let token_id = minted["token"]["id"].as_i64().unwrap();
    assert_eq!(call(&t, Method::DELETE, &format!("/api/v1/tokens/{token_id}"), &token, None).await.status(), 204);
    assert_eq!(call(&t, Method::GET, "/api/v1/me", &named, None).await.status(), 401);
    let list = json(call(&t, Method::GET, &path, &token, None).await).await;
    assert_eq!(list["items"][0]["state"], "revoked");
    assert_eq!(list["items"][0]["revoked_reason"], "revoked_via_api");
    assert_eq!(call(&t, Method::DELETE, "/api/v1/tokens/999999", &token, None).await.status(), 404);

    let endpoint_token = t.obtain_token(&target, None).await;
    let res = call(&t, Method::POST, &format!("/api/v1/applications/{}/secret", target.app.id), &token, None).await;
    assert_eq!(res.status(), 200);
    let regen = json(res).await;
    assert_eq!(regen["tokens_revoked"], 1);
    assert!(regen["client_secret"].as_str().unwrap().starts_with("kgs_"));
    assert_eq!(call(&t, Method::GET, "/api/v1/me", &endpoint_token, None).await.status(), 401);
    let res = t.token_request(Some((&target.app.client_id, &target.secret)), "grant_type=client_credentials").await;
    assert_eq!(res.status(), 401, "the old secret is dead");

    // The list pages, newest first, and says how many there are.
    let all = json(call(&t, Method::GET, &path, &token, None).await).await;
    assert_eq!((all["total"].as_i64(), all["page"].as_i64(), all["per_page"].as_i64()), (Some(2), Some(1), Some(50)));
    let second = json(call(&t, Method::GET, &format!("{path}?page=2&per_page=1"), &token, None).await).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["id"], all["items"][1]["id"]);
    assert_eq!(second["total"], 2);
    let past = json(call(&t, Method::GET, &format!("{path}?page=3&per_page=1"), &token, None).await).await;
    assert_eq!((past["items"].as_array().unwrap().len(), past["total"].as_i64()), (0, Some(2)));
    for bad in ["per_page=0", "per_page=201", "page=0", "sort=name"] {
        let res = call(&t, Method::GET, &format!("{path}?{bad}"), &token, None).await;
        assert_eq!(res.status(), 400, "{bad}");
    }
    let res = t
        .token_request(
            Some((&target.app.client_id, regen["client_secret"].as_str().unwrap())),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(res.status(), 200);
    let _ = bot;
}

/// The API's audit log filters by part of an application's name or client
/// ID, as the console's does, deleted applications included.
#[tokio::test]
async fn audit_events_are_found_by_part_of_an_applications_name() {
    let t = test_app().await;
    let (_bot, token) = admin_bot(&t).await;
    let body = json!({"name": "billing-sync", "scopes": ["tokens:read"]});
    let created = json(call(&t, Method::POST, "/api/v1/applications", &token, Some(body)).await).await;
    let id = created["application"]["id"].as_i64().unwrap();
    assert_eq!(call(&t, Method::DELETE, &format!("/api/v1/applications/{id}"), &token, None).await.status(), 204);
    // Created and deleted, found after it is gone; too long a filter is refused.
    let matched =
        json(call(&t, Method::GET, "/api/v1/audit-events?action=application&application=LING-sy", &token, None).await)
            .await;
    assert_eq!(matched["total"], 2, "{matched}");
    let none = json(call(&t, Method::GET, "/api/v1/audit-events?application=no-such-app", &token, None).await).await;
    assert_eq!(none["total"], 0);
    let long = format!("/api/v1/audit-events?application={}", "x".repeat(201));
    let res = call(&t, Method::GET, &long, &token, None).await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["field"], "application");
}

#[tokio::test]
async fn named_tokens_are_extended_and_rotated_with_an_overlap() {
    let t = test_app().await;
    let (_bot, token) = admin_bot(&t).await;
    let target = t.create_app("target", "tokens:read").await;
    let path = format!("/api/v1/applications/{}/tokens", target.app.id);
    let body = json!({"name": "deploy pipeline", "scopes": ["tokens:read"], "expires_in": 86400});
    let minted = json(call(&t, Method::POST, &path, &token, Some(body)).await).await;
    let first = minted["access_token"].as_str().unwrap().to_owned();
    let id = minted["token"]["id"].as_i64().unwrap();
    let created = minted["token"]["created_at"].as_i64().unwrap();

    // Extend: the same value, a new expiry.
    let res =
        call(&t, Method::POST, &format!("/api/v1/tokens/{id}/extend"), &token, Some(json!({"expires_in": 90 * 86400})))
            .await;
    assert_eq!(res.status(), 200);
    let extended = json(res).await;
    assert!(extended["expires_at"].as_i64().unwrap() >= created + 90 * 86400);
    assert_eq!(call(&t, Method::GET, "/api/v1/me", &first, None).await.status(), 200);
    for (body, field) in [
        (json!({}), "expires_at"),
        (json!({"expires_in": 10, "expires_at": 99}), "expires_at"),
        (json!({"expires_in": 5 * 366 * 86400}), "expires_at"),
    ] {
        let res = call(&t, Method::POST, &format!("/api/v1/tokens/{id}/extend"), &token, Some(body)).await;
        assert_eq!(res.status(), 400);
        assert_eq!(json(res).await["field"], field);
    }

    // Rotate with an hour's overlap: both values work, same name and scopes.
    let res = call(
        &t,
        Method::POST,
        &format!("/api/v1/tokens/{id}/rotate"),
        &token,
        Some(json!({"previous_valid_for": 3600})),
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let rotated = json(res).await;
    let second = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(rotated["token"]["name"], "deploy pipeline");
    assert_eq!(rotated["token"]["scopes"], json!(["tokens:read"]));
    assert!(rotated["previous"]["expires_at"].as_i64().unwrap() <= created + 3600 + 5);
    assert_eq!(call(&t, Method::GET, "/api/v1/me", &first, None).await.status(), 200, "inside the overlap");
    assert_eq!(call(&t, Method::GET, "/api/v1/me", &second, None).await.status(), 200);
    // The old value names its successor and is neither extended nor
    // rotated again (that would undo the rotation).
    let second_id = rotated["token"]["id"].as_i64().unwrap();
    assert_eq!(rotated["previous"]["replaced_by"], second_id);
    assert_eq!(rotated["token"]["replaced_by"], Value::Null);
    for (op, body) in [("extend", Some(json!({"expires_in": 90 * 86400}))), ("rotate", None)] {
        let res = call(&t, Method::POST, &format!("/api/v1/tokens/{id}/{op}"), &token, body).await;
        assert_eq!(res.status(), 409, "{op}");
        let why = json(res).await["error_description"].as_str().unwrap().to_owned();
        assert!(why.contains(&format!("token {second_id} replaced it")), "{why}");
    }
    assert_eq!(call(&t, Method::GET, "/api/v1/me", &first, None).await.status(), 200, "refusals change nothing");

    // Rotate again without a body: the previous value is revoked at once.
    let res = call(&t, Method::POST, &format!("/api/v1/tokens/{second_id}/rotate"), &token, None).await;
    assert_eq!(res.status(), 201);
    let third = json(res).await;
    assert_eq!(third["previous"]["revoked_reason"], "rotated");
    assert_eq!(call(&t, Method::GET, "/api/v1/me", &second, None).await.status(), 401);
    let third_value = third["access_token"].as_str().unwrap();
    assert_eq!(call(&t, Method::GET, "/api/v1/me", third_value, None).await.status(), 200);

    // Refusals say why: a revoked token, a token-endpoint token, an
    // overlap out of range, an unknown token, a caller without tokens:write.
    let res =
        call(&t, Method::POST, &format!("/api/v1/tokens/{second_id}/extend"), &token, Some(json!({"expires_in": 60})))
            .await;
    assert_eq!(res.status(), 409);
    assert!(json(res).await["error_description"].as_str().unwrap().contains("revoked"));
    let endpoint_token = t.obtain_token(&target, None).await;
    let endpoint_id = json(call(&t, Method::GET, &path, &token, None).await).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"] == "token_endpoint")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let res = call(&t, Method::POST, &format!("/api/v1/tokens/{endpoint_id}/rotate"), &token, None).await;
    assert_eq!(res.status(), 409);
    assert!(json(res).await["error_description"].as_str().unwrap().contains("only named tokens"));
    let third_id = third["token"]["id"].as_i64().unwrap();
    let res = call(
        &t,
        Method::POST,
        &format!("/api/v1/tokens/{third_id}/rotate"),
        &token,
        Some(json!({"previous_valid_for": -1})),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["field"], "previous_valid_for");
    let res = call(&t, Method::POST, "/api/v1/tokens/999999/rotate", &token, None).await;
    assert_eq!(res.status(), 404);
    let res = call(
        &t,
        Method::POST,
        &format!("/api/v1/tokens/{third_id}/extend"),
        &endpoint_token,
        Some(json!({"expires_in": 60})),
    )
    .await;
    assert_eq!(res.status(), 403);

    let audit = json(call(&t, Method::GET, "/api/v1/audit-events?action=token", &token, None).await).await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "token.rotated").count(), 2);
    assert_eq!(actions.iter().filter(|a| **a == "token.extended").count(), 1);
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let t = test_app().await;
    let (_bot, token) = admin_bot(&t).await;
    let res = t.send(Request::get("/api/v1/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), 200);
    let doc = json(res).await;
    let routes = [
        ("get", "/api/v1/me"),
        ("get", "/api/v1/applications"),
        ("post", "/api/v1/applications"),
        ("get", "/api/v1/applications/{id}"),
        ("patch", "/api/v1/applications/{id}"),
        ("delete", "/api/v1/applications/{id}"),
        ("post", "/api/v1/applications/{id}/secret"),
        ("get", "/api/v1/applications/{id}/tokens"),
        ("post", "/api/v1/applications/{id}/tokens"),
        ("delete", "/api/v1/tokens/{id}"),
        ("post", "/api/v1/tokens/{id}/extend"),
        ("post", "/api/v1/tokens/{id}/rotate"),
        ("get", "/api/v1/audit-events"),
        ("get", "/api/v1/scopes"),
        ("post", "/api/v1/scopes"),
        ("delete", "/api/v1/scopes/{name}"),
        ("patch", "/api/v1/scopes/{name}"),
        ("get", "/api/v1/resource-servers"),
        ("post", "/api/v1/resource-servers"),
        ("get", "/api/v1/resource-servers/{id}"),
        ("patch", "/api/v1/resource-servers/{id}"),
        ("delete", "/api/v1/resource-servers/{id}"),
        ("get", "/api/v1/stats"),
        ("get", "/api/v1/applications/{id}/secret/impact"),
        ("delete", "/api/v1/applications/{id}/secrets/{secret_id}"),
        ("get", "/api/v1/attention"),
        ("get", "/api/v1/applications/{id}/activity"),
        ("get", "/api/v1/activity"),
        ("get", "/api/v1/webhooks"),
        ("post", "/api/v1/webhooks"),
        ("get", "/api/v1/webhooks/{id}"),
        ("patch", "/api/v1/webhooks/{id}"),
        ("delete", "/api/v1/webhooks/{id}"),
        ("get", "/api/v1/webhooks/{id}/deliveries"),
        ("post", "/api/v1/webhooks/{id}/test"),
        ("post", "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in routes {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, routes.len(), "the document lists a route this test does not know");
    // Every documented operation is served (never the router's 404/405).
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let uri = path.replace("{id}", "999999");
            let res =
                call(&t, Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), &uri, &token, Some(json!({})))
                    .await;
            assert_ne!(res.status(), 405, "{method} {path}");
            if res.status() == 404 {
                assert_eq!(json(res).await["error"], "not_found", "{method} {path} must be a known route");
            }
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn introspection_own_tokens_or_with_the_introspect_scope() {
    let t = test_app().await;
    let a = t.create_app("a", "tokens:read").await;
    let b = t.create_app("b", "").await;
    let rs = t.create_app("resource-server", "introspect").await;
    let token = t.obtain_token(&a, None).await;
    let body = format!("token={token}");

    let own = json(t.send(form("/oauth2/introspect", (&a.app.client_id, &a.secret), &body)).await).await;
    assert_eq!(own["active"], true);
    assert_eq!(own["client_id"], a.app.client_id.as_str());
    assert_eq!(own["scope"], "tokens:read");
    assert_eq!(own["token_type"], "Bearer");
    assert!(own["exp"].as_i64().unwrap() > own["iat"].as_i64().unwrap());

    let foreign = json(t.send(form("/oauth2/introspect", (&b.app.client_id, &b.secret), &body)).await).await;
    assert_eq!(foreign, json!({"active": false}));
    let res = t.send(form("/oauth2/introspect", (&rs.app.client_id, &rs.secret), &body)).await;
    assert_eq!(res.headers()["x-ratelimit-limit"], "15000");
    assert_eq!(json(res).await["active"], true);

    let unknown =
        json(t.send(form("/oauth2/introspect", (&rs.app.client_id, &rs.secret), "token=kgt_nothing")).await).await;
    assert_eq!(unknown, json!({"active": false}));
    let res = t.send(form("/oauth2/introspect", (&rs.app.client_id, "kgs_wrong"), &body)).await;
    assert_eq!(res.status(), 401);
    assert_eq!(json(res).await["error"], "invalid_client");
    let res = t.send(form("/oauth2/introspect", (&rs.app.client_id, &rs.secret), "")).await;
    assert_eq!(res.status(), 400);

    t.store.regenerate_secret(a.app.id, keygate_server::now()).await.unwrap();
    let after = json(t.send(form("/oauth2/introspect", (&rs.app.client_id, &rs.secret), &body)).await).await;
    assert_eq!(after, json!({"active": false}));
}

#[tokio::test]
async fn revocation_of_own_tokens_only_and_unknown_is_200() {
    let t = test_app().await;
    let a = t.create_app("a", "").await;
    let b = t.create_app("b", "").await;
    let token = t.obtain_token(&a, None).await;
    let body = format!("token={token}&token_type_hint=access_token");
    let res = t.send(form("/oauth2/revoke", (&b.app.client_id, &b.secret), &body)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(t.get_with_token("/api/v1/me", &token).await.status(), 200, "b cannot revoke a's token");
    let res = t.send(form("/oauth2/revoke", (&a.app.client_id, &a.secret), &body)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(t.get_with_token("/api/v1/me", &token).await.status(), 401);
    assert_eq!(t.send(form("/oauth2/revoke", (&a.app.client_id, &a.secret), "token=kgt_unknown")).await.status(), 200);
    assert_eq!(t.send(form("/oauth2/revoke", (&a.app.client_id, "kgs_bad"), &body)).await.status(), 401);
}

#[tokio::test]
async fn rate_limit_headers_and_429() {
    let t = test_app().await;
    let mut s = keygate::ApplicationSettings::new("limited");
    s.rate_per_hour = 3;
    s.rate_per_second = 100;
    let (app, secret) = t.store.create_application(s, keygate_server::now()).await.unwrap();
    let c = Created { app, secret: secret.expose().to_owned() };
    let res = t.token_request(Some((&c.app.client_id, &c.secret)), "grant_type=client_credentials").await;
    assert_eq!(res.headers()["x-ratelimit-limit"], "3");
    assert_eq!(res.headers()["x-ratelimit-remaining"], "2");
    assert!(res.headers().contains_key("x-ratelimit-reset"));
    let token = json(res).await["access_token"].as_str().unwrap().to_owned();
    let res = t.get_with_token("/api/v1/me", &token).await;
    assert_eq!(res.headers()["x-ratelimit-remaining"], "1");
    let res = t.get_with_token("/api/v1/me", &token).await;
    assert_eq!(res.headers()["x-ratelimit-remaining"], "0");
    let res = t.get_with_token("/api/v1/me", &token).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers()[header::RETRY_AFTER].to_str().unwrap().parse::<i64>().unwrap() >= 1);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "0");
    let body = json(res).await;
    assert_eq!(body["error"], "rate_limited");
    assert!(body["error_description"].as_str().unwrap().contains("hourly quota"));
    let res = t.token_request(Some((&c.app.client_id, &c.secret)), "grant_type=client_credentials").await;
    assert_eq!(res.status(), 429, "the token endpoint shares the quota");

    let mut s = keygate::ApplicationSettings::new("per-second");
    s.rate_per_second = 1;
    let (app, secret) = t.store.create_application(s, keygate_server::now()).await.unwrap();
    let c = Created { app, secret: secret.expose().to_owned() };
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            t.token_request(Some((&c.app.client_id, &c.secret)), "grant_type=client_credentials")
                .await
                .status()
                .as_u16(),
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// An application whose tokens are never shown to Keygate (JWTs its APIs
/// check offline) is still in use: its secret's use is its last use.
#[tokio::test]
async fn a_token_request_counts_as_the_applications_use() {
    let t = test_app().await;
    let (_bot, token) = admin_bot(&t).await;
    let worker = t.create_app("offline-checked", "").await;
    let idle = t.create_app("idle", "").await;
    t.state.flush().await;
    let ids =
        |list: &Value| list["items"].as_array().unwrap().iter().map(|a| a["id"].as_i64().unwrap()).collect::<Vec<_>>();
    let never = json(call(&t, Method::GET, "/api/v1/applications?status=never_used", &token, None).await).await;
    assert_eq!(ids(&never), [idle.app.id.0, worker.app.id.0]);

    t.obtain_token(&worker, None).await;
    t.state.flush().await;
    let never = json(call(&t, Method::GET, "/api/v1/applications?status=never_used", &token, None).await).await;
    assert_eq!(ids(&never), [idle.app.id.0]);
    let got =
        json(call(&t, Method::GET, &format!("/api/v1/applications/{}", worker.app.id.0), &token, None).await).await;
    let used = got["last_used_at"].as_i64().expect("the secret's use");
    assert!((keygate_server::now() - used).abs() < 60, "{got}");
    let by_use = json(call(&t, Method::GET, "/api/v1/applications?sort=last_used", &token, None).await).await;
    assert_eq!(*ids(&by_use).last().unwrap(), idle.app.id.0, "never used last");
    assert!(ids(&by_use).contains(&worker.app.id.0));
}

#[tokio::test]
async fn failed_client_authentication_is_limited_and_deduplicated_in_the_audit_log() {
    let t = test_app().await;
    let c = t.create_app("target", "").await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let res = t.token_request(Some((&c.app.client_id, "kgs_guess")), "grant_type=client_credentials").await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(&statuses[10..], &[429, 429]);
    // The right secret is never refused because of failures.
    let res = t.token_request(Some((&c.app.client_id, &c.secret)), "grant_type=client_credentials").await;
    assert_eq!(res.status(), 200);
    t.state.flush().await;
    let events: Vec<Value> = t
        .audit_actions()
        .await
        .into_iter()
        .filter(|(a, _)| a == "client.authentication_failed")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["count"], 10);
    assert_eq!(events[0]["reason"], "wrong_secret");
}

#[tokio::test]
async fn refused_token_uses_are_audited_once_per_minute_with_a_count() {
    let t = test_app().await;
    let (bot, token) = admin_bot(&t).await;
    t.store.regenerate_secret(bot.app.id, keygate_server::now()).await.unwrap();
    for _ in 0..5 {
        assert_eq!(t.get_with_token("/api/v1/me", &token).await.status(), 401);
    }
    t.state.flush().await;
    let refused: Vec<Value> =
        t.audit_actions().await.into_iter().filter(|(a, _)| a == "token.refused").map(|(_, d)| d).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["reason"], "revoked:secret_regenerated");
    assert_eq!(refused[0]["count"], 5);
}

#[tokio::test]
async fn metadata_names_introspection_and_revocation() {
    let t = test_app().await;
    let m =
        json(t.send(Request::get("/.well-known/oauth-authorization-server").body(Body::empty()).unwrap()).await).await;
    assert_eq!(m["introspection_endpoint"], "http://127.0.0.1:3000/oauth2/introspect");
    assert_eq!(m["revocation_endpoint"], "http://127.0.0.1:3000/oauth2/revoke");
}

/// `GET /api/v1/attention` lists the first `limit` lines of each kind and
/// counts them all; a limit out of range is refused with the reason.
#[tokio::test]
async fn attention_lists_the_first_lines_of_each_kind_and_counts_them_all() {
    let t = test_app().await;
    let (_, token) = admin_bot(&t).await;
    let long_ago = keygate_server::now() - 400 * 86_400;
    for i in 1..=3 {
        let settings = keygate::ApplicationSettings::new(format!("idle-{i}"));
        t.store.create_application(settings, long_ago + i).await.unwrap();
    }
    let res = call(&t, Method::GET, "/api/v1/attention?limit=2", &token, None).await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    let names: Vec<&str> = body["dormant_applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["application_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["idle-1", "idle-2"], "longest unused first: {body}");
    assert_eq!(body["totals"]["dormant_applications"], 3, "{body}");
    assert_eq!(body["totals"]["expiring_tokens"], 0, "{body}");
    let all = json(call(&t, Method::GET, "/api/v1/attention", &token, None).await).await;
    assert_eq!(all["dormant_applications"].as_array().unwrap().len(), 3, "{all}");
    let listed = json(call(&t, Method::GET, "/api/v1/applications?status=dormant", &token, None).await).await;
    assert_eq!(listed["total"], 3, "the list's filter, the same rule: {listed}");
    for bad in ["0", "10001"] {
        let res = call(&t, Method::GET, &format!("/api/v1/attention?limit={bad}"), &token, None).await;
        assert_eq!(res.status(), 400, "limit={bad}");
        let body = json(res).await;
        assert_eq!(body["error_description"], "limit is between 1 and 10000", "{body}");
    }
    let res = call(&t, Method::GET, "/api/v1/attention?limit=x", &token, None).await;
    assert_eq!(res.status(), 400);
}
