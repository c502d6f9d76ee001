//! Token counting and context trimming through the component, side by side with the native
//! core, in one run:
//!
//! ```sh
//! cargo run -p xtask -- component && cargo bench -p llmr-host --bench context
//! ```
//!
//! Trims a 200-message conversation with 5 documents (`tests/common/conversation.rs`) into an
//! 8 000-token window, and counts one chat message, with the exact o200k_base tokenizer and
//! with the upper bound. Also times building the exact tokenizer inside the component and
//! natively. After criterion's report it prints the table in
//! `examples/wasmtime-host/BENCHMARKS.md`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use llm_resilience::context::{ContextBudget, ContextConfig, TrimInput, trim};
use llm_resilience::tokens::{Encoding, TokenCounter, Tokenizer, UpperBound};
use llmr_host::{EXACT_COUNTER_LIMITS, HostCounter, Plugin};

#[path = "../tests/common/conversation.rs"]
mod conversation;

const TEXT: &str = "Halo kak, pesanan saya belum sampai 😭 sudah 5 hari, kapan ya sampainya? Can I change the delivery address? 🇮🇩👍🏽";

fn budget() -> ContextBudget {
    ContextBudget::new(ContextConfig {
        context_window: 8_000,
        reserved_output_tokens: 256,
        safety_margin_tokens: 64,
        ..ContextConfig::default()
    })
    .expect("budget")
}

fn bench_counter(c: &mut Criterion, name: &str, host: &HostCounter, native: &dyn TokenCounter) {
    let (system, documents, history, latest, tools) = conversation::conversation();
    let input = TrimInput {
        system: &system,
        documents: &documents,
        history: &history,
        latest: &latest,
        tools: &tools,
    };
    let budget = budget();
    let mut group = c.benchmark_group(format!("trim-{name}"));
    group.bench_function("native", |b| {
        b.iter(|| trim(&budget, black_box(&input), native).expect("fits"))
    });
    group.bench_function("component", |b| {
        b.iter(|| {
            host.trim(&budget, black_box(&input))
                .expect("host call")
                .expect("fits")
        })
    });
    group.finish();
    let mut group = c.benchmark_group(format!("count-{name}"));
    group.bench_function("native", |b| {
        b.iter(|| native.count_text(black_box(TEXT)).expect("small"))
    });
    group.bench_function("component", |b| {
        b.iter(|| {
            host.count_text(black_box(TEXT))
                .expect("host call")
                .expect("small")
        })
    });
    group.finish();
}

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

fn fmt_us(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{:.1}", v / 1000.0))
}

fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

/// Prints the table of medians and ratios (Markdown, for BENCHMARKS.md).
fn print_table(dir: &Path, build: (Duration, Duration)) {
    println!();
    println!("| operation | native µs | component µs | component ÷ native |");
    println!("|---|---:|---:|---:|");
    println!(
        "| build the exact o200k_base tokenizer (once) | {:.0} | {:.0} | {:.1}× |",
        build.0.as_secs_f64() * 1e6,
        build.1.as_secs_f64() * 1e6,
        build.1.as_secs_f64() / build.0.as_secs_f64()
    );
    for (group, what) in [
        (
            "trim-exact",
            "trim 200 messages + 5 documents into 8 000 tokens, exact o200k_base",
        ),
        (
            "trim-upper-bound",
            "trim 200 messages + 5 documents into 8 000 tokens, upper bound",
        ),
        (
            "count-exact",
            "count one chat message (110 bytes), exact o200k_base",
        ),
        (
            "count-upper-bound",
            "count one chat message (110 bytes), upper bound",
        ),
    ] {
        let native = median_ns(dir, group, "native");
        let component = median_ns(dir, group, "component");
        println!(
            "| {what} | {} | {} | {} |",
            fmt_us(native),
            fmt_us(component),
            fmt_ratio(component, native),
        );
    }
}

fn main() {
    let plugin = Plugin::from_file(llmr_host::default_component_path())
        .and_then(|p| p.with_other_limits(EXACT_COUNTER_LIMITS))
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
    let session = plugin.session().expect("a session");
    let started = Instant::now();
    let native_exact = Tokenizer::new(Encoding::O200kBase).expect("native tokenizer");
    let native_build = started.elapsed();
    let started = Instant::now();
    let exact = session
        .exact_counter(Encoding::O200kBase)
        .expect("exact counter in the component");
    let component_build = started.elapsed();
    let upper = session.upper_bound_counter().expect("upper bound");

    let dir = output_directory();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .configure_from_args();
    bench_counter(&mut c, "exact", &exact, &native_exact);
    bench_counter(&mut c, "upper-bound", &upper, &UpperBound::default());
    c.final_summary();
    // Only a real measurement (`cargo bench`) has fresh numbers to show; `cargo test
    // --benches` runs each benchmark once.
    if std::env::args().any(|a| a == "--bench") {
        print_table(&dir, (native_build, component_build));
    }
}
