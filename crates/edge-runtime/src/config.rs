//! The edge configuration file (TOML): its wire shape, validation and the settings the runtime
//! runs with.
//!
//! ```toml
//! hub_hostname = "hub.example.net"
//! device_id = "edge-1"
//! device_key = "<base64 primary key of the edge device>"
//! hub_ca_file = "/etc/outpost/hub-ca.pem"
//! gateway_hostname = "edge-1.local"
//! data_dir = "/var/lib/outpost/edge"
//! runtime = "process"
//! # Optional:
//! workload_socket_dir = "/var/lib/outpost/edge/mnt"
//! hub_mqtt_port = 8883
//! hub_https_port = 443
//! edge_ca_validity_days = 90 # the quickstart edge CA's lifetime; it is renewed two thirds in
//!
//! [edge_hub]                 # the local IoT Hub for modules and leaf devices (on by default)
//! mqtt_addr = "0.0.0.0:8883" # default: the gateway address if it is an IP, port 8883
//! https_addr = "0.0.0.0:443" # MQTT over WebSocket and module-to-module methods
//! store_max_bytes = 1073741824 # default: 10% of the free disk space at start (at least 64 MiB)
//! overflow = "refuse_new"    # or "drop_oldest"; a route object's "overflow" overrides it
//! ```
//!
//! Instead of `hub_hostname`, `device_id` and `device_key`, the file may give the device's
//! `connection_string` (with `SharedAccessKey`). Unknown keys are refused, so typos do not pass
//! silently; paths must be absolute, so the runtime does not depend on its working directory.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use iothub_auth::{ClientCredential, ConnectionString, HostName, SymmetricKey};
use iothub_types::DeviceId;
use serde::{Deserialize, Serialize};

/// The MQTT over TLS port of the hub unless configured otherwise.
pub const DEFAULT_HUB_MQTT_PORT: u16 = 8883;
/// The HTTPS port of the hub unless configured otherwise.
pub const DEFAULT_HUB_HTTPS_PORT: u16 = 443;
/// How long the quickstart edge CA is valid unless configured otherwise, as Azure's
/// (`auto_generated_edge_ca_expiry_days`).
pub const DEFAULT_EDGE_CA_VALIDITY_DAYS: u32 = 90;
/// The longest edge CA lifetime accepted: ten years.
pub const MAX_EDGE_CA_VALIDITY_DAYS: u32 = 3650;

/// Which engines run the modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeChoice {
    /// Native processes (`"type": "process"` modules), the default: no container engine needed.
    Process,
    /// Containers of the local Docker Engine for `"type": "docker"` modules, next to native
    /// processes for `"type": "process"` modules.
    Docker,
}

impl RuntimeChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeChoice::Process => "process",
            RuntimeChoice::Docker => "docker",
        }
    }
}

impl fmt::Display for RuntimeChoice {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The configuration file as written (the wire type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_socket_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_mqtt_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_https_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_ca_validity_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_hub: Option<EdgeHubConfigFile>,
}

/// The `[edge_hub]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeHubConfigFile {
    /// `false` runs the agent without the edge hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// MQTT over TLS for modules and leaf devices (default: the gateway address, port 8883).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_addr: Option<String>,
    /// HTTPS: MQTT over WebSocket and module-to-module methods (default: port 443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_addr: Option<String>,
    /// Byte bound of the store-and-forward store (default 1 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_max_bytes: Option<u64>,
    /// `refuse_new` (default: back-pressure, nothing acknowledged is dropped) or `drop_oldest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<String>,
}

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the configuration is not valid TOML: {0}")]
    Syntax(String),
    #[error("{key} is required")]
    Missing { key: &'static str },
    #[error("give either connection_string or hub_hostname, device_id and device_key, not both")]
    ConnectionStringAndParts,
    #[error("connection_string: {0}")]
    ConnectionString(String),
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("{key} must be an absolute path, not {path}")]
    RelativePath { key: &'static str, path: String },
}

