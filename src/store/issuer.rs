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
//! On PostgreSQL, where several instances issue at once, each instance
//! group-commits too: one transaction per batch first locks the rows of
//! the batch's applications (`FOR UPDATE`, in id order), re-checks each
//! request's secret and the enabled flag against them, inserts the tokens
//! and revokes each application's excess once. Issuers of one application
//! take turns across instances, so the cap stays exact; the statements
//! after the lock see every token committed before it.

use super::{Db, Store};
use crate::client::ClientRecord;
use crate::error::CoreError;
use crate::grant;
use crate::model::{SecretId, TokenId};
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

/// A token about to be recorded: its value (opaque, or a signed JWT), its
/// scopes and audience, and the key that signed it.
#[derive(Debug)]
pub struct TokenToIssue {
    pub token: AccessToken,
    pub scopes: ScopeSet,
    pub audience: Vec<String>,
    pub signing_key_id: Option<String>,
    /// The secret the client proved (its current one when `None`); the
    /// token is recorded only while that secret still works.
    pub proven_by: Option<SecretId>,
}

impl TokenToIssue {
    /// A random opaque token.
    pub fn opaque(scopes: ScopeSet, audience: Vec<String>) -> Self {
        TokenToIssue { token: AccessToken::generate(), scopes, audience, signing_key_id: None, proven_by: None }
    }
}

/// One token request waiting for the issuing task.
pub(super) struct IssueJob {
    client: ClientRecord,
    scopes: ScopeSet,
    audience: String,
    signing_key_id: Option<String>,
    /// Digest of the secret the client proved.
    secret: Vec<u8>,
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
    /// Issues an opaque token from the token endpoint for an authenticated
    /// client, for every resource server its scopes belong to.
    pub async fn issue_endpoint_token(
        &self,
        client: &ClientRecord,
        scopes: ScopeSet,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        let audience = grant::audience_of(&scopes, &client.scope_servers);
        self.issue_prepared_token(client, TokenToIssue::opaque(scopes, audience), now).await
    }

    /// Records a token from the token endpoint (group-committed, under the
    /// application's cap) and answers with it.
    pub async fn issue_prepared_token(
        &self,
        client: &ClientRecord,
        prepared: TokenToIssue,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        let issuer = match &self.db {
            Db::Sqlite { issuer, .. } | Db::Postgres { issuer, .. } => issuer,
        };
        let proven = match prepared.proven_by {
            Some(id) => client.secret_digest(id),
            None => client.secrets.first().map(|s| &s.digest),
        };
        let Some(secret) = proven.map(|d| d.as_bytes().to_vec()) else {
            return Err(IssueError::ClientChanged);
        };
        let (reply, answer) = oneshot::channel();
        let job = IssueJob {
            secret,
            client: client.clone(),
            scopes: prepared.scopes,
            audience: prepared.audience.join(" "),
            signing_key_id: prepared.signing_key_id,
            now,
            token: prepared.token,
            reply,
        };
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
        observe_batch(batch.len(), jobs.len());
        let result = issue_batch(&writer, &batch).await;
        answer(&mut batch, result);
    }
}

/// The issuer's batch size and what waits behind it (Prometheus, when
/// `--metrics-addr` installed a recorder; else nothing).
fn observe_batch(size: usize, waiting: usize) {
    metrics::histogram!("keygate_issuer_batch_size").record(size as f64);
    metrics::gauge!("keygate_issuer_queue_depth").set(waiting as f64);
}

