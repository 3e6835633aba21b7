//! The seam between the agent and whatever runs modules (Docker, native processes, a test double).
//!
//! Modelled on `ModuleRuntime` of Azure's `edgelet-core`, reduced to what the reconcile loop and
//! the CLI need. Implementations own identity and environment concerns: `create` and `update`
//! add the `IOTEDGE_*` variables, mounts and ownership labels, and remember the spec's
//! [`ConfigHash`] so that `list` can report it back.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use edge_deployment::{ConfigHash, ModuleName, ModuleSpec};

use crate::Timestamp;

/// The result of a health check, when the module has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// No health check is configured.
    None,
    /// The health check has not passed yet.
    Starting,
    Healthy,
    Unhealthy,
}

/// What the runtime says about a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleState {
    /// Created and never started.
    Created,
    Running {
        started_at: Timestamp,
        health: Health,
    },
    Exited {
        exit_code: i64,
        finished_at: Timestamp,
    },
    /// The runtime cannot use it any more (Docker's `dead`).
    Dead,
    /// The runtime cannot tell.
    Unknown,
}

/// One module as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleDetails {
    pub name: ModuleName,
    /// `docker` or `process`.
    pub module_type: String,
    /// The configuration hash recorded by `create`/`update`; `None` if the runtime has none.
    pub config_hash: Option<ConfigHash>,
    pub state: ModuleState,
    /// The image (Docker) or executable path (process) actually in use.
    pub image: Option<String>,
    /// The image id (`sha256:…`) for Docker modules.
    pub image_hash: Option<String>,
    /// A human description such as `Up 3 hours`, when the runtime has one.
    pub description: Option<String>,
}

/// Which log lines to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep the stream open and deliver new lines as they come.
    pub follow: bool,
    /// Only the last lines; all when `None`.
    pub tail: Option<u64>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Prefix each line with its time.
    pub timestamps: bool,
}

/// The runtime operations, for error messages and failure injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeOperation {
    Create,
    Update,
    Start,
    Stop,
    Restart,
    Remove,
    List,
    Inspect,
    Logs,
}

impl fmt::Display for RuntimeOperation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            RuntimeOperation::Create => "create",
            RuntimeOperation::Update => "update",
            RuntimeOperation::Start => "start",
            RuntimeOperation::Stop => "stop",
            RuntimeOperation::Restart => "restart",
            RuntimeOperation::Remove => "remove",
            RuntimeOperation::List => "list",
            RuntimeOperation::Inspect => "inspect",
            RuntimeOperation::Logs => "logs",
        })
    }
}

/// Why a runtime operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("module {0} does not exist")]
    NotFound(ModuleName),
    #[error("module {0} already exists")]
    AlreadyExists(ModuleName),
    #[error("{operation} {module} failed: {message}")]
    Failed {
        operation: RuntimeOperation,
        module: String,
        message: String,
    },
}

/// Runs modules. Every method is one engine operation; none of them retries.
///
/// The trait uses `impl Future + Send` returns so that implementations can be plain
/// `async fn`s and callers can spawn the futures.
pub trait ModuleRuntime: Send + Sync {
    /// The log stream of one module.
    type Logs: tokio::io::AsyncRead + Send + Unpin + 'static;

    /// Creates the module (pulling its image under `on-create`) without starting it.
    /// Fails with [`RuntimeError::AlreadyExists`] if a module of that name exists.
    fn create(&self, spec: &ModuleSpec) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Replaces an existing module with the new configuration (stopping and removing the old
    /// one); the new module is created, not started.
    fn update(&self, spec: &ModuleSpec) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Starts a created or stopped module; starting a running module is not an error.
    fn start(&self, name: &ModuleName) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Stops a module: a polite request first, a kill after `grace_period`. Stopping a module
    /// that is not running is not an error.
    fn stop(
        &self,
        name: &ModuleName,
        grace_period: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Stops and starts a module.
    fn restart(&self, name: &ModuleName) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Removes a module that is not running.
    fn remove(&self, name: &ModuleName) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Every module this runtime owns (not foreign containers or processes).
    fn list(&self) -> impl Future<Output = Result<Vec<ModuleDetails>, RuntimeError>> + Send;

    /// One module.
    fn inspect(
        &self,
        name: &ModuleName,
    ) -> impl Future<Output = Result<ModuleDetails, RuntimeError>> + Send;

    /// The module's output (stdout and stderr).
    fn logs(
        &self,
        name: &ModuleName,
        options: &LogOptions,
    ) -> impl Future<Output = Result<Self::Logs, RuntimeError>> + Send;
}
