//! Per-application activity for the charts: tokens issued, successful
//! uses, and refusals by reason, counted per minute.
//!
//! Counting costs no write per request: [`ActivityCounter`] adds up in
//! memory and is flushed with the last-use batch, adding its counts to the
//! stored ones (so several instances sum up). Minutes older than 48 hours
//! are rolled up into hours; hours are kept 90 days.

use crate::model::ApplicationId;
use serde::{Deserialize, Serialize};

/// Why a request from (or with a credential of) an application was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// A client secret that is not (or no longer) the application's.
    WrongSecret,
    /// An expired or revoked token (an unknown one names no application).
    InvalidToken,
    /// Over the application's rate limit, or too many failed sign-ins.
    RateLimited,
    /// A scope or audience the application or token does not have.
    Scope,
    /// From outside the application's network allowlist.
    AddressNotAllowed,
    /// The application is disabled.
    Disabled,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 6] = [
        RefusalReason::WrongSecret,
        RefusalReason::InvalidToken,
        RefusalReason::RateLimited,
        RefusalReason::Scope,
        RefusalReason::AddressNotAllowed,
        RefusalReason::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::WrongSecret => "wrong_secret",
            RefusalReason::InvalidToken => "invalid_token",
            RefusalReason::RateLimited => "rate_limited",
            RefusalReason::Scope => "scope",
            RefusalReason::AddressNotAllowed => "address_not_allowed",
            RefusalReason::Disabled => "disabled",
        }
    }

    /// As a chart's legend says it.
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::WrongSecret => "wrong secret",
            RefusalReason::InvalidToken => "expired or revoked token",
            RefusalReason::RateLimited => "rate limited",
            RefusalReason::Scope => "scope or audience",
            RefusalReason::AddressNotAllowed => "address not allowed",
            RefusalReason::Disabled => "application disabled",
        }
    }

    pub fn parse(s: &str) -> Option<RefusalReason> {
        RefusalReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The refusal reason of a failed client authentication with a known
    /// client (an unknown client ID names no application).
    pub fn of_client_failure(f: crate::grant::ClientAuthFailure) -> Option<RefusalReason> {
        use crate::grant::ClientAuthFailure as F;
        match f {
            F::UnknownClient => None,
            F::WrongSecret => Some(RefusalReason::WrongSecret),
            F::ApplicationDisabled => Some(RefusalReason::Disabled),
            F::AddressNotAllowed => Some(RefusalReason::AddressNotAllowed),
        }
    }

    /// The refusal reason of a refused token of a known application.
    pub fn of_token_rejection(r: &crate::grant::TokenRejection) -> Option<RefusalReason> {
        use crate::grant::TokenRejection as R;
        match r {
            R::Unknown => None,
            R::Expired { .. } | R::Revoked { .. } => Some(RefusalReason::InvalidToken),
            R::ApplicationDisabled => Some(RefusalReason::Disabled),
            R::AddressNotAllowed => Some(RefusalReason::AddressNotAllowed),
        }
    }
}

/// What one count counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActivityKind {
    Issued,
    Used,
    Refused(RefusalReason),
}

impl ActivityKind {
    /// As stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Issued => "issued",
            ActivityKind::Used => "used",
            ActivityKind::Refused(r) => r.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<ActivityKind> {
        match s {
            "issued" => Some(ActivityKind::Issued),
            "used" => Some(ActivityKind::Used),
            other => RefusalReason::parse(other).map(ActivityKind::Refused),
        }
    }
}

/// The time spans a chart covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum ActivityRange {
    #[default]
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
}

impl ActivityRange {
    pub const ALL: [ActivityRange; 3] = [ActivityRange::Day, ActivityRange::Week, ActivityRange::Month];

    pub fn parse(s: &str) -> Option<ActivityRange> {
        ActivityRange::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ActivityRange::Day => "24h",
            ActivityRange::Week => "7d",
            ActivityRange::Month => "30d",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ActivityRange::Day => "last 24 hours",
            ActivityRange::Week => "last 7 days",
            ActivityRange::Month => "last 30 days",
        }
    }

    /// Seconds per bar: hours for a day, six hours for a week, days for a
    /// month (24, 28 and 30 bars, readable at phone width).
    pub fn bucket_seconds(self) -> i64 {
        match self {
            ActivityRange::Day => 3_600,
            ActivityRange::Week => 6 * 3_600,
            ActivityRange::Month => 86_400,
        }
    }

    pub fn buckets(self) -> i64 {
        match self {
            ActivityRange::Day => 24,
            ActivityRange::Week => 28,
            ActivityRange::Month => 30,
        }
    }

    /// The start of the first bar: bars are aligned to their size (UTC),
    /// and the last one holds `now`.
    pub fn from(self, now: i64) -> i64 {
        let size = self.bucket_seconds();
        now.div_euclid(size) * size - (self.buckets() - 1) * size
    }
}

