//! Console pages and their server functions as a browser without
//! JavaScript uses them: form posts, redirects, one-time secrets, roles.

mod common;

use axum::http::{header, Request};
use common::*;

async fn html_with(t: &TestApp, path: &str, cookies: &str) -> String {
    html(t, path, cookies).await
}

async fn html(t: &TestApp, path: &str, cookie: &str) -> String {
    let res = page(t, path, Some(cookie)).await;
    assert_eq!(res.status(), 200, "{path}");
    String::from_utf8(body_bytes(res).await).unwrap()
}

async fn sign_in_as(t: &TestApp, username: &str, role: keygate::Role) -> String {
    let hash = keygate::secret::hash_password("long enough password").unwrap();
    t.store.create_admin(username, &hash, role, 0).await.unwrap();
    let res = t
        .send(form_post("/console/fn/sign_in", &format!("username={username}&password=long+enough+password"), None))
        .await;
    session_cookie(&res).expect("signed in").0
}

fn extract_value(html: &str, testid: &str) -> String {
    let marker = format!("data-testid=\"{testid}\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("{testid} not in page"));
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..at + html[at..].find('>').unwrap()];
    let v = tag.find("value=\"").unwrap() + 7;
    tag[v..v + tag[v..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn create_application_shows_the_secret_once_and_it_works() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let body = "name=billing-sync&notes=nightly&scopes%5B%5D=applications%3Aread&scopes%5B%5D=tokens%3Aread\
                &token_ttl_seconds=3600&max_tokens=30&rate_per_second=20&rate_per_hour=15000";
    let res = t.send(form_post("/console/fn/create_application", body, Some(&cookie))).await;
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with("/applications/"), "{location}");
    let detail = html(&t, &location, &cookie).await;
    assert!(detail.contains("shown only this once"));
    let secret = extract_value(&detail, "new-secret");
    let client_id = extract_value(&detail, "client-id");
    assert!(secret.starts_with("kgs_"));
    // A reload does not show it again.
    let again = html(&t, &location, &cookie).await;
    assert!(!again.contains(&secret));
    assert!(!again.contains("data-testid=\"new-secret\""));
    // The secret works at the token endpoint, with both scopes.
    let res = t.token_request(Some((&client_id, &secret)), "grant_type=client_credentials").await;
    assert_eq!(json(res).await["scope"], "applications:read tokens:read");
    // The list shows it.
    let list = html(&t, "/applications?q=billing", &cookie).await;
    assert!(list.contains("billing-sync") && list.contains(&client_id));
    let audit = html(&t, "/audit?action=application", &cookie).await;
    assert!(audit.contains("alice created the application <a href=\"/applications/"), "{audit}");
}

#[tokio::test]
async fn refusals_say_why_beside_the_field() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let body = "name=x&notes=&token_ttl_seconds=5&max_tokens=30&rate_per_second=20&rate_per_hour=15000";
    let mut req = form_post("/console/fn/create_application", body, Some(&cookie));
    req.headers_mut().insert(header::REFERER, "http://127.0.0.1:3000/applications/new".parse().unwrap());
    let res = t.send(req).await;
    assert!(refused(&res));
    assert_eq!(res.headers()[header::LOCATION], "/applications/new", "no error in the URL");
    let page = follow(&t, &res, Some(&cookie)).await;
    assert!(page.contains("id=\"token_ttl_seconds-error\""), "the error sits beside its field");
    assert!(page.contains("token lifetime must be between 60 and 86400 seconds"));
    assert_eq!(t.store.list_applications(&Default::default(), 0).await.unwrap().total, 0);
}

#[tokio::test]
async fn viewers_see_everything_and_change_nothing() {
    let t = test_app().await;
    let c = t.create_app("billing-sync", "tokens:read").await;
    let viewer = sign_in_as(&t, "victor", keygate::Role::Viewer).await;
    let detail = html(&t, &format!("/applications/{}", c.app.id), &viewer).await;
    assert!(detail.contains("billing-sync"));
    for control in ["Regenerate secret", "Delete application", "Save settings", "Create token", "Confirm revoke"] {
        assert!(!detail.contains(control), "a viewer sees {control}");
    }
    let list = html(&t, "/applications", &viewer).await;
    assert!(!list.contains("New application"));
    let id = c.app.id.0;
    let attempts = [
        (
            "/console/fn/create_application",
            "name=x&notes=&token_ttl_seconds=3600&max_tokens=30&rate_per_second=20&rate_per_hour=15000".to_owned(),
        ),
        ("/console/fn/regenerate_secret", format!("id={id}&confirm=yes")),
        ("/console/fn/delete_application", format!("id={id}&confirm_name=billing-sync")),
        ("/console/fn/set_enabled", format!("id={id}&enabled=false")),
        ("/console/fn/mint_token", format!("id={id}&name=x&expiry=7&expires_on=")),
        ("/console/fn/add_scope", "name=x&description=y".to_owned()),
        ("/console/fn/add_admin", "username=eve&password=long+enough+password&role=owner".to_owned()),
    ];
    for (path, body) in attempts {
        let res = t.send(form_post(path, &body, Some(&viewer))).await;
        assert!(refused(&res), "{path} was not refused");
    }
    let app = t.store.application(c.app.id, 0).await.unwrap().unwrap();
    assert!(app.enabled && app.secret_regenerated_at.is_none());
    assert!(t.store.list_tokens(c.app.id, 1, 200, None).await.unwrap().items.is_empty());
    assert_eq!(t.store.list_applications(&Default::default(), 0).await.unwrap().total, 1);
    assert_eq!(t.store.list_admins().await.unwrap().len(), 1);
}

