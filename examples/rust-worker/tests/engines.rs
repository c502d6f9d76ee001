//! The same failure sequence through the component and the native engine gives the same
//! decisions, states and snapshots: the worker may run on either surface.

mod common;

use llm_resilience::breaker::Outcome;
use llm_resilience::chat::{Message, Role};
use llm_resilience::context::TrimInput;
use llm_resilience::{ClassifyInput, ErrorKind};
use llmr_worker::engine::{Engine, EngineConfig, NativeEngine};

fn engines() -> (Box<dyn Engine>, Box<dyn Engine>) {
    let config = EngineConfig::from_policy(&common::policy());
    let native = NativeEngine::new(&config, None).expect("native engine");
    let component = common::component()
        .build(&config, None)
        .expect("component engine");
    (Box::new(native), component)
}

#[test]
fn both_engines_decide_identically() {
    let (native, component) = engines();
    assert_eq!(native.surface(), "native");
    assert_eq!(component.surface(), "component");
    let both = [&native, &component];

    // Classification of the 166 real error bodies.
    let vectors: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/vectors/classify.json"),
        )
        .expect("classify vectors"),
    )
    .expect("vectors parse");
    let cases = vectors["cases"].as_array().expect("cases");
    assert!(cases.len() > 100);
    let mut classifications = Vec::new();
    for case in cases {
        let input = llmr_host::CallInput::from_value(case["input"].clone()).expect("input");
        let [a, b] = both.map(|e| input.with_input(|i| e.classify(i)).expect("classify"));
        assert_eq!(a, b, "{}", case["name"]);
        classifications.push(a);
    }

    // The retry policy over a sequence of failures (same seed, same budget history).
    let mut calls = both.map(|e| e.start_call(0, 42).expect("start"));
    let mut now = 0;
    for (i, failure) in classifications.iter().take(40).enumerate() {
        now += 37;
        let d: Vec<_> = both
            .iter()
            .zip(calls.iter_mut())
            .map(|(e, c)| {
                e.decide(c, failure, now, Some(9_000 + i as u64))
                    .expect("decide")
            })
            .collect();
        assert_eq!(d[0], d[1], "decision {i}");
        if i % 3 == 0 {
            calls = both.map(|e| e.start_call(now, i as u64).expect("start"));
        }
    }

    // Breakers: failures open the primary's breaker, then time moves on and a probe succeeds.
    let unavailable = classifications
        .iter()
        .find(|c| c.kind == ErrorKind::Unavailable)
        .expect("an unavailable case")
        .clone();
    for t in (0..4000).step_by(50) {
        let admitted = both.map(|e| e.breaker_acquire("openai/gpt-4o-mini", t).expect("acquire"));
        assert_eq!(admitted[0], admitted[1], "acquire at {t}");
        if let Ok(permit) = admitted[0] {
            let outcome = if t < 1500 {
                Outcome::Failure {
                    kind: unavailable.kind,
                    retry_after_ms: unavailable.retry_after_ms,
                }
            } else {
                Outcome::Success
            };
            for e in both {
                e.breaker_record("openai/gpt-4o-mini", permit, outcome, t + 10)
                    .expect("record");
            }
        }
        let states = both.map(|e| {
            e.breaker_state("openai/gpt-4o-mini", t + 10)
                .expect("state")
        });
        assert_eq!(states[0], states[1], "state at {t}");
    }

    // The per-session limiter.
    for t in [0, 0, 0, 0, 0, 100, 250, 400, 1000] {
        let v = both.map(|e| e.limiter_check("chat-001", t).expect("check"));
        assert_eq!(v[0], v[1]);
    }

    // Trimming and the shrink budget.
    let history: Vec<Message> = (0..60)
        .map(|i| {
            Message::new(
                if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                format!(
                    "pesanan #{i}: kaos polos ukuran L 🙏 sudah dikirim? order log {}",
                    "x".repeat(i * 40)
                ),
            )
        })
        .collect();
    let latest = Message::new(Role::User, "Halo kak, paket saya belum sampai");
    let documents = vec!["Pengiriman 2-4 hari kerja. Shipping takes 2-4 business days.".repeat(50)];
    let input = TrimInput {
        system: "You are the support assistant.",
        documents: &documents,
        history: &history,
        latest: &latest,
        tools: &[],
    };
    let budget = common::policy().context_budget(4_000).expect("budget");
    let trims = both.map(|e| e.trim(&budget, &input).expect("trim"));
    assert_eq!(trims[0], trims[1]);
    let tokens = trims[0].as_ref().expect("fits").report.tokens_after;
    let overflow = classifications
        .iter()
        .find(|c| c.kind == ErrorKind::ContextOverflow)
        .expect("an overflow case");
    let next = both.map(|e| {
        e.next_budget(overflow, &budget, Some(tokens))
            .expect("next")
    });
    assert_eq!(
        next[0].as_ref().map(|b| b.config().clone()).ok(),
        next[1].as_ref().map(|b| b.config().clone()).ok()
    );
    let counts = both.map(|e| e.count_messages(&history).expect("count"));
    assert_eq!(counts[0], counts[1]);

    // 402 "can only afford" and the credit monitor.
    let text = r#"{"error":{"message":"This request requires more credits, or fewer max_tokens. You requested up to 512 tokens, but can only afford 338.","code":402}}"#;
    let s = both.map(|e| e.suggest_max_tokens(text).expect("suggest"));
    assert_eq!(s[0], s[1]);
    assert!(s[0].is_some_and(|a| a.suggested_max_tokens.is_some_and(|m| m < 338)));
    // No balance before the first poll (the credit gate's "never observed").
    let balances = both.map(|e| e.credit_balance().expect("balance"));
    assert_eq!(balances, [None, None]);
    for (i, remaining) in [6.0, 4.0, 3.5, 0.5, 0.4, 4.5].iter().enumerate() {
        let body = format!(
            r#"{{"data":{{"label":"k","usage":1.0,"usage_daily":{},"usage_weekly":1.0,"usage_monthly":1.0,"limit":10.0,"limit_remaining":{remaining},"limit_reset":null,"is_free_tier":false}}}}"#,
            10.0 - remaining
        );
        let alerts = both.map(|e| e.credit_observe(&body, 1_000 * i as u64).expect("observe"));
        assert_eq!(alerts[0], alerts[1], "poll {i}");
        // The balance the credit gate reads: the binding one (the key's remaining here).
        let balances = both.map(|e| e.credit_balance().expect("balance"));
        assert_eq!(balances[0], balances[1], "poll {i}");
        assert_eq!(balances[0], Some(*remaining), "poll {i}");
    }

    // The state each holds, exported: the same JSON.
    let snaps = both.map(|e| e.snapshot().expect("snapshot"));
    assert_eq!(snaps[0], snaps[1]);
    assert!(
        !snaps[0].breakers["breakers"]
            .as_object()
            .expect("map")
            .is_empty()
    );
}

