//! The decision tables: signal text → kind, status → kind, transport text → kind, and the
//! context numbers a message states.
//!
//! The signal text is every message, code, type and status the body carries (outer and nested
//! errors alike), lower-cased and joined. The steps below are tried in order and the first that
//! matches decides. The order encodes the precedence the README states: credentials and content
//! filters first (nothing else helps while they fail), then money, then size, then "does not
//! exist", then the transient kinds. For example OpenAI's "Request too large … Limit 10000,
//! Requested 20000" carries code `rate_limit_exceeded`, but waiting will not make that request
//! fit, so the context step comes before the rate-limit step.

use super::ErrorKind;
use super::text;

/// One pattern: a substring, or two substrings that must both occur.
enum Pat {
    Has(&'static str),
    Both(&'static str, &'static str),
}

use Pat::{Both, Has};

impl Pat {
    fn matches(&self, text: &str) -> bool {
        match self {
            Has(a) => text.contains(a),
            Both(a, b) => text.contains(a) && text.contains(b),
        }
    }
}

/// One step of the decision: a table of patterns for a kind, or a rule that needs code.
enum Step {
    Table(ErrorKind, &'static [Pat]),
    /// A free-tier quota of `limit: 0`: the model has no free quota at all.
    ZeroLimit,
}

const AUTH: &[Pat] = &[
    Has("invalid_api_key"),
    Has("invalid api key"),
    Has("incorrect api key"),
    Has("invalid x-api-key"),
    Has("api_key_invalid"),
    Has("api key not valid"),
    Has("api key expired"),
    Has("api_key_expired"),
    Both("api key", "invalid"),
    Both("api key", "revoked"),
    Has("authentication_error"),
    Has("authentication fails"),
    Has("authentication failed"),
    Has("invalid authentication"),
    Has("invalid_authentication"),
    Has("unauthenticated"),
    Has("unauthorized"),
    Has("no auth credentials"),
    Has("missing authentication"),
    Has("missing api key"),
    Has("provide an api key"),
    Has("user not found"),
    Has("permission_denied"),
    Has("permission_error"),
    Has("invalid bearer"),
    Has("account_deactivated"),
    Has("has been deactivated"),
    Has("incorrect%20api%20key"),
    Has("invalid%20api%20key"),
];

const MODERATION: &[Pat] = &[
    Has("content_policy_violation"),
    Has("content_filter"),
    Has("content management policy"),
    Has("responsibleaipolicyviolation"),
    Has("flagged"),
    Has("requires moderation"),
    Has("moderation_blocked"),
    Has("blockreason"),
    Has("prohibited_content"),
    Has("safety system"),
    Has("terms of service"),
    Has("prohibited"),
    Has("inappropriate content"),
    Has("datainspectionfailed"),
];

/// Money and hard caps: signals that waiting a few seconds cannot fix.
const QUOTA: &[Pat] = &[
    Has("insufficient_quota"),
    Has("credit balance is too low"),
    Has("insufficient credits"),
    Has("insufficient_credits"),
    Has("insufficient balance"),
    Has("insufficient_balance"),
    Has("can only afford"),
    Has("requires more credits"),
    Has("key limit exceeded"),
    Has("billing_not_active"),
    Has("billing_error"),
    Has("billing_disabled"),
    Has("requires billing"),
    Has("billing to be enabled"),
    Has("account is not active"),
    Has("payment required"),
    Has("payment_required"),
    Has("usage limit"),
    Has("spending limit"),
    Has("perday"),
    Has("per_day"),
    Has("per-day"),
    Has("per day"),
    Has("daily limit"),
    Has("daily quota"),
    Has("limit_rpd"),
    Has("(rpd)"),
];

/// Per-minute windows: a quota that refills within a minute is a throttle, whatever words the
/// message uses (Google says "Quota exceeded" for its per-minute limits).
const PER_MINUTE: &[Pat] = &[
    Has("per min"),
    Has("permin"),
    Has("per_min"),
    Has("per-min"),
    Has("(rpm)"),
    Has("(tpm)"),
];

/// Quota wording that Google also uses for per-minute throttling, so it is read after
/// [`PER_MINUTE`].
const QUOTA_WORDING: &[Pat] = &[
    Has("exceeded your current quota"),
    Has("quota exceeded"),
    Has("quota_exceeded"),
    Has("out of quota"),
];

const CONTEXT: &[Pat] = &[
    Has("context_length_exceeded"),
    Has("maximum context length"),
    Has("context length"),
    Has("context window"),
    Has("context limit"),
    Has("prompt is too long"),
    Has("prompt too long"),
    Has("input is too long"),
    Has("input token count"),
    Has("too large for model"),
    Has("request too large"),
    Has("request_too_large"),
    Has("request entity too large"),
    Has("payload too large"),
    Has("reduce the length"),
    Has("maximum number of tokens allowed"),
    Has("`max_new_tokens` must be"),
    Both("must have less than", "tokens"),
];

const NOT_FOUND: &[Pat] = &[
    Has("model_not_found"),
    Has("not_found"),
    Has("does not exist"),
    Has("no endpoints found"),
    Has("no allowed providers"),
    Has("is not found"),
    Has("no such model"),
    Has("unknown model"),
    Both("model", "not found"),
];

const RATE: &[Pat] = &[
    Has("rate_limit"),
    Has("rate limit"),
    Has("rate-limit"),
    Has("ratelimit"),
    Has("too many requests"),
    Has("too_many_requests"),
    Has("too many concurrent"),
    Has("throttl"),
    Has("resource_exhausted"),
    Has("resource exhausted"),
];

const OVERLOADED: &[Pat] = &[Has("overloaded"), Has("over capacity"), Has("at capacity")];

const TIMEOUT: &[Pat] = &[
    Has("timed out"),
    Has("timeout"),
    Has("time-out"),
    Has("time out"),
    Has("deadline_exceeded"),
    Has("deadline exceeded"),
];

const UNAVAILABLE: &[Pat] = &[
    Has("unavailable"),
    Has("bad gateway"),
    Has("bad_gateway"),
    Has("no instances available"),
    Has("no available"),
    Has("web server is down"),
    Has("origin is unreachable"),
    Has("upstream connect error"),
    Has("no healthy upstream"),
    Has("currently loading"),
    Has("under maintenance"),
];

/// Weak signals: generic words ("internal", `invalid_request_error`) that providers put on many
/// different errors. They decide only when the status does not (no status, or a 200).
const SERVER: &[Pat] = &[
    Has("internal server error"),
    Has("internal_server_error"),
    Has("internal error"),
    Has("internal_error"),
    Has("server_error"),
    Has("server error"),
    Has("server had an error"),
    Has("api_error"),
    Has("internal"),
];

const INVALID: &[Pat] = &[
    Has("invalid_request_error"),
    Has("invalid_request"),
    Has("invalid_argument"),
    Has("failed_precondition"),
    Has("bad request"),
    Has("bad_request"),
    Has("badrequesterror"),
    Has("validation error"),
    Has("validation_error"),
    Has("invalid_parameter"),
    Has("unsupported"),
    Has("unrecognized request argument"),
    Has("extra inputs are not permitted"),
];

/// Strong signals, in precedence order: they decide over the status.
const STRONG: &[Step] = &[
    Step::Table(ErrorKind::Auth, AUTH),
    Step::Table(ErrorKind::Moderation, MODERATION),
    Step::Table(ErrorKind::QuotaExhausted, QUOTA),
    Step::ZeroLimit,
    Step::Table(ErrorKind::ContextOverflow, CONTEXT),
    Step::Table(ErrorKind::RateLimited, PER_MINUTE),
    Step::Table(ErrorKind::QuotaExhausted, QUOTA_WORDING),
    Step::Table(ErrorKind::NotFound, NOT_FOUND),
    Step::Table(ErrorKind::RateLimited, RATE),
    Step::Table(ErrorKind::Timeout, TIMEOUT),
    Step::Table(ErrorKind::Overloaded, OVERLOADED),
    Step::Table(ErrorKind::Unavailable, UNAVAILABLE),
];

/// Weak signals: read only when the status says nothing.
const WEAK: &[Step] = &[
    Step::Table(ErrorKind::ServerError, SERVER),
    Step::Table(ErrorKind::InvalidRequest, INVALID),
];

fn first_match(steps: &[Step], signals: &str) -> Option<ErrorKind> {
    if signals.trim().is_empty() {
        return None;
    }
    steps.iter().find_map(|step| match step {
        Step::Table(kind, pats) => pats.iter().any(|p| p.matches(signals)).then_some(*kind),
        Step::ZeroLimit => has_zero_limit(signals).then_some(ErrorKind::QuotaExhausted),
    })
}

/// The kind the body's strong signals state, if any. `signals` must be lower-case.
pub(super) fn kind_from_signals(signals: &str) -> Option<ErrorKind> {
    first_match(STRONG, signals)
}

/// The kind the body's weak signals suggest, for when the status says nothing.
pub(super) fn weak_kind_from_signals(signals: &str) -> Option<ErrorKind> {
    first_match(WEAK, signals)
}

/// `limit: 0` as a whole number (not `limit: 0.5`, not `limit: 05`).
fn has_zero_limit(signals: &str) -> bool {
    let mut rest = signals;
    while let Some(tail) = text::after(rest, "limit: 0") {
        if !tail.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return true;
        }
        rest = tail;
    }
    false
}

/// The kind a status implies when the body says nothing recognisable.
pub(super) fn kind_from_status(status: u16) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::Auth,
        402 => ErrorKind::QuotaExhausted,
        404 | 410 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        413 => ErrorKind::ContextOverflow,
        429 => ErrorKind::RateLimited,
        // 424 Failed Dependency: the server's own dependency failed (TGI: generation failed).
        424 => ErrorKind::ServerError,
        400..=499 => ErrorKind::InvalidRequest,
        502 | 503 | 521 | 523 => ErrorKind::Unavailable,
        504 | 522 | 524 => ErrorKind::Timeout,
        529 => ErrorKind::Overloaded,
        500..=599 => ErrorKind::ServerError,
        _ => ErrorKind::Unknown,
    }
}

