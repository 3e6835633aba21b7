//! The Docker module runtime: `"type": "docker"` modules as containers of the local Docker Engine.
//!
//! This crate owns running Docker modules behind the agent's [`edge_agent::ModuleRuntime`]
//! trait, through `bollard` on the engine's Unix socket. [`DockerRuntime`] creates one container
//! per module, named after the module, from `settings.image` and the parsed `createOptions`
//! merged with what the runtime adds: the module's `env` and the `IOTEDGE_*` environment an
//! unmodified Azure IoT SDK module needs, ownership labels, the workload socket mount and the
//! network. It pulls images per `imagePullPolicy` with the deployment's registry logins,
//! starts, stops (`docker stop` with the grace period), restarts, removes, lists and inspects
//! containers, streams their logs, and follows Docker's events to report every exit (code,
//! time and cause) and every health-check verdict through bounded broadcast channels
//! ([`DockerRuntime::subscribe_exits`], [`DockerRuntime::subscribe_health`]). Its public
//! shapes mirror the process runtime's (`edge-process`), whose [`edge_process::EdgeEnvironment`],
//! [`edge_process::ModuleIdentities`] and [`edge_process::ModuleExit`] it reuses, so the agent
//! treats both runtimes alike.
//!
//! # Ownership
//!
//! Every container it creates carries the labels [`OWNER_LABEL`] (the configured owner,
//! `outpost` by default), [`MODULE_LABEL`] (the module name), [`CONFIG_HASH_LABEL`] (the spec's
//! configuration hash, reported back by `list` so the planner can tell changed modules) and
//! [`ORIGINAL_IMAGE_LABEL`]. Only containers with our owner label and a module label equal to
//! their module name are listed, touched or reported; a foreign container that holds a module's
//! name makes `create` fail with a clear message instead of being taken over. Containers survive
//! a restart of the runtime and are adopted by the next instance with the same owner.
//!
//! # Container settings
//!
//! The module's createOptions are Docker's `ContainerCreate` body and are kept, with these
//! changes: `Image` is `settings.image`; deployment `env` and `IOTEDGE_*` variables win over createOptions `Env`; our labels win over createOptions `Labels`; Docker's
//! own restart policy is forced to `no` and `AutoRemove` to false, because the agent applies
//! restart policies (with back-off it can report) and needs exited containers to read their
//! exit codes. A `unix://` workload URI from [`edge_process::ModuleIdentities`] is bind-mounted
//! at [`CONTAINER_WORKLOAD_SOCKET`] (Azure's path) and the module is told that path; the socket
//! must exist when the module is created (the mount is re-resolved at every start, so a
//! re-created socket needs a restart). An `http://` workload URI is passed through unchanged:
//! it is only reachable from a container on the host network.
//!
//! # Images
//!
//! `imagePullPolicy` `on-create` pulls the image when it is not on the host, with the login from
//! `runtime.settings.registryCredentials` whose `address` names the image's registry;
//! `never` requires the image on the host and fails `create` with a message saying so. An
//! image that is present is never pulled again, so modules can be created while the device is
//! offline. `$upstream:<port>/…` images are resolved with the parent host name.

#![forbid(unsafe_code)]

mod container;
mod events;
mod logs;
mod registry;
mod runtime;
mod state;

pub use container::{
    CONFIG_HASH_LABEL, CreateOptionsProblem, MODULE_LABEL, ORIGINAL_IMAGE_LABEL, OWNER_LABEL,
};
pub use events::HealthChange;
pub use logs::DockerLogs;
pub use runtime::{
    CONTAINER_WORKLOAD_SOCKET, DEFAULT_DOCKER_SOCKET, DEFAULT_OWNER, DockerRuntime,
    DockerRuntimeConfig, DockerRuntimeError,
};

/// A point in time, in UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// RFC 3339 with as many fractional digits as needed, for descriptions.
fn format_time(time: Timestamp) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}
