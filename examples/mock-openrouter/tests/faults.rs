//! Every fault the mock injects, over real HTTP: status, `x-mock-fault`, body shape, and the kind
//! the core's classifier gives it (the mock is only useful if its failures classify as intended).

mod common;

use common::*;
use futures_util::StreamExt;
use llm_resilience::ErrorKind;
use serde_json::{Value, json};

/// One model per fault, each faulted for the whole run (share 1).
fn fault_scenario() -> mock_openrouter::Scenario {
    let extra = [
        ("test/outage-503", model(16_000, "OpenAI")),
        ("test/outage-502", model(16_000, "OpenAI")),
        ("test/rate-limit", model(16_000, "OpenAI")),
        ("test/overloaded", model(16_000, "Anthropic")),
        ("test/gateway-timeout", model(16_000, "OpenAI")),
        ("test/stream-error", model(16_000, "OpenAI")),
        ("test/reset", model(16_000, "OpenAI")),
        ("test/reset-mid", model(16_000, "OpenAI")),
        ("test/slow", model(16_000, "OpenAI")),
    ];
    let all = |t: &str, m: &str, extra: Value| {
        let mut f = json!({"type": t, "model": m, "from_ms": 0, "to_ms": 3_600_000});
        if let (Some(obj), Some(add)) = (f.as_object_mut(), extra.as_object()) {
            for (k, v) in add {
                obj.insert(k.clone(), v.clone());
            }
        }
        f
    };
    let faults = json!([
        all("outage", "test/outage-503", json!({"status": 503})),
        all("outage", "test/outage-502", json!({"status": 502})),
        all("rate-limit", "test/rate-limit", json!({"retry_after_s": 1})),
        all("overloaded", "test/overloaded", json!({})),
        all("gateway-timeout", "test/gateway-timeout", json!({})),
        all(
            "stream-error",
            "test/stream-error",
            json!({"after_chunks": 2})
        ),
        all("reset", "test/reset", json!({})),
        all("reset", "test/reset-mid", json!({"after_chunks": 2})),
        all("slow", "test/slow", json!({"delay_ms": 1500})),
    ]);
    scenario(
        &extra,
        faults,
        json!({"limit_usd": 100.0, "usage_usd": 0.0}),
    )
}

async fn fault_response(url: &str, m: &str, stream: bool) -> (u16, Vec<(String, String)>, String) {
    chat_parts(url, &chat_body(m, "hi, where is my order?", 256, stream)).await
}

#[tokio::test]
async fn outage_is_unavailable_with_the_provider() {
    let mock = start(fault_scenario()).await;
    for (m, status) in [("test/outage-503", 503), ("test/outage-502", 502)] {
        let (s, h, b) = fault_response(&mock.url(), m, false).await;
        assert_eq!(s, status);
        assert_eq!(header(&h, "x-mock-fault"), Some("outage"));
        let v: Value = serde_json::from_str(&b).expect("json");
        assert_eq!(v["error"]["code"], status);
        assert_eq!(v["error"]["metadata"]["provider_name"], "OpenAI");
        assert!(v["error"]["metadata"]["raw"].is_string());
        let c = classify(s, &h, &b);
        assert_eq!(c.kind, ErrorKind::Unavailable, "{m}: {c:?}");
        assert!(c.retryable);
        assert_eq!(c.provider.as_deref(), Some("OpenAI"));
    }
    let stats = mock.stats();
    assert_eq!(stats.faults.get("outage"), Some(&2));
    assert_eq!(stats.in_outage_window.get("test/outage-503"), Some(&1));
    assert_eq!(stats.in_outage_window.get("test/outage-502"), Some(&1));
    assert_eq!(stats.in_outage_window.get(PRIMARY), None);
    assert_eq!(stats.errors_per_model.get("test/outage-503"), Some(&1));
    mock.shutdown().await;
}

