//! Two real `keygate serve` processes on one PostgreSQL database behave as
//! one server: they start together and migrate once, a token from one
//! works on the other, revocations and new secrets reach both, the token
//! cap holds across them, a console session works on both, events written
//! by one are seen through the other, and killing one under load loses
//! nothing it acknowledged. Runs when `KEYGATE_TEST_POSTGRES_URL` names a
//! test server (`scripts/test.sh` starts one).

mod process;

use process::{signal, Server, BIN};
use serde_json::Value;
use std::process::Command;

fn start(db: &str, dir: &std::path::Path, name: &str) -> Server {
    process::start(
        db,
        &[("KEYGATE_LOG", "warn"), ("KEYGATE_USAGE_FLUSH_SECONDS", "1")],
        dir.join(format!("{name}.log")),
    )
}

fn cli(db: &str, args: &[&str]) -> Value {
    let out = Command::new(BIN).args(args).args(["--database-url", db]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn token_response(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> reqwest::Response {
    http.post(format!("{base}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

async fn token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let res = token_response(http, base, id, secret).await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

async fn me_status(http: &reqwest::Client, base: &str, token: &str) -> u16 {
    http.get(format!("{base}/api/v1/me")).bearer_auth(token).send().await.unwrap().status().as_u16()
}

async fn introspect_status(http: &reqwest::Client, base: &str, id: &str, secret: &str, token: &str) -> u16 {
    http.post(format!("{base}/oauth2/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A fresh database on the test PostgreSQL server, or `None` (the test is
/// skipped) when no server is named.
async fn postgres_database(dir: &std::path::Path) -> Option<String> {
    if keygate::store::testing::postgres_base_url().is_none() {
        eprintln!("skipped: set KEYGATE_TEST_POSTGRES_URL (scripts/test.sh does) to run on PostgreSQL");
        return None;
    }
    Some(keygate::store::testing::fresh_database_url(dir).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_database_act_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = postgres_database(dir.path()).await else { return };

    // Both start at once on the empty database; the migrations run once.
    let (d1, d2, p1, p2) = (db.clone(), db.clone(), dir.path().to_owned(), dir.path().to_owned());
    let a = std::thread::spawn(move || start(&d1, &p1, "a"));
    let b = std::thread::spawn(move || start(&d2, &p2, "b"));
    let (mut a, b) = (a.join().unwrap(), b.join().unwrap());
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(migrations, keygate::store::POSTGRES_MIGRATOR.iter().count() as i64);

    let created = cli(
        &db,
        &["app", "create", "--name", "shared", "--scope", "applications:read", "--rate-per-second", "100000", "--json"],
    );
    let (id, secret) =
        (created["client_id"].as_str().unwrap().to_owned(), created["client_secret"].as_str().unwrap().to_owned());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // A token issued by one instance works on the other.
    let t1 = token(&http, &a.base, &id, &secret).await;
    assert_eq!(me_status(&http, &b.base, &t1).await, 200);

    // Revoked on one, refused by the other on the next request.
    let res = http
        .post(format!("{}/oauth2/revoke", a.base))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", t1.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(me_status(&http, &b.base, &t1).await, 401);

    // The cap holds across instances: 100 requests at once, split over both.
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (http, base, id, secret) =
            (http.clone(), if i % 2 == 0 { a.base.clone() } else { b.base.clone() }, id.clone(), secret.clone());
        tasks.push(tokio::spawn(async move { token_response(&http, &base, &id, &secret).await.status().as_u16() }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let now = keygate_server::now();
    let valid: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL AND expires_at > $1 AND source = 'token_endpoint'",
    )
    .bind(now)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(valid, 30);

    // A new secret (from a third process, the CLI) reaches both instances'
    // cached client records: both refuse the old secret within a second.
    let t2 = token(&http, &b.base, &id, &secret).await;
    assert_eq!(introspect_status(&http, &a.base, &id, &secret, &t2).await, 200);
    assert_eq!(introspect_status(&http, &b.base, &id, &secret, &t2).await, 200);
    let app_id = created["id"].to_string();
    let regenerated = cli(&db, &["app", "regenerate-secret", &app_id, "--json"]);
    let new_secret = regenerated["client_secret"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    for base in [&a.base, &b.base] {
        assert_eq!(introspect_status(&http, base, &id, &secret, &t2).await, 401, "old secret on {base}");
        assert_eq!(me_status(&http, base, &t2).await, 401, "tokens of the old secret on {base}");
    }

    // A console session made on one instance works on the other.
    let res = process::create_owner(&http, &a).await;
    assert!(res.status().is_redirection() || res.status().is_success(), "{}", res.status());
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("keygate_session="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .expect("a session cookie");
    let dashboard = |base: &str, cookie: Option<&str>| {
        let mut r = http.post(format!("{base}/console/fn/dashboard")).form(&[("x", "")]);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    assert_eq!(dashboard(&b.base, None).await.unwrap().status(), 401);
    let res = dashboard(&b.base, Some(&cookie)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("alice"));

    // An hourly quota of 25 grants at most 25, however the requests are
    // spread over the instances.
    let quota = cli(
        &db,
        &["app", "create", "--name", "quota", "--rate-per-second", "100000", "--rate-per-hour", "25", "--json"],
    );
    let (qid, qsecret) =
        (quota["client_id"].as_str().unwrap().to_owned(), quota["client_secret"].as_str().unwrap().to_owned());
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (http, base, id, secret) =
            (http.clone(), if i % 2 == 0 { a.base.clone() } else { b.base.clone() }, qid.clone(), qsecret.clone());
        tasks.push(tokio::spawn(async move { token_response(&http, &base, &id, &secret).await.status().as_u16() }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 25, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15, "{statuses:?}");
    let res = token_response(&http, &b.base, &qid, &qsecret).await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "0");
    assert!(res.headers().contains_key("retry-after"));

    // Killing one instance under load loses nothing it acknowledged; the
    // other keeps serving every token the first one issued.
    let load = {
        let (http, base, id, secret) = (http.clone(), a.base.clone(), id.clone(), new_secret.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for _ in 0..2000 {
                match http
                    .post(format!("{base}/oauth2/token"))
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                {
                    Ok(res) if res.status() == 200 => match res.json::<Value>().await {
                        Ok(v) => acknowledged.push(v["access_token"].as_str().unwrap().to_owned()),
                        Err(_) => break,
                    },
                    _ => break,
                }
            }
            acknowledged
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    signal(&mut a, "-KILL");
    let acknowledged = load.await.unwrap();
    assert!(!acknowledged.is_empty(), "some tokens were issued before the kill");
    // Every acknowledged token is on record. The cap keeps the newest 30
    // valid; the load is sequential, so at most one token was committed
    // and never acknowledged after the last one: the newest 29
    // acknowledged ones all work on the surviving instance.
    let digests: Vec<Vec<u8>> =
        acknowledged.iter().map(|t| keygate::secret::SecretDigest::of(t).as_bytes().to_vec()).collect();
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE token_hash = ANY($1)")
        .bind(&digests)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded, acknowledged.len() as i64);
    for t in acknowledged.iter().rev().take(29) {
        assert_eq!(me_status(&http, &b.base, t).await, 200);
    }

    // Events written by the killed instance are seen through the other.
    let events: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id").fetch_all(&pool).await.unwrap();
    for expected in ["application.created", "token.revoked", "application.secret_regenerated", "admin.owner_created"] {
        assert!(events.iter().any(|e| e == expected), "{expected} in {events:?}");
    }
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_database_answers_503_and_the_server_recovers_by_itself() {
    let Some(base) = keygate::store::testing::postgres_base_url() else {
        eprintln!("skipped: set KEYGATE_TEST_POSTGRES_URL (scripts/test.sh does) to run on PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = keygate::store::testing::fresh_database_url(dir.path()).await.unwrap();
    let name = db.rsplit('/').next().unwrap().to_owned();
    let server = start(&db, dir.path(), "outage");
    let created = cli(&db, &["app", "create", "--name", "o", "--json"]);
    let (id, secret) = (created["client_id"].as_str().unwrap(), created["client_secret"].as_str().unwrap());
    let http = reqwest::Client::new();
    let live = token(&http, &server.base, id, secret).await;

    // The database goes away: no new connections, every open one cut.
    let admin = sqlx::PgPool::connect(&format!("{base}/postgres")).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).execute(&admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&admin)
        .await
        .unwrap();
    let health = http.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let res = token_response(&http, &server.base, id, secret).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "temporarily_unavailable");
    let res = http.get(format!("{}/api/v1/me", server.base)).bearer_auth(&live).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));

    // It comes back; so does the server, without a restart.
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).execute(&admin).await.unwrap();
    let health = http.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(me_status(&http, &server.base, &live).await, 200);
    token(&http, &server.base, id, secret).await;
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains(secret) && !log.contains(&live), "no secret in the log");
}

fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("keygate_session="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// A console form post as a browser without JavaScript sends it.
async fn console_post(
    http: &reqwest::Client,
    base: &str,
    function: &str,
    body: &str,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut r = http
        .post(format!("{base}/console/fn/{function}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html")
        .body(body.to_owned());
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    r.send().await.unwrap()
}

async fn sign_in_status(http: &reqwest::Client, base: &str, password: &str) -> u16 {
    http.post(format!("{base}/console/fn/sign_in"))
        .header("accept", "application/json")
        .form(&[("username", "alice"), ("password", password)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn console_state_throttles_and_usage_are_shared_between_instances() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = postgres_database(dir.path()).await else { return };
    let a = start(&db, dir.path(), "a");
    let b = start(&db, dir.path(), "b");
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // The setup link one instance printed works on the other, and so does
    // the session it makes.
    let setup_a = a.setup.clone().expect("a printed a setup link");
    assert!(b.setup.is_some(), "b printed its own, also valid");
    let code = setup_a.split("code=").nth(1).unwrap();
    let body =
        format!("code={code}&username=alice&password=correct+horse+battery&password_confirm=correct+horse+battery");
    let res = console_post(&http, &b.base, "create_owner", &body, None).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    let cookie = session_cookie(&res).expect("a session cookie");
    let codes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM setup_codes").fetch_one(&pool).await.unwrap();
    assert_eq!(codes, 0, "every setup link ends with the first owner");

    // A secret made on one instance is shown once, by whichever serves the
    // next page.
    let res = console_post(
        &http,
        &a.base,
        "create_application",
        "name=flashy&notes=&token_ttl_seconds=3600&max_tokens=30&rate_per_second=20&rate_per_hour=15000",
        Some(&cookie),
    )
    .await;
    assert!(res.status().is_redirection(), "{}", res.status());
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/applications/"), "{location}");
    let page = |base: String| {
        let (http, location, cookie) = (http.clone(), location.clone(), cookie.clone());
        async move {
            let res = http.get(format!("{base}{location}")).header("cookie", cookie).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.text().await.unwrap()
        }
    };
    let shown = page(b.base.clone()).await;
    let at = shown.find("kgs_").expect("the new secret, shown on the other instance");
    let secret: String = shown[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    assert!(!page(a.base.clone()).await.contains("kgs_"), "and only once, on either");

    // Failed sign-ins count together: three free, split over both, then
    // the other instance makes the fourth wait, right password or not.
    for (i, base) in [&a.base, &b.base, &a.base].into_iter().enumerate() {
        assert_eq!(sign_in_status(&http, base, "wrong horse battery").await, 409, "attempt {i}");
    }
    assert_eq!(sign_in_status(&http, &b.base, "correct horse battery").await, 429);

    // Failed client authentications count together too: ten a minute for
    // one client ID from one address, whichever instance sees them.
    let id: String =
        sqlx::query_scalar("SELECT client_id FROM applications WHERE name = 'flashy'").fetch_one(&pool).await.unwrap();
    for i in 0..keygate::ratelimit::FAILED_AUTH_PER_CLIENT_AND_ADDRESS_PER_MINUTE {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let res = token_response(&http, base, &id, "kgs_wrong").await;
        assert_eq!(res.status(), 401, "failure {i}");
    }
    for base in [&a.base, &b.base] {
        let res = token_response(&http, base, &id, "kgs_wrong").await;
        assert_eq!(res.status(), 429, "past the shared limit on {base}");
    }
    // A correct secret is never refused because of failures.
    let live = token(&http, &a.base, &id, &secret).await;

    // Last use from both instances lands once each flushes (every second
    // here), the later use winning.
    assert_eq!(me_status(&http, &a.base, &live).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before_second_use = keygate_server::now();
    assert_eq!(me_status(&http, &b.base, &live).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let digest = keygate::secret::SecretDigest::of(&live);
    let last_used: Option<i64> = sqlx::query_scalar("SELECT last_used_at FROM tokens WHERE token_hash = $1")
        .bind(digest.as_bytes())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(last_used.is_some_and(|t| t >= before_second_use), "{last_used:?} >= {before_second_use}");

    // Repeated failures fold into one event per instance and minute, and
    // the counts add up to every failure.
    for i in 0..8 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        assert_eq!(token_response(&http, base, "kgc_nobody_at_all", "kgs_x").await.status(), 401);
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let folded: Vec<String> = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'client.authentication_failed' \
         AND details LIKE '%kgc_nobody_at_all%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let counts: Vec<i64> =
        folded.iter().map(|d| serde_json::from_str::<Value>(d).unwrap()["count"].as_i64().unwrap_or(1)).collect();
    assert!(counts.len() <= 2 * 2, "one event per instance (and minute): {counts:?}");
    assert_eq!(counts.iter().sum::<i64>(), 8, "{counts:?}");

    // Disabled from a third process: both instances refuse the
    // application's tokens and secret on the next request.
    let app_id: i64 =
        sqlx::query_scalar("SELECT id FROM applications WHERE name = 'flashy'").fetch_one(&pool).await.unwrap();
    cli(&db, &["app", "disable", &app_id.to_string(), "--json"]);
    for base in [&a.base, &b.base] {
        assert_eq!(me_status(&http, base, &live).await, 401, "token of a disabled application on {base}");
        assert_ne!(token_response(&http, base, &id, &secret).await.status(), 200, "disabled on {base}");
    }
}

#[test]
fn a_wrong_or_unreachable_database_fails_at_start_naming_the_host_never_the_password() {
    let Some(base) = keygate::store::testing::postgres_base_url() else {
        eprintln!("skipped: set KEYGATE_TEST_POSTGRES_URL (scripts/test.sh does) to run on PostgreSQL");
        return;
    };
    let port = base.rsplit(':').next().unwrap();
    for url in [
        // Nothing listens on port 1.
        "postgres://keygate:hunter2-secret@127.0.0.1:1/keygate".to_owned(),
        // A real server, a role that does not exist.
        format!("postgres://nobody_here:hunter2-secret@127.0.0.1:{port}/keygate"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0", "--database-url", &url])
            .env("KEYGATE_KEY_FILE", dir.path().join("keygate.key"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(error.len(), 1, "one line: {stderr}");
        assert!(error[0].contains("127.0.0.1:"), "names the host: {stderr}");
        assert!(!stderr.contains("hunter2-secret"), "never the password: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2-secret"));
    }
}

/// Two instances started together on an empty database share one key file
/// and make one signing key; a JWT from one verifies against the other's
/// JWKS, a revocation through one reaches the other, and a rotation by the
/// CLI is published by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jwt_keys_are_one_set_across_instances() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = postgres_database(dir.path()).await else { return };
    let (d1, d2, p1, p2) = (db.clone(), db.clone(), dir.path().to_owned(), dir.path().to_owned());
    let a = std::thread::spawn(move || start(&d1, &p1, "a"));
    let b = std::thread::spawn(move || start(&d2, &p2, "b"));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys").fetch_one(&pool).await.unwrap();
    assert_eq!(keys, 1, "one first key for the cluster");

    let app = cli(
        &db,
        &["app", "create", "--name", "jwt", "--scope", "applications:read", "--token-format", "jwt", "--json"],
    );
    let (id, secret) = (app["client_id"].as_str().unwrap(), app["client_secret"].as_str().unwrap());
    let http = reqwest::Client::new();
    let jwt = token(&http, &a.base, id, secret).await;
    let jwks: Value = http.get(format!("{}/oauth2/jwks", b.base)).send().await.unwrap().json().await.unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap()).expect("b publishes a's key");
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&["urn:keygate:api"]);
    let claims = jsonwebtoken::decode::<Value>(&jwt, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap();
    assert_eq!(claims.claims["client_id"], id);
    assert_eq!(me_status(&http, &b.base, &jwt).await, 200);
    let res = http
        .post(format!("{}/oauth2/revoke", b.base))
        .basic_auth(id, Some(secret))
        .form(&[("token", jwt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(me_status(&http, &a.base, &jwt).await, 401);

    let key_file = dir.path().join("keygate.key");
    let out = Command::new(BIN)
        .args(["keys", "rotate", "--json", "--database-url", &db, "--key-file", key_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for server in [&a, &b] {
        let jwks: Value = http.get(format!("{}/oauth2/jwks", server.base)).send().await.unwrap().json().await.unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "the next key is published by every instance");
    }
}
