//! Replays the committed fuzz seed corpus (`fuzz/corpus/parse`) through the fuzz target's body,
//! so ordinary `cargo test` on stable exercises it; also checks that the seeds that are meant
//! to parse still do.

use std::path::Path;

use query::{Condition, Query, Route, TwinCondition};

#[test]
fn replay_fuzz_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse");
    let mut replayed = 0;
    let mut parsed_somehow = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&corpus)
        .expect("corpus directory exists")
        .map(|entry| entry.expect("readable corpus entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let data = std::fs::read(&path).expect("readable corpus file");
        query::fuzz_one_input(&data);
        replayed += 1;
        let text = String::from_utf8_lossy(&data);
        if Query::parse(&text).is_ok()
            || TwinCondition::parse(&text).is_ok()
            || Condition::parse(&text).is_ok()
            || Route::parse(&text).is_ok()
        {
            parsed_somehow += 1;
        }
    }
    assert!(replayed >= 30, "only {replayed} corpus files");
    // Three seeds are deliberately malformed; every other seed must stay valid in some dialect.
    assert_eq!(parsed_somehow, replayed - 3);
}
