//! Error classification: what kind of failure is this, and what does it tell us?
//!
//! Every resilience decision downstream — retry or give up, how long to wait, shrink the prompt,
//! trip a breaker, fall back to another model, stop and ask a human to top up credit — starts
//! from one question: *what went wrong?* [`classify`] answers it with an [`ErrorKind`] from a
//! closed taxonomy plus the few facts a policy needs (a retry delay, the context numbers, the
//! provider's own code) and a short, redacted message for the logs.
//!
//! # Why by meaning, not by status
//!
//! The HTTP status is the least reliable part of an LLM API error. A `429` can mean "wait a
//! second" (rate limit) or "your account is out of money for the month" (quota); a `400` can
//! mean "this prompt no longer fits the model" (shrink it and go on) or "this parameter does not
//! exist" (a bug: never retry); a `200` can carry an error in its body or in the last SSE chunk
//! of a stream; OpenRouter wraps the upstream provider's real error as a JSON *string* inside
//! `error.metadata.raw`; Google nests a whole JSON error inside a message string. Retrying a
//! quota error burns money and time, and shrinking a prompt because of a rate limit throws
//! context away. So the body decides whenever it says something recognisable — the innermost
//! error first, with the provider's code, type and message all read as signals — and the status
//! is only the fallback (see `rules.rs` for the ordered table).
//!
//! # Why the caps
//!
//! The input comes from the network: a misbehaving proxy can send a gigabyte of HTML, ten
//! thousand headers or a JSON document nested a thousand levels deep. The classifier runs on
//! every failed call, often inside a hot retry loop and on small hosts (a wasm component, a Go
//! worker through cgo), so its work must be bounded by constants, not by what the peer sends:
//! only the first [`MAX_BODY_BYTES`] of the body are read (errors state themselves at the start),
//! at most [`MAX_HEADERS`] headers, no header longer than [`MAX_HEADER_BYTES`], at most
//! [`MAX_TRANSPORT_BYTES`] of a transport message, and nested errors are followed at most four
//! levels deep. A cut backs off to the start of the word it falls in (at most 1 KiB), so a key
//! at a cap is not left as a head too short to be recognised and redacted. Nothing here
//! panics: all slicing is done at checked character boundaries and all arithmetic saturates.
//!
//! # Why `unknown` is not retryable
//!
//! An error we do not recognise might be a permanent one (a malformed request, a revoked key); a
//! retry loop around it repeats the same failure, costs money on every attempt and hides the
//! bug. Being conservative means surfacing it: callers that want to retry unknown errors can
//! say so in their retry policy, knowingly. For the same reason a TLS or certificate failure is
//! a `network` error that is *not* retryable: a bad certificate does not fix itself in 200 ms.
//! A server that says `x-should-retry: true|false` knows better than our defaults and wins.
//!
//! # Example
//!
//! ```
//! use llm_resilience::{classify_response, ErrorKind};
//!
//! let body = br#"{"error":{"message":"Rate limit reached for gpt-4o. Please try again in 6ms.",
//!                "type":"tokens","code":"rate_limit_exceeded"}}"#;
//! let c = classify_response(Some(429), &[], body, None);
//! assert_eq!(c.kind, ErrorKind::RateLimited);
//! assert!(c.retryable);
//! assert_eq!(c.retry_after_ms, Some(6));
//! assert_eq!(c.code.as_deref(), Some("rate_limit_exceeded"));
//! ```

use serde::{Deserialize, Serialize};

mod body;
mod hints;
mod rules;
mod text;

/// The body is read up to this many bytes; anything beyond is ignored (classified from its first
/// bytes), so hostile or runaway bodies cost bounded work.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// At most this many headers are read; later ones are ignored.
pub const MAX_HEADERS: usize = 128;
/// A header name or value longer than this is ignored.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// A transport error message is read up to this many bytes.
pub const MAX_TRANSPORT_BYTES: usize = 16 * 1024;

/// The longest `message` a classification carries, in bytes (cut at a character boundary).
const MAX_MESSAGE_BYTES: usize = 512;
/// The longest `code`, `provider` or `error_type` a classification carries, in bytes.
const MAX_FIELD_BYTES: usize = 128;

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

