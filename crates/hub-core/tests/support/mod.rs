//! Shared fixtures: a hub in a temporary directory on a manual clock, a fake connection layer
//! that records what the hub pushes, and token helpers.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt::Debug;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use hub_core::{
    BoxFuture, C2dDelivery, DeviceConnections, Hub, HubError, HubOptions, ManualClock,
    MethodRequest,
};
use iothub_auth::{PolicyName, ResourceScope, SasToken, SasTokenStyle, SymmetricKey};
use iothub_types::{DeviceId, Identity, ModuleId};
use tokio::sync::mpsc;

pub const HOST: &str = "hub.example.net";

pub fn start_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("valid time")
}

pub struct Fixture {
    pub directory: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub hub: Arc<Hub>,
    pub connections: Arc<FakeConnections>,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let directory = tempfile::tempdir().expect("temporary directory");
        let clock = Arc::new(ManualClock::new(start_time()));
        let (hub, connections) = open_hub(directory.path(), &clock).await;
        Fixture {
            directory,
            clock,
            hub,
            connections,
        }
    }

    /// A hub on the in-memory store (the telemetry log still in the temporary directory), for
    /// tests on paused time: sqlx's pool timers would fire while it waits for its database thread.
    pub async fn in_memory() -> Fixture {
        let directory = tempfile::tempdir().expect("temporary directory");
        let clock = Arc::new(ManualClock::new(start_time()));
        let telemetry = hub_core::FileTelemetryLog::open(directory.path())
            .await
            .expect("telemetry log");
        let options = HubOptions {
            clock: clock.clone(),
            routing_directory: Some(directory.path().join("routing")),
            ..HubOptions::default()
        };
        let hub = Hub::with_backends(
            Arc::new(hub_core::MemoryStore::new()),
            Arc::new(telemetry),
            HOST,
            options,
        )
        .await
        .expect("hub");
        let connections = Arc::new(FakeConnections::default());
        assert!(hub.attach_connections(connections.clone()));
        Fixture {
            directory,
            clock,
            hub,
            connections,
        }
    }

    /// Closes the hub and opens a new one over the same directory, as a restart does.
    pub async fn restart(&mut self) {
        self.hub.close().await.expect("close");
        let (hub, connections) = open_hub(self.directory.path(), &self.clock).await;
        self.hub = hub;
        self.connections = connections;
    }
}

async fn open_hub(path: &Path, clock: &Arc<ManualClock>) -> (Arc<Hub>, Arc<FakeConnections>) {
    let options = HubOptions {
        clock: clock.clone(),
        ..HubOptions::default()
    };
    let hub = Hub::open(path, HOST, options).await.expect("hub opens");
    let connections = Arc::new(FakeConnections::default());
    assert!(hub.attach_connections(connections.clone()));
    (hub, connections)
}

/// Records everything the hub pushes; online identities are set by the test.
#[derive(Default)]
pub struct FakeConnections {
    pub online_for_methods: Mutex<HashSet<Identity>>,
    pub online_for_c2d: Mutex<HashSet<DeviceId>>,
    pub events: Mutex<Vec<String>>,
    pub c2d: Mutex<Vec<C2dDelivery>>,
    pub method_requests: Mutex<Option<mpsc::UnboundedSender<(Identity, MethodRequest)>>>,
    /// After this many accepted C2D deliveries the fake refuses more (a full connection queue).
    pub c2d_capacity: Mutex<Option<usize>>,
}

impl FakeConnections {
    pub fn take_events(&self) -> Vec<String> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }

    pub fn take_c2d(&self) -> Vec<C2dDelivery> {
        std::mem::take(&mut *self.c2d.lock().unwrap())
    }

    pub fn set_c2d_online(&self, device: &DeviceId, online: bool) {
        let mut set = self.online_for_c2d.lock().unwrap();
        if online {
            set.insert(device.clone());
        } else {
            set.remove(device);
        }
    }

    pub fn set_methods_online(&self, identity: &Identity, online: bool) {
        let mut set = self.online_for_methods.lock().unwrap();
        if online {
            set.insert(identity.clone());
        } else {
            set.remove(identity);
        }
    }

    pub fn method_channel(&self) -> mpsc::UnboundedReceiver<(Identity, MethodRequest)> {
        let (sender, receiver) = mpsc::unbounded_channel();
        *self.method_requests.lock().unwrap() = Some(sender);
        receiver
    }
}

impl DeviceConnections for FakeConnections {
    fn accepts_methods(&self, identity: &Identity) -> bool {
        self.online_for_methods.lock().unwrap().contains(identity)
    }

