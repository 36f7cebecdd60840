//! Storage through sqlx: the only module that writes SQL, split by entity
//! (`admins`, `scopes`, `applications`, `clients`, `tokens`, `issuer`,
//! `audit`, `rates`, `throttles`, `console`). Rules live in the core's use cases (`crate::usecase`), which
//! read through [`Store`] and change things through one write
//! transaction, [`Tx`], that also carries the change's audit event.
//!
//! Two backends behind the same interface, picked by the URL's scheme:
//! SQLite (`sqlite:`, embedded, the default) and PostgreSQL (`postgres://`,
//! for several instances on one database). The SQL is written once where
//! both dialects agree (`$n` parameters, `RETURNING`, `lower()`), and the
//! [`on_pool!`]/[`on_tx!`] macros run it on whichever driver is open, so
//! each query is compiled and type-checked for both; the few statements
//! where the dialects differ are written per backend side by side.
//!
//! SQLite durability: WAL with `synchronous = NORMAL` makes every committed
//! transaction survive a crash of the process (SIGKILL); only a power loss
//! can drop the last commits. Write transactions begin `IMMEDIATE`, so
//! SQLite takes the write lock first and the busy timeout applies, rather
//! than failing a read-then-write upgrade when another process (the CLI)
//! writes at the same time. PostgreSQL commits synchronously by default.

mod activity;
mod admins;
mod alerts;
mod applications;
mod audit;
mod clients;
mod console;
mod issuer;
mod rates;
mod resource_servers;
mod scopes;
mod secrets;
mod signing_keys;
#[doc(hidden)]
pub mod testing;
mod throttles;
mod tokens;
mod webhooks;

pub use activity::{HOURS_KEPT_SECONDS, MINUTES_KEPT_SECONDS};
pub use alerts::DueAlerts;
pub use applications::{ApplicationQuery, ApplicationSort, ApplicationStatus};
pub use audit::{ActorKind, AuditQuery, AuditRecord, REFUSALS_FILTER};
pub use clients::CLIENT_CACHE_TTL;
pub use console::{StoredSession, FLASH_TTL_SECONDS, SETUP_CODE_TTL_SECONDS};
pub use issuer::{IssueError, IssuedToken, TokenToIssue};
pub use secrets::{CredentialUse, UsedCredential};
pub use signing_keys::StoredSigningKey;
pub use tokens::{RejectedToken, TokenContext, SWEEP_LAG_SECONDS};
pub use webhooks::{ClaimedDelivery, CLAIM_SECONDS};

use crate::error::CoreError;
use crate::model::*;
use crate::scope::{ScopeName, ScopeSet};
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::time::Duration;

pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    clients: clients::ClientCache,
    /// Woken when this process queues a webhook delivery.
    deliveries_queued: std::sync::Arc<tokio::sync::Notify>,
    /// Every counted token that expired before this was swept by this
    /// process (see [`Store::sweep_expired_tokens`]): the next sweep
    /// starts here instead of at the oldest expired token.
    swept_before: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

#[derive(Clone, Debug)]
enum Db {
    Sqlite {
        /// Readers: WAL lets them run beside the writer.
        pool: SqlitePool,
        /// The one connection that writes. Queuing writers here (an async
        /// wait) instead of letting several connections contend for
        /// SQLite's write lock (a sleeping busy handler) keeps issuance
        /// fast and its tail latency low.
        writer: SqlitePool,
        /// Token requests for the group-committing issuer task.
        issuer: tokio::sync::mpsc::Sender<issuer::IssueJob>,
    },
    Postgres {
        pool: PgPool,
        /// Token requests for this instance's group-committing issuer.
        issuer: tokio::sync::mpsc::Sender<issuer::IssueJob>,
        /// Rate counting, batched per application (`rates`), on its own
        /// connections that commit without waiting for the disk
        /// (`synchronous_commit = off`); a crash may forget the current
        /// window's counts, nothing else.
        counters: PgPool,
        counter: tokio::sync::mpsc::Sender<rates::CountJob>,
    },
}

