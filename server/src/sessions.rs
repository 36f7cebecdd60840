//! Console sessions, stored in the same database as everything else (so
//! they survive a restart and, on PostgreSQL, work on every instance).

use async_trait::async_trait;
use keygate::store::Store;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// The session store of whichever backend the database is.
#[derive(Debug, Clone)]
pub enum SessionBackend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl SessionBackend {
    /// The session store for `store`'s database, its table created if needed.
    pub async fn for_store(store: &Store) -> Result<Self, keygate::CoreError> {
        let backend = match (store.sqlite_pool(), store.postgres_pool()) {
            (Some(pool), _) => SessionBackend::Sqlite(SqliteStore::new(pool.clone())),
            (_, Some(pool)) => SessionBackend::Postgres(PostgresStore::new(pool.clone())),
            _ => return Err(keygate::CoreError::Internal("no database for sessions".into())),
        };
        let migrated = match &backend {
            SessionBackend::Sqlite(s) => s.migrate().await,
            SessionBackend::Postgres(s) => s.migrate().await,
        };
        migrated.map_err(|e| keygate::CoreError::Internal(format!("session table migration failed: {e}")))?;
        Ok(backend)
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s) => s.create(record).await,
            SessionBackend::Postgres(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s) => s.save(record).await,
            SessionBackend::Postgres(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            SessionBackend::Sqlite(s) => s.load(id).await,
            SessionBackend::Postgres(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s) => s.delete(id).await,
            SessionBackend::Postgres(s) => s.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for SessionBackend {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s) => s.delete_expired().await,
            SessionBackend::Postgres(s) => s.delete_expired().await,
        }
    }
}
