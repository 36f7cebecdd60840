//! The security hardening, through the real router on a real database:
//! every test here failed on the code before the fix it names.

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use base64::Engine;
use common::*;
use serde_json::json;
use std::net::SocketAddr;

const ALL_KEYGATE_SCOPES: &str = "applications:read applications:write tokens:read tokens:write audit:read";

fn from(mut req: Request<Body>, ip: &str) -> Request<Body> {
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

fn api(method: &str, path: &str, token: &str, body: Option<serde_json::Value>) -> Request<Body> {
    let b = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {token}"));
    match body {
        Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string())).unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

// ----------------------------------------------------------------- item 1

#[tokio::test]
async fn a_token_cannot_act_on_an_application_holding_scopes_it_lacks() {
    let t = test_app().await;
    let root = t.create_app("root", ALL_KEYGATE_SCOPES).await;
    let root_token = t.obtain_token(&root, None).await;
    let weaker = t.create_app("weaker", "applications:read").await;
    let writer = t.create_app("writer", "applications:read applications:write tokens:read tokens:write").await;
    let w = t.obtain_token(&writer, None).await;
    let root_id = root.app.id.0;
    let root_token_id: i64 = sqlx::query_scalar("SELECT id FROM tokens WHERE application_id = $1")
        .bind(root_id)
        .fetch_one(&t.db)
        .await
        .unwrap();

    let attempts = [
        api("POST", &format!("/api/v1/applications/{root_id}/secret"), &w, None),
        api("PATCH", &format!("/api/v1/applications/{root_id}"), &w, Some(json!({"enabled": false}))),
        api("PATCH", &format!("/api/v1/applications/{root_id}"), &w, Some(json!({"notes": "mine now"}))),
        api("DELETE", &format!("/api/v1/applications/{root_id}"), &w, None),
        api("GET", &format!("/api/v1/applications/{root_id}/tokens"), &w, None),
        api(
            "POST",
            &format!("/api/v1/applications/{root_id}/tokens"),
            &w,
            Some(json!({"name": "backdoor", "expires_in": 3600})),
        ),
        api("DELETE", &format!("/api/v1/tokens/{root_token_id}"), &w, None),
    ];
    for req in attempts {
        let what = format!("{} {}", req.method(), req.uri());
        let res = t.send(req).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{what}");
        let challenge = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        assert!(challenge.contains("insufficient_scope"), "{what}: {challenge}");
        let body = json(res).await;
        assert_eq!(body["error"], "insufficient_scope", "{what}");
        assert!(body["error_description"].as_str().unwrap().contains("audit:read"), "{what}: {body}");
    }
    // Nothing changed: the root token still works, its secret too.
    assert_eq!(t.get_with_token("/api/v1/me", &root_token).await.status(), 200);
    t.obtain_token(&root, None).await;
    let app = t.store.application(root.app.id, 0).await.unwrap().unwrap();
    assert!(app.enabled && app.notes.is_empty());
    let refused: Vec<_> =
        t.audit_actions().await.into_iter().filter(|(a, _)| a == "application.access_refused").collect();
    assert_eq!(refused.len(), 7);
    assert_eq!(refused[0].1["reason"], "scope_ceiling");
    assert_eq!(refused[0].1["operation"], "regenerate_secret");

    // An application whose scopes the caller holds is fair game.
    let res = t.send(api("POST", &format!("/api/v1/applications/{}/secret", weaker.app.id.0), &w, None)).await;
    assert_eq!(res.status(), 200);
    // Its own application too, as long as the token carries all its scopes.
    let res = t.send(api("GET", &format!("/api/v1/applications/{}/tokens", writer.app.id.0), &w, None)).await;
    assert_eq!(res.status(), 200);
    let narrow = t.obtain_token(&writer, Some("tokens:read")).await;
    let res = t.send(api("GET", &format!("/api/v1/applications/{}/tokens", writer.app.id.0), &narrow, None)).await;
    assert_eq!(res.status(), 403, "a narrowed token cannot see its own application's tokens");
}

// ----------------------------------------------------------------- item 6

#[tokio::test]
async fn a_scope_removed_from_the_application_is_gone_from_its_tokens_at_once() {
    let t = test_app().await;
    let c = t.create_app("reader", "applications:read").await;
    let token = t.obtain_token(&c, None).await;
    assert_eq!(t.get_with_token("/api/v1/applications", &token).await.status(), 200);
    let mut s = keygate::ApplicationSettings::of(&c.app);
    s.scopes = keygate::ScopeSet::empty();
    t.store.update_application(c.app.id, s, true, keygate_server::now()).await.unwrap();
    assert_eq!(t.get_with_token("/api/v1/applications", &token).await.status(), 403);
    let me = json(t.get_with_token("/api/v1/me", &token).await).await;
    assert_eq!(me["token"]["scope"], "");
    let res = t
        .send(
            Request::post("/oauth2/introspect")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, basic_header(&c.app.client_id, &c.secret))
                .body(Body::from(format!("token={token}")))
                .unwrap(),
        )
        .await;
    let body = json(res).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "");
}