/// Transport messages that mean the call timed out (checked first: a "TLS handshake timeout"
/// is a timeout, not a certificate problem).
const TRANSPORT_TIMEOUT: &[Pat] = &[
    Has("timeout"),
    Has("timed out"),
    Has("timedout"),
    Has("time out"),
    Has("time-out"),
    Has("deadline exceeded"),
    Has("deadline_exceeded"),
];

/// TLS and certificate failures: a network error that retrying will not fix.
const TRANSPORT_TLS: &[Pat] = &[
    Has("cert"),
    Has("x509"),
    Has("self signed"),
    Has("self-signed"),
    Has("unknown ca"),
    Has("unable to verify"),
    Has("unable_to_verify"),
    Has("handshake"),
    Has("wrong version number"),
    Has("wrong_version_number"),
    Has("tlsv1 alert"),
    Has("sslv3 alert"),
    Has("tls alert"),
    Has("unsupported protocol"),
];

/// Connection-level failures: refused, reset, DNS, a cut stream.
const TRANSPORT_NETWORK: &[Pat] = &[
    Has("refused"),
    Has("reset"),
    Has("eof"),
    Has("broken pipe"),
    Has("epipe"),
    Has("enotfound"),
    Has("eai_again"),
    Has("no such host"),
    Has("name resolution"),
    Has("name or service not known"),
    Has("nodename nor servname"),
    Has("getaddrinfo"),
    Has("could not resolve"),
    Has("couldn't resolve"),
    Has("dns"),
    Has("lookup"),
    Has("unreachable"),
    Has("no route to host"),
    Has("connection"),
    Has("connecterror"),
    Has("connect error"),
    Has("failed to connect"),
    Has("couldn't connect"),
    Has("disconnected"),
    Has("remote end closed"),
    Has("socket hang up"),
    Has("other side closed"),
    Has("fetch failed"),
    Has("und_err_socket"),
    Has("incomplete"),
    Has("prematurely"),
    Has("unexpected end"),
    Has("stream error"),
    Has("stream closed"),
    Has("error decoding response body"),
    Has("transfer closed"),
    Has("empty reply"),
    Has("recv failure"),
    Has("send failure"),
    Has("protocolerror"),
    Has("network"),
    Has("terminated"),
    Has("socket"),
];

