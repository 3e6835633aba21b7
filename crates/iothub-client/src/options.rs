//! What a client needs to know: where the hub is, who it is, how it proves it, and its limits.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use iothub_auth::{
    ClientCredential, ConnectionString, HostName, ResourceScope, SasToken, SymmetricKey,
};
use iothub_topics::ClientSubscription;
use iothub_types::Identity;
use tls::{CertificateDer, IssuedCertificate};

use crate::error::{ConnectError, TokenError};

/// The port the device SDKs always dial for MQTT over TLS.
pub const DEFAULT_MQTT_TLS_PORT: u16 = 8883;

/// The product information sent as `DeviceClientType` in the CONNECT user name.
pub const DEFAULT_PRODUCT_INFO: &str = "outpost/0.1";

/// The lifetime of the SAS tokens a client signs with its own key (the SDK default).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// How long before a token expires the client reconnects with a fresh one (the SDK default).
pub const DEFAULT_TOKEN_RENEWAL_MARGIN: Duration = Duration::from_secs(120);

/// Everything [`crate::IotHubClient::connect`] needs. Build it with [`ClientOptions::new`] or
/// [`ClientOptions::from_connection_string`], then adjust the public fields.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The hub's host name: written into the CONNECT user name and the token's `sr`.
    pub host_name: HostName,
    /// The host to dial instead of `host_name` (an edge gateway for leaf devices), also the TLS
    /// server name. The user name and tokens keep `host_name`, as in the SDKs.
    pub gateway_host_name: Option<HostName>,
    /// The TCP port; 8883 for MQTT over TLS.
    pub port: u16,
    /// The device or module this client acts as.
    pub identity: Identity,
    /// How the client proves who it is.
    pub credentials: Credentials,
    /// TLS (with the trusted roots) or plain TCP (loopback tests only).
    pub transport: Transport,
    /// The `DeviceClientType` sent in the user name (percent-encoded like the SDK does).
    pub product_info: String,
    /// The MQTT keep-alive; a PINGREQ goes out when nothing was sent for this long, and the
    /// connection is considered lost when the hub then stays silent for as long again. Zero turns
    /// keep-alive off. The SDK default is 60 s; IoT Hub allows up to 1740 s.
    pub keep_alive: Duration,
    /// The time allowed for TCP connect, TLS handshake and CONNACK together.
    pub connect_timeout: Duration,
    /// The time allowed for each operation from the call to its answer (window wait, connection
    /// wait in queueing mode, PUBACK, twin response).
    pub operation_timeout: Duration,
    /// Operations waiting for an answer (or, in queueing mode, for a connection) at once; further
    /// calls wait for a free slot (back-pressure).
    pub max_in_flight: usize,
    /// Incoming events (desired patches, method requests, C2D messages, module inputs) buffered for
    /// the application; when full, the client stops reading from the socket (and so withholds
    /// PUBACKs) until the application catches up.
    pub event_queue_capacity: usize,
    /// When true, a cloud-to-device message arrives as
    /// [`ClientEvent::CloudToDeviceToAcknowledge`] and its PUBACK, which completes it in the hub,
    /// goes out only when the application calls [`crate::CloudToDeviceAck::acknowledge`]. A
    /// connection that ends first leaves the message in the hub's queue, which delivers it again.
    /// A gateway uses this to complete a message only once its child has it. Default: false (the
    /// PUBACK goes out as soon as the application's event queue takes the message).
    pub manual_cloud_to_device_ack: bool,
    /// The largest packet accepted from the hub, fixed header included.
    pub max_packet_size: usize,
    /// Features subscribed to right after every connection that has no session (a session the
    /// hub resumed keeps its subscriptions). Others are subscribed on first use.
    pub subscribe_at_connect: Vec<Feature>,
    /// Back-off between reconnection attempts.
    pub reconnect: ReconnectPolicy,
    /// What operations do while the client is disconnected.
    pub while_disconnected: WhileDisconnected,
    /// How long before a token expires the client reconnects with a fresh one. Tokens whose whole
    /// lifetime is shorter than twice this margin are renewed at half their lifetime.
    pub token_renewal_margin: Duration,
}

