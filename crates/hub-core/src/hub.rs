//! The [`Hub`]: one value holding the store, the live-connection view, pending method calls and
//! in-flight cloud-to-device deliveries. The REST API and the MQTT front end both call into it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hub_routing::Router;
use iothub_auth::{HostName, SymmetricKey};
use iothub_types::{DeviceId, Identity};
use tokio::sync::Notify;

use crate::clock::{Clock, SystemClock};
use crate::connections::DeviceConnections;
use crate::error::HubError;
use crate::methods::PendingMethods;
use crate::model::{SharedAccessPolicy, default_policy_rights};
use crate::routing::{TelemetryEvents, default_routing_directory, router_options};
use crate::storage::{HubStore, SqliteStore};
use crate::telemetry::{FileTelemetryLog, TelemetryLog};

/// The file name of the registry database inside the data directory.
pub const REGISTRY_DATABASE_FILE: &str = "registry.db";
/// The directory of the telemetry log inside the data directory.
pub const TELEMETRY_DIRECTORY: &str = "telemetry";

/// IoT Hub's documented limits, as the hub applies them.
#[derive(Debug, Clone)]
pub struct HubLimits {
    /// Maximum unexpired messages queued per device (IoT Hub: 50).
    pub c2d_max_queue_depth: usize,
    /// Time to live of a C2D message when the sender gives none (IoT Hub: 1 hour).
    pub c2d_default_time_to_live: Duration,
    /// Longest accepted C2D time to live (IoT Hub: 2 days).
    pub c2d_max_time_to_live: Duration,
    /// A C2D message handed to its device this many times without completion is dropped (IoT Hub: 10).
    pub c2d_max_delivery_count: u32,
    /// Largest C2D body (IoT Hub: 64 KB).
    pub c2d_max_body_bytes: usize,
    /// Largest device-to-cloud message as IoT Hub counts it (256 KB).
    pub telemetry_max_message_bytes: usize,
    /// Largest direct method request payload (128 KB).
    pub method_max_payload_bytes: usize,
    /// Most direct method calls waiting for an answer at once, hub-wide.
    pub method_max_pending_calls: usize,
}

impl Default for HubLimits {
    fn default() -> HubLimits {
        HubLimits {
            c2d_max_queue_depth: 50,
            c2d_default_time_to_live: Duration::from_secs(3600),
            c2d_max_time_to_live: Duration::from_secs(2 * 24 * 3600),
            c2d_max_delivery_count: 10,
            c2d_max_body_bytes: 64 * 1024,
            telemetry_max_message_bytes: iothub_types::MAX_DEVICE_TO_CLOUD_MESSAGE_SIZE,
            method_max_payload_bytes: 128 * 1024,
            method_max_pending_calls: 10_000,
        }
    }
}

/// Everything [`Hub::open`] takes besides the data directory and host name.
#[derive(Clone)]
pub struct HubOptions {
    /// The wall clock (timestamps, TTLs, token expiry).
    pub clock: Arc<dyn Clock>,
    /// The limits to enforce.
    pub limits: HubLimits,
    /// Where the routing configuration (`routing.json`) and file endpoints (`files/`) live.
    /// [`Hub::open`] defaults it to `DATA_DIR/routing`; [`Hub::with_backends`] requires it.
    pub routing_directory: Option<PathBuf>,
}

impl Default for HubOptions {
    fn default() -> HubOptions {
        HubOptions {
            clock: Arc::new(SystemClock),
            limits: HubLimits::default(),
            routing_directory: None,
        }
    }
}

/// How long closing the hub waits for custom routing endpoints to drain their queues.
const ROUTER_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the hub knows about one live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LiveConnection {
    pub(crate) connected_since: DateTime<Utc>,
}

/// The cloud hub.
pub struct Hub {
    pub(crate) host_name: HostName,
    pub(crate) store: Arc<dyn HubStore>,
    pub(crate) telemetry: Arc<dyn TelemetryLog>,
    /// Routes telemetry and notifications; its `events` endpoint is `telemetry`.
    pub(crate) router: Router,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: HubLimits,
    pub(crate) policies: RwLock<Vec<SharedAccessPolicy>>,
    pub(crate) live: Mutex<HashMap<Identity, LiveConnection>>,
    /// Last activity of identities, kept in memory and written back on disconnect.
    pub(crate) last_activity: Mutex<HashMap<Identity, DateTime<Utc>>>,
    /// Signalled whenever a connection or subscription appears, for method connect timeouts.
    pub(crate) presence_changed: Notify,
    pub(crate) connections: OnceLock<Arc<dyn DeviceConnections>>,
    pub(crate) pending_methods: Mutex<PendingMethods>,
    /// C2D messages handed to a device and not yet completed, by sequence number.
    pub(crate) c2d_in_flight: Mutex<HashMap<DeviceId, HashSet<i64>>>,
    /// Serializes C2D delivery passes per device so that a message is never handed out twice at once.
    pub(crate) c2d_delivery_locks: Mutex<HashMap<DeviceId, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Hub")
            .field("host_name", &self.host_name)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// Opens the hub whose state lives in `data_dir` (created when missing): the SQLite registry
    /// (`registry.db`), the telemetry log (`telemetry/`) and the message routing configuration
    /// and file endpoints (`routing/`, unless the options say otherwise). On first start it creates the default
    /// shared access policies (`iothubowner`, `service`, `device`, `registryRead`,
    /// `registryReadWrite`) with fresh random keys.
    pub async fn open(
        data_dir: &Path,
        host_name: &str,
        mut options: HubOptions,
    ) -> Result<Arc<Hub>, HubError> {
        options
            .routing_directory
            .get_or_insert_with(|| default_routing_directory(data_dir));
        std::fs::create_dir_all(data_dir).map_err(|error| {
            HubError::storage(format!("cannot create {}: {error}", data_dir.display()))
        })?;
        let store = SqliteStore::open(&data_dir.join(REGISTRY_DATABASE_FILE)).await?;
        let telemetry = FileTelemetryLog::open(&data_dir.join(TELEMETRY_DIRECTORY)).await?;
        Hub::with_backends(Arc::new(store), Arc::new(telemetry), host_name, options).await
    }

