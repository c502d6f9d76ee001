//! Table-driven tests of [`redact`]: every key shape, every way a secret is written, and the
//! texts that must come out unchanged.

use super::*;

// FAKE keys with the real shapes; none of them was ever valid.
const OPENROUTER: &str =
    "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const OPENAI_PROJECT: &str =
    "sk-proj-FAKEabc123DEF456ghi789JKL012mno345PQR678stu901VWX234yzA567BCD890efg_hij-KLM";
const OPENAI_LEGACY: &str = "sk-FAKE1234567890abcdefghijklmnopqrstuvwxyzABCDEFGH";
const OPENAI_SVCACCT: &str = "sk-svcacct-FAKE0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP";
const ANTHROPIC: &str = "sk-ant-api03-FAKE_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzAA";
const GOOGLE: &str = "AIzaSyFAKE0123456789abcdefghijklmnopq";
const GROQ: &str = "gsk_FAKE0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
const XAI: &str =
    "xai-FAKE0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab";
const HUGGING_FACE: &str = "hf_FAKEabcdefghijklmnopqrstuvwxyzAB";
const AWS_ACCESS_KEY_ID: &str = "AKIAFAKE0123456789AB";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKEKEY0123";
const GITHUB_CLASSIC: &str = "ghp_FAKE0123456789abcdefghijklmnopqrstuv";
const GITHUB_FINE: &str = "github_pat_11FAKE0123456789abcdef_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234";
const AZURE: &str = "0123456789abcdef0123456789abcdef";
const JWT: &str =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJGQUtFIn0.c2lnbmF0dXJlLWZha2UtZmFrZQ";

/// Keys recognised by their shape alone.
const SHAPED: &[&str] = &[
    OPENROUTER,
    OPENAI_PROJECT,
    OPENAI_LEGACY,
    OPENAI_SVCACCT,
    ANTHROPIC,
    GOOGLE,
    GROQ,
    XAI,
    HUGGING_FACE,
    AWS_ACCESS_KEY_ID,
    GITHUB_CLASSIC,
    GITHUB_FINE,
    JWT,
];

fn assert_no_leak(input: &str, secret: &str) {
    let out = redact(input);
    assert!(
        out.contains(REDACTED),
        "nothing redacted in {input:?}: {out:?}"
    );
    // No 16-character piece of the secret survives.
    let bytes = secret.as_bytes();
    for start in 0..bytes.len().saturating_sub(15) {
        let piece = &secret[start..start + 16];
        assert!(
            !out.contains(piece),
            "{piece:?} of {secret:?} leaked: {out:?}"
        );
    }
    let _ = bytes;
}

#[test]
fn every_key_shape_is_redacted() {
    for key in SHAPED {
        let text = format!("Incorrect API key provided: {key}. You can find your key at …");
        assert_eq!(
            redact(&text),
            "Incorrect API key provided: [REDACTED]. You can find your key at …",
            "{key}"
        );
    }
}

