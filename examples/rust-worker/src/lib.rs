//! The support bot's AI worker (see `examples/scenarios/README.md`): a queue of customer
//! messages across chat sessions, every call decided by llm-resilience — through the
//! WebAssembly component by default, natively with `--native` — against an OpenRouter-compatible
//! mock that fails on purpose (or the real OpenRouter with `--live`).

pub mod app;
pub mod client;
pub mod credit_gate;
pub mod engine;
pub mod events;
pub mod journal;
pub mod log;
pub mod policy;
pub mod report;
pub mod run;
pub mod sse;
pub mod state;
pub mod timeline;
