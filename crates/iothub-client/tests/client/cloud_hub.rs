//! The client against the real cloud hub (hub-core behind the MQTT front end, as `outpost hub
//! serve` runs it): a module as the edge agent uses it and a device receiving cloud-to-device
//! messages.

use std::sync::Arc;

use hub_core::{
    Authentication, ConsumerStart, Hub, HubBackend, HubOptions, IdentitySpec, MethodInvocation,
    TwinWriteMode,
};
use iothub_client::{
    ClientEvent, ClientOptions, ConnectError, ConnectReturnCode, Feature, IotHubClient, Transport,
};
use iothub_types::{Identity, Message};
use serde_json::json;

use crate::support::{PATIENCE, next_client_event};

/// The hub on loopback plain TCP, with its port.
async fn start_hub(directory: &std::path::Path) -> (Arc<Hub>, u16, tokio::task::JoinHandle<()>) {
    let hub = Hub::open(directory, "localhost", HubOptions::default())
        .await
        .expect("hub");
    let config = mqtt_frontend::FrontendConfig::default();
    let sessions = mqtt_frontend::Sessions::spawn(config.registry_queue_capacity);
    let backend = HubBackend::attach(hub.clone(), sessions.clone());
    let frontend = mqtt_frontend::Frontend::new(backend, sessions, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = tokio::spawn(async move { frontend.serve_plain_tcp(listener).await });
    (hub, port, server)
}

/// Creates `identity` in the registry and returns its connection string.
async fn create(hub: &Hub, identity: &Identity) -> String {
    let view = hub
        .put_identity(identity, IdentitySpec::default(), None)
        .await
        .expect("create identity");
    let Authentication::Sas { primary_key, .. } = view.record.authentication else {
        panic!("expected SAS keys");
    };
    match &identity.module {
        None => format!(
            "HostName=localhost;DeviceId={};SharedAccessKey={primary_key}",
            identity.device
        ),
        Some(module) => format!(
            "HostName=localhost;DeviceId={};ModuleId={module};SharedAccessKey={primary_key}",
            identity.device
        ),
    }
}

fn options(connection_string: &str, port: u16) -> ClientOptions {
    let mut options = ClientOptions::from_connection_string(connection_string, Transport::PlainTcp)
        .expect("options");
    options.port = port;
    options.operation_timeout = PATIENCE;
    options
}

#[tokio::test]
async fn a_module_and_a_device_work_against_the_cloud_hub() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (hub, port, server) = start_hub(directory.path()).await;

    let edge_device: Identity = "edge1".parse().unwrap();
    create(&hub, &edge_device).await;
    let agent: Identity = "edge1/agent".parse().unwrap();
    let agent_connection_string = create(&hub, &agent).await;
    assert!(agent_connection_string.contains("ModuleId=agent"));

    // A key the hub does not know is refused with code 5.
    let wrong = format!(
        "HostName=localhost;DeviceId=edge1;ModuleId=agent;SharedAccessKey={}",
        iothub_auth::SymmetricKey::generate_random().to_base64()
    );
    assert_eq!(
        IotHubClient::connect(options(&wrong, port))
            .await
            .unwrap_err(),
        ConnectError::Refused {
            code: ConnectReturnCode::NotAuthorized
        }
    );

    let mut agent_options = options(&agent_connection_string, port);
    agent_options.subscribe_at_connect =
        vec![Feature::DesiredPropertiesPatches, Feature::MethodRequests];
    let (agent_client, mut agent_events) = IotHubClient::connect(agent_options).await.unwrap();

    // Telemetry reaches the hub's log with the connection properties stamped.
    agent_client
        .send_output("output1", Message::new("{\"t\":1}"))
        .await
        .unwrap();
    let mut consumer = hub
        .telemetry_consumer("test", ConsumerStart::Start)
        .expect("consumer");
    let logged = consumer.next_batch(10).await.expect("events");
    assert_eq!(logged.len(), 1);
    assert_eq!(
        logged[0].message.system.connection_module_id.as_deref(),
        Some("agent")
    );
    assert_eq!(
        logged[0].message.system.output_name.as_deref(),
        Some("output1")
    );

    // The module twin: read, report, and a desired change pushed by the service side.
    let twin = agent_client.get_twin().await.unwrap();
    assert_eq!(twin["desired"]["$version"], json!(1));
    let version = agent_client
        .patch_reported(&json!({"lastDesiredVersion": 1}))
        .await
        .unwrap();
    assert_eq!(version, 2);
    agent_client
        .enable(Feature::DesiredPropertiesPatches)
        .await
        .unwrap();
    let patch =
        twin::ServiceTwinUpdate::parse(br#"{"properties":{"desired":{"schemaVersion":"1.1"}}}"#)
            .expect("patch");
    hub.update_twin(&agent, patch, TwinWriteMode::Patch, Some("*"))
        .await
        .expect("update twin");
    assert_eq!(
        next_client_event(&mut agent_events).await,
        ClientEvent::DesiredPropertiesPatch {
            version: 2,
            patch: json!({"schemaVersion": "1.1", "$version": 2})
        }
    );
    let twin = agent_client.get_twin().await.unwrap();
    assert_eq!(twin["reported"]["lastDesiredVersion"], json!(1));

    // A direct method call answered by the module.
    agent_client.enable(Feature::MethodRequests).await.unwrap();
    let invoking_hub = Arc::clone(&hub);
    let invoking_identity = agent.clone();
    let invocation = tokio::spawn(async move {
        invoking_hub
            .invoke_method(
                &invoking_identity,
                MethodInvocation {
                    method_name: "ping".to_owned(),
                    payload: json!({"n": 1}),
                    response_timeout_secs: Some(10),
                    connect_timeout_secs: Some(5),
                },
            )
            .await
    });
    let ClientEvent::MethodRequest(request) = next_client_event(&mut agent_events).await else {
        panic!("expected a method request");
    };
    assert_eq!(request.method_name, "ping");
    assert_eq!(request.payload_json().unwrap(), json!({"n": 1}));
    agent_client
        .respond(&request.rid, 201, &json!({"pong": 1}))
        .await
        .unwrap();
    let result = invocation.await.expect("task").expect("method result");
    assert_eq!((result.status, result.payload), (201, json!({"pong": 1})));

    // A device receives a cloud-to-device message with its properties.
    let device: Identity = "dev1".parse().unwrap();
    let device_connection_string = create(&hub, &device).await;
    let (_device_client, mut device_events) =
        IotHubClient::connect(options(&device_connection_string, port))
            .await
            .unwrap();
    let c2d = Message::new(&b"hello"[..]).with_application_property("k", Some("v 1"));
    hub.send_c2d(&device.device, c2d, None)
        .await
        .expect("send c2d");
    // Subscribing is what makes the hub deliver what it queued.
    _device_client
        .enable(Feature::IncomingMessages)
        .await
        .unwrap();
    let ClientEvent::CloudToDevice(message) = next_client_event(&mut device_events).await else {
        panic!("expected a cloud-to-device message");
    };
    assert_eq!(&message.body[..], b"hello");
    assert_eq!(
        message.application,
        [("k".to_owned(), Some("v 1".to_owned()))]
    );

    agent_client.shutdown().await;
    server.abort();
}

/// Waits until the hub's queue for `device` holds `expected` messages.
async fn wait_for_queue_depth(hub: &Hub, device: &Identity, expected: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let queued = hub.queued_c2d(&device.device).await.expect("queue").len();
        if queued == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queued} messages queued, expected {expected}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_manually_acknowledged_cloud_to_device_message_stays_queued_until_acknowledged() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (hub, port, server) = start_hub(directory.path()).await;
    let device: Identity = "gateway-child".parse().unwrap();
    let connection_string = create(&hub, &device).await;
    hub.send_c2d(&device.device, Message::new(&b"keep me"[..]), None)
        .await
        .expect("send c2d");
    let mut manual = options(&connection_string, port);
    manual.manual_cloud_to_device_ack = true;

    // Received but not acknowledged, then the connection ends: the hub still has it.
    let (client, mut events) = IotHubClient::connect(manual.clone()).await.unwrap();
    client.enable(Feature::IncomingMessages).await.unwrap();
    let ClientEvent::CloudToDeviceToAcknowledge { message, ack: _ } =
        next_client_event(&mut events).await
    else {
        panic!("expected a cloud-to-device message to acknowledge");
    };
    assert_eq!(&message.body[..], b"keep me");
    client.shutdown().await;
    wait_for_queue_depth(&hub, &device, 1).await;

    // Delivered again on the next connection; acknowledging completes it.
    let (client, mut events) = IotHubClient::connect(manual).await.unwrap();
    client.enable(Feature::IncomingMessages).await.unwrap();
    let ClientEvent::CloudToDeviceToAcknowledge { message, ack } =
        next_client_event(&mut events).await
    else {
        panic!("expected the message again");
    };
    assert_eq!(&message.body[..], b"keep me");
    wait_for_queue_depth(&hub, &device, 1).await;
    ack.acknowledge();
    wait_for_queue_depth(&hub, &device, 0).await;
    client.shutdown().await;
    server.abort();
}
