//! Feeds arbitrary bytes to the MQTT 3.1.1 decoder, whole and in chunks, and re-encodes every
//! decoded packet; the body lives in `mqtt_codec::fuzz_support` so `cargo test` replays the corpus.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mqtt_codec::fuzz_support::decode_arbitrary_bytes(data);
});
