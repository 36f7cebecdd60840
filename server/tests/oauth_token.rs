//! The token endpoint, metadata and health, through the real router.

mod common;

use axum::body::Body;
use axum::http::{header, Request};
use common::*;

#[tokio::test]
async fn client_secret_basic_issues_a_bearer_token() {
    let t = test_app().await;
    let c = t.create_app("billing-sync", "applications:read tokens:read").await;
    let res = t.token_request(Some((&c.app.client_id, &c.secret)), "grant_type=client_credentials").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert!(res.headers().get(header::SET_COOKIE).is_none(), "the token endpoint sets no cookie");
    let body = json(res).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "applications:read tokens:read");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("kgt_") && token.len() == 47);
    // The database holds only the digest.
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE display_prefix = $1 AND token_hash != $2")
        .bind(&token[..12])
        .bind(token.as_bytes())
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn client_secret_post_and_scope_subset() {
    let t = test_app().await;
    let c = t.create_app("a", "applications:read tokens:read").await;
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=tokens%3Aread&unknown=ignored",
        c.app.client_id, c.secret
    );
    let res = t.token_request(None, &body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["scope"], "tokens:read");
}

#[tokio::test]
async fn body_client_id_beside_basic_must_match() {
    let t = test_app().await;
    let c = t.create_app("a", "").await;
    let ok = format!("grant_type=client_credentials&client_id={}", c.app.client_id);
    assert_eq!(t.token_request(Some((&c.app.client_id, &c.secret)), &ok).await.status(), 200);
    let res =
        t.token_request(Some((&c.app.client_id, &c.secret)), "grant_type=client_credentials&client_id=kgc_other").await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "invalid_request");
    let both = format!("grant_type=client_credentials&client_secret={}", c.secret);
    let res = t.token_request(Some((&c.app.client_id, &c.secret)), &both).await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "invalid_request");
}

#[tokio::test]
async fn scope_outside_the_allowed_set_is_invalid_scope() {
    let t = test_app().await;
    let c = t.create_app("a", "tokens:read").await;
    let res =
        t.token_request(Some((&c.app.client_id, &c.secret)), "grant_type=client_credentials&scope=audit%3Aread").await;
    assert_eq!(res.status(), 400);
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_scope");
    assert!(body["error_description"].as_str().unwrap().contains("audit:read"));
}

