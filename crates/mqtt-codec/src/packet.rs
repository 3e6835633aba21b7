//! Typed values for the fourteen MQTT 3.1.1 control packets.

use std::fmt;
use std::num::NonZeroU16;

use bytes::Bytes;

/// The quality-of-service level of a PUBLISH, a will message or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    /// QoS 0: fire and forget.
    AtMostOnce = 0,
    /// QoS 1: acknowledged with PUBACK, may be delivered more than once.
    AtLeastOnce = 1,
    /// QoS 2: four-way PUBREC / PUBREL / PUBCOMP handshake.
    ExactlyOnce = 2,
}

impl QoS {
    /// Converts the two-bit wire value into a QoS, or `None` for the invalid value 3 and above.
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    /// The wire value of this QoS (0, 1 or 2).
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A packet identifier, which MQTT requires to be non-zero wherever one is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// Returns the packet identifier for `value`, or `None` for the invalid identifier 0.
    pub const fn new(value: u16) -> Option<PacketId> {
        match NonZeroU16::new(value) {
            Some(non_zero) => Some(PacketId(non_zero)),
            None => None,
        }
    }

    /// The numeric value, always in `1..=65535`.
    pub const fn get(self) -> u16 {
        self.0.get()
    }

    /// The identifier that follows this one, wrapping from 65535 back to 1.
    pub const fn next(self) -> PacketId {
        match NonZeroU16::new(self.0.get().wrapping_add(1)) {
            Some(non_zero) => PacketId(non_zero),
            None => PacketId(NonZeroU16::MIN),
        }
    }
}

impl fmt::Display for PacketId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

/// The control packet type carried in the high nibble of the first fixed-header byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
}

impl PacketType {
    /// Converts the high nibble of the first fixed-header byte, or `None` for the reserved values 0 and 15.
    pub fn from_nibble(nibble: u8) -> Option<PacketType> {
        Some(match nibble {
            1 => PacketType::Connect,
            2 => PacketType::ConnAck,
            3 => PacketType::Publish,
            4 => PacketType::PubAck,
            5 => PacketType::PubRec,
            6 => PacketType::PubRel,
            7 => PacketType::PubComp,
            8 => PacketType::Subscribe,
            9 => PacketType::SubAck,
            10 => PacketType::Unsubscribe,
            11 => PacketType::UnsubAck,
            12 => PacketType::PingReq,
            13 => PacketType::PingResp,
            14 => PacketType::Disconnect,
            _ => return None,
        })
    }

    /// The value of the high nibble of the first fixed-header byte.
    pub fn as_nibble(self) -> u8 {
        self as u8
    }

    /// The flags (low nibble of the first fixed-header byte) this packet type must carry.
    ///
    /// PUBLISH has no fixed value (it carries DUP, QoS and RETAIN) and returns `None`.
    pub fn required_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            PacketType::Connect => "CONNECT",
            PacketType::ConnAck => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::PubAck => "PUBACK",
            PacketType::PubRec => "PUBREC",
            PacketType::PubRel => "PUBREL",
            PacketType::PubComp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::SubAck => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::UnsubAck => "UNSUBACK",
            PacketType::PingReq => "PINGREQ",
            PacketType::PingResp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
        };
        formatter.write_str(name)
    }
}

/// One MQTT 3.1.1 control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PacketId),
    PubRec(PacketId),
    PubRel(PacketId),
    PubComp(PacketId),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(PacketId),
    PingReq,
    PingResp,
    Disconnect,
}

impl Packet {
    /// The control packet type of this packet.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect => PacketType::Disconnect,
        }
    }
}

/// CONNECT: the first packet a client sends. Only protocol name "MQTT" at level 4 is represented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The client identifier; MQTT 3.1.1 allows it to be empty when `clean_session` is set,
    /// which the server decides (CONNACK 2), not the codec.
    pub client_id: String,
    /// Whether the server must discard any previous session state.
    pub clean_session: bool,
    /// The keep-alive interval in seconds; 0 turns the keep-alive mechanism off.
    pub keep_alive: u16,
    /// The will message the server publishes if the connection drops without DISCONNECT.
    pub will: Option<Will>,
    /// The user name; MQTT 3.1.1 forbids a password without a user name.
    pub username: Option<String>,
    /// The password, arbitrary binary data.
    pub password: Option<Bytes>,
}

/// The will message of a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// The topic name the will is published to (no wildcards).
    pub topic: String,
    /// The will message body.
    pub payload: Bytes,
    /// The QoS the will is published with.
    pub qos: QoS,
    /// Whether the will is published as a retained message.
    pub retain: bool,
}

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a stored session; MQTT requires it to be false unless the code is `Accepted`.
    pub session_present: bool,
    /// The connect return code.
    pub return_code: ConnectReturnCode,
}

