//! A small HTTPS client for the hub's service REST API, used by the management commands.
//!
//! One TLS connection per client, HTTP/1.1, a fresh service SAS token on every request (as the official
//! service SDK does). The CA comes from `--ca-file`; nothing else is trusted.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use iothub_auth::{ResourceScope, SasToken, SasTokenStyle, ServiceConnectionString};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

/// The api-version the official service SDK sends.
pub const API_VERSION: &str = "2021-04-12";
/// How long a service token the CLI signs stays valid.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// How long connecting may take before the command gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Talks to one hub with one shared access policy.
pub struct ServiceClient {
    connection_string: ServiceConnectionString,
    tls: tokio_rustls::TlsConnector,
    /// `host:port` to dial; the port defaults to 443 as in the service SDK.
    authority: String,
    host: String,
}

/// A response whose body has been read in full.
pub struct FullResponse {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl FullResponse {
    /// The body parsed as JSON, or an error naming the status and the body text.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        if self.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body)
            .with_context(|| format!("hub answered {} with a body that is not JSON", self.status))
    }

    /// Fails with the hub's own error message unless the status is a success.
    pub fn success(self) -> anyhow::Result<FullResponse> {
        if self.status.is_success() {
            return Ok(self);
        }
        let text = String::from_utf8_lossy(&self.body);
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|value| {
                value
                    .get("Message")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| text.into_owned());
        bail!("hub refused the request: {} {}", self.status, message)
    }
}

impl ServiceClient {
    /// Builds a client from a service connection string and the hub CA in PEM.
    pub fn new(connection_string: &str, ca_pem: &str) -> anyhow::Result<ServiceClient> {
        let connection_string = ServiceConnectionString::parse(connection_string)
            .context("the hub connection string is not a service policy connection string (HostName=...;SharedAccessKeyName=...;SharedAccessKey=...)")?;
        let roots = tls::certificates_from_pem(ca_pem.as_bytes(), "the CA file")
            .context("the CA file holds no usable PEM certificate")?;
        let config = tls::client_config(&roots)
            .context("cannot build a TLS client configuration from the CA file")?;
        let authority = connection_string.host_name().as_str().to_owned();
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(host, _)| host)
            .to_owned();
        let authority = if authority.contains(':') {
            authority
        } else {
            format!("{authority}:443")
        };
        Ok(ServiceClient {
            connection_string,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            authority,
            host,
        })
    }

    fn token(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let expiry = (now + TOKEN_LIFETIME).as_secs();
        let scope = ResourceScope::hub(self.connection_string.host_name().clone());
        SasToken::sign(
            SasTokenStyle::ServiceSdkRest,
            &scope,
            self.connection_string.key(),
            Some(self.connection_string.key_name()),
            expiry,
        )
        .to_string()
    }

    /// Sends one request with a JSON body (or none) and returns the response with its body still streaming.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<serde_json::Value>,
        extra_headers: &[(&str, String)],
    ) -> anyhow::Result<Response<Incoming>> {
        match body {
            Some(json) => {
                let mut headers = extra_headers.to_vec();
                headers.push(("content-type", "application/json; charset=utf-8".to_owned()));
                self.send_bytes(
                    method,
                    path_and_query,
                    Bytes::from(serde_json::to_vec(&json)?),
                    &headers,
                )
                .await
            }
            None => {
                self.send_bytes(method, path_and_query, Bytes::new(), extra_headers)
                    .await
            }
        }
    }

    /// Sends one request with a raw body.
    pub async fn send_bytes(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        extra_headers: &[(&str, String)],
    ) -> anyhow::Result<Response<Incoming>> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| anyhow!("timed out connecting to the hub at {}", self.authority))?
            .with_context(|| format!("cannot connect to the hub at {}", self.authority))?;
        let server_name = ServerName::try_from(self.host.clone())
            .map_err(|_| anyhow!("`{}` is not a valid TLS server name", self.host))?;
        let tls = self.tls.connect(server_name, tcp).await.with_context(|| {
            format!(
                "TLS handshake with {} failed; is --ca-file the hub's CA (DATA_DIR/ca.pem)?",
                self.authority
            )
        })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(connection);

        let separator = if path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        let uri = format!("{path_and_query}{separator}api-version={API_VERSION}");
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", self.connection_string.host_name().as_str())
            .header("authorization", self.token())
            .header("accept", "application/json");
        for (name, value) in extra_headers {
            request = request.header(*name, value);
        }
        let response = sender
            .send_request(request.body(Full::new(body))?)
            .await
            .context("the hub closed the connection")?;
        Ok(response)
    }

    /// Sends one request with a raw body and reads the whole response.
    pub async fn call_raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        extra_headers: &[(&str, String)],
    ) -> anyhow::Result<FullResponse> {
        read_full(
            self.send_bytes(method, path_and_query, body, extra_headers)
                .await?,
        )
        .await
    }

    /// Sends one request and reads the whole response.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<serde_json::Value>,
        extra_headers: &[(&str, String)],
    ) -> anyhow::Result<FullResponse> {
        read_full(
            self.send(method, path_and_query, body, extra_headers)
                .await?,
        )
        .await
    }
}

async fn read_full(response: Response<Incoming>) -> anyhow::Result<FullResponse> {
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .context("reading the hub's answer")?
        .to_bytes();
    Ok(FullResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Percent-encodes one path segment with nothing safe, as the service SDK does.
pub fn segment(text: &str) -> String {
    iothub_auth::quote_nothing_safe(text)
}
