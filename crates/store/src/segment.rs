//! Segment files on disk: naming, the in-memory description of each segment (with its sparse
//! index), opening a directory with crash recovery, and reading records back.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{StoreError, StoreResult};
use crate::faults::FaultHook;
use crate::framing::{
    FRAME_HEADER_LENGTH, FrameDecoding, Record, SEGMENT_HEADER_LENGTH, ScanStop, decode_frame,
    decode_segment_header, encode_segment_header, scan_frames,
};

/// File name suffix of segment files.
const SEGMENT_SUFFIX: &str = ".log";
/// Number of decimal digits in a segment file name.
const SEGMENT_NAME_DIGITS: usize = 20;
/// How many bytes recovery and readers fetch per read call.
const READ_WINDOW_BYTES: usize = 256 * 1024;

/// The path of the segment whose first offset is `base_offset`.
pub(crate) fn segment_path(directory: &Path, base_offset: u64) -> PathBuf {
    directory.join(format!(
        "{base_offset:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    ))
}

/// Parses a segment file name back into its base offset.
pub(crate) fn parse_segment_name(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// File name suffix of a sealed segment's index file.
const INDEX_SUFFIX: &str = ".idx";
const INDEX_MAGIC: [u8; 8] = *b"OUTPSTIX";
const INDEX_FORMAT_VERSION: u32 = 1;

/// The path of the index file of the sealed segment whose first offset is `base_offset`.
///
/// A sealed segment never changes, so its scan result (record count, durable length, newest
/// timestamp, sparse index) is saved next to it when it is sealed and reused on the next open
/// instead of reading the whole segment. The file is a cache: it carries a CRC and the segment
/// length it describes, and anything that does not match makes recovery scan the segment.
pub(crate) fn index_path(directory: &Path, base_offset: u64) -> PathBuf {
    directory.join(format!(
        "{base_offset:0width$}{INDEX_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    ))
}

/// Encodes the index file of a sealed segment.
pub(crate) fn encode_sealed_index(segment: &Segment) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(48 + 16 * segment.sparse_index.len());
    bytes.extend_from_slice(&INDEX_MAGIC);
    bytes.extend_from_slice(&INDEX_FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&segment.base_offset.to_le_bytes());
    bytes.extend_from_slice(&segment.next_offset.to_le_bytes());
    bytes.extend_from_slice(&segment.durable_length.to_le_bytes());
    match segment.newest_timestamp_ms {
        Some(newest) => {
            bytes.push(1);
            bytes.extend_from_slice(&newest.to_le_bytes());
        }
        None => {
            bytes.push(0);
            bytes.extend_from_slice(&0u64.to_le_bytes());
        }
    }
    bytes.extend_from_slice(&(segment.sparse_index.len() as u32).to_le_bytes());
    for entry in &segment.sparse_index {
        bytes.extend_from_slice(&entry.offset.to_le_bytes());
        bytes.extend_from_slice(&entry.position.to_le_bytes());
    }
    let checksum = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

/// Decodes an index file, returning `None` for anything that is not a valid index of a segment
/// with `base_offset` and exactly `file_length` bytes.
fn decode_sealed_index(bytes: &[u8], base_offset: u64, file_length: u64) -> Option<SegmentScan> {
    const FIXED_LENGTH: usize = 8 + 4 + 8 + 8 + 8 + 1 + 8 + 4;
    if bytes.len() < FIXED_LENGTH + 4 {
        return None;
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(trailer.try_into().ok()?) {
        return None;
    }
    let u64_at = |position: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            body.get(position..position + 8)?.try_into().ok()?,
        ))
    };
    if body[0..8] != INDEX_MAGIC
        || u32::from_le_bytes(body[8..12].try_into().ok()?) != INDEX_FORMAT_VERSION
        || u64_at(12)? != base_offset
    {
        return None;
    }
    let next_offset = u64_at(20)?;
    let durable_length = u64_at(28)?;
    if durable_length != file_length || next_offset < base_offset {
        return None;
    }
    let newest_timestamp_ms = match body[36] {
        0 => None,
        1 => Some(u64_at(37)?),
        _ => return None,
    };
    let entry_count = u32::from_le_bytes(body[45..49].try_into().ok()?) as usize;
    if body.len() != FIXED_LENGTH + 16 * entry_count {
        return None;
    }
    let sparse_index: Vec<IndexEntry> = (0..entry_count)
        .map(|index| {
            let position = FIXED_LENGTH + 16 * index;
            Some(IndexEntry {
                offset: u64_at(position)?,
                position: u64_at(position + 8)?,
            })
        })
        .collect::<Option<_>>()?;
    Some(SegmentScan {
        durable_length,
        record_count: next_offset - base_offset,
        newest_timestamp_ms,
        last_indexed_position: sparse_index
            .last()
            .map_or(SEGMENT_HEADER_LENGTH as u64, |entry| entry.position),
        sparse_index,
        needs_header_rewrite: false,
    })
}

/// Saves the index file of a sealed segment. Best effort: without it, recovery scans.
pub(crate) fn write_sealed_index(directory: &Path, base_offset: u64, bytes: &[u8]) {
    let path = index_path(directory, base_offset);
    if let Err(error) = std::fs::write(&path, bytes) {
        tracing::debug!(path = %path.display(), %error, "could not save a segment index");
    }
}

/// Removes the index file of a deleted segment, if there is one.
pub(crate) fn remove_sealed_index(directory: &Path, base_offset: u64) {
    let _ = std::fs::remove_file(index_path(directory, base_offset));
}

/// One sparse index entry: the byte position of the frame holding `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) offset: u64,
    pub(crate) position: u64,
}

/// What the log knows about one segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: u64,
    /// One past the last durable record (equal to `base_offset` when the segment is empty).
    pub(crate) next_offset: u64,
    /// Bytes of the file that hold the header and durable, valid frames.
    pub(crate) durable_length: u64,
    /// The newest timestamp among the segment's records.
    pub(crate) newest_timestamp_ms: Option<u64>,
    /// Frame positions every `index_interval_bytes`; the first frame is implicit.
    pub(crate) sparse_index: Vec<IndexEntry>,
    /// Readers open the file by path for each read, so an idle log holds one descriptor.
    pub(crate) path: PathBuf,
}

impl Segment {
    pub(crate) fn is_empty(&self) -> bool {
        self.next_offset == self.base_offset
    }

    /// The position and offset of the last indexed frame at or before `offset`.
    pub(crate) fn start_for(&self, offset: u64) -> IndexEntry {
        let entries_at_or_before = self
            .sparse_index
            .partition_point(|entry| entry.offset <= offset);
        match entries_at_or_before {
            0 => IndexEntry {
                offset: self.base_offset,
                position: SEGMENT_HEADER_LENGTH as u64,
            },
            count => self.sparse_index[count - 1],
        }
    }
}

/// The result of opening a log directory.
pub(crate) struct RecoveredLog {
    pub(crate) segments: VecDeque<Segment>,
    /// A read-write handle on the last segment, which becomes the active one.
    pub(crate) active_file: File,
    /// The position of the last sparse index entry of the active segment.
    pub(crate) active_last_indexed_position: u64,
}

/// Opens (creating when needed) every segment in `directory`, truncating a torn or corrupt tail
/// of the last segment and rebuilding sparse indexes.
pub(crate) fn recover_directory(
    directory: &Path,
    index_interval_bytes: u64,
    hooks: &FaultHook,
) -> StoreResult<RecoveredLog> {
    let (mut base_offsets, index_base_offsets) = list_segment_files(directory)?;
    base_offsets.sort_unstable();
    for orphan in index_base_offsets
        .into_iter()
        .filter(|base_offset| base_offsets.binary_search(base_offset).is_err())
    {
        // The segment was deleted by retention and the crash came before its index went too.
        remove_sealed_index(directory, orphan);
    }
    if base_offsets.is_empty() {
        let path = segment_path(directory, 0);
        hooks
            .create_segment(&path, &encode_segment_header(0))
            .map_err(|error| StoreError::io("create segment", &path, error))?;
        hooks
            .sync_directory(directory)
            .map_err(|error| StoreError::io("sync directory", directory, error))?;
        base_offsets.push(0);
    }

    let mut segments: VecDeque<Segment> = VecDeque::new();
    let mut active_last_indexed_position = SEGMENT_HEADER_LENGTH as u64;
    let segment_count = base_offsets.len();
    for (segment_index, base_offset) in base_offsets.into_iter().enumerate() {
        let is_last = segment_index + 1 == segment_count;
        let path = segment_path(directory, base_offset);
        let file = File::options()
            .read(true)
            .write(is_last)
            .open(&path)
            .map_err(|error| StoreError::io("open segment", &path, error))?;
        let saved_index = if is_last {
            None
        } else {
            load_sealed_index(directory, &file, &path, base_offset)?
        };
        let loaded_from_index = saved_index.is_some();
        let mut scanned = match saved_index {
            Some(scanned) => scanned,
            None => scan_segment(&file, &path, base_offset, index_interval_bytes, is_last)?,
        };

        let expected_base = segments.back().map_or(0, |previous| previous.next_offset);
        if base_offset < expected_base {
            if scanned.record_count > 0 {
                return Err(StoreError::Corrupt {
                    path,
                    position: 0,
                    detail: format!(
                        "segment starts at offset {base_offset} but the previous segment ends at {expected_base}"
                    ),
                });
            }
            // An empty segment left behind by a roll that failed half-way: it holds nothing.
            tracing::warn!(path = %path.display(), "removing stray empty segment");
            drop(file);
            hooks
                .remove_file(&path)
                .map_err(|error| StoreError::io("remove segment", &path, error))?;
            continue;
        }

        if is_last {
            if scanned.needs_header_rewrite {
                tracing::warn!(path = %path.display(), "rewriting the torn header of the last segment");
                file.set_len(0)
                    .and_then(|()| file.write_all_at(&encode_segment_header(base_offset), 0))
                    .map_err(|error| StoreError::io("rewrite segment header", &path, error))?;
            }
            let file_length = file
                .metadata()
                .map_err(|error| StoreError::io("stat segment", &path, error))?
                .len();
            if file_length != scanned.durable_length {
                if is_zero_range(&file, scanned.durable_length, file_length, &path)? {
                    // The writer's preallocated space, left by a crash: no record was lost.
                    tracing::debug!(
                        path = %path.display(),
                        durable_length = scanned.durable_length,
                        file_length,
                        "cutting off the preallocated space of the last segment"
                    );
                } else {
                    tracing::warn!(
                        path = %path.display(),
                        durable_length = scanned.durable_length,
                        file_length,
                        "truncating the torn tail of the last segment"
                    );
                }
                file.set_len(scanned.durable_length)
                    .map_err(|error| StoreError::io("truncate segment", &path, error))?;
            }
            if scanned.needs_header_rewrite || file_length != scanned.durable_length {
                file.sync_all()
                    .map_err(|error| StoreError::io("sync segment", &path, error))?;
            }
            active_last_indexed_position = scanned.last_indexed_position;
        }

        let segment = Segment {
            base_offset,
            next_offset: base_offset + scanned.record_count,
            durable_length: scanned.durable_length,
            newest_timestamp_ms: scanned.newest_timestamp_ms,
            sparse_index: std::mem::take(&mut scanned.sparse_index),
            path,
        };
        if !is_last && !loaded_from_index && !segment.is_empty() {
            write_sealed_index(directory, base_offset, &encode_sealed_index(&segment));
        }
        segments.push_back(segment);
        if is_last {
            return Ok(RecoveredLog {
                segments,
                active_file: file,
                active_last_indexed_position,
            });
        }
    }

    // The last listed segment was a stray and got removed: reopen the one before it for writing.
    // It is active again, so its saved index would go stale.
    let last = segments
        .back()
        .expect("a stray segment always follows a real one");
    remove_sealed_index(directory, last.base_offset);
    let active_file = File::options()
        .read(true)
        .write(true)
        .open(&last.path)
        .map_err(|error| StoreError::io("open segment", &last.path, error))?;
    let active_last_indexed_position = last
        .sparse_index
        .last()
        .map_or(SEGMENT_HEADER_LENGTH as u64, |entry| entry.position);
    Ok(RecoveredLog {
        segments,
        active_file,
        active_last_indexed_position,
    })
}

/// Reads the saved index of a sealed segment if it is valid for the file as it is now.
fn load_sealed_index(
    directory: &Path,
    file: &File,
    path: &Path,
    base_offset: u64,
) -> StoreResult<Option<SegmentScan>> {
    let Ok(bytes) = std::fs::read(index_path(directory, base_offset)) else {
        return Ok(None);
    };
    let file_length = file
        .metadata()
        .map_err(|error| StoreError::io("stat segment", path, error))?
        .len();
    let mut header = [0u8; SEGMENT_HEADER_LENGTH];
    let header_length = read_up_to(file, &mut header, 0, path)?;
    if decode_segment_header(&header[..header_length]) != Ok(base_offset) {
        return Ok(None);
    }
    Ok(decode_sealed_index(&bytes, base_offset, file_length))
}

/// Lists the base offsets of the segment files and of the index files in `directory`.
fn list_segment_files(directory: &Path) -> StoreResult<(Vec<u64>, Vec<u64>)> {
    let entries = std::fs::read_dir(directory)
        .map_err(|error| StoreError::io("list directory", directory, error))?;
    let mut segment_base_offsets = Vec::new();
    let mut index_base_offsets = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| StoreError::io("list directory", directory, error))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if let Some(base_offset) = parse_segment_name(file_name) {
            segment_base_offsets.push(base_offset);
        } else if let Some(base_offset) = file_name
            .strip_suffix(INDEX_SUFFIX)
            .and_then(|stem| parse_segment_name(&format!("{stem}{SEGMENT_SUFFIX}")))
        {
            index_base_offsets.push(base_offset);
        }
    }
    Ok((segment_base_offsets, index_base_offsets))
}