#[tokio::test]
async fn mint_revoke_regenerate_and_delete_from_the_console() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let c = t.create_app("svc", "tokens:read").await;
    let id = c.app.id.0;
    let detail_path = format!("/applications/{id}");
    let mut req = form_post(
        "/console/fn/mint_token",
        &format!("id={id}&name=deploy&scopes%5B%5D=tokens%3Aread&expiry=7&expires_on="),
        Some(&cookie),
    );
    req.headers_mut().insert(header::REFERER, format!("http://127.0.0.1:3000{detail_path}").parse().unwrap());
    let res = t.send(req).await;
    assert!(succeeded(&res));
    let page = html(&t, &detail_path, &cookie).await;
    let token = extract_value(&page, "new-token");
    assert!(token.starts_with("kgt_"));
    assert!(!page.contains("expires soon"), "a 7-day token is not flagged at birth");
    assert_eq!(t.get_with_token("/api/v1/me", &token).await.status(), 200);

    let minted = t.store.list_tokens(c.app.id, 1, 200, None).await.unwrap().items[0].id.0;
    t.send(form_post("/console/fn/revoke_token", &format!("token_id={minted}"), Some(&cookie))).await;
    assert_eq!(t.get_with_token("/api/v1/me", &token).await.status(), 401);

    let endpoint_token = t.obtain_token(&c, None).await;
    let page = html(&t, &detail_path, &cookie).await;
    assert!(page.contains("1 active token(s)</strong> would be revoked"), "the preview states the count");
    let res = t.send(form_post("/console/fn/regenerate_secret", &format!("id={id}"), Some(&cookie))).await;
    assert!(refused(&res), "unconfirmed regeneration is refused");
    t.send(form_post("/console/fn/regenerate_secret", &format!("id={id}&confirm=yes"), Some(&cookie))).await;
    assert_eq!(t.get_with_token("/api/v1/me", &endpoint_token).await.status(), 401);
    let page = html(&t, &detail_path, &cookie).await;
    let new_secret = extract_value(&page, "new-secret");
    let res = t.token_request(Some((&c.app.client_id, &new_secret)), "grant_type=client_credentials").await;
    assert_eq!(res.status(), 200);

    // With an overlap (as a plain form post): both secrets work, the token too.
    let kept = t.obtain_token(&Created { app: c.app.clone(), secret: new_secret.clone() }, None).await;
    t.send(form_post(
        "/console/fn/regenerate_secret",
        &format!("id={id}&mode=overlap&overlap=3600&confirm=yes"),
        Some(&cookie),
    ))
    .await;
    let page = html(&t, &detail_path, &cookie).await;
    let overlap_secret = extract_value(&page, "new-secret");
    assert!(page.contains("The previous secret keeps working until"));
    assert!(page.contains(r#"data-secret="previous""#));
    for secret in [&new_secret, &overlap_secret] {
        let res = t.token_request(Some((&c.app.client_id, secret)), "grant_type=client_credentials").await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(t.get_with_token("/api/v1/me", &kept).await.status(), 200);
    let previous = t.store.require_application(c.app.id, keygate_server::now()).await.unwrap().secrets[1].id.0;
    t.send(form_post("/console/fn/end_overlap", &format!("id={id}&secret_id={previous}"), Some(&cookie))).await;
    let res = t.token_request(Some((&c.app.client_id, &new_secret)), "grant_type=client_credentials").await;
    assert_eq!(res.status(), 401);
    // An unknown choice is refused, changing nothing.
    let res = t
        .send(form_post("/console/fn/regenerate_secret", &format!("id={id}&mode=later&confirm=yes"), Some(&cookie)))
        .await;
    assert!(refused(&res));
    let res = t.token_request(Some((&c.app.client_id, &overlap_secret)), "grant_type=client_credentials").await;
    assert_eq!(res.status(), 200);

    let res = t
        .send(form_post("/console/fn/delete_application", &format!("id={id}&confirm_name=wrong"), Some(&cookie)))
        .await;
    assert!(refused(&res));
    let res =
        t.send(form_post("/console/fn/delete_application", &format!("id={id}&confirm_name=svc"), Some(&cookie))).await;
    assert_eq!(res.headers()[header::LOCATION], "/applications");
    assert!(t.store.application(c.app.id, 0).await.unwrap().is_none());
}

#[tokio::test]
async fn owners_manage_administrators_but_not_away_the_last_owner() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let admin_cookie = sign_in_as(&t, "ann", keygate::Role::Admin).await;
    let res = page(&t, "/admins", Some(&admin_cookie)).await;
    let body = String::from_utf8(body_bytes(res).await).unwrap();
    // Others see the list read-only.
    assert!(body.contains("Only owners add, change or remove administrators"), "{body}");
    assert!(body.contains(">alice</td>"), "{body}");
    assert!(!body.contains("/console/fn/add_admin") && !body.contains("/console/fn/change_role"), "{body}");
    let res = t
        .send(form_post(
            "/console/fn/add_admin",
            "username=eve&password=long+enough+password&role=owner",
            Some(&admin_cookie),
        ))
        .await;
    assert!(refused(&res), "an admin cannot add one");
    assert!(t.store.admin_by_username("eve").await.unwrap().is_none());
    t.send(form_post(
        "/console/fn/add_admin",
        "username=vera&password=long+enough+password&role=viewer",
        Some(&cookie),
    ))
    .await;
    let list = html(&t, "/admins", &cookie).await;
    assert!(list.contains("vera"));
    let alice = t.store.admin_credentials("alice").await.unwrap().unwrap().0;
    let res = t.send(form_post("/console/fn/remove_admin", &format!("id={}", alice.id), Some(&cookie))).await;
    assert!(refused(&res));
    let res =
        t.send(form_post("/console/fn/change_role", &format!("id={}&role=viewer", alice.id), Some(&cookie))).await;
    assert!(refused(&res));
    assert_eq!(t.store.admin(alice.id).await.unwrap().unwrap().role, keygate::Role::Owner);
}

#[tokio::test]
async fn owners_reset_passwords_from_the_console() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let admin_cookie = sign_in_as(&t, "ann", keygate::Role::Admin).await;
    let ann = t.store.admin_credentials("ann").await.unwrap().unwrap().0;
    let list = html(&t, "/admins", &cookie).await;
    assert!(list.contains("New password for ann"), "a labelled reset field per administrator");
    // Not an owner: refused, and the password stays.
    let res = t
        .send(form_post(
            "/console/fn/reset_password",
            &format!("id={}&password=a+brand+new+password", ann.id),
            Some(&admin_cookie),
        ))
        .await;
    assert!(refused(&res));
    // Too short: refused with the reason.
    let res =
        t.send(form_post("/console/fn/reset_password", &format!("id={}&password=short", ann.id), Some(&cookie))).await;
    assert!(refused(&res));
    let res = t
        .send(form_post(
            "/console/fn/reset_password",
            &format!("id={}&password=a+brand+new+password", ann.id),
            Some(&cookie),
        ))
        .await;
    assert_eq!(res.headers()[header::LOCATION], "/admins?reset=done");
    let done = html(&t, "/admins?reset=done", &cookie).await;
    assert!(done.contains("The password was changed and their sessions ended."), "said, with or without JavaScript");
    let signed_in = |password: &'static str| {
        let t = &t;
        async move {
            let res =
                t.send(form_post("/console/fn/sign_in", &format!("username=ann&password={password}"), None)).await;
            session_cookie(&res).is_some()
        }
    };
    // Ann's session from before the reset has ended.
    let dashboard = Request::post("/console/fn/dashboard")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, &admin_cookie)
        .body(axum::body::Body::from("x="))
        .unwrap();
    assert_eq!(t.send(dashboard).await.status(), 401, "the old session ended with the old password");
    assert!(!signed_in("long+enough+password").await, "the old password is gone");
    assert!(signed_in("a+brand+new+password").await);
    let actions: Vec<String> = t.audit_actions().await.into_iter().map(|(a, _)| a).collect();
    assert!(actions.iter().any(|a| a == "admin.password_reset"), "{actions:?}");
}

