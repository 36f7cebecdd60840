//! Activity counts on a real database (SQLite, or PostgreSQL when
//! `KEYGATE_TEST_POSTGRES_URL` is set), with time passed in.

use super::*;
use crate::activity::{ActivityCounter, ActivityKind, ActivityRange, RefusalReason};
use testing::TestOps;

/// A whole hour (UTC), so bucket boundaries are easy to name.
const T0: i64 = 1_800_000_000 / 86_400 * 86_400 + 12 * 3_600;

async fn fresh() -> (Store, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = testing::fresh_database_url(dir.path()).await.unwrap();
    let store = Store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    (store, url, dir)
}

async fn app(store: &Store, name: &str) -> ApplicationId {
    store.create_application(ApplicationSettings::new(name), T0 - 40 * 86_400).await.unwrap().0.id
}

#[tokio::test]
async fn counts_land_in_their_hour_and_instances_add_up() {
    let (store, url, _d) = fresh().await;
    let billing = app(&store, "billing").await;
    let etl = app(&store, "etl").await;
    // A second instance: its own store and counter on the same database.
    let other = Store::open(&url).await.unwrap();
    let (mine, theirs) = (ActivityCounter::new(), ActivityCounter::new());
    // 11:59:59 and 12:00:00 fall into different hourly bars.
    mine.record(billing, T0 - 1, ActivityKind::Used);
    mine.record(billing, T0, ActivityKind::Used);
    mine.record(billing, T0, ActivityKind::Issued);
    theirs.record(billing, T0 + 59, ActivityKind::Used);
    theirs.record(billing, T0 + 30, ActivityKind::Refused(RefusalReason::WrongSecret));
    theirs.record(etl, T0 + 5, ActivityKind::Refused(RefusalReason::RateLimited));
    // Both flush the same (application, minute, kind) rows at once.
    let (a, b) = tokio::join!(mine.flush(&store), theirs.flush(&other));
    assert_eq!((a.unwrap(), b.unwrap()), (3, 3));

    let now = T0 + 600;
    let s = store.activity_series(Some(billing), ActivityRange::Day, now).await.unwrap();
    let last = s.buckets.last().unwrap();
    assert_eq!(last.start, T0);
    assert_eq!((last.used, last.issued, last.refused.wrong_secret), (2, 1, 1));
    let before = &s.buckets[s.buckets.len() - 2];
    assert_eq!((before.start, before.used), (T0 - 3_600, 1));
    assert_eq!((s.totals.used, s.totals.refused.total()), (3, 1));

    let all = crate::usecase::activity::overview(&store, ActivityRange::Day, now).await.unwrap();
    assert_eq!(all.series.totals.refused.rate_limited, 1);
    assert_eq!(all.series.totals.used, 3);
    assert_eq!(all.busiest.iter().map(|a| a.application_name.as_str()).collect::<Vec<_>>(), ["billing"]);
    assert_eq!(all.busiest[0].used, 3);
    let refused: Vec<(&str, i64)> = all.most_refused.iter().map(|a| (a.application_name.as_str(), a.refused)).collect();
    assert_eq!(refused, [("billing", 1), ("etl", 1)]);
    other.close().await;
}

#[tokio::test]
async fn minutes_roll_up_into_hours_after_two_days_and_hours_go_after_ninety() {
    let (store, _url, _d) = fresh().await;
    let id = app(&store, "billing").await;
    let counter = ActivityCounter::new();
    let old = T0 - 3 * 86_400; // rolled up at T0
    for minute in 0..3 {
        counter.record(id, old + minute * 60, ActivityKind::Used);
        counter.record(id, old + minute * 60, ActivityKind::Refused(RefusalReason::Scope));
    }
    counter.record(id, T0 - 3_600, ActivityKind::Used); // recent: stays a minute
    counter.record(id, T0 - 91 * 86_400, ActivityKind::Issued); // past 90 days
    counter.flush(&store).await.unwrap();
    assert_eq!(store.activity_row_counts().await.unwrap(), (8, 0));
    let before = store.activity_series(Some(id), ActivityRange::Week, T0).await.unwrap();

    let moved = store.roll_up_activity(T0).await.unwrap();
    assert_eq!(moved, 7, "the six old minutes and the one past retention");
    // Six minutes became two hourly rows; the row past 90 days is gone.
    assert_eq!(store.activity_row_counts().await.unwrap(), (1, 2));
    let after = store.activity_series(Some(id), ActivityRange::Week, T0).await.unwrap();
    assert_eq!(after, before, "rolling up changes no figure");
    assert_eq!((after.totals.used, after.totals.refused.scope), (4, 3));
    // Running it again (another instance, a minute later) moves nothing.
    assert_eq!(store.roll_up_activity(T0 + 60).await.unwrap(), 0);
    assert_eq!(store.activity_series(Some(id), ActivityRange::Week, T0).await.unwrap(), before);
    // Later counts for a rolled-up hour add to it.
    counter.record(id, old + 600, ActivityKind::Used);
    counter.flush(&store).await.unwrap();
    store.roll_up_activity(T0).await.unwrap();
    let s = store.activity_series(Some(id), ActivityRange::Week, T0).await.unwrap();
    assert_eq!(s.totals.used, 5);
    assert_eq!(store.activity_row_counts().await.unwrap(), (1, 2));
}

#[tokio::test]
async fn deleting_an_application_drops_its_counts_and_pending_ones_are_ignored() {
    let (store, _url, _d) = fresh().await;
    let id = app(&store, "short-lived").await;
    let counter = ActivityCounter::new();
    counter.record(id, T0, ActivityKind::Used);
    counter.flush(&store).await.unwrap();
    crate::usecase::applications::delete_application(&store, &crate::usecase::Caller::cli(T0 + 1), id).await.unwrap();
    assert_eq!(store.activity_row_counts().await.unwrap(), (0, 0));
    counter.record(id, T0 + 2, ActivityKind::Used);
    counter.flush(&store).await.unwrap();
    assert_eq!(store.activity_row_counts().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn a_large_flush_is_written_in_chunks_and_adds_up_exactly() {
    let (store, _url, _d) = fresh().await;
    let a = app(&store, "a").await;
    let b = app(&store, "b").await;
    let counter = ActivityCounter::new();
    // 2 applications × 300 minutes × 2 kinds: 1,200 rows, several statements.
    for minute in 0..300 {
        for id in [a, b] {
            counter.record(id, T0 - minute * 60, ActivityKind::Used);
            counter.record(id, T0 - minute * 60, ActivityKind::Used);
            counter.record(id, T0 - minute * 60, ActivityKind::Refused(RefusalReason::Disabled));
        }
    }
    assert_eq!(counter.flush(&store).await.unwrap(), 1_200);
    assert_eq!(store.activity_row_counts().await.unwrap(), (1_200, 0));
    let s = store.activity_series(Some(a), ActivityRange::Day, T0).await.unwrap();
    assert_eq!((s.totals.used, s.totals.refused.disabled), (600, 300));
}

#[tokio::test]
async fn a_named_token_counts_as_issued_with_its_mint() {
    let (store, _url, _d) = fresh().await;
    let id = app(&store, "minted").await;
    store.mint_named_token(id, "deploy", crate::scope::ScopeSet::default(), T0 + 86_400, T0).await.unwrap();
    let s = store.activity_series(Some(id), ActivityRange::Day, T0).await.unwrap();
    assert_eq!(s.totals.issued, 1);
}
