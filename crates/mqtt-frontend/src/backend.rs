//! The contract between the MQTT front end and the role behind it (the cloud hub, later the edge
//! hub): what the front end asks of the role, and the values that cross the boundary.

use std::fmt;
use std::future::Future;

use bytes::Bytes;
use iothub_topics::ClientSubscription;
use iothub_types::{Identity, Message};
use mqtt_codec::ConnectReturnCode;
use tls::CertificateDer;

use crate::username::ConnectUsername;

/// The role served by the front end. The front end owns sockets, MQTT framing, sessions and topic
/// dispatch; the backend owns identities, credentials, storage and everything a message means.
///
/// Every method is called from the task of the connection concerned. Methods returning futures
/// are awaited by that task, so a slow backend slows only that client (and, through bounded queues,
/// never the others).
///
/// Ordering of inbound work: the front end pipelines up to
/// [`FrontendConfig::max_inbound_pending`](crate::FrontendConfig::max_inbound_pending) operations per
/// connection ([`Backend::telemetry`], [`Backend::twin_get`], [`Backend::twin_patch_reported`],
/// [`Backend::method_response`], [`Backend::delivery_acknowledged`]). It creates their futures in the
/// order the client sent the packets, first polls them in that order, and sends the replies
/// (PUBACK, twin responses) in that order. An implementation that must keep a client's messages in
/// order (the telemetry log does) therefore has to take its place in line (for example, append to
/// its log's queue) before the first `.await` that can suspend. Setting `max_inbound_pending` to 1
/// removes the pipelining altogether.
pub trait Backend: Send + Sync + 'static {
    /// Decides whether a CONNECT is allowed. The front end has already checked the packet shape,
    /// parsed the client id into [`ConnectRequest::identity`] (refusing with code 2 if it is not an
    /// identity) and the user name (refusing with code 4 if it is malformed or names another
    /// identity). The returned principal's identity must equal the requested one.
    ///
    /// Use [`ConnectRefusal::NotAuthorized`] (5) for bad or expired tokens and for unknown or
    /// disabled identities, [`ConnectRefusal::BadUserNameOrPassword`] (4) for malformed credentials,
    /// and [`ConnectRefusal::ServerUnavailable`] (3) for throttling or overload.
    fn authenticate(
        &self,
        request: &ConnectRequest,
    ) -> impl Future<Output = Result<Principal, ConnectRefusal>> + Send;

    /// Called after CONNACK 0 was sent and the session is registered, so pushes through
    /// [`Sessions`](crate::Sessions) reach the client from now on. A good moment to deliver queued
    /// cloud-to-device messages and to record the connection state.
    fn connected(&self, session: &SessionInfo) -> impl Future<Output = ()> + Send;

    /// Called once per accepted connection when it ends. When a client reconnects, the old
    /// connection's `disconnected` may arrive after the new connection's `connected`: compare
    /// [`SessionInfo::connection_id`] before marking an identity offline.
    fn disconnected(
        &self,
        session: &SessionInfo,
        disconnection: Disconnection,
    ) -> impl Future<Output = ()> + Send;

    /// Called after every SUBSCRIBE that granted at least one filter (even one already held, so a
    /// client that subscribes again is a cue to deliver what is pending) and every UNSUBSCRIBE that
    /// removed one, with the complete new set. Not called for subscriptions restored from a
    /// persistent session: those come with [`SessionInfo::subscriptions`] in
    /// [`Backend::connected`].
    fn subscriptions_changed(
        &self,
        session: &SessionInfo,
        subscriptions: &[ClientSubscription],
    ) -> impl Future<Output = ()> + Send;

    /// Accepts one telemetry message (device or module; a module output carries
    /// `system.output_name`). The front end sends PUBACK (for QoS 1) only after this resolves with
    /// `Ok`, so resolve only when the message is durable. An error closes the connection without
    /// PUBACK; the client will resend.
    ///
    /// The message carries exactly what the client sent (body, bag properties; `mqtt-retain=true`
    /// when the RETAIN flag was set). Stamping `iothub-connection-*` and enqueued-time properties is
    /// the backend's job.
    fn telemetry(
        &self,
        principal: &Principal,
        message: Message,
    ) -> impl Future<Output = Result<(), TelemetryError>> + Send;

    /// Answers a twin GET. The reply is published to `$iothub/twin/res/{status}/?$rid={rid}` even
    /// when the client has no subscription to `$iothub/twin/res/#`.
    fn twin_get(&self, principal: &Principal) -> impl Future<Output = TwinReply> + Send;

    /// Applies a reported-properties merge patch (`patch` is the raw payload, not yet parsed).
    /// `expected_version` is the optional `$version` some SDKs put in the request topic. Reply
    /// `204` with the new reported version on success, `400` for invalid JSON, `412` for a version
    /// mismatch, `413` when too large.
    fn twin_patch_reported(
        &self,
        principal: &Principal,
        patch: Bytes,
        expected_version: Option<u64>,
    ) -> impl Future<Output = TwinReply> + Send;

    /// Delivers a device's answer to a direct method request (correlate with `response.rid`).
    fn method_response(
        &self,
        principal: &Principal,
        response: MethodResponse,
    ) -> impl Future<Output = ()> + Send;

    /// The client acknowledged (PUBACK) a QoS 1 delivery pushed with this tag, or the delivery went
    /// out at QoS 0 because the client subscribed at QoS 0: the cloud-to-device message is complete.
    fn delivery_acknowledged(
        &self,
        principal: &Principal,
        tag: DeliveryTag,
    ) -> impl Future<Output = ()> + Send;
}