    /// Builds a hub over the given storage backends (the seam for other databases and logs).
    /// `options.routing_directory` must be set: the routing configuration is stored there.
    pub async fn with_backends(
        store: Arc<dyn HubStore>,
        telemetry: Arc<dyn TelemetryLog>,
        host_name: &str,
        options: HubOptions,
    ) -> Result<Arc<Hub>, HubError> {
        let host_name = HostName::new(host_name).map_err(|error| {
            HubError::InvalidArgument(format!("invalid host name {host_name:?}: {error}"))
        })?;
        let routing_directory = options.routing_directory.clone().ok_or_else(|| {
            HubError::InvalidArgument(
                "HubOptions::routing_directory is required to build a hub over custom backends"
                    .to_owned(),
            )
        })?;
        let events = Arc::new(TelemetryEvents {
            telemetry: Arc::clone(&telemetry),
            clock: Arc::clone(&options.clock),
        });
        let router = Router::open(router_options(&routing_directory), events)
            .await
            .map_err(|error| HubError::storage(format!("cannot start message routing: {error}")))?;
        let mut policies = store.list_policies().await?;
        for (name, rights) in default_policy_rights() {
            if policies.iter().any(|policy| policy.name == name) {
                continue;
            }
            let policy = SharedAccessPolicy {
                name: name.to_owned(),
                rights,
                primary_key: SymmetricKey::generate_random().to_base64(),
                secondary_key: SymmetricKey::generate_random().to_base64(),
            };
            store.insert_policy(&policy).await?;
        }
        policies = store.list_policies().await?;
        Ok(Arc::new(Hub {
            host_name,
            store,
            telemetry,
            router,
            clock: options.clock,
            limits: options.limits,
            policies: RwLock::new(policies),
            live: Mutex::new(HashMap::new()),
            last_activity: Mutex::new(HashMap::new()),
            presence_changed: Notify::new(),
            connections: OnceLock::new(),
            pending_methods: Mutex::new(PendingMethods::default()),
            c2d_in_flight: Mutex::new(HashMap::new()),
            c2d_delivery_locks: Mutex::new(HashMap::new()),
        }))
    }

    /// Attaches the live-connection side (the MQTT front end's sessions). Only the first call
    /// has an effect; returns `false` for later ones.
    pub fn attach_connections(&self, connections: Arc<dyn DeviceConnections>) -> bool {
        self.connections.set(connections).is_ok()
    }

    /// The hub's host name, as in `HostName=` of connection strings.
    pub fn host_name(&self) -> &HostName {
        &self.host_name
    }

    /// The limits this hub enforces.
    pub fn limits(&self) -> &HubLimits {
        &self.limits
    }

    /// The current time on the hub's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The storage backend.
    pub fn store(&self) -> &Arc<dyn HubStore> {
        &self.store
    }

    /// Every shared access policy, with keys.
    pub fn policies(&self) -> Vec<SharedAccessPolicy> {
        self.policies
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The policy named `name`, if any.
    pub fn policy(&self, name: &str) -> Option<SharedAccessPolicy> {
        self.policies
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .find(|policy| policy.name == name)
            .cloned()
    }

    /// `HostName=...;SharedAccessKeyName=...;SharedAccessKey=...` for a policy, with its primary key.
    pub fn policy_connection_string(&self, name: &str) -> Option<String> {
        self.policy(name).map(|policy| {
            format!(
                "HostName={};SharedAccessKeyName={};SharedAccessKey={}",
                self.host_name, policy.name, policy.primary_key
            )
        })
    }

    pub(crate) fn connections(&self) -> Option<&Arc<dyn DeviceConnections>> {
        self.connections.get()
    }

    /// Closes the storage backends, waiting until everything written is durable. Custom routing
    /// endpoints get a few seconds to drain their queues first.
    pub async fn close(&self) -> Result<(), HubError> {
        if !self.router.shutdown(ROUTER_SHUTDOWN_GRACE).await {
            tracing::warn!("routing endpoints did not drain in time; queued messages were dropped");
        }
        self.flush_last_activity().await;
        self.telemetry.close().await
    }
}