#[test]
fn table() {
    let cases: &[(&str, &str)] = &[
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
        // Secret-named query parameters.
        (
            "GET https://graph.example.com/me?access_token=EAAGm0PX4ZCpsBAFAKE&fields=id",
            "GET https://graph.example.com/me?access_token=[REDACTED]&fields=id",
        ),
        (
            "POST /oauth/token?grant_type=refresh_token&refresh_token=1//0gFAKEtoken&client_secret=GOCSPX-FAKE",
            "POST /oauth/token?grant_type=refresh_token&refresh_token=[REDACTED]&client_secret=[REDACTED]",
        ),
        (
            "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2025-01-01&sig=FAKEsig%2Bvalue%3D",
            "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2025-01-01&sig=[REDACTED]",
        ),
        ("?apikey=abc123&x=1", "?apikey=[REDACTED]&x=1"),
        ("?api_key=abc123#frag", "?api_key=[REDACTED]#frag"),
        ("?password=hunter2", "?password=[REDACTED]"),
        ("&token=abc", "&token=[REDACTED]"),
        (
            "?X-Amz-Credential=AKIAFAKE0123456789AB%2F20240101%2Fus-east-1&X-Amz-Signature=0123abcd",
            "?X-Amz-Credential=[REDACTED]&X-Amz-Signature=[REDACTED]",
        ),
        // URL-encoded names.
        ("?api%5Fkey=abc123&x=1", "?api%5Fkey=[REDACTED]&x=1"),
        ("?access%5ftoken=abc123", "?access%5ftoken=[REDACTED]"),
        (
            "redirect=https%3A%2F%2Fx.example%2Fcb%3Faccess_token%3Dabc123%26state%3Dok",
            "redirect=https%3A%2F%2Fx.example%2Fcb%3Faccess_token%3D[REDACTED]%26state%3Dok",
        ),
        // Passwords in URLs.
        (
            "dial https://alice:s3cr3t-pw@proxy.example.com:8080/v1 failed",
            "dial https://alice:[REDACTED]@proxy.example.com:8080/v1 failed",
        ),
        (
            "postgres://app:p%40ss@db:5432/x",
            "postgres://app:[REDACTED]@db:5432/x",
        ),
        (
            "redis://:onlypass@cache:6379",
            "redis://:[REDACTED]@cache:6379",
        ),
        // Headers of the general family.
        (
            "X-Auth-Token: 5f1e0c9a-FAKE-token",
            "X-Auth-Token: [REDACTED]",
        ),
        (
            "Ocp-Apim-Subscription-Key: 0123456789abcdef0123456789abcdef",
            "Ocp-Apim-Subscription-Key: [REDACTED]",
        ),
        (
            "api-key: 0123456789abcdef0123456789abcdef",
            "api-key: [REDACTED]",
        ),
        (
            "Cookie: session=abc123; csrftoken=def456\nAccept: */*",
            "Cookie: [REDACTED]\nAccept: */*",
        ),
        (
            "set-cookie: sid=abc; Path=/; HttpOnly",
            "set-cookie: [REDACTED]",
        ),
        (
            "{'Authorization': 'Bearer abc', 'X-Api-Key': 'def'}",
            "{'Authorization': 'Bearer [REDACTED]', 'X-Api-Key': '[REDACTED]'}",
        ),
        (
            r#"{\"apiKey\":\"abc123\",\"model\":\"gpt-4o\"}"#,
            r#"{\"apiKey\":\"[REDACTED]\",\"model\":\"gpt-4o\"}"#,
        ),
        (
            r#"{"client_secret": "s3cr3t", "accessToken": "tok"}"#,
            r#"{"client_secret": "[REDACTED]", "accessToken": "[REDACTED]"}"#,
        ),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKEKEY0123",
            "aws_secret_access_key = [REDACTED]",
        ),
        (
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIAFAKE0123456789AB/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=fe5f80f7",
            "Authorization: AWS4-HMAC-SHA256 [REDACTED], SignedHeaders=host, Signature=[REDACTED]",
        ),
        ("--api-key=abc123", "--api-key=[REDACTED]"),
        // Basic credentials without a header name in front.
        (
            "sent Basic dXNlcjpwYXNzd29yZA== upstream",
            "sent Basic [REDACTED] upstream",
        ),
        // Not secrets: counts, limits, model names, words.
        ("a risk-free task-list", "a risk-free task-list"),
        ("the api key was rejected", "the api key was rejected"),
        ("Bearer", "Bearer"),
        ("monkey=banana", "monkey=banana"),
        ("", ""),
        ("héllo wörld 🙂", "héllo wörld 🙂"),
        (
            "Token limit exceeded: 4096 tokens requested",
            "Token limit exceeded: 4096 tokens requested",
        ),
        (
            r#"{"max_tokens": 4096, "prompt_tokens": 12, "token_count": 7, "token": 5}"#,
            r#"{"max_tokens": 4096, "prompt_tokens": 12, "token_count": 7, "token": 5}"#,
        ),
        (
            "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
            "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
        ),
        (
            "x-ratelimit-remaining-tokens: 0\nx-ratelimit-reset-tokens: 6m0s",
            "x-ratelimit-remaining-tokens: 0\nx-ratelimit-reset-tokens: 6m0s",
        ),
        (
            r#"{"token_type": "bearer", "key_type": "rsa"}"#,
            r#"{"token_type": "bearer", "key_type": "rsa"}"#,
        ),
        (
            r#"{"api_key": null, "auth": true}"#,
            r#"{"api_key": null, "auth": true}"#,
        ),
        (
            "model anthropic/claude-3.5-sonnet-20241022 request req_0123456789abcdefABCDEF0123",
            "model anthropic/claude-3.5-sonnet-20241022 request req_0123456789abcdefABCDEF0123",
        ),
        ("Basic plan exceeded", "Basic plan exceeded"),
        (
            r#"Url { username: "", password: None, host: Some(Domain("localhost")) }"#,
            r#"Url { username: "", password: None, host: Some(Domain("localhost")) }"#,
        ),
        (
            r#"Url { username: "bob", password: Some("hunter2"), port: None }"#,
            r#"Url { username: "bob", password: Some("[REDACTED]"), port: None }"#,
        ),
        (
            "see https://openrouter.ai/settings/keys",
            "see https://openrouter.ai/settings/keys",
        ),
        ("https://user@host/path?q=1", "https://user@host/path?q=1"),
        ("100% of 20%", "100% of 20%"),
        ("C:\\path\\to\\file", "C:\\path\\to\\file"),
        (
            "trace 4bf92f3577b34da6a3ce929d0e0e4736",
            "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(redact(input), *want, "{input}");
    }
}

