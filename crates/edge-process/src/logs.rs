//! Module output: size-capped rotating log files, and reading them back with tail and follow.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use edge_agent::LogOptions;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::sync::{Mutex, broadcast};

use crate::Timestamp;
use crate::record::format_time;

/// Output lines longer than this are split into pieces of this size.
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;

/// The name of the current log file; rotated files get `.1`, `.2`, … (`.1` is the newest).
const CURRENT_LOG_FILE: &str = "output.log";

/// How many followed lines may queue up for slow `logs --follow` readers before they skip some.
const FOLLOW_QUEUE_LINES: usize = 1024;

/// How much of a followed log waits in memory for its reader.
const FOLLOW_PIPE_BYTES: usize = 64 * 1024;

/// How much output a module may keep on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// A log file is rotated before it would grow past this size.
    pub max_file_bytes: u64,
    /// How many rotated files are kept besides the current one.
    pub max_rotated_files: u32,
}

impl Default for LogLimits {
    /// 1 MiB per file, three rotated files: at most 4 MiB per module.
    fn default() -> LogLimits {
        LogLimits {
            max_file_bytes: 1024 * 1024,
            max_rotated_files: 3,
        }
    }
}

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    fn marker(self) -> u8 {
        match self {
            OutputStream::Stdout => b'O',
            OutputStream::Stderr => b'E',
        }
    }
}

/// One line of output, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredLine {
    pub at: Timestamp,
    pub stream: OutputStream,
    pub text: Vec<u8>,
}

/// Appends the stored form of `line`: `<RFC 3339 time> <O|E> <text>\n`.
pub(crate) fn encode_line(line: &StoredLine, output: &mut Vec<u8>) {
    output.extend_from_slice(format_time(line.at).as_bytes());
    output.push(b' ');
    output.push(line.stream.marker());
    output.push(b' ');
    output.extend_from_slice(&line.text);
    output.push(b'\n');
}

/// Reads stored lines back; damaged lines (such as one cut short by a crash) are skipped.
pub(crate) fn decode_lines(bytes: &[u8]) -> Vec<StoredLine> {
    bytes
        .split(|byte| *byte == b'\n')
        .filter_map(|line| {
            let first_space = line.iter().position(|byte| *byte == b' ')?;
            let time_text = std::str::from_utf8(&line[..first_space]).ok()?;
            let at = chrono::DateTime::parse_from_rfc3339(time_text)
                .ok()?
                .with_timezone(&chrono::Utc);
            let rest = &line[first_space + 1..];
            let stream = match rest.first()? {
                b'O' => OutputStream::Stdout,
                b'E' => OutputStream::Stderr,
                _ => return None,
            };
            if rest.get(1) != Some(&b' ') {
                return None;
            }
            Some(StoredLine {
                at,
                stream,
                text: rest[2..].to_vec(),
            })
        })
        .collect()
}

/// Takes the complete lines out of `pending`: up to each newline, and pieces of
/// [`MAX_LOG_LINE_BYTES`] of a line that is longer. What stays is an incomplete line of at most
/// [`MAX_LOG_LINE_BYTES`].
/// The result does not depend on how the output was cut into reads.
pub(crate) fn take_complete_lines(pending: &mut Vec<u8>) -> Vec<Vec<u8>> {
    take_lines_up_to(pending, MAX_LOG_LINE_BYTES)
}

fn take_lines_up_to(pending: &mut Vec<u8>, max_line_bytes: usize) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut start = 0;
    loop {
        let rest = &pending[start..];
        // A newline right after a full-length piece still ends that piece's line.
        let window = &rest[..rest.len().min(max_line_bytes + 1)];
        if let Some(newline) = window.iter().position(|byte| *byte == b'\n') {
            lines.push(rest[..newline].to_vec());
            start += newline + 1;
        } else if rest.len() > max_line_bytes {
            lines.push(rest[..max_line_bytes].to_vec());
            start += max_line_bytes;
        } else {
            break;
        }
    }
    pending.drain(..start);
    lines
}

/// The lines `options` asks for (`since`, `until`, then the last `tail`), pure.
pub(crate) fn select_lines<'a>(lines: &'a [StoredLine], options: &LogOptions) -> &'a [StoredLine] {
    let first = options
        .since
        .map_or(0, |since| lines.partition_point(|line| line.at < since));
    let end = options
        .until
        .map_or(lines.len(), |until| {
            lines.partition_point(|line| line.at <= until)
        })
        .max(first);
    let selected = &lines[first..end];
    match options.tail {
        None => selected,
        Some(tail) => {
            let keep = usize::try_from(tail)
                .unwrap_or(usize::MAX)
                .min(selected.len());
            &selected[selected.len() - keep..]
        }
    }
}