#[tokio::test]
async fn custom_scopes_are_deleted_from_the_console_unless_in_use() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    for name in ["billing:read", "billing:write"] {
        t.send(form_post("/console/fn/add_scope", &format!("name={name}&description=Billing"), Some(&cookie))).await;
    }
    t.create_app("payments", "billing:write").await;
    let list = html(&t, "/scopes", &cookie).await;
    assert!(list.contains("Confirm deleting billing:read"));
    assert!(!list.contains("Confirm deleting applications:read"), "built-in scopes offer no delete");
    let refused = |name: &'static str| {
        let (t, cookie) = (&t, &cookie);
        async move {
            let mut req = form_post("/console/fn/delete_scope", &format!("name={name}"), Some(cookie));
            req.headers_mut().insert(header::REFERER, "http://127.0.0.1:3000/scopes".parse().unwrap());
            let res = t.send(req).await;
            if refused(&res) {
                Some(follow(t, &res, Some(cookie)).await)
            } else {
                None
            }
        }
    };
    let page = refused("billing:write").await.expect("refused while an application holds it");
    assert!(page.contains("payments"), "the refusal names the application");
    assert!(refused("applications:read").await.is_some(), "built-in");
    assert!(refused("billing:read").await.is_none());
    let names: Vec<String> = t.store.list_scopes().await.unwrap().into_iter().map(|s| s.name).collect();
    assert!(!names.contains(&"billing:read".to_owned()) && names.contains(&"billing:write".to_owned()));
    let viewer = sign_in_as(&t, "vic", keygate::Role::Viewer).await;
    assert!(!html(&t, "/scopes", &viewer).await.contains("Confirm deleting"), "viewers see no delete");
}

