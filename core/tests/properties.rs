//! Property tests.
//!
//! `classify` never panics and keeps its promises on any input:
//!
//! - the message is at most 512 bytes, the short fields at most 128;
//! - `retryable` follows the kind (README: "Retryable by kind"), except for TLS failures and an
//!   `x-should-retry` header;
//! - a (fake) API key embedded anywhere in a body or transport text never reaches the message.
//!
//! A full `BreakerSet` evicts exactly the breaker that its documented rule names, over random
//! sequences of calls, operator switches and snapshot round trips: it is compared, step by step,
//! with a naive model that applies the rule by scanning every breaker.
//!
//! And the clock rule (`core/src/clock.rs`): no sequence of `now_ms` values — 0, `u64::MAX`,
//! nanosecond timestamps, jumps back — can freeze a breaker or a limiter, or panic any handle.

use llm_resilience::breaker::{
    Breaker, BreakerConfig, BreakerSet, OpenDuration, Outcome, Permit, RateRule, Recorded, State,
    Window,
};
use llm_resilience::clock::BACKWARD_TOLERANCE_MS;
use llm_resilience::ratelimit::{RateLimitConfig, RateLimiter, Verdict};
use llm_resilience::retry::{BudgetConfig, RetryBudget, RetryConfig, RetryPolicy};
use llm_resilience::{Classification, ClassifyInput, ErrorKind, MAX_HEADERS, classify};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn retryable_by_kind(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::RateLimited
            | ErrorKind::Timeout
            | ErrorKind::Overloaded
            | ErrorKind::Unavailable
            | ErrorKind::ServerError
            | ErrorKind::Network
    )
}

/// The verdict of the first `x-should-retry` header among those the classifier reads.
fn should_retry(headers: &[(String, String)]) -> Option<bool> {
    let value = headers
        .iter()
        .take(MAX_HEADERS)
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("x-should-retry"))?
        .1
        .trim();
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Header names the classifier reads, plus noise.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("retry-after".to_string()),
        Just("Retry-After-Ms".to_string()),
        Just("x-ratelimit-reset".to_string()),
        Just("x-ratelimit-reset-tokens".to_string()),
        Just("x-ratelimit-remaining-tokens".to_string()),
        Just("x-ratelimit-remaining".to_string()),
        Just("x-should-retry".to_string()),
        "\\PC{0,24}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("Wed, 21 Oct 2015 07:28:00 GMT".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("1m30.5s".to_string()),
        "[0-9]{1,20}(\\.[0-9]{1,6})?",
        "([0-9]{1,5}(h|m|s|ms|us|ns)){1,10}",
        "\\PC{0,40}",
    ]
}

/// Bodies that reach deep into the extractor: envelopes of every shape, with arbitrary text.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let text = "\\PC{0,200}";
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        text.prop_map(String::into_bytes),
        (text, any::<u16>(), text).prop_map(|(message, code, raw)| {
            serde_json::json!({"error": {"message": message, "code": code,
                "metadata": {"raw": raw, "provider_name": "P", "headers": {"X-RateLimit-Reset": raw}}}})
            .to_string()
            .into_bytes()
        }),
        (text, text).prop_map(|(message, delay)| {
            serde_json::json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": message,
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}})
            .to_string()
            .into_bytes()
        }),
        text.prop_map(|t| format!("<html><head><title>{t}</title></head></html>").into_bytes()),
        text.prop_map(|t| format!("data: {{\"error\":{{\"message\":{t:?}}}}}\n\ndata: {t}\n").into_bytes()),
        // A JSON error nested in a message, nested in a raw string, many levels deep.
        (text, 0usize..12).prop_map(|(t, depth)| {
            let mut body = serde_json::json!({"error": {"message": t}}).to_string();
            for level in 0..depth {
                body = if level % 2 == 0 {
                    serde_json::json!({"error": {"message": body}}).to_string()
                } else {
                    serde_json::json!({"error": {"message": "outer", "metadata": {"raw": body}}}).to_string()
                };
            }
            body.into_bytes()
        }),
    ]
}

