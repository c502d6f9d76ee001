//! Secret redaction: keep API keys, tokens and passwords out of every message the library
//! produces.
//!
//! Error bodies and transport messages echo secrets more often than one would think: OpenAI
//! repeats (part of) a wrong key in "Incorrect API key provided: sk-proj-…", proxies echo the
//! request's headers, Google puts the key in the URL (`?key=AIza…`) that a transport error
//! prints, OAuth flows put `?access_token=…` there, a connection string carries
//! `https://user:password@host`, and a log line may wrap a long key over two lines or carry it
//! base64- or percent-encoded. Every message [`crate::classify()`] returns (and every text the
//! credits parser returns) goes through [`redact`], so a log line built from it is safe to ship.
//!
//! # What is replaced by `[REDACTED]`
//!
//! - **Provider keys, by shape**, wherever they appear: OpenRouter `sk-or-v1-…`, Anthropic
//!   `sk-ant-…`, OpenAI `sk-proj-…`, `sk-svcacct-…`, `sk-admin-…` (even partly masked with `*`)
//!   and any other `sk-…` of at least 20 key characters; Google `AIza…`; Groq `gsk_…`; xAI
//!   `xai-…`; Hugging Face `hf_…`; GitHub `ghp_…`, `gho_…`, `ghu_…`, `ghs_…`, `ghr_…`,
//!   `github_pat_…`; AWS access key ids `AKIA…`/`ASIA…`; JWTs (`eyJ…`).
//! - **A key wrapped over lines**: when a key's run ends at a line break, the next line's run
//!   of key characters is taken as its continuation while the key is shorter than its shape's
//!   full length, or when the continuation itself looks random (at least 8 characters, letters
//!   mixed with digits or upper case inside, or a number of 16 digits or more) and is not the
//!   name of the next header or parameter (no `:`, not followed by `:` or `=`).
//! - **The token after `Bearer`**, and a `Basic` credential that decodes to `user:password`.
//! - **The value of any secret-named header, field or parameter**, in `Name: value`,
//!   `name=value`, JSON `"name": "value"`, escaped JSON `\"name\":\"value\"` and Python
//!   `'name': 'value'` forms. A name is secret when one of its parts (split at `-`, `_`, `.`
//!   and camelCase) is `auth`, `authorization`, `token`, `key`, `apikey`, `secret`, `password`,
//!   `passwd`, `pwd`, `passphrase`, `cookie`, `signature`, `sig`, `credential(s)` or a compound
//!   such as `accesstoken`: `Authorization`, `X-Auth-Token`, `Ocp-Apim-Subscription-Key`,
//!   `access_token`, `client_secret`, `X-Amz-Signature`, `Set-Cookie`, `apiKey`, … . An
//!   authorization scheme (`Bearer`, `Basic`, `AWS4-HMAC-SHA256` …) in front of the credential
//!   is kept, and so is Rust's `Debug` wrapping (`password: Some("[REDACTED]")`). A value that
//!   ends a line goes on at the start of the next one when that looks random (the rule above).
//! - **The password of a URL's userinfo**: `https://user:PW@host` → `https://user:[REDACTED]@host`.
//! - **Encoded secrets**: the text is also read percent-decoded (`api%5Fkey=…`, a key written
//!   as `%73%6B%2D…`) and JSON-unescaped (`\u0073k-…`, `\"token\":…`, `…\n…` in a body that was
//!   not parsed as JSON); a secret found there is redacted in the original text. A base64 run of
//!   at least 24 characters that decodes (at any of the four alignments, standard or URL-safe
//!   alphabet) to text holding a secret is redacted whole.
//!
//! # What is kept on purpose
//!
//! Token counts and the words around them: plural `tokens` is a count, not a credential
//! (`max_tokens`, `prompt_tokens`, `x-ratelimit-remaining-tokens`), names with a counting part
//! (`token_count`, `token_limit`, `key_type`, `public_key`) are not secret names, an unquoted
//! number or literal after a `:` is not a credential (`"token": 4096`, `"api_key": null`,
//! `password: None`), and "Token limit
//! exceeded: 4096 tokens" has no secret name right before its `:`. Model names, request ids and
//! trace ids are kept, so a bare 32-hex Azure key or a bare 40-character AWS secret key with no
//! name in front cannot be told from a trace id and is not redacted; they travel in named
//! headers and fields (`api-key:`, `Ocp-Apim-Subscription-Key:`, `aws_secret_access_key=`),
//! which are. A key whose distinctive prefix itself is cut by a line break is not recognised.
//!
//! # Bounded work
//!
//! Every pass is a left-to-right scan with no backtracking: a failed match at one position
//! reads a constant number of bytes (a name is at most [`MAX_NAME_BYTES`] long, space runs at
//! most [`MAX_SPACES`], a key shape that fails is shorter than its minimum) or bytes that no
//! later position starts a match in (the rest of a word, the line after a secret), and a
//! successful one consumes what it read. The decoded views
//! are built once per text, nested at most [`MAX_DEPTH`] levels (a percent-encoded base64
//! credential is two levels), and each base64 run is decoded four times, so the total work is a
//! constant multiple of the input length.

