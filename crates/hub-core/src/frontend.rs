//! The hub as the MQTT front end's [`Backend`], and the front end's [`Sessions`] as the hub's
//! [`DeviceConnections`].
//!
//! [`FrontendConnections`] remembers, per identity, the live connection id and which IoT Hub
//! subscriptions it holds (from `connected` and `subscriptions_changed`), so the hub can answer
//! "is this device ready for methods / C2D" without a round trip to the session registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use iothub_topics::ClientSubscription;
use iothub_types::{DeviceId, Identity, Message};
use mqtt_frontend::{
    AuthScope, Backend, ConnectRefusal, ConnectRequest, ConnectionId, CredentialType, DeliveryTag,
    Disconnection, MethodResponse, Principal, PushError, SessionInfo, Sessions, TelemetryError,
    TwinReply,
};
use serde_json::json;

use crate::auth::{AuthMethod, AuthenticatedDevice, DeviceAuthError, DeviceCredential};
use crate::connections::{C2dDelivery, DeviceConnections, MethodRequest};
use crate::error::HubError;
use crate::hub::{Hub, lock};
use crate::storage::BoxFuture;

/// What one live connection is subscribed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LiveSubscriptions {
    connection_id: ConnectionId,
    methods: bool,
    cloud_to_device: bool,
}

fn live_subscriptions(
    connection_id: ConnectionId,
    subscriptions: &[ClientSubscription],
) -> LiveSubscriptions {
    LiveSubscriptions {
        connection_id,
        methods: subscriptions.contains(&ClientSubscription::MethodRequests),
        cloud_to_device: subscriptions
            .iter()
            .any(|subscription| matches!(subscription, ClientSubscription::CloudToDevice { .. })),
    }
}

/// The front end's [`Sessions`] seen as the hub's [`DeviceConnections`].
#[derive(Debug)]
pub struct FrontendConnections {
    sessions: Sessions,
    live: Mutex<HashMap<Identity, LiveSubscriptions>>,
}

impl FrontendConnections {
    /// Wraps the session registry handle.
    pub fn new(sessions: Sessions) -> FrontendConnections {
        FrontendConnections {
            sessions,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn is_current(&self, identity: &Identity, connection_id: ConnectionId) -> bool {
        lock(&self.live)
            .get(identity)
            .is_some_and(|live| live.connection_id == connection_id)
    }
}

impl DeviceConnections for FrontendConnections {
    fn accepts_methods(&self, identity: &Identity) -> bool {
        lock(&self.live)
            .get(identity)
            .is_some_and(|live| live.methods)
    }

    fn accepts_c2d(&self, device_id: &DeviceId) -> bool {
        lock(&self.live)
            .get(&Identity::device(device_id.clone()))
            .is_some_and(|live| live.cloud_to_device)
    }

    fn send_method_request<'a>(
        &'a self,
        identity: &'a Identity,
        request: MethodRequest,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.sessions
                .send_method_request(
                    identity,
                    &request.method_name,
                    &request.request_id,
                    request.payload,
                )
                .await
                .is_ok()
        })
    }

    fn send_desired_patch<'a>(
        &'a self,
        identity: &'a Identity,
        version: u64,
        body: Bytes,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match self
                .sessions
                .send_desired_properties_patch(identity, version, body)
                .await
            {
                Ok(()) | Err(PushError::NotConnected | PushError::NotSubscribed) => {}
                Err(error) => {
                    tracing::debug!(%error, identity = %identity, "desired patch not pushed")
                }
            }
        })
    }

    fn send_c2d(&self, delivery: C2dDelivery) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let Ok(tag) = u64::try_from(delivery.sequence) else {
                return false;
            };
            self.sessions
                .send_cloud_to_device(&delivery.device_id, &delivery.message, DeliveryTag(tag))
                .await
                .is_ok()
        })
    }

    fn disconnect<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let result = match identity.module {
                None => self
                    .sessions
                    .disconnect_device_and_modules(&identity.device)
                    .await
                    .map(|_| ()),
                Some(_) => self.sessions.disconnect(identity).await,
            };
            if let Err(error) = result
                && error != PushError::NotConnected
            {
                tracing::debug!(%error, identity = %identity, "disconnect not delivered");
            }
        })
    }
}

