//! The body of the `decode` fuzz target, shared with the test that replays the committed corpus.

use bytes::BytesMut;

use crate::Packet;

/// The maximum packet size the fuzz body decodes with; small so the size check is exercised too.
pub const FUZZ_MAX_PACKET_SIZE: usize = 64 * 1024;

/// Feeds `data` to the decoder in one piece and again in chunks whose size the first byte chooses,
/// and checks that both agree and that every decoded packet re-encodes to bytes that decode to it.
///
/// Panics only when the codec is wrong: a decoder panic, a disagreement between whole and chunked
/// decoding, or a decoded packet that fails to round-trip.
pub fn decode_arbitrary_bytes(data: &[u8]) {
    let whole = decode_all(data, data.len().max(1));
    let chunk_size = usize::from(data.first().copied().unwrap_or(1) % 16) + 1;
    let chunked = decode_all(data, chunk_size);
    assert_eq!(
        whole, chunked,
        "chunked decoding differs from whole decoding"
    );
    for packet in whole.0 {
        let mut encoded = BytesMut::new();
        packet
            .encode(&mut encoded)
            .expect("a decoded packet must encode");
        let decoded = Packet::decode(&mut encoded, usize::MAX)
            .expect("a re-encoded packet must decode")
            .expect("a re-encoded packet is complete");
        assert_eq!(decoded, packet, "re-encoded packet decodes differently");
        assert!(encoded.is_empty(), "re-encoded packet has trailing bytes");
    }
}

/// Decodes `data` fed in `chunk_size` pieces; returns the packets and the error that ended decoding, if any.
fn decode_all(data: &[u8], chunk_size: usize) -> (Vec<Packet>, Option<crate::DecodeError>) {
    let mut buffer = BytesMut::new();
    let mut packets = Vec::new();
    for chunk in data.chunks(chunk_size) {
        buffer.extend_from_slice(chunk);
        loop {
            match Packet::decode(&mut buffer, FUZZ_MAX_PACKET_SIZE) {
                Ok(Some(packet)) => packets.push(packet),
                Ok(None) => break,
                Err(error) => return (packets, Some(error)),
            }
        }
    }
    (packets, None)
}
