//! Arbitrary headers (and status, body, clock) built with `arbitrary`: the retry-hint parsers.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use llm_resilience::{ClassifyInput, classify};

/// Header names the classifier reads, so the fuzzer reaches their value parsers quickly.
const NAMES: [&str; 8] = [
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-reset",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-remaining",
    "x-should-retry",
    "content-type",
];

#[derive(Debug, Arbitrary)]
enum Name<'a> {
    Known(u8),
    Other(&'a str),
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    status: Option<u16>,
    headers: Vec<(Name<'a>, &'a str)>,
    body: &'a [u8],
    wall_clock_ms: Option<u64>,
}

fuzz_target!(|input: Input<'_>| {
    let headers: Vec<(&str, &str)> = input
        .headers
        .iter()
        .map(|(name, value)| {
            let name = match name {
                Name::Known(i) => NAMES[usize::from(*i) % NAMES.len()],
                Name::Other(s) => s,
            };
            (name, *value)
        })
        .collect();
    let c = classify(&ClassifyInput {
        status: input.status,
        headers: &headers,
        body: input.body,
        transport: None,
        wall_clock_ms: input.wall_clock_ms,
    });
    assert!(c.message.len() <= 512);
});