/// Which database a store (or a URL) speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, by its scheme.
    pub fn of_url(url: &str) -> Result<Backend, CoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(CoreError::Unavailable(format!(
                "unsupported database URL scheme \"{}\": use sqlite:PATH or postgres://user:password@host:port/db",
                url.split(':').next().unwrap_or("").chars().take(20).collect::<String>()
            )))
        }
    }
}

/// Runs `$body` with `$e` bound to the pool that reads, on either backend.
macro_rules! on_pool {
    ($store:expr, |$e:ident| $body:expr) => {
        match &$store.db {
            crate::store::Db::Sqlite { pool, .. } => {
                let $e = pool;
                $body
            }
            crate::store::Db::Postgres { pool, .. } => {
                let $e = pool;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// Runs `$body` with `$e` bound to the pool that writes outside a
/// transaction (SQLite's single writer), on either backend.
macro_rules! on_writer {
    ($store:expr, |$e:ident| $body:expr) => {
        match &$store.db {
            crate::store::Db::Sqlite { writer, .. } => {
                let $e = writer;
                $body
            }
            crate::store::Db::Postgres { pool, .. } => {
                let $e = pool;
                $body
            }
        }
    };
}
pub(crate) use on_writer;

/// An application `a`'s live tokens at `$1` (now), as SQL: the count the
/// database keeps, less the tokens it still counts that have expired since
/// the last sweep (a short range of `tokens_counted`; see the live-count
/// migration). A macro so that constant queries can `concat!` it.
macro_rules! live_tokens_of_a {
    () => {
        "(a.live_tokens - (SELECT COUNT(*) FROM tokens t WHERE t.application_id = a.id \
         AND t.revoked_at IS NULL AND NOT t.expiry_swept AND t.expires_at <= $1))"
    };
}
pub(crate) use live_tokens_of_a;

/// When application `a` was last used, as SQL: the latest use of any of
/// its tokens (presented to an API, introspected, forward-auth), of any of
/// its secrets (a token requested with it), or of a secret since deleted
/// (`removed_credentials_last_used_at`). Secrets count: an application
/// whose JWTs are checked offline by its APIs only ever shows secret use.
/// The list, its sort and filters, and the overview's dormant lines all
/// read this. Two index seeks; `MAX` over the three rows skips NULLs.
macro_rules! last_used_of_a {
    () => {
        "(SELECT MAX(m.at) FROM (\
         SELECT (SELECT MAX(t.last_used_at) FROM tokens t WHERE t.application_id = a.id) AS at \
         UNION ALL SELECT (SELECT MAX(s.last_used_at) FROM client_secrets s WHERE s.application_id = a.id) \
         UNION ALL SELECT a.removed_credentials_last_used_at) m)"
    };
}
pub(crate) use last_used_of_a;

/// The overview's counts at `$1` (now). Its live tokens are those of
/// `live_tokens_of_a` over every application at once: the kept counts'
/// sum less every counted token expired since the last sweep, one short
/// range of `tokens_counted_by_expiry` (one range per application took
/// 11 ms at 10,000 applications).
pub(super) const DASHBOARD_STATS: &str = "SELECT (SELECT COUNT(*) FROM applications) AS apps, \
     (SELECT COUNT(*) FROM applications WHERE enabled = TRUE) AS enabled_apps, \
     CAST((SELECT COALESCE(SUM(live_tokens), 0) FROM applications) \
      - (SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL AND NOT expiry_swept AND expires_at <= $1) AS BIGINT) \
      AS active, \
     (SELECT COUNT(*) FROM audit_events WHERE at > $1 - 86400) AS events";

/// Runs `$body` with `$c` bound to the transaction's connection.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match &mut $tx.inner {
            crate::store::TxInner::Sqlite(t) => {
                let $c: &mut sqlx::SqliteConnection = &mut *t;
                $body
            }
            crate::store::TxInner::Postgres(t) => {
                let $c: &mut sqlx::PgConnection = &mut *t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

/// A boolean from a JSON document the database built: `true`/`false` on
/// PostgreSQL, `1`/`0` on SQLite (which stores booleans as integers).
pub(crate) fn bool_or_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Integer(i64),
    }
    Ok(match <Flag as serde::Deserialize>::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Integer(i) => i != 0,
    })
}

/// One page of a list.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// One write transaction: a change and its audit event commit together or
/// not at all. Dropping it without [`Tx::commit`] rolls everything back.
pub struct Tx {
    inner: TxInner,
    store: Store,
    /// A change to applications: clear the client cache once committed.
    clients_changed: bool,
    /// Webhook deliveries queued: wake the sender once committed.
    deliveries_queued: u64,
}

enum TxInner {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub async fn commit(mut self) -> Result<(), CoreError> {
        if self.clients_changed {
            // Other instances drop their cached client records when this
            // commits (PostgreSQL delivers notifications at commit).
            if let TxInner::Postgres(t) = &mut self.inner {
                sqlx::query("SELECT pg_notify($1, '')").bind(clients::CHANGED_CHANNEL).execute(&mut **t).await?;
            }
        }
        match self.inner {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
        }
        if self.clients_changed {
            self.store.clients.forget_all();
        }
        if self.deliveries_queued > 0 {
            self.store.deliveries_queued.notify_one();
        }
        Ok(())
    }

    /// Locks an application's row until this transaction ends (PostgreSQL),
    /// so a rule checked on it holds for the change: a disable, a new
    /// secret or a settings change of the same application waits. On
    /// SQLite every write transaction is serialised already.
    pub async fn lock_application(&mut self, id: crate::model::ApplicationId) -> Result<(), CoreError> {
        if let TxInner::Postgres(t) = &mut self.inner {
            sqlx::query("SELECT id FROM applications WHERE id = $1 FOR UPDATE").bind(id.0).execute(&mut **t).await?;
        }
        Ok(())
    }

    /// Serialises transactions that take the same `key`: on PostgreSQL a
    /// transaction-scoped advisory lock (so several instances agree); on
    /// SQLite every write transaction is serialised already.
    pub async fn serialize(&mut self, key: i64) -> Result<(), CoreError> {
        if let TxInner::Postgres(t) = &mut self.inner {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(key).execute(&mut **t).await?;
        }
        Ok(())
    }

    /// [`Tx::serialize`] on a lock named by text (a throttle key, say):
    /// the first 8 bytes of its SHA-256 as the advisory lock's key.
    pub async fn serialize_on(&mut self, name: &str) -> Result<(), CoreError> {
        let digest = crate::secret::SecretDigest::of(name);
        let mut key = [0u8; 8];
        key.copy_from_slice(&digest.as_bytes()[..8]);
        self.serialize(i64::from_be_bytes(key)).await
    }
}

/// Keys of [`Tx::serialize`].
pub const LOCK_ADMINISTRATORS: i64 = 0x6b67_0001;
pub const LOCK_SCOPES: i64 = 0x6b67_0002;
pub const LOCK_SIGNING_KEYS: i64 = 0x6b67_0003;

pub(crate) fn split_scopes(s: &str) -> Vec<String> {
    s.split(' ').filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

pub(crate) fn scope_set(s: &str) -> ScopeSet {
    // Stored scopes were validated on the way in; a name that no longer
    // parses is dropped rather than granting anything unexpected.
    ScopeSet::from_names(s.split(' ').filter(|p| ScopeName::parse(p).is_ok())).unwrap_or_default()
}

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

/// Writes a consistent copy of the SQLite database at `url` to `path`
/// with `VACUUM INTO` (one read transaction: every commit before it, none
/// after), on one read-only connection of its own: safe while a server
/// writes, and it never checkpoints or locks the writers out. Refuses an
/// existing `path` and a database that does not exist; the copy is
/// readable by its owner only. PostgreSQL databases are backed up with
/// PostgreSQL's own tools. Returns the copy's size in bytes.
pub async fn backup_sqlite(url: &str, path: &std::path::Path) -> Result<u64, CoreError> {
    use sqlx::Connection;
    if Backend::of_url(url)? != Backend::Sqlite {
        return Err(CoreError::invalid(
            "backup",
            "keygate backup copies SQLite databases; back PostgreSQL up with pg_dump (see the README)",
        ));
    }
    let options = SqliteConnectOptions::from_str(url)?.read_only(true).busy_timeout(Duration::from_secs(10));
    let source = options.get_filename().to_path_buf();
    if !source.exists() {
        return Err(CoreError::invalid("backup", format!("there is no database at {}", source.display())));
    }
    if path.symlink_metadata().is_ok() {
        return Err(CoreError::Conflict(format!("{} exists; a backup never overwrites a file", path.display())));
    }
    // The copy is written beside PATH under a name of its own, created
    // empty first (never through a symlink, readable by its owner only:
    // VACUUM INTO keeps an empty file's mode), then linked to PATH, which
    // fails if PATH appeared meanwhile (even as a dangling symlink). An
    // interrupted copy leaves only the temporary file, never a PATH that
    // blocks the next attempt. The name is absolute, so SQLite never reads
    // it as a `file:` URI.
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.canonicalize(),
        None => std::env::current_dir(),
    }
    .map_err(|e| CoreError::invalid("backup", format!("the directory of {} is unusable: {e}", path.display())))?;
    let file_name = path.file_name().ok_or_else(|| CoreError::invalid("backup", "the path names no file"))?;
    let final_path = dir.join(file_name);
    if final_path.symlink_metadata().is_ok() {
        return Err(CoreError::Conflict(format!("{} exists; a backup never overwrites a file", path.display())));
    }
    let partial = dir.join(format!(".{}.partial-{}", file_name.to_string_lossy(), std::process::id()));
    let mut create = std::fs::OpenOptions::new();
    create.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
    create
        .open(&partial)
        .map_err(|e| CoreError::invalid("backup", format!("cannot create {}: {e}", partial.display())))?;
    let copied = match partial.to_str() {
        None => Err(CoreError::invalid("backup", "the path is not valid UTF-8")),
        Some(target) => {
            async {
                let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
                let done = sqlx::query("VACUUM INTO $1").bind(target).execute(&mut conn).await;
                let _ = conn.close().await;
                done.map(|_| ()).map_err(CoreError::from)
            }
            .await
        }
    };
    let linked = copied.and_then(|()| {
        std::fs::hard_link(&partial, &final_path).map_err(|e| {
            CoreError::Conflict(format!(
                "{} could not be written ({e}); a backup never overwrites a file",
                path.display()
            ))
        })
    });
    let _ = std::fs::remove_file(&partial);
    linked?;
    std::fs::metadata(&final_path)
        .map(|m| m.len())
        .map_err(|e| CoreError::Internal(format!("backup written but unreadable: {e}")))
}

/// Database connections, idle and in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    pub idle: u64,
    pub in_use: u64,
}

/// The counts of the overview, as one row.
#[derive(sqlx::FromRow)]
struct StatsRow {
    apps: i64,
    enabled_apps: i64,
    active: i64,
    events: i64,
}

impl Store {
    /// Resolves when this process has queued a webhook delivery since the
    /// last wake (the sender also polls, for other instances' deliveries).
    pub async fn delivery_queued(&self) {
        self.deliveries_queued.notified().await;
    }

    /// Wakes the sender (a retry made due now).
    pub fn wake_sender(&self) {
        self.deliveries_queued.notify_one();
    }

    /// Opens the database at `url` (`sqlite:` creates the file if needed).
    pub async fn open(url: &str) -> Result<Store, CoreError> {
        let db = match Backend::of_url(url)? {
            Backend::Sqlite => open_sqlite(url).await?,
            Backend::Postgres => open_postgres(url).await?,
        };
        Ok(Store {
            db,
            clients: Default::default(),
            deliveries_queued: Default::default(),
            swept_before: Default::default(),
        })
    }

    /// For a server sharing its database with others (PostgreSQL): drops
    /// cached client records whenever any instance changes an application.
    pub fn watch_client_changes(&self) {
        if let Db::Postgres { pool, .. } = &self.db {
            clients::listen_for_changes(pool.clone(), self.clients.clone());
        }
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Applies the migrations of this backend. On PostgreSQL the migrator
    /// holds an advisory lock, so instances starting together migrate once.
    pub async fn migrate(&self) -> Result<(), CoreError> {
        let done = match &self.db {
            Db::Sqlite { writer, .. } => SQLITE_MIGRATOR.run(writer).await,
            Db::Postgres { pool, .. } => POSTGRES_MIGRATOR.run(pool).await,
        };
        done.map_err(|e| CoreError::Internal(format!("migration failed: {e}")))?;
        self.fill_name_keys().await
    }

    /// The SQLite reader pool, for the session store and tests.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.db {
            Db::Sqlite { pool, .. } => Some(pool),
            Db::Postgres { .. } => None,
        }
    }

    /// The PostgreSQL pool, for the session store and tests.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.db {
            Db::Postgres { pool, .. } => Some(pool),
            Db::Sqlite { .. } => None,
        }
    }

    /// Starts a write transaction.
    pub async fn write(&self) -> Result<Tx, CoreError> {
        let inner = match &self.db {
            Db::Sqlite { writer, .. } => TxInner::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres { pool, .. } => TxInner::Postgres(pool.begin().await?),
        };
        Ok(Tx { inner, store: self.clone(), clients_changed: false, deliveries_queued: 0 })
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { pool, writer, .. } => {
                // A last full checkpoint so the database file alone is current.
                let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(writer).await;
                writer.close().await;
                pool.close().await;
            }
            Db::Postgres { pool, counters, .. } => {
                counters.close().await;
                pool.close().await;
            }
        }
    }

    /// Connections of the database pools (SQLite: the readers and the
    /// writer; PostgreSQL: the main pool and the rate counters').
    pub fn pool_use(&self) -> PoolUse {
        let (size, idle) = match &self.db {
            Db::Sqlite { pool, writer, .. } => {
                (pool.size() + writer.size(), pool.num_idle() as u32 + writer.num_idle() as u32)
            }
            Db::Postgres { pool, counters, .. } => {
                (pool.size() + counters.size(), pool.num_idle() as u32 + counters.num_idle() as u32)
            }
        };
        PoolUse { idle: idle as u64, in_use: size.saturating_sub(idle) as u64 }
    }

    pub async fn healthy(&self) -> bool {
        on_pool!(self, |p| sqlx::query_scalar::<_, i64>("SELECT CAST(1 AS BIGINT)").fetch_one(p).await.is_ok())
    }

    /// Deletes tokens that expired (or were revoked) more than
    /// `token_retention` seconds ago, and audit events older than
    /// `audit_retention` seconds. Returns (tokens, events) deleted.
    pub async fn prune(&self, now: i64, token_retention: i64, audit_retention: i64) -> Result<(u64, u64), CoreError> {
        let cutoff = now - token_retention;
        // Only tokens the live count no longer counts (revoked, or expired
        // and swept): a delete of a counted one would update its
        // application's row without holding it first (see the live-count
        // migration). Sweeping first takes expired ones off the count.
        self.sweep_expired_tokens(now).await?;
        const PRUNED: &str = "((expires_at < $1 AND expiry_swept) OR revoked_at < $1)";
        // Their latest uses stay on their applications (see
        // `last_used_of_a`): a named token used until it expired must not
        // leave its application "never used" a week later. Application
        // rows first, then tokens: the order every writer keeps. Neither
        // statement needs the other's transaction: a pruned token can no
        // longer be used, and keeping the maximum is idempotent.
        on_writer!(self, |w| sqlx::query(&format!(
            "UPDATE applications SET removed_credentials_last_used_at = d.at \
             FROM (SELECT application_id, MAX(last_used_at) AS at FROM tokens \
                   WHERE {PRUNED} AND last_used_at IS NOT NULL GROUP BY application_id) d \
             WHERE applications.id = d.application_id AND (applications.removed_credentials_last_used_at IS NULL \
                   OR applications.removed_credentials_last_used_at < d.at)"
        ))
        .bind(cutoff)
        .execute(w)
        .await?
        .rows_affected());
        let tokens = on_writer!(self, |w| sqlx::query(&format!("DELETE FROM tokens WHERE {PRUNED}"))
            .bind(cutoff)
            .execute(w)
            .await?
            .rows_affected());
        let events = on_writer!(self, |w| sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(now - audit_retention)
            .execute(w)
            .await?
            .rows_affected());
        // Short-lived state goes too; it is not counted in the report.
        self.prune_throttles(now, crate::throttle::WINDOW_SECONDS).await?;
        self.prune_console_state(now, now - FLASH_TTL_SECONDS).await?;
        Ok((tokens, events))
    }

    /// Runs `job` unless another instance on the same database is running
    /// it right now (a session advisory lock on PostgreSQL): periodic jobs
    /// run once per cluster, not once per instance. `Ok(None)` when skipped.
    pub async fn exclusively<T, F>(&self, key: i64, job: F) -> Result<Option<T>, CoreError>
    where
        F: std::future::Future<Output = Result<T, CoreError>>,
    {
        let Db::Postgres { pool, .. } = &self.db else { return job.await.map(Some) };
        let mut conn = pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut *conn).await?;
        if !got {
            return Ok(None);
        }
        let result = job.await;
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(key).execute(&mut *conn).await?;
        result.map(Some)
    }

    /// The overview's counts.
    pub async fn dashboard_stats(&self, now: i64) -> Result<DashboardStats, CoreError> {
        let r: StatsRow = on_pool!(self, |p| sqlx::query_as(DASHBOARD_STATS).bind(now).fetch_one(p).await?);
        Ok(DashboardStats {
            applications: r.apps,
            enabled_applications: r.enabled_apps,
            active_tokens: r.active,
            audit_events_24h: r.events,
        })
    }
}

