//! Secret redaction (to be implemented).

/// Replaces API keys, bearer tokens and authorization values in `text` with `[REDACTED]`.
pub fn redact(text: &str) -> String {
    text.to_string()
}
