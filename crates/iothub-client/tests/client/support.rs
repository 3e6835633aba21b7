//! Test support: the real MQTT front end over loopback TLS or TCP, with an in-test backend that
//! verifies SAS tokens and X.509 thumbprints, keeps reported versions, and reports what it saw.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use iothub_auth::{HostName, SasToken, SymmetricKey};
use iothub_client::{ClientOptions, ConnectionState, Credentials, ReconnectPolicy, Transport};
use iothub_topics::ClientSubscription;
use iothub_types::{Identity, Message};
use mqtt_frontend::{
    AuthMethod, AuthScope, Backend, ConnectRefusal, ConnectRequest, CredentialType, DeliveryTag,
    Disconnection, Frontend, FrontendConfig, MethodResponse, Principal, SessionInfo, Sessions,
    TelemetryError, TwinReply,
};
use tls::{
    CertificateAuthority, CertificateValidity, ClientCertificates, ReloadableCertificateResolver,
    ServerCertificateRequest,
};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

/// How long a test waits for something that should happen promptly.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The hub host name clients put in user names and tokens (also the TLS server name).
pub const HOST: &str = "localhost";

/// What the backend observed, in order.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubEvent {
    Connect(ConnectRequest),
    Connected {
        identity: String,
        session_present: bool,
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

/// A registered identity.
#[derive(Clone, Debug, Default)]
pub struct Registration {
    pub key: Option<SymmetricKey>,
    pub thumbprint: Option<String>,
}

/// The in-test backend.
pub struct TestBackend {
    registrations: Mutex<HashMap<String, Registration>>,
    reported_versions: Mutex<HashMap<String, u64>>,
    /// When set, every CONNECT is refused with code 3.
    pub busy: Mutex<bool>,
    events: mpsc::UnboundedSender<HubEvent>,
    /// Telemetry whose body is `hold` waits for this before it is "durable".
    pub release_held_telemetry: Notify,
}

fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl TestBackend {
    fn emit(&self, event: HubEvent) {
        let _ = self.events.send(event);
    }

    pub fn register(&self, identity: &str, registration: Registration) {
        self.registrations
            .lock()
            .unwrap()
            .insert(identity.to_owned(), registration);
    }
}

fn subscription_names(subscriptions: &[ClientSubscription]) -> Vec<String> {
    let mut names: Vec<String> = subscriptions
        .iter()
        .map(ClientSubscription::to_filter)
        .collect();
    names.sort();
    names
}

impl Backend for TestBackend {
    async fn authenticate(&self, request: &ConnectRequest) -> Result<Principal, ConnectRefusal> {
        self.emit(HubEvent::Connect(request.clone()));
        if *self.busy.lock().unwrap() {
            return Err(ConnectRefusal::ServerUnavailable);
        }
        let registration = self
            .registrations
            .lock()
            .unwrap()
            .get(&request.identity.to_string())
            .cloned()
            .ok_or(ConnectRefusal::NotAuthorized)?;
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
        let password =
            std::str::from_utf8(password).map_err(|_| ConnectRefusal::BadUserNameOrPassword)?;
        let token = SasToken::parse(password).map_err(|_| ConnectRefusal::BadUserNameOrPassword)?;
        let key = registration.key.ok_or(ConnectRefusal::NotAuthorized)?;
        token
            .verify(&key, unix_now_secs())
            .map_err(|_| ConnectRefusal::NotAuthorized)?;
        let host = HostName::new(HOST).unwrap();
        if !token.scope().covers_identity(&host, &request.identity) {
            return Err(ConnectRefusal::NotAuthorized);
        }
        Ok(principal(CredentialType::Sas))
    }

    async fn connected(&self, session: &SessionInfo) {
        self.emit(HubEvent::Connected {
            identity: session.principal.identity.to_string(),
            session_present: session.session_present,
        });
    }

    async fn disconnected(&self, session: &SessionInfo, disconnection: Disconnection) {
        self.emit(HubEvent::Disconnected {
            identity: session.principal.identity.to_string(),
            disconnection,
        });
    }

    async fn subscriptions_changed(
        &self,
        session: &SessionInfo,
        subscriptions: &[ClientSubscription],
    ) {
        self.emit(HubEvent::SubscriptionsChanged {
            identity: session.principal.identity.to_string(),
            subscriptions: subscription_names(subscriptions),
        });
    }

    async fn telemetry(
        &self,
        principal: &Principal,
        message: Message,
    ) -> Result<(), TelemetryError> {
        if message.body.as_ref() == b"hold" {
            self.release_held_telemetry.notified().await;
        }
        self.emit(HubEvent::Telemetry {
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
                r#"{{"desired":{{"mode":"auto","$version":4}},"reported":{{"$version":{version}}}}}"#
            )),
        }
    }

    async fn twin_patch_reported(
        &self,
        principal: &Principal,
        patch: Bytes,
        _expected_version: Option<u64>,
    ) -> TwinReply {
        if serde_json::from_slice::<serde_json::Value>(&patch).is_err() {
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
        self.emit(HubEvent::MethodResponse {
            identity: principal.identity.to_string(),
            response,
        });
    }

    async fn delivery_acknowledged(&self, principal: &Principal, tag: DeliveryTag) {
        self.emit(HubEvent::DeliveryAcknowledged {
            identity: principal.identity.to_string(),
            tag,
        });
    }
}

/// Which transport the test hub listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listen {
    Tls,
    PlainTcp,
}

/// The real front end with the test backend on a loopback port that survives restarts.
pub struct TestHub {
    pub port: u16,
    pub ca: CertificateAuthority,
    pub backend: Arc<TestBackend>,
    pub frontend: Frontend<TestBackend>,
    pub events: mpsc::UnboundedReceiver<HubEvent>,
    listen: Listen,
    server_config: Arc<tls::rustls::ServerConfig>,
    listener_task: Option<JoinHandle<()>>,
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(task) = self.listener_task.take() {
            task.abort();
        }
    }
}