/// The validated settings the runtime runs with.
#[derive(Clone, PartialEq, Eq)]
pub struct EdgeSettings {
    pub hub_hostname: HostName,
    pub device_id: DeviceId,
    /// The edge device's own key: signs the device-scoped registry calls.
    pub device_key: SymmetricKey,
    /// The hub's CA certificate (PEM), the only root trusted for the hub.
    pub hub_ca_file: PathBuf,
    /// What modules are told to dial for the edge hub (`IOTEDGE_GATEWAYHOSTNAME`).
    pub gateway_hostname: HostName,
    pub data_dir: PathBuf,
    pub runtime: RuntimeChoice,
    /// Where the per-module workload sockets live (`<dir>/<module>.sock`).
    pub workload_socket_dir: PathBuf,
    pub hub_mqtt_port: u16,
    pub hub_https_port: u16,
    /// How long a quickstart edge CA the runtime makes or renews is valid.
    pub edge_ca_validity_days: u32,
    /// The edge hub, unless disabled.
    pub edge_hub: Option<EdgeHubListen>,
}

/// Where and how the edge hub runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeHubListen {
    pub mqtt_addr: SocketAddr,
    pub https_addr: SocketAddr,
    /// The store's byte bound; `None` sizes it at start from the free disk space
    /// ([`automatic_store_bytes`]).
    pub store_max_bytes: Option<u64>,
    /// `true` for `drop_oldest`, `false` for `refuse_new`.
    pub drop_oldest: bool,
}

/// The share of the free disk space the store may use when no bound is configured.
pub const AUTOMATIC_STORE_SHARE_PERCENT: u64 = 10;
/// The least automatic store bound, however full the disk is.
pub const MIN_AUTOMATIC_STORE_BYTES: u64 = 64 * 1024 * 1024;

/// The store bound when none is configured: [`AUTOMATIC_STORE_SHARE_PERCENT`] of the space
/// available on the file system at `available_bytes`, at least [`MIN_AUTOMATIC_STORE_BYTES`].
pub fn automatic_store_bytes(available_bytes: u64) -> u64 {
    (available_bytes / 100 * AUTOMATIC_STORE_SHARE_PERCENT).max(MIN_AUTOMATIC_STORE_BYTES)
}

impl fmt::Debug for EdgeSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EdgeSettings")
            .field("hub_hostname", &self.hub_hostname)
            .field("device_id", &self.device_id)
            .field("device_key", &"<redacted>")
            .field("hub_ca_file", &self.hub_ca_file)
            .field("gateway_hostname", &self.gateway_hostname)
            .field("data_dir", &self.data_dir)
            .field("runtime", &self.runtime)
            .field("workload_socket_dir", &self.workload_socket_dir)
            .field("hub_mqtt_port", &self.hub_mqtt_port)
            .field("hub_https_port", &self.hub_https_port)
            .field("edge_ca_validity_days", &self.edge_ca_validity_days)
            .field("edge_hub", &self.edge_hub)
            .finish()
    }
}

impl EdgeSettings {
    /// Parses and validates configuration text.
    pub fn from_toml(text: &str) -> Result<EdgeSettings, ConfigError> {
        let file: EdgeConfigFile = toml::from_str(text)
            .map_err(|error| ConfigError::Syntax(error.message().to_owned()))?;
        EdgeSettings::from_file(file)
    }

