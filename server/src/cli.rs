//! The command line: `keygate serve | migrate | admin | app | token | scope | audit`.
//! Every command parses its arguments, calls the core's use case as the
//! CLI actor, and prints the answer (`--json` for scripts); errors go to
//! stderr with a non-zero exit code.

use clap::{Args, Parser, Subcommand};
use keygate::password_work::PasswordWork;
use keygate::store::{ApplicationQuery, AuditQuery, Page, Store};
use keygate::usecase::applications::{self, ApplicationChange};
use keygate::usecase::tokens::{self, MintRequest};
use keygate::usecase::{admins, keys, resource_servers, scopes, Caller};
use keygate::{AdminId, ApplicationId, ApplicationSettings, Role, ScopeSet, TokenExpiry, TokenId};
use serde::Serialize;
use serde_json::json;
use std::io::Read;
use std::net::SocketAddr;

pub const DEFAULT_DATABASE_URL: &str = "sqlite:./data/keygate.db";
pub const DEFAULT_KEY_FILE: &str = "./data/keygate.key";

#[derive(Parser, Debug)]
#[command(
    name = "keygate",
    version,
    about = "Keygate: admin console and OAuth 2.0 authorization server for machine-to-machine API access"
)]
pub struct Cli {
    /// Database URL: `sqlite:PATH` (embedded) or
    /// `postgres://user:password@host:port/db` (several instances may share it).
    #[arg(long, global = true, env = "KEYGATE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// The key-encryption key that seals JWT signing keys: a file outside
    /// the database, mode 0600, created when missing; every instance of a
    /// cluster uses the same one.
    #[arg(long, global = true, env = "KEYGATE_KEY_FILE", default_value = DEFAULT_KEY_FILE)]
    pub key_file: std::path::PathBuf,
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
        /// A proxy (CIDR) whose `X-Forwarded-For` names the client; repeat
        /// for several. Default: loopback only.
        #[arg(long = "trusted-proxy", env = "KEYGATE_TRUSTED_PROXIES", value_delimiter = ',')]
        trusted_proxies: Vec<ipnet::IpNet>,
        /// Days between automatic rotations of the JWT signing key.
        #[arg(long, env = "KEYGATE_KEY_ROTATION_DAYS", default_value_t = keygate::jwt::DEFAULT_ROTATION_DAYS)]
        key_rotation_days: i64,
        /// Days without a use after which an application is reported dormant.
        #[arg(long, env = "KEYGATE_DORMANT_AFTER_DAYS", default_value_t = keygate::DEFAULT_DORMANT_AFTER_DAYS,
              value_parser = clap::value_parser!(i64).range(1..=3650))]
        dormant_after_days: i64,
        /// Serve Prometheus metrics at `GET /metrics` on this address (a
        /// listener of its own; off unless given).
        #[arg(long, env = "KEYGATE_METRICS_ADDR")]
        metrics_addr: Option<SocketAddr>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent copy of the (SQLite) database to PATH, safe while
    /// the server runs; never overwrites an existing file.
    Backup {
        /// Where to write the copy (must not exist yet).
        path: std::path::PathBuf,
    },
    /// Manage administrators.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage API applications.
    #[command(subcommand)]
    App(AppCommand),
    /// Manage the scope catalogue.
    #[command(subcommand)]
    Scope(ScopeCommand),
    /// Manage resource servers (the APIs that accept Keygate tokens).
    #[command(subcommand)]
    ResourceServer(ResourceServerCommand),
    /// Manage the signing keys of JWT access tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage webhooks: signed notifications of audit events and alerts.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Mint, list and revoke tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
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
        #[arg(long)]
        json: bool,
    },
    /// List administrators.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change an administrator's role (the last owner stays an owner).
    SetRole {
        username: String,
        #[arg(value_parser = ["owner", "admin", "viewer"])]
        role: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an administrator (never the last owner).
    Remove {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a new password, read from standard input.
    ResetPassword {
        username: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Create an application and print its client ID and secret (once).
    Create(CreateApp),
    /// List applications (never their secrets).
    List {
        /// Only names or client IDs containing this.
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one application.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Change an application's settings; what is not given stays.
    Update(UpdateApp),
    /// Enable an application (its revoked tokens stay revoked).
    Enable {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Disable an application, revoking every token it holds.
    Disable {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Delete an application and its tokens.
    Delete {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Replace an application's secret: at once (revoking its tokens), or with an overlap.
    RegenerateSecret {
        id: i64,
        /// Keep the previous secret working this long (1h to 30d, e.g. 1h, 7d).
        #[arg(long, value_parser = overlap)]
        previous_valid_for: Option<i64>,
        /// Let existing tokens run to their own expiry instead of revoking them.
        #[arg(long)]
        keep_tokens: bool,
        #[arg(long)]
        json: bool,
    },
    /// End an overlap early: the previous secret stops working now.
    EndOverlap {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// What regenerating the secret would break: valid tokens, last uses.
    SecretImpact {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

/// A duration such as `1h`, `90m` or `7d`, in seconds.
fn overlap(raw: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(raw.trim()).map_err(|e| format!("{e} (write e.g. 1h, 12h or 7d)"))?;
    i64::try_from(d.as_secs()).map_err(|_| "the duration is too long".to_owned())
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
    /// What the token endpoint issues: opaque tokens or JWT access tokens.
    #[arg(long, default_value = "opaque", value_parser = ["opaque", "jwt"])]
    token_format: String,
    /// Make it the introspection client of this resource server (identifier).
    #[arg(long)]
    introspects: Option<String>,
    /// A CIDR network its secret and tokens may be used from; repeat for
    /// several (none: anywhere).
    #[arg(long = "allow-network")]
    allowed_networks: Vec<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct UpdateApp {
    id: i64,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    notes: Option<String>,
    /// The allowed scopes, replacing the current ones; repeat for several.
    #[arg(long = "scope", conflicts_with = "no_scopes")]
    scopes: Vec<String>,
    /// Remove every scope.
    #[arg(long)]
    no_scopes: bool,
    #[arg(long)]
    token_ttl: Option<i64>,
    #[arg(long)]
    max_tokens: Option<i64>,
    #[arg(long)]
    rate_per_second: Option<i64>,
    #[arg(long)]
    rate_per_hour: Option<i64>,
    #[arg(long, value_parser = ["opaque", "jwt"])]
    token_format: Option<String>,
    /// Make it the introspection client of this resource server (identifier).
    #[arg(long, conflicts_with = "no_introspects")]
    introspects: Option<String>,
    /// It introspects no resource server's tokens any more.
    #[arg(long)]
    no_introspects: bool,
    /// The networks it may be used from, replacing the current ones; repeat for several.
    #[arg(long = "allow-network", conflicts_with = "allow_anywhere")]
    allowed_networks: Vec<String>,
    /// Remove the network allowlist: usable from anywhere.
    #[arg(long)]
    allow_anywhere: bool,
    #[arg(long)]
    json: bool,
}

/// A token's expiry: one of a lifetime in days or seconds, or a date.
#[derive(Args, Debug)]
#[group(multiple = false)]
pub struct ExpiryArgs {
    /// Lifetime in days.
    #[arg(long)]
    days: Option<i64>,
    /// Lifetime in seconds.
    #[arg(long)]
    expires_in: Option<i64>,
    /// Expiry date, YYYY-MM-DD (UTC midnight).
    #[arg(long)]
    expires_on: Option<String>,
}

impl ExpiryArgs {
    fn expiry(self) -> Option<TokenExpiry> {
        match (self.days, self.expires_in, self.expires_on) {
            (Some(d), _, _) => Some(TokenExpiry::Days(d)),
            (_, Some(s), _) => Some(TokenExpiry::InSeconds(s)),
            (_, _, Some(date)) => Some(TokenExpiry::OnDate(date)),
            _ => None,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Mint a named token and print it (once).
    Mint {
        /// The application's id.
        application: i64,
        #[arg(long)]
        name: String,
        /// A scope of the application; repeat for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// (default: 30 days)
        #[command(flatten)]
        expiry: ExpiryArgs,
        #[arg(long)]
        json: bool,
    },
    /// List an application's tokens (never the tokens themselves).
    List {
        application: i64,
        #[arg(long)]
        json: bool,
    },
    /// Give a named token a new expiry; its value stays the same.
    Extend {
        id: i64,
        #[command(flatten)]
        expiry: ExpiryArgs,
        #[arg(long)]
        json: bool,
    },
    /// Replace a named token's value: a new token with the same name and
    /// scopes, printed once; the old one is revoked, or keeps working for
    /// --previous-valid-for.
    Rotate {
        id: i64,
        /// The new token's lifetime (default: as long as the old one was made to live).
        #[command(flatten)]
        expiry: ExpiryArgs,
        /// Keep the previous value working this long (up to 30d, e.g. 1h, 7d; never past its expiry).
        #[arg(long, value_parser = overlap)]
        previous_valid_for: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token.
    Revoke {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ScopeCommand {
    /// Add a scope for your own services.
    Add {
        name: String,
        #[arg(long)]
        description: String,
        /// The resource server (identifier) the scope belongs to.
        #[arg(long)]
        resource_server: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Attach a scope to a resource server, or detach it with --none.
    Attach {
        name: String,
        #[arg(long, required_unless_present = "none")]
        resource_server: Option<String>,
        #[arg(long, conflicts_with = "resource_server")]
        none: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the scope catalogue.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a scope no application is allowed.
    Delete {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Add a webhook and print its signing secret (once).
    Add {
        #[arg(long)]
        url: String,
        /// An audit action (token.revoked), a family (token) or an alert
        /// (token.expiring, secret.expiring, application.dormant); repeat for several.
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        json: bool,
    },
    /// List webhooks with their queues (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a webhook with its queue and delivery log.
    Remove {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Queue a test event (webhook.test) for a webhook; a running server sends it.
    Test {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ResourceServerCommand {
    /// Add a resource server: a name and its identifier (the audience, an absolute URI).
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        identifier: String,
        #[arg(long)]
        json: bool,
    },
    /// List resource servers with their scopes.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a resource server no scope belongs to (by identifier).
    Delete {
        identifier: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a new signing key: published now, signing in 10 minutes (so
    /// every cached JWKS knows it first), the current key retired then.
    Rotate {
        #[arg(long, default_value = "ES256", value_parser = ["ES256", "RS256"])]
        alg: String,
        /// Sign with the new key at once (for a key believed stolen).
        #[arg(long)]
        immediately: bool,
        #[arg(long)]
        json: bool,
    },
    /// List signing keys: state, algorithm, when each signs and is published.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Audit events, newest first, with the API's filters.
    List {
        #[arg(long)]
        application_id: Option<i64>,
        /// An action (`token.revoked`) or a family (`token`).
        #[arg(long)]
        action: Option<String>,
        /// Unix seconds, inclusive.
        #[arg(long)]
        since: Option<i64>,
        /// Unix seconds, exclusive.
        #[arg(long)]
        until: Option<i64>,
        #[arg(long, default_value_t = 1)]
        page: i64,
        #[arg(long, default_value_t = 50)]
        per_page: i64,
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

fn print_json(v: &impl Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Prints `value` as JSON, or `text` for people.
fn answer(json: bool, value: &impl Serialize, text: impl FnOnce() -> String) {
    if json {
        print_json(value);
    } else {
        println!("{}", text());
    }
}

fn read_password() -> Result<String, Box<dyn std::error::Error>> {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    Ok(password.trim_end_matches(['\n', '\r']).to_owned())
}

fn token_format(raw: &str) -> Result<keygate::TokenFormat, Box<dyn std::error::Error>> {
    Ok(keygate::TokenFormat::parse(raw).ok_or("the token format is opaque or jwt")?)
}

fn role(raw: &str) -> Result<Role, Box<dyn std::error::Error>> {
    Ok(Role::parse(raw).ok_or("role must be owner, admin or viewer")?)
}

async fn admin_named(store: &Store, username: &str) -> Result<keygate::AdminView, Box<dyn std::error::Error>> {
    Ok(store.admin_by_username(username).await?.ok_or_else(|| format!("no administrator named {username}"))?)
}

fn app_line(a: &keygate::ApplicationView) -> String {
    format!(
        "{:>5}  {:<30}  {}  {}  scopes: {}",
        a.id,
        a.name,
        a.client_id,
        if a.enabled { "enabled " } else { "disabled" },
        a.scopes.join(" ")
    )
}

pub async fn run(cli: Cli) -> CliResult {
    let now = crate::now();
    let caller = Caller::cli(now);
    if let Command::Serve {
        addr,
        public_url,
        token_retention_days,
        audit_retention_days,
        trusted_proxies,
        key_rotation_days,
        dormant_after_days,
        metrics_addr,
    } = cli.command
    {
        let store = Store::open(&cli.database_url).await?;
        let config = crate::serve::ServeConfig {
            addr,
            public_url,
            token_retention_days,
            audit_retention_days,
            trusted_proxies,
            key_rotation_days,
            dormant_after_days,
            metrics_addr,
            key_file: cli.key_file,
        };
        return crate::serve::run(store, config).await;
    }
    if let Command::Backup { path } = &cli.command {
        let bytes = keygate::store::backup_sqlite(&cli.database_url, path).await?;
        println!("Backed up to {} ({bytes} bytes).", path.display());
        return Ok(());
    }
    let store = open(&cli.database_url).await?;
    let result = match cli.command {
        Command::Keys(c) => keys_command(&store, &caller, &cli.key_file, c).await,
        Command::Webhook(c) => webhook_command(&store, &caller, &cli.key_file, c).await,
        other => run_command(&store, &caller, other).await,
    };
    store.close().await;
    result
}

async fn run_command(store: &Store, caller: &Caller, command: Command) -> CliResult {
    let now = caller.now;
    match command {
        Command::Serve { .. } | Command::Backup { .. } => Ok(()),
        Command::Migrate => {
            println!("migrations applied");
            Ok(())
        }
        Command::Admin(c) => admin_command(store, caller, c).await,
        Command::App(AppCommand::Create(c)) => {
            let settings = ApplicationSettings {
                name: c.name,
                notes: c.notes,
                scopes: ScopeSet::from_names(&c.scopes)?,
                token_ttl_seconds: c.token_ttl,
                max_tokens: c.max_tokens,
                rate_per_second: c.rate_per_second,
                rate_per_hour: c.rate_per_hour,
                token_format: token_format(&c.token_format)?,
                introspects: c.introspects,
                allowed_networks: c.allowed_networks,
            };
            let (app, secret) = applications::create_application(store, caller, settings).await?;
            let value = json!({ "id": app.id, "client_id": app.client_id, "client_secret": secret.expose() });
            answer(c.json, &value, || {
                format!(
                    "application {} created (id {})\nclient_id:     {}\nclient_secret: {}\n\
                     The secret is shown only now; store it safely.",
                    app.name,
                    app.id,
                    app.client_id,
                    secret.expose()
                )
            });
            Ok(())
        }
        Command::App(AppCommand::List { search, json }) => {
            let mut all = Vec::new();
            for page in 1.. {
                let q = ApplicationQuery { search: search.clone(), page, per_page: 200, ..Default::default() };
                let Page { items, .. } = store.list_applications(&q, now).await?;
                let done = items.len() < 200;
                all.extend(items);
                if done {
                    break;
                }
            }
            answer(json, &all, || all.iter().map(app_line).collect::<Vec<_>>().join("\n"));
            Ok(())
        }
        Command::App(AppCommand::Show { id, json }) => {
            let app = store.require_application(ApplicationId(id), now).await?;
            answer(json, &app, || {
                format!(
                    "{}\nnotes: {}\ntoken lifetime {} s, at most {} tokens, {} requests/s, {} requests/hour\n\
                     active tokens: {}",
                    app_line(&app),
                    app.notes,
                    app.token_ttl_seconds,
                    app.max_tokens,
                    app.rate_per_second,
                    app.rate_per_hour,
                    app.active_tokens
                )
            });
            Ok(())
        }
        Command::App(AppCommand::Update(u)) => {
            let scopes = if u.no_scopes {
                Some(ScopeSet::empty())
            } else if u.scopes.is_empty() {
                None
            } else {
                Some(ScopeSet::from_names(&u.scopes)?)
            };
            let change = ApplicationChange {
                name: u.name,
                notes: u.notes,
                scopes,
                token_ttl_seconds: u.token_ttl,
                max_tokens: u.max_tokens,
                rate_per_second: u.rate_per_second,
                rate_per_hour: u.rate_per_hour,
                token_format: u.token_format.as_deref().map(token_format).transpose()?,
                introspects: if u.no_introspects { Some(None) } else { u.introspects.map(Some) },
                allowed_networks: if u.allow_anywhere {
                    Some(Vec::new())
                } else {
                    Some(u.allowed_networks).filter(|n| !n.is_empty())
                },
                enabled: None,
            };
            let app = applications::update_application(store, caller, ApplicationId(u.id), change).await?;
            answer(u.json, &app, || format!("updated: {}", app_line(&app)));
            Ok(())
        }
        Command::App(AppCommand::Enable { id, json }) => {
            let app =
                applications::update_application(store, caller, ApplicationId(id), ApplicationChange::enabled(true))
                    .await?;
            answer(json, &app, || format!("enabled: {}", app_line(&app)));
            Ok(())
        }
        Command::App(AppCommand::Disable { id, json }) => {
            let before = store.require_application(ApplicationId(id), now).await?;
            let app =
                applications::update_application(store, caller, ApplicationId(id), ApplicationChange::enabled(false))
                    .await?;
            let revoked = if before.enabled { before.active_tokens } else { 0 };
            answer(json, &app, || format!("disabled: {}\n{revoked} active token(s) revoked", app_line(&app)));
            Ok(())
        }
        Command::App(AppCommand::Delete { id, json }) => {
            let app = applications::delete_application(store, caller, ApplicationId(id)).await?;
            answer(json, &json!({ "deleted": app.id, "name": app.name }), || {
                format!("application {} (id {}) deleted with its tokens", app.name, app.id)
            });
            Ok(())
        }
        Command::App(AppCommand::RegenerateSecret { id, previous_valid_for, keep_tokens, json }) => {
            let how = applications::SecretRegeneration {
                previous_secret_valid_for: previous_valid_for,
                revoke_tokens: !keep_tokens,
            };
            let r = applications::regenerate_secret(store, caller, ApplicationId(id), how).await?;
            let value = json!({
                "id": r.application.id, "client_id": r.application.client_id,
                "client_secret": r.secret.expose(), "tokens_revoked": r.tokens_revoked,
                "secret_id": r.secret_id, "previous_secret_expires_at": r.previous_secret_expires_at,
            });
            answer(json, &value, || {
                let tokens = if keep_tokens {
                    "Existing tokens run to their own expiry.".to_owned()
                } else {
                    format!("{} token(s) revoked.", r.tokens_revoked)
                };
                let previous = match r.previous_secret_expires_at {
                    Some(at) => {
                        format!("\nThe previous secret keeps working until {}.", keygate::time_fmt::exact_utc(at))
                    }
                    None => "\nThe previous secret no longer works.".to_owned(),
                };
                format!("new client_secret: {}\n{tokens}{previous}\nThe secret is shown only now.", r.secret.expose())
            });
            Ok(())
        }
        Command::App(AppCommand::EndOverlap { id, json }) => {
            let app = store.require_application(ApplicationId(id), now).await?;
            let Some(previous) = app.secrets.iter().find(|s| !s.current) else {
                return Err(format!("{} has no previous secret in an overlap", app.name).into());
            };
            let app = applications::end_previous_secret(store, caller, ApplicationId(id), previous.id).await?;
            answer(json, &app, || format!("the previous secret of {} no longer works", app.name));
            Ok(())
        }
        Command::App(AppCommand::SecretImpact { id, json }) => {
            let impact = applications::secret_impact(store, caller, ApplicationId(id)).await?;
            answer(json, &impact, || {
                let mut lines = vec![format!("{} valid token(s) would be revoked", impact.active_tokens)];
                for t in &impact.tokens {
                    lines.push(format!(
                        "  token {} ({}): last used {} from {}",
                        t.id,
                        t.name.as_deref().unwrap_or("token endpoint"),
                        t.last_used_at.map(keygate::time_fmt::exact_utc).unwrap_or_else(|| "never".into()),
                        t.last_used_ip.as_deref().unwrap_or("-")
                    ));
                }
                for s in &impact.secrets {
                    lines.push(format!(
                        "{} secret {}: last used {} from {}",
                        if s.current { "current" } else { "previous" },
                        s.id,
                        s.last_used_at.map(keygate::time_fmt::exact_utc).unwrap_or_else(|| "never".into()),
                        s.last_used_ip.as_deref().unwrap_or("-")
                    ));
                }
                lines.join("\n")
            });
            Ok(())
        }
        Command::Token(c) => token_command(store, caller, c).await,
        Command::Scope(ScopeCommand::Add { name, description, resource_server, json }) => {
            let scope = scopes::add_scope(store, caller, &name, &description, resource_server.as_deref()).await?;
            answer(json, &scope, || format!("scope {} added", scope.name));
            Ok(())
        }
        Command::Scope(ScopeCommand::Attach { name, resource_server, none: _, json }) => {
            let scope = resource_servers::attach_scope(store, caller, &name, resource_server.as_deref()).await?;
            answer(json, &scope, || match &scope.resource_server {
                Some(server) => format!("scope {} belongs to {server}", scope.name),
                None => format!("scope {} belongs to no resource server", scope.name),
            });
            Ok(())
        }
        Command::Scope(ScopeCommand::List { json }) => {
            let scopes = store.list_scopes().await?;
            answer(json, &scopes, || {
                scopes
                    .iter()
                    .map(|s| {
                        let server = s.resource_server.as_deref().unwrap_or("-");
                        format!("{:<32} {:<32} {}", s.name, server, s.description)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        Command::ResourceServer(c) => resource_server_command(store, caller, c).await,
        Command::Keys(_) | Command::Webhook(_) => Err("this command needs the key file".into()),
        Command::Scope(ScopeCommand::Delete { name, json }) => {
            let scope = scopes::delete_scope(store, caller, &name).await?;
            answer(json, &json!({ "deleted": scope.name }), || format!("scope {} deleted", scope.name));
            Ok(())
        }
        Command::Audit(AuditCommand::List { application_id, action, since, until, page, per_page, json }) => {
            if let Some(a) = action.as_deref() {
                if !keygate::AuditAction::ALL.iter().any(|x| x.matches(a)) {
                    return Err(format!("unknown action {a}; use a family or an action name").into());
                }
            }
            let q = AuditQuery {
                application_id: application_id.map(ApplicationId),
                application_match: None,
                action,
                since,
                until,
                page,
                per_page,
            };
            let p = store.list_audit_events(&q).await?;
            answer(json, &p, || {
                p.items
                    .iter()
                    .map(|e| {
                        let at = keygate::time_fmt::exact_utc(e.at);
                        format!("{at}  {}", keygate::audit_text::describe(e))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
    }
}

async fn resource_server_command(store: &Store, caller: &Caller, command: ResourceServerCommand) -> CliResult {
    match command {
        ResourceServerCommand::Add { name, identifier, json } => {
            let server = resource_servers::add_resource_server(store, caller, &name, &identifier).await?;
            answer(json, &server, || format!("resource server {} added ({})", server.name, server.identifier));
        }
        ResourceServerCommand::List { json } => {
            let all = store.list_resource_servers().await?;
            answer(json, &all, || {
                all.iter()
                    .map(|r| format!("{:<24} {:<40} scopes: {}", r.name, r.identifier, r.scopes.join(" ")))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ResourceServerCommand::Delete { identifier, json } => {
            let found = store.list_resource_servers().await?.into_iter().find(|r| r.identifier == identifier);
            let server = found.ok_or_else(|| format!("no resource server has the identifier {identifier}"))?;
            let deleted = resource_servers::delete_resource_server(store, caller, server.id).await?;
            answer(json, &json!({ "deleted": deleted.identifier }), || {
                format!("resource server {} deleted", deleted.name)
            });
        }
    }
    Ok(())
}

async fn webhook_command(
    store: &Store,
    caller: &Caller,
    key_file: &std::path::Path,
    command: WebhookCommand,
) -> CliResult {
    use keygate::usecase::webhooks;
    match command {
        WebhookCommand::Add { url, events, description, json } => {
            let kek = keys::open_key_file(store, key_file, caller.now).await?;
            let settings = webhooks::WebhookSettings { url, events, description };
            let (hook, secret) = webhooks::create_webhook(store, caller, &kek, settings).await?;
            let value = json!({ "id": hook.id, "url": hook.url, "events": hook.events, "secret": secret.expose() });
            answer(json, &value, || {
                format!(
                    "webhook {} added: {}\nevents: {}\nsigning secret: {}\nThe secret is shown only now.",
                    hook.id,
                    hook.url,
                    hook.events.join(" "),
                    secret.expose()
                )
            });
        }
        WebhookCommand::List { json } => {
            let hooks = store.list_webhooks().await?;
            answer(json, &hooks, || {
                hooks
                    .iter()
                    .map(|h| {
                        format!(
                            "{:>5}  {}  {}  events: {}  pending {}, failed {}",
                            h.id,
                            if h.enabled { "enabled " } else { "disabled" },
                            h.url,
                            h.events.join(" "),
                            h.pending,
                            h.failed
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        WebhookCommand::Remove { id, json } => {
            let hook = webhooks::delete_webhook(store, caller, keygate::WebhookId(id)).await?;
            answer(json, &json!({ "deleted": hook.id, "url": hook.url }), || format!("webhook {} removed", hook.id));
        }
        WebhookCommand::Test { id, json } => {
            let delivery = webhooks::send_test_event(store, caller, keygate::WebhookId(id)).await?;
            answer(json, &json!({ "delivery_id": delivery }), || {
                format!("test event queued (delivery {delivery}); a running server sends it within a second or two")
            });
        }
    }
    Ok(())
}

async fn keys_command(store: &Store, caller: &Caller, key_file: &std::path::Path, command: KeysCommand) -> CliResult {
    match command {
        KeysCommand::Rotate { alg, immediately, json } => {
            let kek = keys::open_key_file(store, key_file, caller.now).await?;
            let algorithm = keygate::jwt::KeyAlgorithm::parse(&alg).ok_or("the algorithm is ES256 or RS256")?;
            let key = keys::rotate_signing_key(store, caller, &kek, algorithm, immediately).await?;
            answer(json, &key, || {
                format!(
                    "signing key {} ({}) published now; it signs from {}",
                    key.kid,
                    key.algorithm,
                    keygate::time_fmt::exact_utc(key.signs_from)
                )
            });
        }
        KeysCommand::List { json } => {
            let all = keys::list_signing_keys(store, caller.now).await?;
            answer(json, &all, || {
                all.iter()
                    .map(|k| {
                        format!(
                            "{:<18} {}  {:<12} signs from {}",
                            k.kid,
                            k.algorithm,
                            format!("{:?}", k.state).to_lowercase(),
                            keygate::time_fmt::exact_utc(k.signs_from)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

async fn admin_command(store: &Store, caller: &Caller, command: AdminCommand) -> CliResult {
    let work = PasswordWork::new(1, 1);
    match command {
        AdminCommand::Add { username, password_stdin: _, role: r, json } => {
            let password = read_password()?;
            let admin = admins::add_admin(store, &work, caller, &username, &password, role(&r)?).await?;
            answer(json, &admin, || format!("administrator {} added as {}", admin.username, admin.role));
        }
        AdminCommand::List { json } => {
            let all = store.list_admins().await?;
            answer(json, &all, || {
                all.iter().map(|a| format!("{:<32} {}", a.username, a.role)).collect::<Vec<_>>().join("\n")
            });
        }
        AdminCommand::SetRole { username, role: r, json } => {
            let target = admin_named(store, &username).await?;
            let admin = admins::set_admin_role(store, caller, target.id, role(&r)?).await?;
            answer(json, &admin, || format!("{} is now {}", admin.username, admin.role));
        }
        AdminCommand::Remove { username, json } => {
            let target = admin_named(store, &username).await?;
            let admin = admins::remove_admin(store, caller, target.id).await?;
            answer(json, &json!({ "removed": admin.username }), || format!("administrator {} removed", admin.username));
        }
        AdminCommand::ResetPassword { username, password_stdin: _, json } => {
            let target = admin_named(store, &username).await?;
            let password = read_password()?;
            let admin = admins::reset_password(store, &work, caller, AdminId(target.id.0), &password).await?;
            answer(json, &json!({ "password_reset": admin.username }), || {
                format!("new password set for {}", admin.username)
            });
        }
    }
    Ok(())
}

async fn token_command(store: &Store, caller: &Caller, command: TokenCommand) -> CliResult {
    match command {
        TokenCommand::Mint { application, name, scopes, expiry, json } => {
            let expiry = expiry.expiry().unwrap_or(TokenExpiry::Days(30));
            let request = MintRequest { name, scopes: ScopeSet::from_names(&scopes)?, expiry };
            let minted = tokens::mint_token(store, caller, ApplicationId(application), request).await?;
            let value = json!({ "token": minted.view, "access_token": minted.token.expose() });
            answer(json, &value, || {
                format!(
                    "token {} (id {}) expires {}\naccess_token: {}\nThe token is shown only now; store it safely.",
                    minted.view.name.clone().unwrap_or_default(),
                    minted.view.id,
                    keygate::time_fmt::exact_utc(minted.view.expires_at),
                    minted.token.expose()
                )
            });
        }
        TokenCommand::List { application, json } => {
            let id = ApplicationId(application);
            store.require_application(id, caller.now).await?;
            // Page after page by id, so tokens issued meanwhile are neither
            // listed twice nor push others off the list.
            let mut list: Vec<keygate::TokenView> = Vec::new();
            loop {
                let before = list.last().map(|t| t.id);
                let Page { items, .. } = store.list_tokens(id, 1, 200, before).await?;
                let done = items.len() < 200;
                list.extend(items);
                if done {
                    break;
                }
            }
            let items: Vec<_> = list
                .iter()
                .map(|t| {
                    let mut v = serde_json::to_value(t).unwrap_or_default();
                    v["state"] = json!(t.state(caller.now));
                    v
                })
                .collect();
            answer(json, &items, || {
                list.iter()
                    .map(|t| {
                        format!(
                            "{:>6}  {:<24}  {:<8}  expires {}{}",
                            t.id,
                            t.name.clone().unwrap_or_else(|| t.display_prefix.clone()),
                            format!("{:?}", t.state(caller.now)).to_lowercase(),
                            keygate::time_fmt::exact_utc(t.expires_at),
                            t.replaced_by.map(|by| format!("  (rotated: replaced by {by})")).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        TokenCommand::Extend { id, expiry, json } => {
            let expiry = expiry.expiry().ok_or("give the new expiry: --days, --expires-in or --expires-on")?;
            let token = tokens::extend_token(store, caller, TokenId(id), expiry).await?;
            answer(json, &token, || {
                format!(
                    "token {} (id {}) now expires {}; its value is unchanged",
                    token.name.clone().unwrap_or_default(),
                    token.id,
                    keygate::time_fmt::exact_utc(token.expires_at)
                )
            });
        }
        TokenCommand::Rotate { id, expiry, previous_valid_for, json } => {
            let request =
                tokens::RotateRequest { expiry: expiry.expiry(), previous_valid_for: previous_valid_for.unwrap_or(0) };
            let r = tokens::rotate_token(store, caller, TokenId(id), request).await?;
            let value =
                json!({ "token": r.minted.view, "access_token": r.minted.token.expose(), "previous": r.previous });
            answer(json, &value, || {
                let previous = match r.previous.revoked_at {
                    Some(_) => format!("the previous token (id {id}) is revoked"),
                    None => format!(
                        "the previous token (id {id}) works until {}",
                        keygate::time_fmt::exact_utc(r.previous.expires_at)
                    ),
                };
                format!(
                    "token {} (id {}) expires {}\n{previous}\naccess_token: {}\nThe token is shown only now; store it safely.",
                    r.minted.view.name.clone().unwrap_or_default(),
                    r.minted.view.id,
                    keygate::time_fmt::exact_utc(r.minted.view.expires_at),
                    r.minted.token.expose()
                )
            });
        }
        TokenCommand::Revoke { id, json } => {
            let revoked = tokens::revoke_token(store, caller, TokenId(id)).await?;
            answer(json, &json!({ "revoked": revoked }), || {
                if revoked {
                    format!("token {id} revoked")
                } else {
                    format!("token {id} was already revoked")
                }
            });
        }
    }
    Ok(())
}
