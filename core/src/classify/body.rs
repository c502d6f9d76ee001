//! Reading a response body: JSON envelopes of every provider, SSE streams, HTML error pages and
//! plain text, down to the innermost error they carry.
//!
//! The result is a [`Found`]: the innermost message and code, the provider, and the *signal
//! text* — every message, code, type and status seen on the way, joined — which the rules in
//! `rules.rs` read to decide the kind. Nested errors (OpenRouter's `metadata.raw`, a JSON error
//! inside a message string, a JSON error after a text prefix) are followed at most
//! [`MAX_DEPTH`] levels deep.

use serde_json::{Map, Value};

use super::{MAX_HEADERS, text};

/// How deep nested errors are followed (an error inside an error inside …).
const MAX_DEPTH: usize = 4;
/// The signal text is capped, so the rules' substring search is bounded too.
const MAX_SIGNAL_BYTES: usize = 64 * 1024;
/// A plain-text or HTML body contributes at most this much to the signals: errors state
/// themselves at the start.
const MAX_PLAIN_SIGNAL_BYTES: usize = 16 * 1024;
/// At most this many elements of any JSON array are looked at.
const MAX_ITEMS: usize = 16;
/// Keys that hold a human-readable message, in order of preference.
const MESSAGE_KEYS: &[&str] = &[
    "message",
    "msg",
    "detail",
    "error_description",
    "description",
    "title",
    "error",
];
/// Gemini `finishReason`s that mean a content filter stopped the answer.
const BLOCKING_FINISH_REASONS: &[&str] = &["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"];

/// What a body says about the error it carries.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// The innermost human-readable message.
    pub(super) message: Option<String>,
    /// The body's text, when it carries no recognisable error (kept raw, for the message).
    pub(super) plain: String,
    /// The innermost provider error's own code.
    pub(super) code: Option<String>,
    /// The provider: OpenRouter's `provider_name`, else the envelope's owner.
    pub(super) provider: Option<String>,
    /// OpenRouter's `error.metadata.error_type`.
    pub(super) error_type: Option<String>,
    /// A status the body states (a numeric `error.code`, an HTML title's number).
    pub(super) status: Option<u16>,
    /// Every message, code, type and status seen, joined by newlines.
    pub(super) signals: String,
    /// Google's `RetryInfo.retryDelay`.
    pub(super) retry_delay_ms: Option<u64>,
    /// Rate-limit headers repeated in OpenRouter's `error.metadata.headers`.
    pub(super) meta_headers: Vec<(String, String)>,
    /// A structured content-filter signal (moderation reasons, a Gemini block).
    pub(super) moderation: bool,
    /// OpenRouter's `provider_name` (verbatim, wins over the guess).
    provider_name: Option<String>,
    /// The envelope's owner (`anthropic`, `google`), innermost wins.
    provider_guess: Option<&'static str>,
}

impl Found {
    fn signal(&mut self, s: &str) {
        let s = s.trim();
        let room = MAX_SIGNAL_BYTES.saturating_sub(self.signals.len());
        if s.is_empty() || room < 2 {
            return;
        }
        self.signals.push_str(text::prefix(s, room - 1));
        self.signals.push('\n');
    }

    /// Takes what an error nested inside this one says: its message and code replace ours
    /// (the innermost wins), its signals are added to ours.
    fn absorb(&mut self, inner: Found) {
        if inner.message.is_some() {
            self.message = inner.message;
        }
        if inner.code.is_some() {
            self.code = inner.code;
        }
        self.provider_name = self.provider_name.take().or(inner.provider_name);
        self.provider_guess = inner.provider_guess.or(self.provider_guess);
        self.error_type = self.error_type.take().or(inner.error_type);
        self.status = self.status.or(inner.status);
        self.retry_delay_ms = self.retry_delay_ms.or(inner.retry_delay_ms);
        self.moderation |= inner.moderation;
        self.signal(&inner.signals);
        let room = MAX_HEADERS.saturating_sub(self.meta_headers.len());
        self.meta_headers
            .extend(inner.meta_headers.into_iter().take(room));
    }

    fn finish(mut self) -> Found {
        self.provider = self
            .provider_name
            .take()
            .or_else(|| self.provider_guess.map(str::to_string));
        self
    }
}