#[tokio::test]
async fn rate_limit_has_retry_after_and_ratelimit_headers() {
    let mock = start(fault_scenario()).await;
    let (s, h, b) = fault_response(&mock.url(), "test/rate-limit", false).await;
    assert_eq!(s, 429);
    assert_eq!(header(&h, "x-mock-fault"), Some("rate-limit"));
    assert_eq!(header(&h, "retry-after"), Some("1"));
    assert_eq!(header(&h, "x-ratelimit-remaining"), Some("0"));
    assert!(header(&h, "x-ratelimit-limit").is_some());
    assert!(header(&h, "x-ratelimit-reset").is_some_and(|v| v.parse::<u64>().is_ok()));
    let v: Value = serde_json::from_str(&b).expect("json");
    assert_eq!(v["error"]["metadata"]["headers"]["Retry-After"], "1");
    let c = classify(s, &h, &b);
    assert_eq!(c.kind, ErrorKind::RateLimited, "{c:?}");
    assert_eq!(c.retry_after_ms, Some(1000));
    // Without the HTTP headers (a client that lost them), the body's copy still gives the hint.
    let c = classify(s, &[], &b);
    assert_eq!(c.kind, ErrorKind::RateLimited);
    assert_eq!(c.retry_after_ms, Some(1000));
    mock.shutdown().await;
}

#[tokio::test]
async fn overloaded_is_anthropic_529() {
    let mock = start(fault_scenario()).await;
    let (s, h, b) = fault_response(&mock.url(), "test/overloaded", false).await;
    assert_eq!(s, 529);
    assert_eq!(header(&h, "x-mock-fault"), Some("overloaded"));
    assert!(b.contains("overloaded_error"));
    let c = classify(s, &h, &b);
    assert_eq!(c.kind, ErrorKind::Overloaded, "{c:?}");
    assert!(c.retryable);
    assert_eq!(c.provider.as_deref(), Some("Anthropic"));
    mock.shutdown().await;
}

#[tokio::test]
async fn gateway_timeout_is_a_timeout() {
    let mock = start(fault_scenario()).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let (s, h, b) = fault_response(&mock.url(), "test/gateway-timeout", false).await;
        assert!(s == 524 || s == 408, "status {s}");
        seen.insert(s);
        assert_eq!(header(&h, "x-mock-fault"), Some("gateway-timeout"));
        let c = classify(s, &h, &b);
        assert_eq!(c.kind, ErrorKind::Timeout, "{s}: {c:?}");
        assert!(c.retryable);
    }
    // The 524/408 choice is a seeded coin: twelve draws show both (fixed seed, so not flaky).
    assert_eq!(seen.len(), 2, "{seen:?}");
    mock.shutdown().await;
}

#[tokio::test]
async fn stream_error_sends_chunks_then_the_error_chunk() {
    let mock = start(fault_scenario()).await;
    let (s, h, b) = fault_response(&mock.url(), "test/stream-error", true).await;
    assert_eq!(s, 200);
    assert_eq!(header(&h, "x-mock-fault"), Some("stream-error"));
    assert_eq!(header(&h, "content-type"), Some("text/event-stream"));
    let data = sse_data(&b);
    assert_eq!(
        data.len(),
        3,
        "two content chunks and the error chunk: {data:?}"
    );
    for d in &data[..2] {
        let v: Value = serde_json::from_str(d).expect("chunk json");
        assert!(v["choices"][0]["delta"]["content"].is_string());
        assert!(v["choices"][0]["finish_reason"].is_null());
    }
    let last: Value = serde_json::from_str(&data[2]).expect("error chunk json");
    assert_eq!(last["choices"][0]["finish_reason"], "error");
    assert_eq!(last["error"]["code"], "server_error");
    assert!(!b.contains("[DONE]"));
    // The core reads the error out of the stream text.
    let c = classify(200, &h, &b);
    assert_eq!(c.kind, ErrorKind::ServerError, "{c:?}");
    assert!(c.retryable);
    assert_eq!(c.code.as_deref(), Some("server_error"));

    // Not streamed: a 502.
    let (s, h, b) = fault_response(&mock.url(), "test/stream-error", false).await;
    assert_eq!(s, 502);
    assert_eq!(header(&h, "x-mock-fault"), Some("stream-error"));
    let c = classify(s, &h, &b);
    assert_eq!(c.kind, ErrorKind::Unavailable, "{c:?}");
    assert!(c.retryable);
    assert_eq!(mock.stats().faults.get("stream-error"), Some(&2));
    mock.shutdown().await;
}