    /// Validates an already parsed configuration file.
    pub fn from_file(file: EdgeConfigFile) -> Result<EdgeSettings, ConfigError> {
        let parts_given =
            file.hub_hostname.is_some() || file.device_id.is_some() || file.device_key.is_some();
        let (hub_hostname, device_id, device_key) = match &file.connection_string {
            Some(_) if parts_given => return Err(ConfigError::ConnectionStringAndParts),
            Some(text) => device_from_connection_string(text)?,
            None => {
                let hub_hostname = required(file.hub_hostname.as_deref(), "hub_hostname")?;
                let device_id = required(file.device_id.as_deref(), "device_id")?;
                let device_key = required(file.device_key.as_deref(), "device_key")?;
                (
                    host_name(hub_hostname, "hub_hostname")?,
                    DeviceId::new(device_id).map_err(|error| ConfigError::Invalid {
                        key: "device_id",
                        message: error.to_string(),
                    })?,
                    SymmetricKey::from_base64(device_key.trim()).map_err(|error| {
                        ConfigError::Invalid {
                            key: "device_key",
                            message: error.to_string(),
                        }
                    })?,
                )
            }
        };
        let hub_ca_file = absolute(file.hub_ca_file, "hub_ca_file")?;
        let data_dir = absolute(file.data_dir, "data_dir")?;
        let workload_socket_dir = match file.workload_socket_dir {
            Some(path) => absolute(Some(path), "workload_socket_dir")?,
            None => data_dir.join("mnt"),
        };
        let gateway_hostname = match &file.gateway_hostname {
            Some(text) => host_name(text, "gateway_hostname")?,
            None => hub_hostname.clone(),
        };
        let port = |value: Option<u16>, default: u16, key: &'static str| match value {
            Some(0) => Err(ConfigError::Invalid {
                key,
                message: "the port must not be 0".to_owned(),
            }),
            Some(port) => Ok(port),
            None => Ok(default),
        };
        let edge_hub = edge_hub_listen(file.edge_hub.as_ref(), &gateway_hostname)?;
        let edge_ca_validity_days = match file.edge_ca_validity_days {
            None => DEFAULT_EDGE_CA_VALIDITY_DAYS,
            Some(days @ 1..=MAX_EDGE_CA_VALIDITY_DAYS) => days,
            Some(days) => {
                return Err(ConfigError::Invalid {
                    key: "edge_ca_validity_days",
                    message: format!(
                        "must be between 1 and {MAX_EDGE_CA_VALIDITY_DAYS} days, not {days}"
                    ),
                });
            }
        };
        Ok(EdgeSettings {
            edge_ca_validity_days,
            edge_hub,
            hub_hostname,
            device_id,
            device_key,
            hub_ca_file,
            gateway_hostname,
            data_dir,
            runtime: file.runtime.unwrap_or(RuntimeChoice::Process),
            workload_socket_dir,
            hub_mqtt_port: port(file.hub_mqtt_port, DEFAULT_HUB_MQTT_PORT, "hub_mqtt_port")?,
            hub_https_port: port(
                file.hub_https_port,
                DEFAULT_HUB_HTTPS_PORT,
                "hub_https_port",
            )?,
        })
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<EdgeSettings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Invalid {
            key: "config",
            message: format!("cannot read {}: {error}", path.display()),
        })?;
        EdgeSettings::from_toml(&text)
    }

    /// The settings as a configuration file, every key written out (the connection string is
    /// split into its parts).
    pub fn to_file(&self) -> EdgeConfigFile {
        EdgeConfigFile {
            connection_string: None,
            hub_hostname: Some(self.hub_hostname.to_string()),
            device_id: Some(self.device_id.to_string()),
            device_key: Some(self.device_key.to_base64()),
            hub_ca_file: Some(self.hub_ca_file.clone()),
            gateway_hostname: Some(self.gateway_hostname.to_string()),
            data_dir: Some(self.data_dir.clone()),
            runtime: Some(self.runtime),
            workload_socket_dir: Some(self.workload_socket_dir.clone()),
            hub_mqtt_port: Some(self.hub_mqtt_port),
            hub_https_port: Some(self.hub_https_port),
            edge_ca_validity_days: Some(self.edge_ca_validity_days),
            edge_hub: Some(match &self.edge_hub {
                None => EdgeHubConfigFile {
                    enabled: Some(false),
                    ..EdgeHubConfigFile::default()
                },
                Some(listen) => EdgeHubConfigFile {
                    enabled: Some(true),
                    mqtt_addr: Some(listen.mqtt_addr.to_string()),
                    https_addr: Some(listen.https_addr.to_string()),
                    store_max_bytes: listen.store_max_bytes,
                    overflow: Some(
                        if listen.drop_oldest {
                            "drop_oldest"
                        } else {
                            "refuse_new"
                        }
                        .to_owned(),
                    ),
                },
            }),
        }
    }

    /// The settings as TOML text, with a heading comment.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(&self.to_file()).unwrap_or_default();
        format!(
            "# Outpost edge runtime configuration (`outpost edge run --config <this file>`).\n\
             # It holds the device key: keep it readable by the runtime's user only.\n{body}"
        )
    }

    /// The management socket `outpost edge list/logs/restart` talk to.
    pub fn management_socket(&self) -> PathBuf {
        self.data_dir.join("mgmt.sock")
    }

    /// Where the agent keeps its own state (deployment, identities, edge CA).
    pub fn agent_dir(&self) -> PathBuf {
        self.data_dir.join("agent")
    }
}

