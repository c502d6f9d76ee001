//! Redaction (issue 4 item 4) through the component: real-shaped FAKE keys fed into every input
//! of the tokens, context and credits surfaces that can reach an error, an alert, a report, a
//! status, a snapshot or a message never come back out of them.

mod common;

use llm_resilience::chat::{Message, Role};
use llm_resilience::classify::{Classification, ErrorKind};
use llm_resilience::context::{ContextBudget, ContextConfig, TrimInput};
use llm_resilience::credits::{CreditSnapshot, CreditsInfo, KeyInfo};
use llmr_host::HostError;

const FAKE_KEYS: [&str; 4] = [
    "sk-or-v1-FAKE-not-a-real-key-0123456789abcdef-0123456789abcdef",
    "sk-ant-api03-FAKE-not-a-real-key-0123456789abcdefABCDEF0123456789-abcdefAA",
    "AIzaFAKEnotARealKey0123456789abcdefABCDE",
    "Bearer FAKE-not-a-real-token-0123456789abcdef0123456789",
];

/// The secret part of each key: the prefix alone may survive (`sk-or-v1-…`), the rest not.
fn secrets() -> Vec<&'static str> {
    vec![
        "FAKE-not-a-real-key-0123456789abcdef-0123456789abcdef",
        "FAKE-not-a-real-key-0123456789abcdefABCDEF0123456789",
        "AIzaFAKEnotARealKey0123456789abcdefABCDE",
        "FAKE-not-a-real-token-0123456789abcdef0123456789",
    ]
}

fn assert_clean(what: &str, output: &str) {
    for s in secrets() {
        assert!(!output.contains(s), "{what} leaks {s:?}: {output}");
    }
}

