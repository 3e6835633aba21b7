//! Encoding of MQTT 3.1.1 packets into a byte buffer.
//!
//! The encoder checks every rule the decoder checks, so a packet that encodes successfully always
//! decodes back to an equal value.

use bytes::{BufMut, BytesMut};

use crate::decode::{
    CONNECT_FLAG_CLEAN_SESSION, CONNECT_FLAG_PASSWORD, CONNECT_FLAG_USERNAME, CONNECT_FLAG_WILL,
    CONNECT_FLAG_WILL_RETAIN, MAX_REMAINING_LENGTH,
};
use crate::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, PacketType, Publish, QoS, SubAck,
    Subscribe, Unsubscribe,
};
use crate::topic::{TopicError, validate_topic_filter, validate_topic_name};

/// Why a packet value cannot be encoded as a valid MQTT 3.1.1 packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A string or binary field is longer than the 65535 bytes its two-byte length prefix allows.
    #[error("{field} is {length} bytes long, more than 65535")]
    FieldTooLong { field: &'static str, length: usize },
    /// A string field contains U+0000.
    #[error("{field} contains U+0000")]
    NullCharacter { field: &'static str },
    /// A PUBLISH or will topic name is invalid.
    #[error("invalid topic name: {0}")]
    InvalidTopicName(TopicError),
    /// A SUBSCRIBE or UNSUBSCRIBE topic filter is invalid.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(TopicError),
    /// A PUBLISH carries a packet identifier at QoS 0, or none at QoS 1 or 2.
    #[error("PUBLISH at QoS {qos} must carry a packet identifier exactly when QoS > 0")]
    PacketIdDoesNotMatchQos { qos: u8 },
    /// A QoS 0 PUBLISH with the DUP flag.
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupWithQosZero,
    /// A CONNECT with a password but no user name.
    #[error("password without user name")]
    PasswordWithoutUsername,
    /// A CONNACK reporting a present session together with a refusal.
    #[error("session present set on a refused CONNACK")]
    SessionPresentWithRefusal,
    /// A SUBSCRIBE, SUBACK or UNSUBSCRIBE without any entry.
    #[error("{packet_type} without any entry")]
    EmptyPayload { packet_type: PacketType },
    /// The packet body exceeds the 268435455 bytes the remaining length can express.
    #[error("remaining length {remaining_length} exceeds 268435455")]
    PacketTooLarge { remaining_length: usize },
}

const MAX_FIELD_LENGTH: usize = u16::MAX as usize;

fn check_binary(field: &'static str, value: &[u8]) -> Result<usize, EncodeError> {
    if value.len() > MAX_FIELD_LENGTH {
        return Err(EncodeError::FieldTooLong {
            field,
            length: value.len(),
        });
    }
    Ok(2 + value.len())
}

fn check_string(field: &'static str, value: &str) -> Result<usize, EncodeError> {
    if value.as_bytes().contains(&0) {
        return Err(EncodeError::NullCharacter { field });
    }
    check_binary(field, value.as_bytes())
}

fn check_topic_name(topic: &str) -> Result<usize, EncodeError> {
    validate_topic_name(topic).map_err(EncodeError::InvalidTopicName)?;
    Ok(2 + topic.len())
}

fn check_topic_filter(filter: &str) -> Result<usize, EncodeError> {
    validate_topic_filter(filter).map_err(EncodeError::InvalidTopicFilter)?;
    Ok(2 + filter.len())
}

fn connect_remaining_length(connect: &Connect) -> Result<usize, EncodeError> {
    // Protocol name "MQTT", level, flags and keep-alive.
    let mut length = 2 + 4 + 1 + 1 + 2;
    length += check_string("client identifier", &connect.client_id)?;
    if let Some(will) = &connect.will {
        length += check_topic_name(&will.topic)?;
        length += check_binary("will payload", &will.payload)?;
    }
    if connect.password.is_some() && connect.username.is_none() {
        return Err(EncodeError::PasswordWithoutUsername);
    }
    if let Some(username) = &connect.username {
        length += check_string("user name", username)?;
    }
    if let Some(password) = &connect.password {
        length += check_binary("password", password)?;
    }
    Ok(length)
}

fn publish_remaining_length(publish: &Publish) -> Result<usize, EncodeError> {
    if (publish.qos == QoS::AtMostOnce) != publish.packet_id.is_none() {
        return Err(EncodeError::PacketIdDoesNotMatchQos {
            qos: publish.qos.as_u8(),
        });
    }
    if publish.dup && publish.qos == QoS::AtMostOnce {
        return Err(EncodeError::DupWithQosZero);
    }
    let packet_id_length = if publish.packet_id.is_some() { 2 } else { 0 };
    Ok(check_topic_name(&publish.topic)? + packet_id_length + publish.payload.len())
}

fn subscribe_remaining_length(subscribe: &Subscribe) -> Result<usize, EncodeError> {
    if subscribe.filters.is_empty() {
        return Err(EncodeError::EmptyPayload {
            packet_type: PacketType::Subscribe,
        });
    }
    let mut length = 2;
    for filter in &subscribe.filters {
        length += check_topic_filter(&filter.filter)? + 1;
    }
    Ok(length)
}

fn suback_remaining_length(suback: &SubAck) -> Result<usize, EncodeError> {
    if suback.return_codes.is_empty() {
        return Err(EncodeError::EmptyPayload {
            packet_type: PacketType::SubAck,
        });
    }
    Ok(2 + suback.return_codes.len())
}

fn unsubscribe_remaining_length(unsubscribe: &Unsubscribe) -> Result<usize, EncodeError> {
    if unsubscribe.filters.is_empty() {
        return Err(EncodeError::EmptyPayload {
            packet_type: PacketType::Unsubscribe,
        });
    }
    let mut length = 2;
    for filter in &unsubscribe.filters {
        length += check_topic_filter(filter)?;
    }
    Ok(length)
}

fn connack_remaining_length(connack: &ConnAck) -> Result<usize, EncodeError> {
    if connack.session_present && connack.return_code != ConnectReturnCode::Accepted {
        return Err(EncodeError::SessionPresentWithRefusal);
    }
    Ok(2)
}

/// Validates `packet` and returns its remaining length (the size of everything after the fixed header).
pub(crate) fn remaining_length(packet: &Packet) -> Result<usize, EncodeError> {
    let length = match packet {
        Packet::Connect(connect) => connect_remaining_length(connect)?,
        Packet::ConnAck(connack) => connack_remaining_length(connack)?,
        Packet::Publish(publish) => publish_remaining_length(publish)?,
        Packet::PubAck(_)
        | Packet::PubRec(_)
        | Packet::PubRel(_)
        | Packet::PubComp(_)
        | Packet::UnsubAck(_) => 2,
        Packet::Subscribe(subscribe) => subscribe_remaining_length(subscribe)?,
        Packet::SubAck(suback) => suback_remaining_length(suback)?,
        Packet::Unsubscribe(unsubscribe) => unsubscribe_remaining_length(unsubscribe)?,
        Packet::PingReq | Packet::PingResp | Packet::Disconnect => 0,
    };
    if length > MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLarge {
            remaining_length: length,
        });
    }
    Ok(length)
}