/// Refusals of one bar (or one application), by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RefusalCounts {
    pub wrong_secret: i64,
    pub invalid_token: i64,
    pub rate_limited: i64,
    pub scope: i64,
    pub address_not_allowed: i64,
    pub disabled: i64,
}

impl RefusalCounts {
    pub fn get(&self, r: RefusalReason) -> i64 {
        match r {
            RefusalReason::WrongSecret => self.wrong_secret,
            RefusalReason::InvalidToken => self.invalid_token,
            RefusalReason::RateLimited => self.rate_limited,
            RefusalReason::Scope => self.scope,
            RefusalReason::AddressNotAllowed => self.address_not_allowed,
            RefusalReason::Disabled => self.disabled,
        }
    }

    fn slot(&mut self, r: RefusalReason) -> &mut i64 {
        match r {
            RefusalReason::WrongSecret => &mut self.wrong_secret,
            RefusalReason::InvalidToken => &mut self.invalid_token,
            RefusalReason::RateLimited => &mut self.rate_limited,
            RefusalReason::Scope => &mut self.scope,
            RefusalReason::AddressNotAllowed => &mut self.address_not_allowed,
            RefusalReason::Disabled => &mut self.disabled,
        }
    }

    pub fn total(&self) -> i64 {
        RefusalReason::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// One bar: what happened from `start` for the range's bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ActivityBucket {
    /// Unix seconds (UTC) the bar starts at.
    pub start: i64,
    pub issued: i64,
    pub used: i64,
    pub refused: RefusalCounts,
}

impl ActivityBucket {
    /// Adds `count` of `kind`.
    pub fn add(&mut self, kind: ActivityKind, count: i64) {
        match kind {
            ActivityKind::Issued => self.issued += count,
            ActivityKind::Used => self.used += count,
            ActivityKind::Refused(r) => *self.refused.slot(r) += count,
        }
    }
}

/// An application's (or every application's) activity over a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ActivitySeries {
    pub range: ActivityRange,
    /// Start of the first bar and end of the last (unix seconds, UTC).
    pub from: i64,
    pub to: i64,
    pub bucket_seconds: i64,
    /// Every bar of the range, oldest first, empty ones included.
    pub buckets: Vec<ActivityBucket>,
    /// The whole range's sums.
    pub totals: ActivityBucket,
}

impl ActivitySeries {
    /// Places counts (bucket start or any time within it, kind, count) in
    /// the range's bars; counts outside the range are ignored.
    pub fn collect(range: ActivityRange, now: i64, counts: impl IntoIterator<Item = (i64, ActivityKind, i64)>) -> Self {
        let from = range.from(now);
        let size = range.bucket_seconds();
        let mut buckets: Vec<ActivityBucket> =
            (0..range.buckets()).map(|i| ActivityBucket { start: from + i * size, ..Default::default() }).collect();
        let mut totals = ActivityBucket { start: from, ..Default::default() };
        for (at, kind, count) in counts {
            if at < from {
                continue;
            }
            if let Some(bucket) = buckets.get_mut(((at - from) / size) as usize) {
                bucket.add(kind, count);
                totals.add(kind, count);
            }
        }
        ActivitySeries { range, from, to: from + range.buckets() * size, bucket_seconds: size, buckets, totals }
    }
}

/// One application's sums over a range (the overview's busiest and
/// most-refused lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApplicationActivity {
    pub application_id: ApplicationId,
    pub application_name: String,
    pub issued: i64,
    pub used: i64,
    pub refused: i64,
}

/// The overview's charts: every application's activity, and the five
/// busiest and five most-refused applications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ActivityOverview {
    pub series: ActivitySeries,
    pub busiest: Vec<ApplicationActivity>,
    pub most_refused: Vec<ApplicationActivity>,
}

/// Counts added up in memory, per application, minute and kind.
#[cfg(feature = "ssr")]
#[derive(Debug, Default)]
pub struct ActivityCounter {
    counts: std::sync::Mutex<std::collections::HashMap<(ApplicationId, i64, ActivityKind), i64>>,
}

/// One stored count: so many of `kind` for an application in the minute
/// starting at `minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteCount {
    pub application_id: ApplicationId,
    pub minute: i64,
    pub kind: ActivityKind,
    pub count: i64,
}

