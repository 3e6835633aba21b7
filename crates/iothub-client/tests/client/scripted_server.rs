//! The client against a scripted MQTT server on loopback TCP: the exact packets it sends, and
//! its handling of answers the real front end never gives (refusal codes 1 and 2, silence,
//! garbage, a hub that ignores PINGREQ).

use std::time::Duration;

use bytes::Bytes;
use expect_test::{Expect, expect};
use futures_util::{SinkExt, StreamExt};
use iothub_auth::{HostName, SymmetricKey};
use iothub_client::{
    ClientError, ClientOptions, ConnectReturnCode, ConnectionState, Credentials, DisconnectReason,
    Feature, IotHubClient, Transport,
};
use iothub_types::Message;
use mqtt_codec::{ConnAck, MqttCodec, Packet, QoS, SubAck, SubscribeReturnCode};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

use crate::support::{PATIENCE, wait_for_state};

struct ScriptedServer {
    listener: TcpListener,
}

type ServerConnection = Framed<TcpStream, MqttCodec>;

impl ScriptedServer {
    async fn start() -> ScriptedServer {
        ScriptedServer {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    fn options(&self, identity: &str) -> ClientOptions {
        let key =
            SymmetricKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap();
        let mut options = ClientOptions::new(
            HostName::new("localhost").unwrap(),
            identity.parse().unwrap(),
            Credentials::shared_access_key(key),
            Transport::PlainTcp,
        );
        options.port = self.listener.local_addr().unwrap().port();
        options
    }

    async fn accept(&self) -> ServerConnection {
        let (socket, _) = tokio::time::timeout(PATIENCE, self.listener.accept())
            .await
            .expect("client connects in time")
            .unwrap();
        Framed::new(socket, MqttCodec::new(1024 * 1024))
    }
}

async fn receive(connection: &mut ServerConnection) -> Packet {
    tokio::time::timeout(PATIENCE, connection.next())
        .await
        .expect("packet in time")
        .expect("connection open")
        .expect("well-formed packet")
}

async fn accept_connect(
    connection: &mut ServerConnection,
    return_code: ConnectReturnCode,
) -> Packet {
    let connect = receive(connection).await;
    connection
        .send(Packet::ConnAck(ConnAck {
            session_present: false,
            return_code,
        }))
        .await
        .unwrap();
    connect
}

fn describe(packet: &Packet) -> String {
    match packet {
        Packet::Connect(connect) => {
            let password = connect
                .password
                .as_ref()
                .map(|password| String::from_utf8_lossy(password).into_owned())
                .unwrap_or_default();
            // The signature and expiry change with the clock; their presence is what matters.
            let password_shape = password
                .split_once("&sig=")
                .and_then(|(prefix, rest)| {
                    let (signature, expiry) = rest.split_once("&se=")?;
                    let decoded = iothub_auth::percent_decode_utf8(signature)?;
                    let escaped_everything = !signature.contains(['/', '+', '=']);
                    Some(format!(
                        "{prefix}&sig=<{} base64 chars, fully escaped: {escaped_everything}>&se=<{} digits>",
                        decoded.len(),
                        expiry.len()
                    ))
                })
                .unwrap_or(password);
            format!(
                "CONNECT client_id={} clean_session={} keep_alive={} will={:?}\n  username={}\n  password={password_shape}",
                connect.client_id,
                connect.clean_session,
                connect.keep_alive,
                connect.will,
                connect.username.as_deref().unwrap_or_default(),
            )
        }
        Packet::Subscribe(subscribe) => format!(
            "SUBSCRIBE {}",
            subscribe
                .filters
                .iter()
                .map(|filter| format!("{} q{}", filter.filter, filter.requested_qos.as_u8()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Packet::Publish(publish) => format!(
            "PUBLISH q{} dup={} retain={} {} {:?}",
            publish.qos.as_u8(),
            publish.dup,
            publish.retain,
            publish.topic,
            String::from_utf8_lossy(&publish.payload)
        ),
        other => other.packet_type().to_string(),
    }
}

fn check(packets: &[Packet], expect: Expect) {
    let rendered: Vec<String> = packets.iter().map(describe).collect();
    expect.assert_eq(&rendered.join("\n"));
}

#[tokio::test]
async fn packets_on_the_wire_match_the_device_sdk() {
    let server = ScriptedServer::start().await;
    let mut options = server.options("dev1");
    options.subscribe_at_connect = vec![
        Feature::MethodRequests,
        Feature::IncomingMessages,
        Feature::DesiredPropertiesPatches,
    ];
    let connecting = tokio::spawn(IotHubClient::connect(options));
    let mut connection = server.accept().await;
    let mut seen = vec![accept_connect(&mut connection, ConnectReturnCode::Accepted).await];
    let (client, _events) = connecting.await.unwrap().unwrap();
    for _ in 0..3 {
        let subscribe = receive(&mut connection).await;
        let Packet::Subscribe(request) = &subscribe else {
            panic!("expected SUBSCRIBE, got {subscribe:?}");
        };
        connection
            .send(Packet::SubAck(SubAck {
                packet_id: request.packet_id,
                return_codes: vec![SubscribeReturnCode::Granted(QoS::AtLeastOnce)],
            }))
            .await
            .unwrap();
        seen.push(subscribe);
    }

    let mut message =
        Message::new("{\"t\":1}").with_application_property("alert", Some("high temp"));
    message.system.content_type = Some("application/json".to_owned());
    let sending = tokio::spawn({
        let client = client.clone();
        async move { client.send_telemetry(message).await }
    });
    let publish = receive(&mut connection).await;
    let Packet::Publish(telemetry) = &publish else {
        panic!("expected PUBLISH, got {publish:?}");
    };
    connection
        .send(Packet::PubAck(telemetry.packet_id.unwrap()))
        .await
        .unwrap();
    seen.push(publish);
    sending.await.unwrap().unwrap();

    // The first twin call subscribes to responses and waits for the SUBACK before publishing.
    let reading = tokio::spawn({
        let client = client.clone();
        async move { client.get_twin().await }
    });
    let subscribe = receive(&mut connection).await;
    let Packet::Subscribe(request) = &subscribe else {
        panic!("expected SUBSCRIBE, got {subscribe:?}");
    };
    let packet_id = request.packet_id;
    seen.push(subscribe);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), connection.next())
            .await
            .is_err(),
        "nothing may follow the SUBSCRIBE before its SUBACK"
    );
    connection
        .send(Packet::SubAck(SubAck {
            packet_id,
            return_codes: vec![SubscribeReturnCode::Granted(QoS::AtLeastOnce)],
        }))
        .await
        .unwrap();
    let twin_get = receive(&mut connection).await;
    let Packet::Publish(get) = &twin_get else {
        panic!("expected PUBLISH, got {twin_get:?}");
    };
    let rid = get.topic.split("$rid=").nth(1).unwrap().to_owned();
    assert_eq!(rid.len(), 36, "a UUID request id");
    connection
        .send(Packet::PubAck(get.packet_id.unwrap()))
        .await
        .unwrap();
    connection
        .send(Packet::Publish(mqtt_codec::Publish::at_most_once(
            format!("$iothub/twin/res/200/?$rid={rid}"),
            Bytes::from_static(br#"{"desired":{"$version":1},"reported":{"$version":1}}"#),
        )))
        .await
        .unwrap();
    seen.push(Packet::Publish(mqtt_codec::Publish {
        topic: get.topic.replace(&rid, "<uuid>"),
        ..get.clone()
    }));
    reading.await.unwrap().unwrap();

    client.shutdown().await;
    seen.push(receive(&mut connection).await);
    check(
        &seen,
        expect![[r#"
            CONNECT client_id=dev1 clean_session=false keep_alive=60 will=None
              username=localhost/dev1/?api-version=2021-04-12&DeviceClientType=outpost%2F0.1
              password=SharedAccessSignature sr=localhost%2Fdevices%2Fdev1&sig=<44 base64 chars, fully escaped: true>&se=<10 digits>
            SUBSCRIBE $iothub/methods/POST/# q1
            SUBSCRIBE $iothub/twin/PATCH/properties/desired/# q1
            SUBSCRIBE devices/dev1/messages/devicebound/# q1
            PUBLISH q1 dup=false retain=false devices/dev1/messages/events/%24.ct=application%2Fjson&alert=high%20temp "{\"t\":1}"
            SUBSCRIBE $iothub/twin/res/# q1
            PUBLISH q1 dup=false retain=false $iothub/twin/GET/?$rid=<uuid> " "
            DISCONNECT"#]],
    );
}

#[tokio::test]
async fn refusal_codes_and_broken_handshakes_are_typed_errors() {
    let server = ScriptedServer::start().await;
    let mut outcomes = Vec::new();
    for return_code in [
        ConnectReturnCode::UnacceptableProtocolVersion,
        ConnectReturnCode::IdentifierRejected,
        ConnectReturnCode::BadUserNameOrPassword,
    ] {
        let connecting = tokio::spawn(IotHubClient::connect(server.options("dev1")));
        let mut connection = server.accept().await;
        accept_connect(&mut connection, return_code).await;
        let error = connecting.await.unwrap().unwrap_err();
        outcomes.push(format!("{error} (transient: {})", error.is_transient()));
    }

    // A server that answers CONNECT with something else.
    let connecting = tokio::spawn(IotHubClient::connect(server.options("dev1")));
    let mut connection = server.accept().await;
    receive(&mut connection).await;
    connection.send(Packet::PingResp).await.unwrap();
    outcomes.push(connecting.await.unwrap().unwrap_err().to_string());

    // A server that hangs up.
    let connecting = tokio::spawn(IotHubClient::connect(server.options("dev1")));
    let mut connection = server.accept().await;
    receive(&mut connection).await;
    drop(connection);
    outcomes.push(connecting.await.unwrap().unwrap_err().to_string());

    // A server that says nothing.
    let mut options = server.options("dev1");
    options.connect_timeout = Duration::from_millis(200);
    let connecting = tokio::spawn(IotHubClient::connect(options));
    let _silent = server.accept().await;
    outcomes.push(connecting.await.unwrap().unwrap_err().to_string());

    expect![[r#"
        [
            "hub refused the connection with CONNACK code 1 (transient: false)",
            "hub refused the connection with CONNACK code 2 (transient: false)",
            "hub refused the connection with CONNACK code 4 (transient: false)",
            "protocol error while connecting: expected CONNACK, got PINGRESP",
            "i/o error while connecting: the hub closed the connection before CONNACK",
            "no CONNACK within 200 ms",
        ]
    "#]]
    .assert_debug_eq(&outcomes);
}

#[tokio::test]
async fn a_silent_hub_is_detected_by_keep_alive() {
    let server = ScriptedServer::start().await;
    let mut options = server.options("dev1");
    options.keep_alive = Duration::from_secs(1);
    let connecting = tokio::spawn(IotHubClient::connect(options));
    let mut connection = server.accept().await;
    accept_connect(&mut connection, ConnectReturnCode::Accepted).await;
    let (client, _events) = connecting.await.unwrap().unwrap();
    let mut state = client.connection_state();

    // After a second of silence the client pings; the hub does not answer.
    assert_eq!(receive(&mut connection).await, Packet::PingReq);
    let state_now = wait_for_state(&mut state, |state| !state.is_connected()).await;
    assert_eq!(
        state_now,
        ConnectionState::Disconnected {
            reason: DisconnectReason::KeepAliveTimeout
        }
    );
    // And it comes back on its own.
    let mut connection = server.accept().await;
    accept_connect(&mut connection, ConnectReturnCode::Accepted).await;
    wait_for_state(&mut state, ConnectionState::is_connected).await;
}

#[tokio::test]
async fn malformed_packets_and_refused_subscriptions() {
    let server = ScriptedServer::start().await;
    let connecting = tokio::spawn(IotHubClient::connect(server.options("dev1")));
    let mut connection = server.accept().await;
    accept_connect(&mut connection, ConnectReturnCode::Accepted).await;
    let (client, _events) = connecting.await.unwrap().unwrap();
    let mut state = client.connection_state();

    let enabling = tokio::spawn({
        let client = client.clone();
        async move { client.enable(Feature::MethodRequests).await }
    });
    let Packet::Subscribe(subscribe) = receive(&mut connection).await else {
        panic!("expected SUBSCRIBE");
    };
    connection
        .send(Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            return_codes: vec![SubscribeReturnCode::Failure],
        }))
        .await
        .unwrap();
    assert_eq!(
        enabling.await.unwrap(),
        Err(ClientError::SubscriptionRefused {
            filter: "$iothub/methods/POST/#".to_owned()
        })
    );

    // Packet type 15 is reserved.
    connection.get_mut().write_all(&[0xF0, 0x00]).await.unwrap();
    let state_now = wait_for_state(&mut state, |state| !state.is_connected()).await;
    expect![[r#"
        Disconnected {
            reason: ConnectionLost {
                message: "malformed packet from the hub: reserved packet type 15",
            },
        }
    "#]]
    .assert_debug_eq(&state_now);
}