// ---------------------------------------------------------------- item 15

#[tokio::test]
async fn disabling_revokes_tokens_and_enabling_does_not_revive_them() {
    let t = test_app().await;
    let admin = t.create_app("admin", ALL_KEYGATE_SCOPES).await;
    let a = t.obtain_token(&admin, None).await;
    let c = t.create_app("paused", "applications:read").await;
    let token = t.obtain_token(&c, None).await;
    let path = format!("/api/v1/applications/{}", c.app.id.0);
    assert_eq!(t.send(api("PATCH", &path, &a, Some(json!({"enabled": false})))).await.status(), 200);
    assert_eq!(t.get_with_token("/api/v1/me", &token).await.status(), 401);
    assert_eq!(t.send(api("PATCH", &path, &a, Some(json!({"enabled": true})))).await.status(), 200);
    let res = t.get_with_token("/api/v1/me", &token).await;
    assert_eq!(res.status(), 401, "the old token stays dead");
    assert!(json(res).await["error_description"].as_str().unwrap().contains("revoked"));
    // New tokens work again.
    let fresh = t.obtain_token(&c, None).await;
    assert_eq!(t.get_with_token("/api/v1/me", &fresh).await.status(), 200);
}

// ----------------------------------------------------------------- item 7

#[tokio::test]
async fn failures_from_one_address_never_lock_the_client_out_elsewhere() {
    let t = test_app().await;
    let c = t.create_app("victim", "").await;
    let token_req = |secret: &str, ip: &str| {
        from(
            Request::post("/oauth2/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, basic_header(&c.app.client_id, secret))
                .body(Body::from("grant_type=client_credentials"))
                .unwrap(),
            ip,
        )
    };
    let wrong = format!("kgs_{}", "x".repeat(43));
    for _ in 0..10 {
        assert_eq!(t.send(token_req(&wrong, "10.0.0.66")).await.status(), 401);
    }
    assert_eq!(t.send(token_req(&wrong, "10.0.0.66")).await.status(), 429, "the attacker is slowed down");
    assert_eq!(t.send(token_req(&c.secret, "10.0.0.7")).await.status(), 200, "the client elsewhere is not");
    assert_eq!(t.send(token_req(&c.secret, "10.0.0.66")).await.status(), 200, "a correct secret is never refused");
    // Introspection authenticates the same way.
    let res = t
        .send(from(
            Request::post("/oauth2/introspect")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, basic_header(&c.app.client_id, &c.secret))
                .body(Body::from("token=kgt_unknown"))
                .unwrap(),
            "10.0.0.8",
        ))
        .await;
    assert_eq!(res.status(), 200);
}

// ---------------------------------------------------------------- item 12