#[cfg(feature = "ssr")]
impl ActivityCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one event at `at` (unix seconds); one short lock, no I/O.
    pub fn record(&self, app: ApplicationId, at: i64, kind: ActivityKind) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry((app, at.div_euclid(60) * 60, kind)).or_default() += 1;
        }
    }

    /// Everything counted since the last take, sorted (one lock order for
    /// every writer).
    pub fn take(&self) -> Vec<MinuteCount> {
        let mut taken: Vec<MinuteCount> = match self.counts.lock() {
            Ok(mut counts) => counts
                .drain()
                .map(|((application_id, minute, kind), count)| MinuteCount { application_id, minute, kind, count })
                .collect(),
            Err(_) => Vec::new(),
        };
        taken.sort_by_key(|c| (c.application_id, c.minute, c.kind));
        taken
    }

    /// Puts counts back after a failed write, for the next flush.
    pub fn put_back(&self, counts: &[MinuteCount]) {
        if let Ok(mut map) = self.counts.lock() {
            for c in counts {
                *map.entry((c.application_id, c.minute, c.kind)).or_default() += c.count;
            }
        }
    }

    /// Writes everything counted (adding to what is stored); on failure
    /// the counts are kept for the next flush.
    pub async fn flush(&self, store: &crate::store::Store) -> Result<usize, crate::CoreError> {
        let counts = self.take();
        if counts.is_empty() {
            return Ok(0);
        }
        match store.add_activity(&counts).await {
            Ok(()) => Ok(counts.len()),
            Err(e) => {
                self.put_back(&counts);
                Err(e)
            }
        }
    }

    /// Number of (application, minute, kind) counts waiting to be written.
    pub fn pending(&self) -> usize {
        self.counts.lock().map(|c| c.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    #[test]
    fn ranges_end_with_the_bar_holding_now() {
        for range in ActivityRange::ALL {
            let s = ActivitySeries::collect(range, NOW, []);
            assert_eq!(s.buckets.len() as i64, range.buckets());
            let last = s.buckets.last().unwrap();
            assert!(last.start <= NOW && NOW < last.start + range.bucket_seconds(), "{range:?}");
            assert_eq!(s.from % range.bucket_seconds(), 0);
            assert_eq!(s.to, last.start + range.bucket_seconds());
        }
    }

    #[test]
    fn counts_fall_into_their_bars_at_the_boundaries() {
        let range = ActivityRange::Day;
        let from = range.from(NOW);
        let counts = [
            (from - 60, ActivityKind::Used, 100), // before the range
            (from, ActivityKind::Used, 1),        // first second of the first bar
            (from + 3_599, ActivityKind::Used, 2),
            (from + 3_600, ActivityKind::Issued, 3), // first second of the second bar
            (NOW, ActivityKind::Refused(RefusalReason::Scope), 4),
            (from + 24 * 3_600, ActivityKind::Used, 50), // after the last bar
        ];
        let s = ActivitySeries::collect(range, NOW, counts);
        assert_eq!(s.buckets[0].used, 3);
        assert_eq!(s.buckets[1].issued, 3);
        assert_eq!(s.buckets[23].refused.scope, 4);
        assert_eq!((s.totals.used, s.totals.issued, s.totals.refused.total()), (3, 3, 4));
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn the_counter_adds_up_per_minute_and_kind() {
        let c = ActivityCounter::new();
        let app = ApplicationId(7);
        c.record(app, 120, ActivityKind::Used);
        c.record(app, 179, ActivityKind::Used);
        c.record(app, 180, ActivityKind::Used);
        c.record(app, 150, ActivityKind::Refused(RefusalReason::WrongSecret));
        let taken = c.take();
        let find = |minute, kind| taken.iter().find(|t| t.minute == minute && t.kind == kind).map(|t| t.count);
        assert_eq!(find(120, ActivityKind::Used), Some(2));
        assert_eq!(find(180, ActivityKind::Used), Some(1));
        assert_eq!(find(120, ActivityKind::Refused(RefusalReason::WrongSecret)), Some(1));
        assert!(c.take().is_empty());
        c.put_back(&taken);
        c.record(app, 121, ActivityKind::Used);
        assert_eq!(c.take().iter().find(|t| t.minute == 120 && t.kind == ActivityKind::Used).map(|t| t.count), Some(3));
    }

    #[test]
    fn kinds_round_trip_through_their_stored_names() {
        let mut kinds = vec![ActivityKind::Issued, ActivityKind::Used];
        kinds.extend(RefusalReason::ALL.map(ActivityKind::Refused));
        for k in kinds {
            assert_eq!(ActivityKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ActivityRange::parse("7d"), Some(ActivityRange::Week));
        assert_eq!(ActivityRange::parse("1y"), None);
    }
}
