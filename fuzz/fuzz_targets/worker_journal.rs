//! Arbitrary bytes as the Rust worker's write-ahead journal (`llmr_worker::journal`): replay
//! gives a live set or a typed error, never a panic; a replayed live set compacts to records
//! that replay to the same unfinished jobs. The first byte picks the mode: raw bytes (torn and
//! damaged lines, checksums that do not match), or each line's checksum put right first, so
//! the records behind the CRC (their JSON, their order, hostile values) are explored too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmr_worker::journal::{Live, crc32, encode, replay_bytes};
use std::path::Path;

/// `data` with every line's leading checksum replaced by the CRC-32 of the rest of the line.
fn with_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for line in data.split_inclusive(|&b| b == b'\n') {
        let (body, newline) = match line.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (line, false),
        };
        let json = body
            .iter()
            .position(|&b| b == b' ')
            .map_or(body, |space| &body[space + 1..]);
        out.extend_from_slice(format!("{:08x} ", crc32(json)).as_bytes());
        out.extend_from_slice(json);
        if newline {
            out.push(b'\n');
        }
    }
    out
}

fn unfinished_ids(live: &Live) -> Vec<String> {
    live.unfinished().into_iter().map(|j| j.job.id).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 1 {
        with_checksums(rest)
    } else {
        rest.to_vec()
    };
    let path = Path::new("fuzz/journal.jsonl");
    let Ok(replayed) = replay_bytes(&bytes, path) else {
        return;
    };
    let Some(live) = replayed.live else {
        return;
    };
    // Compaction writes `records()`; reading them back must give the same live set.
    let mut compacted = Vec::new();
    for record in live.records() {
        compacted.extend(encode(&record).expect("a live record encodes"));
    }
    let again = replay_bytes(&compacted, path).expect("a compacted journal replays");
    assert!(again.torn_tail.is_none());
    let again = again.live.expect("a compacted journal opens");
    assert_eq!(unfinished_ids(&live), unfinished_ids(&again));
});