#[tokio::test]
async fn unknown_client_ids_are_answered_from_the_cache_like_known_ones() {
    let t = test_app().await;
    // Asking for an unknown client ID caches the answer, as for a known one,
    // so a miss costs no query (and no more time) than a hit.
    let c = t.create_app("late", "").await;
    // create_application clears the cache; another process's insert is
    // seen within the cache lifetime (2 s).
    sqlx::query("UPDATE applications SET client_id = 'kgc_other' WHERE id = $1")
        .bind(c.app.id.0)
        .execute(&t.db)
        .await
        .unwrap();
    assert!(t.store.client_for_authentication("kgc_other").await.unwrap().is_some());
    assert!(t.store.client_for_authentication("kgc_missing").await.unwrap().is_none());
    sqlx::query("UPDATE applications SET client_id = 'kgc_missing' WHERE id = $1")
        .bind(c.app.id.0)
        .execute(&t.db)
        .await
        .unwrap();
    assert!(
        t.store.client_for_authentication("kgc_missing").await.unwrap().is_none(),
        "the miss was cached, so no query ran"
    );
}

// ------------------------------------------------------------ items 2 and 3

fn sign_in_json(username: &str, password: &str) -> Request<Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", username)
        .append_pair("password", password)
        .finish();
    Request::post("/console/fn/sign_in")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_sign_ins_cannot_slip_past_the_throttle() {
    let t = test_app().await;
    setup_owner(&t).await;
    let burst = |n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let router = t.router.clone();
                let req = from(sign_in_json("alice", "wrong horse battery"), "10.0.0.5");
                tokio::spawn(async move { tower::ServiceExt::oneshot(router, req).await.unwrap() })
            })
            .collect();
        async move {
            let mut checked = 0;
            for task in tasks {
                let res = task.await.unwrap();
                if res.status() == StatusCode::TOO_MANY_REQUESTS {
                    assert!(res.headers().contains_key(header::RETRY_AFTER));
                    let body = json(res).await;
                    assert!(body["Throttled"]["message"].as_str().is_some(), "{body}");
                } else {
                    assert_eq!(res.status(), 409);
                    checked += 1;
                }
            }
            checked
        }
    };
    let checked = burst(39).await;
    assert!(checked <= 3, "only the free attempts are checked, not {checked} of 39 parallel ones");
    // The right password now waits like any other attempt.
    let res = t.send(from(sign_in_json("alice", "correct horse battery"), "10.0.0.5")).await;
    assert_eq!(res.status(), 429);
    // Sixty more in parallel, all wrong: none is checked any more.
    assert_eq!(burst(60).await, 0);
}

#[tokio::test]
async fn one_address_cannot_guess_across_many_accounts() {
    let t = test_app().await;
    setup_owner(&t).await;
    for i in 0..10 {
        let res = t.send(from(sign_in_json(&format!("user{i}"), "wrong horse battery"), "10.0.0.9")).await;
        assert_eq!(res.status(), 409, "a wrong password is a refusal, not a server error");
    }
    let res = t.send(from(sign_in_json("alice", "correct horse battery"), "10.0.0.9")).await;
    assert_eq!(res.status(), 429);
    let res = t.send(from(sign_in_json("alice", "correct horse battery"), "10.0.0.10")).await;
    assert!(res.status().is_success() || res.status().is_redirection(), "{}", res.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashing_beyond_the_workers_and_queue_is_refused_fast() {
    let t = test_app().await;
    setup_owner(&t).await;
    let workers = t.state.console.password_work.workers() + t.state.console.password_work.queue_len();
    // Distinct usernames and addresses, so only the hashing bound applies.
    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let router = t.router.clone();
            let req = from(
                sign_in_json(&format!("nobody{i}"), "wrong horse battery"),
                &format!("10.1.{}.{}", i / 200, i % 200),
            );
            tokio::spawn(async move { tower::ServiceExt::oneshot(router, req).await.unwrap() })
        })
        .collect();
    let mut busy = 0;
    for task in tasks {
        let res = task.await.unwrap();
        if res.status() == 429 {
            let body = json(res).await;
            assert!(body["Throttled"]["message"].as_str().unwrap().contains("busy"), "{body}");
            busy += 1;
        }
    }
    assert!(busy >= 120 - 3 * workers, "hashing is bounded: {busy} of 120 refused");
}