fn edge_hub_listen(
    file: Option<&EdgeHubConfigFile>,
    gateway_hostname: &HostName,
) -> Result<Option<EdgeHubListen>, ConfigError> {
    let default = EdgeHubConfigFile::default();
    let file = file.unwrap_or(&default);
    if file.enabled == Some(false) {
        return Ok(None);
    }
    // Listen where modules and children dial: the gateway address when it is an IP literal.
    let host: IpAddr = gateway_hostname
        .as_str()
        .parse()
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let address = |text: Option<&str>, port: u16, key: &'static str| match text {
        None => Ok(SocketAddr::new(host, port)),
        Some(text) => text.parse().map_err(|_| ConfigError::Invalid {
            key,
            message: format!("{text:?} is not an IP:port address"),
        }),
    };
    let drop_oldest = match file.overflow.as_deref() {
        None | Some("refuse_new") => false,
        Some("drop_oldest") => true,
        Some(other) => {
            return Err(ConfigError::Invalid {
                key: "edge_hub.overflow",
                message: format!("{other:?} is neither refuse_new nor drop_oldest"),
            });
        }
    };
    let store_max_bytes = file.store_max_bytes;
    if store_max_bytes.is_some_and(|bytes| bytes < 16 * 1024 * 1024) {
        return Err(ConfigError::Invalid {
            key: "edge_hub.store_max_bytes",
            message: "the store needs at least 16 MiB".to_owned(),
        });
    }
    Ok(Some(EdgeHubListen {
        mqtt_addr: address(file.mqtt_addr.as_deref(), 8883, "edge_hub.mqtt_addr")?,
        https_addr: address(file.https_addr.as_deref(), 443, "edge_hub.https_addr")?,
        store_max_bytes,
        drop_oldest,
    }))
}

fn required<'a>(value: Option<&'a str>, key: &'static str) -> Result<&'a str, ConfigError> {
    match value {
        Some(text) if !text.trim().is_empty() => Ok(text),
        _ => Err(ConfigError::Missing { key }),
    }
}

fn host_name(text: &str, key: &'static str) -> Result<HostName, ConfigError> {
    HostName::new(text.trim()).map_err(|error| ConfigError::Invalid {
        key,
        message: error.to_string(),
    })
}

fn absolute(path: Option<PathBuf>, key: &'static str) -> Result<PathBuf, ConfigError> {
    let path = path.ok_or(ConfigError::Missing { key })?;
    if path.as_os_str().is_empty() {
        return Err(ConfigError::Missing { key });
    }
    if !path.is_absolute() {
        return Err(ConfigError::RelativePath {
            key,
            path: path.display().to_string(),
        });
    }
    Ok(path)
}

/// Reads `HostName`, `DeviceId` and `SharedAccessKey` from a device connection string.
pub fn device_from_connection_string(
    text: &str,
) -> Result<(HostName, DeviceId, SymmetricKey), ConfigError> {
    let parsed = ConnectionString::parse(text.trim())
        .map_err(|error| ConfigError::ConnectionString(error.to_string()))?;
    let ConnectionString::Device(device) = parsed else {
        return Err(ConfigError::ConnectionString(
            "an edge device needs a device connection string (HostName=…;DeviceId=…;SharedAccessKey=…)"
                .to_owned(),
        ));
    };
    let ClientCredential::SharedAccessKey(key) = device.credential() else {
        return Err(ConfigError::ConnectionString(
            "the connection string must carry the device's SharedAccessKey".to_owned(),
        ));
    };
    Ok((
        device.host_name().clone(),
        device.device_id().clone(),
        key.clone(),
    ))
}
