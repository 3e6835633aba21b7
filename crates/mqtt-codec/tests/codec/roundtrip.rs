//! Property tests: encode/decode round trips, chunked streams, size limits and robustness.

use bytes::BytesMut;
use mqtt_codec::{DecodeError, MqttCodec, Packet, fuzz_support};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use crate::strategies::{loose_packet, packet};

fn encode(packet: &Packet) -> BytesMut {
    let mut buffer = BytesMut::new();
    packet.encode(&mut buffer).expect("valid packets encode");
    buffer
}

proptest! {
    #[test]
    fn encode_then_decode_returns_the_packet(packet in packet()) {
        let mut buffer = encode(&packet);
        prop_assert_eq!(packet.encoded_len(), Ok(buffer.len()));
        let decoded = Packet::decode(&mut buffer, usize::MAX);
        prop_assert_eq!(decoded, Ok(Some(packet)));
        prop_assert!(buffer.is_empty());
    }

    #[test]
    fn every_proper_prefix_is_incomplete(packet in packet()) {
        let encoded = encode(&packet);
        for prefix_length in 0..encoded.len() {
            let mut prefix = BytesMut::from(&encoded[..prefix_length]);
            prop_assert_eq!(Packet::decode(&mut prefix, usize::MAX), Ok(None));
            prop_assert_eq!(prefix.len(), prefix_length);
        }
    }

    #[test]
    fn a_stream_split_at_arbitrary_boundaries_decodes_to_the_same_packets(
        packets in vec(packet(), 1..8),
        chunk_sizes in vec(1usize..40, 1..16),
    ) {
        let mut codec = MqttCodec::new(usize::MAX);
        let mut stream = BytesMut::new();
        for packet in &packets {
            codec.encode(packet, &mut stream).expect("valid packets encode");
        }
        let mut read_buffer = BytesMut::new();
        let mut decoded = Vec::new();
        let mut offset = 0;
        for chunk_size in chunk_sizes.iter().cycle() {
            if offset == stream.len() {
                break;
            }
            let end = (offset + chunk_size).min(stream.len());
            read_buffer.extend_from_slice(&stream[offset..end]);
            offset = end;
            while let Some(packet) = codec.decode(&mut read_buffer).expect("valid stream") {
                decoded.push(packet);
            }
        }
        prop_assert!(codec.decode_eof(&mut read_buffer).expect("stream ends on a packet boundary").is_none());
        prop_assert_eq!(decoded, packets);
    }

    #[test]
    fn packets_over_the_limit_are_rejected_from_the_fixed_header_alone(
        packet in packet(),
        max_packet_size in 0usize..128,
    ) {
        let encoded = encode(&packet);
        let header_length = 1 + encoded[1..].iter().take_while(|byte| *byte & 0x80 != 0).count() + 1;
        let mut header_only = BytesMut::from(&encoded[..header_length]);
        let outcome = Packet::decode(&mut header_only, max_packet_size);
        if encoded.len() > max_packet_size {
            prop_assert_eq!(outcome, Err(DecodeError::PacketTooLarge {
                packet_size: encoded.len(),
                max_packet_size,
            }));
        } else {
            prop_assert_eq!(outcome, if header_length == encoded.len() { Ok(Some(packet)) } else { Ok(None) });
        }
    }

    #[test]
    fn loose_packets_encode_only_when_they_decode_back(packet in loose_packet()) {
        let mut buffer = BytesMut::new();
        match packet.encode(&mut buffer) {
            Ok(()) => {
                prop_assert_eq!(Packet::decode(&mut buffer, usize::MAX), Ok(Some(packet)));
            }
            Err(_) => prop_assert!(buffer.is_empty(), "a failed encode writes nothing"),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..300)) {
        fuzz_support::decode_arbitrary_bytes(&bytes);
    }

    #[test]
    fn mutated_packets_never_panic(
        packets in vec(packet(), 1..4),
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = Vec::new();
        for packet in &packets {
            bytes.extend_from_slice(&encode(packet));
        }
        for (index, value) in mutations {
            let position = index.index(bytes.len());
            bytes[position] = value;
        }
        fuzz_support::decode_arbitrary_bytes(&bytes);
    }
}
