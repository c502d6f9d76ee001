//! Arbitrary text as the worker's policy file (`llmr_worker::policy::Policy::from_json`):
//! never a panic, only a typed error or a checked policy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmr_worker::policy::Policy;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(policy) = Policy::from_json(text)
    {
        assert!(!policy.models.is_empty());
        assert!(policy.concurrency > 0);
    }
});
