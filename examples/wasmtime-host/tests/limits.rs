//! Hostile input and tight limits: the host survives every case with a typed result, and the
//! plugin keeps working afterwards. Also: the component imports nothing.

mod common;

use llm_resilience::ClassifyInput;
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
fn a_16_mib_body_is_classified_or_refused_with_a_typed_error() {
    let plugin = common::plugin();
    let body = huge_body();
    let input = ClassifyInput {
        status: Some(429),
        body: &body,
        ..ClassifyInput::default()
    };
    match plugin.classify(&input) {
        // The core reads only the first 256 KiB, so the result is the native one.
        Ok(got) => assert_eq!(got, llm_resilience::classify(&input)),
        Err(e @ (HostError::MemoryLimit { .. } | HostError::OutOfFuel { .. })) => {
            println!("16 MiB body refused with a typed error: {e}")
        }
        Err(e) => panic!("a 16 MiB body gave an untyped failure: {e:?}"),
    }
    assert_healthy(&plugin);
}

#[test]
fn a_small_memory_cap_gives_a_memory_limit_error_and_the_next_call_succeeds() {
    // Above the component's initial linear memory (6.5 MiB: the exact tokenizer's BPE tables
    // are data in it), below the 16 MiB body.
    let limit_bytes = 12 * 1024 * 1024;
    let plugin = Plugin::with_limits(
        &common::component_bytes(),
        Limits {
            memory_bytes: limit_bytes,
            ..Limits::default()
        },
    )
    .expect("the component loads with a 12 MiB cap");
    let body = huge_body();
    let input = ClassifyInput {
        body: &body,
        ..ClassifyInput::default()
    };
    match plugin.classify(&input) {
        Err(HostError::MemoryLimit {
            limit_bytes: limit,
            requested_bytes,
        }) => {
            assert_eq!(limit, limit_bytes);
            assert!(requested_bytes > limit_bytes, "{requested_bytes}");
        }
        other => panic!("expected a MemoryLimit error, got {other:?}"),
    }
    // Small inputs fit in 12 MiB: the same plugin keeps working.
    assert_healthy(&plugin);
    // And it fails the same typed way again, then recovers again.
    assert!(matches!(
        plugin.classify(&input),
        Err(HostError::MemoryLimit { .. })
    ));
    assert_healthy(&plugin);
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
fn warm_instances_are_reused_but_not_after_a_huge_body_or_a_trap() {
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
        0,
        "an instance that held 16 MiB is not kept"
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
