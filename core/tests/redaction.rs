//! Property test of redaction (issue 9, finding 6): a generated key of every known provider
//! format, hidden at a random position of random text, in a random encoding, inside a random
//! carrier (a JSON error body, OpenRouter's nested `metadata.raw`, an HTML page, an SSE chunk,
//! a header dump, a transport error, an error code, a credits response), appears in no output:
//! not in [`redact`], not in any text field of [`classify`] (message, code, provider,
//! error type), not in what the credits parser returns. "Appears" means the whole key or any
//! 16-character piece of it.
//!
//! Keys without a distinctive prefix (a 32-hex Azure key, a 40-character AWS secret key, an
//! opaque bearer token) are hidden with the name they travel under (`api-key:`,
//! `aws_secret_access_key=`, `Authorization: Bearer`); keys with a prefix are hidden bare as
//! well. A line break inside a key falls after its prefix (a broken prefix is not a key any
//! more; see the module documentation of `redact`).

use llm_resilience::redact::redact;
use llm_resilience::{ClassifyInput, classify, credits};
use proptest::prelude::*;

/// A fake key: the text of the key, and how long its distinctive prefix is (0: none, the key
/// only travels named).
#[derive(Debug, Clone)]
struct Key {
    text: String,
    prefix: usize,
}

fn shaped(pattern: &'static str, prefix: &'static str) -> impl Strategy<Value = Key> {
    pattern.prop_map(move |body| Key {
        text: format!("{prefix}{body}"),
        prefix: prefix.len(),
    })
}

fn nameless(pattern: &'static str) -> impl Strategy<Value = Key> {
    pattern.prop_map(|text| Key { text, prefix: 0 })
}

/// Every known provider format, with its real length and alphabet (values are random: fake).
fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        shaped("[0-9a-f]{64}", "sk-or-v1-"),
        shaped("[A-Za-z0-9_-]{156}", "sk-proj-"),
        shaped("[A-Za-z0-9_-]{48}", "sk-proj-"),
        shaped("[A-Za-z0-9_-]{100,156}", "sk-svcacct-"),
        shaped("[A-Za-z0-9]{48}", "sk-"),
        shaped("[A-Za-z0-9_-]{93}AA", "sk-ant-api03-"),
        shaped("[0-9A-Za-z_-]{35}", "AIza"),
        shaped("[A-Za-z0-9]{52}", "gsk_"),
        shaped("[A-Za-z0-9]{80}", "xai-"),
        shaped("[A-Za-z]{34}", "hf_"),
        shaped("[A-Z0-9]{16}", "AKIA"),
        shaped("[A-Za-z0-9]{36}", "ghp_"),
        shaped("[A-Za-z0-9_]{82}", "github_pat_"),
        shaped(
            "[A-Za-z0-9_-]{20,40}\\.eyJ[A-Za-z0-9_-]{20,80}\\.[A-Za-z0-9_-]{43}",
            "eyJ"
        ),
        nameless("[0-9a-f]{32}"),
        nameless("[A-Za-z0-9/+]{40}"),
        nameless("[A-Za-z0-9._~+/-]{20,60}"),
    ]
}

