//! The hub's service REST API over one keep-alive HTTPS connection: creating the benchmark's devices
//! and invoking direct methods, authorised with the owner policy as the service SDK does it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use iothub_auth::{ResourceScope, SasToken, SasTokenStyle, ServiceConnectionString, SymmetricKey};
use iothub_types::DeviceId;
use serde_json::{Value, json};

use crate::transport::{Endpoint, Security};

/// The api-version the official SDKs send.
pub const API_VERSION: &str = "2021-04-12";
/// How long the owner token signed for a benchmark stays valid.
const TOKEN_LIFETIME: Duration = Duration::from_secs(6 * 3600);
/// The most devices one bulk registry request may carry.
const BULK_LIMIT: usize = 100;

/// A device the benchmark created, with the key it authenticates with.
#[derive(Clone)]
pub struct DeviceCredential {
    pub device_id: DeviceId,
    pub key: SymmetricKey,
}

/// One HTTP/1.1 connection to the hub's HTTPS address.
pub struct ServiceConnection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    authorization: String,
}

/// A response with its whole body.
pub struct ServiceResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

impl ServiceResponse {
    fn describe(&self) -> String {
        format!("{} {}", self.status, String::from_utf8_lossy(&self.body))
    }
}

impl ServiceConnection {
    /// Connects to `https_address`, trusting `ca_pem`, as the policy in `connection_string`.
    pub async fn open(
        https_address: std::net::SocketAddr,
        ca_pem: &str,
        connection_string: &str,
    ) -> anyhow::Result<ServiceConnection> {
        let connection_string = ServiceConnectionString::parse(connection_string)
            .context("the hub's owner connection string does not parse")?;
        let host_with_port = connection_string.host_name().as_str().to_owned();
        let host = host_with_port
            .rsplit_once(':')
            .map_or(host_with_port.as_str(), |(host, _)| host)
            .to_owned();
        let endpoint = Endpoint {
            address: https_address,
            security: Security::tls_trusting(ca_pem, &host)?,
        };
        let stream = endpoint.connect().await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake with the hub failed")?;
        tokio::spawn(connection);
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + TOKEN_LIFETIME;
        let authorization = SasToken::sign(
            SasTokenStyle::ServiceSdkRest,
            &ResourceScope::hub(connection_string.host_name().clone()),
            connection_string.key(),
            Some(connection_string.key_name()),
            expiry.as_secs(),
        )
        .to_string();
        Ok(ServiceConnection {
            sender,
            host: host_with_port,
            authorization,
        })
    }