/// What a secret is replaced with.
const REDACTED: &str = "[REDACTED]";
/// How many decoded views may be nested (percent-decoded, JSON-unescaped, base64-decoded).
pub const MAX_DEPTH: usize = 2;
/// A header or field name longer than this is not read as a secret name.
pub const MAX_NAME_BYTES: usize = 64;
/// At most this many spaces are skipped between a name, its separator and its value.
pub const MAX_SPACES: usize = 16;
/// A base64 run shorter than this is not decoded (the shortest key shape encodes to more).
const MIN_BASE64_RUN: usize = 24;
/// Decoded base64 is scanned only in printable runs at least this long (`token=abc` is 9).
const MIN_PRINTABLE_RUN: usize = 8;
/// A line continuation must be at least this long to be taken for the rest of a key on its
/// looks alone.
const MIN_RANDOM_CONTINUATION: usize = 8;

/// Which bytes a key shape is made of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `[A-Za-z0-9_-]`, and `*` for masked keys.
    Key,
    /// `[A-Z0-9]` (AWS access key ids).
    Upper,
    /// `[A-Za-z0-9_.-]` (JWTs: base64url segments joined by dots).
    Jwt,
    /// Anything up to a value delimiter (a named value or a bearer token).
    Value,
}

impl Class {
    fn accepts(self, b: u8) -> bool {
        match self {
            Class::Key => b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'*'),
            Class::Upper => b.is_ascii_uppercase() || b.is_ascii_digit(),
            Class::Jwt => b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'),
            Class::Value => !is_value_delimiter(b),
        }
    }
}

/// A provider key shape: a distinctive prefix, then key characters.
struct Shape {
    prefix: &'static str,
    class: Class,
    /// The fewest characters after the prefix for a match.
    min: usize,
    /// How many characters after the prefix a whole key has (the longest real one, for shapes
    /// of varying length): a shorter run that ends at a line break continues on the next line.
    full: usize,
    /// Whether the prefix must start a word (for prefixes that can end ordinary words).
    word_start: bool,
}

/// Key shapes, longest prefix first where prefixes share a start.
const SHAPES: &[Shape] = &[
    shape("sk-or-v1-", Class::Key, 1, 64, false),
    shape("sk-or-", Class::Key, 1, 64, false),
    shape("sk-ant-", Class::Key, 1, 101, false),
    shape("sk-proj-", Class::Key, 1, 156, false),
    shape("sk-svcacct-", Class::Key, 1, 156, false),
    shape("sk-admin-", Class::Key, 1, 156, false),
    // Any other `sk-…`: long enough not to be "risk-free" (a masked one is handled apart).
    shape("sk-", Class::Key, 20, 48, false),
    shape("AIza", Class::Key, 30, 35, false),
    shape("AKIA", Class::Upper, 16, 16, true),
    shape("ASIA", Class::Upper, 16, 16, true),
    shape("gsk_", Class::Key, 20, 52, false),
    shape("github_pat_", Class::Key, 20, 82, false),
    shape("ghp_", Class::Key, 30, 36, false),
    shape("gho_", Class::Key, 30, 36, false),
    shape("ghu_", Class::Key, 30, 36, false),
    shape("ghs_", Class::Key, 30, 36, false),
    shape("ghr_", Class::Key, 30, 36, false),
    shape("xai-", Class::Key, 20, 80, false),
    shape("hf_", Class::Key, 30, 34, false),
    shape("eyJ", Class::Jwt, 17, 80, false),
];

