//! Hostile input and tight limits: the host survives every case with a typed result, and the
//! plugin keeps working afterwards. Also: the component imports nothing.

mod common;

use llm_resilience::ClassifyInput;
use llm_resilience::breaker::{Outcome, State};
use llm_resilience::chat::{Message, Role};
use llm_resilience::context::{ContextBudget, ContextConfig, ContextError, TrimInput, trim};
use llm_resilience::ratelimit::Verdict;
use llm_resilience::tokens::{
    Encoding, MAX_TOKENIZE_BYTES, TokenCounter, TokenError, Tokenizer, UpperBound,
};
use llmr_host::{HostError, Limits, Plugin};

fn small_call() -> ClassifyInput<'static> {
    ClassifyInput {
        status: Some(429),
        headers: &[("retry-after", "7")],
        body: common::OPENAI_429_BODY.as_bytes(),
        ..ClassifyInput::default()
    }
}

/// A 16 MiB body that looks like the start of a real error and then goes on: JSON-ish text, so
/// a classifier that scanned past its cap would do real work on it.
fn huge_body() -> Vec<u8> {
    let mut body = br#"{"error":{"message":"Rate limit reached ","type":"x","code":"#.to_vec();
    body.extend(std::iter::repeat_n(b'a', 16 * 1024 * 1024 - body.len()));
    body
}

/// The call that must work after any failure: same result as the native core.
fn assert_healthy(plugin: &Plugin) {
    let got = plugin
        .classify(&small_call())
        .expect("the plugin works after a failed call");
    assert_eq!(got, llm_resilience::classify(&small_call()));
}

#[test]
fn the_component_imports_nothing() {
    let bytes = common::component_bytes();
    let engine = wasmtime::Engine::default();
    let component =
        wasmtime::component::Component::new(&engine, &bytes).expect("the component compiles");
    let imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(imports, Vec::<String>::new());
    let exports: Vec<String> = component
        .component_type()
        .exports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    // Exports: the `plugin` world's interfaces, all from the llm:resilience package.
    assert!(
        exports.iter().any(|e| e == "llm:resilience/classify@0.1.0"),
        "{exports:?}"
    );
    assert!(
        exports
            .iter()
            .all(|e| e.starts_with("llm:resilience/") && e.ends_with("@0.1.0")),
        "{exports:?}"
    );
    // And the host's own view, through the loaded plugin.
    assert!(common::plugin().imports().is_empty());
}

#[test]
fn a_16_mib_body_is_classified_like_the_core() {
    let plugin = common::plugin();
    let body = huge_body();
    let input = ClassifyInput {
        status: Some(429),
        body: &body,
        ..ClassifyInput::default()
    };
    // The core reads only the first 256 KiB, and only those are copied in.
    assert_eq!(
        plugin.classify(&input).expect("classified"),
        llm_resilience::classify(&input)
    );
    assert_healthy(&plugin);
}

#[test]
fn only_what_the_classifier_reads_is_copied_into_the_component() {
    // An 8 MiB cap (the component starts at 6.5 MiB) cannot hold a 64 MiB body, 1 000 long
    // headers or a 32 MiB transport message: each is classified all the same, as natively,
    // because the host cuts them to what the classifier reads before copying.
    let plugin = common::plugin_with(Limits {
        memory_bytes: 8 * 1024 * 1024,
        ..Limits::default()
    });
    let mut body = huge_body();
    body.resize(64 * 1024 * 1024, b'a');
    let long = "x".repeat(64 * 1024);
    let mut headers: Vec<(&str, &str)> = vec![("x-long", long.as_str()); 1_000];
    headers.insert(0, ("retry-after", "7"));
    let transport = format!("connection reset by peer {}", "é".repeat(16 * 1024 * 1024));
    for input in [
        ClassifyInput {
            status: Some(429),
            headers: &headers,
            body: &body,
            ..ClassifyInput::default()
        },
        ClassifyInput {
            transport: Some(&transport),
            ..ClassifyInput::default()
        },
    ] {
        assert_eq!(
            plugin
                .classify(&input)
                .expect("classified under an 8 MiB cap"),
            llm_resilience::classify(&input)
        );
    }
}

