//! The record format: a small header naming the message's targets, then the caller's opaque
//! payload. One record is written once to the shared log, whatever the number of targets.
//!
//! ```text
//! version u8 (= 2) | enqueued_ms u64 | target count u16 (>= 1) |
//!   { flags_priority u8 | expiry_ms u64 | endpoint length u16 | endpoint bytes (UTF-8) }* |
//!   payload (the rest)
//! ```
//!
//! `flags_priority` holds the priority in its low four bits; bit 7 set means the target was put
//! with [`Overflow::DropOldest`] (it may be deleted to make room), clear means
//! [`Overflow::RefuseNew`]. Version 1 records (no flag) are read as `RefuseNew`: the safe reading,
//! since it never lets overflow delete them.
//!
//! All integers are little-endian. The log frame around the record carries the checksum, so the
//! header only has to be well-formed; a malformed one is a [`HeaderError`], never a panic.

use crate::types::{EndpointId, Overflow, Priority};

/// Format version of the record header.
const HEADER_VERSION: u8 = 2;
/// The version before the overflow flag.
const HEADER_VERSION_WITHOUT_OVERFLOW: u8 = 1;
/// Bit of `flags_priority` set for [`Overflow::DropOldest`] targets.
const DROP_OLDEST_FLAG: u8 = 0x80;

/// Why a stored record header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeaderError {
    /// The record ends before the header does.
    #[error("record header is truncated")]
    Truncated,
    /// The header was written by an unknown format version.
    #[error("unsupported record header version {0}")]
    UnsupportedVersion(u8),
    /// A header must name at least one target.
    #[error("record header has no targets")]
    NoTargets,
    /// A target's priority is out of range.
    #[error("record header has invalid priority {0}")]
    InvalidPriority(u8),
    /// A target's endpoint name is not a valid endpoint id.
    #[error("record header has an invalid endpoint name")]
    InvalidEndpoint,
}

/// One target as stored in a record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredTarget {
    pub(crate) endpoint: EndpointId,
    pub(crate) priority: Priority,
    /// The message expires for this target when `now_ms >= expiry_ms`.
    pub(crate) expiry_ms: u64,
    pub(crate) overflow: Overflow,
}

/// A decoded record header.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) enqueued_ms: u64,
    pub(crate) targets: Vec<StoredTarget>,
}

/// A target seen while walking a header without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TargetView<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) priority: Priority,
    pub(crate) expiry_ms: u64,
    pub(crate) overflow: Overflow,
}

/// Appends the encoded header for `targets` followed by `payload` to `output`.
pub(crate) fn encode_record(
    output: &mut Vec<u8>,
    enqueued_ms: u64,
    targets: &[StoredTarget],
    payload: &[u8],
) {
    output.push(HEADER_VERSION);
    output.extend_from_slice(&enqueued_ms.to_le_bytes());
    output.extend_from_slice(&(targets.len() as u16).to_le_bytes());
    for target in targets {
        let flag = match target.overflow {
            Overflow::DropOldest => DROP_OLDEST_FLAG,
            Overflow::RefuseNew => 0,
        };
        output.push(target.priority.get() | flag);
        output.extend_from_slice(&target.expiry_ms.to_le_bytes());
        let name = target.endpoint.as_str().as_bytes();
        output.extend_from_slice(&(name.len() as u16).to_le_bytes());
        output.extend_from_slice(name);
    }
    output.extend_from_slice(payload);
}

