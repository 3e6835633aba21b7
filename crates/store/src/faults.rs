//! The file operations the store performs, each behind an optional fault-injection hook.
//!
//! Production code passes no injector and every wrapper is a plain `std::fs` call. Tests pass a
//! [`FaultInjector`] that can fail any operation on command, which is how the property tests
//! exercise full disks and failing `fsync` without a special file system.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// The kinds of file operation a [`FaultInjector`] may fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileOperation {
    /// Writing record frames into a segment.
    WriteSegment,
    /// `fdatasync` of a segment after a batch.
    SyncSegment,
    /// Creating a new segment file (with its header).
    CreateSegment,
    /// Truncating a segment back to its durable length after a failed batch.
    TruncateSegment,
    /// Deleting a segment during retention.
    RemoveSegment,
    /// Writing the temporary file of a checkpoint.
    WriteCheckpoint,
    /// Syncing the temporary file of a checkpoint.
    SyncCheckpoint,
    /// Renaming a checkpoint's temporary file over the live one.
    RenameCheckpoint,
    /// Syncing a directory after creating, renaming or deleting an entry.
    SyncDirectory,
}

impl fmt::Display for FileOperation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            FileOperation::WriteSegment => "write segment",
            FileOperation::SyncSegment => "sync segment",
            FileOperation::CreateSegment => "create segment",
            FileOperation::TruncateSegment => "truncate segment",
            FileOperation::RemoveSegment => "remove segment",
            FileOperation::WriteCheckpoint => "write checkpoint",
            FileOperation::SyncCheckpoint => "sync checkpoint",
            FileOperation::RenameCheckpoint => "rename checkpoint",
            FileOperation::SyncDirectory => "sync directory",
        };
        formatter.write_str(name)
    }
}

/// A hook consulted before every file operation; returning an error makes the operation fail
/// with that error instead of running.
///
/// An injected failure of [`FileOperation::WriteSegment`] first writes half of the buffer, the way
/// a real short write on a full disk leaves a torn frame behind.
pub trait FaultInjector: Send + Sync + fmt::Debug + 'static {
    /// Decides whether `operation` fails.
    fn before(&self, operation: FileOperation) -> io::Result<()>;
}

/// The optional fault injector shared by a log and its checkpoint stores.
#[derive(Clone, Default, Debug)]
pub(crate) struct FaultHook {
    injector: Option<Arc<dyn FaultInjector>>,
}

impl FaultHook {
    pub(crate) fn new(injector: Option<Arc<dyn FaultInjector>>) -> Self {
        FaultHook { injector }
    }

    fn check(&self, operation: FileOperation) -> io::Result<()> {
        match &self.injector {
            Some(injector) => injector.before(operation),
            None => Ok(()),
        }
    }

    pub(crate) fn write_all_at(&self, file: &File, bytes: &[u8], position: u64) -> io::Result<()> {
        if let Err(injected) = self.check(FileOperation::WriteSegment) {
            let torn_length = bytes.len() / 2;
            file.write_all_at(&bytes[..torn_length], position)?;
            return Err(injected);
        }
        file.write_all_at(bytes, position)
    }

    pub(crate) fn sync_data(&self, file: &File) -> io::Result<()> {
        self.check(FileOperation::SyncSegment)?;
        file.sync_data()
    }

    pub(crate) fn set_len(&self, file: &File, length: u64) -> io::Result<()> {
        self.check(FileOperation::TruncateSegment)?;
        file.set_len(length)
    }

    pub(crate) fn create_segment(&self, path: &Path, header: &[u8]) -> io::Result<File> {
        self.check(FileOperation::CreateSegment)?;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.write_all_at(header, 0)?;
        file.sync_all()?;
        Ok(file)
    }

    pub(crate) fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(FileOperation::RemoveSegment)?;
        std::fs::remove_file(path)
    }

    pub(crate) fn write_checkpoint(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.check(FileOperation::WriteCheckpoint)?;
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.write_all_at(bytes, 0)?;
        self.check(FileOperation::SyncCheckpoint)?;
        file.sync_all()
    }

    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(FileOperation::RenameCheckpoint)?;
        std::fs::rename(from, to)
    }

    pub(crate) fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        self.check(FileOperation::SyncDirectory)?;
        File::open(directory)?.sync_all()
    }
}