/// Fake keys with the real shapes (never valid anywhere).
fn fake_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "sk-or-v1-[0-9a-f]{64}",
        "sk-proj-[A-Za-z0-9_-]{40,120}",
        "sk-ant-api03-[A-Za-z0-9_-]{90}AA",
        "sk-[A-Za-z0-9]{48}",
        "AIza[0-9A-Za-z_-]{35}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn classify_keeps_its_promises(
        status in proptest::option::of(any::<u16>()),
        headers in proptest::collection::vec((header_name(), header_value()), 0..(MAX_HEADERS + 8)),
        body in body(),
        transport in proptest::option::of("\\PC{0,300}"),
        wall_clock_ms in proptest::option::of(any::<u64>()),
    ) {
        let header_refs: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let got = classify(&ClassifyInput {
            status,
            headers: &header_refs,
            body: &body,
            transport: transport.as_deref(),
            wall_clock_ms,
        });
        prop_assert!(got.message.len() <= 512, "message of {} bytes", got.message.len());
        for field in [&got.code, &got.provider, &got.error_type].into_iter().flatten() {
            prop_assert!(field.len() <= 128);
        }
        match should_retry(&headers) {
            Some(verdict) => prop_assert_eq!(got.retryable, verdict),
            // Only a transport failure can be a (possibly TLS) network error.
            None if got.kind == ErrorKind::Network => prop_assert!(transport.is_some()),
            None => prop_assert_eq!(got.retryable, retryable_by_kind(got.kind)),
        }
        if got.kind != ErrorKind::ContextOverflow {
            prop_assert_eq!(got.limit_tokens, None);
            prop_assert_eq!(got.requested_tokens, None);
        }
    }

    #[test]
    fn keys_never_reach_the_message(
        key in fake_key(),
        before in "\\PC{0,300}",
        after in "\\PC{0,300}",
        shape in 0usize..6,
        status in proptest::option::of(400u16..600),
    ) {
        let text = format!("{before}{key}{after}");
        let (body, transport) = match shape {
            0 => (text.clone(), None),
            1 => (serde_json::json!({"error": {"message": text, "code": "invalid_api_key"}}).to_string(), None),
            2 => (serde_json::json!({"error": {"message": "Provider returned error", "code": 401,
                    "metadata": {"raw": serde_json::json!({"error": {"message": text}}).to_string()}}}).to_string(), None),
            3 => (format!("<html><title>{text}</title></html>"), None),
            4 => (format!("data: {}\n\n", serde_json::json!({"error": {"message": text}})), None),
            _ => (String::new(), Some(text.as_str())),
        };
        let got = classify(&ClassifyInput {
            status,
            headers: &[],
            body: body.as_bytes(),
            transport,
            wall_clock_ms: None,
        });
        prop_assert!(!got.message.contains(&key), "key leaked: {}", got.message);
        for field in [&got.code, &got.provider, &got.error_type].into_iter().flatten() {
            prop_assert!(!field.contains(&key));
        }
    }
}

/// The `BreakerSet` eviction rule as documented, applied naively: at a new key in a full set,
/// scan every breaker for the lowest (tier, last use, key).
struct NaiveSet {
    config: BreakerConfig,
    max_keys: usize,
    /// Advanced by every acquire, record and entry.
    tick: u64,
    /// Key → (breaker, the tick of its last use, the latest `now_ms` the breaker has seen).
    held: BTreeMap<String, (Breaker, u64, u64)>,
}

/// The documented tiers: 0 fresh (closed, nothing in the window, no failure in a row), 1 other
/// closed or disabled, 2 open, half-open or forced open; judged at the breaker's own latest
/// time.
fn tier(breaker: &Breaker, seen_ms: u64) -> u8 {
    let c = breaker.counts(seen_ms);
    match c.state {
        State::Closed if c.window_calls == 0 && c.consecutive_failures == 0 => 0,
        State::Closed | State::Disabled => 1,
        State::Open | State::HalfOpen | State::ForcedOpen => 2,
    }
}

