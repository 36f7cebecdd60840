//! For test suites that run against every backend: a fresh database.

use crate::error::CoreError;
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
