//! Forward-auth behind real reverse proxies: Debian's nginx
//! (`auth_request`) and Caddy (`forward_auth`) in front of a small
//! upstream, with the README's configurations, against the real binary.
//! `scripts/test.sh` installs both and sets `KEYGATE_REQUIRE_PROXIES=1`, so
//! there a missing proxy fails the test instead of skipping it.

mod process;

use process::BIN;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn cli(db: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN).args(args).args(["--database-url", db, "--json"]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An upstream that answers 200 with the `x-keygate-*` headers it received,
/// one per line.
fn upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    port
}

fn answer(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut seen = String::from("upstream reached\n");
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if line.to_ascii_lowercase().starts_with("x-keygate-") {
            seen.push_str(&line.to_ascii_lowercase().replace("\r\n", "\n"));
        }
    }
    let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{seen}", seen.len());
    let _ = stream.write_all(reply.as_bytes());
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM, so nginx's master takes its workers down with it (a
        // SIGKILL left them running, orphaned); SIGKILL if it lingers.
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `port` to accept connections; on failure, says what the
/// proxy logged (`log`).
fn wait_for(port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline {
            let logged = std::fs::read_to_string(log).unwrap_or_default();
            panic!("nothing listens on {port}; {}:\n{logged}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn available(program: &str) -> bool {
    let found = Command::new(program).arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
        || Command::new(program).arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found {
        assert!(std::env::var("KEYGATE_REQUIRE_PROXIES").is_err(), "{program} is not installed");
        eprintln!("skipped: {program} is not installed (scripts/test.sh installs it)");
    }
    found
}

fn nginx(dir: &Path, port: u16, keygate: &str, upstream: u16) -> Proxy {
    let d = dir.display();
    let config = format!(
        r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_request /_keygate;
            auth_request_set $keygate_client_id $upstream_http_x_keygate_client_id;
            auth_request_set $keygate_application $upstream_http_x_keygate_application;
            auth_request_set $keygate_scopes $upstream_http_x_keygate_scopes;
            proxy_set_header X-Keygate-Client-Id $keygate_client_id;
            proxy_set_header X-Keygate-Application $keygate_application;
            proxy_set_header X-Keygate-Scopes $keygate_scopes;
            proxy_pass http://127.0.0.1:{upstream};
        }}
        location = /_keygate {{
            internal;
            proxy_pass http://{keygate}/oauth2/forward-auth?scope=orders:read&audience=https://orders.internal/;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"#
    );
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let file = dir.join("nginx.conf");
    std::fs::write(&file, config).unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&file)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(port, &dir.join("nginx-error.log"));
    Proxy(child)
}

fn caddy(dir: &Path, port: u16, keygate: &str, upstream: u16) -> Proxy {
    let config = format!(
        r#"{{
    admin off
    auto_https off
}}
http://127.0.0.1:{port} {{
    forward_auth {keygate} {{
        uri /oauth2/forward-auth?scope=orders:read&audience=https://orders.internal/
        copy_headers X-Keygate-Client-Id X-Keygate-Application X-Keygate-Scopes
    }}
    reverse_proxy 127.0.0.1:{upstream}
}}
"#
    );
    let file = dir.join("Caddyfile");
    std::fs::write(&file, config).unwrap();
    let child = Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("caddy.log")).unwrap())
        .spawn()
        .unwrap();
    wait_for(port, &dir.join("caddy.log"));
    Proxy(child)
}

async fn token(http: &reqwest::Client, base: &str, app: &serde_json::Value) -> String {
    let res = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(app["client_id"].as_str().unwrap(), app["client_secret"].as_str())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn nginx_and_caddy_guard_an_upstream_with_keygate_tokens() {
    let want = [("nginx", available("nginx")), ("caddy", available("caddy"))];
    if want.iter().all(|(_, ok)| !ok) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("keygate.db").display());
    cli(&db, &["resource-server", "add", "--name", "Orders", "--identifier", "https://orders.internal/"]);
    for scope in ["orders:read", "orders:write"] {
        cli(&db, &["scope", "add", scope, "--description", "Orders", "--resource-server", "https://orders.internal/"]);
    }
    let reader = cli(&db, &["app", "create", "--name", "order-reader", "--scope", "orders:read"]);
    let jwt_reader =
        cli(&db, &["app", "create", "--name", "jwt-reader", "--scope", "orders:read", "--token-format", "jwt"]);
    let outsider = cli(&db, &["app", "create", "--name", "outsider", "--scope", "orders:write"]);
    let server = process::start(&db, &[("KEYGATE_LOG", "warn")], dir.path().join("keygate.log"));
    let up = upstream();
    let http = reqwest::Client::new();

    for (name, ok) in want {
        if !ok {
            continue;
        }
        let port = free_port();
        let proxy_dir = dir.path().join(name);
        std::fs::create_dir_all(&proxy_dir).unwrap();
        let _proxy = match name {
            "nginx" => nginx(&proxy_dir, port, &server.addr, up),
            _ => caddy(&proxy_dir, port, &server.addr, up),
        };
        let front = format!("http://127.0.0.1:{port}/orders");

        let res = http.get(&front).send().await.unwrap();
        assert_eq!(res.status(), 401, "{name}: no token");
        let challenge = res.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"keygate\""), "{name}");

        for app in [&reader, &jwt_reader] {
            let t = token(&http, &server.base, app).await;
            let res = http.get(&front).bearer_auth(&t).send().await.unwrap();
            assert_eq!(res.status(), 200, "{name}: {}", app["client_id"]);
            let seen = res.text().await.unwrap();
            assert!(seen.starts_with("upstream reached"), "{name}: {seen}");
            let client_id = app["client_id"].as_str().unwrap().to_ascii_lowercase();
            assert!(seen.contains(&format!("x-keygate-client-id: {client_id}")), "{name}: {seen}");
            assert!(seen.contains("x-keygate-scopes: orders:read"), "{name}: {seen}");

            // Revoked: refused on the very next request.
            let res = http
                .post(format!("{}/oauth2/revoke", server.base))
                .basic_auth(app["client_id"].as_str().unwrap(), app["client_secret"].as_str())
                .form(&[("token", t.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let res = http.get(&front).bearer_auth(&t).send().await.unwrap();
            assert_eq!(res.status(), 401, "{name}: revoked");
            assert!(!res.text().await.unwrap().contains("upstream reached"));
        }

        let t = token(&http, &server.base, &outsider).await;
        let res = http.get(&front).bearer_auth(&t).send().await.unwrap();
        assert_eq!(res.status(), 403, "{name}: without the scope");
        assert!(!res.text().await.unwrap().contains("upstream reached"));
    }
}
