//! JSON config and snapshot parsing shared by the resource adapters.

use llm_resilience::ConfigError;
use llm_resilience::redact::redact;
use serde::de::DeserializeOwned;

/// Largest config or snapshot JSON accepted, in bytes (a snapshot of 100 000 limiter keys is
/// about 4 MiB).
const MAX_JSON_BYTES: usize = 64 * 1024 * 1024;

/// Parses `json` into `T`; errors become the list of problems WIT returns.
pub(crate) fn parse<T: DeserializeOwned>(what: &str, json: &str) -> Result<T, Vec<String>> {
    if json.len() > MAX_JSON_BYTES {
        return Err(vec![format!(
            "{what} is {} bytes, more than the {MAX_JSON_BYTES} allowed",
            json.len()
        )]);
    }
    // serde's message can quote the offending value (a key pasted into a config): redacted.
    serde_json::from_str(json).map_err(|e| vec![redact(&format!("{what}: {e}"))])
}

/// A core config error as the WIT list of problems.
pub(crate) fn problems(e: ConfigError) -> Vec<String> {
    e.problems
}

/// Serializes a snapshot; the core's types always serialize.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
