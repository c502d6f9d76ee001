//! Configuration errors shared by every capability.
//!
//! Configs are validated once, at construction, into a [`ConfigError`] that lists every rejected
//! field at once (an operator fixing a config file should not have to iterate one error at a
//! time). The core never `assert!`s on caller input.

/// A configuration was rejected. `problems` names each rejected field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    /// One entry per rejected field, e.g. `"base_delay_ms must be > 0 (got 0)"`.
    pub problems: Vec<String>,
}

/// Collects problems while validating a config.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<String>);

impl Problems {
    /// Records `message` when `ok` is false.
    pub(crate) fn check(&mut self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.0.push(message());
        }
    }

    /// Adds problems found elsewhere, each prefixed with `prefix` (may be empty).
    pub(crate) fn extend(&mut self, prefix: &str, error: ConfigError) {
        self.0
            .extend(error.problems.into_iter().map(|m| format!("{prefix}{m}")));
    }

    /// `Ok(value)` when nothing was recorded, else the [`ConfigError`] listing everything.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError { problems: self.0 })
        }
    }
}
