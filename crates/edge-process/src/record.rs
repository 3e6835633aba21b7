//! The per-module record kept on disk (`modules/<name>/module.json`), a wire type.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use chrono::SecondsFormat;
use edge_deployment::wire::ModuleWire;
use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// The version of the record format; a record of another version is not loaded.
pub(crate) const RECORD_FORMAT: u32 = 1;

/// Why a module process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExitCause {
    /// It ended on its own (a crash, or a clean exit for code 0).
    Exited,
    /// It was stopped through the runtime (`stop`, `restart`, `update`).
    StopRequested,
    /// [`crate::ProcessRuntime::shutdown`] stopped it.
    RuntimeShutdown,
    /// The runtime instance that started it ended without stopping it (a crash of the runtime,
    /// or a host reboot); the next instance found it at start and stopped it if it was still
    /// running. Treat it like a runtime shutdown: it is not the module's failure.
    RuntimeLost,
}

impl ExitCause {
    /// Whether the module itself chose to end, which is what restart policies judge.
    pub fn is_own_exit(self) -> bool {
        self == ExitCause::Exited
    }
}

/// What is stored about one module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ModuleRecord {
    pub format: u32,
    pub name: String,
    /// [`edge_deployment::ConfigHash`] in hex.
    pub config_hash: String,
    /// The spec as manifest JSON, for people and tools reading the data directory.
    pub spec: ModuleWire,
    pub launch: LaunchSettings,
    pub created_at: String,
    /// The process started by the runtime instance that last ran this module, while it runs.
    pub run: Option<RunRecord>,
    pub last_exit: Option<ExitRecord>,
}

/// How to start the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LaunchSettings {
    pub path: String,
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub env: BTreeMap<String, String>,
}

/// A started process, enough to recognise it after a runtime restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunRecord {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`.
    pub start_ticks: u64,
    pub boot_id: Option<String>,
    pub started_at: String,
}

/// How the last process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExitRecord {
    pub exit_code: i64,
    pub finished_at: String,
    pub cause: ExitCause,
}

pub(crate) fn format_time(time: Timestamp) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Reads a stored time; a damaged one reads as the Unix epoch rather than failing the record.
pub(crate) fn parse_time(text: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&chrono::Utc))
        .unwrap_or_default()
}

/// Reads a record; `Ok(None)` when the file does not exist.
pub(crate) fn read_record(path: &Path) -> io::Result<Option<ModuleRecord>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let record: ModuleRecord = serde_json::from_slice(&bytes)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    if record.format != RECORD_FORMAT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("record format {} is not {RECORD_FORMAT}", record.format),
        ));
    }
    Ok(Some(record))
}

/// Writes a record atomically (a temporary file renamed over the old one).
pub(crate) async fn write_record(path: &Path, record: &ModuleRecord) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    let temporary = path.with_extension("json.tmp");
    // The record holds the module's environment, which may carry secrets: owner only.
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .await?;
    tokio::io::AsyncWriteExt::write_all(&mut file, &bytes).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&temporary, path).await
}