const fn shape(prefix: &'static str, class: Class, min: usize, full: usize, word: bool) -> Shape {
    Shape {
        prefix,
        class,
        min,
        full,
        word_start: word,
    }
}

/// Name parts that make a header, field or parameter name secret (lower case).
const SECRET_PARTS: &[&str] = &[
    "auth",
    "authorization",
    "token",
    "key",
    "apikey",
    "secret",
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "cookie",
    "signature",
    "sig",
    "credential",
    "credentials",
    "accesstoken",
    "accesskey",
    "authtoken",
    "apitoken",
    "refreshtoken",
    "idtoken",
    "sessiontoken",
    "securitytoken",
    "secretkey",
    "privatekey",
    "clientsecret",
    "subscriptionkey",
    "setcookie",
];
/// Name parts that make a name a count, a limit or a description rather than a secret
/// (`token_count`, `token_limit`, `key_type`, `public_key`).
const COUNTING_PARTS: &[&str] = &[
    "count",
    "counts",
    "limit",
    "limits",
    "max",
    "min",
    "usage",
    "used",
    "remaining",
    "reset",
    "type",
    "length",
    "size",
    "budget",
    "total",
    "per",
    "public",
];
/// Name parts whose value runs to the end of the line (a cookie header holds `a=b; c=d`).
const LINE_VALUE_PARTS: &[&str] = &["cookie", "setcookie"];
/// Unquoted values after a `:` that say "no value" or are flags, not credentials.
const NOT_CREDENTIALS: &[&[u8]] = &[b"null", b"true", b"false", b"None", b"nil", b"undefined"];
/// Authorization schemes kept in front of a redacted credential (lower case).
const AUTH_SCHEMES: &[&str] = &["bearer", "basic", "token", "digest", "aws4-hmac-sha256"];

/// Replaces API keys, tokens, passwords and other secret values in `text` with `[REDACTED]`.
///
/// Linear in the length of `text` (see the module documentation); never panics.
pub fn redact(text: &str) -> String {
    let spans = merge(
        scan(text, 0)
            .into_iter()
            .map(|s| on_char_boundaries(text, s))
            .collect(),
    );
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        out.push_str(text.get(at..start).unwrap_or(""));
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    out
}

/// A byte range of `text` to redact (start inclusive, end exclusive, both char boundaries).
type Span = (usize, usize);

/// Every secret in `text` (unsorted, possibly overlapping), from the text itself and, below
/// [`MAX_DEPTH`], from its decoded views.
fn scan(text: &str, depth: usize) -> Vec<Span> {
    let mut spans = direct_pass(text);
    if depth < MAX_DEPTH {
        for view in [percent_view(text), json_view(text)].into_iter().flatten() {
            for (a, b) in scan(&view.text, depth + 1) {
                if let Some(span) = view.original(a, b) {
                    spans.push(span);
                }
            }
        }
        base64_pass(text, depth, &mut spans);
    }
    spans
}

/// Widens a span to character boundaries (every pass already produces such spans; this keeps
/// the output whole even if one did not).
fn on_char_boundaries(text: &str, (mut start, mut end): Span) -> Span {
    end = end.min(text.len());
    start = start.min(end);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    while !text.is_char_boundary(end) {
        end += 1;
    }
    (start, end)
}

