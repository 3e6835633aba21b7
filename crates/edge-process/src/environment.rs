//! The `IOTEDGE_*` environment of a module, and where its identity comes from.

use std::collections::BTreeMap;
use std::future::Future;

use edge_deployment::{EnvVarName, ModuleName};
use iothub_types::DeviceId;

/// The workload API version modules are told to use (`IOTEDGE_APIVERSION`) unless configured
/// otherwise; Azure's agent and hub use it for their own workload calls.
pub const DEFAULT_WORKLOAD_API_VERSION: &str = "2020-07-07";

/// What every module of this device is told about where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeEnvironment {
    /// `IOTEDGE_DEVICEID`.
    pub device_id: DeviceId,
    /// `IOTEDGE_IOTHUBHOSTNAME`: the hub name used in SAS audiences and MQTT user names.
    pub iothub_hostname: String,
    /// The host name modules dial to reach this device's edge hub: `IOTEDGE_GATEWAYHOSTNAME`
    /// for user modules and `EdgeDeviceHostName` for the system modules.
    pub gateway_hostname: String,
    /// The parent device's host name in a nested set-up: `IOTEDGE_PARENTHOSTNAME` for user
    /// modules and `IOTEDGE_GATEWAYHOSTNAME` for the system modules.
    pub parent_hostname: Option<String>,
    /// `IOTEDGE_APIVERSION`, sent by SDKs as `?api-version=` on workload calls.
    pub api_version: String,
}

impl EdgeEnvironment {
    /// An environment without a parent, using [`DEFAULT_WORKLOAD_API_VERSION`].
    pub fn new(device_id: DeviceId, iothub_hostname: &str, gateway_hostname: &str) -> Self {
        EdgeEnvironment {
            device_id,
            iothub_hostname: iothub_hostname.to_owned(),
            gateway_hostname: gateway_hostname.to_owned(),
            parent_hostname: None,
            api_version: DEFAULT_WORKLOAD_API_VERSION.to_owned(),
        }
    }
}

/// The per-module identity facts a process needs when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchIdentity {
    /// `IOTEDGE_MODULEGENERATIONID`: the generation id of the module identity in the hub.
    pub generation_id: String,
    /// `IOTEDGE_WORKLOADURI`: `unix:///path/to/<module>.sock` or `http://127.0.0.1:<port>`.
    pub workload_uri: String,
}

/// Supplies the identity of a module when it starts: the edge runtime makes sure the module
/// identity exists in the hub and that the module's workload endpoint listens.
///
/// It is called at every start (so a new generation id reaches the next process); an
/// implementation that talks to the hub should cache its answers so that modules also start
/// while the hub is unreachable.
pub trait ModuleIdentities: Send + Sync + 'static {
    fn launch_identity(
        &self,
        module: &ModuleName,
    ) -> impl Future<Output = Result<LaunchIdentity, String>> + Send;
}

/// A [`ModuleIdentities`] with fixed answers, for tests and static set-ups.
#[derive(Debug, Clone, Default)]
pub struct FixedIdentities {
    by_module: BTreeMap<ModuleName, LaunchIdentity>,
}

impl FixedIdentities {
    pub fn new() -> FixedIdentities {
        FixedIdentities::default()
    }

    /// Adds (or replaces) the identity of one module.
    pub fn with(mut self, module: ModuleName, identity: LaunchIdentity) -> FixedIdentities {
        self.by_module.insert(module, identity);
        self
    }
}

impl ModuleIdentities for FixedIdentities {
    async fn launch_identity(&self, module: &ModuleName) -> Result<LaunchIdentity, String> {
        self.by_module
            .get(module)
            .cloned()
            .ok_or_else(|| format!("no identity is known for module {module}"))
    }
}

