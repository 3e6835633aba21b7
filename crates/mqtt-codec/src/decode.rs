//! Strict decoding of MQTT 3.1.1 packets from a byte buffer.

use bytes::{Buf, Bytes, BytesMut};

use crate::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, PacketType, Publish, QoS, SubAck,
    Subscribe, SubscribeFilter, SubscribeReturnCode, Unsubscribe, Will,
};
use crate::topic::{TopicError, validate_topic_filter, validate_topic_name};

/// The largest remaining length the four-byte variable length encoding can express.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Why a byte sequence is not a valid MQTT 3.1.1 packet.
///
/// After any of these errors the connection must be closed: the decoder does not try to resynchronise.
/// Errors about the fixed header leave the buffer untouched; errors inside a complete packet consume it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The packet type nibble is one of the reserved values 0 or 15.
    #[error("reserved packet type {nibble}")]
    ReservedPacketType { nibble: u8 },
    /// The fixed-header flags differ from the value MQTT 3.1.1 fixes for this packet type.
    #[error("invalid fixed-header flags {flags:#06b} for {packet_type}")]
    InvalidFixedHeaderFlags { packet_type: PacketType, flags: u8 },
    /// The remaining length continues past its fourth byte.
    #[error("remaining length is longer than four bytes")]
    MalformedRemainingLength,
    /// The whole packet (fixed header included) would exceed the configured maximum packet size.
    #[error(
        "packet of {packet_size} bytes exceeds the maximum packet size of {max_packet_size} bytes"
    )]
    PacketTooLarge {
        packet_size: usize,
        max_packet_size: usize,
    },
    /// A field runs past the end of the packet, or the remaining length is wrong for the packet type.
    #[error("{packet_type} ends before its last field")]
    UnexpectedEndOfPacket { packet_type: PacketType },
    /// Bytes are left inside the packet after its last field.
    #[error("{packet_type} has {count} trailing bytes")]
    TrailingBytes {
        packet_type: PacketType,
        count: usize,
    },
    /// A QoS field holds the invalid value 3.
    #[error("invalid QoS {value} in {packet_type}")]
    InvalidQos { packet_type: PacketType, value: u8 },
    /// A packet identifier that MQTT requires is 0.
    #[error("packet identifier 0 in {packet_type}")]
    ZeroPacketId { packet_type: PacketType },
    /// A QoS 0 PUBLISH has the DUP flag set.
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupWithQosZero,
    /// An MQTT string is not valid UTF-8.
    #[error("string in {packet_type} is not valid UTF-8")]
    InvalidUtf8 { packet_type: PacketType },
    /// An MQTT string contains U+0000.
    #[error("string in {packet_type} contains U+0000")]
    NullCharacter { packet_type: PacketType },
    /// The CONNECT protocol name is neither "MQTT" nor the MQTT 3.1 name "MQIsdp".
    #[error("unknown protocol name {name:?}")]
    InvalidProtocolName { name: String },
    /// The CONNECT names a protocol level other than 4 (MQTT 3.1.1).
    ///
    /// The server should answer CONNACK 0x01 (unacceptable protocol version) and close the connection;
    /// see [`DecodeError::connack_return_code`].
    #[error("unsupported protocol level {level}")]
    UnsupportedProtocolLevel { level: u8 },
    /// The reserved bit 0 of the CONNECT flags is set.
    #[error("reserved CONNECT flag is set")]
    ReservedConnectFlag,
    /// Will QoS or will retain is set without the will flag.
    #[error("will QoS or will retain set without the will flag")]
    WillFlagsWithoutWill,
    /// The password flag is set without the user name flag.
    #[error("password without user name")]
    PasswordWithoutUsername,
    /// The CONNACK acknowledge flags use reserved bits, or report a session for a refused connection.
    #[error("invalid CONNACK acknowledge flags {flags:#04x} with return code {return_code}")]
    InvalidConnAckFlags { flags: u8, return_code: u8 },
    /// The CONNACK return code is one of the reserved values 6 to 255.
    #[error("reserved CONNACK return code {value}")]
    ReservedConnectReturnCode { value: u8 },
    /// A SUBSCRIBE requested-QoS byte uses its six reserved bits.
    #[error("reserved bits set in SUBSCRIBE options byte {value:#04x}")]
    ReservedSubscribeOptionBits { value: u8 },
    /// A SUBACK return code is neither 0, 1, 2 nor 0x80.
    #[error("invalid SUBACK return code {value:#04x}")]
    InvalidSubscribeReturnCode { value: u8 },
    /// A SUBSCRIBE, SUBACK or UNSUBSCRIBE without any entry.
    #[error("{packet_type} without any entry")]
    EmptyPayload { packet_type: PacketType },
    /// A PUBLISH or will topic name is invalid.
    #[error("invalid topic name in {packet_type}: {error}")]
    InvalidTopicName {
        packet_type: PacketType,
        error: TopicError,
    },
    /// A SUBSCRIBE or UNSUBSCRIBE topic filter is invalid.
    #[error("invalid topic filter in {packet_type}: {error}")]
    InvalidTopicFilter {
        packet_type: PacketType,
        error: TopicError,
    },
}

