//! Test support: an in-memory backend, a hub listening on loopback TLS, and an MQTT test client
//! built on tokio-rustls and the project's own codec.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use iothub_topics::ClientSubscription;
use iothub_types::{Identity, Message};
use mqtt_codec::{
    ConnAck, Connect, ConnectReturnCode, MqttCodec, Packet, PacketId, Publish, QoS, Subscribe,
    SubscribeFilter,
};
use mqtt_frontend::{
    AuthMethod, AuthScope, Backend, ConnectRefusal, ConnectRequest, CredentialType, DeliveryTag,
    Disconnection, Frontend, FrontendConfig, MethodResponse, Principal, SessionInfo, Sessions,
    TelemetryError, TwinReply,
};
use tls::{
    CertificateAuthority, CertificateValidity, ClientCertificates, IssuedCertificate,
    ReloadableCertificateResolver, ServerCertificateRequest, tokio_rustls,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_util::codec::Framed;

/// How long a test waits for something that should happen promptly.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// What the backend observed, in order.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Connected {
        identity: String,
        session_present: bool,
        subscriptions: Vec<String>,
    },
    Disconnected {
        identity: String,
        disconnection: Disconnection,
    },
    SubscriptionsChanged {
        identity: String,
        subscriptions: Vec<String>,
    },
    Telemetry {
        identity: String,
        message: Message,
    },
    MethodResponse {
        identity: String,
        response: MethodResponse,
    },
    DeliveryAcknowledged {
        identity: String,
        tag: DeliveryTag,
    },
}

/// A registered identity of the in-memory backend.
#[derive(Clone, Debug)]
pub struct Registration {
    pub password: Option<String>,
    pub thumbprint: Option<String>,
    pub enabled: bool,
}

/// An in-memory backend: a small registry, twins with a reported version counter, and an event
/// channel the tests read.
pub struct MemoryBackend {
    registrations: Mutex<HashMap<String, Registration>>,
    reported_versions: Mutex<HashMap<String, u64>>,
    events: mpsc::UnboundedSender<Event>,
    /// Telemetry whose body is `hold` waits for this before it is "durable".
    pub release_held_telemetry: Notify,
}

impl MemoryBackend {
    pub fn new() -> (Arc<MemoryBackend>, mpsc::UnboundedReceiver<Event>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let backend = MemoryBackend {
            registrations: Mutex::new(HashMap::new()),
            reported_versions: Mutex::new(HashMap::new()),
            events,
            release_held_telemetry: Notify::new(),
        };
        (Arc::new(backend), receiver)
    }

    pub fn register(&self, identity: &str, registration: Registration) {
        self.registrations
            .lock()
            .unwrap()
            .insert(identity.to_owned(), registration);
    }

    pub fn register_with_password(&self, identity: &str) {
        self.register(
            identity,
            Registration {
                password: Some(password_for(identity)),
                thumbprint: None,
                enabled: true,
            },
        );
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }
}

/// The password the in-memory backend expects for `identity`.
pub fn password_for(identity: &str) -> String {
    format!("secret-of-{identity}")
}

fn subscription_names(subscriptions: &[ClientSubscription]) -> Vec<String> {
    let mut names: Vec<String> = subscriptions
        .iter()
        .map(ClientSubscription::to_filter)
        .collect();
    names.sort();
    names
}

impl Backend for MemoryBackend {
    async fn authenticate(&self, request: &ConnectRequest) -> Result<Principal, ConnectRefusal> {
        let registration = self
            .registrations
            .lock()
            .unwrap()
            .get(&request.identity.to_string())
            .cloned()
            .ok_or(ConnectRefusal::NotAuthorized)?;
        if !registration.enabled {
            return Err(ConnectRefusal::NotAuthorized);
        }
        let scope = if request.identity.is_module() {
            AuthScope::Module
        } else {
            AuthScope::Device
        };
        let principal = |credential| Principal {
            identity: request.identity.clone(),
            auth_method: AuthMethod { scope, credential },
            generation_id: None,
        };
        if let (Some(expected), Some(certificate)) =
            (&registration.thumbprint, &request.client_certificate)
        {
            return if *expected == certificate.thumbprint_sha1_hex() {
                Ok(principal(CredentialType::X509))
            } else {
                Err(ConnectRefusal::NotAuthorized)
            };
        }
        let password = request
            .password
            .as_ref()
            .ok_or(ConnectRefusal::BadUserNameOrPassword)?;
        if password.as_ref() == b"busy" {
            return Err(ConnectRefusal::ServerUnavailable);
        }
        match &registration.password {
            Some(expected) if expected.as_bytes() == password.as_ref() => {
                Ok(principal(CredentialType::Sas))
            }
            _ => Err(ConnectRefusal::NotAuthorized),
        }
    }