#[tokio::test]
async fn reset_is_a_connection_error() {
    let mock = start(fault_scenario()).await;
    let c = client();
    for stream in [false, true] {
        let err = chat(&c, &mock.url(), &chat_body("test/reset", "hi", 64, stream))
            .await
            .expect_err("the connection is reset before any response");
        let text = format!("{err:?}");
        let k = llm_resilience::classify_transport(&text);
        assert_eq!(k.kind, ErrorKind::Network, "{text}: {k:?}");
        assert!(k.retryable);
    }
    // The server still serves new connections afterwards.
    let r = chat(&c, &mock.url(), &chat_body(PRIMARY, "hi", 64, false))
        .await
        .expect("a fresh connection works");
    assert_eq!(r.status(), 200);
    assert_eq!(mock.stats().faults.get("reset"), Some(&2));
    assert_eq!(mock.stats().resets, 2);
    mock.shutdown().await;
}

#[tokio::test]
async fn reset_mid_stream_after_chunks() {
    let mock = start(fault_scenario()).await;
    let r = chat(
        &client(),
        &mock.url(),
        &chat_body("test/reset-mid", "hi", 64, true),
    )
    .await
    .expect("headers arrive");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("x-mock-fault")
            .and_then(|v| v.to_str().ok()),
        Some("reset")
    );
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let mut error = None;
    while let Some(item) = body.next().await {
        match item {
            Ok(b) => text.push_str(&String::from_utf8_lossy(&b)),
            Err(e) => {
                error = Some(format!("{e:?}"));
                break;
            }
        }
    }
    let error = error.expect("the stream ends with a connection error");
    assert!(!text.contains("[DONE]"));
    let chunks = sse_data(&text);
    assert!(
        chunks.len() <= 2,
        "at most the two promised chunks: {chunks:?}"
    );
    let k = llm_resilience::classify_transport(&error);
    assert_eq!(k.kind, ErrorKind::Network, "{error}: {k:?}");
    mock.shutdown().await;
}

#[tokio::test]
async fn slow_answers_arrive_late_with_the_fault_header() {
    let mock = start(fault_scenario()).await;
    // A client with a short timeout gives up (the outcome a worker sees)…
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .expect("client");
    let err = chat(
        &impatient,
        &mock.url(),
        &chat_body("test/slow", "hi", 64, false),
    )
    .await
    .expect_err("times out");
    assert!(err.is_timeout(), "{err:?}");
    // …a patient one gets the normal answer, marked slow.
    let (s, h, b) = fault_response(&mock.url(), "test/slow", false).await;
    assert_eq!(s, 200);
    assert_eq!(header(&h, "x-mock-fault"), Some("slow"));
    let v: Value = serde_json::from_str(&b).expect("json");
    assert!(v["choices"][0]["message"]["content"].is_string());
    mock.shutdown().await;
}

