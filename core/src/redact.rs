//! Secret redaction: keep API keys and bearer tokens out of every message the library produces.
//!
//! Error bodies and transport messages echo secrets more often than one would think: OpenAI
//! repeats (part of) a wrong key in "Incorrect API key provided: sk-proj-…", proxies echo the
//! request's `Authorization` header, and Google puts the key in the URL (`?key=AIza…`) that a
//! transport error prints. Every message [`crate::classify()`] returns goes through [`redact`], so
//! a log line built from it is safe to ship.
//!
//! What is replaced by `[REDACTED]`:
//! - provider keys: OpenRouter `sk-or-v1-…`, Anthropic `sk-ant-…`, OpenAI `sk-proj-…`,
//!   `sk-svcacct-…`, `sk-admin-…` (even when partly masked with `*`), and any other `sk-…` of at
//!   least 20 key characters; Google `AIza…` (at least 30 more key characters);
//! - the token after `Bearer` (any case);
//! - the value of an `Authorization`, `Proxy-Authorization`, `x-api-key`, `api-key`,
//!   `x-goog-api-key`, `api_key` or `apikey` header or field, in `Name: value`, `name=value` and
//!   JSON `"name": "value"` forms (an authorization scheme such as `Bearer` is kept);
//! - the value of a `key=` or `token=` query parameter.
//!
//! The scanner is a single left-to-right pass with no backtracking: linear in the input.

/// What a secret is replaced with.
const REDACTED: &str = "[REDACTED]";

/// Key prefixes that are specific enough to redact whatever follows them.
const SPECIFIC_KEY_PREFIXES: &[&str] = &[
    "sk-or-v1-",
    "sk-or-",
    "sk-ant-",
    "sk-proj-",
    "sk-svcacct-",
    "sk-admin-",
];
/// A generic `sk-` secret must have at least this many key characters after the prefix.
const MIN_GENERIC_SK_LEN: usize = 20;
/// A Google key is `AIza` followed by 35 key characters; at least this many are required.
const MIN_GOOGLE_KEY_LEN: usize = 30;
/// Header and field names whose value is a secret (lower case).
const SECRET_NAMES: &[&str] = &[
    "proxy-authorization",
    "authorization",
    "x-goog-api-key",
    "x-api-key",
    "api-key",
    "api_key",
    "apikey",
];
/// Query parameters whose value is a secret (lower case, with the `=`).
const SECRET_PARAMS: &[&str] = &["key=", "token="];
/// Authorization schemes kept in front of a redacted credential.
const AUTH_SCHEMES: &[&str] = &["bearer", "basic", "token", "digest"];

/// Replaces API keys, bearer tokens and authorization values in `text` with `[REDACTED]`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = text.get(i..).unwrap_or("");
        if let Some((keep, secret)) = secret_at(text, i) {
            out.push_str(rest.get(..keep).unwrap_or(""));
            out.push_str(REDACTED);
            i = i.saturating_add(keep).saturating_add(secret);
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// A secret starting at byte `i` of `text`: how many bytes to keep verbatim (a header name, a
/// scheme) and how many bytes of secret follow them.
fn secret_at(text: &str, i: usize) -> Option<(usize, usize)> {
    let rest = text.get(i..)?;
    let first = rest.as_bytes().first()?;
    match first.to_ascii_lowercase() {
        b's' => provider_key(rest),
        b'a' if rest.starts_with("AIza") => {
            let len = key_run(rest.get(4..)?);
            (len >= MIN_GOOGLE_KEY_LEN).then_some((0, 4 + len))
        }
        _ => None,
    }
    .or_else(|| bearer(text, i))
    .or_else(|| named_value(text, i))
    .or_else(|| query_param(text, i))
}

/// Bytes of key characters at the start of `s` (`[A-Za-z0-9_-]`, and `*` for masked keys).
fn key_run(s: &str) -> usize {
    s.bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'*'))
        .count()
}

/// Bytes of token characters at the start of `s` (base64url, base64, JWT dots, masks).
fn token_run(s: &str) -> usize {
    s.bytes()
        .take_while(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'-' | b'*' | b'.' | b'~' | b'+' | b'/' | b'=')
        })
        .count()
}

fn provider_key(rest: &str) -> Option<(usize, usize)> {
    if !rest.starts_with("sk-") {
        return None;
    }
    if let Some(prefix) = SPECIFIC_KEY_PREFIXES.iter().find(|p| rest.starts_with(**p)) {
        let len = key_run(rest.get(prefix.len()..)?);
        return (len > 0).then_some((0, prefix.len() + len));
    }
    let len = key_run(rest.get(3..)?);
    let masked = rest.get(3..3 + len).is_some_and(|k| k.contains('*'));
    (len >= MIN_GENERIC_SK_LEN || (masked && len >= 4)).then_some((0, 3 + len))
}

