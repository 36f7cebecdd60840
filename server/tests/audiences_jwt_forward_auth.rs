//! Resource servers and audiences on the token endpoint and introspection,
//! JWT access tokens verified against the JWKS with an independent
//! library, and forward-auth, through the real router (both backends).

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, Response};
use common::*;
use keygate::usecase::{resource_servers, scopes, Caller};
use serde_json::{json, Value};

const BILLING: &str = "https://billing.internal/";

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

fn form(path: &str, auth: (&str, &str), body: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, basic_header(auth.0, auth.1))
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// A billing resource server with two scopes, and an application allowed
/// one of them and one of Keygate's.
async fn billing(t: &TestApp) -> Created {
    let cli = Caller::cli(keygate_server::now());
    resource_servers::add_resource_server(&t.store, &cli, "Billing", BILLING).await.unwrap();
    scopes::add_scope(&t.store, &cli, "billing:read", "Read invoices", Some(BILLING)).await.unwrap();
    scopes::add_scope(&t.store, &cli, "billing:write", "Write invoices", Some(BILLING)).await.unwrap();
    t.create_app("reporting", "applications:read billing:read").await
}

async fn token_for(t: &TestApp, c: &Created, body: &str) -> Response<Body> {
    t.token_request(Some((&c.app.client_id, &c.secret)), &format!("grant_type=client_credentials{body}")).await
}

async fn introspect(t: &TestApp, who: &Created, token: &str) -> Value {
    let res = t.send(form("/oauth2/introspect", (&who.app.client_id, &who.secret), &format!("token={token}"))).await;
    assert_eq!(res.status(), 200);
    json(res).await
}

#[tokio::test]
async fn resource_and_audience_narrow_the_token_and_unknown_ones_are_invalid_target() {
    let t = test_app().await;
    let c = billing(&t).await;
    // No target: every server the scopes belong to.
    let res = token_for(&t, &c, "").await;
    assert_eq!(res.status(), 200);
    let all = json(res).await["access_token"].as_str().unwrap().to_owned();
    let me = &c;
    assert_eq!(introspect(&t, me, &all).await["aud"], json!([BILLING, "urn:keygate:api"]));

    // RFC 8707 resource: only that server's scopes, only that audience.
    let res = token_for(&t, &c, "&resource=https%3A%2F%2Fbilling.internal%2F").await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["scope"], "billing:read");
    let narrow = body["access_token"].as_str().unwrap().to_owned();
    let seen = introspect(&t, me, &narrow).await;
    assert_eq!(seen["aud"], json!([BILLING]));
    assert_eq!(seen["scope"], "billing:read");
    // Such a token no longer reaches Keygate's API routes that need its scopes.
    assert_eq!(t.get_with_token("/api/v1/applications", &narrow).await.status(), 403);

    // `audience` works the same; `resource` may repeat.
    let res = token_for(&t, &c, "&audience=urn%3Akeygate%3Aapi").await;
    assert_eq!(json(res).await["scope"], "applications:read");
    let res = token_for(&t, &c, "&resource=urn%3Akeygate%3Aapi&resource=https%3A%2F%2Fbilling.internal%2F").await;
    assert_eq!(json(res).await["scope"], "applications:read billing:read");

    // Unknown, unreachable and malformed targets.
    for (target, why) in [
        ("https%3A%2F%2Fnowhere.internal%2F", "not a resource server"),
        ("not-a-uri", "absolute URI"),
        ("https%3A%2F%2Fbilling.internal%2F%23frag", "absolute URI"),
    ] {
        let res = token_for(&t, &c, &format!("&resource={target}")).await;
        assert_eq!(res.status(), 400, "{target}");
        let body = json(res).await;
        assert_eq!(body["error"], "invalid_target", "{target}");
        assert!(body["error_description"].as_str().unwrap().contains(why), "{body}");
    }
    let other = t.create_app("no-billing", "applications:read").await;
    let res = token_for(&t, &other, "&resource=https%3A%2F%2Fbilling.internal%2F").await;
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_target");
    assert!(body["error_description"].as_str().unwrap().contains("no scope"), "{body}");
    // A requested scope outside the target leaves nothing: invalid_scope.
    let res = token_for(&t, &c, "&scope=applications%3Aread&resource=https%3A%2F%2Fbilling.internal%2F").await;
    assert_eq!(json(res).await["error"], "invalid_scope");
    // `audience` is single; a repeat is invalid_request.
    let res = token_for(&t, &c, "&audience=a%3Ab&audience=a%3Ac").await;
    assert_eq!(json(res).await["error"], "invalid_request");
}

