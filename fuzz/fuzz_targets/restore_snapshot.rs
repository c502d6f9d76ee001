//! Arbitrary bytes as configs and snapshots: parsing and restoring must give a typed error or
//! a working object, never a panic, and a restored object must survive a few operations.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_resilience::breaker::{Breaker, BreakerConfig, BreakerSet, Outcome};
use llm_resilience::classify::ErrorKind;
use llm_resilience::ratelimit::{RateLimitConfig, RateLimiter};
use llm_resilience::retry::{RetryConfig, RetryPolicy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = serde_json::from_str::<BreakerConfig>(text) {
        let _ = Breaker::new(config);
    }
    if let Ok(config) = serde_json::from_str::<RateLimitConfig>(text) {
        let _ = RateLimiter::new(config);
    }
    if let Ok(config) = serde_json::from_str::<RetryConfig>(text) {
        let _ = RetryPolicy::new(config);
    }
    if let Ok(snapshot) = serde_json::from_str::<Breaker>(text)
        && let Ok(mut b) = Breaker::restore(snapshot)
    {
        for t in [0, 1, u64::MAX / 2, u64::MAX] {
            if let Ok(p) = b.acquire(t) {
                let failure = Outcome::Failure {
                    kind: ErrorKind::Timeout,
                    retry_after_ms: Some(t),
                };
                b.record(p, failure, t);
            }
            let _ = b.counts(t);
        }
    }
    if let Ok(snapshot) = serde_json::from_str::<BreakerSet>(text)
        && let Ok(mut s) = BreakerSet::restore(snapshot)
    {
        let _ = s.acquire("openai/gpt-4o", 5);
    }
    if let Ok(snapshot) = serde_json::from_str(text)
        && let Ok(mut l) = RateLimiter::restore(snapshot)
    {
        for t in [0, 1, u64::MAX] {
            let _ = l.check("s", 1, t);
            let _ = l.remaining("s", t);
        }
    }
});
