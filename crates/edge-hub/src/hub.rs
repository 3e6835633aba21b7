//! The edge hub itself: the MQTT front end's [`Backend`] for modules and leaf devices, and the
//! background tasks around it (configuration from the `$edgeHub` twin, cloud events, twin sync,
//! scope refresh, store reclaim, endpoint pumps).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use edge_deployment::{HubDeployment, RouteOverflow};
use edge_scope::{ScopeCache, ScopeClient, ScopeIdentity, ScopeRefusal};
use edge_store::{MessageStore, Overflow, StoreOptions};
use iothub_client::{ClientEvent, CloudToDeviceAck, Feature};
use iothub_topics::ClientSubscription;
use iothub_types::{DeviceId, Identity, Message};
use mqtt_frontend::{
    AuthMethod, AuthScope, Backend, ConnectRefusal, ConnectRequest, ConnectionId, CredentialType,
    DeliveryTag, Disconnection, MethodResponse, Principal, SessionInfo, Sessions, TelemetryError,
    TwinReply,
};
use query::MessageSource;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::pumps;
use crate::record;
use crate::routes::RouteTable;
use crate::twins::{TwinCache, TwinCacheError, desired_difference};
use crate::upstream::{UpstreamEvent, UpstreamPool, UpstreamSettings};

/// How long a client waits for store space under the refuse-new overflow policy before its
/// connection is closed without PUBACK.
const STORE_FULL_WAIT: Duration = Duration::from_secs(30);
/// How long a cloud method request may wait for the downstream answer.
const CLOUD_METHOD_TIMEOUT: Duration = Duration::from_secs(300);
/// How often expired and acknowledged store segments are reclaimed.
const RECLAIM_INTERVAL: Duration = Duration::from_secs(5);

/// Everything the edge hub needs to start.
#[derive(Debug, Clone)]
pub struct EdgeHubSettings {
    /// This edge device.
    pub device_id: DeviceId,
    /// The cloud hub's host name (clients' tokens name it).
    pub hub_host: String,
    /// The name clients dial to reach this edge hub (tokens may name it too).
    pub gateway_host: String,
    /// Where the store, twin cache and last configuration live.
    pub data_dir: PathBuf,
    /// The key the twin cache is sealed under (the edge device's key, as for the scope cache).
    pub cache_key: iothub_auth::SymmetricKey,
    /// Store bounds.
    pub store: StoreOptions,
    /// What happens to new messages when the store is full, for routes that set no `overflow`.
    pub overflow: Overflow,
    /// The cloud side.
    pub upstream: UpstreamSettings,
    /// How often the scope is fetched from the hub.
    pub scope_refresh_interval: Duration,
    /// The least time between two on-demand scope fetches (for unknown identities).
    pub scope_on_demand_interval: Duration,
    /// How long a module has to acknowledge a message delivered to one of its inputs.
    pub message_ack_timeout: Duration,
}

/// Why the edge hub cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeHubError {
    #[error("cannot open the message store: {0}")]
    Store(#[from] edge_store::EdgeStoreError),
    #[error("cannot open the twin cache: {0}")]
    Twins(#[from] std::io::Error),
}

/// Counters for diagnostics and benchmarks.
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub dropped_no_route: AtomicU64,
    pub delivered_upstream: AtomicU64,
    pub delivered_to_modules: AtomicU64,
    pub refused_store_full: AtomicU64,
    pub dropped_refused_upstream: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EdgeHubStats {
    pub received: u64,
    pub dropped_no_route: u64,
    pub delivered_upstream: u64,
    pub delivered_to_modules: u64,
    pub refused_store_full: u64,
    pub dropped_refused_upstream: u64,
    pub online: bool,
    pub upstream_links: usize,
    pub routes: usize,
}

/// What one live downstream connection holds.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub connection_id: ConnectionId,
    pub subscriptions: Vec<ClientSubscription>,
}

/// The edge hub. Cheap to clone; the MQTT front end holds it as its backend.
#[derive(Clone)]
pub struct EdgeHub {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub settings: EdgeHubSettings,
    pub sessions: Sessions,
    pub scope: ScopeCache,
    scope_client: Option<ScopeClient>,
    scope_requests: mpsc::Sender<oneshot::Sender<()>>,
    pub store: MessageStore,
    pub routes: watch::Sender<Arc<RouteTable>>,
    pub upstream: UpstreamPool,
    pub twins: TwinCache,
    twin_sync: Notify,
    pub live: Mutex<HashMap<Identity, Live>>,
    pub live_changed: watch::Sender<u64>,
    pending_methods: Mutex<HashMap<String, oneshot::Sender<MethodResponse>>>,
    pub deliveries: Mutex<HashMap<u64, oneshot::Sender<bool>>>,
    /// Cloud-to-device messages queued for a child, by delivery tag: completed in the hub when
    /// the child acknowledges, dropped (so delivered again by the hub) when its session ends.
    c2d_acks: Mutex<HashMap<u64, CloudToDeviceAck>>,
    /// `clients` of the `$edgeHub` reported properties, and which entries changed since the
    /// last report.
    clients: Mutex<ClientTable>,
    clients_changed: Notify,
    next_tag: AtomicU64,
    pub counters: Counters,
}

