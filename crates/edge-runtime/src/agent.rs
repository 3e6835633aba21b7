//! The agent loop: desired properties in, modules reconciled, reported properties out.
//!
//! One task owns all the agent's state and waits on a closed set of [`Event`]s: the shutdown
//! signal, a timer (scheduled restarts, retries, a periodic round), module exits from the engine,
//! connection changes and events of the hub client, and management commands. After every event
//! it reconciles when something may have changed, then reports: the status document the
//! management API serves, and the `$edgeAgent` reported-properties patch (only what changed).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use edge_agent::{
    AgentReport, AgentVersion, BackoffSettings, DEFAULT_STOP_GRACE_PERIOD, ModuleReport,
    ModuleRuntime, PlatformInfo, Reconciler, RuntimeError, RuntimeStatus,
    build_reported_properties, reported_patch,
};
use edge_deployment::{
    AgentDeployment, DeploymentStatusCode, LastDesiredStatus, ModuleName, ModuleSpec,
};
use edge_docker::{DockerRuntime, DockerRuntimeConfig, HealthChange};
use edge_process::{EdgeEnvironment, ModuleExit, ProcessRuntime, ProcessRuntimeConfig};
use iothub_auth::{SasToken, SasTokenStyle};
use iothub_client::{
    ClientEvent, ClientOptions, Credentials, EventStream, Feature, IotHubClient, MethodRequest,
    TokenError, TokenRequest, Transport,
};
use iothub_types::{Identity, ModuleId};
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use crate::config::{EdgeSettings, RuntimeChoice};
use crate::desired::{DesiredTracker, DesiredUpdate, StoredDeployment};
use crate::edge_hub::EdgeHubHost;
use crate::engine::Engine;
use crate::files::create_private_dir;
use crate::identities::{IdentityCache, plan_identity_sync};
use crate::management::{self, ManagementCommand};
use crate::registry_client::{DeviceRegistryClient, RegistryError};
use crate::workload::{
    EdgeCaDates, LaunchIdentities, ModuleProcessCheck, WorkloadSockets, load_or_create_edge_ca,
    workload_api, workload_certificates,
};

/// A round runs at least this often even when nothing happens.
const PERIODIC_ROUND: Duration = Duration::from_secs(30);
/// How soon something that failed (a twin read, a report, an identity sync, a command) is retried.
const RETRY_DELAY: Duration = Duration::from_secs(5);
/// The shortest wait between two timer-driven rounds, so a command that keeps failing cannot spin.
const MINIMUM_TIMER_DELAY: Duration = Duration::from_millis(500);
/// How long one hub call of the loop may take.
const HUB_CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// How soon a failed edge CA renewal is tried again.
const EDGE_CA_RETRY_DELAY: Duration = Duration::from_secs(60);

/// How the agent behaves; [`AgentOptions::default`] has Azure's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentOptions {
    pub backoff: BackoffSettings,
    /// Between SIGTERM and SIGKILL when stopping a module.
    pub stop_grace_period: Duration,
}

impl Default for AgentOptions {
    fn default() -> AgentOptions {
        AgentOptions {
            backoff: BackoffSettings::AZURE,
            stop_grace_period: DEFAULT_STOP_GRACE_PERIOD,
        }
    }
}

/// Why the agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the hub CA file {path}: {message}")]
    HubCa { path: PathBuf, message: String },
    #[error("the edge CA cannot be loaded or created: {0}")]
    EdgeCa(String),
    #[error("the module runtime cannot start: {0}")]
    Runtime(String),
    #[error("the hub client cannot be configured: {0}")]
    Client(String),
}

/// The closed set of things the loop waits for.
enum Event {
    Shutdown,
    Timer,
    /// A module exited or its health changed (or the runtime's channel closed).
    ModuleChanged,
    Connection(bool),
    ConnectionWatchClosed,
    Client(Box<ClientEvent>),
    ClientEventsEnded,
    Command(ManagementCommand),
    CommandsClosed,
}

/// Runs the edge runtime until `shutdown` resolves: modules are then stopped (not counted as
/// failures) and the agent reports that it is shutting down.
pub async fn run(
    settings: EdgeSettings,
    options: AgentOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let (mut agent, mut inputs) = Agent::start(settings, options).await?;
    agent.run_loop(&mut inputs, shutdown).await;
    Ok(())
}

