//! The client against the real MQTT front end (TLS and plain TCP) with the in-test backend.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use expect_test::{Expect, expect};
use iothub_auth::{SasToken, SasTokenStyle, SymmetricKey};
use iothub_client::{
    ClientError, ClientEvent, ConnectError, ConnectReturnCode, ConnectionState, Credentials,
    DisconnectReason, Feature, IotHubClient, ReconnectPolicy, TokenError, TokenRequest,
    WhileDisconnected,
};
use iothub_types::{Message, SystemProperties};
use mqtt_frontend::{ConnectRequest, DeliveryTag, DisconnectReason as HubDisconnectReason};
use serde_json::json;
use tls::{CertificateValidity, ClientCertificateRequest};

use crate::support::{
    HubEvent, Listen, PATIENCE, Registration, TestHub, identity, next_client_event, wait_for_state,
};

fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Renders what the hub learned from a CONNECT, with the token's signature and exact expiry
/// replaced by what they must be.
fn describe_connect(request: &ConnectRequest) -> String {
    let password = match &request.password {
        None => "none".to_owned(),
        Some(password) => {
            let token = SasToken::parse(std::str::from_utf8(password).unwrap()).unwrap();
            let lifetime_secs = token.expiry_unix_secs().saturating_sub(unix_now_secs());
            let signature = token.signature_encoded();
            let device_sdk_signature = !signature.contains('/') && !signature.contains('+');
            format!(
                "sr={} sig_percent_encoded={device_sdk_signature} lifetime_about_an_hour={} skn={:?}",
                token.resource_encoded(),
                (3590..=3600).contains(&lifetime_secs),
                token.key_name(),
            )
        }
    };
    format!(
        "client_id={} identity={} clean_session={} keep_alive_secs={} transport={:?}\n\
         username host={} api_version={:?} device_client_type={:?} model_id={:?} other={:?}\n\
         password {password}\n\
         client_certificate={}",
        request.client_id,
        request.identity,
        request.clean_session,
        request.keep_alive_secs,
        request.transport,
        request.username.host_name,
        request.username.api_version,
        request.username.device_client_type,
        request.username.model_id,
        request.username.other_parameters,
        request.client_certificate.is_some(),
    )
}

fn check_connect(request: &HubEvent, expect: Expect) {
    let HubEvent::Connect(request) = request else {
        panic!("expected a CONNECT, got {request:?}");
    };
    expect.assert_eq(&describe_connect(request));
}

async fn next_connect(hub: &mut TestHub) -> HubEvent {
    hub.wait_for(|event| matches!(event, HubEvent::Connect(_)))
        .await
}

async fn next_telemetry(hub: &mut TestHub) -> Message {
    match hub
        .wait_for(|event| matches!(event, HubEvent::Telemetry { .. }))
        .await
    {
        HubEvent::Telemetry { message, .. } => message,
        _ => unreachable!("wait_for returned a non-matching event"),
    }
}