#[tokio::test]
async fn resource_servers_and_token_formats_from_the_console() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let res = t
        .send(form_post(
            "/console/fn/add_resource_server",
            "name=Billing&identifier=https%3A%2F%2Fbilling.internal%2F",
            Some(&cookie),
        ))
        .await;
    assert!(res.status().is_redirection());
    let body = "name=billing%3Aread&description=Read&resource_server=https%3A%2F%2Fbilling.internal%2F";
    t.send(form_post("/console/fn/add_scope", body, Some(&cookie))).await;
    t.send(form_post("/console/fn/add_scope", "name=loose&description=Loose&resource_server=", Some(&cookie))).await;
    let scopes = t.store.list_scopes().await.unwrap();
    let of = |name: &str| scopes.iter().find(|s| s.name == name).unwrap().resource_server.clone();
    assert_eq!(of("billing:read").as_deref(), Some("https://billing.internal/"));
    assert_eq!(of("loose"), None);
    let body = "name=loose&resource_server=https%3A%2F%2Fbilling.internal%2F";
    t.send(form_post("/console/fn/attach_scope", body, Some(&cookie))).await;
    let list = html(&t, "/scopes", &cookie).await;
    assert!(list.contains("https://billing.internal/") && list.contains("urn:keygate:api"), "both servers listed");
    assert!(list.contains("Confirm deleting Billing"));
    assert!(!list.contains("Confirm deleting Keygate API"), "the built-in one offers no delete");
    // A bad identifier is refused beside its field, not stored.
    let mut req = form_post("/console/fn/add_resource_server", "name=Bad&identifier=nope", Some(&cookie));
    req.headers_mut().insert(header::REFERER, "http://127.0.0.1:3000/scopes".parse().unwrap());
    let res = t.send(req).await;
    assert!(refused(&res));
    assert!(follow(&t, &res, Some(&cookie)).await.contains("absolute URI"));
    assert_eq!(t.store.list_resource_servers().await.unwrap().len(), 2);

    // An application made to issue JWTs and introspect Billing's tokens.
    let body = "name=jwt-app&notes=&scopes%5B%5D=billing%3Aread&token_ttl_seconds=300&max_tokens=30\
                &rate_per_second=20&rate_per_hour=15000&token_format=jwt\
                &introspects=https%3A%2F%2Fbilling.internal%2F";
    let res = t.send(form_post("/console/fn/create_application", body, Some(&cookie))).await;
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let detail = html(&t, &location, &cookie).await;
    assert!(detail.contains("JWT access tokens (RFC 9068)"), "the format is shown");
    assert!(detail.contains("Introspects tokens for"));
    assert!(!detail.contains("would have no audience"));
    let secret = extract_value(&detail, "new-secret");
    let client_id = extract_value(&detail, "client-id");
    let res = t.token_request(Some((&client_id, &secret)), "grant_type=client_credentials").await;
    let token = json(res).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT");
    // Without a scope on any resource server, the page says why JWTs fail.
    let body = "name=jwt-bare&notes=&token_ttl_seconds=300&max_tokens=30&rate_per_second=20&rate_per_hour=15000\
                &token_format=jwt&introspects=";
    let res = t.send(form_post("/console/fn/create_application", body, Some(&cookie))).await;
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(html(&t, &location, &cookie).await.contains("would have no audience"));
}

/// Notes are the application's own text (an API client with
/// `applications:write` sets its own): they stay text inside the settings
/// form, never markup that adds fields to it.
#[tokio::test]
async fn notes_cannot_break_out_of_the_settings_form() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let app = t.create_app("notes-check", "applications:read").await;
    let payload = "x</textarea><input type=\"hidden\" name=\"scopes[]\" value=\"tokens:write\"><textarea hidden>&amp;";
    let mut s = keygate::ApplicationSettings::new("notes-check");
    s.notes = payload.into();
    s.scopes = keygate::ScopeSet::parse("applications:read").unwrap();
    t.store.update_application(app.app.id, s, true, keygate_server::now()).await.unwrap();
    let page = html(&t, &format!("/applications/{}", app.app.id), &cookie).await;
    assert!(!page.contains("value=\"tokens:write\"><textarea"), "the notes ended the textarea");
    assert!(page.contains("x&lt;/textarea&gt;&lt;input type=\"hidden\""), "the notes are escaped text");
    assert!(page.contains("&amp;amp;"), "an ampersand stays an ampersand");
}

