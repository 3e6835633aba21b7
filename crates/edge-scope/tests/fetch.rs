//! Fetching the scope from a real hub (hub-core + hub-api over TLS, in process) with the edge
//! device's key, then authenticating a child from the cache.

mod support;

use std::sync::Arc;

use edge_scope::{ScopeCache, ScopeClient, ScopeIdentity};
use hub_core::{Authentication, Hub, HubOptions, IdentitySpec, IdentityStatus};
use iothub_auth::{HostName, ResourceScope, SasToken, SasTokenStyle, SymmetricKey};
use iothub_types::{DeviceId, Identity};

const HOST: &str = "localhost";

struct RunningHub {
    _directory: tempfile::TempDir,
    hub: Arc<Hub>,
    port: u16,
    root: tls::CertificateDer<'static>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start_hub() -> RunningHub {
    let directory = tempfile::tempdir().expect("temporary directory");
    let hub = Hub::open(directory.path(), HOST, HubOptions::default())
        .await
        .expect("hub");
    let validity = tls::CertificateValidity::days_from_now(2);
    let authority = tls::CertificateAuthority::generate("test CA", validity).expect("ca");
    let certificate = authority
        .issue_server_certificate(&tls::ServerCertificateRequest {
            common_name: HOST.to_owned(),
            dns_names: vec![HOST.to_owned()],
            ip_addresses: vec![],
            validity: tls::CertificateValidity::days_from_now(2),
        })
        .expect("server certificate");
    let resolver =
        Arc::new(tls::ReloadableCertificateResolver::new(&certificate).expect("resolver"));
    let config = tls::server_config(resolver, tls::ClientCertificates::AcceptAnyOptional)
        .expect("server config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = tokio::spawn(hub_api::serve_router(
        listener,
        Arc::new(config),
        hub_api::router(hub.clone(), None),
    ));
    RunningHub {
        _directory: directory,
        hub,
        port,
        root: authority.certificate().clone(),
        server,
    }
}

fn device(text: &str) -> Identity {
    support::identity(text)
}

async fn create(hub: &Hub, name: &str, spec: IdentitySpec) -> hub_core::IdentityView {
    hub.put_identity(&device(name), spec, None)
        .await
        .expect("create")
}

fn primary_key(view: &hub_core::IdentityView) -> SymmetricKey {
    let Authentication::Sas { primary_key, .. } = &view.record.authentication else {
        panic!("no symmetric keys");
    };
    SymmetricKey::from_base64(primary_key).expect("key")
}

fn client(running: &RunningHub, port: u16, key: SymmetricKey) -> ScopeClient {
    ScopeClient::new(
        HostName::new(HOST).expect("host"),
        "127.0.0.1".to_owned(),
        port,
        DeviceId::new("edge1").expect("device id"),
        key,
        vec![running.root.clone()],
    )
    .expect("client")
}

