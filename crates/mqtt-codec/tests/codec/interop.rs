//! Differential tests against rumqttc's MQTT 3.1.1 implementation (`rumqttc::mqttbytes::v4`):
//! our encoding must decode with rumqttc, rumqttc's encoding must decode with ours, and both
//! encoders must produce identical bytes.

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, Publish, QoS, SubAck, Subscribe,
    SubscribeFilter, SubscribeReturnCode, Unsubscribe, Will,
};
use proptest::option;
use proptest::prelude::*;
use rumqttc::mqttbytes::v4 as theirs;

use crate::strategies::{connack, mqtt_string, packet, packet_id, publish, subscribe, will};

fn their_qos(qos: QoS) -> rumqttc::mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::mqttbytes::QoS::ExactlyOnce,
    }
}

fn our_qos(qos: rumqttc::mqttbytes::QoS) -> QoS {
    match qos {
        rumqttc::mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
        rumqttc::mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
        rumqttc::mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn our_packet_id(value: u16) -> PacketId {
    PacketId::new(value).expect("rumqttc decoded a zero packet identifier")
}

fn their_connect_return_code(code: ConnectReturnCode) -> theirs::ConnectReturnCode {
    match code {
        ConnectReturnCode::Accepted => theirs::ConnectReturnCode::Success,
        ConnectReturnCode::UnacceptableProtocolVersion => {
            theirs::ConnectReturnCode::RefusedProtocolVersion
        }
        ConnectReturnCode::IdentifierRejected => theirs::ConnectReturnCode::BadClientId,
        ConnectReturnCode::ServerUnavailable => theirs::ConnectReturnCode::ServiceUnavailable,
        ConnectReturnCode::BadUserNameOrPassword => theirs::ConnectReturnCode::BadUserNamePassword,
        ConnectReturnCode::NotAuthorized => theirs::ConnectReturnCode::NotAuthorized,
    }
}

/// Converts our packet into rumqttc's model. rumqttc represents credentials as two strings where
/// "" means absent, so only packets from [`interop_packet`] convert faithfully.
fn to_theirs(packet: &Packet) -> theirs::Packet {
    match packet {
        Packet::Connect(connect) => theirs::Packet::Connect(theirs::Connect {
            protocol: rumqttc::mqttbytes::Protocol::V4,
            keep_alive: connect.keep_alive,
            client_id: connect.client_id.clone(),
            clean_session: connect.clean_session,
            last_will: connect.will.as_ref().map(|will| theirs::LastWill {
                topic: will.topic.clone(),
                message: will.payload.clone(),
                qos: their_qos(will.qos),
                retain: will.retain,
            }),
            login: connect.username.as_ref().map(|username| theirs::Login {
                username: username.clone(),
                password: connect
                    .password
                    .as_ref()
                    .map(|password| String::from_utf8(password.to_vec()).expect("UTF-8 password"))
                    .unwrap_or_default(),
            }),
        }),
        Packet::ConnAck(connack) => theirs::Packet::ConnAck(theirs::ConnAck {
            session_present: connack.session_present,
            code: their_connect_return_code(connack.return_code),
        }),
        Packet::Publish(publish) => theirs::Packet::Publish(theirs::Publish {
            dup: publish.dup,
            qos: their_qos(publish.qos),
            retain: publish.retain,
            topic: publish.topic.clone(),
            pkid: publish.packet_id.map_or(0, PacketId::get),
            payload: publish.payload.clone(),
        }),
        Packet::PubAck(packet_id) => theirs::Packet::PubAck(theirs::PubAck {
            pkid: packet_id.get(),
        }),
        Packet::PubRec(packet_id) => theirs::Packet::PubRec(theirs::PubRec {
            pkid: packet_id.get(),
        }),
        Packet::PubRel(packet_id) => theirs::Packet::PubRel(theirs::PubRel {
            pkid: packet_id.get(),
        }),
        Packet::PubComp(packet_id) => theirs::Packet::PubComp(theirs::PubComp {
            pkid: packet_id.get(),
        }),
        Packet::Subscribe(subscribe) => theirs::Packet::Subscribe(theirs::Subscribe {
            pkid: subscribe.packet_id.get(),
            filters: subscribe
                .filters
                .iter()
                .map(|filter| {
                    theirs::SubscribeFilter::new(
                        filter.filter.clone(),
                        their_qos(filter.requested_qos),
                    )
                })
                .collect(),
        }),
        Packet::SubAck(suback) => theirs::Packet::SubAck(theirs::SubAck {
            pkid: suback.packet_id.get(),
            return_codes: suback
                .return_codes
                .iter()
                .map(|code| match code {
                    SubscribeReturnCode::Granted(qos) => {
                        theirs::SubscribeReasonCode::Success(their_qos(*qos))
                    }
                    SubscribeReturnCode::Failure => theirs::SubscribeReasonCode::Failure,
                })
                .collect(),
        }),
        Packet::Unsubscribe(unsubscribe) => theirs::Packet::Unsubscribe(theirs::Unsubscribe {
            pkid: unsubscribe.packet_id.get(),
            topics: unsubscribe.filters.clone(),
        }),
        Packet::UnsubAck(packet_id) => theirs::Packet::UnsubAck(theirs::UnsubAck {
            pkid: packet_id.get(),
        }),
        Packet::PingReq => theirs::Packet::PingReq,
        Packet::PingResp => theirs::Packet::PingResp,
        Packet::Disconnect => theirs::Packet::Disconnect,
    }
}

/// Converts rumqttc's model into ours.
fn from_theirs(packet: theirs::Packet) -> Packet {
    match packet {
        theirs::Packet::Connect(connect) => {
            let (username, password) = match connect.login {
                Some(login) => (
                    Some(login.username),
                    (!login.password.is_empty()).then(|| Bytes::from(login.password)),
                ),
                None => (None, None),
            };
            Packet::Connect(Connect {
                client_id: connect.client_id,
                clean_session: connect.clean_session,
                keep_alive: connect.keep_alive,
                will: connect.last_will.map(|will| Will {
                    topic: will.topic,
                    payload: will.message,
                    qos: our_qos(will.qos),
                    retain: will.retain,
                }),
                username,
                password,
            })
        }
        theirs::Packet::ConnAck(connack) => Packet::ConnAck(ConnAck {
            session_present: connack.session_present,
            return_code: ConnectReturnCode::from_u8(connack.code as u8).expect("known code"),
        }),
        theirs::Packet::Publish(publish) => Packet::Publish(Publish {
            dup: publish.dup,
            qos: our_qos(publish.qos),
            retain: publish.retain,
            topic: publish.topic,
            packet_id: PacketId::new(publish.pkid),
            payload: publish.payload,
        }),
        theirs::Packet::PubAck(ack) => Packet::PubAck(our_packet_id(ack.pkid)),
        theirs::Packet::PubRec(ack) => Packet::PubRec(our_packet_id(ack.pkid)),
        theirs::Packet::PubRel(ack) => Packet::PubRel(our_packet_id(ack.pkid)),
        theirs::Packet::PubComp(ack) => Packet::PubComp(our_packet_id(ack.pkid)),
        theirs::Packet::Subscribe(subscribe) => Packet::Subscribe(Subscribe {
            packet_id: our_packet_id(subscribe.pkid),
            filters: subscribe
                .filters
                .into_iter()
                .map(|filter| SubscribeFilter {
                    filter: filter.path,
                    requested_qos: our_qos(filter.qos),
                })
                .collect(),
        }),
        theirs::Packet::SubAck(suback) => Packet::SubAck(SubAck {
            packet_id: our_packet_id(suback.pkid),
            return_codes: suback
                .return_codes
                .into_iter()
                .map(|code| match code {
                    theirs::SubscribeReasonCode::Success(qos) => {
                        SubscribeReturnCode::Granted(our_qos(qos))
                    }
                    theirs::SubscribeReasonCode::Failure => SubscribeReturnCode::Failure,
                })
                .collect(),
        }),
        theirs::Packet::Unsubscribe(unsubscribe) => Packet::Unsubscribe(Unsubscribe {
            packet_id: our_packet_id(unsubscribe.pkid),
            filters: unsubscribe.topics,
        }),
        theirs::Packet::UnsubAck(ack) => Packet::UnsubAck(our_packet_id(ack.pkid)),
        theirs::Packet::PingReq => Packet::PingReq,
        theirs::Packet::PingResp => Packet::PingResp,
        theirs::Packet::Disconnect => Packet::Disconnect,
    }
}

/// A CONNECT that rumqttc can represent: a user name, if any, is non-empty, and a password, if any,
/// is non-empty UTF-8 (rumqttc stores both as `String` with "" meaning absent).
fn interop_connect() -> impl Strategy<Value = Connect> {
    (
        mqtt_string(),
        any::<bool>(),
        any::<u16>(),
        option::of(will()),
        option::of(("[a-zA-Z0-9é]{1,8}", option::of("[a-zA-Z0-9:;=é☃]{1,12}"))),
    )
        .prop_map(
            |(client_id, clean_session, keep_alive, will, credentials)| {
                let (username, password) = match credentials {
                    Some((username, password)) => (Some(username), password.map(Bytes::from)),
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

/// Packets of every type that rumqttc's model represents faithfully, weighted towards the
/// packets with structure (CONNECT, PUBLISH, SUBSCRIBE).
fn interop_packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        3 => interop_connect().prop_map(Packet::Connect),
        3 => publish().prop_map(Packet::Publish),
        3 => subscribe().prop_map(Packet::Subscribe),
        1 => connack().prop_map(Packet::ConnAck),
        1 => packet_id().prop_map(Packet::PubAck),
        1 => packet().prop_filter("CONNECT credentials differ in rumqttc", |packet| {
            !matches!(packet, Packet::Connect(_))
        }),
    ]
}

const RUMQTTC_MAX_PACKET_SIZE: usize = 1024 * 1024;

proptest! {
    #[test]
    fn rumqttc_decodes_our_encoding(packet in interop_packet()) {
        let mut buffer = BytesMut::new();
        packet.encode(&mut buffer).expect("valid packets encode");
        let decoded = theirs::Packet::read(&mut buffer, RUMQTTC_MAX_PACKET_SIZE)
            .expect("rumqttc decodes our encoding");
        prop_assert!(buffer.is_empty());
        prop_assert_eq!(from_theirs(decoded), packet);
    }

    #[test]
    fn we_decode_rumqttc_encoding(packet in interop_packet()) {
        let mut buffer = BytesMut::new();
        to_theirs(&packet).write(&mut buffer, RUMQTTC_MAX_PACKET_SIZE).expect("rumqttc encodes");
        let decoded = Packet::decode(&mut buffer, RUMQTTC_MAX_PACKET_SIZE);
        prop_assert_eq!(decoded, Ok(Some(packet)));
        prop_assert!(buffer.is_empty());
    }

    #[test]
    fn both_encoders_produce_identical_bytes(packet in interop_packet()) {
        let mut ours = BytesMut::new();
        packet.encode(&mut ours).expect("valid packets encode");
        let mut theirs_buffer = BytesMut::new();
        to_theirs(&packet).write(&mut theirs_buffer, RUMQTTC_MAX_PACKET_SIZE).expect("rumqttc encodes");
        prop_assert_eq!(ours, theirs_buffer);
    }
}
