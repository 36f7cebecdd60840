//! Token issuance from the token endpoint, group-committed.
//!
//! Requests are handed to one issuing task that commits them in groups:
//! each request costs two statements inside a shared write transaction
//! instead of a transaction of its own. Per request, in order: insert the
//! token only if the secret the client proved is still current and the
//! application enabled (a regeneration may have committed since), then
//! revoke all but the newest `max_tokens` valid endpoint tokens. One writer
//! and one order mean concurrent requests never leave more than
//! `max_tokens` valid.
//!
//! On PostgreSQL, where several instances issue at once, each request is
//! one transaction that first locks its application's row (`FOR UPDATE`,
//! which also re-checks the secret and the enabled flag), so issuers of one
//! application take turns across instances and the cap stays exact; the
//! statements after the lock see every token committed before it.

use super::{Db, Store};
use crate::client::ClientRecord;
use crate::error::CoreError;
use crate::grant;
use crate::model::TokenId;
use crate::scope::ScopeSet;
use crate::secret::AccessToken;
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

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

/// One token request waiting for the issuing task.
pub(super) struct IssueJob {
    client: ClientRecord,
    scopes: ScopeSet,
    now: i64,
    token: AccessToken,
    reply: oneshot::Sender<Result<IssuedToken, IssueError>>,
}

impl std::fmt::Debug for IssueJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueJob").field("application", &self.client.id).finish_non_exhaustive()
    }
}

/// Most requests committed in one transaction.
const MAX_ISSUE_BATCH: usize = 128;

pub(super) fn start(writer: SqlitePool) -> mpsc::Sender<IssueJob> {
    let (issuer, jobs) = mpsc::channel(4096);
    tokio::spawn(run_issuer(writer, jobs));
    issuer
}

impl Store {
    /// Issues a token from the token endpoint for an authenticated client.
    pub async fn issue_endpoint_token(
        &self,
        client: &ClientRecord,
        scopes: ScopeSet,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        let issuer = match &self.db {
            Db::Sqlite { issuer, .. } => issuer,
            Db::Postgres { pool, .. } => return issue_on_postgres(pool, client, scopes, now).await,
        };
        let (reply, answer) = oneshot::channel();
        let job = IssueJob { client: client.clone(), scopes, now, token: AccessToken::generate(), reply };
        issuer
            .send(job)
            .await
            .map_err(|_| IssueError::Core(CoreError::Internal("the token issuer has stopped".into())))?;
        answer.await.map_err(|_| IssueError::Core(CoreError::Internal("the token issuer dropped a request".into())))?
    }
}

/// The issuing task: takes every request waiting, runs them in one write
/// transaction on the writer connection, commits once, answers each.
async fn run_issuer(writer: SqlitePool, mut jobs: mpsc::Receiver<IssueJob>) {
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
             SELECT id, $1, $2, NULL, $3, 'token_endpoint', $4, $5 FROM applications \
             WHERE id = $6 AND enabled = TRUE AND secret_hash = $7 RETURNING id",
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
            "UPDATE tokens SET revoked_at = $1, revoked_reason = 'token_cap' WHERE id IN ( \
               SELECT id FROM tokens WHERE application_id = $2 AND source = 'token_endpoint' \
               AND revoked_at IS NULL AND expires_at > $1 ORDER BY id DESC LIMIT -1 OFFSET $3)",
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

async fn issue_on_postgres(
    pool: &sqlx::PgPool,
    client: &ClientRecord,
    scopes: ScopeSet,
    now: i64,
) -> Result<IssuedToken, IssueError> {
    let token = AccessToken::generate();
    let expires_at = grant::expiry(now, client.token_ttl_seconds);
    let mut tx = pool.begin().await.map_err(CoreError::from)?;
    let current: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM applications WHERE id = $1 AND enabled = TRUE AND secret_hash = $2 FOR UPDATE",
    )
    .bind(client.id.0)
    .bind(client.secret_hash.as_bytes().to_vec())
    .fetch_optional(&mut *tx)
    .await
    .map_err(CoreError::from)?;
    if current.is_none() {
        return Err(IssueError::ClientChanged);
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO tokens (application_id, token_hash, display_prefix, name, scopes, source, created_at, expires_at) \
         VALUES ($1, $2, $3, NULL, $4, 'token_endpoint', $5, $6) RETURNING id",
    )
    .bind(client.id.0)
    .bind(token.digest().as_bytes().to_vec())
    .bind(token.display_prefix())
    .bind(scopes.to_string())
    .bind(now)
    .bind(expires_at)
    .fetch_one(&mut *tx)
    .await
    .map_err(CoreError::from)?;
    let evicted = sqlx::query(
        "UPDATE tokens SET revoked_at = $1, revoked_reason = 'token_cap' WHERE id IN ( \
           SELECT id FROM tokens WHERE application_id = $2 AND source = 'token_endpoint' \
           AND revoked_at IS NULL AND expires_at > $1 ORDER BY id DESC OFFSET $3)",
    )
    .bind(now)
    .bind(client.id.0)
    .bind(grant::tokens_kept_after_issue(client.max_tokens))
    .execute(&mut *tx)
    .await
    .map_err(CoreError::from)?
    .rows_affected();
    tx.commit().await.map_err(CoreError::from)?;
    Ok(IssuedToken { id: TokenId(id), token, scopes, created_at: now, expires_at, evicted })
}
