//! The hardening as an attacker meets it: the real `keygate` binary on
//! loopback, idle and slowloris connections, a burst of parallel sign-ins,
//! and hostile bytes aimed at the log. Each failed before its fix.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod process;

use process::Server;

/// A server on a fresh database in its own directory.
fn start(env: &[(&str, &str)]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("k.db").display());
    let server = process::start(&db, env, dir.path().join("stderr.log"));
    (server, dir)
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Whether the server has closed this connection (EOF or reset).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 or similar before closing
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_and_slowloris_connections_are_closed_and_capped() {
    let (server, _dir) = start(&[
        ("KEYGATE_HEADER_READ_TIMEOUT_SECONDS", "1"),
        ("KEYGATE_IDLE_TIMEOUT_SECONDS", "1"),
        ("KEYGATE_MAX_CONNECTIONS", "50"),
    ]);
    let pid = server.child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let files: Vec<&str> =
        limits.lines().find(|l| l.starts_with("Max open files")).unwrap().split_whitespace().collect();
    assert_eq!(files[3], files[4], "the soft open-file limit is raised to the hard one: {files:?}");
    let baseline = open_files(pid);
    // A keep-alive connection that made one request and then idles.
    let mut kept = TcpStream::connect(&server.addr).unwrap();
    kept.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes()).unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let mut conns: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(&server.addr).unwrap()).collect();
    for _ in 0..50 {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
        conns.push(s);
    }
    // And a request whose body drips one byte at a time.
    let mut dripping = TcpStream::connect(&server.addr).unwrap();
    dripping
        .write_all(
            b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 16000\r\n\r\ng",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let held = open_files(pid).saturating_sub(baseline);
    assert!(held <= 50 + 2, "{held} connections held open beyond the cap of 50");

    // Every connection is closed once its headers are overdue.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut open: Vec<TcpStream> = conns;
    open.push(kept);
    let mut drip_closed = false;
    while (!open.is_empty() || !drip_closed) && Instant::now() < deadline {
        open.retain_mut(|s| !closed_by_server(s));
        // A byte every 200 ms keeps the connection from ever being idle.
        let _ = dripping.write_all(b"r");
        drip_closed = drip_closed || closed_by_server(&mut dripping);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(open.is_empty(), "{} connections were never closed", open.len());
    assert!(drip_closed, "a body dripping a byte at a time held its connection");
    let mut health = TcpStream::connect(&server.addr).unwrap();
    health.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    health.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sign_ins_is_refused_fast_and_memory_returns() {
    let (server, _dir) = start(&[("KEYGATE_LOG", "info")]);
    let pid = server.child.id();
    let http = reqwest::Client::new();
    // An owner exists, so the attackers guess at a real console.
    let res = process::create_owner(&http, &server).await;
    assert!(res.status().is_success() || res.status().is_redirection(), "{}", res.status());
    let idle_rss = status_kib(pid, "VmRSS:");

    // 300 parallel sign-ins with made-up usernames from 300 addresses, so
    // neither throttle applies and only the bound on hashing holds.
    let started = Instant::now();
    let tasks: Vec<_> = (0..300u32)
        .map(|i| {
            let base = server.base.clone();
            tokio::spawn(async move {
                let ip: std::net::IpAddr = format!("127.0.{}.{}", 1 + i / 250, 1 + i % 250).parse().unwrap();
                let client = reqwest::Client::builder().local_address(ip).build().unwrap();
                client
                    .post(format!("{base}/console/fn/sign_in"))
                    .header("accept", "application/json")
                    .form(&[("username", format!("nobody{i}")), ("password", "wrong horse battery".into())])
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    let health_started = Instant::now();
    let health = http.get(format!("{}/healthz", server.base)).send().await.unwrap();
    let health_ms = health_started.elapsed().as_millis();
    assert_eq!(health.status(), 200);
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    let burst_ms = started.elapsed().as_millis();
    let peak = status_kib(pid, "VmHWM:");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = status_kib(pid, "VmRSS:");
    println!(
        "sign-in burst: statuses {statuses:?} in {burst_ms} ms; /healthz during it {health_ms} ms; \
         RSS idle {} MiB, peak {} MiB, after {} MiB",
        idle_rss / 1024,
        peak / 1024,
        after / 1024
    );
    assert_eq!(statuses.get(&0), None, "every request was answered");
    assert!(statuses.get(&429).copied().unwrap_or(0) >= 250, "{statuses:?}");
    assert!(peak < 512 * 1024, "peak RSS {} MiB", peak / 1024);
    assert!(after < idle_rss + 128 * 1024, "RSS after the burst {} MiB (idle {} MiB)", after / 1024, idle_rss / 1024);

    // Hostile bytes in a client ID cannot forge or colour a log line.
    let res = http
        .post(format!("{}/oauth2/token", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=kgc_x%1B%5B31m%0AFORGED+admin+signed+in%00&client_secret=kgs_y")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read(&server.log).unwrap();
    assert!(String::from_utf8_lossy(&log).contains("client authentication failed"), "the failure was logged");
    assert!(!log.contains(&0x1b), "a raw escape reached the log");
    assert!(!log.contains(&0x00), "a raw NUL reached the log");
    let text = String::from_utf8_lossy(&log);
    assert!(!text.lines().any(|l| l.starts_with("FORGED")), "a forged line reached the log");
}