// ----------------------------------------------------------------- item 5

#[test]
fn invisible_names_are_refused() {
    assert!(keygate::validate_name("\u{200b}").is_err());
    assert!(keygate::validate_name(" \u{feff} ").is_err());
    assert!(keygate::validate_name("a\u{200b}").is_ok());
}

#[tokio::test]
async fn stored_text_from_unauthenticated_requests_is_bounded() {
    let t = test_app().await;
    setup_owner(&t).await;
    let huge = "x".repeat(200 * 1024);
    let res = t.send(sign_in_json(&huge, "wrong horse battery")).await;
    assert_eq!(res.status(), 413);
    let long = "y".repeat(60 * 1024);
    let res = t.send(from(sign_in_json(&long, "wrong horse battery"), "10.0.0.3")).await;
    assert_eq!(res.status(), 409);
    let actions = t.audit_actions().await;
    let (_, details) = actions.iter().find(|(a, _)| a == "admin.sign_in_failed").unwrap();
    let stored = details["username"].as_str().unwrap();
    assert!(stored.chars().count() <= keygate::MAX_AUDIT_TEXT_LEN + 1, "{} characters kept", stored.len());
    let size: i64 = sqlx::query_scalar("SELECT SUM(LENGTH(details)) FROM audit_events").fetch_one(&t.db).await.unwrap();
    assert!(size < 4096, "{size}");
}

// ----------------------------------------------------------- items 4, 9, 10

fn console_post(path: &str, cookie: &str) -> axum::http::request::Builder {
    Request::post(path).header(header::ACCEPT, "application/json").header(header::COOKIE, cookie)
}

#[tokio::test]
async fn console_posts_from_another_origin_or_as_text_plain_are_refused() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let body = "name=stolen&description=made+by+a+foreign+page";
    let cases = [
        ("application/x-www-form-urlencoded", Some("http://127.0.0.1:8080"), None),
        ("text/plain", None, None),
        ("text/plain", Some("http://127.0.0.1:3000"), None),
        ("application/x-www-form-urlencoded", None, Some("same-site")),
        ("application/x-www-form-urlencoded", None, Some("cross-site")),
        ("application/x-www-form-urlencoded", Some("null"), None),
    ];
    for (content_type, origin, site) in cases {
        let mut b = console_post("/console/fn/add_scope", &cookie).header(header::CONTENT_TYPE, content_type);
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        if let Some(s) = site {
            b = b.header("sec-fetch-site", s);
        }
        let res = t.send(b.body(Body::from(body)).unwrap()).await;
        assert_eq!(res.status(), 403, "{content_type} {origin:?} {site:?}");
    }
    assert!(!t.store.list_scopes().await.unwrap().iter().any(|s| s.name == "stolen"));
    // The console's own pages still work, with and without JavaScript.
    let res = t
        .send(
            console_post("/console/fn/add_scope", &cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ORIGIN, "http://127.0.0.1:3000")
                .header("sec-fetch-site", "same-origin")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(t.store.list_scopes().await.unwrap().iter().any(|s| s.name == "stolen"));
}

#[tokio::test]
async fn redirects_after_form_posts_stay_on_this_server() {
    let t = test_app().await;
    let mut req = form_post("/console/fn/sign_in", "username=alice&password=wrong+horse+battery", None);
    req.headers_mut().insert(header::REFERER, "http://evil.example/x".parse().unwrap());
    let res = t.send(req).await;
    let location = res.headers()[header::LOCATION].to_str().unwrap();
    assert_eq!(location, "/x");
    let mut req = form_post("/console/fn/sign_in", "username=alice&password=wrong+horse+battery", None);
    req.headers_mut().insert(header::REFERER, "http://127.0.0.1:3000//evil.example/".parse().unwrap());
    let res = t.send(req).await;
    let location = res.headers()[header::LOCATION].to_str().unwrap();
    assert_eq!(location, "/");
}

