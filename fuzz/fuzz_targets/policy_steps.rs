//! Arbitrary step sequences (the same ops as the step-table vectors) against the breaker, the
//! rate limiter and the retry policy, with arbitrary configs and clocks that jump both ways.
//! Nothing may panic, and the invariants the property tests check must hold here too.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use llm_resilience::breaker::{Breaker, BreakerConfig, OpenDuration, Outcome, Permit};
use llm_resilience::classify::{Classification, ErrorKind};
use llm_resilience::ratelimit::{RateLimitConfig, RateLimiter};
use llm_resilience::retry::{BudgetConfig, Jitter, RetryBudget, RetryConfig, RetryPolicy};

#[derive(Debug, Arbitrary)]
enum Op {
    Acquire(u64),
    Record(u8, u8, Option<u64>, u64),
    Switch(u8, u64),
    Snapshot,
    Check(u8, u32, u64),
    Settle(u8, u32, u32, u64),
    Block(u8, u64, u64),
    Decide(u8, Option<u64>, Option<u64>, Option<u64>, Option<u64>, u64),
    Deposit(u64),
}

#[derive(Debug, Arbitrary)]
struct Input {
    consecutive: Option<u32>,
    probes: u32,
    successes: u32,
    probe_wait: u64,
    base_ms: u64,
    growth: u32,
    limit: u32,
    period_ms: u64,
    burst: Option<u32>,
    max_keys: u32,
    jitter: u8,
    base_delay: u64,
    max_delay: u64,
    max_total_retries: u32,
    ops: Vec<Op>,
}

const KINDS: [ErrorKind; 13] = ErrorKind::ALL;
const KEYS: [&str; 4] = ["a", "b", "6281234567890@s.whatsapp.net", ""];

fuzz_target!(|input: Input| {
    // Invalid configs must be rejected with an error, never a panic; valid ones are exercised.
    let breaker = Breaker::new(BreakerConfig {
        consecutive_failures: input.consecutive,
        half_open_probes: input.probes,
        half_open_successes: input.successes,
        max_probe_wait_ms: input.probe_wait,
        open_duration: OpenDuration {
            base_ms: input.base_ms,
            growth_percent: input.growth,
            max_ms: input.base_ms.saturating_mul(4),
            use_server_hint: true,
        },
        ..BreakerConfig::default()
    });
    let limiter = RateLimiter::new(RateLimitConfig {
        limit: input.limit,
        period_ms: input.period_ms,
        burst: input.burst,
        max_keys: input.max_keys % 8,
        hash_seed: 1,
    });
    let policy = RetryPolicy::new(RetryConfig {
        jitter: [Jitter::None, Jitter::Full, Jitter::Decorrelated][usize::from(input.jitter % 3)],
        base_delay_ms: input.base_delay,
        max_delay_ms: input.max_delay,
        max_total_retries: input.max_total_retries,
        ..RetryConfig::default()
    });
    let mut budget = RetryBudget::new(BudgetConfig::default()).expect("default budget is valid");
    let (Ok(mut breaker), Ok(mut limiter), Ok(policy)) = (breaker, limiter, policy) else {
        return;
    };
    let probes = breaker.config().half_open_probes;
    let mut permits: Vec<Permit> = Vec::new();
    let mut call = policy.start_call(0, 7, &mut budget);
    for op in input.ops.into_iter().take(2_000) {
        match op {
            Op::Acquire(t) => {
                if let Ok(p) = breaker.acquire(t) {
                    permits.push(p);
                }
            }
            Op::Record(i, o, hint, t) => {
                if !permits.is_empty() {
                    let p = permits.swap_remove(usize::from(i) % permits.len());
                    let outcome = match o % 3 {
                        0 => Outcome::Success,
                        1 => Outcome::Ignored,
                        _ => Outcome::Failure {
                            kind: KINDS[usize::from(o) % KINDS.len()],
                            retry_after_ms: hint,
                        },
                    };
                    breaker.record(p, outcome, t);
                }
            }
            Op::Switch(s, t) => {
                match s % 3 {
                    0 => breaker.force_open(t),
                    1 => breaker.disable(t),
                    _ => breaker.reset(t),
                };
            }
            Op::Snapshot => {
                let json = serde_json::to_string(&breaker).expect("serializes");
                breaker = Breaker::restore(serde_json::from_str(&json).expect("parses"))
                    .expect("own snapshot restores");
                let json = serde_json::to_string(&limiter.snapshot()).expect("serializes");
                limiter = RateLimiter::restore(serde_json::from_str(&json).expect("parses"))
                    .expect("own snapshot restores");
            }
            Op::Check(k, units, t) => {
                let _ = limiter.check(KEYS[usize::from(k) % KEYS.len()], units, t);
            }
            Op::Settle(k, reserved, actual, t) => {
                let _ = limiter.settle(KEYS[usize::from(k) % KEYS.len()], reserved, actual, t);
            }
            Op::Block(k, until, t) => {
                let _ = limiter.block_until(KEYS[usize::from(k) % KEYS.len()], until, t);
            }
            Op::Decide(k, after, limit, requested, tokens, t) => {
                let kind = KINDS[usize::from(k) % KINDS.len()];
                let failure = Classification {
                    kind,
                    retryable: k % 2 == 0,
                    retry_after_ms: after,
                    limit_tokens: limit,
                    requested_tokens: requested,
                    provider: None,
                    code: None,
                    error_type: None,
                    message: String::new(),
                };
                let _ = policy.decide(&mut call, &failure, t, tokens, &mut budget);
            }
            Op::Deposit(t) => budget.deposit(t),
        }
        let counts = breaker.counts(0);
        assert!(counts.probes_in_flight <= probes);
        assert!(limiter.len() <= limiter.config().max_keys as usize);
    }
});
