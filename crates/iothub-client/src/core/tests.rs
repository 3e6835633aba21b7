//! Tests of the session core: scripted snapshots through one `check` helper, and a property test
//! that every operation is completed exactly once whatever the hub and the network do.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use expect_test::{Expect, expect};
use iothub_topics::{ClientPublish, ClientSubscription};
use iothub_types::Identity;
use mqtt_codec::{Packet, PacketId, Publish, QoS, SubAck, SubscribeReturnCode};
use proptest::prelude::*;
use tokio::time::Instant;

use super::{Action, Core, Request, TwinRequest};
use crate::events::ClientEvent;
use crate::options::WhileDisconnected;

/// One scripted step.
enum Step {
    /// Submit an operation labelled `label`, due `timeout_secs` after the script's start.
    Submit(&'static str, Request, u64),
    Connected {
        session_present: bool,
    },
    Lost,
    Packet(Packet),
    /// Expire operations as if `secs` had passed since the script's start.
    Expire(u64),
}

fn check(
    identity: &str,
    mode: WhileDisconnected,
    initial: Vec<ClientSubscription>,
    steps: Vec<Step>,
    expect: Expect,
) {
    let start = Instant::now();
    let identity: Identity = identity.parse().unwrap();
    let mut core: Core<&'static str> = Core::new(identity, mode, Duration::from_secs(30), initial);
    let mut transcript = String::new();
    for step in steps {
        let mut out = Vec::new();
        let heading = match step {
            Step::Submit(label, request, timeout_secs) => {
                core.submit(
                    request,
                    label,
                    start + Duration::from_secs(timeout_secs),
                    &mut out,
                );
                format!("submit {label}")
            }
            Step::Connected { session_present } => {
                core.on_connected(session_present, &mut out);
                format!("connected session_present={session_present}")
            }
            Step::Lost => {
                core.on_connection_lost(&mut out);
                "lost".to_owned()
            }
            Step::Packet(packet) => {
                let heading = format!("hub {}", describe_packet(&packet));
                if let Err(violation) = core.on_packet(packet, &mut out) {
                    transcript.push_str(&format!("{heading}\n  ! {violation}\n"));
                    continue;
                }
                heading
            }
            Step::Expire(secs) => {
                core.expire(start + Duration::from_secs(secs), &mut out);
                format!("expire at {secs}s")
            }
        };
        transcript.push_str(&heading);
        transcript.push('\n');
        for action in out {
            transcript.push_str(&format!("  {}\n", describe_action(&action)));
        }
    }
    transcript.push_str(&format!("in flight: {}\n", core.in_flight()));
    expect.assert_eq(&transcript);
}

fn describe_packet(packet: &Packet) -> String {
    match packet {
        Packet::Publish(publish) => format!(
            "PUBLISH q{} {}{} {}",
            publish.qos.as_u8(),
            publish
                .packet_id
                .map(|packet_id| format!("#{packet_id} "))
                .unwrap_or_default(),
            publish.topic,
            String::from_utf8_lossy(&publish.payload)
        ),
        Packet::Subscribe(subscribe) => format!(
            "SUBSCRIBE #{} {}",
            subscribe.packet_id,
            subscribe
                .filters
                .iter()
                .map(|filter| format!("{} q{}", filter.filter, filter.requested_qos.as_u8()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Packet::SubAck(suback) => format!(
            "SUBACK #{} {:?}",
            suback.packet_id,
            suback
                .return_codes
                .iter()
                .map(|code| code.as_u8())
                .collect::<Vec<_>>()
        ),
        Packet::PubAck(packet_id) => format!("PUBACK #{packet_id}"),
        other => format!("{}", other.packet_type()),
    }
}

fn describe_action(action: &Action<&'static str>) -> String {
    match action {
        Action::Send(packet) => format!("send {}", describe_packet(packet)),
        Action::Complete(label, result) => format!("complete {label}: {result:?}"),
        Action::Deliver { event, ack } => format!(
            "deliver {} ack={}",
            describe_event(event),
            ack.map_or("none".to_owned(), |packet_id| packet_id.to_string())
        ),
    }
}

fn describe_event(event: &ClientEvent) -> String {
    match event {
        ClientEvent::DesiredPropertiesPatch { version, patch } => {
            format!("desired v{version} {patch}")
        }
        ClientEvent::MethodRequest(request) => format!(
            "method {} rid={} {}",
            request.method_name,
            request.rid,
            String::from_utf8_lossy(&request.payload)
        ),
        ClientEvent::CloudToDevice(message) => format!(
            "c2d {} mid={:?} app={:?}",
            String::from_utf8_lossy(&message.body),
            message.system.message_id,
            message.application
        ),
        // The connection task makes these out of `CloudToDevice`; the core never does.
        ClientEvent::CloudToDeviceToAcknowledge { message, ack } => format!(
            "c2d to acknowledge {} {ack:?}",
            String::from_utf8_lossy(&message.body)
        ),
        ClientEvent::ModuleInput {
            input_name,
            message,
        } => format!(
            "input {input_name} {} input_name={:?}",
            String::from_utf8_lossy(&message.body),
            message.system.input_name
        ),
    }
}

fn packet_id(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn telemetry(body: &'static str) -> Request {
    Request::Publish {
        topic: "devices/dev1/messages/events/".to_owned(),
        payload: Bytes::from_static(body.as_bytes()),
    }
}

fn twin_get(rid: &str) -> Request {
    Request::Twin(TwinRequest::Get {
        rid: rid.to_owned(),
    })
}

fn twin_patch(rid: &str, patch: &'static str) -> Request {
    Request::Twin(TwinRequest::PatchReported {
        rid: rid.to_owned(),
        patch: Bytes::from_static(patch.as_bytes()),
    })
}

fn suback(value: u16, code: SubscribeReturnCode) -> Step {
    Step::Packet(Packet::SubAck(SubAck {
        packet_id: packet_id(value),
        return_codes: vec![code],
    }))
}

fn granted(value: u16) -> Step {
    suback(value, SubscribeReturnCode::Granted(QoS::AtLeastOnce))
}

fn puback(value: u16) -> Step {
    Step::Packet(Packet::PubAck(packet_id(value)))
}

fn hub_publish(topic: &str, payload: &'static str) -> Step {
    Step::Packet(Packet::Publish(Publish::at_most_once(
        topic,
        Bytes::from_static(payload.as_bytes()),
    )))
}

fn hub_publish_qos1(value: u16, topic: &str, payload: &'static str) -> Step {
    Step::Packet(Packet::Publish(Publish::with_packet_id(
        topic,
        QoS::AtLeastOnce,
        packet_id(value),
        Bytes::from_static(payload.as_bytes()),
    )))
}

fn c2d_subscription() -> ClientSubscription {
    ClientSubscription::CloudToDevice {
        device: "dev1".parse().unwrap(),
    }
}

#[test]
fn telemetry_fails_fast_offline_then_completes_on_puback() {
    check(
        "dev1",
        WhileDisconnected::FailFast,
        vec![ClientSubscription::MethodRequests, c2d_subscription()],
        vec![
            Step::Submit("early", telemetry("a"), 30),
            Step::Connected {
                session_present: false,
            },
            Step::Submit("t1", telemetry("b"), 30),
            Step::Submit("t2", telemetry("c"), 30),
            puback(4),
            granted(1),
            puback(3),
            puback(3),
        ],
        expect![[r#"
            submit early
              complete early: Err(NotConnected)
            connected session_present=false
              send SUBSCRIBE #1 $iothub/methods/POST/# q1
              send SUBSCRIBE #2 devices/dev1/messages/devicebound/# q1
            submit t1
              send PUBLISH q1 #3 devices/dev1/messages/events/ b
            submit t2
              send PUBLISH q1 #4 devices/dev1/messages/events/ c
            hub PUBACK #4
              complete t2: Ok(Done)
            hub SUBACK #1 [1]
            hub PUBACK #3
              complete t1: Ok(Done)
            hub PUBACK #3
            in flight: 0
        "#]],
    );
}

#[test]
fn twin_calls_subscribe_first_and_correlate_by_rid() {
    check(
        "dev1",
        WhileDisconnected::FailFast,
        vec![],
        vec![
            Step::Connected {
                session_present: false,
            },
            Step::Submit("get", twin_get("r1"), 30),
            Step::Submit("patch", twin_patch("r2", r#"{"a":1}"#), 30),
            granted(1),
            // The response may overtake the PUBACK; the late PUBACK is then ignored.
            hub_publish(
                "$iothub/twin/res/200/?$rid=r1",
                r#"{"desired":{"$version":1},"reported":{"$version":1}}"#,
            ),
            puback(2),
            puback(3),
            hub_publish("$iothub/twin/res/204/?$rid=r2&$version=7", ""),
            hub_publish("$iothub/twin/res/204/?$rid=unknown&$version=8", ""),
            Step::Submit("second get", twin_get("r3"), 30),
            hub_publish(
                "$iothub/twin/res/429/?$rid=r3",
                r#"{"message":"slow down"}"#,
            ),
            Step::Submit("bad patch", twin_patch("r4", "{}"), 30),
            hub_publish("$iothub/twin/res/204/?$rid=r4", ""),
            Step::Submit("bad get", twin_get("r5"), 30),
            hub_publish("$iothub/twin/res/200/?$rid=r5", "not json"),
        ],
        expect![[r#"
            connected session_present=false
            submit get
              send SUBSCRIBE #1 $iothub/twin/res/# q1
            submit patch
            hub SUBACK #1 [1]
              send PUBLISH q1 #2 $iothub/twin/GET/?$rid=r1  
              send PUBLISH q1 #3 $iothub/twin/PATCH/properties/reported/?$rid=r2 {"a":1}
            hub PUBLISH q0 $iothub/twin/res/200/?$rid=r1 {"desired":{"$version":1},"reported":{"$version":1}}
              complete get: Ok(Twin(Object {"desired": Object {"$version": Number(1)}, "reported": Object {"$version": Number(1)}}))
            hub PUBACK #2
            hub PUBACK #3
            hub PUBLISH q0 $iothub/twin/res/204/?$rid=r2&$version=7 
              complete patch: Ok(ReportedVersion(7))
            hub PUBLISH q0 $iothub/twin/res/204/?$rid=unknown&$version=8 
            submit second get
              send PUBLISH q1 #4 $iothub/twin/GET/?$rid=r3  
            hub PUBLISH q0 $iothub/twin/res/429/?$rid=r3 {"message":"slow down"}
              complete second get: Err(TwinStatus { status: 429, body: "{\"message\":\"slow down\"}" })
            submit bad patch
              send PUBLISH q1 #5 $iothub/twin/PATCH/properties/reported/?$rid=r4 {}
            hub PUBLISH q0 $iothub/twin/res/204/?$rid=r4 
              complete bad patch: Err(InvalidTwinResponse { reason: "reported-properties response has no $version" })
            submit bad get
              send PUBLISH q1 #6 $iothub/twin/GET/?$rid=r5  
            hub PUBLISH q0 $iothub/twin/res/200/?$rid=r5 not json
              complete bad get: Err(InvalidTwinResponse { reason: "twin document is not JSON: expected ident at line 1 column 2" })
            in flight: 0
        "#]],
    );
}

#[test]
fn fail_fast_connection_loss_and_resubscription() {
    check(
        "dev1",
        WhileDisconnected::FailFast,
        vec![ClientSubscription::MethodRequests],
        vec![
            Step::Connected {
                session_present: false,
            },
            granted(1),
            Step::Submit("telemetry", telemetry("a"), 30),
            Step::Submit("get", twin_get("r1"), 30),
            Step::Lost,
            Step::Submit("offline", telemetry("b"), 30),
            // The hub kept the session: the granted subscription is not sent again, but the one
            // that never got its SUBACK is.
            Step::Connected {
                session_present: true,
            },
            Step::Lost,
            // A hub that lost the session gets every subscription again.
            Step::Connected {
                session_present: false,
            },
        ],
        expect![[r#"
            connected session_present=false
              send SUBSCRIBE #1 $iothub/methods/POST/# q1
            hub SUBACK #1 [1]
            submit telemetry
              send PUBLISH q1 #2 devices/dev1/messages/events/ a
            submit get
              send SUBSCRIBE #3 $iothub/twin/res/# q1
            lost
              complete telemetry: Err(ConnectionLost)
              complete get: Err(ConnectionLost)
            submit offline
              complete offline: Err(NotConnected)
            connected session_present=true
              send SUBSCRIBE #4 $iothub/twin/res/# q1
            lost
            connected session_present=false
              send SUBSCRIBE #5 $iothub/methods/POST/# q1
              send SUBSCRIBE #6 $iothub/twin/res/# q1
            in flight: 0
        "#]],
    );
}

#[test]
fn queue_mode_holds_and_resends_until_the_deadline() {
    check(
        "dev1",
        WhileDisconnected::Queue,
        vec![],
        vec![
            Step::Submit("queued", telemetry("a"), 30),
            Step::Submit("short", telemetry("b"), 5),
            Step::Expire(5),
            Step::Connected {
                session_present: false,
            },
            Step::Submit("get", twin_get("r1"), 60),
            granted(2),
            Step::Lost,
            // Both operations go out again, with new packet ids, after the reconnection.
            Step::Connected {
                session_present: true,
            },
            puback(4),
            hub_publish(
                "$iothub/twin/res/200/?$rid=r1",
                r#"{"desired":{},"reported":{}}"#,
            ),
            Step::Submit("late", telemetry("c"), 40),
            Step::Expire(40),
        ],
        expect![[r#"
            submit queued
            submit short
            expire at 5s
              complete short: Err(Timeout { timeout_ms: 30000 })
            connected session_present=false
              send PUBLISH q1 #1 devices/dev1/messages/events/ a
            submit get
              send SUBSCRIBE #2 $iothub/twin/res/# q1
            hub SUBACK #2 [1]
              send PUBLISH q1 #3 $iothub/twin/GET/?$rid=r1  
            lost
            connected session_present=true
              send PUBLISH q1 #4 devices/dev1/messages/events/ a
              send PUBLISH q1 #5 $iothub/twin/GET/?$rid=r1  
            hub PUBACK #4
              complete queued: Ok(Done)
            hub PUBLISH q0 $iothub/twin/res/200/?$rid=r1 {"desired":{},"reported":{}}
              complete get: Ok(Twin(Object {"desired": Object {}, "reported": Object {}}))
            submit late
              send PUBLISH q1 #6 devices/dev1/messages/events/ c
            expire at 40s
              complete late: Err(Timeout { timeout_ms: 30000 })
            in flight: 0
        "#]],
    );
}

#[test]
fn deliveries_to_a_device() {
    check(
        "dev1",
        WhileDisconnected::FailFast,
        vec![],
        vec![
            Step::Connected {
                session_present: true,
            },
            hub_publish_qos1(
                9,
                "devices/dev1/messages/devicebound/%24.mid=m-1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&prop1=v%201&bare",
                "hello",
            ),
            hub_publish(
                "$iothub/methods/POST/reboot%20now/?$rid=7",
                r#"{"delay":3}"#,
            ),
            hub_publish(
                "$iothub/twin/PATCH/properties/desired/?$version=6",
                r#"{"fan":"off","$version":6}"#,
            ),
            hub_publish_qos1(
                10,
                "$iothub/twin/PATCH/properties/desired/?$version=7",
                "not json",
            ),
            hub_publish_qos1(11, "devices/other/messages/devicebound/", "not mine"),
            hub_publish_qos1(12, "devices/dev1/modules/m/inputs/in1/", "not a module"),
            hub_publish_qos1(13, "$iothub/unknown", "?"),
            hub_publish_qos1(14, "$iothub/twin/res/200/?$rid=nobody", "{}"),
        ],
        expect![[r#"
            connected session_present=true
            hub PUBLISH q1 #9 devices/dev1/messages/devicebound/%24.mid=m-1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&prop1=v%201&bare hello
              deliver c2d hello mid=Some("m-1") app=[("prop1", Some("v 1")), ("bare", None)] ack=9
            hub PUBLISH q0 $iothub/methods/POST/reboot%20now/?$rid=7 {"delay":3}
              deliver method reboot now rid=7 {"delay":3} ack=none
            hub PUBLISH q0 $iothub/twin/PATCH/properties/desired/?$version=6 {"fan":"off","$version":6}
              deliver desired v6 {"$version":6,"fan":"off"} ack=none
            hub PUBLISH q1 #10 $iothub/twin/PATCH/properties/desired/?$version=7 not json
              send PUBACK #10
            hub PUBLISH q1 #11 devices/other/messages/devicebound/ not mine
              send PUBACK #11
            hub PUBLISH q1 #12 devices/dev1/modules/m/inputs/in1/ not a module
              send PUBACK #12
            hub PUBLISH q1 #13 $iothub/unknown ?
              send PUBACK #13
            hub PUBLISH q1 #14 $iothub/twin/res/200/?$rid=nobody {}
              send PUBACK #14
            in flight: 0
        "#]],
    );
}

#[test]
fn deliveries_to_a_module_and_protocol_violations() {
    check(
        "dev1/filter",
        WhileDisconnected::FailFast,
        vec![],
        vec![
            Step::Connected {
                session_present: true,
            },
            hub_publish_qos1(
                1,
                "devices/dev1/modules/filter/inputs/input%201/%24.ct=application%2Fjson",
                "{}",
            ),
            hub_publish_qos1(2, "devices/dev1/messages/devicebound/", "device only"),
            Step::Packet(Packet::Publish(Publish::with_packet_id(
                "devices/dev1/modules/filter/inputs/in/",
                QoS::ExactlyOnce,
                packet_id(3),
                "qos2",
            ))),
            Step::Packet(Packet::PingReq),
        ],
        expect![[r#"
            connected session_present=true
            hub PUBLISH q1 #1 devices/dev1/modules/filter/inputs/input%201/%24.ct=application%2Fjson {}
              deliver input input 1 {} input_name=Some("input 1") ack=1
            hub PUBLISH q1 #2 devices/dev1/messages/devicebound/ device only
              send PUBACK #2
            hub PUBLISH q2 #3 devices/dev1/modules/filter/inputs/in/ qos2
              ! protocol violation by the hub: QoS 2 publish on devices/dev1/modules/filter/inputs/in/ although every subscription asked for QoS 1
            hub PINGREQ
              ! protocol violation by the hub: unexpected PINGREQ from the hub
            in flight: 0
        "#]],
    );
}

#[test]
fn refused_and_repeated_subscriptions() {
    check(
        "dev1",
        WhileDisconnected::FailFast,
        vec![],
        vec![
            Step::Connected {
                session_present: false,
            },
            Step::Submit(
                "methods",
                Request::Subscribe(ClientSubscription::MethodRequests),
                30,
            ),
            Step::Submit(
                "methods again",
                Request::Subscribe(ClientSubscription::MethodRequests),
                30,
            ),
            granted(1),
            Step::Submit(
                "methods once more",
                Request::Subscribe(ClientSubscription::MethodRequests),
                30,
            ),
            Step::Submit("c2d", Request::Subscribe(c2d_subscription()), 30),
            suback(2, SubscribeReturnCode::Failure),
            Step::Lost,
            // The refused subscription is forgotten; the granted one comes back.
            Step::Connected {
                session_present: false,
            },
        ],
        expect![[r#"
            connected session_present=false
            submit methods
              send SUBSCRIBE #1 $iothub/methods/POST/# q1
            submit methods again
            hub SUBACK #1 [1]
              complete methods: Ok(Done)
              complete methods again: Ok(Done)
            submit methods once more
              complete methods once more: Ok(Done)
            submit c2d
              send SUBSCRIBE #2 devices/dev1/messages/devicebound/# q1
            hub SUBACK #2 [128]
              complete c2d: Err(SubscriptionRefused { filter: "devices/dev1/messages/devicebound/#" })
            lost
            connected session_present=false
              send SUBSCRIBE #3 $iothub/methods/POST/# q1
            in flight: 0
        "#]],
    );
}

// === Property test: every operation completes exactly once ===

#[derive(Clone, Debug)]
enum Operation {
    SubmitTelemetry,
    SubmitTwinGet,
    SubmitTwinPatch,
    SubmitSubscribe(u8),
    Connected(bool),
    Lost,
    AckPublish(usize),
    AckSubscribe(usize, bool),
    TwinResponse(usize, u16),
    Expire(u64),
}

fn operation_strategy() -> impl Strategy<Value = Operation> {
    prop_oneof![
        3 => Just(Operation::SubmitTelemetry),
        2 => Just(Operation::SubmitTwinGet),
        1 => Just(Operation::SubmitTwinPatch),
        1 => (0u8..3).prop_map(Operation::SubmitSubscribe),
        2 => any::<bool>().prop_map(Operation::Connected),
        1 => Just(Operation::Lost),
        4 => any::<usize>().prop_map(Operation::AckPublish),
        2 => (any::<usize>(), prop::bool::weighted(0.8)).prop_map(|(index, granted)| Operation::AckSubscribe(index, granted)),
        3 => (any::<usize>(), prop_oneof![Just(200u16), Just(204), Just(400)]).prop_map(|(index, status)| Operation::TwinResponse(index, status)),
        1 => (1u64..100).prop_map(Operation::Expire),
    ]
}

/// What the test knows about the wire, learned from the core's own output.
#[derive(Default)]
struct Wire {
    connected: bool,
    publishes: Vec<PacketId>,
    subscribes: Vec<PacketId>,
    rids: Vec<String>,
}

impl Wire {
    fn observe(&mut self, actions: &[Action<u64>], completed: &mut BTreeMap<u64, usize>) {
        for action in actions {
            match action {
                Action::Send(packet) => {
                    assert!(self.connected, "sent {packet:?} while disconnected");
                    match packet {
                        Packet::Publish(publish) => {
                            let packet_id = publish.packet_id.expect("QoS 1");
                            assert!(
                                !self.publishes.contains(&packet_id)
                                    && !self.subscribes.contains(&packet_id),
                                "packet id {packet_id} reused while outstanding"
                            );
                            self.publishes.push(packet_id);
                            if let Ok(
                                ClientPublish::TwinGet { rid }
                                | ClientPublish::TwinPatchReported { rid, .. },
                            ) = ClientPublish::parse(&publish.topic)
                            {
                                self.rids.push(rid);
                            }
                        }
                        Packet::Subscribe(subscribe) => {
                            self.subscribes.push(subscribe.packet_id);
                        }
                        other => panic!("unexpected packet {other:?}"),
                    }
                }
                Action::Complete(label, _) => {
                    *completed.entry(*label).or_default() += 1;
                }
                Action::Deliver { .. } => panic!("no deliveries in this test"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_operation_completes_exactly_once(
        queue_mode in any::<bool>(),
        operations in prop::collection::vec(operation_strategy(), 1..80),
    ) {
        let mode = if queue_mode { WhileDisconnected::Queue } else { WhileDisconnected::FailFast };
        let start = Instant::now();
        let identity: Identity = "dev1".parse().unwrap();
        let mut core: Core<u64> = Core::new(identity, mode, Duration::from_secs(30), [ClientSubscription::MethodRequests]);
        let subscriptions = [ClientSubscription::MethodRequests, ClientSubscription::DesiredPropertiesPatches, c2d_subscription()];
        let mut wire = Wire::default();
        let mut submitted = BTreeSet::new();
        let mut completed: BTreeMap<u64, usize> = BTreeMap::new();
        let mut next_label = 0u64;
        let mut now_secs = 0u64;
        for operation in operations {
            let mut out = Vec::new();
            let deadline = start + Duration::from_secs(now_secs + 30);
            let label = next_label;
            let request = match &operation {
                Operation::SubmitTelemetry => Some(telemetry("x")),
                Operation::SubmitTwinGet => Some(twin_get(&format!("get-{label}"))),
                Operation::SubmitTwinPatch => Some(twin_patch(&format!("patch-{label}"), "{}")),
                Operation::SubmitSubscribe(which) => {
                    Some(Request::Subscribe(subscriptions[usize::from(*which)].clone()))
                }
                _ => None,
            };
            match operation {
                Operation::SubmitTelemetry
                | Operation::SubmitTwinGet
                | Operation::SubmitTwinPatch
                | Operation::SubmitSubscribe(_) => {
                    submitted.insert(label);
                    next_label += 1;
                    core.submit(request.expect("a submit operation"), label, deadline, &mut out);
                }
                Operation::Connected(session_present) => {
                    if wire.connected {
                        continue;
                    }
                    wire.connected = true;
                    core.on_connected(session_present, &mut out);
                }
                Operation::Lost => {
                    if !wire.connected {
                        continue;
                    }
                    wire = Wire::default();
                    core.on_connection_lost(&mut out);
                }
                Operation::AckPublish(index) => {
                    if wire.publishes.is_empty() {
                        continue;
                    }
                    let packet_id = wire.publishes.remove(index % wire.publishes.len());
                    core.on_packet(Packet::PubAck(packet_id), &mut out).unwrap();
                }
                Operation::AckSubscribe(index, granted) => {
                    if wire.subscribes.is_empty() {
                        continue;
                    }
                    let packet_id = wire.subscribes.remove(index % wire.subscribes.len());
                    let code = if granted { SubscribeReturnCode::Granted(QoS::AtLeastOnce) } else { SubscribeReturnCode::Failure };
                    core.on_packet(Packet::SubAck(SubAck { packet_id, return_codes: vec![code] }), &mut out).unwrap();
                }
                Operation::TwinResponse(index, status) => {
                    if wire.rids.is_empty() {
                        continue;
                    }
                    let rid = wire.rids.remove(index % wire.rids.len());
                    let topic = format!("$iothub/twin/res/{status}/?$rid={rid}&$version=3");
                    core.on_packet(Packet::Publish(Publish::at_most_once(topic, "{}")), &mut out).unwrap();
                }
                Operation::Expire(secs) => {
                    now_secs += secs;
                    core.expire(start + Duration::from_secs(now_secs), &mut out);
                }
            }
            wire.observe(&out, &mut completed);
            prop_assert!(completed.values().all(|count| *count == 1), "completed twice: {completed:?}");
            let outstanding = submitted.len() - completed.len();
            prop_assert!(core.in_flight() <= outstanding);
            if !wire.connected && mode == WhileDisconnected::FailFast {
                prop_assert_eq!(outstanding, 0, "fail-fast keeps nothing while disconnected");
            }
        }
        let mut out = Vec::new();
        core.fail_all(crate::ClientError::Closed, &mut out);
        wire.observe(&out, &mut completed);
        prop_assert_eq!(completed.keys().copied().collect::<BTreeSet<_>>(), submitted);
        prop_assert!(completed.values().all(|count| *count == 1));
        prop_assert!(core.next_deadline().is_none());
    }
}
