//! Where a benchmark connects: a loopback socket address, plain TCP or TLS with a given trust root.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long a TCP connect plus TLS handshake may take before the benchmark gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A byte stream the MQTT and HTTP clients can run over, whatever its transport.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

/// A connected stream with its transport erased.
pub type BoxedStream = Box<dyn ByteStream>;

/// A server to dial: its address and whether it speaks TLS.
#[derive(Clone)]
pub struct Endpoint {
    pub address: SocketAddr,
    pub security: Security,
}

/// Plain TCP, or TLS verified against a private CA under a given server name.
#[derive(Clone)]
pub enum Security {
    PlainTcp,
    Tls {
        connector: TlsConnector,
        server_name: ServerName<'static>,
    },
}

impl Security {
    /// TLS trusting only the certificates in `ca_pem`, verifying the server as `server_name` (a DNS
    /// name or an IP literal that the server certificate must cover).
    pub fn tls_trusting(ca_pem: &str, server_name: &str) -> anyhow::Result<Security> {
        let roots = tls::certificates_from_pem(ca_pem.as_bytes(), "the CA file")
            .context("the CA file holds no usable certificate")?;
        let config =
            tls::client_config(&roots).context("cannot build a TLS client configuration")?;
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| anyhow!("`{server_name}` is not a valid TLS server name"))?;
        Ok(Security::Tls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// A short label for reports.
    pub fn label(&self) -> &'static str {
        match self {
            Security::PlainTcp => "tcp",
            Security::Tls { .. } => "tls",
        }
    }
}

impl Endpoint {
    /// Opens a connection, with Nagle's algorithm off (both MQTT clients of the SDKs do the same), and
    /// completes the TLS handshake when the endpoint asks for TLS.
    pub async fn connect(&self) -> anyhow::Result<BoxedStream> {
        let connecting = async {
            let tcp = TcpStream::connect(self.address)
                .await
                .with_context(|| format!("cannot connect to {}", self.address))?;
            tcp.set_nodelay(true)?;
            let stream: BoxedStream = match &self.security {
                Security::PlainTcp => Box::new(tcp),
                Security::Tls {
                    connector,
                    server_name,
                } => Box::new(
                    connector
                        .connect(server_name.clone(), tcp)
                        .await
                        .with_context(|| format!("TLS handshake with {} failed", self.address))?,
                ),
            };
            Ok(stream)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| {
                anyhow!(
                    "connecting to {} took longer than {CONNECT_TIMEOUT:?}",
                    self.address
                )
            })?
    }
}
