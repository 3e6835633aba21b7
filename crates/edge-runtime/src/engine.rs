//! The module engine behind the agent: one [`ModuleRuntime`] over the runtimes this build has.
//!
//! Only the process runtime is wired today. The Docker runtime (`edge-docker`) mirrors the
//! process runtime's shapes (`subscribe_exits` with `edge_process::ModuleExit`, `shutdown`), so
//! adding it is one more variant here and one more arm in [`crate::agent`]'s engine set-up.

use std::time::Duration;

use edge_agent::{LogOptions, ModuleDetails, ModuleRuntime, RuntimeError};
use edge_deployment::{ModuleName, ModuleSpec};
use edge_process::{ModuleExit, ProcessRuntime};
use tokio::sync::broadcast;

use crate::workload::LaunchIdentities;

/// The log stream of any engine.
pub type EngineLogs = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// The engine that runs the modules. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Engine {
    /// Native processes.
    Process(ProcessRuntime<LaunchIdentities>),
}

impl Engine {
    /// Every module exit from now on (bounded; a lagging receiver should list the modules).
    pub fn subscribe_exits(&self) -> broadcast::Receiver<ModuleExit> {
        match self {
            Engine::Process(runtime) => runtime.subscribe_exits(),
        }
    }

    /// Stops every module for a clean shutdown of the runtime (not counted as failures).
    pub async fn shutdown(&self, grace_period: Duration) {
        match self {
            Engine::Process(runtime) => runtime.shutdown(grace_period).await,
        }
    }

    /// `process` or `docker`.
    pub fn kind(&self) -> edge_deployment::RuntimeKind {
        match self {
            Engine::Process(_) => edge_deployment::RuntimeKind::Process,
        }
    }
}

impl ModuleRuntime for Engine {
    type Logs = EngineLogs;

    async fn create(&self, spec: &ModuleSpec) -> Result<(), RuntimeError> {
        match self {
            Engine::Process(runtime) => runtime.create(spec).await,
        }
    }

    async fn update(&self, spec: &ModuleSpec) -> Result<(), RuntimeError> {
        match self {
            Engine::Process(runtime) => runtime.update(spec).await,
        }
    }

    async fn start(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        match self {
            Engine::Process(runtime) => runtime.start(name).await,
        }
    }

    async fn stop(&self, name: &ModuleName, grace_period: Duration) -> Result<(), RuntimeError> {
        match self {
            Engine::Process(runtime) => runtime.stop(name, grace_period).await,
        }
    }

    async fn restart(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        match self {
            Engine::Process(runtime) => runtime.restart(name).await,
        }
    }

    async fn remove(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        match self {
            Engine::Process(runtime) => runtime.remove(name).await,
        }
    }

    async fn list(&self) -> Result<Vec<ModuleDetails>, RuntimeError> {
        match self {
            Engine::Process(runtime) => runtime.list().await,
        }
    }

    async fn inspect(&self, name: &ModuleName) -> Result<ModuleDetails, RuntimeError> {
        match self {
            Engine::Process(runtime) => runtime.inspect(name).await,
        }
    }

    async fn logs(
        &self,
        name: &ModuleName,
        options: &LogOptions,
    ) -> Result<EngineLogs, RuntimeError> {
        match self {
            Engine::Process(runtime) => runtime
                .logs(name, options)
                .await
                .map(|logs| Box::new(logs) as EngineLogs),
        }
    }
}
