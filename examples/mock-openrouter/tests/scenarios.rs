//! Scenario files and validation; the workload generator's promises.

mod common;

use common::*;
use llm_resilience::chat::{Message, Role};
use llm_resilience::tokens::{Encoding, TokenCounter, Tokenizer};
use mock_openrouter::{Scenario, ScenarioError, generate};
use serde_json::json;

fn scenario_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn scenario_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(scenario_dir())
        .expect("examples/scenarios")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name().is_some_and(|n| n != "policy.json")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_file_validates_and_serves_the_worker_models() {
    let files = scenario_files();
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    for expected in [
        "provider-outage",
        "rate-limit-storm",
        "long-conversations",
        "credits-run-out",
        "flaky-network",
        "mixed",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected}.json missing: {names:?}"
        );
    }
    for path in &files {
        let s = Scenario::from_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        assert_eq!(Some(s.name.clone()), stem, "name matches the file");
        assert!(!s.description.is_empty());
        assert!(s.models.contains_key(PRIMARY), "{}", s.name);
        assert!(s.models.contains_key(FALLBACK), "{}", s.name);
        assert!(s.workload.jobs <= 150, "{}: short runs", s.name);
        assert!(s.workload.arrival_ms <= 5000, "{}: short runs", s.name);
    }
}

