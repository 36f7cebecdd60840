//! `keygate backup PATH` on a running server under token load: the copy,
//! served by a new server, accepts every token acknowledged before the
//! backup began. And metrics served by the binary on `--metrics-addr`.

use std::process::Command;
use std::sync::{Arc, Mutex};

mod process;

use process::BIN;

fn cli(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).args(["--database-url", db]).output().unwrap()
}

fn start(db: &str, dir: &std::path::Path, name: &str) -> process::Server {
    process::start(db, &[("KEYGATE_LOG", "warn")], dir.join(format!("{name}.log")))
}

/// Token requests per load client (4 clients: under the cap of 1,000).
const PER_CLIENT: usize = 240;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_keeps_every_acknowledged_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("live.db").display());
    // Under the token cap (1,000), so no token of the load is evicted.
    let out = cli(
        &db,
        &[
            "app",
            "create",
            "--name",
            "busy",
            "--scope",
            "applications:read",
            "--max-tokens",
            "1000",
            "--rate-per-second",
            "100000",
            "--rate-per-hour",
            "100000000",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let server = start(&db, dir.path(), "live");
    let http = reqwest::Client::new();

    // Four clients request tokens without pause; each acknowledged token
    // is noted with whether the backup had begun when it arrived.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (http, base, id, secret) = (http.clone(), server.base.clone(), id.clone(), secret.clone());
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            for _ in 0..PER_CLIENT {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let res = http
                    .post(format!("{base}/oauth2/token"))
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                let token = res.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
                acknowledged.lock().unwrap().push(token);
            }
        }));
    }
    while acknowledged.lock().unwrap().len() < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let copy = dir.path().join("copy.db");
    let backup = tokio::task::spawn_blocking({
        let (db, copy) = (db.clone(), copy.clone());
        move || cli(&db, &["backup", copy.to_str().unwrap()])
    })
    .await
    .unwrap();
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    assert!(String::from_utf8_lossy(&backup.stdout).contains("Backed up to"));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let total = acknowledged.lock().unwrap().len();
    assert!(total > before.len(), "load went on during and after the backup");

    // A second backup to the same path is refused, and the copy untouched.
    let size = std::fs::metadata(&copy).unwrap().len();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777, 0o600, "the copy is private");
    let again = cli(&db, &["backup", copy.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("never overwrites"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), size);
    // A dangling symlink is not followed, and nothing is left behind.
    let dangling = dir.path().join("dangling.db");
    std::os::unix::fs::symlink(dir.path().join("through-the-link.db"), &dangling).unwrap();
    let out = cli(&db, &["backup", dangling.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!dir.path().join("through-the-link.db").exists());
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A database that does not exist is not created to be copied.
    let missing = dir.path().join("missing.db");
    let out = cli(&format!("sqlite:{}", missing.display()), &["backup", dir.path().join("x.db").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no database"));
    assert!(!missing.exists());
    drop(server);

    // Restore: serve the copy (as the README says: stop, copy in place, start).
    let restored_path = dir.path().join("restored.db");
    std::fs::copy(&copy, &restored_path).unwrap();
    let restored_db = format!("sqlite:{}", restored_path.display());
    let restored = start(&restored_db, dir.path(), "restored");
    for token in &before {
        let res = http.get(format!("{}/api/v1/me", restored.base)).bearer_auth(token).send().await.unwrap();
        assert_eq!(res.status(), 200, "a token acknowledged before the backup works on the restored copy");
    }
    println!(
        "backup under load: {} tokens before it began, {total} in all; all {} valid after restore",
        before.len(),
        before.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_on_their_own_address_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("m.db").display());
    let key_file = dir.path().join("keygate.key");
    let mut child = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--database-url", &db])
        .arg("--key-file")
        .arg(&key_file)
        .env("KEYGATE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut metrics, mut public) = (None, None);
    while metrics.is_none() || public.is_none() {
        let line = lines.next().expect("a line").unwrap();
        if let Some(m) = line.strip_prefix("Metrics on ") {
            metrics = Some(m.trim().to_owned());
        }
        if let Some(p) = line.strip_prefix("Keygate listening on ") {
            public = Some(p.trim().to_owned());
        }
    }
    let (metrics, public) = (metrics.unwrap(), public.unwrap());
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{public}/healthz")).send().await.unwrap().status(), 200);
    let text = http.get(&metrics).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("keygate_http_requests_total{endpoint=\"/healthz\",status=\"2xx\"} 1"), "{text}");
    assert_eq!(http.get(format!("{public}/metrics")).send().await.unwrap().status(), 404);
    let root = metrics.trim_end_matches("/metrics");
    assert_eq!(http.get(format!("{root}/")).send().await.unwrap().status(), 404);
    let _ = child.kill();
    let _ = child.wait();
}
