//! Ready-to-run client code for an application: obtain a token from this
//! server with the client-credentials grant (HTTP Basic, as RFC 6749
//! prefers), then call `GET /api/v1/me` with it and print the answer. The
//! secret is read from `KEYGATE_CLIENT_SECRET`, never written into code.

use serde::{Deserialize, Serialize};

/// Who the snippets are for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnippetTarget {
    /// The server's public base URL (the issuer), without a trailing slash.
    pub base_url: String,
    pub client_id: String,
    /// The scopes to ask for (the application's allowed scopes).
    pub scopes: Vec<String>,
}

/// One language's snippet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snippet {
    /// `curl`, `python`, `node`, `go`, `rust` (element ids, tests).
    pub id: &'static str,
    pub label: &'static str,
    /// What it needs and how to run it.
    pub how_to_run: &'static str,
    pub code: String,
}

/// The environment variable every snippet reads the secret from.
pub const SECRET_VARIABLE: &str = "KEYGATE_CLIENT_SECRET";

/// A string literal in JSON syntax, which Python, JavaScript, Go and Rust
/// all read the same way for these characters.
fn lit(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // Never in a URL or client ID Keygate accepts; dropped rather
            // than escaped, as the five languages escape them differently.
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A POSIX shell word in single quotes.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The five snippets for `t`.
pub fn snippets(t: &SnippetTarget) -> Vec<Snippet> {
    let base = t.base_url.trim_end_matches('/');
    let scope = t.scopes.join(" ");
    let has_scope = !scope.is_empty();
    let token_url = format!("{base}/oauth2/token");
    let me_url = format!("{base}/api/v1/me");

    // A failed token request stops the chain and shows the server's answer.
    let user = format!("\"{}:${SECRET_VARIABLE}\"", t.client_id.replace(['"', '$', '`', '\\'], ""));
    let curl = format!(
        "RESPONSE=$(curl -sS --fail-with-body -u {user} \\\n  -d grant_type=client_credentials{scope_arg} \\\n  {token_url}) \\\n  || {{ echo \"token request failed: $RESPONSE\" >&2; false; }} \\\n  && TOKEN=$(printf '%s' \"$RESPONSE\" | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/') \\\n  && curl -sS --fail-with-body -H \"Authorization: Bearer $TOKEN\" {me_url}\n",
        scope_arg = if has_scope { format!(" --data-urlencode {}", sh(&format!("scope={scope}"))) } else { String::new() },
        token_url = sh(&token_url),
        me_url = sh(&me_url),
    );

    let python = format!(
        "import os\n\nimport requests\n\nBASE = {base}\n\ntoken = requests.post(\n    f\"{{BASE}}/oauth2/token\",\n    auth=({client_id}, os.environ[\"{SECRET_VARIABLE}\"]),\n    data={{\"grant_type\": \"client_credentials\"{scope_py}}},\n    timeout=10,\n)\ntoken.raise_for_status()\naccess_token = token.json()[\"access_token\"]\n\nme = requests.get(\n    f\"{{BASE}}/api/v1/me\",\n    headers={{\"Authorization\": f\"Bearer {{access_token}}\"}},\n    timeout=10,\n)\nme.raise_for_status()\nprint(me.json())\n",
        base = lit(base),
        client_id = lit(&t.client_id),
        scope_py = if has_scope { format!(", \"scope\": {}", lit(&scope)) } else { String::new() },
    );

    let node = format!(
        "const BASE = {base};\nconst basic = Buffer.from(`${{{client_id}}}:${{process.env.{SECRET_VARIABLE}}}`).toString(\"base64\");\n\nconst tokenResponse = await fetch(`${{BASE}}/oauth2/token`, {{\n  method: \"POST\",\n  headers: {{ Authorization: `Basic ${{basic}}` }},\n  body: new URLSearchParams({{ grant_type: \"client_credentials\"{scope_js} }}),\n}});\nif (!tokenResponse.ok) throw new Error(`token: ${{tokenResponse.status}} ${{await tokenResponse.text()}}`);\nconst {{ access_token }} = await tokenResponse.json();\n\nconst me = await fetch(`${{BASE}}/api/v1/me`, {{ headers: {{ Authorization: `Bearer ${{access_token}}` }} }});\nif (!me.ok) throw new Error(`me: ${{me.status}} ${{await me.text()}}`);\nconsole.log(await me.json());\n",
        base = lit(base),
        client_id = lit(&t.client_id),
        scope_js = if has_scope { format!(", scope: {}", lit(&scope)) } else { String::new() },
    );

    let go = format!(
        "package main\n\nimport (\n\t\"encoding/json\"\n\t\"fmt\"\n\t\"io\"\n\t\"log\"\n\t\"net/http\"\n\t\"net/url\"\n\t\"os\"\n\t\"strings\"\n)\n\nconst base = {base}\n\nfunc main() {{\n\tform := url.Values{{\"grant_type\": {{\"client_credentials\"}}{scope_go}}}\n\treq, err := http.NewRequest(http.MethodPost, base+\"/oauth2/token\", strings.NewReader(form.Encode()))\n\tif err != nil {{\n\t\tlog.Fatal(err)\n\t}}\n\treq.Header.Set(\"Content-Type\", \"application/x-www-form-urlencoded\")\n\treq.SetBasicAuth({client_id}, os.Getenv(\"{SECRET_VARIABLE}\"))\n\tres, err := http.DefaultClient.Do(req)\n\tif err != nil {{\n\t\tlog.Fatal(err)\n\t}}\n\tdefer res.Body.Close()\n\tif res.StatusCode != http.StatusOK {{\n\t\tbody, _ := io.ReadAll(res.Body)\n\t\tlog.Fatalf(\"token: %s %s\", res.Status, body)\n\t}}\n\tvar token struct {{\n\t\tAccessToken string `json:\"access_token\"`\n\t}}\n\tif err := json.NewDecoder(res.Body).Decode(&token); err != nil {{\n\t\tlog.Fatal(err)\n\t}}\n\n\tme, err := http.NewRequest(http.MethodGet, base+\"/api/v1/me\", nil)\n\tif err != nil {{\n\t\tlog.Fatal(err)\n\t}}\n\tme.Header.Set(\"Authorization\", \"Bearer \"+token.AccessToken)\n\tmeRes, err := http.DefaultClient.Do(me)\n\tif err != nil {{\n\t\tlog.Fatal(err)\n\t}}\n\tdefer meRes.Body.Close()\n\tbody, _ := io.ReadAll(meRes.Body)\n\tif meRes.StatusCode != http.StatusOK {{\n\t\tlog.Fatalf(\"me: %s %s\", meRes.Status, body)\n\t}}\n\tfmt.Println(string(body))\n}}\n",
        base = lit(base),
        client_id = lit(&t.client_id),
        scope_go = if has_scope { format!(", \"scope\": {{{}}}", lit(&scope)) } else { String::new() },
    );

    let rust = format!(
        "// Cargo.toml: reqwest = {{ version = \"0.12\", features = [\"json\"] }},\n// tokio = {{ version = \"1\", features = [\"full\"] }}, serde_json = \"1\"\n\nconst BASE: &str = {base};\n\n#[tokio::main]\nasync fn main() -> Result<(), Box<dyn std::error::Error>> {{\n    let secret = std::env::var(\"{SECRET_VARIABLE}\")?;\n    let http = reqwest::Client::new();\n    let token: serde_json::Value = http\n        .post(format!(\"{{BASE}}/oauth2/token\"))\n        .basic_auth({client_id}, Some(secret))\n        .form(&[(\"grant_type\", \"client_credentials\"){scope_rs}])\n        .send()\n        .await?\n        .error_for_status()?\n        .json()\n        .await?;\n    let access_token = token[\"access_token\"].as_str().ok_or(\"no access_token in the answer\")?;\n\n    let me: serde_json::Value = http\n        .get(format!(\"{{BASE}}/api/v1/me\"))\n        .bearer_auth(access_token)\n        .send()\n        .await?\n        .error_for_status()?\n        .json()\n        .await?;\n    println!(\"{{me}}\");\n    Ok(())\n}}\n",
        base = lit(base),
        client_id = lit(&t.client_id),
        scope_rs = if has_scope { format!(", (\"scope\", {})", lit(&scope)) } else { String::new() },
    );

    vec![
        Snippet {
            id: "curl",
            label: "curl",
            how_to_run: "Paste into a shell (needs curl 7.76 or later and sed).",
            code: curl,
        },
        Snippet {
            id: "python",
            label: "Python",
            how_to_run: "Save as keygate_me.py; pip install requests; python3 keygate_me.py",
            code: python,
        },
        Snippet {
            id: "node",
            label: "Node",
            how_to_run: "Save as keygate_me.mjs; node keygate_me.mjs (Node 18 or later).",
            code: node,
        },
        Snippet { id: "go", label: "Go", how_to_run: "Save as main.go; go run main.go", code: go },
        Snippet {
            id: "rust",
            label: "Rust",
            how_to_run: "cargo new keygate-me; add the dependencies named at the top; replace src/main.rs; cargo run",
            code: rust,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SnippetTarget {
        SnippetTarget {
            base_url: "https://keygate.example/".into(),
            client_id: "kgc_abc".into(),
            scopes: vec!["applications:read".into(), "tokens:read".into()],
        }
    }

    #[test]
    fn every_snippet_names_this_server_and_client_and_reads_the_secret_from_the_environment() {
        let all = snippets(&target());
        assert_eq!(all.iter().map(|s| s.id).collect::<Vec<_>>(), ["curl", "python", "node", "go", "rust"]);
        for s in &all {
            assert!(s.code.contains("https://keygate.example"), "{}", s.id);
            assert!(!s.code.contains("https://keygate.example//"), "{}", s.id);
            assert!(s.code.contains("kgc_abc"), "{}", s.id);
            assert!(s.code.contains(SECRET_VARIABLE), "{}", s.id);
            assert!(s.code.contains("applications:read tokens:read"), "{}", s.id);
            assert!(s.code.contains("/api/v1/me"), "{}", s.id);
        }
    }

    #[test]
    fn no_scope_parameter_when_the_application_has_none() {
        let mut t = target();
        t.scopes.clear();
        for s in snippets(&t) {
            assert!(!s.code.contains("scope"), "{}: {}", s.id, s.code);
        }
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(lit("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(lit("a\u{7}b"), "\"ab\"");
        assert_eq!(sh("it's"), "'it'\\''s'");
    }
}