/// Reads a body (already cut to the body cap and decoded).
pub(super) fn extract(body: &str) -> Found {
    let trimmed = body.trim_start_matches('\u{feff}').trim();
    let mut found = Found::default();
    if trimmed.is_empty() {
        return found;
    }
    if trimmed.starts_with(['{', '['])
        && let Ok(value) = serde_json::from_str::<Value>(trimmed)
    {
        if !read_json(&value, 0, &mut found) {
            found.plain = text::prefix_whole(trimmed, MAX_PLAIN_SIGNAL_BYTES).to_string();
        }
        return found.finish();
    }
    if trimmed.starts_with('<') {
        read_html(trimmed, &mut found);
    } else if looks_like_sse(trimmed) {
        read_sse(trimmed, &mut found);
    } else {
        read_plain(trimmed, 0, &mut found);
    }
    found.finish()
}

/// Reads a JSON value that may carry an error; `true` if it does.
fn read_json(value: &Value, depth: usize, found: &mut Found) -> bool {
    match value {
        Value::Array(items) => items
            .iter()
            .take(MAX_ITEMS)
            .any(|item| read_json(item, depth, found)),
        Value::Object(obj) => read_object(obj, depth, found),
        _ => false,
    }
}

fn str_of<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v str> {
    obj.get(key).and_then(Value::as_str)
}

/// A top-level JSON object: find where its error lives.
fn read_object(obj: &Map<String, Value>, depth: usize, found: &mut Found) -> bool {
    match obj.get("error") {
        // {"error":{…}}: OpenAI and its imitators, OpenRouter, Anthropic, Google.
        Some(Value::Object(error)) => {
            if str_of(obj, "type") == Some("error") {
                found.provider_guess = Some("anthropic");
            }
            read_error(error, depth, found);
            return true;
        }
        // {"error":"…"}: Ollama, TGI (with "error_type"), many proxies.
        Some(Value::String(message)) if !message.trim().is_empty() => {
            found.code = str_of(obj, "error_type")
                .or_else(|| str_of(obj, "code"))
                .map(str::to_string);
            found.signal(found.code.clone().as_deref().unwrap_or(""));
            read_message(message, depth, found);
            return true;
        }
        // [{"error":…}] inside an "errors" list.
        _ => {}
    }
    if let Some(Value::Array(errors)) = obj.get("errors")
        && let Some(Value::Object(first)) = errors.first()
    {
        read_error(first, depth, found);
        return true;
    }
    // Flat shapes: vLLM / Mistral {"object":"error",…}, FastAPI {"detail":…},
    // {"message":"…"} (Mistral, gateways). A normal completion or stream event has none of them.
    let is_event = obj.contains_key("choices") || obj.contains_key("candidates");
    let flat = str_of(obj, "object") == Some("error")
        || str_of(obj, "type") == Some("error")
        || (obj.contains_key("detail") && !is_event)
        || (obj.get("message").is_some_and(Value::is_string) && !is_event);
    if flat {
        read_error(obj, depth, found);
        return true;
    }
    read_completion(obj, found)
}

/// A 200 body that is a completion or a stream chunk, but still carries an error: a choice
/// that finished with `"error"`, or a Gemini answer blocked by its safety filter.
fn read_completion(obj: &Map<String, Value>, found: &mut Found) -> bool {
    if let Some(Value::Array(choices)) = obj.get("choices") {
        for choice in choices.iter().take(MAX_ITEMS).filter_map(Value::as_object) {
            if str_of(choice, "finish_reason") == Some("error") {
                match choice.get("error") {
                    Some(Value::Object(error)) => read_error(error, MAX_DEPTH, found),
                    _ => {
                        found.message = Some("stream finished with finish_reason \"error\"".into())
                    }
                }
                return true;
            }
        }
    }
    let block = obj
        .get("promptFeedback")
        .and_then(Value::as_object)
        .and_then(|feedback| str_of(feedback, "blockReason"));
    if let Some(reason) = block {
        found.moderation = true;
        found.signal(reason);
        found.message = Some(format!("prompt blocked: {reason}"));
        return true;
    }
    if let Some(Value::Array(candidates)) = obj.get("candidates") {
        for candidate in candidates
            .iter()
            .take(MAX_ITEMS)
            .filter_map(Value::as_object)
        {
            let reason = str_of(candidate, "finishReason").unwrap_or("");
            if BLOCKING_FINISH_REASONS.contains(&reason) {
                found.moderation = true;
                found.signal(reason);
                found.message = Some(format!("response blocked: {reason}"));
                return true;
            }
        }
    }
    false
}

