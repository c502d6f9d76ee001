//! The step-table vectors (`tests/vectors/{breaker,ratelimit,retry}.json`) through the
//! component's resources, interpreted exactly as `core/tests/step_vectors.rs` interprets them
//! against the core. Then snapshots crossing between the component and the native core, both
//! ways, mid-case: the decisions that follow must be the same on both sides.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use llm_resilience::breaker::{
    Breaker, BreakerConfig, BreakerSet, Counts, Outcome, Permit, Recorded, Rejected, State,
    Transition,
};
use llm_resilience::classify::Classification;
use llm_resilience::ratelimit::{RateLimitConfig, RateLimitError, RateLimiter, Verdict};
use llm_resilience::retry::{BudgetConfig, CallState, RetryBudget, RetryConfig, RetryPolicy};
use llmr_host::{HostBreaker, HostBreakerSet, HostCall, HostLimiter, Plugin};
use serde_json::{Value, json};

fn load(name: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let file: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    file["cases"].as_array().cloned().unwrap_or_default()
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

fn steps(case: &Value) -> Vec<Value> {
    case["steps"].as_array().cloned().unwrap_or_default()
}

fn check(step_no: usize, step: &Value, got: &Value) -> Result<(), String> {
    let expect = &step["expect"];
    if matches(expect, got) {
        Ok(())
    } else {
        Err(format!(
            "step {step_no} ({}): expected {expect}, got {got}",
            step["op"]
        ))
    }
}

fn host<T>(r: Result<T, llmr_host::HostError>) -> Result<T, String> {
    r.map_err(|e| format!("host error: {e}"))
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Breakers: one interpreter over two surfaces.

/// A breaker or a keyed set, natively or in the component, as the vectors drive it.
trait BreakerSurface {
    fn acquire(&mut self, key: &str, t: u64) -> Result<Result<Permit, Rejected>, String>;
    fn record(&mut self, key: &str, p: Permit, o: Outcome, t: u64) -> Result<Recorded, String>;
    fn state(&mut self, t: u64) -> Result<State, String>;
    fn counts(&mut self, t: u64) -> Result<Counts, String>;
    fn switch(&mut self, op: &str, t: u64) -> Result<Option<Transition>, String>;
    fn keys(&mut self) -> Result<Vec<String>, String>;
    fn snapshot(&self) -> Result<String, String>;
    /// Replaces the state with the one in `json` (a restart).
    fn restore(&mut self, json: &str) -> Result<(), String>;
}

enum Native {
    One(Breaker),
    Set(BreakerSet),
}

impl Native {
    fn new(case: &Value) -> Result<Native, String> {
        let config: BreakerConfig =
            serde_json::from_value(case["config"].clone()).map_err(|e| e.to_string())?;
        Ok(match case["max_keys"].as_u64() {
            Some(n) => Native::Set(BreakerSet::new(config, n as usize).map_err(|e| e.to_string())?),
            None => Native::One(Breaker::new(config).map_err(|e| e.to_string())?),
        })
    }
}

impl BreakerSurface for Native {
    fn acquire(&mut self, key: &str, t: u64) -> Result<Result<Permit, Rejected>, String> {
        match self {
            Native::One(b) => Ok(b.acquire(t)),
            Native::Set(s) => s.acquire(key, t).map_err(|e| e.to_string()),
        }
    }
    fn record(&mut self, key: &str, p: Permit, o: Outcome, t: u64) -> Result<Recorded, String> {
        match self {
            Native::One(b) => Ok(b.record(p, o, t)),
            Native::Set(s) => s.record(key, p, o, t).map_err(|e| e.to_string()),
        }
    }
    fn state(&mut self, t: u64) -> Result<State, String> {
        match self {
            Native::One(b) => Ok(b.state(t)),
            Native::Set(_) => Err("state needs a single breaker".into()),
        }
    }
    fn counts(&mut self, t: u64) -> Result<Counts, String> {
        match self {
            Native::One(b) => Ok(b.counts(t)),
            Native::Set(_) => Err("counts needs a single breaker".into()),
        }
    }
    fn switch(&mut self, op: &str, t: u64) -> Result<Option<Transition>, String> {
        match self {
            Native::One(b) => Ok(match op {
                "force_open" => b.force_open(t),
                "disable" => b.disable(t),
                _ => b.reset(t),
            }),
            Native::Set(_) => Err("switches need a single breaker".into()),
        }
    }
    fn keys(&mut self) -> Result<Vec<String>, String> {
        match self {
            Native::Set(s) => Ok(s.keys().map(str::to_string).collect()),
            Native::One(_) => Err("keys needs a set".into()),
        }
    }
    fn snapshot(&self) -> Result<String, String> {
        match self {
            Native::One(b) => serde_json::to_string(b),
            Native::Set(s) => serde_json::to_string(s),
        }
        .map_err(|e| e.to_string())
    }
    fn restore(&mut self, json: &str) -> Result<(), String> {
        *self = match self {
            Native::One(_) => Native::One(
                Breaker::restore(serde_json::from_str(json).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?,
            ),
            Native::Set(_) => Native::Set(
                BreakerSet::restore(serde_json::from_str(json).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?,
            ),
        };
        Ok(())
    }
}

enum Wasm<'p> {
    One(&'p Plugin, HostBreaker),
    Set(&'p Plugin, HostBreakerSet),
}

impl<'p> Wasm<'p> {
    fn new(plugin: &'p Plugin, case: &Value) -> Result<Wasm<'p>, String> {
        let config = case["config"].to_string();
        Ok(match case["max_keys"].as_u64() {
            Some(n) => Wasm::Set(
                plugin,
                host(plugin.breaker_set(&config, n.try_into().map_err(|_| "max_keys")?))?,
            ),
            None => Wasm::One(plugin, host(plugin.breaker(&config))?),
        })
    }
}

impl BreakerSurface for Wasm<'_> {
    fn acquire(&mut self, key: &str, t: u64) -> Result<Result<Permit, Rejected>, String> {
        match self {
            Wasm::One(_, b) => host(b.acquire(t)),
            Wasm::Set(_, s) => host(s.acquire(key, t))?.map_err(|e| e.to_string()),
        }
    }
    fn record(&mut self, key: &str, p: Permit, o: Outcome, t: u64) -> Result<Recorded, String> {
        match self {
            Wasm::One(_, b) => host(b.record(p, o, t)),
            Wasm::Set(_, s) => host(s.record(key, p, o, t))?.map_err(|e| e.to_string()),
        }
    }
    fn state(&mut self, t: u64) -> Result<State, String> {
        match self {
            Wasm::One(_, b) => host(b.state(t)),
            Wasm::Set(..) => Err("state needs a single breaker".into()),
        }
    }
    fn counts(&mut self, t: u64) -> Result<Counts, String> {
        match self {
            Wasm::One(_, b) => host(b.counts(t)),
            Wasm::Set(..) => Err("counts needs a single breaker".into()),
        }
    }
    fn switch(&mut self, op: &str, t: u64) -> Result<Option<Transition>, String> {
        match self {
            Wasm::One(_, b) => host(match op {
                "force_open" => b.force_open(t),
                "disable" => b.disable(t),
                _ => b.reset(t),
            }),
            Wasm::Set(..) => Err("switches need a single breaker".into()),
        }
    }
    fn keys(&mut self) -> Result<Vec<String>, String> {
        match self {
            Wasm::Set(_, s) => host(s.keys()),
            Wasm::One(..) => Err("keys needs a set".into()),
        }
    }
    fn snapshot(&self) -> Result<String, String> {
        match self {
            Wasm::One(_, b) => host(b.snapshot()),
            Wasm::Set(_, s) => host(s.snapshot()),
        }
    }
    /// Restores into a new session, as a restarted host would.
    fn restore(&mut self, json: &str) -> Result<(), String> {
        *self = match self {
            Wasm::One(p, _) => Wasm::One(p, host(p.restore_breaker(json))?),
            Wasm::Set(p, _) => Wasm::Set(p, host(p.restore_breaker_set(json))?),
        };
        Ok(())
    }
}

/// Runs one breaker step; `None` for steps that expect nothing (`snapshot_restore`).
fn breaker_step(
    b: &mut dyn BreakerSurface,
    step: &Value,
    permits: &mut HashMap<String, Permit>,
) -> Result<Option<Value>, String> {
    let t = now(step);
    let key = str_of(step, "key");
    let got = match str_of(step, "op") {
        "acquire" => match b.acquire(key, t)? {
            Ok(p) => {
                if let Some(name) = step["permit"].as_str() {
                    permits.insert(name.to_string(), p);
                }
                json!({"admitted": true, "probe": p.probe})
            }
            Err(r) => json!({"admitted": false, "state": r.state, "retry_in_ms": r.retry_in_ms}),
        },
        "record" => {
            let permit = *permits
                .get(str_of(step, "permit"))
                .ok_or("record of an unknown permit")?;
            let outcome: Outcome =
                serde_json::from_value(step["outcome"].clone()).map_err(|e| e.to_string())?;
            let mut v = to_value(&b.record(key, permit, outcome, t)?)?;
            if let Some(obj) = v.as_object_mut() {
                obj.entry("transition").or_insert(Value::Null);
            }
            v
        }
        "state" => json!(b.state(t)?),
        "counts" => to_value(&b.counts(t)?)?,
        op @ ("force_open" | "disable" | "reset") => json!(b.switch(op, t)?),
        "snapshot_restore" => {
            let json = b.snapshot()?;
            b.restore(&json)?;
            return Ok(None);
        }
        "keys" => json!(b.keys()?),
        other => return Err(format!("unknown op {other}")),
    };
    Ok(Some(got))
}

fn breaker_case(plugin: &Plugin, case: &Value) -> Result<(), String> {
    let mut b = Wasm::new(plugin, case)?;
    let mut permits = HashMap::new();
    for (i, step) in steps(case).iter().enumerate() {
        if let Some(got) = breaker_step(&mut b, step, &mut permits)? {
            check(i, step, &got)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rate limiters.

trait LimiterSurface {
    fn check(
        &mut self,
        key: &str,
        units: u32,
        t: u64,
    ) -> Result<Result<Verdict, RateLimitError>, String>;
    fn settle(&mut self, key: &str, reserved: u32, actual: u32, t: u64) -> Result<(), String>;
    fn block_until(&mut self, key: &str, until: u64, t: u64) -> Result<(), String>;
    fn remaining(&mut self, key: &str, t: u64) -> Result<u32, String>;
    fn len(&mut self) -> Result<usize, String>;
    fn snapshot(&self) -> Result<String, String>;
    fn restore(&mut self, json: &str) -> Result<(), String>;
}

impl LimiterSurface for RateLimiter {
    fn check(
        &mut self,
        key: &str,
        units: u32,
        t: u64,
    ) -> Result<Result<Verdict, RateLimitError>, String> {
        Ok(RateLimiter::check(self, key, units, t))
    }
    fn settle(&mut self, key: &str, reserved: u32, actual: u32, t: u64) -> Result<(), String> {
        RateLimiter::settle(self, key, reserved, actual, t).map_err(|e| e.to_string())
    }
    fn block_until(&mut self, key: &str, until: u64, t: u64) -> Result<(), String> {
        RateLimiter::block_until(self, key, until, t).map_err(|e| e.to_string())
    }
    fn remaining(&mut self, key: &str, t: u64) -> Result<u32, String> {
        RateLimiter::remaining(self, key, t).map_err(|e| e.to_string())
    }
    fn len(&mut self) -> Result<usize, String> {
        Ok(RateLimiter::len(self))
    }
    fn snapshot(&self) -> Result<String, String> {
        serde_json::to_string(&RateLimiter::snapshot(self)).map_err(|e| e.to_string())
    }
    fn restore(&mut self, json: &str) -> Result<(), String> {
        *self = RateLimiter::restore(serde_json::from_str(json).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

struct WasmLimiter<'p>(&'p Plugin, HostLimiter);

impl LimiterSurface for WasmLimiter<'_> {
    fn check(
        &mut self,
        key: &str,
        units: u32,
        t: u64,
    ) -> Result<Result<Verdict, RateLimitError>, String> {
        host(self.1.check(key, units, t))
    }
    fn settle(&mut self, key: &str, reserved: u32, actual: u32, t: u64) -> Result<(), String> {
        host(self.1.settle(key, reserved, actual, t))?.map_err(|e| e.to_string())
    }
    fn block_until(&mut self, key: &str, until: u64, t: u64) -> Result<(), String> {
        host(self.1.block_until(key, until, t))?.map_err(|e| e.to_string())
    }
    fn remaining(&mut self, key: &str, t: u64) -> Result<u32, String> {
        host(self.1.remaining(key, t))?.map_err(|e| e.to_string())
    }
    fn len(&mut self) -> Result<usize, String> {
        host(self.1.len())
    }
    fn snapshot(&self) -> Result<String, String> {
        host(self.1.snapshot())
    }
    /// Restores into a new session, as a restarted host would.
    fn restore(&mut self, json: &str) -> Result<(), String> {
        self.1 = host(self.0.restore_limiter(json))?;
        Ok(())
    }
}

fn limiter_step(l: &mut dyn LimiterSurface, step: &Value) -> Result<Option<Value>, String> {
    let t = now(step);
    let key = str_of(step, "key");
    let units = |f: &str| step[f].as_u64().unwrap_or(0) as u32;
    let got = match str_of(step, "op") {
        "check" => match l.check(key, units("units"), t)? {
            Ok(v) => to_value(&v)?,
            Err(e) => json!({"error": e.code()}),
        },
        "settle" => {
            l.settle(key, units("reserved"), units("actual"), t)?;
            return Ok(None);
        }
        "block_until" => {
            l.block_until(key, step["until_ms"].as_u64().unwrap_or(0), t)?;
            return Ok(None);
        }
        "remaining" => json!(l.remaining(key, t)?),
        "len" => json!(l.len()?),
        "snapshot_restore" => {
            let json = l.snapshot()?;
            l.restore(&json)?;
            return Ok(None);
        }
        other => return Err(format!("unknown op {other}")),
    };
    Ok(Some(got))
}

fn native_limiter(case: &Value) -> Result<RateLimiter, String> {
    let config: RateLimitConfig =
        serde_json::from_value(case["config"].clone()).map_err(|e| e.to_string())?;
    RateLimiter::new(config).map_err(|e| e.to_string())
}

fn wasm_limiter<'p>(plugin: &'p Plugin, case: &Value) -> Result<WasmLimiter<'p>, String> {
    Ok(WasmLimiter(
        plugin,
        host(plugin.limiter(&case["config"].to_string()))?,
    ))
}

fn ratelimit_case(plugin: &Plugin, case: &Value) -> Result<(), String> {
    let mut l = wasm_limiter(plugin, case)?;
    for (i, step) in steps(case).iter().enumerate() {
        if let Some(got) = limiter_step(&mut l, step)? {
            check(i, step, &got)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Retry.

fn retry_case(plugin: &Plugin, case: &Value) -> Result<(), String> {
    let session = host(plugin.session())?;
    let policy = host(session.retry_policy(&case["config"].to_string()))?;
    let budget = host(session.retry_budget(&case["budget"].to_string()))?;
    let mut calls: HashMap<String, HostCall> = HashMap::new();
    for (i, step) in steps(case).iter().enumerate() {
        let t = now(step);
        let got = match str_of(step, "op") {
            "start_call" => {
                let seed = step["seed"].as_u64().unwrap_or(0);
                let call = host(policy.start_call(t, seed, &budget))?;
                calls.insert(str_of(step, "call").into(), call);
                continue;
            }
            "deposit" => {
                host(budget.deposit(t))?;
                continue;
            }
            "budget_available" => json!(host(budget.available(t))?),
            "decide" => {
                let failure = failure_of(step)?;
                let call = calls
                    .get(str_of(step, "call"))
                    .ok_or("decide on an unknown call")?;
                let tokens = step["request_tokens"].as_u64();
                let mut got = to_value(&host(policy.decide(call, &failure, t, tokens, &budget))?)?;
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
        check(i, step, &got)?;
    }
    Ok(())
}

fn failure_of(step: &Value) -> Result<Classification, String> {
    let mut failure = step["failure"].clone();
    failure["message"] = json!("");
    serde_json::from_value(failure).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------

type CaseRunner = fn(&Plugin, &Value) -> Result<(), String>;

#[test]
fn step_vectors_through_the_component() {
    let plugin = common::plugin();
    let mut failed = Vec::new();
    for (file, capability, run) in [
        ("breaker.json", "breaker", breaker_case as CaseRunner),
        ("ratelimit.json", "ratelimit", ratelimit_case),
        ("retry.json", "retry", retry_case),
    ] {
        let cases = load(file);
        assert!(!cases.is_empty(), "{file} has no cases");
        let mut passed = 0;
        let mut failures = Vec::new();
        for case in &cases {
            match run(&plugin, case) {
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!("{capability} {}: {e}", case["name"])),
            }
        }
        println!(
            "[wasmtime] {capability} vectors: {passed} passed, {} failed",
            failures.len()
        );
        failed.extend(failures);
    }
    assert!(failed.is_empty(), "failing cases:\n{}", failed.join("\n"));
}

/// Which side a crossing starts on.
#[derive(Debug, Clone, Copy)]
enum Direction {
    ComponentToCore,
    CoreToComponent,
}

/// Runs `steps[..split]` on `first` (checking the vector), moves its snapshot into `second` (a
/// restart onto the other surface), then runs the rest on `second` and on `first` (continuing)
/// side by side: every result must match the vector, and the two surfaces must agree.
fn cross_breaker(
    first: &mut dyn BreakerSurface,
    second: &mut dyn BreakerSurface,
    steps: &[Value],
    split: usize,
) -> Result<(), String> {
    let mut permits = HashMap::new();
    for (i, step) in steps[..split].iter().enumerate() {
        if let Some(got) = breaker_step(first, step, &mut permits)? {
            check(i, step, &got)?;
        }
    }
    second.restore(&first.snapshot()?)?;
    // Permits are plain values: calls admitted before the restart report to the new breaker.
    let mut second_permits = permits.clone();
    for (i, step) in steps.iter().enumerate().skip(split) {
        let a = breaker_step(first, step, &mut permits)?;
        let b = breaker_step(second, step, &mut second_permits)?;
        if a != b {
            return Err(format!("step {i}: the surfaces differ: {a:?} vs {b:?}"));
        }
        if let Some(got) = b {
            check(i, step, &got)?;
        }
    }
    Ok(())
}

/// [`cross_breaker`] for rate limiters.
fn cross_limiter(
    first: &mut dyn LimiterSurface,
    second: &mut dyn LimiterSurface,
    steps: &[Value],
    split: usize,
) -> Result<(), String> {
    for (i, step) in steps[..split].iter().enumerate() {
        if let Some(got) = limiter_step(first, step)? {
            check(i, step, &got)?;
        }
    }
    second.restore(&first.snapshot()?)?;
    for (i, step) in steps.iter().enumerate().skip(split) {
        let a = limiter_step(first, step)?;
        let b = limiter_step(second, step)?;
        if a != b {
            return Err(format!("step {i}: the surfaces differ: {a:?} vs {b:?}"));
        }
        if let Some(got) = b {
            check(i, step, &got)?;
        }
    }
    Ok(())
}

fn breaker_crossing(
    plugin: &Plugin,
    case: &Value,
    split: usize,
    dir: Direction,
) -> Result<(), String> {
    let mut native = Native::new(case)?;
    let mut wasm = Wasm::new(plugin, case)?;
    let steps = steps(case);
    match dir {
        Direction::ComponentToCore => cross_breaker(&mut wasm, &mut native, &steps, split),
        Direction::CoreToComponent => cross_breaker(&mut native, &mut wasm, &steps, split),
    }
}

fn limiter_crossing(
    plugin: &Plugin,
    case: &Value,
    split: usize,
    dir: Direction,
) -> Result<(), String> {
    let mut native = native_limiter(case)?;
    let mut wasm = wasm_limiter(plugin, case)?;
    let steps = steps(case);
    match dir {
        Direction::ComponentToCore => cross_limiter(&mut wasm, &mut native, &steps, split),
        Direction::CoreToComponent => cross_limiter(&mut native, &mut wasm, &steps, split),
    }
}

type Crossing = fn(&Plugin, &Value, usize, Direction) -> Result<(), String>;

#[test]
fn snapshots_move_between_the_component_and_the_core_mid_case() {
    let plugin = common::plugin();
    let mut failed = Vec::new();
    let mut crossings = 0;
    for (file, capability, run) in [
        ("breaker.json", "breaker", breaker_crossing as Crossing),
        ("ratelimit.json", "ratelimit", limiter_crossing),
    ] {
        for case in load(file) {
            // A restart after every step: open, half-open, in-flight probes, blocked keys and
            // evictions all cross, both ways.
            for split in 1..steps(&case).len() {
                for dir in [Direction::ComponentToCore, Direction::CoreToComponent] {
                    crossings += 1;
                    if let Err(e) = run(&plugin, &case, split, dir) {
                        failed.push(format!(
                            "{capability} {} split {split} {dir:?}: {e}",
                            case["name"]
                        ));
                    }
                }
            }
        }
    }
    println!(
        "[wasmtime] snapshot crossings component <-> core: {} passed, {} failed",
        crossings - failed.len(),
        failed.len()
    );
    assert!(crossings > 0, "no crossings ran");
    assert!(
        failed.is_empty(),
        "failing crossings:\n{}",
        failed.join("\n")
    );
}

/// Retry state has no snapshot in the WIT, so it cannot cross; instead the component and the
/// core run the same calls side by side (both jitter modes, many seeds, every retryable kind,
/// server hints, context overflow with and without numbers, a budget that runs dry) and must
/// decide the same at every step.
#[test]
fn retry_decisions_equal_the_core_step_by_step() {
    let plugin = common::plugin();
    let failures: Vec<Classification> = [
        json!({"kind": "timeout", "retryable": true}),
        json!({"kind": "rate-limited", "retryable": true, "retry_after_ms": 1500}),
        json!({"kind": "overloaded", "retryable": true}),
        json!({"kind": "context-overflow", "retryable": false, "limit_tokens": 8192, "requested_tokens": 9000}),
        json!({"kind": "server-error", "retryable": true}),
        json!({"kind": "context-overflow", "retryable": false}),
        json!({"kind": "network", "retryable": true}),
        json!({"kind": "unavailable", "retryable": true, "retry_after_ms": 90000}),
        json!({"kind": "auth", "retryable": false}),
    ]
    .into_iter()
    .map(|f| failure_of(&json!({ "failure": f })).expect("a valid classification"))
    .collect();
    let mut decisions = 0;
    let mut seen = std::collections::BTreeSet::new();
    // A small budget, so that some calls meet an empty one, and an ample one, so that calls
    // use up their attempts.
    let budgets = [
        json!({"window_ms": 1000, "min_retries_per_sec": 2, "retry_percent": 50}),
        json!({"window_ms": 1000, "min_retries_per_sec": 100, "retry_percent": 1000}),
    ];
    for (jitter, budget_config) in ["full", "decorrelated", "none"]
        .into_iter()
        .flat_map(|j| budgets.iter().map(move |b| (j, b)))
    {
        let config = json!({"jitter": jitter, "max_total_retries": 4});
        let policy =
            RetryPolicy::new(serde_json::from_value::<RetryConfig>(config.clone()).unwrap())
                .unwrap();
        let mut budget = RetryBudget::new(
            serde_json::from_value::<BudgetConfig>(budget_config.clone()).unwrap(),
        )
        .unwrap();
        let session = plugin.session().unwrap();
        let host_policy = session.retry_policy(&config.to_string()).unwrap();
        let host_budget = session.retry_budget(&budget_config.to_string()).unwrap();
        let mut now = 0;
        for seed in 0..40u64 {
            let mut call: CallState = policy.start_call(now, seed, &mut budget);
            let host_call = host_policy.start_call(now, seed, &host_budget).unwrap();
            for (i, failure) in failures
                .iter()
                .enumerate()
                .cycle()
                .skip(seed as usize)
                .take(8)
            {
                now += 37;
                let tokens = (i % 2 == 0).then_some(10_000);
                let native = policy.decide(&mut call, failure, now, tokens, &mut budget);
                let wasm = host_policy
                    .decide(&host_call, failure, now, tokens, &host_budget)
                    .unwrap();
                assert_eq!(wasm, native, "{jitter} seed {seed} failure {i}");
                assert_eq!(host_call.retries().unwrap(), call.retries());
                let v = serde_json::to_value(&native).unwrap();
                seen.insert(
                    v["reason"]["reason"]
                        .as_str()
                        .or(v["decision"].as_str())
                        .unwrap_or("?")
                        .to_string(),
                );
                decisions += 1;
            }
            assert_eq!(host_budget.available(now).unwrap(), budget.available(now));
        }
    }
    println!("[wasmtime] retry decisions equal to the core: {decisions} ({seen:?})");
    // The sequence must reach every kind of answer, or it proves less than it claims.
    for answer in [
        "retry",
        "shrink-context",
        "permanent",
        "wait-too-long",
        "budget-exhausted",
        "attempts-exhausted",
    ] {
        assert!(seen.contains(answer), "no {answer} decision in {seen:?}");
    }
}
