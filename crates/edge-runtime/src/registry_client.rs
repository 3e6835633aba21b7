//! The device-scoped registry client: the edge device's own key signs calls to its own module
//! identities in the hub (`/devices/{id}/modules[/{m}]`), so the runtime never needs a shared
//! access policy.

use std::time::Duration;

use bytes::Bytes;
use edge_scope::ScopeError;
use edge_scope::https::HubEndpoint;
use hyper::{Method, StatusCode};
use iothub_auth::{HostName, SymmetricKey};
use iothub_types::{DeviceId, ModuleId};
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};

use crate::identities::{EDGE_MANAGED_BY, ModuleIdentityRecord};

/// The api-version sent, as the service SDK does.
const API_VERSION: &str = "2021-04-12";
/// How long connecting, the TLS handshake and the answer may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The hub could not be reached (connect, TLS, timeout, broken connection).
    #[error("cannot reach the hub at {address}: {message}")]
    Unreachable { address: String, message: String },
    /// The hub answered with an error status.
    #[error("the hub refused {what}: {status} {message}")]
    Refused {
        what: String,
        status: StatusCode,
        message: String,
    },
    /// The hub answered something that is not what the API promises.
    #[error("the hub answered {what} with an unexpected body: {message}")]
    InvalidAnswer { what: String, message: String },
    #[error("the TLS configuration cannot be built: {0}")]
    Tls(String),
}

impl RegistryError {
    /// Whether the hub was simply not reachable (the runtime then keeps using what it knows).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RegistryError::Unreachable { .. })
    }
}

/// Calls the hub's registry as the edge device. Cheap to clone.
#[derive(Clone)]
pub struct DeviceRegistryClient {
    host: HostName,
    device_id: DeviceId,
    key: SymmetricKey,
    endpoint: HubEndpoint,
}

/// An answer with its body read.
struct Answer {
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl DeviceRegistryClient {
    pub fn new(
        host: HostName,
        https_port: u16,
        device_id: DeviceId,
        key: SymmetricKey,
        trusted_roots: &[CertificateDer<'static>],
    ) -> Result<DeviceRegistryClient, RegistryError> {
        let endpoint = HubEndpoint::new(host.clone(), host.as_str(), https_port, trusted_roots)
            .map_err(|error| RegistryError::Tls(error.to_string()))?
            .with_timeout(CALL_TIMEOUT);
        Ok(DeviceRegistryClient {
            host,
            device_id,
            key,
            endpoint,
        })
    }

    fn modules_path(&self) -> String {
        format!(
            "/devices/{}/modules",
            iothub_auth::quote_nothing_safe(self.device_id.as_str())
        )
    }

    fn module_path(&self, module_id: &ModuleId) -> String {
        format!(
            "{}/{}",
            self.modules_path(),
            iothub_auth::quote_nothing_safe(module_id.as_str())
        )
    }

    /// `GET /devices/{id}`: the edge device itself.
    pub async fn get_device(&self) -> Result<Value, RegistryError> {
        let path = format!(
            "/devices/{}",
            iothub_auth::quote_nothing_safe(self.device_id.as_str())
        );
        let answer = self
            .call(Method::GET, &path, None, "reading the device")
            .await?;
        parse_json(&answer.body, "reading the device")
    }

    /// The hub's `Date` header of a device read, for the clock check.
    pub async fn server_date(&self) -> Result<Option<String>, RegistryError> {
        let path = format!(
            "/devices/{}",
            iothub_auth::quote_nothing_safe(self.device_id.as_str())
        );
        let answer = self
            .call(Method::GET, &path, None, "reading the device")
            .await?;
        Ok(answer
            .headers
            .get("date")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned))
    }

    /// `GET /devices/{id}/modules`: every module identity, keys included.
    pub async fn list_modules(&self) -> Result<Vec<ModuleIdentityRecord>, RegistryError> {
        let what = "listing the module identities";
        let answer = self
            .call(Method::GET, &self.modules_path(), None, what)
            .await?;
        let value = parse_json(&answer.body, what)?;
        let items = value
            .as_array()
            .ok_or_else(|| RegistryError::InvalidAnswer {
                what: what.to_owned(),
                message: "not a JSON array".to_owned(),
            })?;
        Ok(items
            .iter()
            .filter_map(ModuleIdentityRecord::from_registry_json)
            .collect())
    }

    /// `GET /devices/{id}/modules/{m}`.
    pub async fn get_module(
        &self,
        module_id: &ModuleId,
    ) -> Result<ModuleIdentityRecord, RegistryError> {
        let what = format!("reading module identity {module_id}");
        let answer = self
            .call(Method::GET, &self.module_path(module_id), None, &what)
            .await?;
        record_from(&answer.body, &what)
    }

    /// `PUT /devices/{id}/modules/{m}` without `If-Match`: creates the module identity with
    /// generated SAS keys and `managedBy` = [`EDGE_MANAGED_BY`].
    pub async fn create_module(
        &self,
        module_id: &ModuleId,
    ) -> Result<ModuleIdentityRecord, RegistryError> {
        let what = format!("creating module identity {module_id}");
        let body = json!({
            "moduleId": module_id.as_str(),
            "deviceId": self.device_id.as_str(),
            "managedBy": EDGE_MANAGED_BY,
            "authentication": {"type": "sas", "symmetricKey": {}},
        });
        let answer = self
            .call(Method::PUT, &self.module_path(module_id), Some(body), &what)
            .await?;
        record_from(&answer.body, &what)
    }

    /// `DELETE /devices/{id}/modules/{m}`; a module that is already gone is not an error.
    pub async fn delete_module(&self, module_id: &ModuleId) -> Result<(), RegistryError> {
        let what = format!("deleting module identity {module_id}");
        match self
            .call(Method::DELETE, &self.module_path(module_id), None, &what)
            .await
        {
            Ok(_) => Ok(()),
            Err(RegistryError::Refused {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<Answer, RegistryError> {
        let token = edge_scope::https::device_token(&self.host, &self.device_id, &self.key);
        let answer = self
            .endpoint
            .call(
                method,
                &format!("{path}?api-version={API_VERSION}"),
                &token,
                body.map(|json| json.to_string().into_bytes()),
            )
            .await
            .map_err(|error| match error {
                ScopeError::Unreachable { address, message } => {
                    RegistryError::Unreachable { address, message }
                }
                ScopeError::Tls(message) => RegistryError::Tls(message),
                other => RegistryError::InvalidAnswer {
                    what: what.to_owned(),
                    message: other.to_string(),
                },
            })?;
        if !answer.is_success() {
            return Err(RegistryError::Refused {
                what: what.to_owned(),
                status: StatusCode::from_u16(answer.status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                message: answer.error_message(),
            });
        }
        Ok(Answer {
            headers: answer.headers,
            body: answer.body,
        })
    }
}

impl std::fmt::Debug for DeviceRegistryClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DeviceRegistryClient")
            .field("address", &self.endpoint.address())
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

fn parse_json(body: &[u8], what: &str) -> Result<Value, RegistryError> {
    serde_json::from_slice(body).map_err(|error| RegistryError::InvalidAnswer {
        what: what.to_owned(),
        message: error.to_string(),
    })
}

fn record_from(body: &[u8], what: &str) -> Result<ModuleIdentityRecord, RegistryError> {
    let value = parse_json(body, what)?;
    ModuleIdentityRecord::from_registry_json(&value).ok_or_else(|| RegistryError::InvalidAnswer {
        what: what.to_owned(),
        message: "no moduleId".to_owned(),
    })
}
