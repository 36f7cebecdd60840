//! Token issuance from the token endpoint, group-committed.
//!
//! Requests are handed to one issuing task that commits them in groups: a
//! batch costs the same few statements inside one write transaction
//! whatever its size. One statement inserts every token whose proven secret
//! is still current and whose application is still enabled (a regeneration
//! may have committed since); one revokes all but each application's newest
//! `max_tokens` valid endpoint tokens. One writer and one order mean
//! concurrent requests never leave more than `max_tokens` valid, and the
//! tokens kept are the ones a request-by-request order would have kept.
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
    /// The cap those were revoked under (when `evicted` > 0): the
    /// application's as the issuing transaction read it (the client record
    /// may be older).
    pub cap: i64,
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
                let _ = job.reply.send(outcome.map(|(id, evicted, cap)| IssuedToken {
                    id,
                    token: job.token,
                    scopes: job.scopes,
                    created_at: job.now,
                    expires_at: grant::expiry(job.now, job.client.token_ttl_seconds),
                    evicted,
                    cap,
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

/// A request's token id, with the evictions its application's first token
/// in the batch reports and the cap they were made under.
type IssueOutcome = Result<(TokenId, u64, i64), IssueError>;

/// One batch on SQLite, in the same four statements whatever its size:
/// insert every token whose application is still enabled and whose proven
/// secret still works at its request's time (the rows that come back say
/// which), read those applications' caps, revoke each one's excess, commit. The single writer connection serialises
/// batches, and ids rise in the batch's order, so the newest tokens kept
/// are the ones the per-request order would have kept.
async fn issue_batch(writer: &SqlitePool, batch: &[IssueJob]) -> Result<Vec<IssueOutcome>, sqlx::Error> {
    let requests: Vec<serde_json::Value> = batch
        .iter()
        .map(|job| {
            serde_json::json!({
                "application": job.client.id.0,
                "token_hash": hex(job.token.digest().as_bytes()),
                "display_prefix": job.token.display_prefix(),
                "scopes": job.scopes.to_string(),
                "created_at": job.now,
                "expires_at": grant::expiry(job.now, job.client.token_ttl_seconds),
                "audience": job.audience,
                "signing_key_id": job.signing_key_id,
                "secret_hash": hex(&job.secret),
            })
        })
        .collect();
    let mut tx = writer.begin().await?;
    let inserted: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "INSERT INTO tokens (application_id, token_hash, display_prefix, name, scopes, source, created_at, expires_at, \
         audience, signing_key_id) \
         SELECT a.id, unhex(r.value ->> 'token_hash'), r.value ->> 'display_prefix', NULL, r.value ->> 'scopes', \
           'token_endpoint', r.value ->> 'created_at', r.value ->> 'expires_at', r.value ->> 'audience', \
           r.value ->> 'signing_key_id' \
         FROM json_each($1) AS r JOIN applications a ON a.id = r.value ->> 'application' \
         WHERE a.enabled = TRUE AND EXISTS (SELECT 1 FROM client_secrets s WHERE s.application_id = a.id \
           AND s.secret_hash = unhex(r.value ->> 'secret_hash') \
           AND (s.expires_at IS NULL OR s.expires_at > r.value ->> 'created_at')) \
         ORDER BY r.key RETURNING id, token_hash",
    )
    .bind(serde_json::Value::Array(requests).to_string())
    .fetch_all(&mut *tx)
    .await?;
    let ids_by_digest: std::collections::HashMap<Vec<u8>, i64> =
        inserted.into_iter().map(|(id, digest)| (digest, id)).collect();
    let accepted: Vec<&IssueJob> =
        batch.iter().filter(|j| ids_by_digest.contains_key(j.token.digest().as_bytes())).collect();
    let mut evicted_by_app = std::collections::HashMap::new();
    if !accepted.is_empty() {
        // Each application's cap as it stands in this transaction (a
        // client record may be older), as PostgreSQL reads it under its lock.
        let mut apps: Vec<i64> = accepted.iter().map(|j| j.client.id.0).collect();
        apps.sort_unstable();
        apps.dedup();
        let caps: Vec<(i64, i64)> =
            sqlx::query_as("SELECT id, max_tokens FROM applications WHERE id IN (SELECT value FROM json_each($1))")
                .bind(serde_json::Value::from(apps).to_string())
                .fetch_all(&mut *tx)
                .await?;
        let kept: Vec<serde_json::Value> = caps
            .iter()
            .map(|(app, cap)| serde_json::json!({"application": app, "kept": grant::tokens_kept_after_issue(*cap)}))
            .collect();
        let now = accepted.iter().map(|j| j.now).max().unwrap_or_default();
        let evicted: Vec<i64> = sqlx::query_scalar(
            "UPDATE tokens SET revoked_at = $1, revoked_reason = 'token_cap' WHERE id IN ( \
               SELECT id FROM ( \
                 SELECT t.id, row_number() OVER (PARTITION BY t.application_id ORDER BY t.id DESC) AS newest, \
                   c.value ->> 'kept' AS kept \
                 FROM json_each($2) AS c JOIN tokens t ON t.application_id = c.value ->> 'application' \
                 WHERE t.source = 'token_endpoint' AND t.revoked_at IS NULL AND t.expires_at > $1) \
               WHERE newest > kept) \
             RETURNING application_id",
        )
        .bind(now)
        .bind(serde_json::Value::Array(kept).to_string())
        .fetch_all(&mut *tx)
        .await?;
        evicted_by_app.extend(caps.iter().map(|&(app, cap)| (app, (0u64, cap))));
        for app in evicted {
            if let Some((count, _)) = evicted_by_app.get_mut(&app) {
                *count += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes_by_digest(batch, &ids_by_digest, evicted_by_app, |_| IssueError::ClientChanged))
}

/// Each request's outcome from the ids the insert returned (`missing` says
/// why request `i` has none). An application's evictions are reported
/// once, with its first token of the batch.
fn outcomes_by_digest(
    batch: &[IssueJob],
    ids_by_digest: &std::collections::HashMap<Vec<u8>, i64>,
    mut evicted_by_app: std::collections::HashMap<i64, (u64, i64)>,
    missing: impl Fn(usize) -> IssueError,
) -> Vec<IssueOutcome> {
    batch
        .iter()
        .enumerate()
        .map(|(i, job)| match ids_by_digest.get(job.token.digest().as_bytes()) {
            None => Err(missing(i)),
            Some(&id) => {
                let (evicted, cap) = evicted_by_app.remove(&job.client.id.0).unwrap_or((0, job.client.max_tokens));
                Ok((TokenId(id), evicted, cap))
            }
        })
        .collect()
}

/// Lower-case hex, as SQLite's `unhex` reads it.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
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
    // The secrets that work at the batch's earliest request, each judged
    // again at its request's time below (a regeneration locks the
    // application row first, so these are current under the lock).
    let now = batch.iter().map(|j| j.now).max().unwrap_or_default();
    let earliest = batch.iter().map(|j| j.now).min().unwrap_or_default();
    let live: Vec<(i64, Vec<u8>, Option<i64>)> = sqlx::query_as(
        "SELECT application_id, secret_hash, expires_at FROM client_secrets WHERE application_id = ANY($1) \
         AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(&ids)
    .bind(earliest)
    .fetch_all(&mut *tx)
    .await?;
    let (mut apps, mut hashes, mut prefixes, mut scopes, mut created, mut expires) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut audiences, mut keys) = (Vec::new(), Vec::new());
    // A request whose application is disabled or whose secret stopped
    // working is left out (`ClientChanged`).
    let mut refused = Vec::with_capacity(batch.len());
    for job in batch {
        let c = &job.client;
        let current = locked.iter().find(|a| a.id == c.id.0);
        let secret_works = live.iter().any(|(app, digest, expires_at)| {
            *app == c.id.0 && *digest == job.secret && expires_at.is_none_or(|at| at > job.now)
        });
        let is_refused = !current.is_some_and(|a| a.enabled) || !secret_works;
        refused.push(is_refused);
        if is_refused {
            continue;
        }
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
        evicted_by_app.insert(app.id, (evicted, app.max_tokens));
    }
    tx.commit().await?;
    let ids_by_digest = inserted.into_iter().map(|(id, digest)| (digest, id)).collect();
    Ok(outcomes_by_digest(batch, &ids_by_digest, evicted_by_app, |i| match refused[i] {
        true => IssueError::ClientChanged,
        false => IssueError::Core(CoreError::Internal("an issued token was not recorded".into())),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::TokenRejection;
    use crate::model::{ApplicationId, ApplicationSettings};
    use crate::store::testing::{self, TestOps};

    const T0: i64 = 1_800_000_000;

    async fn fresh() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&testing::fresh_database_url(dir.path()).await.unwrap()).await.unwrap();
        store.migrate().await.unwrap();
        (store, dir)
    }

    async fn app(store: &Store, name: &str, max_tokens: i64) -> ClientRecord {
        let mut s = ApplicationSettings::new(name);
        s.scopes = ScopeSet::parse("tokens:read").unwrap();
        s.max_tokens = max_tokens;
        let (view, _) = store.create_application(s, T0).await.unwrap();
        store.client_by_client_id(&view.client_id).await.unwrap().unwrap()
    }

    fn job(client: &ClientRecord, now: i64) -> IssueJob {
        let (reply, _) = oneshot::channel();
        IssueJob {
            client: client.clone(),
            scopes: client.scopes.clone(),
            audience: String::new(),
            signing_key_id: None,
            secret: client.secrets[0].digest.as_bytes().to_vec(),
            now,
            token: AccessToken::generate(),
            reply,
        }
    }

    /// Runs one batch on the store's backend, as its issuer task would.
    async fn run(store: &Store, batch: &[IssueJob]) -> Vec<IssueOutcome> {
        match &store.db {
            Db::Sqlite { writer, .. } => issue_batch(writer, batch).await.unwrap(),
            Db::Postgres { pool, .. } => issue_batch_on_postgres(pool, batch).await.unwrap(),
        }
    }

    /// One batch with several requests per application, a disabled
    /// application, a regenerated secret and caps to enforce ends where the
    /// same requests one at a time would: the same tokens valid, the same
    /// tokens revoked by the cap, the same refusals.
    #[tokio::test]
    async fn a_batch_ends_where_its_requests_one_by_one_would() {
        let (store, _dir) = fresh().await;
        let a = app(&store, "a", 3).await;
        let b = app(&store, "b", 30).await;
        let c = app(&store, "c", 30).await;
        let d = app(&store, "d", 1).await;
        let named = store.mint_named_token(a.id, "deploy", ScopeSet::empty(), T0 + 86_400, T0).await.unwrap();
        let earlier = [
            store.issue_endpoint_token(&a, ScopeSet::empty(), T0).await.unwrap(),
            store.issue_endpoint_token(&a, ScopeSet::empty(), T0 + 1).await.unwrap(),
        ];
        // B is disabled and C's secret regenerated after their clients proved
        // themselves, before the batch runs.
        let mut disabled = ApplicationSettings::new("b");
        disabled.scopes = b.scopes.clone();
        store.update_application(b.id, disabled, false, T0 + 2).await.unwrap();
        store.regenerate_secret(c.id, T0 + 2).await.unwrap();

        let now = T0 + 10;
        let batch = [
            job(&a, now),
            job(&b, now),
            job(&a, now),
            job(&c, now),
            job(&d, now),
            job(&a, now),
            job(&d, now),
            job(&a, now),
        ];
        let outcomes = run(&store, &batch).await;
        let summary = summary_of(&outcomes);
        // A: two earlier tokens and four new ones, three kept: three evicted,
        // reported with A's first token. D: two new, one kept.
        assert_eq!(summary, [Some(3), None, Some(0), None, Some(1), Some(0), Some(0), Some(0)]);
        assert!(outcomes.iter().filter_map(|o| o.as_ref().err()).all(|e| matches!(e, IssueError::ClientChanged)));

        let later = now + 1;
        let valid = |i: usize, app: ApplicationId| {
            let (store, batch, outcomes) = (&store, &batch, &outcomes);
            async move {
                let checked = store.check_token(&batch[i].token, later).await.unwrap().unwrap();
                assert_eq!(checked.application_id, app, "request {i}");
                assert_eq!(Some(checked.token_id), outcomes[i].as_ref().ok().map(|(id, _, _)| *id), "request {i}");
            }
        };
        for i in [2, 5, 7] {
            valid(i, a.id).await;
        }
        valid(6, d.id).await;
        let capped = earlier.iter().map(|t| &t.token).chain([0, 4].map(|i| &batch[i].token));
        for token in capped {
            let refused = store.check_token(token, later).await.unwrap().unwrap_err();
            assert_eq!(refused.rejection, TokenRejection::Revoked { reason: "token_cap".into() });
        }
        for i in [1, 3] {
            let refused = store.check_token(&batch[i].token, later).await.unwrap().unwrap_err();
            assert_eq!(refused.rejection, TokenRejection::Unknown, "request {i} left no token");
        }
        // Ids rise in the batch's order, so "newest" means the same as one by one.
        let ids: Vec<i64> = outcomes.iter().filter_map(|o| o.as_ref().ok().map(|(id, _, _)| id.0)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        // A batch in which nothing may be issued changes nothing.
        assert_eq!(summary_of(&run(&store, &[job(&b, now), job(&c, now)]).await), [None, None]);
        // A named token never counts against the cap, nor is it revoked by it.
        assert!(store.check_token(&named.token, later).await.unwrap().is_ok());
    }

    /// The cap is the application's as it stands when the batch runs (a
    /// client record may be older), and a previous secret kept for an
    /// overlap works until its second, judged at each request's time.
    #[tokio::test]
    async fn a_batch_applies_the_current_cap_and_the_previous_secret_until_it_expires() {
        let (store, _dir) = fresh().await;
        let f = app(&store, "f", 5).await;
        let mut lowered = ApplicationSettings::new("f");
        lowered.scopes = f.scopes.clone();
        lowered.max_tokens = 2;
        store.update_application(f.id, lowered, true, T0 + 1).await.unwrap();
        let now = T0 + 10;
        let batch = [job(&f, now), job(&f, now), job(&f, now)];
        let outcomes = run(&store, &batch).await;
        assert_eq!(summary_of(&outcomes), [Some(1), Some(0), Some(0)]);
        assert!(matches!(outcomes[0], Ok((_, 1, 2))), "the eviction is reported under the cap applied, 2");
        let refused = store.check_token(&batch[0].token, now).await.unwrap().unwrap_err();
        assert_eq!(refused.rejection, TokenRejection::Revoked { reason: "token_cap".into() });

        let e = app(&store, "e", 30).await;
        let overlap = crate::usecase::applications::SecretRegeneration {
            previous_secret_valid_for: Some(3600),
            revoke_tokens: false,
        };
        crate::usecase::applications::regenerate_secret(&store, &crate::usecase::Caller::cli(T0), e.id, overlap)
            .await
            .unwrap();
        // `e` still proves the previous secret, which works until T0 + 3600.
        let batch = [job(&e, T0 + 3599), job(&e, T0 + 3600)];
        assert_eq!(summary_of(&run(&store, &batch).await), [Some(0), None]);
    }

    fn summary_of(outcomes: &[IssueOutcome]) -> Vec<Option<u64>> {
        outcomes.iter().map(|o| o.as_ref().ok().map(|(_, evicted, _)| *evicted)).collect()
    }
}