    /// Sends one request on the kept-alive connection and reads the whole answer.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<ServiceResponse> {
        let response = self.send(method, path, body).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading the hub's answer")?
            .to_bytes();
        Ok(ServiceResponse { status, body })
    }

    /// Sends one request and returns the answer with its body still streaming.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{path}{separator}api-version={API_VERSION}"))
            .header("host", &self.host)
            .header("authorization", &self.authorization)
            .header("accept", "application/json");
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json; charset=utf-8");
                Bytes::from(serde_json::to_vec(json)?)
            }
            None => Bytes::new(),
        };
        self.sender
            .ready()
            .await
            .context("the hub closed the HTTPS connection")?;
        self.sender
            .send_request(request.body(Full::new(body))?)
            .await
            .context("the hub closed the HTTPS connection")
    }

    /// Sends a request that must succeed and returns its JSON answer (`null` for an empty body).
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let response = self.request(method.clone(), path, body).await?;
        if !response.status.is_success() {
            bail!("{method} {path} failed: {}", response.describe());
        }
        if response.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&response.body)
            .with_context(|| format!("{method} {path} answered no JSON: {}", response.describe()))
    }

    /// Registers `devices` with their keys: in bulk requests of 100, or one `PUT` at a time when the hub
    /// does not take bulk requests.
    pub async fn create_devices(&mut self, devices: &[DeviceCredential]) -> anyhow::Result<()> {
        self.create_devices_in_scope(devices, None).await
    }

    /// Registers `devices` as [`ServiceConnection::create_devices`] does, as children of the edge
    /// device whose device scope is `parent_scope` when one is given.
    pub async fn create_devices_in_scope(
        &mut self,
        devices: &[DeviceCredential],
        parent_scope: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut use_bulk = true;
        for chunk in devices.chunks(BULK_LIMIT) {
            if use_bulk {
                let body = Value::Array(
                    chunk
                        .iter()
                        .map(|device| bulk_entry(device, parent_scope))
                        .collect(),
                );
                let response = self.request(Method::POST, "/devices", Some(&body)).await?;
                if response.status == StatusCode::OK {
                    let result: Value =
                        serde_json::from_slice(&response.body).unwrap_or(Value::Null);
                    if result.get("isSuccessful") == Some(&Value::Bool(false)) {
                        bail!(
                            "the hub refused the bulk device creation: {}",
                            response.describe()
                        );
                    }
                    continue;
                }
                if response.status.is_client_error()
                    && response.status != StatusCode::NOT_FOUND
                    && response.status != StatusCode::METHOD_NOT_ALLOWED
                {
                    bail!(
                        "the hub refused the bulk device creation: {}",
                        response.describe()
                    );
                }
                use_bulk = false;
            }
            for device in chunk {
                let path = format!(
                    "/devices/{}",
                    iothub_auth::quote_nothing_safe(device.device_id.as_str())
                );
                let response = self
                    .request(Method::PUT, &path, Some(&device_body(device, parent_scope)))
                    .await?;
                if !response.status.is_success() {
                    bail!(
                        "the hub refused to create device `{}`: {}",
                        device.device_id.as_str(),
                        response.describe()
                    );
                }
            }
        }
        Ok(())
    }

    /// Invokes `method_name` on a device and returns the device's status from the hub's answer.
    pub async fn invoke_method(
        &mut self,
        device_id: &DeviceId,
        body: &Value,
    ) -> anyhow::Result<i64> {
        let path = format!(
            "/twins/{}/methods",
            iothub_auth::quote_nothing_safe(device_id.as_str())
        );
        let response = self.request(Method::POST, &path, Some(body)).await?;
        if response.status != StatusCode::OK {
            bail!("the method invocation failed: {}", response.describe());
        }
        let result: Value =
            serde_json::from_slice(&response.body).context("the method result is not JSON")?;
        result
            .get("status")
            .and_then(Value::as_i64)
            .ok_or_else(|| anyhow!("the method result has no status: {}", response.describe()))
    }
}

/// A device entry of a bulk registry request (`ExportImportDevice`).
fn bulk_entry(device: &DeviceCredential, parent_scope: Option<&str>) -> Value {
    let key = device.key.to_base64();
    let mut entry = json!({
        "id": device.device_id.as_str(),
        "importMode": "create",
        "status": "enabled",
        "authentication": {"type": "sas", "symmetricKey": {"primaryKey": key, "secondaryKey": key}},
    });
    add_parent_scope(&mut entry, parent_scope);
    entry
}

/// The body of `PUT /devices/{id}` for a SAS device with a chosen key.
fn device_body(device: &DeviceCredential, parent_scope: Option<&str>) -> Value {
    let key = device.key.to_base64();
    let mut body = json!({
        "deviceId": device.device_id.as_str(),
        "status": "enabled",
        "authentication": {"type": "sas", "symmetricKey": {"primaryKey": key, "secondaryKey": key}},
        "capabilities": {"iotEdge": false},
    });
    add_parent_scope(&mut body, parent_scope);
    body
}

/// Makes a device a child of the edge device with `parent_scope`, as `outpost device create
/// --parent-scope` does.
fn add_parent_scope(body: &mut Value, parent_scope: Option<&str>) {
    if let Some(scope) = parent_scope {
        body["parentScopes"] = json!([scope]);
        body["deviceScope"] = json!(scope);
    }
}

/// `count` devices named `{prefix}{index}` sharing one fresh random key.
pub fn device_credentials(prefix: &str, count: usize) -> anyhow::Result<Vec<DeviceCredential>> {
    let key = SymmetricKey::generate_random();
    (0..count)
        .map(|index| {
            let name = format!("{prefix}{index}");
            let device_id = DeviceId::new(&name)
                .map_err(|error| anyhow!("`{name}` is not a device id: {error}"))?;
            Ok(DeviceCredential {
                device_id,
                key: key.clone(),
            })
        })
        .collect()
}

/// The MQTT user name and password of a device connecting to the hub directly, as `azure-iot-device` builds them.
pub fn device_mqtt_credentials(
    host: &str,
    device: &DeviceCredential,
) -> anyhow::Result<(String, Bytes)> {
    let token = sign_device_sdk_token(host, &device.key, |host_name| {
        ResourceScope::device(host_name, device.device_id.clone())
    })?;
    let username = format!(
        "{host}/{}/?api-version={API_VERSION}",
        device.device_id.as_str()
    );
    Ok((username, token))
}