#[test]
fn a_small_memory_cap_gives_a_memory_limit_error_and_the_next_call_succeeds() {
    // Above the component's initial linear memory (6.5 MiB: the exact tokenizer's BPE tables
    // are data in it), below what counting 4 MiB of text needs (the text is copied in).
    let limit_bytes = 8 * 1024 * 1024;
    let plugin = common::plugin_with(Limits {
        memory_bytes: limit_bytes,
        ..Limits::default()
    });
    let session = plugin.session().expect("session");
    let counter = session.upper_bound_counter().expect("counter");
    let text = "halo kak ".repeat(MAX_TOKENIZE_BYTES / 9);
    for _ in 0..2 {
        match counter.count_text(&text) {
            Err(HostError::MemoryLimit {
                limit_bytes: limit,
                requested_bytes,
            }) => {
                assert_eq!(limit, limit_bytes);
                assert!(requested_bytes > limit_bytes, "{requested_bytes}");
            }
            other => panic!("expected a MemoryLimit error, got {other:?}"),
        }
        // Small inputs fit in 8 MiB: the counter (rebuilt) and the plugin keep working.
        assert_eq!(
            counter.count_text("halo kak").expect("host call"),
            UpperBound::default().count_text("halo kak")
        );
        assert_healthy(&plugin);
    }
}

#[test]
fn a_tiny_fuel_budget_gives_out_of_fuel_and_normal_fuel_succeeds_next() {
    let mut plugin = common::plugin_with(Limits {
        fuel: 1,
        ..Limits::default()
    });
    match plugin.classify(&small_call()) {
        Err(HostError::OutOfFuel { fuel }) => assert_eq!(fuel, 1),
        other => panic!("expected OutOfFuel, got {other:?}"),
    }
    assert!(matches!(plugin.version(), Err(HostError::OutOfFuel { .. })));
    plugin
        .set_limits(Limits::default())
        .expect("default limits are valid");
    assert_healthy(&plugin);
    assert_eq!(plugin.version().unwrap(), llm_resilience::VERSION);
}

#[test]
fn warm_instances_are_reused_even_after_a_huge_body_but_not_after_a_trap() {
    let plugin = common::plugin();
    assert_eq!(plugin.idle_instances(), 0);
    assert_healthy(&plugin);
    assert_healthy(&plugin);
    assert_eq!(
        plugin.idle_instances(),
        1,
        "one warm instance serves calls in turn"
    );
    let body = huge_body();
    let input = ClassifyInput {
        body: &body,
        ..ClassifyInput::default()
    };
    let huge = plugin.classify(&input);
    assert!(huge.is_ok(), "{huge:?}");
    assert_eq!(
        plugin.idle_instances(),
        1,
        "a huge body is cut to 256 KiB before it is copied: the instance stays small and is kept"
    );
    assert_healthy(&plugin);
    assert_eq!(plugin.idle_instances(), 1);

    let mut plugin = plugin;
    plugin
        .set_limits(Limits {
            fuel: 1,
            ..Limits::default()
        })
        .unwrap();
    assert_eq!(plugin.idle_instances(), 0, "new limits, new instances");
    assert!(matches!(
        plugin.classify(&small_call()),
        Err(HostError::OutOfFuel { .. })
    ));
    assert_eq!(plugin.idle_instances(), 0, "a trapped instance is dropped");
}

#[test]
fn limits_are_validated() {
    let bytes = common::component_bytes();
    let err = Plugin::with_limits(
        &bytes,
        Limits {
            memory_bytes: 0,
            fuel: 0,
        },
    )
    .unwrap_err();
    assert!(matches!(err, HostError::InvalidLimits(_)), "{err:?}");
    let err = common::plugin()
        .with_other_limits(Limits {
            fuel: 0,
            ..Limits::default()
        })
        .unwrap_err();
    assert!(matches!(err, HostError::InvalidLimits(_)), "{err:?}");
}

#[test]
fn many_calls_from_several_threads_agree_with_the_core() {
    let plugin = common::plugin();
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..100 {
                    assert_healthy(&plugin);
                }
            });
        }
    });
    let per_call = started.elapsed() / 200;
    println!("[wasmtime] per call (classify a 429 body, 2 threads, debug build): {per_call:?}");
}

/// A support chat line (Indonesian and English, an emoji): 96 bytes.
const LINE: &str =
    "Halo kak, pesanan saya belum sampai padahal sudah 5 hari 🙏 The order #12345 shipped Monday. ";