#[test]
fn credits_outputs_never_carry_a_key() {
    let plugin = common::plugin();
    let mut checked = 0;
    for key in FAKE_KEYS {
        let quoted = serde_json::to_string(key).expect("json");
        // A label that is the key itself, as OpenRouter's docs show.
        let body = format!(
            r#"{{"data":{{"label":{quoted},"usage":10,"limit":12,"limit_remaining":0.5,"usage_daily":3}}}}"#
        );
        let info = plugin.parse_key(&body).expect("host call").expect("parses");
        assert_clean("parse_key label", &format!("{info:?}"));
        // An error envelope that quotes the key, and fields of the wrong type holding it.
        for body in [
            format!(r#"{{"error":{{"code":401,"message":"Invalid key {key}"}}}}"#),
            format!(r#"{{"data":{{"label":{quoted},"usage":{quoted}}}}}"#),
            format!(r#"{{"data":{{"total_credits":{quoted},"total_usage":1}}}}"#),
            format!("not json {key}"),
        ] {
            let e = plugin.parse_key(&body).expect("host call");
            assert_clean("parse_key error", &format!("{e:?}"));
            let e = plugin.parse_credits(&body).expect("host call");
            assert_clean("parse_credits error", &format!("{e:?}"));
            checked += 2;
        }
        // The 402 reader.
        let a = plugin
            .suggest_max_tokens(&format!(
                "key {key}: You requested up to 4000 tokens, but can only afford 1200."
            ))
            .expect("host call");
        assert_clean("suggest_max_tokens", &format!("{a:?}"));
        // A monitor fed the key as a label: alerts, status and snapshot.
        let monitor = plugin.credit_monitor("{}").expect("monitor");
        for (i, remaining) in [0.5, 20.0, 0.4].into_iter().enumerate() {
            let snapshot = CreditSnapshot {
                key: Some(KeyInfo {
                    label: Some(key.to_string()),
                    usage: Some(10.0 + i as f64),
                    limit: Some(30.0),
                    limit_remaining: Some(remaining),
                    usage_daily: Some(5.0),
                    ..KeyInfo::default()
                }),
                credits: Some(CreditsInfo {
                    total_credits: 20.0,
                    total_usage: 19.5 - i as f64,
                }),
            };
            let alerts = monitor
                .observe(&snapshot, 3_600_000 * i as u64, Some(1_764_000_000_000))
                .expect("host call");
            assert_clean("alerts", &format!("{alerts:?}"));
            checked += alerts.len();
        }
        assert_clean(
            "status",
            &format!("{:?}", monitor.status().expect("host call")),
        );
        assert_clean("snapshot", &monitor.snapshot().expect("host call"));
        // Configs and snapshots holding the key: the listed problems are redacted.
        for config in [
            format!(r#"{{"warning_balance_usd":{quoted}}}"#),
            format!(r#"{{{quoted}:1}}"#),
            format!("{{ {key}"),
        ] {
            for result in [
                plugin.credit_monitor(&config).map(|_| ()),
                plugin
                    .session()
                    .and_then(|s| s.restore_credit_monitor(&config).map(|_| ())),
                plugin
                    .session()
                    .and_then(|s| s.calibration(&config).map(|_| ())),
                plugin
                    .session()
                    .and_then(|s| s.restore_calibration(&config).map(|_| ())),
            ] {
                let e = result.expect_err("rejected");
                assert!(matches!(e, HostError::Config(_)), "{e:?}");
                assert_clean("config error", &format!("{e:?} {e}"));
                checked += 1;
            }
        }
    }
    println!("[wasmtime] credits redaction: {checked} outputs checked, no key in any");
}

#[test]
fn context_and_tokens_reports_and_errors_never_carry_a_key() {
    let plugin = common::plugin();
    let session = plugin.session().expect("session");
    let counter = session.upper_bound_counter().expect("counter");
    let policy = session.retry_policy("{}").expect("policy");
    let mut checked = 0;
    for key in FAKE_KEYS {
        let documents = vec![format!("doc with {key} ").repeat(50)];
        let history = vec![
            Message::new(Role::User, format!("my key is {key}")),
            Message::new(Role::Assistant, format!("never share {key}")),
            Message::new(Role::Tool, format!("orphan {key}")),
        ];
        let system = format!("system {key}");
        let small = ContextBudget::new(ContextConfig {
            context_window: 400,
            reserved_output_tokens: 10,
            safety_margin_tokens: 10,
            min_document_chars: 20,
            ..ContextConfig::default()
        })
        .expect("budget");
        let tiny = ContextBudget::new(ContextConfig {
            context_window: 30,
            reserved_output_tokens: 1,
            safety_margin_tokens: 1,
            ..ContextConfig::default()
        })
        .expect("budget");
        for latest in [
            Message::new(Role::User, format!("latest {key}")),
            Message::new(Role::Assistant, format!("not a user {key}")),
        ] {
            for budget in [&small, &tiny] {
                let input = TrimInput {
                    system: &system,
                    documents: &documents,
                    history: &history,
                    latest: &latest,
                    tools: &[],
                };
                match counter.trim(budget, &input).expect("host call") {
                    // The messages are the conversation itself; the report must not echo text.
                    Ok(t) => assert_clean("trim report", &format!("{:?}", t.report)),
                    Err(e) => assert_clean("trim error", &format!("{e:?} {e}")),
                }
                checked += 1;
            }
        }
        // A text that is too large: the error names its size, not its text.
        let huge = format!("{key} ").repeat(5 * 1024 * 1024 / (key.len() + 1) + 1);
        let e = counter.count_text(&huge).expect("host call");
        assert!(e.is_err());
        assert_clean("count error", &format!("{e:?}"));
        // A context overflow whose message quotes the key.
        let failure = Classification {
            kind: ErrorKind::RateLimited,
            retryable: true,
            retry_after_ms: None,
            limit_tokens: None,
            requested_tokens: None,
            provider: Some(key.to_string()),
            code: Some(key.to_string()),
            error_type: None,
            message: format!("bad {key}"),
        };
        let e = policy
            .next_budget(&failure, &small, Some(100))
            .expect("host call");
        assert_clean("next_budget error", &format!("{e:?}"));
        checked += 2;
    }
    println!("[wasmtime] context/tokens redaction: {checked} outputs checked, no key in any");
}
