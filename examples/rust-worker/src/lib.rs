//! The support bot's AI worker (see `examples/scenarios/README.md`).

pub mod engine;
pub mod events;
pub mod policy;
