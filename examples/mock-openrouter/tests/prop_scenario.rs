//! Property tests for the mock's scenario parser and workload generator.
//!
//! Why: scenario files are hand-written, so the parser must turn any text into a scenario or
//! a typed error naming what is wrong, never a panic; and both workers run the queue
//! `workload::generate` derives from a scenario, so it must be a pure function of it and keep
//! the promises `examples/scenarios/README.md` makes (expected values derived from that
//! README, not from the code).

use mock_openrouter::Scenario;
use mock_openrouter::scenario::ScenarioError;
use mock_openrouter::workload::{self, FLAGGED_MARKER};
use proptest::prelude::*;
use serde_json::{Value, json};

const MODEL_IDS: [&str; 3] = [
    "openai/gpt-4o-mini",
    "anthropic/claude-3.5-haiku",
    "google/gemini-2.5-flash-lite",
];

/// A scenario the README says is valid, as JSON (small windows and few jobs keep the exact
/// token counting of long jobs cheap).
fn valid_scenario() -> impl Strategy<Value = Value> {
    let model = (
        256u64..6000,
        0u64..200,
        0u64..200,
        10u32..=1000,
        0.0f64..50.0,
        0.0f64..50.0,
    );
    (
        "[a-z0-9][a-z0-9-]{0,20}",
        any::<u64>(),
        proptest::collection::btree_map(proptest::sample::select(&MODEL_IDS[..]), model, 1..=3),
        proptest::option::of(0.0f64..100.0),
        (
            1u32..40,
            0.0f64..1.0,
            0.0f64..=1.0,
            0.0f64..=1.0,
            0.0f64..=1.0,
            0.0f64..=1.0,
        ),
        0u64..6000,
        proptest::collection::vec(
            (0u64..5000, 1u64..5000, 0.0f64..=1.0, prop::bool::ANY),
            0..3,
        ),
    )
        .prop_map(
            |(
                name,
                seed,
                models,
                limit,
                (jobs, sess, long, stream, flagged, indo),
                arrival,
                faults,
            )| {
                let sessions = 1 + ((f64::from(jobs - 1)) * sess) as u32;
                let models: serde_json::Map<String, Value> = models
                    .into_iter()
                    .map(|(id, (window, lo, extra, ratio, p, c))| {
                        (
                            id.to_string(),
                            json!({
                                "context_window": window,
                                "latency_ms": [lo, lo + extra],
                                "token_ratio_percent": ratio,
                                "usd_per_million_prompt": p,
                                "usd_per_million_completion": c,
                                "provider": "OpenAI",
                            }),
                        )
                    })
                    .collect();
                let faults: Vec<Value> = faults
                    .into_iter()
                    .map(|(from, len, share, bad_gateway)| {
                        json!({
                            "type": "outage",
                            "from_ms": from,
                            "to_ms": from + len,
                            "share": share,
                            "status": if bad_gateway { 502 } else { 503 },
                        })
                    })
                    .collect();
                json!({
                    "name": name,
                    "description": "generated",
                    "seed": seed,
                    "models": models,
                    "account": { "limit_usd": limit, "usage_usd": 0.0, "is_free_tier": false },
                    "workload": {
                        "jobs": jobs,
                        "sessions": sessions,
                        "arrival_ms": arrival,
                        "long_share": long,
                        "stream_share": stream,
                        "flagged_share": flagged,
                        "indonesian_share": indo,
                    },
                    "faults": faults,
                })
            },
        )
}