impl DecodeError {
    /// The CONNACK return code a server should send before closing the connection, if any.
    ///
    /// MQTT 3.1.1 asks for CONNACK 0x01 when the protocol level is unsupported; every other decode
    /// error closes the connection without CONNACK.
    pub fn connack_return_code(&self) -> Option<ConnectReturnCode> {
        match self {
            DecodeError::UnsupportedProtocolLevel { .. } => {
                Some(ConnectReturnCode::UnacceptableProtocolVersion)
            }
            _ => None,
        }
    }
}

/// The parsed fixed header of a packet whose remaining length is fully buffered or not.
struct FixedHeader {
    packet_type: PacketType,
    flags: u8,
    header_length: usize,
    remaining_length: usize,
}

/// Parses the fixed header at the start of `buffer`, bounding the declared length by
/// `max_packet_size` before anything is buffered for the body. `Ok(None)` means more bytes are needed.
fn parse_fixed_header(
    buffer: &[u8],
    max_packet_size: usize,
) -> Result<Option<FixedHeader>, DecodeError> {
    let Some(&first_byte) = buffer.first() else {
        return Ok(None);
    };
    let nibble = first_byte >> 4;
    let flags = first_byte & 0x0f;
    let packet_type =
        PacketType::from_nibble(nibble).ok_or(DecodeError::ReservedPacketType { nibble })?;
    match packet_type.required_flags() {
        Some(required) if required != flags => {
            return Err(DecodeError::InvalidFixedHeaderFlags { packet_type, flags });
        }
        Some(_) => {}
        None => validate_publish_flags(flags)?,
    }

    let mut remaining_length = 0usize;
    for (index, &byte) in buffer.iter().skip(1).take(4).enumerate() {
        remaining_length |= usize::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            let header_length = index + 2;
            let packet_size = header_length + remaining_length;
            if packet_size > max_packet_size {
                return Err(DecodeError::PacketTooLarge {
                    packet_size,
                    max_packet_size,
                });
            }
            return Ok(Some(FixedHeader {
                packet_type,
                flags,
                header_length,
                remaining_length,
            }));
        }
    }
    if buffer.len() >= 5 {
        return Err(DecodeError::MalformedRemainingLength);
    }
    Ok(None)
}

fn validate_publish_flags(flags: u8) -> Result<(), DecodeError> {
    let qos_bits = (flags >> 1) & 0b11;
    if qos_bits == 3 {
        return Err(DecodeError::InvalidQos {
            packet_type: PacketType::Publish,
            value: qos_bits,
        });
    }
    if qos_bits == 0 && flags & 0b1000 != 0 {
        return Err(DecodeError::DupWithQosZero);
    }
    Ok(())
}

/// Decodes one packet from the front of `buffer`; see [`Packet::decode`].
pub(crate) fn decode_packet(
    buffer: &mut BytesMut,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    let Some(header) = parse_fixed_header(buffer, max_packet_size)? else {
        return Ok(None);
    };
    let packet_size = header.header_length + header.remaining_length;
    if buffer.len() < packet_size {
        // The length is bounded by `max_packet_size` at this point, so reserving is safe.
        buffer.reserve(packet_size - buffer.len());
        return Ok(None);
    }
    let mut body = buffer.split_to(packet_size).freeze();
    body.advance(header.header_length);
    decode_body(header.packet_type, header.flags, body).map(Some)
}

/// A cursor over the remaining bytes of one packet body.
struct BodyReader {
    packet_type: PacketType,
    bytes: Bytes,
}

impl BodyReader {
    fn end_error(&self) -> DecodeError {
        DecodeError::UnexpectedEndOfPacket {
            packet_type: self.packet_type,
        }
    }

    fn has_remaining(&self) -> bool {
        !self.bytes.is_empty()
    }

    fn read_u8(&mut self) -> Result<u8, DecodeError> {
        if self.bytes.is_empty() {
            return Err(self.end_error());
        }
        Ok(self.bytes.get_u8())
    }

