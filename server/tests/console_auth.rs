//! Console sign-in through the real router: setup link, sessions, cookies,
//! throttling and the audit trail.

mod common;

use axum::body::Body;
use axum::http::{header, Request};
use common::*;

#[tokio::test]
async fn setup_link_creates_the_owner_once_and_signs_in() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let res = page(&t, "/", Some(&cookie)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[header::X_FRAME_OPTIONS], "DENY");
    let html = String::from_utf8(body_bytes(res).await).unwrap();
    assert!(html.contains("data-testid=\"signed-in-as\">alice"), "{html}");
    assert!(html.contains("data-testid=\"application-count\" class=\"figure\">0<"), "{html}");
    // The code is spent.
    let res = t
        .send(form_post(
            "/console/fn/create_owner",
            "code=the-setup-code&username=mallory&password=correct+horse+battery&password_confirm=correct+horse+battery",
            None,
        ))
        .await;
    assert!(refused(&res));
    assert_eq!(t.store.admin_count().await.unwrap(), 1);
}

#[tokio::test]
async fn wrong_setup_code_and_weak_password_are_refused_with_reasons() {
    let t = test_app().await;
    t.store.add_setup_code(&keygate::secret::SecretDigest::of("right"), keygate_server::now()).await.unwrap();
    let res = t
        .send(
            Request::post("/console/fn/create_owner")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .body(Body::from("code=right&username=alice&password=short&password_confirm=short"))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), 400, "a field refusal is a 400, not a server error");
    let err = json(res).await;
    assert_eq!(err["Invalid"]["field"], "password");
    let res = t
        .send(
            Request::post("/console/fn/create_owner")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .body(Body::from(
                    "code=wrong&username=alice&password=correct+horse+battery&password_confirm=correct+horse+battery",
                ))
                .unwrap(),
        )
        .await;
    let err = json(res).await;
    assert!(err["Refused"].as_str().unwrap().contains("setup link"));
    assert_eq!(t.store.admin_count().await.unwrap(), 0);
}

#[tokio::test]
async fn unsigned_visitors_are_sent_to_sign_in() {
    let t = test_app().await;
    let res = page(&t, "/", None).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(res.headers()[header::LOCATION], "/login");
    let res = page(&t, "/login", None).await;
    assert_eq!(res.status(), 200);
    let html = String::from_utf8(body_bytes(res).await).unwrap();
    assert!(html.contains("<label for=\"username\">"));
    assert!(html.contains("one-time setup link"));
}

#[tokio::test]
async fn signing_in_from_a_deep_link_returns_there_and_only_to_this_console() {
    let t = test_app().await;
    let _ = setup_owner(&t).await;
    let res = page(&t, "/applications/7?range=7d", None).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    let to = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(to, "/login?next=%2Fapplications%2F7%3Frange%3D7d");
    let html = String::from_utf8(body_bytes(page(&t, &to, None).await).await).unwrap();
    assert!(html.contains("After signing in you return to <code>/applications/7?range=7d</code>"), "{html}");
    assert!(html.contains("name=\"next\" value=\"/applications/7?range=7d\""), "{html}");
    let sign_in = |next: &str| {
        form_post("/console/fn/sign_in", &format!("username=alice&password=correct+horse+battery&next={next}"), None)
    };
    let res = t.send(sign_in("%2Fapplications%2F7%3Frange%3D7d")).await;
    assert_eq!(res.headers()[header::LOCATION], "/applications/7?range=7d");
    for elsewhere in
        ["https%3A%2F%2Fevil.example%2F", "%2F%2Fevil.example", "%2F%5Cevil.example", "%2Fconsole%2Ffn%2Fsign_out"]
    {
        let res = t.send(sign_in(elsewhere)).await;
        assert_eq!(res.headers()[header::LOCATION], "/", "{elsewhere}");
    }
    // A look-alike next on the sign-in page is not offered.
    let html = String::from_utf8(body_bytes(page(&t, "/login?next=%2F%2Fevil.example", None).await).await).unwrap();
    assert!(!html.contains("evil.example"), "{html}");
}