#[test]
fn a_snapshot_from_one_surface_restores_into_the_other() {
    let config = EngineConfig::from_policy(&common::policy());
    let native = NativeEngine::new(&config, None).expect("native");
    for t in 0..10 {
        let _ = native.limiter_check(&format!("chat-{t:03}"), t);
        if let Ok(Ok(p)) = native.breaker_acquire("openai/gpt-4o-mini", t) {
            native
                .breaker_record(
                    "openai/gpt-4o-mini",
                    p,
                    Outcome::Failure {
                        kind: ErrorKind::Unavailable,
                        retry_after_ms: None,
                    },
                    t,
                )
                .expect("record");
        }
    }
    let saved = native.snapshot().expect("snapshot");
    let component = common::component()
        .build(&config, Some(&saved))
        .expect("restore into the component");
    assert_eq!(component.snapshot().expect("snapshot"), saved);
    assert_eq!(
        component
            .breaker_state("openai/gpt-4o-mini", 20)
            .expect("state"),
        native
            .breaker_state("openai/gpt-4o-mini", 20)
            .expect("state")
    );
    // And the classify input type is the core's own on both.
    let c = component
        .classify(&ClassifyInput {
            transport: Some("connection reset by peer"),
            ..ClassifyInput::default()
        })
        .expect("classify");
    assert_eq!(c.kind, ErrorKind::Network);
}
