//! The on-disk framing: exact bytes (snapshots), round trips and scanning of damaged tails.

use expect_test::{Expect, expect};
use proptest::prelude::*;
use store::framing::{
    FrameDecoding, SEGMENT_HEADER_LENGTH, decode_frame, decode_segment_header, encode_frame,
    encode_segment_header, scan_frames,
};

/// Encodes a segment with `records` and renders every field of it as hex, then applies
/// `damage` to the record area and renders what a recovery scan keeps.
fn check(
    base_offset: u64,
    records: &[(u64, &[u8])],
    damage: impl FnOnce(&mut Vec<u8>),
    expect: Expect,
) {
    let header = encode_segment_header(base_offset);
    let mut rendered = String::new();
    rendered.push_str(&format!(
        "header magic={} version={} base={} crc={}\n",
        hex(&header[0..8]),
        hex(&header[8..12]),
        hex(&header[12..20]),
        hex(&header[20..24]),
    ));
    let mut record_area = Vec::new();
    for (index, (timestamp_ms, payload)) in records.iter().enumerate() {
        let start = record_area.len();
        encode_frame(
            &mut record_area,
            base_offset + index as u64,
            *timestamp_ms,
            payload,
        );
        let frame = &record_area[start..];
        rendered.push_str(&format!(
            "frame crc={} len={} offset={} timestamp={} payload={}\n",
            hex(&frame[0..4]),
            hex(&frame[4..8]),
            hex(&frame[8..16]),
            hex(&frame[16..24]),
            hex(&frame[24..]),
        ));
    }
    damage(&mut record_area);
    let scan = scan_frames(&record_area, base_offset, |position, frame| {
        rendered.push_str(&format!(
            "scanned position={position} offset={} timestamp={} payload={:?}\n",
            frame.offset,
            frame.timestamp_ms,
            String::from_utf8_lossy(frame.payload)
        ));
    });
    rendered.push_str(&format!(
        "valid_length={} of {} next_offset={} newest_timestamp={:?} stop={:?}\n",
        scan.valid_length,
        record_area.len(),
        scan.next_offset,
        scan.newest_timestamp_ms,
        scan.stop_reason
    ));
    expect.assert_eq(&rendered);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn segment_with_two_records() {
    check(
        7,
        &[(1_700_000_000_000, b"hello"), (1_700_000_000_001, b"")],
        |_| {},
        expect![[r#"
            header magic=4f55545053544c47 version=01000000 base=0700000000000000 crc=4b5f452c
            frame crc=8add0ef7 len=05000000 offset=0700000000000000 timestamp=0068e5cf8b010000 payload=68656c6c6f
            frame crc=e8a8631e len=00000000 offset=0800000000000000 timestamp=0168e5cf8b010000 payload=
            scanned position=0 offset=7 timestamp=1700000000000 payload="hello"
            scanned position=29 offset=8 timestamp=1700000000001 payload=""
            valid_length=53 of 53 next_offset=9 newest_timestamp=Some(1700000000001) stop=None
        "#]],
    );
}

#[test]
fn torn_last_frame_is_cut_off() {
    check(
        0,
        &[(5, b"first"), (6, b"second")],
        |area| area.truncate(area.len() - 3),
        expect![[r#"
            header magic=4f55545053544c47 version=01000000 base=0000000000000000 crc=52568026
            frame crc=237e85fe len=05000000 offset=0000000000000000 timestamp=0500000000000000 payload=6669727374
            frame crc=3ffc0578 len=06000000 offset=0100000000000000 timestamp=0600000000000000 payload=7365636f6e64
            scanned position=0 offset=0 timestamp=5 payload="first"
            valid_length=29 of 56 next_offset=1 newest_timestamp=Some(5) stop=Some(TornFrame)
        "#]],
    );
}

#[test]
fn flipped_payload_bit_stops_the_scan() {
    check(
        0,
        &[(5, b"first"), (6, b"second"), (7, b"third")],
        |area| area[29 + 24] ^= 0x01,
        expect![[r#"
            header magic=4f55545053544c47 version=01000000 base=0000000000000000 crc=52568026
            frame crc=237e85fe len=05000000 offset=0000000000000000 timestamp=0500000000000000 payload=6669727374
            frame crc=3ffc0578 len=06000000 offset=0100000000000000 timestamp=0600000000000000 payload=7365636f6e64
            frame crc=26045ecc len=05000000 offset=0200000000000000 timestamp=0700000000000000 payload=7468697264
            scanned position=0 offset=0 timestamp=5 payload="first"
            valid_length=29 of 88 next_offset=1 newest_timestamp=Some(5) stop=Some(Corrupt(ChecksumMismatch { stored: 2013658175, computed: 3008966554 }))
        "#]],
    );
}

#[test]
fn zero_filled_tail_and_wrong_offsets_are_rejected() {
    check(
        3,
        &[(1, b"a")],
        |area| area.extend_from_slice(&[0u8; 40]),
        expect![[r#"
            header magic=4f55545053544c47 version=01000000 base=0300000000000000 crc=b1510fa8
            frame crc=1c588aa0 len=01000000 offset=0300000000000000 timestamp=0100000000000000 payload=61
            scanned position=0 offset=3 timestamp=1 payload="a"
            valid_length=25 of 65 next_offset=4 newest_timestamp=Some(1) stop=Some(Corrupt(ChecksumMismatch { stored: 0, computed: 265657229 }))
        "#]],
    );
    // A valid frame whose offset is not the next one (a stale frame from an earlier, failed
    // batch) also ends the valid prefix.
    check(
        0,
        &[(1, b"a")],
        |area| encode_frame(area, 5, 2, b"stale"),
        expect![[r#"
            header magic=4f55545053544c47 version=01000000 base=0000000000000000 crc=52568026
            frame crc=980310f3 len=01000000 offset=0000000000000000 timestamp=0100000000000000 payload=61
            scanned position=0 offset=0 timestamp=1 payload="a"
            valid_length=25 of 54 next_offset=1 newest_timestamp=Some(1) stop=Some(UnexpectedOffset { expected: 1, found: 5 })
        "#]],
    );
}

#[test]
fn segment_headers_reject_damage() {
    let header = encode_segment_header(42);
    assert_eq!(decode_segment_header(&header), Ok(42));
    expect![[r#"Err(Truncated { length: 23 })"#]].assert_eq(&format!(
        "{:?}",
        decode_segment_header(&header[..SEGMENT_HEADER_LENGTH - 1])
    ));
    let mut bad_magic = header;
    bad_magic[0] = b'X';
    expect![[r#"Err(BadMagic)"#]].assert_eq(&format!("{:?}", decode_segment_header(&bad_magic)));
    let mut bad_base = header;
    bad_base[12] ^= 0xff;
    expect![[r#"Err(ChecksumMismatch)"#]]
        .assert_eq(&format!("{:?}", decode_segment_header(&bad_base)));
}

#[test]
fn an_absurd_length_is_corruption_not_an_allocation() {
    let mut frame = Vec::new();
    encode_frame(&mut frame, 0, 0, b"x");
    frame[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    expect![[r#"Corrupt(PayloadLengthTooLarge { payload_length: 4294967295 })"#]]
        .assert_eq(&format!("{:?}", decode_frame(&frame)));
}

proptest! {
    #[test]
    fn frames_round_trip_and_every_truncation_is_detected(
        base_offset in 0u64..1_000_000,
        records in proptest::collection::vec((any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut area = Vec::new();
        let mut frame_ends = Vec::new();
        for (index, (timestamp_ms, payload)) in records.iter().enumerate() {
            encode_frame(&mut area, base_offset + index as u64, *timestamp_ms, payload);
            frame_ends.push(area.len());
        }
        let mut decoded = Vec::new();
        let scan = scan_frames(&area, base_offset, |_, frame| {
            decoded.push((frame.timestamp_ms, frame.payload.to_vec()));
        });
        prop_assert_eq!(&decoded, &records);
        prop_assert_eq!(scan.valid_length, area.len());
        prop_assert_eq!(scan.next_offset, base_offset + records.len() as u64);

        // Cutting anywhere keeps exactly the frames that end at or before the cut.
        let cut_length = cut.index(area.len() + 1);
        let truncated = scan_frames(&area[..cut_length], base_offset, |_, _| {});
        let complete_frames = frame_ends.iter().filter(|end| **end <= cut_length).count();
        prop_assert_eq!(truncated.record_count, complete_frames as u64);
        prop_assert_eq!(truncated.valid_length, if complete_frames == 0 { 0 } else { frame_ends[complete_frames - 1] });
        if let Some(&first_end) = frame_ends.first()
            && cut_length < first_end
        {
            let is_incomplete = matches!(decode_frame(&area[..cut_length]), FrameDecoding::Incomplete { .. });
            prop_assert!(is_incomplete);
        }
    }
}
