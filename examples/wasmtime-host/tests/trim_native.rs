//! The component's token counts and trims equal the native core's, on a 200-message support
//! conversation (Indonesian and English, emoji, tool calls, five knowledge-base documents),
//! with the exact o200k_base tokenizer built inside the component and with the upper bound.
//!
//! Building the exact tokenizer inside the component is slow (it decodes the BPE tables in
//! fuel-metered wasm), so this test process builds exactly one, under
//! [`llmr_host::EXACT_COUNTER_LIMITS`], and prints how long that took.

mod common;

use common::conversation::conversation;

use std::time::Instant;

use llm_resilience::context::{ContextBudget, ContextConfig, TrimInput, trim};
use llm_resilience::tokens::{Encoding, TokenCounter, Tokenizer, UpperBound};
use llmr_host::HostCounter;

fn budgets() -> Vec<ContextBudget> {
    [
        (128_000, None, None),
        (8_000, None, None),
        (4_000, Some(40), Some(300)),
        (2_500, None, Some(120)),
        (1_200, Some(10), None),
    ]
    .into_iter()
    .map(|(window, max_history, max_doc)| {
        ContextBudget::new(ContextConfig {
            context_window: window,
            reserved_output_tokens: 256,
            safety_margin_tokens: 64,
            max_history_messages: max_history,
            max_document_chars: max_doc,
            min_document_chars: max_doc.map_or(200, |m: u32| m.min(100)),
            ..ContextConfig::default()
        })
        .expect("budget")
    })
    .collect()
}

fn same_trims(host: &HostCounter, native: &dyn TokenCounter) -> usize {
    let (system, documents, history, latest, tools) = conversation();
    let input = TrimInput {
        system: &system,
        documents: &documents,
        history: &history,
        latest: &latest,
        tools: &tools,
    };
    let mut compared = 0;
    for budget in budgets() {
        let got = host.trim(&budget, &input).expect("host call");
        let want = trim(&budget, &input, native);
        assert_eq!(got, want, "budget {:?}", budget.config());
        compared += 1;
    }
    // Counts of every message, and of the whole request.
    for m in history.iter().chain(std::iter::once(&latest)) {
        assert_eq!(
            host.count_text(&m.content).expect("host call"),
            native.count_text(&m.content)
        );
    }
    assert_eq!(
        host.count_messages(&history, &tools).expect("host call"),
        native.count_messages(&history, &tools)
    );
    compared
}

#[test]
fn component_trims_equal_native_with_the_exact_tokenizer() {
    let plugin = common::plugin_with(llmr_host::EXACT_COUNTER_LIMITS);
    let session = plugin.session().expect("session");
    let started = Instant::now();
    let counter = session
        .exact_counter(Encoding::O200kBase)
        .expect("exact counter in the component");
    let built = started.elapsed();
    let native = Tokenizer::new(Encoding::O200kBase).expect("native tokenizer");
    assert_eq!(
        counter.encoding().expect("host call"),
        Some(Encoding::O200kBase)
    );
    let started = Instant::now();
    let compared = same_trims(&counter, &native);
    println!(
        "[wasmtime] exact o200k_base counter built in the component in {built:.2?}; {compared} trims of 200 messages + 5 documents equal the native core's ({:.2?})",
        started.elapsed()
    );
}

#[test]
fn component_trims_equal_native_with_the_upper_bound() {
    let plugin = common::plugin();
    let session = plugin.session().expect("session");
    let counter = session.upper_bound_counter().expect("upper-bound counter");
    assert_eq!(counter.encoding().expect("host call"), None);
    let compared = same_trims(&counter, &UpperBound::default());
    println!(
        "[wasmtime] {compared} upper-bound trims of 200 messages + 5 documents equal the native core's"
    );
}

#[test]
fn encoding_for_model_matches_native() {
    let plugin = common::plugin();
    for model in [
        "openai/gpt-4o-mini",
        "gpt-4",
        "openai/gpt-3.5-turbo",
        "anthropic/claude-3.5-sonnet",
    ] {
        assert_eq!(
            plugin.encoding_for_model(model).expect("host call"),
            Encoding::for_model(model),
            "{model}"
        );
    }
}

#[test]
fn calibration_matches_native_and_snapshots_cross() {
    use llm_resilience::tokens::{Calibration, CalibrationConfig};
    let plugin = common::plugin();
    let session = plugin.session().expect("session");
    let host = session.calibration("{}").expect("calibration");
    let mut native = Calibration::new(CalibrationConfig::default()).expect("native");
    for (i, model) in [
        "anthropic/claude-3.5-sonnet",
        "google/gemini-2.0-flash",
        "openai/gpt-4o",
    ]
    .iter()
    .cycle()
    .take(30)
    .enumerate()
    {
        let ours = 1_000 + i as u64 * 37;
        let reported = ours * (110 + (i as u64 % 7)) / 100;
        assert_eq!(
            host.observe(model, ours, reported).expect("host call"),
            native.observe(model, ours, reported)
        );
        assert_eq!(
            host.adjust(model, 5_000).expect("host call"),
            native.adjust(model, 5_000)
        );
    }
    assert_eq!(host.len().expect("host call") as usize, native.len());
    let saved = host.snapshot().expect("snapshot");
    let back: Calibration = serde_json::from_str(&saved).expect("native reads the snapshot");
    assert_eq!(Calibration::restore(back).expect("restore"), native);
    let restored = session
        .restore_calibration(&serde_json::to_string(&native).expect("json"))
        .expect("component restores a native snapshot");
    assert_eq!(
        restored.ratio("openai/gpt-4o").expect("host call"),
        native.ratio("openai/gpt-4o")
    );
    assert!(matches!(
        session.calibration(r#"{"alpha_percent": 0}"#),
        Err(llmr_host::HostError::Config(_))
    ));
}