#[tokio::test]
async fn device_connects_like_the_sdk_and_telemetry_is_acknowledged() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let (client, _events) = IotHubClient::connect(hub.options("dev1")).await.unwrap();
    check_connect(
        &next_connect(&mut hub).await,
        expect![[r#"
            client_id=dev1 identity=dev1 clean_session=false keep_alive_secs=60 transport=Tls
            username host=localhost api_version=Some("2021-04-12") device_client_type=Some("outpost/0.1") model_id=None other=[]
            password sr=localhost%2Fdevices%2Fdev1 sig_percent_encoded=true lifetime_about_an_hour=true skn=None
            client_certificate=false"#]],
    );
    assert_eq!(
        *client.connection_state().borrow(),
        ConnectionState::Connected
    );

    let mut message = Message::new("21.5")
        .with_application_property("alert", Some("high temp"))
        .with_application_property("a&b", Some("x=y"));
    message.system = SystemProperties {
        message_id: Some("mid-1".to_owned()),
        content_type: Some("application/json".to_owned()),
        content_encoding: Some("utf-8".to_owned()),
        ..SystemProperties::default()
    };
    client.send_telemetry(message.clone()).await.unwrap();
    let received = next_telemetry(&mut hub).await;
    assert_eq!(received, message);

    let too_large = Message::new(vec![0u8; 300 * 1024]);
    let error = client.send_telemetry(too_large).await.unwrap_err();
    expect![[r#"InvalidMessage(TooLarge { size: 307200, limit: 262144 })"#]]
        .assert_eq(&format!("{error:?}"));
}

#[tokio::test]
async fn twin_get_and_reported_patches_over_plain_tcp() {
    let mut hub = TestHub::start(Listen::PlainTcp).await;
    let (client, _events) = IotHubClient::connect(hub.options("dev1")).await.unwrap();
    let twin = client.get_twin().await.unwrap();
    expect![[r#"{"desired":{"$version":4,"mode":"auto"},"reported":{"$version":1}}"#]]
        .assert_eq(&twin.to_string());
    // The twin response subscription was sent lazily, before the first request.
    hub.wait_for_subscriptions("dev1", &["$iothub/twin/res/#"])
        .await;

    let first = client
        .patch_reported(&json!({"temperature": 21, "nested": {"gone": null}}))
        .await
        .unwrap();
    let second = client
        .patch_reported(&json!({"temperature": 22}))
        .await
        .unwrap();
    assert_eq!((first, second), (2, 3));
    let twin = client.get_twin().await.unwrap();
    assert_eq!(twin["reported"]["$version"], json!(3));
}

#[tokio::test]
async fn desired_patches_arrive_as_events() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let mut options = hub.options("dev1");
    options.subscribe_at_connect = vec![Feature::DesiredPropertiesPatches];
    let (_client, mut events) = IotHubClient::connect(options).await.unwrap();
    hub.wait_for_subscriptions("dev1", &["$iothub/twin/PATCH/properties/desired/#"])
        .await;
    hub.sessions()
        .send_desired_properties_patch(&identity("dev1"), 6, r#"{"fan":"off","$version":6}"#.into())
        .await
        .unwrap();
    let event = next_client_event(&mut events).await;
    assert_eq!(
        event,
        ClientEvent::DesiredPropertiesPatch {
            version: 6,
            patch: json!({"fan": "off", "$version": 6}),
        }
    );
}

#[tokio::test]
async fn direct_method_round_trip() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let (client, mut events) = IotHubClient::connect(hub.options("dev1")).await.unwrap();
    client.enable(Feature::MethodRequests).await.unwrap();
    hub.sessions()
        .send_method_request(
            &identity("dev1"),
            "reboot now",
            "7",
            r#"{"delay":3}"#.into(),
        )
        .await
        .unwrap();
    let ClientEvent::MethodRequest(request) = next_client_event(&mut events).await else {
        panic!("expected a method request");
    };
    assert_eq!(
        (request.method_name.as_str(), request.rid.as_str()),
        ("reboot now", "7")
    );
    assert_eq!(request.payload_json().unwrap(), json!({"delay": 3}));
    client
        .respond(&request.rid, 200, &json!({"ok": true}))
        .await
        .unwrap();
    let HubEvent::MethodResponse { response, .. } = hub
        .wait_for(|event| matches!(event, HubEvent::MethodResponse { .. }))
        .await
    else {
        unreachable!("wait_for returned a non-matching event");
    };
    assert_eq!(
        (
            response.rid.as_str(),
            response.status,
            &response.payload[..]
        ),
        ("7", 200, &br#"{"ok":true}"#[..])
    );
    assert_eq!(
        client.respond("a&b", 200, &json!(null)).await,
        Err(ClientError::InvalidTopicPart {
            what: "method request id",
            value: "a&b".to_owned()
        })
    );
}

#[tokio::test]
async fn cloud_to_device_messages_are_delivered_and_acknowledged() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let mut options = hub.options("dev1");
    options.subscribe_at_connect = vec![Feature::IncomingMessages];
    // A queue of one: the later deliveries wait in the socket until the application reads.
    options.event_queue_capacity = 1;
    let (_client, mut events) = IotHubClient::connect(options).await.unwrap();
    hub.wait_for_subscriptions("dev1", &["devices/dev1/messages/devicebound/#"])
        .await;
    for (index, body) in ["one", "two", "three"].into_iter().enumerate() {
        let mut message = Message::new(body).with_application_property("prop1", Some("v 1"));
        message.system.message_id = Some(format!("m-{index}"));
        hub.sessions()
            .send_cloud_to_device(
                &"dev1".parse().unwrap(),
                &message,
                DeliveryTag(index as u64),
            )
            .await
            .unwrap();
    }
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let ClientEvent::CloudToDevice(message) = next_client_event(&mut events).await else {
            panic!("expected a cloud-to-device message");
        };
        assert_eq!(
            message.application,
            vec![("prop1".to_owned(), Some("v 1".to_owned()))]
        );
        bodies.push(String::from_utf8(message.body.to_vec()).unwrap());
    }
    assert_eq!(bodies, ["one", "two", "three"]);
    for index in 0..3 {
        let acknowledged = hub
            .wait_for(|event| matches!(event, HubEvent::DeliveryAcknowledged { .. }))
            .await;
        assert_eq!(
            acknowledged,
            HubEvent::DeliveryAcknowledged {
                identity: "dev1".to_owned(),
                tag: DeliveryTag(index)
            }
        );
    }
}

#[tokio::test]
async fn module_inputs_and_outputs() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let mut options = hub.options("edge1/filter");
    options.subscribe_at_connect = vec![Feature::IncomingMessages];
    let (client, mut events) = IotHubClient::connect(options).await.unwrap();
    check_connect(
        &next_connect(&mut hub).await,
        expect![[r#"
            client_id=edge1/filter identity=edge1/filter clean_session=false keep_alive_secs=60 transport=Tls
            username host=localhost api_version=Some("2021-04-12") device_client_type=Some("outpost/0.1") model_id=None other=[]
            password sr=localhost%2Fdevices%2Fedge1%2Fmodules%2Ffilter sig_percent_encoded=true lifetime_about_an_hour=true skn=None
            client_certificate=false"#]],
    );
    hub.wait_for_subscriptions("edge1/filter", &["devices/edge1/modules/filter/inputs/#"])
        .await;
    hub.sessions()
        .send_module_input(
            &"edge1".parse().unwrap(),
            &"filter".parse().unwrap(),
            "input1",
            &Message::new("reading"),
            DeliveryTag(1),
        )
        .await
        .unwrap();
    let ClientEvent::ModuleInput {
        input_name,
        message,
    } = next_client_event(&mut events).await
    else {
        panic!("expected a module input");
    };
    assert_eq!(input_name, "input1");
    assert_eq!(message.system.input_name.as_deref(), Some("input1"));
    assert_eq!(&message.body[..], b"reading");

    client
        .send_output("output1", Message::new("filtered"))
        .await
        .unwrap();
    let received = next_telemetry(&mut hub).await;
    assert_eq!(received.system.output_name.as_deref(), Some("output1"));
    assert_eq!(&received.body[..], b"filtered");
}

#[tokio::test]
async fn reconnects_after_the_hub_drops_the_connection_and_keeps_the_session() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let (client, mut events) = IotHubClient::connect(hub.options("dev1")).await.unwrap();
    client.enable(Feature::MethodRequests).await.unwrap();
    let mut state = client.connection_state();
    hub.wait_for(|event| matches!(event, HubEvent::Connected { .. }))
        .await;

    hub.sessions().disconnect(&identity("dev1")).await.unwrap();
    let reconnected = hub
        .wait_for(|event| matches!(event, HubEvent::Connected { .. }))
        .await;
    assert_eq!(
        reconnected,
        HubEvent::Connected {
            identity: "dev1".to_owned(),
            session_present: true
        }
    );
    wait_for_state(&mut state, ConnectionState::is_connected).await;

    // The session kept the subscription, so method requests flow without a new SUBSCRIBE.
    hub.sessions()
        .send_method_request(&identity("dev1"), "ping", "1", "{}".into())
        .await
        .unwrap();
    assert!(matches!(
        next_client_event(&mut events).await,
        ClientEvent::MethodRequest(_)
    ));
    client.send_telemetry(Message::new("after")).await.unwrap();
}

#[tokio::test]
async fn resubscribes_when_a_restarted_hub_lost_the_session() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let mut options = hub.options("dev1");
    options.subscribe_at_connect = vec![Feature::MethodRequests];
    let (client, mut events) = IotHubClient::connect(options).await.unwrap();
    hub.wait_for_subscriptions("dev1", &["$iothub/methods/POST/#"])
        .await;
    // Twin responses were subscribed on first use; they come back after the restart too.
    client.get_twin().await.unwrap();
    hub.wait_for_subscriptions("dev1", &["$iothub/methods/POST/#", "$iothub/twin/res/#"])
        .await;

    hub.stop().await;
    hub.resume(true).await;
    let reconnected = hub
        .wait_for(|event| matches!(event, HubEvent::Connected { .. }))
        .await;
    assert_eq!(
        reconnected,
        HubEvent::Connected {
            identity: "dev1".to_owned(),
            session_present: false
        }
    );
    hub.wait_for_subscriptions("dev1", &["$iothub/methods/POST/#", "$iothub/twin/res/#"])
        .await;
    hub.sessions()
        .send_method_request(&identity("dev1"), "ping", "2", "{}".into())
        .await
        .unwrap();
    assert!(matches!(
        next_client_event(&mut events).await,
        ClientEvent::MethodRequest(_)
    ));
}

#[tokio::test]
async fn fails_fast_while_disconnected_and_reconnects_at_once_when_asked() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let mut options = hub.options("dev1");
    // Without a nudge the client would wait half an hour or more before trying again.
    options.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_secs(3600),
        max_delay: Duration::from_secs(3600),
        multiplier: 2,
        jitter_percent: 50,
    };
    let (client, _events) = IotHubClient::connect(options).await.unwrap();
    let mut state = client.connection_state();

    hub.stop().await;
    let state_now = wait_for_state(&mut state, |state| !state.is_connected()).await;
    // The front end closes the TLS stream with or without close_notify, depending on timing.
    assert!(
        matches!(
            state_now,
            ConnectionState::Disconnected {
                reason: DisconnectReason::ConnectionLost { .. }
            }
        ),
        "{state_now:?}"
    );
    assert_eq!(
        client.send_telemetry(Message::new("offline")).await,
        Err(ClientError::NotConnected)
    );
    assert_eq!(client.get_twin().await, Err(ClientError::NotConnected));

    hub.resume(false).await;
    client.reconnect_now();
    wait_for_state(&mut state, ConnectionState::is_connected).await;
    client.send_telemetry(Message::new("online")).await.unwrap();
    assert_eq!(&next_telemetry(&mut hub).await.body[..], b"online");
}