impl NaiveSet {
    /// The breaker for `key` (created, evicting one, if needed), to be given `now_ms` if any.
    fn use_key(&mut self, key: &str, now_ms: Option<u64>) -> &mut Breaker {
        self.tick += 1;
        if !self.held.contains_key(key) && self.held.len() >= self.max_keys {
            let victim = self
                .held
                .iter()
                .min_by_key(|(k, (b, used, seen))| (tier(b, *seen), *used, k.as_str()))
                .map(|(k, _)| k.clone())
                .expect("a full set holds a breaker");
            self.held.remove(&victim);
        }
        let (tick, config) = (self.tick, &self.config);
        let (breaker, used, seen) = self
            .held
            .entry(key.to_owned())
            .or_insert_with(|| (Breaker::new(config.clone()).unwrap(), tick, 0));
        *used = tick;
        *seen = (*seen).max(now_ms.unwrap_or(0));
        breaker
    }

    fn record(&mut self, key: &str, permit: Permit, outcome: Outcome, now_ms: u64) -> Recorded {
        self.tick += 1;
        match self.held.get_mut(key) {
            Some((breaker, used, seen)) => {
                *used = self.tick;
                *seen = (*seen).max(now_ms);
                breaker.record(permit, outcome, now_ms)
            }
            None => Recorded::Stale,
        }
    }
}

#[derive(Debug, Clone)]
enum SetOp {
    Acquire {
        key: usize,
        dt: u64,
    },
    Record {
        permit: usize,
        outcome: u8,
        dt: u64,
    },
    /// Through `entry`: 0 force open, 1 disable, 2 reset, 3 nothing.
    Switch {
        key: usize,
        which: u8,
        dt: u64,
    },
    /// Serialize the set and restore it.
    Snapshot,
}