/// Writes a line as `logs` shows it: the text, optionally after its time.
pub(crate) fn render_line(line: &StoredLine, timestamps: bool, output: &mut Vec<u8>) {
    if timestamps {
        output.extend_from_slice(format_time(line.at).as_bytes());
        output.push(b' ');
    }
    output.extend_from_slice(&line.text);
    output.push(b'\n');
}

#[derive(Debug, Clone)]
enum LogEvent {
    Line(Arc<StoredLine>),
    /// The process whose output this is has ended and its output is all written.
    RunEnded,
}

#[derive(Debug)]
struct LogWriter {
    file: Option<tokio::fs::File>,
    size: u64,
    /// Whether a process is writing (between `begin_run` and `end_run`).
    running: bool,
}

/// The output of one module: writes it to disk and hands it to followers.
#[derive(Debug)]
pub(crate) struct ModuleLog {
    directory: PathBuf,
    limits: LogLimits,
    writer: Mutex<LogWriter>,
    events: broadcast::Sender<LogEvent>,
}

impl ModuleLog {
    pub fn new(directory: PathBuf, limits: LogLimits) -> ModuleLog {
        ModuleLog {
            directory,
            limits,
            writer: Mutex::new(LogWriter {
                file: None,
                size: 0,
                running: false,
            }),
            events: broadcast::channel(FOLLOW_QUEUE_LINES).0,
        }
    }

    /// A process starts writing.
    pub async fn begin_run(&self) -> io::Result<()> {
        let mut writer = self.writer.lock().await;
        tokio::fs::create_dir_all(&self.directory).await?;
        writer.running = true;
        Ok(())
    }

    /// The process has ended and its output is written; followers stop.
    pub async fn end_run(&self) {
        let mut writer = self.writer.lock().await;
        writer.running = false;
        let _ = self.events.send(LogEvent::RunEnded);
    }

    /// Appends lines, rotating files as needed. Write errors (a full disk) lose output but
    /// never stop the module.
    pub async fn append(&self, lines: Vec<StoredLine>) {
        let mut writer = self.writer.lock().await;
        for line in lines {
            let mut encoded = Vec::with_capacity(line.text.len() + 40);
            encode_line(&line, &mut encoded);
            if let Err(error) = self.write_encoded(&mut writer, &encoded).await {
                tracing::warn!(
                    message = "Cannot write module output.",
                    directory = %self.directory.display(),
                    %error
                );
                writer.file = None;
            }
            let _ = self.events.send(LogEvent::Line(Arc::new(line)));
        }
        if let Some(file) = writer.file.as_mut() {
            let _ = file.flush().await;
        }
    }

