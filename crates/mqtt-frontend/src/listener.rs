//! Listeners: MQTT over TLS (port 8883 by default) and plain TCP (loopback opt-out for tests and
//! benchmarks). Each accepted socket gets its own task, which also runs the TLS handshake.

use std::sync::Arc;
use std::time::Duration;

use tls::rustls;
use tls::tokio_rustls::TlsAcceptor;
use tokio::net::TcpListener;

use crate::{Backend, ClientCertificate, Frontend, Transport, TransportInfo};

/// How long the accept loop pauses after an accept error (for example, out of file descriptors),
/// so that it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

impl<B: Backend> Frontend<B> {
    /// Accepts MQTT-over-TLS connections on `listener` forever, spawning one task per
    /// connection. `server_config` should come from `tls::server_config` with
    /// `ClientCertificates::AcceptAnyOptional` so that X.509 devices can present certificates.
    /// The TLS handshake must finish within [`FrontendConfig::connect_timeout`](crate::FrontendConfig::connect_timeout).
    ///
    /// Cancel the returned future (for example by aborting its task) to stop accepting; live
    /// connections are unaffected (use [`Sessions::disconnect_everyone`](crate::Sessions::disconnect_everyone)).
    pub async fn serve_tls(&self, listener: TcpListener, server_config: Arc<rustls::ServerConfig>) {
        let acceptor = TlsAcceptor::from(server_config);
        loop {
            let (socket, remote_address) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a TLS connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let frontend = self.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // The handshake's state lives on the heap only while it runs, and the TLS stream
                // (more than a kilobyte of rustls state) is boxed, so that the task's future holds
                // pointers rather than several inline copies of it. Idle connections are many.
                let handshake = Box::pin(tokio::time::timeout(
                    frontend.config().connect_timeout,
                    async { acceptor.accept(socket).await.map(Box::new) },
                ))
                .await;
                let stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, %remote_address, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%remote_address, "TLS handshake timed out");
                        return;
                    }
                };
                let client_certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| ClientCertificate::new(chain.to_vec()));
                let transport_info = TransportInfo {
                    transport: Transport::Tls,
                    client_certificate,
                    remote_address: Some(remote_address),
                };
                frontend.serve_connection(stream, transport_info).await;
            });
        }
    }

    /// Accepts plain-TCP MQTT connections on `listener` forever. Only for loopback tests and
    /// benchmarks: there is no encryption and no client certificate.
    pub async fn serve_plain_tcp(&self, listener: TcpListener) {
        loop {
            let (socket, remote_address) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a TCP connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let frontend = self.clone();
            tokio::spawn(async move {
                let transport_info = TransportInfo {
                    transport: Transport::PlainTcp,
                    client_certificate: None,
                    remote_address: Some(remote_address),
                };
                frontend.serve_connection(socket, transport_info).await;
            });
        }
    }
}