#[tokio::test]
async fn a_resource_servers_introspection_client_sees_exactly_its_tokens() {
    let t = test_app().await;
    let c = billing(&t).await;
    let for_billing = json(token_for(&t, &c, "&resource=https%3A%2F%2Fbilling.internal%2F").await).await
        ["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let for_keygate = json(token_for(&t, &c, "&audience=urn%3Akeygate%3Aapi").await).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut s = keygate::ApplicationSettings::new("billing-gateway");
    s.introspects = Some(BILLING.into());
    let (gateway, secret) = t.store.create_application(s, keygate_server::now()).await.unwrap();
    let gateway = Created { app: gateway, secret: secret.expose().to_owned() };
    let seen = introspect(&t, &gateway, &for_billing).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["client_id"], c.app.client_id.as_str());
    // A token for both servers: the gateway sees only its server's scopes.
    let for_both = json(token_for(&t, &c, "").await).await["access_token"].as_str().unwrap().to_owned();
    let seen = introspect(&t, &gateway, &for_both).await;
    assert_eq!(seen["scope"], "billing:read");
    assert_eq!(seen["aud"], json!([BILLING, "urn:keygate:api"]));
    assert_eq!(introspect(&t, &gateway, &for_keygate).await, json!({ "active": false }));
    // The global `introspect` scope still sees every token.
    let global = t.create_app("global-introspector", "introspect").await;
    assert_eq!(introspect(&t, &global, &for_keygate).await["active"], true);
    assert_eq!(introspect(&t, &global, &for_billing).await["active"], true);
}

