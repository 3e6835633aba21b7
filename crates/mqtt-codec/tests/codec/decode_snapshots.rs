//! Snapshot tests of decoding byte sequences, valid ones and one per error.

use bytes::BytesMut;
use expect_test::{Expect, expect};
use mqtt_codec::Packet;

/// The maximum packet size every snapshot decodes with.
const SNAPSHOT_MAX_PACKET_SIZE: usize = 64;

/// Parses space-separated tokens: two-digit hex bytes, or `'text'` for the UTF-8 bytes of `text`.
pub(crate) fn parse_bytes(input: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for token in input.split_whitespace() {
        if let Some(text) = token
            .strip_prefix('\'')
            .and_then(|rest| rest.strip_suffix('\''))
        {
            bytes.extend_from_slice(text.as_bytes());
        } else {
            bytes.push(u8::from_str_radix(token, 16).expect("test input is hex"));
        }
    }
    bytes
}

/// Decodes `input` once and renders the outcome, the bytes left in the buffer and, for a packet,
/// whether encoding it reproduces the consumed bytes exactly.
fn check(input: &str, expect: Expect) {
    let bytes = parse_bytes(input);
    let mut buffer = BytesMut::from(&bytes[..]);
    let outcome = Packet::decode(&mut buffer, SNAPSHOT_MAX_PACKET_SIZE);
    let consumed = &bytes[..bytes.len() - buffer.len()];
    let rendered = match outcome {
        Ok(Some(packet)) => {
            let mut encoded = BytesMut::new();
            packet.encode(&mut encoded).expect("decoded packets encode");
            let identical = &encoded[..] == consumed;
            format!("{packet:?}\nre-encodes identically: {identical}")
        }
        Ok(None) => "incomplete".to_owned(),
        Err(error) => format!("error: {error:?}\nmessage: {error}"),
    };
    expect.assert_eq(&format!("{rendered}\nleft in buffer: {}\n", buffer.len()));
}

