//! The cost of a decision through the component, side by side with an empty call into the
//! component and with the native core, in one run:
//!
//! ```sh
//! cargo run -p xtask -- component && cargo bench -p llmr-host --bench resources
//! ```
//!
//! After criterion's own report it prints a table of medians (ns per operation) and ratios; the
//! one in `examples/wasmtime-host/BENCHMARKS.md` comes from this. Compare ratios, not absolute
//! numbers: the machine is shared.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::Criterion;
use llm_resilience::breaker::{Breaker, BreakerConfig, Outcome};
use llm_resilience::classify::{Classification, ErrorKind};
use llm_resilience::ratelimit::{RateLimitConfig, RateLimiter};
use llm_resilience::retry::{BudgetConfig, RetryBudget, RetryConfig, RetryPolicy};
use llmr_host::Plugin;

/// Keys the limiter cycles through (a busy bot's active chat sessions).
const KEYS: usize = 1024;

/// A limit no key reaches in the benchmark, so every check is an allowed one.
const LIMITER_CONFIG: &str = r#"{"limit": 1000000, "period_ms": 1000}"#;

/// A budget that never runs dry, so every decision is a retry.
const BUDGET_CONFIG: &str =
    r#"{"window_ms": 10000, "min_retries_per_sec": 1000000, "retry_percent": 1000}"#;

fn timeout_failure() -> Classification {
    Classification {
        kind: ErrorKind::Timeout,
        retryable: true,
        retry_after_ms: None,
        limit_tokens: None,
        requested_tokens: None,
        provider: None,
        code: None,
        error_type: None,
        message: String::new(),
    }
}

fn empty_calls(c: &mut Criterion, plugin: &Plugin) {
    let session = plugin.session().expect("a session");
    let mut group = c.benchmark_group("noop");
    group.bench_function("session", |b| {
        b.iter(|| session.noop().expect("noop"));
    });
    group.bench_function("pool", |b| b.iter(|| plugin.noop().expect("noop")));
    group.finish();
}

fn breaker(c: &mut Criterion, plugin: &Plugin) {
    let mut group = c.benchmark_group("breaker");
    let mut native = Breaker::new(BreakerConfig::default()).expect("default config");
    let mut now = 0u64;
    group.bench_function("native", |b| {
        b.iter(|| {
            now += 1;
            let permit = native.acquire(black_box(now)).expect("closed");
            native.record(permit, black_box(Outcome::Success), now)
        })
    });
    let host = plugin.breaker("{}").expect("default config");
    let mut now = 0u64;
    group.bench_function("component", |b| {
        b.iter(|| {
            now += 1;
            let permit = host
                .acquire(black_box(now))
                .expect("no trap")
                .expect("closed");
            host.record(permit, black_box(Outcome::Success), now)
                .expect("no trap")
        })
    });
    group.finish();
}

fn limiter(c: &mut Criterion, plugin: &Plugin) {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("chat-session-{i:05}")).collect();
    let mut group = c.benchmark_group("limiter");
    let config: RateLimitConfig = serde_json::from_str(LIMITER_CONFIG).expect("valid config");
    let mut native = RateLimiter::new(config).expect("valid config");
    let mut i = 0usize;
    group.bench_function("native", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            native.check(black_box(&keys[i % KEYS]), 1, (i / KEYS) as u64)
        })
    });
    let host = plugin.limiter(LIMITER_CONFIG).expect("valid config");
    let mut i = 0usize;
    group.bench_function("component", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            host.check(black_box(&keys[i % KEYS]), 1, (i / KEYS) as u64)
                .expect("no trap")
        })
    });
    group.finish();
}

fn retry(c: &mut Criterion, plugin: &Plugin) {
    let failure = timeout_failure();
    let mut group = c.benchmark_group("retry");
    let policy = RetryPolicy::new(RetryConfig::default()).expect("default config");
    let budget_config: BudgetConfig = serde_json::from_str(BUDGET_CONFIG).expect("valid config");
    let mut budget = RetryBudget::new(budget_config).expect("valid config");
    let mut seed = 0u64;
    group.bench_function("native", |b| {
        b.iter(|| {
            seed += 1;
            let mut call = policy.start_call(1_000, seed, &mut budget);
            policy.decide(&mut call, black_box(&failure), 1_010, None, &mut budget)
        })
    });
    let session = plugin.session().expect("a session");
    let host_policy = session.retry_policy("{}").expect("default config");
    let host_budget = session.retry_budget(BUDGET_CONFIG).expect("valid config");
    let mut seed = 0u64;
    group.bench_function("component", |b| {
        b.iter(|| {
            seed += 1;
            let call = host_policy
                .start_call(1_000, seed, &host_budget)
                .expect("no trap");
            host_policy
                .decide(&call, black_box(&failure), 1_010, None, &host_budget)
                .expect("no trap")
            // `call` is dropped here: the guest's destructor runs (a third crossing).
        })
    });
    group.finish();
}

/// Where criterion writes its results (set explicitly so the table can read them back).
fn output_directory() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("criterion"),
        _ => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/criterion"
        )),
    }
}

/// The median of a benchmark just measured, in ns, from criterion's `estimates.json`.
fn median_ns(dir: &Path, group: &str, id: &str) -> Option<f64> {
    let path = dir.join(group).join(id).join("new").join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn fmt_ns(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.1}"))
}

fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

/// Prints the table of medians and ratios (Markdown, for BENCHMARKS.md).
fn print_table(dir: &Path) {
    let noop = median_ns(dir, "noop", "session");
    let pool_noop = median_ns(dir, "noop", "pool");
    println!();
    println!(
        "| operation | crossings | native ns | component ns | component ÷ native | component ÷ (crossings × empty call) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| empty call `diagnostics.noop` (session) | 1 | — | {} | — | 1.00× |",
        fmt_ns(noop)
    );
    println!(
        "| empty call `diagnostics.noop` (pool: `Plugin::noop`) | 1 | — | {} | — | {} |",
        fmt_ns(pool_noop),
        fmt_ratio(pool_noop, noop)
    );
    for (group, what, crossings) in [
        ("breaker", "breaker acquire + record (success)", 2.0),
        ("limiter", "limiter check (1 unit, 1024 keys)", 1.0),
        ("retry", "retry start_call + decide (+ drop call)", 3.0),
    ] {
        let native = median_ns(dir, group, "native");
        let component = median_ns(dir, group, "component");
        println!(
            "| {what} | {crossings} | {} | {} | {} | {} |",
            fmt_ns(native),
            fmt_ns(component),
            fmt_ratio(component, native),
            fmt_ratio(component, noop.map(|n| n * crossings)),
        );
    }
}

fn main() {
    let plugin = Plugin::from_file(llmr_host::default_component_path()).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let dir = output_directory();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .configure_from_args();
    empty_calls(&mut c, &plugin);
    breaker(&mut c, &plugin);
    limiter(&mut c, &plugin);
    retry(&mut c, &plugin);
    c.final_summary();
    // Only a real measurement (`cargo bench`) has fresh numbers to show; `cargo test
    // --benches` runs each benchmark once.
    if std::env::args().any(|a| a == "--bench") {
        print_table(&dir);
    }
}