/// The problems an invalid scenario's error lists.
fn problems(text: &str) -> Vec<String> {
    match Scenario::from_json(text) {
        Err(ScenarioError::Invalid(p)) => p,
        other => panic!("expected an invalid-scenario error, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any text is a scenario or a typed error, never a panic.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = Scenario::from_json(&text);
    }

    /// Arbitrary JSON values (not only text) never panic either, and most are errors.
    #[test]
    fn arbitrary_json_never_panics(v in arbitrary_json()) {
        let r = Scenario::from_json(&v.to_string());
        if !v.is_object() {
            prop_assert!(r.is_err());
        }
    }

    /// Generated valid scenarios validate, and survive serialization unchanged.
    #[test]
    fn valid_scenarios_validate(v in valid_scenario()) {
        let s = Scenario::from_json(&v.to_string());
        prop_assert!(s.is_ok(), "{:?}\n{}", s.err(), v);
        let s = s.unwrap_or_else(|_| unreachable!());
        let again = Scenario::from_json(&serde_json::to_string(&s).expect("serializes"));
        prop_assert_eq!(again.ok(), Some(s));
    }

    /// A fault window with from ≥ to is an error naming from_ms and to_ms.
    #[test]
    fn from_at_or_after_to_names_the_fields(mut v in valid_scenario(), from in 0u64..5000, back in 0u64..5000) {
        v["faults"] = json!([{ "type": "outage", "status": 503, "from_ms": from, "to_ms": from.saturating_sub(back) }]);
        let p = problems(&v.to_string());
        prop_assert!(p.iter().any(|p| p.contains("faults[0]") && p.contains("from_ms") && p.contains("to_ms")), "{:?}", p);
    }

    /// A share above 1 is an error naming the share.
    #[test]
    fn share_over_one_names_the_field(mut v in valid_scenario(), share in 1.0001f64..1e6, which in 0usize..5) {
        let field = match which {
            0 => "long_share",
            1 => "stream_share",
            2 => "flagged_share",
            3 => "indonesian_share",
            _ => {
                v["faults"] = json!([{ "type": "outage", "status": 503, "share": share }]);
                let p = problems(&v.to_string());
                prop_assert!(p.iter().any(|p| p.contains("faults[0]") && p.contains("share")), "{:?}", p);
                return Ok(());
            }
        };
        v["workload"][field] = json!(share);
        let p = problems(&v.to_string());
        prop_assert!(p.iter().any(|p| p.contains(field)), "{:?}", p);
    }

    /// No models is an error naming models.
    #[test]
    fn empty_models_names_the_field(mut v in valid_scenario()) {
        v["models"] = json!({});
        v["faults"] = json!([]);
        let p = problems(&v.to_string());
        prop_assert!(p.iter().any(|p| p.contains("models must not be empty")), "{:?}", p);
    }

    /// The workload is a pure function of the scenario and keeps the README's promises.
    #[test]
    fn workload_is_deterministic_and_as_documented(v in valid_scenario()) {
        let s = Scenario::from_json(&v.to_string()).expect("a valid scenario");
        let jobs = workload::generate(&s);
        let again = workload::generate(&s);
        prop_assert_eq!(
            serde_json::to_string(&jobs).expect("serializes"),
            serde_json::to_string(&again).expect("serializes")
        );
        prop_assert_eq!(&jobs.scenario, &s.name);
        prop_assert_eq!(jobs.jobs.len(), s.workload.jobs as usize);
        let mut sessions = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeSet::new();
        for (i, job) in jobs.jobs.iter().enumerate() {
            // Sorted by arrival, within [0, arrival_ms).
            if i > 0 {
                prop_assert!(jobs.jobs[i - 1].arrive_ms <= job.arrive_ms);
            }
            prop_assert!(job.arrive_ms < s.workload.arrival_ms.max(1));
            prop_assert!(ids.insert(job.id.clone()), "duplicate id {}", job.id);
            prop_assert!(job.id.starts_with("job-") && job.session.starts_with("chat-"));
            sessions.insert(job.session.clone());
            // Histories alternate user / assistant; long ones are 30–80 messages, short 0–6.
            let n = job.history.len();
            if job.long {
                prop_assert!((30..=80).contains(&n), "long history of {}", n);
            } else {
                prop_assert!(n <= 6, "short history of {}", n);
            }
            for pair in job.history.windows(2) {
                prop_assert_ne!(&pair[0].role, &pair[1].role);
            }
            for m in &job.history {
                prop_assert!(m.role == "user" || m.role == "assistant", "role {}", m.role);
            }
            prop_assert!(!job.message.is_empty());
            prop_assert_eq!(job.flagged, job.message.contains(FLAGGED_MARKER));
            // A long history has the customer's messages at odd distances from its end.
            if job.long {
                for (k, m) in job.history.iter().rev().enumerate() {
                    let expected = if k % 2 == 0 { "user" } else { "assistant" };
                    prop_assert_eq!(m.role.as_str(), expected, "{} from the end", k + 1);
                }
            }
        }
        prop_assert!(sessions.len() <= s.workload.sessions as usize);
        // Shares of 0 and 1 are exact.
        if s.workload.long_share == 0.0 {
            prop_assert!(jobs.jobs.iter().all(|j| !j.long));
        }
        if s.workload.stream_share == 0.0 {
            prop_assert!(jobs.jobs.iter().all(|j| !j.stream));
        }
        if s.workload.flagged_share == 0.0 {
            prop_assert!(jobs.jobs.iter().all(|j| !j.flagged));
        }
    }
}

/// Arbitrary JSON values, a few levels deep, with the scenario's keys among the object keys.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    let keys = prop_oneof![
        proptest::sample::select(vec![
            "name",
            "seed",
            "models",
            "account",
            "workload",
            "faults",
            "jobs",
            "sessions",
            "arrival_ms",
            "type",
            "from_ms",
            "to_ms",
            "share",
            "limit_usd",
            "context_window",
            "latency_ms",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,8}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The shipped scenario files parse and validate (they are the real inputs).
#[test]
fn shipped_scenarios_validate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("examples/scenarios") {
        let path = entry.expect("a dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(".json") && name != "policy.json" {
            let s = Scenario::from_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(format!("{}.json", s.name), name);
            n += 1;
        }
    }
    assert!(n >= 6, "{n} scenarios");
}
