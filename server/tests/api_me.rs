//! Bearer checks on /api/v1 (RFC 6750).

mod common;

use axum::body::Body;
use axum::http::{header, Request};
use common::*;
use keygate::ScopeSet;

#[tokio::test]
async fn me_describes_the_caller() {
    let t = test_app().await;
    let c = t.create_app("billing-sync", "tokens:read").await;
    let token = t.obtain_token(&c, None).await;
    let res = t.get_with_token("/api/v1/me", &token).await;
    assert_eq!(res.status(), 200);
    let me = json(res).await;
    assert_eq!(me["application"]["name"], "billing-sync");
    assert_eq!(me["application"]["client_id"], c.app.client_id.as_str());
    assert_eq!(me["token"]["scopes"], serde_json::json!(["tokens:read"]));
    // Last use is recorded in memory (the token's, and the secret's that
    // obtained it), written by the flush.
    assert_eq!(t.state.usage.pending_count(), 2);
    t.state.usage.flush(&t.store).await.unwrap();
    let tokens = t.store.list_tokens(c.app.id, 1, 200, None).await.unwrap().items;
    assert!(tokens[0].last_used_at.is_some());
}

#[tokio::test]
async fn missing_token_gets_a_bare_bearer_challenge() {
    let t = test_app().await;
    let res = t.send(Request::get("/api/v1/me").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer realm=\"keygate\"");
    let res = t
        .send(Request::get("/api/v1/me").header(header::AUTHORIZATION, "Basic abc").body(Body::empty()).unwrap())
        .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn unknown_expired_and_revoked_tokens_are_invalid_token() {
    let t = test_app().await;
    let c = t.create_app("a", "").await;
    let now = keygate_server::now();
    let res = t.get_with_token("/api/v1/me", "kgt_nonsense").await;
    assert_eq!(res.status(), 401);
    let challenge = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(json(res).await["error"], "invalid_token");

    // Minted in the past so it has already expired.
    let request = keygate::usecase::tokens::MintRequest {
        name: "old".into(),
        scopes: ScopeSet::empty(),
        expiry: keygate::TokenExpiry::At(now - 10),
    };
    let expired =
        keygate::usecase::tokens::mint_token(&t.store, &keygate::usecase::Caller::cli(now - 100), c.app.id, request)
            .await
            .unwrap();
    let res = t.get_with_token("/api/v1/me", expired.token.expose()).await;
    assert_eq!(res.status(), 401);
    assert!(json(res).await["error_description"].as_str().unwrap().contains("expired"));

    let live = t.obtain_token(&c, None).await;
    assert_eq!(t.get_with_token("/api/v1/me", &live).await.status(), 200);
    let (_secret, revoked) = t.store.regenerate_secret(c.app.id, now).await.unwrap();
    assert_eq!(revoked, 2);
    let res = t.get_with_token("/api/v1/me", &live).await;
    assert_eq!(res.status(), 401);
    assert!(json(res).await["error_description"].as_str().unwrap().contains("revoked"));

    let refused: Vec<String> = t
        .audit_actions()
        .await
        .into_iter()
        .filter(|(a, _)| a == "token.refused")
        .map(|(_, d)| d["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(refused, vec!["expired", "revoked:secret_regenerated"]);
}

#[tokio::test]
async fn unknown_api_route_is_json_404() {
    let t = test_app().await;
    let res = t.send(Request::get("/api/v1/nothing").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), 404);
    assert_eq!(json(res).await["error"], "not_found");
}
