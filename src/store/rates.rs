//! Rate limits shared by every instance (PostgreSQL). On SQLite there is
//! one server process, and its in-memory limiter counts alone.

use super::{Db, Store};
use crate::error::CoreError;
use crate::model::ApplicationId;
use crate::ratelimit::RateDecision;

#[derive(sqlx::FromRow)]
struct Counted {
    /// The database's clock, in Unix seconds.
    now_s: i64,
    hour: i64,
    in_hour: i64,
}

impl Store {
    /// Counts one request of `application` against its limits in the
    /// database, by the database's clock, so every instance counts in the
    /// same windows and the limits are exact across instances. `None` on
    /// SQLite (count in memory instead). Refused requests are not counted.
    pub async fn count_shared_request(
        &self,
        application: ApplicationId,
        per_second: i64,
        per_hour: i64,
    ) -> Result<Option<RateDecision>, CoreError> {
        let Db::Postgres { counters, .. } = &self.db else { return Ok(None) };
        // Check and count in one statement: the row lock makes concurrent
        // requests of one application take turns, across instances. A
        // statement whose clock reading is older than the row's window
        // (it waited for the lock) counts in the row's window, never
        // resets it.
        let allowed: Option<Counted> = sqlx::query_as(
            "WITH now AS (SELECT floor(extract(epoch FROM clock_timestamp()))::bigint AS s) \
             INSERT INTO rate_counters AS r (application_id, second, in_second, hour, in_hour) \
             SELECT $1, now.s, 1, now.s / 3600, 1 FROM now \
             ON CONFLICT (application_id) DO UPDATE SET \
               in_second = CASE WHEN EXCLUDED.second <= r.second THEN r.in_second + 1 ELSE 1 END, \
               second = GREATEST(r.second, EXCLUDED.second), \
               in_hour = CASE WHEN EXCLUDED.hour <= r.hour THEN r.in_hour + 1 ELSE 1 END, \
               hour = GREATEST(r.hour, EXCLUDED.hour) \
             WHERE (EXCLUDED.second > r.second OR r.in_second < $2) \
               AND (EXCLUDED.hour > r.hour OR r.in_hour < $3) \
             RETURNING r.second AS now_s, r.hour, r.in_hour",
        )
        .bind(application.0)
        .bind(per_second)
        .bind(per_hour)
        .fetch_optional(counters)
        .await?;
        if let Some(c) = allowed {
            let reset_at = (c.hour + 1) * 3600;
            return Ok(Some(RateDecision {
                allowed: true,
                limit: per_hour,
                remaining: (per_hour - c.in_hour).max(0),
                reset_at,
                retry_after: 0,
            }));
        }
        let c: Counted = sqlx::query_as(
            "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint AS now_s, hour, in_hour \
             FROM rate_counters WHERE application_id = $1",
        )
        .bind(application.0)
        .fetch_one(counters)
        .await?;
        let reset_at = (c.hour + 1) * 3600;
        let hour_used_up = c.hour == c.now_s / 3600 && c.in_hour >= per_hour;
        Ok(Some(RateDecision {
            allowed: false,
            limit: per_hour,
            remaining: if hour_used_up { 0 } else { (per_hour - c.in_hour).max(0) },
            reset_at,
            retry_after: if hour_used_up { (reset_at - c.now_s).max(1) } else { 1 },
        }))
    }
}