/// Key of the pruning job's lock (see [`Store::exclusively`]).
pub const JOB_PRUNE: i64 = 0x6b67_1001;
/// Key of the expiry sweep's lock.
pub const JOB_SWEEP: i64 = 0x6b67_1002;

async fn open_sqlite(url: &str) -> Result<Db, CoreError> {
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
    // No ping before each use: a SQLite connection is a local file handle
    // that cannot go stale, and the ping was a round trip to the
    // connection's worker thread on every query.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .test_before_acquire(false)
        .connect_with(options.clone().pragma("wal_autocheckpoint", "0"))
        .await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(15))
        .test_before_acquire(false)
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
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&checkpoint_pool).await {
                Ok(_) => {}
                // Closed while this waited (a CLI command ending): done, not a failure.
                Err(sqlx::Error::PoolClosed) => break,
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; will retry"),
            }
        }
    });
    let issuer = issuer::start(writer.clone());
    Ok(Db::Sqlite { pool, writer, issuer })
}

/// Where a PostgreSQL URL points, for messages: never its password.
pub fn postgres_target(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(o) => format!("{}:{}/{}", o.get_host(), o.get_port(), o.get_database().unwrap_or("")),
        Err(_) => "an unparsable postgres:// URL".into(),
    }
}

async fn open_postgres(url: &str) -> Result<Db, CoreError> {
    let target = postgres_target(url);
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| CoreError::Internal("the postgres:// database URL does not parse".into()))?
        .application_name("keygate");
    // One connection first: its error says why (refused, no such role or
    // database) where the pool would only report a timeout.
    let probe =
        tokio::time::timeout(Duration::from_secs(10), <sqlx::PgConnection as sqlx::Connection>::connect_with(&options))
            .await
            .map_err(|_| CoreError::Unavailable(format!("cannot reach PostgreSQL at {target}: timed out")))?
            .map_err(|e| {
                CoreError::Unavailable(format!("cannot reach PostgreSQL at {target}: {}", connect_reason(&e)))
            })?;
    let _ = sqlx::Connection::close(probe).await;
    let unreachable =
        |e: sqlx::Error| CoreError::Unavailable(format!("cannot reach PostgreSQL at {target}: {}", connect_reason(&e)));
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.clone())
        .await
        .map_err(unreachable)?;
    let counters = PgPoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.options([("synchronous_commit", "off"), ("statement_timeout", "5000")]))
        .await
        .map_err(unreachable)?;
    let issuer = issuer::start_postgres(pool.clone());
    let counter = rates::start_counter(counters.clone());
    Ok(Db::Postgres { pool, issuer, counters, counter })
}

/// Why a connection failed, in words that never repeat the URL.
fn connect_reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(_) => "TLS failed".into(),
        sqlx::Error::PoolTimedOut => "timed out".into(),
        sqlx::Error::Configuration(_) => "the URL's options are not valid".into(),
        other => other.to_string().chars().take(200).collect(),
    }
}

#[cfg(test)]
mod activity_tests;
#[cfg(test)]
mod tests;
