//! Times on the wire: RFC 3339, UTC, exactly three fractional digits.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now() -> String {
    format(Utc::now())
}

/// Seconds from the wire time `sent_at` until now (0 for a time in the future, `None` for one that
/// does not parse): the end-to-end latency of a message.
pub fn seconds_since(sent_at: &str) -> Option<f64> {
    let then = DateTime::parse_from_rfc3339(sent_at).ok()?;
    let ms = (Utc::now() - then.with_timezone(&Utc)).num_milliseconds();
    Some(ms.max(0) as f64 / 1000.0)
}

pub fn from_unix_secs(secs: i64) -> String {
    format(DateTime::from_timestamp(secs, 0).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn three_fraction_digits_and_z() {
        let t = super::from_unix_secs(1_795_000_000);
        assert_eq!(t.len(), "2026-11-23T00:43:41.165Z".len());
        assert!(t.ends_with(".000Z"), "{t}");
    }
}
