//! A throwaway hub for trying real device SDKs against the front end on this machine.
//!
//! It creates a CA and a `localhost` server certificate, writes the CA to `<dir>/ca.pem`, serves
//! MQTT over TLS on `127.0.0.1:8883` and MQTT over WebSocket on `https://127.0.0.1:443`, accepts
//! any identity that presents any password, and plays a fixed script: when a client subscribes to
//! method requests it receives a `reboot` request, when it subscribes to cloud-to-device messages
//! it receives one, and when it subscribes to desired properties it receives a patch. Everything
//! the backend sees is printed.
//!
//! Run: `cargo run -p mqtt-frontend --example loopback_hub -- /tmp/hub`

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use bytes::Bytes;
use iothub_topics::ClientSubscription;
use iothub_types::Message;
use mqtt_frontend::{
    AuthMethod, AuthScope, Backend, ConnectRefusal, ConnectRequest, CredentialType, DeliveryTag,
    Disconnection, Frontend, FrontendConfig, MethodResponse, Principal, SessionInfo, Sessions,
    TelemetryError, TwinReply, WEBSOCKET_PATH,
};
use tls::tokio_rustls::{TlsAcceptor, server::TlsStream};
use tls::{
    CertificateAuthority, CertificateValidity, ClientCertificates, FileAccess,
    ReloadableCertificateResolver, ServerCertificateRequest,
};
use tokio::net::{TcpListener, TcpStream};

struct ScriptedBackend {
    sessions: Sessions,
    reported_version: AtomicU64,
}

impl Backend for ScriptedBackend {
    async fn authenticate(&self, request: &ConnectRequest) -> Result<Principal, ConnectRefusal> {
        println!(
            "authenticate {} username={:?} certificate={:?} transport={:?}",
            request.identity, request.username, request.client_certificate, request.transport
        );
        if request.password.is_none() && request.client_certificate.is_none() {
            return Err(ConnectRefusal::BadUserNameOrPassword);
        }
        Ok(Principal {
            identity: request.identity.clone(),
            auth_method: AuthMethod {
                scope: if request.identity.is_module() {
                    AuthScope::Module
                } else {
                    AuthScope::Device
                },
                credential: CredentialType::Sas,
            },
            generation_id: None,
        })
    }

    async fn connected(&self, session: &SessionInfo) {
        println!("connected {session:?}");
    }

    async fn disconnected(&self, session: &SessionInfo, disconnection: Disconnection) {
        println!(
            "disconnected {} {disconnection:?}",
            session.principal.identity
        );
    }

    async fn subscriptions_changed(
        &self,
        session: &SessionInfo,
        subscriptions: &[ClientSubscription],
    ) {
        println!(
            "subscriptions of {}: {subscriptions:?}",
            session.principal.identity
        );
        let identity = &session.principal.identity;
        for subscription in subscriptions {
            let result = match subscription {
                ClientSubscription::MethodRequests => {
                    self.sessions
                        .send_method_request(
                            identity,
                            "reboot",
                            "7",
                            Bytes::from_static(b"{\"delay\":3}"),
                        )
                        .await
                }
                ClientSubscription::CloudToDevice { device } => {
                    let mut message = Message::new("hello device")
                        .with_application_property("prop1", Some("v 1"));
                    message.system.message_id = Some("m-1".to_owned());
                    self.sessions
                        .send_cloud_to_device(device, &message, DeliveryTag(1))
                        .await
                }
                ClientSubscription::DesiredPropertiesPatches => {
                    self.sessions
                        .send_desired_properties_patch(
                            identity,
                            6,
                            Bytes::from_static(b"{\"fan\":\"off\",\"$version\":6}"),
                        )
                        .await
                }
                _ => Ok(()),
            };
            println!("push for {subscription:?}: {result:?}");
        }
    }

    async fn telemetry(
        &self,
        principal: &Principal,
        message: Message,
    ) -> Result<(), TelemetryError> {
        println!("telemetry from {}: {message:?}", principal.identity);
        Ok(())
    }