    async fn write_encoded(&self, writer: &mut LogWriter, encoded: &[u8]) -> io::Result<()> {
        let length = encoded.len() as u64;
        if writer.file.is_none() {
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.directory.join(CURRENT_LOG_FILE))
                .await?;
            writer.size = file.metadata().await?.len();
            writer.file = Some(file);
        }
        if writer.size > 0 && writer.size + length > self.limits.max_file_bytes {
            if let Some(mut file) = writer.file.take() {
                file.flush().await?;
            }
            self.rotate().await?;
            writer.file = Some(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.directory.join(CURRENT_LOG_FILE))
                    .await?,
            );
            writer.size = 0;
        }
        if let Some(file) = writer.file.as_mut() {
            file.write_all(encoded).await?;
            writer.size += length;
        }
        Ok(())
    }

    async fn rotate(&self) -> io::Result<()> {
        let oldest = self.limits.max_rotated_files;
        if oldest == 0 {
            return remove_if_exists(&self.directory.join(CURRENT_LOG_FILE)).await;
        }
        remove_if_exists(&rotated_path(&self.directory, oldest)).await?;
        for index in (1..oldest).rev() {
            rename_if_exists(
                &rotated_path(&self.directory, index),
                &rotated_path(&self.directory, index + 1),
            )
            .await?;
        }
        rename_if_exists(
            &self.directory.join(CURRENT_LOG_FILE),
            &rotated_path(&self.directory, 1),
        )
        .await
    }

    /// Every stored line, oldest first.
    async fn read_stored(&self) -> io::Result<Vec<StoredLine>> {
        let mut lines = Vec::new();
        let mut paths: Vec<PathBuf> = (1..=self.limits.max_rotated_files)
            .rev()
            .map(|index| rotated_path(&self.directory, index))
            .collect();
        paths.push(self.directory.join(CURRENT_LOG_FILE));
        for path in paths {
            match tokio::fs::read(&path).await {
                Ok(bytes) => lines.extend(decode_lines(&bytes)),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        Ok(lines)
    }

    /// The stored output `options` asks for; with `follow` and a running process, the stream
    /// then delivers new lines until the process ends or the reader is dropped.
    pub async fn open_reader(&self, options: &LogOptions) -> io::Result<ModuleLogs> {
        // Holding the writer lock makes the stored lines and the subscription line up exactly:
        // no line is lost or shown twice between them.
        let writer = self.writer.lock().await;
        let follow = options.follow && writer.running;
        let receiver = follow.then(|| self.events.subscribe());
        let stored = self.read_stored().await?;
        drop(writer);
        let mut initial = Vec::new();
        for line in select_lines(&stored, options) {
            render_line(line, options.timestamps, &mut initial);
        }
        let Some(receiver) = receiver else {
            return Ok(ModuleLogs {
                inner: LogsInner::Complete(io::Cursor::new(initial)),
            });
        };
        let (pipe_writer, pipe_reader) = tokio::io::duplex(FOLLOW_PIPE_BYTES);
        tokio::spawn(forward_followed_lines(
            initial,
            receiver,
            pipe_writer,
            options.clone(),
        ));
        Ok(ModuleLogs {
            inner: LogsInner::Following(pipe_reader),
        })
    }
}

async fn forward_followed_lines(
    initial: Vec<u8>,
    mut receiver: broadcast::Receiver<LogEvent>,
    mut pipe: tokio::io::DuplexStream,
    options: LogOptions,
) {
    if pipe.write_all(&initial).await.is_err() {
        return;
    }
    loop {
        let mut rendered = Vec::new();
        match receiver.recv().await {
            Ok(LogEvent::Line(line)) => {
                if options.until.is_some_and(|until| line.at > until) {
                    return;
                }
                if options.since.is_some_and(|since| line.at < since) {
                    continue;
                }
                render_line(&line, options.timestamps, &mut rendered);
            }
            Ok(LogEvent::RunEnded) | Err(broadcast::error::RecvError::Closed) => return,
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                rendered = format!("[outpost: {skipped} lines skipped; the reader was too slow]\n")
                    .into_bytes();
            }
        }
        if pipe.write_all(&rendered).await.is_err() {
            return;
        }
    }
}

/// Copies one output stream of a process into its log until the stream closes.
pub(crate) async fn pump_output(
    mut source: impl AsyncRead + Unpin,
    stream: OutputStream,
    log: Arc<ModuleLog>,
) {
    let mut buffer = vec![0_u8; 8 * 1024];
    let mut pending = Vec::new();
    loop {
        let read = match source.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let at = chrono::Utc::now();
        pending.extend_from_slice(&buffer[..read]);
        let lines: Vec<StoredLine> = take_complete_lines(&mut pending)
            .into_iter()
            .map(|text| StoredLine { at, stream, text })
            .collect();
        if !lines.is_empty() {
            log.append(lines).await;
        }
    }
    if !pending.is_empty() {
        log.append(vec![StoredLine {
            at: chrono::Utc::now(),
            stream,
            text: pending,
        }])
        .await;
    }
}

fn rotated_path(directory: &Path, index: u32) -> PathBuf {
    directory.join(format!("{CURRENT_LOG_FILE}.{index}"))
}

async fn remove_if_exists(path: &Path) -> io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

async fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match tokio::fs::rename(from, to).await {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// A module's output as [`edge_agent::ModuleRuntime::logs`] returns it: the stored lines, then,
/// when following a running module, new lines until it ends.
#[derive(Debug)]
pub struct ModuleLogs {
    inner: LogsInner,
}

#[derive(Debug)]
enum LogsInner {
    Complete(io::Cursor<Vec<u8>>),
    Following(tokio::io::DuplexStream),
}

impl AsyncRead for ModuleLogs {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            LogsInner::Complete(cursor) => Pin::new(cursor).poll_read(context, buffer),
            LogsInner::Following(pipe) => Pin::new(pipe).poll_read(context, buffer),
        }
    }
}

