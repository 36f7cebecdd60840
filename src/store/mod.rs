//! Storage through sqlx: the only module that writes SQL, split by entity
//! (`admins`, `scopes`, `applications`, `clients`, `tokens`, `issuer`,
//! `audit`). Rules live in the core's use cases (`crate::usecase`), which
//! read through [`Store`] and change things through one write
//! transaction, [`Tx`], that also carries the change's audit event.
//!
//! SQLite durability: WAL with `synchronous = NORMAL` makes every committed
//! transaction survive a crash of the process (SIGKILL); only a power loss
//! can drop the last commits. Write transactions begin `IMMEDIATE`, so
//! SQLite takes the write lock first and the busy timeout applies, rather
//! than failing a read-then-write upgrade when another process (the CLI)
//! writes at the same time.

mod admins;
mod applications;
mod audit;
mod clients;
mod issuer;
mod scopes;
mod tokens;

pub use applications::{ApplicationQuery, ApplicationSort};
pub use audit::{ActorKind, AuditQuery, AuditRecord};
pub use clients::CLIENT_CACHE_TTL;
pub use issuer::{IssueError, IssuedToken};
pub use tokens::{RejectedToken, TokenContext};

use crate::error::CoreError;
use crate::model::*;
use crate::scope::{ScopeName, ScopeSet};
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
    issuer: tokio::sync::mpsc::Sender<issuer::IssueJob>,
    clients: clients::ClientCache,
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
    inner: sqlx::Transaction<'static, sqlx::Sqlite>,
    store: Store,
    /// A change to applications: clear the client cache once committed.
    clients_changed: bool,
}

impl Tx {
    pub async fn commit(self) -> Result<(), CoreError> {
        self.inner.commit().await?;
        if self.clients_changed {
            self.store.clients.forget_all();
        }
        Ok(())
    }

    fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.inner
    }
}

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
        let issuer = issuer::start(writer.clone());
        Ok(Store { pool, writer, issuer, clients: Default::default() })
    }

    pub async fn migrate(&self) -> Result<(), CoreError> {
        MIGRATOR.run(&self.writer).await.map_err(|e| CoreError::Internal(format!("migration failed: {e}")))
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Starts a write transaction on the writer connection.
    pub async fn write(&self) -> Result<Tx, CoreError> {
        let inner = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Tx { inner, store: self.clone(), clients_changed: false })
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

    /// Deletes tokens that expired (or were revoked) more than
    /// `token_retention` seconds ago, and audit events older than
    /// `audit_retention` seconds. Returns (tokens, events) deleted.
    pub async fn prune(&self, now: i64, token_retention: i64, audit_retention: i64) -> Result<(u64, u64), CoreError> {
        let cutoff = now - token_retention;
        let tokens = sqlx::query("DELETE FROM tokens WHERE expires_at < $1 OR revoked_at < $1")
            .bind(cutoff)
            .execute(&self.writer)
            .await?
            .rows_affected();
        let events = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(now - audit_retention)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok((tokens, events))
    }

    /// The overview's counts.
    pub async fn dashboard_stats(&self, now: i64) -> Result<DashboardStats, CoreError> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM applications) AS apps, \
                    (SELECT COUNT(*) FROM applications WHERE enabled = 1) AS enabled_apps, \
                    (SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL AND expires_at > $1) AS active, \
                    (SELECT COUNT(*) FROM audit_events WHERE at > $1 - 86400) AS events",
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

#[cfg(test)]
mod tests;
