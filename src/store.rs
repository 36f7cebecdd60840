//! Storage on SQLite through sqlx: the only module that writes SQL.
//!
//! Durability: WAL with `synchronous = NORMAL` makes every committed
//! transaction survive a crash of the process (SIGKILL); only a power loss
//! can drop the last commits. Write transactions start with a write
//! statement so SQLite takes the write lock first and the busy timeout
//! applies, rather than failing a read-then-write upgrade.

use crate::audit_action::AuditAction;
use crate::error::CoreError;
use crate::grant::{self, ClientAuthFailure, TokenRejection};
use crate::model::*;
use crate::scope::{ScopeName, ScopeSet};
use crate::secret::{generate_client_id, AccessToken, ClientSecret, SecretDigest};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Clone, Debug)]
pub struct Store {
    /// Readers: WAL lets them run beside the writer.
    pool: SqlitePool,
    /// The one connection that writes. Queuing writers here (an async
    /// wait) instead of letting several connections contend for SQLite's
    /// write lock (a sleeping busy handler) keeps issuance fast and its
    /// tail latency low.
    writer: SqlitePool,
    /// Token requests for the group-committing issuer task.
    issuer: tokio::sync::mpsc::Sender<IssueJob>,
    /// Client records by client ID, kept briefly so client authentication
    /// (token endpoint, introspection, revocation) costs no query. Any
    /// change to an application through this store clears it at once; a
    /// change made by another process (the CLI) is seen within
    /// [`CLIENT_CACHE_TTL`]. Issuance re-checks the secret in its write
    /// transaction regardless.
    /// Unknown client IDs are cached too, so a wrong secret for a known
    /// client and any secret for an unknown one cost the same (no timing
    /// oracle for which client IDs exist).
    #[allow(clippy::type_complexity)]
    clients:
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (Option<ClientRecord>, std::time::Instant)>>>,
}

pub const CLIENT_CACHE_TTL: Duration = Duration::from_secs(2);
const CLIENT_CACHE_MAX: usize = 50_000;

impl std::fmt::Debug for IssueJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueJob").field("application", &self.client.id).finish_non_exhaustive()
    }
}

/// Everything the token endpoint needs to know about a client.
#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub id: ApplicationId,
    pub client_id: String,
    pub name: String,
    pub secret_hash: SecretDigest,
    pub enabled: bool,
    pub scopes: ScopeSet,
    pub token_ttl_seconds: i64,
    pub max_tokens: i64,
    pub rate_per_second: i64,
    pub rate_per_hour: i64,
}

impl ClientRecord {
    /// Checks a presented secret in constant time.
    pub fn authenticate(&self, presented: &ClientSecret) -> Result<(), ClientAuthFailure> {
        if !self.secret_hash.matches(&presented.digest()) {
            return Err(ClientAuthFailure::WrongSecret);
        }
        if !self.enabled {
            return Err(ClientAuthFailure::ApplicationDisabled);
        }
        Ok(())
    }
}

/// A token in the one response that shows it.
#[derive(Debug)]
pub struct IssuedToken {
    pub id: TokenId,
    pub token: AccessToken,
    pub scopes: ScopeSet,
    pub created_at: i64,
    pub expires_at: i64,
    /// Tokens revoked to keep the application under its cap.
    pub evicted: u64,
}

/// Who a valid bearer token speaks for.
#[derive(Debug, Clone, Serialize)]
pub struct TokenContext {
    pub token_id: TokenId,
    pub application_id: ApplicationId,
    pub client_id: String,
    pub application_name: String,
    pub scopes: ScopeSet,
    pub issued_at: i64,
    pub expires_at: i64,
    pub token_name: Option<String>,
    pub rate_per_second: i64,
    pub rate_per_hour: i64,
}

/// A token that was refused, with enough to audit it.
#[derive(Debug, Clone)]
pub struct RejectedToken {
    pub rejection: TokenRejection,
    pub token_id: Option<TokenId>,
    pub application_id: Option<ApplicationId>,
    pub application_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    Administrator,
    Application,
    Anonymous,
    System,
}

impl ActorKind {
    fn as_str(self) -> &'static str {
        match self {
            ActorKind::Administrator => "administrator",
            ActorKind::Application => "application",
            ActorKind::Anonymous => "anonymous",
            ActorKind::System => "system",
        }
    }
}

/// One audit event to record.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub at: i64,
    pub actor_kind: ActorKind,
    pub actor_id: Option<i64>,
    pub actor_name: Option<String>,
    pub action: AuditAction,
    pub target_kind: Option<&'static str>,
    pub target_id: Option<i64>,
    pub target_name: Option<String>,
    pub application_id: Option<ApplicationId>,
    pub client_ip: Option<String>,
    pub details: serde_json::Value,
}