/// The exact o200k_base counter, natively (to compare the component's results with).
fn native() -> Tokenizer {
    Tokenizer::new(Encoding::O200kBase).expect("tables")
}

fn budget(window: u64) -> ContextBudget {
    ContextBudget::new(ContextConfig {
        context_window: window,
        ..ContextConfig::default()
    })
    .expect("budget")
}

/// Trims `input` through an exact counter in the component under the default limits, and
/// natively: the same result, which must be a trim (not an error).
fn trims_like_the_core(input: &TrimInput<'_>, b: &ContextBudget) {
    let plugin = common::plugin();
    let session = plugin.session().expect("session");
    let counter = session
        .exact_counter(Encoding::O200kBase)
        .expect("exact counter under the default limits");
    let started = std::time::Instant::now();
    let got = counter
        .trim(b, input)
        .expect("no trap under the default limits");
    let took = started.elapsed();
    let want = trim(b, input, &native());
    assert_eq!(got, want);
    let t = got.expect("a valid input is trimmed");
    assert!(t.report.tokens_after <= b.limit_tokens());
    println!(
        "[wasmtime] trimmed {} documents + {} history messages ({} bytes of latest) in {took:.2?}: {:?}",
        input.documents.len(),
        input.history.len(),
        input.latest.content.len(),
        t.report.tally()
    );
}

#[test]
fn a_1_mib_latest_message_trims_under_the_default_limits() {
    let latest = Message::new(Role::User, LINE.repeat((1 << 20) / LINE.len()));
    let history: Vec<Message> = (0..20)
        .map(|i| {
            Message::new(
                if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                LINE,
            )
        })
        .collect();
    let input = TrimInput {
        system: "You are a helpful support agent.",
        documents: &[],
        history: &history,
        latest: &latest,
        tools: &[],
    };
    // gpt-4.1's window holds it: sent whole.
    trims_like_the_core(&input, &budget(1_047_576));
    // A 128k window does not: the typed error, not a trap.
    let plugin = common::plugin();
    let counter = plugin
        .session()
        .unwrap()
        .exact_counter(Encoding::O200kBase)
        .unwrap();
    let got = counter.trim(&budget(128_000), &input).expect("no trap");
    assert!(
        matches!(got, Err(ContextError::DoesNotFit { .. })),
        "{got:?}"
    );
}

#[test]
fn ten_thousand_documents_trim_under_the_default_limits() {
    let documents: Vec<String> = (0..10_000)
        .map(|i| format!("Artikel {i:05}: cara retur barang. {}", LINE.repeat(3)))
        .collect();
    let latest = Message::new(Role::User, "Kak, cara retur gimana?");
    trims_like_the_core(
        &TrimInput {
            system: "You are a helpful support agent.",
            documents: &documents,
            history: &[],
            latest: &latest,
            tools: &[],
        },
        &budget(128_000),
    );
}

#[test]
fn a_hundred_thousand_history_messages_trim_under_the_default_limits() {
    let history: Vec<Message> = (0..100_000)
        .map(|i| {
            if i % 2 == 0 {
                Message::new(Role::User, format!("{i} ok kak, makasih 🙏"))
            } else {
                Message::new(Role::Assistant, "Baik kak, kami cek ya.")
            }
        })
        .collect();
    let latest = Message::new(Role::User, "Kak?");
    trims_like_the_core(
        &TrimInput {
            system: "You are a helpful support agent.",
            documents: &[],
            history: &history,
            latest: &latest,
            tools: &[],
        },
        &budget(128_000),
    );
}