    async fn connected(&self, session: &SessionInfo) {
        self.emit(Event::Connected {
            identity: session.principal.identity.to_string(),
            session_present: session.session_present,
            subscriptions: subscription_names(&session.subscriptions),
        });
    }

    async fn disconnected(&self, session: &SessionInfo, disconnection: Disconnection) {
        self.emit(Event::Disconnected {
            identity: session.principal.identity.to_string(),
            disconnection,
        });
    }

    async fn subscriptions_changed(
        &self,
        session: &SessionInfo,
        subscriptions: &[ClientSubscription],
    ) {
        self.emit(Event::SubscriptionsChanged {
            identity: session.principal.identity.to_string(),
            subscriptions: subscription_names(subscriptions),
        });
    }

    async fn telemetry(
        &self,
        principal: &Principal,
        message: Message,
    ) -> Result<(), TelemetryError> {
        if message.body.as_ref() == b"reject" {
            return Err(TelemetryError::Rejected("body says reject".to_owned()));
        }
        if message.body.as_ref() == b"hold" {
            self.release_held_telemetry.notified().await;
        }
        self.emit(Event::Telemetry {
            identity: principal.identity.to_string(),
            message,
        });
        Ok(())
    }

    async fn twin_get(&self, principal: &Principal) -> TwinReply {
        let version = self
            .reported_versions
            .lock()
            .unwrap()
            .get(&principal.identity.to_string())
            .copied()
            .unwrap_or(1);
        TwinReply {
            status: 200,
            version: None,
            body: Bytes::from(format!(
                r#"{{"desired":{{"$version":1}},"reported":{{"$version":{version}}}}}"#
            )),
        }
    }

    async fn twin_patch_reported(
        &self,
        principal: &Principal,
        patch: Bytes,
        _expected_version: Option<u64>,
    ) -> TwinReply {
        if !patch.starts_with(b"{") {
            return TwinReply {
                status: 400,
                version: None,
                body: Bytes::from_static(br#"{"message":"invalid JSON"}"#),
            };
        }
        let mut versions = self.reported_versions.lock().unwrap();
        let version = versions.entry(principal.identity.to_string()).or_insert(1);
        *version += 1;
        TwinReply {
            status: 204,
            version: Some(*version),
            body: Bytes::new(),
        }
    }

    async fn method_response(&self, principal: &Principal, response: MethodResponse) {
        self.emit(Event::MethodResponse {
            identity: principal.identity.to_string(),
            response,
        });
    }

    async fn delivery_acknowledged(&self, principal: &Principal, tag: DeliveryTag) {
        self.emit(Event::DeliveryAcknowledged {
            identity: principal.identity.to_string(),
            tag,
        });
    }
}

/// A front end with the in-memory backend, listening on loopback TLS.
pub struct TestHub {
    pub address: SocketAddr,
    pub ca: CertificateAuthority,
    pub frontend: Frontend<MemoryBackend>,
    pub backend: Arc<MemoryBackend>,
    pub events: mpsc::UnboundedReceiver<Event>,
    listener_task: tokio::task::JoinHandle<()>,
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.listener_task.abort();
    }
}

impl TestHub {
    pub async fn start() -> TestHub {
        TestHub::start_with(FrontendConfig::default()).await
    }