#[test]
fn connect_minimal() {
    check(
        "10 0c 00 04 'MQTT' 04 02 00 3c 00 00",
        expect![[r#"
            Connect(Connect { client_id: "", clean_session: true, keep_alive: 60, will: None, username: None, password: None })
            re-encodes identically: true
            left in buffer: 0
        "#]],
    );
}

#[test]
fn connect_with_will_username_and_password() {
    check(
        "10 26 00 04 'MQTT' 04 ee 00 0a 00 04 'dev1' 00 03 'a/b' 00 03 'bye' 00 04 'user' 00 04 70 00 ff 01",
        expect![[r#"
            Connect(Connect { client_id: "dev1", clean_session: true, keep_alive: 10, will: Some(Will { topic: "a/b", payload: b"bye", qos: AtLeastOnce, retain: true }), username: Some("user"), password: Some(b"p\0\xff\x01") })
            re-encodes identically: true
            left in buffer: 0
        "#]],
    );
}

#[test]
fn connect_with_username_only() {
    check(
        "10 14 00 04 'MQTT' 04 82 00 00 00 02 'id' 00 04 'user'",
        expect![[r#"
        Connect(Connect { client_id: "id", clean_session: true, keep_alive: 0, will: None, username: Some("user"), password: None })
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connack_session_present() {
    check(
        "20 02 01 00",
        expect![[r#"
        ConnAck(ConnAck { session_present: true, return_code: Accepted })
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connack_refused_protocol_version() {
    check(
        "20 02 00 01",
        expect![[r#"
        ConnAck(ConnAck { session_present: false, return_code: UnacceptableProtocolVersion })
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connack_not_authorized() {
    check(
        "20 02 00 05",
        expect![[r#"
        ConnAck(ConnAck { session_present: false, return_code: NotAuthorized })
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn publish_qos0() {
    check(
        "30 0a 00 03 'a/b' 'hello'",
        expect![[r#"
        Publish(Publish { dup: false, qos: AtMostOnce, retain: false, topic: "a/b", packet_id: None, payload: b"hello" })
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn publish_qos1_retain() {
    check(
        "33 09 00 03 'a/b' 00 07 'hi'",
        expect![[r#"
        Publish(Publish { dup: false, qos: AtLeastOnce, retain: true, topic: "a/b", packet_id: Some(PacketId(7)), payload: b"hi" })
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn publish_qos2_dup_empty_payload() {
    check(
        "3c 07 00 03 'a/b' ff ff",
        expect![[r#"
        Publish(Publish { dup: true, qos: ExactlyOnce, retain: false, topic: "a/b", packet_id: Some(PacketId(65535)), payload: b"" })
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn puback() {
    check(
        "40 02 00 01",
        expect![[r#"
        PubAck(PacketId(1))
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn pubrec() {
    check(
        "50 02 12 34",
        expect![[r#"
        PubRec(PacketId(4660))
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn pubrel() {
    check(
        "62 02 00 02",
        expect![[r#"
        PubRel(PacketId(2))
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn pubcomp() {
    check(
        "70 02 00 03",
        expect![[r#"
        PubComp(PacketId(3))
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn subscribe_two_filters() {
    check(
        "82 0e 00 0a 00 03 'a/+' 01 00 03 'b/#' 02",
        expect![[r#"
        Subscribe(Subscribe { packet_id: PacketId(10), filters: [SubscribeFilter { filter: "a/+", requested_qos: AtLeastOnce }, SubscribeFilter { filter: "b/#", requested_qos: ExactlyOnce }] })
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn suback_with_failure() {
    check(
        "90 05 00 0a 00 02 80",
        expect![[r#"
        SubAck(SubAck { packet_id: PacketId(10), return_codes: [Granted(AtMostOnce), Granted(ExactlyOnce), Failure] })
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn unsubscribe() {
    check(
        "a2 07 00 0b 00 03 'a/#'",
        expect![[r#"
        Unsubscribe(Unsubscribe { packet_id: PacketId(11), filters: ["a/#"] })
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn unsuback() {
    check(
        "b0 02 00 0b",
        expect![[r#"
        UnsubAck(PacketId(11))
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn pingreq() {
    check(
        "c0 00",
        expect![[r#"
        PingReq
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn pingresp() {
    check(
        "d0 00",
        expect![[r#"
        PingResp
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn disconnect() {
    check(
        "e0 00",
        expect![[r#"
        Disconnect
        re-encodes identically: true
        left in buffer: 0
    "#]],
    );
}

#[test]
fn two_packets_in_one_buffer_decode_the_first() {
    check(
        "c0 00 e0 00",
        expect![[r#"
        PingReq
        re-encodes identically: true
        left in buffer: 2
    "#]],
    );
}

#[test]
fn non_minimal_remaining_length_is_accepted() {
    check(
        "c0 80 00",
        expect![[r#"
        PingReq
        re-encodes identically: false
        left in buffer: 0
    "#]],
    );
}

#[test]
fn empty_buffer_is_incomplete() {
    check(
        "",
        expect![[r#"
        incomplete
        left in buffer: 0
    "#]],
    );
}

#[test]
fn partial_remaining_length_is_incomplete() {
    check(
        "30 ff",
        expect![[r#"
        incomplete
        left in buffer: 2
    "#]],
    );
}

#[test]
fn partial_body_is_incomplete() {
    check(
        "30 0a 00 03 'a/b'",
        expect![[r#"
        incomplete
        left in buffer: 7
    "#]],
    );
}

#[test]
fn reserved_packet_type_0() {
    check(
        "00 00",
        expect![[r#"
        error: ReservedPacketType { nibble: 0 }
        message: reserved packet type 0
        left in buffer: 2
    "#]],
    );
}

#[test]
fn reserved_packet_type_15() {
    check(
        "f0 00",
        expect![[r#"
        error: ReservedPacketType { nibble: 15 }
        message: reserved packet type 15
        left in buffer: 2
    "#]],
    );
}

#[test]
fn connect_with_flags() {
    check(
        "11 00",
        expect![[r#"
        error: InvalidFixedHeaderFlags { packet_type: Connect, flags: 1 }
        message: invalid fixed-header flags 0b0001 for CONNECT
        left in buffer: 2
    "#]],
    );
}

#[test]
fn pubrel_without_required_flags() {
    check(
        "60 02 00 01",
        expect![[r#"
        error: InvalidFixedHeaderFlags { packet_type: PubRel, flags: 0 }
        message: invalid fixed-header flags 0b0000 for PUBREL
        left in buffer: 4
    "#]],
    );
}

#[test]
fn subscribe_without_required_flags() {
    check(
        "80 08 00 01 00 03 'a/b' 00",
        expect![[r#"
        error: InvalidFixedHeaderFlags { packet_type: Subscribe, flags: 0 }
        message: invalid fixed-header flags 0b0000 for SUBSCRIBE
        left in buffer: 10
    "#]],
    );
}

#[test]
fn unsubscribe_with_wrong_flags() {
    check(
        "a3 07 00 0b 00 03 'a/b'",
        expect![[r#"
        error: InvalidFixedHeaderFlags { packet_type: Unsubscribe, flags: 3 }
        message: invalid fixed-header flags 0b0011 for UNSUBSCRIBE
        left in buffer: 9
    "#]],
    );
}

#[test]
fn pingreq_with_flags() {
    check(
        "c1 00",
        expect![[r#"
        error: InvalidFixedHeaderFlags { packet_type: PingReq, flags: 1 }
        message: invalid fixed-header flags 0b0001 for PINGREQ
        left in buffer: 2
    "#]],
    );
}

#[test]
fn publish_qos3() {
    check(
        "36 07 00 03 'a/b' 00 01",
        expect![[r#"
        error: InvalidQos { packet_type: Publish, value: 3 }
        message: invalid QoS 3 in PUBLISH
        left in buffer: 9
    "#]],
    );
}

#[test]
fn publish_dup_at_qos0() {
    check(
        "38 05 00 03 'a/b'",
        expect![[r#"
        error: DupWithQosZero
        message: DUP flag set on a QoS 0 PUBLISH
        left in buffer: 7
    "#]],
    );
}

#[test]
fn remaining_length_longer_than_four_bytes() {
    check(
        "30 ff ff ff ff 7f",
        expect![[r#"
        error: MalformedRemainingLength
        message: remaining length is longer than four bytes
        left in buffer: 6
    "#]],
    );
}

#[test]
fn packet_too_large_is_rejected_before_the_body_arrives() {
    check(
        "30 80 01",
        expect![[r#"
        error: PacketTooLarge { packet_size: 131, max_packet_size: 64 }
        message: packet of 131 bytes exceeds the maximum packet size of 64 bytes
        left in buffer: 3
    "#]],
    );
}

#[test]
fn packet_size_counts_the_fixed_header() {
    check(
        "30 3f",
        expect![[r#"
        error: PacketTooLarge { packet_size: 65, max_packet_size: 64 }
        message: packet of 65 bytes exceeds the maximum packet size of 64 bytes
        left in buffer: 2
    "#]],
    );
}

#[test]
fn largest_remaining_length_with_tiny_limit() {
    check(
        "30 ff ff ff 7f",
        expect![[r#"
        error: PacketTooLarge { packet_size: 268435460, max_packet_size: 64 }
        message: packet of 268435460 bytes exceeds the maximum packet size of 64 bytes
        left in buffer: 5
    "#]],
    );
}

#[test]
fn puback_truncated() {
    check(
        "40 01 00",
        expect![[r#"
        error: UnexpectedEndOfPacket { packet_type: PubAck }
        message: PUBACK ends before its last field
        left in buffer: 0
    "#]],
    );
}

#[test]
fn puback_trailing_bytes() {
    check(
        "40 03 00 01 00",
        expect![[r#"
        error: TrailingBytes { packet_type: PubAck, count: 1 }
        message: PUBACK has 1 trailing bytes
        left in buffer: 0
    "#]],
    );
}

#[test]
fn pingreq_with_body() {
    check(
        "c0 01 00",
        expect![[r#"
        error: TrailingBytes { packet_type: PingReq, count: 1 }
        message: PINGREQ has 1 trailing bytes
        left in buffer: 0
    "#]],
    );
}

#[test]
fn puback_packet_id_zero() {
    check(
        "40 02 00 00",
        expect![[r#"
        error: ZeroPacketId { packet_type: PubAck }
        message: packet identifier 0 in PUBACK
        left in buffer: 0
    "#]],
    );
}

#[test]
fn publish_qos1_packet_id_zero() {
    check(
        "32 07 00 03 'a/b' 00 00",
        expect![[r#"
        error: ZeroPacketId { packet_type: Publish }
        message: packet identifier 0 in PUBLISH
        left in buffer: 0
    "#]],
    );
}

#[test]
fn publish_topic_length_past_end() {
    check(
        "30 04 00 05 'a/'",
        expect![[r#"
        error: UnexpectedEndOfPacket { packet_type: Publish }
        message: PUBLISH ends before its last field
        left in buffer: 0
    "#]],
    );
}

#[test]
fn publish_invalid_utf8_topic() {
    check(
        "30 05 00 03 61 ff 62",
        expect![[r#"
        error: InvalidUtf8 { packet_type: Publish }
        message: string in PUBLISH is not valid UTF-8
        left in buffer: 0
    "#]],
    );
}

#[test]
fn publish_encoded_surrogate_topic() {
    check(
        "30 05 00 03 ed a0 80",
        expect![[r#"
        error: InvalidUtf8 { packet_type: Publish }
        message: string in PUBLISH is not valid UTF-8
        left in buffer: 0
    "#]],
    );
}

#[test]
fn publish_null_character_in_topic() {
    check(
        "30 05 00 03 61 00 62",
        expect![[r#"
        error: NullCharacter { packet_type: Publish }
        message: string in PUBLISH contains U+0000
        left in buffer: 0
    "#]],
    );
}

#[test]
fn publish_wildcard_topic() {
    check(
        "30 05 00 03 'a/+'",
        expect![[r#"
        error: InvalidTopicName { packet_type: Publish, error: WildcardInTopicName }
        message: invalid topic name in PUBLISH: topic name contains a wildcard character
        left in buffer: 0
    "#]],
    );
}

#[test]
fn publish_empty_topic() {
    check(
        "30 02 00 00",
        expect![[r#"
        error: InvalidTopicName { packet_type: Publish, error: Empty }
        message: invalid topic name in PUBLISH: topic is empty
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connect_wrong_protocol_name() {
    check(
        "10 0c 00 04 'MQTX' 04 02 00 3c 00 00",
        expect![[r#"
        error: InvalidProtocolName { name: "MQTX" }
        message: unknown protocol name "MQTX"
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connect_protocol_level_3() {
    check(
        "10 0c 00 04 'MQTT' 03 02 00 3c 00 00",
        expect![[r#"
        error: UnsupportedProtocolLevel { level: 3 }
        message: unsupported protocol level 3
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connect_protocol_level_5_with_properties() {
    check(
        "10 0d 00 04 'MQTT' 05 02 00 3c 00 00 00",
        expect![[r#"
        error: UnsupportedProtocolLevel { level: 5 }
        message: unsupported protocol level 5
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connect_mqtt_3_1_protocol_name() {
    check(
        "10 0e 00 06 'MQIsdp' 03 02 00 3c 00 00",
        expect![[r#"
        error: UnsupportedProtocolLevel { level: 3 }
        message: unsupported protocol level 3
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connect_reserved_flag() {
    check(
        "10 0c 00 04 'MQTT' 04 03 00 3c 00 00",
        expect![[r#"
        error: ReservedConnectFlag
        message: reserved CONNECT flag is set
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connect_will_qos_without_will() {
    check(
        "10 0c 00 04 'MQTT' 04 0a 00 3c 00 00",
        expect![[r#"
        error: WillFlagsWithoutWill
        message: will QoS or will retain set without the will flag
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connect_will_retain_without_will() {
    check(
        "10 0c 00 04 'MQTT' 04 22 00 3c 00 00",
        expect![[r#"
        error: WillFlagsWithoutWill
        message: will QoS or will retain set without the will flag
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connect_will_qos_3() {
    check(
        "10 12 00 04 'MQTT' 04 1e 00 3c 00 00 00 01 'a' 00 01 'b'",
        expect![[r#"
            error: InvalidQos { packet_type: Connect, value: 3 }
            message: invalid QoS 3 in CONNECT
            left in buffer: 0
        "#]],
    );
}

#[test]
fn connect_will_topic_with_wildcard() {
    check(
        "10 12 00 04 'MQTT' 04 06 00 3c 00 00 00 01 '#' 00 01 'b'",
        expect![[r#"
            error: InvalidTopicName { packet_type: Connect, error: WildcardInTopicName }
            message: invalid topic name in CONNECT: topic name contains a wildcard character
            left in buffer: 0
        "#]],
    );
}

#[test]
fn connect_password_without_username() {
    check(
        "10 10 00 04 'MQTT' 04 42 00 3c 00 00 00 02 'pw'",
        expect![[r#"
        error: PasswordWithoutUsername
        message: password without user name
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connect_null_character_in_client_id() {
    check(
        "10 0e 00 04 'MQTT' 04 02 00 3c 00 02 61 00",
        expect![[r#"
        error: NullCharacter { packet_type: Connect }
        message: string in CONNECT contains U+0000
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connect_trailing_bytes() {
    check(
        "10 0d 00 04 'MQTT' 04 02 00 3c 00 00 ff",
        expect![[r#"
        error: TrailingBytes { packet_type: Connect, count: 1 }
        message: CONNECT has 1 trailing bytes
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connect_missing_client_id() {
    check(
        "10 0a 00 04 'MQTT' 04 02 00 3c",
        expect![[r#"
        error: UnexpectedEndOfPacket { packet_type: Connect }
        message: CONNECT ends before its last field
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connack_reserved_return_code() {
    check(
        "20 02 00 06",
        expect![[r#"
        error: ReservedConnectReturnCode { value: 6 }
        message: reserved CONNACK return code 6
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connack_reserved_flag_bits() {
    check(
        "20 02 02 00",
        expect![[r#"
        error: InvalidConnAckFlags { flags: 2, return_code: 0 }
        message: invalid CONNACK acknowledge flags 0x02 with return code 0
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connack_session_present_with_refusal() {
    check(
        "20 02 01 04",
        expect![[r#"
        error: InvalidConnAckFlags { flags: 1, return_code: 4 }
        message: invalid CONNACK acknowledge flags 0x01 with return code 4
        left in buffer: 0
    "#]],
    );
}

#[test]
fn connack_too_short() {
    check(
        "20 01 00",
        expect![[r#"
        error: UnexpectedEndOfPacket { packet_type: ConnAck }
        message: CONNACK ends before its last field
        left in buffer: 0
    "#]],
    );
}

#[test]
fn subscribe_without_filters() {
    check(
        "82 02 00 01",
        expect![[r#"
        error: EmptyPayload { packet_type: Subscribe }
        message: SUBSCRIBE without any entry
        left in buffer: 0
    "#]],
    );
}

#[test]
fn subscribe_packet_id_zero() {
    check(
        "82 08 00 00 00 03 'a/b' 00",
        expect![[r#"
        error: ZeroPacketId { packet_type: Subscribe }
        message: packet identifier 0 in SUBSCRIBE
        left in buffer: 0
    "#]],
    );
}

#[test]
fn subscribe_reserved_option_bits() {
    check(
        "82 08 00 01 00 03 'a/b' 04",
        expect![[r#"
        error: ReservedSubscribeOptionBits { value: 4 }
        message: reserved bits set in SUBSCRIBE options byte 0x04
        left in buffer: 0
    "#]],
    );
}

#[test]
fn subscribe_qos_3() {
    check(
        "82 08 00 01 00 03 'a/b' 03",
        expect![[r#"
        error: InvalidQos { packet_type: Subscribe, value: 3 }
        message: invalid QoS 3 in SUBSCRIBE
        left in buffer: 0
    "#]],
    );
}

#[test]
fn subscribe_missing_qos_byte() {
    check(
        "82 07 00 01 00 03 'a/b'",
        expect![[r#"
        error: UnexpectedEndOfPacket { packet_type: Subscribe }
        message: SUBSCRIBE ends before its last field
        left in buffer: 0
    "#]],
    );
}

#[test]
fn subscribe_misplaced_multi_level_wildcard() {
    check(
        "82 0a 00 01 00 05 'a/#/b' 00",
        expect![[r#"
        error: InvalidTopicFilter { packet_type: Subscribe, error: MisplacedMultiLevelWildcard }
        message: invalid topic filter in SUBSCRIBE: '#' is not alone in the last topic level
        left in buffer: 0
    "#]],
    );
}

#[test]
fn subscribe_misplaced_single_level_wildcard() {
    check(
        "82 08 00 01 00 03 'a+b' 00",
        expect![[r#"
        error: InvalidTopicFilter { packet_type: Subscribe, error: MisplacedSingleLevelWildcard }
        message: invalid topic filter in SUBSCRIBE: '+' does not occupy an entire topic level
        left in buffer: 0
    "#]],
    );
}

#[test]
fn subscribe_empty_filter() {
    check(
        "82 05 00 01 00 00 00",
        expect![[r#"
        error: InvalidTopicFilter { packet_type: Subscribe, error: Empty }
        message: invalid topic filter in SUBSCRIBE: topic is empty
        left in buffer: 0
    "#]],
    );
}

#[test]
fn suback_invalid_return_code() {
    check(
        "90 03 00 01 03",
        expect![[r#"
        error: InvalidSubscribeReturnCode { value: 3 }
        message: invalid SUBACK return code 0x03
        left in buffer: 0
    "#]],
    );
}

#[test]
fn suback_without_return_codes() {
    check(
        "90 02 00 01",
        expect![[r#"
        error: EmptyPayload { packet_type: SubAck }
        message: SUBACK without any entry
        left in buffer: 0
    "#]],
    );
}

#[test]
fn unsubscribe_without_filters() {
    check(
        "a2 02 00 01",
        expect![[r#"
        error: EmptyPayload { packet_type: Unsubscribe }
        message: UNSUBSCRIBE without any entry
        left in buffer: 0
    "#]],
    );
}

#[test]
fn unsubscribe_invalid_filter() {
    check(
        "a2 07 00 01 00 03 '#/a'",
        expect![[r#"
        error: InvalidTopicFilter { packet_type: Unsubscribe, error: MisplacedMultiLevelWildcard }
        message: invalid topic filter in UNSUBSCRIBE: '#' is not alone in the last topic level
        left in buffer: 0
    "#]],
    );
}

#[test]
fn unsuback_packet_id_zero() {
    check(
        "b0 02 00 00",
        expect![[r#"
        error: ZeroPacketId { packet_type: UnsubAck }
        message: packet identifier 0 in UNSUBACK
        left in buffer: 0
    "#]],
    );
}
