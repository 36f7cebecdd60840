//! Activity counts for the charts (`crate::activity`): minutes, rolled up
//! into hours after 48 hours, hours kept 90 days.

use super::{on_pool, on_tx, Store, Tx};
use crate::activity::*;
use crate::error::CoreError;
use crate::model::ApplicationId;

/// Minutes are kept this long before they are rolled up into hours.
pub const MINUTES_KEPT_SECONDS: i64 = 48 * 3_600;
/// Hours are kept this long.
pub const HOURS_KEPT_SECONDS: i64 = 90 * 86_400;

#[derive(sqlx::FromRow)]
struct CountRow {
    at: i64,
    kind: String,
    count: i64,
}

#[derive(sqlx::FromRow)]
struct ApplicationRow {
    application_id: i64,
    application_name: String,
    issued: i64,
    used: i64,
    refused: i64,
}

/// Both tables as one, from `$1` on: (application_id, at, kind, count).
const BOTH: &str = "SELECT application_id, minute AS at, kind, count FROM activity_minutes WHERE minute >= $1 \
                    UNION ALL SELECT application_id, hour AS at, kind, count FROM activity_hours WHERE hour >= $1";

impl Tx {
    /// Counts one event of a change made in this transaction (a named
    /// token minted): rare enough to write at once, with the change.
    pub async fn count_activity(
        &mut self,
        application: ApplicationId,
        at: i64,
        kind: ActivityKind,
    ) -> Result<(), CoreError> {
        on_tx!(self, |conn| sqlx::query(
            "INSERT INTO activity_minutes (application_id, minute, kind, count) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (application_id, minute, kind) DO UPDATE SET count = activity_minutes.count + 1"
        )
        .bind(application.0)
        .bind(at.div_euclid(60) * 60)
        .bind(kind.as_str())
        .execute(conn)
        .await
        .map(|_| ())?);
        Ok(())
    }
}

