//! Timestamps as IoT Hub writes them into `$metadata`: UTC, seven fractional digits, `Z` suffix.

use std::fmt;

use chrono::{DateTime, Timelike, Utc};

/// A point in time with IoT Hub's 100-nanosecond resolution, always rendered as
/// `YYYY-MM-DDTHH:MM:SS.fffffffZ` (for example `2026-11-27T03:04:05.1234567Z`).
///
/// The twin core never reads a clock: callers pass the current time in, which keeps every
/// operation deterministic and testable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TwinTimestamp(DateTime<Utc>);

/// The text given to [`TwinTimestamp::parse`] is not an RFC 3339 timestamp.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {text:?}: {reason}")]
pub struct TimestampParseError {
    /// The rejected text.
    pub text: String,
    /// Why it was rejected.
    pub reason: String,
}

// === impl TwinTimestamp ===

impl TwinTimestamp {
    /// Wraps a UTC time, truncating it to IoT Hub's 100-nanosecond resolution so that the
    /// rendered form and the stored value always agree.
    pub fn from_datetime(at: DateTime<Utc>) -> TwinTimestamp {
        let nanos = at.nanosecond();
        let truncated = at.with_nanosecond(nanos - nanos % 100).unwrap_or(at);
        TwinTimestamp(truncated)
    }

    /// Builds a timestamp from whole seconds and nanoseconds since the Unix epoch, or `None`
    /// when the value is outside the range chrono can represent.
    pub fn from_unix(seconds: i64, nanoseconds: u32) -> Option<TwinTimestamp> {
        DateTime::from_timestamp(seconds, nanoseconds).map(TwinTimestamp::from_datetime)
    }

    /// Parses any RFC 3339 timestamp (the form this type renders is one), converting offsets
    /// to UTC and truncating to 100-nanosecond resolution.
    pub fn parse(text: &str) -> Result<TwinTimestamp, TimestampParseError> {
        DateTime::parse_from_rfc3339(text)
            .map(|parsed| TwinTimestamp::from_datetime(parsed.with_timezone(&Utc)))
            .map_err(|error| TimestampParseError {
                text: text.to_owned(),
                reason: error.to_string(),
            })
    }

    /// The wrapped UTC time.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }
}

impl fmt::Display for TwinTimestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // chrono has no seven-digit fraction specifier, so the fraction is written by hand.
        // A leap second carries nanoseconds >= 1e9 and is shown as second 60 by `%S`.
        let ticks = (self.0.nanosecond() % 1_000_000_000) / 100;
        write!(
            formatter,
            "{}.{ticks:07}Z",
            self.0.format("%Y-%m-%dT%H:%M:%S")
        )
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(input: &str, expect: Expect) {
        let actual = match TwinTimestamp::parse(input) {
            Ok(timestamp) => {
                let rendered = timestamp.to_string();
                let reparsed = TwinTimestamp::parse(&rendered).expect("rendered form parses");
                assert_eq!(reparsed, timestamp, "round trip of {rendered}");
                rendered
            }
            Err(error) => format!("error: {error}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn seven_fraction_digits() {
        check(
            "2026-11-27T03:04:05.1234567Z",
            expect!["2026-11-27T03:04:05.1234567Z"],
        );
        check(
            "2026-11-27T03:04:05Z",
            expect!["2026-11-27T03:04:05.0000000Z"],
        );
        check(
            "2026-11-27T03:04:05.123456789Z",
            expect!["2026-11-27T03:04:05.1234567Z"],
        );
        check(
            "2026-11-27T04:04:05.5+01:00",
            expect!["2026-11-27T03:04:05.5000000Z"],
        );
        check(
            "0001-01-01T00:00:00Z",
            expect!["0001-01-01T00:00:00.0000000Z"],
        );
        check(
            "yesterday",
            expect![[r#"error: invalid timestamp "yesterday": premature end of input"#]],
        );
    }

    #[test]
    fn from_unix_truncates_to_ticks() {
        let timestamp = TwinTimestamp::from_unix(1_795_748_645, 123_456_789).expect("in range");
        expect!["2026-11-27T03:04:05.1234567Z"].assert_eq(&timestamp.to_string());
    }
}
