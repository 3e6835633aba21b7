//! MQTT 3.1.1 packet model and codec (pure, no I/O).
//!
//! This crate owns the typed values of the fourteen MQTT 3.1.1 control packets ([`Packet`]), their
//! strict server-side decoding ([`Packet::decode`], [`DecodeError`]), their encoding
//! ([`Packet::encode`], [`EncodeError`]), a `tokio-util` codec for framed transports ([`MqttCodec`]),
//! and the topic name / topic filter rules with wildcard matching ([`topic`]).
//!
//! The decoder never panics on untrusted input and never allocates from a declared length before
//! bounding it by the configured maximum packet size. Payloads are [`bytes::Bytes`] slices of the read
//! buffer, so decoding a PUBLISH does not copy its payload. Session state, QoS handshakes and
//! authorization belong to the server, not to this crate.
//!
//! ```
//! use bytes::BytesMut;
//! use mqtt_codec::{DecodeError, Packet, PacketId, Publish, QoS};
//!
//! let packet_id = PacketId::new(7).expect("non-zero");
//! let publish = Publish::with_packet_id("devices/d1/messages/events/", QoS::AtLeastOnce, packet_id, "hi");
//! let mut buffer = BytesMut::new();
//! Packet::from(publish.clone()).encode(&mut buffer)?;
//! assert_eq!(Packet::decode(&mut buffer, 1024)?, Some(Packet::Publish(publish)));
//!
//! // A CONNECT for MQTT 5 (protocol level 5) yields the error a server answers with CONNACK 0x01.
//! let mut buffer = BytesMut::from(&b"\x10\x0d\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x00"[..]);
//! let error = Packet::decode(&mut buffer, 1024).unwrap_err();
//! assert_eq!(error, DecodeError::UnsupportedProtocolLevel { level: 5 });
//! assert_eq!(error.connack_return_code().map(|code| code.as_u8()), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod decode;
mod encode;
#[doc(hidden)]
pub mod fuzz_support;
mod packet;
pub mod topic;

use bytes::BytesMut;

pub use codec::{CodecError, MqttCodec};
pub use decode::{DecodeError, MAX_REMAINING_LENGTH};
pub use encode::EncodeError;
pub use packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, PacketType, Publish, QoS, SubAck,
    Subscribe, SubscribeFilter, SubscribeReturnCode, Unsubscribe, Will,
};

impl Packet {
    /// Decodes one packet from the front of `buffer`.
    ///
    /// Returns `Ok(None)` when `buffer` does not yet hold a whole packet (nothing is consumed then),
    /// and `Ok(Some(packet))` after removing exactly that packet's bytes. A packet whose total size
    /// (fixed header included) exceeds `max_packet_size` is rejected as soon as its remaining length
    /// is read, before its body is buffered.
    pub fn decode(
        buffer: &mut BytesMut,
        max_packet_size: usize,
    ) -> Result<Option<Packet>, DecodeError> {
        decode::decode_packet(buffer, max_packet_size)
    }

    /// Appends the encoding of this packet to `buffer`.
    ///
    /// Fails without writing anything if the value breaks an MQTT 3.1.1 rule the decoder enforces,
    /// so every packet that encodes also decodes back to an equal value.
    pub fn encode(&self, buffer: &mut BytesMut) -> Result<(), EncodeError> {
        encode::encode_packet(self, buffer)
    }

    /// The number of bytes [`Packet::encode`] writes for this packet, fixed header included.
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        let remaining_length = encode::remaining_length(self)?;
        Ok(1 + encode::remaining_length_size(remaining_length) + remaining_length)
    }
}