impl Store {
    /// Adds counts to the stored ones (an instance's flush), a few hundred
    /// rows a statement so a flush holds the writer briefly; counts of an
    /// application deleted meanwhile are dropped.
    pub async fn add_activity(&self, counts: &[MinuteCount]) -> Result<(), CoreError> {
        /// Rows per statement (4 parameters each, far below both limits).
        const CHUNK: usize = 250;
        if counts.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for chunk in counts.chunks(CHUNK) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p = i * 4;
                    format!(
                        "(CAST(${} AS BIGINT), CAST(${} AS BIGINT), CAST(${} AS TEXT), CAST(${} AS BIGINT))",
                        p + 1,
                        p + 2,
                        p + 3,
                        p + 4
                    )
                })
                .collect();
            let sql = format!(
                "WITH v (application_id, minute, kind, count) AS (VALUES {}) \
                 INSERT INTO activity_minutes (application_id, minute, kind, count) \
                 SELECT v.application_id, v.minute, v.kind, v.count FROM v \
                 WHERE EXISTS (SELECT 1 FROM applications a WHERE a.id = v.application_id) \
                 ON CONFLICT (application_id, minute, kind) DO UPDATE SET count = activity_minutes.count + excluded.count",
                rows.join(", ")
            );
            on_tx!(tx, |conn| {
                let mut q = sqlx::query(&sql);
                for c in chunk {
                    q = q.bind(c.application_id.0).bind(c.minute).bind(c.kind.as_str()).bind(c.count);
                }
                q.execute(conn).await.map(|_| ())?
            });
        }
        tx.commit().await
    }

    /// One application's activity (or every application's) over `range`.
    pub async fn activity_series(
        &self,
        application: Option<ApplicationId>,
        range: ActivityRange,
        now: i64,
    ) -> Result<ActivitySeries, CoreError> {
        let from = range.from(now);
        let sql = format!(
            "SELECT at, kind, CAST(SUM(count) AS BIGINT) AS count FROM ({BOTH}) c \
             WHERE CAST($2 AS BIGINT) IS NULL OR application_id = $2 GROUP BY at, kind"
        );
        let rows: Vec<CountRow> =
            on_pool!(self, |p| sqlx::query_as(&sql).bind(from).bind(application.map(|a| a.0)).fetch_all(p).await?);
        Ok(ActivitySeries::collect(
            range,
            now,
            rows.into_iter().filter_map(|r| ActivityKind::parse(&r.kind).map(|k| (r.at, k, r.count))),
        ))
    }

    /// The five busiest applications (issued and used) and the five with
    /// the most refusals over `range`.
    pub async fn activity_leaders(
        &self,
        range: ActivityRange,
        now: i64,
    ) -> Result<(Vec<ApplicationActivity>, Vec<ApplicationActivity>), CoreError> {
        let sums = format!(
            "SELECT c.application_id, a.name AS application_name, \
             CAST(SUM(CASE WHEN c.kind = 'issued' THEN c.count ELSE 0 END) AS BIGINT) AS issued, \
             CAST(SUM(CASE WHEN c.kind = 'used' THEN c.count ELSE 0 END) AS BIGINT) AS used, \
             CAST(SUM(CASE WHEN c.kind IN ('issued', 'used') THEN 0 ELSE c.count END) AS BIGINT) AS refused \
             FROM ({BOTH}) c JOIN applications a ON a.id = c.application_id GROUP BY c.application_id, a.name"
        );
        let from = range.from(now);
        let busiest = format!(
            "SELECT * FROM ({sums}) s WHERE issued + used > 0 ORDER BY issued + used DESC, application_id LIMIT 5"
        );
        let refused =
            format!("SELECT * FROM ({sums}) s WHERE refused > 0 ORDER BY refused DESC, application_id LIMIT 5");
        let read = |rows: Vec<ApplicationRow>| {
            rows.into_iter()
                .map(|r| ApplicationActivity {
                    application_id: ApplicationId(r.application_id),
                    application_name: r.application_name,
                    issued: r.issued,
                    used: r.used,
                    refused: r.refused,
                })
                .collect::<Vec<_>>()
        };
        let busiest: Vec<ApplicationRow> = on_pool!(self, |p| sqlx::query_as(&busiest).bind(from).fetch_all(p).await?);
        let refused: Vec<ApplicationRow> = on_pool!(self, |p| sqlx::query_as(&refused).bind(from).fetch_all(p).await?);
        Ok((read(busiest), read(refused)))
    }

    /// Rolls minutes older than 48 hours (whole hours only) up into hours
    /// and deletes hours older than 90 days. Safe to run on several
    /// instances at once: on PostgreSQL the minutes are deleted and added
    /// in one statement, so a minute is moved once. Returns the minute
    /// rows moved.
    pub async fn roll_up_activity(&self, now: i64) -> Result<u64, CoreError> {
        let cutoff = (now - MINUTES_KEPT_SECONDS).div_euclid(3_600) * 3_600;
        let mut tx = self.write().await?;
        let moved = match &mut tx.inner {
            super::TxInner::Sqlite(c) => {
                sqlx::query(
                    "INSERT INTO activity_hours (application_id, hour, kind, count) \
                     SELECT application_id, (minute / 3600) * 3600, kind, SUM(count) FROM activity_minutes \
                     WHERE minute < $1 GROUP BY application_id, (minute / 3600) * 3600, kind \
                     ON CONFLICT (application_id, hour, kind) DO UPDATE SET count = activity_hours.count + excluded.count",
                )
                .bind(cutoff)
                .execute(&mut **c)
                .await?;
                sqlx::query("DELETE FROM activity_minutes WHERE minute < $1")
                    .bind(cutoff)
                    .execute(&mut **c)
                    .await?
                    .rows_affected()
            }
            super::TxInner::Postgres(c) => {
                let moved: i64 = sqlx::query_scalar(
                    "WITH moved AS (DELETE FROM activity_minutes WHERE minute < $1 \
                       RETURNING application_id, minute, kind, count), \
                     added AS (INSERT INTO activity_hours (application_id, hour, kind, count) \
                       SELECT application_id, (minute / 3600) * 3600, kind, SUM(count) FROM moved \
                       GROUP BY application_id, (minute / 3600) * 3600, kind \
                       ON CONFLICT (application_id, hour, kind) DO UPDATE SET count = activity_hours.count + excluded.count) \
                     SELECT COUNT(*) FROM moved",
                )
                .bind(cutoff)
                .fetch_one(&mut **c)
                .await?;
                moved as u64
            }
        };
        on_tx!(tx, |conn| sqlx::query("DELETE FROM activity_hours WHERE hour < $1")
            .bind(now - HOURS_KEPT_SECONDS)
            .execute(conn)
            .await
            .map(|_| ())?);
        tx.commit().await?;
        Ok(moved)
    }

    /// How many minute and hour rows are stored (tests, and the roll-up's
    /// report).
    pub async fn activity_row_counts(&self) -> Result<(i64, i64), CoreError> {
        let minutes: i64 =
            on_pool!(self, |p| sqlx::query_scalar("SELECT COUNT(*) FROM activity_minutes").fetch_one(p).await?);
        let hours: i64 =
            on_pool!(self, |p| sqlx::query_scalar("SELECT COUNT(*) FROM activity_hours").fetch_one(p).await?);
        Ok((minutes, hours))
    }
}