impl<'a> ClassifyInput<'a> {
    /// The part of the body [`classify`] reads: at most the first [`MAX_BODY_BYTES`], cut
    /// before the word the cap falls in (at most 1 KiB back).
    ///
    /// A surface that copies the input somewhere before classifying it (into a WebAssembly
    /// component, over a pipe) copies only this: the rest cannot change the result.
    pub fn read_body(&self) -> &'a [u8] {
        // Cut between words, so a key at the cap is not left as a head too short to recognise.
        self.body
            .get(..text::cut_point(self.body, MAX_BODY_BYTES))
            .unwrap_or(self.body)
    }

    /// The headers [`classify`] reads, in order: of the first [`MAX_HEADERS`], those whose name
    /// and value are at most [`MAX_HEADER_BYTES`] long (the others are ignored). Classifying
    /// with only these gives the same result.
    pub fn read_headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.headers
            .iter()
            .take(MAX_HEADERS)
            .filter(|(n, v)| n.len() <= MAX_HEADER_BYTES && v.len() <= MAX_HEADER_BYTES)
            .map(|&(n, v)| (n, v))
    }

    /// The part of the transport message [`classify`] reads: at most [`MAX_TRANSPORT_BYTES`],
    /// cut before the word the cap falls in (at most 1 KiB back, at a character boundary).
    pub fn read_transport(&self) -> Option<&'a str> {
        self.transport
            .map(|text| text::prefix_whole(text, MAX_TRANSPORT_BYTES))
    }
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
///
/// A transport failure (`input.transport` set) is classified from its text; otherwise the body
/// decides the kind when it says something recognisable and the status is the fallback. Retry
/// hints come from the headers first, then from the body (see the module documentation).
pub fn classify(input: &ClassifyInput<'_>) -> Classification {
    let headers = hints::Headers::collect(input.headers);
    let header_delay = headers.retry_after_ms(input.wall_clock_ms);
    let should_retry = headers.should_retry();

    if let Some(text) = input.read_transport() {
        let (kind, tls) = rules::kind_from_transport(text);
        let retryable = should_retry.unwrap_or(default_retryable(kind) && !tls);
        return Classification {
            kind,
            retryable,
            retry_after_ms: header_delay,
            limit_tokens: None,
            requested_tokens: None,
            provider: None,
            code: None,
            error_type: None,
            message: finish_message(text.trim()),
        };
    }

    let body_bytes = input.read_body();
    let body_text = String::from_utf8_lossy(body_bytes);
    let found = body::extract(&body_text);

    // The status the response had, or the one the body states when the response said nothing
    // useful (a 200 that carries an error, a bare HTML page, an error without a status).
    let status = match input.status {
        Some(s) if s >= 400 => Some(s),
        other => found.status.or(other),
    };

    let signals = found.signals.to_lowercase();
    let kind = found
        .moderation
        .then_some(ErrorKind::Moderation)
        .or_else(|| rules::kind_from_signals(&signals))
        .or_else(|| {
            status
                .map(rules::kind_from_status)
                .filter(|k| *k != ErrorKind::Unknown)
        })
        .or_else(|| rules::weak_kind_from_signals(&signals))
        .unwrap_or(ErrorKind::Unknown);

    let retry_after_ms = header_delay
        .or_else(|| {
            hints::Headers::collect_owned(&found.meta_headers).retry_after_ms(input.wall_clock_ms)
        })
        .or_else(|| hints::delay_from_text(&signals))
        .or(found.retry_delay_ms);

    let (limit_tokens, requested_tokens) = if kind == ErrorKind::ContextOverflow {
        rules::context_numbers(&signals)
    } else {
        (None, None)
    };

    let message = match found.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => finish_message(m),
        _ if !found.plain.trim().is_empty() => finish_message(found.plain.trim()),
        _ => status.map(|s| format!("HTTP {s}")).unwrap_or_default(),
    };

    Classification {
        kind,
        retryable: should_retry.unwrap_or(default_retryable(kind)),
        retry_after_ms,
        limit_tokens,
        requested_tokens,
        provider: found.provider.as_deref().map(finish_field),
        code: found.code.as_deref().map(finish_field),
        error_type: found.error_type.as_deref().map(finish_field),
        message,
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

/// Whether a kind is worth retrying as is. `context-overflow` needs shrinking first, and
/// `unknown` is not retried, to be conservative (see the module documentation).
const fn default_retryable(kind: ErrorKind) -> bool {
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

/// Redacts secrets first (so a cut never leaves half a key behind), then cuts to the cap.
fn finish_message(raw: &str) -> String {
    let redacted = crate::redact::redact(raw);
    text::prefix(redacted.trim(), MAX_MESSAGE_BYTES).to_string()
}

/// The same treatment for the short fields (`code`, `provider`, `error_type`).
fn finish_field(raw: &str) -> String {
    let redacted = crate::redact::redact(raw.trim());
    text::prefix(&redacted, MAX_FIELD_BYTES).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One end-to-end case: the input, then the kind, `retryable`, `retry_after_ms` and a
    /// substring of the message.
    struct Case {
        name: &'static str,
        status: Option<u16>,
        headers: &'static [(&'static str, &'static str)],
        body: &'static str,
        transport: Option<&'static str>,
        kind: ErrorKind,
        retryable: bool,
        retry_after_ms: Option<u64>,
        message: &'static str,
    }

    const BASE: Case = Case {
        name: "",
        status: None,
        headers: &[],
        body: "",
        transport: None,
        kind: ErrorKind::Unknown,
        retryable: false,
        retry_after_ms: None,
        message: "",
    };

    const CASES: &[Case] = &[
        Case {
            name: "sse-error-chunk-after-content",
            status: Some(200),
            body: ": OPENROUTER PROCESSING\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"error\":{\"code\":502,\"message\":\"Provider disconnected\"},\"choices\":[{\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\ndata: [DONE]\n",
            kind: ErrorKind::Unavailable,
            retryable: true,
            message: "Provider disconnected",
            ..BASE
        },
        Case {
            name: "sse-anthropic-event-error",
            status: Some(200),
            body: "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            kind: ErrorKind::Overloaded,
            retryable: true,
            message: "Overloaded",
            ..BASE
        },
        Case {
            name: "sse-without-error-is-no-error",
            status: Some(200),
            body: "data: {\"choices\":[{\"delta\":{\"content\":\"rate limit exceeded\"}}]}\n\ndata: [DONE]\n",
            kind: ErrorKind::Unknown,
            retryable: false,
            ..BASE
        },
        Case {
            name: "200-body-with-error",
            status: Some(200),
            body: r#"{"error":{"message":"Rate limit exceeded: free-models-per-min.","code":429}}"#,
            kind: ErrorKind::RateLimited,
            retryable: true,
            message: "free-models-per-min",
            ..BASE
        },
        Case {
            name: "cloudflare-524-without-status",
            body: "<!DOCTYPE html><html><head><title>openrouter.ai | 524: A timeout occurred</title></head><body>…</body></html>",
            kind: ErrorKind::Timeout,
            retryable: true,
            message: "524: A timeout occurred",
            ..BASE
        },
        Case {
            name: "nginx-502",
            status: Some(502),
            body: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center><h1>502 Bad Gateway</h1></center></body></html>",
            kind: ErrorKind::Unavailable,
            retryable: true,
            message: "502 Bad Gateway",
            ..BASE
        },
        Case {
            name: "google-retry-info",
            status: Some(429),
            body: r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"5s"}]}}"#,
            kind: ErrorKind::RateLimited,
            retryable: true,
            retry_after_ms: Some(5_000),
            message: "Resource has been exhausted",
            ..BASE
        },
        Case {
            name: "openrouter-metadata-headers-reset",
            status: Some(429),
            body: r#"{"error":{"code":429,"message":"Rate limit exceeded","metadata":{"headers":{"X-RateLimit-Limit":"20","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"15"}}}}"#,
            kind: ErrorKind::RateLimited,
            retryable: true,
            retry_after_ms: Some(15_000),
            message: "Rate limit exceeded",
            ..BASE
        },
        Case {
            name: "x-should-retry-false-overrides",
            status: Some(503),
            headers: &[("x-should-retry", "false")],
            kind: ErrorKind::Unavailable,
            retryable: false,
            message: "HTTP 503",
            ..BASE
        },
        Case {
            name: "x-should-retry-true-overrides",
            status: Some(409),
            headers: &[("X-Should-Retry", "true")],
            kind: ErrorKind::InvalidRequest,
            retryable: true,
            ..BASE
        },
        Case {
            name: "transport-tls-not-retryable",
            transport: Some(
                "Get \"https://api.openai.com/v1/models\": tls: failed to verify certificate: x509: certificate has expired",
            ),
            kind: ErrorKind::Network,
            retryable: false,
            message: "x509",
            ..BASE
        },
        Case {
            name: "transport-reset-retryable",
            transport: Some("ECONNRESET: read ECONNRESET"),
            kind: ErrorKind::Network,
            retryable: true,
            message: "ECONNRESET",
            ..BASE
        },
        Case {
            name: "transport-secret-in-url",
            transport: Some(
                "request to https://generativelanguage.googleapis.com/v1beta/models/gemini:generateContent?key=AIzaSyFAKE0123456789abcdefghijklmnopq failed, reason: getaddrinfo ENOTFOUND",
            ),
            kind: ErrorKind::Network,
            retryable: true,
            message: "?key=[REDACTED] failed",
            ..BASE
        },
        Case {
            name: "plain-text-envoy",
            status: Some(503),
            body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            kind: ErrorKind::Unavailable,
            retryable: true,
            message: "upstream connect error",
            ..BASE
        },
        Case {
            name: "gemini-safety-block-on-200",
            status: Some(200),
            body: r#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]}}"#,
            kind: ErrorKind::Moderation,
            retryable: false,
            message: "prompt blocked: SAFETY",
            ..BASE
        },
        Case {
            name: "empty-unknown",
            kind: ErrorKind::Unknown,
            retryable: false,
            ..BASE
        },
    ];

    #[test]
    fn end_to_end_cases() {
        for case in CASES {
            let got = classify(&ClassifyInput {
                status: case.status,
                headers: case.headers,
                body: case.body.as_bytes(),
                transport: case.transport,
                wall_clock_ms: None,
            });
            assert_eq!(got.kind, case.kind, "{}: {got:?}", case.name);
            assert_eq!(got.retryable, case.retryable, "{}: {got:?}", case.name);
            assert_eq!(
                got.retry_after_ms, case.retry_after_ms,
                "{}: {got:?}",
                case.name
            );
            assert!(got.message.contains(case.message), "{}: {got:?}", case.name);
        }
    }

    #[test]
    fn body_beyond_the_cap_is_not_read() {
        let mut body = vec![b' '; MAX_BODY_BYTES];
        body.extend_from_slice(b"rate limit exceeded");
        let got = classify_response(Some(500), &[], &body, None);
        assert_eq!(got.kind, ErrorKind::ServerError);
        assert_eq!(got.message, "HTTP 500");
    }

    #[test]
    fn classifying_only_what_is_read_gives_the_same_result() {
        // Everything beyond the caps: a long body whose tail would change the kind, more
        // headers than are read, an over-long header before a real hint, a long transport text.
        let mut body = br#"{"error":{"message":"upstream error","code":500}}"#.to_vec();
        body.resize(MAX_BODY_BYTES, b' ');
        body.extend_from_slice(b"rate limit exceeded, try again in 5s");
        let long = "9".repeat(MAX_HEADER_BYTES + 1);
        let mut headers: Vec<(&str, &str)> = vec![("retry-after", long.as_str()), ("x-a", "1")];
        headers.extend(std::iter::repeat_n(("x-filler", "1"), MAX_HEADERS));
        headers.push(("retry-after", "3"));
        let transport = format!("{} connection refused", "é".repeat(MAX_TRANSPORT_BYTES));
        for input in [
            ClassifyInput {
                status: Some(500),
                headers: &headers,
                body: &body,
                ..ClassifyInput::default()
            },
            ClassifyInput {
                headers: &headers,
                transport: Some(&transport),
                ..ClassifyInput::default()
            },
        ] {
            let read: Vec<(&str, &str)> = input.read_headers().collect();
            assert_eq!(read.len(), MAX_HEADERS - 1, "the long header is dropped");
            assert!(input.read_body().len() <= MAX_BODY_BYTES);
            if let Some(t) = input.read_transport() {
                assert!(t.len() <= MAX_TRANSPORT_BYTES && transport.starts_with(t));
            }
            let cut = ClassifyInput {
                headers: &read,
                body: input.read_body(),
                transport: input.read_transport(),
                ..input
            };
            assert_eq!(classify(&cut), classify(&input));
        }
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily() {
        let body = b"\xff\xfe overloaded \xc3";
        let got = classify_response(None, &[], body, None);
        assert_eq!(got.kind, ErrorKind::Overloaded);
        assert!(got.message.contains("overloaded"));
    }

    #[test]
    fn message_is_capped_at_a_char_boundary_after_redaction() {
        let key = "sk-or-v1-FAKE-not-a-real-key-0123456789abcdef-0123456789abcdef";
        let body = format!("{}{key} {}", "é".repeat(250), "🙂".repeat(300));
        let got = classify_response(Some(500), &[], body.as_bytes(), None);
        assert!(got.message.len() <= MAX_MESSAGE_BYTES);
        assert!(got.message.contains("[REDACTED]"));
        assert!(!got.message.contains("sk-or-v1"));
    }

    #[test]
    fn a_key_at_an_input_cap_is_not_cut_into_an_unrecognisable_head() {
        // The cap falls 29 key characters into the key: too few to be an `AIza` key on their
        // own, so a cut there would leave them in the message.
        let key = "AIzaSyFAKE0123456789abcdefghijklmnopq";
        // `head`, spaces, then `tail` and the key, so that the cap falls 29 key characters in.
        let at_cap = |head: &str, tail: &str, cap: usize| {
            let room = cap - head.len() - tail.len() - 29;
            format!("{head}{}{tail}{key}", " ".repeat(room))
        };
        // An HTML page read up to 16 KiB, whose title ends at the cap.
        let html = at_cap("<html><head>", "<title>401: bad key ", 16 * 1024) + "</title>";
        // A stream read up to the body cap, whose error event ends at the cap.
        let sse = at_cap(
            ": keep-alive\n\n",
            "event: error\ndata: bad key ",
            MAX_BODY_BYTES,
        );
        // A transport message at its cap.
        let transport = at_cap("request failed:", " bad key ", MAX_TRANSPORT_BYTES);
        let outputs = [
            classify_response(Some(401), &[], html.as_bytes(), None).message,
            classify_response(Some(200), &[], sse.as_bytes(), None).message,
            classify_transport(&transport).message,
        ];
        for out in outputs {
            assert!(!out.contains("AIza"), "{out}");
        }
        assert_eq!(
            text::prefix_whole(&html, 16 * 1024).len(),
            16 * 1024 - 29,
            "the cut backs off to the key's start"
        );
    }

    #[test]
    fn a_key_wrapped_in_an_html_title_is_redacted_whole() {
        let body = "<html><title>401: invalid key sk-or-v1-0123456789abcdef\n  0123456789abcdef0123456789abcdef0123456789abcdef</title></html>";
        let body = body.replace("\\n", "\n");
        let got = classify_response(Some(401), &[], body.as_bytes(), None);
        assert_eq!(got.message, "401: invalid key [REDACTED]");
    }

    #[test]
    fn transport_text_is_capped() {
        let long = format!("connection refused {}", "x".repeat(MAX_TRANSPORT_BYTES * 2));
        let got = classify_transport(&long);
        assert_eq!(got.kind, ErrorKind::Network);
        assert!(got.message.len() <= MAX_MESSAGE_BYTES);
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(ErrorKind::from_name("nope"), None);
    }
}