/// Walks the header of `record`, calling `visit` for each target; returns the enqueue time and
/// the position where the payload starts.
pub(crate) fn walk_header<'a>(
    record: &'a [u8],
    mut visit: impl FnMut(TargetView<'a>),
) -> Result<(u64, usize), HeaderError> {
    let mut reader = Reader {
        bytes: record,
        position: 0,
    };
    let version = reader.u8()?;
    if version != HEADER_VERSION && version != HEADER_VERSION_WITHOUT_OVERFLOW {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    let enqueued_ms = reader.u64()?;
    let count = reader.u16()?;
    if count == 0 {
        return Err(HeaderError::NoTargets);
    }
    for _ in 0..count {
        let mut raw_priority = reader.u8()?;
        let mut overflow = Overflow::RefuseNew;
        if version == HEADER_VERSION && raw_priority & DROP_OLDEST_FLAG != 0 {
            overflow = Overflow::DropOldest;
            raw_priority &= !DROP_OLDEST_FLAG;
        }
        let priority =
            Priority::new(raw_priority).map_err(|_| HeaderError::InvalidPriority(raw_priority))?;
        let expiry_ms = reader.u64()?;
        let length = reader.u16()? as usize;
        let name =
            std::str::from_utf8(reader.take(length)?).map_err(|_| HeaderError::InvalidEndpoint)?;
        if EndpointId::validate(name).is_err() {
            return Err(HeaderError::InvalidEndpoint);
        }
        visit(TargetView {
            endpoint: name,
            priority,
            expiry_ms,
            overflow,
        });
    }
    Ok((enqueued_ms, reader.position))
}

/// Decodes the header of `record` into owned values; returns it with the payload's start.
#[cfg(test)]
pub(crate) fn decode_header(record: &[u8]) -> Result<(RecordHeader, usize), HeaderError> {
    let mut targets = Vec::new();
    let (enqueued_ms, payload_start) = walk_header(record, |target| {
        targets.push(StoredTarget {
            endpoint: EndpointId(target.endpoint.to_owned()),
            priority: target.priority,
            expiry_ms: target.expiry_ms,
            overflow: target.overflow,
        });
    })?;
    Ok((
        RecordHeader {
            enqueued_ms,
            targets,
        },
        payload_start,
    ))
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], HeaderError> {
        let end = self
            .position
            .checked_add(count)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(HeaderError::Truncated)?;
        let taken = &self.bytes[self.position..end];
        self.position = end;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, HeaderError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, HeaderError> {
        let mut bytes = [0; 2];
        bytes.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, HeaderError> {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn target(endpoint: &str, priority: u8, expiry_ms: u64, overflow: Overflow) -> StoredTarget {
        StoredTarget {
            endpoint: EndpointId::new(endpoint).unwrap(),
            priority: Priority::new(priority).unwrap(),
            expiry_ms,
            overflow,
        }
    }

    /// Encodes, shows the bytes in hex, decodes and checks the round trip.
    fn check(targets: &[StoredTarget], payload: &[u8], expected: Expect) {
        let mut bytes = Vec::new();
        encode_record(&mut bytes, 1_700_000_000_000, targets, payload);
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        expected.assert_eq(&hex);
        let (header, payload_start) = decode_header(&bytes).unwrap();
        assert_eq!(header.enqueued_ms, 1_700_000_000_000);
        assert_eq!(header.targets, targets);
        assert_eq!(&bytes[payload_start..], payload);
        // Every strict prefix that cuts into the header is an error, never a panic.
        for length in 0..payload_start {
            assert!(decode_header(&bytes[..length]).is_err(), "prefix {length}");
        }
    }

    #[test]
    fn one_target() {
        check(
            &[target("$upstream", 10, 7, Overflow::RefuseNew)],
            b"hi",
            expect!["020068e5cf8b01000001000a0700000000000000090024757073747265616d6869"],
        );
    }

    #[test]
    fn two_targets_with_slashes() {
        check(
            &[
                target("edge-1/filter/input1", 0, u64::MAX, Overflow::DropOldest),
                target("$upstream", 3, 0, Overflow::RefuseNew),
            ],
            b"",
            expect![
                "020068e5cf8b010000020080ffffffffffffffff1400656467652d312f66696c7465722f696e70757431030000000000000000090024757073747265616d"
            ],
        );
    }

    #[test]
    fn version_1_records_read_as_refuse_new_and_ignore_the_flag_bit() {
        let mut bytes = vec![1];
        bytes.extend_from_slice(&5u64.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.push(3);
        bytes.extend_from_slice(&9u64.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.push(b'a');
        bytes.extend_from_slice(b"body");
        let (header, payload_start) = decode_header(&bytes).unwrap();
        assert_eq!(header.targets, [target("a", 3, 9, Overflow::RefuseNew)]);
        assert_eq!(&bytes[payload_start..], b"body");
        // In version 1 the high bit was never a flag: 0x83 is an invalid priority, not a flag.
        bytes[11] = 0x83;
        check_error(&bytes, expect!["InvalidPriority(131)"]);
    }

    fn check_error(bytes: &[u8], expected: Expect) {
        expected.assert_eq(&format!("{:?}", decode_header(bytes).unwrap_err()));
    }

    #[test]
    fn malformed_headers_are_errors() {
        check_error(&[], expect!["Truncated"]);
        check_error(
            &[3, 0, 0, 0, 0, 0, 0, 0, 0],
            expect!["UnsupportedVersion(3)"],
        );
        check_error(
            &[2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x8b],
            expect!["InvalidPriority(11)"],
        );
        check_error(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], expect!["NoTargets"]);
        check_error(
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 11],
            expect!["InvalidPriority(11)"],
        );
        let mut bad_name = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0];
        bad_name.extend_from_slice(&[0; 8]);
        bad_name.extend_from_slice(&[1, 0, 0x0a]);
        check_error(&bad_name, expect!["InvalidEndpoint"]);
        let mut huge_length = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0];
        huge_length.extend_from_slice(&[0; 8]);
        huge_length.extend_from_slice(&[0xff, 0xff, b'a']);
        check_error(&huge_length, expect!["Truncated"]);
    }
}
