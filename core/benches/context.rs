//! Context trimming with the exact o200k_base counter: a 200-message WhatsApp conversation
//! with 5 knowledge-base documents trimmed into an 8 000-token window, and counting the
//! conversation's text. The Go package runs the same input through cgo
//! (`ffi/go/context_bench_test.go`, same generator); `ffi/go/BENCHMARKS.md` compares the two:
//! `cargo bench -p llm-resilience --features tiktoken --bench context`.
//!
//! Compare ratios, not absolute numbers (the machine is shared).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llm_resilience::chat::{Message, Role};
use llm_resilience::context::{ContextBudget, ContextConfig, TrimInput, trim};
use llm_resilience::tokens::{Encoding, TokenCounter, Tokenizer};
use std::hint::black_box;
use std::time::Duration;

/// The system prompt.
pub const SYSTEM: &str =
    "You are the support assistant of Kopi Kita, an online coffee shop. Be brief and friendly.";
/// The customer's latest message.
pub const LATEST: &str = "Kak, paket saya kapan sampai? 🙏";

/// History message `i` (0-based; even: the customer, odd: the assistant).
fn history_message(i: usize) -> Message {
    let (role, sentence) = if i.is_multiple_of(2) {
        (
            Role::User,
            "Halo kak, paket saya belum sampai 😭 bisa dicek? ",
        )
    } else {
        (
            Role::Assistant,
            "Baik kak, kami cek dulu ya 🙏 mohon ditunggu sebentar. ",
        )
    };
    let content = format!(
        "Pesan {i}, order INV/2026/{i}: {}",
        sentence.repeat(i % 4 + 1)
    );
    Message::new(role, content)
}

/// Document `d` (0-based, best first).
fn document(d: usize) -> String {
    format!(
        "Document {d}. {}",
        "Returns and refunds: you can return most items within 30 days of delivery for a full refund, provided they are unused. "
            .repeat(20)
    )
}

fn trimming(c: &mut Criterion) {
    let counter = Tokenizer::new(Encoding::O200kBase).unwrap();
    let history: Vec<Message> = (0..200).map(history_message).collect();
    let documents: Vec<String> = (0..5).map(document).collect();
    let latest = Message::new(Role::User, LATEST);
    let budget = ContextBudget::new(ContextConfig {
        context_window: 8_000,
        reserved_output_tokens: 1_024,
        safety_margin_tokens: 256,
        ..ContextConfig::default()
    })
    .unwrap();
    let input = TrimInput {
        system: SYSTEM,
        documents: &documents,
        history: &history,
        latest: &latest,
        tools: &[],
    };
    let t = trim(&budget, &input, &counter).unwrap();
    println!(
        "context/o200k_base: tokens {:?} -> {} of {} ({} messages sent)",
        t.report.tokens_before,
        t.report.tokens_after,
        t.report.limit_tokens,
        t.messages.len()
    );
    let text: String = history.iter().map(|m| m.content.as_str()).collect();
    let mut group = c.benchmark_group("context/o200k_base");
    group.bench_function("trim-200-messages-5-documents", |b| {
        b.iter(|| trim(&budget, black_box(&input), &counter).unwrap())
    });
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("count_text-conversation", |b| {
        b.iter(|| counter.count_text(black_box(&text)).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = trimming
}
criterion_main!(benches);