#[test]
fn counts_up_to_the_cap_fit_the_default_limits_and_a_4_mib_word_is_bounded() {
    let plugin = common::plugin();
    let session = plugin.session().expect("session");
    let counter = session.exact_counter(Encoding::O200kBase).expect("counter");
    let native = native();
    // 2 MiB of chat: counted exactly, as natively.
    let chat = LINE.repeat((2 << 20) / LINE.len());
    assert_eq!(
        counter.count_text(&chat).expect("no trap"),
        native.count_text(&chat)
    );
    // A 4 MiB single "word" (the most a count accepts): the upper bound, quickly.
    let word = "a".repeat(MAX_TOKENIZE_BYTES);
    let started = std::time::Instant::now();
    let got = counter.count_text(&word).expect("no trap");
    let took = started.elapsed();
    assert_eq!(got, Ok(UpperBound::bound(&word)));
    assert_eq!(got, native.count_text(&word));
    println!("[wasmtime] a 4 MiB single word counted (bounded) in {took:.2?}");
    // One byte more: the typed error, before any work.
    let over = "a".repeat(MAX_TOKENIZE_BYTES + 1);
    assert_eq!(
        counter.count_text(&over).expect("no trap"),
        Err(TokenError::TooLarge(MAX_TOKENIZE_BYTES + 1))
    );
    assert!(counter.is_built(), "no call lost the counter's instance");
}

#[test]
fn a_trap_in_a_count_or_trim_costs_only_the_counter_which_is_rebuilt() {
    // Enough fuel for breakers and limiters, far too little to count 4 MiB of text.
    let fuel = 20_000_000;
    let plugin = common::plugin_with(Limits {
        fuel,
        ..Limits::default()
    });
    let session = plugin.session().expect("session");
    let breaker = session
        .breaker(r#"{"consecutive_failures": 2, "failure_rate": null}"#)
        .expect("breaker");
    let limiter = session.limiter(r#"{"limit": 5}"#).expect("limiter");
    let counter = session.upper_bound_counter().expect("counter");
    // Some state in each: one failure recorded, two units of a key used.
    let permit = breaker.acquire(1_000).expect("host call").expect("closed");
    breaker
        .record(
            permit,
            Outcome::Failure {
                kind: llm_resilience::ErrorKind::Unavailable,
                retry_after_ms: None,
            },
            1_001,
        )
        .expect("record");
    assert!(matches!(
        limiter.check("chat-1", 2, 1_000).expect("host call"),
        Ok(Verdict::Allowed { .. })
    ));
    let counts = breaker.counts(1_002).expect("counts");
    let remaining = limiter.remaining("chat-1", 1_002).expect("remaining");
    assert_eq!(
        counter.count_text("halo kak").expect("host call"),
        UpperBound::default().count_text("halo kak")
    );

    // A huge count runs out of fuel: a typed error that names the budget.
    let text = "halo kak ".repeat(MAX_TOKENIZE_BYTES / 9);
    match counter.count_text(&text) {
        Err(HostError::OutOfFuel { fuel: f }) => assert_eq!(f, fuel),
        other => panic!("expected OutOfFuel, got {other:?}"),
    }
    assert!(!counter.is_built(), "the counter's instance was dropped");
    // The session's resources kept their state and work.
    assert_eq!(session.lost_reason(), None);
    assert_eq!(breaker.counts(1_002).expect("breaker works"), counts);
    assert_eq!(breaker.state(1_002).expect("state"), State::Closed);
    assert_eq!(
        limiter.remaining("chat-1", 1_002).expect("limiter works"),
        remaining
    );
    // The counter is rebuilt by its next call, transparently.
    assert_eq!(
        counter.count_text("halo kak").expect("rebuilt"),
        UpperBound::default().count_text("halo kak")
    );
    assert!(counter.is_built());

    // The same through a trim.
    let latest = Message::new(Role::User, text.clone());
    let input = TrimInput {
        system: "s",
        documents: &[],
        history: &[],
        latest: &latest,
        tools: &[],
    };
    assert!(matches!(
        counter.trim(&budget(u64::MAX / 2), &input),
        Err(HostError::OutOfFuel { .. })
    ));
    let permit = breaker
        .acquire(1_003)
        .expect("host call")
        .expect("still closed");
    breaker
        .record(
            permit,
            Outcome::Failure {
                kind: llm_resilience::ErrorKind::Unavailable,
                retry_after_ms: None,
            },
            1_004,
        )
        .expect("record");
    assert_eq!(
        breaker.state(1_004).expect("state"),
        State::Open,
        "the second failure trips it: the first was kept"
    );
    let small = Message::new(Role::User, "halo");
    let t = counter
        .trim(
            &budget(4_000),
            &TrimInput {
                latest: &small,
                ..input
            },
        )
        .expect("rebuilt")
        .expect("trimmed");
    assert_eq!(t.messages.last(), Some(&small));
}
