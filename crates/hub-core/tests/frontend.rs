//! The hub behind the real MQTT front end, driven by an independent MQTT client (rumqttc) over
//! loopback TCP: authentication, telemetry into the log, twin GET and reported patch, desired
//! patches, a direct method round trip, and C2D delivery completed by PUBACK.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hub_core::{
    ConsumerStart, Hub, HubBackend, HubOptions, IdentitySpec, MethodInvocation, TwinWriteMode,
};
use iothub_types::Message;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use support::{HOST, device_identity, device_token};
use tokio::sync::mpsc;

/// Waits (bounded) for the next incoming PUBLISH.
async fn next_publish(events: &mut mpsc::UnboundedReceiver<rumqttc::Publish>) -> rumqttc::Publish {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("a publish in time")
        .expect("open")
}

#[tokio::test]
async fn a_device_talks_to_the_hub_through_the_mqtt_front_end() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let hub = Hub::open(directory.path(), HOST, HubOptions::default())
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
    let server_frontend = frontend.clone();
    let server = tokio::spawn(async move { server_frontend.serve_plain_tcp(listener).await });

    let dev1 = device_identity("dev1");
    let view = hub
        .put_identity(&dev1, IdentitySpec::default(), None)
        .await
        .expect("create");
    let hub_core::Authentication::Sas { primary_key, .. } = view.record.authentication else {
        panic!("sas")
    };
    let expiry = u64::try_from(chrono::Utc::now().timestamp() + 3600).expect("time");

    // A wrong key is refused.
    let mut refused = MqttOptions::new("dev1", "127.0.0.1", port);
    refused.set_credentials(
        format!("{HOST}/dev1/?api-version=2021-04-12"),
        device_token(&dev1, "d3Jvbmc=", expiry),
    );
    let (_refused_client, mut refused_loop) = AsyncClient::new(refused, 10);
    let refusal = tokio::time::timeout(Duration::from_secs(10), refused_loop.poll())
        .await
        .expect("in time");
    assert!(
        refusal.is_err(),
        "a wrong key must be refused, got {refusal:?}"
    );

    let mut options = MqttOptions::new("dev1", "127.0.0.1", port);
    options.set_credentials(
        format!("{HOST}/dev1/?api-version=2021-04-12"),
        device_token(&dev1, &primary_key, expiry),
    );
    options.set_clean_session(false);
    let (client, mut event_loop) = AsyncClient::new(options, 64);
    let (publishes, mut incoming) = mpsc::unbounded_channel();
    let (acks, mut puback_count) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = event_loop.poll().await {
            match event {
                Event::Incoming(Packet::Publish(publish)) => {
                    let _ = publishes.send(publish);
                }
                Event::Incoming(Packet::PubAck(puback)) => {
                    let _ = acks.send(puback.pkid);
                }
                _ => {}
            }
        }
    });
    for filter in [
        "$iothub/methods/POST/#",
        "devices/dev1/messages/devicebound/#",
        "$iothub/twin/PATCH/properties/desired/#",
    ] {
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
    }

    // Telemetry: PUBACK only once durable, then readable by a consumer with its properties.
    client
        .publish(
            "devices/dev1/messages/events/%24.ct=application%2Fjson&alert=high%20temp",
            QoS::AtLeastOnce,
            false,
            r#"{"t":1}"#,
        )
        .await
        .expect("publish");
    tokio::time::timeout(Duration::from_secs(10), puback_count.recv())
        .await
        .expect("puback in time");
    let mut consumer = hub
        .telemetry_consumer("test", ConsumerStart::Start)
        .expect("consumer");
    let events = consumer.next_batch(10).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].message.application,
        [("alert".to_owned(), Some("high temp".to_owned()))]
    );
    assert_eq!(
        events[0].message.system.content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(
        events[0].message.system.connection_device_id.as_deref(),
        Some("dev1")
    );

    // Twin GET (answered without a subscription to the response topic) and reported patch.
    client
        .publish("$iothub/twin/GET/?$rid=1", QoS::AtLeastOnce, false, " ")
        .await
        .expect("twin get");
    let response = next_publish(&mut incoming).await;
    assert_eq!(response.topic, "$iothub/twin/res/200/?$rid=1");
    let document: serde_json::Value = serde_json::from_slice(&response.payload).expect("json");
    assert_eq!(document["desired"]["$version"], 1);
    client
        .publish(
            "$iothub/twin/PATCH/properties/reported/?$rid=2",
            QoS::AtLeastOnce,
            false,
            r#"{"temp":21}"#,
        )
        .await
        .expect("reported patch");
    let response = next_publish(&mut incoming).await;
    assert_eq!(response.topic, "$iothub/twin/res/204/?$rid=2&$version=2");

    // A desired change reaches the device with its version in the body.
    let patch = twin::ServiceTwinUpdate::parse(br#"{"properties":{"desired":{"fan":"on"}}}"#)
        .expect("patch");
    hub.update_twin(&dev1, patch, TwinWriteMode::Patch, Some("*"))
        .await
        .expect("update twin");
    let desired = next_publish(&mut incoming).await;
    assert_eq!(
        desired.topic,
        "$iothub/twin/PATCH/properties/desired/?$version=2"
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&desired.payload).expect("json"),
        json!({"fan":"on","$version":2})
    );

    // Direct method round trip.
    let invoking_hub = Arc::clone(&hub);
    let invocation = tokio::spawn(async move {
        invoking_hub
            .invoke_method(
                &device_identity("dev1"),
                MethodInvocation {
                    method_name: "reboot".to_owned(),
                    payload: json!({"delay": 3}),
                    response_timeout_secs: Some(10),
                    connect_timeout_secs: Some(5),
                },
            )
            .await
    });
    let request = next_publish(&mut incoming).await;
    let request_id = request
        .topic
        .rsplit_once("$rid=")
        .expect("rid")
        .1
        .to_owned();
    assert!(
        request
            .topic
            .starts_with("$iothub/methods/POST/reboot/?$rid="),
        "{}",
        request.topic
    );
    client
        .publish(
            format!("$iothub/methods/res/201/?$rid={request_id}"),
            QoS::AtLeastOnce,
            false,
            r#"{"ok":true}"#,
        )
        .await
        .expect("method response");
    let result = invocation.await.expect("task").expect("method result");
    assert_eq!((result.status, result.payload), (201, json!({"ok": true})));

    // C2D: delivered with its properties and completed by the client's automatic PUBACK.
    let c2d = Message::new(&b"hello"[..]).with_application_property("k", Some("v 1"));
    hub.send_c2d(&dev1.device, c2d, None)
        .await
        .expect("send c2d");
    let delivery = next_publish(&mut incoming).await;
    assert!(
        delivery
            .topic
            .starts_with("devices/dev1/messages/devicebound/"),
        "{}",
        delivery.topic
    );
    assert!(delivery.topic.contains("k=v%201"), "{}", delivery.topic);
    assert_eq!(&delivery.payload[..], b"hello");
    let mut queued = hub.queued_c2d(&dev1.device).await.expect("queue").len();
    for _ in 0..100 {
        if queued == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        queued = hub.queued_c2d(&dev1.device).await.expect("queue").len();
    }
    assert_eq!(queued, 0, "the PUBACK completes the message");
    assert_eq!(hub.connected_device_count(), 1);

    // Disabling the device drops its connection.
    let disable = IdentitySpec {
        status: Some(hub_core::IdentityStatus::Disabled),
        ..IdentitySpec::default()
    };
    hub.put_identity(&dev1, disable, Some("*"))
        .await
        .expect("disable");
    for _ in 0..100 {
        if hub.connected_device_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        hub.connected_device_count(),
        0,
        "a disabled device is disconnected"
    );
    server.abort();
}
