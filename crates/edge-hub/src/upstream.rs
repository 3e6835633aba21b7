//! Upstream links: one IoT Hub MQTT client per downstream identity that needs the cloud (to send
//! its stored messages, sync its twin, receive its methods and cloud-to-device messages), plus the
//! edge hub's own `$edgeHub` link that decides whether the hub is online.
//!
//! Every link authenticates *on behalf of* its identity with a token the edge hub is entitled to
//! issue as the parent: a SAS token for `{hub}/devices/{edge}/modules/$edgeHub` signed with the
//! `$edgeHub` key. Child keys never leave the device.
//!
//! Drain after an outage is event-driven: the `$edgeHub` link retries with a short capped
//! back-off, and the moment it connects every other link is told to reconnect now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iothub_auth::{HostName, ResourceScope, SasToken, SasTokenStyle, SymmetricKey};
use iothub_client::{
    ClientEvent, ClientOptions, ConnectionState, Credentials, EventStream, Feature, IotHubClient,
    ReconnectPolicy, TokenRequest, Transport, WhileDisconnected,
};
use iothub_types::{DeviceId, Identity, ModuleId};
use tokio::sync::{mpsc, watch};

use crate::hub::lock;

/// The module id of the edge hub.
pub const EDGE_HUB_MODULE: &str = "$edgeHub";

/// Where and how to reach the cloud hub.
#[derive(Clone)]
pub struct UpstreamSettings {
    /// The cloud hub's host name (token audience and CONNECT user name).
    pub hub_host: HostName,
    /// The MQTT over TLS port of the cloud hub.
    pub port: u16,
    /// The roots trusted for the cloud hub's certificate.
    pub trusted_roots: Vec<tls::CertificateDer<'static>>,
    /// This edge device.
    pub edge_device: DeviceId,
    /// The `$edgeHub` module's key: signs every upstream token.
    pub edge_hub_key: SymmetricKey,
    /// Cap of the `$edgeHub` link's reconnection back-off: how late, at worst, the edge hub notices
    /// that the hub is back.
    pub probe_interval: Duration,
    /// Time allowed for each upstream operation.
    pub operation_timeout: Duration,
}

impl std::fmt::Debug for UpstreamSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UpstreamSettings")
            .field("hub_host", &self.hub_host)
            .field("port", &self.port)
            .field("edge_device", &self.edge_device)
            .finish_non_exhaustive()
    }
}

/// An event from the cloud for one downstream identity.
#[derive(Debug)]
pub struct UpstreamEvent {
    pub identity: Identity,
    pub event: ClientEvent,
}

struct Link {
    client: IotHubClient,
    features: Vec<Feature>,
}

/// The set of upstream links. Cheap to clone.
#[derive(Clone)]
pub struct UpstreamPool {
    shared: Arc<Shared>,
}

struct Shared {
    settings: UpstreamSettings,
    links: Mutex<HashMap<Identity, Link>>,
    events: mpsc::Sender<UpstreamEvent>,
    online: watch::Sender<bool>,
}

impl UpstreamPool {
    /// Creates the pool and the edge hub's own link. Cloud events for every identity (the edge
    /// hub's own included) arrive on the returned receiver.
    pub fn start(
        settings: UpstreamSettings,
        event_queue_capacity: usize,
    ) -> (UpstreamPool, mpsc::Receiver<UpstreamEvent>) {
        let (events, receiver) = mpsc::channel(event_queue_capacity.max(1));
        let (online, _) = watch::channel(false);
        let pool = UpstreamPool {
            shared: Arc::new(Shared {
                settings,
                links: Mutex::new(HashMap::new()),
                events,
                online,
            }),
        };
        let own = pool.edge_hub_identity();
        let client = pool.link(&own);
        let mut state = client.connection_state();
        let watcher = pool.clone();
        tokio::spawn(async move {
            loop {
                let connected = state.borrow_and_update().is_connected();
                let was_online = watcher.shared.online.send_replace(connected);
                if connected && !was_online {
                    tracing::info!(message = "The hub is reachable: draining stored messages.");
                    watcher.reconnect_others();
                } else if !connected && was_online {
                    tracing::warn!(message = "The hub is unreachable: storing upstream messages.");
                }
                if state.changed().await.is_err() {
                    break;
                }
            }
        });
        (pool, receiver)
    }

    /// The identity of the edge hub itself.
    pub fn edge_hub_identity(&self) -> Identity {
        Identity::module(
            self.shared.settings.edge_device.clone(),
            ModuleId::new(EDGE_HUB_MODULE).expect("$edgeHub is a valid module id"),
        )
    }

    /// Whether the edge hub's own link is connected (the hub is online).
    pub fn is_online(&self) -> bool {
        *self.shared.online.borrow()
    }

    /// Watches whether the hub is online.
    pub fn online(&self) -> watch::Receiver<bool> {
        self.shared.online.subscribe()
    }

