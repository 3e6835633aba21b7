//! `outpost hub serve`: configuration, first-start material (CA, server certificate, owner policy) and wiring.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use tokio::net::TcpListener;

/// Command-line options; each one overrides the same key of the TOML config file.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML file with any of: data_dir, hostname, mqtt_addr, https_addr, cert_file, key_file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the registry, twins, queues and telemetry log live [default: ./outpost-data/hub].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The name devices and services use for this hub (certificate SAN, SAS resource) [default: localhost].
    #[arg(long)]
    hostname: Option<String>,
    /// MQTT over TLS listen address [default: 0.0.0.0:8883].
    #[arg(long)]
    mqtt_addr: Option<SocketAddr>,
    /// HTTPS listen address: service REST API and MQTT over WebSocket [default: 0.0.0.0:443].
    #[arg(long)]
    https_addr: Option<SocketAddr>,
    /// Serve this certificate chain (PEM) instead of the one issued by the hub's own CA.
    #[arg(long, requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// Private key (PEM) for --cert-file.
    #[arg(long, requires = "cert_file")]
    key_file: Option<PathBuf>,
}

/// The config file's shape; unknown keys are refused so typos do not pass silently.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    hostname: Option<String>,
    mqtt_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

/// The resolved configuration: defaults, then the file, then the command line.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub data_dir: PathBuf,
    pub hostname: String,
    pub mqtt_addr: SocketAddr,
    pub https_addr: SocketAddr,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl HubConfig {
    fn resolve(args: ServeArgs) -> anyhow::Result<HubConfig> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("config file {} is not valid", path.display()))?
            }
            None => FileConfig::default(),
        };
        let config = HubConfig {
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("outpost-data/hub")),
            hostname: args
                .hostname
                .or(file.hostname)
                .unwrap_or_else(|| "localhost".to_owned()),
            mqtt_addr: args
                .mqtt_addr
                .or(file.mqtt_addr)
                .unwrap_or_else(|| "0.0.0.0:8883".parse().expect("literal")),
            https_addr: args
                .https_addr
                .or(file.https_addr)
                .unwrap_or_else(|| "0.0.0.0:443".parse().expect("literal")),
            cert_file: args.cert_file.or(file.cert_file),
            key_file: args.key_file.or(file.key_file),
        };
        if config.cert_file.is_some() != config.key_file.is_some() {
            bail!("cert_file and key_file must be given together");
        }
        iothub_auth::HostName::new(&config.hostname)
            .with_context(|| format!("hostname `{}` is not a valid host name", config.hostname))?;
        Ok(config)
    }
}

/// The CA and server certificate the hub presents, created on first start and reused afterwards.
pub struct ServerMaterial {
    pub ca_pem_path: PathBuf,
    pub server: tls::IssuedCertificate,
}

/// Loads or creates `DATA_DIR/ca.pem` (+ key) and a server certificate covering the hostname and listen IPs.
///
/// The server certificate is re-issued at every start from the stored CA, so a changed hostname or listen address
/// is covered without any manual step.
pub fn server_material(config: &HubConfig) -> anyhow::Result<ServerMaterial> {
    let ca_pem_path = config.data_dir.join("ca.pem");
    if let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) {
        let chain =
            tls::certificates_from_pem(&read(cert_file)?, &cert_file.display().to_string())?;
        let private_key =
            tls::private_key_from_pem(&read(key_file)?, &key_file.display().to_string())?;
        if !ca_pem_path.exists() {
            // Publish the user's chain root so clients have one file to trust.
            let last = chain.last().cloned().into_iter().collect::<Vec<_>>();
            write_file(
                &ca_pem_path,
                tls::certificates_to_pem(&last).as_bytes(),
                0o644,
            )?;
        }
        return Ok(ServerMaterial {
            ca_pem_path,
            server: tls::IssuedCertificate { chain, private_key },
        });
    }
    let ca_key_path = config.data_dir.join("ca.key.pem");
    let authority = if ca_pem_path.exists() && ca_key_path.exists() {
        tls::CertificateAuthority::from_pem(&read(&ca_pem_path)?, &read(&ca_key_path)?)
            .context("the stored hub CA cannot be loaded")?
    } else {
        let authority = tls::CertificateAuthority::generate(
            &format!("Outpost hub CA for {}", config.hostname),
            tls::CertificateValidity::days_from_now(3650),
        )?;
        write_private(&ca_key_path, authority.private_key_pem().as_bytes())?;
        write_file(&ca_pem_path, authority.certificate_pem().as_bytes(), 0o644)?;
        authority
    };
    let mut ip_addresses: Vec<IpAddr> = Vec::new();
    let mut dns_names = vec![config.hostname.clone()];
    if let Ok(ip) = config.hostname.parse::<IpAddr>() {
        ip_addresses.push(ip);
        dns_names.clear();
    }
    for addr in [config.mqtt_addr, config.https_addr] {
        let ip = addr.ip();
        if ip.is_unspecified() {
            for loopback in [
                "127.0.0.1".parse().expect("literal"),
                "::1".parse().expect("literal"),
            ] {
                if !ip_addresses.contains(&loopback) {
                    ip_addresses.push(loopback);
                }
            }
            if !dns_names.iter().any(|name| name == "localhost") {
                dns_names.push("localhost".to_owned());
            }
        } else if !ip_addresses.contains(&ip) {
            ip_addresses.push(ip);
        }
    }
    let server = authority.issue_server_certificate(&tls::ServerCertificateRequest {
        common_name: config.hostname.clone(),
        dns_names,
        ip_addresses,
        validity: tls::CertificateValidity::days_from_now(365),
    })?;
    Ok(ServerMaterial {
        ca_pem_path,
        server,
    })
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes a file readable only by its owner (keys and connection strings are secrets).
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_file(path, contents, 0o600)
}

