//! Black-box tests of the MQTT front end over real TLS (and WebSocket, and in-memory streams for
//! paused-time keep-alive tests), against an in-memory backend.

mod support;

use std::time::Duration;

use bytes::Bytes;
use expect_test::{Expect, expect};
use iothub_types::{DeviceId, Message, ModuleId};
use mqtt_codec::{Connect, Packet, PacketId, Publish, QoS, Will};
use mqtt_frontend::{
    DeliveryTag, DisconnectReason, Disconnection, FrontendConfig, PushError, Transport,
    TransportInfo,
};
use support::{
    Event, Registration, TestClient, TestHub, accepted, describe, identity, password_for,
    sas_connect,
};

const TELEMETRY_TOPIC: &str = "devices/dev1/messages/events/";

/// Connects with `connect` after registering `dev1` with a password and returns what the server
/// answered.
async fn check_connect(connect: Connect, expected: Expect) {
    let hub = TestHub::start().await;
    hub.backend.register_with_password("dev1");
    hub.backend.register_with_password("dev1/mod1");
    hub.backend.register(
        "disabled",
        Registration {
            password: Some(password_for("disabled")),
            thumbprint: None,
            enabled: false,
        },
    );
    let mut client = hub.open().await;
    client.send(Packet::Connect(connect)).await;
    let answer = client.receive().await;
    expected.assert_eq(&describe(&answer));
}

#[tokio::test]
async fn connect_return_codes() {
    check_connect(
        sas_connect("dev1", false),
        expect!["CONNACK code=0 session_present=false"],
    )
    .await;
    check_connect(
        sas_connect("dev1/mod1", false),
        expect!["CONNACK code=0 session_present=false"],
    )
    .await;
    let wrong_password = Connect {
        password: Some(Bytes::from_static(b"SharedAccessSignature sr=x&sig=y&se=1")),
        ..sas_connect("dev1", false)
    };
    check_connect(
        wrong_password,
        expect!["CONNACK code=5 session_present=false"],
    )
    .await;
    check_connect(
        sas_connect("unknown", false),
        expect!["CONNACK code=5 session_present=false"],
    )
    .await;
    check_connect(
        sas_connect("disabled", false),
        expect!["CONNACK code=5 session_present=false"],
    )
    .await;
    let no_password = Connect {
        password: None,
        ..sas_connect("dev1", false)
    };
    check_connect(no_password, expect!["CONNACK code=4 session_present=false"]).await;
    let no_username = Connect {
        username: None,
        password: None,
        ..sas_connect("dev1", false)
    };
    check_connect(no_username, expect!["CONNACK code=4 session_present=false"]).await;
    let username_for_someone_else = Connect {
        username: Some("localhost/dev2/?api-version=2019-10-01".to_owned()),
        ..sas_connect("dev1", false)
    };
    check_connect(
        username_for_someone_else,
        expect!["CONNACK code=4 session_present=false"],
    )
    .await;
    let busy = Connect {
        password: Some(Bytes::from_static(b"busy")),
        ..sas_connect("dev1", false)
    };
    check_connect(busy, expect!["CONNACK code=3 session_present=false"]).await;
    let invalid_client_id = Connect {
        client_id: "dev 1".to_owned(),
        ..sas_connect("dev1", false)
    };
    check_connect(
        invalid_client_id,
        expect!["CONNACK code=2 session_present=false"],
    )
    .await;
    let empty_client_id = Connect {
        client_id: String::new(),
        ..sas_connect("dev1", true)
    };
    check_connect(
        empty_client_id,
        expect!["CONNACK code=2 session_present=false"],
    )
    .await;
    let will_on_foreign_topic = Connect {
        will: Some(Will {
            topic: "devices/dev2/messages/events/".to_owned(),
            payload: Bytes::new(),
            qos: QoS::AtLeastOnce,
            retain: false,
        }),
        ..sas_connect("dev1", false)
    };
    check_connect(
        will_on_foreign_topic,
        expect!["CONNACK code=5 session_present=false"],
    )
    .await;
}

#[tokio::test]
async fn unsupported_protocol_level_gets_connack_1() {
    let hub = TestHub::start().await;
    let mut client = hub.open().await;
    // CONNECT with protocol level 5 (MQTT 5), clean session, keep-alive 60, empty client id.
    client
        .send_raw(b"\x10\x0d\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x00")
        .await;
    expect!["CONNACK code=1 session_present=false"].assert_eq(&describe(&client.receive().await));
    client.expect_closed().await;
}

