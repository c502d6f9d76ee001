//! The bodies the mock sends, as pure functions.
//!
//! Kept apart from the server so that a unit test can run the core's classifier over every
//! error response without a socket, and so that the shapes sit in one place. Each shape follows
//! a real one from `tests/vectors/classify.json` (the vector named in each function's doc):
//! OpenRouter's envelope `{"error":{"message","code","metadata":{"raw","provider_name",…}},
//! "user_id"}`, Anthropic's overloaded error inside `metadata.raw`, OpenRouter's documented
//! mid-stream error chunk.

use serde_json::{Value, json};

/// The `user_id` OpenRouter appends to error envelopes (a fixed, obviously fake id).
pub const USER_ID: &str = "user_mock0penr0uter";

/// A canned HTTP response: status, extra headers and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Canned {
    /// The HTTP status.
    pub status: u16,
    /// Headers besides `content-type: application/json` (which every canned body has).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Value,
}

impl Canned {
    fn new(status: u16, body: Value) -> Canned {
        Canned {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds `x-mock-fault: <fault>`.
    pub fn fault(mut self, fault: &str) -> Canned {
        self.headers
            .push(("x-mock-fault".to_string(), fault.to_string()));
        self
    }
}

/// 401 without credentials (vector `openrouter-401-user-not-found`'s shape; the text OpenRouter
/// sends when the header is missing).
pub fn unauthorized() -> Canned {
    Canned::new(
        401,
        json!({"error": {"message": "No auth credentials found", "code": 401}}),
    )
}

/// 400 for a malformed request.
pub fn bad_request(message: &str) -> Canned {
    Canned::new(
        400,
        json!({"error": {"message": message, "code": 400}, "user_id": USER_ID}),
    )
}

/// 400 for a model the scenario does not serve (OpenRouter's "is not a valid model ID").
pub fn unknown_model(model: &str) -> Canned {
    Canned::new(
        400,
        json!({"error": {"message": format!("{model} is not a valid model ID"), "code": 400}, "user_id": USER_ID}),
    )
}

/// 500 when the mock itself failed (it should not; a typed answer instead of a dropped request).
pub fn internal_error(message: &str) -> Canned {
    Canned::new(
        500,
        json!({"error": {"message": message, "code": 500}, "user_id": USER_ID}),
    )
}

/// 404 for a path the mock does not serve.
pub fn not_found(path: &str) -> Canned {
    Canned::new(
        404,
        json!({"error": {"message": format!("Not Found: {path}"), "code": 404}}),
    )
}

/// `outage`: the provider is down. 503 relays the provider's "Service Unavailable" (as in
/// `openrouter-503-raw-no-available-workers-relayed-text`), 502 a bad gateway.
pub fn outage(status: u16, provider: &str) -> Canned {
    let raw = if status == 502 {
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
            .to_string()
    } else {
        json!({"error": {"type": "Service Unavailable", "code": "no_available_workers",
            "message": "No available workers (all circuits open or unhealthy)"}})
        .to_string()
    };
    Canned::new(
        status,
        json!({"error": {"message": "Provider returned error", "code": status, "metadata": {
            "raw": raw, "provider_name": provider, "isDownstreamPipeClean": true,
            "isErrorUpstreamFault": true}}, "user_id": USER_ID}),
    )
    .fault("outage")
}

/// `rate-limit`: 429 with `Retry-After` and `X-RateLimit-*`, the headers repeated in
/// `error.metadata.headers` (vector `openrouter-429-retry-after-in-metadata-headers`).
/// `reset_epoch_ms` is the wall-clock time the window resets.
pub fn rate_limit(model: &str, provider: &str, retry_after_s: u64, reset_epoch_ms: u64) -> Canned {
    let limit = "20";
    let headers = vec![
        ("Retry-After".to_string(), retry_after_s.to_string()),
        ("X-RateLimit-Limit".to_string(), limit.to_string()),
        ("X-RateLimit-Remaining".to_string(), "0".to_string()),
        ("X-RateLimit-Reset".to_string(), reset_epoch_ms.to_string()),
    ];
    let meta_headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut c = Canned::new(
        429,
        json!({"error": {"message": "Provider returned error", "code": 429, "metadata": {
            "raw": format!("{model} is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations"),
            "provider_name": provider, "is_byok": false,
            "retry_after_seconds": retry_after_s, "headers": meta_headers}}, "user_id": USER_ID}),
    );
    c.headers = headers;
    c.fault("rate-limit")
}

/// `overloaded`: Anthropic's 529 `overloaded_error` (vector `anthropic-529-overloaded-error`)
/// inside OpenRouter's envelope.
pub fn overloaded(provider: &str) -> Canned {
    let raw =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            .to_string();
    Canned::new(
        529,
        json!({"error": {"message": "Provider returned error", "code": 529, "metadata": {
            "raw": raw, "provider_name": provider}}, "user_id": USER_ID}),
    )
    .fault("overloaded")
}

/// `gateway-timeout`: Cloudflare's 524 (vector `openai-524-cf-gateway-timeout-json`) or
/// OpenRouter's 408.
pub fn gateway_timeout(use_408: bool) -> Canned {
    let c = if use_408 {
        Canned::new(
            408,
            json!({"error": {"message": "Request timed out. Please try again.", "code": 408}, "user_id": USER_ID}),
        )
    } else {
        Canned::new(
            524,
            json!({"error": {"code": 524, "message": "Gateway timeout.", "param": null, "type": "cf_gateway_timeout"}}),
        )
    };
    c.fault("gateway-timeout")
}

/// `stream-error` on a request that is not streamed: a 502 relaying the provider's
/// disconnection.
pub fn stream_error_unstreamed(provider: &str) -> Canned {
    Canned::new(
        502,
        json!({"error": {"message": "Provider returned error", "code": 502, "metadata": {
            "raw": "Provider disconnected unexpectedly", "provider_name": provider}}, "user_id": USER_ID}),
    )
    .fault("stream-error")
}

/// Intrinsic context overflow: OpenRouter's 400 with the window and the request size.
pub fn context_overflow(window: u64, prompt_tokens: u64, max_tokens: u64) -> Canned {
    Canned::new(
        400,
        json!({"error": {"message": format!(
            "This endpoint's maximum context length is {window} tokens. However, you requested about {} tokens ({prompt_tokens} of text input, {max_tokens} in the output). Please reduce the length of either one, or use the \"middle-out\" transform to compress your prompt automatically.",
            prompt_tokens + max_tokens), "code": 400, "metadata": {"provider_name": null}}, "user_id": USER_ID}),
    )
    .fault("context-overflow")
}

/// Intrinsic 402 when the key can pay for fewer tokens than requested (vector
/// `openrouter-402-can-only-afford`); `affordable == 0` gives the form without a number.
pub fn insufficient_credits(max_tokens: u64, affordable: u64) -> Canned {
    let message = if affordable == 0 {
        "Insufficient credits. Add more using https://openrouter.ai/settings/credits".to_string()
    } else {
        format!(
            "This request requires more credits, or fewer max_tokens. You requested up to {max_tokens} tokens, but can only afford {affordable}. To increase, visit https://openrouter.ai/settings/credits and upgrade to a paid account"
        )
    };
    Canned::new(
        402,
        json!({"error": {"message": message, "code": 402, "metadata": {"provider_name": null}}, "user_id": USER_ID}),
    )
    .fault("credits")
}

/// 403 for a message the moderator flagged (OpenRouter's documented moderation error metadata:
/// `reasons`, `flagged_input`, `provider_name`, `model_slug`).
pub fn moderation(model: &str, provider: &str, flagged_input: &str) -> Canned {
    let excerpt: String = flagged_input.chars().take(100).collect();
    Canned::new(
        403,
        json!({"error": {"message": format!("{model} requires moderation on {provider}. Your input was flagged for \"harassment/threatening\""),
            "code": 403, "metadata": {"reasons": ["harassment/threatening"], "flagged_input": excerpt,
            "provider_name": provider, "model_slug": model}}, "user_id": USER_ID}),
    )
    .fault("moderation")
}

/// OpenRouter's documented mid-stream error chunk (vector
/// `openrouter-sse-midstream-error-finish-reason`), as one SSE event.
pub fn midstream_error_event(id: &str, model: &str, provider: &str, created: u64) -> String {
    let chunk = json!({"id": id, "object": "chat.completion.chunk", "created": created,
        "model": model, "provider": provider,
        "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]});
    format!("data: {chunk}\n\n")
}

/// A whole (non-streamed) chat completion.
#[allow(clippy::too_many_arguments)]
pub fn completion(
    id: &str,
    model: &str,
    provider: &str,
    created: u64,
    content: &str,
    finish_reason: &str,
    usage: &Value,
) -> Value {
    json!({"id": id, "provider": provider, "model": model, "object": "chat.completion",
        "created": created,
        "choices": [{"logprobs": null, "finish_reason": finish_reason,
            "native_finish_reason": finish_reason, "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "reasoning": null}}],
        "usage": usage})
}

/// One streamed content chunk, as one SSE event.
pub fn content_event(id: &str, model: &str, provider: &str, created: u64, content: &str) -> String {
    let chunk = json!({"id": id, "provider": provider, "model": model,
        "object": "chat.completion.chunk", "created": created,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
            "finish_reason": null, "native_finish_reason": null, "logprobs": null}]});
    format!("data: {chunk}\n\n")
}

/// The closing chunk (`finish_reason`), then the usage chunk (`choices: []`), then `[DONE]`.
pub fn finish_events(
    id: &str,
    model: &str,
    provider: &str,
    created: u64,
    finish_reason: &str,
    usage: &Value,
) -> String {
    let finish = json!({"id": id, "provider": provider, "model": model,
        "object": "chat.completion.chunk", "created": created,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
            "finish_reason": finish_reason, "native_finish_reason": finish_reason, "logprobs": null}]});
    let usage = json!({"id": id, "provider": provider, "model": model,
        "object": "chat.completion.chunk", "created": created, "choices": [], "usage": usage});
    format!("data: {finish}\n\ndata: {usage}\n\ndata: [DONE]\n\n")
}

/// The `usage` object of an answer.
pub fn usage(prompt_tokens: u64, completion_tokens: u64, cost: f64) -> Value {
    json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens, "cost": cost,
        "is_byok": false,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0}})
}

