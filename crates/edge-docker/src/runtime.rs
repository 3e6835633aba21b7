//! [`DockerRuntime`]: modules as containers of the local Docker Engine.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerInspectResponse, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions,
};
use edge_agent::{
    DEFAULT_STOP_GRACE_PERIOD, LogOptions, ModuleDetails, ModuleRuntime, RuntimeError,
    RuntimeOperation,
};
use edge_deployment::{
    DockerSettings, ImagePullPolicy, ModuleKind, ModuleName, ModuleSpec, RegistryCredential,
};
use edge_process::{EdgeEnvironment, ExitCause, ModuleExit, ModuleIdentities, module_environment};
use futures_util::StreamExt;
use tokio::sync::broadcast;

use crate::container::{
    CONFIG_HASH_LABEL, ContainerAdditions, MODULE_LABEL, NetworkAttachment, ORIGINAL_IMAGE_LABEL,
    OWNER_LABEL, container_create_body, container_create_document,
};
use crate::events::{EventSinks, HealthChange, PendingStops, watch_events};
use crate::logs::DockerLogs;
use crate::registry::{credential_for, pull_target};
use crate::state::{OwnedContainer, Ownership, ownership};

/// Where the Docker Engine listens by default.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The value of the [`OWNER_LABEL`] label by default.
pub const DEFAULT_OWNER: &str = "outpost";

/// Where a module's workload socket appears inside its container, as in Azure IoT Edge.
pub const CONTAINER_WORKLOAD_SOCKET: &str = "/var/run/iotedge/workload.sock";

/// How long a Docker request may take before its answer starts (a stop gets its grace period
/// on top).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How many exits or health changes may queue up for a slow receiver before it skips some (and
/// should call `list` to catch up).
const EVENT_QUEUE_LENGTH: usize = 256;

/// How a [`DockerRuntime`] is set up.
#[derive(Debug, Clone)]
pub struct DockerRuntimeConfig {
    /// The Docker Engine's Unix socket.
    pub socket_path: PathBuf,
    /// The device facts every module's `IOTEDGE_*` environment is built from.
    pub edge: EdgeEnvironment,
    /// The value of the [`OWNER_LABEL`] label on our containers. Only containers with this
    /// value are listed, touched or reported; give each runtime instance on a host its own.
    pub owner: String,
    /// A Docker network every module joins unless its createOptions set
    /// `HostConfig.NetworkMode` (Azure uses `azure-iot-edge`). It is created (bridge) when
    /// missing. `edgeHub` gets the gateway host name as an alias there, so modules reach it at
    /// `IOTEDGE_GATEWAYHOSTNAME`. `None`: Docker's default network.
    pub network: Option<String>,
    /// The grace period of the stops that `update`, `restart` and [`DockerRuntime::shutdown`]
    /// do on their own.
    pub stop_grace_period: Duration,
    /// `runtime.settings.registryCredentials` of the deployment; replace them with
    /// [`DockerRuntime::set_registry_credentials`] when a deployment changes them.
    pub registry_credentials: BTreeMap<String, RegistryCredential>,
}

impl DockerRuntimeConfig {
    /// Defaults: [`DEFAULT_DOCKER_SOCKET`], owner [`DEFAULT_OWNER`], no network of our own, the
    /// agent's [`DEFAULT_STOP_GRACE_PERIOD`] and no registry logins.
    pub fn new(edge: EdgeEnvironment) -> DockerRuntimeConfig {
        DockerRuntimeConfig {
            socket_path: PathBuf::from(DEFAULT_DOCKER_SOCKET),
            edge,
            owner: DEFAULT_OWNER.to_owned(),
            network: None,
            stop_grace_period: DEFAULT_STOP_GRACE_PERIOD,
            registry_credentials: BTreeMap::new(),
        }
    }
}

