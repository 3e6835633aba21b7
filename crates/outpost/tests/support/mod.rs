//! Shared harness for black-box tests: runs the real `outpost` binary and the official Python SDKs against it.
//!
//! The device SDK dials fixed ports (8883, 443), so every hub gets its own loopback address instead of its own port.

#![allow(dead_code)]

pub mod edge;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// A running hub process with its own data directory and loopback address.
pub struct Hub {
    pub address: String,
    pub data_dir: PathBuf,
    child: Option<Child>,
    _temp: Option<tempfile::TempDir>,
}

/// Hands out loopback addresses `127.0.<subnet>.<n>`; each test file passes its own subnet.
pub fn next_address(subnet: u8, counter: &AtomicU8) -> String {
    let host = counter.fetch_add(1, Ordering::SeqCst) + 2;
    format!("127.0.{subnet}.{host}")
}

pub fn outpost_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outpost"))
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The Python interpreter of the venv `scripts/test` prepares.
pub fn python() -> PathBuf {
    if let Ok(path) = std::env::var("OUTPOST_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python venv with the Azure IoT SDKs at {}: run `bash scripts/test`, which creates it",
        venv.display()
    );
    venv
}

impl Hub {
    /// Starts a hub in a fresh temporary data directory.
    pub fn start(address: &str) -> Hub {
        let temp = tempfile::tempdir().expect("tempdir");
        let data_dir = temp.path().join("hub");
        let mut hub = Hub {
            address: address.to_owned(),
            data_dir,
            child: None,
            _temp: Some(temp),
        };
        hub.spawn();
        hub
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .expect("hub log file");
        let child = Command::new(outpost_binary())
            .args(["hub", "serve", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--hostname", &self.address])
            .args(["--mqtt-addr", &format!("{}:8883", self.address)])
            .args(["--https-addr", &format!("{}:443", self.address)])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn outpost hub serve");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                panic!("hub exited early with {status}; log:\n{}", self.log());
            }
            let ready = self.data_dir.join("owner-connection-string").exists()
                && std::net::TcpStream::connect(format!("{}:8883", self.address)).is_ok()
                && std::net::TcpStream::connect(format!("{}:443", self.address)).is_ok();
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hub did not become ready; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    /// Kills the process without warning (SIGKILL), like a power cut for the process.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    /// Starts the hub again after [`Hub::kill_9`], on the same data directory and address.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the hub runs already");
        self.spawn();
    }

    /// Starts the hub again on the same data directory.
    pub fn restart(&mut self) {
        self.kill_9();
        self.spawn();
    }

    pub fn owner_connection_string(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("owner-connection-string"))
            .expect("owner connection string")
            .trim()
            .to_owned()
    }

    pub fn ca_file(&self) -> PathBuf {
        self.data_dir.join("ca.pem")
    }

    /// Runs one scenario of tests/sdk/scenarios.py and returns its JSON result; panics with the output on failure.
    pub fn scenario(&self, args: &[&str], extra_env: &[(&str, &str)]) -> serde_json::Value {
        let script = workspace_root().join("tests/sdk/scenarios.py");
        let mut command = Command::new(python());
        command
            .arg(script)
            .args(args)
            .env("OUTPOST_HUB_CS", self.owner_connection_string())
            .env("OUTPOST_CA_FILE", self.ca_file())
            .env("REQUESTS_CA_BUNDLE", self.ca_file());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let output = command.output().expect("run python scenario");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "scenario {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}\nhub log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|error| panic!("scenario printed no JSON ({error}): {stdout}"))
    }

    /// Runs an `outpost` management command against this hub.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(outpost_binary())
            .args(args)
            .env(
                "OUTPOST_HUB_CONNECTION_STRING",
                self.owner_connection_string(),
            )
            .env("OUTPOST_CA_FILE", self.ca_file())
            .output()
            .expect("run outpost")
    }

    /// Runs a management command that must succeed and returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "outpost {args:?} failed:\nstdout:\n{}\nstderr:\n{}\nhub log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The certificate chain the TLS server at `address:port` serves to a client trusting only `root`
/// (the handshake fails unless the chain verifies against it).
pub fn served_chain(
    address: &str,
    port: u16,
    root: &tls::CertificateDer<'static>,
) -> Result<Vec<tls::CertificateDer<'static>>, String> {
    let config =
        tls::client_config(std::slice::from_ref(root)).map_err(|error| error.to_string())?;
    let address: std::net::IpAddr = address.parse().map_err(|error| format!("{error}"))?;
    let mut connection = tls::rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        tls::rustls::pki_types::ServerName::IpAddress(address.into()),
    )
    .map_err(|error| error.to_string())?;
    let mut socket =
        std::net::TcpStream::connect((address, port)).map_err(|error| error.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|error| error.to_string())?;
    while connection.is_handshaking() {
        connection
            .complete_io(&mut socket)
            .map_err(|error| format!("handshake: {error}"))?;
    }
    let chain = connection
        .peer_certificates()
        .ok_or("no server certificate")?
        .iter()
        .map(|certificate| certificate.clone().into_owned())
        .collect();
    // Leave politely; the server sees a client that never sent CONNECT.
    connection.send_close_notify();
    let _ = connection.complete_io(&mut socket);
    let _ = std::io::Write::flush(&mut socket);
    let _ = std::io::Read::read(&mut socket, &mut [0u8; 1]);
    Ok(chain)
}