fn set_op() -> impl Strategy<Value = SetOp> {
    // Mostly small steps; sometimes a jump that empties time windows and ends open periods.
    let dt = prop_oneof![6 => 0u64..200, 1 => 200u64..3_000];
    prop_oneof![
        6 => (0usize..9, dt.clone()).prop_map(|(key, dt)| SetOp::Acquire { key, dt }),
        5 => (0usize..64, 0u8..4, dt.clone())
            .prop_map(|(permit, outcome, dt)| SetOp::Record { permit, outcome, dt }),
        1 => (0usize..9, 0u8..4, dt).prop_map(|(key, which, dt)| SetOp::Switch { key, which, dt }),
        1 => Just(SetOp::Snapshot),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The indexed set and the naive model hold the same keys and the same breakers after
    /// every step, and answer every call alike. Time never goes backwards here: a breaker's
    /// own latest time is then the latest `now_ms` it was given, whatever the clock rule.
    #[test]
    fn breaker_set_evicts_as_its_documented_rule_says(
        ops in proptest::collection::vec(set_op(), 1..250),
        max_keys in 1usize..7,
        time_window in any::<bool>(),
    ) {
        let window = if time_window { Window::Time { ms: 1_000 } } else { Window::Count { calls: 4 } };
        let config = BreakerConfig {
            consecutive_failures: Some(3),
            failure_rate: Some(RateRule { window, min_calls: 3, failure_percent: 60, ..RateRule::default() }),
            open_duration: OpenDuration { base_ms: 500, growth_percent: 200, max_ms: 2_000, use_server_hint: false },
            half_open_probes: 2,
            max_probe_wait_ms: 300,
            ..BreakerConfig::default()
        };
        let mut set = BreakerSet::new(config.clone(), max_keys).unwrap();
        let mut model = NaiveSet { config, max_keys, tick: 0, held: BTreeMap::new() };
        let mut permits: Vec<(String, Permit)> = Vec::new();
        let mut now = 0u64;
        for op in ops {
            match op {
                SetOp::Acquire { key, dt } => {
                    now += dt;
                    let key = format!("model-{key}");
                    let got = set.acquire(&key, now).unwrap();
                    let want = model.use_key(&key, Some(now)).acquire(now);
                    prop_assert_eq!(got, want);
                    if let Ok(p) = got {
                        permits.push((key, p));
                    }
                }
                SetOp::Record { permit, outcome, dt } => {
                    now += dt;
                    if permits.is_empty() {
                        continue;
                    }
                    let (key, p) = permits.swap_remove(permit % permits.len());
                    let outcome = match outcome {
                        0 | 1 => Outcome::Success,
                        2 => Outcome::Failure { kind: ErrorKind::Timeout, retry_after_ms: None },
                        _ => Outcome::Ignored,
                    };
                    prop_assert_eq!(
                        set.record(&key, p, outcome, now).unwrap(),
                        model.record(&key, p, outcome, now)
                    );
                }
                SetOp::Switch { key, which, dt } => {
                    now += dt;
                    let key = format!("model-{key}");
                    // The breaker is given `now` only when something is done with it.
                    let given = (which < 3).then_some(now);
                    let (got, want) = (set.entry(&key).unwrap(), model.use_key(&key, given));
                    let (got, want) = match which {
                        0 => (got.force_open(now), want.force_open(now)),
                        1 => (got.disable(now), want.disable(now)),
                        2 => (got.reset(now), want.reset(now)),
                        _ => (None, None),
                    };
                    prop_assert_eq!(got, want);
                }
                SetOp::Snapshot => {
                    let json = serde_json::to_string(&set).unwrap();
                    set = BreakerSet::restore(serde_json::from_str(&json).unwrap()).unwrap();
                }
            }
            prop_assert!(set.len() <= max_keys);
            prop_assert_eq!(set.keys().collect::<Vec<_>>(), model.held.keys().map(String::as_str).collect::<Vec<_>>());
            for (key, (breaker, _, _)) in &model.held {
                prop_assert_eq!(set.get(key), Some(breaker), "breaker {}", key);
            }
        }
    }
}
const FAIL: Outcome = Outcome::Failure {
    kind: ErrorKind::Unavailable,
    retry_after_ms: None,
};

/// Open 60 s at first, doubling to at most 10 min; probes free their slot after 30 s.
fn jumpy_breaker_config() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: Some(1),
        failure_rate: None,
        open_duration: OpenDuration {
            base_ms: 60_000,
            growth_percent: 200,
            max_ms: 600_000,
            use_server_hint: true,
        },
        max_probe_wait_ms: 30_000,
        ..BreakerConfig::default()
    }
}

/// `now_ms` values a careless or unlucky host passes: ordinary milliseconds, nanosecond
/// timestamps, 0, `u64::MAX` and its neighbours, anything.
fn wild_now() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..10_000_000_000,
        2 => 1_600_000_000_000_000_000u64..1_900_000_000_000_000_000,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => (u64::MAX - 10_000)..=u64::MAX,
        1 => any::<u64>(),
    ]
}