impl EdgeHub {
    /// Opens the store and caches under `settings.data_dir`, applies the last stored
    /// configuration, and starts the background tasks. Must run inside a tokio runtime.
    pub async fn start(
        settings: EdgeHubSettings,
        sessions: Sessions,
        scope: ScopeCache,
        scope_client: Option<ScopeClient>,
    ) -> Result<EdgeHub, EdgeHubError> {
        std::fs::create_dir_all(&settings.data_dir)?;
        let store =
            MessageStore::open(settings.data_dir.join("store"), settings.store.clone()).await?;
        let twins = TwinCache::open(settings.data_dir.join("twins"), &settings.cache_key)?;
        let initial_routes = match load_config(&settings.data_dir) {
            Some(deployment) => {
                apply_store_limit(&store, &deployment);
                RouteTable::new(&deployment)
            }
            None => RouteTable::default(),
        };
        let (routes, _) = watch::channel(Arc::new(initial_routes));
        let (upstream, upstream_events) = UpstreamPool::start(settings.upstream.clone(), 256);
        let (scope_requests, scope_inbox) = mpsc::channel(64);
        let (live_changed, _) = watch::channel(0);
        let hub = EdgeHub {
            inner: Arc::new(Inner {
                settings,
                sessions,
                scope,
                scope_client,
                scope_requests,
                store,
                routes,
                upstream,
                twins,
                twin_sync: Notify::new(),
                live: Mutex::new(HashMap::new()),
                live_changed,
                pending_methods: Mutex::new(HashMap::new()),
                deliveries: Mutex::new(HashMap::new()),
                c2d_acks: Mutex::new(HashMap::new()),
                clients: Mutex::new(ClientTable::default()),
                clients_changed: Notify::new(),
                next_tag: AtomicU64::new(1),
                counters: Counters::default(),
            }),
        };
        tokio::spawn(hub.clone().cloud_events(upstream_events));
        tokio::spawn(hub.clone().follow_configuration());
        tokio::spawn(hub.clone().sync_reported_properties());
        tokio::spawn(hub.clone().refresh_scope(scope_inbox));
        tokio::spawn(hub.clone().reclaim_store());
        tokio::spawn(hub.clone().report_clients());
        tokio::spawn(pumps::supervise(hub.clone()));
        Ok(hub)
    }

    /// Counters and state for diagnostics.
    pub fn stats(&self) -> EdgeHubStats {
        let counters = &self.inner.counters;
        EdgeHubStats {
            received: counters.received.load(Ordering::Relaxed),
            dropped_no_route: counters.dropped_no_route.load(Ordering::Relaxed),
            delivered_upstream: counters.delivered_upstream.load(Ordering::Relaxed),
            delivered_to_modules: counters.delivered_to_modules.load(Ordering::Relaxed),
            refused_store_full: counters.refused_store_full.load(Ordering::Relaxed),
            dropped_refused_upstream: counters.dropped_refused_upstream.load(Ordering::Relaxed),
            online: self.inner.upstream.is_online(),
            upstream_links: self.inner.upstream.link_count(),
            routes: self.inner.routes.borrow().len(),
        }
    }

    /// The store, for statistics.
    pub fn store(&self) -> &MessageStore {
        &self.inner.store
    }

