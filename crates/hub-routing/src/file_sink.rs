//! The file endpoint's delivery task: append-only JSON lines, one `fdatasync` per batch.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::names::EndpointName;
use crate::record::encode_endpoint_record;
use crate::router::RoutedMessage;
use crate::stats::EndpointCounters;

/// Appends every message from `queue` to the file at `path` until the queue closes and is
/// drained. Each batch (whatever is queued, up to `batch_max` messages) is written with one
/// `write` and made durable with one `fdatasync`; the blocking file work runs on tokio's
/// blocking pool.
pub(crate) async fn run_file_worker(
    name: EndpointName,
    path: PathBuf,
    mut queue: mpsc::Receiver<Arc<RoutedMessage>>,
    counters: Arc<EndpointCounters>,
    batch_max: usize,
) {
    let mut file: Option<File> = None;
    let mut batch = Vec::with_capacity(batch_max);
    while queue.recv_many(&mut batch, batch_max).await > 0 {
        let count = batch.len() as u64;
        let mut lines = Vec::new();
        for routed in batch.drain(..) {
            lines.extend_from_slice(&encode_endpoint_record(&routed.message));
            lines.push(b'\n');
        }
        let path_for_write = path.clone();
        let open_file = file.take();
        let result = tokio::task::spawn_blocking(move || {
            append_and_sync(open_file, &path_for_write, &lines)
        })
        .await;
        match result {
            Ok(Ok(written_file)) => {
                file = Some(written_file);
                counters.add_delivered(count);
            }
            Ok(Err(error)) => {
                let reason = format!("cannot append to {}: {error}", path.display());
                tracing::warn!(endpoint = %name, %reason, messages = count, "dead-lettering batch");
                counters.add_dead_lettered(count, reason);
            }
            Err(error) => {
                let reason = format!("file writer task failed: {error}");
                tracing::warn!(endpoint = %name, %reason, messages = count, "dead-lettering batch");
                counters.add_dead_lettered(count, reason);
            }
        }
    }
}

/// Opens the file when needed (creating it and its directories; a new file's directory entry
/// is synced too), appends `lines` and syncs the data.
fn append_and_sync(file: Option<File>, path: &Path, lines: &[u8]) -> std::io::Result<File> {
    let mut file = match file {
        Some(file) => file,
        None => open_for_append(path)?,
    };
    file.write_all(lines)?;
    file.sync_data()?;
    Ok(file)
}

fn open_for_append(path: &Path) -> std::io::Result<File> {
    let existed = path.exists();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    if !existed && let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(file)
}