#[tokio::test]
async fn queueing_mode_sends_what_waited_for_the_connection() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let mut options = hub.options("dev1");
    options.while_disconnected = WhileDisconnected::Queue;
    options.reconnect.initial_delay = Duration::from_secs(3600);
    options.reconnect.max_delay = Duration::from_secs(3600);
    let (client, _events) = IotHubClient::connect(options).await.unwrap();
    let mut state = client.connection_state();
    hub.stop().await;
    wait_for_state(&mut state, |state| !state.is_connected()).await;

    let sending = tokio::spawn({
        let client = client.clone();
        async move { client.send_telemetry(Message::new("waited")).await }
    });
    let twin = tokio::spawn({
        let client = client.clone();
        async move { client.get_twin().await }
    });
    hub.resume(false).await;
    client.reconnect_now();
    tokio::time::timeout(PATIENCE, sending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let twin = tokio::time::timeout(PATIENCE, twin)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(twin["desired"]["mode"], json!("auto"));
    assert_eq!(&next_telemetry(&mut hub).await.body[..], b"waited");
}

#[tokio::test]
async fn refused_connections_are_typed_errors() {
    let hub = TestHub::start(Listen::Tls).await;

    let mut wrong_key = hub.options("dev1");
    wrong_key.credentials = Credentials::shared_access_key(SymmetricKey::generate_random());
    let error = IotHubClient::connect(wrong_key).await.unwrap_err();
    assert_eq!(
        error,
        ConnectError::Refused {
            code: ConnectReturnCode::NotAuthorized
        }
    );
    assert!(!error.is_transient());

    let unknown = hub.options_with(
        "nobody",
        Credentials::shared_access_key(SymmetricKey::generate_random()),
    );
    assert_eq!(
        IotHubClient::connect(unknown).await.unwrap_err(),
        ConnectError::Refused {
            code: ConnectReturnCode::NotAuthorized
        }
    );

    *hub.backend.busy.lock().unwrap() = true;
    let error = IotHubClient::connect(hub.options("dev2"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ConnectError::Refused {
            code: ConnectReturnCode::ServerUnavailable
        }
    );
    assert!(error.is_transient());

    let mut untrusted = hub.options("dev3");
    untrusted.transport = iothub_client::Transport::Tls {
        trusted_roots: vec![
            tls::CertificateAuthority::generate("Other CA", CertificateValidity::days_from_now(1))
                .unwrap()
                .certificate()
                .clone(),
        ],
    };
    assert!(matches!(
        IotHubClient::connect(untrusted).await.unwrap_err(),
        ConnectError::Tls { .. }
    ));
}

#[tokio::test]
async fn spawned_client_reports_refusals_and_keeps_trying() {
    let hub = TestHub::start(Listen::Tls).await;
    *hub.backend.busy.lock().unwrap() = true;
    let (client, _events) = IotHubClient::spawn(hub.options("dev1")).unwrap();
    let mut state = client.connection_state();
    let refused = wait_for_state(&mut state, |state| {
        matches!(
            state,
            ConnectionState::Disconnected {
                reason: DisconnectReason::ConnectFailed(_)
            }
        )
    })
    .await;
    assert_eq!(
        refused,
        ConnectionState::Disconnected {
            reason: DisconnectReason::ConnectFailed(ConnectError::Refused {
                code: ConnectReturnCode::ServerUnavailable
            })
        }
    );
    *hub.backend.busy.lock().unwrap() = false;
    wait_for_state(&mut state, ConnectionState::is_connected).await;
}

#[tokio::test]
async fn x509_device_connects_without_password() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let certificate = tls::self_signed_client_certificate(&ClientCertificateRequest {
        common_name: "x509dev".to_owned(),
        validity: CertificateValidity::days_from_now(1),
    })
    .unwrap();
    hub.backend.register(
        "x509dev",
        Registration {
            key: None,
            thumbprint: Some(tls::thumbprint_sha1_hex(certificate.end_entity())),
        },
    );
    let options = hub.options_with("x509dev", Credentials::X509(certificate));
    let (client, _events) = IotHubClient::connect(options).await.unwrap();
    check_connect(
        &next_connect(&mut hub).await,
        expect![[r#"
            client_id=x509dev identity=x509dev clean_session=false keep_alive_secs=60 transport=Tls
            username host=localhost api_version=Some("2021-04-12") device_client_type=Some("outpost/0.1") model_id=None other=[]
            password none
            client_certificate=true"#]],
    );
    client.send_telemetry(Message::new("x509")).await.unwrap();

    let mut plain = hub.options_with(
        "x509dev",
        Credentials::X509(
            tls::self_signed_client_certificate(&ClientCertificateRequest {
                common_name: "x509dev".to_owned(),
                validity: CertificateValidity::days_from_now(1),
            })
            .unwrap(),
        ),
    );
    plain.transport = iothub_client::Transport::PlainTcp;
    assert!(matches!(
        IotHubClient::connect(plain).await.unwrap_err(),
        ConnectError::Configuration { .. }
    ));
}

#[tokio::test]
async fn token_provider_tokens_are_renewed_by_reconnecting() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let key = SymmetricKey::generate_random();
    hub.backend.register(
        "edge1/$edgeAgent",
        Registration {
            key: Some(key.clone()),
            thumbprint: None,
        },
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let provider = {
        let calls = calls.clone();
        move |request: TokenRequest| {
            calls.fetch_add(1, Ordering::SeqCst);
            let key = key.clone();
            async move {
                // Tokens valid for two seconds: the client renews them after one.
                Ok::<_, TokenError>(SasToken::sign(
                    SasTokenStyle::DeviceSdk,
                    &request.scope,
                    &key,
                    None,
                    unix_now_secs() + 2,
                ))
            }
        }
    };
    let options = hub.options_with("edge1/$edgeAgent", Credentials::token_provider(provider));
    let (client, _events) = IotHubClient::connect(options).await.unwrap();

    // Telemetry keeps flowing through the renewal: nothing fails, not even in fail-fast mode.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = tokio::spawn({
        let client = client.clone();
        let stop = stop.clone();
        async move {
            let mut results = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                results.push(client.send_telemetry(Message::new("steady")).await);
            }
            results
        }
    });
    let disconnected = hub
        .wait_for(|event| matches!(event, HubEvent::Disconnected { .. }))
        .await;
    let HubEvent::Disconnected { disconnection, .. } = disconnected else {
        unreachable!("wait_for returned a non-matching event");
    };
    assert_eq!(
        disconnection.reason,
        HubDisconnectReason::ClientDisconnected
    );
    hub.wait_for(|event| matches!(event, HubEvent::Connected { .. }))
        .await;
    // A few more messages after the reconnection, then stop.
    for _ in 0..3 {
        hub.wait_for(|event| matches!(event, HubEvent::Telemetry { .. }))
            .await;
    }
    stop.store(true, Ordering::SeqCst);
    let results = tokio::time::timeout(PATIENCE, sender)
        .await
        .unwrap()
        .unwrap();
    assert!(results.len() > 3);
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|result| result.is_err())
    );
    assert!(calls.load(Ordering::SeqCst) >= 2);
    wait_for_state(
        &mut client.connection_state(),
        ConnectionState::is_connected,
    )
    .await;

    let failing = hub.options_with(
        "edge1/$edgeAgent",
        Credentials::token_provider(|_request: TokenRequest| async {
            Err(TokenError::new("workload API unavailable"))
        }),
    );
    assert_eq!(
        IotHubClient::connect(failing).await.unwrap_err(),
        ConnectError::Token(TokenError::new("workload API unavailable"))
    );
}

