//! The llm-resilience component: the WIT world `plugin` implemented by the core.
//!
//! This crate only converts types between the WIT bindings and `llm_resilience`; every decision
//! is made in the core. Build it with `cargo run -p xtask -- component`, which compiles it for
//! `wasm32-unknown-unknown` and wraps it into a component that imports nothing.

pub mod breaker;
mod classify;
mod config;
pub mod context;
pub mod credits;
mod diagnostics;
pub mod ratelimit;
pub mod retry;
pub mod tokens;

/// Bindings generated from `wit/llm-resilience.wit` (documented there).
#[allow(missing_docs, unreachable_pub)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
    });
}

/// The component's exports.
pub struct Plugin;

bindings::export!(Plugin with_types_in bindings);
