//! # llm-resilience
//!
//! The policy core of llm-resilience: it decides what to do about every failure an LLM API call
//! meets. It is pure — no IO, no clock reads, no global mutable state, no `unsafe` — so the same
//! input gives the same decision in Rust, through the C ABI (Go) and through the WebAssembly
//! component (wasmtime, Python, JavaScript).
//!
//! Capabilities, one module each:
//! - [`mod@classify`]: turn a failed call (status, headers, body, or a transport error) into an
//!   [`ErrorKind`] from a closed taxonomy, with retry hints, context numbers and the provider's
//!   own error code;
//! - [`retry`]: decide whether, when and how to retry a failed call, under a service-wide
//!   retry budget;
//! - [`breaker`]: circuit breakers per model or provider, with half-open probing;
//! - [`ratelimit`]: GCRA rate limits per chat session, weighted, in bounded memory;
//! - [`credits`]: OpenRouter credit parsing and monitoring with alerts that fire once per
//!   crossing, and a `max_tokens` suggestion from a 402 "can only afford";
//! - [`context`]: fit a conversation (system prompt, ranked documents, history with tool calls,
//!   the latest message) into a token budget without breaking it;
//! - [`tokens`]: token counts — exact for o200k_base and cl100k_base (cargo feature `tiktoken`),
//!   a proven upper bound without the tables, chat overhead, and per-model calibration from the
//!   provider's reported usage;
//! - [`redact`]: keep API keys and bearer tokens out of every message the library produces.
//!
//! Stateful handles keep their own time through a [`clock::Clock`]: a clock that jumps (far
//! ahead, or back after a reboot) can never freeze one, and snapshots carry their clock and a
//! format version ([`clock::SNAPSHOT_VERSION`]).
#![forbid(unsafe_code)]

pub mod breaker;
pub mod chat;
pub mod classify;
pub mod clock;
pub mod config;
pub mod context;
pub mod credits;
pub mod ratelimit;
pub mod redact;
pub mod retry;
pub mod tokens;

pub use classify::{
    Classification, ClassifyInput, ErrorKind, MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_HEADERS,
    MAX_TRANSPORT_BYTES, classify, classify_response, classify_transport,
};
pub use config::ConfigError;

/// The version of this crate, as `major.minor.patch`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
