//! HTTP to OpenRouter (or the mock): chat completions as JSON or SSE, the key's credit, the
//! models' windows.
//!
//! Why the client reports raw material instead of errors: every failure — an error status, a
//! 200 whose body or SSE chunk carries an error, a reset, a timeout — goes to the policy engine
//! for classification, so this module only says what arrived (status, headers, body, or the
//! transport error's text) and never decides what it means. The API key only ever goes into
//! the `Authorization` header; nothing here formats it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use llm_resilience::chat::Message;
use serde::Serialize;

use crate::sse::{Frame, SseDecoder};

/// The mock's header naming the fault it injected on purpose.
pub const FAULT_HEADER: &str = "x-mock-fault";

/// Bodies kept for classification are cut to this many bytes (the classifier reads less).
const MAX_KEPT_BODY: usize = 64 * 1024;

/// How one request ended.
#[derive(Debug, Clone)]
pub enum CallResult {
    /// An answer.
    Answer {
        /// The HTTP status.
        status: u16,
        /// `usage.prompt_tokens`, when reported.
        prompt_tokens: Option<u64>,
        /// The `x-mock-fault` header (a `slow` answer still answers).
        fault: Option<String>,
    },
    /// An error response, a 200 with an error body, or an SSE error chunk.
    Failed {
        /// The HTTP status.
        status: u16,
        /// The response headers.
        headers: Vec<(String, String)>,
        /// The error body or chunk text.
        body: Vec<u8>,
        /// The `x-mock-fault` header.
        fault: Option<String>,
    },
    /// No (complete) response: connection refused or reset, timeout, cut stream.
    Transport {
        /// The status, if headers had arrived before the failure.
        status: Option<u16>,
        /// The error as the HTTP client describes it (its whole source chain).
        message: String,
        /// The `x-mock-fault` header, if headers had arrived.
        fault: Option<String>,
    },
}

/// Why a non-chat call (models, key) failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    /// The request failed or the status was not 200.
    #[error("{what}: {message}")]
    Http {
        /// Which call.
        what: &'static str,
        /// What went wrong (status and body start, or the transport error).
        message: String,
    },
}

/// The HTTP client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    max_tokens: u64,
    stream: bool,
}

/// The whole source chain of an error, `outer: inner: …`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn header_pairs(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

fn keep(mut body: Vec<u8>) -> Vec<u8> {
    body.truncate(MAX_KEPT_BODY);
    body
}

impl Client {
    /// A client for `base_url` (e.g. `http://127.0.0.1:PORT/api/v1`) with a per-request timeout.
    pub fn new(base_url: &str, api_key: &str, timeout: Duration) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| ClientError::Build(chain(&e)))?;
        Ok(Client {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
        })
    }

    async fn get(&self, path: &str, what: &'static str) -> Result<String, ClientError> {
        let err = |message: String| ClientError::Http { what, message };
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| err(chain(&e)))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| err(chain(&e)))?;
        if status != 200 {
            let start: String = body.chars().take(200).collect();
            return Err(err(format!("status {status}: {start}")));
        }
        Ok(body)
    }

    /// `POST url` with an empty body (the mock's clock reset); any 2xx is success.
    pub async fn post_empty(&self, url: &str) -> Result<(), ClientError> {
        let err = |message: String| ClientError::Http {
            what: "POST /mock/reset",
            message,
        };
        let response = self
            .http
            .post(url)
            .send()
            .await
            .map_err(|e| err(chain(&e)))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(err(format!("status {}", response.status().as_u16())))
        }
    }

    /// `GET /models`: each model's context window.
    pub async fn context_windows(&self) -> Result<HashMap<String, u64>, ClientError> {
        let body = self.get("/models", "GET /models").await?;
        let value: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| ClientError::Http {
                what: "GET /models",
                message: e.to_string(),
            })?;
        let mut windows = HashMap::new();
        if let Some(data) = value.get("data").and_then(|d| d.as_array()) {
            for m in data {
                if let (Some(id), Some(len)) = (
                    m.get("id").and_then(|v| v.as_str()),
                    m.get("context_length").and_then(|v| v.as_u64()),
                ) {
                    windows.insert(id.to_string(), len);
                }
            }
        }
        Ok(windows)
    }

    /// `GET /key`: the body, for the credit monitor.
    pub async fn key(&self) -> Result<String, ClientError> {
        self.get("/key", "GET /key").await
    }

    /// One chat completion; reads an SSE stream to its end.
    pub async fn chat(
        &self,
        model: &str,
        messages: &[Message],
        max_tokens: u64,
        stream: bool,
    ) -> CallResult {
        let request = ChatRequest {
            model,
            messages,
            max_tokens,
            stream,
        };
        let response = match self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .bearer_auth(&self.api_key)
            .json(&request)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return CallResult::Transport {
                    status: None,
                    message: chain(&e),
                    fault: None,
                };
            }
        };
        let status = response.status().as_u16();
        let headers = header_pairs(response.headers());
        let fault = response
            .headers()
            .get(FAULT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status == 200 && stream {
            return read_sse(response, headers, fault).await;
        }
        // An answer is read whole (its usage is at the end); an error body only as far as it
        // is kept for classification, so a runaway error page costs bounded memory.
        let cap = if status == 200 {
            usize::MAX
        } else {
            MAX_KEPT_BODY
        };
        let body = match read_body(response, cap).await {
            Ok(b) => b,
            Err(e) => {
                return CallResult::Transport {
                    status: Some(status),
                    message: chain(&e),
                    fault,
                };
            }
        };
        if status == 200 {
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(v) if v.get("error").is_none() && v.get("choices").is_some() => {
                    return CallResult::Answer {
                        status,
                        prompt_tokens: v.pointer("/usage/prompt_tokens").and_then(|t| t.as_u64()),
                        fault,
                    };
                }
                _ => {}
            }
        }
        CallResult::Failed {
            status,
            headers,
            body: keep(body),
            fault,
        }
    }
}

