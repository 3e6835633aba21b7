//! The `tokio-util` codec that frames a byte stream into MQTT 3.1.1 packets.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::decode::DecodeError;
use crate::encode::EncodeError;
use crate::packet::Packet;

/// Frames MQTT 3.1.1 packets for `tokio_util::codec::Framed`, rejecting any incoming packet larger
/// than `max_packet_size` bytes (fixed header included) as soon as its fixed header is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqttCodec {
    max_packet_size: usize,
}

impl MqttCodec {
    /// A codec that accepts incoming packets of at most `max_packet_size` bytes in total.
    pub fn new(max_packet_size: usize) -> MqttCodec {
        MqttCodec { max_packet_size }
    }

    /// The configured maximum size of an incoming packet, in bytes.
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }
}

/// An error of the framed transport: I/O, or a packet that cannot be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed packet: {0}")]
    Decode(#[from] DecodeError),
    #[error("cannot encode packet: {0}")]
    Encode(#[from] EncodeError),
}

impl Decoder for MqttCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, source: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        Ok(Packet::decode(source, self.max_packet_size)?)
    }
}

impl Encoder<Packet> for MqttCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: Packet, destination: &mut BytesMut) -> Result<(), CodecError> {
        Ok(packet.encode(destination)?)
    }
}

impl Encoder<&Packet> for MqttCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: &Packet, destination: &mut BytesMut) -> Result<(), CodecError> {
        Ok(packet.encode(destination)?)
    }
}