/// Sorts spans and joins the ones that overlap or touch.
fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_unstable();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// The secrets written out in `text` (not encoded): one left-to-right pass.
fn direct_pass(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < text.len() {
        if may_start_secret(bytes, i)
            && let Some((keep, len)) = secret_at(text, i)
        {
            let start = i.saturating_add(keep);
            let mut end = start.saturating_add(len);
            spans.push((start, end));
            // A secret that ends a line may go on at the start of the next one (a wrapped
            // cookie line, a value inside a longer one).
            while let Some(brk) = line_break(bytes_at(text, end)) {
                let next = end + brk;
                let m = run(bytes_at(text, next), Class::Value);
                let continuation = text.as_bytes().get(next..next + m).unwrap_or(&[]);
                if m == 0 || !looks_random(continuation, bytes_at(text, next + m)) {
                    break;
                }
                spans.push((next, next + m));
                end = next + m;
            }
            i = end;
            continue;
        }
        let step = text
            .get(i..)
            .and_then(|rest| rest.chars().next())
            .map_or(1, char::len_utf8);
        i += step;
    }
    spans
}

/// A cheap test of whether any detector can match at byte `i`: at a word start (a name, a
/// scheme, a key), at a `:` (a URL's userinfo), or inside a word where a key prefix begins.
fn may_start_secret(bytes: &[u8], i: usize) -> bool {
    let Some(&b) = bytes.get(i) else {
        return false;
    };
    let word_start = i == 0 || !bytes.get(i - 1).copied().is_some_and(is_name_byte);
    if word_start {
        return b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':');
    }
    let next = bytes.get(i + 1).copied().unwrap_or(0);
    matches!(
        (b, next),
        (b':', b'/')
            | (b's', b'k')
            | (b'A', b'I' | b'K' | b'S')
            | (b'g', b's' | b'h' | b'i')
            | (b'x', b'a')
            | (b'h', b'f')
            | (b'e', b'y')
    )
}

/// A secret starting at byte `i` of `text`: how many bytes to keep verbatim (a header name, a
/// scheme) and how many bytes of secret follow them.
fn secret_at(text: &str, i: usize) -> Option<(usize, usize)> {
    provider_key(text, i)
        .or_else(|| bearer(text, i))
        .or_else(|| basic(text, i))
        .or_else(|| named_value(text, i))
        .or_else(|| url_password(text, i))
}

fn bytes_at(text: &str, i: usize) -> &[u8] {
    text.as_bytes().get(i..).unwrap_or(&[])
}

/// Whether the byte before `i` ends a word (so `Bearer` in `NotBearer` is not a scheme).
fn word_starts_at(text: &str, i: usize) -> bool {
    i == 0
        || text
            .as_bytes()
            .get(i - 1)
            .is_some_and(|b| !b.is_ascii_alphanumeric() && *b != b'_' && *b != b'-')
}

fn starts_with_ignore_case(s: &[u8], prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// Bytes at the start of `s` that `class` accepts.
fn run(s: &[u8], class: Class) -> usize {
    s.iter().take_while(|b| class.accepts(**b)).count()
}

/// Bytes that end an unquoted secret value.
fn is_value_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'"' | b'\''
                | b','
                | b';'
                | b'<'
                | b'>'
                | b'('
                | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'&'
                | b'#'
                | b'\\'
        )
}

/// A line break at the start of `s` (`\n`, `\r\n` or `\r`) and the indentation after it: its
/// length in bytes.
fn line_break(s: &[u8]) -> Option<usize> {
    let brk = match s {
        [b'\r', b'\n', ..] => 2,
        [b'\n' | b'\r', ..] => 1,
        _ => return None,
    };
    let indent = s
        .get(brk..)
        .unwrap_or(&[])
        .iter()
        .take(MAX_SPACES)
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    Some(brk + indent)
}

