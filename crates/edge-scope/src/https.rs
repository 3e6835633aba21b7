//! One HTTPS request to the hub as the edge device: dial one address, verify the hub's
//! certificate for its host name, send one request on a fresh HTTP/1.1 connection, read a bounded
//! answer, all under one timeout. [`ScopeClient`](crate::ScopeClient) uses it; so can any other
//! device-signed call of the edge runtime (the module identity sync in `edge-runtime` does the
//! same thing and can move onto it).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{HeaderMap, Method, Request};
use hyper_util::rt::TokioIo;
use iothub_auth::{HostName, ResourceScope, SasToken, SasTokenStyle, SymmetricKey};
use iothub_types::DeviceId;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use crate::error::ScopeError;

/// How long a call may take by default: connecting, the TLS handshake and the whole answer.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer body read.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
/// How long a token from [`device_token`] stays valid.
pub const DEVICE_TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// Where hub calls go, and how the hub is recognised. Cheap to clone.
#[derive(Clone)]
pub struct HubEndpoint {
    host: HostName,
    address: String,
    timeout: Duration,
    tls: tokio_rustls::TlsConnector,
}

/// A hub answer, any status.
#[derive(Debug, Clone)]
pub struct HubAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body (at most [`MAX_ANSWER_BYTES`]).
    pub body: Bytes,
}

impl HubAnswer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The hub's error text: `Message` of an IoT Hub error body, else the body as text.
    pub fn error_message(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|value| value.get("Message")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| text.into_owned())
    }
}

impl HubEndpoint {
    /// Calls go to `dial_address:https_port` (a host name or an IP address); the server must
    /// present a certificate for `host`, chaining to one of `trusted_roots`. `host` is also the
    /// `Host` header.
    pub fn new(
        host: HostName,
        dial_address: &str,
        https_port: u16,
        trusted_roots: &[CertificateDer<'static>],
    ) -> Result<HubEndpoint, ScopeError> {
        let config = tls::client_config(trusted_roots)
            .map_err(|error| ScopeError::Tls(error.to_string()))?;
        let address = if dial_address.contains(':') && !dial_address.starts_with('[') {
            format!("[{dial_address}]:{https_port}")
        } else {
            format!("{dial_address}:{https_port}")
        };
        Ok(HubEndpoint {
            host,
            address,
            timeout: DEFAULT_CALL_TIMEOUT,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// The same endpoint with another time limit per call.
    pub fn with_timeout(mut self, timeout: Duration) -> HubEndpoint {
        self.timeout = timeout;
        self
    }

    /// The hub's host name.
    pub fn host(&self) -> &HostName {
        &self.host
    }

    /// The `host:port` dialled.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends one request with `authorization` and, when given, a JSON `body`. Connect, TLS and
    /// transport failures and the timeout are [`ScopeError::Unreachable`]; an answer of any
    /// status is returned; an answer over [`MAX_ANSWER_BYTES`] is
    /// [`ScopeError::InvalidAnswer`].
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        authorization: &str,
        body: Option<Vec<u8>>,
    ) -> Result<HubAnswer, ScopeError> {
        tokio::time::timeout(
            self.timeout,
            self.call_once(method, path_and_query, authorization, body),
        )
        .await
        .map_err(|_| ScopeError::Unreachable {
            address: self.address.clone(),
            message: format!("no answer within {} s", self.timeout.as_secs()),
        })?
    }

    async fn call_once(
        &self,
        method: Method,
        path_and_query: &str,
        authorization: &str,
        body: Option<Vec<u8>>,
    ) -> Result<HubAnswer, ScopeError> {
        let unreachable = |message: String| ScopeError::Unreachable {
            address: self.address.clone(),
            message,
        };
        let tcp = TcpStream::connect(&self.address)
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let server_name = ServerName::try_from(self.host.as_str().to_owned())
            .map_err(|error| ScopeError::Tls(format!("bad server name: {error}")))?;
        let stream = self
            .tls
            .connect(server_name, tcp)
            .await
            .map_err(|error| unreachable(format!("TLS handshake failed: {error}")))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let connection = tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("host", self.host.as_str())
            .header("authorization", authorization)
            .header("accept", "application/json");
        if body.is_some() {
            request = request.header("content-type", "application/json; charset=utf-8");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|error| {
                ScopeError::InvalidAnswer(format!("cannot build the request: {error}"))
            })?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<http_body_util::LengthLimitError>() {
                    ScopeError::InvalidAnswer(format!(
                        "the answer is over {MAX_ANSWER_BYTES} bytes"
                    ))
                } else {
                    unreachable(format!("reading the answer: {error}"))
                }
            })?
            .to_bytes();
        connection.abort();
        Ok(HubAnswer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

impl std::fmt::Debug for HubEndpoint {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("HubEndpoint")
            .field("host", &self.host)
            .field("address", &self.address)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A device-SDK SAS token for `{host}/devices/{device_id}` signed with `key`, valid for
/// [`DEVICE_TOKEN_LIFETIME`] from now: how the edge device signs its own registry calls.
pub fn device_token(host: &HostName, device_id: &DeviceId, key: &SymmetricKey) -> String {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(DEVICE_TOKEN_LIFETIME)
        .as_secs();
    let scope = ResourceScope::device(host.clone(), device_id.clone());
    SasToken::sign(SasTokenStyle::DeviceSdk, &scope, key, None, expiry).to_string()
}
