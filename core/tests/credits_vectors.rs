//! Runs the credit-monitoring vectors (`tests/vectors/credits.json`) against the core. Every
//! other surface runs the same file.

use llm_resilience::credits::{
    CreditConfig, CreditMonitor, CreditSnapshot, parse_credits, parse_key, suggest_max_tokens,
};
use serde_json::{Value, json};
use std::path::PathBuf;

fn load() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/credits.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["capability"], "credits");
    let cases = file["cases"].as_array().cloned().unwrap_or_default();
    assert!(!cases.is_empty(), "credits.json has no cases");
    cases
}

/// Numbers match within a relative 1e-9; objects match when every field `expect` names
/// matches (`message_contains` / `message_excludes` test the `message` field); arrays match
/// element by element and must have the same length; other values must be equal.
fn matches(expect: &Value, got: &Value) -> Result<(), String> {
    match (expect, got) {
        (Value::Number(e), Value::Number(g)) => {
            let (e, g) = (
                e.as_f64().unwrap_or(f64::NAN),
                g.as_f64().unwrap_or(f64::NAN),
            );
            if (e - g).abs() <= 1e-9 * e.abs().max(1.0) {
                Ok(())
            } else {
                Err(format!("expected {e}, got {g}"))
            }
        }
        (Value::Object(e), Value::Object(g)) => {
            for (k, v) in e {
                let message = g.get("message").and_then(Value::as_str).unwrap_or("");
                match k.as_str() {
                    "message_contains" => {
                        for s in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
                            if !message.contains(s) {
                                return Err(format!("message {message:?} lacks {s:?}"));
                            }
                        }
                    }
                    "message_excludes" => {
                        for s in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
                            if message.contains(s) {
                                return Err(format!("message {message:?} contains {s:?}"));
                            }
                        }
                    }
                    _ => matches(v, g.get(k).unwrap_or(&Value::Null))
                        .map_err(|err| format!("{k}: {err}"))?,
                }
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(g)) => {
            if e.len() != g.len() {
                return Err(format!(
                    "expected {} items, got {}: {got}",
                    e.len(),
                    g.len()
                ));
            }
            for (i, (e, g)) in e.iter().zip(g).enumerate() {
                matches(e, g).map_err(|err| format!("[{i}]: {err}"))?;
            }
            Ok(())
        }
        _ if expect == got => Ok(()),
        _ => Err(format!("expected {expect}, got {got}")),
    }
}

fn run_case(case: &Value) -> Result<(), String> {
    let config: CreditConfig =
        serde_json::from_value(case["config"].clone()).map_err(|e| e.to_string())?;
    let mut monitor = CreditMonitor::new(config).map_err(|e| e.to_string())?;
    for (i, step) in case["steps"].as_array().into_iter().flatten().enumerate() {
        let body = || step["body"].as_str().unwrap_or("");
        let got = match step["op"].as_str().unwrap_or("") {
            "observe" => {
                let mut snapshot = CreditSnapshot::default();
                if !step["key"].is_null() {
                    snapshot.key = Some(
                        parse_key(&step["key"].to_string())
                            .map_err(|e| format!("step {i}: {e}"))?,
                    );
                }
                if !step["credits"].is_null() {
                    snapshot.credits = Some(
                        parse_credits(&step["credits"].to_string())
                            .map_err(|e| format!("step {i}: {e}"))?,
                    );
                }
                let now = step["now_ms"].as_u64().ok_or("observe needs now_ms")?;
                let alerts = monitor.observe(&snapshot, now, step["wall_clock_ms"].as_u64());
                json!({"alerts": alerts, "status": monitor.status()})
            }
            "snapshot_restore" => {
                let text = serde_json::to_string(&monitor).map_err(|e| e.to_string())?;
                monitor =
                    CreditMonitor::restore(serde_json::from_str(&text).map_err(|e| e.to_string())?)
                        .map_err(|e| e.to_string())?;
                continue;
            }
            "parse_key" => match parse_key(body()) {
                Ok(k) => serde_json::to_value(k).map_err(|e| e.to_string())?,
                Err(e) => serde_json::to_value(e).map_err(|e| e.to_string())?,
            },
            "parse_credits" => match parse_credits(body()) {
                Ok(c) => serde_json::to_value(c).map_err(|e| e.to_string())?,
                Err(e) => serde_json::to_value(e).map_err(|e| e.to_string())?,
            },
            "afford" => json!(suggest_max_tokens(step["text"].as_str().unwrap_or(""))),
            "new" => {
                let config: CreditConfig =
                    serde_json::from_value(step["config"].clone()).map_err(|e| e.to_string())?;
                match CreditMonitor::new(config) {
                    Ok(_) => json!({"ok": true}),
                    Err(e) => json!({"error": "config", "problems": e.problems.len()}),
                }
            }
            other => return Err(format!("unknown op {other}")),
        };
        matches(&step["expect"], &got).map_err(|e| format!("step {i} ({}): {e}", step["op"]))?;
    }
    Ok(())
}

#[test]
fn credits_vectors() {
    let mut passed = 0;
    let mut failures = Vec::new();
    for case in load() {
        match run_case(&case) {
            Ok(()) => passed += 1,
            Err(e) => failures.push(format!("{}: {e}", case["name"])),
        }
    }
    println!(
        "[core] credits vectors: {passed} passed, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}
