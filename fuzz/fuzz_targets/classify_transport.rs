//! Arbitrary text as a transport failure's message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_resilience::classify_transport;

fuzz_target!(|message: &str| {
    let c = classify_transport(message);
    assert!(c.message.len() <= 512);
    assert!(c.retry_after_ms.is_none());
});