#[test]
fn keys_split_by_a_line_break_are_redacted_whole() {
    for key in SHAPED {
        let prefix = SHAPES
            .iter()
            .find(|s| key.starts_with(s.prefix))
            .map_or(0, |s| s.prefix.len());
        for split in [prefix + 1, prefix + 5, key.len() / 2, key.len() - 3] {
            if split <= prefix || split >= key.len() {
                continue;
            }
            for brk in ["\n", "\r\n", "\n    ", "\\n"] {
                let text = format!("key: {}{brk}{} rejected", &key[..split], &key[split..]);
                let text = if brk == "\\n" {
                    format!(
                        r#"{{"message":"bad {}\n{} rejected"}}"#,
                        &key[..split],
                        &key[split..]
                    )
                } else {
                    text
                };
                assert_no_leak(&text, key);
            }
        }
    }
    // The example of the issue: 16 of 64 hex characters on the first line.
    let text = format!("sk-or-v1-{}\n{}\n", &OPENROUTER[9..25], &OPENROUTER[25..]);
    assert_eq!(redact(&text), "[REDACTED]\n");
}

#[test]
fn a_line_after_a_key_is_not_eaten() {
    let cases = [
        format!("{OPENROUTER}\nYou can find your key at https://openrouter.ai/keys"),
        format!("Authorization: Bearer {JWT}\nX-Request-Id: 0123abcd-4567"),
        "x-api-key: abc123\nContent-Type: application/json".to_string(),
        format!("{OPENAI_LEGACY}\nInternationalization 12345678 done"),
    ];
    let kept = [
        "\nYou can find",
        "\nX-Request-Id: 0123abcd-4567",
        "\nContent-Type: application/json",
        "\nInternationalization 12345678 done",
    ];
    for (text, keep) in cases.iter().zip(kept) {
        let out = redact(text);
        assert!(out.contains(keep), "{out:?}");
        assert!(out.contains(REDACTED), "{out:?}");
    }
}

#[test]
fn encoded_keys_are_redacted() {
    for key in SHAPED {
        let percent: String = key.bytes().map(|b| format!("%{b:02X}")).collect();
        let unicode: String = key.bytes().map(|b| format!("\\u{b:04x}")).collect();
        let b64 = base64(key.as_bytes());
        let basic = base64(format!("user:{key}").as_bytes());
        let texts = [
            format!("GET /v1?x={percent} failed"),
            format!("{{\"message\":\"echo {unicode}\"}}"),
            format!("data {b64} end"),
            format!("Authorization: Basic {basic}"),
            format!("proxy said Basic {basic}"),
            format!(
                "blob: {}",
                base64(format!("{{\"key\":\"{key}\"}}").as_bytes())
            ),
            format!("url={}", percent_encode_all(&format!("Basic {basic}"))),
            format!("https://user:{key}@api.example.com/v1"),
            format!("https://api.example.com/v1?access_token={key}&x=1"),
            format!(r#"{{\"error\":{{\"message\":\"bad key {key}\"}}}}"#),
        ];
        for text in &texts {
            assert_no_leak(text, key);
        }
    }
}

#[test]
fn nameless_keys_travel_named() {
    for (name, key) in [
        ("api-key", AZURE),
        ("Ocp-Apim-Subscription-Key", AZURE),
        ("aws_secret_access_key", AWS_SECRET),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
    ] {
        for text in [
            format!("{name}: {key}"),
            format!("{name}={key}"),
            format!("{{\"{name}\": \"{key}\"}}"),
            format!("?{name}={key}&a=b"),
        ] {
            assert_no_leak(&text, key);
        }
    }
}

#[test]
fn output_is_unchanged_where_nothing_is_secret() {
    let prose = "The quick brown fox: jumps over 13 lazy dogs = fine, {\"ok\": true} 100% done.\n";
    assert_eq!(redact(&prose.repeat(50)), prose.repeat(50));
}

#[test]
fn work_is_bounded_on_hostile_inputs() {
    // Each input is 1 MiB of a pattern that makes a naive scanner re-read what follows it.
    let inputs = [
        "a".repeat(1 << 20),
        "sk-".repeat((1 << 20) / 3),
        "key=".repeat((1 << 18) + 1),
        "key: 1\n".repeat((1 << 20) / 7),
        "a.".repeat(1 << 19),
        "%41".repeat((1 << 20) / 3),
        "\\u0041".repeat((1 << 20) / 6),
        "QUFB".repeat(1 << 18),
        "://".repeat((1 << 20) / 3),
        "Bearer ".repeat((1 << 20) / 7),
        "AIzaAIzaAIza\n".repeat((1 << 20) / 13),
        format!("{}\n", "Ab1".repeat(100)).repeat((1 << 20) / 301),
    ];
    for input in &inputs {
        let started = std::time::Instant::now();
        let out = redact(input);
        let elapsed = started.elapsed();
        assert!(!out.is_empty());
        // Generous for debug builds on a shared machine; quadratic work would take minutes.
        assert!(
            elapsed < std::time::Duration::from_secs(10),
            "{:?}…: {elapsed:?}",
            &input[..12]
        );
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn percent_encode_all(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[test]
fn base64_helper_matches_the_decoder() {
    assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    assert_eq!(decode_base64(b"dXNlcjpwYXNz", 0), b"user:pass");
    assert_eq!(decode_base64(b"xxdXNlcjpwYXNz", 2), b"user:pass");
    assert_eq!(base64(b"ab"), "YWI=");
}
