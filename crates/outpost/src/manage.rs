//! The management commands: thin translations from command-line arguments to service REST calls.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{Value, json};

use crate::service_client::{ServiceClient, segment};

/// Where the management commands find the hub and how they authenticate.
#[derive(Args, Clone)]
pub struct HubConnection {
    /// A shared access policy connection string (HostName=...;SharedAccessKeyName=...;SharedAccessKey=...).
    #[arg(
        long,
        env = "OUTPOST_HUB_CONNECTION_STRING",
        hide_env_values = true,
        global = true
    )]
    hub_connection_string: Option<String>,
    /// The hub's CA certificate in PEM (the hub writes it to DATA_DIR/ca.pem).
    #[arg(long, env = "OUTPOST_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// Output format: `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub(crate) output: OutputFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

impl HubConnection {
    pub(crate) fn client(&self) -> anyhow::Result<ServiceClient> {
        let connection_string = self.hub_connection_string.as_deref().ok_or_else(|| {
            anyhow!(
                "no hub connection string: pass --hub-connection-string or set OUTPOST_HUB_CONNECTION_STRING \
                 (the hub writes the owner's to DATA_DIR/owner-connection-string)"
            )
        })?;
        let ca_file = self.ca_file.as_ref().ok_or_else(|| {
            anyhow!("no CA file: pass --ca-file or set OUTPOST_CA_FILE (the hub writes its CA to DATA_DIR/ca.pem)")
        })?;
        let ca_pem = std::fs::read_to_string(ca_file)
            .with_context(|| format!("cannot read the CA file {}", ca_file.display()))?;
        ServiceClient::new(connection_string.trim(), &ca_pem)
    }

    pub(crate) fn print(&self, value: &Value, columns: &[(&str, &str)]) {
        match self.output {
            OutputFormat::Json => println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            ),
            OutputFormat::Table => print_table(value, columns),
        }
    }
}

