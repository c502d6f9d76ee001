//! The endpoints without faults: shapes of answers, streams, account, models, jobs, stats and
//! reset; loopback-only binding.

mod common;

use common::*;
use serde_json::{Value, json};

fn plain() -> mock_openrouter::Scenario {
    scenario(&[], json!([]), json!({"limit_usd": 10.0, "usage_usd": 1.5}))
}

#[tokio::test]
async fn json_answer_has_openrouter_shape_and_usage() {
    let mock = start(plain()).await;
    let r = chat(
        &client(),
        &mock.url(),
        &chat_body(
            PRIMARY,
            "Kak, pesanan TN-2611-10001 kok belum sampai? 😭",
            256,
            false,
        ),
    )
    .await
    .expect("response");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-mock-fault").is_none());
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], PRIMARY);
    assert_eq!(v["provider"], "OpenAI");
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("gen-")));
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    let content = choice["message"]["content"].as_str().expect("content");
    assert!(!content.is_empty());
    let u = &v["usage"];
    let prompt = u["prompt_tokens"].as_u64().expect("prompt_tokens");
    let completion = u["completion_tokens"].as_u64().expect("completion_tokens");
    assert_eq!(u["total_tokens"].as_u64(), Some(prompt + completion));
    assert!(prompt > 10 && completion > 0);
    let cost = u["cost"].as_f64().expect("cost");
    let expected = (prompt as f64 * 0.15 + completion as f64 * 0.6) / 1e6;
    assert!((cost - expected).abs() < 1e-15, "{cost} vs {expected}");
    let stats = mock.stats();
    assert_eq!(stats.answers, 1);
    assert_eq!(stats.prompt_tokens, prompt);
    assert_eq!(stats.completion_tokens, completion);
    assert_eq!(stats.ok_per_model.get(PRIMARY), Some(&1));
    mock.shutdown().await;
}