#[cfg(test)]
mod tests {
    //! The core's classifier over every canned error body: each must classify as the kind the
    //! scenario README promises (the live-server versions are in `tests/faults.rs`).

    use super::*;
    use llm_resilience::{Classification, ErrorKind, classify_response};

    fn classify(c: &Canned) -> Classification {
        let headers: Vec<(&str, &str)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        classify_response(
            Some(c.status),
            &headers,
            c.body.to_string().as_bytes(),
            None,
        )
    }

    #[test]
    fn every_fault_body_classifies_as_intended() {
        let cases: Vec<(Canned, ErrorKind, bool)> = vec![
            (outage(503, "OpenAI"), ErrorKind::Unavailable, true),
            (outage(502, "OpenAI"), ErrorKind::Unavailable, true),
            (
                rate_limit("openai/gpt-4o-mini", "OpenAI", 2, 0),
                ErrorKind::RateLimited,
                true,
            ),
            (overloaded("Anthropic"), ErrorKind::Overloaded, true),
            (gateway_timeout(true), ErrorKind::Timeout, true),
            (gateway_timeout(false), ErrorKind::Timeout, true),
            (
                stream_error_unstreamed("OpenAI"),
                ErrorKind::Unavailable,
                true,
            ),
            (
                context_overflow(16_000, 18_000, 512),
                ErrorKind::ContextOverflow,
                false,
            ),
            (
                insufficient_credits(512, 300),
                ErrorKind::QuotaExhausted,
                false,
            ),
            (
                insufficient_credits(512, 0),
                ErrorKind::QuotaExhausted,
                false,
            ),
            (
                moderation("openai/gpt-4o-mini", "OpenAI", "x"),
                ErrorKind::Moderation,
                false,
            ),
            (unauthorized(), ErrorKind::Auth, false),
        ];
        for (canned, kind, retryable) in cases {
            let c = classify(&canned);
            assert_eq!(c.kind, kind, "{}: {c:?}", canned.body);
            assert_eq!(c.retryable, retryable, "{}: {c:?}", canned.body);
        }
    }