/// The first `cap` bytes of a response body; reading stops there (the rest is never read).
async fn read_body(response: reqwest::Response, cap: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut stream = response.bytes_stream();
    let mut body = Vec::new();
    while body.len() < cap {
        match stream.next().await {
            Some(chunk) => {
                let chunk = chunk?;
                let room = cap - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            None => break,
        }
    }
    Ok(body)
}

/// Reads an SSE stream to its end: the [`SseDecoder`] finds the frames, this does the IO.
async fn read_sse(
    response: reqwest::Response,
    headers: Vec<(String, String)>,
    fault: Option<String>,
) -> CallResult {
    let mut stream = response.bytes_stream();
    let mut decoder = SseDecoder::new();
    let mut prompt_tokens = None;
    loop {
        match stream.next().await {
            Some(Ok(bytes)) => {
                for frame in decoder.push(&bytes) {
                    match frame {
                        Frame::Done => {
                            return CallResult::Answer {
                                status: 200,
                                prompt_tokens,
                                fault,
                            };
                        }
                        Frame::Error(data) => {
                            return CallResult::Failed {
                                status: 200,
                                headers,
                                body: keep(data),
                                fault,
                            };
                        }
                        Frame::Usage(t) => prompt_tokens = Some(t),
                    }
                }
            }
            Some(Err(e)) => {
                return CallResult::Transport {
                    status: Some(200),
                    message: chain(&e),
                    fault,
                };
            }
            None => {
                return CallResult::Transport {
                    status: Some(200),
                    message:
                        "connection closed before message completed (stream ended without [DONE])"
                            .into(),
                    fault,
                };
            }
        }
    }
}

/// A monotonic stopwatch for latencies.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts now.
    pub fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    /// Milliseconds since the start.
    pub fn ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers one request with `status` and an endless body (chunked), and
    /// reports how many body bytes it managed to write before the client went away.
    async fn endless(status: u16) -> (String, tokio::task::JoinHandle<usize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = format!(
                "HTTP/1.1 {status} Oops\r\ncontent-type: text/html\r\ntransfer-encoding: chunked\r\n\r\n"
            );
            if socket.write_all(head.as_bytes()).await.is_err() {
                return 0;
            }
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
            let mut written = 0;
            // At most 256 MiB: a client that reads it all fails the test by its size.
            while written < 256 * 1024 * 1024 {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                written += 64 * 1024;
            }
            written
        });
        (url, server)
    }

    #[tokio::test]
    async fn an_endless_error_body_is_read_only_as_far_as_it_is_kept() {
        let (url, server) = endless(502).await;
        let client = Client::new(&url, "k", Duration::from_secs(30)).unwrap();
        match client.chat("m", &[], 10, false).await {
            CallResult::Failed { status, body, .. } => {
                assert_eq!(status, 502);
                assert_eq!(body.len(), MAX_KEPT_BODY);
            }
            other => panic!("expected a failed call, got {other:?}"),
        }
        drop(client);
        let written = server.await.unwrap();
        assert!(
            written < 64 * 1024 * 1024,
            "the client stopped reading: {written} bytes sent"
        );
    }
}