    fn read_u16(&mut self) -> Result<u16, DecodeError> {
        if self.bytes.len() < 2 {
            return Err(self.end_error());
        }
        Ok(self.bytes.get_u16())
    }

    fn read_packet_id(&mut self) -> Result<PacketId, DecodeError> {
        let value = self.read_u16()?;
        PacketId::new(value).ok_or(DecodeError::ZeroPacketId {
            packet_type: self.packet_type,
        })
    }

    fn read_binary(&mut self) -> Result<Bytes, DecodeError> {
        let length = usize::from(self.read_u16()?);
        if self.bytes.len() < length {
            return Err(self.end_error());
        }
        Ok(self.bytes.split_to(length))
    }

    fn read_string(&mut self) -> Result<String, DecodeError> {
        let packet_type = self.packet_type;
        let raw = self.read_binary()?;
        let text =
            std::str::from_utf8(&raw).map_err(|_| DecodeError::InvalidUtf8 { packet_type })?;
        if raw.contains(&0) {
            return Err(DecodeError::NullCharacter { packet_type });
        }
        Ok(text.to_owned())
    }

    fn read_topic_name(&mut self) -> Result<String, DecodeError> {
        let topic = self.read_string()?;
        validate_topic_name(&topic).map_err(|error| DecodeError::InvalidTopicName {
            packet_type: self.packet_type,
            error,
        })?;
        Ok(topic)
    }

    fn read_topic_filter(&mut self) -> Result<String, DecodeError> {
        let filter = self.read_string()?;
        validate_topic_filter(&filter).map_err(|error| DecodeError::InvalidTopicFilter {
            packet_type: self.packet_type,
            error,
        })?;
        Ok(filter)
    }

    fn take_rest(&mut self) -> Bytes {
        std::mem::take(&mut self.bytes)
    }

    fn finish(self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                packet_type: self.packet_type,
                count: self.bytes.len(),
            })
        }
    }
}