/// Everything the backend needs to authenticate a CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The MQTT client id exactly as sent (`{deviceId}` or `{deviceId}/{moduleId}`).
    pub client_id: String,
    /// The identity the client id names.
    pub identity: Identity,
    /// The parsed user name; its ids are known to equal `identity`.
    pub username: ConnectUsername,
    /// The password: a SAS token for SAS clients, usually absent for X.509 clients.
    pub password: Option<Bytes>,
    /// The certificate chain the client presented during the TLS handshake, if any.
    pub client_certificate: Option<ClientCertificate>,
    /// The transport the client used.
    pub transport: Transport,
    /// The CONNECT clean-session flag.
    pub clean_session: bool,
    /// The CONNECT keep-alive in seconds.
    pub keep_alive_secs: u16,
}

/// A client certificate chain as presented in the TLS handshake, end entity first.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    chain: Vec<CertificateDer<'static>>,
}

impl ClientCertificate {
    /// Wraps a presented chain; `None` when the chain is empty.
    pub fn new(chain: Vec<CertificateDer<'static>>) -> Option<ClientCertificate> {
        if chain.is_empty() {
            None
        } else {
            Some(ClientCertificate { chain })
        }
    }

    /// The end-entity (device) certificate.
    pub fn end_entity(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The certificates the client sent after the end entity.
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        &self.chain[1..]
    }

    /// The upper-case hex SHA-1 thumbprint of the end entity, as IoT Hub stores for self-signed
    /// X.509 devices.
    pub fn thumbprint_sha1_hex(&self) -> String {
        tls::thumbprint_sha1_hex(self.end_entity())
    }

    /// The upper-case hex SHA-256 thumbprint of the end entity.
    pub fn thumbprint_sha256_hex(&self) -> String {
        tls::thumbprint_sha256_hex(self.end_entity())
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ClientCertificate")
            .field("thumbprint_sha1", &self.thumbprint_sha1_hex())
            .field("chain_length", &self.chain.len())
            .finish()
    }
}

/// How a client reached the front end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// MQTT over TLS (port 8883 by default).
    Tls,
    /// MQTT over WebSocket over TLS (`/$iothub/websocket` on the HTTPS port).
    WebSocket,
    /// MQTT over plain TCP: loopback opt-out for tests and benchmarks only.
    PlainTcp,
}

/// The result of authentication: who the client is and how it proved it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The authenticated identity; equal to the identity the client id names.
    pub identity: Identity,
    /// How the client authenticated, for `iothub-connection-auth-method`.
    pub auth_method: AuthMethod,
    /// The identity's registry generation id, for `iothub-connection-auth-generation-id`.
    pub generation_id: Option<String>,
}

/// How a principal authenticated: the `scope` and `type` of IoT Hub's
/// `iothub-connection-auth-method` property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AuthMethod {
    /// Whose key or certificate was used.
    pub scope: AuthScope,
    /// Which kind of credential was used.
    pub credential: CredentialType,
}

/// Whose credential authenticated a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthScope {
    /// The device's own key or certificate.
    Device,
    /// The module's own key or certificate.
    Module,
    /// A hub-level shared access policy (with device scope).
    Hub,
}

impl AuthScope {
    /// The wire spelling: `device`, `module` or `hub`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthScope::Device => "device",
            AuthScope::Module => "module",
            AuthScope::Hub => "hub",
        }
    }
}