struct SegmentScan {
    durable_length: u64,
    record_count: u64,
    newest_timestamp_ms: Option<u64>,
    sparse_index: Vec<IndexEntry>,
    last_indexed_position: u64,
    needs_header_rewrite: bool,
}

/// Validates a segment file front to back, window by window.
fn scan_segment(
    file: &File,
    path: &Path,
    base_offset: u64,
    index_interval_bytes: u64,
    is_last: bool,
) -> StoreResult<SegmentScan> {
    let file_length = file
        .metadata()
        .map_err(|error| StoreError::io("stat segment", path, error))?
        .len();
    let mut header = [0u8; SEGMENT_HEADER_LENGTH];
    let header_length = read_up_to(file, &mut header, 0, path)?;
    let header_is_valid = match decode_segment_header(&header[..header_length]) {
        Ok(stored_base) if stored_base == base_offset => true,
        Ok(stored_base) => {
            tracing::warn!(path = %path.display(), stored_base, "segment header names another base offset");
            false
        }
        Err(header_error) => {
            tracing::warn!(path = %path.display(), ?header_error, "invalid segment header");
            false
        }
    };
    let mut scan = SegmentScan {
        durable_length: SEGMENT_HEADER_LENGTH as u64,
        record_count: 0,
        newest_timestamp_ms: None,
        sparse_index: Vec::new(),
        last_indexed_position: SEGMENT_HEADER_LENGTH as u64,
        needs_header_rewrite: !header_is_valid,
    };
    if !header_is_valid {
        if !is_last {
            // A sealed segment whose header is damaged: keep it (for byte accounting and so its
            // offsets stay reserved) but expose no records from it.
            scan.durable_length = file_length;
        }
        return Ok(scan);
    }

    let mut position = SEGMENT_HEADER_LENGTH as u64;
    let mut window = Vec::new();
    loop {
        if position >= file_length {
            break;
        }
        let remaining = file_length - position;
        let want = remaining.min(READ_WINDOW_BYTES as u64) as usize;
        let want = match decode_frame_length_at(file, position, path)? {
            Some(frame_length) => want.max(frame_length.min(remaining as usize)),
            None => want,
        };
        window.resize(want, 0);
        let filled = read_up_to(file, &mut window, position, path)?;
        window.truncate(filled);
        let expected_offset = base_offset + scan.record_count;
        let mut last_indexed_position = scan.last_indexed_position;
        let mut new_entries = Vec::new();
        let window_scan = scan_frames(&window, expected_offset, |relative_position, frame| {
            let absolute_position = position + relative_position as u64;
            if absolute_position - last_indexed_position >= index_interval_bytes {
                new_entries.push(IndexEntry {
                    offset: frame.offset,
                    position: absolute_position,
                });
                last_indexed_position = absolute_position;
            }
        });
        scan.sparse_index.extend(new_entries);
        scan.last_indexed_position = last_indexed_position;
        scan.record_count += window_scan.record_count;
        if let Some(newest) = window_scan.newest_timestamp_ms {
            scan.newest_timestamp_ms =
                Some(scan.newest_timestamp_ms.map_or(newest, |n| n.max(newest)));
        }
        position += window_scan.valid_length as u64;
        match window_scan.stop_reason {
            None => {}
            // The frame straddles the end of this window; the next window starts at it and is
            // large enough to hold it.
            Some(ScanStop::TornFrame) if window_scan.valid_length > 0 => {}
            // A frame that is cut short by the end of the file: a torn write.
            Some(ScanStop::TornFrame) => break,
            Some(stop) => {
                if !is_last {
                    tracing::warn!(
                        path = %path.display(),
                        position,
                        ?stop,
                        "sealed segment is damaged; records after this point are unreadable"
                    );
                }
                break;
            }
        }
    }
    scan.durable_length = position;
    Ok(scan)
}

