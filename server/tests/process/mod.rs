//! The real `keygate` binary as a child process, for the tests that need
//! one: started on a free port, its setup link and address read from
//! stdout, stderr kept in a file to read.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_keygate");

pub struct Server {
    pub child: Child,
    pub base: String,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// The one-time setup link, when the server printed one.
    pub setup: Option<String>,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `keygate serve` on `db` with `env`, logging into `log`. It runs
/// under the common soft limit of 1,024 open files; the server raises it to
/// the hard limit itself.
/// The key file is `keygate.key` beside the log, so instances started in
/// one directory share it, as a cluster's instances must.
pub fn start(db: &str, env: &[(&str, &str)], log: PathBuf) -> Server {
    let key_file = log.parent().unwrap_or(std::path::Path::new(".")).join("keygate.key");
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -Sn 1024 && exec \"$0\" \"$@\"", BIN])
        .args(["serve", "--addr", "127.0.0.1:0", "--database-url", db])
        .arg("--key-file")
        .arg(&key_file)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("a log file"))
        .spawn()
        .expect("start keygate");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut setup = None;
    let base = loop {
        let line = lines.next().expect("keygate printed its address").expect("a line");
        if line.contains("/setup?code=") {
            setup = Some(line.trim().to_owned());
        }
        if let Some(rest) = line.strip_prefix("Keygate listening on ") {
            break rest.trim().to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let addr = base.trim_start_matches("http://").to_owned();
    Server { child, base, addr, setup, log }
}

/// Sends a signal (`-TERM`, `-KILL`) and waits for the process to end.
pub fn signal(server: &mut Server, sig: &str) {
    let status = Command::new("kill").args([sig, &server.child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    server.child.wait().expect("wait");
}

/// Creates the owner `alice` with the setup link `server` printed, posting
/// the form as a browser without JavaScript does; the answer carries the
/// session cookie.
pub async fn create_owner(http: &reqwest::Client, server: &Server) -> reqwest::Response {
    let link = server.setup.as_deref().expect("a setup link on the fresh database");
    let code = link.split("code=").nth(1).expect("a code in the link");
    http.post(format!("{}/console/fn/create_owner", server.base))
        .header("accept", "text/html")
        .header("referer", format!("{}/setup", server.base))
        .form(&[
            ("code", code),
            ("username", "alice"),
            ("password", "correct horse battery"),
            ("password_confirm", "correct horse battery"),
        ])
        .send()
        .await
        .expect("the server answers")
}
