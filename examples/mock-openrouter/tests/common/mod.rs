//! Helpers shared by the integration tests: a scenario builder and a client.

#![allow(dead_code, unreachable_pub)]

use mock_openrouter::{MockHandle, MockServer, Scenario};
use serde_json::{Value, json};

/// The worker's preference list: every scenario must serve both.
pub const PRIMARY: &str = "openai/gpt-4o-mini";
pub const FALLBACK: &str = "anthropic/claude-3.5-haiku";

/// A model entry with small latencies (tests stay fast).
pub fn model(window: u64, provider: &str) -> Value {
    json!({"context_window": window, "latency_ms": [1, 5], "token_ratio_percent": 100,
        "usd_per_million_prompt": 0.15, "usd_per_million_completion": 0.6, "provider": provider})
}

/// A scenario with the two worker models plus `extra` models, the given faults and account.
pub fn scenario(extra: &[(&str, Value)], faults: Value, account: Value) -> Scenario {
    let mut models = serde_json::Map::new();
    models.insert(PRIMARY.to_string(), model(16_000, "OpenAI"));
    models.insert(FALLBACK.to_string(), model(32_000, "Anthropic"));
    for (id, m) in extra {
        models.insert((*id).to_string(), m.clone());
    }
    let doc = json!({
        "name": "test", "description": "integration test", "seed": 5,
        "models": models, "account": account,
        "workload": {"jobs": 20, "sessions": 5, "arrival_ms": 1000, "long_share": 0.1,
            "stream_share": 0.5, "flagged_share": 0.2, "indonesian_share": 0.5},
        "faults": faults
    });
    Scenario::from_json(&doc.to_string()).expect("test scenario validates")
}

/// Starts a mock on a free loopback port.
pub async fn start(s: Scenario) -> MockHandle {
    MockServer::start(s, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("mock starts")
}

/// A plain client (no proxy, so loopback is reached directly).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// A chat request body.
pub fn chat_body(model: &str, content: &str, max_tokens: u64, stream: bool) -> Value {
    json!({"model": model, "max_tokens": max_tokens, "stream": stream,
        "messages": [{"role": "system", "content": "You are a support bot."},
                     {"role": "user", "content": content}]})
}

/// POSTs a chat completion with a bearer token.
pub async fn chat(
    c: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<reqwest::Response, reqwest::Error> {
    c.post(format!("{url}/api/v1/chat/completions"))
        .bearer_auth("sk-or-v1-test")
        .json(body)
        .send()
        .await
}

/// POSTs a chat completion and returns its status, headers and body.
pub async fn chat_parts(url: &str, body: &Value) -> (u16, Vec<(String, String)>, String) {
    parts(chat(&client(), url, body).await.expect("a response")).await
}

/// GETs `path` from the mock and decodes its JSON answer. The bearer token is sent on every
/// path: `/api/v1/key` and `/api/v1/credits` need one, the others ignore it.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    c: &reqwest::Client,
    url: &str,
    path: &str,
) -> T {
    c.get(format!("{url}{path}"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {path}, JSON: {e}"))
}

/// Status, headers as pairs, and body of a response.
pub async fn parts(r: reqwest::Response) -> (u16, Vec<(String, String)>, String) {
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r.text().await.expect("body");
    (status, headers, body)
}

/// The value of a header, if present.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Runs the core's classifier over a response.
pub fn classify(
    status: u16,
    headers: &[(String, String)],
    body: &str,
) -> llm_resilience::Classification {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    llm_resilience::classify::classify_response(Some(status), &pairs, body.as_bytes(), None)
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| {
            ev.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_string)
        })
        .collect()
}