#[tokio::test]
async fn context_overflow_states_window_and_request() {
    let mock = start(fault_scenario()).await;
    let big =
        "Pesanan TN-2611-12345 · AWB JNE0012345678 · Dikemas di gudang CGK-2 📦\n".repeat(900);
    let (s, h, b) = chat_parts(&mock.url(), &chat_body(PRIMARY, &big, 512, false)).await;
    assert_eq!(s, 400);
    assert_eq!(header(&h, "x-mock-fault"), Some("context-overflow"));
    let c = classify(s, &h, &b);
    assert_eq!(c.kind, ErrorKind::ContextOverflow, "{c:?}");
    assert_eq!(c.limit_tokens, Some(16_000));
    // The request size the message states is the exact count plus max_tokens.
    let tok = llm_resilience::tokens::Tokenizer::new(llm_resilience::tokens::Encoding::O200kBase)
        .expect("tables");
    let msgs = [
        llm_resilience::chat::Message::new(
            llm_resilience::chat::Role::System,
            "You are a support bot.",
        ),
        llm_resilience::chat::Message::new(llm_resilience::chat::Role::User, big.clone()),
    ];
    let exact =
        llm_resilience::tokens::TokenCounter::count_messages(&tok, &msgs, &[]).expect("count");
    assert_eq!(c.requested_tokens, Some(exact + 512));
    // The fallback's window is larger: the same request is answered there.
    let r = chat(
        &client(),
        &mock.url(),
        &chat_body(FALLBACK, &big, 512, false),
    )
    .await
    .expect("response");
    assert_eq!(r.status(), 200);
    mock.shutdown().await;
}

#[tokio::test]
async fn flagged_message_gets_moderation_403() {
    let mock = start(fault_scenario()).await;
    let msg = format!(
        "I know where your courier lives {}",
        mock_openrouter::workload::FLAGGED_MARKER
    );
    let (s, h, b) = chat_parts(&mock.url(), &chat_body(PRIMARY, &msg, 256, false)).await;
    assert_eq!(s, 403);
    assert_eq!(header(&h, "x-mock-fault"), Some("moderation"));
    let v: Value = serde_json::from_str(&b).expect("json");
    assert_eq!(
        v["error"]["metadata"]["reasons"][0],
        "harassment/threatening"
    );
    assert_eq!(v["error"]["metadata"]["model_slug"], PRIMARY);
    let c = classify(s, &h, &b);
    assert_eq!(c.kind, ErrorKind::Moderation, "{c:?}");
    assert!(!c.retryable);
    mock.shutdown().await;
}

#[tokio::test]
async fn missing_key_is_401_auth() {
    let mock = start(fault_scenario()).await;
    let c = client();
    let r = c
        .post(format!("{}/api/v1/chat/completions", mock.url()))
        .json(&chat_body(PRIMARY, "hi", 64, false))
        .send()
        .await
        .expect("response");
    let (s, h, b) = parts(r).await;
    assert_eq!(s, 401);
    assert_eq!(classify(s, &h, &b).kind, ErrorKind::Auth);
    let r = c
        .get(format!("{}/api/v1/key", mock.url()))
        .send()
        .await
        .expect("response");
    assert_eq!(r.status(), 401);
    assert_eq!(mock.stats().unauthorized, 2);
    assert_eq!(mock.stats().requests, 0);
    mock.shutdown().await;
}

/// A model whose completion tokens cost a dollar per thousand: credit runs out fast.
fn pricey() -> Value {
    json!({"context_window": 16000, "latency_ms": [1, 2], "token_ratio_percent": 100,
        "usd_per_million_prompt": 0.0, "usd_per_million_completion": 1000.0, "provider": "OpenAI"})
}

