//! The edge lab shared by the edge benchmarks: a hub on ports 8883 and 443 of its own loopback
//! address (an edge device reaches its hub there), one IoT Edge device registered in it, deployments
//! written through the hub's REST API, `outpost edge init` / `outpost edge run` as child processes on
//! a second loopback address (the gateway), and the MQTT credentials of modules and leaf devices
//! that connect to the edge hub.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use hyper::Method;
use iothub_auth::SymmetricKey;
use iothub_types::{DeviceId, ModuleId};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::mqtt::ConnectOptions;
use crate::processes::{HubServer, Programs, ServerProcess};
use crate::service::{ServiceConnection, module_mqtt_credentials};
use crate::targets::KEEP_ALIVE_SECONDS;
use crate::transport::{Endpoint, Security};

/// Where the edge benchmarks' hub listens (its host name is this address).
pub const EDGE_LAB_HUB_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 41));
/// The edge device's gateway address, where its edge hub listens.
pub const EDGE_LAB_GATEWAY_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 42));
/// The edge device the benchmarks register.
pub const EDGE_DEVICE: &str = "bench-edge";
/// The MQTT port of hubs and edge hubs.
const MQTT_PORT: u16 = 8883;
/// The HTTPS port of hubs and edge hubs.
const HTTPS_PORT: u16 = 443;
/// How long the edge runtime may take to start, apply a deployment, or stop.
pub const EDGE_WAIT: Duration = Duration::from_secs(120);

/// A process module that runs `/bin/sleep 3600`: the cheapest module that stays running.
pub fn sleeping_module() -> Value {
    json!({
        "type": "process",
        "status": "running",
        "restartPolicy": "always",
        "settings": {"path": "/bin/sleep", "args": ["3600"]}
    })
}

/// `count` sleeping modules named `m0`, `m1`, …: their names and the deployment's `modules` section.
pub fn sleeping_modules(count: usize) -> (Vec<String>, BTreeMap<String, Value>) {
    let names: Vec<String> = (0..count).map(|index| format!("m{index}")).collect();
    let modules = names
        .iter()
        .map(|name| (name.clone(), sleeping_module()))
        .collect();
    (names, modules)
}

/// A deployment manifest's `modulesContent` for a process runtime with `modules` and the `$edgeHub`
/// `routes`, in the shape `az iot edge set-modules` sends.
pub fn deployment(modules: &BTreeMap<String, Value>, routes: &BTreeMap<String, String>) -> Value {
    json!({"modulesContent": {
        "$edgeAgent": {"properties.desired": {
            "schemaVersion": "1.1",
            "runtime": {"type": "process", "settings": {}},
            "systemModules": {
                "edgeAgent": {"type": "docker", "settings": {"image": "mcr.microsoft.com/azureiotedge-agent:1.5"}},
                "edgeHub": {"type": "docker", "status": "running", "restartPolicy": "always",
                            "settings": {"image": "mcr.microsoft.com/azureiotedge-hub:1.5"}}
            },
            "modules": modules,
        }},
        "$edgeHub": {"properties.desired": {
            "schemaVersion": "1.1",
            "routes": routes,
            "storeAndForwardConfiguration": {"timeToLiveSecs": 86400}
        }}
    }})
}

/// The route that sends every output of `source` to input `input` of module `sink`.
pub fn module_route(source: &str, sink: &str, input: &str) -> String {
    format!(
        "FROM /messages/modules/{source}/* INTO BrokeredEndpoint(\"/modules/{sink}/inputs/{input}\")"
    )
}

/// The route that sends every output of `source` to the cloud hub.
pub fn upstream_route(source: &str) -> String {
    format!("FROM /messages/modules/{source}/* INTO $upstream")
}

/// The topic a module publishes output `output` on (the bag carries `$.on`, percent-encoded as the
/// SDKs send it).
pub fn output_topic(device: &str, module: &str, output: &str) -> String {
    format!("devices/{device}/modules/{module}/messages/events/%24.on={output}")
}