#[tokio::test]
async fn x509_client_authenticates_by_thumbprint() {
    let hub = TestHub::start().await;
    let certificate = tls::self_signed_client_certificate(&tls::ClientCertificateRequest {
        common_name: "x509dev".to_owned(),
        validity: tls::CertificateValidity::days_from_now(1),
    })
    .unwrap();
    hub.backend.register(
        "x509dev",
        Registration {
            password: None,
            thumbprint: Some(tls::thumbprint_sha1_hex(certificate.end_entity())),
            enabled: true,
        },
    );
    let connect = Connect {
        password: None,
        ..sas_connect("x509dev", false)
    };
    let mut client = hub.open_with_certificate(&certificate).await;
    assert_eq!(client.connect(connect.clone()).await, Some(accepted(false)));

    // Another certificate for the same device is refused.
    let impostor = tls::self_signed_client_certificate(&tls::ClientCertificateRequest {
        common_name: "x509dev".to_owned(),
        validity: tls::CertificateValidity::days_from_now(1),
    })
    .unwrap();
    let mut client = hub.open_with_certificate(&impostor).await;
    expect!["CONNACK code=5 session_present=false"]
        .assert_eq(&describe(&client.receive_after_connect(connect).await));
}

trait ReceiveAfterConnect {
    async fn receive_after_connect(&mut self, connect: Connect) -> Option<Packet>;
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> ReceiveAfterConnect
    for TestClient<S>
{
    async fn receive_after_connect(&mut self, connect: Connect) -> Option<Packet> {
        self.send(Packet::Connect(connect)).await;
        self.receive().await
    }
}

#[tokio::test]
async fn telemetry_reaches_the_backend_with_its_properties_and_retain_marker() {
    let mut hub = TestHub::start().await;
    let (mut client, _) = hub.connect("dev1", false).await;
    hub.next_event().await;
    client
        .publish_acknowledged(
            "devices/dev1/messages/events/%24.mid=mid-1&%24.ct=application%2Fjson&alert=high%20temp",
            b"{\"t\":21}",
        )
        .await;
    let mut retained = Publish::at_most_once(TELEMETRY_TOPIC, "r");
    retained.retain = true;
    client.send(Packet::Publish(retained)).await;
    let Event::Telemetry { identity, message } = hub.next_event().await else {
        panic!("expected telemetry")
    };
    assert_eq!(identity, "dev1");
    assert_eq!(message.body.as_ref(), b"{\"t\":21}");
    assert_eq!(message.system.message_id.as_deref(), Some("mid-1"));
    assert_eq!(
        message.system.content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(
        message.application_property("alert"),
        Some(Some("high temp"))
    );
    let Event::Telemetry { message, .. } = hub.next_event().await else {
        panic!("expected telemetry")
    };
    assert_eq!(
        message.application_property("mqtt-retain"),
        Some(Some("true"))
    );

    // A module publishes on its own module topic.
    let (mut module, _) = hub.connect("dev1/mod1", false).await;
    module
        .publish_acknowledged(
            "devices/dev1/modules/mod1/messages/events/%24.on=output1",
            b"m",
        )
        .await;
    let Event::Telemetry { identity, message } = hub
        .wait_for_event(|event| matches!(event, Event::Telemetry { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!(identity, "dev1/mod1");
    assert_eq!(message.system.output_name.as_deref(), Some("output1"));
}

#[tokio::test]
async fn puback_waits_until_the_backend_made_telemetry_durable() {
    let mut hub = TestHub::start().await;
    let (mut client, _) = hub.connect("dev1", false).await;
    let held = client.publish_qos1(TELEMETRY_TOPIC, b"hold").await;
    let after = client.publish_qos1(TELEMETRY_TOPIC, b"after").await;
    // Nothing is acknowledged while the first message is held, not even the second (PUBACKs go
    // out in order); a ping still gets through.
    client.send(Packet::PingReq).await;
    assert_eq!(client.receive().await, Some(Packet::PingResp));
    hub.backend.release_held_telemetry.notify_one();
    assert_eq!(client.receive().await, Some(Packet::PubAck(held)));
    assert_eq!(client.receive().await, Some(Packet::PubAck(after)));
}

#[tokio::test]
async fn rejected_telemetry_closes_without_puback() {
    let mut hub = TestHub::start().await;
    let (mut client, _) = hub.connect("dev1", false).await;
    client.publish_qos1(TELEMETRY_TOPIC, b"reject").await;
    client.expect_closed().await;
    let Event::Disconnected { disconnection, .. } = hub
        .wait_for_event(|event| matches!(event, Event::Disconnected { .. }))
        .await
    else {
        unreachable!()
    };
    expect![[r#"TelemetryRejected("telemetry rejected: body says reject")"#]]
        .assert_eq(&format!("{:?}", disconnection.reason));
}

/// Connects `dev1`, runs `misbehave` on it, and reports how the connection ended.
async fn check_closes(
    misbehave: impl AsyncFnOnce(
        &mut TestClient<tls::tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    ),
    expected: Expect,
) {
    let mut hub = TestHub::start().await;
    let (mut client, _) = hub.connect("dev1", false).await;
    let (mut bystander, _) = hub.connect("dev2", false).await;
    misbehave(&mut client).await;
    client.expect_closed().await;
    let Event::Disconnected {
        identity,
        disconnection,
    } = hub
        .wait_for_event(|event| matches!(event, Event::Disconnected { .. }))
        .await
    else {
        unreachable!()
    };
    expected.assert_eq(&format!("{identity}: {:?}", disconnection.reason));
    // Other clients are unaffected.
    bystander
        .publish_acknowledged("devices/dev2/messages/events/", b"still here")
        .await;
}

#[tokio::test]
async fn rule_breaking_clients_are_disconnected_alone() {
    check_closes(
        async |client| {
            client
                .publish_qos1("devices/dev2/messages/events/", b"x")
                .await;
        },
        expect![[r#"dev1: ProtocolViolation("publish to \"devices/dev2/messages/events/\" refused: dev1 may not use topics of device dev2")"#]],
    )
    .await;
    check_closes(
        async |client| {
            client
                .publish_qos1("devices/dev1/modules/mod1/messages/events/", b"x")
                .await;
        },
        expect![[r#"dev1: ProtocolViolation("publish to \"devices/dev1/modules/mod1/messages/events/\" refused: device dev1 may not use module topics (module mod1)")"#]],
    )
    .await;
    check_closes(
        async |client| {
            client.send_subscribe("devices/dev2/messages/devicebound/#", QoS::AtLeastOnce).await;
        },
        expect![[r#"dev1: ProtocolViolation("subscription to \"devices/dev2/messages/devicebound/#\" refused: dev1 may not use topics of device dev2")"#]],
    )
    .await;
    check_closes(
        async |client| {
            client.send_subscribe("#", QoS::AtLeastOnce).await;
        },
        expect![[
            r##"dev1: ProtocolViolation("subscription to \"#\" refused: unknown topic \"#\"")"##
        ]],
    )
    .await;
    check_closes(
        async |client| {
            let packet_id = client.packet_id();
            client
                .send(Packet::Publish(Publish::with_packet_id(
                    TELEMETRY_TOPIC,
                    QoS::ExactlyOnce,
                    packet_id,
                    "x",
                )))
                .await;
        },
        expect![[r#"dev1: ProtocolViolation("QoS 2 publish is not supported")"#]],
    )
    .await;
    check_closes(
        async |client| {
            client.publish_qos1("some/other/topic", b"x").await;
        },
        expect![[r#"dev1: ProtocolViolation("publish to \"some/other/topic\" refused: unknown topic \"some/other/topic\"")"#]],
    )
    .await;
    check_closes(
        async |client| {
            // A PUBLISH header announcing 400 KB: refused before the body arrives.
            client.send_raw(&[0x30, 0x80, 0xb5, 0x18]).await;
        },
        expect![[r#"dev1: ProtocolViolation("malformed packet: packet of 400004 bytes exceeds the maximum packet size of 327695 bytes")"#]],
    )
    .await;
    check_closes(
        async |client| {
            // Within the packet limit, beyond IoT Hub's 256 KB message limit.
            let body = vec![b'x'; 300 * 1024];
            client.publish_qos1(TELEMETRY_TOPIC, &body).await;
        },
        expect![[r#"dev1: ProtocolViolation("telemetry refused: message is 307200 bytes by IoT Hub accounting, the limit is 262144")"#]],
    )
    .await;
    check_closes(
        async |client| client.send_raw(b"\xf0\x00garbage").await,
        expect![[r#"dev1: ProtocolViolation("malformed packet: reserved packet type 15")"#]],
    )
    .await;
    check_closes(
        async |client| {
            client
                .send(Packet::Connect(sas_connect("dev1", false)))
                .await
        },
        expect![[r#"dev1: ProtocolViolation("unexpected CONNECT from client")"#]],
    )
    .await;
}

#[tokio::test]
async fn subscriptions_persist_across_reconnects_for_clean_session_0() {
    let mut hub = TestHub::start().await;
    let (mut client, connack) = hub.connect("dev1", false).await;
    assert_eq!(connack, accepted(false));
    hub.next_event().await;
    expect!["SUBACK [1]"].assert_eq(&describe(&Some(
        client
            .subscribe("$iothub/methods/POST/#", QoS::AtLeastOnce)
            .await,
    )));
    expect![[
        r#"SubscriptionsChanged { identity: "dev1", subscriptions: ["$iothub/methods/POST/#"] }"#
    ]]
    .assert_eq(&format!("{:?}", hub.next_event().await));
    client.send(Packet::Disconnect).await;
    client.expect_closed().await;
    hub.wait_for_event(|event| matches!(event, Event::Disconnected { .. }))
        .await;

    // The SDK reconnects with clean session 0 and does not subscribe again.
    let (mut client, connack) = hub.connect("dev1", false).await;
    assert_eq!(connack, accepted(true));
    expect![[r#"Connected { identity: "dev1", session_present: true, subscriptions: ["$iothub/methods/POST/#"] }"#]]
        .assert_eq(&format!("{:?}", hub.next_event().await));
    hub.sessions()
        .send_method_request(
            &identity("dev1"),
            "reboot",
            "7",
            Bytes::from_static(b"{\"delay\":3}"),
        )
        .await
        .unwrap();
    expect![[r#"PUBLISH qos=0 topic=$iothub/methods/POST/reboot/?$rid=7 payload={"delay":3}"#]]
        .assert_eq(&describe(&client.receive().await));
    client.send(Packet::Disconnect).await;
    client.expect_closed().await;

    // Clean session 1 starts from nothing and forgets the stored session.
    let (_client, connack) = hub.connect("dev1", true).await;
    assert_eq!(connack, accepted(false));
    let error = hub
        .sessions()
        .send_method_request(&identity("dev1"), "reboot", "8", Bytes::new())
        .await;
    assert_eq!(error, Err(PushError::NotSubscribed));
}

#[tokio::test]
async fn subscribe_grants_qos_1_for_qos_2_and_caps_the_subscription_count() {
    let config = FrontendConfig {
        max_subscriptions: 2,
        ..FrontendConfig::default()
    };
    let mut hub = TestHub::start_with(config).await;
    let (mut client, _) = hub.connect("dev1", false).await;
    let packet_id = client.packet_id();
    client
        .send(Packet::Subscribe(mqtt_codec::Subscribe {
            packet_id,
            filters: [
                ("$iothub/methods/POST/#", QoS::ExactlyOnce),
                ("$iothub/twin/res/#", QoS::AtMostOnce),
                ("$iothub/twin/PATCH/properties/desired/#", QoS::AtLeastOnce),
            ]
            .into_iter()
            .map(|(filter, requested_qos)| mqtt_codec::SubscribeFilter {
                filter: filter.to_owned(),
                requested_qos,
            })
            .collect(),
        }))
        .await;
    expect!["SUBACK [1, 0, 128]"].assert_eq(&describe(&client.receive().await));
    // Unsubscribing frees a slot.
    let packet_id = client.packet_id();
    client
        .send(Packet::Unsubscribe(mqtt_codec::Unsubscribe {
            packet_id,
            filters: vec!["$iothub/twin/res/#".to_owned(), "not/a/filter".to_owned()],
        }))
        .await;
    assert_eq!(client.receive().await, Some(Packet::UnsubAck(packet_id)));
    expect!["SUBACK [1]"].assert_eq(&describe(&Some(
        client
            .subscribe("$iothub/twin/PATCH/properties/desired/#", QoS::AtLeastOnce)
            .await,
    )));
    hub.wait_for_event(|event| {
        matches!(event, Event::SubscriptionsChanged { subscriptions, .. }
            if subscriptions.len() == 2 && subscriptions.contains(&"$iothub/twin/PATCH/properties/desired/#".to_owned()))
    })
    .await;
}

#[tokio::test]
async fn twin_responses_reach_the_requester_without_a_subscription() {
    let mut hub = TestHub::start().await;
    let (mut client, _) = hub.connect("dev1", false).await;
    let get = client.publish_qos1("$iothub/twin/GET/?$rid=r1", b" ").await;
    assert_eq!(client.receive().await, Some(Packet::PubAck(get)));
    expect![[r#"PUBLISH qos=0 topic=$iothub/twin/res/200/?$rid=r1 payload={"desired":{"$version":1},"reported":{"$version":1}}"#]]
        .assert_eq(&describe(&client.receive().await));

    let patch = client
        .publish_qos1(
            "$iothub/twin/PATCH/properties/reported/?$rid=r2",
            b"{\"temp\":22}",
        )
        .await;
    assert_eq!(client.receive().await, Some(Packet::PubAck(patch)));
    expect!["PUBLISH qos=0 topic=$iothub/twin/res/204/?$rid=r2&$version=2 payload="]
        .assert_eq(&describe(&client.receive().await));

    let bad = client
        .publish_qos1(
            "$iothub/twin/PATCH/properties/reported/?$rid=r3",
            b"not json",
        )
        .await;
    assert_eq!(client.receive().await, Some(Packet::PubAck(bad)));
    expect![[
        r#"PUBLISH qos=0 topic=$iothub/twin/res/400/?$rid=r3 payload={"message":"invalid JSON"}"#
    ]]
    .assert_eq(&describe(&client.receive().await));
}

#[tokio::test]
async fn desired_patches_go_only_to_subscribed_clients() {
    let mut hub = TestHub::start().await;
    let (mut client, _) = hub.connect("dev1", false).await;
    let patch = Bytes::from_static(b"{\"fan\":\"off\",\"$version\":6}");
    assert_eq!(
        hub.sessions()
            .send_desired_properties_patch(&identity("dev1"), 6, patch.clone())
            .await,
        Err(PushError::NotSubscribed)
    );
    client
        .subscribe("$iothub/twin/PATCH/properties/desired/#", QoS::AtLeastOnce)
        .await;
    hub.sessions()
        .send_desired_properties_patch(&identity("dev1"), 6, patch)
        .await
        .unwrap();
    expect![[r#"PUBLISH qos=0 topic=$iothub/twin/PATCH/properties/desired/?$version=6 payload={"fan":"off","$version":6}"#]]
        .assert_eq(&describe(&client.receive().await));
    assert_eq!(
        hub.sessions()
            .send_desired_properties_patch(&identity("dev2"), 1, Bytes::new())
            .await,
        Err(PushError::NotConnected)
    );
}

#[tokio::test]
async fn method_request_and_response_round_trip() {
    let mut hub = TestHub::start().await;
    let (mut client, _) = hub.connect("dev1/mod1", false).await;
    client
        .subscribe("$iothub/methods/POST/#", QoS::AtLeastOnce)
        .await;
    hub.sessions()
        .send_method_request(
            &identity("dev1/mod1"),
            "set temp",
            "42",
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    expect!["PUBLISH qos=0 topic=$iothub/methods/POST/set%20temp/?$rid=42 payload={}"]
        .assert_eq(&describe(&client.receive().await));
    client
        .publish_acknowledged("$iothub/methods/res/200/?$rid=42", b"{\"ok\":true}")
        .await;
    let event = hub
        .wait_for_event(|event| matches!(event, Event::MethodResponse { .. }))
        .await;
    expect![[r#"MethodResponse { identity: "dev1/mod1", response: MethodResponse { rid: "42", status: 200, payload: b"{\"ok\":true}" } }"#]]
        .assert_eq(&format!("{event:?}"));
}

#[tokio::test]
async fn cloud_to_device_delivery_is_completed_by_puback() {
    let mut hub = TestHub::start().await;
    let (mut client, _) = hub.connect("dev1", false).await;
    let device = DeviceId::new("dev1").unwrap();
    let mut message = Message::new("hello").with_application_property("prop1", Some("v 1"));
    message.system.message_id = Some("m-1".to_owned());
    assert_eq!(
        hub.sessions()
            .send_cloud_to_device(&device, &message, DeliveryTag(7))
            .await,
        Err(PushError::NotSubscribed)
    );
    client
        .subscribe("devices/dev1/messages/devicebound/#", QoS::AtLeastOnce)
        .await;
    hub.sessions()
        .send_cloud_to_device(&device, &message, DeliveryTag(7))
        .await
        .unwrap();
    let Some(Packet::Publish(delivery)) = client.receive().await else {
        panic!("expected a delivery")
    };
    expect!["PUBLISH qos=1 topic=devices/dev1/messages/devicebound/%24.mid=m-1&prop1=v%201 payload=hello"]
        .assert_eq(&describe(&Some(Packet::Publish(delivery.clone()))));
    client
        .send(Packet::PubAck(delivery.packet_id.unwrap()))
        .await;
    let event = hub
        .wait_for_event(|event| matches!(event, Event::DeliveryAcknowledged { .. }))
        .await;
    assert_eq!(
        event,
        Event::DeliveryAcknowledged {
            identity: "dev1".to_owned(),
            tag: DeliveryTag(7)
        }
    );

    // A delivery that is never acknowledged is reported undelivered when the connection ends;
    // redelivery is the backend's job.
    hub.sessions()
        .send_cloud_to_device(&device, &message, DeliveryTag(8))
        .await
        .unwrap();
    assert!(matches!(client.receive().await, Some(Packet::Publish(_))));
    client.send(Packet::Disconnect).await;
    client.expect_closed().await;
    let event = hub
        .wait_for_event(|event| matches!(event, Event::Disconnected { .. }))
        .await;
    assert_eq!(
        event,
        Event::Disconnected {
            identity: "dev1".to_owned(),
            disconnection: Disconnection {
                reason: DisconnectReason::ClientDisconnected,
                undelivered: vec![DeliveryTag(8)],
            }
        }
    );
}

#[tokio::test]
async fn a_puback_sent_together_with_disconnect_still_acknowledges_its_delivery() {
    let mut hub = TestHub::start().await;
    let (mut client, _) = hub.connect("dev1", false).await;
    client
        .subscribe("devices/dev1/messages/devicebound/#", QoS::AtLeastOnce)
        .await;
    let device = DeviceId::new("dev1").unwrap();
    hub.sessions()
        .send_cloud_to_device(&device, &Message::new("last"), DeliveryTag(9))
        .await
        .unwrap();
    let Some(Packet::Publish(delivery)) = client.receive().await else {
        panic!("expected a delivery")
    };
    // Both packets arrive in one read: the connection ends in the same step that reads the
    // PUBACK, and the acknowledgement must not be lost with it.
    let mut bytes = bytes::BytesMut::new();
    Packet::PubAck(delivery.packet_id.unwrap())
        .encode(&mut bytes)
        .unwrap();
    Packet::Disconnect.encode(&mut bytes).unwrap();
    client.send_raw(&bytes).await;
    client.expect_closed().await;
    let event = hub
        .wait_for_event(|event| {
            matches!(
                event,
                Event::DeliveryAcknowledged { .. } | Event::Disconnected { .. }
            )
        })
        .await;
    assert_eq!(
        event,
        Event::DeliveryAcknowledged {
            identity: "dev1".to_owned(),
            tag: DeliveryTag(9)
        }
    );
    let event = hub
        .wait_for_event(|event| matches!(event, Event::Disconnected { .. }))
        .await;
    assert_eq!(
        event,
        Event::Disconnected {
            identity: "dev1".to_owned(),
            disconnection: Disconnection {
                reason: DisconnectReason::ClientDisconnected,
                undelivered: vec![],
            }
        }
    );
}

#[tokio::test]
async fn module_inputs_are_delivered_on_the_inputs_topic() {
    let mut hub = TestHub::start().await;
    let (mut client, _) = hub.connect("dev1/mod1", false).await;
    client
        .subscribe("devices/dev1/modules/mod1/inputs/#", QoS::AtLeastOnce)
        .await;
    let message = Message::new("reading");
    hub.sessions()
        .send_module_input(
            &DeviceId::new("dev1").unwrap(),
            &ModuleId::new("mod1").unwrap(),
            "input1",
            &message,
            DeliveryTag(1),
        )
        .await
        .unwrap();
    expect!["PUBLISH qos=1 topic=devices/dev1/modules/mod1/inputs/input1/ payload=reading"]
        .assert_eq(&describe(&client.receive().await));
}

#[tokio::test]
async fn full_outbound_queue_refuses_pushes() {
    let config = FrontendConfig {
        outbound_queue_capacity: 2,
        max_outbound_inflight: 1,
        ..FrontendConfig::default()
    };
    let mut hub = TestHub::start_with(config).await;
    let (mut client, _) = hub.connect("dev1", false).await;
    client
        .subscribe("devices/dev1/messages/devicebound/#", QoS::AtLeastOnce)
        .await;
    let device = DeviceId::new("dev1").unwrap();
    let message = Message::new("x");
    // One delivery goes out and waits for its PUBACK (window of 1); two more fill the queue.
    for tag in 1..=3 {
        hub.sessions()
            .send_cloud_to_device(&device, &message, DeliveryTag(tag))
            .await
            .unwrap();
        if tag == 1 {
            assert!(matches!(client.receive().await, Some(Packet::Publish(_))));
        }
    }
    assert_eq!(
        hub.sessions()
            .send_cloud_to_device(&device, &message, DeliveryTag(4))
            .await,
        Err(PushError::QueueFull)
    );
    client.send(Packet::Disconnect).await;
    client.expect_closed().await;
    let Event::Disconnected { disconnection, .. } = hub
        .wait_for_event(|event| matches!(event, Event::Disconnected { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!(
        disconnection.undelivered,
        vec![DeliveryTag(1), DeliveryTag(2), DeliveryTag(3)]
    );
}

#[tokio::test]
async fn a_new_connection_takes_the_session_over() {
    let mut hub = TestHub::start().await;
    let (mut first, _) = hub.connect("dev1", false).await;
    first
        .subscribe("$iothub/methods/POST/#", QoS::AtLeastOnce)
        .await;
    let (mut second, connack) = hub.connect("dev1", false).await;
    assert_eq!(connack, accepted(true));
    first.expect_closed().await;
    let Event::Disconnected { disconnection, .. } = hub
        .wait_for_event(|event| matches!(event, Event::Disconnected { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!(disconnection.reason, DisconnectReason::SessionTakenOver);
    // The new connection holds the session and its subscriptions.
    hub.sessions()
        .send_method_request(&identity("dev1"), "m", "1", Bytes::new())
        .await
        .unwrap();
    expect!["PUBLISH qos=0 topic=$iothub/methods/POST/m/?$rid=1 payload="]
        .assert_eq(&describe(&second.receive().await));
    assert_eq!(hub.sessions().connected_count().await, Ok(1));
}

#[tokio::test]
async fn the_backend_can_disconnect_an_identity() {
    let mut hub = TestHub::start().await;
    let (mut device, _) = hub.connect("dev1", false).await;
    let (mut module, _) = hub.connect("dev1/mod1", false).await;
    let (mut other, _) = hub.connect("dev2", false).await;
    assert_eq!(
        hub.sessions().is_connected(&identity("dev1")).await,
        Ok(true)
    );
    assert_eq!(
        hub.sessions()
            .disconnect_device_and_modules(&DeviceId::new("dev1").unwrap())
            .await,
        Ok(2)
    );
    device.expect_closed().await;
    module.expect_closed().await;
    assert_eq!(
        hub.sessions().is_connected(&identity("dev1")).await,
        Ok(false)
    );
    assert_eq!(
        hub.sessions().disconnect(&identity("dev1")).await,
        Err(PushError::NotConnected)
    );
    other
        .publish_acknowledged("devices/dev2/messages/events/", b"fine")
        .await;
    assert_eq!(hub.sessions().disconnect(&identity("dev2")).await, Ok(()));
    other.expect_closed().await;
}

#[tokio::test]
async fn will_is_published_as_telemetry_when_the_connection_drops() {
    let mut hub = TestHub::start().await;
    hub.backend.register_with_password("dev1");
    let mut client = hub.open().await;
    let connect = Connect {
        will: Some(Will {
            topic: "devices/dev1/messages/events/%24.ct=text%2Fplain".to_owned(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
        }),
        ..sas_connect("dev1", false)
    };
    assert_eq!(client.connect(connect).await, Some(accepted(false)));
    drop(client);
    let Event::Telemetry { message, .. } = hub
        .wait_for_event(|event| matches!(event, Event::Telemetry { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!(message.body.as_ref(), b"gone");
    assert_eq!(message.system.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        message.application_property("iothub-MessageType"),
        Some(Some("Will"))
    );
}

/// Serves one in-memory connection with paused time; returns the client side.
async fn in_memory_connection(
    hub_frontend: &mqtt_frontend::Frontend<support::MemoryBackend>,
) -> TestClient<tokio::io::DuplexStream> {
    let (client_side, server_side) = tokio::io::duplex(64 * 1024);
    let frontend = hub_frontend.clone();
    tokio::spawn(async move {
        let transport_info = TransportInfo {
            transport: Transport::PlainTcp,
            client_certificate: None,
            remote_address: None,
        };
        frontend.serve_connection(server_side, transport_info).await;
    });
    TestClient::new(client_side).with_patience(Duration::from_secs(3600))
}

#[tokio::test(start_paused = true)]
async fn keep_alive_is_enforced_at_one_and_a_half_times() {
    let (frontend, backend, mut events) = support::frontend_with(FrontendConfig::default());
    backend.register_with_password("dev1");
    let mut client = in_memory_connection(&frontend).await;
    let connect = Connect {
        keep_alive: 10,
        ..sas_connect("dev1", false)
    };
    assert_eq!(client.connect(connect).await, Some(accepted(false)));
    let started = tokio::time::Instant::now();

    // Pings every 14 s keep it alive well past 15 s.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(14)).await;
        client.send(Packet::PingReq).await;
        assert_eq!(client.receive().await, Some(Packet::PingResp));
    }
    // Silence for longer than 15 s closes it, at 15 s after the last packet.
    let last_packet = tokio::time::Instant::now();
    client.expect_closed().await;
    assert_eq!(last_packet - started, Duration::from_secs(42));
    assert_eq!(
        tokio::time::Instant::now() - last_packet,
        Duration::from_secs(15)
    );
    loop {
        if let Some(support::Event::Disconnected { disconnection, .. }) = events.recv().await {
            assert_eq!(disconnection.reason, DisconnectReason::KeepAliveTimeout);
            break;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_socket_is_closed_after_the_connect_timeout() {
    let (frontend, _backend, _events) = support::frontend_with(FrontendConfig::default());
    let mut client = in_memory_connection(&frontend).await;
    let started = tokio::time::Instant::now();
    client.expect_closed().await;
    assert_eq!(
        tokio::time::Instant::now() - started,
        Duration::from_secs(30)
    );
}

#[tokio::test(start_paused = true)]
async fn keep_alive_zero_never_times_out() {
    let (frontend, backend, _events) = support::frontend_with(FrontendConfig::default());
    backend.register_with_password("dev1");
    let mut client = in_memory_connection(&frontend).await;
    let connect = Connect {
        keep_alive: 0,
        ..sas_connect("dev1", false)
    };
    assert_eq!(client.connect(connect).await, Some(accepted(false)));
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    client.send(Packet::PingReq).await;
    assert_eq!(client.receive().await, Some(Packet::PingResp));
}

#[tokio::test]
async fn pipelined_publishes_are_acknowledged_in_order() {
    let mut hub = TestHub::start().await;
    let (mut client, _) = hub.connect("dev1", false).await;
    let mut packet_ids: Vec<PacketId> = Vec::new();
    for index in 0..100 {
        packet_ids.push(
            client
                .publish_qos1(TELEMETRY_TOPIC, format!("m{index}").as_bytes())
                .await,
        );
    }
    for packet_id in packet_ids {
        assert_eq!(client.receive().await, Some(Packet::PubAck(packet_id)));
    }
    let mut bodies = Vec::new();
    while bodies.len() < 100 {
        if let Event::Telemetry { message, .. } = hub.next_event().await {
            bodies.push(String::from_utf8(message.body.to_vec()).unwrap());
        }
    }
    let expected: Vec<String> = (0..100).map(|index| format!("m{index}")).collect();
    assert_eq!(bodies, expected);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_is_not_enforced_while_reading_is_paused_for_backpressure() {
    let config = FrontendConfig {
        max_inbound_pending: 1,
        ..FrontendConfig::default()
    };
    let (frontend, backend, _events) = support::frontend_with(config);
    backend.register_with_password("dev1");
    let mut client = in_memory_connection(&frontend).await;
    let connect = Connect {
        keep_alive: 10,
        ..sas_connect("dev1", false)
    };
    assert_eq!(client.connect(connect).await, Some(accepted(false)));
    let held = client.publish_qos1(TELEMETRY_TOPIC, b"hold").await;
    client.send(Packet::PingReq).await;
    // The backend holds the only pipeline slot for a minute; the waiting PINGREQ is not read, and
    // the silence is not held against the client.
    tokio::time::sleep(Duration::from_secs(60)).await;
    backend.release_held_telemetry.notify_one();
    assert_eq!(client.receive().await, Some(Packet::PubAck(held)));
    assert_eq!(client.receive().await, Some(Packet::PingResp));
}