/// Writes a file atomically (temporary file, fsync, rename) with the given permissions.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = HubConfig::resolve(args)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let material = server_material(&config)?;

    let hub = hub_core::Hub::open(
        &config.data_dir,
        &config.hostname,
        hub_core::HubOptions::default(),
    )
    .await
    .context("cannot open the hub's data directory")?;
    let owner_path = config.data_dir.join("owner-connection-string");
    let owner = hub
        .policy_connection_string("iothubowner")
        .context("the iothubowner policy is missing from the registry")?;
    write_private(&owner_path, format!("{owner}\n").as_bytes())?;

    let resolver = Arc::new(tls::ReloadableCertificateResolver::new(&material.server)?);
    tokio::spawn(keep_certificate_fresh(config.clone(), resolver.clone()));
    let mqtt_tls = Arc::new(tls::server_config(
        resolver.clone(),
        tls::ClientCertificates::AcceptAnyOptional,
    )?);
    let mut https_tls = tls::server_config(resolver, tls::ClientCertificates::AcceptAnyOptional)?;
    https_tls.alpn_protocols = vec![b"http/1.1".to_vec()];

    let frontend_config = mqtt_frontend::FrontendConfig::default();
    let sessions = mqtt_frontend::Sessions::spawn(frontend_config.registry_queue_capacity);
    let backend = hub_core::HubBackend::attach(hub.clone(), sessions.clone());
    let frontend = mqtt_frontend::Frontend::new(backend, sessions, frontend_config);

    let mqtt_listener = TcpListener::bind(config.mqtt_addr)
        .await
        .with_context(|| format!("cannot listen for MQTT on {}", config.mqtt_addr))?;
    let https_listener = TcpListener::bind(config.https_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen for HTTPS on {} (ports below 1024 need root)",
                config.https_addr
            )
        })?;

    println!("Outpost hub `{}` is serving", config.hostname);
    println!("  MQTT/TLS         {}", config.mqtt_addr);
    println!("  HTTPS + MQTT/WS  {}", config.https_addr);
    println!("  CA certificate   {}", material.ca_pem_path.display());
    println!("  owner policy     {}", owner_path.display());
    tracing::info!(hostname = %config.hostname, mqtt = %config.mqtt_addr, https = %config.https_addr, "hub started");

    let https = hub_api::serve(
        https_listener,
        Arc::new(https_tls),
        hub.clone(),
        frontend.clone(),
    );
    tokio::select! {
        () = frontend.serve_tls(mqtt_listener, mqtt_tls) => bail!("the MQTT listener stopped"),
        result = https => result.context("the HTTPS listener stopped")?,
        () = shutdown_signal() => tracing::info!("shutting down"),
    }
    hub.close().await.context("closing the hub's storage")?;
    Ok(())
}

