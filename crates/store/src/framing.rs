//! The on-disk format of a segment file, as pure encode and decode functions without I/O.
//!
//! A segment file starts with a fixed header followed by record frames, back to back:
//!
//! ```text
//! segment header (24 bytes, little endian):
//!   magic        8 bytes  "OUTPSTLG"
//!   version      u32      SEGMENT_FORMAT_VERSION
//!   base_offset  u64      offset of the first record this segment may hold
//!   header_crc   u32      CRC32 of the 20 bytes before it
//!
//! record frame (24-byte header + payload, little endian):
//!   frame_crc    u32      CRC32 of every byte of the frame after this field
//!   payload_len  u32
//!   offset       u64
//!   timestamp_ms u64
//!   payload      payload_len bytes
//! ```

use bytes::Bytes;

/// The eight bytes every segment file starts with.
pub const SEGMENT_MAGIC: [u8; 8] = *b"OUTPSTLG";
/// The segment format this build writes and reads.
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// Length of the segment header in bytes.
pub const SEGMENT_HEADER_LENGTH: usize = 24;
/// Length of a record frame's header (everything before the payload) in bytes.
pub const FRAME_HEADER_LENGTH: usize = 24;
/// The largest payload a frame may declare; anything larger is treated as corruption,
/// so a damaged length field can never make a reader allocate gigabytes.
pub const MAXIMUM_PAYLOAD_LENGTH: usize = 64 * 1024 * 1024;

/// One record of the log as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position of the record in the log, assigned by the log, strictly increasing.
    pub offset: u64,
    /// Milliseconds since the Unix epoch, supplied when the record was appended.
    pub timestamp_ms: u64,
    /// The opaque bytes the appender handed in.
    pub payload: Bytes,
}

/// A record frame decoded from a byte slice, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedFrame<'a> {
    /// Offset stored in the frame.
    pub offset: u64,
    /// Timestamp stored in the frame.
    pub timestamp_ms: u64,
    /// Payload bytes of the frame.
    pub payload: &'a [u8],
    /// Total length of the frame, header included.
    pub frame_length: usize,
}

impl DecodedFrame<'_> {
    /// Copies the frame into an owned record.
    pub fn to_record(&self) -> Record {
        Record {
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            payload: Bytes::copy_from_slice(self.payload),
        }
    }
}

/// The outcome of decoding one frame from the front of a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDecoding<'a> {
    /// A complete frame whose checksum matches.
    Complete(DecodedFrame<'a>),
    /// The slice ends before the frame does; `frame_length` is known once the header is complete.
    Incomplete { frame_length: Option<usize> },
    /// The bytes are not a valid frame.
    Corrupt(FrameCorruption),
}

/// Why a frame was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameCorruption {
    /// The declared payload length exceeds [`MAXIMUM_PAYLOAD_LENGTH`].
    PayloadLengthTooLarge { payload_length: u64 },
    /// The stored checksum does not match the frame's bytes.
    ChecksumMismatch { stored: u32, computed: u32 },
}

/// Why a segment header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentHeaderError {
    /// Fewer bytes than a header holds.
    Truncated { length: usize },
    /// The file does not start with [`SEGMENT_MAGIC`].
    BadMagic,
    /// The header checksum does not match.
    ChecksumMismatch,
    /// A format version this build does not understand.
    UnsupportedVersion { version: u32 },
}

/// Encodes a segment header for a segment whose first record has `base_offset`.
pub fn encode_segment_header(base_offset: u64) -> [u8; SEGMENT_HEADER_LENGTH] {
    let mut header = [0u8; SEGMENT_HEADER_LENGTH];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&base_offset.to_le_bytes());
    let checksum = crc32fast::hash(&header[0..20]);
    header[20..24].copy_from_slice(&checksum.to_le_bytes());
    header
}

/// Decodes a segment header and returns the base offset it records.
pub fn decode_segment_header(bytes: &[u8]) -> Result<u64, SegmentHeaderError> {
    if bytes.len() < SEGMENT_HEADER_LENGTH {
        return Err(SegmentHeaderError::Truncated {
            length: bytes.len(),
        });
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err(SegmentHeaderError::BadMagic);
    }
    let stored_checksum = read_u32(&bytes[20..24]);
    if crc32fast::hash(&bytes[0..20]) != stored_checksum {
        return Err(SegmentHeaderError::ChecksumMismatch);
    }
    let version = read_u32(&bytes[8..12]);
    if version != SEGMENT_FORMAT_VERSION {
        return Err(SegmentHeaderError::UnsupportedVersion { version });
    }
    Ok(read_u64(&bytes[12..20]))
}

/// The number of bytes a frame with a payload of `payload_length` bytes occupies.
pub fn frame_length(payload_length: usize) -> usize {
    FRAME_HEADER_LENGTH + payload_length
}

