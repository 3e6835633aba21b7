//! The edge runtime as a child process (`outpost edge run`), and waiting helpers for edge tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Hub, outpost_binary};

/// The longest any single wait may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// An `outpost edge run` process with its configuration.
pub struct Edge {
    pub config: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Edge {
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the edge runtime runs already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("edge log file");
        let child = Command::new(outpost_binary())
            .args(["edge", "run", "--config"])
            .arg(&self.config)
            .env("OUTPOST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn outpost edge run");
        self.child = Some(child);
    }

    /// SIGTERM, as systemd stops it; the runtime stops its modules and exits.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                assert!(status.success(), "outpost edge run exited with {status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "outpost edge run did not stop on SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(outpost_binary())
            .args(["edge"])
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("run outpost edge")
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "outpost edge {args:?} failed:\nstdout:\n{}\nstderr:\n{}\nedge log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `outpost edge list --output json`, or `None` while the runtime does not answer yet.
    pub fn status(&self) -> Option<Value> {
        let output = self.cli(&["list", "--output", "json"]);
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `probe` every 200 ms until it gives a value; panics after [`WAIT`] with `what` and the
/// last observation.
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                panic!("timed out waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The `$edgeAgent` twin as `outpost twin show` prints it.
pub fn agent_twin(hub: &Hub, device: &str) -> Value {
    let text = hub.cli_ok(&["twin", "show", device, "--module", "$edgeAgent"]);
    serde_json::from_str(&text).expect("twin JSON")
}

pub fn set_modules(hub: &Hub, directory: &Path, device: &str, content: &Value, extra: &[&str]) {
    let file = directory.join("deployment.json");
    std::fs::write(&file, content.to_string()).expect("write deployment");
    let file_text = file.display().to_string();
    let mut args = vec![
        "edge",
        "set-modules",
        "--device",
        device,
        "--content",
        &file_text,
    ];
    args.extend_from_slice(extra);
    hub.cli_ok(&args);
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `outpost edge init` for `hub`'s device with `connection_string`, data in `directory/edge`,
/// plus `extra` flags; returns the (not yet started) runtime, its log in `directory/edge.log`.
pub fn init_edge(hub: &Hub, connection_string: &str, directory: &Path, extra: &[&str]) -> Edge {
    let data_dir = directory.join("edge");
    let config = data_dir.join("config.toml");
    let output = Command::new(outpost_binary())
        .args(["edge", "init", "--connection-string", connection_string])
        .arg("--ca-file")
        .arg(hub.ca_file())
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--config")
        .arg(&config)
        .args(extra)
        .output()
        .expect("run outpost edge init");
    assert!(
        output.status.success(),
        "outpost edge init failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Edge {
        config,
        log: directory.join("edge.log"),
        child: None,
    }
}
