//! The worker's settings (`examples/scenarios/policy.json`).
//!
//! Why the core's configs are kept as raw JSON here: the `retry`, `budget`, `breaker`,
//! `ratelimit` and `credits` objects are handed unchanged to whichever engine runs the policy
//! (the native core parses them with serde, the component parses the very same text), so the
//! worker never re-interprets a policy value and both surfaces see identical configs.

use std::path::Path;

use llm_resilience::context::{ContextBudget, ContextConfig};
use serde::Deserialize;

/// The longest `credit_hold_ms` accepted: one day. A longer hold is not a hold but a lost
/// customer, and a typo (seconds written as ms × 1000) should fail loudly.
pub const MAX_CREDIT_HOLD_MS: u64 = 86_400_000;

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The JSON is malformed or a field has the wrong type.
    #[error("invalid policy: {0}")]
    Parse(#[from] serde_json::Error),
    /// A value is out of range.
    #[error("invalid policy: {0}")]
    Invalid(String),
}

/// The naive baseline the report compares with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NaivePolicy {
    /// Retries on every error.
    pub retries: u32,
    /// Fixed wait before each retry, ms.
    pub backoff_ms: u64,
    /// History messages kept (the newest).
    pub history_messages: usize,
    /// History messages kept after a context overflow.
    pub history_messages_after_overflow: usize,
}

/// The whole policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Models in preference order: the first whose breaker admits the call is used.
    pub models: Vec<String>,
    /// The `max_tokens` of every request (until a 402 lowers it).
    pub max_tokens: u64,
    /// Per-request timeout, ms.
    pub request_timeout_ms: u64,
    /// Jobs handled at once.
    pub concurrency: usize,
    /// How long in-flight jobs may run after a shutdown signal, ms.
    pub shutdown_grace_ms: u64,
    /// How often the key's credit is polled, ms.
    pub credit_poll_ms: u64,
    /// How long a job may hold while the account is out of credit, waiting for a top-up, ms
    /// (`0`: no holding — a job that meets an unaffordable 402 gives up at once). At most
    /// [`MAX_CREDIT_HOLD_MS`]. Absent in older policy files: `0`.
    #[serde(default)]
    pub credit_hold_ms: u64,
    /// The core's `RetryConfig`.
    pub retry: serde_json::Value,
    /// The core's `BudgetConfig` (the service-wide retry budget).
    pub budget: serde_json::Value,
    /// The core's `BreakerConfig` (one breaker per model).
    pub breaker: serde_json::Value,
    /// Most models the breaker set tracks.
    pub breaker_max_keys: u32,
    /// The core's `RateLimitConfig` (one limit per chat session).
    pub ratelimit: serde_json::Value,
    /// The core's `ContextConfig` without `context_window` (that comes from the models list).
    pub context: serde_json::Value,
    /// The core's `CreditConfig`.
    pub credits: serde_json::Value,
    /// The naive baseline.
    pub naive: NaivePolicy,
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Policy::from_json(&text)
    }

    /// Parses and checks a policy.
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = serde_json::from_str(text)?;
        if policy.models.is_empty() {
            return Err(PolicyError::Invalid("models is empty".into()));
        }
        if policy.concurrency == 0 {
            return Err(PolicyError::Invalid("concurrency must be > 0".into()));
        }
        if policy.credit_poll_ms == 0 {
            return Err(PolicyError::Invalid("credit_poll_ms must be > 0".into()));
        }
        if policy.credit_hold_ms > MAX_CREDIT_HOLD_MS {
            return Err(PolicyError::Invalid(format!(
                "credit_hold_ms must be at most {MAX_CREDIT_HOLD_MS} (one day), not {}",
                policy.credit_hold_ms
            )));
        }
        // The context config must be valid for some window; checked once here.
        policy.context_budget(128_000)?;
        Ok(policy)
    }

    /// The context budget for a model whose window is `context_window` tokens.
    pub fn context_budget(&self, context_window: u64) -> Result<ContextBudget, PolicyError> {
        let mut object = match &self.context {
            serde_json::Value::Object(map) => map.clone(),
            _ => return Err(PolicyError::Invalid("context must be an object".into())),
        };
        object.insert("context_window".into(), context_window.into());
        let config: ContextConfig = serde_json::from_value(serde_json::Value::Object(object))?;
        ContextBudget::new(config).map_err(|e| PolicyError::Invalid(format!("context: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Policy {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/policy.json");
        Policy::from_file(&path).expect("the shipped policy parses")
    }

    #[test]
    fn the_shipped_policy_parses_and_gives_budgets() {
        let p = shipped();
        assert_eq!(p.models.len(), 2);
        let b = p.context_budget(16_000).unwrap();
        assert_eq!(b.config().context_window, 16_000);
        assert!(b.limit_tokens() < 16_000);
        assert_eq!(p.credit_hold_ms, 3_000);
    }

    fn shipped_json() -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/policy.json"),
            )
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn credit_hold_ms_is_bounded_and_optional() {
        let mut v = shipped_json();
        v["credit_hold_ms"] = serde_json::json!(-1);
        assert!(matches!(
            Policy::from_json(&v.to_string()),
            Err(PolicyError::Parse(_))
        ));
        v["credit_hold_ms"] = serde_json::json!(MAX_CREDIT_HOLD_MS + 1);
        assert!(matches!(
            Policy::from_json(&v.to_string()),
            Err(PolicyError::Invalid(m)) if m.contains("credit_hold_ms")
        ));
        v["credit_hold_ms"] = serde_json::json!(MAX_CREDIT_HOLD_MS);
        assert_eq!(
            Policy::from_json(&v.to_string()).unwrap().credit_hold_ms,
            MAX_CREDIT_HOLD_MS
        );
        v["credit_hold_ms"] = serde_json::json!("3000");
        assert!(Policy::from_json(&v.to_string()).is_err());
        // Absent: no holding (a policy file from before the field).
        v.as_object_mut().unwrap().remove("credit_hold_ms");
        assert_eq!(Policy::from_json(&v.to_string()).unwrap().credit_hold_ms, 0);
    }

    #[test]
    fn bad_policies_are_typed_errors() {
        assert!(matches!(
            Policy::from_json("{}"),
            Err(PolicyError::Parse(_))
        ));
        let mut v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/policy.json"),
            )
            .unwrap(),
        )
        .unwrap();
        v["models"] = serde_json::json!([]);
        assert!(matches!(
            Policy::from_json(&v.to_string()),
            Err(PolicyError::Invalid(_))
        ));
    }
}