/// True when every byte of `file` in `start..end` is zero.
fn is_zero_range(file: &File, start: u64, end: u64, path: &Path) -> StoreResult<bool> {
    let mut buffer = vec![0u8; READ_WINDOW_BYTES.min(end.saturating_sub(start) as usize)];
    let mut position = start;
    while position < end {
        let want = buffer.len().min((end - position) as usize);
        let filled = read_up_to(file, &mut buffer[..want], position, path)?;
        if filled == 0 {
            break;
        }
        if buffer[..filled].iter().any(|&byte| byte != 0) {
            return Ok(false);
        }
        position += filled as u64;
    }
    Ok(true)
}

/// Reads the frame header at `position`, if complete, and returns the frame's full length.
fn decode_frame_length_at(file: &File, position: u64, path: &Path) -> StoreResult<Option<usize>> {
    let mut header = [0u8; FRAME_HEADER_LENGTH];
    let filled = read_up_to(file, &mut header, position, path)?;
    Ok(match decode_frame(&header[..filled]) {
        FrameDecoding::Incomplete {
            frame_length: Some(frame_length),
        } => Some(frame_length),
        _ => None,
    })
}

/// Reads as many bytes as available into `buffer` starting at `position`; returns the count.
fn read_up_to(file: &File, buffer: &mut [u8], position: u64, path: &Path) -> StoreResult<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], position + filled as u64) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(StoreError::io("read segment", path, error)),
        }
    }
    Ok(filled)
}

