//! Rate limits shared by every instance (PostgreSQL). On SQLite there is
//! one server process, and its in-memory limiter counts alone.
//!
//! Each instance counts through one task that takes every request waiting
//! at that moment, groups them by application and counts each group with
//! one statement on the application's counter row: the statement grants
//! as many as the per-second and hourly limits still allow and never more,
//! so the limits stay exact across instances, while a busy instance pays
//! one statement (and one turn on the hot row) per batch, not per request.
//! Nobody waits for a batch to fill: a batch is whatever queued while the
//! previous statement ran.

use super::{Db, Store};
use crate::error::CoreError;
use crate::model::ApplicationId;
use crate::ratelimit::RateDecision;
use std::collections::HashMap;
use std::sync::LazyLock;
use tokio::sync::{mpsc, oneshot};

const MAX_COUNT_BATCH: usize = 1024;
const COUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) struct CountJob {
    application: ApplicationId,
    per_second: i64,
    per_hour: i64,
    reply: oneshot::Sender<Result<RateDecision, CoreError>>,
}

#[derive(sqlx::FromRow)]
struct Counted {
    /// The database's clock, in Unix seconds.
    now_s: i64,
    hour: i64,
    in_hour: i64,
    granted: i64,
}

/// Grants up to `$4` requests of application `$1` against `$2` a second
/// and `$3` an hour, by the database's clock. A statement whose clock
/// reading is older than the row's window (it waited for the row lock)
/// counts in the row's window, never resets it.
static COUNT_SQL: LazyLock<String> = LazyLock::new(|| {
    let in_second = "CASE WHEN EXCLUDED.second > r.second THEN 0 ELSE r.in_second END";
    let in_hour = "CASE WHEN EXCLUDED.hour > r.hour THEN 0 ELSE r.in_hour END";
    let grant = format!("GREATEST(0, LEAST($4, $2 - {in_second}, $3 - {in_hour}))");
    format!(
        "WITH now AS (SELECT floor(extract(epoch FROM clock_timestamp()))::bigint AS s) \
         INSERT INTO rate_counters AS r (application_id, second, in_second, hour, in_hour, granted) \
         SELECT $1, now.s, LEAST($4, $2, $3), now.s / 3600, LEAST($4, $2, $3), LEAST($4, $2, $3) FROM now \
         ON CONFLICT (application_id) DO UPDATE SET \
           granted = {grant}, \
           in_second = {in_second} + {grant}, \
           second = GREATEST(r.second, EXCLUDED.second), \
           in_hour = {in_hour} + {grant}, \
           hour = GREATEST(r.hour, EXCLUDED.hour) \
         RETURNING r.second AS now_s, r.hour, r.in_hour, r.granted"
    )
});

pub(super) fn start_counter(pool: sqlx::PgPool) -> mpsc::Sender<CountJob> {
    let (counter, jobs) = mpsc::channel(4096);
    tokio::spawn(run_counter(pool, jobs));
    counter
}

async fn run_counter(pool: sqlx::PgPool, mut jobs: mpsc::Receiver<CountJob>) {
    let mut batch = Vec::with_capacity(MAX_COUNT_BATCH);
    while jobs.recv_many(&mut batch, MAX_COUNT_BATCH).await > 0 {
        let mut groups: HashMap<(ApplicationId, i64, i64), Vec<CountJob>> = HashMap::new();
        for job in batch.drain(..) {
            groups.entry((job.application, job.per_second, job.per_hour)).or_default().push(job);
        }
        // Applications are counted side by side; each group is one statement.
        let mut running = tokio::task::JoinSet::new();
        for ((application, per_second, per_hour), group) in groups {
            let pool = pool.clone();
            running.spawn(async move {
                let count = sqlx::query_as::<_, Counted>(COUNT_SQL.as_str())
                    .bind(application.0)
                    .bind(per_second)
                    .bind(per_hour)
                    .bind(group.len() as i64)
                    .fetch_one(&pool);
                // A statement that hangs (a connection gone half-open) must
                // not stall every count on this instance behind it.
                let counted =
                    tokio::time::timeout(COUNT_TIMEOUT, count).await.unwrap_or(Err(sqlx::Error::PoolTimedOut));
                answer(group, per_hour, counted);
            });
        }
        while running.join_next().await.is_some() {}
    }
}

/// The first `granted` requests of the group pass, in order; the rest are
/// refused with the time to wait.
fn answer(group: Vec<CountJob>, per_hour: i64, counted: Result<Counted, sqlx::Error>) {
    let c = match counted {
        Ok(c) => c,
        Err(e) => {
            let e = CoreError::from(e);
            tracing::error!(error = %e, requests = group.len(), "rate counting failed");
            for job in group {
                let refusal = match &e {
                    CoreError::Unavailable(m) => CoreError::Unavailable(m.clone()),
                    _ => CoreError::Internal("rate counting failed; see the server log".into()),
                };
                let _ = job.reply.send(Err(refusal));
            }
            return;
        }
    };
    let reset_at = (c.hour + 1) * 3600;
    let hour_used_up = c.in_hour >= per_hour;
    for (i, job) in group.into_iter().enumerate() {
        let i = i as i64;
        let decision = if i < c.granted {
            RateDecision {
                allowed: true,
                limit: per_hour,
                remaining: (per_hour - (c.in_hour - c.granted + i + 1)).max(0),
                reset_at,
                retry_after: 0,
            }
        } else {
            RateDecision {
                allowed: false,
                limit: per_hour,
                remaining: (per_hour - c.in_hour).max(0),
                reset_at,
                retry_after: if hour_used_up { (reset_at - c.now_s).max(1) } else { 1 },
            }
        };
        let _ = job.reply.send(Ok(decision));
    }
}

impl Store {
    /// Counts one request of `application` against its limits in the
    /// database, so every instance counts in the same windows and the
    /// limits are exact across instances. `None` on SQLite (count in
    /// memory instead). Refused requests are not counted.
    pub async fn count_shared_request(
        &self,
        application: ApplicationId,
        per_second: i64,
        per_hour: i64,
    ) -> Result<Option<RateDecision>, CoreError> {
        let Db::Postgres { counter, .. } = &self.db else { return Ok(None) };
        let (reply, decision) = oneshot::channel();
        let gone = || CoreError::Unavailable("the rate counter stopped; try again shortly".into());
        counter.send(CountJob { application, per_second, per_hour, reply }).await.map_err(|_| gone())?;
        decision.await.map_err(|_| gone())?.map(Some)
    }
}
