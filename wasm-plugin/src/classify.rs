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

/// Core kind → WIT kind.
pub(crate) fn kind_to_wit(kind: core::ErrorKind) -> ErrorKind {
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

/// WIT kind → core kind.
pub(crate) fn kind_from_wit(kind: ErrorKind) -> core::ErrorKind {
    match kind {
        ErrorKind::Auth => core::ErrorKind::Auth,
        ErrorKind::QuotaExhausted => core::ErrorKind::QuotaExhausted,
        ErrorKind::Moderation => core::ErrorKind::Moderation,
        ErrorKind::RateLimited => core::ErrorKind::RateLimited,
        ErrorKind::Timeout => core::ErrorKind::Timeout,
        ErrorKind::ContextOverflow => core::ErrorKind::ContextOverflow,
        ErrorKind::InvalidRequest => core::ErrorKind::InvalidRequest,
        ErrorKind::NotFound => core::ErrorKind::NotFound,
        ErrorKind::Overloaded => core::ErrorKind::Overloaded,
        ErrorKind::Unavailable => core::ErrorKind::Unavailable,
        ErrorKind::ServerError => core::ErrorKind::ServerError,
        ErrorKind::Network => core::ErrorKind::Network,
        ErrorKind::Unknown => core::ErrorKind::Unknown,
    }
}

/// WIT classification → core classification.
pub(crate) fn classification_from_wit(c: Classification) -> core::Classification {
    core::Classification {
        kind: kind_from_wit(c.kind),
        retryable: c.retryable,
        retry_after_ms: c.retry_after_ms,
        limit_tokens: c.limit_tokens,
        requested_tokens: c.requested_tokens,
        provider: c.provider,
        code: c.code,
        error_type: c.error_type,
        message: c.message,
    }
}