/// Prints an object or an array of objects as an aligned table of the given `(header, json pointer)` columns.
fn print_table(value: &Value, columns: &[(&str, &str)]) {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|(_, pointer)| match row.pointer(pointer) {
                    None | Some(Value::Null) => "-".to_owned(),
                    Some(Value::String(text)) => text.clone(),
                    Some(other) => other.to_string(),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, (header, _))| {
            cells
                .iter()
                .map(|row| row[index].len())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |texts: Vec<&str>| {
        let padded: Vec<String> = texts
            .iter()
            .zip(&widths)
            .map(|(text, width)| format!("{text:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|(header, _)| *header).collect());
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
}

const DEVICE_COLUMNS: &[(&str, &str)] = &[
    ("DEVICE", "/deviceId"),
    ("STATUS", "/status"),
    ("CONNECTION", "/connectionState"),
    ("AUTH", "/authentication/type"),
    ("EDGE", "/capabilities/iotEdge"),
    ("C2D QUEUED", "/cloudToDeviceMessageCount"),
];
const MODULE_COLUMNS: &[(&str, &str)] = &[
    ("DEVICE", "/deviceId"),
    ("MODULE", "/moduleId"),
    ("CONNECTION", "/connectionState"),
    ("AUTH", "/authentication/type"),
    ("MANAGED BY", "/managedBy"),
];

/// Parses a JSON argument with an error that names the flag.
fn json_arg(flag: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{flag} is not valid JSON: {text}"))
}

#[derive(Args)]
pub struct DeviceArgs {
    #[command(flatten)]
    hub: HubConnection,
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Create a device with generated SAS keys (or given ones, or X.509 thumbprints).
    Create {
        device_id: String,
        /// Make it an IoT Edge device.
        #[arg(long)]
        edge: bool,
        /// Authenticate by X.509 self-signed certificate thumbprint instead of SAS keys.
        #[arg(long)]
        x509_thumbprint: Option<String>,
        /// Authenticate by an X.509 certificate signed by an uploaded CA.
        #[arg(long, conflicts_with = "x509_thumbprint")]
        x509_ca: bool,
        /// Device scope of the parent edge device (makes this device its child).
        #[arg(long)]
        parent_scope: Option<String>,
        /// The parent edge device's id: its deviceScope becomes this device's parent scope.
        #[arg(long, value_name = "EDGE_ID", conflicts_with = "parent_scope")]
        parent: Option<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List devices.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        top: u32,
    },
    /// Show one device, keys included.
    Show { device_id: String },
    /// Enable or disable a device (disabling drops its live connection).
    Update {
        device_id: String,
        #[arg(long, value_parser = ["enabled", "disabled"])]
        status: Option<String>,
        #[arg(long)]
        status_reason: Option<String>,
        /// Device scope of the parent edge device.
        #[arg(long)]
        parent_scope: Option<String>,
    },
    /// Delete a device and its modules.
    Delete { device_id: String },
    /// Print the device's connection string.
    ConnectionString { device_id: String },
}

pub async fn device(args: DeviceArgs) -> anyhow::Result<()> {
    let hub = &args.hub;
    let client = hub.client()?;
    match args.command {
        DeviceCommand::Create {
            device_id,
            edge,
            x509_thumbprint,
            x509_ca,
            parent_scope,
            parent,
            disabled,
        } => {
            let parent_scope = match parent {
                Some(edge_id) => {
                    let edge = get_device(&client, &edge_id)
                        .await
                        .with_context(|| format!("cannot read the parent device {edge_id}"))?;
                    Some(edge_device_scope(&edge_id, &edge)?)
                }
                None => parent_scope,
            };
            let authentication = match (x509_thumbprint, x509_ca) {
                (Some(thumbprint), _) => {
                    json!({"type": "selfSigned", "x509Thumbprint": {"primaryThumbprint": thumbprint}})
                }
                (None, true) => json!({"type": "certificateAuthority"}),
                (None, false) => json!({"type": "sas", "symmetricKey": {}}),
            };
            let mut body = json!({
                "deviceId": device_id,
                "status": if disabled { "disabled" } else { "enabled" },
                "authentication": authentication,
                "capabilities": {"iotEdge": edge},
            });
            if let Some(scope) = parent_scope {
                body["parentScopes"] = json!([scope.clone()]);
                body["deviceScope"] = json!(scope);
            }
            let path = format!("/devices/{}", segment(&device_id));
            let created = client
                .call(Method::PUT, &path, Some(body), &[])
                .await?
                .success()?
                .json()?;
            hub.print(&created, DEVICE_COLUMNS);
        }
        DeviceCommand::List { top } => {
            let devices = client
                .call(Method::GET, &format!("/devices?top={top}"), None, &[])
                .await?
                .success()?
                .json()?;
            hub.print(&devices, DEVICE_COLUMNS);
        }
        DeviceCommand::Show { device_id } => {
            let device = get_device(&client, &device_id).await?;
            hub.print(
                &device,
                &[
                    ("DEVICE", "/deviceId"),
                    ("STATUS", "/status"),
                    ("CONNECTION", "/connectionState"),
                    ("PRIMARY KEY", "/authentication/symmetricKey/primaryKey"),
                    ("SCOPE", "/deviceScope"),
                    ("ETAG", "/etag"),
                ],
            );
        }
        DeviceCommand::Update {
            device_id,
            status,
            status_reason,
            parent_scope,
        } => {
            let mut device = get_device(&client, &device_id).await?;
            let etag = device["etag"].as_str().unwrap_or("*").to_owned();
            if let Some(status) = status {
                device["status"] = json!(status);
            }
            if let Some(reason) = status_reason {
                device["statusReason"] = json!(reason);
            }
            if let Some(scope) = parent_scope {
                device["parentScopes"] = json!([scope]);
            }
            let path = format!("/devices/{}", segment(&device_id));
            let updated = client
                .call(
                    Method::PUT,
                    &path,
                    Some(device),
                    &[("if-match", format!("\"{etag}\""))],
                )
                .await?
                .success()?
                .json()?;
            hub.print(&updated, DEVICE_COLUMNS);
        }
        DeviceCommand::Delete { device_id } => {
            let path = format!("/devices/{}", segment(&device_id));
            client
                .call(
                    Method::DELETE,
                    &path,
                    None,
                    &[("if-match", "\"*\"".to_owned())],
                )
                .await?
                .success()?;
            eprintln!("deleted device {device_id}");
        }
        DeviceCommand::ConnectionString { device_id } => {
            let device = get_device(&client, &device_id).await?;
            let key = device
                .pointer("/authentication/symmetricKey/primaryKey")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    anyhow!("device {device_id} has no SAS key (it authenticates by X.509)")
                })?;
            let host = hub_host(hub)?;
            println!("HostName={host};DeviceId={device_id};SharedAccessKey={key}");
        }
    }
    Ok(())
}

/// The `deviceScope` of `device` (the service API's JSON of device `device_id`), which must be an
/// IoT Edge device: only those have children.
fn edge_device_scope(device_id: &str, device: &Value) -> anyhow::Result<String> {
    if device.pointer("/capabilities/iotEdge") != Some(&Value::Bool(true)) {
        return Err(anyhow!(
            "{device_id} is not an IoT Edge device (capabilities.iotEdge is not true), so it cannot be a parent; create it with --edge"
        ));
    }
    device
        .get("deviceScope")
        .and_then(Value::as_str)
        .filter(|scope| !scope.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the edge device {device_id} has no deviceScope"))
}

fn hub_host(hub: &HubConnection) -> anyhow::Result<String> {
    let connection_string = hub.hub_connection_string.as_deref().unwrap_or_default();
    connection_string
        .split(';')
        .find_map(|pair| pair.strip_prefix("HostName="))
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the hub connection string has no HostName"))
}

async fn get_device(client: &ServiceClient, device_id: &str) -> anyhow::Result<Value> {
    let path = format!("/devices/{}", segment(device_id));
    client
        .call(Method::GET, &path, None, &[])
        .await?
        .success()?
        .json()
}

#[derive(Args)]
pub struct ModuleArgs {
    #[command(flatten)]
    hub: HubConnection,
    #[command(subcommand)]
    command: ModuleCommand,
}

#[derive(Subcommand)]
pub enum ModuleCommand {
    /// Create a module identity with generated SAS keys.
    Create {
        device_id: String,
        module_id: String,
    },
    /// List a device's modules.
    List { device_id: String },
    /// Show one module, keys included.
    Show {
        device_id: String,
        module_id: String,
    },
    /// Delete a module.
    Delete {
        device_id: String,
        module_id: String,
    },
    /// Print the module's connection string.
    ConnectionString {
        device_id: String,
        module_id: String,
    },
}

pub async fn module(args: ModuleArgs) -> anyhow::Result<()> {
    let hub = &args.hub;
    let client = hub.client()?;
    let module_path = |device_id: &str, module_id: &str| {
        format!(
            "/devices/{}/modules/{}",
            segment(device_id),
            segment(module_id)
        )
    };
    match args.command {
        ModuleCommand::Create {
            device_id,
            module_id,
        } => {
            let body = json!({"deviceId": device_id, "moduleId": module_id, "authentication": {"type": "sas", "symmetricKey": {}}});
            let created = client
                .call(
                    Method::PUT,
                    &module_path(&device_id, &module_id),
                    Some(body),
                    &[],
                )
                .await?
                .success()?
                .json()?;
            hub.print(&created, MODULE_COLUMNS);
        }
        ModuleCommand::List { device_id } => {
            let path = format!("/devices/{}/modules", segment(&device_id));
            let modules = client
                .call(Method::GET, &path, None, &[])
                .await?
                .success()?
                .json()?;
            hub.print(&modules, MODULE_COLUMNS);
        }
        ModuleCommand::Show {
            device_id,
            module_id,
        } => {
            let module = client
                .call(Method::GET, &module_path(&device_id, &module_id), None, &[])
                .await?
                .success()?
                .json()?;
            hub.print(&module, MODULE_COLUMNS);
        }
        ModuleCommand::Delete {
            device_id,
            module_id,
        } => {
            client
                .call(
                    Method::DELETE,
                    &module_path(&device_id, &module_id),
                    None,
                    &[("if-match", "\"*\"".to_owned())],
                )
                .await?
                .success()?;
            eprintln!("deleted module {device_id}/{module_id}");
        }
        ModuleCommand::ConnectionString {
            device_id,
            module_id,
        } => {
            let module = client
                .call(Method::GET, &module_path(&device_id, &module_id), None, &[])
                .await?
                .success()?
                .json()?;
            let key = module
                .pointer("/authentication/symmetricKey/primaryKey")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("module {device_id}/{module_id} has no SAS key"))?;
            let host = hub_host(hub)?;
            println!(
                "HostName={host};DeviceId={device_id};ModuleId={module_id};SharedAccessKey={key}"
            );
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct TwinArgs {
    #[command(flatten)]
    hub: HubConnection,
    #[command(subcommand)]
    command: TwinCommand,
}

#[derive(Subcommand)]
pub enum TwinCommand {
    /// Show a device or module twin as JSON.
    Show {
        device_id: String,
        #[arg(long)]
        module: Option<String>,
    },
    /// Merge-patch a twin's desired properties and/or tags (null deletes a key).
    Update {
        device_id: String,
        #[arg(long)]
        module: Option<String>,
        /// JSON object merged into properties.desired, e.g. '{"fan":"on"}'.
        #[arg(long)]
        desired: Option<String>,
        /// JSON object merged into tags, e.g. '{"env":"prod"}'.
        #[arg(long)]
        tags: Option<String>,
        /// Only apply when the twin's etag still matches.
        #[arg(long)]
        etag: Option<String>,
    },
}

fn twin_path(device_id: &str, module: Option<&str>) -> String {
    match module {
        Some(module_id) => format!(
            "/twins/{}/modules/{}",
            segment(device_id),
            segment(module_id)
        ),
        None => format!("/twins/{}", segment(device_id)),
    }
}

pub async fn twin(args: TwinArgs) -> anyhow::Result<()> {
    let client = args.hub.client()?;
    let twin = match args.command {
        TwinCommand::Show { device_id, module } => client
            .call(
                Method::GET,
                &twin_path(&device_id, module.as_deref()),
                None,
                &[],
            )
            .await?
            .success()?
            .json()?,
        TwinCommand::Update {
            device_id,
            module,
            desired,
            tags,
            etag,
        } => {
            if desired.is_none() && tags.is_none() {
                bail!("nothing to update: pass --desired and/or --tags");
            }
            let mut body = json!({});
            if let Some(desired) = desired {
                body["properties"] = json!({"desired": json_arg("--desired", &desired)?});
            }
            if let Some(tags) = tags {
                body["tags"] = json_arg("--tags", &tags)?;
            }
            let if_match = format!("\"{}\"", etag.as_deref().unwrap_or("*"));
            client
                .call(
                    Method::PATCH,
                    &twin_path(&device_id, module.as_deref()),
                    Some(body),
                    &[("if-match", if_match)],
                )
                .await?
                .success()?
                .json()?
        }
    };
    println!("{}", serde_json::to_string_pretty(&twin)?);
    Ok(())
}

#[derive(Args)]
pub struct MethodArgs {
    #[command(flatten)]
    hub: HubConnection,
    #[command(subcommand)]
    command: MethodCommand,
}

#[derive(Subcommand)]
pub enum MethodCommand {
    /// Invoke a direct method on a device or module and print its status and payload.
    Invoke {
        device_id: String,
        method_name: String,
        #[arg(long)]
        module: Option<String>,
        /// JSON payload.
        #[arg(long, default_value = "null")]
        payload: String,
        /// Seconds to wait for the device's answer (5..=300).
        #[arg(long, default_value_t = 30)]
        response_timeout: u32,
        /// Seconds to wait for the device to connect (0..=300).
        #[arg(long, default_value_t = 0)]
        connect_timeout: u32,
    },
}

pub async fn method(args: MethodArgs) -> anyhow::Result<()> {
    let client = args.hub.client()?;
    let MethodCommand::Invoke {
        device_id,
        method_name,
        module,
        payload,
        response_timeout,
        connect_timeout,
    } = args.command;
    let body = json!({
        "methodName": method_name,
        "payload": json_arg("--payload", &payload)?,
        "responseTimeoutInSeconds": response_timeout,
        "connectTimeoutInSeconds": connect_timeout,
    });
    let path = format!("{}/methods", twin_path(&device_id, module.as_deref()));
    let result = client
        .call(Method::POST, &path, Some(body), &[])
        .await?
        .success()?
        .json()?;
    args.hub
        .print(&result, &[("STATUS", "/status"), ("PAYLOAD", "/payload")]);
    Ok(())
}

#[derive(Args)]
pub struct C2dArgs {
    #[command(flatten)]
    hub: HubConnection,
    #[command(subcommand)]
    command: C2dCommand,
}

#[derive(Subcommand)]
pub enum C2dCommand {
    /// Queue a cloud-to-device message for a device (delivered now or when it next connects).
    Send {
        device_id: String,
        /// The message body (UTF-8 text).
        body: String,
        /// Application property `key=value`; repeat for several (names travel as HTTP headers, so in lower case).
        #[arg(long = "property", short = 'p')]
        properties: Vec<String>,
        #[arg(long)]
        message_id: Option<String>,
        #[arg(long)]
        correlation_id: Option<String>,
        #[arg(long)]
        content_type: Option<String>,
        #[arg(long)]
        content_encoding: Option<String>,
        /// Seconds until the message expires if undelivered.
        #[arg(long)]
        ttl: Option<u64>,
        /// Delivery feedback requested: none, positive, negative, full.
        #[arg(long)]
        ack: Option<String>,
    },
}

pub async fn c2d(args: C2dArgs) -> anyhow::Result<()> {
    let client = args.hub.client()?;
    let C2dCommand::Send {
        device_id,
        body,
        properties,
        message_id,
        correlation_id,
        content_type,
        content_encoding,
        ttl,
        ack,
    } = args.command;
    let mut headers: Vec<(String, String)> = Vec::new();
    for property in properties {
        let (key, value) = property
            .split_once('=')
            .ok_or_else(|| anyhow!("--property `{property}` must look like key=value"))?;
        headers.push((
            format!("iothub-app-{}", key.to_ascii_lowercase()),
            value.to_owned(),
        ));
    }
    let system = [
        ("iothub-messageid", message_id),
        ("iothub-correlationid", correlation_id),
        ("iothub-contenttype", content_type),
        ("iothub-contentencoding", content_encoding),
        ("iothub-ttl-seconds", ttl.map(|seconds| seconds.to_string())),
        ("iothub-ack", ack),
    ];
    for (name, value) in system {
        if let Some(value) = value {
            headers.push((name.to_owned(), value));
        }
    }
    let headers: Vec<(&str, String)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .collect();
    let path = format!("/devices/{}/messages/deviceBound", segment(&device_id));
    let answer = client
        .call_raw(Method::POST, &path, bytes::Bytes::from(body), &headers)
        .await?
        .success()?
        .json()?;
    args.hub.print(
        &answer,
        &[
            ("MESSAGE", "/messageId"),
            ("SEQUENCE", "/sequenceNumber"),
            ("EXPIRES", "/expiryTimeUtc"),
        ],
    );
    Ok(())
}

#[derive(Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    hub: HubConnection,
    #[command(subcommand)]
    command: MonitorCommand,
}

#[derive(Subcommand)]
pub enum MonitorCommand {
    /// Print device-to-cloud messages as they arrive, one JSON object per line.
    Events {
        /// Consumer group whose committed offset is used and advanced.
        #[arg(long, default_value = "$Default")]
        consumer_group: String,
        /// Where to start: `start`, `now`, `committed` or an offset number.
        #[arg(long, default_value = "now")]
        from: String,
        /// Only messages from this device.
        #[arg(long)]
        device: Option<String>,
        /// Stop after this many messages.
        #[arg(long)]
        max_messages: Option<u64>,
        /// Stop when no message arrived for this many seconds.
        #[arg(long)]
        idle_timeout: Option<u64>,
    },
}

pub async fn monitor(args: MonitorArgs) -> anyhow::Result<()> {
    let client = args.hub.client()?;
    let MonitorCommand::Events {
        consumer_group,
        from,
        device,
        max_messages,
        idle_timeout,
    } = args.command;
    let mut path = format!(
        "/events?consumerGroup={}&from={}",
        segment(&consumer_group),
        segment(&from)
    );
    if let Some(device) = &device {
        path.push_str(&format!("&deviceId={}", segment(device)));
    }
    let response = client.send(Method::GET, &path, None, &[]).await?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        bail!(
            "hub refused the event stream: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let mut body = response.into_body();
    let mut pending = Vec::new();
    let mut printed = 0u64;
    let idle = idle_timeout
        .map(Duration::from_secs)
        .unwrap_or(Duration::MAX);
    loop {
        if max_messages.is_some_and(|max| printed >= max) {
            return Ok(());
        }
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Ok(()),
            Ok(None) => bail!("the hub closed the event stream"),
            Ok(Some(frame)) => frame.context("reading the event stream")?,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(newline) = pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=newline).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            println!("{line}");
            printed += 1;
            if max_messages.is_some_and(|max| printed >= max) {
                return Ok(());
            }
        }
    }
}

#[derive(Args)]
pub struct QueryArgs {
    #[command(flatten)]
    hub: HubConnection,
    /// The query, e.g. "SELECT * FROM devices WHERE tags.env = 'prod'".
    query: String,
    /// Page size asked of the hub.
    #[arg(long, default_value_t = 100)]
    page_size: u32,
}

pub async fn query(args: QueryArgs) -> anyhow::Result<()> {
    let client = args.hub.client()?;
    let mut rows = Vec::new();
    let mut continuation: Option<String> = None;
    loop {
        let mut headers = vec![("x-ms-max-item-count", args.page_size.to_string())];
        if let Some(token) = &continuation {
            headers.push(("x-ms-continuation", token.clone()));
        }
        let response = client
            .call(
                Method::POST,
                "/devices/query",
                Some(json!({"query": args.query})),
                &headers,
            )
            .await?
            .success()?;
        continuation = response
            .headers
            .get("x-ms-continuation")
            .and_then(|value| value.to_str().ok())
            .filter(|token| !token.is_empty())
            .map(str::to_owned);
        match response.json()? {
            Value::Array(page) => rows.extend(page),
            other => bail!("the hub answered a query with {other} instead of an array"),
        }
        if continuation.is_none() {
            break;
        }
    }
    match args.hub.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&Value::Array(rows))?),
        OutputFormat::Table => {
            for row in rows {
                println!("{}", serde_json::to_string(&row)?);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::edge_device_scope;

    #[test]
    fn only_edge_devices_lend_their_scope_to_children() {
        let cases = [
            json!({"capabilities": {"iotEdge": true}, "deviceScope": "ms-azure-iot-edge://gw-1"}),
            json!({"capabilities": {"iotEdge": false}, "deviceScope": "ms-azure-iot-edge://gw-1"}),
            json!({"deviceScope": "ms-azure-iot-edge://gw-1"}),
            json!({"capabilities": {"iotEdge": true}}),
            json!({"capabilities": {"iotEdge": true}, "deviceScope": ""}),
        ];
        let outcomes: Vec<String> = cases
            .iter()
            .map(|device| match edge_device_scope("gw", device) {
                Ok(scope) => format!("ok {scope}"),
                Err(error) => format!("error {error}"),
            })
            .collect();
        assert_eq!(
            outcomes,
            [
                "ok ms-azure-iot-edge://gw-1",
                "error gw is not an IoT Edge device (capabilities.iotEdge is not true), so it cannot be a parent; create it with --edge",
                "error gw is not an IoT Edge device (capabilities.iotEdge is not true), so it cannot be a parent; create it with --edge",
                "error the edge device gw has no deviceScope",
                "error the edge device gw has no deviceScope",
            ]
        );
    }
}