/// How a client authenticates.
#[derive(Clone)]
pub enum Credentials {
    /// The device or module key: the client signs its own device-SDK-style tokens, each valid for
    /// `token_ttl`, and renews them before they expire by reconnecting (DISCONNECT, then CONNECT
    /// with the new token), as azure-iot-device does.
    SharedAccessKey {
        key: SymmetricKey,
        token_ttl: Duration,
    },
    /// Tokens come from a callback, asked anew for every connection and renewal: the edge runtime
    /// signs module tokens through its workload API, and the edge hub issues tokens for its child
    /// devices as their parent.
    TokenProvider(Arc<dyn TokenProvider>),
    /// A ready-made token, used as is and never renewed (like a connection string with
    /// `SharedAccessSignature=`); once it expires the hub refuses reconnections.
    FixedToken(SasToken),
    /// An X.509 client certificate presented in the TLS handshake; CONNECT carries no password.
    X509(IssuedCertificate),
}

/// What the client asks a [`TokenProvider`] for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The scope the token must cover: the client's device or module on `host_name`.
    pub scope: ResourceScope,
    /// The expiry the client would like (now plus the provider's preferred lifetime is fine too).
    pub expiry_unix_secs: u64,
}

/// The boxed future a [`TokenProvider`] returns.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<SasToken, TokenError>> + Send + 'static>>;

/// A source of SAS tokens. The client calls it before every connection attempt; the token's `se`
/// decides when the client renews. Closures `Fn(TokenRequest) -> impl Future<Output =
/// Result<SasToken, TokenError>>` implement it.
pub trait TokenProvider: Send + Sync + 'static {
    /// Produces a token for `request.scope`.
    fn token(&self, request: TokenRequest) -> TokenFuture;
}

impl<F, Fut> TokenProvider for F
where
    F: Fn(TokenRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<SasToken, TokenError>> + Send + 'static,
{
    fn token(&self, request: TokenRequest) -> TokenFuture {
        Box::pin(self(request))
    }
}

/// The byte transport under MQTT.
#[derive(Clone, Debug)]
pub enum Transport {
    /// MQTT over TLS, trusting exactly these root certificates (the hub's or gateway's CA).
    Tls {
        trusted_roots: Vec<CertificateDer<'static>>,
    },
    /// MQTT over plain TCP: for loopback tests and benchmarks only. Not allowed with X.509.
    PlainTcp,
}

/// A group of incoming messages the client subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// Direct method requests: `$iothub/methods/POST/#`.
    MethodRequests,
    /// Desired-property patches: `$iothub/twin/PATCH/properties/desired/#`.
    DesiredPropertiesPatches,
    /// Cloud-to-device messages for a device (`devices/{d}/messages/devicebound/#`), module inputs
    /// for a module (`devices/{d}/modules/{m}/inputs/#`).
    IncomingMessages,
    /// Twin responses (`$iothub/twin/res/#`); subscribed automatically before the first twin call.
    TwinResponses,
}

impl Feature {
    /// The filter this feature subscribes to for `identity`.
    pub fn subscription(self, identity: &Identity) -> ClientSubscription {
        match self {
            Feature::MethodRequests => ClientSubscription::MethodRequests,
            Feature::DesiredPropertiesPatches => ClientSubscription::DesiredPropertiesPatches,
            Feature::TwinResponses => ClientSubscription::TwinResponses,
            Feature::IncomingMessages => match &identity.module {
                None => ClientSubscription::CloudToDevice {
                    device: identity.device.clone(),
                },
                Some(module) => ClientSubscription::ModuleInputs {
                    device: identity.device.clone(),
                    module: module.clone(),
                },
            },
        }
    }
}

/// Exponential back-off with jitter between reconnection attempts.
///
/// Attempt `n` (counting from 0 after the last successful connection) waits
/// `min(initial_delay * multiplier^n, max_delay)`, reduced by a random share of at most
/// `jitter_percent` percent so that many clients do not reconnect in lockstep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub multiplier: u32,
    /// 0 to 100.
    pub jitter_percent: u8,
}

impl Default for ReconnectPolicy {
    fn default() -> ReconnectPolicy {
        ReconnectPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            multiplier: 2,
            jitter_percent: 50,
        }
    }
}

/// What operations do while the client has no connection.
///
/// The default is [`WhileDisconnected::FailFast`]: callers learn at once that the hub is
/// unreachable and keep their own durable copy (the edge hub's store) instead of piling work up in
/// memory, and they watch [`crate::ConnectionState`] to know when to resume.
///
/// A planned token renewal is not a disconnection in this sense: the client first lets operations
/// in flight finish (up to ten seconds), and operations started meanwhile wait for the immediate
/// reconnection in either mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum WhileDisconnected {
    /// New operations fail with [`crate::ClientError::NotConnected`]; operations already sent fail
    /// with [`crate::ClientError::ConnectionLost`] when the connection drops.
    #[default]
    FailFast,
    /// New operations wait for the next connection, and operations that were sent but not answered
    /// when the connection dropped are sent again after reconnecting (as new publishes with new
    /// packet ids: at-least-once). Every operation is still bounded by the operation timeout, and
    /// their number by the in-flight window.
    Queue,
}