impl AuditRecord {
    pub fn new(at: i64, actor_kind: ActorKind, action: AuditAction) -> Self {
        AuditRecord {
            at,
            actor_kind,
            actor_id: None,
            actor_name: None,
            action,
            target_kind: None,
            target_id: None,
            target_name: None,
            application_id: None,
            client_ip: None,
            details: serde_json::Value::Object(Default::default()),
        }
    }
    pub fn by_admin(at: i64, admin: &AdminView, action: AuditAction) -> Self {
        let mut r = Self::new(at, ActorKind::Administrator, action);
        r.actor_id = Some(admin.id.0);
        r.actor_name = Some(admin.username.clone());
        r
    }
    pub fn on_application(mut self, id: ApplicationId, name: &str) -> Self {
        self.target_kind = Some("application");
        self.target_id = Some(id.0);
        self.target_name = Some(name.to_owned());
        self.application_id = Some(id);
        self
    }
    pub fn from_ip(mut self, ip: Option<String>) -> Self {
        self.client_ip = ip;
        self
    }
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// Paging and filtering of the applications list.
#[derive(Debug, Clone, Default)]
pub struct ApplicationQuery {
    /// Matches name or client ID (substring, case-insensitive).
    pub search: Option<String>,
    pub sort: ApplicationSort,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ApplicationSort {
    #[default]
    Name,
    Newest,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(sqlx::FromRow)]
struct ApplicationRow {
    id: i64,
    name: String,
    notes: String,
    client_id: String,
    scopes: String,
    enabled: bool,
    token_ttl_seconds: i64,
    max_tokens: i64,
    rate_per_second: i64,
    rate_per_hour: i64,
    created_at: i64,
    updated_at: i64,
    secret_regenerated_at: Option<i64>,
    active_tokens: i64,
    last_used_at: Option<i64>,
}

impl From<ApplicationRow> for ApplicationView {
    fn from(r: ApplicationRow) -> Self {
        ApplicationView {
            id: ApplicationId(r.id),
            name: r.name,
            notes: r.notes,
            client_id: r.client_id,
            scopes: split_scopes(&r.scopes),
            enabled: r.enabled,
            token_ttl_seconds: r.token_ttl_seconds,
            max_tokens: r.max_tokens,
            rate_per_second: r.rate_per_second,
            rate_per_hour: r.rate_per_hour,
            created_at: r.created_at,
            updated_at: r.updated_at,
            secret_regenerated_at: r.secret_regenerated_at,
            active_tokens: r.active_tokens,
            last_used_at: r.last_used_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    application_id: i64,
    name: Option<String>,
    display_prefix: String,
    scopes: String,
    source: String,
    created_at: i64,
    expires_at: i64,
    last_used_at: Option<i64>,
    last_used_ip: Option<String>,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
}

impl From<TokenRow> for TokenView {
    fn from(r: TokenRow) -> Self {
        TokenView {
            id: TokenId(r.id),
            application_id: ApplicationId(r.application_id),
            name: r.name,
            display_prefix: r.display_prefix,
            scopes: split_scopes(&r.scopes),
            source: TokenSource::parse(&r.source).unwrap_or(TokenSource::Api),
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            last_used_ip: r.last_used_ip,
            revoked_at: r.revoked_at,
            revoked_reason: r.revoked_reason,
        }
    }
}

#[derive(sqlx::FromRow)]
struct AdminRow {
    id: i64,
    username: String,
    role: String,
    created_at: i64,
    last_sign_in_at: Option<i64>,
}

impl From<AdminRow> for AdminView {
    fn from(r: AdminRow) -> Self {
        AdminView {
            id: AdminId(r.id),
            username: r.username,
            role: Role::parse(&r.role).unwrap_or(Role::Viewer),
            created_at: r.created_at,
            last_sign_in_at: r.last_sign_in_at,
        }
    }
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split(' ').filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

fn scope_set(s: &str) -> ScopeSet {
    // Stored scopes were validated on the way in; a name that no longer
    // parses is dropped rather than granting anything unexpected.
    ScopeSet::from_names(s.split(' ').filter(|p| ScopeName::parse(p).is_ok())).unwrap_or_default()
}

const APPLICATION_COLUMNS: &str = "a.id, a.name, a.notes, a.client_id, a.scopes, a.enabled, a.token_ttl_seconds, \
     a.max_tokens, a.rate_per_second, a.rate_per_hour, a.created_at, a.updated_at, a.secret_regenerated_at, \
     (SELECT COUNT(*) FROM tokens t WHERE t.application_id = a.id \
     AND t.source IN ('token_endpoint', 'console', 'api') AND t.revoked_at IS NULL AND t.expires_at > ?1) AS active_tokens, \
     (SELECT MAX(t.last_used_at) FROM tokens t WHERE t.application_id = a.id) AS last_used_at";

const TOKEN_COLUMNS: &str = "id, application_id, name, display_prefix, scopes, source, created_at, expires_at, \
     last_used_at, last_used_ip, revoked_at, revoked_reason";

/// Prepares the directory of a `sqlite:` file URL so a fresh machine needs no setup.
fn ensure_parent_dir(url: &str) -> Result<(), CoreError> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CoreError::Internal(format!("cannot create {}: {e}", parent.display())))?;
        }
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database at `url`.
    pub async fn open(url: &str) -> Result<Store, CoreError> {
        if !url.starts_with("sqlite:") {
            return Err(CoreError::Internal(format!(
                "unsupported database URL (only sqlite: is supported): {}",
                url.split(':').next().unwrap_or("")
            )));
        }
        ensure_parent_dir(url)?;
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        // The writer never checkpoints: copying WAL pages back (and the fsync
        // that goes with it) would stall every queued write. A background
        // task checkpoints passively from a reader connection instead.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options)
            .await?;
        let checkpoint_pool = pool.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                if checkpoint_pool.is_closed() {
                    break;
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&checkpoint_pool).await {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                }
            }
        });
        let (issuer, jobs) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(run_issuer(writer.clone(), jobs));
        Ok(Store { pool, writer, issuer, clients: Default::default() })
    }

    pub async fn migrate(&self) -> Result<(), CoreError> {
        MIGRATOR.run(&self.writer).await.map_err(|e| CoreError::Internal(format!("migration failed: {e}")))
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        // A last full checkpoint so the database file alone is current.
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.writer).await;
        self.writer.close().await;
        self.pool.close().await;
    }

    pub async fn healthy(&self) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&self.pool).await.is_ok()
    }

    // ---------------------------------------------------------------- admins

    pub async fn admin_count(&self) -> Result<i64, CoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM administrators").fetch_one(&self.pool).await?)
    }

    /// Creates an administrator; `password_hash` comes from `secret::hash_password`.
    pub async fn create_admin(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        now: i64,
    ) -> Result<AdminView, CoreError> {
        let username = validate_username(username)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO administrators (username, password_hash, role, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(&username)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| match CoreError::from(e) {
            CoreError::Conflict(_) => CoreError::invalid("username", format!("the username \"{username}\" is taken")),
            other => other,
        })?;
        Ok(AdminView { id: AdminId(id), username, role, created_at: now, last_sign_in_at: None })
    }

    /// Creates the first owner, only while there is no administrator at all;
    /// `Ok(None)` when someone else got there first.
    pub async fn create_first_owner(
        &self,
        username: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<AdminView>, CoreError> {
        let username = validate_username(username)?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO administrators (username, password_hash, role, created_at) \
             SELECT ?, ?, 'owner', ? WHERE NOT EXISTS (SELECT 1 FROM administrators) RETURNING id",
        )
        .bind(&username)
        .bind(password_hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(id.map(|id| AdminView {
            id: AdminId(id),
            username,
            role: Role::Owner,
            created_at: now,
            last_sign_in_at: None,
        }))
    }

    /// The administrator and their password hash, for sign-in.
    pub async fn admin_credentials(&self, username: &str) -> Result<Option<(AdminView, String)>, CoreError> {
        let row = sqlx::query(
            "SELECT id, username, role, created_at, last_sign_in_at, password_hash FROM administrators WHERE username = ?",
        )
        .bind(username.trim())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => {
                let hash: String = r.try_get("password_hash")?;
                let admin = AdminView {
                    id: AdminId(r.try_get("id")?),
                    username: r.try_get("username")?,
                    role: Role::parse(r.try_get::<String, _>("role")?.as_str()).unwrap_or(Role::Viewer),
                    created_at: r.try_get("created_at")?,
                    last_sign_in_at: r.try_get("last_sign_in_at")?,
                };
                Some((admin, hash))
            }
            None => None,
        })
    }

    pub async fn admin(&self, id: AdminId) -> Result<Option<AdminView>, CoreError> {
        Ok(sqlx::query_as::<_, AdminRow>(
            "SELECT id, username, role, created_at, last_sign_in_at FROM administrators WHERE id = ?",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .map(Into::into))
    }

    pub async fn list_admins(&self) -> Result<Vec<AdminView>, CoreError> {
        Ok(sqlx::query_as::<_, AdminRow>(
            "SELECT id, username, role, created_at, last_sign_in_at FROM administrators ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
    }

    /// Changes a role, refusing to demote the last owner.
    pub async fn set_admin_role(&self, id: AdminId, role: Role) -> Result<AdminView, CoreError> {
        let done = sqlx::query(
            "UPDATE administrators SET role = ?1 WHERE id = ?2 AND (role != 'owner' OR ?1 = 'owner' \
             OR (SELECT COUNT(*) FROM administrators WHERE role = 'owner') > 1)",
        )
        .bind(role.as_str())
        .bind(id.0)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return match self.admin(id).await? {
                None => Err(CoreError::NotFound("administrator")),
                Some(_) => {
                    Err(CoreError::Refused("the last owner cannot be demoted; make someone else owner first".into()))
                }
            };
        }
        self.admin(id).await?.ok_or(CoreError::NotFound("administrator"))
    }

    /// Removes an administrator, refusing to remove the last owner.
    pub async fn remove_admin(&self, id: AdminId) -> Result<String, CoreError> {
        let name: Option<String> = sqlx::query_scalar(
            "DELETE FROM administrators WHERE id = ?1 AND (role != 'owner' \
             OR (SELECT COUNT(*) FROM administrators WHERE role = 'owner') > 1) RETURNING username",
        )
        .bind(id.0)
        .fetch_optional(&self.writer)
        .await?;
        match name {
            Some(n) => Ok(n),
            None => match self.admin(id).await? {
                None => Err(CoreError::NotFound("administrator")),
                Some(_) => Err(CoreError::Refused("the last owner cannot be removed".into())),
            },
        }
    }

    pub async fn application_id_by_name(&self, name: &str) -> Result<Option<ApplicationId>, CoreError> {
        Ok(sqlx::query_scalar::<_, i64>("SELECT id FROM applications WHERE name = ?")
            .bind(name.trim())
            .fetch_optional(&self.pool)
            .await?
            .map(ApplicationId))
    }

    pub async fn record_sign_in(&self, id: AdminId, now: i64) -> Result<(), CoreError> {
        sqlx::query("UPDATE administrators SET last_sign_in_at = ? WHERE id = ?")
            .bind(now)
            .bind(id.0)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    // ---------------------------------------------------------------- scopes

    pub async fn list_scopes(&self) -> Result<Vec<ScopeView>, CoreError> {
        let rows = sqlx::query("SELECT name, description, builtin FROM scopes ORDER BY builtin DESC, name")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(ScopeView {
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    builtin: r.try_get("builtin")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    pub async fn add_scope(&self, name: &str, description: &str, now: i64) -> Result<ScopeView, CoreError> {
        let name = ScopeName::parse(name.trim()).map_err(|m| CoreError::invalid("name", m))?;
        let description = description.trim();
        if description.is_empty() || description.chars().count() > 500 {
            return Err(CoreError::invalid("description", "a description has 1 to 500 characters"));
        }
        sqlx::query("INSERT INTO scopes (name, description, builtin, created_at) VALUES (?, ?, 0, ?)")
            .bind(name.as_str())
            .bind(description)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(|e| match CoreError::from(e) {
                CoreError::Conflict(_) => CoreError::invalid("name", format!("the scope \"{name}\" already exists")),
                other => other,
            })?;
        Ok(ScopeView { name: name.to_string(), description: description.to_owned(), builtin: false })
    }

    /// Refuses scopes that are not in the catalogue, naming them.
    async fn check_known_scopes(&self, scopes: &ScopeSet) -> Result<(), CoreError> {
        if scopes.is_empty() {
            return Ok(());
        }
        let known: Vec<String> = sqlx::query_scalar("SELECT name FROM scopes").fetch_all(&self.writer).await?;
        let unknown: Vec<&str> = scopes.iter().map(|s| s.as_str()).filter(|s| !known.iter().any(|k| k == s)).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(CoreError::invalid(
                "scopes",
                format!("unknown scope(s): {} (add them to the scope catalogue first)", unknown.join(", ")),
            ))
        }
    }

    // ---------------------------------------------------------- applications

    /// Creates an application; the secret is returned here and never again.
    pub async fn create_application(
        &self,
        settings: ApplicationSettings,
        now: i64,
    ) -> Result<(ApplicationView, ClientSecret), CoreError> {
        let s = settings.validated()?;
        self.check_known_scopes(&s.scopes).await?;
        let secret = ClientSecret::generate();
        let client_id = generate_client_id();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO applications (name, notes, client_id, secret_hash, scopes, enabled, token_ttl_seconds, \
             max_tokens, rate_per_second, rate_per_hour, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&s.name)
        .bind(&s.notes)
        .bind(&client_id)
        .bind(secret.digest().as_bytes().to_vec())
        .bind(s.scopes.to_string())
        .bind(s.token_ttl_seconds)
        .bind(s.max_tokens)
        .bind(s.rate_per_second)
        .bind(s.rate_per_hour)
        .bind(now)
        .bind(now)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| match CoreError::from(e) {
            CoreError::Conflict(_) => {
                CoreError::invalid("name", format!("an application named \"{}\" already exists", s.name))
            }
            other => other,
        })?;
        let view = self.application(ApplicationId(id), now).await?.ok_or(CoreError::NotFound("application"))?;
        Ok((view, secret))
    }

    /// Changes an application's settings (not its secret). Disabling it
    /// revokes every token it holds, in the same transaction: re-enabling
    /// an application later must not bring a leaked token back to life.
    pub async fn update_application(
        &self,
        id: ApplicationId,
        settings: ApplicationSettings,
        enabled: bool,
        now: i64,
    ) -> Result<ApplicationView, CoreError> {
        let s = settings.validated()?;
        self.check_known_scopes(&s.scopes).await?;
        let mut tx = self.writer.begin().await?;
        let updated: Option<i64> = sqlx::query_scalar(
            "UPDATE applications SET name = ?, notes = ?, scopes = ?, enabled = ?, token_ttl_seconds = ?, \
             max_tokens = ?, rate_per_second = ?, rate_per_hour = ?, updated_at = ? WHERE id = ? RETURNING id",
        )
        .bind(&s.name)
        .bind(&s.notes)
        .bind(s.scopes.to_string())
        .bind(enabled)
        .bind(s.token_ttl_seconds)
        .bind(s.max_tokens)
        .bind(s.rate_per_second)
        .bind(s.rate_per_hour)
        .bind(now)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| match CoreError::from(e) {
            CoreError::Conflict(_) => {
                CoreError::invalid("name", format!("an application named \"{}\" already exists", s.name))
            }
            other => other,
        })?;
        if updated.is_none() {
            return Err(CoreError::NotFound("application"));
        }
        if !enabled {
            sqlx::query(
                "UPDATE tokens SET revoked_at = ?, revoked_reason = 'application_disabled' \
                 WHERE application_id = ? AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.forget_clients();
        self.application(id, now).await?.ok_or(CoreError::NotFound("application"))
    }

    /// Deletes an application and (by cascade) its tokens; returns its name.
    pub async fn delete_application(&self, id: ApplicationId) -> Result<String, CoreError> {
        let name: Option<String> = sqlx::query_scalar("DELETE FROM applications WHERE id = ? RETURNING name")
            .bind(id.0)
            .fetch_optional(&self.writer)
            .await?;
        self.forget_clients();
        name.ok_or(CoreError::NotFound("application"))
    }

    pub async fn application(&self, id: ApplicationId, now: i64) -> Result<Option<ApplicationView>, CoreError> {
        let sql = format!("SELECT {APPLICATION_COLUMNS} FROM applications a WHERE a.id = ?2");
        Ok(sqlx::query_as::<_, ApplicationRow>(&sql)
            .bind(now)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .map(Into::into))
    }

    /// The application, or `NotFound`.
    pub async fn require_application(&self, id: ApplicationId, now: i64) -> Result<ApplicationView, CoreError> {
        self.application(id, now).await?.ok_or(CoreError::NotFound("application"))
    }

    pub async fn list_applications(&self, q: &ApplicationQuery, now: i64) -> Result<Page<ApplicationView>, CoreError> {
        let per_page = q.per_page.clamp(1, 200);
        let page = q.page.max(1);
        let search = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let pattern = search.map(|s| {
            let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        let filter = if pattern.is_some() {
            "WHERE (a.name LIKE ?2 ESCAPE '\\' OR a.client_id LIKE ?2 ESCAPE '\\')"
        } else {
            "WHERE ?2 IS NULL"
        };
        let order = match q.sort {
            ApplicationSort::Name => "a.name COLLATE NOCASE ASC",
            ApplicationSort::Newest => "a.id DESC",
        };
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM applications a {}", filter.replace("?2", "?1")))
                .bind(&pattern)
                .fetch_one(&self.pool)
                .await?;
        let sql =
            format!("SELECT {APPLICATION_COLUMNS} FROM applications a {filter} ORDER BY {order} LIMIT ?3 OFFSET ?4");
        let items = sqlx::query_as::<_, ApplicationRow>(&sql)
            .bind(now)
            .bind(&pattern)
            .bind(per_page)
            .bind((page - 1).saturating_mul(per_page))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
        Ok(Page { items, total, page, per_page })
    }

    /// Like [`Store::client_by_client_id`], from the short-lived cache when it can.
    pub async fn client_for_authentication(&self, client_id: &str) -> Result<Option<ClientRecord>, CoreError> {
        if let Ok(cache) = self.clients.lock() {
            if let Some((record, at)) = cache.get(client_id) {
                if at.elapsed() < CLIENT_CACHE_TTL {
                    return Ok(record.clone());
                }
            }
        }
        let found = self.client_by_client_id(client_id).await?;
        if let Ok(mut cache) = self.clients.lock() {
            if cache.len() >= CLIENT_CACHE_MAX {
                cache.retain(|_, (_, at)| at.elapsed() < CLIENT_CACHE_TTL);
                if cache.len() >= CLIENT_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(client_id.to_owned(), (found.clone(), std::time::Instant::now()));
        }
        Ok(found)
    }

    fn forget_clients(&self) {
        if let Ok(mut cache) = self.clients.lock() {
            cache.clear();
        }
    }

    pub async fn client_by_client_id(&self, client_id: &str) -> Result<Option<ClientRecord>, CoreError> {
        let row = sqlx::query(
            "SELECT id, client_id, name, secret_hash, enabled, scopes, token_ttl_seconds, max_tokens, \
             rate_per_second, rate_per_hour FROM applications WHERE client_id = ?",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let hash: Vec<u8> = r.try_get("secret_hash")?;
        Ok(Some(ClientRecord {
            id: ApplicationId(r.try_get("id")?),
            client_id: r.try_get("client_id")?,
            name: r.try_get("name")?,
            secret_hash: SecretDigest::from_slice(&hash)
                .ok_or_else(|| CoreError::Internal("stored secret digest has the wrong length".into()))?,
            enabled: r.try_get("enabled")?,
            scopes: scope_set(&r.try_get::<String, _>("scopes")?),
            token_ttl_seconds: r.try_get("token_ttl_seconds")?,
            max_tokens: r.try_get("max_tokens")?,
            rate_per_second: r.try_get("rate_per_second")?,
            rate_per_hour: r.try_get("rate_per_hour")?,
        }))
    }

    /// Replaces the secret and revokes every unrevoked token of the
    /// application in one transaction, so no old token outlives the old
    /// secret. Returns the new secret (shown once) and how many tokens died.
    pub async fn regenerate_secret(&self, id: ApplicationId, now: i64) -> Result<(ClientSecret, u64), CoreError> {
        let secret = ClientSecret::generate();
        let mut tx = self.writer.begin().await?;
        let updated = sqlx::query(
            "UPDATE applications SET secret_hash = ?, secret_regenerated_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(secret.digest().as_bytes().to_vec())
        .bind(now)
        .bind(now)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(CoreError::NotFound("application"));
        }
        let revoked = sqlx::query(
            "UPDATE tokens SET revoked_at = ?, revoked_reason = 'secret_regenerated' \
             WHERE application_id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        self.forget_clients();
        Ok((secret, revoked))
    }

    // ---------------------------------------------------------------- tokens

    /// Issues a token from the token endpoint for an authenticated client.
    ///
    /// Requests are handed to one issuing task that commits them in groups
    /// (group commit): each request costs two statements inside a shared
    /// write transaction instead of a transaction of its own. Per request,
    /// in order: insert the token only if the secret the client proved is
    /// still current and the application enabled (a regeneration may have
    /// committed since), then revoke all but the newest `max_tokens` valid
    /// endpoint tokens. One writer and one order mean concurrent requests
    /// never leave more than `max_tokens` valid.
    pub async fn issue_endpoint_token(
        &self,
        client: &ClientRecord,
        scopes: ScopeSet,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = IssueJob { client: client.clone(), scopes, now, token: AccessToken::generate(), reply };
        self.issuer
            .send(job)
            .await
            .map_err(|_| IssueError::Core(CoreError::Internal("the token issuer has stopped".into())))?;
        answer.await.map_err(|_| IssueError::Core(CoreError::Internal("the token issuer dropped a request".into())))?
    }

    /// Mints a named token (console or API). Named tokens do not count
    /// against the endpoint cap: an administrator chose to create each one.
    pub async fn mint_named_token(
        &self,
        application: ApplicationId,
        name: &str,
        scopes: ScopeSet,
        expires_at: i64,
        source: TokenSource,
        now: i64,
    ) -> Result<IssuedToken, CoreError> {
        let name = validate_name(name).map_err(|e| match e {
            CoreError::Invalid { message, .. } => CoreError::invalid("name", message.replace("a name", "a token name")),
            other => other,
        })?;
        if expires_at <= now {
            return Err(CoreError::invalid("expires_at", "the expiry must be in the future"));
        }
        if expires_at - now > MAX_NAMED_TTL_SECONDS {
            return Err(CoreError::invalid("expires_at", "a token lives at most two years"));
        }
        let app = self.client_by_id(application).await?.ok_or(CoreError::NotFound("application"))?;
        if !app.enabled {
            return Err(CoreError::Refused(
                "the application is disabled; enable it before creating tokens for it".into(),
            ));
        }
        let outside = scopes.not_in(&app.scopes);
        if !outside.is_empty() {
            let list: Vec<&str> = outside.iter().map(|s| s.as_str()).collect();
            return Err(CoreError::invalid("scopes", format!("the application is not allowed: {}", list.join(", "))));
        }
        let token = AccessToken::generate();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tokens (application_id, token_hash, display_prefix, name, scopes, source, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(application.0)
        .bind(token.digest().as_bytes().to_vec())
        .bind(token.display_prefix())
        .bind(&name)
        .bind(scopes.to_string())
        .bind(source.as_str())
        .bind(now)
        .bind(expires_at)
        .fetch_one(&self.writer)
        .await?;
        Ok(IssuedToken { id: TokenId(id), token, scopes, created_at: now, expires_at, evicted: 0 })
    }

    async fn client_by_id(&self, id: ApplicationId) -> Result<Option<ClientRecord>, CoreError> {
        let client_id: Option<String> = sqlx::query_scalar("SELECT client_id FROM applications WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.writer)
            .await?;
        match client_id {
            Some(c) => self.client_by_client_id(&c).await,
            None => Ok(None),
        }
    }

    /// Checks a bearer token with one indexed lookup (by digest) joined to
    /// its application.
    pub async fn check_token(
        &self,
        token: &AccessToken,
        now: i64,
    ) -> Result<Result<TokenContext, RejectedToken>, CoreError> {
        let unknown = RejectedToken {
            rejection: TokenRejection::Unknown,
            token_id: None,
            application_id: None,
            application_name: None,
        };
        if !token.well_formed() {
            return Ok(Err(unknown));
        }
        let digest = token.digest();
        let row = sqlx::query(
            "SELECT t.id, t.application_id, t.token_hash, t.name, t.scopes, t.created_at, t.expires_at, t.revoked_at, \
             t.revoked_reason, a.client_id, a.name AS app_name, a.enabled, a.scopes AS app_scopes, \
             a.rate_per_second, a.rate_per_hour FROM tokens t JOIN applications a ON a.id = t.application_id WHERE t.token_hash = ?",
        )
        .bind(digest.as_bytes().to_vec())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(Err(unknown)) };
        let stored: Vec<u8> = r.try_get("token_hash")?;
        if !SecretDigest::from_slice(&stored).is_some_and(|h| h.matches(&digest)) {
            return Ok(Err(unknown));
        }
        let token_id = TokenId(r.try_get("id")?);
        let application_id = ApplicationId(r.try_get("application_id")?);
        let application_name: String = r.try_get("app_name")?;
        let revoked_at: Option<i64> = r.try_get("revoked_at")?;
        let expires_at: i64 = r.try_get("expires_at")?;
        let enabled: bool = r.try_get("enabled")?;
        let reject = |rejection| RejectedToken {
            rejection,
            token_id: Some(token_id),
            application_id: Some(application_id),
            application_name: Some(application_name.clone()),
        };
        match token_state(revoked_at, expires_at, now) {
            TokenState::Revoked => {
                let reason: Option<String> = r.try_get("revoked_reason")?;
                return Ok(Err(reject(TokenRejection::Revoked { reason: reason.unwrap_or_else(|| "revoked".into()) })));
            }
            TokenState::Expired => return Ok(Err(reject(TokenRejection::Expired { expired_at: expires_at }))),
            TokenState::Active => {}
        }
        if !enabled {
            return Ok(Err(reject(TokenRejection::ApplicationDisabled)));
        }
        Ok(Ok(TokenContext {
            token_id,
            application_id,
            client_id: r.try_get("client_id")?,
            application_name,
            // A scope the application has lost since the token was issued
            // is gone from the token too, from this request on.
            scopes: scope_set(&r.try_get::<String, _>("scopes")?)
                .intersection(&scope_set(&r.try_get::<String, _>("app_scopes")?)),
            issued_at: r.try_get("created_at")?,
            expires_at,
            token_name: r.try_get("name")?,
            rate_per_second: r.try_get("rate_per_second")?,
            rate_per_hour: r.try_get("rate_per_hour")?,
        }))
    }

    pub async fn list_tokens(&self, application: ApplicationId) -> Result<Vec<TokenView>, CoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE application_id = ? ORDER BY id DESC");
        Ok(sqlx::query_as::<_, TokenRow>(&sql)
            .bind(application.0)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub async fn token(&self, id: TokenId) -> Result<Option<TokenView>, CoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?");
        Ok(sqlx::query_as::<_, TokenRow>(&sql).bind(id.0).fetch_optional(&self.pool).await?.map(Into::into))
    }

    /// Revokes one token; `false` when it was already revoked or does not exist.
    pub async fn revoke_token(&self, id: TokenId, reason: &str, now: i64) -> Result<bool, CoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(reason)
                .bind(id.0)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes a batch of last-use records in one transaction. A later use
    /// never goes backwards: the stored time only moves forward.
    pub async fn record_token_uses(&self, uses: &[(TokenId, i64, Option<String>)]) -> Result<(), CoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for (id, at, ip) in uses {
            sqlx::query(
                "UPDATE tokens SET last_used_at = ?1, last_used_ip = COALESCE(?2, last_used_ip) \
                 WHERE id = ?3 AND (last_used_at IS NULL OR last_used_at <= ?1)",
            )
            .bind(at)
            .bind(ip)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ----------------------------------------------------------------- audit

    /// Records an audit event. Every text in it is bounded here, whoever
    /// wrote it, so no request can grow the log by more than a few KiB.
    pub async fn record_audit(&self, e: &AuditRecord) -> Result<AuditEventId, CoreError> {
        let bound = |s: &Option<String>| s.as_deref().map(|s| bounded_text(s, MAX_AUDIT_TEXT_LEN));
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_events (at, actor_kind, actor_id, actor_name, action, target_kind, target_id, \
             target_name, application_id, client_ip, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(e.at)
        .bind(e.actor_kind.as_str())
        .bind(e.actor_id)
        .bind(bound(&e.actor_name))
        .bind(e.action.as_str())
        .bind(e.target_kind)
        .bind(e.target_id)
        .bind(bound(&e.target_name))
        .bind(e.application_id.map(|a| a.0))
        .bind(bound(&e.client_ip))
        .bind(bounded_json(&e.details).to_string())
        .fetch_one(&self.writer)
        .await?;
        Ok(AuditEventId(id))
    }

    /// Sets the `count` of de-duplicated audit events, in one transaction.
    pub async fn update_audit_counts(&self, counts: &[(i64, i64)]) -> Result<(), CoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for (id, count) in counts {
            sqlx::query("UPDATE audit_events SET details = json_set(details, '$.count', ?) WHERE id = ?")
                .bind(count)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn recent_audit_events(&self, limit: i64) -> Result<Vec<AuditEventView>, CoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor_kind, actor_name, action, target_name, client_ip, details \
             FROM audit_events ORDER BY id DESC LIMIT ?",
        )
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(audit_view).collect::<Result<_, sqlx::Error>>().map_err(Into::into)
    }

    /// Audit events, newest first, filtered and paged.
    pub async fn list_audit_events(&self, q: &AuditQuery) -> Result<Page<AuditEventView>, CoreError> {
        let per_page = q.per_page.clamp(1, 500);
        let page = q.page.max(1);
        let filter =
            "WHERE (?1 IS NULL OR application_id = ?1) AND (?2 IS NULL OR action = ?2 OR substr(action, 1, length(?2) + 1) = ?2 || '.') \
                      AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR at < ?4)";
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM audit_events {filter}"))
            .bind(q.application_id.map(|a| a.0))
            .bind(&q.action)
            .bind(q.since)
            .bind(q.until)
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT id, at, actor_kind, actor_name, action, target_name, client_ip, details \
             FROM audit_events {filter} ORDER BY id DESC LIMIT ?5 OFFSET ?6"
        ))
        .bind(q.application_id.map(|a| a.0))
        .bind(&q.action)
        .bind(q.since)
        .bind(q.until)
        .bind(per_page)
        .bind((page - 1).saturating_mul(per_page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows.into_iter().map(audit_view).collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Page { items, total, page, per_page })
    }

    /// Deletes tokens that expired (or were revoked) more than
    /// `token_retention` seconds ago, and audit events older than
    /// `audit_retention` seconds. Returns (tokens, events) deleted.
    pub async fn prune(&self, now: i64, token_retention: i64, audit_retention: i64) -> Result<(u64, u64), CoreError> {
        let cutoff = now - token_retention;
        let tokens = sqlx::query("DELETE FROM tokens WHERE expires_at < ?1 OR revoked_at < ?1")
            .bind(cutoff)
            .execute(&self.writer)
            .await?
            .rows_affected();
        let events = sqlx::query("DELETE FROM audit_events WHERE at < ?")
            .bind(now - audit_retention)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok((tokens, events))
    }

    pub async fn dashboard_stats(&self, now: i64) -> Result<DashboardStats, CoreError> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM applications) AS apps, \
                    (SELECT COUNT(*) FROM applications WHERE enabled = 1) AS enabled_apps, \
                    (SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL AND expires_at > ?1) AS active, \
                    (SELECT COUNT(*) FROM audit_events WHERE at > ?1 - 86400) AS events",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(DashboardStats {
            applications: r.try_get("apps")?,
            enabled_applications: r.try_get("enabled_apps")?,
            active_tokens: r.try_get("active")?,
            audit_events_24h: r.try_get("events")?,
        })
    }
}

fn audit_view(r: sqlx::sqlite::SqliteRow) -> Result<AuditEventView, sqlx::Error> {
    let kind: String = r.try_get("actor_kind")?;
    let name: Option<String> = r.try_get("actor_name")?;
    let details: String = r.try_get("details")?;
    Ok(AuditEventView {
        id: AuditEventId(r.try_get("id")?),
        at: r.try_get("at")?,
        actor: name.unwrap_or(kind),
        action: r.try_get("action")?,
        target: r.try_get("target_name")?,
        client_ip: r.try_get("client_ip")?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
    })
}

/// Filters of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub application_id: Option<ApplicationId>,
    /// An exact action (`token.refused`) or a family (`token`).
    pub action: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub page: i64,
    pub per_page: i64,
}

/// One token request waiting for the issuing task.
struct IssueJob {
    client: ClientRecord,
    scopes: ScopeSet,
    now: i64,
    token: AccessToken,
    reply: tokio::sync::oneshot::Sender<Result<IssuedToken, IssueError>>,
}

/// Most requests committed in one transaction.
const MAX_ISSUE_BATCH: usize = 128;

/// The issuing task: takes every request waiting, runs them in one write
/// transaction on the writer connection, commits once, answers each.
async fn run_issuer(writer: SqlitePool, mut jobs: tokio::sync::mpsc::Receiver<IssueJob>) {
    let mut batch = Vec::with_capacity(MAX_ISSUE_BATCH);
    while jobs.recv_many(&mut batch, MAX_ISSUE_BATCH).await > 0 {
        match issue_batch(&writer, &batch).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = job.reply.send(outcome.map(|(id, evicted)| IssuedToken {
                        id,
                        token: job.token,
                        scopes: job.scopes,
                        created_at: job.now,
                        expires_at: grant::expiry(job.now, job.client.token_ttl_seconds),
                        evicted,
                    }));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = batch.len(), "token issuance batch failed");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(IssueError::Core(CoreError::Internal(
                        "token issuance failed; see the server log".into(),
                    ))));
                }
            }
        }
    }
}