/// An error object: `{"message","type","code","param"}`, Google's `{"code","message","status",
/// "details"}`, OpenRouter's `{"code","message","metadata"}`, Azure's `innererror`.
fn read_error(error: &Map<String, Value>, depth: usize, found: &mut Found) {
    let code = str_of(error, "code")
        .or_else(|| str_of(error, "type"))
        .or_else(|| str_of(error, "status"))
        .map(str::to_string)
        .or_else(|| {
            error
                .get("code")
                .and_then(Value::as_u64)
                .map(|n| n.to_string())
        });
    for key in ["code", "type", "status", "reason"] {
        if let Some(s) = str_of(error, key) {
            found.signal(s);
        }
    }
    if found.code.is_none() {
        found.code = code;
    }
    if error.get("code").is_some_and(Value::is_u64)
        && error.get("status").is_some_and(Value::is_string)
    {
        found.provider_guess = Some("google");
    }
    let numeric = error
        .get("code")
        .and_then(Value::as_u64)
        .or_else(|| error.get("status").and_then(Value::as_u64));
    if let Some(status) = numeric.and_then(|n| u16::try_from(n).ok())
        && (100..=599).contains(&status)
    {
        found.status = found.status.or(Some(status));
    }
    read_details(error, found);
    read_inner_error(error, found);
    let raw = read_metadata(error, found);

    let message = MESSAGE_KEYS
        .iter()
        .find_map(|key| error.get(*key).and_then(|v| first_text(v, 0)));
    if let Some(message) = message {
        read_message(message, depth, found)
    }
    if let Some(raw) = raw {
        read_nested(raw, depth, found);
    }
}

/// The first non-empty string in a message field (a string, or an object or list holding one).
fn first_text(value: &Value, depth: usize) -> Option<&str> {
    if depth > MAX_DEPTH {
        return None;
    }
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s),
        Value::Object(obj) => MESSAGE_KEYS
            .iter()
            .find_map(|key| obj.get(*key).and_then(|v| first_text(v, depth + 1))),
        Value::Array(items) => items
            .iter()
            .take(MAX_ITEMS)
            .find_map(|v| first_text(v, depth + 1)),
        _ => None,
    }
}

/// A message string: the message itself, and any JSON error nested inside it.
fn read_message(message: &str, depth: usize, found: &mut Found) {
    found.signal(message);
    found.message = Some(message.to_string());
    read_embedded_json(message, depth, found);
}

/// A JSON error inside a string (Google's message, a proxy's `"Error: 429 {…}"`), followed one
/// level deeper; the innermost error wins.
fn read_embedded_json(text: &str, depth: usize, found: &mut Found) {
    if depth >= MAX_DEPTH {
        return;
    }
    let (Some(start), Some(end)) = (text.find(['{', '[']), text.rfind(['}', ']'])) else {
        return;
    };
    let Some(candidate) = text.get(start..=end) else {
        return;
    };
    if let Ok(value) = serde_json::from_str::<Value>(candidate) {
        let mut inner = Found::default();
        if read_json(&value, depth + 1, &mut inner) {
            found.absorb(inner);
        }
    }
}

/// OpenRouter's `metadata.raw`: the provider's own error as a JSON string, an object, or text.
fn read_nested(raw: &Value, depth: usize, found: &mut Found) {
    if depth >= MAX_DEPTH {
        return;
    }
    let mut inner = Found::default();
    let carries = match raw {
        Value::String(s) => {
            let trimmed = s.trim();
            if trimmed.starts_with(['{', '[']) {
                match serde_json::from_str::<Value>(trimmed) {
                    Ok(value) => read_json(&value, depth + 1, &mut inner),
                    Err(_) => read_plain(trimmed, depth + 1, &mut inner),
                }
            } else if trimmed.is_empty() {
                false
            } else {
                read_plain(trimmed, depth + 1, &mut inner)
            }
        }
        Value::Object(_) | Value::Array(_) => read_json(raw, depth + 1, &mut inner),
        _ => false,
    };
    if carries {
        found.absorb(inner);
    }
}