#[test]
fn scenario_errors_list_every_problem() {
    let bad = json!({
        "name": "Bad Name", "seed": 1,
        "models": {},
        "account": {"limit_usd": -1.0},
        "workload": {"jobs": 0, "sessions": 3, "arrival_ms": 100, "long_share": 1.5},
        "faults": [
            {"type": "outage", "model": "nope/model", "from_ms": 500, "to_ms": 100, "status": 500},
            {"type": "earthquake", "from_ms": 0, "to_ms": 1},
            {"type": "rate-limit", "from_ms": 0, "to_ms": 10, "share": 2.0, "delay_ms": 5},
            {"type": "top-up", "from_ms": 0, "to_ms": 10},
            {"type": "slow", "from_ms": 0, "to_ms": 10}
        ]
    });
    let err = Scenario::from_json(&bad.to_string()).expect_err("invalid");
    let ScenarioError::Invalid(problems) = &err else {
        panic!("expected Invalid, got {err}");
    };
    let all = problems.join("\n");
    for needle in [
        "name must match",
        "models must not be empty",
        "account.limit_usd",
        "workload.jobs",
        "workload.sessions",
        "workload.long_share",
        "is not among the models",
        "from_ms (500) must be below to_ms (100)",
        "status must be 502 or 503",
        "\"earthquake\" is not one of",
        "share must be in 0..=1",
        "field delay_ms does not apply",
        "at_ms is required",
        "usd is required",
        "field from_ms does not apply to a top-up",
        "delay_ms is required",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    // One error value, readable.
    assert!(err.to_string().starts_with("invalid scenario: "));
}

#[test]
fn unknown_fields_and_bad_files_are_typed_errors() {
    let mut doc =
        serde_json::to_value(scenario(&[], json!([]), json!({"limit_usd": 1.0}))).expect("json");
    doc["workload"]["job"] = json!(3);
    assert!(matches!(
        Scenario::from_json(&doc.to_string()),
        Err(ScenarioError::Parse(m)) if m.contains("unknown field")
    ));
    assert!(matches!(
        Scenario::from_json("{"),
        Err(ScenarioError::Parse(_))
    ));
    assert!(matches!(
        Scenario::from_file("/nonexistent/scenario.json"),
        Err(ScenarioError::Io { .. })
    ));
}

#[test]
fn workload_is_deterministic_and_seeded() {
    let s = Scenario::from_file(scenario_dir().join("mixed.json")).expect("mixed");
    let a = serde_json::to_string(&generate(&s)).expect("json");
    let b = serde_json::to_string(&generate(&s)).expect("json");
    assert_eq!(a, b, "byte-identical for the same scenario");
    let mut other = s.clone();
    other.seed += 1;
    assert_ne!(a, serde_json::to_string(&generate(&other)).expect("json"));
}

#[test]
fn workload_looks_like_whatsapp_support() {
    let s = Scenario::from_file(scenario_dir().join("mixed.json")).expect("mixed");
    let jobs = generate(&s);
    assert_eq!(jobs.scenario, "mixed");
    assert!(jobs.system_prompt.contains("WhatsApp"));
    assert!(jobs.documents.len() >= 3);
    assert_eq!(jobs.jobs.len(), s.workload.jobs as usize);
    let mut last = 0;
    let mut sessions = std::collections::BTreeSet::new();
    for (i, j) in jobs.jobs.iter().enumerate() {
        assert_eq!(j.id, format!("job-{:04}", i + 1));
        assert!(j.arrive_ms >= last && j.arrive_ms < s.workload.arrival_ms);
        last = j.arrive_ms;
        sessions.insert(j.session.clone());
        assert_eq!(
            j.flagged,
            j.message
                .contains(mock_openrouter::workload::FLAGGED_MARKER)
        );
        for m in &j.history {
            assert!(m.role == "user" || m.role == "assistant");
        }
    }
    assert!(sessions.len() > 10, "jobs spread across sessions");
    let text: String = jobs
        .jobs
        .iter()
        .flat_map(|j| std::iter::once(j.message.as_str()))
        .collect();
    assert!(text.contains("kak"), "Indonesian customers");
    assert!(
        text.contains("order") || text.contains("Order"),
        "English customers"
    );
    assert!(text.contains("TN-2611-"), "order numbers");
    assert!(text.chars().any(|c| c as u32 >= 0x1F300), "emoji");
    assert!(jobs.jobs.iter().any(|j| j.flagged));
    assert!(jobs.jobs.iter().any(|j| j.stream));
    assert!(jobs.jobs.iter().any(|j| !j.long));
}

fn count(
    tok: &Tokenizer,
    system: &str,
    history: &[mock_openrouter::workload::ChatMessage],
    message: &str,
) -> u64 {
    let mut msgs = vec![Message::new(Role::System, system)];
    for m in history {
        let role = if m.role == "user" {
            Role::User
        } else {
            Role::Assistant
        };
        msgs.push(Message::new(role, m.content.clone()));
    }
    msgs.push(Message::new(Role::User, message));
    tok.count_messages(&msgs, &[]).expect("count")
}

#[test]
fn long_jobs_overflow_naive_trimming_but_fit_an_exact_trim() {
    let s = Scenario::from_file(scenario_dir().join("long-conversations.json")).expect("scenario");
    let window = s.smallest_window();
    let jobs = generate(&s);
    let tok = Tokenizer::new(Encoding::O200kBase).expect("tables");
    let max_tokens = 512;
    let long: Vec<_> = jobs.jobs.iter().filter(|j| j.long).collect();
    assert!(long.len() >= 25, "40 % of 100 jobs: {}", long.len());
    let mut over_5 = 0;
    for j in &long {
        assert!(
            (30..=80).contains(&j.history.len()),
            "{}: {}",
            j.id,
            j.history.len()
        );
        let n = j.history.len();
        let keep = |k: usize| count(&tok, &jobs.system_prompt, &j.history[n - k..], &j.message);
        assert!(
            keep(10) + max_tokens > window,
            "{}: 10 messages overflow",
            j.id
        );
        if keep(5) + max_tokens > window {
            over_5 += 1;
        }
        // The newest turns after the last paste are short: a trim that keeps them fits with
        // room for the answer, the reserve and a safety margin.
        assert!(
            keep(2) + max_tokens + 256 < window,
            "{}: an exact trim fits",
            j.id
        );
    }
    assert!(
        over_5 * 4 >= long.len(),
        "keeping 5 overflows often: {over_5} of {}",
        long.len()
    );
}