#[tokio::test]
async fn sse_stream_is_framed_like_openrouter() {
    let mock = start(plain()).await;
    let r = chat(
        &client(),
        &mock.url(),
        &chat_body(FALLBACK, "where is my order? 📦", 256, true),
    )
    .await
    .expect("response");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let body = r.text().await.expect("body");
    assert!(body.starts_with(": OPENROUTER PROCESSING\n\n"));
    assert!(body.ends_with("data: [DONE]\n\n"));
    let data = sse_data(&body);
    assert!(data.len() >= 4, "{data:?}");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk json"))
        .collect();
    let id = chunks[0]["id"].clone();
    let mut text = String::new();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id);
        if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    assert!(!text.is_empty());
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    let usage = &chunks[n - 1]["usage"];
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert!(usage["prompt_tokens"].as_u64().is_some_and(|p| p > 0));
    assert!(usage["cost"].as_f64().is_some_and(|c| c > 0.0));
    assert_eq!(mock.stats().answers, 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn key_credits_and_models() {
    let mock = start(plain()).await;
    let c = client();
    let key: Value = get_json(&c, &mock.url(), "/api/v1/key").await;
    let d = &key["data"];
    for f in [
        "label",
        "usage",
        "usage_daily",
        "usage_weekly",
        "usage_monthly",
        "limit",
        "limit_remaining",
        "limit_reset",
        "is_free_tier",
    ] {
        assert!(d.get(f).is_some(), "data.{f} missing: {d}");
    }
    assert_eq!(d["usage"], 1.5);
    assert_eq!(d["limit"], 10.0);
    assert_eq!(d["limit_remaining"], 8.5);
    let credits: Value = get_json(&c, &mock.url(), "/api/v1/credits").await;
    assert_eq!(credits["data"]["total_credits"], 10.0);
    assert_eq!(credits["data"]["total_usage"], 1.5);
    let models: Value = get_json(&c, &mock.url(), "/api/v1/models").await;
    let data = models["data"].as_array().expect("data");
    let primary = data.iter().find(|m| m["id"] == PRIMARY).expect("primary");
    assert_eq!(primary["context_length"], 16_000);
    assert_eq!(primary["pricing"]["prompt"], "0.00000015");
    assert_eq!(primary["pricing"]["completion"], "0.0000006");
    assert!(data.iter().any(|m| m["id"] == FALLBACK));
    // An unknown model id and an unknown path.
    let r = chat(&c, &mock.url(), &chat_body("openai/gpt-9", "hi", 16, false))
        .await
        .expect("response");
    assert_eq!(r.status(), 400);
    let r = c
        .get(format!("{}/api/v1/nothing", mock.url()))
        .send()
        .await
        .expect("response");
    assert_eq!(r.status(), 404);
    // A malformed request body.
    let r = c
        .post(format!("{}/api/v1/chat/completions", mock.url()))
        .bearer_auth("k")
        .body("{not json")
        .send()
        .await
        .expect("response");
    assert_eq!(r.status(), 400);
    mock.shutdown().await;
}

#[tokio::test]
async fn jobs_endpoint_serves_the_generated_workload() {
    let s = plain();
    let expected = serde_json::to_value(mock_openrouter::generate(&s)).expect("json");
    let mock = start(s).await;
    let got: Value = get_json(&client(), &mock.url(), "/mock/jobs").await;
    assert_eq!(got, expected);
    assert_eq!(got["scenario"], "test");
    assert_eq!(got["jobs"].as_array().map(Vec::len), Some(20));
    let job = &got["jobs"][0];
    for f in [
        "id",
        "session",
        "arrive_ms",
        "long",
        "stream",
        "flagged",
        "history",
        "message",
    ] {
        assert!(job.get(f).is_some(), "job.{f} missing");
    }
    mock.shutdown().await;
}

#[tokio::test]
async fn stats_count_and_reset_clears() {
    let s = scenario(
        &[],
        json!([{"type": "outage", "model": PRIMARY, "from_ms": 0, "to_ms": 3_600_000, "status": 502}]),
        json!({"limit_usd": 10.0, "usage_usd": 0.0}),
    );
    let mock = start(s).await;
    let c = client();
    for _ in 0..3 {
        let r = chat(&c, &mock.url(), &chat_body(PRIMARY, "hi", 32, false))
            .await
            .expect("response");
        assert_eq!(r.status(), 502);
    }
    let r = chat(&c, &mock.url(), &chat_body(FALLBACK, "hi", 32, false))
        .await
        .expect("response");
    assert_eq!(r.status(), 200);
    let stats: mock_openrouter::Stats = get_json(&c, &mock.url(), "/mock/stats").await;
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.requests_per_model.get(PRIMARY), Some(&3));
    assert_eq!(stats.requests_per_model.get(FALLBACK), Some(&1));
    assert_eq!(stats.errors_per_model.get(PRIMARY), Some(&3));
    assert_eq!(stats.ok_per_model.get(FALLBACK), Some(&1));
    assert_eq!(stats.in_outage_window.get(PRIMARY), Some(&3));
    assert_eq!(stats.faults.get("outage"), Some(&3));
    assert_eq!(stats.answers, 1);
    assert!(stats.spend_usd > 0.0);

    let r = c
        .post(format!("{}/mock/reset", mock.url()))
        .send()
        .await
        .expect("reset");
    assert_eq!(r.status(), 200);
    let after = mock.stats();
    assert_eq!(after.requests, 0);
    assert!(after.faults.is_empty());
    assert_eq!(after.spend_usd, 0.0);
    assert_eq!(after.clock_resets, 1);
    mock.reset();
    assert_eq!(mock.stats().clock_resets, 2);
    // The account is back to the scenario's.
    let key: Value = get_json(&c, &mock.url(), "/api/v1/key").await;
    assert_eq!(key["data"]["usage"], 0.0);
    mock.shutdown().await;
}

#[tokio::test]
async fn binds_loopback_only() {
    for addr in ["0.0.0.0:0", "[::1]:0", "192.0.2.1:0"] {
        let err = mock_openrouter::MockServer::start(plain(), addr.parse().expect("addr"))
            .await
            .expect_err("not loopback v4");
        assert!(
            matches!(err, mock_openrouter::MockError::NotLoopback(_)),
            "{addr}: {err}"
        );
    }
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let mock = start(plain()).await;
    let url = mock.url();
    let r = client()
        .get(format!("{url}/api/v1/models"))
        .send()
        .await
        .expect("served");
    assert_eq!(r.status(), 200);
    mock.shutdown().await;
    assert_not_served(&url).await;
}

#[tokio::test]
async fn dropping_the_handle_stops_serving() {
    let mock = start(plain()).await;
    let url = mock.url();
    drop(mock);
    assert_not_served(&url).await;
}

/// A fresh connection to `url` is refused: nothing serves there any more.
async fn assert_not_served(url: &str) {
    let refused = client().get(format!("{url}/api/v1/models")).send().await;
    assert!(refused.is_err(), "{url} still serves: {refused:?}");
}
