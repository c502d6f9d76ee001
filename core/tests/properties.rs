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

use llm_resilience::breaker::{
    Breaker, BreakerConfig, BreakerSet, OpenDuration, Outcome, Permit, RateRule, Recorded, State,
    Window,
};
use llm_resilience::{ClassifyInput, ErrorKind, MAX_HEADERS, classify};
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