/// The cloud hub behind the MQTT front end.
#[derive(Debug)]
pub struct HubBackend {
    hub: Arc<Hub>,
    connections: Arc<FrontendConnections>,
}

impl HubBackend {
    /// Connects the hub and the front end's session registry: the hub pushes through `sessions`,
    /// and the returned backend goes into `mqtt_frontend::Frontend::new` with the same `sessions`.
    pub fn attach(hub: Arc<Hub>, sessions: Sessions) -> Arc<HubBackend> {
        let connections = Arc::new(FrontendConnections::new(sessions));
        if !hub.attach_connections(connections.clone()) {
            tracing::warn!(
                "the hub already had a connection layer; pushes keep going to the first one"
            );
        }
        Arc::new(HubBackend { hub, connections })
    }

    /// The hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

fn auth_method_of(principal: &Principal) -> AuthMethod {
    match (
        principal.auth_method.credential,
        principal.auth_method.scope,
    ) {
        // The front end's principal does not tell self-signed from CA-signed certificates; both
        // stamp the same `iothub-connection-auth-method`.
        (CredentialType::X509, _) => AuthMethod::X509SelfSigned,
        (CredentialType::Sas, AuthScope::Hub) => AuthMethod::HubPolicySas,
        (CredentialType::Sas, AuthScope::Module) => AuthMethod::ModuleSas,
        (CredentialType::Sas, AuthScope::Device) => AuthMethod::DeviceSas,
    }
}

fn principal_of(device: &AuthenticatedDevice) -> Principal {
    let (scope, credential) = match device.method {
        AuthMethod::DeviceSas => (AuthScope::Device, CredentialType::Sas),
        AuthMethod::ModuleSas => (AuthScope::Module, CredentialType::Sas),
        AuthMethod::HubPolicySas => (AuthScope::Hub, CredentialType::Sas),
        AuthMethod::X509SelfSigned | AuthMethod::X509CertificateAuthority => {
            let scope = if device.identity.module.is_some() {
                AuthScope::Module
            } else {
                AuthScope::Device
            };
            (scope, CredentialType::X509)
        }
    };
    Principal {
        identity: device.identity.clone(),
        auth_method: mqtt_frontend::AuthMethod { scope, credential },
        generation_id: Some(device.generation_id.clone()),
    }
}

fn error_reply(error: &HubError) -> TwinReply {
    let body = json!({"errorCode": error.code().number(), "message": error.to_string()});
    TwinReply {
        status: error.code().http_status(),
        version: None,
        body: Bytes::from(body.to_string()),
    }
}

impl Backend for HubBackend {
    async fn authenticate(&self, request: &ConnectRequest) -> Result<Principal, ConnectRefusal> {
        let result = match (&request.password, &request.client_certificate) {
            (Some(password), _) => {
                let Ok(token) = std::str::from_utf8(password) else {
                    return Err(ConnectRefusal::BadUserNameOrPassword);
                };
                self.hub
                    .authenticate_device(&request.identity, DeviceCredential::SasToken(token))
                    .await
            }
            (None, Some(certificate)) => {
                let credential = DeviceCredential::X509Chain {
                    end_entity: certificate.end_entity(),
                    intermediates: certificate.intermediates(),
                };
                self.hub
                    .authenticate_device(&request.identity, credential)
                    .await
            }
            (None, None) => return Err(ConnectRefusal::NotAuthorized),
        };
        match result {
            Ok(device) => Ok(principal_of(&device)),
            Err(DeviceAuthError::NotAuthorized(reason)) => {
                tracing::info!(identity = %request.identity, %reason, "connection refused");
                Err(ConnectRefusal::NotAuthorized)
            }
            Err(DeviceAuthError::Unavailable(reason)) => {
                tracing::warn!(identity = %request.identity, %reason, "cannot authenticate now");
                Err(ConnectRefusal::ServerUnavailable)
            }
        }
    }

