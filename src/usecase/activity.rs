//! The activity charts' reads: one application's, and the overview's with
//! the busiest and most-refused applications.

use crate::activity::{ActivityOverview, ActivityRange};
use crate::error::CoreError;
use crate::store::Store;

/// Every application's activity over `range`, with the five busiest and
/// the five most-refused applications.
pub async fn overview(store: &Store, range: ActivityRange, now: i64) -> Result<ActivityOverview, CoreError> {
    let series = store.activity_series(None, range, now).await?;
    let (busiest, most_refused) = store.activity_leaders(range, now).await?;
    Ok(ActivityOverview { series, busiest, most_refused })
}
