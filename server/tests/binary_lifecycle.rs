//! The real `keygate` binary: last-used times are flushed within seconds and
//! at SIGTERM, and an acknowledged token survives SIGKILL.

use std::process::Command;
use std::time::{Duration, Instant};

mod process;

use process::{signal, Server, BIN};

fn start(db: &str, flush_seconds: &str) -> Server {
    let log = std::path::PathBuf::from(db.trim_start_matches("sqlite:")).with_extension("log");
    process::start(db, &[("KEYGATE_USAGE_FLUSH_SECONDS", flush_seconds), ("KEYGATE_LOG", "warn")], log)
}

fn cli(db: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN).args(args).args(["--database-url", db]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let res = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

async fn last_used(db: &str, display_prefix: &str) -> Option<i64> {
    let store = keygate::store::Store::open(db).await.unwrap();
    let v: Option<i64> = sqlx::query_scalar("SELECT last_used_at FROM tokens WHERE display_prefix = ?")
        .bind(display_prefix)
        .fetch_one(store.sqlite_pool().unwrap())
        .await
        .unwrap();
    store.close().await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_flush_sigterm_and_sigkill_durability() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("k.db").display());
    let created = cli(&db, &["app", "create", "--name", "bin-test", "--json"]);
    let (id, secret) = (created["client_id"].as_str().unwrap(), created["client_secret"].as_str().unwrap());
    let listed = cli(&db, &["app", "list", "--json"]);
    assert_eq!(listed[0]["name"], "bin-test");
    assert!(!listed.to_string().contains(secret), "app list never shows a secret");
    let http = reqwest::Client::new();

    // 1. The periodic flush writes last-used within 5 seconds.
    let mut server = start(&db, "2");
    let t1 = token(&http, &server.base, id, secret).await;
    let me = http.get(format!("{}/api/v1/me", server.base)).bearer_auth(&t1).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let used = Instant::now();
    loop {
        if last_used(&db, &t1[..12]).await.is_some() {
            break;
        }
        assert!(used.elapsed() < Duration::from_secs(5), "last_used_at not written within 5 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("last_used_at written {} ms after the use", used.elapsed().as_millis());
    signal(&mut server, "-TERM");

    // 2. With the periodic flush an hour away, only the SIGTERM flush can write it.
    let mut server = start(&db, "3600");
    let t2 = token(&http, &server.base, id, secret).await;
    let me = http.get(format!("{}/api/v1/me", server.base)).bearer_auth(&t2).send().await.unwrap();
    assert_eq!(me.status(), 200);
    assert!(last_used(&db, &t2[..12]).await.is_none());
    signal(&mut server, "-TERM");
    assert!(last_used(&db, &t2[..12]).await.is_some(), "SIGTERM flushed the pending use");

    // 3. A token the server acknowledged survives SIGKILL.
    let mut server = start(&db, "3600");
    let t3 = token(&http, &server.base, id, secret).await;
    signal(&mut server, "-KILL");
    let server = start(&db, "3600");
    let me = http.get(format!("{}/api/v1/me", server.base)).bearer_auth(&t3).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let mut server = server;
    signal(&mut server, "-TERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("k.db").display());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut server = start(&db, "2");
    assert!(server.setup.is_some(), "a first start prints the setup link");
    let res = process::create_owner(&http, &server).await;
    assert_eq!(res.headers()["location"], "/");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    signal(&mut server, "-TERM");

    let mut server = start(&db, "2");
    assert!(server.setup.is_none(), "no setup link once an administrator exists");
    let page = http
        .get(format!("{}/", server.base))
        .header("accept", "text/html")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("signed-in-as\">alice"));
    signal(&mut server, "-TERM");
}

/// The key file: made with mode 0600 at first start, refused when others
/// may read it, and `keys rotate`/`keys list` work beside a running server.
#[test]
fn the_key_file_is_private_and_keys_rotate_from_the_cli() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("keygate.db").display());
    let key_file = dir.path().join("keygate.key");
    let server = start(&db, "1");
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let key_arg = key_file.to_str().unwrap();
    let rotated = cli(&db, &["keys", "rotate", "--alg", "RS256", "--key-file", key_arg, "--json"]);
    assert_eq!(rotated["state"], "next");
    assert_eq!(rotated["algorithm"], "RS256");
    let listed = cli(&db, &["keys", "list", "--json"]);
    let states: Vec<&str> = listed.as_array().unwrap().iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["signing", "next"]);
    drop(server);

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--database-url", &db, "--key-file", key_arg])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a group-readable key file stops the server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0640") && stderr.contains("chmod 600"), "{stderr}");
    // Without its key file, a database with keys does not start either.
    let out = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--database-url", &db])
        .arg("--key-file")
        .arg(dir.path().join("missing.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is missing"));
    assert!(!dir.path().join("missing.key").exists());
}

/// A webhook delivery that failed while the receiver was down is still
/// queued after a restart, and the restarted server delivers it, signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_webhook_delivery_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("hooks.db").display());
    let mut server = start(&db, "1");
    let key_file = dir.path().join("keygate.key");
    // A port with nobody listening yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let with_key = |args: &[&str]| {
        let out =
            Command::new(BIN).args(args).args(["--database-url", &db, "--key-file"]).arg(&key_file).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let url = format!("http://127.0.0.1:{port}/hook");
    let hook = with_key(&["webhook", "add", "--url", &url, "--event", "application", "--json"]);
    let secret = hook["secret"].as_str().unwrap().to_owned();
    cli(&db, &["app", "create", "--name", "queued-while-down", "--json"]);

    // The running server tries, fails (connection refused) and backs off.
    let attempts = || async {
        let store = keygate::store::Store::open(&db).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_attempts")
            .fetch_one(store.sqlite_pool().unwrap())
            .await
            .unwrap();
        store.close().await;
        n
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while attempts().await == 0 {
        assert!(Instant::now() < deadline, "the server never tried the delivery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    signal(&mut server, "-TERM");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let _server = start(&db, "1");
    let (headers, body) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the restarted server delivers the pending event")
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "application.created");
    assert_eq!(v["data"]["target"]["name"], "queued-while-down");
    // The signature, checked from the secret alone.
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    let (id, ts) = (headers["webhook-id"].to_str().unwrap(), headers["webhook-timestamp"].to_str().unwrap());
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    assert_eq!(
        headers["webhook-signature"].to_str().unwrap(),
        format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
    );
}

/// `token list` reads an application's tokens a page at a time and still
/// prints every one, newest first.
#[tokio::test]
async fn the_cli_lists_every_token_past_one_page() {
    use keygate::store::testing::TestOps;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("k.db").display());
    let created = cli(&db, &["app", "create", "--name", "many-tokens", "--scope", "tokens:read", "--json"]);
    let app = keygate::ApplicationId(created["id"].as_i64().unwrap());
    let store = keygate::store::Store::open(&db).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut minted = Vec::new();
    for i in 0..201 {
        let scopes = keygate::ScopeSet::empty();
        minted.push(store.mint_named_token(app, &format!("t{i}"), scopes, now + 86_400, now).await.unwrap().id.0);
    }
    store.close().await;
    let listed = cli(&db, &["token", "list", &app.0.to_string(), "--json"]);
    let ids: Vec<i64> = listed.as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
    minted.reverse();
    assert_eq!(ids, minted);
}