#[tokio::test]
async fn the_token_table_keeps_named_tokens_apart_and_hides_the_revoked() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let c = t.create_app("svc", "tokens:read").await;
    let now = keygate_server::now();
    let scopes = keygate::ScopeSet::parse("tokens:read").unwrap();
    t.store.mint_named_token(c.app.id, "deploy", scopes.clone(), now + 86_400, now).await.unwrap();
    let old = t.store.mint_named_token(c.app.id, "old-job", scopes, now + 86_400, now).await.unwrap();
    t.store.revoke_token(old.id, now).await.unwrap();
    for _ in 0..3 {
        t.obtain_token(&c, None).await;
    }
    let id = c.app.id.0;
    let issued: Vec<String> = t
        .store
        .list_tokens(c.app.id, 1, 200, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|t| t.source == keygate::TokenSource::TokenEndpoint)
        .map(|t| format!("data-token=\"{}\"", t.display_prefix))
        .collect();
    assert_eq!(issued.len(), 3);

    // By default: the active named token; the revoked one behind a toggle;
    // the endpoint's tokens summarised, not listed.
    let page = html(&t, &format!("/applications/{id}"), &cookie).await;
    assert!(page.contains(">deploy<") && !page.contains("old-job"), "{page}");
    assert!(page.contains("Show 1 revoked or expired"));
    assert!(page.contains(r#"data-testid="issued-active">3 (at most 30)<"#), "{page}");
    assert!(issued.iter().all(|row| !page.contains(row.as_str())));
    assert!(page.contains(&format!(r#"href="/applications/{id}?tokens=issued#tokens""#)));

    // The toggle shows the revoked token, with when it was revoked.
    let page = html(&t, &format!("/applications/{id}?inactive=1"), &cookie).await;
    assert!(page.contains("old-job") && page.contains(r#"data-testid="revoked-at">revoked <time"#), "{page}");
    assert!(page.contains("</time> by the CLI</span>"), "who revoked it");
    assert!(page.contains("Hide revoked and expired"));

    // One click away: the endpoint's tokens, and a page past the end is the last.
    for path in [format!("/applications/{id}?tokens=issued"), format!("/applications/{id}?tokens=issued&page=40")] {
        let page = html(&t, &path, &cookie).await;
        assert!(issued.iter().all(|row| page.contains(row.as_str())), "{path}");
        let table = &page[page.find(r#"data-testid="tokens""#).unwrap()..];
        let table = &table[..table.find("</table>").unwrap()];
        assert!(!table.contains(">deploy<"), "{table}");
        assert!(page.contains(r#"data-testid="named-tokens-link""#));
    }
}

#[tokio::test]
async fn the_applications_list_sorts_naturally_filters_and_pages_by_number() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    for i in 1..=12 {
        t.create_app(&format!("etl-job-{i}"), "").await;
    }
    let off = t.create_app("stopped", "").await;
    t.send(form_post("/console/fn/set_enabled", &format!("id={}&enabled=false", off.app.id.0), Some(&cookie))).await;

    let page = html(&t, "/applications?per=25", &cookie).await;
    let (two, ten) = (page.find(">etl-job-2<").unwrap(), page.find(">etl-job-10<").unwrap());
    assert!(two < ten, "natural order");
    // Page size and numbers: 13 applications, 25 a page by default.
    let page = html(&t, "/applications?q=etl", &cookie).await;
    assert!(page.contains("12 application(s)"));
    for (path, first, current) in [
        ("/applications?q=etl&per=25&page=1", ">etl-job-1<", "1"),
        // Past the end: the last page, not an empty one.
        ("/applications?q=etl&page=9", ">etl-job-1<", "1"),
    ] {
        let page = html(&t, path, &cookie).await;
        assert!(page.contains(first), "{path}");
        assert!(page.contains(&format!(r#"aria-current="page" aria-label="Page {current} of 1""#)), "{path}");
    }
    let page = html(&t, "/applications?status=disabled", &cookie).await;
    assert!(page.contains(">stopped<") && !page.contains(">etl-job-1<"));
    assert!(page.contains(r#"<option value="disabled" selected"#), "the filter shows what is applied");
    let page = html(&t, "/applications?sort=newest&per=100", &cookie).await;
    assert!(page.find(">stopped<").unwrap() < page.find(">etl-job-12<").unwrap());
    assert!(page.contains(r#"<option value="100" selected"#));
    // Unknown values fall back to the defaults rather than failing.
    let page = html(&t, "/applications?sort=bogus&status=bogus&per=7", &cookie).await;
    assert!(page.contains("13 application(s)"));
}

#[tokio::test]
async fn the_applications_list_pages_past_the_end_to_the_last_page() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    for i in 1..=30 {
        t.create_app(&format!("svc-{i}"), "").await;
    }
    let page = html(&t, "/applications?page=50", &cookie).await;
    assert!(page.contains(r#"aria-current="page" aria-label="Page 2 of 2""#), "{page}");
    assert!(page.contains(">svc-30<") && !page.contains(">svc-1<"));
    assert!(page.contains(r#"href="/applications" aria-label="Page 1""#));
    // The server function's page size is the client's to write: only the
    // offered sizes count (0 would divide by zero past the end).
    for per_page in ["0", "-5", "9223372036854775807"] {
        let body =
            format!("listing[q]=&listing[sort]=name&listing[status]=any&listing[page]=99&listing[per_page]={per_page}");
        let mut req = form_post("/console/fn/applications", &body, Some(&cookie));
        req.headers_mut().insert(header::ACCEPT, "application/json".parse().unwrap());
        let res = t.send(req).await;
        assert_eq!(res.status(), 200, "{per_page}");
        let data = json(res).await;
        assert_eq!((data["per_page"].as_i64(), data["page"].as_i64()), (Some(25), Some(2)), "{per_page}");
    }
}

#[tokio::test]
async fn the_audit_log_matches_part_of_a_name_or_client_id_and_links_to_the_application() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let billing = t.create_app("billing-sync", "").await;
    let other = t.create_app("orders", "").await;
    // A wrong secret: the row names the application beside its client ID.
    let res = t.token_request(Some((&billing.app.client_id, "kgs_wrong")), "grant_type=client_credentials").await;
    assert_eq!(res.status(), 401);
    t.state.flush().await;
    let id = billing.app.id.0;
    let client_prefix = &billing.app.client_id[..12];
    for filter in ["LING-SY", client_prefix] {
        let page = html(&t, &format!("/audit?application={filter}"), &cookie).await;
        assert!(page.contains(&format!(r#"<a href="/applications/{id}">billing-sync</a>"#)), "{filter}: {page}");
        assert!(page.contains(&format!("billing-sync</a> ({})", billing.app.client_id)), "{filter}");
        assert!(!page.contains(">orders<"), "{filter}");
    }
    let page = html(&t, "/audit?application=ord", &cookie).await;
    assert!(page.contains(&format!(r#"<a href="/applications/{}">orders</a>"#, other.app.id.0)));
    let page = html(&t, "/audit?application=nothing-like-it", &cookie).await;
    assert!(page.contains("No event concerns an application whose name or client ID contains"));
    // A deleted application's events still match by name, without a link.
    t.send(form_post(
        "/console/fn/delete_application",
        &format!("id={}&confirm_name=orders", other.app.id.0),
        Some(&cookie),
    ))
    .await;
    let page = html(&t, "/audit?application=ord", &cookie).await;
    assert!(page.contains("deleted the application orders") && !page.contains(r#">orders</a>"#), "{page}");
}

#[tokio::test]
async fn a_password_someone_else_chose_must_be_changed_before_anything_else() {
    let t = test_app().await;
    let owner = setup_owner(&t).await;
    // An owner adds bob with a password of their choosing.
    let res = t
        .send(form_post("/console/fn/add_admin", "username=bob&password=chosen+by+the+owner&role=admin", Some(&owner)))
        .await;
    assert!(succeeded(&res));
    let res = t.send(form_post("/console/fn/sign_in", "username=bob&password=chosen+by+the+owner", None)).await;
    assert_eq!(res.headers()[header::LOCATION], "/account", "straight to choosing their own");
    let bob = session_cookie(&res).unwrap().0;
    let other_bob = session_cookie(
        &t.send(form_post("/console/fn/sign_in", "username=bob&password=chosen+by+the+owner", None)).await,
    )
    .unwrap()
    .0;
    // Every other page and server function refuses until then.
    let res = page(&t, "/applications", Some(&bob)).await;
    let body = String::from_utf8(body_bytes(res).await).unwrap();
    assert!(!body.contains("API applications"), "{body}");
    let res = t
        .send(form_post(
            "/console/fn/create_application",
            "name=sneaky&token_ttl_seconds=3600&max_tokens=30&rate_per_second=20&rate_per_hour=15000",
            Some(&bob),
        ))
        .await;
    assert!(refused(&res));
    assert!(t.store.application_id_by_name("sneaky").await.unwrap().is_none());
    let account = html(&t, "/account", &bob).await;
    assert!(account.contains(r#"data-testid="must-change""#) && account.contains("Current password"));

    // Refusals say why, by field.
    for (body, field) in [
        ("current_password=wrong+one+entirely&new_password=bobs+own+password&confirm_password=bobs+own+password", "current_password"),
        ("current_password=chosen+by+the+owner&new_password=bobs+own+password&confirm_password=bobs+other+password", "confirm_password"),
        ("current_password=chosen+by+the+owner&new_password=short&confirm_password=short", "new_password"),
        ("current_password=chosen+by+the+owner&new_password=chosen+by+the+owner&confirm_password=chosen+by+the+owner", "new_password"),
    ] {
        let mut req = form_post("/console/fn/change_password", body, Some(&bob));
        req.headers_mut().insert(header::ACCEPT, "application/json".parse().unwrap());
        let res = t.send(req).await;
        assert_eq!(res.status(), 400, "{field}");
        assert_eq!(json(res).await["Invalid"]["field"], field);
    }
    let res = t
        .send(form_post(
            "/console/fn/change_password",
            "current_password=chosen+by+the+owner&new_password=bobs+own+password&confirm_password=bobs+own+password",
            Some(&bob),
        ))
        .await;
    assert_eq!(res.headers()[header::LOCATION], "/account?changed=1");
    let bob = session_cookie(&res).map(|c| c.0).unwrap_or(bob);
    let done = html(&t, "/account?changed=1", &bob).await;
    assert!(done.contains(r#"data-testid="password-changed""#) && !done.contains(r#"data-testid="must-change""#));
    assert!(html(&t, "/applications", &bob).await.contains("API applications"), "the console is open now");
    // The other session ended with the old password; the old password is gone.
    let res = page(&t, "/applications", Some(&other_bob)).await;
    assert!(!String::from_utf8(body_bytes(res).await).unwrap().contains("API applications"));
    let res = t.send(form_post("/console/fn/sign_in", "username=bob&password=bobs+own+password", None)).await;
    assert_eq!(res.headers()[header::LOCATION], "/");
    let actions: Vec<String> = t.audit_actions().await.into_iter().map(|(a, _)| a).collect();
    assert!(actions.iter().any(|a| a == "admin.password_changed"), "{actions:?}");
    // A reset by an owner forces a change again.
    let id = t.store.admin_credentials("bob").await.unwrap().unwrap().0.id;
    t.send(form_post("/console/fn/reset_password", &format!("id={id}&password=owner+picked+again"), Some(&owner)))
        .await;
    let res = t.send(form_post("/console/fn/sign_in", "username=bob&password=owner+picked+again", None)).await;
    assert_eq!(res.headers()[header::LOCATION], "/account");
}

#[tokio::test]
async fn the_new_token_form_shows_the_expiry_date_and_warns_of_a_namesake() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let c = t.create_app("svc", "tokens:read").await;
    let id = c.app.id.0;
    let path = format!("/applications/{id}");
    let page = html(&t, &path, &cookie).await;
    let in_30_days = &keygate::time_fmt::exact_utc(keygate_server::now() + 30 * 86_400)[..10];
    assert!(page.contains(&format!(r#"<option value="30" selected>30 days (until {in_30_days})</option>"#)), "{page}");
    let mint = |name: &'static str| {
        let (t, cookie) = (&t, cookie.clone());
        async move {
            let body = format!("id={id}&name={name}&scopes%5B%5D=tokens%3Aread&expiry=30&expires_on=");
            t.send(form_post("/console/fn/mint_token", &body, Some(&cookie))).await;
            html(t, &format!("/applications/{id}"), &cookie).await
        }
    };
    let first = mint("deploy").await;
    assert!(first.contains("Token \"deploy\" was created.") && !first.contains("also called"));
    let second = mint("Deploy").await;
    assert!(second.contains("1 other active token(s) of this application are also called \"Deploy\""), "{second}");
}

#[tokio::test]
async fn an_empty_console_shows_how_to_begin_and_the_counters_link_to_their_lists() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    for path in ["/", "/applications"] {
        let page = html(&t, path, &cookie).await;
        assert!(page.contains(r#"data-testid="getting-started""#), "{path}");
        assert!(page.contains(">Create your first application</a>"), "{path}: {page}");
    }
    let viewer = sign_in_as(&t, "vic", keygate::Role::Viewer).await;
    let page = html(&t, "/", &viewer).await;
    assert!(page.contains(r#"data-testid="getting-started""#) && !page.contains("Create your first application"));
    t.create_app("billing", "").await;
    let page = html(&t, "/", &cookie).await;
    assert!(!page.contains(r#"data-testid="getting-started""#));
    for href in ["/applications", "/applications?sort=active_tokens", "/audit"] {
        assert!(page.contains(&format!(r#"<a href="{href}" class="stat">"#)), "{href}");
    }
    // A search that finds nothing is not a first visit.
    let page = html(&t, "/applications?q=nothing", &cookie).await;
    assert!(page.contains("No applications match.") && !page.contains(r#"data-testid="getting-started""#));
    // Action codes break only after their dots and underscores.
    let page = html(&t, "/audit", &cookie).await;
    assert!(page.contains(r#"<code class="action">application.<wbr>created"#), "{page}");
}

/// A form's outcome comes back to the page it was sent from: a refusal
/// beside the form, then, after a later success, a confirmation in its
/// place; each shown once, and never carried in the URL.
#[tokio::test]
async fn form_outcomes_are_confirmed_in_place_once_and_never_in_the_url() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let c = t.create_app("billing", "").await;
    let id = c.app.id.0;
    let detail = format!("/applications/{id}");
    let post = |function: &str, body: String| {
        let mut req = form_post(&format!("/console/fn/{function}"), &body, Some(&cookie));
        req.headers_mut().insert(header::REFERER, format!("http://127.0.0.1:3000{detail}").parse().unwrap());
        req
    };
    let settings = |ttl: u32| {
        format!(
            "id={id}&name=billing&notes=&token_ttl_seconds={ttl}&max_tokens=30&rate_per_second=20&rate_per_hour=15000"
        )
    };
    let res = t.send(post("update_application", settings(5))).await;
    assert!(refused(&res));
    assert_eq!(res.headers()[header::LOCATION], detail.as_str());
    let page = follow(&t, &res, Some(&cookie)).await;
    assert!(page.contains("token lifetime must be between 60 and 86400 seconds"));
    assert!(!page.contains("Settings saved."));
    let res = t.send(post("update_application", settings(600))).await;
    assert!(succeeded(&res));
    // The page that shows it clears it, and is not kept for back and forward.
    let outcome = outcome_cookie(&res).unwrap();
    let shown = common::page(&t, &detail, Some(&format!("{cookie}; {outcome}"))).await;
    let cleared = shown.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cleared.starts_with("keygate_form=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(shown.headers()[header::CACHE_CONTROL], "no-store");
    // It is this browser's: another session is shown nothing.
    let other = sign_in_as(&t, "olga", keygate::Role::Admin).await;
    assert!(!html_with(&t, &detail, &format!("{other}; {outcome}")).await.contains("Settings saved."));
    let page = follow(&t, &res, Some(&cookie)).await;
    assert!(
        page.contains(r#"role="status" tabindex="-1" data-outcome="" class="saved">Settings saved.</p>"#),
        "confirmed in place"
    );
    assert!(!page.contains("token lifetime must be between"), "the old refusal is gone");
    assert!(!html(&t, &detail, &cookie).await.contains("Settings saved."), "shown once");
    assert_eq!(t.store.require_application(c.app.id, keygate_server::now()).await.unwrap().token_ttl_seconds, 600);

    // Disabling says what it did; the other forms' confirmations stay away.
    let res = t.send(post("set_enabled", format!("id={id}&enabled=false"))).await;
    let page = follow(&t, &res, Some(&cookie)).await;
    assert!(page.contains("Application disabled: its tokens were revoked"));
    assert!(!page.contains("Settings saved.") && !page.contains("Token revoked"));

    // A refused demotion of the only owner leaves the role control on the real role.
    let alice = t.store.admin_credentials("alice").await.unwrap().unwrap().0;
    let mut req = form_post("/console/fn/change_role", &format!("id={}&role=viewer", alice.id), Some(&cookie));
    req.headers_mut().insert(header::REFERER, "http://127.0.0.1:3000/admins".parse().unwrap());
    let res = t.send(req).await;
    assert!(refused(&res));
    let page = follow(&t, &res, Some(&cookie)).await;
    assert!(page.contains(r#"<option value="owner" selected"#), "{page}");
    assert!(!page.contains("Role changed"));
    // Deleting an application confirms on the list it returns to.
    let res = t.send(post("delete_application", format!("id={id}&confirm_name=billing"))).await;
    assert!(succeeded(&res), "{:?}", form_outcome(&res));
    assert_eq!(res.headers()[header::LOCATION], "/applications");
    assert!(follow(&t, &res, Some(&cookie)).await.contains("Application deleted"));
}

/// The new-token form knows the active names, so a namesake is flagged as
/// it is typed; exact times are text for screen readers and a tab stop.
#[tokio::test]
async fn new_token_form_knows_active_names_and_times_are_readable() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let c = t.create_app("billing", "").await;
    let now = keygate_server::now();
    t.store.mint_named_token(c.app.id, "deploy \"prod\"", keygate::ScopeSet::empty(), now + 86_400, now).await.unwrap();
    let old = t.store.mint_named_token(c.app.id, "old", keygate::ScopeSet::empty(), now + 86_400, now).await.unwrap();
    t.store.revoke_token(old.id, now).await.unwrap();
    let page = html(&t, &format!("/applications/{}", c.app.id.0), &cookie).await;
    assert!(page.contains(r#"data-namesakes="[&quot;deploy \&quot;prod\&quot;&quot;]""#), "{page}");
    assert!(page.contains(r#"role="status" data-namesake-for="token-name""#));
    let exact = keygate::time_fmt::exact_utc(c.app.created_at);
    assert!(page.contains(r#"tabindex="0" class="reltime""#), "a tab stop");
    assert!(page.contains(&format!(r#"<span class="exact"> ({exact})</span></time>"#)), "read with the text");

    // After minting: how to send the token, with the server's own URL.
    let mut req =
        form_post("/console/fn/mint_token", &format!("id={}&name=ci&expiry=7&expires_on=", c.app.id.0), Some(&cookie));
    req.headers_mut()
        .insert(header::REFERER, format!("http://127.0.0.1:3000/applications/{}", c.app.id.0).parse().unwrap());
    let res = t.send(req).await;
    let page = follow(&t, &res, Some(&cookie)).await;
    assert!(
        page.contains(r#"curl -H "Authorization: Bearer $KEYGATE_TOKEN" http://127.0.0.1:3000/api/v1/me"#),
        "{page}"
    );
    assert!(page.contains("read -rs KEYGATE_TOKEN"), "the token stays out of the command line");
}

/// Guessing the current password on the account page (a stolen session)
/// is throttled and audited like guessing it at sign-in.
#[tokio::test]
async fn wrong_current_passwords_are_throttled_and_audited() {
    let t = test_app().await;
    let bob = sign_in_as(&t, "bob", keygate::Role::Admin).await;
    let change = |current: &str| {
        let body =
            format!("current_password={current}&new_password=bobs+own+password&confirm_password=bobs+own+password");
        let mut req = form_post("/console/fn/change_password", &body, Some(&bob));
        req.headers_mut().insert(header::ACCEPT, "application/json".parse().unwrap());
        req
    };
    for _ in 0..3 {
        assert_eq!(t.send(change("a+wrong+guess+again")).await.status(), 400);
    }
    let res = t.send(change("long+enough+password")).await;
    assert_eq!(res.status(), 429, "even the right one waits now");
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    let failed: Vec<serde_json::Value> =
        t.audit_actions().await.into_iter().filter(|(a, _)| a == "admin.sign_in_failed").map(|(_, d)| d).collect();
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|d| d["via"] == "password_change" && d["username"] == "bob"), "{failed:?}");
    assert!(html(&t, "/audit", &bob).await.contains("bob gave a wrong current password when changing their password"));
    assert!(t.store.admin_credentials("bob").await.unwrap().is_some());
}

/// A page's address with a trailing slash redirects to the page, query
/// kept; it used to render the page outside the console's routes ("Cannot
/// show this page", and an error in the log). Never to another site.
#[tokio::test]
async fn a_trailing_slash_redirects_to_the_page() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    for (path, to) in [
        ("/applications/", "/applications"),
        ("/applications//", "/applications"),
        ("/audit/?action=token.revoked", "/audit?action=token.revoked"),
        ("/applications/new/", "/applications/new"),
    ] {
        let res = page(&t, path, Some(&cookie)).await;
        assert_eq!(res.status(), 308, "{path}");
        assert_eq!(res.headers()[header::LOCATION], to, "{path}");
    }
    assert!(html(&t, "/applications", &cookie).await.contains("API applications"));
    for elsewhere in ["//evil.example/", "///evil.example/"] {
        let res = page(&t, elsewhere, Some(&cookie)).await;
        assert_eq!(res.status(), 404, "{elsewhere}");
        assert!(res.headers().get(header::LOCATION).is_none(), "{elsewhere}");
    }
}

/// The overview's "Needs attention" panel shows the first lines of a kind
/// and says how many there are, however many applications went dormant.
#[tokio::test]
async fn the_attention_panel_shows_the_first_lines_and_counts_the_rest() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let long_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 400 * 86_400;
    for i in 1..=21 {
        t.store
            .create_application(keygate::ApplicationSettings::new(&format!("idle-{i:02}")), long_ago + i)
            .await
            .unwrap();
    }
    let overview = html(&t, "/", &cookie).await;
    // The panel alone: the latest events name the newest applications too.
    let start = overview.find(r#"data-testid="attention""#).expect("the panel");
    let panel = &overview[start..start + overview[start..].find("</section>").expect("its end")];
    assert_eq!(panel.matches(r#"data-kind="dormant""#).count(), 20, "{panel}");
    assert!(panel.contains("The first 20 of 21 dormant applications are below"), "{panel}");
    assert!(panel.contains(">idle-01<") && panel.contains(">idle-20<"), "{panel}");
    assert!(!panel.contains(">idle-21<"), "longest unused first: {panel}");
    assert!(panel.contains(r#"href="/applications?status=dormant""#), "{panel}");
    t.create_app("busy", "").await;
    let listed = html(&t, "/applications?status=dormant", &cookie).await;
    assert!(listed.contains(">idle-01<") && listed.contains(">idle-21<"), "{listed}");
    assert!(!listed.contains(">busy<") && listed.contains("21 application(s)"), "only the dormant ones: {listed}");
    assert!(listed.contains(r#"<option value="dormant" selected"#), "{listed}");
}
