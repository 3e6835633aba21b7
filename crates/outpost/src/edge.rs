//! `outpost edge …`: set up and run the edge runtime on a device, look at its modules, and apply
//! deployments to edge devices from the hub side.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use edge_deployment::{DeploymentManifest, ModuleName};
use edge_runtime::{
    AgentOptions, DeviceRegistryClient, EdgeSettings, ManagementClient, RuntimeChoice,
};
use hyper::Method;
use serde_json::Value;

use crate::manage::HubConnection;
use crate::service_client::segment;

/// The configuration file used when `--config` is not given.
const DEFAULT_CONFIG: &str = "outpost-data/edge/config.toml";
/// The data directory `init` uses when `--data-dir` is not given.
const DEFAULT_DATA_DIR: &str = "outpost-data/edge";

#[derive(Args)]
pub struct EdgeArgs {
    #[command(subcommand)]
    command: EdgeCommand,
}

/// Where the edge configuration file is.
#[derive(Args, Clone)]
struct ConfigPath {
    /// The edge configuration file written by `outpost edge init`.
    #[arg(long, env = "OUTPOST_EDGE_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

impl ConfigPath {
    fn load(&self) -> anyhow::Result<EdgeSettings> {
        EdgeSettings::load(&self.config).with_context(|| {
            format!(
                "the edge configuration {} cannot be used (create one with `outpost edge init`)",
                self.config.display()
            )
        })
    }

