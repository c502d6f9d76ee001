//! # llmr-host
//!
//! A [wasmtime] host for the llm-resilience WebAssembly component (`target/llm-resilience.wasm`,
//! world `plugin` in `wit/llm-resilience.wit`), and the library behind the `llmr` command-line
//! tool.
//!
//! The component is untrusted code as far as this host is concerned, and its input (an HTTP body
//! from a provider, a log line) may be hostile. So [`Plugin`]:
//!
//! - links it against an **empty** linker: the component must import nothing (no WASI, no host
//!   functions), which is checked when it is loaded ([`HostError::HasImports`]). It provably
//!   cannot touch files, network, clock or environment;
//! - runs every call under [`Limits`]: a cap on linear memory and a fuel budget, so no input can
//!   exhaust the host's memory or hang it;
//! - turns every trap (fuel exhausted, memory cap reached, anything else) into a typed
//!   [`HostError`]. A trap never crashes the host, and the next call works as if nothing happened.
//!
//! Stateful capabilities live in the component as WIT resources, created in a [`Session`] (a
//! pinned instance): [`HostBreaker`], [`HostBreakerSet`], [`HostLimiter`], [`HostRetryPolicy`]
//! with its [`HostRetryBudget`] and [`HostCall`]s, [`HostCounter`] (token counts and context
//! trimming), [`HostCalibration`] and [`HostCreditMonitor`]. Their methods mirror the native ones and
//! return the core's types (`llm_resilience::breaker::Permit`, `ratelimit::Verdict`,
//! `retry::Decision`, …); configs and snapshots cross as JSON, the core's serde forms, so a
//! snapshot taken in the component restores into the native core and back. See [`Session`] for
//! how sessions relate to the instance pool and what a trap costs.
//!
//! [`Plugin::classify`] takes and returns the core's own types
//! ([`llm_resilience::ClassifyInput`], [`llm_resilience::Classification`]), so a caller can swap
//! the native core and the component freely, and their JSON output is byte-identical.
//!
//! ```no_run
//! use llm_resilience::ClassifyInput;
//! use llmr_host::Plugin;
//!
//! let plugin = Plugin::from_file(llmr_host::default_component_path())?;
//! let c = plugin.classify(&ClassifyInput {
//!     status: Some(429),
//!     headers: &[("retry-after", "7")],
//!     body: br#"{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}"#,
//!     ..ClassifyInput::default()
//! })?;
//! println!("{}", serde_json::to_string(&c).unwrap());
//! # Ok::<(), llmr_host::HostError>(())
//! ```

mod breaker;
mod context;
mod credits;
mod input;
mod plugin;
mod ratelimit;
mod retry;
mod session;
mod tokens;

pub use breaker::{HostBreaker, HostBreakerSet};
pub use credits::HostCreditMonitor;
pub use input::{CallInput, InputError};
pub use plugin::{DEFAULT_FUEL, DEFAULT_MEMORY_BYTES, HostError, Limits, Plugin};
pub use ratelimit::HostLimiter;
pub use retry::{HostCall, HostRetryBudget, HostRetryPolicy};
pub use session::Session;
pub use tokens::{EXACT_COUNTER_LIMITS, HostCalibration, HostCounter};

use std::path::PathBuf;

/// The version of this host crate, as `major.minor.patch`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The environment variable that names the component file, when set and not empty.
pub const COMPONENT_ENV: &str = "LLMR_COMPONENT";

/// The command that builds the component, named in every "component not found" message.
pub const BUILD_COMMAND: &str = "cargo run -p xtask -- component";

/// Where the workspace's build puts the component: `target/llm-resilience.wasm` at the
/// workspace root (a path fixed when this crate is compiled).
pub fn workspace_component_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/llm-resilience.wasm"
    ))
}

/// The component to load when none is named: `$LLMR_COMPONENT` if set and not empty, else
/// [`workspace_component_path`].
pub fn default_component_path() -> PathBuf {
    match std::env::var_os(COMPONENT_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => workspace_component_path(),
    }
}