// === impl ClientOptions ===

impl ClientOptions {
    /// Options with the SDK's defaults: port 8883, keep-alive 60 s, connect timeout 30 s, operation
    /// timeout 30 s, window 64, event queue 64, no subscriptions at connect, fail fast while
    /// disconnected, default back-off.
    pub fn new(
        host_name: HostName,
        identity: Identity,
        credentials: Credentials,
        transport: Transport,
    ) -> ClientOptions {
        ClientOptions {
            host_name,
            gateway_host_name: None,
            port: DEFAULT_MQTT_TLS_PORT,
            identity,
            credentials,
            transport,
            product_info: DEFAULT_PRODUCT_INFO.to_owned(),
            keep_alive: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(30),
            max_in_flight: 64,
            event_queue_capacity: 64,
            manual_cloud_to_device_ack: false,
            max_packet_size: 1024 * 1024,
            subscribe_at_connect: Vec::new(),
            reconnect: ReconnectPolicy::default(),
            while_disconnected: WhileDisconnected::FailFast,
            token_renewal_margin: DEFAULT_TOKEN_RENEWAL_MARGIN,
        }
    }

    /// Options from a device or module connection string (`HostName`, `DeviceId`, optional
    /// `ModuleId` and `GatewayHostName`, and `SharedAccessKey` or `SharedAccessSignature`). X.509
    /// connection strings carry no certificate, so they are refused here: use
    /// [`ClientOptions::new`] with [`Credentials::X509`].
    pub fn from_connection_string(
        connection_string: &str,
        transport: Transport,
    ) -> Result<ClientOptions, ConnectError> {
        let configuration = |message: String| ConnectError::Configuration { message };
        let parsed = ConnectionString::parse(connection_string)
            .map_err(|error| configuration(format!("bad connection string: {error}")))?;
        let (host_name, gateway_host_name, identity, credential) = match &parsed {
            ConnectionString::Device(device) => (
                device.host_name().clone(),
                device.gateway_host_name().cloned(),
                device.identity(),
                device.credential().clone(),
            ),
            ConnectionString::Module(module) => (
                module.host_name().clone(),
                module.gateway_host_name().cloned(),
                module.identity(),
                module.credential().clone(),
            ),
            ConnectionString::Service(_) => {
                return Err(configuration(
                    "a service connection string names no device or module".to_owned(),
                ));
            }
        };
        let credentials = match credential {
            ClientCredential::SharedAccessKey(key) => Credentials::SharedAccessKey {
                key,
                token_ttl: DEFAULT_TOKEN_TTL,
            },
            ClientCredential::SharedAccessSignature(token) => Credentials::FixedToken(token),
            ClientCredential::X509 => {
                return Err(configuration(
                    "an x509=true connection string needs the certificate: use Credentials::X509"
                        .to_owned(),
                ));
            }
        };
        let mut options = ClientOptions::new(host_name, identity, credentials, transport);
        options.gateway_host_name = gateway_host_name;
        Ok(options)
    }

    /// The host actually dialled: the gateway if there is one, the hub otherwise.
    pub fn dial_host_name(&self) -> &HostName {
        self.gateway_host_name.as_ref().unwrap_or(&self.host_name)
    }

    /// The resource scope the client's tokens must cover.
    pub fn resource_scope(&self) -> ResourceScope {
        ResourceScope::for_identity(self.host_name.clone(), &self.identity)
    }
}

// === impl Credentials ===

impl Credentials {
    /// The device or module key with the SDK's default token lifetime (one hour).
    pub fn shared_access_key(key: SymmetricKey) -> Credentials {
        Credentials::SharedAccessKey {
            key,
            token_ttl: DEFAULT_TOKEN_TTL,
        }
    }

    /// Tokens from `provider` (a [`TokenProvider`] or a closure).
    pub fn token_provider(provider: impl TokenProvider) -> Credentials {
        Credentials::TokenProvider(Arc::new(provider))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::SharedAccessKey { token_ttl, .. } => formatter
                .debug_struct("SharedAccessKey")
                .field("token_ttl", token_ttl)
                .finish_non_exhaustive(),
            Credentials::TokenProvider(_) => formatter.write_str("TokenProvider(..)"),
            Credentials::FixedToken(token) => {
                formatter.debug_tuple("FixedToken").field(token).finish()
            }
            Credentials::X509(certificate) => formatter
                .debug_struct("X509")
                .field("chain_length", &certificate.chain.len())
                .finish_non_exhaustive(),
        }
    }
}