/// Appends one encoded frame to `output`.
///
/// The caller guarantees `payload.len() <= MAXIMUM_PAYLOAD_LENGTH`.
pub fn encode_frame(output: &mut Vec<u8>, offset: u64, timestamp_ms: u64, payload: &[u8]) {
    debug_assert!(payload.len() <= MAXIMUM_PAYLOAD_LENGTH);
    let frame_start = output.len();
    output.extend_from_slice(&[0u8; 4]);
    output.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    output.extend_from_slice(&offset.to_le_bytes());
    output.extend_from_slice(&timestamp_ms.to_le_bytes());
    output.extend_from_slice(payload);
    let checksum = crc32fast::hash(&output[frame_start + 4..]);
    output[frame_start..frame_start + 4].copy_from_slice(&checksum.to_le_bytes());
}

/// Decodes the frame at the front of `bytes`.
pub fn decode_frame(bytes: &[u8]) -> FrameDecoding<'_> {
    if bytes.len() < FRAME_HEADER_LENGTH {
        return FrameDecoding::Incomplete { frame_length: None };
    }
    let stored_checksum = read_u32(&bytes[0..4]);
    let payload_length = read_u32(&bytes[4..8]) as usize;
    if payload_length > MAXIMUM_PAYLOAD_LENGTH {
        return FrameDecoding::Corrupt(FrameCorruption::PayloadLengthTooLarge {
            payload_length: payload_length as u64,
        });
    }
    let total_length = frame_length(payload_length);
    if bytes.len() < total_length {
        return FrameDecoding::Incomplete {
            frame_length: Some(total_length),
        };
    }
    let computed_checksum = crc32fast::hash(&bytes[4..total_length]);
    if computed_checksum != stored_checksum {
        return FrameDecoding::Corrupt(FrameCorruption::ChecksumMismatch {
            stored: stored_checksum,
            computed: computed_checksum,
        });
    }
    FrameDecoding::Complete(DecodedFrame {
        offset: read_u64(&bytes[8..16]),
        timestamp_ms: read_u64(&bytes[16..24]),
        payload: &bytes[FRAME_HEADER_LENGTH..total_length],
        frame_length: total_length,
    })
}

/// The valid prefix of a segment's record area, as found by [`scan_frames`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameScan {
    /// Number of bytes of the record area that hold valid, contiguous frames.
    pub valid_length: usize,
    /// Number of valid frames.
    pub record_count: u64,
    /// Offset one past the last valid frame (the base offset when there is none).
    pub next_offset: u64,
    /// Largest timestamp among the valid frames, if any.
    pub newest_timestamp_ms: Option<u64>,
    /// Why scanning stopped before the end of the bytes, if it did.
    pub stop_reason: Option<ScanStop>,
}

/// Why a scan stopped before the end of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStop {
    /// The last frame is cut short (a torn write).
    TornFrame,
    /// A frame failed validation.
    Corrupt(FrameCorruption),
    /// A frame is valid but its offset is not the one expected next.
    UnexpectedOffset { expected: u64, found: u64 },
}

/// Scans the record area of a segment, stopping at the first torn, corrupt or out-of-sequence
/// frame, and calls `on_frame` with the byte position (relative to `record_area`) of every
/// valid frame.
pub fn scan_frames(
    record_area: &[u8],
    base_offset: u64,
    mut on_frame: impl FnMut(usize, &DecodedFrame<'_>),
) -> FrameScan {
    let mut position = 0usize;
    let mut expected_offset = base_offset;
    let mut newest_timestamp_ms = None;
    let mut record_count = 0u64;
    let stop_reason = loop {
        if position == record_area.len() {
            break None;
        }
        match decode_frame(&record_area[position..]) {
            FrameDecoding::Complete(frame) => {
                if frame.offset != expected_offset {
                    break Some(ScanStop::UnexpectedOffset {
                        expected: expected_offset,
                        found: frame.offset,
                    });
                }
                on_frame(position, &frame);
                newest_timestamp_ms = Some(
                    newest_timestamp_ms.map_or(frame.timestamp_ms, |newest: u64| {
                        newest.max(frame.timestamp_ms)
                    }),
                );
                record_count += 1;
                expected_offset += 1;
                position += frame.frame_length;
            }
            FrameDecoding::Incomplete { .. } => break Some(ScanStop::TornFrame),
            FrameDecoding::Corrupt(corruption) => break Some(ScanStop::Corrupt(corruption)),
        }
    };
    FrameScan {
        valid_length: position,
        record_count,
        next_offset: expected_offset,
        newest_timestamp_ms,
        stop_reason,
    }
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut array = [0u8; 4];
    array.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(array)
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(array)
}
