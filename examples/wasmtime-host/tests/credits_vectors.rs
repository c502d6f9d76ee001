//! The credit-monitoring vectors (`tests/vectors/credits.json`) through the component, run
//! exactly as `core/tests/credits_vectors.rs` runs them against the core: the parsers, the 402
//! reader and a `credit-monitor` resource; `snapshot_restore` steps restore the monitor's
//! snapshot into a new session.

mod common;

use std::path::PathBuf;

use llm_resilience::credits::CreditSnapshot;
use llmr_host::{HostCreditMonitor, HostError, Plugin};
use serde_json::{Value, json};

fn load() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/credits.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let file: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
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

fn host(e: HostError) -> String {
    e.to_string()
}

fn run_case(plugin: &Plugin, case: &Value) -> Result<(), String> {
    let mut monitor: HostCreditMonitor = plugin
        .credit_monitor(&case["config"].to_string())
        .map_err(host)?;
    for (i, step) in case["steps"].as_array().into_iter().flatten().enumerate() {
        let body = || step["body"].as_str().unwrap_or("");
        let got = match step["op"].as_str().unwrap_or("") {
            "observe" => {
                let mut snapshot = CreditSnapshot::default();
                if !step["key"].is_null() {
                    snapshot.key = Some(
                        plugin
                            .parse_key(&step["key"].to_string())
                            .map_err(host)?
                            .map_err(|e| format!("step {i}: {e}"))?,
                    );
                }
                if !step["credits"].is_null() {
                    snapshot.credits = Some(
                        plugin
                            .parse_credits(&step["credits"].to_string())
                            .map_err(host)?
                            .map_err(|e| format!("step {i}: {e}"))?,
                    );
                }
                let now = step["now_ms"].as_u64().ok_or("observe needs now_ms")?;
                let alerts = monitor
                    .observe(&snapshot, now, step["wall_clock_ms"].as_u64())
                    .map_err(host)?;
                json!({"alerts": alerts, "status": monitor.status().map_err(host)?})
            }
            "snapshot_restore" => {
                let text = monitor.snapshot().map_err(host)?;
                monitor = plugin
                    .session()
                    .map_err(host)?
                    .restore_credit_monitor(&text)
                    .map_err(host)?;
                continue;
            }
            "parse_key" => match plugin.parse_key(body()).map_err(host)? {
                Ok(k) => serde_json::to_value(k).map_err(|e| e.to_string())?,
                Err(e) => serde_json::to_value(e).map_err(|e| e.to_string())?,
            },
            "parse_credits" => match plugin.parse_credits(body()).map_err(host)? {
                Ok(c) => serde_json::to_value(c).map_err(|e| e.to_string())?,
                Err(e) => serde_json::to_value(e).map_err(|e| e.to_string())?,
            },
            "afford" => json!(
                plugin
                    .suggest_max_tokens(step["text"].as_str().unwrap_or(""))
                    .map_err(host)?
            ),
            "new" => match plugin.credit_monitor(&step["config"].to_string()) {
                Ok(_) => json!({"ok": true}),
                Err(HostError::Config(e)) => {
                    json!({"error": "config", "problems": e.problems.len()})
                }
                Err(e) => return Err(e.to_string()),
            },
            other => return Err(format!("unknown op {other}")),
        };
        matches(&step["expect"], &got).map_err(|e| format!("step {i} ({}): {e}", step["op"]))?;
    }
    Ok(())
}

#[test]
fn credits_vectors() {
    let plugin = common::plugin();
    let mut passed = 0;
    let mut failures = Vec::new();
    for case in load() {
        match run_case(&plugin, &case) {
            Ok(()) => passed += 1,
            Err(e) => failures.push(format!("{}: {e}", case["name"])),
        }
    }
    println!(
        "[wasmtime] credits vectors: {passed} passed, {} failed",
        failures.len()
    );
    assert!(passed > 0, "no credits vectors ran");
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}
