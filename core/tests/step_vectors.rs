//! Runs the step-table conformance vectors (`tests/vectors/{breaker,ratelimit,retry}.json`)
//! against the core. Every other surface runs the same files.

use llm_resilience::breaker::{Breaker, BreakerConfig, BreakerSet, Outcome, Permit};
use llm_resilience::classify::Classification;
use llm_resilience::ratelimit::{RateLimitConfig, RateLimiter};
use llm_resilience::retry::{BudgetConfig, CallState, RetryBudget, RetryConfig, RetryPolicy};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;

fn load(name: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let file: Value = serde_json::from_str(&text).unwrap();
    let cases = file["cases"].as_array().cloned().unwrap_or_default();
    assert!(!cases.is_empty(), "{name} has no cases");
    cases
}

/// `expect` matches `got` when every field `expect` names has the same value in `got`
/// (recursively for objects); other values must be equal.
fn matches(expect: &Value, got: &Value) -> bool {
    match (expect, got) {
        (Value::Object(e), Value::Object(g)) => e
            .iter()
            .all(|(k, v)| matches(v, g.get(k).unwrap_or(&Value::Null))),
        _ => expect == got,
    }
}

fn now(step: &Value) -> u64 {
    step["now_ms"].as_u64().unwrap_or(0)
}

fn str_of<'a>(step: &'a Value, field: &str) -> &'a str {
    step[field].as_str().unwrap_or("")
}

/// Runs every case of a file; returns (passed, failures).
fn run_file(name: &str, run_case: fn(&Value) -> Result<(), String>) -> (usize, Vec<String>) {
    let mut passed = 0;
    let mut failures = Vec::new();
    for case in load(name) {
        match run_case(&case) {
            Ok(()) => passed += 1,
            Err(e) => failures.push(format!("{}: {e}", case["name"])),
        }
    }
    (passed, failures)
}

fn check(step_no: usize, step: &Value, got: Value) -> Result<(), String> {
    let expect = &step["expect"];
    if matches(expect, &got) {
        Ok(())
    } else {
        Err(format!(
            "step {step_no} ({}): expected {expect}, got {got}",
            step["op"]
        ))
    }
}

enum AnyBreaker {
    One(Breaker),
    Set(BreakerSet),
}

fn breaker_case(case: &Value) -> Result<(), String> {
    let config: BreakerConfig =
        serde_json::from_value(case["config"].clone()).map_err(|e| e.to_string())?;
    let mut b = match case["max_keys"].as_u64() {
        Some(n) => AnyBreaker::Set(BreakerSet::new(config, n as usize).map_err(|e| e.to_string())?),
        None => AnyBreaker::One(Breaker::new(config).map_err(|e| e.to_string())?),
    };
    let mut permits: HashMap<String, Permit> = HashMap::new();
    for (i, step) in case["steps"].as_array().into_iter().flatten().enumerate() {
        let t = now(step);
        let key = str_of(step, "key");
        let got = match str_of(step, "op") {
            "acquire" => {
                let result = match &mut b {
                    AnyBreaker::One(b) => b.acquire(t),
                    AnyBreaker::Set(s) => s.acquire(key, t).map_err(|e| e.to_string())?,
                };
                match result {
                    Ok(p) => {
                        if let Some(name) = step["permit"].as_str() {
                            permits.insert(name.to_string(), p);
                        }
                        json!({"admitted": true, "probe": p.probe})
                    }
                    Err(r) => {
                        json!({"admitted": false, "state": r.state, "retry_in_ms": r.retry_in_ms})
                    }
                }
            }
            "record" => {
                let permit = permits[str_of(step, "permit")];
                let outcome: Outcome =
                    serde_json::from_value(step["outcome"].clone()).map_err(|e| e.to_string())?;
                let recorded = match &mut b {
                    AnyBreaker::One(b) => b.record(permit, outcome, t),
                    AnyBreaker::Set(s) => s
                        .record(key, permit, outcome, t)
                        .map_err(|e| e.to_string())?,
                };
                let mut v = serde_json::to_value(recorded).unwrap();
                v.as_object_mut()
                    .unwrap()
                    .entry("transition")
                    .or_insert(Value::Null);
                v
            }
            "state" => match &b {
                AnyBreaker::One(b) => json!(b.state(t)),
                AnyBreaker::Set(_) => return Err("state needs a single breaker".into()),
            },
            "counts" => match &b {
                AnyBreaker::One(b) => serde_json::to_value(b.counts(t)).unwrap(),
                AnyBreaker::Set(_) => return Err("counts needs a single breaker".into()),
            },
            op @ ("force_open" | "disable" | "reset") => match &mut b {
                AnyBreaker::One(b) => json!(match op {
                    "force_open" => b.force_open(t),
                    "disable" => b.disable(t),
                    _ => b.reset(t),
                }),
                AnyBreaker::Set(_) => return Err("switches need a single breaker".into()),
            },
            "snapshot_restore" => {
                b = match b {
                    AnyBreaker::One(x) => {
                        let json = serde_json::to_string(&x).unwrap();
                        AnyBreaker::One(
                            Breaker::restore(serde_json::from_str(&json).unwrap())
                                .map_err(|e| e.to_string())?,
                        )
                    }
                    AnyBreaker::Set(x) => {
                        let json = serde_json::to_string(&x).unwrap();
                        AnyBreaker::Set(
                            BreakerSet::restore(serde_json::from_str(&json).unwrap())
                                .map_err(|e| e.to_string())?,
                        )
                    }
                };
                continue;
            }
            "keys" => match &b {
                AnyBreaker::Set(s) => json!(s.keys().collect::<Vec<_>>()),
                AnyBreaker::One(_) => return Err("keys needs a set".into()),
            },
            other => return Err(format!("unknown op {other}")),
        };
        check(i, step, got)?;
    }
    Ok(())
}

