//! The ready-to-run snippets, taken from the rendered console pages (the
//! one-time secret panel and the application's Connect panel) and run
//! against the live server with the secret in `KEYGATE_CLIENT_SECRET`:
//! curl, Python (`requests`) and Node (`fetch`) each print the
//! application's identity from `GET /api/v1/me`.

use std::process::Command;

mod process;

/// The text inside `<code id="{id}" …>…</code>`, unescaped.
fn code_block(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no element {id}"));
    let open_end = start + html[start..].find('>').unwrap() + 1;
    let close = open_end + html[open_end..].find("</code>").unwrap();
    unescape(&html[open_end..close])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The `value` of the input with this id.
fn input_value(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no input {id}"));
    let tag_end = start + html[start..].find('>').unwrap();
    let tag = &html[start..tag_end];
    let v = tag.find("value=\"").unwrap() + 7;
    unescape(&tag[v..v + tag[v..].find('"').unwrap()])
}

/// Runs `program args` with the secret in the environment; its stdout.
fn run(program: &str, args: &[&str], secret: &str, dir: &std::path::Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("KEYGATE_CLIENT_SECRET", secret)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snippets_from_the_page_run_against_the_live_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("k.db").display());
    let server = process::start(&db, &[("KEYGATE_LOG", "warn")], dir.path().join("server.log"));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = process::create_owner(&http, &server).await;
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();

    // Created in the console without JavaScript: the answer redirects to
    // the page with the one-time secret panel.
    let res = http
        .post(format!("{}/console/fn/create_application", server.base))
        .header("accept", "text/html")
        .header("referer", format!("{}/applications/new", server.base))
        .header("cookie", &cookie)
        .form(&[
            ("name", "snippet-check"),
            ("notes", ""),
            ("scopes[]", "applications:read"),
            ("scopes[]", "tokens:read"),
            ("token_ttl_seconds", "3600"),
            ("max_tokens", "30"),
            ("rate_per_second", "20"),
            ("rate_per_hour", "15000"),
        ])
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let page = |path: String| {
        let (http, cookie, base) = (http.clone(), cookie.clone(), server.base.clone());
        async move {
            let res = http
                .get(format!("{base}{path}"))
                .header("accept", "text/html")
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.text().await.unwrap()
        }
    };
    let first = page(location.clone()).await;
    let secret = input_value(&first, "new-secret");
    let client_id = input_value(&first, "client-id");
    assert!(secret.starts_with("kgs_"));
    let curl = code_block(&first, "new-secret-snippet-curl");
    assert!(!curl.contains(&secret), "the snippet reads the secret from the environment");
    assert!(curl.contains(&server.base), "the snippet names this server");

    let work = dir.path();
    let expect_identity = |out: &str, what: &str| {
        assert!(out.contains(&client_id), "{what} printed {out}");
        assert!(out.contains("snippet-check"), "{what} printed {out}");
    };
    // curl, from the one-time secret panel.
    let out = run("sh", &["-c", &curl], &secret, work);
    expect_identity(&out, "curl");

    // After a reload the panel is gone; the Connect panel has them all.
    let again = page(location).await;
    assert!(!again.contains(&secret));
    let python = code_block(&again, "snippet-python");
    std::fs::write(work.join("keygate_me.py"), &python).unwrap();
    let out = run("python3", &["keygate_me.py"], &secret, work);
    expect_identity(&out, "python");
    let node = code_block(&again, "snippet-node");
    std::fs::write(work.join("keygate_me.mjs"), &node).unwrap();
    let out = run("node", &["keygate_me.mjs"], &secret, work);
    expect_identity(&out, "node");
    let curl = code_block(&again, "snippet-curl");
    expect_identity(&run("sh", &["-c", &curl], &secret, work), "curl from the Connect panel");
    for id in ["snippet-go", "snippet-rust"] {
        let code = code_block(&again, id);
        assert!(code.contains(&client_id) && code.contains("KEYGATE_CLIENT_SECRET"), "{id}");
    }

    // A wrong secret makes every snippet fail loudly, not print nonsense.
    let out = Command::new("sh").args(["-c", &curl]).env("KEYGATE_CLIENT_SECRET", "kgs_wrong").output().unwrap();
    assert!(!out.status.success());
    let out = Command::new("python3")
        .arg("keygate_me.py")
        .current_dir(work)
        .env("KEYGATE_CLIENT_SECRET", "kgs_wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
}