#[tokio::test]
async fn the_edge_device_fetches_its_whole_scope_and_children_authenticate_from_the_cache() {
    let running = start_hub().await;
    let hub = &running.hub;
    let edge_spec = IdentitySpec {
        iot_edge: Some(true),
        ..IdentitySpec::default()
    };
    let edge1 = create(hub, "edge1", edge_spec.clone()).await;
    let edge2 = create(hub, "edge2", edge_spec).await;
    let child_of = |edge: &hub_core::IdentityView| IdentitySpec {
        parent_scopes: Some(vec![edge.record.device_scope.clone().expect("scope")]),
        ..IdentitySpec::default()
    };
    let mut first_child = None;
    for index in 0..250 {
        let view = create(hub, &format!("child-{index:03}"), child_of(&edge1)).await;
        first_child.get_or_insert(view);
    }
    create(hub, "stranger", child_of(&edge2)).await;
    create(
        hub,
        "sleeper",
        IdentitySpec {
            status: Some(IdentityStatus::Disabled),
            ..child_of(&edge1)
        },
    )
    .await;

    let identities = client(&running, running.port, primary_key(&edge1))
        .with_page_size(100)
        .fetch()
        .await
        .expect("fetch");
    let names: Vec<String> = identities
        .iter()
        .map(|entry| entry.identity.to_string())
        .collect();
    assert_eq!(
        identities.len(),
        250 + 2 + 2,
        "children, sleeper, edge1 and its two modules"
    );
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "every identity once");
    assert!(!names.contains(&"stranger".to_owned()));
    assert!(!names.contains(&"edge2".to_owned()));
    assert!(names.contains(&"edge1/$edgeHub".to_owned()));
    let find = |name: &str| -> &ScopeIdentity {
        identities
            .iter()
            .find(|entry| entry.identity.to_string() == name)
            .expect("in scope")
    };
    assert!(!find("sleeper").enabled);
    assert!(find("edge1").is_edge);

    // Into the cache, then a child's own token is checked offline.
    let directory = tempfile::tempdir().expect("temporary directory");
    let cache =
        ScopeCache::open(directory.path().join("scope.bin"), &primary_key(&edge1)).expect("cache");
    let diff = cache.replace_all(identities).expect("replace");
    assert_eq!(diff.added.len(), 254);
    let child = first_child.expect("a child");
    let expiry = u64::try_from(unix_now() + 3600).expect("time");
    let token = SasToken::sign(
        SasTokenStyle::DeviceSdk,
        &ResourceScope::for_identity(
            HostName::new("edge1.local").expect("host"),
            &device("child-000"),
        ),
        &primary_key(&child),
        None,
        expiry,
    )
    .to_string();
    let cached = cache.get(&device("child-000")).expect("cached child");
    cached
        .verify_sas(
            &token,
            &[HOST, "edge1.local"],
            u64::try_from(unix_now()).expect("time"),
        )
        .expect("the child authenticates from the cache");
    assert!(cache.get(&device("stranger")).is_none());
}

fn unix_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs(),
    )
    .expect("time")
}

#[tokio::test]
async fn a_refusal_and_an_unreachable_hub_are_told_apart() {
    let running = start_hub().await;
    create(
        &running.hub,
        "edge1",
        IdentitySpec {
            iot_edge: Some(true),
            ..IdentitySpec::default()
        },
    )
    .await;
    let refused = client(&running, running.port, SymmetricKey::generate_random())
        .fetch()
        .await
        .expect_err("a wrong key is refused");
    assert!(!refused.is_unreachable(), "{refused}");
    assert!(
        matches!(refused, edge_scope::ScopeError::Refused { status: 401, .. }),
        "{refused}"
    );

    // A port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let closed_port = closed.local_addr().expect("address").port();
    drop(closed);
    let unreachable = client(&running, closed_port, SymmetricKey::generate_random())
        .fetch()
        .await
        .expect_err("nobody answers");
    assert!(unreachable.is_unreachable(), "{unreachable}");
}

#[tokio::test]
async fn the_endpoint_sends_bodies_and_returns_every_status() {
    use edge_scope::https::{HubEndpoint, device_token};
    use hyper::Method;
    let running = start_hub().await;
    let edge1 = create(
        &running.hub,
        "edge1",
        IdentitySpec {
            iot_edge: Some(true),
            ..IdentitySpec::default()
        },
    )
    .await;
    let host = HostName::new(HOST).expect("host");
    let endpoint = HubEndpoint::new(
        host.clone(),
        "127.0.0.1",
        running.port,
        std::slice::from_ref(&running.root),
    )
    .expect("endpoint");
    let token = device_token(
        &host,
        &DeviceId::new("edge1").expect("id"),
        &primary_key(&edge1),
    );
    let body = br#"{"moduleId": "sensor", "authentication": {"type": "sas"}}"#.to_vec();
    let created = endpoint
        .call(
            Method::PUT,
            "/devices/edge1/modules/sensor?api-version=2021-04-12",
            &token,
            Some(body),
        )
        .await
        .expect("answer");
    assert!(
        created.is_success(),
        "{} {}",
        created.status,
        created.error_message()
    );
    let module: serde_json::Value = serde_json::from_slice(&created.body).expect("JSON");
    assert_eq!(module["moduleId"], "sensor");
    assert!(module["authentication"]["symmetricKey"]["primaryKey"].is_string());

    let refused = endpoint
        .call(
            Method::GET,
            "/devices/edge2/modules?api-version=2021-04-12",
            &token,
            None,
        )
        .await
        .expect("answer");
    assert_eq!(refused.status, 403);
    assert!(
        refused.error_message().starts_with("ErrorCode:Forbidden"),
        "{}",
        refused.error_message()
    );
}