/// Whether a continuation line's run looks like the rest of a random key rather than a word:
/// long enough, letters mixed with digits (or upper case inside it, or a long number), and not
/// a header or parameter name (no `:`, not followed by `:` or `=`).
fn looks_random(run_bytes: &[u8], after: &[u8]) -> bool {
    if run_bytes.len() < MIN_RANDOM_CONTINUATION || run_bytes.contains(&b':') {
        return false;
    }
    // An `=` only as base64 padding.
    let body_len = run_bytes.len() - run_bytes.iter().rev().take_while(|b| **b == b'=').count();
    if run_bytes.get(..body_len).is_some_and(|b| b.contains(&b'=')) {
        return false;
    }
    let digit = run_bytes.iter().any(u8::is_ascii_digit);
    let alpha = run_bytes.iter().any(u8::is_ascii_alphabetic);
    let lower = run_bytes.iter().any(u8::is_ascii_lowercase);
    let inner_upper = run_bytes.iter().skip(1).any(u8::is_ascii_uppercase);
    let long_number = !alpha && run_bytes.len() >= 16;
    let random = (digit && alpha) || (lower && inner_upper) || long_number;
    // Followed by `:` or `=`, it is the name of the next header or parameter.
    let clean_end = !matches!(after.first(), Some(b':' | b'='));
    random && clean_end
}

/// The length of a run of `class` bytes at `start`, continued over line breaks while the run is
/// shorter than `full` (for key shapes) or while the next line's run looks random. Returns the
/// bytes covered and the number of `class` bytes in them.
fn wrapped_run(text: &str, start: usize, class: Class, full: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let mut pos = start;
    let mut count = 0usize;
    loop {
        let n = run(bytes.get(pos..).unwrap_or(&[]), class);
        let masked = bytes.get(pos..pos + n).is_some_and(|r| r.contains(&b'*'));
        pos += n;
        count += n;
        if masked {
            break;
        }
        let Some(brk) = line_break(bytes.get(pos..).unwrap_or(&[])) else {
            break;
        };
        let next = pos + brk;
        let m = run(bytes.get(next..).unwrap_or(&[]), class);
        if m == 0 {
            break;
        }
        let continuation = bytes.get(next..next + m).unwrap_or(&[]);
        let after = bytes.get(next + m..).unwrap_or(&[]);
        let short = full > 0 && count < full && !continuation.contains(&b':');
        if !(short || looks_random(continuation, after)) {
            break;
        }
        pos = next;
    }
    (pos - start, count)
}

/// A provider key by its shape.
fn provider_key(text: &str, i: usize) -> Option<(usize, usize)> {
    let rest = bytes_at(text, i);
    let first = *rest.first()?;
    if !matches!(first, b's' | b'A' | b'g' | b'x' | b'h' | b'e') {
        return None;
    }
    let shape = SHAPES
        .iter()
        .find(|s| rest.starts_with(s.prefix.as_bytes()))?;
    if shape.word_start && !word_starts_at(text, i) {
        return None;
    }
    let start = i + shape.prefix.len();
    let (mut covered, mut count) = wrapped_run(text, start, shape.class, shape.full);
    // A JWT's dots join its segments; a dot after the last one ends the sentence.
    while shape.class == Class::Jwt
        && covered > 0
        && text.as_bytes().get(start + covered - 1) == Some(&b'.')
    {
        covered -= 1;
        count = count.saturating_sub(1);
    }
    let head = bytes_at(text, start);
    let head_run = run(head, shape.class);
    // A masked generic key (`sk-abc1****xyz9`) is still a key.
    let masked = shape.prefix == "sk-" && head.get(..head_run).is_some_and(|k| k.contains(&b'*'));
    (count >= shape.min || (masked && head_run >= 4)).then_some((0, shape.prefix.len() + covered))
}

/// `Bearer <token>`: keep the scheme, redact the token.
fn bearer(text: &str, i: usize) -> Option<(usize, usize)> {
    let rest = bytes_at(text, i);
    if !starts_with_ignore_case(rest, "bearer") || !word_starts_at(text, i) {
        return None;
    }
    let spaces = spaces(rest.get(6..)?);
    if spaces == 0 {
        return None;
    }
    let keep = 6 + spaces;
    let (len, _) = wrapped_run(text, i + keep, Class::Value, 0);
    (len > 0).then_some((keep, len))
}

