//! Native cost of each decision, side by side in one run: `cargo bench -p llm-resilience`.
//!
//! The figures for the README come from this run; compare ratios, not absolute numbers (the
//! machine is shared).

use criterion::{Criterion, criterion_group, criterion_main};
use llm_resilience::breaker::{Breaker, BreakerConfig, Outcome};
use llm_resilience::classify::{ErrorKind, classify_response, classify_transport};
use llm_resilience::ratelimit::{RateLimitConfig, RateLimiter};
use llm_resilience::retry::{BudgetConfig, RetryBudget, RetryConfig, RetryPolicy};
use std::hint::black_box;

/// A real OpenAI 429 body (from the conformance vectors' sources).
const OPENAI_429: &[u8] = br#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-FAKE on tokens per min (TPM): Limit 30000, Used 28000, Requested 4000. Please try again in 4s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;

fn classify(c: &mut Criterion) {
    let headers = [
        ("retry-after-ms", "4000"),
        ("content-type", "application/json"),
    ];
    c.bench_function("classify/openai-429", |b| {
        b.iter(|| classify_response(Some(429), black_box(&headers), black_box(OPENAI_429), None))
    });
    c.bench_function("classify/transport", |b| {
        b.iter(|| {
            classify_transport(black_box(
                "Post \"https://openrouter.ai/api/v1/chat/completions\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            ))
        })
    });
}

/// Redaction of typical error texts, and of 64 KiB bodies (plain, JSON-escaped, base64).
fn redact(c: &mut Criterion) {
    use llm_resilience::redact::redact;
    let message = std::str::from_utf8(OPENAI_429).unwrap_or_default();
    c.bench_function("redact/openai-429", |b| {
        b.iter(|| redact(black_box(message)))
    });
    let prose = "The model's maximum context length is 8192 tokens. However, you requested \
                 9000 tokens (5000 in the messages, 4000 in the completion). "
        .repeat(512);
    let escaped = serde_json::to_string(&prose).unwrap_or_default();
    let base64: String = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkw"
        .repeat(1600)
        .chars()
        .collect();
    for (name, text) in [
        ("prose-64k", &prose),
        ("escaped-64k", &escaped),
        ("base64-64k", &base64),
    ] {
        c.bench_function(&format!("redact/{name}"), |b| {
            b.iter(|| redact(black_box(text)))
        });
    }
}

fn breaker(c: &mut Criterion) {
    let mut breaker = Breaker::new(BreakerConfig::default()).unwrap();
    let mut now = 0u64;
    c.bench_function("breaker/acquire+record", |b| {
        b.iter(|| {
            now += 1;
            let permit = breaker.acquire(now).unwrap();
            breaker.record(permit, black_box(Outcome::Success), now)
        })
    });
    let mut open = Breaker::new(BreakerConfig {
        consecutive_failures: Some(1),
        ..BreakerConfig::default()
    })
    .unwrap();
    let permit = open.acquire(0).unwrap();
    open.record(
        permit,
        Outcome::Failure {
            kind: ErrorKind::Timeout,
            retry_after_ms: None,
        },
        0,
    );
    c.bench_function("breaker/acquire-rejected", |b| {
        b.iter(|| open.acquire(black_box(1)))
    });
}

fn ratelimit(c: &mut Criterion) {
    let mut limiter = RateLimiter::new(RateLimitConfig::default()).unwrap();
    let sessions: Vec<String> = (0..10_000)
        .map(|i| format!("62812{i:08}@s.whatsapp.net"))
        .collect();
    let mut i = 0usize;
    c.bench_function("ratelimit/check-10k-sessions", |b| {
        b.iter(|| {
            i = (i + 1) % sessions.len();
            limiter.check(black_box(&sessions[i]), 1, i as u64)
        })
    });
}

fn retry(c: &mut Criterion) {
    let policy = RetryPolicy::new(RetryConfig::default()).unwrap();
    let mut budget = RetryBudget::new(BudgetConfig::default()).unwrap();
    let failure = classify_response(Some(429), &[("retry-after", "2")], OPENAI_429, None);
    let mut seed = 0u64;
    c.bench_function("retry/start+decide", |b| {
        b.iter(|| {
            seed += 1;
            let mut call = policy.start_call(seed, seed, &mut budget);
            policy.decide(&mut call, black_box(&failure), seed, None, &mut budget)
        })
    });
}

criterion_group!(benches, classify, redact, breaker, ratelimit, retry);
criterion_main!(benches);
