//! The IoT Edge runtime of `outpost edge run`: the agent loop that keeps a device's modules as
//! its deployment says, wired to the hub, the module engine and the workload API.
//!
//! This crate owns the assembly; the decisions live in the pure crates it drives. It reads the
//! edge configuration ([`EdgeSettings`], TOML, unknown keys refused); keeps the device's module
//! identities in sync with the hub through the device-scoped registry API, signed with the
//! device's own key ([`DeviceRegistryClient`], [`plan_identity_sync`]), caching generation ids
//! and keys in memory and in a 0600 file ([`IdentityCache`]); connects to the hub as module
//! `$edgeAgent` (MQTT, SAS signed with the `$edgeAgent` key) and follows its desired properties
//! (twin reads and patches, [`DesiredTracker`]); validates them with `edge-deployment` (an
//! invalid deployment is reported with its 400-class code and the modules are left alone);
//! stores the last applied deployment ([`StoredDeployment`]) and applies it at boot, so an
//! offline reboot brings the modules back; reconciles the modules through `edge-agent`'s
//! `Reconciler` on the [`Engine`] (process modules on the process runtime, and with
//! `runtime = "docker"` Docker modules on the Docker runtime, side by side), restarting them per
//! policy when they exit; serves one workload socket per module (`edge-workload`, keys from the
//! identity cache, a quickstart edge CA, and for process modules a check that the caller is a
//! process of that module); reports the `$edgeAgent` reported properties as patches; and serves
//! a management API on a Unix socket ([`management`]) for `outpost edge list`, `logs` and
//! `restart`; and hosts the edge hub ([`edge_hub`]) once the `$edgeHub` identity's key is known
//! (from the hub or, offline, from the identity cache): its server certificate from the edge CA,
//! renewed in place, and its MQTT/TLS and HTTPS listeners on the gateway address.
//!
//! # Data directory
//!
//! ```text
//! <data_dir>/mgmt.sock                 management API (mode 0600)
//! <data_dir>/mnt/<module>.sock         workload sockets (unless workload_socket_dir says otherwise)
//! <data_dir>/modules/<module>/…        the process runtime's records, logs and working dirs
//! <data_dir>/agent/deployment.json     the last applied $edgeAgent desired properties (0600)
//! <data_dir>/agent/identities.json     module generation ids and keys (0600)
//! <data_dir>/agent/edge-ca.pem, edge-ca.key.pem   the quickstart edge CA (key 0600)
//! <data_dir>/edgehub/store/…           the edge hub's store-and-forward log and ack cursors
//! <data_dir>/edgehub/twins/…           its twin cache
//! <data_dir>/edgehub/scope.cache       the device scope, encrypted with a key derived from the device key
//! <data_dir>/edgehub/config.json       the last valid $edgeHub configuration
//! ```
//!
//! # Not implemented yet
//!
//! - Of Azure's `$edgeAgent` direct methods, only `ping` and `RestartModule` are answered.
//! - The workload API checks the calling process only for process modules; for Docker modules
//!   the socket (bind-mounted into that module's container alone) names the caller.
//! - A module that had exited on its own before the runtime stopped is started again when the
//!   runtime comes back (the agent cannot yet tell its own exit from a shutdown's).

#![forbid(unsafe_code)]

pub mod agent;
pub mod config;
pub mod desired;
pub mod edge_hub;
pub mod engine;
mod files;
pub mod identities;
pub mod management;
pub mod registry_client;
pub mod workload;

pub use agent::{AgentError, AgentOptions, run};
pub use config::{
    ConfigError, EdgeConfigFile, EdgeHubConfigFile, EdgeHubListen, EdgeSettings, RuntimeChoice,
};
pub use desired::{DesiredTracker, DesiredUpdate, StoredDeployment, merge_patch};
pub use engine::Engine;
pub use files::{create_private_dir, write_private_file};
pub use identities::{
    EDGE_MANAGED_BY, IdentityCache, IdentitySyncPlan, ModuleIdentityRecord, plan_identity_sync,
};
pub use management::{ManagementClient, ManagementError};
pub use registry_client::{DeviceRegistryClient, RegistryError};