/// Names a key travels under: headers, fields, query parameters, in every form.
fn named(name: usize, key: &str) -> String {
    match name % 16 {
        0 => format!("Authorization: Bearer {key}"),
        1 => format!("X-Auth-Token: {key}"),
        2 => format!("Ocp-Apim-Subscription-Key: {key}"),
        3 => format!("api-key: {key}"),
        4 => format!("x-api-key:{key}"),
        5 => format!("GET https://api.example.com/v1/models?access_token={key}&limit=5"),
        6 => format!("https://api.example.com/v1?key={key}"),
        7 => format!("POST /v1/chat?api%5Fkey={key}"),
        8 => format!("{{\"client_secret\": \"{key}\"}}"),
        9 => format!("aws_secret_access_key = {key}"),
        10 => format!("password={key}"),
        11 => format!("&sig={key}&se=2030-01-01"),
        12 => format!("{{'apiKey': '{key}'}}"),
        13 => format!("Cookie: session={key}; theme=dark"),
        14 => format!("refresh_token={key}"),
        _ => format!("{{\"Authorization\":\"Bearer {key}\"}}"),
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Form/URL encoding: unreserved characters kept, everything else `%XX`.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Every byte `%XX`.
fn percent_all(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Every character `\uXXXX`, as a JSON encoder that escapes everything writes it.
fn unicode_escape(s: &str) -> String {
    s.bytes().map(|b| format!("\\u{b:04x}")).collect()
}

/// The key written in one of the encodings; `split` picks where a line break goes.
fn encode(key: &Key, encoding: usize, name: usize, split: usize, brk: usize) -> String {
    let k = key.text.as_str();
    // Keys without a prefix only travel named; the others travel bare or named.
    let plain = |k: &str| {
        if key.prefix == 0 || name.is_multiple_of(3) {
            named(name, k)
        } else {
            k.to_string()
        }
    };
    match encoding % 11 {
        0 => plain(k),
        // JSON-escaped: inside a JSON document that is itself a string.
        1 => {
            serde_json::to_string(&serde_json::json!({"error": {"message": plain(k)}}).to_string())
                .unwrap_or_default()
        }
        2 => url_encode(&plain(k)),
        3 => percent_all(&plain(k)),
        4 => unicode_escape(&plain(k)),
        // Split by a line break somewhere after the prefix.
        5 => {
            let at = key.prefix + 1 + split % (k.len() - key.prefix - 1);
            let brk = ["\n", "\r\n", "\n  ", "\\n"][brk % 4];
            plain(&format!("{}{brk}{}", &k[..at], &k[at..]))
        }
        6 => base64(plain(k).as_bytes()),
        7 => format!(
            "Authorization: Basic {}",
            base64(format!("user:{k}").as_bytes())
        ),
        8 => format!(
            "https://api.example.com/v1/chat?model=x&{}",
            named(5 + name % 2, k)
        ),
        // A URL's userinfo holds the password percent-encoded (RFC 3986), as clients write it.
        9 => format!("https://user:{}@api.example.com/v1", url_encode(k)),
        _ => base64(format!("{{\"api_key\":\"{k}\",\"model\":\"gpt-4o\"}}").as_bytes()),
    }
}

/// Where the text goes: (body, transport).
fn carry(carrier: usize, text: &str) -> (String, Option<String>) {
    let body = match carrier % 9 {
        0 => text.to_string(),
        1 => serde_json::json!({"error": {"message": text, "type": "invalid_request_error",
            "code": "invalid_api_key"}})
        .to_string(),
        2 => serde_json::json!({"error": {"message": "Provider returned error", "code": 401,
            "metadata": {"raw": serde_json::json!({"error": {"message": text}}).to_string(),
            "provider_name": "OpenAI"}}})
        .to_string(),
        3 => format!("<html><head><title>401 {text}</title></head><body></body></html>"),
        4 => format!(
            "data: {}\n\n",
            serde_json::json!({"error": {"message": text, "code": 401}})
        ),
        5 => format!("HTTP/1.1 401 Unauthorized\r\nX-Debug: {text}\r\n\r\n"),
        6 => serde_json::json!({"error": {"message": "bad key", "code": text,
            "metadata": {"provider_name": text, "error_type": text}}})
        .to_string(),
        7 => serde_json::json!({"type": "error", "error": {"type": "authentication_error",
            "message": text}})
        .to_string(),
        _ => {
            return (
                String::new(),
                Some(format!("Get \"{text}\": dial tcp: connection refused")),
            );
        }
    };
    (body, None)
}

/// The whole key, and every 16-character piece of it, must be absent from `out`.
fn leaked<'k>(key: &'k str, out: &str) -> Option<&'k str> {
    if out.contains(key) {
        return Some(key);
    }
    (0..=key.len().saturating_sub(16))
        .map(|start| &key[start..start + 16])
        .find(|piece| out.contains(piece))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn keys_appear_in_no_output(
        key in key(),
        before in "\\PC{0,120}",
        after in "\\PC{0,120}",
        encoding in 0usize..11,
        name in 0usize..48,
        split in any::<usize>(),
        brk in 0usize..4,
        carrier in 0usize..9,
        status in proptest::option::of(400u16..600),
    ) {
        let hidden = encode(&key, encoding, name, split, brk);
        let text = format!("{before} {hidden} {after}");
        let mut outputs: Vec<(String, String)> = vec![("redact".into(), redact(&text))];

        let (body, transport) = carry(carrier, &text);
        let got = classify(&ClassifyInput {
            status,
            headers: &[],
            body: body.as_bytes(),
            transport: transport.as_deref(),
            wall_clock_ms: None,
        });
        outputs.push(("message".into(), got.message));
        for (field, value) in [("code", got.code), ("provider", got.provider), ("error_type", got.error_type)] {
            if let Some(value) = value {
                outputs.push((field.into(), value));
            }
        }

        // The credits parser: a key label, and an API error's message.
        let label = serde_json::json!({"data": {"label": text, "usage": 1.0}}).to_string();
        match credits::parse_key(&label) {
            Ok(info) => outputs.push(("credits label".into(), info.label.unwrap_or_default())),
            Err(e) => outputs.push(("credits error".into(), e.to_string())),
        }
        let api = serde_json::json!({"error": {"code": 401, "message": text}}).to_string();
        if let Err(e) = credits::parse_key(&api) {
            outputs.push(("credits api error".into(), e.to_string()));
        }

        for (what, out) in &outputs {
            if let Some(piece) = leaked(&key.text, out) {
                prop_assert!(false, "{what} leaks {piece:?} of {:?} (encoding {encoding}, carrier {carrier}): {out:?}", key.text);
            }
        }
    }
}
