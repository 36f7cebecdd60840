//! Compression and caching of each kind of answer: fingerprinted assets
//! (precompressed, cached for a year), other files (revalidated), a name
//! from another build (404), console pages (`private, no-cache`, or
//! `no-store` when they show a secret or the setup code), and API answers
//! compressed by `Accept-Encoding` when large enough.

mod common;

use axum::body::Body;
use axum::http::{header, Request};
use common::*;
use keygate::store::Store;
use keygate_server::AppState;
use std::path::Path;
use tower::ServiceExt;

/// A site with known files, and their precompressed forms (their bytes
/// are checked, not decoded: the server sends them as they are).
fn site(root: &Path) {
    let pkg = root.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    for (name, body) in
        [("keygate.js", "export default 1;"), ("keygate.wasm", "\0asm-bytes"), ("keygate.css", "body{}")]
    {
        std::fs::write(pkg.join(name), body).unwrap();
        std::fs::write(pkg.join(format!("{name}.br")), format!("br:{body}")).unwrap();
        std::fs::write(pkg.join(format!("{name}.gz")), format!("gz:{body}")).unwrap();
    }
}

async fn app_on(root: &Path) -> (axum::Router, AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = keygate::store::testing::fresh_database_url(dir.path()).await.unwrap();
    let store = Store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let fingerprint = keygate_server::assets::fingerprint(&root.join("pkg"), "keygate");
    let options = leptos::config::LeptosOptions::builder()
        .output_name(format!("keygate.{fingerprint}"))
        .site_root(root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr("127.0.0.1:3000".parse::<std::net::SocketAddr>().unwrap())
        .build();
    let state = AppState::new(options, store, "http://127.0.0.1:3000", keygate::jwt::KeyEncryptionKey::for_tests(1))
        .await
        .unwrap();
    (keygate_server::build_router(state.clone()).await.unwrap(), state, dir)
}

async fn get(router: &axum::Router, path: &str, encoding: Option<&str>) -> axum::response::Response {
    let mut b = Request::get(path).header(header::ACCEPT, "text/html");
    if let Some(e) = encoding {
        b = b.header(header::ACCEPT_ENCODING, e);
    }
    router.clone().oneshot(b.body(Body::empty()).unwrap()).await.unwrap()
}

fn header_of(r: &axum::response::Response, name: header::HeaderName) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn each_kind_of_answer_is_compressed_and_cached_as_it_should() {
    let root = tempfile::tempdir().unwrap();
    site(root.path());
    let (router, state, _db) = app_on(root.path()).await;
    let name = state.leptos_options.output_name.to_string();
    let fp = name.strip_prefix("keygate.").unwrap().to_owned();
    assert_eq!(fp.len(), 16);

    // The pages name this build's files.
    let login = get(&router, "/login", None).await;
    assert_eq!(header_of(&login, header::CACHE_CONTROL), "private, no-cache");
    let html = String::from_utf8(body_bytes(login).await).unwrap();
    assert!(html.contains(&format!("/pkg/keygate.{fp}.css")), "stylesheet by fingerprint");
    assert!(html.contains(&format!("/pkg/keygate.{fp}")), "scripts by fingerprint");

    let immutable = "public, max-age=31536000, immutable";
    for (file, accept, encoding, body, content_type) in [
        (format!("keygate.{fp}.wasm"), Some("gzip, br"), "br", "br:\0asm-bytes", "application/wasm"),
        (format!("keygate.{fp}_bg.wasm"), Some("br"), "br", "br:\0asm-bytes", "application/wasm"),
        (format!("keygate.{fp}.js"), Some("gzip"), "gzip", "gz:export default 1;", "text/javascript"),
        (format!("keygate.{fp}.css"), None, "", "body{}", "text/css"),
    ] {
        let r = get(&router, &format!("/pkg/{file}"), accept).await;
        assert_eq!(r.status(), 200, "{file}");
        assert_eq!(header_of(&r, header::CACHE_CONTROL), immutable, "{file}");
        assert_eq!(header_of(&r, header::CONTENT_ENCODING), encoding, "{file}");
        assert!(header_of(&r, header::CONTENT_TYPE).starts_with(content_type), "{file}");
        assert!(header_of(&r, header::VARY).to_lowercase().contains("accept-encoding"), "{file}");
        assert_eq!(body_bytes(r).await, body.as_bytes(), "{file}");
    }
    // Another build's name (a rolling deploy): this build's file, never
    // kept without asking again.
    let stale = get(&router, "/pkg/keygate.0123456789abcdef.css", Some("br")).await;
    assert_eq!(stale.status(), 200);
    assert_eq!(header_of(&stale, header::CACHE_CONTROL), "no-cache");
    assert_eq!(body_bytes(stale).await, b"br:body{}");
    // Unfingerprinted names work but are revalidated.
    let plain = get(&router, "/pkg/keygate.css", Some("br")).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(header_of(&plain, header::CACHE_CONTROL), "no-cache");
    assert_eq!(header_of(&plain, header::CONTENT_ENCODING), "br");
    assert_eq!(get(&router, "/pkg/../Cargo.toml", None).await.status(), 404);

    // Console pages are compressed for browsers that accept it.
    let page = get(&router, "/login", Some("br")).await;
    assert_eq!(header_of(&page, header::CONTENT_ENCODING), "br");
    let page = get(&router, "/login", Some("gzip")).await;
    assert_eq!(header_of(&page, header::CONTENT_ENCODING), "gzip");
    let bytes = body_bytes(page).await;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text).unwrap();
    assert!(text.contains("<form"), "the gzip body decodes to the page");
    // The setup page carries a one-time code: no-store.
    state.store.add_setup_code(&keygate::secret::SecretDigest::of("code"), keygate_server::now()).await.unwrap();
    let setup = get(&router, "/setup?code=code", Some("br")).await;
    assert_eq!(header_of(&setup, header::CACHE_CONTROL), "no-store");

    // API: small answers stay plain, large ones are compressed.
    let health = get(&router, "/healthz", Some("br")).await;
    assert_eq!(header_of(&health, header::CONTENT_ENCODING), "");
    let doc = get(&router, "/api/v1/openapi.json", Some("gzip")).await;
    assert_eq!(header_of(&doc, header::CACHE_CONTROL), "no-store");
    assert_eq!(header_of(&doc, header::CONTENT_ENCODING), "gzip");
    assert!(header_of(&doc, header::VARY).to_lowercase().contains("accept-encoding"));
}

#[tokio::test]
async fn a_page_showing_a_secret_is_never_stored() {
    let t = test_app().await;
    let cookie = setup_owner(&t).await;
    let body = "name=cache-check&notes=&token_ttl_seconds=3600&max_tokens=30&rate_per_second=20&rate_per_hour=15000";
    let res = t.send(form_post("/console/fn/create_application", body, Some(&cookie))).await;
    assert_eq!(header_of(&res, header::CACHE_CONTROL), "no-store", "server function answers");
    let location = header_of(&res, header::LOCATION);
    let with_secret = page(&t, &location, Some(&cookie)).await;
    assert_eq!(header_of(&with_secret, header::CACHE_CONTROL), "no-store");
    assert!(String::from_utf8(body_bytes(with_secret).await).unwrap().contains("shown only this once"));
    let again = page(&t, &location, Some(&cookie)).await;
    assert_eq!(header_of(&again, header::CACHE_CONTROL), "private, no-cache");
}