/// The number of bytes the variable length encoding of `remaining_length` takes.
pub(crate) fn remaining_length_size(remaining_length: usize) -> usize {
    match remaining_length {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn first_byte(packet: &Packet) -> u8 {
    let packet_type = packet.packet_type();
    let flags = match packet {
        Packet::Publish(publish) => {
            (u8::from(publish.dup) << 3) | (publish.qos.as_u8() << 1) | u8::from(publish.retain)
        }
        _ => packet_type.required_flags().unwrap_or(0),
    };
    (packet_type.as_nibble() << 4) | flags
}

fn put_remaining_length(buffer: &mut BytesMut, mut remaining_length: usize) {
    loop {
        // Truncation is intended: the low seven bits are the next digit.
        let mut digit = (remaining_length % 128) as u8;
        remaining_length /= 128;
        if remaining_length > 0 {
            digit |= 0x80;
        }
        buffer.put_u8(digit);
        if remaining_length == 0 {
            break;
        }
    }
}

/// Puts a length-prefixed field whose length `remaining_length` already bounded to 65535.
fn put_binary(buffer: &mut BytesMut, value: &[u8]) {
    let length = u16::try_from(value.len()).unwrap_or(u16::MAX);
    buffer.put_u16(length);
    buffer.put_slice(value);
}

fn put_packet_id(buffer: &mut BytesMut, packet_id: PacketId) {
    buffer.put_u16(packet_id.get());
}

/// Encodes `packet` at the end of `buffer`; see [`Packet::encode`].
pub(crate) fn encode_packet(packet: &Packet, buffer: &mut BytesMut) -> Result<(), EncodeError> {
    let remaining = remaining_length(packet)?;
    buffer.reserve(1 + remaining_length_size(remaining) + remaining);
    buffer.put_u8(first_byte(packet));
    put_remaining_length(buffer, remaining);
    match packet {
        Packet::Connect(connect) => put_connect(buffer, connect),
        Packet::ConnAck(connack) => {
            buffer.put_u8(u8::from(connack.session_present));
            buffer.put_u8(connack.return_code.as_u8());
        }
        Packet::Publish(publish) => {
            put_binary(buffer, publish.topic.as_bytes());
            if let Some(packet_id) = publish.packet_id {
                put_packet_id(buffer, packet_id);
            }
            buffer.put_slice(&publish.payload);
        }
        Packet::PubAck(packet_id)
        | Packet::PubRec(packet_id)
        | Packet::PubRel(packet_id)
        | Packet::PubComp(packet_id)
        | Packet::UnsubAck(packet_id) => put_packet_id(buffer, *packet_id),
        Packet::Subscribe(subscribe) => {
            put_packet_id(buffer, subscribe.packet_id);
            for filter in &subscribe.filters {
                put_binary(buffer, filter.filter.as_bytes());
                buffer.put_u8(filter.requested_qos.as_u8());
            }
        }
        Packet::SubAck(suback) => {
            put_packet_id(buffer, suback.packet_id);
            for code in &suback.return_codes {
                buffer.put_u8(code.as_u8());
            }
        }
        Packet::Unsubscribe(unsubscribe) => {
            put_packet_id(buffer, unsubscribe.packet_id);
            for filter in &unsubscribe.filters {
                put_binary(buffer, filter.as_bytes());
            }
        }
        Packet::PingReq | Packet::PingResp | Packet::Disconnect => {}
    }
    Ok(())
}

fn put_connect(buffer: &mut BytesMut, connect: &Connect) {
    put_binary(buffer, b"MQTT");
    buffer.put_u8(4);
    let mut flags = 0u8;
    if connect.clean_session {
        flags |= CONNECT_FLAG_CLEAN_SESSION;
    }
    if let Some(will) = &connect.will {
        flags |= CONNECT_FLAG_WILL | (will.qos.as_u8() << 3);
        if will.retain {
            flags |= CONNECT_FLAG_WILL_RETAIN;
        }
    }
    if connect.username.is_some() {
        flags |= CONNECT_FLAG_USERNAME;
    }
    if connect.password.is_some() {
        flags |= CONNECT_FLAG_PASSWORD;
    }
    buffer.put_u8(flags);
    buffer.put_u16(connect.keep_alive);
    put_binary(buffer, connect.client_id.as_bytes());
    if let Some(will) = &connect.will {
        put_binary(buffer, will.topic.as_bytes());
        put_binary(buffer, &will.payload);
    }
    if let Some(username) = &connect.username {
        put_binary(buffer, username.as_bytes());
    }
    if let Some(password) = &connect.password {
        put_binary(buffer, password);
    }
}
