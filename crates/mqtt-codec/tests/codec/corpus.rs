//! Replays the committed seed corpus of the `decode` fuzz target, so stable `cargo test` exercises
//! the fuzz body on every valid and malformed seed.

use std::path::PathBuf;

use bytes::BytesMut;
use expect_test::expect;
use mqtt_codec::{Packet, fuzz_support};

fn corpus_files() -> Vec<(String, Vec<u8>)> {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&directory)
        .expect("the seed corpus directory exists")
        .map(|entry| {
            let entry = entry.expect("readable corpus entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(entry.path()).expect("readable corpus file");
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Decodes every packet of `bytes` and renders the packet types and the error that ended decoding.
fn summarize(bytes: &[u8]) -> String {
    let mut buffer = BytesMut::from(bytes);
    let mut parts = Vec::new();
    loop {
        match Packet::decode(&mut buffer, fuzz_support::FUZZ_MAX_PACKET_SIZE) {
            Ok(Some(packet)) => parts.push(packet.packet_type().to_string()),
            Ok(None) if buffer.is_empty() => break,
            Ok(None) => {
                parts.push(format!("incomplete ({} bytes)", buffer.len()));
                break;
            }
            Err(error) => {
                parts.push(format!("error: {error}"));
                break;
            }
        }
    }
    parts.join(", ")
}

#[test]
fn every_corpus_file_replays_through_the_fuzz_body() {
    let files = corpus_files();
    assert!(
        files.len() >= 30,
        "the seed corpus has only {} files",
        files.len()
    );
    for (_, bytes) in &files {
        fuzz_support::decode_arbitrary_bytes(bytes);
    }
}

#[test]
fn corpus_outcomes() {
    let rendered: String = corpus_files()
        .iter()
        .map(|(name, bytes)| format!("{name}: {}\n", summarize(bytes)))
        .collect();
    expect![[r#"
        connack_not_authorized: CONNACK
        connack_refused_protocol_version: CONNACK
        connack_reserved_flag_bits: error: invalid CONNACK acknowledge flags 0x02 with return code 0
        connack_reserved_return_code: error: reserved CONNACK return code 6
        connack_session_present: CONNACK
        connack_session_present_with_refusal: error: invalid CONNACK acknowledge flags 0x01 with return code 4
        connack_too_short: error: CONNACK ends before its last field
        connect_minimal: CONNECT
        connect_missing_client_id: error: CONNECT ends before its last field
        connect_mqtt_3_1_protocol_name: error: unsupported protocol level 3
        connect_null_character_in_client_id: error: string in CONNECT contains U+0000
        connect_password_without_username: error: password without user name
        connect_protocol_level_3: error: unsupported protocol level 3
        connect_protocol_level_5_with_properties: error: unsupported protocol level 5
        connect_reserved_flag: error: reserved CONNECT flag is set
        connect_trailing_bytes: error: CONNECT has 1 trailing bytes
        connect_will_qos_3: error: invalid QoS 3 in CONNECT
        connect_will_qos_without_will: error: will QoS or will retain set without the will flag
        connect_will_retain_without_will: error: will QoS or will retain set without the will flag
        connect_will_topic_with_wildcard: error: invalid topic name in CONNECT: topic name contains a wildcard character
        connect_with_flags: error: invalid fixed-header flags 0b0001 for CONNECT
        connect_with_username_only: CONNECT
        connect_with_will_username_and_password: CONNECT
        connect_wrong_protocol_name: error: unknown protocol name "MQTX"
        disconnect: DISCONNECT
        iothub_session: CONNECT, SUBSCRIBE, PUBLISH, PUBLISH, PUBACK, PINGREQ, DISCONNECT
        iothub_session_truncated: CONNECT, SUBSCRIBE, incomplete (114 bytes)
        largest_remaining_length_with_tiny_limit: error: packet of 268435460 bytes exceeds the maximum packet size of 65536 bytes
        non_minimal_remaining_length_is_accepted: PINGREQ
        packet_size_counts_the_fixed_header: incomplete (2 bytes)
        packet_too_large_is_rejected_before_the_body_arrives: incomplete (3 bytes)
        partial_body_is_incomplete: incomplete (7 bytes)
        partial_remaining_length_is_incomplete: incomplete (2 bytes)
        pingreq: PINGREQ
        pingreq_with_body: error: PINGREQ has 1 trailing bytes
        pingreq_with_flags: error: invalid fixed-header flags 0b0001 for PINGREQ
        pingresp: PINGRESP
        puback: PUBACK
        puback_packet_id_zero: error: packet identifier 0 in PUBACK
        puback_trailing_bytes: error: PUBACK has 1 trailing bytes
        puback_truncated: error: PUBACK ends before its last field
        pubcomp: PUBCOMP
        publish_1kib_payload: PUBLISH
        publish_dup_at_qos0: error: DUP flag set on a QoS 0 PUBLISH
        publish_empty_topic: error: invalid topic name in PUBLISH: topic is empty
        publish_encoded_surrogate_topic: error: string in PUBLISH is not valid UTF-8
        publish_invalid_utf8_topic: error: string in PUBLISH is not valid UTF-8
        publish_null_character_in_topic: error: string in PUBLISH contains U+0000
        publish_over_fuzz_limit: error: packet of 70004 bytes exceeds the maximum packet size of 65536 bytes
        publish_qos0: PUBLISH
        publish_qos1_packet_id_zero: error: packet identifier 0 in PUBLISH
        publish_qos1_retain: PUBLISH
        publish_qos2_dup_empty_payload: PUBLISH
        publish_qos3: error: invalid QoS 3 in PUBLISH
        publish_topic_length_past_end: error: PUBLISH ends before its last field
        publish_wildcard_topic: error: invalid topic name in PUBLISH: topic name contains a wildcard character
        pubrec: PUBREC
        pubrel: PUBREL
        pubrel_without_required_flags: error: invalid fixed-header flags 0b0000 for PUBREL
        qos2_flow: PUBLISH, PUBREC, PUBREL, PUBCOMP
        remaining_length_longer_than_four_bytes: error: remaining length is longer than four bytes
        reserved_packet_type_0: error: reserved packet type 0
        reserved_packet_type_15: error: reserved packet type 15
        suback_invalid_return_code: error: invalid SUBACK return code 0x03
        suback_with_failure: SUBACK
        suback_without_return_codes: error: SUBACK without any entry
        subscribe_empty_filter: error: invalid topic filter in SUBSCRIBE: topic is empty
        subscribe_misplaced_multi_level_wildcard: error: invalid topic filter in SUBSCRIBE: '#' is not alone in the last topic level
        subscribe_misplaced_single_level_wildcard: error: invalid topic filter in SUBSCRIBE: '+' does not occupy an entire topic level
        subscribe_missing_qos_byte: error: SUBSCRIBE ends before its last field
        subscribe_packet_id_zero: error: packet identifier 0 in SUBSCRIBE
        subscribe_qos_3: error: invalid QoS 3 in SUBSCRIBE
        subscribe_reserved_option_bits: error: reserved bits set in SUBSCRIBE options byte 0x04
        subscribe_two_filters: SUBSCRIBE
        subscribe_without_filters: error: SUBSCRIBE without any entry
        subscribe_without_required_flags: error: invalid fixed-header flags 0b0000 for SUBSCRIBE
        two_packets_in_one_buffer_decode_the_first: PINGREQ, DISCONNECT
        unsuback: UNSUBACK
        unsuback_packet_id_zero: error: packet identifier 0 in UNSUBACK
        unsubscribe: UNSUBSCRIBE
        unsubscribe_invalid_filter: error: invalid topic filter in UNSUBSCRIBE: '#' is not alone in the last topic level
        unsubscribe_with_wrong_flags: error: invalid fixed-header flags 0b0011 for UNSUBSCRIBE
        unsubscribe_without_filters: error: UNSUBSCRIBE without any entry
    "#]].assert_eq(&rendered);
}
