//! The enqueued time the hub stamps on every message (`2030-01-02T03:04:05.678Z`): written for
//! each message and read back as the log record's timestamp, so both directions have a fast path
//! for exactly that shape, and fall back to chrono for anything else (same results).

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Timelike, Utc};

/// The length of `YYYY-MM-DDTHH:MM:SS.mmmZ`.
const STAMP_LENGTH: usize = 24;
/// Where the punctuation of `YYYY-MM-DDTHH:MM:SS.mmmZ` goes.
const SEPARATORS: [(usize, u8); 7] = [
    (4, b'-'),
    (7, b'-'),
    (10, b'T'),
    (13, b':'),
    (16, b':'),
    (19, b'.'),
    (23, b'Z'),
];

/// `time` as `to_rfc3339_opts(SecondsFormat::Millis, true)` writes it.
pub(crate) fn format(time: DateTime<Utc>) -> String {
    let year = time.year();
    let nanosecond = time.nanosecond();
    // Years beyond four digits and leap seconds keep chrono's spelling.
    if !(0..=9999).contains(&year) || nanosecond >= 1_000_000_000 {
        return time.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    let mut stamp = [0u8; STAMP_LENGTH];
    let fields: [(usize, u32, usize); 7] = [
        (0, year.unsigned_abs(), 4),
        (5, time.month(), 2),
        (8, time.day(), 2),
        (11, time.hour(), 2),
        (14, time.minute(), 2),
        (17, time.second(), 2),
        (20, nanosecond / 1_000_000, 3),
    ];
    for (at, mut value, width) in fields {
        for index in (at..at + width).rev() {
            // A decimal digit.
            stamp[index] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    for (at, separator) in SEPARATORS {
        stamp[at] = separator;
    }
    stamp.iter().map(|byte| char::from(*byte)).collect()
}

/// Milliseconds since the Unix epoch of an RFC 3339 time, as chrono's `parse_from_rfc3339`
/// reads it; `None` when it is not one.
pub(crate) fn parse_millis(text: &str) -> Option<i64> {
    fast_parse_millis(text).or_else(|| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|time| time.timestamp_millis())
    })
}

fn fast_parse_millis(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != STAMP_LENGTH {
        return None;
    }
    for (at, separator) in SEPARATORS {
        if bytes[at] != separator {
            return None;
        }
    }
    let number = |at: usize, width: usize| -> Option<u32> {
        bytes[at..at + width].iter().try_fold(0u32, |value, byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + u32::from(byte - b'0'))
        })
    };
    let year = i32::try_from(number(0, 4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, number(5, 2)?, number(8, 2)?)?;
    let second = number(17, 2)?;
    // chrono accepts a leap second (:60); leave that to it.
    if second > 59 {
        return None;
    }
    let time = date.and_hms_milli_opt(number(11, 2)?, number(14, 2)?, second, number(20, 3)?)?;
    Some(time.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// From year 0 to year 9999, and a little beyond both ends (the fallback).
    const MIN_MILLIS: i64 = -62_230_000_000_000;
    const MAX_MILLIS: i64 = 253_500_000_000_000;

    proptest! {
        /// The fast writer spells every time exactly as chrono does, and reading it back gives
        /// the same millisecond as chrono's parser.
        #[test]
        fn stamps_match_chrono(millis in MIN_MILLIS..MAX_MILLIS) {
            let time = DateTime::from_timestamp_millis(millis).unwrap();
            let stamp = format(time);
            prop_assert_eq!(&stamp, &time.to_rfc3339_opts(SecondsFormat::Millis, true));
            let chrono = DateTime::parse_from_rfc3339(&stamp).ok().map(|time| time.timestamp_millis());
            prop_assert_eq!(parse_millis(&stamp), chrono);
            if (0..=9999).contains(&time.year()) {
                prop_assert_eq!(parse_millis(&stamp), Some(millis));
            }
        }

        /// Any other text reads as chrono reads it.
        #[test]
        fn other_text_reads_as_chrono_reads_it(text in "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})") {
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|time| time.timestamp_millis());
            prop_assert_eq!(parse_millis(&text), chrono);
        }
    }

    #[test]
    fn fixed_examples() {
        let time = DateTime::parse_from_rfc3339("2030-01-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format(time), "2030-01-02T03:04:05.678Z");
        assert_eq!(
            parse_millis("2030-01-02T03:04:05.678Z"),
            Some(time.timestamp_millis())
        );
        assert_eq!(parse_millis("2030-02-30T03:04:05.678Z"), None);
        assert_eq!(parse_millis("not a time at all, 24 ch"), None);
        assert_eq!(
            parse_millis("2030-01-02T04:04:05.678+01:00"),
            Some(time.timestamp_millis())
        );
    }
}