/// Google's `details`: `RetryInfo.retryDelay`, `QuotaFailure` violations, `ErrorInfo` reasons.
fn read_details(error: &Map<String, Value>, found: &mut Found) {
    let Some(Value::Array(details)) = error.get("details") else {
        return;
    };
    for detail in details.iter().take(MAX_ITEMS).filter_map(Value::as_object) {
        let kind = str_of(detail, "@type").unwrap_or("");
        if kind.ends_with("RetryInfo") && found.retry_delay_ms.is_none() {
            found.retry_delay_ms = match detail.get("retryDelay") {
                Some(Value::String(delay)) => text::go_duration_ms(delay.trim()),
                Some(Value::Object(delay)) => {
                    let seconds = delay.get("seconds").and_then(Value::as_u64).unwrap_or(0);
                    let nanos = delay.get("nanos").and_then(Value::as_u64).unwrap_or(0);
                    Some(
                        seconds
                            .saturating_mul(1_000)
                            .saturating_add(nanos.div_ceil(1_000_000)),
                    )
                }
                _ => None,
            };
        }
        if let Some(reason) = str_of(detail, "reason") {
            found.signal(reason);
        }
        if let Some(Value::Object(metadata)) = detail.get("metadata") {
            for value in metadata.values().take(MAX_ITEMS).filter_map(Value::as_str) {
                found.signal(value);
            }
        }
        if let Some(Value::Array(violations)) = detail.get("violations") {
            for violation in violations
                .iter()
                .take(MAX_ITEMS)
                .filter_map(Value::as_object)
            {
                for key in ["quotaMetric", "quotaId", "subject", "description"] {
                    if let Some(s) = str_of(violation, key) {
                        found.signal(s);
                    }
                }
            }
        }
    }
}

/// Azure OpenAI's `innererror` (`ResponsibleAIPolicyViolation`, `content_filter_result`).
fn read_inner_error(error: &Map<String, Value>, found: &mut Found) {
    let Some(Value::Object(inner)) = error.get("innererror") else {
        return;
    };
    if let Some(code) = str_of(inner, "code") {
        found.signal(code);
    }
    if let Some(Value::Object(results)) = inner.get("content_filter_result") {
        let filtered = results.values().take(MAX_ITEMS).any(|category| {
            category
                .get("filtered")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        });
        found.moderation |= filtered;
    }
}

/// OpenRouter's `metadata`: provider, error type, repeated headers, moderation reasons. Returns
/// `raw`, to be followed after the outer message is read.
fn read_metadata<'v>(error: &'v Map<String, Value>, found: &mut Found) -> Option<&'v Value> {
    let Some(Value::Object(metadata)) = error.get("metadata") else {
        return None;
    };
    if let Some(name) = str_of(metadata, "provider_name").filter(|n| !n.trim().is_empty()) {
        found.provider_name = found.provider_name.take().or(Some(name.to_string()));
    }
    if let Some(error_type) = str_of(metadata, "error_type") {
        found.error_type = found.error_type.take().or(Some(error_type.to_string()));
        found.signal(error_type);
    }
    if let Some(Value::Object(headers)) = metadata.get("headers") {
        for (name, value) in headers.iter().take(MAX_HEADERS) {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if found.meta_headers.len() < MAX_HEADERS {
                found.meta_headers.push((name.clone(), value));
            }
        }
    }
    if let Some(Value::Array(reasons)) = metadata.get("reasons") {
        if !reasons.is_empty() {
            found.moderation = true;
        }
        for reason in reasons.iter().take(MAX_ITEMS).filter_map(Value::as_str) {
            found.signal(reason);
        }
    }
    if metadata.get("flagged_input").is_some_and(|v| !v.is_null()) {
        found.moderation = true;
    }
    metadata.get("raw")
}

/// An HTML error page: the `<title>` (else the first `<h1>`) is the message, and a status in it
/// (`"example.com | 524: A timeout occurred"`) is the status when the response gave none.
fn read_html(html: &str, found: &mut Found) {
    let head = text::prefix_whole(html, MAX_PLAIN_SIGNAL_BYTES);
    let title = element_text(head, "title").or_else(|| element_text(head, "h1"));
    if let Some(title) = title.filter(|t| !t.is_empty()) {
        found.signal(&title);
        found.status = text::status_in(&title);
        found.message = Some(title);
    }
}