#[tokio::test]
async fn credits_402_says_what_can_be_afforded() {
    let s = scenario(
        &[("test/pricey", pricey())],
        json!([]),
        json!({"limit_usd": 0.1, "usage_usd": 0.0}),
    );
    let mock = start(s).await;
    let (st, h, b) = chat_parts(&mock.url(), &chat_body("test/pricey", "hi", 512, false)).await;
    assert_eq!(st, 402);
    assert_eq!(header(&h, "x-mock-fault"), Some("credits"));
    let c = classify(st, &h, &b);
    assert_eq!(c.kind, ErrorKind::QuotaExhausted, "{c:?}");
    assert!(!c.retryable);
    let v: Value = serde_json::from_str(&b).expect("json");
    let msg = v["error"]["message"].as_str().expect("message");
    let a = llm_resilience::credits::suggest_max_tokens(msg).expect("a number");
    // $0.1 at $0.001 per token.
    assert_eq!(a.affordable_tokens, 100);
    assert_eq!(a.requested_tokens, Some(512));
    // Asking for what it can afford works, and spends the key's money.
    let r = chat(
        &client(),
        &mock.url(),
        &chat_body("test/pricey", "hi", 100, false),
    )
    .await
    .expect("response");
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.expect("json");
    let cost = answer["usage"]["cost"].as_f64().expect("cost");
    assert!(cost > 0.0);
    let key: Value = get_json(&client(), &mock.url(), "/api/v1/key").await;
    let usage = key["data"]["usage"].as_f64().expect("usage");
    assert!((usage - cost).abs() < 1e-12, "{usage} vs {cost}");
    let remaining = key["data"]["limit_remaining"].as_f64().expect("remaining");
    assert!((remaining - (0.1 - cost)).abs() < 1e-12);
    assert!((mock.stats().spend_usd - cost).abs() < 1e-12);
    mock.shutdown().await;
}

#[tokio::test]
async fn credits_at_zero_402_without_a_number_until_a_top_up() {
    let s = scenario(
        &[("test/pricey", pricey())],
        json!([{"type": "top-up", "at_ms": 3_600_000, "usd": 5.0}]),
        json!({"limit_usd": 1.0, "usage_usd": 1.0}),
    );
    let mock = start(s).await;
    let (st, h, b) = chat_parts(&mock.url(), &chat_body("test/pricey", "hi", 512, false)).await;
    assert_eq!(st, 402);
    let c = classify(st, &h, &b);
    assert_eq!(c.kind, ErrorKind::QuotaExhausted);
    let v: Value = serde_json::from_str(&b).expect("json");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(msg.contains("Insufficient credits"), "{msg}");
    assert_eq!(llm_resilience::credits::suggest_max_tokens(msg), None);
    mock.shutdown().await;

    // A top-up that is due raises the limit: the same request is answered.
    let s = scenario(
        &[("test/pricey", pricey())],
        json!([{"type": "top-up", "at_ms": 0, "usd": 5.0}]),
        json!({"limit_usd": 1.0, "usage_usd": 1.0}),
    );
    let mock = start(s).await;
    let key: Value = get_json(&client(), &mock.url(), "/api/v1/key").await;
    assert_eq!(key["data"]["limit"], 6.0);
    assert_eq!(key["data"]["limit_remaining"], 5.0);
    let r = chat(
        &client(),
        &mock.url(),
        &chat_body("test/pricey", "hi", 512, false),
    )
    .await
    .expect("response");
    assert_eq!(r.status(), 200);
    mock.shutdown().await;
}

#[tokio::test]
async fn share_draws_are_deterministic() {
    // Half of the primary's requests fail; the same scenario fails the same requests.
    let s = || {
        scenario(
            &[],
            json!([{"type": "outage", "model": PRIMARY, "from_ms": 0, "to_ms": 3_600_000,
                "share": 0.5, "status": 503}]),
            json!({"limit_usd": null}),
        )
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mock = start(s()).await;
        let mut statuses = Vec::new();
        for _ in 0..30 {
            let r = chat(&client(), &mock.url(), &chat_body(PRIMARY, "hi", 64, false))
                .await
                .expect("response");
            statuses.push(r.status().as_u16());
        }
        let stats = mock.stats();
        assert_eq!(stats.in_outage_window.get(PRIMARY), Some(&30));
        let failed = statuses.iter().filter(|s| **s == 503).count() as u64;
        assert_eq!(stats.faults.get("outage").copied().unwrap_or(0), failed);
        assert_eq!(
            stats.ok_per_model.get(PRIMARY).copied().unwrap_or(0),
            30 - failed
        );
        assert!((5..=25).contains(&failed), "{failed} of 30 at share 0.5");
        runs.push(statuses);
        mock.shutdown().await;
    }
    assert_eq!(runs[0], runs[1]);
}
