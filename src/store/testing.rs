//! For test suites that run against every backend: a fresh database.

use crate::error::CoreError;
use crate::model::*;
use crate::scope::ScopeSet;
use crate::secret::ClientSecret;
use crate::store::{IssuedToken, Store};
use crate::usecase::{self, applications::ApplicationChange, Caller};
use sqlx::Connection;

/// The environment variable naming a throwaway PostgreSQL server
/// (`postgres://user@host:port`, see `scripts/pg-test-server.sh`). When it
/// is set, test suites run on PostgreSQL, a database each; else on SQLite.
pub const POSTGRES_URL_VAR: &str = "KEYGATE_TEST_POSTGRES_URL";

/// The base URL of the test PostgreSQL server, when tests run on it.
pub fn postgres_base_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR).ok().filter(|u| !u.trim().is_empty()).map(|u| u.trim_end_matches('/').to_owned())
}

/// A URL of an empty database: a new PostgreSQL database when
/// [`POSTGRES_URL_VAR`] is set, else a SQLite file in `dir`.
pub async fn fresh_database_url(dir: &std::path::Path) -> Result<String, CoreError> {
    let Some(base) = postgres_base_url() else {
        return Ok(format!("sqlite:{}", dir.join("keygate.db").display()));
    };
    use rand::distributions::{Alphanumeric, DistString};
    let name = format!("kg_{}", Alphanumeric.sample_string(&mut rand::rngs::OsRng, 16).to_lowercase());
    let mut admin = sqlx::PgConnection::connect(&format!("{base}/postgres")).await?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
    admin.close().await?;
    Ok(format!("{base}/{name}"))
}

/// The use cases as the CLI calls them, in the short shapes the storage
/// and HTTP test suites read; plus an administrator inserted with a ready
/// hash (test setup, no audit event).
#[allow(async_fn_in_trait)]
pub trait TestOps {
    async fn create_application(
        &self,
        s: ApplicationSettings,
        now: i64,
    ) -> Result<(ApplicationView, ClientSecret), CoreError>;
    async fn update_application(
        &self,
        id: ApplicationId,
        s: ApplicationSettings,
        enabled: bool,
        now: i64,
    ) -> Result<ApplicationView, CoreError>;
    async fn regenerate_secret(&self, id: ApplicationId, now: i64) -> Result<(ClientSecret, u64), CoreError>;
    async fn mint_named_token(
        &self,
        app: ApplicationId,
        name: &str,
        scopes: ScopeSet,
        expires_at: i64,
        now: i64,
    ) -> Result<IssuedToken, CoreError>;
    async fn revoke_token(&self, id: TokenId, now: i64) -> Result<bool, CoreError>;
    async fn create_admin(&self, username: &str, hash: &str, role: Role, now: i64) -> Result<AdminView, CoreError>;
}

impl TestOps for Store {
    async fn create_application(
        &self,
        s: ApplicationSettings,
        now: i64,
    ) -> Result<(ApplicationView, ClientSecret), CoreError> {
        usecase::applications::create_application(self, &Caller::cli(now), s).await
    }
    async fn update_application(
        &self,
        id: ApplicationId,
        s: ApplicationSettings,
        enabled: bool,
        now: i64,
    ) -> Result<ApplicationView, CoreError> {
        let mut change = ApplicationChange::settings(s);
        change.enabled = Some(enabled);
        usecase::applications::update_application(self, &Caller::cli(now), id, change).await
    }
    async fn regenerate_secret(&self, id: ApplicationId, now: i64) -> Result<(ClientSecret, u64), CoreError> {
        let r = usecase::applications::regenerate_secret(self, &Caller::cli(now), id, Default::default()).await?;
        Ok((r.secret, r.tokens_revoked))
    }
    async fn mint_named_token(
        &self,
        app: ApplicationId,
        name: &str,
        scopes: ScopeSet,
        expires_at: i64,
        now: i64,
    ) -> Result<IssuedToken, CoreError> {
        let request = usecase::tokens::MintRequest {
            name: name.into(),
            scopes: scopes.clone(),
            expiry: TokenExpiry::At(expires_at),
        };
        let m = usecase::tokens::mint_token(self, &Caller::cli(now), app, request).await?;
        // A named token is under no cap: it evicts nothing.
        Ok(IssuedToken { id: m.view.id, token: m.token, scopes, created_at: now, expires_at, evicted: 0, cap: 0 })
    }
    async fn revoke_token(&self, id: TokenId, now: i64) -> Result<bool, CoreError> {
        usecase::tokens::revoke_token(self, &Caller::cli(now), id).await
    }
    async fn create_admin(&self, username: &str, hash: &str, role: Role, now: i64) -> Result<AdminView, CoreError> {
        let mut tx = self.write().await?;
        // A ready account, as if its owner had chosen the password.
        let admin = tx.insert_admin(username, hash, role, true, now).await?;
        tx.commit().await?;
        Ok(admin)
    }
}
