//! Arbitrary bytes as the Rust worker's write-ahead journal (`llmr_worker::journal`): replay
//! gives a live set or a typed error, never a panic; a replayed live set compacts to records
//! that replay to the same unfinished jobs; any checksummed record line encodes and decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmr_worker::journal::{encode, replay_bytes};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/journal.jsonl");
    let Ok(replayed) = replay_bytes(data, path) else {
        return;
    };
    let Some(live) = replayed.live else {
        return;
    };
    // Compaction writes `records()`; reading them back must give the same live set.
    let mut bytes = Vec::new();
    for record in live.records() {
        bytes.extend(encode(&record).expect("a live record encodes"));
    }
    let again = replay_bytes(&bytes, path).expect("a compacted journal replays");
    assert!(again.torn_tail.is_none());
    let again = again.live.expect("a compacted journal opens");
    let ids = |l: &llmr_worker::journal::Live| {
        l.unfinished()
            .into_iter()
            .map(|j| j.job.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&live), ids(&again));
});