#[tokio::test]
async fn only_outcomes_the_server_signed_are_shown_in_a_page() {
    let t = test_app().await;
    setup_owner(&t).await;
    // Error text in a URL is never shown (Leptos' own `__err` parameters).
    let forged = base64::engine::general_purpose::URL_SAFE.encode(r#"{"Refused":"Call 0800 123 456 to unlock"}"#);
    let path = format!("/login?__path=%2Fconsole%2Ffn%2Fsign_in&__err={forged}");
    let res = page(&t, &path, None).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[header::LOCATION], "/login");
    // A real refusal comes back in a signed, short-lived, HttpOnly cookie and is shown once.
    let res = t.send(form_post("/console/fn/sign_in", "username=alice&password=wrong+horse+battery", None)).await;
    assert_eq!(res.headers()[header::LOCATION], "/login");
    let set = res.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=120"] {
        assert!(set.contains(attribute), "{set}");
    }
    let outcome = outcome_cookie(&res).unwrap();
    let shown = page(&t, "/login", Some(&outcome)).await;
    let cleared = shown.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cleared.starts_with("keygate_form=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert!(String::from_utf8(body_bytes(shown).await).unwrap().contains("the username or password is wrong"));
    // Another page of the console does not show a sign-in refusal.
    assert!(!String::from_utf8(body_bytes(page(&t, "/setup", Some(&outcome)).await).await)
        .unwrap()
        .contains("the username or password is wrong"));
    // Altering the signed value is caught, and it is still cleared.
    let (payload, rest) = outcome.strip_prefix("keygate_form=").unwrap().split_once('.').unwrap();
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(r#"{"path":"/console/fn/sign_in","error":{"Refused":"Call 0800 123 456 to unlock"}}"#);
    assert_ne!(payload, forged_payload);
    let res = page(&t, "/login", Some(&format!("keygate_form={forged_payload}.{rest}"))).await;
    assert!(res.headers()[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert!(!String::from_utf8(body_bytes(res).await).unwrap().contains("0800"));
}

/// A crafted `next` carrying Leptos' error parameters: the sign-in
/// succeeds, and no words of the link's choosing reach the page.
#[tokio::test]
async fn a_crafted_next_cannot_carry_an_error_into_the_console() {
    let t = test_app().await;
    setup_owner(&t).await;
    let forged = base64::engine::general_purpose::URL_SAFE.encode(r#"{"Refused":"Call 0800 123 456 to unlock"}"#);
    let next = format!("/./login?__path=%2Fconsole%2Ffn%2Fsign_in&__err={forged}");
    let body = format!(
        "username=alice&password=correct+horse+battery&next={}",
        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    );
    let res = t.send(form_post("/console/fn/sign_in", &body, None)).await;
    assert!(succeeded(&res), "{:?}", form_outcome(&res));
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(!location.contains("__err") && !location.contains("0800"), "{location}");
    let session = session_cookie(&res).unwrap().0;
    let html = follow(&t, &res, Some(&session)).await;
    assert!(!html.contains("0800"));
}

#[tokio::test]
async fn a_crafted_post_cannot_make_the_console_repeat_its_words() {
    let t = test_app().await;
    let bait = "Keygate+was+updated.+Re-enter+your+password+at+evil.example";
    let body = format!("username=a&password=b&{bait}=1&{bait}=2");
    let res = t.send(form_post("/console/fn/sign_in", &body, None)).await;
    assert!(refused(&res));
    let html = follow(&t, &res, None).await;
    assert!(!html.contains("evil.example"), "the bait reached the page");
    assert!(html.contains("the form could not be read"), "a fixed text instead");
    // With JavaScript the answer is the same fixed text.
    let res = t
        .send(
            Request::post("/console/fn/sign_in")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(!String::from_utf8(body_bytes(res).await).unwrap().contains("evil.example"));
}

// ---------------------------------------------------------------- item 11

#[tokio::test]
async fn one_time_secrets_are_not_cached_nor_stored_in_clear() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let res = t
        .send(form_post(
            "/console/fn/create_application",
            "name=flashy&notes=&token_ttl_seconds=3600&max_tokens=30&rate_per_second=20&rate_per_hour=15000",
            Some(&cookie),
        ))
        .await;
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with("/applications/"), "{location}");
    // Waiting to be shown, the secret is in the database only sealed, and
    // the session that could open it is there only by digest.
    let waiting: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT sealed FROM console_flashes").fetch_all(&t.db).await.unwrap();
    assert_eq!(waiting.len(), 1);
    let sessions: Vec<String> = sqlx::query_scalar("SELECT data FROM console_sessions").fetch_all(&t.db).await.unwrap();
    let session_id = cookie.trim_start_matches("keygate_session=");
    let on_disk = || {
        let mut bytes = waiting.concat();
        bytes.extend(sessions.concat().into_bytes());
        if let Some(path) = t.url.strip_prefix("sqlite:") {
            for file in [path.to_owned(), format!("{path}-wal")] {
                bytes.extend(std::fs::read(file).unwrap_or_default());
            }
        }
        bytes
    };
    let contains = |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!contains(&on_disk(), session_id), "the session ID is stored in clear");

    let res = page(&t, &location, Some(&cookie)).await;
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let html = String::from_utf8(body_bytes(res).await).unwrap();
    let at = html.find("kgs_").expect("the secret is shown once");
    let secret: String = html[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    assert!(secret.len() > 40, "{secret}");
    assert!(!contains(&on_disk(), &secret), "the secret sat in the database in clear");
    let again = String::from_utf8(body_bytes(page(&t, &location, Some(&cookie)).await).await).unwrap();
    assert!(!again.contains("kgs_"), "and only once");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM console_flashes").fetch_one(&t.db).await.unwrap();
    assert_eq!(left, 0, "taken out when shown");
}

// ---------------------------------------------------------------- item 15

#[tokio::test]
async fn console_refusals_have_their_own_statuses() {
    let t = test_app().await;
    let res = t.send(sign_in_json("alice", "whatever is typed")).await;
    assert_eq!(res.status(), 409);
    let res = t
        .send(
            Request::post("/console/fn/applications")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .body(Body::from(
                    "listing[q]=&listing[sort]=name&listing[status]=any&listing[page]=1&listing[per_page]=25",
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), 401);
    let res = t
        .send(
            Request::post("/console/fn/create_owner")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .body(Body::from("code=x&username=a&password=short&password_confirm=short"))
                .unwrap(),
        )
        .await;
    assert!(res.status() == 400 || res.status() == 409, "{}", res.status());
}

#[tokio::test]
async fn pages_carry_a_content_security_policy_with_the_script_nonce() {
    let t = test_app().await;
    let res = page(&t, "/login", None).await;
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    for directive in ["object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "'wasm-unsafe-eval'"] {
        assert!(csp.contains(directive), "{csp}");
    }
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap().to_owned();
    let html = String::from_utf8(body_bytes(res).await).unwrap();
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "the hydration script carries the nonce");
    assert!(!html.contains("<script>"), "no inline script without a nonce");
    assert!(t
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .headers()
        .get("strict-transport-security")
        .is_none());
}

#[tokio::test]
async fn https_public_urls_get_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("k.db").display());
    let store = keygate::store::Store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let addr: SocketAddr = "127.0.0.1:3000".parse().unwrap();
    let state = keygate_server::AppState::new(
        keygate_server::serve::leptos_options(addr),
        store,
        "https://keygate.example",
        keygate::jwt::KeyEncryptionKey::for_tests(1),
    )
    .await
    .unwrap();
    let router = keygate_server::build_router(state).await.unwrap();
    let res = tower::ServiceExt::oneshot(router, Request::get("/healthz").body(Body::empty()).unwrap()).await.unwrap();
    assert!(res.headers()["strict-transport-security"].to_str().unwrap().contains("max-age="));
}

// ---------------------------------------------------------------- item 14

#[tokio::test]
async fn the_openapi_document_declares_query_parameters_and_common_refusals() {
    let t = test_app().await;
    let res = t.send(Request::get("/api/v1/openapi.json").body(Body::empty()).unwrap()).await;
    let doc = json(res).await;
    let params = doc["paths"]["/api/v1/applications"]["get"]["parameters"].as_array().unwrap();
    for p in params {
        assert_eq!(p["in"], "query", "{p}");
        assert_ne!(p["required"], true, "{p}");
    }
    let per_page = params.iter().find(|p| p["name"] == "per_page").unwrap();
    assert_eq!(per_page["schema"]["maximum"], 200);
    let audit = doc["paths"]["/api/v1/audit-events"]["get"]["parameters"].as_array().unwrap();
    assert!(audit.iter().all(|p| p["in"] == "query"));
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for status in ["401", "429"] {
                assert!(op["responses"].get(status).is_some(), "{method} {path} lacks {status}");
            }
        }
    }
    // And the API holds to the ranges it states.
    let c = t.create_app("reader", "applications:read audit:read").await;
    let token = t.obtain_token(&c, None).await;
    assert_eq!(t.get_with_token("/api/v1/applications?per_page=201", &token).await.status(), 400);
    assert_eq!(t.get_with_token("/api/v1/applications?page=0", &token).await.status(), 400);
    assert_eq!(t.get_with_token("/api/v1/audit-events?per_page=0", &token).await.status(), 400);
    assert_eq!(t.get_with_token("/api/v1/audit-events?action=token.stolen", &token).await.status(), 400);
    assert_eq!(t.get_with_token("/api/v1/audit-events?action=token", &token).await.status(), 200);
    assert_eq!(t.get_with_token("/api/v1/audit-events?action=%25", &token).await.status(), 400);
    let far = "/api/v1/applications?page=9223372036854775807";
    assert_eq!(t.get_with_token(far, &token).await.status(), 400, "no offset overflow back to page 1");
}