/// What the loop receives from.
struct Inputs {
    process_exits: Option<broadcast::Receiver<ModuleExit>>,
    docker_exits: Option<broadcast::Receiver<ModuleExit>>,
    health: Option<broadcast::Receiver<HealthChange>>,
    connection: watch::Receiver<iothub_client::ConnectionState>,
    connection_open: bool,
    events: EventStream,
    events_open: bool,
    commands: mpsc::Receiver<ManagementCommand>,
    commands_open: bool,
}

struct Agent {
    settings: EdgeSettings,
    options: AgentOptions,
    engine: Engine,
    cache: IdentityCache,
    sockets: WorkloadSockets,
    registry: DeviceRegistryClient,
    client: IotHubClient,
    reconciler: Reconciler,
    management_task: tokio::task::JoinHandle<()>,
    status: watch::Sender<Value>,
    deployment_file: PathBuf,

    tracker: DesiredTracker,
    /// The deployment in force and the `$version` it came from.
    deployment: Option<(i64, AgentDeployment)>,
    /// The latest `$version` of the desired properties seen from the hub in this session.
    hub_version: Option<i64>,
    /// The latest desired version acted on (applied or refused).
    last_desired_version: Option<i64>,
    /// Why the latest desired properties were refused; the deployment in force stays.
    refused: Option<LastDesiredStatus>,
    /// How applying the deployment in force went in the last round.
    apply_status: LastDesiredStatus,

    connected: bool,
    twin_needed: bool,
    /// The reported properties as the hub has them, once read; patches are computed against it.
    reported_baseline: Option<Value>,
    report_pending: bool,
    /// The identities the last successful sync was for.
    identities_synced: Option<BTreeSet<ModuleId>>,
    identity_retry_at: Option<Instant>,
    reconcile_due: bool,
    started_at: edge_agent::Timestamp,
    /// The hub's CA certificates (the edge hub's upstream trusts them).
    hub_roots: Vec<tls::CertificateDer<'static>>,
    /// The hub's CA certificates as PEM text (part of the workload trust bundle).
    hub_ca_pem: String,
    /// The edge CA's end, and when it is renewed in place (or a failed renewal tried again).
    edge_ca: EdgeCaDates,
    /// The edge hub once started, or why it could not start.
    edge_hub: Option<EdgeHubHost>,
    edge_hub_failure: Option<String>,
}

impl Agent {
    async fn start(
        settings: EdgeSettings,
        options: AgentOptions,
    ) -> Result<(Agent, Inputs), AgentError> {
        let io_error = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| AgentError::Io { path, source }
        };
        let agent_dir = settings.agent_dir();
        create_private_dir(&settings.data_dir).map_err(io_error(&settings.data_dir))?;
        create_private_dir(&agent_dir).map_err(io_error(&agent_dir))?;

        let hub_ca_error = |message: String| AgentError::HubCa {
            path: settings.hub_ca_file.clone(),
            message,
        };
        let hub_ca_pem = std::fs::read_to_string(&settings.hub_ca_file)
            .map_err(|error| hub_ca_error(error.to_string()))?;
        let hub_roots = tls::certificates_from_pem(hub_ca_pem.as_bytes(), "the hub CA file")
            .map_err(|error| hub_ca_error(error.to_string()))?;

        let identities_file = agent_dir.join("identities.json");
        let cache =
            IdentityCache::load(identities_file.clone()).map_err(io_error(&identities_file))?;
        let authority = load_or_create_edge_ca(
            &agent_dir,
            settings.device_id.as_str(),
            settings.edge_ca_validity_days,
        )
        .map_err(|error| AgentError::EdgeCa(error.to_string()))?;
        let edge_ca = EdgeCaDates::of(&authority);
        let check = ModuleProcessCheck::default();
        let api = workload_api(cache.clone(), authority, &hub_ca_pem, check.clone())
            .map_err(|error| AgentError::EdgeCa(error.to_string()))?;
        let sockets = WorkloadSockets::new(api, settings.workload_socket_dir.clone());
        let launch = LaunchIdentities {
            cache: cache.clone(),
            sockets: sockets.clone(),
        };

        let mut process_config =
            ProcessRuntimeConfig::new(settings.data_dir.clone(), edge_environment(&settings));
        process_config.stop_grace_period = options.stop_grace_period;
        let process = ProcessRuntime::open(process_config, launch.clone())
            .await
            .map_err(|error| AgentError::Runtime(error.to_string()))?;
        let lookup = process.clone();
        check.set_lookup(move |pid| lookup.module_of_process(pid));
        let docker = match settings.runtime {
            RuntimeChoice::Process => None,
            RuntimeChoice::Docker => {
                let mut docker_config = DockerRuntimeConfig::new(edge_environment(&settings));
                docker_config.owner = format!("outpost-{}", settings.device_id);
                docker_config.stop_grace_period = options.stop_grace_period;
                let docker = DockerRuntime::connect(docker_config, launch)
                    .await
                    .map_err(|error| AgentError::Runtime(error.to_string()))?;
                tracing::info!(
                    message = "Connected to the Docker Engine.",
                    version = docker.engine_version()
                );
                Some(docker)
            }
        };
        let engine = Engine::new(process, docker, options.stop_grace_period);

