//! Adapter for the `classify` interface.

use crate::Plugin;
use crate::bindings::exports::llm::resilience::classify::{
    Classification, ClassifyInput, ErrorKind, Guest,
};
use llm_resilience::classify as core;

impl Guest for Plugin {
    fn classify(input: ClassifyInput) -> Classification {
        let headers: Vec<(&str, &str)> = input
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect();
        let result = core::classify(&core::ClassifyInput {
            status: input.status,
            headers: &headers,
            body: &input.body,
            transport: input.transport.as_deref(),
            wall_clock_ms: input.wall_clock_ms,
        });
        Classification {
            kind: kind_to_wit(result.kind),
            retryable: result.retryable,
            retry_after_ms: result.retry_after_ms,
            limit_tokens: result.limit_tokens,
            requested_tokens: result.requested_tokens,
            provider: result.provider,
            code: result.code,
            error_type: result.error_type,
            message: result.message,
        }
    }

    fn version() -> String {
        llm_resilience::VERSION.to_string()
    }
}

fn kind_to_wit(kind: core::ErrorKind) -> ErrorKind {
    match kind {
        core::ErrorKind::Auth => ErrorKind::Auth,
        core::ErrorKind::QuotaExhausted => ErrorKind::QuotaExhausted,
        core::ErrorKind::Moderation => ErrorKind::Moderation,
        core::ErrorKind::RateLimited => ErrorKind::RateLimited,
        core::ErrorKind::Timeout => ErrorKind::Timeout,
        core::ErrorKind::ContextOverflow => ErrorKind::ContextOverflow,
        core::ErrorKind::InvalidRequest => ErrorKind::InvalidRequest,
        core::ErrorKind::NotFound => ErrorKind::NotFound,
        core::ErrorKind::Overloaded => ErrorKind::Overloaded,
        core::ErrorKind::Unavailable => ErrorKind::Unavailable,
        core::ErrorKind::ServerError => ErrorKind::ServerError,
        core::ErrorKind::Network => ErrorKind::Network,
        core::ErrorKind::Unknown => ErrorKind::Unknown,
    }
}