    pub async fn start_with(config: FrontendConfig) -> TestHub {
        let (frontend, backend, events) = frontend_with(config);
        let ca = CertificateAuthority::generate("Test CA", CertificateValidity::days_from_now(30))
            .unwrap();
        let server_certificate = ca
            .issue_server_certificate(&ServerCertificateRequest {
                common_name: "localhost".to_owned(),
                dns_names: vec!["localhost".to_owned()],
                ip_addresses: vec![],
                validity: CertificateValidity::days_from_now(30),
            })
            .unwrap();
        let resolver = Arc::new(ReloadableCertificateResolver::new(&server_certificate).unwrap());
        let server_config =
            Arc::new(tls::server_config(resolver, ClientCertificates::AcceptAnyOptional).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let serving = frontend.clone();
        let listener_task =
            tokio::spawn(async move { serving.serve_tls(listener, server_config).await });
        TestHub {
            address,
            ca,
            frontend,
            backend,
            events,
            listener_task,
        }
    }

    pub fn sessions(&self) -> &Sessions {
        self.frontend.sessions()
    }

    /// Opens a TLS connection without sending anything.
    pub async fn open(&self) -> TestClient<tokio_rustls::client::TlsStream<TcpStream>> {
        let config = tls::client_config(&[self.ca.certificate().clone()]).unwrap();
        self.open_with(config).await
    }

    /// Opens a TLS connection presenting `certificate`.
    pub async fn open_with_certificate(
        &self,
        certificate: &IssuedCertificate,
    ) -> TestClient<tokio_rustls::client::TlsStream<TcpStream>> {
        let config =
            tls::client_config_with_certificate(&[self.ca.certificate().clone()], certificate)
                .unwrap();
        self.open_with(config).await
    }

    async fn open_with(
        &self,
        config: tls::rustls::ClientConfig,
    ) -> TestClient<tokio_rustls::client::TlsStream<TcpStream>> {
        let socket = TcpStream::connect(self.address).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let server_name = tls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let stream = connector.connect(server_name, socket).await.unwrap();
        TestClient::new(stream)
    }

    /// Registers `identity` with a password, connects it with the given clean-session flag, and
    /// returns the client with its CONNACK.
    pub async fn connect(
        &mut self,
        identity: &str,
        clean_session: bool,
    ) -> (
        TestClient<tokio_rustls::client::TlsStream<TcpStream>>,
        ConnAck,
    ) {
        self.backend.register_with_password(identity);
        let mut client = self.open().await;
        let connack = client
            .connect(sas_connect(identity, clean_session))
            .await
            .expect("CONNACK");
        (client, connack)
    }

    /// The next backend event, skipping none.
    pub async fn next_event(&mut self) -> Event {
        tokio::time::timeout(PATIENCE, self.events.recv())
            .await
            .expect("backend event in time")
            .expect("event channel open")
    }

    /// Skips events until one matches `wanted`, returning it.
    pub async fn wait_for_event(&mut self, wanted: impl Fn(&Event) -> bool) -> Event {
        loop {
            let event = self.next_event().await;
            if wanted(&event) {
                return event;
            }
        }
    }
}

/// A front end over the in-memory backend, not listening anywhere.
pub fn frontend_with(
    config: FrontendConfig,
) -> (
    Frontend<MemoryBackend>,
    Arc<MemoryBackend>,
    mpsc::UnboundedReceiver<Event>,
) {
    let sessions = Sessions::spawn(config.registry_queue_capacity);
    let (backend, events) = MemoryBackend::new();
    let frontend = Frontend::new(backend.clone(), sessions, config);
    (frontend, backend, events)
}

/// A CONNECT as the Python SDK sends it for `identity` (device `d` or module `d/m`).
pub fn sas_connect(identity: &str, clean_session: bool) -> Connect {
    Connect {
        client_id: identity.to_owned(),
        clean_session,
        keep_alive: 60,
        will: None,
        username: Some(format!(
            "localhost/{identity}/?api-version=2019-10-01&DeviceClientType=test"
        )),
        password: Some(Bytes::from(password_for(identity))),
    }
}

/// An MQTT client over any byte stream.
pub struct TestClient<S> {
    framed: Framed<S, MqttCodec>,
    next_packet_id: u16,
    patience: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TestClient<S> {
    pub fn new(stream: S) -> TestClient<S> {
        TestClient {
            framed: Framed::new(stream, MqttCodec::new(1024 * 1024)),
            next_packet_id: 1,
            patience: PATIENCE,
        }
    }

    /// Sets how long [`TestClient::receive`] waits (paused-time tests wait for long timers).
    pub fn with_patience(mut self, patience: Duration) -> TestClient<S> {
        self.patience = patience;
        self
    }

    pub async fn send(&mut self, packet: Packet) {
        self.framed.send(packet).await.expect("send packet");
    }

    /// Writes raw bytes, bypassing the codec.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let stream = self.framed.get_mut();
        stream.write_all(bytes).await.expect("write raw bytes");
        stream.flush().await.expect("flush raw bytes");
    }