// ------------------------------------------- NUL characters (both backends)

#[tokio::test]
async fn nul_characters_are_refused_as_input_never_a_server_error() {
    let t = test_app().await;
    let c = t.create_app("nul", "applications:read applications:write scopes:read scopes:write").await;
    let token = t.obtain_token(&c, None).await;
    // Client IDs with a NUL are nobody's: 401, in the body or in Basic.
    let res = t.token_request(None, "grant_type=client_credentials&client_id=x%00&client_secret=y").await;
    assert_eq!(res.status(), 401);
    let res = t.token_request(Some(("a\0b", "x")), "grant_type=client_credentials").await;
    assert_eq!(res.status(), 401);
    // A filter or a name looked up: refused, or simply nothing found
    // (SQLite can compare such text; PostgreSQL cannot hold it).
    for (method, path) in [("GET", "/api/v1/applications?search=%00"), ("DELETE", "/api/v1/scopes/x%00")] {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let status = t.send(req).await.status().as_u16();
        assert!([200, 400, 404].contains(&status), "{method} {path}: {status}");
    }
    // Stored text: refused by validation, the same on both backends.
    for (path, body) in [
        ("/api/v1/applications", r#"{"name":"ok","notes":"a\u0000b"}"#),
        ("/api/v1/scopes", r#"{"name":"nul:read","description":"d\u0000"}"#),
    ] {
        let req = Request::post(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let res = t.send(req).await;
        assert_eq!(res.status(), 400, "{path}");
        assert!(json(res).await.to_string().contains("NUL"));
    }
}