/// Which kind of credential authenticated a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialType {
    /// A shared access signature token.
    Sas,
    /// An X.509 client certificate (self-signed by thumbprint, or CA-signed).
    X509,
}

impl CredentialType {
    /// The wire spelling: `sas` or `x509`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialType::Sas => "sas",
            CredentialType::X509 => "x509",
        }
    }
}

/// Why a CONNECT is refused, with the CONNACK code each maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectRefusal {
    /// Code 2: the client id is not acceptable.
    IdentifierRejected,
    /// Code 3: the server cannot take the connection now (throttling, overload); the SDK retries.
    ServerUnavailable,
    /// Code 4: the credentials are malformed.
    BadUserNameOrPassword,
    /// Code 5: bad or expired token, unknown or disabled identity, wrong certificate.
    NotAuthorized,
}

impl ConnectRefusal {
    /// The CONNACK return code sent for this refusal.
    pub fn return_code(self) -> ConnectReturnCode {
        match self {
            ConnectRefusal::IdentifierRejected => ConnectReturnCode::IdentifierRejected,
            ConnectRefusal::ServerUnavailable => ConnectReturnCode::ServerUnavailable,
            ConnectRefusal::BadUserNameOrPassword => ConnectReturnCode::BadUserNameOrPassword,
            ConnectRefusal::NotAuthorized => ConnectReturnCode::NotAuthorized,
        }
    }
}

/// A unique number for each accepted connection of one front end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

/// What the backend learns about an accepted connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Who is connected.
    pub principal: Principal,
    /// This connection's number; a reconnect gets a new one.
    pub connection_id: ConnectionId,
    /// The transport used.
    pub transport: Transport,
    /// The CONNECT clean-session flag.
    pub clean_session: bool,
    /// Whether a stored session was resumed (the CONNACK session-present flag).
    pub session_present: bool,
    /// The subscriptions in force at connect time (restored from a persistent session).
    pub subscriptions: Vec<ClientSubscription>,
    /// The IoT Plug and Play model id from the user name (`model-id=`), if any.
    pub model_id: Option<String>,
}

/// How and why a connection ended, and which pushed deliveries it did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnection {
    /// Why the connection ended.
    pub reason: DisconnectReason,
    /// Tags of QoS 1 deliveries that were queued or sent but never acknowledged, in push order.
    /// The front end does not redeliver them: the backend's queue does, on the next connection.
    pub undelivered: Vec<DeliveryTag>,
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client sent DISCONNECT.
    ClientDisconnected,
    /// The socket closed or failed without DISCONNECT.
    ConnectionLost,
    /// Nothing arrived within 1.5 times the keep-alive interval.
    KeepAliveTimeout,
    /// A new connection with the same client id took the session over.
    SessionTakenOver,
    /// The backend asked for the identity to be disconnected (for example, it was disabled).
    DisconnectedByBackend,
    /// The client broke a protocol or IoT Hub rule; the text says which.
    ProtocolViolation(String),
    /// The backend refused a telemetry message; the text says why.
    TelemetryRejected(String),
    /// The front end is shutting down.
    Shutdown,
}

/// An opaque number the backend attaches to a QoS 1 push (a cloud-to-device message or module
/// input) and gets back in [`Backend::delivery_acknowledged`] or [`Disconnection::undelivered`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeliveryTag(pub u64);

/// A twin operation's answer, published on `$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwinReply {
    /// The status: 200 for GET, 204 for PATCH, 4xx/5xx on errors.
    pub status: u16,
    /// The new reported version after a PATCH (written as `$version`), `None` otherwise.
    pub version: Option<u64>,
    /// The response body: the twin for GET, empty for PATCH, an error document otherwise.
    pub body: Bytes,
}

/// A device's answer to a direct method request, from `$iothub/methods/res/{status}/?$rid={rid}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodResponse {
    /// The request id the hub chose when it sent the request.
    pub rid: String,
    /// The status the device application chose.
    pub status: i32,
    /// The response payload (JSON from the SDKs, but unchecked here).
    pub payload: Bytes,
}

/// Why the backend refused a telemetry message. Either way the connection is closed without
/// PUBACK, which makes the SDK reconnect and resend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    /// The message is unacceptable (the client's fault).
    #[error("telemetry rejected: {0}")]
    Rejected(String),
    /// The backend cannot store it now (the server's fault, for example a full or failing log).
    #[error("telemetry store unavailable: {0}")]
    Unavailable(String),
}
