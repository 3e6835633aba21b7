//! A small durable map from consumer names to committed offsets.
//!
//! The whole map lives in one file, replaced atomically on every commit: write a temporary file,
//! `fsync` it, rename it over the live file, `fsync` the directory. The file carries a CRC so a
//! damaged file is reported rather than silently misread.
//!
//! ```text
//! magic "OUTPSTCK" | version u32 | entry count u32 |
//!   { name length u16 | name bytes | offset u64 }* | crc32 u32 (of everything before it)
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{StoreError, StoreResult};
use crate::faults::{FaultHook, FaultInjector};

const CHECKPOINT_MAGIC: [u8; 8] = *b"OUTPSTCK";
const CHECKPOINT_FORMAT_VERSION: u32 = 1;
const MAXIMUM_NAME_LENGTH: usize = 255;

/// A validated consumer or group name: 1 to 255 bytes of UTF-8 without control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckpointName(String);

impl CheckpointName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> StoreResult<CheckpointName> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("must not be empty")
        } else if name.len() > MAXIMUM_NAME_LENGTH {
            Some("must be at most 255 bytes")
        } else if name.chars().any(char::is_control) {
            Some("must not contain control characters")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StoreError::InvalidCheckpointName { name, reason }),
            None => Ok(CheckpointName(name)),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CheckpointName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Durable named offsets. Cloning shares the same store.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    inner: Arc<Mutex<CheckpointInner>>,
}

#[derive(Debug)]
struct CheckpointInner {
    path: PathBuf,
    temporary_path: PathBuf,
    directory: PathBuf,
    entries: BTreeMap<CheckpointName, u64>,
    hooks: FaultHook,
}

impl CheckpointStore {
    /// Opens the checkpoint file at `path` (an empty store when it does not exist yet).
    pub fn open(path: impl Into<PathBuf>) -> StoreResult<CheckpointStore> {
        CheckpointStore::open_with_faults(path, None)
    }

    /// Like [`CheckpointStore::open`], with a fault injector for tests.
    pub fn open_with_faults(
        path: impl Into<PathBuf>,
        fault_injector: Option<Arc<dyn FaultInjector>>,
    ) -> StoreResult<CheckpointStore> {
        let path = path.into();
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&directory)
            .map_err(|error| StoreError::io("create directory", &directory, error))?;
        let mut temporary_name = path.file_name().unwrap_or_default().to_os_string();
        temporary_name.push(".tmp");
        let temporary_path = directory.join(temporary_name);
        let entries = match std::fs::read(&path) {
            Ok(bytes) => decode_checkpoints(&bytes).map_err(|detail| StoreError::Corrupt {
                path: path.clone(),
                position: 0,
                detail: detail.to_owned(),
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(StoreError::io("read checkpoints", &path, error)),
        };
        // A temporary file left by a crash before its rename holds nothing committed.
        let _ = std::fs::remove_file(&temporary_path);
        Ok(CheckpointStore {
            inner: Arc::new(Mutex::new(CheckpointInner {
                path,
                temporary_path,
                directory,
                entries,
                hooks: FaultHook::new(fault_injector),
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, CheckpointInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The committed offset of `name`, if any.
    pub fn get(&self, name: &CheckpointName) -> Option<u64> {
        self.lock().entries.get(name).copied()
    }

    /// Every committed name and offset, in name order.
    pub fn entries(&self) -> Vec<(CheckpointName, u64)> {
        self.lock()
            .entries
            .iter()
            .map(|(name, offset)| (name.clone(), *offset))
            .collect()
    }

    /// Durably records `offset` for `name`; on return the value survives a crash.
    pub async fn commit(&self, name: CheckpointName, offset: u64) -> StoreResult<()> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.commit_blocking(name, offset))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Like [`CheckpointStore::commit`], on the calling thread.
    pub fn commit_blocking(&self, name: CheckpointName, offset: u64) -> StoreResult<()> {
        let mut inner = self.lock();
        let mut entries = inner.entries.clone();
        entries.insert(name, offset);
        inner.persist(&entries)?;
        inner.entries = entries;
        Ok(())
    }

    /// Durably forgets `name`.
    pub fn remove_blocking(&self, name: &CheckpointName) -> StoreResult<()> {
        let mut inner = self.lock();
        let mut entries = inner.entries.clone();
        if entries.remove(name).is_none() {
            return Ok(());
        }
        inner.persist(&entries)?;
        inner.entries = entries;
        Ok(())
    }
}

impl CheckpointInner {
    fn persist(&self, entries: &BTreeMap<CheckpointName, u64>) -> StoreResult<()> {
        let bytes = encode_checkpoints(entries);
        self.hooks
            .write_checkpoint(&self.temporary_path, &bytes)
            .map_err(|error| StoreError::io("write checkpoints", &self.temporary_path, error))?;
        self.hooks
            .rename(&self.temporary_path, &self.path)
            .map_err(|error| StoreError::io("rename checkpoints", &self.path, error))?;
        self.hooks
            .sync_directory(&self.directory)
            .map_err(|error| StoreError::io("sync directory", &self.directory, error))
    }
}

/// Encodes the checkpoint file.
pub(crate) fn encode_checkpoints(entries: &BTreeMap<CheckpointName, u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&CHECKPOINT_MAGIC);
    bytes.extend_from_slice(&CHECKPOINT_FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (name, offset) in entries {
        bytes.extend_from_slice(&(name.0.len() as u16).to_le_bytes());
        bytes.extend_from_slice(name.0.as_bytes());
        bytes.extend_from_slice(&offset.to_le_bytes());
    }
    let checksum = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

/// Decodes the checkpoint file, rejecting anything malformed.
pub(crate) fn decode_checkpoints(
    bytes: &[u8],
) -> Result<BTreeMap<CheckpointName, u64>, &'static str> {
    if bytes.len() < 20 {
        return Err("checkpoint file is truncated");
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 4);
    let stored_checksum = u32::from_le_bytes(trailer.try_into().map_err(|_| "bad trailer")?);
    if crc32fast::hash(body) != stored_checksum {
        return Err("checkpoint checksum mismatch");
    }
    if body[0..8] != CHECKPOINT_MAGIC {
        return Err("not a checkpoint file");
    }
    let mut reader = ByteReader { bytes: &body[8..] };
    if reader.u32()? != CHECKPOINT_FORMAT_VERSION {
        return Err("unsupported checkpoint format version");
    }
    let count = reader.u32()?;
    let mut entries = BTreeMap::new();
    for _ in 0..count {
        let name_length = reader.u16()? as usize;
        let name_bytes = reader.take(name_length)?;
        let name = std::str::from_utf8(name_bytes).map_err(|_| "checkpoint name is not UTF-8")?;
        let name = CheckpointName::new(name).map_err(|_| "invalid checkpoint name")?;
        let offset = reader.u64()?;
        entries.insert(name, offset);
    }
    if !reader.bytes.is_empty() {
        return Err("trailing bytes in checkpoint file");
    }
    Ok(entries)
}

struct ByteReader<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], &'static str> {
        if self.bytes.len() < count {
            return Err("checkpoint file is truncated");
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().map_err(|_| "short")?,
        ))
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "short")?,
        ))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "short")?,
        ))
    }
}