    /// Resolves once the hub is online.
    pub async fn wait_online(&self) {
        let mut online = self.online();
        let _ = online.wait_for(|online| *online).await;
    }

    /// The link of `identity`, created (and connecting in the background) if there was none.
    pub fn link(&self, identity: &Identity) -> IotHubClient {
        let mut links = lock(&self.shared.links);
        if let Some(link) = links.get(identity) {
            return link.client.clone();
        }
        let (client, events) = self.spawn_client(identity);
        tokio::spawn(forward_events(
            identity.clone(),
            events,
            self.shared.events.clone(),
        ));
        links.insert(
            identity.clone(),
            Link {
                client: client.clone(),
                features: Vec::new(),
            },
        );
        client
    }

    /// The link of `identity` if one exists.
    pub fn existing_link(&self, identity: &Identity) -> Option<IotHubClient> {
        lock(&self.shared.links)
            .get(identity)
            .map(|link| link.client.clone())
    }

    /// Makes sure the link of `identity` receives `features` from the cloud.
    pub fn enable(&self, identity: &Identity, features: &[Feature]) {
        let client = self.link(identity);
        let mut links = lock(&self.shared.links);
        let Some(link) = links.get_mut(identity) else {
            return;
        };
        for feature in features {
            if link.features.contains(feature) {
                continue;
            }
            link.features.push(*feature);
            let client = client.clone();
            let feature = *feature;
            tokio::spawn(async move {
                // The client remembers the subscription and sends it again after reconnecting.
                if let Err(error) = client.enable(feature).await {
                    tracing::debug!(%error, ?feature, "upstream subscription deferred");
                }
            });
        }
    }

    /// Closes the link of `identity` (its downstream client left); it is created again when
    /// needed.
    pub fn close(&self, identity: &Identity) {
        if *identity == self.edge_hub_identity() {
            return;
        }
        let link = lock(&self.shared.links).remove(identity);
        if let Some(link) = link {
            tokio::spawn(async move { link.client.shutdown().await });
        }
    }

    /// The number of open links, the edge hub's own included.
    pub fn link_count(&self) -> usize {
        lock(&self.shared.links).len()
    }

    /// The connection state of the link of `identity`, if there is one.
    pub fn state(&self, identity: &Identity) -> Option<ConnectionState> {
        lock(&self.shared.links)
            .get(identity)
            .map(|link| link.client.connection_state().borrow().clone())
    }

    fn reconnect_others(&self) {
        let own = self.edge_hub_identity();
        for (identity, link) in lock(&self.shared.links).iter() {
            if *identity != own {
                link.client.reconnect_now();
            }
        }
    }

    fn spawn_client(&self, identity: &Identity) -> (IotHubClient, EventStream) {
        let settings = &self.shared.settings;
        let hub_host = settings.hub_host.clone();
        let signer_scope = ResourceScope::module(
            hub_host.clone(),
            settings.edge_device.clone(),
            ModuleId::new(EDGE_HUB_MODULE).expect("$edgeHub is a valid module id"),
        );
        let key = settings.edge_hub_key.clone();
        let provider = move |request: TokenRequest| {
            let token = SasToken::sign(
                SasTokenStyle::DeviceSdk,
                &signer_scope,
                &key,
                None,
                request.expiry_unix_secs,
            );
            async move { Ok(token) }
        };
        let mut options = ClientOptions::new(
            hub_host,
            identity.clone(),
            Credentials::token_provider(provider),
            Transport::Tls {
                trusted_roots: settings.trusted_roots.clone(),
            },
        );
        options.port = settings.port;
        options.operation_timeout = settings.operation_timeout;
        options.max_in_flight = 256;
        options.event_queue_capacity = 64;
        let own = *identity == self.edge_hub_identity();
        if own {
            options.subscribe_at_connect = vec![Feature::DesiredPropertiesPatches];
            options.reconnect = ReconnectPolicy {
                initial_delay: Duration::from_millis(100),
                max_delay: settings.probe_interval,
                multiplier: 2,
                jitter_percent: 30,
            };
        } else {
            // Sends wait for the (re)connection instead of failing at once; the store keeps the
            // durable copy and the endpoint pump decides what to retry.
            options.while_disconnected = WhileDisconnected::Queue;
            // A child's cloud-to-device message is completed in the hub only once the child has
            // it (see `EdgeHub::relay_cloud_to_device`).
            options.manual_cloud_to_device_ack = true;
        }
        IotHubClient::spawn(options).expect("upstream client options are valid")
    }
}

async fn forward_events(
    identity: Identity,
    mut events: EventStream,
    sink: mpsc::Sender<UpstreamEvent>,
) {
    while let Some(event) = events.next().await {
        let event = UpstreamEvent {
            identity: identity.clone(),
            event,
        };
        if sink.send(event).await.is_err() {
            break;
        }
    }
}