/// TLS words that remain after the specific patterns: still a TLS failure.
const TRANSPORT_TLS_GENERIC: &[Pat] = &[Has("ssl"), Has("tls: "), Has("tls error"), Has("tls_")];

/// The kind of a transport failure, and whether it was a TLS/certificate failure (which makes a
/// `network` error not retryable).
pub(super) fn kind_from_transport(message: &str) -> (ErrorKind, bool) {
    let lower = message.to_lowercase();
    let any = |pats: &[Pat]| pats.iter().any(|p| p.matches(&lower));
    if any(TRANSPORT_TIMEOUT) {
        (ErrorKind::Timeout, false)
    } else if any(TRANSPORT_TLS) {
        (ErrorKind::Network, true)
    } else if any(TRANSPORT_NETWORK) {
        (ErrorKind::Network, false)
    } else if any(TRANSPORT_TLS_GENERIC) {
        (ErrorKind::Network, true)
    } else {
        (ErrorKind::Unknown, false)
    }
}

/// `(limit_tokens, requested_tokens)` as a context-overflow message states them. `signals`
/// must be lower-case.
pub(super) fn context_numbers(signals: &str) -> (Option<u64>, Option<u64>) {
    // Anthropic: "input length and `max_tokens` exceed context limit: 197202 + 8192 > 200000".
    if let Some(tail) = text::after(signals, "exceed context limit:")
        && let Some((input, rest)) = text::leading_u64(tail.trim_start())
    {
        let rest = rest
            .trim_start()
            .strip_prefix('+')
            .unwrap_or("")
            .trim_start();
        if let Some((output, rest)) = text::leading_u64(rest) {
            let limit = text::number_after(rest, ">");
            return (limit, Some(input.saturating_add(output)));
        }
    }
    // Anthropic: "prompt is too long: 208310 tokens > 200000 maximum".
    if let Some(tail) = text::after(signals, "prompt is too long:")
        && let Some((requested, rest)) = text::leading_u64(tail.trim_start())
    {
        return (text::number_after(rest, ">"), Some(requested));
    }
    // TGI: "`inputs` tokens + `max_new_tokens` must be <= 8193. given: 8000 `inputs` tokens
    // and 1000 `max_new_tokens`", or "`inputs` must have less than 4096 tokens. given: 5000".
    if let Some(limit) = text::number_after(signals, "must be <=")
        .or_else(|| text::number_after(signals, "must have less than"))
    {
        let requested = text::after(signals, "given:").and_then(|tail| {
            let (inputs, rest) = text::leading_u64(tail.trim_start())?;
            let extra = text::number_after(rest, " and ").unwrap_or(0);
            Some(inputs.saturating_add(extra))
        });
        return (Some(limit), requested);
    }
    // OpenAI / Groq: "request too large for … (tpm): limit 10000, requested 20000".
    if (signals.contains("request too large") || signals.contains("too large for model"))
        && let (Some(limit), Some(requested)) = (
            text::number_after(signals, "limit "),
            text::number_after(signals, "requested "),
        )
    {
        return (Some(limit), Some(requested));
    }
    let limit = [
        ("maximum context length is", true),
        ("maximum context length:", true),
        (" maximum context length", false),
        ("maximum number of tokens allowed", true),
        ("context window of", true),
        ("context length of", true),
    ]
    .iter()
    .find_map(|(pat, after)| {
        if *after {
            text::number_after(signals, pat)
        } else {
            text::number_before(signals, pat)
        }
    });
    let requested = [
        "you requested",
        "resulted in",
        "your request has",
        "prompt contains",
        "input token count",
        "prompt is too long:",
    ]
    .iter()
    .find_map(|pat| text::number_after(signals, pat));
    (limit, requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_decide_by_meaning() {
        use ErrorKind::*;
        let cases = [
            (
                "incorrect api key provided: sk-***\ninvalid_api_key",
                Some(Auth),
            ),
            ("user not found.", Some(Auth)),
            (
                "your input was flagged for \"harassment\"",
                Some(Moderation),
            ),
            (
                "you exceeded your current quota\ninsufficient_quota",
                Some(QuotaExhausted),
            ),
            (
                "you exceeded your current quota\nresource_exhausted\ngeneraterequestsperminuteperprojectpermodel-freetier",
                Some(RateLimited),
            ),
            (
                "you exceeded your current quota\nresource_exhausted\ngeneraterequestsperdayperprojectpermodel-freetier",
                Some(QuotaExhausted),
            ),
            (
                "quota exceeded for metric: x, limit: 0, model: y\nresource_exhausted",
                Some(QuotaExhausted),
            ),
            (
                "quota exceeded for metric: x, limit: 0.5 per minute\nresource_exhausted",
                Some(RateLimited),
            ),
            (
                "request too large for gpt-4o on tokens per min (tpm): limit 30000, requested 50000\nrate_limit_exceeded",
                Some(ContextOverflow),
            ),
            (
                "rate limit reached for gpt-4o\nrate_limit_exceeded",
                Some(RateLimited),
            ),
            (
                "the model `gpt-9` does not exist\nmodel_not_found",
                Some(NotFound),
            ),
            ("no endpoints found for foo/bar.", Some(NotFound)),
            ("overloaded\noverloaded_error", Some(Overloaded)),
            (
                "the model is overloaded. please try again later.\nunavailable",
                Some(Overloaded),
            ),
            ("example.com | 524: a timeout occurred", Some(Timeout)),
            ("502 bad gateway", Some(Unavailable)),
            (
                "quota exceeded for quota metric 'generate content api requests per minute'",
                Some(RateLimited),
            ),
            (
                "you exceeded your current quota\nresource_exhausted",
                Some(QuotaExhausted),
            ),
            (
                "resource exhausted. please try again later.\nresource_exhausted",
                Some(RateLimited),
            ),
            (
                "the tcp handshake timed out, which may indicate the origin is overloaded",
                Some(Timeout),
            ),
            ("internal server error", None),
            ("something odd happened", None),
            ("", None),
        ];
        for (signals, want) in cases {
            assert_eq!(kind_from_signals(signals), want, "{signals}");
        }
    }

    #[test]
    fn weak_signals() {
        use ErrorKind::*;
        let cases = [
            ("internal server error", Some(ServerError)),
            (
                "invalid value for 'temperature'\ninvalid_request_error",
                Some(InvalidRequest),
            ),
            ("something odd happened", None),
        ];
        for (signals, want) in cases {
            assert_eq!(weak_kind_from_signals(signals), want, "{signals}");
        }
    }

    #[test]
    fn statuses() {
        use ErrorKind::*;
        let cases = [
            (400, InvalidRequest),
            (401, Auth),
            (402, QuotaExhausted),
            (403, Auth),
            (404, NotFound),
            (408, Timeout),
            (413, ContextOverflow),
            (422, InvalidRequest),
            (424, ServerError),
            (429, RateLimited),
            (500, ServerError),
            (502, Unavailable),
            (503, Unavailable),
            (504, Timeout),
            (520, ServerError),
            (521, Unavailable),
            (522, Timeout),
            (523, Unavailable),
            (524, Timeout),
            (529, Overloaded),
            (200, Unknown),
            (0, Unknown),
        ];
        for (status, want) in cases {
            assert_eq!(kind_from_status(status), want, "{status}");
        }
    }

    #[test]
    fn transports() {
        use ErrorKind::*;
        let cases = [
            (
                "Post \"https://openrouter.ai/api/v1/chat/completions\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                (Timeout, false),
            ),
            (
                "dial tcp 127.0.0.1:443: connect: connection refused",
                (Network, false),
            ),
            (
                "read tcp 10.0.0.2:5555->1.2.3.4:443: read: connection reset by peer",
                (Network, false),
            ),
            (
                "dial tcp: lookup api.openai.com: no such host",
                (Network, false),
            ),
            ("net/http: TLS handshake timeout", (Timeout, false)),
            (
                "tls: failed to verify certificate: x509: certificate signed by unknown authority",
                (Network, true),
            ),
            ("TypeError: fetch failed", (Network, false)),
            (
                "httpx.ReadTimeout: The read operation timed out",
                (Timeout, false),
            ),
            (
                "curl: (28) Operation timed out after 30001 milliseconds with 0 bytes received",
                (Timeout, false),
            ),
            (
                "curl: (60) SSL certificate problem: unable to get local issuer certificate",
                (Network, true),
            ),
            (
                "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol",
                (Network, false),
            ),
            ("context canceled", (Unknown, false)),
            (
                "TypeError: terminated\n    at TLSSocket.onHttpSocketClose (node:internal)",
                (Network, false),
            ),
            ("tls: protocol version not supported", (Network, true)),
        ];
        for (text, want) in cases {
            assert_eq!(kind_from_transport(text), want, "{text}");
        }
    }

    #[test]
    fn context_numbers_from_messages() {
        let cases = [
            (
                "this model's maximum context length is 8192 tokens. however, you requested 8200 tokens",
                (Some(8192), Some(8200)),
            ),
            (
                "prompt is too long: 208310 tokens > 200000 maximum",
                (Some(200_000), Some(208_310)),
            ),
            (
                "the input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                (Some(1_048_576), Some(1_200_000)),
            ),
            (
                "request too large for gpt-4 on tokens per min (tpm): limit 10000, requested 20000.",
                (Some(10_000), Some(20_000)),
            ),
            (
                "prompt contains 40000 tokens and 0 draft tokens, too large for model with 32768 maximum context length",
                (Some(32_768), Some(40_000)),
            ),
            (
                "input length and `max_tokens` exceed context limit: 197202 + 8192 > 200000, decrease input length",
                (Some(200_000), Some(205_394)),
            ),
            (
                "input validation error: `inputs` tokens + `max_new_tokens` must be <= 8193. given: 8000 `inputs` tokens and 1000 `max_new_tokens`",
                (Some(8193), Some(9000)),
            ),
            ("please reduce the length of the messages", (None, None)),
        ];
        for (text, want) in cases {
            assert_eq!(context_numbers(text), want, "{text}");
        }
    }
}
