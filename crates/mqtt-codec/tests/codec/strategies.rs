//! Proptest strategies for valid MQTT 3.1.1 packets (and a few deliberately loose ones).

use bytes::Bytes;
use mqtt_codec::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, Publish, QoS, SubAck, Subscribe,
    SubscribeFilter, SubscribeReturnCode, Unsubscribe, Will,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// A string of printable characters (no U+0000), including multi-byte UTF-8.
pub(crate) fn mqtt_string() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _./+#$é☃𝄞-]{0,12}"
}

fn topic_level() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _.$?=%é☃-]{0,6}"
}

/// A valid topic name: at least one character, no wildcards.
pub(crate) fn topic_name() -> impl Strategy<Value = String> {
    vec(topic_level(), 1..5).prop_map(|levels| {
        let topic = levels.join("/");
        if topic.is_empty() {
            "t".to_owned()
        } else {
            topic
        }
    })
}

/// A valid topic filter, with `+` levels and an optional trailing `#`.
pub(crate) fn topic_filter() -> impl Strategy<Value = String> {
    (
        vec(
            prop_oneof![3 => topic_level(), 1 => Just("+".to_owned())],
            0..5,
        ),
        any::<bool>(),
    )
        .prop_map(|(mut levels, multi_level)| {
            if multi_level || levels.is_empty() {
                levels.push("#".to_owned());
            }
            let filter = levels.join("/");
            if filter.is_empty() {
                "+".to_owned()
            } else {
                filter
            }
        })
}

pub(crate) fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

pub(crate) fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|value| PacketId::new(value).expect("non-zero"))
}

pub(crate) fn payload() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

pub(crate) fn publish() -> impl Strategy<Value = Publish> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        packet_id(),
        payload(),
    )
        .prop_map(|(qos, dup, retain, topic, packet_id, payload)| {
            let has_packet_id = qos != QoS::AtMostOnce;
            Publish {
                dup: dup && has_packet_id,
                qos,
                retain,
                topic,
                packet_id: has_packet_id.then_some(packet_id),
                payload,
            }
        })
}

pub(crate) fn will() -> impl Strategy<Value = Will> {
    (topic_name(), payload(), qos(), any::<bool>()).prop_map(|(topic, payload, qos, retain)| Will {
        topic,
        payload,
        qos,
        retain,
    })
}

/// A CONNECT whose credentials are a user name alone, a user name with a binary password, or none.
pub(crate) fn connect() -> impl Strategy<Value = Connect> {
    (
        mqtt_string(),
        any::<bool>(),
        any::<u16>(),
        option::of(will()),
        option::of((mqtt_string(), option::of(payload()))),
    )
        .prop_map(
            |(client_id, clean_session, keep_alive, will, credentials)| {
                let (username, password) = match credentials {
                    Some((username, password)) => (Some(username), password),
                    None => (None, None),
                };
                Connect {
                    client_id,
                    clean_session,
                    keep_alive,
                    will,
                    username,
                    password,
                }
            },
        )
}

pub(crate) fn connack() -> impl Strategy<Value = ConnAck> {
    ((0u8..=5), any::<bool>()).prop_map(|(code, session_present)| {
        let return_code = ConnectReturnCode::from_u8(code).expect("codes 0 to 5 exist");
        ConnAck {
            session_present: session_present && return_code == ConnectReturnCode::Accepted,
            return_code,
        }
    })
}

pub(crate) fn subscribe() -> impl Strategy<Value = Subscribe> {
    (
        packet_id(),
        vec(
            (topic_filter(), qos()).prop_map(|(filter, requested_qos)| SubscribeFilter {
                filter,
                requested_qos,
            }),
            1..5,
        ),
    )
        .prop_map(|(packet_id, filters)| Subscribe { packet_id, filters })
}

pub(crate) fn suback() -> impl Strategy<Value = SubAck> {
    let code = prop_oneof![
        qos().prop_map(SubscribeReturnCode::Granted),
        Just(SubscribeReturnCode::Failure)
    ];
    (packet_id(), vec(code, 1..6)).prop_map(|(packet_id, return_codes)| SubAck {
        packet_id,
        return_codes,
    })
}

pub(crate) fn unsubscribe() -> impl Strategy<Value = Unsubscribe> {
    (packet_id(), vec(topic_filter(), 1..5))
        .prop_map(|(packet_id, filters)| Unsubscribe { packet_id, filters })
}

/// Any valid packet of any of the fourteen types.
pub(crate) fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        connect().prop_map(Packet::Connect),
        connack().prop_map(Packet::ConnAck),
        publish().prop_map(Packet::Publish),
        packet_id().prop_map(Packet::PubAck),
        packet_id().prop_map(Packet::PubRec),
        packet_id().prop_map(Packet::PubRel),
        packet_id().prop_map(Packet::PubComp),
        subscribe().prop_map(Packet::Subscribe),
        suback().prop_map(Packet::SubAck),
        unsubscribe().prop_map(Packet::Unsubscribe),
        packet_id().prop_map(Packet::UnsubAck),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        Just(Packet::Disconnect),
    ]
}

/// Packets whose fields ignore the MQTT rules: wildcards or U+0000 in topic names, inconsistent
/// packet identifiers, DUP at QoS 0, passwords without user names, empty lists.
pub(crate) fn loose_packet() -> impl Strategy<Value = Packet> {
    let loose_text = "[ab/+#\u{0}]{0,4}";
    let loose_publish = (
        qos(),
        any::<bool>(),
        any::<bool>(),
        loose_text,
        option::of(packet_id()),
        payload(),
    )
        .prop_map(|(qos, dup, retain, topic, packet_id, payload)| {
            Packet::Publish(Publish {
                dup,
                qos,
                retain,
                topic,
                packet_id,
                payload,
            })
        });
    let loose_subscribe =
        (packet_id(), vec((loose_text, qos()), 0..3)).prop_map(|(packet_id, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                filters: filters
                    .into_iter()
                    .map(|(filter, requested_qos)| SubscribeFilter {
                        filter,
                        requested_qos,
                    })
                    .collect(),
            })
        });
    let loose_unsubscribe = (packet_id(), vec(loose_text, 0..3))
        .prop_map(|(packet_id, filters)| Packet::Unsubscribe(Unsubscribe { packet_id, filters }));
    let loose_connect = (
        loose_text,
        option::of((loose_text, payload(), qos(), any::<bool>())),
        option::of(loose_text),
        option::of(payload()),
    )
        .prop_map(|(client_id, will, username, password)| {
            Packet::Connect(Connect {
                client_id,
                clean_session: true,
                keep_alive: 30,
                will: will.map(|(topic, payload, qos, retain)| Will {
                    topic,
                    payload,
                    qos,
                    retain,
                }),
                username,
                password,
            })
        });
    let loose_connack = ((0u8..=5), any::<bool>()).prop_map(|(code, session_present)| {
        Packet::ConnAck(ConnAck {
            session_present,
            return_code: ConnectReturnCode::from_u8(code).expect("codes 0 to 5 exist"),
        })
    });
    let loose_suback = (packet_id(), vec(Just(SubscribeReturnCode::Failure), 0..2)).prop_map(
        |(packet_id, return_codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                return_codes,
            })
        },
    );
    prop_oneof![
        loose_publish,
        loose_subscribe,
        loose_unsubscribe,
        loose_connect,
        loose_connack,
        loose_suback
    ]
}