    async fn connected(&self, session: &SessionInfo) {
        let identity = &session.principal.identity;
        lock(&self.connections.live).insert(
            identity.clone(),
            live_subscriptions(session.connection_id, &session.subscriptions),
        );
        if let Some(model_id) = &session.model_id
            && let Err(error) = self.hub.set_model_id(identity, model_id).await
        {
            tracing::warn!(%error, identity = %identity, "cannot record the model id");
        }
        self.hub.device_connected(identity).await;
    }

    async fn disconnected(&self, session: &SessionInfo, disconnection: Disconnection) {
        let identity = &session.principal.identity;
        let current = self.connections.is_current(identity, session.connection_id);
        if current {
            lock(&self.connections.live).remove(identity);
            self.hub.device_disconnected(identity).await;
        } else {
            // A newer connection of the same identity is live: only this connection's own
            // unacknowledged deliveries become deliverable again.
            let sequences: Vec<i64> = disconnection
                .undelivered
                .iter()
                .filter_map(|tag| i64::try_from(tag.0).ok())
                .collect();
            self.hub
                .release_c2d_deliveries(&identity.device, &sequences);
            self.hub.deliver_c2d(&identity.device).await;
        }
    }

    async fn subscriptions_changed(
        &self,
        session: &SessionInfo,
        subscriptions: &[ClientSubscription],
    ) {
        let identity = &session.principal.identity;
        if !self.connections.is_current(identity, session.connection_id) {
            return;
        }
        lock(&self.connections.live).insert(
            identity.clone(),
            live_subscriptions(session.connection_id, subscriptions),
        );
        self.hub.device_subscribed(identity).await;
    }

    async fn telemetry(
        &self,
        principal: &Principal,
        message: Message,
    ) -> Result<(), TelemetryError> {
        match self
            .hub
            .ingest_telemetry_from(
                &principal.identity,
                auth_method_of(principal),
                principal.generation_id.as_deref().unwrap_or_default(),
                message,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(error @ (HubError::TooLarge { .. } | HubError::InvalidArgument(_))) => {
                Err(TelemetryError::Rejected(error.to_string()))
            }
            Err(error) => Err(TelemetryError::Unavailable(error.to_string())),
        }
    }

    async fn twin_get(&self, principal: &Principal) -> TwinReply {
        match self.hub.device_twin_document(&principal.identity).await {
            Ok(document) => TwinReply {
                status: 200,
                version: None,
                body: Bytes::from(document.to_string()),
            },
            Err(error) => error_reply(&error),
        }
    }

    async fn twin_patch_reported(
        &self,
        principal: &Principal,
        patch: Bytes,
        expected_version: Option<u64>,
    ) -> TwinReply {
        match self
            .hub
            .patch_reported(&principal.identity, &patch, expected_version)
            .await
        {
            Ok(version) => TwinReply {
                status: 204,
                version: Some(version),
                body: Bytes::new(),
            },
            Err(error) => error_reply(&error),
        }
    }

    async fn method_response(&self, principal: &Principal, response: MethodResponse) {
        self.hub.device_activity(&principal.identity);
        let accepted = self.hub.complete_method(
            &principal.identity,
            &response.rid,
            i64::from(response.status),
            &response.payload,
        );
        if !accepted {
            tracing::debug!(identity = %principal.identity, rid = %response.rid, "method response for no pending call");
        }
    }

    async fn delivery_acknowledged(&self, principal: &Principal, tag: DeliveryTag) {
        let Ok(sequence) = i64::try_from(tag.0) else {
            return;
        };
        if let Err(error) = self
            .hub
            .complete_c2d(&principal.identity.device, sequence)
            .await
        {
            tracing::warn!(%error, identity = %principal.identity, "cannot complete a cloud-to-device message");
        }
    }
}