/// `Basic <base64 of user:password>` without a header name in front: keep the scheme, redact the
/// credential (only when it decodes to text with a `:`, so "Basic plan" stays).
fn basic(text: &str, i: usize) -> Option<(usize, usize)> {
    let rest = bytes_at(text, i);
    if !starts_with_ignore_case(rest, "basic") || !word_starts_at(text, i) {
        return None;
    }
    let spaces = spaces(rest.get(5..)?);
    if spaces == 0 {
        return None;
    }
    let keep = 5 + spaces;
    let token = rest.get(keep..)?;
    let len = base64_run(token);
    let decoded = decode_base64(token.get(..len)?, 0);
    let credential = len >= 8
        && std::str::from_utf8(&decoded).is_ok_and(|s| s.contains(':') && !s.contains('\0'));
    credential.then_some((keep, len))
}

/// Spaces and tabs at the start of `s`, at most [`MAX_SPACES`].
fn spaces(s: &[u8]) -> usize {
    s.iter()
        .take(MAX_SPACES + 1)
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count()
}

/// Bytes that can be part of a header, field or parameter name.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Splits a name into lower-case parts at `-`, `_`, `.` and camelCase boundaries, and says
/// whether it names a secret.
fn is_secret_name(name: &[u8]) -> (bool, bool) {
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    for (k, &b) in name.iter().enumerate() {
        if !b.is_ascii_alphanumeric() {
            if !current.is_empty() {
                parts.push(std::mem::take(&mut current));
            }
            continue;
        }
        let prev = k.checked_sub(1).and_then(|p| name.get(p)).copied();
        let next = name.get(k + 1).copied();
        let boundary = b.is_ascii_uppercase()
            && (prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(|p| p.is_ascii_uppercase())
                    && next.is_some_and(|n| n.is_ascii_lowercase())));
        if boundary && !current.is_empty() {
            parts.push(std::mem::take(&mut current));
        }
        current.push(char::from(b.to_ascii_lowercase()));
    }
    if !current.is_empty() {
        parts.push(current);
    }
    let has = |list: &[&str]| parts.iter().any(|p| list.contains(&p.as_str()));
    let secret = has(SECRET_PARTS) && !has(COUNTING_PARTS);
    (secret, has(LINE_VALUE_PARTS))
}

/// A quote at the start of `s` (`"`, `'` or an escaped `\"`): the byte sequence that opens
/// it, which is also the one that closes it.
fn quote(s: &[u8]) -> Option<&'static [u8]> {
    match s {
        [b'\\', b'"', ..] => Some(b"\\\""),
        [b'"', ..] => Some(b"\""),
        [b'\'', ..] => Some(b"'"),
        _ => None,
    }
}

