//! The edge hub in process, with the cloud hub unreachable from the start: modules authenticate
//! against the scope cache, route to each other through the durable store, get their twins from
//! the cache, and a full store holds senders back (PUBACK withheld) instead of dropping what it
//! acknowledged. Clients are the crate's own IoT Hub MQTT client over loopback TCP.

use std::sync::Arc;
use std::time::Duration;

use edge_hub::{EdgeHub, EdgeHubSettings, UpstreamSettings};
use edge_scope::{ScopeAuth, ScopeCache, ScopeIdentity};
use edge_store::{Overflow, StoreOptions};
use iothub_auth::{HostName, SymmetricKey};
use iothub_client::{
    ClientEvent, ClientOptions, Credentials, EventStream, Feature, IotHubClient, Transport,
};
use iothub_types::{DeviceId, Identity, Message, ModuleId};
use mqtt_frontend::{Frontend, FrontendConfig, Sessions};
use serde_json::json;

const HUB: &str = "127.0.0.1";

fn key(seed: u8) -> SymmetricKey {
    SymmetricKey::from_bytes(vec![seed; 32]).expect("key")
}

fn module(name: &str) -> Identity {
    Identity::module(DeviceId::new("edge").unwrap(), ModuleId::new(name).unwrap())
}

struct Setup {
    hub: EdgeHub,
    port: u16,
    _directory: tempfile::TempDir,
}

async fn start(store_max_bytes: u64, routes: serde_json::Value) -> Setup {
    start_with_config(
        store_max_bytes,
        json!({"schemaVersion": "1.1", "routes": routes,
               "storeAndForwardConfiguration": {"timeToLiveSecs": 3600}}),
    )
    .await
}

/// Starts with `config` as the last `$edgeHub` desired properties a previous online run left.
async fn start_with_config(store_max_bytes: u64, config: serde_json::Value) -> Setup {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("edgehub");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("config.json"), config.to_string()).unwrap();
    let scope = ScopeCache::open(directory.path().join("scope.cache"), &key(9)).unwrap();
    for (name, seed) in [("src", 1), ("sink", 2), ("src2", 4)] {
        scope
            .upsert(ScopeIdentity {
                identity: module(name),
                generation_id: format!("gen-{name}"),
                enabled: true,
                auth: ScopeAuth::Sas {
                    primary: key(seed),
                    secondary: key(seed),
                },
                is_edge: false,
                parent_scopes: Vec::new(),
                device_scope: None,
            })
            .unwrap();
    }
    let settings = EdgeHubSettings {
        device_id: DeviceId::new("edge").unwrap(),
        hub_host: HUB.to_owned(),
        gateway_host: HUB.to_owned(),
        data_dir,
        cache_key: key(9),
        store: StoreOptions {
            max_bytes: store_max_bytes,
            segment_bytes: 16 * 1024,
            ..StoreOptions::default()
        },
        overflow: Overflow::RefuseNew,
        upstream: UpstreamSettings {
            hub_host: HostName::new(HUB).unwrap(),
            // Nothing listens on port 1: the cloud hub is unreachable.
            port: 1,
            trusted_roots: Vec::new(),
            edge_device: DeviceId::new("edge").unwrap(),
            edge_hub_key: key(3),
            probe_interval: Duration::from_millis(500),
            operation_timeout: Duration::from_secs(5),
        },
        scope_refresh_interval: Duration::from_secs(3600),
        scope_on_demand_interval: Duration::from_secs(10),
        message_ack_timeout: Duration::from_secs(10),
    };
    let config = FrontendConfig::default();
    let sessions = Sessions::spawn(config.registry_queue_capacity);
    let hub = EdgeHub::start(settings, sessions.clone(), scope, None)
        .await
        .unwrap();
    let frontend = Frontend::new(Arc::new(hub.clone()), sessions, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { frontend.serve_plain_tcp(listener).await });
    Setup {
        hub,
        port,
        _directory: directory,
    }
}