fn ratelimit_case(case: &Value) -> Result<(), String> {
    let config: RateLimitConfig =
        serde_json::from_value(case["config"].clone()).map_err(|e| e.to_string())?;
    let mut l = RateLimiter::new(config).map_err(|e| e.to_string())?;
    for (i, step) in case["steps"].as_array().into_iter().flatten().enumerate() {
        let t = now(step);
        let key = str_of(step, "key");
        let units = |f: &str| step[f].as_u64().unwrap_or(0) as u32;
        let got = match str_of(step, "op") {
            "check" => match l.check(key, units("units"), t) {
                Ok(v) => serde_json::to_value(v).unwrap(),
                Err(e) => json!({"error": e.code()}),
            },
            "settle" => {
                l.settle(key, units("reserved"), units("actual"), t)
                    .map_err(|e| e.to_string())?;
                continue;
            }
            "block_until" => {
                l.block_until(key, step["until_ms"].as_u64().unwrap_or(0), t)
                    .map_err(|e| e.to_string())?;
                continue;
            }
            "remaining" => json!(l.remaining(key, t).map_err(|e| e.to_string())?),
            "len" => json!(l.len()),
            "snapshot_restore" => {
                let json = serde_json::to_string(&l.snapshot()).unwrap();
                l = RateLimiter::restore(serde_json::from_str(&json).unwrap())
                    .map_err(|e| e.to_string())?;
                continue;
            }
            other => return Err(format!("unknown op {other}")),
        };
        check(i, step, got)?;
    }
    Ok(())
}

fn retry_case(case: &Value) -> Result<(), String> {
    let config: RetryConfig =
        serde_json::from_value(case["config"].clone()).map_err(|e| e.to_string())?;
    let policy = RetryPolicy::new(config).map_err(|e| e.to_string())?;
    let budget: BudgetConfig =
        serde_json::from_value(case["budget"].clone()).map_err(|e| e.to_string())?;
    let mut budget = RetryBudget::new(budget).map_err(|e| e.to_string())?;
    let mut calls: HashMap<String, CallState> = HashMap::new();
    for (i, step) in case["steps"].as_array().into_iter().flatten().enumerate() {
        let t = now(step);
        let got = match str_of(step, "op") {
            "start_call" => {
                let seed = step["seed"].as_u64().unwrap_or(0);
                calls.insert(
                    str_of(step, "call").into(),
                    policy.start_call(t, seed, &mut budget),
                );
                continue;
            }
            "deposit" => {
                budget.deposit(t);
                continue;
            }
            "budget_available" => json!(budget.available(t)),
            "decide" => {
                let mut failure = step["failure"].clone();
                failure["message"] = json!("");
                let failure: Classification =
                    serde_json::from_value(failure).map_err(|e| e.to_string())?;
                let call = calls
                    .get_mut(str_of(step, "call"))
                    .ok_or("decide on an unknown call")?;
                let tokens = step["request_tokens"].as_u64();
                let mut got =
                    serde_json::to_value(policy.decide(call, &failure, t, tokens, &mut budget))
                        .unwrap();
                if let Some([lo, hi]) = step["expect"]["after_ms_between"]
                    .as_array()
                    .map(Vec::as_slice)
                {
                    let after = got["after_ms"].as_u64().unwrap_or(u64::MAX);
                    let inside =
                        (lo.as_u64().unwrap_or(0)..=hi.as_u64().unwrap_or(0)).contains(&after);
                    got["after_ms_between"] = if inside {
                        step["expect"]["after_ms_between"].clone()
                    } else {
                        json!(after)
                    };
                }
                got
            }
            other => return Err(format!("unknown op {other}")),
        };
        check(i, step, got)?;
    }
    Ok(())
}

#[test]
fn step_vectors() {
    let mut failed = Vec::new();
    for (file, capability, run) in [
        (
            "breaker.json",
            "breaker",
            breaker_case as fn(&Value) -> Result<(), String>,
        ),
        ("ratelimit.json", "ratelimit", ratelimit_case),
        ("retry.json", "retry", retry_case),
    ] {
        let (passed, failures) = run_file(file, run);
        println!(
            "[core] {capability} vectors: {passed} passed, {} failed",
            failures.len()
        );
        failed.extend(failures);
    }
    assert!(failed.is_empty(), "failing cases:\n{}", failed.join("\n"));
}
