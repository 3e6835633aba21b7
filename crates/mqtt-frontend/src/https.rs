//! The HTTPS listener both roles share (the hub's service API, the edge hub's method API): TLS through rustls, HTTP/1.1 through hyper (with upgrades, for MQTT over
//! WebSocket), requests through the axum router. Each connection carries a [`ConnectionInfo`]
//! request extension with the peer address and its TLS client certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::ClientCertificate;
use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tls::rustls;
use tls::tokio_rustls::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower_service::Service;

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the listener knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The peer's address.
    pub remote_address: Option<SocketAddr>,
    /// The certificate chain the client presented in the TLS handshake, if any.
    pub client_certificate: Option<ClientCertificate>,
}

/// Serves `router` over TLS on `listener` until the task is dropped. `tls_config` is the hub's
/// server configuration (build it with the `tls` crate's `server_config`, offering TLS 1.2;
/// `ClientCertificates::AcceptAnyOptional` lets X.509 devices use MQTT over WebSocket).
pub async fn serve_router(
    listener: TcpListener,
    tls_config: Arc<rustls::ServerConfig>,
    router: Router,
) {
    let acceptor = TlsAcceptor::from(tls_config);
    loop {
        let (stream, remote_address) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and similar: back off briefly instead of spinning.
                tracing::warn!(%error, "cannot accept an HTTPS connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
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
            let client_certificate = stream.get_ref().1.peer_certificates().and_then(|chain| {
                ClientCertificate::new(
                    chain
                        .iter()
                        .map(|certificate| certificate.clone().into_owned())
                        .collect(),
                )
            });
            let info = ConnectionInfo {
                remote_address: Some(remote_address),
                client_certificate,
            };
            serve_connection(stream, router, info).await;
        });
    }
}

/// Serves `router` over plain HTTP on `listener` (loopback tests and tools only; the SDKs need TLS).
pub async fn serve_plain(listener: TcpListener, router: Router) {
    loop {
        let (stream, remote_address) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let router = router.clone();
        let info = ConnectionInfo {
            remote_address: Some(remote_address),
            client_certificate: None,
        };
        tokio::spawn(serve_connection(stream, router, info));
    }
}

/// Serves HTTP/1.1 (with upgrades) on one established connection.
pub async fn serve_connection<S>(stream: S, router: Router, info: ConnectionInfo)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(info.clone());
        let mut router = router.clone();
        async move { router.call(request).await }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(error) = connection.await {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}