#[tokio::test]
async fn wrong_secret_unknown_client_and_disabled_app_are_invalid_client_and_audited() {
    let t = test_app().await;
    let c = t.create_app("a", "").await;
    for (id, secret) in [
        (c.app.client_id.as_str(), "kgs_wrongwrongwrongwrongwrongwrongwrongwrongwro"),
        ("kgc_doesnotexist", c.secret.as_str()),
    ] {
        let res = t.token_request(Some((id, secret)), "grant_type=client_credentials").await;
        assert_eq!(res.status(), 401);
        assert!(res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic"));
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        let body = json(res).await;
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_description"], "client authentication failed");
    }
    let mut s = keygate::ApplicationSettings::new("a");
    s.scopes = keygate::ScopeSet::empty();
    t.store.update_application(c.app.id, s, false, keygate_server::now()).await.unwrap();
    let res = t.token_request(Some((&c.app.client_id, &c.secret)), "grant_type=client_credentials").await;
    assert_eq!(res.status(), 401);
    let reasons: Vec<String> = t
        .audit_actions()
        .await
        .into_iter()
        .filter(|(a, _)| a == "client.authentication_failed")
        .map(|(_, d)| d["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons, vec!["wrong_secret", "unknown_client", "application_disabled"]);
}

#[tokio::test]
async fn malformed_requests_get_invalid_request_never_415_422_or_5xx() {
    let t = test_app().await;
    let c = t.create_app("a", "").await;
    let auth = basic_header(&c.app.client_id, &c.secret);
    let cases: Vec<(Option<&str>, Vec<u8>, u16)> = vec![
        (Some("application/json"), br#"{"grant_type":"client_credentials"}"#.to_vec(), 400),
        (None, b"grant_type=client_credentials".to_vec(), 400),
        (
            Some("application/x-www-form-urlencoded"),
            b"grant_type=client_credentials&grant_type=client_credentials".to_vec(),
            400,
        ),
        (Some("application/x-www-form-urlencoded"), b"grant_type=client_credentials&scope=%FF%FE".to_vec(), 400),
        (Some("application/x-www-form-urlencoded"), b"grant_type=\xff\xfe".to_vec(), 400),
        (Some("application/x-www-form-urlencoded"), b"scope=a".to_vec(), 400),
        (Some("application/x-www-form-urlencoded"), vec![b'a'; 20_000], 413),
    ];
    for (ct, body, status) in cases {
        let mut b = Request::post("/oauth2/token").header(header::AUTHORIZATION, &auth);
        if let Some(ct) = ct {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        let res = t.send(b.body(Body::from(body)).unwrap()).await;
        assert_eq!(res.status().as_u16(), status);
        assert_eq!(json(res).await["error"], "invalid_request");
    }
    let res = t.token_request(Some((&c.app.client_id, &c.secret)), "grant_type=password").await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "unsupported_grant_type");
    let res = t.token_request(None, "grant_type=client_credentials").await;
    assert_eq!(res.status(), 401);
    assert_eq!(json(res).await["error"], "invalid_client");
}

#[tokio::test]
async fn metadata_and_health() {
    let t = test_app().await;
    let res = t.send(Request::get("/.well-known/oauth-authorization-server").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), 200);
    let m = json(res).await;
    assert_eq!(m["issuer"], "http://127.0.0.1:3000");
    assert_eq!(m["token_endpoint"], "http://127.0.0.1:3000/oauth2/token");
    assert_eq!(m["grant_types_supported"], serde_json::json!(["client_credentials"]));
    assert!(m["scopes_supported"].as_array().unwrap().iter().any(|s| s == "audit:read"));
    let res = t.send(Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), 200);
    t.store.close().await;
    let res = t.send(Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), 503);
}

/// 429s, refused scopes and cap evictions reach the audit log (folded like
/// the other refusals) and the application's "Recent failures".
#[tokio::test]
async fn rate_limits_refused_scopes_and_cap_evictions_are_audited_and_shown() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let create = |name: &str, max_tokens: i64, rate_per_second: i64| {
        let mut s = keygate::ApplicationSettings::new(name);
        s.scopes = keygate::ScopeSet::parse("tokens:read").unwrap();
        (s.max_tokens, s.rate_per_second) = (max_tokens, rate_per_second);
        s
    };
    let (app, secret) = t.store.create_application(create("capped", 1, 100), keygate_server::now()).await.unwrap();
    let capped = Created { app, secret: secret.expose().to_owned() };
    let (app, secret) = t.store.create_application(create("tight", 30, 1), keygate_server::now()).await.unwrap();
    let tight = Created { app, secret: secret.expose().to_owned() };

    let basic = Some((capped.app.client_id.as_str(), capped.secret.as_str()));
    let res = t.token_request(basic, "grant_type=client_credentials&scope=audit%3Awrite").await;
    assert_eq!(json(res).await["error"], "invalid_scope");
    // Three tokens under a cap of one: two evictions.
    for _ in 0..3 {
        assert_eq!(t.token_request(basic, "grant_type=client_credentials").await.status(), 200);
    }
    // At 1/s, six requests in a row meet 429s (a second may roll over
    // between two of them, never between all).
    let basic = Some((tight.app.client_id.as_str(), tight.secret.as_str()));
    let mut refused = 0;
    for _ in 0..6 {
        refused += i64::from(t.token_request(basic, "grant_type=client_credentials").await.status() == 429);
    }
    assert!(refused >= 2, "{refused}");
    t.state.flush().await;

    let actions = t.audit_actions().await;
    let of = |name: &str| actions.iter().filter(|(a, _)| a == name).map(|(_, d)| d.clone()).collect::<Vec<_>>();
    let counted = |events: &[serde_json::Value]| events.iter().map(|d| d["count"].as_i64().unwrap()).sum::<i64>();
    let scope = of("application.scope_refused");
    assert_eq!(scope.len(), 1);
    assert_eq!(
        (scope[0]["error"].as_str(), scope[0]["requested"].as_str()),
        (Some("invalid_scope"), Some("audit:write"))
    );
    // Folded: one event a minute, counting every refusal.
    let limited = of("application.rate_limited");
    assert!(!limited.is_empty() && limited.len() <= 2, "{limited:?}");
    assert_eq!(counted(&limited), refused);
    assert_eq!(limited[0]["limit"], "per_second");
    let evicted = of("token.evicted");
    assert_eq!(counted(&evicted), 2);
    assert_eq!(evicted[0]["cap"], 1);

    // The applications' pages and the refusals filter show them as sentences.
    let html_of = |path: String| {
        let t = &t;
        let cookie = cookie.clone();
        async move { String::from_utf8(body_bytes(page(t, &path, Some(&cookie)).await).await).unwrap() }
    };
    let html = html_of(format!("/applications/{}", capped.app.id.0)).await;
    assert!(html.contains("Recent failures"));
    assert!(html.contains("capped was refused a token (invalid_scope): it asked for \"audit:write\""), "{html}");
    assert!(
        html.contains("capped reached its cap of 1 valid tokens: its oldest token was revoked for a new one (2 times)")
    );
    let html = html_of(format!("/applications/{}", tight.app.id.0)).await;
    assert!(html.contains("tight was refused for going over its limit of 1 requests a second"), "{html}");
    let html = html_of("/audit?action=refusals".into()).await;
    for code in ["application.rate_limited", "application.scope_refused", "token.evicted"] {
        assert!(html.contains(code), "{code}");
    }
}