/// Why a [`DockerRuntime`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DockerRuntimeError {
    #[error(
        "the Docker Engine socket {path} does not exist; is Docker installed and running (or set another socket path)?"
    )]
    SocketMissing { path: PathBuf },
    #[error("cannot talk to the Docker Engine at {path}: {message}")]
    Unreachable { path: PathBuf, message: String },
}

/// Runs Docker modules (see the crate documentation).
///
/// Cheap to clone; clones share the connection, the event watcher and the subscriptions.
pub struct DockerRuntime<I> {
    shared: Arc<Shared<I>>,
}

impl<I> Clone for DockerRuntime<I> {
    fn clone(&self) -> Self {
        DockerRuntime {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<I> std::fmt::Debug for DockerRuntime<I> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DockerRuntime")
            .field("socket_path", &self.shared.config.socket_path)
            .field("owner", &self.shared.config.owner)
            .finish_non_exhaustive()
    }
}

struct Shared<I> {
    config: DockerRuntimeConfig,
    identities: I,
    docker: Docker,
    engine_version: String,
    registry_credentials: Mutex<BTreeMap<String, RegistryCredential>>,
    /// One lock per module name, so that operations on one module do not interleave.
    module_locks: Mutex<HashMap<ModuleName, Arc<tokio::sync::Mutex<()>>>>,
    pending_stops: Arc<PendingStops>,
    exits: broadcast::Sender<ModuleExit>,
    health: broadcast::Sender<HealthChange>,
    watcher: tokio::task::JoinHandle<()>,
}

impl<I> Drop for Shared<I> {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl<I: ModuleIdentities> DockerRuntime<I> {
    /// Connects to the Docker Engine (negotiating the API version down to the engine's) and
    /// starts following its events. Exits and health changes from this moment on reach
    /// [`DockerRuntime::subscribe_exits`] and [`DockerRuntime::subscribe_health`] receivers.
    ///
    /// Containers of the same owner left by an earlier runtime instance are adopted as they are:
    /// Docker keeps running them, so a runtime restart costs a module nothing.
    pub async fn connect(
        config: DockerRuntimeConfig,
        identities: I,
    ) -> Result<DockerRuntime<I>, DockerRuntimeError> {
        let path = config.socket_path.clone();
        if !path.exists() {
            return Err(DockerRuntimeError::SocketMissing { path });
        }
        let unreachable = |error: DockerError| DockerRuntimeError::Unreachable {
            path: path.clone(),
            message: error.to_string(),
        };
        let socket = path.to_string_lossy().into_owned();
        let docker = Docker::connect_with_socket(
            &socket,
            REQUEST_TIMEOUT.as_secs(),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(unreachable)?
        .negotiate_version()
        .await
        .map_err(unreachable)?;
        let version = docker.version().await.map_err(unreachable)?;
        let engine_version = format!(
            "{} (API {})",
            version.version.unwrap_or_default(),
            version.api_version.unwrap_or_default()
        );
        let pending_stops = Arc::new(PendingStops::default());
        let exits = broadcast::channel(EVENT_QUEUE_LENGTH).0;
        let health = broadcast::channel(EVENT_QUEUE_LENGTH).0;
        let watcher = tokio::spawn(watch_events(
            docker.clone(),
            config.owner.clone(),
            chrono::Utc::now(),
            EventSinks {
                pending_stops: Arc::clone(&pending_stops),
                exits: exits.clone(),
                health: health.clone(),
            },
        ));
        Ok(DockerRuntime {
            shared: Arc::new(Shared {
                registry_credentials: Mutex::new(config.registry_credentials.clone()),
                config,
                identities,
                docker,
                engine_version,
                module_locks: Mutex::new(HashMap::new()),
                pending_stops,
                exits,
                health,
                watcher,
            }),
        })
    }

    /// Every exit of one of our containers from now on, in order, with its exit code, time and
    /// cause ([`ExitCause::StopRequested`] for `stop`, `restart` and `update`,
    /// [`ExitCause::RuntimeShutdown`] for [`DockerRuntime::shutdown`], otherwise
    /// [`ExitCause::Exited`]). The channel is bounded: a receiver that falls more than 256
    /// exits behind gets `RecvError::Lagged` and should `list` the modules to catch up.
    pub fn subscribe_exits(&self) -> broadcast::Receiver<ModuleExit> {
        self.shared.exits.subscribe()
    }

    /// Every health-check verdict change of one of our containers from now on (Docker's
    /// `health_status` events), so that `on-unhealthy` modules can be restarted without polling.
    pub fn subscribe_health(&self) -> broadcast::Receiver<HealthChange> {
        self.shared.health.subscribe()
    }

    /// Replaces the registry logins used by later pulls (`runtime.settings.registryCredentials`).
    pub fn set_registry_credentials(&self, credentials: BTreeMap<String, RegistryCredential>) {
        *lock(&self.shared.registry_credentials) = credentials;
    }

    /// The engine's version and API version, e.g. `20.10.24 (API 1.41)`, for diagnostics.
    pub fn engine_version(&self) -> &str {
        &self.shared.engine_version
    }

    /// The owner label value this runtime uses.
    pub fn owner(&self) -> &str {
        &self.shared.config.owner
    }

    /// Stops every running module of ours (SIGTERM, SIGKILL after `grace_period`, through
    /// `docker stop`) and reports the exits as [`ExitCause::RuntimeShutdown`], for a clean
    /// runtime exit or host shutdown.
    pub async fn shutdown(&self, grace_period: Duration) {
        let containers = match self.owned_containers().await {
            Ok(containers) => containers,
            Err(error) => {
                tracing::warn!(message = "Cannot list the modules to stop at shutdown.", %error);
                return;
            }
        };
        let mut stops = tokio::task::JoinSet::new();
        for container in containers.into_iter().filter(|container| container.running) {
            let runtime = self.clone();
            stops.spawn(async move {
                let module_lock = runtime.module_lock(&container.details.name);
                let _operation = module_lock.lock().await;
                if let Err(error) = runtime
                    .stop_container(&container, grace_period, ExitCause::RuntimeShutdown)
                    .await
                {
                    tracing::warn!(
                        message = "A module did not stop at shutdown.",
                        module = %container.details.name,
                        %error
                    );
                }
            });
        }
        while stops.join_next().await.is_some() {}
    }

    fn module_lock(&self, name: &ModuleName) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(
            lock(&self.shared.module_locks)
                .entry(name.clone())
                .or_default(),
        )
    }

