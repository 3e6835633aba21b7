//! The IoT Hub dialect of MQTT 3.1.1 served to devices and modules: transports, authentication,
//! sessions, topic dispatch.
//!
//! This crate owns everything between a socket and the role behind it (the cloud hub now, the
//! edge hub later): the TLS listener and the plain-TCP loopback opt-out ([`Frontend::serve_tls`],
//! [`Frontend::serve_plain_tcp`]), the WebSocket adapter that lets the HTTPS listener hand over
//! `/$iothub/websocket` connections ([`WebSocketByteStream`], [`Frontend::upgrade_websocket`]),
//! CONNECT validation (client id and user name parsing, [`ConnectUsername`]), the session registry
//! with persistent subscriptions for clean-session-0 clients ([`Sessions`]), and the dispatch of
//! IoT Hub topics to the [`Backend`] trait that the role implements.
//!
//! Architecture: one task per connection owns that connection's state (socket, in-flight window,
//! pending backend operations); one registry task owns every session (which identity is connected
//! where, and its subscriptions). They talk only through bounded channels. The backend pushes to
//! clients through the [`Sessions`] handle and never blocks on a client: a full connection queue
//! is reported as [`PushError::QueueFull`].
//!
//! IoT Hub rules applied here: a client may only publish and subscribe to its own identity's
//! topics (anything else closes the connection); QoS 2 publishes close the connection and QoS 2
//! subscriptions are granted QoS 1; the RETAIN flag is not honoured but reported to the backend as
//! the `mqtt-retain` application property; the keep-alive timeout is 1.5 times the client's
//! keep-alive; packets above the size limit close the connection; twin responses reach the
//! requester whether or not it subscribed to `$iothub/twin/res/#`; a new CONNECT with the same
//! client id closes the older connection.

#![forbid(unsafe_code)]

mod backend;
mod config;
mod connection;
pub mod https;
mod listener;
mod session_table;
mod sessions;
mod username;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncWrite};

pub use backend::{
    AuthMethod, AuthScope, Backend, ClientCertificate, ConnectRefusal, ConnectRequest,
    ConnectionId, CredentialType, DeliveryTag, DisconnectReason, Disconnection, MethodResponse,
    Principal, SessionInfo, TelemetryError, Transport, TwinReply,
};
pub use config::{
    DEFAULT_MAX_PACKET_SIZE, FrontendConfig, MAX_KEEP_ALIVE_TIMEOUT, MAX_MESSAGE_SIZE,
};
pub use sessions::{PushError, Sessions};
pub use username::{ConnectUsername, UsernameError};
pub use websocket::{WEBSOCKET_PATH, WEBSOCKET_SUBPROTOCOL, WebSocketByteStream};

/// What the transport layer knows about a connection before MQTT starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportInfo {
    /// How the client connected.
    pub transport: Transport,
    /// The certificate chain the client presented in the TLS handshake, if any.
    pub client_certificate: Option<ClientCertificate>,
    /// The client's address, for logs.
    pub remote_address: Option<SocketAddr>,
}

/// The MQTT front end: cheap to clone, shared by every listener and connection.
pub struct Frontend<B> {
    shared: Arc<FrontendShared<B>>,
}

impl<B> Clone for Frontend<B> {
    fn clone(&self) -> Self {
        Frontend {
            shared: self.shared.clone(),
        }
    }
}

impl<B> std::fmt::Debug for Frontend<B> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Frontend")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// The state every connection of a front end shares; immutable apart from the id counter.
pub(crate) struct FrontendShared<B> {
    pub backend: Arc<B>,
    pub sessions: Sessions,
    pub config: FrontendConfig,
    next_connection_id: AtomicU64,
}

impl<B> FrontendShared<B> {
    pub fn next_connection_id(&self) -> ConnectionId {
        ConnectionId(self.next_connection_id.fetch_add(1, Ordering::Relaxed))
    }
}

impl<B: Backend> Frontend<B> {
    /// A front end serving `backend`. `sessions` must come from [`Sessions::spawn`]; the backend
    /// usually holds a clone of it to push messages, which is why it is created first:
    ///
    /// ```text
    /// let config = FrontendConfig::default();
    /// let sessions = Sessions::spawn(config.registry_queue_capacity);
    /// let backend = Arc::new(MyHub::new(sessions.clone()));
    /// let frontend = Frontend::new(backend, sessions, config);
    /// ```
    pub fn new(backend: Arc<B>, sessions: Sessions, config: FrontendConfig) -> Frontend<B> {
        Frontend {
            shared: Arc::new(FrontendShared {
                backend,
                sessions,
                config,
                next_connection_id: AtomicU64::new(1),
            }),
        }
    }

    /// The session registry handle.
    pub fn sessions(&self) -> &Sessions {
        &self.shared.sessions
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<B> {
        &self.shared.backend
    }

    /// The configuration.
    pub fn config(&self) -> &FrontendConfig {
        &self.shared.config
    }

    /// Serves one already-established byte stream (TLS, plain TCP, WebSocket or in-memory) until
    /// the connection ends. The TLS handshake, if any, must be complete; its client certificate
    /// goes in `transport_info`.
    pub async fn serve_connection<S>(&self, stream: S, transport_info: TransportInfo)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let span = tracing::debug_span!(
            "mqtt_connection",
            transport = ?transport_info.transport,
            remote = ?transport_info.remote_address
        );
        tracing::Instrument::instrument(
            connection::serve(&self.shared, stream, transport_info),
            span,
        )
        .await;
    }
}