fn decode_body(packet_type: PacketType, flags: u8, body: Bytes) -> Result<Packet, DecodeError> {
    let mut reader = BodyReader {
        packet_type,
        bytes: body,
    };
    let packet = match packet_type {
        PacketType::Connect => Packet::Connect(decode_connect(&mut reader)?),
        PacketType::ConnAck => Packet::ConnAck(decode_connack(&mut reader)?),
        PacketType::Publish => Packet::Publish(decode_publish(flags, &mut reader)?),
        PacketType::PubAck => Packet::PubAck(reader.read_packet_id()?),
        PacketType::PubRec => Packet::PubRec(reader.read_packet_id()?),
        PacketType::PubRel => Packet::PubRel(reader.read_packet_id()?),
        PacketType::PubComp => Packet::PubComp(reader.read_packet_id()?),
        PacketType::Subscribe => Packet::Subscribe(decode_subscribe(&mut reader)?),
        PacketType::SubAck => Packet::SubAck(decode_suback(&mut reader)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(decode_unsubscribe(&mut reader)?),
        PacketType::UnsubAck => Packet::UnsubAck(reader.read_packet_id()?),
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => Packet::Disconnect,
    };
    reader.finish()?;
    Ok(packet)
}

pub(crate) const CONNECT_FLAG_RESERVED: u8 = 0b0000_0001;
pub(crate) const CONNECT_FLAG_CLEAN_SESSION: u8 = 0b0000_0010;
pub(crate) const CONNECT_FLAG_WILL: u8 = 0b0000_0100;
pub(crate) const CONNECT_FLAG_WILL_QOS_MASK: u8 = 0b0001_1000;
pub(crate) const CONNECT_FLAG_WILL_RETAIN: u8 = 0b0010_0000;
pub(crate) const CONNECT_FLAG_PASSWORD: u8 = 0b0100_0000;
pub(crate) const CONNECT_FLAG_USERNAME: u8 = 0b1000_0000;

fn decode_connect(reader: &mut BodyReader) -> Result<Connect, DecodeError> {
    let protocol_name = reader.read_binary()?;
    let level = reader.read_u8()?;
    match (&protocol_name[..], level) {
        (b"MQTT", 4) => {}
        (b"MQTT", _) | (b"MQIsdp", _) => {
            return Err(DecodeError::UnsupportedProtocolLevel { level });
        }
        (other, _) => {
            return Err(DecodeError::InvalidProtocolName {
                name: String::from_utf8_lossy(other).into_owned(),
            });
        }
    }
    let flags = reader.read_u8()?;
    if flags & CONNECT_FLAG_RESERVED != 0 {
        return Err(DecodeError::ReservedConnectFlag);
    }
    let has_will = flags & CONNECT_FLAG_WILL != 0;
    let will_qos_bits = (flags & CONNECT_FLAG_WILL_QOS_MASK) >> 3;
    let will_retain = flags & CONNECT_FLAG_WILL_RETAIN != 0;
    if !has_will && (will_qos_bits != 0 || will_retain) {
        return Err(DecodeError::WillFlagsWithoutWill);
    }
    let will_qos = QoS::from_u8(will_qos_bits).ok_or(DecodeError::InvalidQos {
        packet_type: PacketType::Connect,
        value: will_qos_bits,
    })?;
    let has_username = flags & CONNECT_FLAG_USERNAME != 0;
    let has_password = flags & CONNECT_FLAG_PASSWORD != 0;
    if has_password && !has_username {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = reader.read_u16()?;
    let client_id = reader.read_string()?;
    let will = if has_will {
        let topic = reader.read_topic_name()?;
        let payload = reader.read_binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(reader.read_string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(reader.read_binary()?)
    } else {
        None
    };
    Ok(Connect {
        client_id,
        clean_session: flags & CONNECT_FLAG_CLEAN_SESSION != 0,
        keep_alive,
        will,
        username,
        password,
    })
}

fn decode_connack(reader: &mut BodyReader) -> Result<ConnAck, DecodeError> {
    let acknowledge_flags = reader.read_u8()?;
    let return_code_value = reader.read_u8()?;
    let return_code = ConnectReturnCode::from_u8(return_code_value).ok_or(
        DecodeError::ReservedConnectReturnCode {
            value: return_code_value,
        },
    )?;
    let session_present = match acknowledge_flags {
        0 => false,
        1 if return_code == ConnectReturnCode::Accepted => true,
        _ => {
            return Err(DecodeError::InvalidConnAckFlags {
                flags: acknowledge_flags,
                return_code: return_code_value,
            });
        }
    };
    Ok(ConnAck {
        session_present,
        return_code,
    })
}

fn decode_publish(flags: u8, reader: &mut BodyReader) -> Result<Publish, DecodeError> {
    // The fixed-header parser already rejected QoS 3 and DUP at QoS 0.
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQos {
        packet_type: PacketType::Publish,
        value: 3,
    })?;
    let topic = reader.read_topic_name()?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce | QoS::ExactlyOnce => Some(reader.read_packet_id()?),
    };
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b0001 != 0,
        topic,
        packet_id,
        payload: reader.take_rest(),
    })
}

fn decode_subscribe(reader: &mut BodyReader) -> Result<Subscribe, DecodeError> {
    let packet_id = reader.read_packet_id()?;
    let mut filters = Vec::new();
    while reader.has_remaining() {
        let filter = reader.read_topic_filter()?;
        let options = reader.read_u8()?;
        if options & 0b1111_1100 != 0 {
            return Err(DecodeError::ReservedSubscribeOptionBits { value: options });
        }
        let requested_qos = QoS::from_u8(options).ok_or(DecodeError::InvalidQos {
            packet_type: PacketType::Subscribe,
            value: options,
        })?;
        filters.push(SubscribeFilter {
            filter,
            requested_qos,
        });
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptyPayload {
            packet_type: PacketType::Subscribe,
        });
    }
    Ok(Subscribe { packet_id, filters })
}

fn decode_suback(reader: &mut BodyReader) -> Result<SubAck, DecodeError> {
    let packet_id = reader.read_packet_id()?;
    let mut return_codes = Vec::new();
    while reader.has_remaining() {
        let value = reader.read_u8()?;
        let code = SubscribeReturnCode::from_u8(value)
            .ok_or(DecodeError::InvalidSubscribeReturnCode { value })?;
        return_codes.push(code);
    }
    if return_codes.is_empty() {
        return Err(DecodeError::EmptyPayload {
            packet_type: PacketType::SubAck,
        });
    }
    Ok(SubAck {
        packet_id,
        return_codes,
    })
}

fn decode_unsubscribe(reader: &mut BodyReader) -> Result<Unsubscribe, DecodeError> {
    let packet_id = reader.read_packet_id()?;
    let mut filters = Vec::new();
    while reader.has_remaining() {
        filters.push(reader.read_topic_filter()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptyPayload {
            packet_type: PacketType::Unsubscribe,
        });
    }
    Ok(Unsubscribe { packet_id, filters })
}