    /// Our container of module `name`, if there is one. A container of that name that is not
    /// ours is `Ok(None)` for `operation`s that only read or change our modules.
    async fn find(
        &self,
        name: &ModuleName,
        operation: RuntimeOperation,
    ) -> Result<Option<OwnedContainer>, RuntimeError> {
        match self.lookup(name, operation).await? {
            Some(Ownership::Owned(container)) => Ok(Some(*container)),
            Some(Ownership::Foreign) | None => Ok(None),
        }
    }

    async fn find_existing(
        &self,
        name: &ModuleName,
        operation: RuntimeOperation,
    ) -> Result<OwnedContainer, RuntimeError> {
        self.find(name, operation)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(name.clone()))
    }

    async fn lookup(
        &self,
        name: &ModuleName,
        operation: RuntimeOperation,
    ) -> Result<Option<Ownership>, RuntimeError> {
        match self
            .shared
            .docker
            .inspect_container(name.as_str(), None)
            .await
        {
            Ok(inspect) => Ok(Some(self.classify(&inspect, Some(name)))),
            Err(error) if is_status(&error, 404) => Ok(None),
            Err(error) => Err(failed(operation, name, docker_message(&error))),
        }
    }

    fn classify(
        &self,
        inspect: &ContainerInspectResponse,
        expected_module: Option<&ModuleName>,
    ) -> Ownership {
        ownership(inspect, &self.shared.config.owner, expected_module)
    }