/// The filter a module subscribes to for all its inputs.
pub fn inputs_filter(device: &str, module: &str) -> String {
    format!("devices/{device}/modules/{module}/inputs/#")
}

/// The names of the modules in an `outpost edge list --output json` document whose runtime status
/// is `running`.
pub fn running_modules(status: &Value) -> Vec<String> {
    status["modules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|module| module["runtimeStatus"] == "running")
        .filter_map(|module| module["name"].as_str().map(str::to_owned))
        .collect()
}

/// A hub with one IoT Edge device registered, and a place for edge runtimes' files.
pub struct EdgeLab {
    pub hub: HubServer,
    pub service: ServiceConnection,
    pub device_id: DeviceId,
    /// The edge device's `deviceScope`, which its children name as parent scope.
    pub scope: String,
    pub gateway: IpAddr,
    device_connection_string: String,
    programs: Programs,
    directory: tempfile::TempDir,
    runtimes: usize,
}

/// How `outpost edge init` sets an edge runtime up.
#[derive(Clone, Debug, Default)]
pub struct EdgeInitOptions {
    /// `--no-edge-hub`: the agent alone.
    pub no_edge_hub: bool,
    /// `--edge-hub-store-max-bytes`.
    pub store_max_bytes: Option<u64>,
}

impl EdgeLab {
    /// Starts a hub on `hub_ip` (ports 8883 and 443) and registers the edge device.
    pub async fn start(
        programs: &Programs,
        hub_ip: IpAddr,
        gateway: IpAddr,
    ) -> anyhow::Result<EdgeLab> {
        if hub_ip == gateway {
            bail!("the hub and the gateway need distinct addresses");
        }
        let hub = HubServer::start_on(
            programs,
            SocketAddr::new(hub_ip, MQTT_PORT),
            SocketAddr::new(hub_ip, HTTPS_PORT),
            &hub_ip.to_string(),
        )
        .await
        .with_context(|| format!("starting the hub on {hub_ip}:{MQTT_PORT} and :{HTTPS_PORT}"))?;
        let mut service =
            ServiceConnection::open(hub.https_address, &hub.ca_pem, &hub.owner_connection_string)
                .await?;
        let device_id = DeviceId::new(EDGE_DEVICE).map_err(|error| anyhow!("{error}"))?;
        let created = service
            .call(
                Method::PUT,
                &format!("/devices/{EDGE_DEVICE}"),
                Some(&json!({
                    "deviceId": EDGE_DEVICE,
                    "status": "enabled",
                    "authentication": {"type": "sas", "symmetricKey": {}},
                    "capabilities": {"iotEdge": true},
                })),
            )
            .await?;
        let scope = created["deviceScope"]
            .as_str()
            .ok_or_else(|| anyhow!("the edge device has no deviceScope: {created}"))?
            .to_owned();
        let key = created
            .pointer("/authentication/symmetricKey/primaryKey")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("the edge device has no key: {created}"))?;
        let device_connection_string =
            format!("HostName={hub_ip};DeviceId={EDGE_DEVICE};SharedAccessKey={key}");
        let directory = tempfile::Builder::new()
            .prefix("outpost-loadgen-edge-")
            .tempdir()?;
        Ok(EdgeLab {
            hub,
            service,
            device_id,
            scope,
            gateway,
            device_connection_string,
            programs: programs.clone(),
            directory,
            runtimes: 0,
        })
    }

    /// Writes a deployment (`modulesContent`) to the edge device; module identities are created.
    pub async fn apply(&mut self, content: &Value) -> anyhow::Result<()> {
        self.service
            .call(
                Method::POST,
                &format!("/devices/{EDGE_DEVICE}/applyConfigurationContent"),
                Some(content),
            )
            .await?;
        Ok(())
    }

    /// The primary key of module `module` of the edge device.
    pub async fn module_key(&mut self, module: &str) -> anyhow::Result<SymmetricKey> {
        let record = self
            .service
            .call(
                Method::GET,
                &format!("/devices/{EDGE_DEVICE}/modules/{module}"),
                None,
            )
            .await?;
        let key = record
            .pointer("/authentication/symmetricKey/primaryKey")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("module {module} has no key: {record}"))?;
        SymmetricKey::from_base64(key).map_err(|error| anyhow!("module {module}'s key: {error}"))
    }

    /// What a client of the edge hub needs to connect as module `module`.
    pub async fn module_client(&mut self, module: &str) -> anyhow::Result<ConnectOptions> {
        let key = self.module_key(module).await?;
        let module_id = ModuleId::new(module).map_err(|error| anyhow!("{error}"))?;
        let (client_id, username, password) =
            module_mqtt_credentials(&self.hub.hostname, &self.device_id, &module_id, &key)?;
        Ok(ConnectOptions {
            client_id,
            username: Some(username),
            password: Some(password),
            clean_session: false,
            keep_alive_seconds: KEEP_ALIVE_SECONDS,
        })
    }

    /// Waits until the edge hub reports the `$edgeHub` desired properties applied (code 200).
    pub async fn wait_for_routes(&mut self, runtime: &mut EdgeRuntime) -> anyhow::Result<()> {
        let deadline = Instant::now() + EDGE_WAIT;
        loop {
            runtime.ensure_running()?;
            let twin = self
                .service
                .call(
                    Method::GET,
                    &format!("/twins/{EDGE_DEVICE}/modules/$edgeHub"),
                    None,
                )
                .await?;
            if twin.pointer("/properties/reported/lastDesiredStatus/code") == Some(&json!(200)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the edge hub did not apply its routes within {EDGE_WAIT:?}: {}\nedge log:\n{}",
                    twin["properties"]["reported"],
                    runtime.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes `content`, then sets up and starts an edge runtime with its edge hub and waits until the
    /// edge hub applied the routes.
    pub async fn deploy_and_start(
        &mut self,
        content: &Value,
        store_max_bytes: Option<u64>,
    ) -> anyhow::Result<EdgeRuntime> {
        self.apply(content).await?;
        let mut runtime = self
            .init_runtime(&EdgeInitOptions {
                no_edge_hub: false,
                store_max_bytes,
            })
            .await?;
        runtime.start().await?;
        self.wait_for_routes(&mut runtime).await?;
        Ok(runtime)
    }

    /// Runs `outpost edge init` for a fresh edge runtime of the edge device (its own data directory).
    pub async fn init_runtime(&mut self, options: &EdgeInitOptions) -> anyhow::Result<EdgeRuntime> {
        self.runtimes += 1;
        let base = self
            .directory
            .path()
            .join(format!("runtime-{}", self.runtimes));
        let data_dir = base.join("data");
        let config = base.join("config.toml");
        let ca_file = base.join("hub-ca.pem");
        std::fs::create_dir_all(&base)?;
        std::fs::write(&ca_file, &self.hub.ca_pem)?;
        let mut command = Command::new(&self.programs.outpost);
        command
            .args(["edge", "init", "--connection-string"])
            .arg(&self.device_connection_string)
            .arg("--ca-file")
            .arg(&ca_file)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--config")
            .arg(&config)
            .arg("--gateway-hostname")
            .arg(self.gateway.to_string());
        if options.no_edge_hub {
            command.arg("--no-edge-hub");
        }
        if let Some(bytes) = options.store_max_bytes {
            command
                .arg("--edge-hub-store-max-bytes")
                .arg(bytes.to_string());
        }
        let output = command
            .output()
            .await
            .context("running outpost edge init")?;
        if !output.status.success() {
            bail!(
                "outpost edge init failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(EdgeRuntime {
            programs: self.programs.clone(),
            config,
            data_dir,
            log: base.join("edge.log"),
            gateway: self.gateway,
            edge_hub: !options.no_edge_hub,
            process: None,
        })
    }
}

/// One edge runtime's files and, while it runs, its `outpost edge run` process.
pub struct EdgeRuntime {
    programs: Programs,
    config: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    gateway: IpAddr,
    edge_hub: bool,
    process: Option<ServerProcess>,
}

impl EdgeRuntime {
    /// Spawns `outpost edge run` and returns the moment it was spawned.
    pub fn spawn(&mut self) -> anyhow::Result<Instant> {
        if self.process.is_some() {
            bail!("the edge runtime runs already");
        }
        let mut command = Command::new(&self.programs.outpost);
        command
            .args(["edge", "run", "--config"])
            .arg(&self.config)
            .env(
                "OUTPOST_LOG",
                std::env::var("OUTPOST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            );
        let log = self.next_log_path();
        let started = Instant::now();
        self.process = Some(ServerProcess::spawn("outpost edge run", command, log)?);
        Ok(started)
    }

    /// A log file per start, so that a restart does not overwrite the previous log.
    fn next_log_path(&self) -> PathBuf {
        let mut index = 0;
        loop {
            let candidate = self.log.with_extension(format!("{index}.log"));
            if !candidate.exists() {
                return candidate;
            }
            index += 1;
        }
    }

    /// Spawns the runtime and waits until the edge hub accepts connections (when it has one).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.spawn()?;
        if self.edge_hub {
            let addresses = [
                SocketAddr::new(self.gateway, MQTT_PORT),
                SocketAddr::new(self.gateway, HTTPS_PORT),
            ];
            let ca_path = self.edge_ca_path();
            self.process_mut()?
                .wait_until_listening(&addresses, || ca_path.is_file())
                .await?;
        }
        Ok(())
    }

    fn process_mut(&mut self) -> anyhow::Result<&mut ServerProcess> {
        self.process
            .as_mut()
            .ok_or_else(|| anyhow!("the edge runtime is not running"))
    }

    /// The `outpost edge run` process.
    pub fn process(&self) -> anyhow::Result<&ServerProcess> {
        self.process
            .as_ref()
            .ok_or_else(|| anyhow!("the edge runtime is not running"))
    }

    /// Fails with the end of the runtime's log if it exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.process_mut()?.ensure_running()
    }

    /// The end of the current log, for error messages.
    pub fn log_tail(&self) -> String {
        let mut index = 0;
        let mut last = None;
        loop {
            let candidate = self.log.with_extension(format!("{index}.log"));
            if !candidate.exists() {
                break;
            }
            last = Some(candidate);
            index += 1;
        }
        last.map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        })
        .unwrap_or_default()
    }

    /// Where the edge CA certificate (the root of the edge hub's server certificate) is written.
    pub fn edge_ca_path(&self) -> PathBuf {
        self.data_dir.join("agent/edge-ca.pem")
    }

    /// The edge hub's MQTT/TLS endpoint, trusting the edge CA.
    pub fn gateway_endpoint(&self) -> anyhow::Result<Endpoint> {
        let ca_pem = std::fs::read_to_string(self.edge_ca_path())
            .with_context(|| format!("cannot read {}", self.edge_ca_path().display()))?;
        Ok(Endpoint {
            address: SocketAddr::new(self.gateway, MQTT_PORT),
            security: Security::tls_trusting(&ca_pem, &self.gateway.to_string())?,
        })
    }

    /// `outpost edge list --output json`, or `None` while the runtime does not answer.
    pub async fn status(&self) -> Option<Value> {
        let output = Command::new(&self.programs.outpost)
            .args(["edge", "list", "--output", "json", "--config"])
            .arg(&self.config)
            .output()
            .await
            .ok()?;
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// Polls `outpost edge list` every `interval` until every module in `modules` runs; returns the
    /// moment it first saw them all running.
    pub async fn wait_for_modules(
        &mut self,
        modules: &[String],
        interval: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + EDGE_WAIT;
        loop {
            self.ensure_running()?;
            let status = self.status().await;
            if let Some(status) = &status {
                let running = running_modules(status);
                if modules.iter().all(|module| running.contains(module)) {
                    return Ok(Instant::now());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the modules {modules:?} did not all run within {EDGE_WAIT:?}; last status {status:?}\nedge log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Sends SIGTERM, as systemd stops the runtime (it stops its modules first), and waits for the
    /// exit; kills it if it takes longer than [`EDGE_WAIT`].
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut process) = self.process.take() else {
            return Ok(());
        };
        terminate(&mut process).await
    }

    /// The runtime's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for EdgeRuntime {
    /// A runtime left running (a benchmark failed) gets SIGTERM so that it stops its module
    /// processes, which a SIGKILL would orphan.
    fn drop(&mut self) {
        let Some(process) = self.process.take() else {
            return;
        };
        let pid = process.pid().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !exited(&pid) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether process `pid` is gone or a zombie waiting to be reaped.
fn exited(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// SIGTERM through `kill(1)` (the crate has no signal API), then waits for the exit.
async fn terminate(process: &mut ServerProcess) -> anyhow::Result<()> {
    let _ = Command::new("kill")
        .args(["-TERM", &process.pid().to_string()])
        .status()
        .await;
    let deadline = Instant::now() + EDGE_WAIT;
    while Instant::now() < deadline {
        if process.ensure_running().is_err() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    process.kill().await;
    bail!("outpost edge run did not stop on SIGTERM within {EDGE_WAIT:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn deployments_routes_and_topics() {
        let modules = BTreeMap::from([("sink".to_owned(), sleeping_module())]);
        let routes = BTreeMap::from([
            ("a".to_owned(), module_route("src0", "sink", "in")),
            ("b".to_owned(), upstream_route("up0")),
        ]);
        let rendered = format!(
            "{:#}\n{}\n{}",
            deployment(&modules, &routes),
            output_topic("edge", "src0", "out"),
            inputs_filter("edge", "sink")
        );
        expect![[r#"
            {
              "modulesContent": {
                "$edgeAgent": {
                  "properties.desired": {
                    "modules": {
                      "sink": {
                        "restartPolicy": "always",
                        "settings": {
                          "args": [
                            "3600"
                          ],
                          "path": "/bin/sleep"
                        },
                        "status": "running",
                        "type": "process"
                      }
                    },
                    "runtime": {
                      "settings": {},
                      "type": "process"
                    },
                    "schemaVersion": "1.1",
                    "systemModules": {
                      "edgeAgent": {
                        "settings": {
                          "image": "mcr.microsoft.com/azureiotedge-agent:1.5"
                        },
                        "type": "docker"
                      },
                      "edgeHub": {
                        "restartPolicy": "always",
                        "settings": {
                          "image": "mcr.microsoft.com/azureiotedge-hub:1.5"
                        },
                        "status": "running",
                        "type": "docker"
                      }
                    }
                  }
                },
                "$edgeHub": {
                  "properties.desired": {
                    "routes": {
                      "a": "FROM /messages/modules/src0/* INTO BrokeredEndpoint(\"/modules/sink/inputs/in\")",
                      "b": "FROM /messages/modules/up0/* INTO $upstream"
                    },
                    "schemaVersion": "1.1",
                    "storeAndForwardConfiguration": {
                      "timeToLiveSecs": 86400
                    }
                  }
                }
              }
            }
            devices/edge/modules/src0/messages/events/%24.on=out
            devices/edge/modules/sink/inputs/#"#]]
        .assert_eq(&rendered);
    }

    #[test]
    fn running_modules_are_read_from_the_status_document() {
        let status = json!({"modules": [
            {"name": "a", "runtimeStatus": "running"},
            {"name": "b", "runtimeStatus": "backoff"},
            {"name": "c", "runtimeStatus": "running"},
            {"runtimeStatus": "running"}
        ]});
        assert_eq!(running_modules(&status), ["a", "c"]);
        assert!(running_modules(&json!({})).is_empty());
    }
}
