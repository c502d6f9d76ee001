//! Property tests: `classify` never panics and keeps its promises on any input.
//!
//! - the message is at most 512 bytes, the short fields at most 128;
//! - `retryable` follows the kind (README: "Retryable by kind"), except for TLS failures and an
//!   `x-should-retry` header;
//! - a (fake) API key embedded anywhere in a body or transport text never reaches the message.

use llm_resilience::{ClassifyInput, ErrorKind, MAX_HEADERS, classify};
use proptest::prelude::*;

fn retryable_by_kind(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::RateLimited
            | ErrorKind::Timeout
            | ErrorKind::Overloaded
            | ErrorKind::Unavailable
            | ErrorKind::ServerError
            | ErrorKind::Network
    )
}

/// The verdict of the first `x-should-retry` header among those the classifier reads.
fn should_retry(headers: &[(String, String)]) -> Option<bool> {
    let value = headers
        .iter()
        .take(MAX_HEADERS)
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("x-should-retry"))?
        .1
        .trim();
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Header names the classifier reads, plus noise.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("retry-after".to_string()),
        Just("Retry-After-Ms".to_string()),
        Just("x-ratelimit-reset".to_string()),
        Just("x-ratelimit-reset-tokens".to_string()),
        Just("x-ratelimit-remaining-tokens".to_string()),
        Just("x-ratelimit-remaining".to_string()),
        Just("x-should-retry".to_string()),
        "\\PC{0,24}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("Wed, 21 Oct 2015 07:28:00 GMT".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("1m30.5s".to_string()),
        "[0-9]{1,20}(\\.[0-9]{1,6})?",
        "([0-9]{1,5}(h|m|s|ms|us|ns)){1,10}",
        "\\PC{0,40}",
    ]
}

/// Bodies that reach deep into the extractor: envelopes of every shape, with arbitrary text.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let text = "\\PC{0,200}";
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        text.prop_map(String::into_bytes),
        (text, any::<u16>(), text).prop_map(|(message, code, raw)| {
            serde_json::json!({"error": {"message": message, "code": code,
                "metadata": {"raw": raw, "provider_name": "P", "headers": {"X-RateLimit-Reset": raw}}}})
            .to_string()
            .into_bytes()
        }),
        (text, text).prop_map(|(message, delay)| {
            serde_json::json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": message,
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}})
            .to_string()
            .into_bytes()
        }),
        text.prop_map(|t| format!("<html><head><title>{t}</title></head></html>").into_bytes()),
        text.prop_map(|t| format!("data: {{\"error\":{{\"message\":{t:?}}}}}\n\ndata: {t}\n").into_bytes()),
        // A JSON error nested in a message, nested in a raw string, many levels deep.
        (text, 0usize..12).prop_map(|(t, depth)| {
            let mut body = serde_json::json!({"error": {"message": t}}).to_string();
            for level in 0..depth {
                body = if level % 2 == 0 {
                    serde_json::json!({"error": {"message": body}}).to_string()
                } else {
                    serde_json::json!({"error": {"message": "outer", "metadata": {"raw": body}}}).to_string()
                };
            }
            body.into_bytes()
        }),
    ]
}

/// Fake keys with the real shapes (never valid anywhere).
fn fake_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "sk-or-v1-[0-9a-f]{64}",
        "sk-proj-[A-Za-z0-9_-]{40,120}",
        "sk-ant-api03-[A-Za-z0-9_-]{90}AA",
        "sk-[A-Za-z0-9]{48}",
        "AIza[0-9A-Za-z_-]{35}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn classify_keeps_its_promises(
        status in proptest::option::of(any::<u16>()),
        headers in proptest::collection::vec((header_name(), header_value()), 0..(MAX_HEADERS + 8)),
        body in body(),
        transport in proptest::option::of("\\PC{0,300}"),
        wall_clock_ms in proptest::option::of(any::<u64>()),
    ) {
        let header_refs: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let got = classify(&ClassifyInput {
            status,
            headers: &header_refs,
            body: &body,
            transport: transport.as_deref(),
            wall_clock_ms,
        });
        prop_assert!(got.message.len() <= 512, "message of {} bytes", got.message.len());
        for field in [&got.code, &got.provider, &got.error_type].into_iter().flatten() {
            prop_assert!(field.len() <= 128);
        }
        match should_retry(&headers) {
            Some(verdict) => prop_assert_eq!(got.retryable, verdict),
            // Only a transport failure can be a (possibly TLS) network error.
            None if got.kind == ErrorKind::Network => prop_assert!(transport.is_some()),
            None => prop_assert_eq!(got.retryable, retryable_by_kind(got.kind)),
        }
        if got.kind != ErrorKind::ContextOverflow {
            prop_assert_eq!(got.limit_tokens, None);
            prop_assert_eq!(got.requested_tokens, None);
        }
    }

    #[test]
    fn keys_never_reach_the_message(
        key in fake_key(),
        before in "\\PC{0,300}",
        after in "\\PC{0,300}",
        shape in 0usize..6,
        status in proptest::option::of(400u16..600),
    ) {
        let text = format!("{before}{key}{after}");
        let (body, transport) = match shape {
            0 => (text.clone(), None),
            1 => (serde_json::json!({"error": {"message": text, "code": "invalid_api_key"}}).to_string(), None),
            2 => (serde_json::json!({"error": {"message": "Provider returned error", "code": 401,
                    "metadata": {"raw": serde_json::json!({"error": {"message": text}}).to_string()}}}).to_string(), None),
            3 => (format!("<html><title>{text}</title></html>"), None),
            4 => (format!("data: {}\n\n", serde_json::json!({"error": {"message": text}})), None),
            _ => (String::new(), Some(text.as_str())),
        };
        let got = classify(&ClassifyInput {
            status,
            headers: &[],
            body: body.as_bytes(),
            transport,
            wall_clock_ms: None,
        });
        prop_assert!(!got.message.contains(&key), "key leaked: {}", got.message);
        for field in [&got.code, &got.provider, &got.error_type].into_iter().flatten() {
            prop_assert!(!field.contains(&key));
        }
    }
}
