//! The module engine behind the agent: one [`ModuleRuntime`] over the runtimes of this device.
//!
//! Process modules always run on the process runtime (it needs nothing but the host). With
//! `runtime = "docker"` the Docker runtime is connected too and runs the `"type": "docker"`
//! modules, so one deployment may mix both kinds. Each call goes to the runtime that owns the
//! module: `create` by the spec's kind, everything else by which runtime knows the module
//! (the process runtime answers from memory, so it is asked first). A module whose kind changes
//! is removed from one runtime and created in the other.

use std::collections::BTreeMap;
use std::time::Duration;

use edge_agent::{LogOptions, ModuleDetails, ModuleRuntime, RuntimeError, RuntimeOperation};
use edge_deployment::{ModuleKind, ModuleName, ModuleSpec, RegistryCredential};
use edge_docker::{DockerRuntime, HealthChange};
use edge_process::{ModuleExit, ProcessRuntime};
use tokio::sync::broadcast;

use crate::workload::LaunchIdentities;

/// The log stream of any engine.
pub type EngineLogs = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// The runtimes that run this device's modules. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    process: ProcessRuntime<LaunchIdentities>,
    docker: Option<DockerRuntime<LaunchIdentities>>,
    /// The grace period of the stop when a module moves between runtimes.
    stop_grace_period: Duration,
}

/// Which runtime owns a module.
enum Owner {
    Process,
    Docker,
}

impl Engine {
    pub fn new(
        process: ProcessRuntime<LaunchIdentities>,
        docker: Option<DockerRuntime<LaunchIdentities>>,
        stop_grace_period: Duration,
    ) -> Engine {
        Engine {
            process,
            docker,
            stop_grace_period,
        }
    }

    pub fn process(&self) -> &ProcessRuntime<LaunchIdentities> {
        &self.process
    }

    pub fn docker(&self) -> Option<&DockerRuntime<LaunchIdentities>> {
        self.docker.as_ref()
    }

    /// Every exit of a process module from now on.
    pub fn subscribe_process_exits(&self) -> broadcast::Receiver<ModuleExit> {
        self.process.subscribe_exits()
    }

    /// Every exit of a Docker module from now on, when Docker is in use.
    pub fn subscribe_docker_exits(&self) -> Option<broadcast::Receiver<ModuleExit>> {
        self.docker.as_ref().map(DockerRuntime::subscribe_exits)
    }

    /// Every health-check verdict change of a Docker module, when Docker is in use.
    pub fn subscribe_health(&self) -> Option<broadcast::Receiver<HealthChange>> {
        self.docker.as_ref().map(DockerRuntime::subscribe_health)
    }

    /// Passes the deployment's registry logins to the Docker runtime.
    pub fn set_registry_credentials(&self, credentials: &BTreeMap<String, RegistryCredential>) {
        if let Some(docker) = &self.docker {
            docker.set_registry_credentials(credentials.clone());
        }
    }

    /// Stops every module for a clean shutdown of the runtime (not counted as failures).
    pub async fn shutdown(&self, grace_period: Duration) {
        match &self.docker {
            Some(docker) => {
                tokio::join!(
                    self.process.shutdown(grace_period),
                    docker.shutdown(grace_period)
                );
            }
            None => self.process.shutdown(grace_period).await,
        }
    }

    /// `docker` when Docker modules can run, else `process`.
    pub fn kind(&self) -> edge_deployment::RuntimeKind {
        match self.docker {
            Some(_) => edge_deployment::RuntimeKind::Docker,
            None => edge_deployment::RuntimeKind::Process,
        }
    }

    fn docker_or_error(
        &self,
        operation: RuntimeOperation,
        module: &ModuleName,
    ) -> Result<&DockerRuntime<LaunchIdentities>, RuntimeError> {
        self.docker.as_ref().ok_or_else(|| RuntimeError::Failed {
            operation,
            module: module.to_string(),
            message: "docker modules need the Docker runtime: set runtime = \"docker\" in the \
                      edge configuration"
                .to_owned(),
        })
    }