#[tokio::test]
async fn operations_time_out_and_the_window_applies_back_pressure() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let mut options = hub.options("dev1");
    options.max_in_flight = 1;
    let (client, _events) = IotHubClient::connect(options).await.unwrap();

    let mut held = pin!(client.send_telemetry(Message::new("hold")));
    let mut waiting = pin!(client.send_telemetry(Message::new("after")));
    // The first message takes the only slot and the hub holds it; the second cannot go out.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut held)
            .await
            .is_err()
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut waiting)
            .await
            .is_err()
    );
    while let Ok(event) = hub.events.try_recv() {
        assert!(!matches!(event, HubEvent::Telemetry { .. }), "{event:?}");
    }
    hub.backend.release_held_telemetry.notify_one();
    held.await.unwrap();
    waiting.await.unwrap();
    assert_eq!(&next_telemetry(&mut hub).await.body[..], b"hold");
    assert_eq!(&next_telemetry(&mut hub).await.body[..], b"after");

    let mut impatient = hub.options("dev2");
    impatient.operation_timeout = Duration::from_millis(300);
    let (client, _events) = IotHubClient::connect(impatient).await.unwrap();
    assert_eq!(
        client.send_telemetry(Message::new("hold")).await,
        Err(ClientError::Timeout { timeout_ms: 300 })
    );
    hub.backend.release_held_telemetry.notify_one();
    // The late PUBACK is ignored and the client carries on.
    client.send_telemetry(Message::new("next")).await.unwrap();
}

#[tokio::test]
async fn shutdown_disconnects_and_closes_everything() {
    let mut hub = TestHub::start(Listen::Tls).await;
    let (client, mut events) = IotHubClient::connect(hub.options("dev1")).await.unwrap();
    let other_handle = client.clone();
    client.shutdown().await;
    let HubEvent::Disconnected { disconnection, .. } = hub
        .wait_for(|event| matches!(event, HubEvent::Disconnected { .. }))
        .await
    else {
        unreachable!("wait_for returned a non-matching event");
    };
    assert_eq!(
        disconnection.reason,
        HubDisconnectReason::ClientDisconnected
    );
    assert_eq!(
        *other_handle.connection_state().borrow(),
        ConnectionState::Disconnected {
            reason: DisconnectReason::Shutdown
        }
    );
    assert_eq!(
        other_handle.send_telemetry(Message::new("late")).await,
        Err(ClientError::Closed)
    );
    assert_eq!(
        tokio::time::timeout(PATIENCE, events.next()).await.unwrap(),
        None
    );
}
