//! The context-trimming vectors (`tests/vectors/context.json`) through the component, run
//! exactly as `core/tests/context_vectors.rs` runs them against the core: trims with the
//! upper-bound counter (the component's `counter.upper-bound`), next budgets with a retry policy
//! living in the component.

mod common;

use std::path::PathBuf;

use llm_resilience::chat::{Message, ToolSchema};
use llm_resilience::classify::Classification;
use llm_resilience::context::{ContextBudget, TrimInput};
use llmr_host::{HostCounter, Session};
use serde::Deserialize;
use serde_json::{Value, json};

/// The `input` of a case, owned.
#[derive(Deserialize)]
struct Input {
    system: String,
    documents: Vec<String>,
    history: Vec<Message>,
    latest: Message,
    #[serde(default)]
    tools: Vec<ToolSchema>,
}

fn load() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/context.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// `expect` matches `got` when every field `expect` names has the same value in `got`
/// (recursively for objects); other values (arrays included) must be equal.
fn matches(expect: &Value, got: &Value) -> bool {
    match (expect, got) {
        (Value::Object(e), Value::Object(g)) => e
            .iter()
            .all(|(k, v)| matches(v, g.get(k).unwrap_or(&Value::Null))),
        _ => expect == got,
    }
}

fn compare(expect: &Value, got: &Value) -> Result<(), String> {
    if matches(expect, got) {
        Ok(())
    } else {
        Err(format!("expected {expect}, got {got}"))
    }
}

fn expected(case: &Value, got: &Value) -> Result<(), String> {
    match (case.get("expect"), case.get("expect_error")) {
        (Some(expect), None) => compare(expect, &got["ok"]),
        (None, Some(expect)) => compare(expect, &got["error"]),
        _ => Err("a case needs exactly one of expect and expect_error".into()),
    }
}

fn trim_case(counter: &HostCounter, case: &Value) -> Result<(), String> {
    let budget: ContextBudget =
        serde_json::from_value(case["budget"].clone()).map_err(|e| e.to_string())?;
    let input: Input = serde_json::from_value(case["input"].clone()).map_err(|e| e.to_string())?;
    let trim_input = TrimInput {
        system: &input.system,
        documents: &input.documents,
        history: &input.history,
        latest: &input.latest,
        tools: &input.tools,
    };
    let got = match counter
        .trim(&budget, &trim_input)
        .map_err(|e| e.to_string())?
    {
        Ok(t) => json!({ "ok": t }),
        Err(e) => json!({ "error": e }),
    };
    expected(case, &got)
}

fn next_budget_case(session: &Session, case: &Value) -> Result<(), String> {
    let current: ContextBudget =
        serde_json::from_value(case["current"].clone()).map_err(|e| e.to_string())?;
    let policy = session
        .retry_policy(&case["retry"].to_string())
        .map_err(|e| e.to_string())?;
    let mut failure = case["failure"].clone();
    failure["message"] = json!("");
    let failure: Classification = serde_json::from_value(failure).map_err(|e| e.to_string())?;
    let got = match policy
        .next_budget(&failure, &current, case["request_tokens"].as_u64())
        .map_err(|e| e.to_string())?
    {
        Ok(b) => json!({
            "ok": {"limit_tokens": b.limit_tokens(), "context_window": b.config().context_window}
        }),
        Err(e) => json!({ "error": e }),
    };
    expected(case, &got)
}

#[test]
fn context_vectors() {
    let file = load();
    let plugin = common::plugin();
    let session = plugin.session().expect("session");
    let counter = session.upper_bound_counter().expect("upper-bound counter");
    let mut passed = 0;
    let mut failures = Vec::new();
    for list in ["cases", "next_budget"] {
        let cases = file[list].as_array().cloned().unwrap_or_default();
        assert!(!cases.is_empty(), "context.json has no {list}");
        for case in cases {
            let result = if list == "cases" {
                trim_case(&counter, &case)
            } else {
                next_budget_case(&session, &case)
            };
            match result {
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!("{}: {e}", case["name"])),
            }
        }
    }
    println!(
        "[wasmtime] context vectors: {passed} passed, {} failed",
        failures.len()
    );
    assert!(passed > 0, "no context vectors ran");
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}
