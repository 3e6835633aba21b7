//! Direct methods: invoking a method on a device or module and matching its response by `$rid`.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use iothub_types::Identity;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::connections::MethodRequest;
use crate::error::HubError;
use crate::hub::{Hub, lock};
use crate::registry::not_found;

/// Default `responseTimeoutInSeconds`.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Accepted `responseTimeoutInSeconds` range.
pub const RESPONSE_TIMEOUT_RANGE_SECS: std::ops::RangeInclusive<u64> = 5..=300;
/// Accepted `connectTimeoutInSeconds` range.
pub const CONNECT_TIMEOUT_RANGE_SECS: std::ops::RangeInclusive<u64> = 0..=300;

/// A direct method call as the service asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodInvocation {
    /// `methodName`.
    pub method_name: String,
    /// `payload`, any JSON.
    pub payload: Value,
    /// `responseTimeoutInSeconds` (default 30).
    pub response_timeout_secs: Option<u64>,
    /// `connectTimeoutInSeconds` (default 0: the target must be online already).
    pub connect_timeout_secs: Option<u64>,
}

/// The device's answer: `{"status": ..., "payload": ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodResult {
    /// The status the device chose.
    pub status: i64,
    /// The device's JSON payload (`null` when empty; a string when the device sent non-JSON).
    pub payload: Value,
}

struct PendingCall {
    target: Identity,
    reply: oneshot::Sender<MethodResult>,
}

/// Method calls waiting for their response, by request id.
#[derive(Default)]
pub(crate) struct PendingMethods {
    next_request_id: u64,
    calls: HashMap<String, PendingCall>,
}

/// Removes a pending call when its invocation ends for any reason (answered, timed out, cancelled).
struct PendingGuard<'a> {
    hub: &'a Hub,
    request_id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.hub.pending_methods)
            .calls
            .remove(&self.request_id);
    }
}

impl Hub {
    /// Invokes a direct method on a device or module and waits for its answer.
    ///
    /// Errors: the identity does not exist (404 `DeviceNotFound`/`ModuleNotFound`), the target is
    /// not connected and subscribed within the connect timeout (404 `DeviceNotOnline`), no answer
    /// within the response timeout (504 `GatewayTimeout`), bad timeouts or an oversized payload (400/413),
    /// too many calls pending (429).
    pub async fn invoke_method(
        &self,
        target: &Identity,
        invocation: MethodInvocation,
    ) -> Result<MethodResult, HubError> {
        if invocation.method_name.is_empty() || invocation.method_name.len() > 256 {
            return Err(HubError::InvalidArgument(
                "methodName must be 1 to 256 characters".to_owned(),
            ));
        }
        let response_timeout_secs = invocation
            .response_timeout_secs
            .unwrap_or(DEFAULT_RESPONSE_TIMEOUT.as_secs());
        if !RESPONSE_TIMEOUT_RANGE_SECS.contains(&response_timeout_secs) {
            return Err(HubError::InvalidArgument(format!(
                "responseTimeoutInSeconds must be between 5 and 300, got {response_timeout_secs}"
            )));
        }
        let connect_timeout_secs = invocation.connect_timeout_secs.unwrap_or(0);
        if !CONNECT_TIMEOUT_RANGE_SECS.contains(&connect_timeout_secs) {
            return Err(HubError::InvalidArgument(format!(
                "connectTimeoutInSeconds must be between 0 and 300, got {connect_timeout_secs}"
            )));
        }
        let payload = Bytes::from(invocation.payload.to_string());
        if payload.len() > self.limits.method_max_payload_bytes {
            return Err(HubError::TooLarge {
                what: "method payload",
                size: payload.len(),
                limit: self.limits.method_max_payload_bytes,
            });
        }
        if self
            .store
            .get_identity(&target.device, target.module.as_ref())
            .await?
            .is_none()
        {
            return Err(not_found(target));
        }
        let connections = self.connections().cloned();
        let online = self
            .wait_for_method_subscriber(target, Duration::from_secs(connect_timeout_secs))
            .await;
        let Some(connections) = connections.filter(|_| online) else {
            return Err(HubError::DeviceNotOnline {
                target: target.to_string(),
            });
        };

        let (reply, response) = oneshot::channel();
        let request_id = {
            let mut pending = lock(&self.pending_methods);
            if pending.calls.len() >= self.limits.method_max_pending_calls {
                return Err(HubError::Throttled(
                    "too many direct method calls are pending".to_owned(),
                ));
            }
            pending.next_request_id += 1;
            let request_id = format!("{:x}", pending.next_request_id);
            pending.calls.insert(
                request_id.clone(),
                PendingCall {
                    target: target.clone(),
                    reply,
                },
            );
            request_id
        };
        let _guard = PendingGuard {
            hub: self,
            request_id: request_id.clone(),
        };
        let request = MethodRequest {
            method_name: invocation.method_name.clone(),
            request_id,
            payload,
        };
        if !connections.send_method_request(target, request).await {
            return Err(HubError::DeviceNotOnline {
                target: target.to_string(),
            });
        }
        match tokio::time::timeout(Duration::from_secs(response_timeout_secs), response).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) | Err(_) => Err(HubError::MethodTimeout {
                target: target.to_string(),
                method_name: invocation.method_name,
                timeout_secs: response_timeout_secs,
            }),
        }
    }

    /// A method response from a device (`$iothub/methods/res/{status}/?$rid={rid}`). Returns
    /// `false` when no call from this identity waits for `request_id` (late, unknown or foreign).
    pub fn complete_method(
        &self,
        responder: &Identity,
        request_id: &str,
        status: i64,
        body: &[u8],
    ) -> bool {
        let call = {
            let mut pending = lock(&self.pending_methods);
            match pending.calls.get(request_id) {
                Some(call) if call.target == *responder => pending.calls.remove(request_id),
                _ => None,
            }
        };
        let Some(call) = call else { return false };
        let payload = parse_method_payload(body);
        call.reply.send(MethodResult { status, payload }).is_ok()
    }

    /// Number of method calls waiting for an answer.
    pub fn pending_method_calls(&self) -> usize {
        lock(&self.pending_methods).calls.len()
    }

    async fn wait_for_method_subscriber(
        &self,
        target: &Identity,
        connect_timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + connect_timeout;
        loop {
            let notified = self.presence_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self
                .connections()
                .is_some_and(|connections| connections.accepts_methods(target))
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

fn parse_method_payload(body: &[u8]) -> Value {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}