/// A device SDK's SAS token for the resource `scope` builds on the hub `host`, valid for
/// [`TOKEN_LIFETIME`].
fn sign_device_sdk_token(
    host: &str,
    key: &SymmetricKey,
    scope: impl FnOnce(iothub_auth::HostName) -> ResourceScope,
) -> anyhow::Result<Bytes> {
    let host_name = iothub_auth::HostName::new(host)
        .map_err(|error| anyhow!("`{host}` is not a host name: {error}"))?;
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + TOKEN_LIFETIME;
    let token = SasToken::sign(
        SasTokenStyle::DeviceSdk,
        &scope(host_name),
        key,
        None,
        expiry.as_secs(),
    );
    Ok(Bytes::from(token.to_string()))
}

/// The MQTT client id, user name and password of module `module_id` of `device_id`, as
/// `IoTHubModuleClient` builds them: the user name and token name the hub `host` also when the module
/// connects through a gateway.
pub fn module_mqtt_credentials(
    host: &str,
    device_id: &DeviceId,
    module_id: &iothub_types::ModuleId,
    key: &SymmetricKey,
) -> anyhow::Result<(String, String, Bytes)> {
    let token = sign_device_sdk_token(host, key, |host_name| {
        ResourceScope::module(host_name, device_id.clone(), module_id.clone())
    })?;
    let client_id = format!("{}/{}", device_id.as_str(), module_id.as_str());
    let username = format!(
        "{host}/{}/{}/?api-version={API_VERSION}",
        device_id.as_str(),
        module_id.as_str()
    );
    Ok((client_id, username, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn request_bodies_and_credentials() {
        let device = DeviceCredential {
            device_id: DeviceId::new("bench-7").expect("valid"),
            key: SymmetricKey::from_base64("a2V5a2V5a2V5a2V5").expect("valid"),
        };
        let (username, password) =
            device_mqtt_credentials("localhost", &device).expect("credentials");
        let password = String::from_utf8(password.to_vec()).expect("text");
        let token = SasToken::parse(&password).expect("a SAS token");
        let rendered = format!(
            "{}\n{}\n{}\n{}",
            bulk_entry(&device, None),
            device_body(&device, Some("ms-azure-iot-edge://gw-1")),
            username,
            token.resource_encoded()
        );
        expect![[r#"
            {"authentication":{"symmetricKey":{"primaryKey":"a2V5a2V5a2V5a2V5","secondaryKey":"a2V5a2V5a2V5a2V5"},"type":"sas"},"id":"bench-7","importMode":"create","status":"enabled"}
            {"authentication":{"symmetricKey":{"primaryKey":"a2V5a2V5a2V5a2V5","secondaryKey":"a2V5a2V5a2V5a2V5"},"type":"sas"},"capabilities":{"iotEdge":false},"deviceId":"bench-7","deviceScope":"ms-azure-iot-edge://gw-1","parentScopes":["ms-azure-iot-edge://gw-1"],"status":"enabled"}
            localhost/bench-7/?api-version=2021-04-12
            localhost%2Fdevices%2Fbench-7"#]]
        .assert_eq(&rendered);
        assert!(token.key_name().is_none());
    }

    #[test]
    fn module_credentials_name_the_hub_and_the_module() {
        let device = DeviceId::new("edge-1").expect("valid");
        let module = iothub_types::ModuleId::new("src0").expect("valid");
        let key = SymmetricKey::from_base64("a2V5a2V5a2V5a2V5").expect("valid");
        let (client_id, username, password) =
            module_mqtt_credentials("127.0.0.41", &device, &module, &key).expect("credentials");
        let token = SasToken::parse(std::str::from_utf8(&password).expect("text")).expect("token");
        let rendered = format!("{client_id}\n{username}\n{}", token.resource_encoded());
        expect![[r#"
            edge-1/src0
            127.0.0.41/edge-1/src0/?api-version=2021-04-12
            127.0.0.41%2Fdevices%2Fedge-1%2Fmodules%2Fsrc0"#]]
        .assert_eq(&rendered);
    }

    #[test]
    fn generated_devices_share_one_key() {
        let devices = device_credentials("d", 3).expect("valid ids");
        let names: Vec<&str> = devices
            .iter()
            .map(|device| device.device_id.as_str())
            .collect();
        assert_eq!(names, ["d0", "d1", "d2"]);
        assert_eq!(devices[0].key.to_base64(), devices[2].key.to_base64());
    }
}