type IssueOutcome = Result<(TokenId, u64), IssueError>;

async fn issue_batch(writer: &SqlitePool, batch: &[IssueJob]) -> Result<Vec<IssueOutcome>, sqlx::Error> {
    let mut tx = writer.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        let c = &job.client;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO tokens (application_id, token_hash, display_prefix, name, scopes, source, created_at, expires_at) \
             SELECT id, ?, ?, NULL, ?, 'token_endpoint', ?, ? FROM applications \
             WHERE id = ? AND enabled = 1 AND secret_hash = ? RETURNING id",
        )
        .bind(job.token.digest().as_bytes().to_vec())
        .bind(job.token.display_prefix())
        .bind(job.scopes.to_string())
        .bind(job.now)
        .bind(grant::expiry(job.now, c.token_ttl_seconds))
        .bind(c.id.0)
        .bind(c.secret_hash.as_bytes().to_vec())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            outcomes.push(Err(IssueError::ClientChanged));
            continue;
        };
        let evicted = sqlx::query(
            "UPDATE tokens SET revoked_at = ?1, revoked_reason = 'token_cap' WHERE id IN ( \
               SELECT id FROM tokens WHERE application_id = ?2 AND source = 'token_endpoint' \
               AND revoked_at IS NULL AND expires_at > ?1 ORDER BY id DESC LIMIT -1 OFFSET ?3)",
        )
        .bind(job.now)
        .bind(c.id.0)
        .bind(grant::tokens_kept_after_issue(c.max_tokens))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        outcomes.push(Ok((TokenId(id), evicted)));
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Why issuing a token failed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The secret was regenerated or the application disabled between the
    /// client's authentication and the insert.
    #[error("the client's credentials changed while the token was being issued")]
    ClientChanged,
    #[error(transparent)]
    Core(#[from] CoreError),
}

#[cfg(test)]
mod tests;