        let registry = DeviceRegistryClient::new(
            settings.hub_hostname.clone(),
            settings.hub_https_port,
            settings.device_id.clone(),
            settings.device_key.clone(),
            &hub_roots,
        )
        .map_err(|error| AgentError::Client(error.to_string()))?;

        let deployment_file = agent_dir.join("deployment.json");
        let stored = match StoredDeployment::load(&deployment_file) {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(message = "Ignoring the stored deployment.", %error);
                None
            }
        };
        let mut deployment = None;
        let mut tracker = DesiredTracker::new(None);
        if let Some(stored) = stored {
            match AgentDeployment::from_desired_properties(&stored.desired) {
                Ok(parsed) => {
                    tracing::info!(
                        message = "Applying the stored deployment until the hub is read.",
                        version = stored.version
                    );
                    deployment = Some((stored.version, parsed));
                    tracker = DesiredTracker::new(Some((stored.version, stored.desired)));
                }
                Err(error) => {
                    tracing::warn!(message = "The stored deployment is not valid.", %error);
                }
            }
        }

        let (status, status_receiver) = watch::channel(Value::Null);
        let (command_sender, commands) = mpsc::channel(16);
        let management_path = settings.management_socket();
        let management_task = management::serve(
            &management_path,
            status_receiver,
            engine.clone(),
            command_sender,
        )
        .await
        .map_err(io_error(&management_path))?;

        let (client, events) = IotHubClient::spawn(client_options(
            &settings,
            hub_roots.clone(),
            cache.clone(),
            registry.clone(),
        ))
        .map_err(|error| AgentError::Client(error.to_string()))?;

        if let Some((_, deployment)) = &deployment {
            engine.set_registry_credentials(&deployment.runtime.registry_credentials);
        }
        let inputs = Inputs {
            process_exits: Some(engine.subscribe_process_exits()),
            docker_exits: engine.subscribe_docker_exits(),
            health: engine.subscribe_health(),
            connection: client.connection_state(),
            connection_open: true,
            events,
            events_open: true,
            commands,
            commands_open: true,
        };
        let last_desired_version = deployment.as_ref().map(|(version, _)| *version);
        let agent = Agent {
            reconciler: Reconciler::new(options.backoff, options.stop_grace_period),
            settings,
            options,
            engine,
            cache,
            sockets,
            registry,
            client,
            management_task,
            status,
            deployment_file,
            tracker,
            deployment,
            hub_version: None,
            last_desired_version,
            refused: None,
            apply_status: LastDesiredStatus::ok(),
            connected: false,
            twin_needed: true,
            reported_baseline: None,
            report_pending: false,
            identities_synced: None,
            identity_retry_at: None,
            reconcile_due: true,
            started_at: chrono::Utc::now(),
            hub_roots,
            hub_ca_pem,
            edge_ca,
            edge_hub: None,
            edge_hub_failure: None,
        };
        Ok((agent, inputs))
    }

    async fn run_loop(&mut self, inputs: &mut Inputs, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if self.connected && self.twin_needed {
                self.read_twin().await;
            }
            self.sync_identities().await;
            self.start_edge_hub().await;
            self.renew_edge_ca_if_due();
            if self.reconcile_due {
                self.reconcile_due = false;
                self.reconcile().await;
            }
            self.report().await;

            let delay = self.next_delay();
            let event = tokio::select! {
                () = &mut shutdown => Event::Shutdown,
                () = tokio::time::sleep(delay) => Event::Timer,
                closed = module_changed(&mut inputs.process_exits) => {
                    if closed { inputs.process_exits = None; }
                    Event::ModuleChanged
                },
                closed = module_changed(&mut inputs.docker_exits) => {
                    if closed { inputs.docker_exits = None; }
                    Event::ModuleChanged
                },
                closed = module_changed(&mut inputs.health) => {
                    if closed { inputs.health = None; }
                    Event::ModuleChanged
                },
                changed = inputs.connection.changed(), if inputs.connection_open => match changed {
                    Ok(()) => Event::Connection(inputs.connection.borrow_and_update().is_connected()),
                    Err(_) => Event::ConnectionWatchClosed,
                },
                event = inputs.events.next(), if inputs.events_open => match event {
                    Some(event) => Event::Client(Box::new(event)),
                    None => Event::ClientEventsEnded,
                },
                command = inputs.commands.recv(), if inputs.commands_open => match command {
                    Some(command) => Event::Command(command),
                    None => Event::CommandsClosed,
                },
            };
            match event {
                Event::Shutdown => break,
                Event::Timer | Event::ModuleChanged => self.reconcile_due = true,
                Event::Connection(connected) => self.connection_changed(connected),
                Event::ConnectionWatchClosed => {
                    inputs.connection_open = false;
                    self.connected = false;
                }
                Event::Client(event) => self.client_event(*event).await,
                Event::ClientEventsEnded => inputs.events_open = false,
                Event::Command(command) => self.command(command).await,
                Event::CommandsClosed => inputs.commands_open = false,
            }
        }
        self.shut_down().await;
    }

    fn next_delay(&self) -> Duration {
        let now = chrono::Utc::now();
        let mut delay = PERIODIC_ROUND;
        let retrying = self.apply_status.code != DeploymentStatusCode::Ok
            || self.report_pending
            || (self.connected && self.twin_needed);
        if retrying {
            delay = delay.min(RETRY_DELAY);
        }
        if let Some(at) = self.reconciler.next_wakeup(now) {
            let until = (at - now).to_std().unwrap_or_default();
            delay = delay.min(until);
        }
        if let Some(at) = self.identity_retry_at {
            delay = delay.min(at.saturating_duration_since(Instant::now()));
        }
        let until_renewal = self
            .edge_ca
            .renew_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        delay.min(until_renewal).max(MINIMUM_TIMER_DELAY)
    }

    /// Renews the edge CA in place once it is due (same name and key, a new validity), without a
    /// restart: the workload API hands out the new trust bundle and issues from it, and the edge
    /// hub serves a server certificate from it to new handshakes at once.
    fn renew_edge_ca_if_due(&mut self) {
        if SystemTime::now() < self.edge_ca.renew_at {
            return;
        }
        let agent_dir = self.settings.agent_dir();
        let device = self.settings.device_id.as_str();
        let days = self.settings.edge_ca_validity_days;
        let renewed = load_or_create_edge_ca(&agent_dir, device, days).and_then(|authority| {
            let dates = EdgeCaDates::of(&authority);
            let certificates = workload_certificates(authority, &self.hub_ca_pem)?;
            Ok((dates, certificates))
        });
        let (dates, certificates) = match renewed {
            Ok(renewed) => renewed,
            Err(error) => {
                tracing::warn!(message = "Cannot renew the edge CA; trying again soon.", %error);
                self.edge_ca.renew_at = SystemTime::now() + EDGE_CA_RETRY_DELAY;
                return;
            }
        };
        self.sockets.api().replace_certificates(certificates);
        if let Some(host) = &self.edge_hub {
            match load_or_create_edge_ca(&agent_dir, device, days) {
                Ok(authority) => host.replace_authority(authority),
                Err(error) => {
                    tracing::warn!(message = "The edge hub keeps its certificate for now.", %error);
                }
            }
        }
        self.edge_ca = dates;
    }

    fn connection_changed(&mut self, connected: bool) {
        if connected == self.connected {
            return;
        }
        self.connected = connected;
        if connected {
            tracing::info!(message = "Connected to the hub as $edgeAgent.");
            // Read the whole twin again (a patch may have been missed) and refresh the identities
            // (keys may have been regenerated).
            self.twin_needed = true;
            self.identities_synced = None;
            self.identity_retry_at = None;
        } else {
            tracing::info!(message = "Disconnected from the hub; modules keep running.");
        }
    }

    async fn read_twin(&mut self) {
        let twin = match tokio::time::timeout(HUB_CALL_TIMEOUT, self.client.get_twin()).await {
            Ok(Ok(twin)) => twin,
            Ok(Err(error)) => {
                tracing::warn!(message = "Reading the $edgeAgent twin failed.", %error);
                return;
            }
            Err(_) => {
                tracing::warn!(message = "Reading the $edgeAgent twin timed out.");
                return;
            }
        };
        self.twin_needed = false;
        let mut reported = twin
            .get("reported")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        reported.retain(|key, _| !key.starts_with('$'));
        self.reported_baseline = Some(Value::Object(reported));
        let hub_version = twin
            .pointer("/desired/$version")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        self.hub_version = Some(hub_version);
        match self.tracker.on_twin(&twin) {
            DesiredUpdate::Changed { version, desired } => self.desired_changed(version, desired),
            DesiredUpdate::Unchanged | DesiredUpdate::NeedFullTwin => {}
        }
    }

    async fn client_event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::DesiredPropertiesPatch { version, patch } => {
                let version = i64::try_from(version).unwrap_or(i64::MAX);
                match self.tracker.on_patch(version, &patch) {
                    DesiredUpdate::Changed { version, desired } => {
                        self.hub_version = Some(version);
                        self.desired_changed(version, desired);
                    }
                    DesiredUpdate::Unchanged => {}
                    DesiredUpdate::NeedFullTwin => self.twin_needed = true,
                }
            }
            ClientEvent::MethodRequest(request) => self.method(request).await,
            ClientEvent::CloudToDevice(_)
            | ClientEvent::CloudToDeviceToAcknowledge { .. }
            | ClientEvent::ModuleInput { .. } => {}
        }
    }

    /// Validates new desired properties; a valid deployment replaces the one in force and is
    /// stored, an invalid one is reported and the modules are left as they are.
    fn desired_changed(&mut self, version: i64, desired: Map<String, Value>) {
        self.last_desired_version = Some(version);
        match AgentDeployment::from_desired_properties(&desired) {
            Ok(deployment) => {
                tracing::info!(message = "New deployment.", version);
                self.refused = None;
                let stored = StoredDeployment { version, desired };
                if let Err(error) = stored.save(&self.deployment_file) {
                    tracing::warn!(message = "Cannot store the deployment.", %error);
                }
                self.engine
                    .set_registry_credentials(&deployment.runtime.registry_credentials);
                self.deployment = Some((version, deployment));
                self.reconcile_due = true;
            }
            Err(error) => {
                if error.status_code() == DeploymentStatusCode::ConfigEmptyError {
                    tracing::info!(message = "No deployment yet.", version);
                } else {
                    tracing::warn!(
                        message = "Refusing the deployment; modules stay as they are.",
                        version,
                        %error
                    );
                }
                self.refused = Some(LastDesiredStatus::from_error(&error));
            }
        }
    }

    /// The module identities the deployment in force needs (the system modules always).
    fn wanted_identities(&self) -> BTreeSet<ModuleId> {
        let mut wanted: BTreeSet<ModuleId> = [ModuleName::edge_agent(), ModuleName::edge_hub()]
            .iter()
            .map(ModuleName::module_id)
            .collect();
        if let Some((_, deployment)) = &self.deployment {
            wanted.extend(deployment.modules.keys().map(ModuleName::module_id));
        }
        wanted
    }

    /// Whether the deployment in force is the hub's current one (and not an older stored one).
    fn deployment_is_from_hub(&self) -> bool {
        match (&self.deployment, self.hub_version) {
            (Some((version, _)), Some(hub_version)) => *version == hub_version,
            _ => false,
        }
    }

    /// Starts the edge hub once the `$edgeHub` identity's key is known (from the hub, or cached
    /// from an earlier run so that an offline boot works), and keeps it told about this device's
    /// module identities.
    async fn start_edge_hub(&mut self) {
        let Some(listen) = self.settings.edge_hub.clone() else {
            return;
        };
        if self.edge_hub.is_some() || self.edge_hub_failure.is_some() {
            return;
        }
        let Some(key) = self
            .cache
            .get(&ModuleName::edge_hub().module_id())
            .and_then(|record| record.primary_key())
        else {
            return;
        };
        let authority = match load_or_create_edge_ca(
            &self.settings.agent_dir(),
            self.settings.device_id.as_str(),
            self.settings.edge_ca_validity_days,
        ) {
            Ok(authority) => authority,
            Err(error) => {
                self.edge_hub_failure = Some(format!("edge CA: {error}"));
                return;
            }
        };
        match EdgeHubHost::start(
            &self.settings,
            &listen,
            self.hub_roots.clone(),
            authority,
            key,
        )
        .await
        {
            Ok(host) => {
                host.know_modules(&self.settings, &self.cache.all());
                self.edge_hub = Some(host);
                self.report_pending = true;
            }
            Err(error) => {
                tracing::error!(message = "The edge hub cannot start.", %error);
                self.edge_hub_failure = Some(error.to_string());
                self.report_pending = true;
            }
        }
    }

    async fn sync_identities(&mut self) {
        let wanted = self.wanted_identities();
        if self.identities_synced.as_ref() == Some(&wanted) {
            return;
        }
        if self.identity_retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        match self.try_sync_identities(&wanted).await {
            Ok(()) => {
                self.identities_synced = Some(wanted);
                self.identity_retry_at = None;
                if let Some(host) = &self.edge_hub {
                    host.know_modules(&self.settings, &self.cache.all());
                }
                self.reconcile_due = true;
            }
            Err(error) => {
                if error.is_unreachable() {
                    tracing::info!(message = "The hub is not reachable; using the stored module identities.", %error);
                } else {
                    tracing::warn!(message = "Syncing the module identities failed.", %error);
                }
                self.identity_retry_at = Some(Instant::now() + RETRY_DELAY);
            }
        }
    }

    async fn try_sync_identities(&self, wanted: &BTreeSet<ModuleId>) -> Result<(), RegistryError> {
        let mut existing = self.registry.list_modules().await?;
        let plan = plan_identity_sync(&existing, wanted, self.deployment_is_from_hub());
        for module_id in &plan.create {
            tracing::info!(message = "Creating a module identity.", module = %module_id);
            let record = match self.registry.create_module(module_id).await {
                Ok(record) => record,
                Err(RegistryError::Refused {
                    status: hyper::StatusCode::CONFLICT,
                    ..
                }) => self.registry.get_module(module_id).await?,
                Err(error) => return Err(error),
            };
            existing.push(record);
        }
        for module_id in &plan.delete {
            tracing::info!(message = "Deleting the identity of a removed module.", module = %module_id);
            self.registry.delete_module(module_id).await?;
            existing.retain(|record| record.module_id != *module_id);
        }
        if let Err(error) = self.cache.replace_all(existing) {
            tracing::warn!(message = "Cannot store the module identities.", %error);
        }
        Ok(())
    }

    async fn reconcile(&mut self) {
        let Some((_, deployment)) = &self.deployment else {
            return;
        };
        let desired: Vec<ModuleSpec> = deployment.modules.values().cloned().collect();
        let keep: BTreeSet<ModuleName> = deployment.modules.keys().cloned().collect();
        let now = chrono::Utc::now();
        match self
            .reconciler
            .reconcile(&self.engine, desired.iter(), now)
            .await
        {
            Ok(outcome) => {
                if !outcome.plan.is_empty() {
                    tracing::info!(message = "Reconciled.", plan = %outcome.plan.to_string().trim_end());
                }
                for failure in &outcome.failures {
                    tracing::warn!(
                        message = "A module command failed; it is retried.",
                        command = %failure.command,
                        error = %failure.error
                    );
                }
                self.apply_status = outcome.status();
            }
            Err(error) => {
                tracing::warn!(message = "The module runtime cannot list its modules.", %error);
                self.apply_status = LastDesiredStatus {
                    code: DeploymentStatusCode::Failed,
                    description: Some(error.to_string()),
                };
            }
        }
        self.sockets.retain(&keep).await;
    }

    fn last_desired_status(&self) -> LastDesiredStatus {
        if let Some(refused) = &self.refused {
            return refused.clone();
        }
        if self.deployment.is_none() {
            return LastDesiredStatus {
                code: DeploymentStatusCode::ConfigEmptyError,
                description: Some("no deployment has been received yet".to_owned()),
            };
        }
        self.apply_status.clone()
    }

    async fn reported_properties(&self, status: &LastDesiredStatus) -> Value {
        let details: BTreeMap<ModuleName, edge_agent::ModuleDetails> = self
            .engine
            .list()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|details| (details.name.clone(), details))
            .collect();
        let deployment = self.deployment.as_ref().map(|(_, deployment)| deployment);
        let modules: Vec<ModuleReport> = deployment
            .map(|deployment| {
                deployment
                    .modules
                    .keys()
                    .map(|name| {
                        ModuleReport::new(
                            name.clone(),
                            details.get(name),
                            self.reconciler.snapshot(name).as_ref(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let edge_agent = ModuleReport {
            name: ModuleName::edge_agent(),
            runtime_status: RuntimeStatus::Running,
            exit_code: None,
            status_description: "running".to_owned(),
            last_start_time: Some(self.started_at),
            last_exit_time: None,
            restart_count: 0,
            last_restart_time: None,
            next_restart_time: None,
            backoff_delay: None,
            image: None,
            image_hash: None,
        };
        let (edge_hub_status, edge_hub_description) = match (&self.edge_hub, &self.edge_hub_failure)
        {
            (Some(_), _) => (
                RuntimeStatus::Running,
                "running in the runtime process".to_owned(),
            ),
            (None, Some(failure)) => (RuntimeStatus::Failed, failure.clone()),
            (None, None) if self.settings.edge_hub.is_none() => (
                RuntimeStatus::Stopped,
                "disabled in the edge configuration".to_owned(),
            ),
            (None, None) => (
                RuntimeStatus::Unknown,
                "waiting for the $edgeHub identity".to_owned(),
            ),
        };
        let edge_hub = ModuleReport {
            name: ModuleName::edge_hub(),
            runtime_status: edge_hub_status,
            exit_code: None,
            status_description: edge_hub_description,
            last_start_time: None,
            last_exit_time: None,
            restart_count: 0,
            last_restart_time: None,
            next_restart_time: None,
            backoff_delay: None,
            image: None,
            image_hash: None,
        };
        let version = AgentVersion {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            build: String::new(),
            commit: option_env!("OUTPOST_COMMIT").unwrap_or_default().to_owned(),
        };
        let platform = PlatformInfo {
            os: std::env::consts::OS.to_owned(),
            architecture: std::env::consts::ARCH.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        build_reported_properties(&AgentReport {
            version: &version,
            platform: &platform,
            runtime_kind: self.engine.kind(),
            last_desired_version: self.last_desired_version,
            last_desired_status: status,
            deployment,
            edge_agent: &edge_agent,
            edge_hub: Some(&edge_hub),
            modules: &modules,
        })
    }

    async fn report(&mut self) {
        let status = self.last_desired_status();
        let document = self.reported_properties(&status).await;
        self.status.send_replace(status_document(
            &self.settings,
            self.connected,
            self.edge_ca,
            &document,
        ));
        if !self.connected {
            return;
        }
        let Some(baseline) = &self.reported_baseline else {
            return;
        };
        let Some(patch) = reported_patch(baseline, &document) else {
            self.report_pending = false;
            return;
        };
        match tokio::time::timeout(HUB_CALL_TIMEOUT, self.client.patch_reported(&patch)).await {
            Ok(Ok(_)) => {
                self.reported_baseline = Some(document);
                self.report_pending = false;
            }
            Ok(Err(error)) => {
                tracing::warn!(message = "Reporting to the hub failed; retrying.", %error);
                self.report_pending = true;
            }
            Err(_) => {
                tracing::warn!(message = "Reporting to the hub timed out; retrying.");
                self.report_pending = true;
            }
        }
    }

    async fn restart_module(&mut self, module: &ModuleName) -> Result<(), RuntimeError> {
        let known = self
            .deployment
            .as_ref()
            .is_some_and(|(_, deployment)| deployment.modules.contains_key(module));
        if !known {
            return Err(RuntimeError::NotFound(module.clone()));
        }
        tracing::info!(message = "Restarting a module on request.", module = %module);
        let result = self.engine.restart(module).await;
        self.reconcile_due = true;
        result
    }

    async fn command(&mut self, command: ManagementCommand) {
        match command {
            ManagementCommand::Restart { module, reply } => {
                let result = self.restart_module(&module).await;
                let _ = reply.send(result);
            }
        }
    }

    /// `$edgeAgent` direct methods: `ping` and `RestartModule` as in Azure; others are 501.
    async fn method(&mut self, request: MethodRequest) {
        let (status, payload) = match request.method_name.as_str() {
            "ping" => (200, Value::Null),
            "RestartModule" => {
                let payload = request.payload_json().unwrap_or(Value::Null);
                match payload
                    .get("id")
                    .and_then(Value::as_str)
                    .map(ModuleName::new)
                {
                    Some(Ok(module)) => match self.restart_module(&module).await {
                        Ok(()) => (200, Value::Null),
                        Err(RuntimeError::NotFound(_)) => (
                            404,
                            json!({"message": format!("module {module} is not deployed")}),
                        ),
                        Err(error) => (500, json!({"message": error.to_string()})),
                    },
                    _ => (
                        400,
                        json!({"message": "the payload must name a module: {\"id\": \"<module>\"}"}),
                    ),
                }
            }
            other => (
                501,
                json!({"message": format!("method {other} is not implemented by this agent")}),
            ),
        };
        if let Err(error) = self.client.respond(&request.rid, status, &payload).await {
            tracing::warn!(message = "Answering a direct method failed.", %error);
        }
    }

    async fn shut_down(&mut self) {
        tracing::info!(message = "Shutting down: stopping the modules.");
        if self.connected {
            let patch = json!({"lastDesiredStatus": {
                "code": DeploymentStatusCode::Unknown.as_u16(),
                "description": "the edge runtime is shutting down",
            }});
            let _ =
                tokio::time::timeout(Duration::from_secs(2), self.client.patch_reported(&patch))
                    .await;
        }
        self.engine.shutdown(self.options.stop_grace_period).await;
        self.client.shutdown().await;
        self.management_task.abort();
        let _ = std::fs::remove_file(self.settings.management_socket());
        self.sockets.retain(&BTreeSet::new()).await;
    }
}

/// Waits for the next message of an optional broadcast channel (forever when there is none)
/// and says whether the channel closed. Lagging is a change too: the round lists everything.
async fn module_changed<T: Clone>(receiver: &mut Option<broadcast::Receiver<T>>) -> bool {
    match receiver {
        Some(receiver) => matches!(
            receiver.recv().await,
            Err(broadcast::error::RecvError::Closed)
        ),
        None => std::future::pending().await,
    }
}

/// What every module is told about the device (`IOTEDGE_*`).
fn edge_environment(settings: &EdgeSettings) -> EdgeEnvironment {
    EdgeEnvironment::new(
        settings.device_id.clone(),
        settings.hub_hostname.as_str(),
        settings.gateway_hostname.as_str(),
    )
}

/// The status document the management API serves: identity, connection, deployment status and
/// one entry per module (system modules first) with the reported fields and its `name`.
fn status_document(
    settings: &EdgeSettings,
    connected: bool,
    edge_ca: EdgeCaDates,
    reported: &Value,
) -> Value {
    let mut modules = Vec::new();
    for section in ["systemModules", "modules"] {
        if let Some(entries) = reported.get(section).and_then(Value::as_object) {
            for (name, entry) in entries {
                let mut entry = entry.as_object().cloned().unwrap_or_default();
                entry.insert("name".to_owned(), Value::String(name.clone()));
                modules.push(Value::Object(entry));
            }
        }
    }
    json!({
        "deviceId": settings.device_id.as_str(),
        "hubHostname": settings.hub_hostname.as_str(),
        "hubConnected": connected,
        "runtime": settings.runtime.as_str(),
        "lastDesiredVersion": reported.get("lastDesiredVersion").cloned().unwrap_or(Value::Null),
        "lastDesiredStatus": reported.get("lastDesiredStatus").cloned().unwrap_or(Value::Null),
        "edgeCa": {
            "notAfter": utc_text(edge_ca.not_after),
            "renewAt": utc_text(edge_ca.renew_at),
        },
        "modules": modules,
    })
}

/// An instant as UTC RFC 3339 text, to the second.
fn utc_text(instant: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(instant)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The hub client of `$edgeAgent`: MQTT over TLS to the hub, tokens signed with the `$edgeAgent`
/// key (fetched through the device-scoped registry when it is not cached yet), desired patches
/// and direct methods subscribed at connect.
fn client_options(
    settings: &EdgeSettings,
    hub_roots: Vec<tls::CertificateDer<'static>>,
    cache: IdentityCache,
    registry: DeviceRegistryClient,
) -> ClientOptions {
    let agent_id = ModuleName::edge_agent().module_id();
    let provider = move |request: TokenRequest| {
        let cache = cache.clone();
        let registry = registry.clone();
        let agent_id = agent_id.clone();
        async move {
            let key = match cache.get(&agent_id).and_then(|record| record.primary_key()) {
                Some(key) => key,
                None => {
                    let record = registry
                        .get_module(&agent_id)
                        .await
                        .map_err(|error| TokenError::new(error.to_string()))?;
                    let key = record.primary_key().ok_or_else(|| {
                        TokenError::new("the $edgeAgent identity has no symmetric key")
                    })?;
                    if let Err(error) = cache.upsert(record) {
                        tracing::warn!(message = "Cannot store the $edgeAgent identity.", %error);
                    }
                    key
                }
            };
            Ok(SasToken::sign(
                SasTokenStyle::DeviceSdk,
                &request.scope,
                &key,
                None,
                request.expiry_unix_secs,
            ))
        }
    };
    let mut options = ClientOptions::new(
        settings.hub_hostname.clone(),
        Identity::module(
            settings.device_id.clone(),
            ModuleName::edge_agent().module_id(),
        ),
        Credentials::token_provider(provider),
        Transport::Tls {
            trusted_roots: hub_roots,
        },
    );
    options.port = settings.hub_mqtt_port;
    options.operation_timeout = HUB_CALL_TIMEOUT;
    options.subscribe_at_connect = vec![Feature::DesiredPropertiesPatches, Feature::MethodRequests];
    options
}
