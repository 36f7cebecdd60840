//! Human-readable times for the console: "3 minutes ago", "in 6 days", and
//! the exact UTC time for hover text.

use time::OffsetDateTime;

pub fn relative(at: i64, now: i64) -> String {
    let d = at - now;
    let (future, secs) = if d >= 0 { (true, d) } else { (false, -d) };
    if secs < 45 {
        return "just now".into();
    }
    let (n, unit) = if secs < 55 * 60 {
        (((secs + 30) / 60).max(1), "minute")
    } else if secs < 36 * 3600 {
        ((secs + 1800) / 3600, "hour")
    } else if secs < 45 * 86_400 {
        ((secs + 43_200) / 86_400, "day")
    } else if secs < 545 * 86_400 {
        ((secs + 15 * 86_400) / (30 * 86_400), "month")
    } else {
        ((secs + 182 * 86_400) / (365 * 86_400), "year")
    };
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// `2026-11-23 14:05:09 UTC`
pub fn exact_utc(at: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(at) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => at.to_string(),
    }
}

/// RFC 3339, for `<time datetime=…>`.
pub fn rfc3339(at: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_phrases() {
        assert_eq!(relative(1000, 1000), "just now");
        assert_eq!(relative(1000 - 180, 1000), "3 minutes ago");
        assert_eq!(relative(1000 + 6 * 86_400, 1000), "in 6 days");
        assert_eq!(relative(1000 - 3600, 1000), "1 hour ago");
        assert_eq!(relative(1000 + 400 * 86_400, 1000), "in 13 months");
    }

    #[test]
    fn exact() {
        assert_eq!(exact_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