/// How often the hub looks at its certificate files, or at the age of the certificate it issued
/// itself.
const CERTIFICATE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Keeps the served certificate fresh without a restart: new handshakes get the new one, open
/// connections keep theirs. With `cert_file`/`key_file` (say, renewed by an ACME client) the files
/// are read again when they change; a certificate the hub issued from its own CA is issued again
/// two thirds into its life. SIGHUP reloads at once. A certificate that cannot be loaded (a key
/// that does not match, a half-written file) is refused with a warning, and the current one stays.
async fn keep_certificate_fresh(
    config: HubConfig,
    resolver: Arc<tls::ReloadableCertificateResolver>,
) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; certificates reload on a timer only");
            None
        }
    };
    let mut files_seen = certificate_files_stamp(&config);
    let mut renew_at = tls::certificate_renewal_time(&resolver.current_end_entity()).ok();
    let mut timer = tokio::time::interval(CERTIFICATE_CHECK_INTERVAL);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer.tick().await;
    loop {
        let reason = tokio::select! {
            _ = timer.tick() => {
                let check = CertificateCheck {
                    user_files: config.cert_file.is_some(),
                    files_changed: certificate_files_stamp(&config) != files_seen,
                    renew_at,
                    now: std::time::SystemTime::now(),
                };
                match check.reload_reason() {
                    Some(reason) => reason,
                    None => continue,
                }
            }
            Some(()) = next_hangup(&mut hangups) => "SIGHUP",
        };
        files_seen = certificate_files_stamp(&config);
        let reloaded = server_material(&config).and_then(|material| {
            resolver
                .replace(&material.server)
                .map_err(anyhow::Error::from)
        });
        match reloaded {
            Ok(()) => {
                let served = resolver.current_end_entity();
                renew_at = tls::certificate_renewal_time(&served).ok();
                let not_after = tls::summarize_certificate(&served)
                    .map(|summary| summary.not_after_unix_secs)
                    .unwrap_or_default();
                tracing::info!(
                    reason,
                    not_after_unix_secs = not_after,
                    "server certificate reloaded"
                );
            }
            Err(error) => {
                tracing::warn!(
                    reason,
                    error = format!("{error:#}"),
                    "cannot reload the server certificate; the current one stays"
                );
            }
        }
    }
}

/// What a periodic certificate check looks at.
#[derive(Clone, Copy, Debug)]
struct CertificateCheck {
    /// The certificate comes from `cert_file`/`key_file`, not from the hub's own CA.
    user_files: bool,
    /// Those files changed since they were last read.
    files_changed: bool,
    /// When the certificate the hub issued itself is due (`None`: its dates cannot be read).
    renew_at: Option<std::time::SystemTime>,
    now: std::time::SystemTime,
}

impl CertificateCheck {
    /// Why the served certificate should be loaded again, if it should. User files are reloaded
    /// when they change, never renewed by the hub; its own certificate is renewed when due.
    fn reload_reason(self) -> Option<&'static str> {
        if self.user_files {
            self.files_changed
                .then_some("the certificate files changed")
        } else if self.renew_at.is_none_or(|at| self.now >= at) {
            Some("the server certificate is due for renewal")
        } else {
            None
        }
    }
}

/// When and how big the certificate and key files were last written, if the hub reads them.
fn certificate_files_stamp(config: &HubConfig) -> Vec<Option<(std::time::SystemTime, u64)>> {
    [&config.cert_file, &config.key_file]
        .into_iter()
        .flatten()
        .map(|path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|metadata| Some((metadata.modified().ok()?, metadata.len())))
        })
        .collect()
}

async fn next_hangup(hangups: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hangups {
        Some(hangups) => hangups.recv().await,
        None => std::future::pending().await,
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let mut terminate = match tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::terminate(),
    ) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the hub cleanly");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::CertificateCheck;

    #[test]
    fn certificates_reload_when_user_files_change_or_an_own_certificate_falls_due() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let check = |user_files, files_changed, renew_at| {
            CertificateCheck {
                user_files,
                files_changed,
                renew_at,
                now,
            }
            .reload_reason()
        };
        let later = Some(now + Duration::from_secs(60));
        let earlier = Some(now - Duration::from_secs(60));
        assert_eq!(
            check(true, true, later),
            Some("the certificate files changed")
        );
        assert_eq!(
            check(true, false, earlier),
            None,
            "the hub never renews user files"
        );
        assert_eq!(check(false, false, later), None);
        assert_eq!(
            check(false, false, earlier),
            Some("the server certificate is due for renewal")
        );
        assert_eq!(
            check(false, false, Some(now)),
            Some("the server certificate is due for renewal")
        );
        assert_eq!(
            check(false, false, None),
            Some("the server certificate is due for renewal"),
            "dates that cannot be read are renewed"
        );
    }
}
