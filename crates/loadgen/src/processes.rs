//! The servers under test as child processes: an Outpost hub on a fresh data directory and Mosquitto
//! with a generated configuration, each on its own loopback address, plus what `/proc` says about them.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tokio::process::{Child, Command};

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often start-up is polled.
const START_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A running server that is killed when this value is dropped.
pub struct ServerProcess {
    name: String,
    child: Child,
    pid: u32,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` with its standard output and error going to `log_path`.
    pub(crate) fn spawn(
        name: &str,
        mut command: Command,
        log_path: PathBuf,
    ) -> anyhow::Result<ServerProcess> {
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name} ({command:?})"))?;
        let pid = child.id().ok_or_else(|| anyhow!("{name} exited at once"))?;
        Ok(ServerProcess {
            name: name.to_owned(),
            child,
            pid,
            log_path,
        })
    }

    /// The operating system's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The resident set size now, in KiB.
    pub fn resident_kib(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        parse_vm_rss_kib(&status).ok_or_else(|| anyhow!("{path} has no VmRSS line"))
    }

    /// The resident set now, split into anonymous memory (heap, stacks) and file-backed pages (the
    /// program's code and data), in KiB: `(VmRSS, RssAnon, RssFile)`.
    pub fn resident_breakdown_kib(&self) -> anyhow::Result<(u64, u64, u64)> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let field = |name: &str| {
            parse_status_kib(&status, name).ok_or_else(|| anyhow!("{path} has no {name} line"))
        };
        Ok((field("VmRSS")?, field("RssAnon")?, field("RssFile")?))
    }

    /// The process's thread count now (`Threads:` in `/proc/PID/status`).
    pub fn threads(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        parse_status_kib(&status, "Threads").ok_or_else(|| anyhow!("{path} has no Threads line"))
    }

    /// Fails with the end of the server's log if it has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); the end of its log {}:\n{}",
                self.name,
                self.log_path.display(),
                log_tail(&self.log_path)
            );
        }
        Ok(())
    }

    /// Waits until `address` accepts TCP connections and `ready` holds, failing early if the server exits.
    pub(crate) async fn wait_until_listening(
        &mut self,
        addresses: &[SocketAddr],
        ready: impl Fn() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.ensure_running()?;
            let mut all_listening = ready();
            for address in addresses {
                all_listening =
                    all_listening && tokio::net::TcpStream::connect(address).await.is_ok();
            }
            if all_listening {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {addresses:?} within {START_TIMEOUT:?}; the end of its log {}:\n{}",
                    self.name,
                    self.log_path.display(),
                    log_tail(&self.log_path)
                );
            }
            tokio::time::sleep(START_POLL_INTERVAL).await;
        }
    }

    /// Kills the server with SIGKILL (no chance to flush or say goodbye) and waits for it to exit.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Stops the server and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A free TCP port on `ip`, found by binding port 0 and letting go of it.
pub fn free_port(ip: IpAddr) -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind((ip, 0)).with_context(|| format!("cannot bind a port on {ip}"))?;
    Ok(listener.local_addr()?)
}

/// Where to find the servers' programs.
#[derive(Clone, Debug)]
pub struct Programs {
    pub outpost: PathBuf,
    pub mosquitto: PathBuf,
}

impl Programs {
    /// `outpost` next to this program (both come out of the same `cargo build`), else from `PATH`;
    /// `mosquitto` from `PATH`, else where the Debian package puts it.
    pub fn locate(outpost: Option<PathBuf>, mosquitto: Option<PathBuf>) -> Programs {
        let outpost = outpost.unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|dir| dir.join("outpost")))
                .filter(|candidate| candidate.is_file())
                .unwrap_or_else(|| PathBuf::from("outpost"))
        });
        let mosquitto = mosquitto.unwrap_or_else(|| {
            let debian = PathBuf::from("/usr/sbin/mosquitto");
            if debian.is_file() {
                debian
            } else {
                PathBuf::from("mosquitto")
            }
        });
        Programs { outpost, mosquitto }
    }
}

/// A running Outpost hub and what a client needs to reach it.
pub struct HubServer {
    pub process: ServerProcess,
    pub hostname: String,
    pub mqtt_address: SocketAddr,
    pub https_address: SocketAddr,
    pub ca_pem: String,
    pub owner_connection_string: String,
    /// The hub's data directory, removed when the hub is dropped.
    data_dir: tempfile::TempDir,
}

impl HubServer {
    /// Starts `outpost hub serve` on a fresh data directory, listening on free ports of `ip`, and waits
    /// until it has written its CA and owner connection string and accepts connections.
    pub async fn start(
        programs: &Programs,
        ip: IpAddr,
        hostname: &str,
    ) -> anyhow::Result<HubServer> {
        HubServer::start_on(programs, free_port(ip)?, free_port(ip)?, hostname).await
    }

    /// Starts `outpost hub serve` on a fresh data directory, listening on the given addresses (an edge
    /// device reaches its hub on ports 8883 and 443 of the hub's host name).
    pub async fn start_on(
        programs: &Programs,
        mqtt_address: SocketAddr,
        https_address: SocketAddr,
        hostname: &str,
    ) -> anyhow::Result<HubServer> {
        let data_dir = tempfile::Builder::new()
            .prefix("outpost-loadgen-hub-")
            .tempdir()?;
        let command = hub_command(
            programs,
            &data_dir.path().join("hub"),
            hostname,
            mqtt_address,
            https_address,
        );
        let mut process =
            ServerProcess::spawn("the outpost hub", command, data_dir.path().join("hub.log"))?;
        let hub_dir = data_dir.path().join("hub");
        let connection_string_path = hub_dir.join("owner-connection-string");
        let ca_path = hub_dir.join("ca.pem");
        process
            .wait_until_listening(&[mqtt_address, https_address], || {
                connection_string_path.is_file() && ca_path.is_file()
            })
            .await?;
        let owner_connection_string = std::fs::read_to_string(&connection_string_path)?
            .trim()
            .to_owned();
        let ca_pem = std::fs::read_to_string(&ca_path)?;
        Ok(HubServer {
            process,
            hostname: hostname.to_owned(),
            mqtt_address,
            https_address,
            ca_pem,
            owner_connection_string,
            data_dir,
        })
    }

    /// Starts the hub again on the same data directory and addresses after it was killed, polling its
    /// MQTT port every millisecond, and returns the moment it first accepted a connection.
    pub async fn restart(&mut self, programs: &Programs) -> anyhow::Result<Instant> {
        let command = hub_command(
            programs,
            &self.data_dir.path().join("hub"),
            &self.hostname,
            self.mqtt_address,
            self.https_address,
        );
        let restarts = std::fs::read_dir(self.data_dir.path())?.count();
        self.process = ServerProcess::spawn(
            "the restarted outpost hub",
            command,
            self.data_dir.path().join(format!("hub-{restarts}.log")),
        )?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.process.ensure_running()?;
            if tokio::net::TcpStream::connect(self.mqtt_address)
                .await
                .is_ok()
            {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!("the restarted hub did not listen within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// The `outpost hub serve` command line for a data directory and listeners.
fn hub_command(
    programs: &Programs,
    hub_dir: &Path,
    hostname: &str,
    mqtt_address: SocketAddr,
    https_address: SocketAddr,
) -> Command {
    let mut command = Command::new(&programs.outpost);
    command
        .args(["hub", "serve", "--data-dir"])
        .arg(hub_dir)
        .args(["--hostname", hostname])
        .arg("--mqtt-addr")
        .arg(mqtt_address.to_string())
        .arg("--https-addr")
        .arg(https_address.to_string())
        .env(
            "OUTPOST_LOG",
            std::env::var("OUTPOST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        );
    command
}

impl HubServer {
    /// Bytes in the files under the hub's data directory (registry, twins, telemetry log).
    pub fn data_dir_bytes(&self) -> anyhow::Result<u64> {
        directory_bytes(self.data_dir.path())
    }
}

/// The total size of the regular files under `path`.
pub fn directory_bytes(path: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
    {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            total += directory_bytes(&entry.path())?;
        } else if file_type.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// TLS files for a Mosquitto listener, issued by a CA made for this run.
pub struct MosquittoTlsFiles {
    pub ca_path: PathBuf,
    pub certificate_path: PathBuf,
    pub key_path: PathBuf,
}

/// What the generated Mosquitto configuration says beyond Mosquitto's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MosquittoSettings {
    /// Lift the per-client limit of 1,000 queued QoS 1 messages, so that a subscriber that falls
    /// behind still receives every message instead of Mosquitto dropping some.
    pub unlimited_queue: bool,
    /// Turn Nagle's algorithm off on Mosquitto's side (its default leaves it on).
    pub tcp_nodelay: bool,
}

/// The Mosquitto configuration file for one listener. Everything not written here keeps the Debian
/// package's defaults (no persistence, 20 in-flight messages per client).
pub fn mosquitto_config(
    address: SocketAddr,
    tls: Option<&MosquittoTlsFiles>,
    settings: &MosquittoSettings,
) -> String {
    let mut config = String::new();
    config.push_str("# Generated by outpost-loadgen.\n");
    // Mosquitto drops root privileges to the `mosquitto` user by default, which could not read the
    // generated files in a private temporary directory; the benchmark runs it as whoever runs the
    // load generator.
    config.push_str("user root\n");
    config.push_str(&format!("listener {} {}\n", address.port(), address.ip()));
    config.push_str("allow_anonymous true\n");
    if settings.unlimited_queue {
        config.push_str("max_queued_messages 0\n");
    }
    if settings.tcp_nodelay {
        config.push_str("set_tcp_nodelay true\n");
    }
    if let Some(files) = tls {
        config.push_str(&format!("cafile {}\n", files.ca_path.display()));
        config.push_str(&format!("certfile {}\n", files.certificate_path.display()));
        config.push_str(&format!("keyfile {}\n", files.key_path.display()));
    }
    config
}

/// A running Mosquitto and what a client needs to reach it.
pub struct MosquittoServer {
    pub process: ServerProcess,
    pub address: SocketAddr,
    /// The CA that issued the listener's certificate, when the listener speaks TLS.
    pub ca_pem: Option<String>,
    _directory: tempfile::TempDir,
}

impl MosquittoServer {
    /// Starts Mosquitto on a free port of `ip`, with a TLS listener whose certificate covers `ip` when
    /// `with_tls` is set.
    pub async fn start(
        programs: &Programs,
        ip: IpAddr,
        with_tls: bool,
        settings: &MosquittoSettings,
    ) -> anyhow::Result<MosquittoServer> {
        let directory = tempfile::Builder::new()
            .prefix("outpost-loadgen-mosquitto-")
            .tempdir()?;
        let address = free_port(ip)?;
        let (tls_files, ca_pem) = if with_tls {
            let (files, ca_pem) = write_mosquitto_tls_files(directory.path(), ip)?;
            (Some(files), Some(ca_pem))
        } else {
            (None, None)
        };
        let config_path = directory.path().join("mosquitto.conf");
        std::fs::write(
            &config_path,
            mosquitto_config(address, tls_files.as_ref(), settings),
        )?;
        let mut command = Command::new(&programs.mosquitto);
        command.arg("-c").arg(&config_path);
        let mut process =
            ServerProcess::spawn("mosquitto", command, directory.path().join("mosquitto.log"))?;
        process.wait_until_listening(&[address], || true).await?;
        Ok(MosquittoServer {
            process,
            address,
            ca_pem,
            _directory: directory,
        })
    }
}

/// Issues a CA and a server certificate for `ip` with the `tls` crate and writes them as PEM files.
fn write_mosquitto_tls_files(
    directory: &Path,
    ip: IpAddr,
) -> anyhow::Result<(MosquittoTlsFiles, String)> {
    let authority = tls::CertificateAuthority::generate(
        "outpost-loadgen Mosquitto CA",
        tls::CertificateValidity::days_from_now(2),
    )?;
    let server = authority.issue_server_certificate(&tls::ServerCertificateRequest {
        common_name: ip.to_string(),
        dns_names: Vec::new(),
        ip_addresses: vec![ip],
        validity: tls::CertificateValidity::days_from_now(2),
    })?;
    let files = MosquittoTlsFiles {
        ca_path: directory.join("ca.pem"),
        certificate_path: directory.join("server.pem"),
        key_path: directory.join("server.key.pem"),
    };
    let ca_pem = authority.certificate_pem();
    std::fs::write(&files.ca_path, &ca_pem)?;
    std::fs::write(&files.certificate_path, server.chain_pem())?;
    std::fs::write(&files.key_path, server.private_key_pem())?;
    Ok((files, ca_pem))
}

/// The `VmRSS` value of a `/proc/PID/status` text, in KiB.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    parse_status_kib(status, "VmRSS")
}

/// The number on a `name:` line of a `/proc/PID/status` text: KiB for the memory lines (such as
/// `RssAnon`), a count for `Threads`.
pub fn parse_status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// The soft and hard limits on open files, from a `/proc/PID/limits` text (`None` for unlimited).
pub fn parse_open_files_limit(limits: &str) -> Option<(Option<u64>, Option<u64>)> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let parse = |field: &str| match field {
        "unlimited" => Some(None),
        number => number.parse().ok().map(Some),
    };
    let soft = parse(fields.next()?)?;
    let hard = parse(fields.next()?)?;
    Some((soft, hard))
}

/// Fails with instructions when this process (and so the servers it starts) may not open `needed` files.
pub fn ensure_open_files_limit(needed: u64) -> anyhow::Result<()> {
    let limits =
        std::fs::read_to_string("/proc/self/limits").context("cannot read /proc/self/limits")?;
    let (soft, hard) = parse_open_files_limit(&limits)
        .ok_or_else(|| anyhow!("/proc/self/limits has no `Max open files` line"))?;
    if let Some(soft) = soft
        && soft < needed
    {
        let hard_text = hard.map_or_else(|| "unlimited".to_owned(), |hard| hard.to_string());
        bail!(
            "this run needs {needed} open files but the limit is {soft} (hard limit {hard_text}); \
             raise it in the shell first, e.g. `ulimit -n {}`, then run again",
            needed.max(65_536).min(hard.unwrap_or(u64::MAX))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn mosquitto_configurations() {
        let address: SocketAddr = "127.0.0.22:18830".parse().expect("literal");
        let files = MosquittoTlsFiles {
            ca_path: PathBuf::from("/tmp/x/ca.pem"),
            certificate_path: PathBuf::from("/tmp/x/server.pem"),
            key_path: PathBuf::from("/tmp/x/server.key.pem"),
        };
        let defaults = MosquittoSettings {
            unlimited_queue: false,
            tcp_nodelay: false,
        };
        let lifted = MosquittoSettings {
            unlimited_queue: true,
            tcp_nodelay: true,
        };
        let rendered = format!(
            "{}---\n{}",
            mosquitto_config(address, None, &defaults),
            mosquitto_config(address, Some(&files), &lifted)
        );
        expect![[r#"
            # Generated by outpost-loadgen.
            user root
            listener 18830 127.0.0.22
            allow_anonymous true
            ---
            # Generated by outpost-loadgen.
            user root
            listener 18830 127.0.0.22
            allow_anonymous true
            max_queued_messages 0
            set_tcp_nodelay true
            cafile /tmp/x/ca.pem
            certfile /tmp/x/server.pem
            keyfile /tmp/x/server.key.pem
        "#]]
        .assert_eq(&rendered);
    }

    #[test]
    fn directory_sizes_count_nested_files() {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir_all(directory.path().join("a/b")).expect("create");
        std::fs::write(directory.path().join("one"), [0u8; 10]).expect("write");
        std::fs::write(directory.path().join("a/b/two"), [0u8; 32]).expect("write");
        assert_eq!(directory_bytes(directory.path()).expect("size"), 42);
    }

    #[test]
    fn proc_texts() {
        let status = "Name:\toutpost\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 9000 kB\nThreads:\t6\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            20000                unlimited            files     \n";
        let rendered = format!(
            "{:?} {:?} {:?} {:?} {:?} {:?}",
            parse_vm_rss_kib(status),
            parse_status_kib(status, "RssAnon"),
            parse_status_kib(status, "Threads"),
            parse_vm_rss_kib("Name: x\n"),
            parse_open_files_limit(limits),
            parse_open_files_limit("Max open files  lots  20000 files"),
        );
        expect!["Some(12345) Some(9000) Some(6) None Some((Some(20000), None)) None"]
            .assert_eq(&rendered);
    }
}