/// A consistent view of one segment that a reader can use without holding the log's lock.
#[derive(Debug, Clone)]
pub(crate) struct SegmentView {
    pub(crate) base_offset: u64,
    /// One past the last readable record.
    pub(crate) next_offset: u64,
    /// Where reading starts, and the offset of the frame there.
    pub(crate) start: IndexEntry,
    pub(crate) durable_length: u64,
    /// False for the active segment.
    pub(crate) is_sealed: bool,
    pub(crate) path: PathBuf,
}

/// Limits on how much one read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// At most this many records.
    pub max_records: usize,
    /// At most this many payload bytes, except that the first record is always returned.
    pub max_bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_records: 1024,
            max_bytes: 1024 * 1024,
        }
    }
}

/// Why [`read_records`] stopped without a result.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// An I/O error.
    Store(StoreError),
    /// Bytes inside the durable part of a segment fail validation.
    Corrupt {
        view: SegmentView,
        position: u64,
        /// The offset the damaged frame should have held.
        expected_offset: u64,
        detail: String,
    },
}

impl From<StoreError> for ReadFailure {
    fn from(error: StoreError) -> Self {
        ReadFailure::Store(error)
    }
}

/// Reads records with offsets at or after `from_offset` from the given segment views.
pub(crate) fn read_records(
    views: &[SegmentView],
    from_offset: u64,
    limits: ReadLimits,
) -> Result<Vec<Record>, ReadFailure> {
    let mut records = Vec::new();
    let mut payload_bytes = 0usize;
    let max_records = limits.max_records.max(1);
    let mut window = Vec::new();
    for view in views {
        let corrupt = |position: u64, expected_offset: u64, detail: String| ReadFailure::Corrupt {
            view: view.clone(),
            position,
            expected_offset,
            detail,
        };
        let reader = match File::open(&view.path) {
            Ok(reader) => reader,
            // Retention deleted the segment after the views were taken: its records are gone.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(StoreError::io("open segment", &view.path, error).into()),
        };
        let mut position = view.start.position;
        let mut expected_offset = view.start.offset;
        while position < view.durable_length && expected_offset < view.next_offset {
            let remaining = view.durable_length - position;
            let mut want = remaining.min(READ_WINDOW_BYTES as u64) as usize;
            if let Some(frame_length) = decode_frame_length_at(&reader, position, &view.path)? {
                want = want.max(frame_length.min(remaining as usize));
            }
            window.resize(want, 0);
            let filled = read_up_to(&reader, &mut window, position, &view.path)?;
            if filled == 0 {
                return Err(corrupt(
                    position,
                    expected_offset,
                    "segment is shorter than its durable length".to_owned(),
                ));
            }
            let mut cursor = 0usize;
            while cursor < filled && expected_offset < view.next_offset {
                let frame_position = position + cursor as u64;
                match decode_frame(&window[cursor..filled]) {
                    FrameDecoding::Complete(frame) if frame.offset != expected_offset => {
                        return Err(corrupt(
                            frame_position,
                            expected_offset,
                            format!(
                                "frame holds offset {} instead of {expected_offset}",
                                frame.offset
                            ),
                        ));
                    }
                    FrameDecoding::Complete(frame) => {
                        if frame.offset >= from_offset {
                            let exceeds_bytes =
                                payload_bytes + frame.payload.len() > limits.max_bytes;
                            if !records.is_empty() && exceeds_bytes {
                                return Ok(records);
                            }
                            payload_bytes += frame.payload.len();
                            records.push(frame.to_record());
                            if records.len() >= max_records {
                                return Ok(records);
                            }
                        }
                        expected_offset += 1;
                        cursor += frame.frame_length;
                    }
                    FrameDecoding::Incomplete { .. } if cursor > 0 => break,
                    FrameDecoding::Incomplete { .. } => {
                        return Err(corrupt(
                            frame_position,
                            expected_offset,
                            "frame extends past the durable end of the segment".to_owned(),
                        ));
                    }
                    FrameDecoding::Corrupt(corruption) => {
                        return Err(corrupt(
                            frame_position,
                            expected_offset,
                            format!("{corruption:?}"),
                        ));
                    }
                }
            }
            position += cursor as u64;
        }
    }
    Ok(records)
}