/// The text of the first `<tag …>…</tag>`, with entities decoded and whitespace collapsed.
/// Offsets come from an ASCII lower-case copy, which keeps every byte where it was. Secrets are
/// redacted before whitespace is collapsed: a key wrapped over two lines is still one key then,
/// and would be two words after.
fn element_text(html: &str, tag: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let open = lower.find(&format!("<{tag}"))?;
    let content_start = open
        .saturating_add(lower.get(open..)?.find('>')?)
        .saturating_add(1);
    let content_len = lower.get(content_start..)?.find(&format!("</{tag}"))?;
    let inner = html.get(content_start..content_start.saturating_add(content_len))?;
    let redacted = crate::redact::redact(&decode_entities(inner));
    Some(redacted.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn decode_entities(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#039;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

fn looks_like_sse(text: &str) -> bool {
    ["data:", "event:", "id:", "retry:", ":"]
        .iter()
        .any(|p| text.starts_with(p))
        || text.contains("\ndata:")
}

/// An SSE stream: the error is in the first chunk that carries one (`data: {"error":…}`, a
/// choice with `finish_reason: "error"`, or the data after `event: error`). A stream with no
/// such chunk carries no error.
fn read_sse(stream: &str, found: &mut Found) {
    let mut error_event = false;
    for line in stream.lines() {
        let line = line.trim();
        if let Some(event) = line.strip_prefix("event:") {
            error_event = event.trim() == "error";
            continue;
        }
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            continue;
        };
        if data.is_empty() || data == "[DONE]" {
            continue;
        }
        let mut chunk = Found::default();
        let carries = match serde_json::from_str::<Value>(data) {
            Ok(value) => read_json(&value, 0, &mut chunk),
            Err(_) => false,
        };
        if carries {
            *found = chunk;
            return;
        }
        if error_event {
            read_plain(data, 0, found);
            return;
        }
    }
}

/// Plain text (or a JSON-ish text that did not parse): the text is the message and the signal,
/// a status in its first line is the status, and a JSON error after a prefix is followed.
fn read_plain(plain: &str, depth: usize, found: &mut Found) -> bool {
    let head = text::prefix(plain, MAX_PLAIN_SIGNAL_BYTES);
    found.signal(head);
    // The whole text, not just the head: it is redacted before it is cut, so a key that
    // straddles the head's end is still recognised whole.
    found.message = Some(plain.to_string());
    found.status = found
        .status
        .or_else(|| text::status_in(head.lines().next().unwrap_or("")));
    read_embedded_json(head, depth, found);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openrouter_raw_json_string_is_followed() {
        let body = r#"{"error":{"code":429,"message":"Provider returned error","metadata":{
            "raw":"{\"error\":{\"code\":429,\"message\":\"Resource exhausted\",\"status\":\"RESOURCE_EXHAUSTED\"}}",
            "provider_name":"Google AI Studio","headers":{"X-RateLimit-Reset":"1741305600000"}}}}"#;
        let f = extract(body);
        assert_eq!(f.message.as_deref(), Some("Resource exhausted"));
        assert_eq!(f.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
        assert_eq!(f.provider.as_deref(), Some("Google AI Studio"));
        assert_eq!(f.status, Some(429));
        assert_eq!(f.meta_headers.len(), 1);
        assert!(f.signals.contains("Provider returned error"));
    }

    #[test]
    fn depth_is_bounded() {
        // Each level hides the next error in a JSON string; only MAX_DEPTH levels are followed.
        let mut body = r#"{"error":{"message":"level","code":"deepest"}}"#.to_string();
        for _ in 0..10 {
            let escaped = serde_json::to_string(&body).unwrap_or_default();
            body = format!(r#"{{"error":{{"message":"outer","metadata":{{"raw":{escaped}}}}}}}"#);
        }
        let f = extract(&body);
        assert_eq!(f.code, None);
        assert_eq!(f.message.as_deref(), Some("outer"));
    }

    #[test]
    fn html_title_and_status() {
        let f = extract(
            "<!DOCTYPE html><html><head><title>example.com | 524: A timeout occurred</title></head></html>",
        );
        assert_eq!(
            f.message.as_deref(),
            Some("example.com | 524: A timeout occurred")
        );
        assert_eq!(f.status, Some(524));
    }

    #[test]
    fn sse_without_error_carries_none() {
        let f = extract("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n");
        assert!(f.message.is_none());
        assert!(f.signals.is_empty());
    }
}