async fn connect(setup: &Setup, name: &str, seed: u8) -> (IotHubClient, EventStream) {
    let mut options = ClientOptions::new(
        HostName::new(HUB).unwrap(),
        module(name),
        Credentials::shared_access_key(key(seed)),
        Transport::PlainTcp,
    );
    options.port = setup.port;
    options.operation_timeout = Duration::from_secs(60);
    IotHubClient::connect(options)
        .await
        .expect("connect to the edge hub")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_route_to_each_other_and_use_cached_twins_while_the_hub_is_unreachable() {
    let setup = start(
        4 * 1024 * 1024,
        json!({
            "toSink": "FROM /messages/modules/src/outputs/out WHERE $body.n >= 5 INTO BrokeredEndpoint(\"/modules/sink/inputs/in\")",
            "twins": "FROM /twinChangeNotifications INTO BrokeredEndpoint(\"/modules/sink/inputs/twin\")"
        }),
    )
    .await;
    assert!(!setup.hub.stats().online);

    let (sink, mut events) = connect(&setup, "sink", 2).await;
    sink.enable(Feature::IncomingMessages).await.unwrap();
    let (src, _) = connect(&setup, "src", 1).await;
    for n in 0..20 {
        let mut message = Message::new(format!("{{\"n\":{n}}}"))
            .with_application_property("n", Some(n.to_string()));
        message.system.content_type = Some("application/json".to_owned());
        message.system.content_encoding = Some("utf-8".to_owned());
        src.send_output("out", message).await.unwrap();
    }
    for expected in 5..20 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("a module input")
            .expect("the client runs");
        let ClientEvent::ModuleInput {
            input_name,
            message,
        } = event
        else {
            panic!("unexpected event {event:?}");
        };
        assert_eq!(input_name, "in");
        assert_eq!(message.body, format!("{{\"n\":{expected}}}"));
        assert_eq!(message.system.connection_module_id.as_deref(), Some("src"));
    }
    let stats = setup.hub.stats();
    assert_eq!((stats.received, stats.dropped_no_route), (20, 5));

    // Twins while offline: an empty twin, then the local reported patch.
    let twin = src.get_twin().await.unwrap();
    assert_eq!(twin["reported"]["$version"], 1);
    let version = src
        .patch_reported(&json!({"mode": "offline"}))
        .await
        .unwrap();
    assert_eq!(version, 2);
    let twin = src.get_twin().await.unwrap();
    assert_eq!(twin["reported"], json!({"mode": "offline", "$version": 2}));

    // The accepted patch is also a twin change notification, routed like any message.
    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("a twin change notification")
        .expect("the client runs");
    let ClientEvent::ModuleInput {
        input_name,
        message,
    } = event
    else {
        panic!("unexpected event {event:?}");
    };
    assert_eq!(input_name, "twin");
    assert_eq!(
        message.system.message_schema.as_deref(),
        Some("twinChangeNotification")
    );
    let body: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
    assert_eq!(
        body,
        json!({"version": 2, "properties": {"reported": {"mode": "offline"}}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_withholds_puback_instead_of_dropping_acknowledged_messages() {
    let setup = start(
        64 * 1024,
        json!({"up": "FROM /messages/modules/src/* INTO $upstream"}),
    )
    .await;
    let (src, _) = connect(&setup, "src", 1).await;
    let body = vec![b'x'; 2048];
    let mut acknowledged = 0;
    let refused = loop {
        let send = src.send_output("out", Message::new(body.clone()));
        match tokio::time::timeout(Duration::from_secs(3), send).await {
            Ok(Ok(())) => acknowledged += 1,
            Ok(Err(error)) => panic!("send {acknowledged} failed instead of waiting: {error}"),
            Err(_) => break true,
        }
        assert!(acknowledged < 1000, "the store never filled");
    };
    assert!(refused);
    let stats = setup.hub.stats();
    assert!(stats.refused_store_full > 0, "{stats:?}");
    let store = setup.hub.store().stats();
    assert!(store.bytes_on_disk <= store.max_bytes, "{store:?}");
    assert_eq!(
        store.dropped_overflow, 0,
        "nothing acknowledged was dropped"
    );
    assert!(
        acknowledged >= 10 && store.messages_written >= acknowledged,
        "{acknowledged} acknowledged, {store:?}"
    );
}

/// Sends `count` messages of 2 KiB to output `out`; returns how many were acknowledged before
/// one was held back for 3 s.
async fn send_until_held_back(client: &IotHubClient, count: usize) -> usize {
    for sent in 0..count {
        let send = client.send_output("out", Message::new(vec![b'x'; 2048]));
        match tokio::time::timeout(Duration::from_secs(3), send).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("send {sent} failed instead of waiting: {error}"),
            Err(_) => return sent,
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_drops_only_what_drop_oldest_routes_allow() {
    let setup = start(
        64 * 1024,
        json!({
            "lossy": {"route": "FROM /messages/modules/src2/* INTO BrokeredEndpoint(\"/modules/sink/inputs/in\")", "overflow": "dropOldest"},
            "careful": {"route": "FROM /messages/modules/src/* INTO $upstream", "overflow": "refuseNew"},
        }),
    )
    .await;
    let (lossy, _) = connect(&setup, "src2", 4).await;
    let (careful, _) = connect(&setup, "src", 1).await;
    // Three times the store's bound, all acknowledged: the oldest lossy messages make room.
    assert_eq!(send_until_held_back(&lossy, 96).await, 96);
    let dropped = setup.hub.store().stats().dropped_overflow;
    assert!(dropped > 0);
    // A careful message gets room the same way; it is then never dropped itself.
    assert_eq!(send_until_held_back(&careful, 10).await, 10);
    assert!(setup.hub.store().stats().dropped_overflow > dropped);
    // More lossy messages drop older lossy ones until the careful ones are the oldest: then
    // the lossy sender is held back too.
    let accepted = send_until_held_back(&lossy, 200).await;
    assert!(accepted < 200, "the careful messages were dropped");
    assert_eq!(
        setup
            .hub
            .store()
            .pending_estimate(&edge_store::EndpointId::upstream()),
        10,
        "every careful message is still stored"
    );
    let store = setup.hub.store().stats();
    assert!(store.bytes_on_disk <= store.max_bytes, "{store:?}");
    assert!(setup.hub.stats().refused_store_full > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_store_limit_lowers_the_bound_but_never_raises_it() {
    let routes = json!({"up": "FROM /messages/modules/src/* INTO $upstream"});
    let limited = |max_size_bytes: u64| {
        json!({"schemaVersion": "1.1", "routes": routes,
               "storeAndForwardConfiguration": {"timeToLiveSecs": 3600,
                                                "storeLimits": {"maxSizeBytes": max_size_bytes}}})
    };
    let generous = start_with_config(256 * 1024, limited(1 << 40)).await;
    assert_eq!(generous.hub.store().stats().max_bytes, 256 * 1024);

    let setup = start_with_config(16 * 1024 * 1024, limited(64 * 1024)).await;
    assert_eq!(setup.hub.store().stats().max_bytes, 64 * 1024);
    let (src, _) = connect(&setup, "src", 1).await;
    let accepted = send_until_held_back(&src, 100).await;
    assert!(
        (10..40).contains(&accepted),
        "{accepted} messages of 2 KiB accepted"
    );
    let store = setup.hub.store().stats();
    assert!(store.bytes_on_disk <= 64 * 1024, "{store:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_into_one_input_are_delivered_once_each_in_order() {
    let setup = start(
        16 * 1024 * 1024,
        json!({"fanIn": "FROM /messages/modules/* INTO BrokeredEndpoint(\"/modules/sink/inputs/in\")"}),
    )
    .await;
    const EACH: usize = 500;
    let mut publishers = Vec::new();
    for (name, seed) in [("src", 1), ("src2", 4)] {
        let (client, _) = connect(&setup, name, seed).await;
        publishers.push(tokio::spawn(async move {
            for n in 0..EACH {
                let message = Message::new(format!("{name}:{n}"));
                client.send_output("out", message).await.unwrap();
            }
        }));
    }
    for publisher in publishers {
        publisher.await.unwrap();
    }
    // The sink connects to a backlog of 1,000 stored messages: delivery runs into the
    // connection's queue bound and must wait for PUBACKs, never resend.
    let (sink, mut events) = connect(&setup, "sink", 2).await;
    sink.enable(Feature::IncomingMessages).await.unwrap();
    let mut seen: std::collections::HashMap<String, Vec<usize>> = Default::default();
    for _ in 0..2 * EACH {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("a module input")
            .expect("the client runs");
        let ClientEvent::ModuleInput { message, .. } = event else {
            panic!("unexpected event {event:?}");
        };
        let text = String::from_utf8(message.body.to_vec()).unwrap();
        let (name, n) = text.split_once(':').unwrap();
        seen.entry(name.to_owned())
            .or_default()
            .push(n.parse().unwrap());
    }
    for name in ["src", "src2"] {
        assert_eq!(
            seen[name],
            (0..EACH).collect::<Vec<_>>(),
            "{name}: once each, in order"
        );
    }
    // Nothing more arrives: no duplicates.
    let extra = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    assert!(extra.is_err(), "a duplicate arrived: {extra:?}");
}
