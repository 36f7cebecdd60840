//! One operation, one event: the console, the API and the CLI call the
//! same use cases, so the same operation leaves the same audit event
//! whichever way it came in (only the actor and `via` differ).

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request};
use clap::Parser;
use common::*;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Console,
    Api,
    Cli,
}

struct Run {
    t: TestApp,
    cookie: String,
    token: String,
}

impl Run {
    async fn cli(&self, args: &[&str]) {
        let url = self.t.database_url();
        let mut argv = vec!["keygate", "--database-url", &url];
        argv.extend_from_slice(args);
        let cli = keygate_server::cli::Cli::try_parse_from(argv).unwrap();
        keygate_server::cli::run(cli).await.unwrap();
    }

    async fn console(&self, function: &str, body: &str) {
        let res = self.t.send(form_post(&format!("/console/fn/{function}"), body, Some(&self.cookie))).await;
        assert!(res.status().is_redirection() || res.status().is_success(), "{function}: {}", res.status());
        assert!(succeeded(&res), "{function} refused: {:?}", form_outcome(&res));
    }

    async fn api(&self, method: Method, path: &str, body: Option<Value>) {
        let mut b =
            Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        let body = match body {
            Some(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let res = self.t.send(b.body(body).unwrap()).await;
        assert!(res.status().is_success(), "{path}: {}", res.status());
    }

    async fn app_id(&self, name: &str) -> i64 {
        self.t.store.application_id_by_name(name).await.unwrap().unwrap().0
    }
}

async fn start() -> Run {
    let t = test_app().await;
    // The same setup everywhere, so ids and names agree.
    let cookie = setup_owner(&t).await;
    let setup = keygate::usecase::Caller::cli(keygate_server::now());
    keygate::usecase::scopes::add_scope(&t.store, &setup, "billing:read", "Read invoices", None).await.unwrap();
    let robot = t
        .create_app(
            "robot",
            "applications:read applications:write tokens:read tokens:write scopes:read scopes:write billing:read",
        )
        .await;
    let token = t.obtain_token(&robot, None).await;
    Run { t, cookie, token }
}

/// The events written after the setup, without what names the entry point.
async fn script(entry: Entry) -> Vec<Value> {
    let r = start().await;
    let mark: i64 = sqlx::query_scalar("SELECT MAX(id) FROM audit_events").fetch_one(&r.t.db).await.unwrap();

    // Create.
    match entry {
        Entry::Console => {
            r.console(
                "create_application",
                "name=svc&notes=n&scopes%5B%5D=billing%3Aread&token_ttl_seconds=3600&max_tokens=30\
                 &rate_per_second=20&rate_per_hour=15000",
            )
            .await
        }
        Entry::Api => {
            r.api(
                Method::POST,
                "/api/v1/applications",
                Some(json!({"name": "svc", "notes": "n", "scopes": ["billing:read"]})),
            )
            .await
        }
        Entry::Cli => {
            r.cli(&["app", "create", "--name", "svc", "--notes", "n", "--scope", "billing:read", "--json"]).await
        }
    }
    let id = r.app_id("svc").await;
    let ids = id.to_string();

    // Change two settings.
    match entry {
        Entry::Console => {
            r.console(
                "update_application",
                &format!(
                    "id={id}&name=svc&notes=changed&scopes%5B%5D=billing%3Aread&token_ttl_seconds=3600&max_tokens=5\
                     &rate_per_second=20&rate_per_hour=15000"
                ),
            )
            .await
        }
        Entry::Api => {
            r.api(
                Method::PATCH,
                &format!("/api/v1/applications/{id}"),
                Some(json!({"notes": "changed", "max_tokens": 5})),
            )
            .await
        }
        Entry::Cli => r.cli(&["app", "update", &ids, "--notes", "changed", "--max-tokens", "5", "--json"]).await,
    }

    // Mint a named token, then revoke it.
    match entry {
        Entry::Console => {
            r.console("mint_token", &format!("id={id}&name=deploy&scopes%5B%5D=billing%3Aread&expiry=7&expires_on="))
                .await
        }
        Entry::Api => {
            r.api(
                Method::POST,
                &format!("/api/v1/applications/{id}/tokens"),
                Some(json!({"name": "deploy", "scopes": ["billing:read"], "expires_in": 7 * 86400})),
            )
            .await
        }
        Entry::Cli => {
            r.cli(&["token", "mint", &ids, "--name", "deploy", "--scope", "billing:read", "--days", "7", "--json"])
                .await
        }
    }
    // Extend it, rotate it with an hour's overlap, revoke the new one.
    let token_id = r.t.store.list_tokens(keygate::ApplicationId(id), 1, 200, None).await.unwrap().items[0].id.0;
    let tid = token_id.to_string();
    match entry {
        Entry::Console => r.console("extend_token", &format!("token_id={token_id}&expiry=90&expires_on=")).await,
        Entry::Api => {
            r.api(Method::POST, &format!("/api/v1/tokens/{token_id}/extend"), Some(json!({"expires_in": 90 * 86400})))
                .await
        }
        Entry::Cli => r.cli(&["token", "extend", &tid, "--days", "90", "--json"]).await,
    }
    match entry {
        Entry::Console => r.console("rotate_token", &format!("token_id={token_id}&previous_valid_for=3600")).await,
        Entry::Api => {
            r.api(Method::POST, &format!("/api/v1/tokens/{token_id}/rotate"), Some(json!({"previous_valid_for": 3600})))
                .await
        }
        Entry::Cli => r.cli(&["token", "rotate", &tid, "--previous-valid-for", "1h", "--json"]).await,
    }
    let tokens = r.t.store.list_tokens(keygate::ApplicationId(id), 1, 200, None).await.unwrap().items;
    assert_eq!(tokens.len(), 2);
    let token_id = tokens.iter().map(|t| t.id.0).max().unwrap();
    match entry {
        Entry::Console => r.console("revoke_token", &format!("token_id={token_id}")).await,
        Entry::Api => r.api(Method::DELETE, &format!("/api/v1/tokens/{token_id}"), None).await,
        Entry::Cli => r.cli(&["token", "revoke", &token_id.to_string(), "--json"]).await,
    }

    // Disable, enable, regenerate the secret.
    for enabled in [false, true] {
        match entry {
            // The rotated token's previous value is live in its overlap.
            Entry::Console => r.console("set_enabled", &format!("id={id}&enabled={enabled}&confirm=yes")).await,
            Entry::Api => {
                r.api(Method::PATCH, &format!("/api/v1/applications/{id}"), Some(json!({"enabled": enabled}))).await
            }
            Entry::Cli => r.cli(&["app", if enabled { "enable" } else { "disable" }, &ids, "--json"]).await,
        }
    }
    match entry {
        Entry::Console => r.console("regenerate_secret", &format!("id={id}&confirm=on")).await,
        Entry::Api => r.api(Method::POST, &format!("/api/v1/applications/{id}/secret"), None).await,
        Entry::Cli => r.cli(&["app", "regenerate-secret", &ids, "--json"]).await,
    }

    // A scope for your own services.
    match entry {
        Entry::Console => r.console("add_scope", "name=reports%3Aread&description=Reports").await,
        Entry::Api => {
            r.api(Method::POST, "/api/v1/scopes", Some(json!({"name": "reports:read", "description": "Reports"}))).await
        }
        Entry::Cli => r.cli(&["scope", "add", "reports:read", "--description", "Reports", "--json"]).await,
    }

    // Delete.
    match entry {
        Entry::Console => r.console("delete_application", &format!("id={id}&confirm_name=svc")).await,
        Entry::Api => r.api(Method::DELETE, &format!("/api/v1/applications/{id}"), None).await,
        Entry::Cli => r.cli(&["app", "delete", &ids, "--json"]).await,
    }

    type EventRow = (String, String, Option<String>, Option<i64>, String);
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT action, actor_kind, target_name, application_id, details FROM audit_events WHERE id > $1 ORDER BY id",
    )
    .bind(mark)
    .fetch_all(&r.t.db)
    .await
    .unwrap();
    let expected_actor = match entry {
        Entry::Console => "administrator",
        Entry::Api => "application",
        Entry::Cli => "system",
    };
    rows.into_iter()
        .map(|(action, actor_kind, target, application_id, details)| {
            assert_eq!(actor_kind, expected_actor, "{action}");
            let mut details: Value = serde_json::from_str(&details).unwrap();
            let via = details["via"].take();
            assert_eq!(
                via,
                json!(match entry {
                    Entry::Console => "console",
                    Entry::Api => "api",
                    Entry::Cli => "cli",
                })
            );
            for k in ["via", "actor_token_id", "expires_at", "previous_expires_at"] {
                details.as_object_mut().unwrap().remove(k);
            }
            json!({ "action": action, "target": target, "application_id": application_id, "details": details })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_api_and_cli_write_the_same_events_for_the_same_operations() {
    let console = script(Entry::Console).await;
    let api = script(Entry::Api).await;
    let cli = script(Entry::Cli).await;
    let actions: Vec<&str> = console.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "application.created",
            "application.updated",
            "token.minted",
            "token.extended",
            "token.rotated",
            "token.revoked",
            "application.disabled",
            "application.enabled",
            "application.secret_regenerated",
            "scope.created",
            "application.deleted",
        ]
    );
    assert_eq!(console[1]["details"]["changed"], json!(["notes", "max_tokens"]));
    assert_eq!(console[3]["details"]["name"], "deploy");
    assert_eq!(console[4]["details"]["name"], "deploy");
    assert_eq!(console[5]["details"]["token"], "deploy");
    assert_eq!(console, api, "console and API differ");
    assert_eq!(console, cli, "console and CLI differ");
}

#[tokio::test]
async fn administrators_are_managed_alike_in_the_console_and_the_cli() {
    let mut seen = Vec::new();
    for entry in [Entry::Console, Entry::Cli] {
        let r = start().await;
        let mark: i64 = sqlx::query_scalar("SELECT MAX(id) FROM audit_events").fetch_one(&r.t.db).await.unwrap();
        match entry {
            Entry::Console => {
                r.console("add_admin", "username=bob&password=another+long+password&role=viewer").await;
                let bob = r.t.store.admin_by_username("bob").await.unwrap().unwrap();
                r.console("change_role", &format!("id={}&role=admin", bob.id)).await;
                r.console("remove_admin", &format!("id={}", bob.id)).await;
            }
            _ => {
                let work = keygate::password_work::PasswordWork::new(1, 1);
                let cli = keygate::usecase::Caller::cli(keygate_server::now());
                // `admin add` reads stdin; the use case it calls is the same.
                keygate::usecase::admins::add_admin(
                    &r.t.store,
                    &work,
                    &cli,
                    "bob",
                    "another long password",
                    keygate::Role::Viewer,
                )
                .await
                .unwrap();
                r.cli(&["admin", "set-role", "bob", "admin", "--json"]).await;
                r.cli(&["admin", "remove", "bob", "--json"]).await;
            }
        }
        let rows: Vec<(String, Option<String>, String)> =
            sqlx::query_as("SELECT action, target_name, details FROM audit_events WHERE id > $1 ORDER BY id")
                .bind(mark)
                .fetch_all(&r.t.db)
                .await
                .unwrap();
        let normalized: Vec<Value> = rows
            .into_iter()
            .map(|(a, t, d)| {
                let mut d: Value = serde_json::from_str(&d).unwrap();
                d.as_object_mut().unwrap().remove("via");
                json!([a, t, d])
            })
            .collect();
        seen.push(normalized);
    }
    assert_eq!(seen[0].len(), 3, "{:?}", seen[0]);
    assert_eq!(seen[0], seen[1]);
}