    /// Every container carrying our owner label, inspected.
    async fn owned_containers(&self) -> Result<Vec<OwnedContainer>, String> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{OWNER_LABEL}={}", self.shared.config.owner)],
        )]);
        let summaries = self
            .shared
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|error| docker_message(&error))?;
        let mut containers = Vec::with_capacity(summaries.len());
        for id in summaries.into_iter().filter_map(|summary| summary.id) {
            match self.shared.docker.inspect_container(&id, None).await {
                Ok(inspect) => {
                    if let Ownership::Owned(container) = self.classify(&inspect, None) {
                        containers.push(*container);
                    }
                }
                // Removed since it was listed.
                Err(error) if is_status(&error, 404) => {}
                Err(error) => return Err(docker_message(&error)),
            }
        }
        containers.sort_by(|left, right| left.details.name.cmp(&right.details.name));
        Ok(containers)
    }

    /// Makes sure `image` is on this host: present already, or pulled under `on-create`.
    async fn ensure_image(
        &self,
        spec: &ModuleSpec,
        image: &str,
        operation: RuntimeOperation,
    ) -> Result<(), RuntimeError> {
        let docker = &self.shared.docker;
        match docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(error) if is_status(&error, 404) => {}
            Err(error) => {
                return Err(failed(
                    operation,
                    &spec.name,
                    format!("cannot inspect image {image}: {}", docker_message(&error)),
                ));
            }
        }
        if spec.image_pull_policy == ImagePullPolicy::Never {
            return Err(failed(
                operation,
                &spec.name,
                format!(
                    "image {image} is not on this host and imagePullPolicy is never; build or load it here (docker build, docker load) or use imagePullPolicy on-create"
                ),
            ));
        }
        let target = pull_target(image);
        let credential =
            credential_for(&target.registry, &lock(&self.shared.registry_credentials)).cloned();
        let login_note = match &credential {
            Some(credential) => format!(" as {} at {}", credential.username, credential.address),
            None => " without a registry login".to_owned(),
        };
        tracing::info!(message = "Pulling an image.", module = %spec.name, image, registry = %target.registry);
        let options = CreateImageOptions {
            from_image: Some(target.from_image),
            tag: target.tag,
            ..Default::default()
        };
        let credentials = credential.map(|credential| DockerCredentials {
            username: Some(credential.username),
            password: Some(credential.password),
            serveraddress: Some(credential.address),
            ..Default::default()
        });
        let mut progress = docker.create_image(Some(options), None, credentials);
        while let Some(item) = progress.next().await {
            if let Err(error) = item {
                return Err(failed(
                    operation,
                    &spec.name,
                    format!(
                        "cannot pull image {image}{login_note}: {}",
                        docker_message(&error)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Creates the network modules join, when one is configured and missing.
    async fn ensure_network(
        &self,
        network: &str,
        module: &ModuleName,
        operation: RuntimeOperation,
    ) -> Result<(), RuntimeError> {
        let docker = &self.shared.docker;
        match docker.inspect_network(network, None).await {
            Ok(_) => return Ok(()),
            Err(error) if is_status(&error, 404) => {}
            Err(error) => {
                return Err(failed(
                    operation,
                    module,
                    format!(
                        "cannot inspect network {network}: {}",
                        docker_message(&error)
                    ),
                ));
            }
        }
        let request = NetworkCreateRequest {
            name: network.to_owned(),
            driver: Some("bridge".to_owned()),
            labels: Some(HashMap::from([(
                OWNER_LABEL.to_owned(),
                self.shared.config.owner.clone(),
            )])),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(_) => Ok(()),
            // Created by a concurrent create in the meantime.
            Err(error) if is_status(&error, 409) => Ok(()),
            Err(error) => Err(failed(
                operation,
                module,
                format!(
                    "cannot create network {network}: {}",
                    docker_message(&error)
                ),
            )),
        }
    }

    /// Creates the container of `spec`; the caller holds the module lock and knows the name is
    /// free.
    async fn create_container(
        &self,
        spec: &ModuleSpec,
        docker_settings: &DockerSettings,
        image: &str,
        operation: RuntimeOperation,
    ) -> Result<(), RuntimeError> {
        let name = &spec.name;
        let config = &self.shared.config;
        let mut identity = self
            .shared
            .identities
            .launch_identity(name)
            .await
            .map_err(|message| failed(operation, name, format!("no module identity: {message}")))?;
        let workload_mount = match identity.workload_uri.strip_prefix("unix://") {
            Some(host_path) => {
                let mount = (host_path.to_owned(), CONTAINER_WORKLOAD_SOCKET.to_owned());
                identity.workload_uri = format!("unix://{CONTAINER_WORKLOAD_SOCKET}");
                Some(mount)
            }
            None => None,
        };
        let environment =
            module_environment(&config.edge, name, &identity, &BTreeMap::new(), &spec.env);
        let labels = BTreeMap::from([
            (OWNER_LABEL.to_owned(), config.owner.clone()),
            (MODULE_LABEL.to_owned(), name.to_string()),
            (CONFIG_HASH_LABEL.to_owned(), spec.config_hash().to_string()),
            (
                ORIGINAL_IMAGE_LABEL.to_owned(),
                docker_settings.image.to_string(),
            ),
        ]);
        let network_mode_given = docker_settings
            .create_options
            .get("HostConfig")
            .and_then(|host_config| host_config.get("NetworkMode"))
            .is_some();
        let network = match &config.network {
            Some(network) if !network_mode_given => {
                self.ensure_network(network, name, operation).await?;
                let aliases = if *name == ModuleName::edge_hub() {
                    vec![config.edge.gateway_hostname.clone()]
                } else {
                    Vec::new()
                };
                Some(NetworkAttachment {
                    name: network.clone(),
                    aliases,
                })
            }
            _ => None,
        };
        let additions = ContainerAdditions {
            image: image.to_owned(),
            environment,
            labels,
            workload_mount,
            network,
        };
        let body = container_create_document(&docker_settings.create_options, &additions)
            .and_then(container_create_body)
            .map_err(|problem| failed(operation, name, problem.to_string()))?;
        let options = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        match self
            .shared
            .docker
            .create_container(Some(options), body)
            .await
        {
            Ok(response) => {
                for warning in response.warnings {
                    tracing::warn!(message = "Docker warned about a new container.", module = %name, warning);
                }
                Ok(())
            }
            Err(error) if is_status(&error, 409) => match self.lookup(name, operation).await? {
                Some(Ownership::Owned(_)) => Err(RuntimeError::AlreadyExists(name.clone())),
                _ => Err(name_taken(operation, name)),
            },
            Err(error) => Err(failed(operation, name, docker_message(&error))),
        }
    }

    /// Stops a running container through `docker stop` with `grace_period` and records why,
    /// so that its die event carries the cause. The caller holds the module lock.
    async fn stop_container(
        &self,
        container: &OwnedContainer,
        grace_period: Duration,
        cause: ExitCause,
    ) -> Result<(), RuntimeError> {
        if !container.running {
            return Ok(());
        }
        let name = &container.details.name;
        self.shared.pending_stops.expect(&container.id, cause);
        let grace_seconds = grace_period.as_secs() + u64::from(grace_period.subsec_nanos() > 0);
        let options = StopContainerOptions {
            signal: None,
            t: Some(i32::try_from(grace_seconds).unwrap_or(i32::MAX)),
        };
        let docker = self
            .shared
            .docker
            .clone()
            .with_timeout(REQUEST_TIMEOUT + Duration::from_secs(grace_seconds));
        match docker.stop_container(&container.id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) if is_status(&error, 404) => {
                self.shared.pending_stops.forget(&container.id);
                Err(RuntimeError::NotFound(name.clone()))
            }
            Err(error) => {
                self.shared.pending_stops.forget(&container.id);
                Err(failed(RuntimeOperation::Stop, name, docker_message(&error)))
            }
        }
    }

    async fn start_container(&self, container: &OwnedContainer) -> Result<(), RuntimeError> {
        match self
            .shared
            .docker
            .start_container(&container.id, None)
            .await
        {
            Ok(()) => Ok(()),
            Err(error) if is_status(&error, 404) => {
                Err(RuntimeError::NotFound(container.details.name.clone()))
            }
            Err(error) => Err(failed(
                RuntimeOperation::Start,
                &container.details.name,
                docker_message(&error),
            )),
        }
    }

    async fn remove_container(&self, container: &OwnedContainer) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptions {
            v: false,
            force: false,
            link: false,
        };
        match self
            .shared
            .docker
            .remove_container(&container.id, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(error) if is_status(&error, 404) => Ok(()),
            Err(error) => Err(failed(
                RuntimeOperation::Remove,
                &container.details.name,
                docker_message(&error),
            )),
        }
    }

    /// The image to run: `settings.image` with `$upstream` replaced by the parent host name.
    fn resolve_image(
        &self,
        spec: &ModuleSpec,
        docker_settings: &DockerSettings,
        operation: RuntimeOperation,
    ) -> Result<String, RuntimeError> {
        if !docker_settings.image.uses_upstream() {
            return Ok(docker_settings.image.to_string());
        }
        match &self.shared.config.edge.parent_hostname {
            Some(parent) => Ok(docker_settings.image.resolve_upstream(parent)),
            None => Err(failed(
                operation,
                &spec.name,
                format!(
                    "image {} names $upstream but this device has no parent",
                    docker_settings.image
                ),
            )),
        }
    }
}

impl<I: ModuleIdentities> ModuleRuntime for DockerRuntime<I> {
    type Logs = DockerLogs;

    async fn create(&self, spec: &ModuleSpec) -> Result<(), RuntimeError> {
        let operation = RuntimeOperation::Create;
        let docker_settings = docker_settings(spec, operation)?;
        let module_lock = self.module_lock(&spec.name);
        let _operation = module_lock.lock().await;
        match self.lookup(&spec.name, operation).await? {
            Some(Ownership::Owned(_)) => {
                return Err(RuntimeError::AlreadyExists(spec.name.clone()));
            }
            Some(Ownership::Foreign) => return Err(name_taken(operation, &spec.name)),
            None => {}
        }
        let image = self.resolve_image(spec, docker_settings, operation)?;
        self.ensure_image(spec, &image, operation).await?;
        self.create_container(spec, docker_settings, &image, operation)
            .await
    }

    async fn update(&self, spec: &ModuleSpec) -> Result<(), RuntimeError> {
        let operation = RuntimeOperation::Update;
        let docker_settings = docker_settings(spec, operation)?;
        let module_lock = self.module_lock(&spec.name);
        let _operation = module_lock.lock().await;
        let old = self.find_existing(&spec.name, operation).await?;
        // The new image first, so that a failed pull leaves the old module in place.
        let image = self.resolve_image(spec, docker_settings, operation)?;
        self.ensure_image(spec, &image, operation).await?;
        self.stop_container(
            &old,
            self.shared.config.stop_grace_period,
            ExitCause::StopRequested,
        )
        .await
        .map_err(|error| with_operation(error, operation))?;
        self.remove_container(&old)
            .await
            .map_err(|error| with_operation(error, operation))?;
        self.create_container(spec, docker_settings, &image, operation)
            .await
    }

    async fn start(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        let module_lock = self.module_lock(name);
        let _operation = module_lock.lock().await;
        let container = self.find_existing(name, RuntimeOperation::Start).await?;
        self.start_container(&container).await
    }

    async fn stop(&self, name: &ModuleName, grace_period: Duration) -> Result<(), RuntimeError> {
        let module_lock = self.module_lock(name);
        let _operation = module_lock.lock().await;
        let container = self.find_existing(name, RuntimeOperation::Stop).await?;
        self.stop_container(&container, grace_period, ExitCause::StopRequested)
            .await
    }

    async fn restart(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        let operation = RuntimeOperation::Restart;
        let module_lock = self.module_lock(name);
        let _operation = module_lock.lock().await;
        let container = self.find_existing(name, operation).await?;
        self.stop_container(
            &container,
            self.shared.config.stop_grace_period,
            ExitCause::StopRequested,
        )
        .await
        .map_err(|error| with_operation(error, operation))?;
        self.start_container(&container)
            .await
            .map_err(|error| with_operation(error, operation))
    }

    async fn remove(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        let module_lock = self.module_lock(name);
        let _operation = module_lock.lock().await;
        let container = self.find_existing(name, RuntimeOperation::Remove).await?;
        if container.running {
            return Err(failed(
                RuntimeOperation::Remove,
                name,
                "the module is running; stop it first".to_owned(),
            ));
        }
        self.remove_container(&container).await
    }

    async fn list(&self) -> Result<Vec<ModuleDetails>, RuntimeError> {
        let containers = self
            .owned_containers()
            .await
            .map_err(|message| RuntimeError::Failed {
                operation: RuntimeOperation::List,
                module: "*".to_owned(),
                message,
            })?;
        Ok(containers
            .into_iter()
            .map(|container| container.details)
            .collect())
    }

    async fn inspect(&self, name: &ModuleName) -> Result<ModuleDetails, RuntimeError> {
        Ok(self
            .find_existing(name, RuntimeOperation::Inspect)
            .await?
            .details)
    }

    async fn logs(
        &self,
        name: &ModuleName,
        options: &LogOptions,
    ) -> Result<DockerLogs, RuntimeError> {
        let container = self.find_existing(name, RuntimeOperation::Logs).await?;
        let unix_seconds = |time: Option<crate::Timestamp>| {
            time.map_or(0, |time| {
                i32::try_from(time.timestamp()).unwrap_or(i32::MAX)
            })
        };
        let docker_options = LogsOptions {
            follow: options.follow,
            stdout: true,
            stderr: true,
            since: unix_seconds(options.since),
            until: unix_seconds(options.until),
            timestamps: options.timestamps,
            tail: options
                .tail
                .map_or_else(|| "all".to_owned(), |tail| tail.to_string()),
        };
        Ok(DockerLogs::new(
            self.shared.docker.logs(&container.id, Some(docker_options)),
        ))
    }
}

fn docker_settings(
    spec: &ModuleSpec,
    operation: RuntimeOperation,
) -> Result<&DockerSettings, RuntimeError> {
    match &spec.kind {
        ModuleKind::Docker(settings) => Ok(settings),
        ModuleKind::Process(_) => Err(failed(
            operation,
            &spec.name,
            format!("the Docker runtime cannot run {} modules", spec.type_name()),
        )),
    }
}

fn failed(operation: RuntimeOperation, module: &ModuleName, message: String) -> RuntimeError {
    RuntimeError::Failed {
        operation,
        module: module.to_string(),
        message,
    }
}

fn name_taken(operation: RuntimeOperation, module: &ModuleName) -> RuntimeError {
    failed(
        operation,
        module,
        format!(
            "a container named {module} exists but does not belong to this runtime; rename or remove it"
        ),
    )
}

fn with_operation(error: RuntimeError, operation: RuntimeOperation) -> RuntimeError {
    match error {
        RuntimeError::Failed {
            module, message, ..
        } => RuntimeError::Failed {
            operation,
            module,
            message,
        },
        other => other,
    }
}

fn is_status(error: &DockerError, status: u16) -> bool {
    matches!(error, DockerError::DockerResponseServerError { status_code, .. } if *status_code == status)
}

/// The engine's own message when there is one, else the client error.
fn docker_message(error: &DockerError) -> String {
    match error {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        DockerError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks; if one ever did, the data is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