/// Reading `(time, stream, text)` and `logs` selections, tested against simple models.
#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    use super::*;

    /// A short line limit, so that the property test meets long lines often and runs fast.
    const TEST_MAX_LINE: usize = 8;

    fn at(second: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, second).unwrap()
    }

    fn sample_lines() -> Vec<StoredLine> {
        (0..6)
            .map(|index| StoredLine {
                at: at(index * 10),
                stream: if index % 2 == 0 {
                    OutputStream::Stdout
                } else {
                    OutputStream::Stderr
                },
                text: format!("line {index}").into_bytes(),
            })
            .collect()
    }

    fn check(options: LogOptions, expect: Expect) {
        let lines = sample_lines();
        let mut rendered = Vec::new();
        for line in select_lines(&lines, &options) {
            render_line(line, options.timestamps, &mut rendered);
        }
        expect.assert_eq(&String::from_utf8(rendered).unwrap());
    }

    #[test]
    fn selections() {
        check(
            LogOptions::default(),
            expect![[r#"
                line 0
                line 1
                line 2
                line 3
                line 4
                line 5
            "#]],
        );
        check(
            LogOptions {
                tail: Some(2),
                ..LogOptions::default()
            },
            expect![[r#"
                line 4
                line 5
            "#]],
        );
        check(
            LogOptions {
                tail: Some(100),
                since: Some(at(30)),
                until: Some(at(40)),
                timestamps: true,
                ..LogOptions::default()
            },
            expect![[r#"
                2026-11-27T10:00:30.000000Z line 3
                2026-11-27T10:00:40.000000Z line 4
            "#]],
        );
        check(
            LogOptions {
                since: Some(at(45)),
                until: Some(at(5)),
                ..LogOptions::default()
            },
            expect![""],
        );
        check(
            LogOptions {
                tail: Some(0),
                ..LogOptions::default()
            },
            expect![""],
        );
    }

    #[test]
    fn stored_form() {
        let mut encoded = Vec::new();
        for line in sample_lines().iter().take(2) {
            encode_line(line, &mut encoded);
        }
        encoded.extend_from_slice(b"2026-11-27T10:00:5");
        expect![[r#"
            2026-11-27T10:00:00.000000Z O line 0
            2026-11-27T10:00:10.000000Z E line 1
            2026-11-27T10:00:5"#]]
        .assert_eq(&String::from_utf8_lossy(&encoded));
        assert_eq!(decode_lines(&encoded), sample_lines()[..2].to_vec());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn stored_lines_round_trip(
            texts in proptest::collection::vec(
                proptest::collection::vec(any::<u8>().prop_filter("no newline", |byte| *byte != b'\n'), 0..40),
                0..8,
            ),
            micros in proptest::collection::vec(0_i64..4_000_000_000_000_000, 8),
        ) {
            let lines: Vec<StoredLine> = texts
                .into_iter()
                .zip(micros)
                .enumerate()
                .map(|(index, (text, micros))| StoredLine {
                    at: Utc.timestamp_micros(micros).unwrap(),
                    stream: if index % 3 == 0 { OutputStream::Stderr } else { OutputStream::Stdout },
                    text,
                })
                .collect();
            let mut encoded = Vec::new();
            for line in &lines {
                encode_line(line, &mut encoded);
            }
            prop_assert_eq!(decode_lines(&encoded), lines);
        }

        #[test]
        fn line_splitting_ignores_read_boundaries(
            output in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'x'), any::<u8>()],
                0..(3 * TEST_MAX_LINE),
            ),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut whole_pending = output.clone();
            let whole_lines = take_lines_up_to(&mut whole_pending, TEST_MAX_LINE);

            let mut cut_points: Vec<usize> = cuts.iter().map(|cut| cut.index(output.len() + 1)).collect();
            cut_points.push(output.len());
            cut_points.sort_unstable();
            let mut pending = Vec::new();
            let mut lines = Vec::new();
            let mut previous = 0;
            for cut in cut_points {
                pending.extend_from_slice(&output[previous..cut]);
                lines.extend(take_lines_up_to(&mut pending, TEST_MAX_LINE));
                previous = cut;
            }
            prop_assert_eq!(&lines, &whole_lines);
            prop_assert_eq!(&pending, &whole_pending);
            prop_assert!(pending.len() <= TEST_MAX_LINE && !pending.contains(&b'\n'));
            prop_assert!(lines.iter().all(|line| line.len() <= TEST_MAX_LINE && !line.contains(&b'\n')));
            let without_newlines: Vec<u8> = output.iter().copied().filter(|byte| *byte != b'\n').collect();
            let mut rebuilt = lines.concat();
            rebuilt.extend_from_slice(&pending);
            prop_assert_eq!(rebuilt, without_newlines);
        }
    }
}
