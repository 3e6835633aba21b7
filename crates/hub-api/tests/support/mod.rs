//! Shared fixtures: a hub in a temporary directory behind the service API router, SAS tokens for
//! every kind of caller, and one in-process request at a time.

#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use expect_test::Expect;
use http_body_util::BodyExt;
use hub_core::{Authentication, Hub, HubOptions, IdentitySpec};
use iothub_auth::{HostName, PolicyName, ResourceScope, SasToken, SasTokenStyle, SymmetricKey};
use iothub_types::{DeviceId, Identity, ModuleId};
use serde_json::Value;
use tower_service::Service;

/// The hub's host name.
pub const HOST: &str = "localhost";

/// Who signs a request.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// No `Authorization` header.
    Nobody,
    /// A shared access policy (service SDK spelling, hub-scoped, with `skn`).
    Policy(&'a str),
    /// An identity (`device` or `device/module`) with its own primary key, scoped to itself,
    /// without `skn`.
    Own(&'a str),
    /// An identity's token signed with a random key.
    Forged(&'a str),
}

/// `device` or `device/module` as an identity.
pub fn identity(text: &str) -> Identity {
    match text.split_once('/') {
        None => Identity::device(DeviceId::new(text).expect("device id")),
        Some((device, module)) => Identity::module(
            DeviceId::new(device).expect("device id"),
            ModuleId::new(module).expect("module id"),
        ),
    }
}

/// A unix time an hour from now: tokens go through the hub's real clock.
fn expiry() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp() + 3600).expect("time")
}

/// A hub (SQLite and telemetry log in a temporary directory) and its service API router.
pub struct Api {
    _directory: tempfile::TempDir,
    /// The hub behind the router.
    pub hub: Arc<Hub>,
    /// The service API, without MQTT over WebSocket.
    pub router: Router,
}

impl Api {
    /// A fresh hub named [`HOST`] with its default policies.
    pub async fn new() -> Api {
        let directory = tempfile::tempdir().expect("temporary directory");
        let hub = Hub::open(directory.path(), HOST, HubOptions::default())
            .await
            .expect("hub");
        let router = hub_api::router(hub.clone(), None);
        Api {
            _directory: directory,
            hub,
            router,
        }
    }

    /// Creates `name` (`device` or `device/module`) straight in the hub.
    pub async fn create(&self, name: &str, spec: IdentitySpec) {
        self.hub
            .put_identity(&identity(name), spec, None)
            .await
            .expect("create identity");
    }

    /// The primary key of a symmetric-key identity.
    pub async fn key(&self, name: &str) -> SymmetricKey {
        let view = self
            .hub
            .get_identity(&identity(name))
            .await
            .expect("identity");
        let Authentication::Sas { primary_key, .. } = view.record.authentication else {
            panic!("{name} has no symmetric keys");
        };
        SymmetricKey::from_base64(&primary_key).expect("key")
    }

    /// A hub-scoped token of `policy` for `resource` (the host, with a port when the service SDK
    /// signs one).
    pub fn policy_token(&self, policy: &str, resource: &str) -> String {
        let record = self.hub.policy(policy).expect("policy");
        let key = SymmetricKey::from_base64(&record.primary_key).expect("key");
        let scope = ResourceScope::parse_resource_uri(resource).expect("scope");
        let name = PolicyName::new(policy).expect("name");
        SasToken::sign(
            SasTokenStyle::ServiceSdkRest,
            &scope,
            &key,
            Some(&name),
            expiry(),
        )
        .to_string()
    }

    /// The `Authorization` header `caller` sends, if any.
    pub async fn token(&self, caller: Caller<'_>) -> Option<String> {
        match caller {
            Caller::Nobody => None,
            Caller::Policy(policy) => Some(self.policy_token(policy, HOST)),
            Caller::Own(name) | Caller::Forged(name) => {
                let key = match caller {
                    Caller::Own(_) => self.key(name).await,
                    _ => SymmetricKey::generate_random(),
                };
                let host = HostName::new(HOST).expect("host");
                let scope = ResourceScope::for_identity(host, &identity(name));
                Some(
                    SasToken::sign(SasTokenStyle::DeviceSdk, &scope, &key, None, expiry())
                        .to_string(),
                )
            }
        }
    }

    /// Runs one request through the router: status, headers and the whole body.
    pub async fn call(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let response = self.router.clone().call(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, headers, body)
    }

    /// Like [`Api::call`], the body as JSON (`null` when it is not).
    pub async fn call_json(&self, request: Request<Body>) -> (StatusCode, Value) {
        let (status, _, body) = self.call(request).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

/// Compares snapshot lines with `expected`.
pub fn check(lines: Vec<String>, expected: Expect) {
    expected.assert_eq(&lines.join("\n"));
}

/// The error code of an IoT Hub error body (`"Message": "ErrorCode:<Name>;<text>"`).
pub fn error_code(value: &Value) -> String {
    value["Message"]
        .as_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned()
}