    async fn owner(&self, name: &ModuleName) -> Result<Owner, RuntimeError> {
        match self.process.inspect(name).await {
            Ok(_) => return Ok(Owner::Process),
            Err(RuntimeError::NotFound(_)) => {}
            Err(error) => return Err(error),
        }
        match &self.docker {
            Some(docker) => docker.inspect(name).await.map(|_| Owner::Docker),
            None => Err(RuntimeError::NotFound(name.clone())),
        }
    }
}

impl ModuleRuntime for Engine {
    type Logs = EngineLogs;

    async fn create(&self, spec: &ModuleSpec) -> Result<(), RuntimeError> {
        match &spec.kind {
            ModuleKind::Process(_) => self.process.create(spec).await,
            ModuleKind::Docker(_) => {
                self.docker_or_error(RuntimeOperation::Create, &spec.name)?
                    .create(spec)
                    .await
            }
        }
    }

    async fn update(&self, spec: &ModuleSpec) -> Result<(), RuntimeError> {
        let owner = self.owner(&spec.name).await?;
        match (owner, &spec.kind) {
            (Owner::Process, ModuleKind::Process(_)) => self.process.update(spec).await,
            (Owner::Docker, ModuleKind::Docker(_)) => {
                self.docker_or_error(RuntimeOperation::Update, &spec.name)?
                    .update(spec)
                    .await
            }
            // The kind changed: the module moves from one runtime to the other.
            (owner, _) => {
                match owner {
                    Owner::Process => {
                        self.process
                            .stop(&spec.name, self.stop_grace_period)
                            .await?;
                        self.process.remove(&spec.name).await?;
                    }
                    Owner::Docker => {
                        let docker = self.docker_or_error(RuntimeOperation::Update, &spec.name)?;
                        docker.stop(&spec.name, self.stop_grace_period).await?;
                        docker.remove(&spec.name).await?;
                    }
                }
                self.create(spec).await
            }
        }
    }

    async fn start(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        match self.owner(name).await? {
            Owner::Process => self.process.start(name).await,
            Owner::Docker => {
                self.docker_or_error(RuntimeOperation::Start, name)?
                    .start(name)
                    .await
            }
        }
    }

    async fn stop(&self, name: &ModuleName, grace_period: Duration) -> Result<(), RuntimeError> {
        match self.owner(name).await? {
            Owner::Process => self.process.stop(name, grace_period).await,
            Owner::Docker => {
                self.docker_or_error(RuntimeOperation::Stop, name)?
                    .stop(name, grace_period)
                    .await
            }
        }
    }

    async fn restart(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        match self.owner(name).await? {
            Owner::Process => self.process.restart(name).await,
            Owner::Docker => {
                self.docker_or_error(RuntimeOperation::Restart, name)?
                    .restart(name)
                    .await
            }
        }
    }

    async fn remove(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        match self.owner(name).await? {
            Owner::Process => self.process.remove(name).await,
            Owner::Docker => {
                self.docker_or_error(RuntimeOperation::Remove, name)?
                    .remove(name)
                    .await
            }
        }
    }

    async fn list(&self) -> Result<Vec<ModuleDetails>, RuntimeError> {
        let mut modules = self.process.list().await?;
        if let Some(docker) = &self.docker {
            modules.extend(docker.list().await?);
        }
        Ok(modules)
    }

    async fn inspect(&self, name: &ModuleName) -> Result<ModuleDetails, RuntimeError> {
        match self.owner(name).await? {
            Owner::Process => self.process.inspect(name).await,
            Owner::Docker => {
                self.docker_or_error(RuntimeOperation::Inspect, name)?
                    .inspect(name)
                    .await
            }
        }
    }

    async fn logs(
        &self,
        name: &ModuleName,
        options: &LogOptions,
    ) -> Result<EngineLogs, RuntimeError> {
        match self.owner(name).await? {
            Owner::Process => self
                .process
                .logs(name, options)
                .await
                .map(|logs| Box::new(logs) as EngineLogs),
            Owner::Docker => self
                .docker_or_error(RuntimeOperation::Logs, name)?
                .logs(name, options)
                .await
                .map(|logs| Box::new(logs) as EngineLogs),
        }
    }
}