#[tokio::test]
async fn resource_servers_through_the_api() {
    let t = test_app().await;
    let bot = t.create_app("bot", "scopes:read scopes:write applications:read").await;
    let token = t.obtain_token(&bot, None).await;
    let reader = t.create_app("reader", "applications:read").await;
    let reader_token = t.obtain_token(&reader, None).await;
    assert_eq!(call(&t, Method::GET, "/api/v1/resource-servers", &reader_token, None).await.status(), 403);

    let res = call(&t, Method::GET, "/api/v1/resource-servers", &token, None).await;
    assert_eq!(res.status(), 200);
    let list = json(res).await;
    assert_eq!(list["items"][0]["identifier"], "urn:keygate:api");
    assert_eq!(list["items"][0]["builtin"], true);
    assert!(list["items"][0]["scopes"].as_array().unwrap().contains(&json!("applications:read")));

    let res = call(
        &t,
        Method::POST,
        "/api/v1/resource-servers",
        &token,
        Some(json!({"name": "Billing", "identifier": BILLING})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let created = json(res).await;
    let id = created["id"].as_i64().unwrap();
    let res = call(
        &t,
        Method::POST,
        "/api/v1/resource-servers",
        &token,
        Some(json!({"name": "Bad", "identifier": "no scheme"})),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["field"], "identifier");
    let res = call(
        &t,
        Method::POST,
        "/api/v1/resource-servers",
        &token,
        Some(json!({"name": "x", "identifier": "urn:x", "extra": 1})),
    )
    .await;
    assert_eq!(res.status(), 400, "unknown fields are refused");

    let res = call(
        &t,
        Method::POST,
        "/api/v1/scopes",
        &token,
        Some(json!({"name": "billing:read", "description": "Read", "resource_server": BILLING})),
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(json(res).await["resource_server"], BILLING);
    let res =
        call(&t, Method::POST, "/api/v1/scopes", &token, Some(json!({"name": "loose", "description": "Loose"}))).await;
    assert_eq!(json(res).await["resource_server"], Value::Null);
    let res = call(&t, Method::PATCH, "/api/v1/scopes/loose", &token, Some(json!({}))).await;
    assert_eq!(res.status(), 400, "an empty change does not silently detach");
    let res = call(&t, Method::PATCH, "/api/v1/scopes/loose", &token, Some(json!({"resource_server": ""}))).await;
    assert_eq!(res.status(), 400, "null detaches, an empty string is a mistake");
    // Identifiers are unique whatever their case.
    let twin = json!({"name": "Twin", "identifier": "urn:Keygate:API"});
    assert_eq!(call(&t, Method::POST, "/api/v1/resource-servers", &token, Some(twin)).await.status(), 400);
    let res = call(&t, Method::PATCH, "/api/v1/scopes/loose", &token, Some(json!({"resource_server": BILLING}))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["resource_server"], BILLING);
    let res =
        call(&t, Method::PATCH, "/api/v1/scopes/tokens:read", &token, Some(json!({"resource_server": BILLING}))).await;
    assert_eq!(res.status(), 409, "Keygate's scopes stay with its API");

    let path = format!("/api/v1/resource-servers/{id}");
    let res = call(&t, Method::PATCH, &path, &token, Some(json!({"name": "Billing API"}))).await;
    assert_eq!(res.status(), 200);
    let renamed = json(res).await;
    assert_eq!(renamed["name"], "Billing API");
    assert_eq!(renamed["identifier"], BILLING);
    assert_eq!(renamed["scopes"], json!(["billing:read", "loose"]));
    let res = call(&t, Method::DELETE, &path, &token, None).await;
    assert_eq!(res.status(), 409);
    assert!(json(res).await["error_description"].as_str().unwrap().contains("billing:read"));
    for scope in ["billing:read", "loose"] {
        call(&t, Method::PATCH, &format!("/api/v1/scopes/{scope}"), &token, Some(json!({"resource_server": null})))
            .await;
    }
    assert_eq!(call(&t, Method::DELETE, &path, &token, None).await.status(), 204);
    assert_eq!(call(&t, Method::GET, &path, &token, None).await.status(), 404);
    assert_eq!(call(&t, Method::DELETE, "/api/v1/resource-servers/1", &token, None).await.status(), 409);

    // A token moves a scope some application is allowed only if it holds it.
    t.create_app("holder", "billing:read").await;
    let mover = t.create_app("mover", "scopes:write").await;
    let mover_token = t.obtain_token(&mover, None).await;
    let to_billing = json!({"resource_server": BILLING});
    let res = call(&t, Method::PATCH, "/api/v1/scopes/billing:read", &mover_token, Some(to_billing)).await;
    assert_eq!(res.status(), 403);

    // Applications carry token_format and introspects. Making one an
    // introspection client takes a token that may introspect itself.
    let weak = t.create_app("weak-admin", "applications:read applications:write").await;
    let weak_token = t.obtain_token(&weak, None).await;
    let asked = json!({"name": "jwt-app", "token_format": "jwt", "introspects": "urn:keygate:api"});
    let res = call(&t, Method::POST, "/api/v1/applications", &weak_token, Some(asked.clone())).await;
    assert_eq!(res.status(), 403);
    assert_eq!(json(res).await["error"], "insufficient_scope");
    let admin = t.create_app("admin", "applications:read applications:write introspect").await;
    let admin_token = t.obtain_token(&admin, None).await;
    let res = call(&t, Method::POST, "/api/v1/applications", &admin_token, Some(asked)).await;
    assert_eq!(res.status(), 201);
    let app = json(res).await["application"].clone();
    assert_eq!(app["token_format"], "jwt");
    assert_eq!(app["introspects"], "urn:keygate:api");
    let path = format!("/api/v1/applications/{}", app["id"]);
    // The weaker token cannot take it over (new secret, tokens) either.
    let res = call(&t, Method::POST, &format!("{path}/secret"), &weak_token, None).await;
    assert_eq!(res.status(), 403);
    let res =
        call(&t, Method::PATCH, &path, &admin_token, Some(json!({"introspects": null, "token_format": "opaque"})))
            .await;
    let app = json(res).await;
    assert_eq!((app["token_format"].as_str(), app["introspects"].as_str()), (Some("opaque"), None));
    let res = call(&t, Method::PATCH, &path, &admin_token, Some(json!({"token_format": "paseto"}))).await;
    assert_eq!(res.status(), 400);
}

async fn jwks(t: &TestApp) -> (Value, Response<Body>) {
    let res = t.send(Request::get("/oauth2/jwks").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    let body = json(res).await;
    let mut copy = Response::new(Body::empty());
    *copy.headers_mut() = headers;
    (body, copy)
}

fn verify(token: &str, set: &Value, audience: &str) -> jsonwebtoken::TokenData<Value> {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(set.clone()).unwrap();
    let jwk = set.find(header.kid.as_deref().expect("a kid")).expect("the kid is in the JWKS");
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[audience]);
    v.set_issuer(&["http://127.0.0.1:3000"]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    jsonwebtoken::decode(token, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &v).expect("the signature verifies")
}

#[tokio::test]
async fn jwt_access_tokens_verify_against_the_jwks_and_are_recorded_like_opaque_ones() {
    let t = test_app().await;
    let meta =
        json(t.send(Request::get("/.well-known/oauth-authorization-server").body(Body::empty()).unwrap()).await).await;
    assert_eq!(meta["jwks_uri"], "http://127.0.0.1:3000/oauth2/jwks");
    let (set, res) = jwks(&t).await;
    assert_eq!(res.headers()[header::CACHE_CONTROL], "public, max-age=300");
    assert_eq!(set["keys"].as_array().unwrap().len(), 1);
    let key = &set["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str(), key["use"].as_str()),
        (Some("EC"), Some("ES256"), Some("sig"))
    );
    assert!(key.get("d").is_none(), "no private part is published");

    let mut s = keygate::ApplicationSettings::new("jwt-app");
    s.scopes = keygate::ScopeSet::parse("applications:read tokens:read").unwrap();
    s.token_format = keygate::TokenFormat::Jwt;
    s.max_tokens = 1;
    let (app, secret) = t.store.create_application(s, keygate_server::now()).await.unwrap();
    let c = Created { app, secret: secret.expose().to_owned() };
    let res = token_for(&t, &c, "").await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "a compact JWS");
    let data = verify(&token, &set, "urn:keygate:api");
    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(data.header.alg, jsonwebtoken::Algorithm::ES256);
    let claims = data.claims;
    assert_eq!(claims["iss"], "http://127.0.0.1:3000");
    assert_eq!(claims["sub"], c.app.client_id.as_str());
    assert_eq!(claims["client_id"], c.app.client_id.as_str());
    assert_eq!(claims["aud"], "urn:keygate:api");
    assert_eq!(claims["scope"], "applications:read tokens:read");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    assert!(claims["jti"].as_str().unwrap().len() >= 22);
    assert_eq!(body["expires_in"], 3600);

    // Keygate itself accepts it as a bearer token and records its use.
    let res = t.get_with_token("/api/v1/me", &token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["application"]["client_id"], c.app.client_id.as_str());
    let stored: (String, Option<String>) =
        sqlx::query_as("SELECT display_prefix, signing_key_id FROM tokens WHERE application_id = $1")
            .bind(c.app.id.0)
            .fetch_one(&t.db)
            .await
            .unwrap();
    assert!(stored.0.starts_with("jwt_"));
    assert_eq!(stored.1.as_deref(), data.header.kid.as_deref());
    if !t.on_postgres() {
        // Nothing on disk holds the token (its signature is its secret part).
        let path = t.url.trim_start_matches("sqlite:").split('?').next().unwrap().to_owned();
        let mut disk = std::fs::read(&path).unwrap();
        disk.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        let signature = token.rsplit('.').next().unwrap().as_bytes();
        assert!(!disk.windows(signature.len()).any(|w| w == signature), "the JWT is not stored");
    }
    t.state.flush().await;
    let used: Option<i64> = sqlx::query_scalar("SELECT last_used_at FROM tokens WHERE application_id = $1")
        .bind(c.app.id.0)
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert!(used.is_some(), "last used is recorded for a JWT too");

    // The cap applies: a second token evicts the first.
    let second = json(token_for(&t, &c, "").await).await["access_token"].as_str().unwrap().to_owned();
    let res = t.get_with_token("/api/v1/me", &token).await;
    assert_eq!(res.status(), 401);
    // Revocation (RFC 7009) and introspection work on JWTs.
    assert_eq!(introspect(&t, &c, &second).await["active"], true);
    let res = t.send(form("/oauth2/revoke", (&c.app.client_id, &c.secret), &format!("token={second}"))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(introspect(&t, &c, &second).await, json!({ "active": false }));
    // A JWT Keygate did not record (here: a changed signature) is unknown.
    let forged = format!("{}.{}.AAAA", token.split('.').next().unwrap(), token.split('.').nth(1).unwrap());
    assert_eq!(t.get_with_token("/api/v1/me", &forged).await.status(), 401);
}

#[tokio::test]
async fn a_jwt_without_an_audience_is_refused() {
    let t = test_app().await;
    scopes::add_scope(&t.store, &Caller::cli(keygate_server::now()), "loose:read", "Unattached", None).await.unwrap();
    let mut s = keygate::ApplicationSettings::new("jwt-loose");
    s.scopes = keygate::ScopeSet::parse("loose:read").unwrap();
    s.token_format = keygate::TokenFormat::Jwt;
    let (app, secret) = t.store.create_application(s, keygate_server::now()).await.unwrap();
    let c = Created { app, secret: secret.expose().to_owned() };
    let res = token_for(&t, &c, "").await;
    assert_eq!(res.status(), 400);
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_target");
    assert!(body["error_description"].as_str().unwrap().contains("audience"), "{body}");
}

async fn forward(t: &TestApp, query: &str, token: Option<&str>) -> Response<Body> {
    let mut b = Request::get(format!("/oauth2/forward-auth{query}"));
    if let Some(token) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    t.send(b.body(Body::empty()).unwrap()).await
}

fn challenge(res: &Response<Body>) -> String {
    res.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn forward_auth_answers_as_design_says_for_both_formats() {
    let t = test_app().await;
    let c = billing(&t).await;
    let mut s = keygate::ApplicationSettings::new("jwt-reporting");
    s.scopes = keygate::ScopeSet::parse("billing:read").unwrap();
    s.token_format = keygate::TokenFormat::Jwt;
    let (app, secret) = t.store.create_application(s, keygate_server::now()).await.unwrap();
    let jwt_app = Created { app, secret: secret.expose().to_owned() };

    let res = forward(&t, "?scope=billing:read", None).await;
    assert_eq!(res.status(), 401);
    assert_eq!(challenge(&res), "Bearer realm=\"keygate\"");
    let res = forward(&t, "?scope=billing%22read", None).await;
    assert_eq!(res.status(), 400, "a route's query that could not be a scope is a configuration error");
    let res = forward(&t, "?scope=billing:read", Some("kgt_not-a-real-token")).await;
    assert_eq!(res.status(), 401);
    assert!(challenge(&res).contains("error=\"invalid_token\""));

    for who in [&c, &jwt_app] {
        let token = t.obtain_token(who, None).await;
        let res = forward(&t, "?scope=billing:read&audience=https%3A%2F%2Fbilling.internal%2F", Some(&token)).await;
        assert_eq!(res.status(), 200, "{}", who.app.name);
        let h = res.headers().clone();
        assert_eq!(h["x-keygate-client-id"], who.app.client_id.as_str());
        assert_eq!(h["x-keygate-application"], who.app.name.as_str());
        assert_eq!(h["x-keygate-application-id"], who.app.id.0.to_string().as_str());
        assert!(h["x-keygate-scopes"].to_str().unwrap().contains("billing:read"));
        assert!(h["x-keygate-token-id"].to_str().unwrap().parse::<i64>().is_ok());
        assert!(h.contains_key("x-ratelimit-remaining"));
        assert!(body_bytes(res).await.is_empty());

        // Comma- or space-separated, all required.
        let res = forward(&t, "?scope=billing:read,billing:write", Some(&token)).await;
        assert_eq!(res.status(), 403);
        let ch = challenge(&res);
        assert!(
            ch.contains("error=\"insufficient_scope\"") && ch.contains("scope=\"billing:read billing:write\""),
            "{ch}"
        );
        let res = forward(&t, "?audience=https%3A%2F%2Fother.internal%2F", Some(&token)).await;
        assert_eq!(res.status(), 401);
        assert!(challenge(&res).contains("invalid_token"));

        // Revoked: refused at once, whatever the format.
        let res = t.send(form("/oauth2/revoke", (&who.app.client_id, &who.secret), &format!("token={token}"))).await;
        assert_eq!(res.status(), 200);
        let res = forward(&t, "?scope=billing:read", Some(&token)).await;
        assert_eq!(res.status(), 401);
        assert!(challenge(&res).contains("invalid_token"));
    }
    let actions = t.audit_actions().await;
    let refusals: Vec<&Value> =
        actions.iter().filter(|(a, d)| a == "token.refused" && d["via"] == "forward_auth").map(|(_, d)| d).collect();
    assert!(refusals.iter().any(|d| d["reason"] == "insufficient_scope"), "{actions:?}");
    assert!(refusals.iter().any(|d| d["reason"] == "wrong_audience"), "{actions:?}");
    assert!(actions.iter().any(|(a, d)| {
        a == "token.refused" && d["reason"].as_str().unwrap_or("").starts_with("revoked") && d["via"] == "forward_auth"
    }));

    // Losing its last scope of a server takes the server out of the
    // token's audience at once.
    let token = t.obtain_token(&c, None).await;
    let res = forward(&t, "?audience=https%3A%2F%2Fbilling.internal%2F", Some(&token)).await;
    assert_eq!(res.status(), 200);
    let mut narrowed = keygate::ApplicationSettings::of(&c.app);
    narrowed.scopes = keygate::ScopeSet::parse("applications:read").unwrap();
    let change = keygate::usecase::applications::ApplicationChange::settings(narrowed);
    keygate::usecase::applications::update_application(&t.store, &Caller::cli(keygate_server::now()), c.app.id, change)
        .await
        .unwrap();
    let res = forward(&t, "?audience=https%3A%2F%2Fbilling.internal%2F", Some(&token)).await;
    assert_eq!(res.status(), 401, "no scope of Billing left: not for Billing any more");
    assert_eq!(introspect(&t, &c, &token).await["aud"], json!(["urn:keygate:api"]));
}

#[tokio::test]
async fn forward_auth_counts_toward_the_rate_limit() {
    let t = test_app().await;
    let mut s = keygate::ApplicationSettings::new("tiny");
    s.rate_per_second = 2;
    s.rate_per_hour = 1000;
    let (app, secret) = t.store.create_application(s, keygate_server::now()).await.unwrap();
    let c = Created { app, secret: secret.expose().to_owned() };
    let token = t.obtain_token(&c, None).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let res = forward(&t, "", Some(&token)).await;
        if res.status() == 429 {
            assert!(res.headers().contains_key(header::RETRY_AFTER));
        }
        statuses.push(res.status().as_u16());
    }
    assert!(statuses.contains(&200) && statuses.contains(&429), "{statuses:?}");
}
