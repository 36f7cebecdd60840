//! The command line: `keygate serve | migrate | admin | app | scope`.

use clap::{Args, Parser, Subcommand};
use keygate::secret::hash_password;
use keygate::store::{ApplicationQuery, Store};
use keygate::{ApplicationId, ApplicationSettings, Role, ScopeSet};
use serde_json::json;
use std::io::Read;
use std::net::SocketAddr;

pub const DEFAULT_DATABASE_URL: &str = "sqlite:./data/keygate.db";

#[derive(Parser, Debug)]
#[command(
    name = "keygate",
    version,
    about = "Keygate: admin console and OAuth 2.0 authorization server for machine-to-machine API access"
)]
pub struct Cli {
    /// Database URL (SQLite: `sqlite:PATH`).
    #[arg(long, global = true, env = "KEYGATE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the console, the OAuth endpoints and the API.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "KEYGATE_ADDR", default_value = "127.0.0.1:3000")]
        addr: SocketAddr,
        /// Public base URL, used as the OAuth issuer (default: from the address).
        #[arg(long, env = "KEYGATE_PUBLIC_URL")]
        public_url: Option<String>,
        /// Days to keep expired or revoked tokens before deleting them.
        #[arg(long, env = "KEYGATE_TOKEN_RETENTION_DAYS", default_value_t = 7)]
        token_retention_days: i64,
        /// Days to keep audit events.
        #[arg(long, env = "KEYGATE_AUDIT_RETENTION_DAYS", default_value_t = 90)]
        audit_retention_days: i64,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage administrators.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage API applications.
    #[command(subcommand)]
    App(AppCommand),
    /// Manage the scope catalogue.
    #[command(subcommand)]
    Scope(ScopeCommand),
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Add an administrator; the password is read from standard input.
    Add {
        username: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long, default_value = "admin", value_parser = ["owner", "admin", "viewer"])]
        role: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Create an application and print its client ID and secret (once).
    Create(CreateApp),
    /// List applications (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Replace an application's secret, revoking all of its tokens.
    RegenerateSecret {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct CreateApp {
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "")]
    notes: String,
    /// An allowed scope; repeat for several.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    #[arg(long, default_value_t = keygate::DEFAULT_TOKEN_TTL_SECONDS)]
    token_ttl: i64,
    #[arg(long, default_value_t = keygate::DEFAULT_MAX_TOKENS)]
    max_tokens: i64,
    #[arg(long, default_value_t = keygate::DEFAULT_RATE_PER_SECOND)]
    rate_per_second: i64,
    #[arg(long, default_value_t = keygate::DEFAULT_RATE_PER_HOUR)]
    rate_per_hour: i64,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ScopeCommand {
    /// Add a scope for your own services.
    Add {
        name: String,
        #[arg(long)]
        description: String,
    },
    /// List the scope catalogue.
    List {
        #[arg(long)]
        json: bool,
    },
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

async fn open(url: &str) -> Result<Store, Box<dyn std::error::Error>> {
    let store = Store::open(url).await?;
    store.migrate().await?;
    Ok(store)
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub async fn run(cli: Cli) -> CliResult {
    let now = crate::now();
    match cli.command {
        Command::Serve { addr, public_url, token_retention_days, audit_retention_days } => {
            let store = Store::open(&cli.database_url).await?;
            let config = crate::serve::ServeConfig { addr, public_url, token_retention_days, audit_retention_days };
            crate::serve::run(store, config).await
        }
        Command::Migrate => {
            open(&cli.database_url).await?.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin(AdminCommand::Add { username, password_stdin: _, role }) => {
            let store = open(&cli.database_url).await?;
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']).to_owned();
            keygate::validate_password(&password)?;
            let role = Role::parse(&role).ok_or("role must be owner, admin or viewer")?;
            let hash = hash_password(&password)?;
            let admin = store.create_admin(&username, &hash, role, now).await?;
            let mut rec = keygate::store::AuditRecord::new(
                now,
                keygate::store::ActorKind::System,
                keygate::AuditAction::AdminCreated,
            );
            rec.target_kind = Some("administrator");
            rec.target_id = Some(admin.id.0);
            rec.target_name = Some(admin.username.clone());
            rec.details = json!({ "role": admin.role, "via": "cli" });
            store.record_audit(&rec).await?;
            println!("administrator {} added as {}", admin.username, admin.role);
            store.close().await;
            Ok(())
        }
        Command::App(AppCommand::Create(c)) => {
            let store = open(&cli.database_url).await?;
            let settings = ApplicationSettings {
                name: c.name,
                notes: c.notes,
                scopes: ScopeSet::from_names(&c.scopes)?,
                token_ttl_seconds: c.token_ttl,
                max_tokens: c.max_tokens,
                rate_per_second: c.rate_per_second,
                rate_per_hour: c.rate_per_hour,
            };
            let (app, secret) = store.create_application(settings, now).await?;
            let rec = keygate::store::AuditRecord::new(
                now,
                keygate::store::ActorKind::System,
                keygate::AuditAction::ApplicationCreated,
            )
            .on_application(app.id, &app.name)
            .details(json!({ "via": "cli" }));
            store.record_audit(&rec).await?;
            if c.json {
                print_json(&json!({ "id": app.id, "client_id": app.client_id, "client_secret": secret.expose() }));
            } else {
                println!("application {} created (id {})", app.name, app.id);
                println!("client_id:     {}", app.client_id);
                println!("client_secret: {}", secret.expose());
                println!("The secret is shown only now; store it safely.");
            }
            store.close().await;
            Ok(())
        }
        Command::App(AppCommand::List { json: as_json }) => {
            let store = open(&cli.database_url).await?;
            let mut all = Vec::new();
            let mut page = 1;
            loop {
                let q = ApplicationQuery { page, per_page: 200, ..Default::default() };
                let p = store.list_applications(&q, now).await?;
                let done = p.items.len() < 200;
                all.extend(p.items);
                if done {
                    break;
                }
                page += 1;
            }
            if as_json {
                print_json(&serde_json::to_value(&all)?);
            } else {
                for a in &all {
                    println!(
                        "{:>5}  {:<30}  {}  {}  scopes: {}",
                        a.id,
                        a.name,
                        a.client_id,
                        if a.enabled { "enabled " } else { "disabled" },
                        a.scopes.join(" ")
                    );
                }
            }
            store.close().await;
            Ok(())
        }
        Command::App(AppCommand::RegenerateSecret { id, json: as_json }) => {
            let store = open(&cli.database_url).await?;
            let app = store.application(ApplicationId(id), now).await?.ok_or("no application with that id")?;
            let (secret, revoked) = store.regenerate_secret(app.id, now).await?;
            let rec = keygate::store::AuditRecord::new(
                now,
                keygate::store::ActorKind::System,
                keygate::AuditAction::ApplicationSecretRegenerated,
            )
            .on_application(app.id, &app.name)
            .details(json!({ "via": "cli", "tokens_revoked": revoked }));
            store.record_audit(&rec).await?;
            if as_json {
                print_json(&json!({
                    "id": app.id, "client_id": app.client_id, "client_secret": secret.expose(), "tokens_revoked": revoked
                }));
            } else {
                println!("new client_secret: {}", secret.expose());
                println!("{revoked} token(s) revoked. The secret is shown only now.");
            }
            store.close().await;
            Ok(())
        }
        Command::Scope(ScopeCommand::Add { name, description }) => {
            let store = open(&cli.database_url).await?;
            let scope = store.add_scope(&name, &description, now).await?;
            let mut rec = keygate::store::AuditRecord::new(
                now,
                keygate::store::ActorKind::System,
                keygate::AuditAction::ScopeCreated,
            );
            rec.target_kind = Some("scope");
            rec.target_name = Some(scope.name.clone());
            store.record_audit(&rec).await?;
            println!("scope {} added", scope.name);
            store.close().await;
            Ok(())
        }
        Command::Scope(ScopeCommand::List { json: as_json }) => {
            let store = open(&cli.database_url).await?;
            let scopes = store.list_scopes().await?;
            if as_json {
                print_json(&serde_json::to_value(&scopes)?);
            } else {
                for s in scopes {
                    println!("{:<32} {}", s.name, s.description);
                }
            }
            store.close().await;
            Ok(())
        }
    }
}
