//! The support bot's AI worker (see `examples/scenarios/README.md`).

pub mod events;
pub mod report;
pub mod timeline;