/// The CONNACK return codes of MQTT 3.1.1, section 3.2.2.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectReturnCode {
    /// 0x00 Connection accepted.
    Accepted = 0,
    /// 0x01 Connection refused, unacceptable protocol version.
    UnacceptableProtocolVersion = 1,
    /// 0x02 Connection refused, identifier rejected.
    IdentifierRejected = 2,
    /// 0x03 Connection refused, server unavailable.
    ServerUnavailable = 3,
    /// 0x04 Connection refused, bad user name or password.
    BadUserNameOrPassword = 4,
    /// 0x05 Connection refused, not authorized.
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    /// Converts the wire value, or `None` for the reserved values 6 to 255.
    pub fn from_u8(value: u8) -> Option<ConnectReturnCode> {
        Some(match value {
            0 => ConnectReturnCode::Accepted,
            1 => ConnectReturnCode::UnacceptableProtocolVersion,
            2 => ConnectReturnCode::IdentifierRejected,
            3 => ConnectReturnCode::ServerUnavailable,
            4 => ConnectReturnCode::BadUserNameOrPassword,
            5 => ConnectReturnCode::NotAuthorized,
            _ => return None,
        })
    }

    /// The wire value of this return code.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// PUBLISH: an application message, in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Whether this is a redelivery; MQTT requires it to be false at QoS 0.
    pub dup: bool,
    /// The delivery QoS.
    pub qos: QoS,
    /// Whether the server must retain the message.
    pub retain: bool,
    /// The topic name (non-empty, no wildcards).
    pub topic: String,
    /// Present exactly when `qos` is 1 or 2.
    pub packet_id: Option<PacketId>,
    /// The application message; decoding shares it with the read buffer without copying.
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0 PUBLISH without DUP or RETAIN.
    pub fn at_most_once(topic: impl Into<String>, payload: impl Into<Bytes>) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            packet_id: None,
            payload: payload.into(),
        }
    }

    /// A QoS 1 or QoS 2 PUBLISH (per `qos`) without DUP or RETAIN; a `qos` of 0 gives a QoS 0 PUBLISH
    /// without packet identifier.
    pub fn with_packet_id(
        topic: impl Into<String>,
        qos: QoS,
        packet_id: PacketId,
        payload: impl Into<Bytes>,
    ) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.into(),
            packet_id: (qos != QoS::AtMostOnce).then_some(packet_id),
            payload: payload.into(),
        }
    }
}

/// SUBSCRIBE: a non-empty list of topic filters with their requested QoS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: PacketId,
    /// At least one filter.
    pub filters: Vec<SubscribeFilter>,
}

/// One topic filter of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    /// The topic filter (may contain `+` and `#` wildcards).
    pub filter: String,
    /// The maximum QoS the client wants to receive on this filter.
    pub requested_qos: QoS,
}

/// SUBACK: one return code per filter of the SUBSCRIBE it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: PacketId,
    /// At least one return code.
    pub return_codes: Vec<SubscribeReturnCode>,
}

/// A SUBACK return code: the granted QoS or the failure code 0x80.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscribeReturnCode {
    /// The subscription was accepted with this maximum QoS (0x00, 0x01 or 0x02).
    Granted(QoS),
    /// 0x80: the subscription was refused.
    Failure,
}

impl SubscribeReturnCode {
    /// Converts the wire value, or `None` for values other than 0, 1, 2 and 0x80.
    pub fn from_u8(value: u8) -> Option<SubscribeReturnCode> {
        match value {
            0x80 => Some(SubscribeReturnCode::Failure),
            _ => QoS::from_u8(value).map(SubscribeReturnCode::Granted),
        }
    }

    /// The wire value of this return code.
    pub fn as_u8(self) -> u8 {
        match self {
            SubscribeReturnCode::Granted(qos) => qos.as_u8(),
            SubscribeReturnCode::Failure => 0x80,
        }
    }
}

/// UNSUBSCRIBE: a non-empty list of topic filters to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: PacketId,
    /// At least one filter.
    pub filters: Vec<String>,
}

impl From<Connect> for Packet {
    fn from(connect: Connect) -> Packet {
        Packet::Connect(connect)
    }
}

impl From<ConnAck> for Packet {
    fn from(connack: ConnAck) -> Packet {
        Packet::ConnAck(connack)
    }
}

impl From<Publish> for Packet {
    fn from(publish: Publish) -> Packet {
        Packet::Publish(publish)
    }
}

impl From<Subscribe> for Packet {
    fn from(subscribe: Subscribe) -> Packet {
        Packet::Subscribe(subscribe)
    }
}

impl From<SubAck> for Packet {
    fn from(suback: SubAck) -> Packet {
        Packet::SubAck(suback)
    }
}

impl From<Unsubscribe> for Packet {
    fn from(unsubscribe: Unsubscribe) -> Packet {
        Packet::Unsubscribe(unsubscribe)
    }
}