/// `Authorization: Bearer x`, `x-api-key=…`, `"api-key": "…"`, `?access_token=…`: keep the name
/// (and a scheme), redact the value.
fn named_value(text: &str, i: usize) -> Option<(usize, usize)> {
    let rest = bytes_at(text, i);
    if !rest.first().copied().is_some_and(is_name_byte) {
        return None;
    }
    let before = i
        .checked_sub(1)
        .and_then(|p| text.as_bytes().get(p))
        .copied();
    if before.is_some_and(is_name_byte) {
        return None;
    }
    let name_len = rest
        .iter()
        .take(MAX_NAME_BYTES + 1)
        .take_while(|b| is_name_byte(**b))
        .count();
    if name_len > MAX_NAME_BYTES {
        return None;
    }
    // Cheap filter before splitting the name: the separator must follow.
    let mut j = name_len;
    if let Some(q) = quote(rest.get(j..)?) {
        j += q.len();
    }
    j += spaces(rest.get(j..)?);
    let equals = match rest.get(j)? {
        b'=' => true,
        b':' => false,
        _ => return None,
    };
    let (secret, line_value) = is_secret_name(rest.get(..name_len)?);
    if !secret {
        return None;
    }
    j += 1;
    j += spaces(rest.get(j..)?);
    // Rust's `Debug` of an `Option`: `password: Some("…")`.
    if rest.get(j..)?.starts_with(b"Some(") {
        j += 5;
    }
    let closing = quote(rest.get(j..)?);
    if let Some(q) = closing {
        j += q.len();
    }
    // Keep an authorization scheme ("Bearer ", "Basic ") in front of the credential.
    let value = rest.get(j..)?;
    if let Some(scheme) = AUTH_SCHEMES
        .iter()
        .find(|s| starts_with_ignore_case(value, s))
    {
        let gap = spaces(value.get(scheme.len()..)?);
        if gap > 0 && gap <= MAX_SPACES {
            j += scheme.len() + gap;
        }
    }
    let value = rest.get(j..)?;
    // A key shape in the value reaches as far as the key does (over a line break, say).
    let key_len = provider_key(text, i + j).map_or(0, |(_, len)| len);
    let len = match closing {
        Some(close) => quoted_len(value, close),
        None if line_value => value
            .iter()
            .take_while(|b| !matches!(b, b'\n' | b'\r' | b'"' | b'\''))
            .count(),
        None => wrapped_run(text, i + j, Class::Value, 0).0,
    };
    let len = len.max(key_len);
    if len == 0 {
        return None;
    }
    // An unquoted number or literal after a `:` is a count, a flag or nothing, not a credential.
    let literal = value.get(..len)?;
    if closing.is_none()
        && !equals
        && (literal.iter().all(u8::is_ascii_digit) || NOT_CREDENTIALS.contains(&literal))
    {
        return None;
    }
    Some((j, len))
}

/// The length of a quoted value up to its closing quote (or the end of the line); a backslash
/// escapes the next byte inside a `"…"` value.
fn quoted_len(value: &[u8], close: &[u8]) -> usize {
    let mut k = 0;
    while let Some(&b) = value.get(k) {
        if value.get(k..).is_some_and(|v| v.starts_with(close)) || matches!(b, b'\n' | b'\r') {
            break;
        }
        if b == b'\\' && close == b"\"" {
            k += 2;
            continue;
        }
        k += 1;
    }
    k.min(value.len())
}

/// `scheme://user:PASSWORD@host`: keep the user, redact the password.
fn url_password(text: &str, i: usize) -> Option<(usize, usize)> {
    let rest = bytes_at(text, i);
    if !rest.starts_with(b"://") {
        return None;
    }
    let authority = rest.get(3..)?;
    let len = authority
        .iter()
        .take_while(|b| {
            !b.is_ascii_whitespace()
                && !matches!(
                    b,
                    b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'\\' | b'`'
                )
        })
        .count();
    let authority = authority.get(..len)?;
    let at = authority.iter().rposition(|b| *b == b'@')?;
    let userinfo = authority.get(..at)?;
    let colon = userinfo.iter().position(|b| *b == b':')?;
    let password = at - colon - 1;
    (password > 0).then_some((3 + colon + 1, password))
}

/// A decoded copy of a text, with the original byte range of every decoded byte.
struct View {
    text: String,
    /// For each byte of `text`: the start and end of what it was decoded from.
    origin: Vec<(usize, usize)>,
}

impl View {
    /// The original span a span of the view was decoded from.
    fn original(&self, a: usize, b: usize) -> Option<Span> {
        let start = self.origin.get(a)?.0;
        let end = self.origin.get(b.checked_sub(1)?)?.1;
        (start < end).then_some((start, end))
    }