/// Answers every request of a batch with its outcome, or all of them with
/// the batch's failure (503 while the database is away, else an opaque 500).
fn answer(batch: &mut Vec<IssueJob>, result: Result<Vec<IssueOutcome>, sqlx::Error>) {
    match result {
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
            let e = CoreError::from(e);
            tracing::error!(error = %e, requests = batch.len(), "token issuance batch failed");
            for job in batch.drain(..) {
                let refusal = match &e {
                    CoreError::Unavailable(m) => CoreError::Unavailable(m.clone()),
                    _ => CoreError::Internal("token issuance failed; see the server log".into()),
                };
                let _ = job.reply.send(Err(IssueError::Core(refusal)));
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
            "INSERT INTO tokens (application_id, token_hash, display_prefix, name, scopes, source, created_at, expires_at, \
             audience, signing_key_id) \
             SELECT id, $1, $2, NULL, $3, 'token_endpoint', $4, $5, $8, $9 FROM applications \
             WHERE id = $6 AND enabled = TRUE AND EXISTS (SELECT 1 FROM client_secrets s WHERE s.application_id = $6 \
             AND s.secret_hash = $7 AND (s.expires_at IS NULL OR s.expires_at > $4)) RETURNING id",
        )
        .bind(job.token.digest().as_bytes().to_vec())
        .bind(job.token.display_prefix())
        .bind(job.scopes.to_string())
        .bind(job.now)
        .bind(grant::expiry(job.now, c.token_ttl_seconds))
        .bind(c.id.0)
        .bind(&job.secret)
        .bind(&job.audience)
        .bind(job.signing_key_id.as_deref())
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

pub(super) fn start_postgres(pool: sqlx::PgPool) -> mpsc::Sender<IssueJob> {
    let (issuer, jobs) = mpsc::channel(4096);
    tokio::spawn(run_postgres_issuer(pool, jobs));
    issuer
}

async fn run_postgres_issuer(pool: sqlx::PgPool, mut jobs: mpsc::Receiver<IssueJob>) {
    let mut batch = Vec::with_capacity(MAX_ISSUE_BATCH);
    while jobs.recv_many(&mut batch, MAX_ISSUE_BATCH).await > 0 {
        observe_batch(batch.len(), jobs.len());
        let result = issue_batch_on_postgres(&pool, &batch).await;
        answer(&mut batch, result);
    }
}

#[derive(sqlx::FromRow)]
struct LockedApplication {
    id: i64,
    enabled: bool,
    max_tokens: i64,
}

async fn issue_batch_on_postgres(pool: &sqlx::PgPool, batch: &[IssueJob]) -> Result<Vec<IssueOutcome>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Lock every application of the batch, in id order (no deadlock
    // between instances), and read what each request must still match.
    let mut ids: Vec<i64> = batch.iter().map(|j| j.client.id.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let locked: Vec<LockedApplication> =
        sqlx::query_as("SELECT id, enabled, max_tokens FROM applications WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
    // The secrets that work now (a regeneration locks the application row
    // first, so these are current under the lock).
    let now = batch.iter().map(|j| j.now).max().unwrap_or_default();
    let live: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT application_id, secret_hash FROM client_secrets WHERE application_id = ANY($1) \
         AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(&ids)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let mut outcomes: Vec<Option<IssueOutcome>> = Vec::with_capacity(batch.len());
    let (mut apps, mut hashes, mut prefixes, mut scopes, mut created, mut expires) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut audiences, mut keys) = (Vec::new(), Vec::new());
    for job in batch {
        let c = &job.client;
        let current = locked.iter().find(|a| a.id == c.id.0);
        let secret_works = live.iter().any(|(app, digest)| *app == c.id.0 && *digest == job.secret);
        if !current.is_some_and(|a| a.enabled) || !secret_works {
            outcomes.push(Some(Err(IssueError::ClientChanged)));
            continue;
        }
        outcomes.push(None);
        apps.push(c.id.0);
        hashes.push(job.token.digest().as_bytes().to_vec());
        prefixes.push(job.token.display_prefix());
        scopes.push(job.scopes.to_string());
        created.push(job.now);
        expires.push(grant::expiry(job.now, c.token_ttl_seconds));
        audiences.push(job.audience.clone());
        keys.push(job.signing_key_id.clone());
    }
    // One statement for the batch; each id is matched back by its digest.
    let inserted: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "INSERT INTO tokens (application_id, token_hash, display_prefix, name, scopes, source, created_at, expires_at, \
         audience, signing_key_id) \
         SELECT a, h, p, NULL, s, 'token_endpoint', c, e, aud, k \
         FROM UNNEST($1::bigint[], $2::bytea[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], \
           $8::text[]) WITH ORDINALITY AS t(a, h, p, s, c, e, aud, k, n) ORDER BY n RETURNING id, token_hash",
    )
    .bind(&apps)
    .bind(&hashes)
    .bind(&prefixes)
    .bind(&scopes)
    .bind(&created)
    .bind(&expires)
    .bind(&audiences)
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await?;
    // The excess of each application, once per batch.
    let mut evicted_by_app = std::collections::HashMap::new();
    for app in locked.iter().filter(|a| apps.contains(&a.id)) {
        let evicted = sqlx::query(
            "UPDATE tokens SET revoked_at = $1, revoked_reason = 'token_cap' WHERE id IN ( \
               SELECT id FROM tokens WHERE application_id = $2 AND source = 'token_endpoint' \
               AND revoked_at IS NULL AND expires_at > $1 ORDER BY id DESC OFFSET $3)",
        )
        .bind(now)
        .bind(app.id)
        .bind(grant::tokens_kept_after_issue(app.max_tokens))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        evicted_by_app.insert(app.id, evicted);
    }
    tx.commit().await?;
    let ids_by_digest: std::collections::HashMap<Vec<u8>, i64> =
        inserted.into_iter().map(|(id, digest)| (digest, id)).collect();
    Ok(batch
        .iter()
        .zip(outcomes)
        .map(|(job, outcome)| match outcome {
            Some(refused) => refused,
            None => {
                let Some(id) = ids_by_digest.get(job.token.digest().as_bytes()).copied() else {
                    return Err(IssueError::Core(CoreError::Internal("an issued token was not recorded".into())));
                };
                // The application's evictions are reported once, with its first token.
                let evicted = evicted_by_app.remove(&job.client.id.0).unwrap_or(0);
                Ok((TokenId(id), evicted))
            }
        })
        .collect())
}
