//! Shared by the integration tests: the component, which must exist (these tests never skip).

#![allow(dead_code, unreachable_pub)]

pub mod conversation;

use std::path::PathBuf;
use std::sync::OnceLock;

use llmr_host::{Limits, Plugin};

/// The component under test: `$LLMR_COMPONENT` or the workspace's `target/llm-resilience.wasm`.
/// Panics with the build command when it is missing.
pub fn component_path() -> PathBuf {
    let path = llmr_host::default_component_path();
    assert!(
        path.is_file(),
        "the llm-resilience component is missing at {}: build it with `{}` before running these tests",
        path.display(),
        llmr_host::BUILD_COMMAND
    );
    path
}

/// The component's bytes (see [`component_path`]).
pub fn component_bytes() -> Vec<u8> {
    let path = component_path();
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The component, compiled once per test binary (compiling it takes seconds in a debug build).
fn compiled() -> &'static Plugin {
    static COMPILED: OnceLock<Plugin> = OnceLock::new();
    COMPILED.get_or_init(|| {
        Plugin::from_bytes(&component_bytes())
            .unwrap_or_else(|e| panic!("loading the component: {e}"))
    })
}

/// A plugin with default limits and its own instance pool (sharing the compiled component).
pub fn plugin() -> Plugin {
    plugin_with(Limits::default())
}

/// A plugin with `limits` and its own instance pool (sharing the compiled component).
pub fn plugin_with(limits: Limits) -> Plugin {
    compiled()
        .with_other_limits(limits)
        .unwrap_or_else(|e| panic!("limits {limits:?}: {e}"))
}

/// A real OpenAI 429 body (tokens-per-minute limit), as quoted in
/// <https://github.com/Pythagora-io/gpt-pilot/pull/53>.
pub const OPENAI_429_BODY: &str = r#"{
    "error": {
        "message": "Rate limit reached for 10KTPM-200RPM in organization org-OASFC7k1Ff5IzueeLArhQtnT on tokens per min. Limit: 10000 / min. Please try again in 6ms. Contact us through our help center at help.openai.com if you continue to have issues.",
        "type": "tokens",
        "param": null,
        "code": "rate_limit_exceeded"
    }
}"#;