    #[test]
    fn hints_and_numbers_are_readable() {
        let c = classify(&rate_limit("openai/gpt-4o-mini", "OpenAI", 2, 0));
        assert_eq!(c.retry_after_ms, Some(2000));
        assert_eq!(c.provider.as_deref(), Some("OpenAI"));
        let c = classify(&context_overflow(16_000, 18_000, 512));
        assert_eq!(c.limit_tokens, Some(16_000));
        assert_eq!(c.requested_tokens, Some(18_512));
        let body = insufficient_credits(512, 300).body;
        let text = body["error"]["message"].as_str().unwrap_or_default();
        let a = llm_resilience::credits::suggest_max_tokens(text);
        assert_eq!(a.map(|a| a.affordable_tokens), Some(300));
        let body = insufficient_credits(512, 0).body;
        let text = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(llm_resilience::credits::suggest_max_tokens(text), None);
    }

    #[test]
    fn midstream_error_chunk_classifies_as_its_error() {
        let text = format!(
            "{}{}",
            content_event("gen-1", "openai/gpt-4o-mini", "OpenAI", 1, "Halo kak "),
            midstream_error_event("gen-1", "openai/gpt-4o-mini", "OpenAI", 1)
        );
        let c = classify_response(
            Some(200),
            &[("content-type", "text/event-stream")],
            text.as_bytes(),
            None,
        );
        assert_eq!(c.kind, ErrorKind::ServerError, "{c:?}");
        assert_eq!(c.code.as_deref(), Some("server_error"));
        assert!(c.retryable);
    }
}
