//! The webhook delivery task: one JSON `POST` per message over plain HTTP/1.1, with retries,
//! capped exponential back-off and dead-letter counting.
//!
//! The client is hyper's low-level `client::conn::http1` over a `TcpStream`; one connection is
//! kept open and reused while the server keeps it alive. `https` URLs are refused at
//! configuration time: TLS to webhooks is out of scope for now.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::config::WebhookEndpoint;
use crate::names::EndpointName;
use crate::record::encode_endpoint_record;
use crate::router::RoutedMessage;
use crate::stats::EndpointCounters;

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AttemptOutcome {
    Delivered,
    /// Worth another try: connection failure, timeout, 408, 429 or 5xx.
    Retryable(String),
    /// Another try would fail the same way: other 3xx and 4xx answers.
    Permanent(String),
}

fn classify(status: StatusCode) -> AttemptOutcome {
    if status.is_success() {
        AttemptOutcome::Delivered
    } else if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        AttemptOutcome::Retryable(format!("the webhook answered {status}"))
    } else {
        AttemptOutcome::Permanent(format!("the webhook answered {status}"))
    }
}

/// One webhook's HTTP client, holding at most one open connection.
struct WebhookClient {
    endpoint: WebhookEndpoint,
    connection: Option<SendRequest<Full<Bytes>>>,
}

impl WebhookClient {
    fn new(endpoint: WebhookEndpoint) -> WebhookClient {
        WebhookClient {
            endpoint,
            connection: None,
        }
    }

    async fn attempt(&mut self, body: Bytes) -> AttemptOutcome {
        let timeout = self.endpoint.retry.attempt_timeout;
        match tokio::time::timeout(timeout, self.post(body)).await {
            Ok(Ok(status)) => classify(status),
            Ok(Err(reason)) => {
                self.connection = None;
                AttemptOutcome::Retryable(reason)
            }
            Err(_) => {
                self.connection = None;
                AttemptOutcome::Retryable(format!("no answer within {} ms", timeout.as_millis()))
            }
        }
    }

    async fn post(&mut self, body: Bytes) -> Result<StatusCode, String> {
        let mut sender = match self.connection.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        sender
            .ready()
            .await
            .map_err(|error| format!("connection closed: {error}"))?;
        let url = &self.endpoint.url;
        let mut builder = Request::post(url.path_and_query())
            .header(HOST, url.authority())
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in &self.endpoint.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|error| format!("cannot build the request: {error}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| format!("request failed: {error}"))?;
        let status = response.status();
        // Read the answer to its end, discarding it, so the connection can carry the next
        // request; the attempt timeout bounds a server that never stops sending.
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            frame.map_err(|error| format!("reading the answer failed: {error}"))?;
        }
        self.connection = Some(sender);
        Ok(status)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let url = &self.endpoint.url;
        let stream = TcpStream::connect((url.host(), url.port()))
            .await
            .map_err(|error| format!("cannot connect to {}: {error}", url.authority()))?;
        // Nagle's algorithm only delays small requests; failure to disable it is harmless.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| format!("HTTP handshake failed: {error}"))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "webhook connection ended");
            }
        });
        Ok(sender)
    }
}

/// Delivers every message from `queue` to the webhook until the queue closes (every sender
/// dropped) and is drained.
pub(crate) async fn run_webhook_worker(
    name: EndpointName,
    endpoint: WebhookEndpoint,
    mut queue: mpsc::Receiver<Arc<RoutedMessage>>,
    counters: Arc<EndpointCounters>,
) {
    let policy = endpoint.retry;
    let mut client = WebhookClient::new(endpoint);
    while let Some(routed) = queue.recv().await {
        let body = Bytes::from(encode_endpoint_record(&routed.message));
        let mut attempt = 1;
        loop {
            match client.attempt(body.clone()).await {
                AttemptOutcome::Delivered => {
                    counters.add_delivered(1);
                    break;
                }
                AttemptOutcome::Retryable(reason) if attempt < policy.max_attempts => {
                    tracing::debug!(endpoint = %name, attempt, %reason, "webhook attempt failed, retrying");
                    counters.add_retry();
                    counters.set_last_error(reason);
                    tokio::time::sleep(policy.backoff_after(attempt)).await;
                    attempt += 1;
                }
                AttemptOutcome::Retryable(reason) | AttemptOutcome::Permanent(reason) => {
                    tracing::warn!(
                        endpoint = %name,
                        attempts = attempt,
                        message_id = routed.message.system.message_id.as_deref().unwrap_or(""),
                        %reason,
                        "dead-lettering message"
                    );
                    counters.add_dead_lettered(1, reason);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn status_classification() {
        let rendered: Vec<String> = [200, 204, 301, 400, 404, 408, 429, 500, 503]
            .into_iter()
            .map(|code| {
                let status = StatusCode::from_u16(code).unwrap();
                format!("{code} {:?}", classify(status))
            })
            .collect();
        expect![[r#"
            200 Delivered
            204 Delivered
            301 Permanent("the webhook answered 301 Moved Permanently")
            400 Permanent("the webhook answered 400 Bad Request")
            404 Permanent("the webhook answered 404 Not Found")
            408 Retryable("the webhook answered 408 Request Timeout")
            429 Retryable("the webhook answered 429 Too Many Requests")
            500 Retryable("the webhook answered 500 Internal Server Error")
            503 Retryable("the webhook answered 503 Service Unavailable")"#]]
        .assert_eq(&rendered.join("\n"));
    }
}