fn unavailable() -> Classification {
    Classification {
        kind: ErrorKind::Unavailable,
        retryable: true,
        retry_after_ms: None,
        limit_tokens: None,
        requested_tokens: None,
        provider: None,
        code: None,
        error_type: None,
        message: String::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever `now_ms` values came before (with calls, failures and server hints at them),
    /// once the host's clock advances normally from `start`, a breaker tripped at `start`
    /// admits again within max(open max_ms, max_probe_wait_ms) + BACKWARD_TOLERANCE_MS of host
    /// time; a limiter allows again within its period + the tolerance; nothing panics.
    #[test]
    fn no_sequence_of_now_values_freezes_a_breaker_or_a_limiter(
        prefix in proptest::collection::vec((wild_now(), 0u8..4, any::<u64>()), 0..40),
        start in 0u64..10_000_000_000,
    ) {
        let mut b = Breaker::new(jumpy_breaker_config()).unwrap();
        let mut l = RateLimiter::new(RateLimitConfig { limit: 2, period_ms: 10_000, ..RateLimitConfig::default() }).unwrap();
        let mut budget = RetryBudget::new(BudgetConfig::default()).unwrap();
        let policy = RetryPolicy::new(RetryConfig::default()).unwrap();
        for &(now, op, hint) in &prefix {
            match b.acquire(now) {
                Ok(p) => {
                    let outcome = match op {
                        0 => Outcome::Success,
                        1 => Outcome::Failure { kind: ErrorKind::Timeout, retry_after_ms: Some(hint) },
                        2 => FAIL,
                        _ => Outcome::Ignored,
                    };
                    // Sometimes the result arrives at another wild time.
                    b.record(p, outcome, if op == 3 { hint } else { now });
                }
                Err(r) => prop_assert!(r.retry_in_ms.is_some_and(|ms| ms <= 600_000)),
            }
            let _ = (b.state(now), b.counts(hint));
            let _ = l.check("s", 1 + (op % 2) as u32, now);
            let _ = l.remaining("s", hint);
            l.block_until("t", hint, now).unwrap();
            budget.deposit(now);
            let mut call = policy.start_call(now, hint, &mut budget);
            let _ = policy.decide(&mut call, &unavailable(), hint, None, &mut budget);
            let _ = budget.available(hint);
        }
        // The clock now advances normally from `start`: trip the breaker there.
        if let Ok(p) = b.acquire(start) {
            b.record(p, FAIL, start);
        }
        let bound = 600_000 + BACKWARD_TOLERANCE_MS;
        let admitted_at = (0..=bound / 1_000)
            .map(|i| start + i * 1_000)
            .find(|&t| b.acquire(t).is_ok());
        prop_assert!(admitted_at.is_some(), "no admission within {bound} ms after {start}");
        let _ = l.check("s", 2, start);
        let allowed_at = (0..=(10_000 + BACKWARD_TOLERANCE_MS) / 500)
            .map(|i| start + i * 500)
            .find(|&t| matches!(l.check("s", 1, t), Ok(Verdict::Allowed { .. })));
        prop_assert!(allowed_at.is_some(), "the limiter never allowed again after {start}");
    }
}

/// The regression: one call with a nanosecond timestamp, then milliseconds from 0.
/// Under "a clock that goes backwards stands still" the breaker was frozen at
/// 1.7·10¹⁸ ms: once tripped it admitted 0 of 1 440 acquires over a simulated day.
///
/// Under the clock rule: the nanosecond value is a first observation, clamped to 2⁵³ ms;
/// 0 is a step back of more than 1 s, a new epoch (handle time stays 2⁵³); five failures at
/// 0..4 ms trip it at 2⁵³ + 4, open until 2⁵³ + 60 004. The acquire at minute 1 (60 000 ms,
/// handle 2⁵³ + 60 000) is rejected with 4 ms left; minute 2 admits a probe, whose success
/// closes the breaker; every later minute is admitted: 1 439 of 1 440.
#[test]
fn a_nanosecond_timestamp_does_not_freeze_a_breaker_for_a_day() {
    let mut b = Breaker::new(BreakerConfig::default()).unwrap();
    let p = b.acquire(1_700_000_000_000_000_000).unwrap();
    b.record(p, Outcome::Success, 1_700_000_000_000_000_000);
    for t in 0..5 {
        let p = b.acquire(t).expect("closed");
        b.record(p, FAIL, t);
    }
    assert_eq!(b.state(4), llm_resilience::breaker::State::Open);
    let mut admitted = 0;
    for minute in 1..=1_440u64 {
        let now = minute * 60_000;
        match b.acquire(now) {
            Ok(p) => {
                admitted += 1;
                b.record(p, Outcome::Success, now);
            }
            Err(r) => assert_eq!((minute, r.retry_in_ms), (1, Some(4))),
        }
    }
    assert!(admitted >= 1, "0 of 1 440 acquires admitted");
    assert_eq!(admitted, 1_439);
}