impl TestHub {
    pub async fn start(listen: Listen) -> TestHub {
        let (events_sender, events) = mpsc::unbounded_channel();
        let backend = Arc::new(TestBackend {
            registrations: Mutex::new(HashMap::new()),
            reported_versions: Mutex::new(HashMap::new()),
            busy: Mutex::new(false),
            events: events_sender,
            release_held_telemetry: Notify::new(),
        });
        let ca = CertificateAuthority::generate("Test CA", CertificateValidity::days_from_now(30))
            .unwrap();
        let server_certificate = ca
            .issue_server_certificate(&ServerCertificateRequest {
                common_name: HOST.to_owned(),
                dns_names: vec![HOST.to_owned()],
                ip_addresses: vec![],
                validity: CertificateValidity::days_from_now(30),
            })
            .unwrap();
        let resolver = Arc::new(ReloadableCertificateResolver::new(&server_certificate).unwrap());
        let server_config =
            Arc::new(tls::server_config(resolver, ClientCertificates::AcceptAnyOptional).unwrap());
        let frontend = new_frontend(backend.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut hub = TestHub {
            port,
            ca,
            backend,
            frontend,
            events,
            listen,
            server_config,
            listener_task: None,
        };
        hub.serve(listener);
        hub
    }

    fn serve(&mut self, listener: TcpListener) {
        let frontend = self.frontend.clone();
        let server_config = self.server_config.clone();
        let listen = self.listen;
        self.listener_task = Some(tokio::spawn(async move {
            match listen {
                Listen::Tls => frontend.serve_tls(listener, server_config).await,
                Listen::PlainTcp => frontend.serve_plain_tcp(listener).await,
            }
        }));
    }

    pub fn sessions(&self) -> &Sessions {
        self.frontend.sessions()
    }

    /// Stops accepting and closes every connection; sessions are kept.
    pub async fn stop(&mut self) {
        if let Some(task) = self.listener_task.take() {
            task.abort();
            let _ = task.await;
        }
        self.sessions().disconnect_everyone().await.unwrap();
    }

    /// Starts accepting again on the same port. With `forget_sessions`, the front end starts
    /// afresh (as after a hub restart), so clients get CONNACK with session-present 0.
    pub async fn resume(&mut self, forget_sessions: bool) {
        if forget_sessions {
            self.frontend = new_frontend(self.backend.clone());
        }
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }

    /// Registers `identity` with a fresh key and returns options for it with SAS-key credentials
    /// and fast reconnects.
    pub fn options(&self, identity: &str) -> ClientOptions {
        let key = SymmetricKey::generate_random();
        self.backend.register(
            identity,
            Registration {
                key: Some(key.clone()),
                thumbprint: None,
            },
        );
        self.options_with(identity, Credentials::shared_access_key(key))
    }

    /// Options for `identity` with the given credentials (nothing is registered).
    pub fn options_with(&self, identity: &str, credentials: Credentials) -> ClientOptions {
        let transport = match self.listen {
            Listen::Tls => Transport::Tls {
                trusted_roots: vec![self.ca.certificate().clone()],
            },
            Listen::PlainTcp => Transport::PlainTcp,
        };
        let mut options = ClientOptions::new(
            HostName::new(HOST).unwrap(),
            identity.parse().unwrap(),
            credentials,
            transport,
        );
        options.port = self.port;
        options.reconnect = ReconnectPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            multiplier: 2,
            jitter_percent: 50,
        };
        options.operation_timeout = PATIENCE;
        options.connect_timeout = PATIENCE;
        options
    }

    /// The next backend event.
    pub async fn next_event(&mut self) -> HubEvent {
        tokio::time::timeout(PATIENCE, self.events.recv())
            .await
            .expect("backend event in time")
            .expect("event channel open")
    }

    /// Skips events until one matches `wanted`.
    pub async fn wait_for(&mut self, wanted: impl Fn(&HubEvent) -> bool) -> HubEvent {
        loop {
            let event = self.next_event().await;
            if wanted(&event) {
                return event;
            }
        }
    }

    /// Waits until `identity` holds exactly `subscriptions` (sorted filters).
    pub async fn wait_for_subscriptions(&mut self, identity: &str, subscriptions: &[&str]) {
        self.wait_for(|event| {
            matches!(event, HubEvent::SubscriptionsChanged { identity: who, subscriptions: held }
                if who == identity && held.iter().map(String::as_str).eq(subscriptions.iter().copied()))
        })
        .await;
    }
}

fn new_frontend(backend: Arc<TestBackend>) -> Frontend<TestBackend> {
    let config = FrontendConfig::default();
    let sessions = Sessions::spawn(config.registry_queue_capacity);
    Frontend::new(backend, sessions, config)
}

/// Waits until the watched state satisfies `wanted`, returning it.
pub async fn wait_for_state(
    state: &mut watch::Receiver<ConnectionState>,
    wanted: impl Fn(&ConnectionState) -> bool,
) -> ConnectionState {
    tokio::time::timeout(PATIENCE, state.wait_for(|current| wanted(current)))
        .await
        .expect("connection state in time")
        .expect("client alive")
        .clone()
}

/// The identity value for a `d` or `d/m` string.
pub fn identity(text: &str) -> Identity {
    text.parse().unwrap()
}

/// Waits for the next client event.
pub async fn next_client_event(
    events: &mut iothub_client::EventStream,
) -> iothub_client::ClientEvent {
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("client event in time")
        .expect("event stream open")
}