#[tokio::test]
async fn a_used_or_wrong_setup_link_says_so_before_the_form() {
    let t = test_app().await;
    t.store.add_setup_code(&keygate::secret::SecretDigest::of("right"), keygate_server::now()).await.unwrap();
    let html = String::from_utf8(body_bytes(page(&t, "/setup?code=wrong", None).await).await).unwrap();
    assert!(html.contains("This setup link does not work"), "{html}");
    assert!(!html.contains("Create owner and sign in"), "{html}");
    let html = String::from_utf8(body_bytes(page(&t, "/setup?code=right", None).await).await).unwrap();
    assert!(html.contains("Create owner and sign in"), "{html}");
    let _ = setup_owner(&t).await;
    let html = String::from_utf8(body_bytes(page(&t, "/setup?code=right", None).await).await).unwrap();
    assert!(html.contains("This setup link has been used"), "{html}");
    assert!(!html.contains("Create owner and sign in"), "{html}");
}

#[tokio::test]
async fn sign_in_cycles_the_session_and_failures_are_throttled_and_audited() {
    let t = test_app().await;
    let setup_cookie = setup_owner(&t).await;
    // A wrong password: redirected back with the reason, audited.
    let res = t.send(form_post("/console/fn/sign_in", "username=alice&password=wrong-password!", None)).await;
    assert!(refused(&res));
    assert_eq!(res.headers()[header::LOCATION], "/login", "no error in the URL");
    // The page shows the reason when the browser follows the redirect without JS.
    let html = follow(&t, &res, None).await;
    assert!(html.contains("the username or password is wrong"), "{html}");
    for _ in 0..2 {
        t.send(form_post("/console/fn/sign_in", "username=alice&password=wrong-password!", None)).await;
    }
    // Now even the right password must wait.
    let res = t.send(form_post("/console/fn/sign_in", "username=alice&password=correct+horse+battery", None)).await;
    assert!(refused(&res));
    assert!(session_cookie(&res).is_none());
    let failures = t.audit_actions().await.into_iter().filter(|(a, _)| a == "admin.sign_in_failed").count();
    assert_eq!(failures, 3);

    // Another account from the same address is not slowed by alice's failures.
    let hash = keygate::secret::hash_password("viewer password 123").unwrap();
    t.store.create_admin("victor", &hash, keygate::Role::Viewer, 0).await.unwrap();
    let res = t
        .send(form_post("/console/fn/sign_in", "username=victor&password=viewer+password+123", Some(&setup_cookie)))
        .await;
    assert_eq!(res.headers()[header::LOCATION], "/");
    let (cookie, _) = session_cookie(&res).expect("a fresh session cookie");
    assert_ne!(cookie, setup_cookie, "the session ID is cycled at sign-in");
    let html = String::from_utf8(body_bytes(page(&t, "/", Some(&cookie)).await).await).unwrap();
    assert!(html.contains("signed-in-as\">victor"));
    // The old session ID no longer works.
    let res = page(&t, "/", Some(&setup_cookie)).await;
    assert!(res.status().is_redirection());
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let res = t.send(form_post("/console/fn/sign_out", "", Some(&cookie))).await;
    assert_eq!(res.headers()[header::LOCATION], "/login");
    assert!(page(&t, "/", Some(&cookie)).await.status().is_redirection());
    let actions: Vec<String> = t.audit_actions().await.into_iter().map(|(a, _)| a).collect();
    assert!(actions.contains(&"admin.sign_out".to_owned()));
}

/// Called by a script (`Accept: application/json`), a server function
/// keeps its own answer: a redirect it asks for stays a header, a refusal
/// gets its status, and no outcome cookie is set.
#[tokio::test]
async fn script_callers_keep_their_statuses() {
    let t = test_app().await;
    setup_owner(&t).await;
    let json_post = |body: &str| {
        let mut req = form_post("/console/fn/sign_in", body, None);
        req.headers_mut().insert(header::ACCEPT, "application/json".parse().unwrap());
        req
    };
    let res = t.send(json_post("username=alice&password=correct+horse+battery")).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("serverfnredirect"));
    assert!(form_outcome(&res).is_none() && session_cookie(&res).is_some());
    let res = t.send(json_post("username=alice&password=wrong+horse+battery")).await;
    assert_eq!(res.status(), 409);
    assert!(res.headers().get(header::LOCATION).is_none() && form_outcome(&res).is_none());
    // A function that does not exist is not found, whoever asks.
    let res = t.send(form_post("/console/fn/no_such_function", "a=1", None)).await;
    assert_eq!(res.status(), 404);
    assert!(form_outcome(&res).is_none());
}
