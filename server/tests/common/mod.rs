//! Shared test harness: the real router on a real SQLite file.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, Request, Response};
use axum::Router;
use base64::Engine;
use http_body_util::BodyExt;
use keygate::store::Store;
use keygate::{ApplicationSettings, ApplicationView, ScopeSet};
use keygate_server::AppState;
use std::net::SocketAddr;
use tower::ServiceExt;

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub store: Store,
    /// The same database for raw checks, on either backend (`$1` parameters).
    pub db: sqlx::AnyPool,
    pub url: String,
    pub _dir: tempfile::TempDir,
}

/// The real router on a fresh database: SQLite, or PostgreSQL when
/// `KEYGATE_TEST_POSTGRES_URL` names a test server.
pub async fn test_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = keygate::store::testing::fresh_database_url(dir.path()).await.unwrap();
    let store = Store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let addr: SocketAddr = "127.0.0.1:3000".parse().unwrap();
    let state = AppState::new(
        keygate_server::serve::leptos_options(addr),
        store.clone(),
        "http://127.0.0.1:3000",
        keygate::jwt::KeyEncryptionKey::for_tests(1),
    )
    .await
    .unwrap();
    let router = keygate_server::build_router(state.clone()).await.unwrap();
    sqlx::any::install_default_drivers();
    let db = sqlx::any::AnyPoolOptions::new().max_connections(2).connect(&url).await.unwrap();
    TestApp { router, state, store, db, url, _dir: dir }
}

pub use keygate::store::testing::TestOps;

pub struct Created {
    pub app: ApplicationView,
    pub secret: String,
}

impl TestApp {
    pub fn database_url(&self) -> String {
        self.url.clone()
    }

    pub fn on_postgres(&self) -> bool {
        self.store.backend() == keygate::store::Backend::Postgres
    }

    pub async fn create_app(&self, name: &str, scopes: &str) -> Created {
        let mut s = ApplicationSettings::new(name);
        s.scopes = ScopeSet::parse(scopes).unwrap();
        let (app, secret) = self.store.create_application(s, keygate_server::now()).await.unwrap();
        Created { app, secret: secret.expose().to_owned() }
    }

    pub async fn send(&self, req: Request<Body>) -> Response<Body> {
        self.router.clone().oneshot(req).await.unwrap()
    }

    pub async fn token_request(&self, basic: Option<(&str, &str)>, body: &str) -> Response<Body> {
        let mut b = Request::post("/oauth2/token").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            b = b.header(header::AUTHORIZATION, basic_header(id, secret));
        }
        self.send(b.body(Body::from(body.to_owned())).unwrap()).await
    }

    /// A token from the token endpoint, or a panic.
    pub async fn obtain_token(&self, c: &Created, scope: Option<&str>) -> String {
        let body = match scope {
            Some(s) => format!("grant_type=client_credentials&scope={}", s.replace(' ', "+")),
            None => "grant_type=client_credentials".to_owned(),
        };
        let res = self.token_request(Some((&c.app.client_id, &c.secret)), &body).await;
        assert_eq!(res.status(), 200);
        json(res).await["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Response<Body> {
        self.send(
            Request::get(path).header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap(),
        )
        .await
    }

    pub async fn audit_actions(&self) -> Vec<(String, serde_json::Value)> {
        sqlx::query_as::<_, (String, String)>("SELECT action, details FROM audit_events ORDER BY id")
            .fetch_all(&self.db)
            .await
            .unwrap()
            .into_iter()
            .map(|(a, d)| (a, serde_json::from_str(&d).unwrap()))
            .collect()
    }
}

pub fn basic_header(id: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

pub async fn body_bytes(res: Response<Body>) -> Vec<u8> {
    res.into_body().collect().await.unwrap().to_bytes().to_vec()
}

pub async fn json(res: Response<Body>) -> serde_json::Value {
    let bytes = body_bytes(res).await;
    serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
}

// ------------------------------------------------------------ console helpers

pub fn form_post(path: &str, body: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "text/html")
        .header(header::REFERER, "http://127.0.0.1:3000/login");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

pub fn session_cookie(res: &Response<Body>) -> Option<(String, String)> {
    res.headers().get_all(header::SET_COOKIE).iter().find_map(|v| {
        let v = v.to_str().ok()?;
        v.starts_with("keygate_session=").then(|| (v.split(';').next().unwrap().to_owned(), v.to_owned()))
    })
}

/// The outcome a no-JavaScript form post hands to the next page, read
/// from its cookie (unverified here: the server checks the signature).
pub fn form_outcome(res: &Response<Body>) -> Option<app::components::FormOutcome> {
    res.headers().get_all(header::SET_COOKIE).iter().find_map(|v| {
        let value = v.to_str().ok()?.strip_prefix("keygate_form=")?.split(';').next()?;
        let payload = value.split('.').next()?;
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    })
}

/// Whether a form post was refused (its outcome carries an error).
pub fn refused(res: &Response<Body>) -> bool {
    form_outcome(res).is_some_and(|o| o.error.is_some())
}

/// Whether a form post succeeded: its outcome is there and carries no error.
pub fn succeeded(res: &Response<Body>) -> bool {
    form_outcome(res).expect("a form post hands its outcome to the next page").error.is_none()
}

/// The `keygate_form=…` pair a form post set, to send with the next page.
pub fn outcome_cookie(res: &Response<Body>) -> Option<String> {
    res.headers().get_all(header::SET_COOKIE).iter().find_map(|v| {
        let v = v.to_str().ok()?;
        v.starts_with("keygate_form=").then(|| v.split(';').next().unwrap_or_default().to_owned())
    })
}

/// The page a form post redirected to, as the browser shows it next: with
/// the session cookie (if any) and the outcome cookie the post set.
pub async fn follow(t: &TestApp, res: &Response<Body>, session: Option<&str>) -> String {
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(!location.contains("__err"), "errors never travel in the URL: {location}");
    let cookies: Vec<String> = session.map(str::to_owned).into_iter().chain(outcome_cookie(res)).collect();
    let cookie = cookies.join("; ");
    let res = page(t, &location, (!cookie.is_empty()).then_some(cookie.as_str())).await;
    assert_eq!(res.status(), 200, "{location}");
    String::from_utf8(body_bytes(res).await).unwrap()
}

pub async fn page(t: &TestApp, path: &str, cookie: Option<&str>) -> Response<Body> {
    // As a browser navigates: Accept names text/html.
    let mut b = Request::get(path).header(header::ACCEPT, "text/html,application/xhtml+xml");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    t.send(b.body(Body::empty()).unwrap()).await
}

pub async fn setup_owner(t: &TestApp) -> String {
    t.store.add_setup_code(&keygate::secret::SecretDigest::of("the-setup-code"), keygate_server::now()).await.unwrap();
    let res = t
        .send(form_post(
            "/console/fn/create_owner",
            "code=the-setup-code&username=alice&password=correct+horse+battery&password_confirm=correct+horse+battery",
            None,
        ))
        .await;
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(res.headers()[header::LOCATION], "/");
    let (cookie, full) = session_cookie(&res).expect("a session cookie");
    assert!(full.contains("HttpOnly"), "{full}");
    assert!(full.contains("SameSite=Strict"), "{full}");
    assert!(!full.contains("Secure"), "plain http issuer: no Secure flag: {full}");
    cookie
}