    /// The routes in force.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.inner.routes.borrow().clone()
    }

    /// Adds or replaces an identity the runtime knows (its own modules) before any scope sync.
    pub fn know_identity(&self, identity: ScopeIdentity) {
        if let Err(error) = self.inner.scope.upsert(identity) {
            tracing::warn!(%error, "cannot store a module identity in the scope cache");
        }
    }

    /// Invokes a direct method on a module or leaf device connected to this edge hub (module to
    /// module calls). Returns the status and payload the target answered.
    pub async fn invoke_local_method(
        &self,
        target: &Identity,
        method_name: &str,
        payload: Bytes,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<MethodResponse, LocalMethodError> {
        let deadline = tokio::time::Instant::now() + connect_timeout;
        let mut changes = self.inner.live_changed.subscribe();
        loop {
            if self.accepts(target, |subscription| {
                *subscription == ClientSubscription::MethodRequests
            }) {
                break;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return Err(LocalMethodError::NotConnected);
            }
        }
        let rid = self.inner.new_rid();
        let (sender, receiver) = oneshot::channel();
        lock(&self.inner.pending_methods).insert(rid.clone(), sender);
        let pushed = self
            .inner
            .sessions
            .send_method_request(target, method_name, &rid, payload)
            .await;
        if pushed.is_err() {
            lock(&self.inner.pending_methods).remove(&rid);
            return Err(LocalMethodError::NotConnected);
        }
        match tokio::time::timeout(response_timeout, receiver).await {
            Ok(Ok(response)) => Ok(response),
            _ => {
                lock(&self.inner.pending_methods).remove(&rid);
                Err(LocalMethodError::Timeout)
            }
        }
    }

    /// Whether `identity` is connected with a subscription that `wanted` accepts.
    pub(crate) fn accepts(
        &self,
        identity: &Identity,
        wanted: impl Fn(&ClientSubscription) -> bool,
    ) -> bool {
        lock(&self.inner.live)
            .get(identity)
            .is_some_and(|live| live.subscriptions.iter().any(wanted))
    }

    /// Checks a caller's SAS token (module-to-module method calls over HTTPS).
    pub fn verify_caller(&self, identity: &Identity, token: &str) -> Result<(), ScopeRefusal> {
        let scoped = self
            .inner
            .scope
            .get(identity)
            .ok_or(ScopeRefusal::Unknown)?;
        scoped.verify_sas(token, &self.accepted_hosts(), now_secs())
    }

    fn accepted_hosts(&self) -> [&str; 2] {
        [
            self.inner.settings.hub_host.as_str(),
            self.inner.settings.gateway_host.as_str(),
        ]
    }

    async fn lookup_identity(&self, identity: &Identity) -> Option<ScopeIdentity> {
        if let Some(found) = self.inner.scope.get(identity) {
            return Some(found);
        }
        if self.inner.scope_client.is_none() || !self.inner.upstream.is_online() {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        if self.inner.scope_requests.try_send(sender).is_ok() {
            let wait = self.inner.settings.scope_on_demand_interval + Duration::from_secs(10);
            let _ = tokio::time::timeout(wait, receiver).await;
        }
        self.inner.scope.get(identity)
    }

    // === background tasks ===

    async fn cloud_events(self, mut events: mpsc::Receiver<UpstreamEvent>) {
        let own = self.inner.upstream.edge_hub_identity();
        while let Some(UpstreamEvent { identity, event }) = events.recv().await {
            if identity == own {
                if matches!(event, ClientEvent::DesiredPropertiesPatch { .. }) {
                    self.inner.twin_sync.notify_one();
                    tokio::spawn(self.clone().reload_configuration());
                }
                continue;
            }
            match event {
                ClientEvent::DesiredPropertiesPatch { version, patch } => {
                    if let Err(error) = self
                        .inner
                        .twins
                        .apply_desired_patch(&identity, version, &patch)
                    {
                        tracing::warn!(%error, %identity, "cannot cache a desired patch");
                    }
                    self.send_desired(&identity, version, &patch).await;
                }
                ClientEvent::MethodRequest(request) => {
                    tokio::spawn(self.clone().relay_cloud_method(identity, request));
                }
                ClientEvent::CloudToDevice(message) => {
                    self.relay_cloud_to_device(&identity, &message, None).await;
                }
                ClientEvent::CloudToDeviceToAcknowledge { message, ack } => {
                    self.relay_cloud_to_device(&identity, &message, Some(ack))
                        .await;
                }
                ClientEvent::ModuleInput { .. } => {}
            }
        }
    }

    /// Queues a cloud-to-device message in the device's session (in order, so this is awaited in
    /// the event loop) and completes it in the hub only once the device acknowledged it. If the
    /// device does not (it left, or never answers), the hub keeps the message and delivers it
    /// again over the device's next upstream link: at least once, never lost at the edge.
    async fn relay_cloud_to_device(
        &self,
        identity: &Identity,
        message: &Message,
        ack: Option<CloudToDeviceAck>,
    ) {
        let tag = self.inner.next_tag.fetch_add(1, Ordering::Relaxed);
        if let Some(ack) = ack {
            lock(&self.inner.c2d_acks).insert(tag, ack);
        }
        let queued = self
            .inner
            .sessions
            .send_cloud_to_device(&identity.device, message, DeliveryTag(tag))
            .await;
        if let Err(error) = queued {
            lock(&self.inner.c2d_acks).remove(&tag);
            tracing::warn!(%error, %identity, "cloud-to-device message not delivered; the hub keeps it");
        }
    }

    async fn relay_cloud_method(self, identity: Identity, request: iothub_client::MethodRequest) {
        let Some(link) = self.inner.upstream.existing_link(&identity) else {
            return;
        };
        let result = self
            .invoke_local_method(
                &identity,
                &request.method_name,
                request.payload.clone(),
                Duration::ZERO,
                CLOUD_METHOD_TIMEOUT,
            )
            .await;
        let (status, payload) = match result {
            Ok(response) => (response.status, method_payload_json(&response.payload)),
            Err(error) => (
                404,
                json!({"message": format!("{identity} is not reachable through the edge hub: {error}")}),
            ),
        };
        if let Err(error) = link.respond(&request.rid, status, &payload).await {
            tracing::warn!(%error, %identity, "method response not sent upstream");
        }
    }

    async fn follow_configuration(self) {
        let mut online = self.inner.upstream.online();
        loop {
            if *online.borrow_and_update() {
                self.clone().reload_configuration().await;
                self.inner.twin_sync.notify_one();
                // Desired changes made while the hub was unreachable reach connected clients now.
                let listening: Vec<Identity> = lock(&self.inner.live)
                    .iter()
                    .filter(|(_, live)| {
                        live.subscriptions
                            .contains(&ClientSubscription::DesiredPropertiesPatches)
                    })
                    .map(|(identity, _)| identity.clone())
                    .collect();
                for identity in listening {
                    tokio::spawn(self.clone().resync_twin(identity));
                }
            }
            if online.changed().await.is_err() {
                return;
            }
        }
    }

    async fn reload_configuration(self) {
        let own = self.inner.upstream.edge_hub_identity();
        let link = self.inner.upstream.link(&own);
        let twin = match link.get_twin().await {
            Ok(twin) => twin,
            Err(error) => {
                tracing::debug!(%error, "cannot read the $edgeHub twin");
                return;
            }
        };
        let desired = twin
            .get("desired")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let version = desired.get("$version").and_then(Value::as_i64).unwrap_or(0);
        let status = if desired.keys().all(|key| key.starts_with('$')) {
            json!({"code": 200, "description": "no $edgeHub deployment yet"})
        } else {
            match HubDeployment::from_desired_properties(&desired) {
                Ok(deployment) => {
                    apply_store_limit(&self.inner.store, &deployment);
                    let table = RouteTable::new(&deployment);
                    tracing::info!(routes = table.len(), version, "edge hub routes applied");
                    self.inner.routes.send_replace(Arc::new(table));
                    if let Err(error) = save_config(&self.inner.settings.data_dir, &desired) {
                        tracing::warn!(%error, "cannot store the $edgeHub configuration");
                    }
                    json!({"code": 200, "description": ""})
                }
                Err(error) => {
                    tracing::warn!(%error, "invalid $edgeHub configuration refused; previous routes kept");
                    json!({"code": 400, "description": error.to_string()})
                }
            }
        };
        let reported = json!({
            "schemaVersion": "1.0",
            "version": {"version": env!("CARGO_PKG_VERSION")},
            "lastDesiredVersion": version,
            "lastDesiredStatus": status,
        });
        if let Err(error) = link.patch_reported(&reported).await {
            tracing::debug!(%error, "cannot report the $edgeHub status");
        }
    }

    async fn sync_reported_properties(self) {
        loop {
            if self.inner.upstream.is_online() {
                for identity in self.inner.twins.identities_with_pending() {
                    self.flush_reported(&identity).await;
                }
            }
            tokio::select! {
                () = self.inner.twin_sync.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    async fn flush_reported(&self, identity: &Identity) {
        while let Some(patch) = self.inner.twins.first_pending(identity) {
            let link = self.inner.upstream.link(identity);
            match link.patch_reported(&patch).await {
                Ok(_) => {
                    if let Err(error) = self.inner.twins.pop_pending(identity) {
                        tracing::warn!(%error, %identity, "cannot update the twin cache");
                        return;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, %identity, "reported patch not synced yet");
                    return;
                }
            }
        }
    }

    /// Fetches the twin of `identity` from the cloud, caches it and sends the client the desired
    /// changes it missed.
    async fn resync_twin(self, identity: Identity) {
        if !self.inner.upstream.is_online() {
            return;
        }
        self.flush_reported(&identity).await;
        let link = self.inner.upstream.link(&identity);
        let Ok(document) = link.get_twin().await else {
            return;
        };
        let previous = match self.inner.twins.store_from_cloud(&identity, &document) {
            Ok(previous) => previous,
            Err(error) => {
                tracing::warn!(%error, %identity, "cannot cache a twin");
                return;
            }
        };
        let Some(previous) = previous else { return };
        let Some(desired) = document.get("desired").and_then(Value::as_object) else {
            return;
        };
        let version = desired.get("$version").and_then(Value::as_u64).unwrap_or(0);
        if previous.get("$version").and_then(Value::as_u64) == Some(version) {
            return;
        }
        if let Some(Value::Object(mut patch)) = desired_difference(&previous, desired) {
            patch.insert("$version".into(), json!(version));
            self.send_desired(&identity, version, &Value::Object(patch))
                .await;
        }
    }

    /// Pushes a desired-properties patch to a connected client (nothing is queued for one that
    /// is not listening: it gets the difference when it subscribes).
    async fn send_desired(&self, identity: &Identity, version: u64, patch: &Value) {
        let body = Bytes::from(serde_json::to_vec(patch).unwrap_or_default());
        let _ = self
            .inner
            .sessions
            .send_desired_properties_patch(identity, version, body)
            .await;
    }

    async fn refresh_scope(self, mut requests: mpsc::Receiver<oneshot::Sender<()>>) {
        let Some(client) = self.inner.scope_client.clone() else {
            return;
        };
        let mut online = self.inner.upstream.online();
        let mut last_fetch: Option<tokio::time::Instant> = None;
        let mut interval = tokio::time::interval(self.inner.settings.scope_refresh_interval);
        loop {
            let mut waiters = Vec::new();
            tokio::select! {
                _ = interval.tick() => {}
                changed = online.changed() => {
                    if changed.is_err() { return; }
                    if !*online.borrow_and_update() { continue; }
                }
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    waiters.push(request);
                    // On-demand fetches are throttled: wait for the window instead of refusing.
                    if let Some(at) = last_fetch {
                        tokio::time::sleep_until(at + self.inner.settings.scope_on_demand_interval).await;
                    }
                }
            }
            while let Ok(request) = requests.try_recv() {
                waiters.push(request);
            }
            last_fetch = Some(tokio::time::Instant::now());
            match client.fetch().await {
                Ok(identities) => match self.inner.scope.replace_all(identities) {
                    Ok(diff) => {
                        for identity in diff.removed {
                            tracing::info!(%identity, "identity left the device scope: disconnected");
                            let _ = self.inner.sessions.disconnect(&identity).await;
                            self.inner.upstream.close(&identity);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot store the device scope"),
                },
                Err(error) => tracing::debug!(%error, "device scope not refreshed"),
            }
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }
    }

    /// Keeps `clients` in the `$edgeHub` reported properties up to date, in bounded patches.
    async fn report_clients(self) {
        let mut online = self.inner.upstream.online();
        loop {
            tokio::select! {
                () = self.inner.clients_changed.notified() => {}
                changed = online.changed() => {
                    if changed.is_err() { return; }
                    if *online.borrow_and_update() {
                        lock(&self.inner.clients).mark_all_changed();
                    }
                }
            }
            // Let a burst of connections settle into one patch.
            tokio::time::sleep(Duration::from_millis(500)).await;
            while self.inner.upstream.is_online() {
                let Some(patch) = lock(&self.inner.clients).take_patch(CLIENTS_PER_PATCH) else {
                    break;
                };
                let own = self.inner.upstream.edge_hub_identity();
                let link = self.inner.upstream.link(&own);
                let reported = json!({ "clients": patch });
                if let Err(error) = link.patch_reported(&reported).await {
                    tracing::debug!(%error, "client states not reported");
                    if let Value::Object(entries) = reported["clients"].clone() {
                        lock(&self.inner.clients).restore(entries.keys().cloned());
                    }
                    break;
                }
            }
        }
    }

    async fn reclaim_store(self) {
        let mut interval = tokio::time::interval(RECLAIM_INTERVAL);
        loop {
            interval.tick().await;
            if let Err(error) = self.inner.store.reclaim(now_ms()).await {
                tracing::warn!(%error, "store reclaim failed");
            }
        }
    }

    fn upstream_features(subscriptions: &[ClientSubscription]) -> Vec<Feature> {
        let mut features = Vec::new();
        for subscription in subscriptions {
            let feature = match subscription {
                ClientSubscription::MethodRequests => Feature::MethodRequests,
                ClientSubscription::DesiredPropertiesPatches => Feature::DesiredPropertiesPatches,
                ClientSubscription::CloudToDevice { .. } => Feature::IncomingMessages,
                _ => continue,
            };
            if !features.contains(&feature) {
                features.push(feature);
            }
        }
        features
    }

    fn subscriptions_now(&self, session: &SessionInfo, subscriptions: &[ClientSubscription]) {
        let identity = &session.principal.identity;
        let had_desired = {
            let mut live = lock(&self.inner.live);
            let Some(entry) = live.get_mut(identity) else {
                return;
            };
            if entry.connection_id != session.connection_id {
                return;
            }
            let had = entry
                .subscriptions
                .contains(&ClientSubscription::DesiredPropertiesPatches);
            entry.subscriptions = subscriptions.to_vec();
            had
        };
        self.inner.live_changed.send_modify(|counter| *counter += 1);
        let features = EdgeHub::upstream_features(subscriptions);
        if !features.is_empty() {
            self.inner.upstream.enable(identity, &features);
        }
        if !had_desired && subscriptions.contains(&ClientSubscription::DesiredPropertiesPatches) {
            tokio::spawn(self.clone().resync_twin(identity.clone()));
        }
    }

    /// Stamps, routes and stores a message from `identity`; `twin_change` marks a twin change
    /// notification (routed from `/twinChangeNotifications`).
    async fn store_message(
        &self,
        identity: &Identity,
        mut message: Message,
        twin_change: bool,
    ) -> Result<(), TelemetryError> {
        message.system.connection_device_id = Some(identity.device.to_string());
        message.system.connection_module_id = identity.module.as_ref().map(ToString::to_string);
        message.system.enqueued_time = Some(enqueued_time_now());
        let routes = self.inner.routes.borrow().clone();
        let device_id = identity.device.as_str();
        let source = match &identity.module {
            _ if twin_change => MessageSource::TwinChangeNotification { device_id },
            Some(module) => MessageSource::ModuleOutput {
                device_id,
                module_id: module.as_str(),
                output_name: message.system.output_name.as_deref(),
            },
            None => MessageSource::DeviceTelemetry { device_id },
        };
        let targets = routes.route(&message, &source);
        self.inner.counters.received.fetch_add(1, Ordering::Relaxed);
        if targets.is_empty() {
            self.inner
                .counters
                .dropped_no_route
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let default_overflow = self.inner.settings.overflow;
        let targets: Vec<edge_store::Target> = targets
            .into_iter()
            .filter_map(|target| {
                Some(edge_store::Target {
                    endpoint: edge_store::EndpointId::new(&target.sink.endpoint_id()).ok()?,
                    priority: edge_store::Priority::new(target.priority).ok()?,
                    time_to_live: target.time_to_live,
                    overflow: match target.overflow {
                        None => default_overflow,
                        Some(RouteOverflow::DropOldest) => Overflow::DropOldest,
                        Some(RouteOverflow::RefuseNew) => Overflow::RefuseNew,
                    },
                })
            })
            .collect();
        let payload = record::encode(&message);
        let deadline = tokio::time::Instant::now() + STORE_FULL_WAIT;
        loop {
            let space = self.inner.store.space_freed();
            match self
                .inner
                .store
                .put(payload.clone(), targets.clone(), now_ms())
                .await
            {
                Ok(_) => return Ok(()),
                // At the byte bound or out of disk: hold the sender back until space is freed.
                Err(error) if error.is_full() => {
                    self.inner
                        .counters
                        .refused_store_full
                        .fetch_add(1, Ordering::Relaxed);
                    if tokio::time::timeout_at(deadline, space).await.is_err() {
                        return Err(TelemetryError::Unavailable(
                            "the edge hub's store is full".to_owned(),
                        ));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "message not stored");
                    return Err(TelemetryError::Unavailable(error.to_string()));
                }
            }
        }
    }
}

impl EdgeHub {
    /// Routes a twin change notification for an accepted reported patch, when a route takes
    /// `/twinChangeNotifications` (as IoT Hub and Azure's edge hub produce them).
    async fn notify_twin_change(&self, identity: &Identity, version: u64, patch: &[u8]) {
        let Ok(reported) = serde_json::from_slice::<Value>(patch) else {
            return;
        };
        let body = json!({"version": version, "properties": {"reported": reported}});
        let mut message = Message::new(serde_json::to_vec(&body).unwrap_or_default());
        message.system.content_type = Some("application/json".to_owned());
        message.system.content_encoding = Some("utf-8".to_owned());
        message.system.message_schema = Some("twinChangeNotification".to_owned());
        if let Err(error) = self.store_message(identity, message, true).await {
            tracing::warn!(%error, %identity, "twin change notification not stored");
        }
    }
}

/// Client entries per `$edgeHub` reported patch (each is about 120 bytes; a reported section
/// may hold 32 KB).
const CLIENTS_PER_PATCH: usize = 100;

/// The `clients` section of the `$edgeHub` reported properties, as Azure's edge hub reports it:
/// modules stay listed with their last state, leaf devices only while connected.
#[derive(Debug, Default)]
struct ClientTable {
    entries: std::collections::BTreeMap<String, Value>,
    changed: std::collections::BTreeSet<String>,
}

impl ClientTable {
    fn connected(&mut self, identity: &Identity, now: &str) {
        let key = identity.to_string();
        let mut entry = self.entries.get(&key).cloned().unwrap_or_else(|| json!({}));
        entry["status"] = json!("connected");
        entry["lastConnectedTimeUtc"] = json!(now);
        self.entries.insert(key.clone(), entry);
        self.changed.insert(key);
    }

    fn disconnected(&mut self, identity: &Identity, now: &str) {
        let key = identity.to_string();
        if identity.module.is_none() {
            self.entries.remove(&key);
        } else if let Some(entry) = self.entries.get_mut(&key) {
            entry["status"] = json!("disconnected");
            entry["lastDisconnectedTimeUtc"] = json!(now);
        }
        self.changed.insert(key);
    }

    fn mark_all_changed(&mut self) {
        self.changed.extend(self.entries.keys().cloned());
    }

    fn restore(&mut self, keys: impl Iterator<Item = String>) {
        self.changed.extend(keys);
    }

    /// Up to `limit` changed entries as a merge patch (`null` for leaf devices that left).
    fn take_patch(&mut self, limit: usize) -> Option<Map<String, Value>> {
        let keys: Vec<String> = self.changed.iter().take(limit).cloned().collect();
        if keys.is_empty() {
            return None;
        }
        let mut patch = Map::new();
        for key in keys {
            self.changed.remove(&key);
            let value = self.entries.get(&key).cloned().unwrap_or(Value::Null);
            patch.insert(key, value);
        }
        Some(patch)
    }
}

/// Why a local method call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalMethodError {
    #[error("the target is not connected to the edge hub or has not subscribed to methods")]
    NotConnected,
    #[error("the target did not answer in time")]
    Timeout,
}

impl Inner {
    pub(crate) fn new_rid(&self) -> String {
        format!("{:x}", self.next_tag.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn new_tag(&self) -> u64 {
        self.next_tag.fetch_add(1, Ordering::Relaxed)
    }
}

impl Backend for EdgeHub {
    async fn authenticate(&self, request: &ConnectRequest) -> Result<Principal, ConnectRefusal> {
        let identity = &request.identity;
        let Some(scoped) = self.lookup_identity(identity).await else {
            tracing::info!(%identity, "refused: not in this edge device's scope");
            return Err(ConnectRefusal::NotAuthorized);
        };
        let credential = if let Some(password) = &request.password {
            let token =
                std::str::from_utf8(password).map_err(|_| ConnectRefusal::BadUserNameOrPassword)?;
            scoped
                .verify_sas(token, &self.accepted_hosts(), now_secs())
                .map_err(|refusal| {
                    tracing::info!(%identity, %refusal, "refused");
                    ConnectRefusal::NotAuthorized
                })?;
            CredentialType::Sas
        } else if let Some(certificate) = &request.client_certificate {
            scoped
                .verify_thumbprint(
                    &certificate.thumbprint_sha1_hex(),
                    &certificate.thumbprint_sha256_hex(),
                )
                .map_err(|refusal| {
                    tracing::info!(%identity, %refusal, "refused");
                    ConnectRefusal::NotAuthorized
                })?;
            CredentialType::X509
        } else {
            return Err(ConnectRefusal::NotAuthorized);
        };
        Ok(Principal {
            identity: identity.clone(),
            auth_method: AuthMethod {
                scope: if identity.module.is_some() {
                    AuthScope::Module
                } else {
                    AuthScope::Device
                },
                credential,
            },
            generation_id: Some(scoped.generation_id.clone()),
        })
    }

    async fn connected(&self, session: &SessionInfo) {
        let identity = session.principal.identity.clone();
        lock(&self.inner.clients).connected(&identity, &enqueued_time_now());
        self.inner.clients_changed.notify_one();
        lock(&self.inner.live).insert(
            identity.clone(),
            Live {
                connection_id: session.connection_id,
                subscriptions: Vec::new(),
            },
        );
        self.subscriptions_now(session, &session.subscriptions);
    }

    async fn disconnected(&self, session: &SessionInfo, disconnection: Disconnection) {
        let identity = &session.principal.identity;
        let was_current = {
            let mut live = lock(&self.inner.live);
            match live.get(identity) {
                Some(entry) if entry.connection_id == session.connection_id => {
                    live.remove(identity);
                    true
                }
                _ => false,
            }
        };
        {
            let mut deliveries = lock(&self.inner.deliveries);
            let mut c2d_acks = lock(&self.inner.c2d_acks);
            for tag in disconnection.undelivered {
                // A child's cloud-to-device message stays in the hub, which delivers it again.
                c2d_acks.remove(&tag.0);
                if let Some(waiter) = deliveries.remove(&tag.0) {
                    let _ = waiter.send(false);
                }
            }
        }
        if was_current {
            lock(&self.inner.clients).disconnected(identity, &enqueued_time_now());
            self.inner.clients_changed.notify_one();
            self.inner.live_changed.send_modify(|counter| *counter += 1);
            self.inner.upstream.close(identity);
        }
    }

    async fn subscriptions_changed(
        &self,
        session: &SessionInfo,
        subscriptions: &[ClientSubscription],
    ) {
        self.subscriptions_now(session, subscriptions);
    }

    async fn telemetry(
        &self,
        principal: &Principal,
        message: Message,
    ) -> Result<(), TelemetryError> {
        self.store_message(&principal.identity, message, false)
            .await
    }

    async fn twin_get(&self, principal: &Principal) -> TwinReply {
        let identity = &principal.identity;
        if self.inner.upstream.is_online() {
            let link = self.inner.upstream.link(identity);
            if let Ok(Ok(document)) =
                tokio::time::timeout(Duration::from_secs(10), link.get_twin()).await
                && let Err(error) = self.inner.twins.store_from_cloud(identity, &document)
            {
                tracing::warn!(%error, %identity, "cannot cache a twin");
            }
        }
        let document = self.inner.twins.document_or_empty(identity);
        TwinReply {
            status: 200,
            version: None,
            body: Bytes::from(serde_json::to_vec(&document).unwrap_or_default()),
        }
    }

    async fn twin_patch_reported(
        &self,
        principal: &Principal,
        patch: Bytes,
        _expected_version: Option<u64>,
    ) -> TwinReply {
        match self.inner.twins.apply_reported(&principal.identity, &patch) {
            Ok(version) => {
                self.inner.twin_sync.notify_one();
                self.notify_twin_change(&principal.identity, version, &patch)
                    .await;
                TwinReply {
                    status: 204,
                    version: Some(version),
                    body: Bytes::new(),
                }
            }
            Err(error) => {
                let status = match error {
                    TwinCacheError::InvalidPatch(_) => 400,
                    TwinCacheError::TooLarge => 413,
                    TwinCacheError::Io(_) => 503,
                };
                TwinReply {
                    status,
                    version: None,
                    body: Bytes::from(
                        serde_json::to_vec(&json!({"Message": error.to_string()}))
                            .unwrap_or_default(),
                    ),
                }
            }
        }
    }

    async fn method_response(&self, _principal: &Principal, response: MethodResponse) {
        if let Some(waiter) = lock(&self.inner.pending_methods).remove(&response.rid) {
            let _ = waiter.send(response);
        }
    }

    async fn delivery_acknowledged(&self, _principal: &Principal, tag: DeliveryTag) {
        // Before this returns, so that the PUBACK to the hub is queued ahead of the link's close
        // when the child disconnects right after acknowledging.
        let c2d_ack = lock(&self.inner.c2d_acks).remove(&tag.0);
        if let Some(ack) = c2d_ack {
            ack.acknowledge();
            return;
        }
        if let Some(waiter) = lock(&self.inner.deliveries).remove(&tag.0) {
            let _ = waiter.send(true);
        }
    }
}

/// Applies `storeAndForwardConfiguration.storeLimits.maxSizeBytes` (in Azure only for the
/// in-memory store; here for the durable one): it may lower the store's byte bound, never raise
/// it above the runtime's `store_max_bytes`, which protects the device's disk.
fn apply_store_limit(store: &MessageStore, deployment: &HubDeployment) {
    let requested = deployment.store_and_forward.max_size_bytes;
    let bound = store.set_max_bytes(requested.unwrap_or(u64::MAX));
    tracing::info!(?requested, bound, "edge hub store bound");
}

fn load_config(data_dir: &std::path::Path) -> Option<HubDeployment> {
    let text = std::fs::read_to_string(data_dir.join("config.json")).ok()?;
    let desired: Map<String, Value> = serde_json::from_str(&text).ok()?;
    match HubDeployment::from_desired_properties(&desired) {
        Ok(deployment) => Some(deployment),
        Err(error) => {
            tracing::warn!(%error, "stored $edgeHub configuration is invalid; starting without routes");
            None
        }
    }
}

fn save_config(data_dir: &std::path::Path, desired: &Map<String, Value>) -> std::io::Result<()> {
    let path = data_dir.join("config.json");
    let temporary = data_dir.join("config.json.tmp");
    std::fs::write(
        &temporary,
        serde_json::to_vec_pretty(desired).unwrap_or_default(),
    )?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(temporary, path)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

fn now_secs() -> u64 {
    now_ms() / 1000
}

fn enqueued_time_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A method response payload as JSON: empty is `null`, and a payload that is not JSON is passed
/// on as a string rather than dropped.
pub(crate) fn method_payload_json(payload: &[u8]) -> Value {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub_types::ModuleId;

    #[test]
    fn method_payloads_become_json_without_losing_what_is_not_json() {
        assert_eq!(method_payload_json(b"  "), Value::Null);
        assert_eq!(method_payload_json(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(method_payload_json(b"not json"), json!("not json"));
    }

    #[test]
    fn the_client_table_keeps_modules_drops_leaf_devices_and_patches_in_bounded_pieces() {
        let device = DeviceId::new("edge").unwrap();
        let module = Identity::module(device.clone(), ModuleId::new("filter").unwrap());
        let leaf = Identity::device(DeviceId::new("leaf").unwrap());
        let mut table = ClientTable::default();
        table.connected(&module, "t1");
        table.connected(&leaf, "t1");
        let first = table.take_patch(1).unwrap();
        let second = table.take_patch(1).unwrap();
        assert_eq!(table.take_patch(1), None);
        assert_eq!(first.len() + second.len(), 2);
        table.disconnected(&module, "t2");
        table.disconnected(&leaf, "t2");
        let patch = table.take_patch(10).unwrap();
        assert_eq!(
            Value::Object(patch),
            json!({
                "edge/filter": {"status": "disconnected", "lastConnectedTimeUtc": "t1", "lastDisconnectedTimeUtc": "t2"},
                "leaf": null
            })
        );
        table.mark_all_changed();
        assert_eq!(table.take_patch(10).unwrap().len(), 1);
    }
}