    fn send_method_request<'a>(
        &'a self,
        identity: &'a Identity,
        request: MethodRequest,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.record_method_request(identity, request) })
    }

    fn send_desired_patch<'a>(
        &'a self,
        identity: &'a Identity,
        version: u64,
        body: bytes::Bytes,
    ) -> BoxFuture<'a, ()> {
        self.events.lock().unwrap().push(format!(
            "desired {identity} v{version} {}",
            String::from_utf8_lossy(&body)
        ));
        Box::pin(async {})
    }

    fn accepts_c2d(&self, device_id: &DeviceId) -> bool {
        self.online_for_c2d.lock().unwrap().contains(device_id)
    }

    fn send_c2d(&self, delivery: C2dDelivery) -> BoxFuture<'_, bool> {
        Box::pin(async move { self.record_c2d(delivery) })
    }

    fn disconnect<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, ()> {
        self.events
            .lock()
            .unwrap()
            .push(format!("disconnect {identity}"));
        Box::pin(async {})
    }
}

impl FakeConnections {
    fn record_method_request(&self, identity: &Identity, request: MethodRequest) -> bool {
        if !self.accepts_methods(identity) {
            return false;
        }
        self.events.lock().unwrap().push(format!(
            "method {identity} {} {}",
            request.method_name,
            String::from_utf8_lossy(&request.payload)
        ));
        if let Some(sender) = &*self.method_requests.lock().unwrap() {
            let _ = sender.send((identity.clone(), request));
        }
        true
    }

    fn record_c2d(&self, delivery: C2dDelivery) -> bool {
        let mut capacity = self.c2d_capacity.lock().unwrap();
        if let Some(remaining) = capacity.as_mut() {
            if *remaining == 0 {
                return false;
            }
            *remaining -= 1;
        }
        self.c2d.lock().unwrap().push(delivery);
        true
    }
}

pub fn device(name: &str) -> DeviceId {
    DeviceId::new(name).expect("valid device id")
}

pub fn device_identity(name: &str) -> Identity {
    Identity::device(device(name))
}

pub fn module_identity(device_name: &str, module_name: &str) -> Identity {
    Identity::module(
        device(device_name),
        ModuleId::new(module_name).expect("valid module id"),
    )
}

/// A service token as `azure-iot-hub` builds it, for `host` (which may carry a port).
pub fn service_token(host: &str, policy: &str, key_base64: &str, expiry_unix_secs: u64) -> String {
    let scope = ResourceScope::parse_resource_uri(host).expect("hub scope");
    let key = SymmetricKey::from_base64(key_base64).expect("key");
    let policy = PolicyName::new(policy).expect("policy name");
    SasToken::sign(
        SasTokenStyle::ServiceSdkRest,
        &scope,
        &key,
        Some(&policy),
        expiry_unix_secs,
    )
    .to_string()
}

/// A device or module token as `azure-iot-device` builds it.
pub fn device_token(identity: &Identity, key_base64: &str, expiry_unix_secs: u64) -> String {
    let host = iothub_auth::HostName::new(HOST).expect("host");
    let scope = ResourceScope::for_identity(host, identity);
    let key = SymmetricKey::from_base64(key_base64).expect("key");
    SasToken::sign(
        SasTokenStyle::DeviceSdk,
        &scope,
        &key,
        None,
        expiry_unix_secs,
    )
    .to_string()
}

/// A device token signed with a shared access policy (`skn`).
pub fn policy_device_token(
    identity: &Identity,
    policy: &str,
    key_base64: &str,
    expiry_unix_secs: u64,
) -> String {
    let host = iothub_auth::HostName::new(HOST).expect("host");
    let scope = ResourceScope::for_identity(host, identity);
    let key = SymmetricKey::from_base64(key_base64).expect("key");
    let policy = PolicyName::new(policy).expect("policy name");
    SasToken::sign(
        SasTokenStyle::DeviceSdk,
        &scope,
        &key,
        Some(&policy),
        expiry_unix_secs,
    )
    .to_string()
}

pub fn expiry_in(seconds: i64) -> u64 {
    u64::try_from(start_time().timestamp() + seconds).expect("positive")
}

/// Renders an outcome as one line: `ok <summary>` or `error <code> <http>: <message>`.
pub fn outcome<T: Debug>(
    result: &Result<T, HubError>,
    summary: impl FnOnce(&T) -> String,
) -> String {
    match result {
        Ok(value) => format!("ok {}", summary(value)),
        Err(error) => format!(
            "error {} {}: {error}",
            error.code(),
            error.code().http_status()
        ),
    }
}
