//! An OpenRouter-compatible server that fails on purpose (see `examples/scenarios/README.md`).