/// The complete environment of a module process, pure.
///
/// Layers, later ones winning: `base` (such as `PATH`), the module's deployment `env`, then the
/// runtime's variables. Following Azure's agent, user modules get `IOTEDGE_GATEWAYHOSTNAME` =
/// this device's gateway host name (and `IOTEDGE_PARENTHOSTNAME` when nested), while `edgeAgent`
/// and `edgeHub` get `EdgeDeviceHostName` instead (and `IOTEDGE_GATEWAYHOSTNAME` = the parent
/// when nested). `IOTEDGE_AUTHSCHEME` is always `sasToken`.
pub fn module_environment(
    edge: &EdgeEnvironment,
    module: &ModuleName,
    identity: &LaunchIdentity,
    base: &BTreeMap<String, String>,
    module_env: &BTreeMap<EnvVarName, String>,
) -> BTreeMap<String, String> {
    let mut environment = base.clone();
    for (name, value) in module_env {
        environment.insert(name.as_str().to_owned(), value.clone());
    }
    let mut set = |name: &str, value: &str| {
        environment.insert(name.to_owned(), value.to_owned());
    };
    set("IOTEDGE_WORKLOADURI", &identity.workload_uri);
    set("IOTEDGE_DEVICEID", edge.device_id.as_str());
    set("IOTEDGE_MODULEID", module.module_id().as_str());
    set("IOTEDGE_MODULEGENERATIONID", &identity.generation_id);
    set("IOTEDGE_IOTHUBHOSTNAME", &edge.iothub_hostname);
    set("IOTEDGE_AUTHSCHEME", "sasToken");
    set("IOTEDGE_APIVERSION", &edge.api_version);
    if module.is_system_module() {
        set("EdgeDeviceHostName", &edge.gateway_hostname);
        if let Some(parent) = &edge.parent_hostname {
            set("IOTEDGE_GATEWAYHOSTNAME", parent);
        }
    } else {
        set("IOTEDGE_GATEWAYHOSTNAME", &edge.gateway_hostname);
        if let Some(parent) = &edge.parent_hostname {
            set("IOTEDGE_PARENTHOSTNAME", parent);
        }
    }
    environment
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(module: &str, parent: Option<&str>, module_env: &[(&str, &str)], expect: Expect) {
        let mut edge = EdgeEnvironment::new(
            DeviceId::new("edge-1").unwrap(),
            "hub.example.net",
            "edge-1.local",
        );
        edge.parent_hostname = parent.map(str::to_owned);
        let identity = LaunchIdentity {
            generation_id: "638000000000000001".to_owned(),
            workload_uri: format!("unix:///var/lib/outpost/mnt/{module}.sock"),
        };
        let base = BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]);
        let module_env = module_env
            .iter()
            .map(|(name, value)| (EnvVarName::new(name).unwrap(), (*value).to_owned()))
            .collect();
        let environment = module_environment(
            &edge,
            &ModuleName::new(module).unwrap(),
            &identity,
            &base,
            &module_env,
        );
        let rendered: String = environment
            .iter()
            .map(|(name, value)| format!("{name}={value}\n"))
            .collect();
        expect.assert_eq(&rendered);
    }

    #[test]
    fn user_module_environment() {
        check(
            "sensor",
            None,
            &[("LOG_LEVEL", "debug"), ("IOTEDGE_MODULEID", "spoofed")],
            expect![[r#"
                IOTEDGE_APIVERSION=2020-07-07
                IOTEDGE_AUTHSCHEME=sasToken
                IOTEDGE_DEVICEID=edge-1
                IOTEDGE_GATEWAYHOSTNAME=edge-1.local
                IOTEDGE_IOTHUBHOSTNAME=hub.example.net
                IOTEDGE_MODULEGENERATIONID=638000000000000001
                IOTEDGE_MODULEID=sensor
                IOTEDGE_WORKLOADURI=unix:///var/lib/outpost/mnt/sensor.sock
                LOG_LEVEL=debug
                PATH=/usr/bin:/bin
            "#]],
        );
    }

    #[test]
    fn nested_user_module_gets_parent_host_name() {
        check(
            "sensor",
            Some("parent.local"),
            &[("PATH", "/opt/bin")],
            expect![[r#"
                IOTEDGE_APIVERSION=2020-07-07
                IOTEDGE_AUTHSCHEME=sasToken
                IOTEDGE_DEVICEID=edge-1
                IOTEDGE_GATEWAYHOSTNAME=edge-1.local
                IOTEDGE_IOTHUBHOSTNAME=hub.example.net
                IOTEDGE_MODULEGENERATIONID=638000000000000001
                IOTEDGE_MODULEID=sensor
                IOTEDGE_PARENTHOSTNAME=parent.local
                IOTEDGE_WORKLOADURI=unix:///var/lib/outpost/mnt/sensor.sock
                PATH=/opt/bin
            "#]],
        );
    }

    #[test]
    fn system_module_environment() {
        check(
            "edgeHub",
            None,
            &[],
            expect![[r#"
                EdgeDeviceHostName=edge-1.local
                IOTEDGE_APIVERSION=2020-07-07
                IOTEDGE_AUTHSCHEME=sasToken
                IOTEDGE_DEVICEID=edge-1
                IOTEDGE_IOTHUBHOSTNAME=hub.example.net
                IOTEDGE_MODULEGENERATIONID=638000000000000001
                IOTEDGE_MODULEID=$edgeHub
                IOTEDGE_WORKLOADURI=unix:///var/lib/outpost/mnt/edgeHub.sock
                PATH=/usr/bin:/bin
            "#]],
        );
        check(
            "edgeHub",
            Some("parent.local"),
            &[],
            expect![[r#"
                EdgeDeviceHostName=edge-1.local
                IOTEDGE_APIVERSION=2020-07-07
                IOTEDGE_AUTHSCHEME=sasToken
                IOTEDGE_DEVICEID=edge-1
                IOTEDGE_GATEWAYHOSTNAME=parent.local
                IOTEDGE_IOTHUBHOSTNAME=hub.example.net
                IOTEDGE_MODULEGENERATIONID=638000000000000001
                IOTEDGE_MODULEID=$edgeHub
                IOTEDGE_WORKLOADURI=unix:///var/lib/outpost/mnt/edgeHub.sock
                PATH=/usr/bin:/bin
            "#]],
        );
    }
}
