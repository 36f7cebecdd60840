//! Console sessions, kept by the core's store like everything else: in the
//! same database (so they survive a restart and, on PostgreSQL, work on
//! every instance), written through its writer, and found by the SHA-256
//! digest of their ID, so a copy of the database holds no session that
//! could be replayed.

use app::server::{SESSION_ADMIN_KEY, SESSION_BINDING_KEY, SESSION_VERIFIED_ADMIN_KEY};
use async_trait::async_trait;
use keygate::secret::SecretDigest;
use keygate::store::Store;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

#[derive(Debug, Clone)]
pub struct ConsoleSessions {
    store: Store,
}

impl ConsoleSessions {
    pub fn new(store: Store) -> Self {
        ConsoleSessions { store }
    }
}

fn digest(id: &Id) -> SecretDigest {
    SecretDigest::of(&id.to_string())
}

fn backend(e: keygate::CoreError) -> session_store::Error {
    tracing::error!(error = %e, "session store error");
    session_store::Error::Backend("the session store failed".into())
}

/// The session's data, and the administrator signed in with it (so a
/// password reset or removal can end their sessions). The verified
/// administrator `load` added is not stored: it is read anew each time.
fn encode(record: &Record) -> session_store::Result<(Option<i64>, String)> {
    let admin_id = record.data.get(SESSION_ADMIN_KEY).and_then(|v| v.as_i64());
    let kept: std::collections::HashMap<&String, &serde_json::Value> =
        record.data.iter().filter(|(k, _)| k.as_str() != SESSION_VERIFIED_ADMIN_KEY).collect();
    let data = serde_json::to_string(&kept).map_err(|e| session_store::Error::Encode(e.to_string()))?;
    Ok((admin_id, data))
}

#[async_trait]
impl SessionStore for ConsoleSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let (admin_id, data) = encode(record)?;
        // A new ID on the (astronomically unlikely) collision.
        while !self
            .store
            .insert_session(&digest(&record.id), admin_id, &data, record.expiry_date.unix_timestamp())
            .await
            .map_err(backend)?
        {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let (admin_id, data) = encode(record)?;
        self.store
            .save_session(&digest(&record.id), admin_id, &data, record.expiry_date.unix_timestamp())
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let Some(stored) = self.store.load_session(&digest(id), now).await.map_err(backend)? else {
            return Ok(None);
        };
        let mut data: std::collections::HashMap<String, serde_json::Value> =
            serde_json::from_str(&stored.data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        data.remove(SESSION_VERIFIED_ADMIN_KEY);
        // The administrator this session names, if their binding still
        // holds, for `app::server::current_admin`.
        let admin_id = data.get(SESSION_ADMIN_KEY).and_then(|v| v.as_i64());
        let binding = data.get(SESSION_BINDING_KEY).and_then(|v| v.as_str()).unwrap_or("");
        if let Some(admin) = admin_id.and_then(|id| stored.admin_bound_to(keygate::AdminId(id), binding)) {
            let admin = serde_json::to_value(admin).map_err(|e| session_store::Error::Encode(e.to_string()))?;
            data.insert(SESSION_VERIFIED_ADMIN_KEY.to_owned(), admin);
        }
        let expiry_date = time::OffsetDateTime::from_unix_timestamp(stored.expires_at)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record { id: *id, data, expiry_date }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store.delete_session(&digest(id)).await.map_err(backend)
    }
}
