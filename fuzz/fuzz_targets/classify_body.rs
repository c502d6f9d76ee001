//! Arbitrary bytes as a response body, under a few statuses that take different paths (no
//! status, a 200 that may carry an error, a 4xx and a 5xx).
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_resilience::{ErrorKind, classify_response};

const STATUSES: [Option<u16>; 5] = [None, Some(200), Some(400), Some(429), Some(503)];

fuzz_target!(|body: &[u8]| {
    for status in STATUSES {
        let c = classify_response(status, &[], body, Some(1_700_000_000_000));
        assert!(c.message.len() <= 512);
        assert!(c.kind == ErrorKind::ContextOverflow || c.limit_tokens.is_none());
    }
});