    /// Builds a view by decoding escapes at each position; `None` when nothing was decoded.
    fn decode(text: &str, escape: impl Fn(&[u8]) -> Option<(u8, usize)>) -> Option<View> {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut origin = Vec::with_capacity(bytes.len());
        let mut decoded_any = false;
        let mut i = 0;
        while i < bytes.len() {
            if let Some((byte, len)) = escape(bytes.get(i..).unwrap_or(&[])) {
                out.push(byte);
                origin.push((i, i + len));
                decoded_any = true;
                i += len;
                continue;
            }
            // A whole character, so every origin range is on character boundaries.
            let width = text
                .get(i..)
                .and_then(|rest| rest.chars().next())
                .map_or(1, char::len_utf8);
            for k in i..i + width {
                out.push(bytes.get(k).copied().unwrap_or(b'?'));
                origin.push((i, i + width));
            }
            i += width;
        }
        if !decoded_any {
            return None;
        }
        // Only ASCII bytes are decoded and whole characters copied, so this is UTF-8.
        let text = String::from_utf8(out).ok()?;
        Some(View { text, origin })
    }
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The text with `%XX` escapes of ASCII bytes decoded (`api%5Fkey`, `%73%6B%2D…`).
fn percent_view(text: &str) -> Option<View> {
    if !text.contains('%') {
        return None;
    }
    View::decode(text, |s| match s {
        [b'%', h, l, ..] => {
            let byte = (hex(*h)? << 4) | hex(*l)?;
            byte.is_ascii().then_some((byte, 3))
        }
        _ => None,
    })
}

/// The text with JSON (and C-style) backslash escapes of ASCII characters decoded.
fn json_view(text: &str) -> Option<View> {
    if !text.contains('\\') {
        return None;
    }
    View::decode(text, |s| match s {
        [b'\\', b'u', a, b, c, d, ..] => {
            let value = [a, b, c, d]
                .iter()
                .try_fold(0u32, |acc, h| Some((acc << 4) | u32::from(hex(**h)?)))?;
            let byte = u8::try_from(value).ok()?;
            byte.is_ascii().then_some((byte, 6))
        }
        [b'\\', b'x', h, l, ..] => {
            let byte = (hex(*h)? << 4) | hex(*l)?;
            byte.is_ascii().then_some((byte, 4))
        }
        [b'\\', e, ..] => {
            let byte = match e {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'"' | b'\'' | b'\\' | b'/' => *e,
                _ => return None,
            };
            Some((byte, 2))
        }
        _ => None,
    })
}

/// Whether a byte belongs to a base64 run (standard or URL-safe alphabet).
fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// The length of a base64 run at the start of `s`, padding included.
fn base64_run(s: &[u8]) -> usize {
    let body = s.iter().take_while(|b| is_base64_byte(**b)).count();
    let padding = s
        .get(body..)
        .unwrap_or(&[])
        .iter()
        .take(2)
        .take_while(|b| **b == b'=')
        .count();
    body + padding
}

/// Decodes base64 (either alphabet) starting `shift` characters into `run`; bits of an
/// incomplete last group are dropped.
fn decode_base64(run: &[u8], shift: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(run.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in run.iter().skip(shift) {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => break,
        };
        acc = ((acc << 6) | u32::from(v)) & 0xFF_FFFF;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xFF) as u8);
        }
    }
    out
}

/// The runs of printable ASCII (at least [`MIN_PRINTABLE_RUN`] long) in decoded bytes, joined
/// by blank lines. Text that was encoded is printable; the bytes a wrong alignment or a prefix
/// of non-base64 letters decode to are not, and are skipped instead of scanned.
fn printable_runs(decoded: &[u8]) -> String {
    let mut out = String::new();
    for part in
        decoded.split(|b| !(b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\n' | b'\r')))
    {
        if part.len() >= MIN_PRINTABLE_RUN {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.extend(part.iter().map(|b| char::from(*b)));
        }
    }
    out
}

/// Base64 runs that decode to text holding a secret: redacted whole.
fn base64_pass(text: &str, depth: usize, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes.get(i).copied().is_some_and(is_base64_byte) {
            i += 1;
            continue;
        }
        let len = base64_run(bytes.get(i..).unwrap_or(&[]));
        if len >= MIN_BASE64_RUN {
            let run_bytes = bytes.get(i..i + len).unwrap_or(&[]);
            let holds_secret = (0..4).any(|shift| {
                let text = printable_runs(&decode_base64(run_bytes, shift));
                !text.is_empty() && !scan(&text, depth + 1).is_empty()
            });
            if holds_secret {
                spans.push((i, i + len));
            }
        }
        i += len.max(1);
    }
}

#[cfg(test)]
mod tests;