    /// The next packet, or `None` when the server closed the connection (or broke it).
    pub async fn receive(&mut self) -> Option<Packet> {
        match tokio::time::timeout(self.patience, self.framed.next()).await {
            Err(_) => panic!("no packet and no close within {:?}", self.patience),
            Ok(Some(Ok(packet))) => Some(packet),
            Ok(Some(Err(_)) | None) => None,
        }
    }

    /// Asserts that the server closes the connection, skipping packets it sends first.
    pub async fn expect_closed(&mut self) {
        while self.receive().await.is_some() {}
    }

    pub async fn connect(&mut self, connect: Connect) -> Option<ConnAck> {
        self.send(Packet::Connect(connect)).await;
        match self.receive().await {
            Some(Packet::ConnAck(connack)) => Some(connack),
            Some(other) => panic!("expected CONNACK, got {other:?}"),
            None => None,
        }
    }

    pub fn packet_id(&mut self) -> PacketId {
        let packet_id = PacketId::new(self.next_packet_id).unwrap();
        self.next_packet_id += 1;
        packet_id
    }

    /// Sends a SUBSCRIBE for one filter without waiting for the answer.
    pub async fn send_subscribe(&mut self, filter: &str, requested_qos: QoS) {
        let packet_id = self.packet_id();
        self.send(Packet::Subscribe(Subscribe {
            packet_id,
            filters: vec![SubscribeFilter {
                filter: filter.to_owned(),
                requested_qos,
            }],
        }))
        .await;
    }

    /// Subscribes to one filter and returns the answer.
    pub async fn subscribe(&mut self, filter: &str, requested_qos: QoS) -> Packet {
        self.send_subscribe(filter, requested_qos).await;
        self.receive().await.expect("SUBACK")
    }

    /// Publishes at QoS 1 and returns the packet id.
    pub async fn publish_qos1(&mut self, topic: &str, payload: &[u8]) -> PacketId {
        let packet_id = self.packet_id();
        self.send(Packet::Publish(Publish::with_packet_id(
            topic,
            QoS::AtLeastOnce,
            packet_id,
            Bytes::copy_from_slice(payload),
        )))
        .await;
        packet_id
    }

    /// Publishes at QoS 1 and waits for the PUBACK.
    pub async fn publish_acknowledged(&mut self, topic: &str, payload: &[u8]) {
        let packet_id = self.publish_qos1(topic, payload).await;
        assert_eq!(self.receive().await, Some(Packet::PubAck(packet_id)));
    }
}

/// Renders a packet compactly for snapshots.
pub fn describe(packet: &Option<Packet>) -> String {
    match packet {
        None => "closed".to_owned(),
        Some(Packet::ConnAck(connack)) => format!(
            "CONNACK code={} session_present={}",
            connack.return_code.as_u8(),
            connack.session_present
        ),
        Some(Packet::Publish(publish)) => format!(
            "PUBLISH qos={} topic={} payload={}",
            publish.qos.as_u8(),
            publish.topic,
            String::from_utf8_lossy(&publish.payload)
        ),
        Some(Packet::SubAck(suback)) => format!(
            "SUBACK {:?}",
            suback
                .return_codes
                .iter()
                .map(|code| code.as_u8())
                .collect::<Vec<_>>()
        ),
        Some(other) => format!("{other:?}"),
    }
}

/// The identity value for a `d` or `d/m` string.
pub fn identity(text: &str) -> Identity {
    text.parse().unwrap()
}

/// The expected CONNACK for an accepted connection.
pub fn accepted(session_present: bool) -> ConnAck {
    ConnAck {
        session_present,
        return_code: ConnectReturnCode::Accepted,
    }
}