/// Whether the byte before `i` ends a word (so `Bearer` in `NotBearer` is not a scheme).
fn word_starts_at(text: &str, i: usize) -> bool {
    i == 0
        || text
            .as_bytes()
            .get(i - 1)
            .is_some_and(|b| !b.is_ascii_alphanumeric() && *b != b'_' && *b != b'-')
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// `Bearer <token>`: keep the scheme, redact the token.
fn bearer(text: &str, i: usize) -> Option<(usize, usize)> {
    let rest = text.get(i..)?;
    if !starts_with_ignore_case(rest, "bearer") || !word_starts_at(text, i) {
        return None;
    }
    let after = rest.get(6..)?;
    let spaces = after
        .bytes()
        .take_while(|b| *b == b' ' || *b == b'\t')
        .count();
    if spaces == 0 {
        return None;
    }
    let len = token_run(after.get(spaces..)?);
    (len > 0).then_some((6 + spaces, len))
}

/// `Authorization: Bearer x`, `x-api-key=…`, `"api-key": "…"`: keep the name (and a scheme),
/// redact the value.
fn named_value(text: &str, i: usize) -> Option<(usize, usize)> {
    let rest = text.get(i..)?;
    if !word_starts_at(text, i) {
        return None;
    }
    let name = SECRET_NAMES
        .iter()
        .find(|name| starts_with_ignore_case(rest, name))?;
    let bytes = rest.as_bytes();
    let mut j = name.len();
    // A closing quote of a JSON or quoted name, then spaces, then `:` or `=`.
    if matches!(bytes.get(j), Some(b'"' | b'\'')) {
        j += 1;
    }
    while matches!(bytes.get(j), Some(b' ' | b'\t')) {
        j += 1;
    }
    if !matches!(bytes.get(j), Some(b':' | b'=')) {
        return None;
    }
    j += 1;
    while matches!(bytes.get(j), Some(b' ' | b'\t' | b'"' | b'\'')) {
        j += 1;
    }
    // Keep an authorization scheme ("Bearer ", "Basic ") in front of the credential.
    let value = rest.get(j..)?;
    if let Some(scheme) = AUTH_SCHEMES
        .iter()
        .find(|s| starts_with_ignore_case(value, s))
    {
        let after = value.get(scheme.len()..)?;
        let spaces = after.bytes().take_while(|b| *b == b' ').count();
        if spaces > 0 {
            j += scheme.len() + spaces;
        }
    }
    let len = token_run(rest.get(j..)?);
    (len > 0).then_some((j, len))
}

/// `?key=AIza…`, `&token=…`: keep the parameter name, redact the value.
fn query_param(text: &str, i: usize) -> Option<(usize, usize)> {
    let rest = text.get(i..)?;
    if !word_starts_at(text, i) {
        return None;
    }
    let param = SECRET_PARAMS
        .iter()
        .find(|p| starts_with_ignore_case(rest, p))?;
    let value = rest.get(param.len()..)?;
    let len = value
        .bytes()
        .take_while(|b| {
            !matches!(
                b,
                b'&' | b'#'
                    | b' '
                    | b'\t'
                    | b'\r'
                    | b'\n'
                    | b'"'
                    | b'\''
                    | b'<'
                    | b'>'
                    | b','
                    | b';'
                    | b')'
            )
        })
        .count();
    (len > 0).then_some((param.len(), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    // FAKE keys with the real shapes; none of them was ever valid.
    const OPENROUTER: &str = "sk-or-v1-FAKE-not-a-real-key-0123456789abcdef-0123456789abcdef";
    const OPENAI_PROJECT: &str =
        "sk-proj-FAKEabc123DEF456ghi789JKL012mno345PQR678stu901VWX234yzA567BCD890efg_hij-KLM";
    const OPENAI_LEGACY: &str = "sk-FAKE1234567890abcdefghijklmnopqrstuvwxyzABCDEFGH";
    const ANTHROPIC: &str = "sk-ant-api03-FAKE_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzAA";
    const GOOGLE: &str = "AIzaSyFAKE0123456789abcdefghijklmnopq";

    #[test]
    fn provider_keys_are_redacted() {
        for key in [OPENROUTER, OPENAI_PROJECT, OPENAI_LEGACY, ANTHROPIC, GOOGLE] {
            let text = format!("Incorrect API key provided: {key}. You can find your key at …");
            let out = redact(&text);
            assert!(!out.contains(key), "{out}");
            assert_eq!(
                out,
                "Incorrect API key provided: [REDACTED]. You can find your key at …"
            );
        }
    }

    #[test]
    fn table() {
        let cases = [
            (
                "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
                "Authorization: Bearer [REDACTED]",
            ),
            (
                "authorization=Basic dXNlcjpwYXNz",
                "authorization=Basic [REDACTED]",
            ),
            ("x-api-key: abcdef123456", "x-api-key: [REDACTED]"),
            (
                r#"{"api-key": "0123456789abcdef"}"#,
                r#"{"api-key": "[REDACTED]"}"#,
            ),
            (
                r#"{"Authorization":"Bearer tok_123"}"#,
                r#"{"Authorization":"Bearer [REDACTED]"}"#,
            ),
            ("sent bearer abc.def-ghi", "sent bearer [REDACTED]"),
            (
                "GET https://generativelanguage.googleapis.com/v1beta/models?key=secret123&alt=sse",
                "GET https://generativelanguage.googleapis.com/v1beta/models?key=[REDACTED]&alt=sse",
            ),
            (
                "Incorrect API key provided: sk-proj-********************************************abcd.",
                "Incorrect API key provided: [REDACTED].",
            ),
            (
                "Incorrect API key provided: sk-abc1*************xyz9.",
                "Incorrect API key provided: [REDACTED].",
            ),
            ("xsk-or-v1-abc", "x[REDACTED]"),
            // Not secrets: short sk- words, "key" without "=", a bare "Bearer".
            ("a risk-free task-list", "a risk-free task-list"),
            ("the api key was rejected", "the api key was rejected"),
            ("Bearer", "Bearer"),
            ("monkey=banana", "monkey=banana"),
            ("", ""),
            ("héllo wörld 🙂", "héllo wörld 🙂"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }
}