    async fn twin_get(&self, principal: &Principal) -> TwinReply {
        println!("twin GET from {}", principal.identity);
        let version = self.reported_version.load(Ordering::Relaxed);
        TwinReply {
            status: 200,
            version: None,
            body: Bytes::from(format!(
                r#"{{"desired":{{"fan":"on","$version":5}},"reported":{{"$version":{version}}}}}"#
            )),
        }
    }

    async fn twin_patch_reported(
        &self,
        principal: &Principal,
        patch: Bytes,
        expected_version: Option<u64>,
    ) -> TwinReply {
        println!(
            "reported PATCH from {}: {} (expected version {expected_version:?})",
            principal.identity,
            String::from_utf8_lossy(&patch)
        );
        let version = self.reported_version.fetch_add(1, Ordering::Relaxed) + 1;
        TwinReply {
            status: 204,
            version: Some(version),
            body: Bytes::new(),
        }
    }

    async fn method_response(&self, principal: &Principal, response: MethodResponse) {
        println!("method response from {}: {response:?}", principal.identity);
    }

    async fn delivery_acknowledged(&self, principal: &Principal, tag: DeliveryTag) {
        println!("delivery {tag:?} acknowledged by {}", principal.identity);
    }
}

/// An axum listener that completes the TLS handshake before handing the stream to axum.
struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((socket, address)) = self.listener.accept().await else {
                continue;
            };
            match self.acceptor.accept(socket).await {
                Ok(stream) => return (stream, address),
                Err(error) => println!("HTTPS handshake with {address} failed: {error}"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

async fn mqtt_over_websocket(
    State(frontend): State<Frontend<ScriptedBackend>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    frontend.upgrade_websocket(upgrade, None, None)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let directory = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "outpost-loopback".to_owned()),
    );
    std::fs::create_dir_all(&directory)?;
    let ca = CertificateAuthority::generate(
        "Outpost loopback CA",
        CertificateValidity::days_from_now(30),
    )?;
    tls::write_pem_file(
        &directory.join("ca.pem"),
        &ca.certificate_pem(),
        FileAccess::WorldReadable,
    )?;
    let server_certificate = ca.issue_server_certificate(&ServerCertificateRequest {
        common_name: "localhost".to_owned(),
        dns_names: vec!["localhost".to_owned()],
        ip_addresses: vec![[127, 0, 0, 1].into()],
        validity: CertificateValidity::days_from_now(30),
    })?;
    let resolver = Arc::new(ReloadableCertificateResolver::new(&server_certificate)?);
    let mqtt_tls = Arc::new(tls::server_config(
        resolver.clone(),
        ClientCertificates::AcceptAnyOptional,
    )?);
    let mut https_tls = tls::server_config(resolver, ClientCertificates::AcceptAnyOptional)?;
    https_tls.alpn_protocols = vec![b"http/1.1".to_vec()];

    let config = FrontendConfig::default();
    let sessions = Sessions::spawn(config.registry_queue_capacity);
    let backend = Arc::new(ScriptedBackend {
        sessions: sessions.clone(),
        reported_version: AtomicU64::new(1),
    });
    let frontend = Frontend::new(backend, sessions, config);

    let mqtt_listener = TcpListener::bind("127.0.0.1:8883").await?;
    let https_listener = TlsListener {
        listener: TcpListener::bind("127.0.0.1:443").await?,
        acceptor: TlsAcceptor::from(Arc::new(https_tls)),
    };
    println!("CA written to {}", directory.join("ca.pem").display());
    println!("MQTT/TLS on 127.0.0.1:8883, MQTT/WebSocket on https://127.0.0.1:443{WEBSOCKET_PATH}");
    let router = axum::Router::new()
        .route(WEBSOCKET_PATH, axum::routing::get(mqtt_over_websocket))
        .with_state(frontend.clone());
    tokio::select! {
        () = frontend.serve_tls(mqtt_listener, mqtt_tls) => {}
        result = axum::serve(https_listener, router) => result?,
    }
    Ok(())
}
