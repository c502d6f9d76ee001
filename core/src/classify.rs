//! Error classification: what kind of failure is this, and what does it tell us?
//!
//! (Module documentation to be written with the implementation: why classify by meaning and
//! not by status alone.)

use serde::{Deserialize, Serialize};

/// The body is read up to this many bytes; anything beyond is ignored (classified from its first
/// bytes), so hostile or runaway bodies cost bounded work.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// At most this many headers are read; later ones are ignored.
pub const MAX_HEADERS: usize = 128;
/// A header name or value longer than this is ignored.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// A transport error message is read up to this many bytes.
pub const MAX_TRANSPORT_BYTES: usize = 16 * 1024;

/// What kind of failure a call met. A closed set with one catch-all ([`ErrorKind::Unknown`]).
///
/// Serialized in kebab-case (`"rate-limited"`), the same names the WIT and the vectors use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Credentials invalid, revoked or missing.
    Auth,
    /// The account or key has no money or quota left (billing not set up, daily caps included).
    QuotaExhausted,
    /// The input or output was flagged by a content filter.
    Moderation,
    /// Temporary throttling; waiting helps.
    RateLimited,
    /// The call timed out (client, gateway or upstream).
    Timeout,
    /// The request is larger than what the endpoint accepts.
    ContextOverflow,
    /// Malformed or unsupported request.
    InvalidRequest,
    /// The model or endpoint does not exist, or has no endpoints.
    NotFound,
    /// The provider is saturated (529, "overloaded").
    Overloaded,
    /// The upstream is down or unreachable (bad gateway, no provider available).
    Unavailable,
    /// Any other upstream 5xx.
    ServerError,
    /// Connection refused or reset, DNS, TLS, a cut stream.
    Network,
    /// None of the above; the raw text is kept but callers must not parse it.
    Unknown,
}

impl ErrorKind {
    /// Every kind, in declaration order (the order of the numeric codes on the C ABI).
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::Auth,
        ErrorKind::QuotaExhausted,
        ErrorKind::Moderation,
        ErrorKind::RateLimited,
        ErrorKind::Timeout,
        ErrorKind::ContextOverflow,
        ErrorKind::InvalidRequest,
        ErrorKind::NotFound,
        ErrorKind::Overloaded,
        ErrorKind::Unavailable,
        ErrorKind::ServerError,
        ErrorKind::Network,
        ErrorKind::Unknown,
    ];

    /// The kebab-case name (`"quota-exhausted"`), as used in JSON, WIT and the vectors.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::QuotaExhausted => "quota-exhausted",
            ErrorKind::Moderation => "moderation",
            ErrorKind::RateLimited => "rate-limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ContextOverflow => "context-overflow",
            ErrorKind::InvalidRequest => "invalid-request",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::ServerError => "server-error",
            ErrorKind::Network => "network",
            ErrorKind::Unknown => "unknown",
        }
    }

    /// Parses a kebab-case name; `None` for anything else.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed call, as the caller saw it.
///
/// Either an HTTP response (status, headers, body — any of them may be missing or empty), or a
/// transport failure (`transport` is set: the error text as the HTTP client printed it; then the
/// other fields are usually empty).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassifyInput<'a> {
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Response headers as (name, value) pairs; names are matched case-insensitively.
    pub headers: &'a [(&'a str, &'a str)],
    /// The response body: JSON, SSE stream text, HTML or plain text. Need not be UTF-8.
    pub body: &'a [u8],
    /// A transport failure's message (Go net/http, reqwest/hyper, Node, Python, curl), if the
    /// call failed before a response.
    pub transport: Option<&'a str>,
    /// Wall-clock time (Unix epoch milliseconds), only used to turn an HTTP-date `Retry-After`
    /// or an epoch reset header into a delay. Without it those hints are ignored.
    pub wall_clock_ms: Option<u64>,
}

/// What a failure was, and what it says about retrying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// Whether retrying the same request (perhaps after a wait) can succeed.
    pub retryable: bool,
    /// How long the server asked us to wait, in milliseconds, from headers or the body text.
    pub retry_after_ms: Option<u64>,
    /// The context limit the error states (tokens), for `context-overflow`.
    pub limit_tokens: Option<u64>,
    /// The size of the request the error states (tokens), for `context-overflow`.
    pub requested_tokens: Option<u64>,
    /// The provider that produced the error (`"openai"`, or OpenRouter's `provider_name`).
    pub provider: Option<String>,
    /// The provider's own error code or type (`"rate_limit_exceeded"`, `"RESOURCE_EXHAUSTED"`).
    pub code: Option<String>,
    /// OpenRouter's `error.metadata.error_type`, when present.
    pub error_type: Option<String>,
    /// A human-readable message, secrets redacted, at most a few hundred bytes.
    pub message: String,
}

/// Classifies one failed call. Never panics; reads at most the documented caps of its input.
pub fn classify(input: &ClassifyInput<'_>) -> Classification {
    let _ = input;
    Classification {
        kind: ErrorKind::Unknown,
        retryable: false,
        retry_after_ms: None,
        limit_tokens: None,
        requested_tokens: None,
        provider: None,
        code: None,
        error_type: None,
        message: String::new(),
    }
}

/// Classifies an HTTP response: shorthand for [`classify`] without a transport error.
pub fn classify_response(
    status: Option<u16>,
    headers: &[(&str, &str)],
    body: &[u8],
    wall_clock_ms: Option<u64>,
) -> Classification {
    classify(&ClassifyInput {
        status,
        headers,
        body,
        transport: None,
        wall_clock_ms,
    })
}

/// Classifies a transport failure from its message: shorthand for [`classify`].
pub fn classify_transport(message: &str) -> Classification {
    classify(&ClassifyInput {
        transport: Some(message),
        ..ClassifyInput::default()
    })
}
