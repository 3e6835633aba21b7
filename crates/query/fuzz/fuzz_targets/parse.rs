//! Fuzzes every parser entry point (query, twin condition, routing condition, route) and the
//! evaluator on whatever parses. Run with `cargo fuzz run parse` from `crates/query`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    query::fuzz_one_input(data);
});