    fn management(&self) -> anyhow::Result<ManagementClient> {
        Ok(ManagementClient::new(self.load()?.management_socket()))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuntimeArg {
    Process,
    Docker,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

#[derive(Subcommand)]
enum EdgeCommand {
    /// Write the edge configuration from the device's connection string and the hub's CA.
    Init {
        /// The edge device's connection string (HostName=…;DeviceId=…;SharedAccessKey=…).
        #[arg(long, env = "OUTPOST_EDGE_CONNECTION_STRING", hide_env_values = true)]
        connection_string: String,
        /// The hub's CA certificate (PEM); it is copied into the data directory.
        #[arg(long)]
        ca_file: PathBuf,
        /// Where the runtime keeps its state [default: ./outpost-data/edge].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Which engine runs the modules.
        #[arg(long, value_enum, default_value_t = RuntimeArg::Process)]
        runtime: RuntimeArg,
        /// The host name modules dial for the edge hub (IOTEDGE_GATEWAYHOSTNAME) [default: the hub's].
        #[arg(long)]
        gateway_hostname: Option<String>,
        /// The hub's MQTT over TLS port.
        #[arg(long, default_value_t = edge_runtime::config::DEFAULT_HUB_MQTT_PORT)]
        hub_mqtt_port: u16,
        /// The hub's HTTPS port.
        #[arg(long, default_value_t = edge_runtime::config::DEFAULT_HUB_HTTPS_PORT)]
        hub_https_port: u16,
        /// Where to write the configuration.
        #[arg(long, env = "OUTPOST_EDGE_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Overwrite an existing configuration.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        edge_hub: EdgeHubArgs,
    },
    /// Run the edge runtime in the foreground (stops its modules on SIGTERM or Ctrl-C).
    Run {
        #[command(flatten)]
        config: ConfigPath,
    },
    /// List the modules with their status, exit code, restarts and next restart.
    List {
        #[command(flatten)]
        config: ConfigPath,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        output: ListFormat,
    },
    /// Print a module's output.
    Logs {
        module: String,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<u64>,
        /// Keep printing new lines while the module runs.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        config: ConfigPath,
    },
    /// Restart a module now.
    Restart {
        module: String,
        #[command(flatten)]
        config: ConfigPath,
    },
    /// Apply a deployment manifest to an edge device (like `az iot edge set-modules`).
    SetModules {
        #[command(flatten)]
        hub: HubConnection,
        /// The edge device.
        #[arg(long)]
        device: String,
        /// The deployment manifest (`{"modulesContent": …}`).
        #[arg(long)]
        content: PathBuf,
        /// Send the manifest without validating it first (the agent then reports what it refuses).
        #[arg(long)]
        no_validate: bool,
    },
    /// Check the configuration, the hub connection, certificates, clock, disk and engine.
    Check {
        #[command(flatten)]
        config: ConfigPath,
    },
}

pub async fn edge(args: EdgeArgs) -> anyhow::Result<()> {
    match args.command {
        EdgeCommand::Init {
            connection_string,
            ca_file,
            data_dir,
            runtime,
            gateway_hostname,
            hub_mqtt_port,
            hub_https_port,
            config,
            force,
            edge_hub,
        } => {
            init(InitOptions {
                edge_hub,
                connection_string,
                ca_file,
                data_dir,
                runtime,
                gateway_hostname,
                hub_mqtt_port,
                hub_https_port,
                config,
                force,
            })
            .await
        }
        EdgeCommand::Run { config } => run(&config).await,
        EdgeCommand::List { config, output } => list(&config, output).await,
        EdgeCommand::Logs {
            module,
            tail,
            follow,
            config,
        } => {
            let module = module_name(&module)?;
            let mut stdout = std::io::stdout();
            config
                .management()?
                .logs(&module, tail, follow, &mut stdout)
                .await?;
            Ok(())
        }
        EdgeCommand::Restart { module, config } => {
            let module = module_name(&module)?;
            config.management()?.restart(&module).await?;
            println!("restarted {module}");
            Ok(())
        }
        EdgeCommand::SetModules {
            hub,
            device,
            content,
            no_validate,
        } => set_modules(&hub, &device, &content, no_validate).await,
        EdgeCommand::Check { config } => check(&config).await,
    }
}

fn module_name(text: &str) -> anyhow::Result<ModuleName> {
    let text = text.strip_prefix('$').unwrap_or(text);
    ModuleName::new(text).map_err(|problem| anyhow!("`{text}` is not a module name: {problem}"))
}

struct InitOptions {
    connection_string: String,
    ca_file: PathBuf,
    data_dir: Option<PathBuf>,
    runtime: RuntimeArg,
    gateway_hostname: Option<String>,
    hub_mqtt_port: u16,
    hub_https_port: u16,
    config: PathBuf,
    force: bool,
    edge_hub: EdgeHubArgs,
}

/// The edge hub options of `outpost edge init`.
#[derive(Debug, Clone, clap::Args)]
struct EdgeHubArgs {
    /// Run the agent without the edge hub.
    #[arg(long)]
    no_edge_hub: bool,
    /// Where the edge hub listens for MQTT over TLS [default: the gateway address (if an IP) or 0.0.0.0, port 8883].
    #[arg(long)]
    edge_hub_mqtt_addr: Option<String>,
    /// Where the edge hub listens for HTTPS (MQTT over WebSocket, module methods) [default: port 443].
    #[arg(long)]
    edge_hub_https_addr: Option<String>,
    /// Byte bound of the edge hub's store-and-forward store [default: 10% of the free disk space at start, at least 64 MiB].
    #[arg(long)]
    edge_hub_store_max_bytes: Option<u64>,
}

async fn init(options: InitOptions) -> anyhow::Result<()> {
    if options.config.exists() && !options.force {
        bail!(
            "{} exists already; pass --force to overwrite it",
            options.config.display()
        );
    }
    let (hub_hostname, device_id, device_key) =
        edge_runtime::config::device_from_connection_string(&options.connection_string)?;
    let data_dir = std::path::absolute(
        options
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
    )
    .context("cannot make the data directory path absolute")?;
    let ca_pem = std::fs::read(&options.ca_file)
        .with_context(|| format!("cannot read the CA file {}", options.ca_file.display()))?;
    tls::certificates_from_pem(&ca_pem, &options.ca_file.display().to_string())
        .context("the CA file holds no usable PEM certificate")?;
    edge_runtime::create_private_dir(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let hub_ca_file = data_dir.join("hub-ca.pem");
    std::fs::write(&hub_ca_file, &ca_pem)
        .with_context(|| format!("cannot write {}", hub_ca_file.display()))?;
    let file = edge_runtime::EdgeConfigFile {
        connection_string: None,
        hub_hostname: Some(hub_hostname.to_string()),
        device_id: Some(device_id.to_string()),
        device_key: Some(device_key.to_base64()),
        hub_ca_file: Some(hub_ca_file),
        gateway_hostname: options.gateway_hostname,
        data_dir: Some(data_dir.clone()),
        runtime: Some(match options.runtime {
            RuntimeArg::Process => RuntimeChoice::Process,
            RuntimeArg::Docker => RuntimeChoice::Docker,
        }),
        workload_socket_dir: None,
        hub_mqtt_port: Some(options.hub_mqtt_port),
        hub_https_port: Some(options.hub_https_port),
        edge_ca_validity_days: None,
        edge_hub: Some(edge_runtime::EdgeHubConfigFile {
            enabled: Some(!options.edge_hub.no_edge_hub),
            mqtt_addr: options.edge_hub.edge_hub_mqtt_addr,
            https_addr: options.edge_hub.edge_hub_https_addr,
            store_max_bytes: options.edge_hub.edge_hub_store_max_bytes,
            overflow: None,
        }),
    };
    let settings = EdgeSettings::from_file(file)?;
    let config = std::path::absolute(&options.config)?;
    edge_runtime::write_private_file(&config, settings.to_toml().as_bytes())
        .with_context(|| format!("cannot write {}", config.display()))?;
    println!(
        "wrote {} for device {} of hub {} (data in {}); start it with `outpost edge run --config {}`",
        config.display(),
        settings.device_id,
        settings.hub_hostname,
        settings.data_dir.display(),
        config.display()
    );
    Ok(())
}

async fn run(config: &ConfigPath) -> anyhow::Result<()> {
    let settings = config.load()?;
    tracing::info!(
        message = "Starting the edge runtime.",
        device = %settings.device_id,
        hub = %settings.hub_hostname,
        runtime = %settings.runtime,
        data_dir = %settings.data_dir.display()
    );
    let shutdown = async {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(message = "Cannot watch SIGTERM.", %error);
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    edge_runtime::run(settings, AgentOptions::default(), shutdown).await?;
    Ok(())
}

async fn list(config: &ConfigPath, output: ListFormat) -> anyhow::Result<()> {
    let status = config.management()?.status().await?;
    if output == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    let text = |value: Option<&Value>| match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    let headers = [
        "MODULE",
        "STATUS",
        "EXIT CODE",
        "RESTARTS",
        "NEXT RESTART",
        "DESCRIPTION",
    ];
    let mut rows: Vec<[String; 6]> = Vec::new();
    for module in status["modules"].as_array().into_iter().flatten() {
        rows.push([
            text(module.get("name")),
            text(module.get("runtimeStatus")),
            text(module.get("exitCode")),
            text(module.get("restartCount")),
            text(module.get("nextRestartTimeUtc")),
            text(module.get("statusDescription")),
        ]);
    }
    let widths: Vec<usize> = (0..headers.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].len())
                .chain([headers[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    println!(
        "deployment {}: {} {}; hub {}",
        text(status.get("lastDesiredVersion")),
        text(status.pointer("/lastDesiredStatus/code")),
        text(status.pointer("/lastDesiredStatus/description")),
        if status["hubConnected"] == Value::Bool(true) {
            "connected"
        } else {
            "not connected"
        }
    );
    if let Some(not_after) = status.pointer("/edgeCa/notAfter").and_then(Value::as_str) {
        println!(
            "edge CA valid until {not_after}; renewed in place from {}",
            text(status.pointer("/edgeCa/renewAt"))
        );
    }
    Ok(())
}

async fn set_modules(
    hub: &HubConnection,
    device: &str,
    content: &Path,
    no_validate: bool,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(content)
        .with_context(|| format!("cannot read {}", content.display()))?;
    if !no_validate {
        DeploymentManifest::from_json(&text).map_err(|error| {
            anyhow!(
                "{} is not a valid deployment (code {}): {error}",
                content.display(),
                error.status_code()
            )
        })?;
    }
    let body: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", content.display()))?;
    let client = hub.client()?;
    let path = format!("/devices/{}/applyConfigurationContent", segment(device));
    client
        .call(Method::POST, &path, Some(body), &[])
        .await?
        .success()?;
    println!("applied {} to {device}", content.display());
    Ok(())
}

/// One line of `outpost edge check`.
struct CheckResult {
    name: &'static str,
    outcome: Result<String, (String, String)>,
    warning: bool,
}

impl CheckResult {
    fn ok(name: &'static str, detail: impl Into<String>) -> CheckResult {
        CheckResult {
            name,
            outcome: Ok(detail.into()),
            warning: false,
        }
    }

    fn failed(name: &'static str, problem: impl Into<String>, hint: impl Into<String>) -> Self {
        CheckResult {
            name,
            outcome: Err((problem.into(), hint.into())),
            warning: false,
        }
    }

    fn warning(name: &'static str, problem: impl Into<String>, hint: impl Into<String>) -> Self {
        CheckResult {
            warning: true,
            ..CheckResult::failed(name, problem, hint)
        }
    }
}

async fn check(config: &ConfigPath) -> anyhow::Result<()> {
    let mut results = Vec::new();
    let settings = match config.load() {
        Ok(settings) => {
            results.push(CheckResult::ok(
                "configuration",
                format!("{} is valid", config.config.display()),
            ));
            Some(settings)
        }
        Err(error) => {
            results.push(CheckResult::failed(
                "configuration",
                format!("{error:#}"),
                "fix the file, or write a new one with `outpost edge init --force`",
            ));
            None
        }
    };
    if let Some(settings) = &settings {
        results.extend(check_settings(settings).await);
    }
    let mut failures = 0;
    for result in &results {
        match &result.outcome {
            Ok(detail) => println!("ok    {}: {detail}", result.name),
            Err((problem, hint)) => {
                let label = if result.warning { "warn" } else { "FAIL" };
                if !result.warning {
                    failures += 1;
                }
                println!("{label}  {}: {problem}\n      fix: {hint}", result.name);
            }
        }
    }
    if failures > 0 {
        bail!("{failures} check(s) failed");
    }
    Ok(())
}

async fn check_settings(settings: &EdgeSettings) -> Vec<CheckResult> {
    let mut results = Vec::new();
    let roots = match std::fs::read(&settings.hub_ca_file)
        .map_err(|error| error.to_string())
        .and_then(|pem| {
            tls::certificates_from_pem(&pem, "hub CA").map_err(|error| error.to_string())
        }) {
        Ok(roots) => {
            results.push(certificate_expiry("hub CA certificate", &roots[0]));
            Some(roots)
        }
        Err(error) => {
            results.push(CheckResult::failed(
                "hub CA certificate",
                format!("{}: {error}", settings.hub_ca_file.display()),
                "copy the hub's DATA_DIR/ca.pem and run `outpost edge init --force --ca-file …`",
            ));
            None
        }
    };
    let (edge_ca, _) = edge_runtime::workload::edge_ca_paths(&settings.agent_dir());
    match std::fs::read(&edge_ca)
        .ok()
        .and_then(|pem| tls::certificates_from_pem(&pem, "edge CA").ok())
    {
        Some(certificates) => {
            results.push(certificate_expiry("edge CA certificate", &certificates[0]))
        }
        None => results.push(CheckResult::ok(
            "edge CA certificate",
            "not created yet; `outpost edge run` creates it",
        )),
    }

    for (what, port) in [
        ("hub MQTT port", settings.hub_mqtt_port),
        ("hub HTTPS port", settings.hub_https_port),
    ] {
        let address = format!("{}:{port}", settings.hub_hostname);
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(&address),
        )
        .await;
        results.push(match connected {
            Ok(Ok(_)) => CheckResult::ok(what, format!("{address} accepts connections")),
            Ok(Err(error)) => CheckResult::failed(
                what,
                format!("{address}: {error}"),
                "check that the hub runs, the host name resolves and no firewall blocks the port",
            ),
            Err(_) => CheckResult::failed(
                what,
                format!("{address}: no answer within 5 s"),
                "check the network path to the hub",
            ),
        });
    }

    if let Some(roots) = roots {
        match DeviceRegistryClient::new(
            settings.hub_hostname.clone(),
            settings.hub_https_port,
            settings.device_id.clone(),
            settings.device_key.clone(),
            &roots,
        ) {
            Ok(registry) => {
                results.push(match registry.get_device().await {
                    Ok(device) if device.pointer("/capabilities/iotEdge") == Some(&Value::Bool(true)) => {
                        CheckResult::ok("device identity", format!("{} is an edge device of the hub", settings.device_id))
                    }
                    Ok(_) => CheckResult::failed(
                        "device identity",
                        format!("{} is not an IoT Edge device", settings.device_id),
                        format!("create it with `outpost device create {} --edge`", settings.device_id),
                    ),
                    Err(error) => CheckResult::failed(
                        "device identity",
                        error.to_string(),
                        "check the device key (`outpost device show DEVICE`) and that the device is enabled",
                    ),
                });
                results.push(match registry.server_date().await {
                    Ok(Some(date)) => clock_check(&date),
                    Ok(None) => CheckResult::warning(
                        "clock",
                        "the hub sent no Date header",
                        "compare the device's clock with the hub's by hand",
                    ),
                    Err(error) => CheckResult::warning(
                        "clock",
                        format!("cannot read the hub's time: {error}"),
                        "fix the hub connection first",
                    ),
                });
            }
            Err(error) => results.push(CheckResult::failed(
                "device identity",
                error.to_string(),
                "fix the hub CA file",
            )),
        }
    }

    results.push(disk_check(&settings.data_dir));
    results.push(match settings.runtime {
        RuntimeChoice::Process => match std::process::Command::new("/bin/sh")
            .args(["-c", "true"])
            .status()
        {
            Ok(status) if status.success() => {
                CheckResult::ok("module engine", "the process runtime can start processes")
            }
            other => CheckResult::failed(
                "module engine",
                format!("cannot start /bin/sh: {other:?}"),
                "check the runtime user's limits (ulimit -u) and that /bin/sh exists",
            ),
        },
        RuntimeChoice::Docker => {
            let socket = Path::new(edge_docker_socket());
            match std::os::unix::net::UnixStream::connect(socket) {
                Ok(_) => CheckResult::ok(
                    "module engine",
                    format!("the Docker Engine answers at {}", socket.display()),
                ),
                Err(error) => CheckResult::failed(
                    "module engine",
                    format!("cannot connect to {}: {error}", socket.display()),
                    "install and start Docker, and let the runtime's user use its socket (group docker)",
                ),
            }
        }
    });
    results.push(
        match ManagementClient::new(settings.management_socket())
            .status()
            .await
        {
            Ok(status) => CheckResult::ok(
                "edge runtime",
                format!(
                    "running; hub {}",
                    if status["hubConnected"] == Value::Bool(true) {
                        "connected"
                    } else {
                        "not connected"
                    }
                ),
            ),
            Err(_) => CheckResult::warning(
                "edge runtime",
                "not running",
                "start it with `outpost edge run`",
            ),
        },
    );
    results
}

/// The Docker Engine socket the runtime uses.
fn edge_docker_socket() -> &'static str {
    "/var/run/docker.sock"
}

fn certificate_expiry(name: &'static str, certificate: &tls::CertificateDer<'_>) -> CheckResult {
    let Ok(summary) = tls::summarize_certificate(certificate) else {
        return CheckResult::failed(name, "the certificate cannot be parsed", "replace the file");
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let days_left = (summary.not_after_unix_secs - now) / 86_400;
    if summary.not_after_unix_secs <= now {
        CheckResult::failed(
            name,
            "expired",
            "renew the certificate (the edge CA is renewed by restarting `outpost edge run`)",
        )
    } else if days_left < 30 {
        CheckResult::warning(
            name,
            format!("expires in {days_left} day(s)"),
            "renew it before it expires",
        )
    } else {
        CheckResult::ok(name, format!("valid for {days_left} more days"))
    }
}

fn clock_check(date: &str) -> CheckResult {
    let Ok(hub_time) = chrono::DateTime::parse_from_rfc2822(date) else {
        return CheckResult::warning(
            "clock",
            format!("cannot read the hub's Date header {date:?}"),
            "compare the clocks by hand",
        );
    };
    let skew = (chrono::Utc::now() - hub_time.with_timezone(&chrono::Utc))
        .num_seconds()
        .abs();
    if skew > 60 {
        CheckResult::failed(
            "clock",
            format!("this device's clock is {skew} s away from the hub's"),
            "enable time synchronisation (e.g. systemd-timesyncd or chrony); tokens are refused when clocks differ",
        )
    } else {
        CheckResult::ok("clock", format!("within {skew} s of the hub's"))
    }
}

fn disk_check(data_dir: &Path) -> CheckResult {
    let target = if data_dir.exists() {
        data_dir
    } else {
        data_dir.parent().unwrap_or(Path::new("/"))
    };
    let output = std::process::Command::new("df")
        .args(["-Pk"])
        .arg(target)
        .output();
    let available_kib = output.ok().and_then(|output| {
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.lines()
            .nth(1)
            .and_then(|line| line.split_whitespace().nth(3))
            .and_then(|field| field.parse::<u64>().ok())
    });
    match available_kib {
        Some(kib) if kib < 100 * 1024 => CheckResult::failed(
            "disk space",
            format!("only {} MiB free under {}", kib / 1024, target.display()),
            "free space: module logs and state live in the data directory",
        ),
        Some(kib) => CheckResult::ok(
            "disk space",
            format!("{} MiB free under {}", kib / 1024, target.display()),
        ),
        None => CheckResult::warning(
            "disk space",
            "cannot run `df`",
            "check the free space of the data directory by hand",
        ),
    }
}
