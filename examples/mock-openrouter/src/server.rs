//! The HTTP server: hyper 1 on a tokio listener bound to loopback.
//!
//! One task accepts connections; each connection runs hyper's HTTP/1 server in its own task. A
//! `reset` fault must look like a real network failure to the client, so the mock does what a
//! crashing peer does: it sets `SO_LINGER` to 0 on the socket and drops the connection, which
//! makes the kernel send a TCP RST (for a stream, after the chunks it was told to send). To reach
//! the socket after hyper took ownership of the stream, each connection keeps a duplicate of the
//! socket's descriptor (`try_clone`) and a kill switch the request handler can pull.
//!
//! All state (clock, sequence numbers, account, statistics) sits behind one mutex that is never
//! held across an await, so the mock can answer many concurrent requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, watch};

use crate::bodies::{self, Canned};
use crate::rng;
use crate::scenario::{Fault, FaultAction, Scenario, ScenarioError, TopUp};
use crate::workload::{self, Counter, FLAGGED_MARKER};

/// The largest request body read, in bytes (a long conversation is a few hundred kilobytes).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

/// `max_tokens` assumed when a request does not say (for the window and credit checks).
pub const DEFAULT_MAX_TOKENS: u64 = 1024;

/// Gap between streamed chunks: long enough that each chunk leaves the socket before the next
/// (so a mid-stream reset or error comes after the chunks the scenario promised).
const CHUNK_GAP_MS: u64 = 15;

type Body = BoxBody<Bytes, std::io::Error>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The mock binds the loopback interface only.
    #[error("the mock binds 127.0.0.1 only, not {0}")]
    NotLoopback(SocketAddr),
    /// The address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The IO error.
        source: std::io::Error,
    },
    /// The scenario does not validate.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
}

/// What the server saw since its clock started (`GET /mock/stats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Milliseconds since the clock started.
    pub elapsed_ms: u64,
    /// Chat completion requests (every one that named a served model).
    pub requests: u64,
    /// Chat completion requests per model.
    pub requests_per_model: BTreeMap<String, u64>,
    /// 2xx responses per model (streams that then failed mid-way included).
    pub ok_per_model: BTreeMap<String, u64>,
    /// Error responses and resets per model.
    pub errors_per_model: BTreeMap<String, u64>,
    /// Responses per fault type: the scenario's (`outage`, `rate-limit`, `overloaded`, `slow`,
    /// `gateway-timeout`, `stream-error`, `reset`) and the intrinsic ones (`context-overflow`,
    /// `credits`, `moderation`).
    pub faults: BTreeMap<String, u64>,
    /// Requests that arrived inside an `outage` window for their model, per model (whatever
    /// answered them: the share may have spared some, an intrinsic error may have come first).
    pub in_outage_window: BTreeMap<String, u64>,
    /// Completed answers (JSON answers and streams that reached `[DONE]`).
    pub answers: u64,
    /// Prompt tokens billed (answers only).
    pub prompt_tokens: u64,
    /// Completion tokens billed.
    pub completion_tokens: u64,
    /// USD spent since the clock started.
    pub spend_usd: f64,
    /// Connections reset on purpose (TCP RST), before a response or mid-stream (the same
    /// number as `faults["reset"]`, kept apart for readers that only want the network count).
    pub resets: u64,
    /// Requests refused with 401.
    pub unauthorized: u64,
    /// `POST /mock/reset` calls since the server started (not cleared by a reset).
    pub clock_resets: u64,
}

/// The account as `GET /api/v1/key` reports it.
#[derive(Debug, Clone, PartialEq)]
struct AccountState {
    usage_usd: f64,
}

struct State {
    started: Instant,
    seq: u64,
    stats: Stats,
    account: AccountState,
}

struct Shared {
    scenario: Scenario,
    faults: Vec<Fault>,
    top_ups: Vec<TopUp>,
    jobs_json: Bytes,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the counters inconsistent in a way that
        // matters to a test double: keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key's limit now: the scenario's plus the top-ups whose time has come.
    fn limit_usd(&self, elapsed_ms: u64) -> Option<f64> {
        self.scenario.account.limit_usd.map(|base| {
            base + self
                .top_ups
                .iter()
                .filter(|t| t.at_ms <= elapsed_ms)
                .map(|t| t.usd)
                .sum::<f64>()
        })
    }
}

/// Starts mock servers.
#[derive(Debug)]
pub struct MockServer;

/// A running mock: its address, its statistics, and the way to stop it.
///
/// Dropping the handle stops the server too (its stop channel closes), so a test that fails
/// half-way leaves no listener behind; [`MockHandle::shutdown`] also waits for it to end.
#[derive(Debug)]
pub struct MockHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("scenario", &self.scenario.name)
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// Validates the scenario, generates its workload, binds `addr` (which must be a
    /// `127.0.0.1` address; port 0 picks a free port) and starts serving on the current tokio
    /// runtime.
    pub async fn start(scenario: Scenario, addr: SocketAddr) -> Result<MockHandle, MockError> {
        if addr.ip() != std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST) {
            return Err(MockError::NotLoopback(addr));
        }
        scenario.validate()?;
        let jobs = workload::generate(&scenario);
        let jobs_json = Bytes::from(serde_json::to_vec(&jobs).unwrap_or_default());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| MockError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| MockError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            faults: scenario.request_faults(),
            top_ups: scenario.top_ups(),
            jobs_json,
            state: Mutex::new(State {
                started: Instant::now(),
                seq: 0,
                stats: Stats::default(),
                account: AccountState {
                    usage_usd: scenario.account.usage_usd,
                },
            }),
            scenario,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        Ok(MockHandle {
            addr: local,
            shared,
            stop,
            task,
        })
    }
}

impl MockHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the server saw so far (the same as `GET /mock/stats`).
    pub fn stats(&self) -> Stats {
        stats_now(&self.shared)
    }

    /// Restarts the scenario clock, the counters and the account (as `POST /mock/reset`).
    pub fn reset(&self) {
        reset_state(&self.shared);
    }

    /// Stops accepting, drops every open connection and waits for the server task to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn stats_now(shared: &Shared) -> Stats {
    let st = shared.lock();
    let mut s = st.stats.clone();
    s.elapsed_ms = st.started.elapsed().as_millis() as u64;
    s
}

fn reset_state(shared: &Shared) {
    let mut st = shared.lock();
    let clock_resets = st.stats.clock_resets + 1;
    st.started = Instant::now();
    st.seq = 0;
    st.stats = Stats {
        clock_resets,
        ..Stats::default()
    };
    st.account = AccountState {
        usage_usd: shared.scenario.account.usage_usd,
    };
}

/// Per-connection kill switch: the handler pulls it to reset the connection.
struct ConnCtl {
    reset: AtomicBool,
    kill: Notify,
}

impl ConnCtl {
    fn pull(&self) {
        self.reset.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                conns.spawn(serve_connection(stream, shared.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    // A second descriptor for the same socket, to set SO_LINGER after hyper owns the stream.
    let dup = stream.into_std().and_then(|s| {
        let dup = s.try_clone()?;
        Ok((tokio::net::TcpStream::from_std(s)?, dup))
    });
    let Ok((stream, dup)) = dup else { return };
    let ctl = Arc::new(ConnCtl {
        reset: AtomicBool::new(false),
        kill: Notify::new(),
    });
    let svc_ctl = ctl.clone();
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        let ctl = svc_ctl.clone();
        async move { Ok::<_, std::convert::Infallible>(route(req, shared, ctl).await) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        _ = ctl.kill.notified() => {}
    }
    if ctl.reset.load(Ordering::SeqCst) {
        // SO_LINGER 0: closing the last descriptor sends RST instead of FIN.
        let _ = socket2::SockRef::from(&dup).set_linger(Some(Duration::ZERO));
    }
    drop(dup);
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn json_response(status: u16, headers: &[(String, String)], body: &Value) -> Response<Body> {
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(name, value);
        }
    }
    resp
}

fn canned(c: &Canned) -> Response<Body> {
    json_response(c.status, &c.headers, &c.body)
}

fn authorized<B>(req: &Request<B>) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| !t.trim().is_empty())
}

async fn route(req: Request<Incoming>, shared: Arc<Shared>, ctl: Arc<ConnCtl>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::POST, "/api/v1/chat/completions") => chat(req, shared, ctl).await,
        (Method::GET, "/api/v1/key") => {
            if !authorized(&req) {
                return unauthorized(&shared);
            }
            json_response(200, &[], &key_body(&shared))
        }
        (Method::GET, "/api/v1/credits") => {
            if !authorized(&req) {
                return unauthorized(&shared);
            }
            json_response(200, &[], &credits_body(&shared))
        }
        (Method::GET, "/api/v1/models") => json_response(200, &[], &models_body(&shared)),
        (Method::GET, "/mock/jobs") => {
            let mut resp = Response::new(full(shared.jobs_json.clone()));
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            resp
        }
        (Method::GET, "/mock/stats") => {
            let stats = serde_json::to_value(stats_now(&shared)).unwrap_or(Value::Null);
            json_response(200, &[], &stats)
        }
        (Method::POST, "/mock/reset") => {
            reset_state(&shared);
            json_response(200, &[], &json!({"ok": true}))
        }
        _ => canned(&bodies::not_found(&path)),
    }
}

fn unauthorized(shared: &Shared) -> Response<Body> {
    shared.lock().stats.unauthorized += 1;
    canned(&bodies::unauthorized())
}

fn key_body(shared: &Shared) -> Value {
    let st = shared.lock();
    let elapsed = st.started.elapsed().as_millis() as u64;
    let usage = st.account.usage_usd;
    drop(st);
    let limit = shared.limit_usd(elapsed);
    json!({"data": {
        "label": "sk-or-v1-moc...k00",
        "usage": usage, "usage_daily": usage, "usage_weekly": usage, "usage_monthly": usage,
        "byok_usage": 0.0,
        "limit": limit,
        "limit_remaining": limit.map(|l| (l - usage).max(0.0)),
        "limit_reset": null,
        "include_byok_in_limit": false,
        "is_free_tier": shared.scenario.account.is_free_tier,
        "is_provisioning_key": false,
        "rate_limit": {"requests": -1, "interval": "10s"}
    }})
}

fn credits_body(shared: &Shared) -> Value {
    let st = shared.lock();
    let elapsed = st.started.elapsed().as_millis() as u64;
    let usage = st.account.usage_usd;
    drop(st);
    let total = shared.limit_usd(elapsed).unwrap_or(usage);
    json!({"data": {"total_credits": total, "total_usage": usage}})
}

fn models_body(shared: &Shared) -> Value {
    let data: Vec<Value> = shared
        .scenario
        .models
        .iter()
        .map(|(id, m)| {
            json!({"id": id, "name": id, "created": 1_721_260_800u64,
                "description": format!("{id} as served by the mock (scenario window)"),
                "context_length": m.context_window,
                "pricing": {
                    "prompt": per_token_price(m.usd_per_million_prompt),
                    "completion": per_token_price(m.usd_per_million_completion),
                    "request": "0", "image": "0"},
                "top_provider": {"context_length": m.context_window,
                    "max_completion_tokens": null, "is_moderated": true}})
        })
        .collect();
    json!({ "data": data })
}

/// USD per token as OpenRouter writes it: a decimal string without float noise.
fn per_token_price(usd_per_million: f64) -> String {
    let text = format!("{:.15}", usd_per_million / 1e6);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// The parts of a chat request the mock reads.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: Option<String>,
    #[serde(default)]
    messages: Vec<llm_resilience::chat::Message>,
    max_tokens: Option<u64>,
    #[serde(default)]
    stream: bool,
}

/// Draw slots for the per-request RNG (so adding a draw never shifts another).
const DRAW_LATENCY: u64 = u64::MAX;
const DRAW_REPLY: u64 = u64::MAX - 1;
const DRAW_GATEWAY: u64 = u64::MAX - 2;

fn now_epoch() -> (u64, u64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.as_millis() as u64)
}

async fn chat(req: Request<Incoming>, shared: Arc<Shared>, ctl: Arc<ConnCtl>) -> Response<Body> {
    if !authorized(&req) {
        return unauthorized(&shared);
    }
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return canned(&bodies::bad_request(&format!(
                "cannot read the request body: {e}"
            )));
        }
    };
    let mut request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return canned(&bodies::bad_request(&format!("Invalid JSON body: {e}"))),
    };
    let Some(model) = request.model.clone() else {
        return canned(&bodies::bad_request("No model specified"));
    };
    let Some(spec) = shared.scenario.models.get(&model).cloned() else {
        return canned(&bodies::unknown_model(&model));
    };
    if request.messages.is_empty() {
        return canned(&bodies::bad_request("Input required: specify \"messages\""));
    }
    let max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let seed = shared.scenario.seed;

    // Arrival: sequence number, clock, and the counters that do not depend on the outcome.
    let (seq, t_ms) = {
        let mut st = shared.lock();
        st.seq += 1;
        let seq = st.seq;
        let t = st.started.elapsed().as_millis() as u64;
        st.stats.requests += 1;
        *st.stats
            .requests_per_model
            .entry(model.clone())
            .or_default() += 1;
        if shared
            .faults
            .iter()
            .any(|f| matches!(f.action, FaultAction::Outage { .. }) && f.matches(&model, t))
        {
            *st.stats.in_outage_window.entry(model.clone()).or_default() += 1;
        }
        (seq, t)
    };
    let [lo, hi] = spec.latency_ms;
    let latency = lo + ((hi - lo) as f64 * rng::unit_from(seed, seq, DRAW_LATENCY)) as u64;

    // Intrinsic checks first, as OpenRouter validates a request before routing it.
    // Counting a long conversation takes a while: off the runtime's threads, so a mock inside a
    // single-threaded test runtime keeps serving (and the worker's timers keep running).
    let messages = std::mem::take(&mut request.messages);
    let (messages, counted) = match tokio::task::spawn_blocking(move || {
        let n = Counter::get().messages(&messages);
        (messages, n)
    })
    .await
    {
        Ok(done) => done,
        Err(e) => {
            return canned(&bodies::internal_error(&format!(
                "token counting failed: {e}"
            )));
        }
    };
    request.messages = messages;
    let prompt_tokens = counted * u64::from(spec.token_ratio_percent) / 100;
    let intrinsic = if prompt_tokens + max_tokens > spec.context_window {
        Some(bodies::context_overflow(
            spec.context_window,
            prompt_tokens,
            max_tokens,
        ))
    } else if let Some(c) = credit_check(&shared, t_ms, &spec, prompt_tokens, max_tokens) {
        Some(c)
    } else {
        let last_user = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == llm_resilience::chat::Role::User);
        last_user
            .filter(|m| m.content.contains(FLAGGED_MARKER))
            .map(|m| bodies::moderation(&model, &spec.provider, &m.content))
    };
    if let Some(c) = intrinsic {
        sleep_ms(latency / 2).await;
        return error_out(&shared, &model, &c);
    }

    // The scenario's faults: first match wins, if its share draw says so.
    let fault = shared.faults.iter().enumerate().find_map(|(i, f)| {
        (f.matches(&model, t_ms) && rng::unit_from(seed, seq, i as u64) < f.share)
            .then_some(f.action)
    });
    let mut extra_delay = 0;
    let mut mid: Option<FaultAction> = None;
    match fault {
        Some(FaultAction::Outage { status }) => {
            sleep_ms(latency / 2).await;
            return error_out(&shared, &model, &bodies::outage(status, &spec.provider));
        }
        Some(FaultAction::RateLimit { retry_after_s }) => {
            sleep_ms(latency / 4).await;
            let (_, now_ms) = now_epoch();
            let c = bodies::rate_limit(
                &model,
                &spec.provider,
                retry_after_s,
                now_ms + retry_after_s * 1000,
            );
            return error_out(&shared, &model, &c);
        }
        Some(FaultAction::Overloaded) => {
            sleep_ms(latency / 2).await;
            return error_out(&shared, &model, &bodies::overloaded(&spec.provider));
        }
        Some(FaultAction::GatewayTimeout) => {
            sleep_ms(latency).await;
            let use_408 = rng::unit_from(seed, seq, DRAW_GATEWAY) < 0.5;
            return error_out(&shared, &model, &bodies::gateway_timeout(use_408));
        }
        Some(FaultAction::Slow { delay_ms }) => {
            count_fault(&shared, "slow");
            extra_delay = delay_ms;
        }
        Some(FaultAction::StreamError { .. }) if !request.stream => {
            sleep_ms(latency / 2).await;
            return error_out(
                &shared,
                &model,
                &bodies::stream_error_unstreamed(&spec.provider),
            );
        }
        Some(FaultAction::Reset { after_chunks }) if !request.stream || after_chunks.is_none() => {
            sleep_ms(latency / 2).await;
            {
                let mut st = shared.lock();
                *st.stats.faults.entry("reset".to_string()).or_default() += 1;
                st.stats.resets += 1;
                *st.stats.errors_per_model.entry(model.clone()).or_default() += 1;
            }
            ctl.pull();
            // The connection task drops the connection; no response is ever sent.
            return std::future::pending::<Response<Body>>().await;
        }
        Some(action @ (FaultAction::StreamError { .. } | FaultAction::Reset { .. })) => {
            mid = Some(action);
        }
        None => {}
    }

    // An answer.
    let reply = reply_text(seed, seq, &request.messages);
    let completion_tokens = Counter::get().text(&reply).min(max_tokens);
    let cost = (prompt_tokens as f64 * spec.usd_per_million_prompt
        + completion_tokens as f64 * spec.usd_per_million_completion)
        / 1e6;
    let usage = bodies::usage(prompt_tokens, completion_tokens, cost);
    let (created, _) = now_epoch();
    let id = format!("gen-{created}-mock{seq:06}");
    let headers = fault_header(extra_delay > 0, "slow");

    if !request.stream {
        sleep_ms(latency + extra_delay).await;
        bill(
            &shared,
            &model,
            prompt_tokens,
            completion_tokens,
            cost,
            true,
        );
        let body = bodies::completion(&id, &model, &spec.provider, created, &reply, "stop", &usage);
        return json_response(200, &headers, &body);
    }

    // A stream: an SSE comment, content chunks, then the finish and usage chunks (or the fault).
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let pieces = split_reply(&reply);
    let stream_shared = shared.clone();
    let stream_model = model.clone();
    let provider = spec.provider.clone();
    tokio::spawn(async move {
        sleep_ms(latency / 2 + extra_delay).await;
        if tx
            .send(Bytes::from_static(b": OPENROUTER PROCESSING\n\n"))
            .await
            .is_err()
        {
            return;
        }
        let gap = (latency / 2 / pieces.len().max(1) as u64).max(CHUNK_GAP_MS);
        for (i, piece) in pieces.iter().enumerate() {
            if let Some(action) = mid {
                let after = match action {
                    FaultAction::StreamError { after_chunks } => after_chunks,
                    FaultAction::Reset { after_chunks } => after_chunks.unwrap_or(0),
                    _ => u32::MAX,
                };
                if i as u32 == after {
                    break;
                }
            }
            let ev = bodies::content_event(&id, &stream_model, &provider, created, piece);
            if tx.send(Bytes::from(ev)).await.is_err() {
                return;
            }
            sleep_ms(gap).await;
        }
        match mid {
            Some(FaultAction::StreamError { .. }) => {
                count_fault(&stream_shared, "stream-error");
                {
                    let mut st = stream_shared.lock();
                    *st.stats
                        .ok_per_model
                        .entry(stream_model.clone())
                        .or_default() += 1;
                }
                let ev = bodies::midstream_error_event(&id, &stream_model, &provider, created);
                let _ = tx.send(Bytes::from(ev)).await;
            }
            Some(FaultAction::Reset { .. }) => {
                {
                    let mut st = stream_shared.lock();
                    *st.stats.faults.entry("reset".to_string()).or_default() += 1;
                    st.stats.resets += 1;
                    *st.stats
                        .ok_per_model
                        .entry(stream_model.clone())
                        .or_default() += 1;
                }
                // Let the chunks already written reach the client before the RST.
                sleep_ms(CHUNK_GAP_MS * 2).await;
                ctl.pull();
                // Keep the body open until the connection is gone: ending it here would let
                // hyper finish the chunked body cleanly before the reset.
                tx.closed().await;
            }
            _ => {
                let ev =
                    bodies::finish_events(&id, &stream_model, &provider, created, "stop", &usage);
                if tx.send(Bytes::from(ev)).await.is_ok() {
                    bill(
                        &stream_shared,
                        &stream_model,
                        prompt_tokens,
                        completion_tokens,
                        cost,
                        false,
                    );
                    let mut st = stream_shared.lock();
                    *st.stats
                        .ok_per_model
                        .entry(stream_model.clone())
                        .or_default() += 1;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    let fault_name = match mid {
        Some(a) => Some(a.name()),
        None if extra_delay > 0 => Some("slow"),
        None => None,
    };
    if let Some(name) = fault_name {
        h.insert("x-mock-fault", HeaderValue::from_static(name));
    }
    resp
}

fn fault_header(on: bool, name: &str) -> Vec<(String, String)> {
    if on {
        vec![("x-mock-fault".to_string(), name.to_string())]
    } else {
        Vec::new()
    }
}

async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn count_fault(shared: &Shared, name: &str) {
    *shared
        .lock()
        .stats
        .faults
        .entry(name.to_string())
        .or_default() += 1;
}

/// Counts an error response (by its `x-mock-fault`) and returns it.
fn error_out(shared: &Shared, model: &str, c: &Canned) -> Response<Body> {
    {
        let mut st = shared.lock();
        if let Some((_, fault)) = c.headers.iter().find(|(k, _)| k == "x-mock-fault") {
            *st.stats.faults.entry(fault.clone()).or_default() += 1;
        }
        *st.stats
            .errors_per_model
            .entry(model.to_string())
            .or_default() += 1;
    }
    canned(c)
}

/// Charges an answer to the account and counts it.
fn bill(shared: &Shared, model: &str, prompt: u64, completion: u64, cost: f64, ok: bool) {
    let mut st = shared.lock();
    st.account.usage_usd += cost;
    st.stats.answers += 1;
    st.stats.prompt_tokens += prompt;
    st.stats.completion_tokens += completion;
    st.stats.spend_usd += cost;
    if ok {
        *st.stats.ok_per_model.entry(model.to_string()).or_default() += 1;
    }
}

/// The intrinsic 402: the key cannot pay for `max_tokens` after the prompt.
fn credit_check(
    shared: &Shared,
    t_ms: u64,
    spec: &crate::scenario::ModelSpec,
    prompt_tokens: u64,
    max_tokens: u64,
) -> Option<Canned> {
    let limit = shared.limit_usd(t_ms)?;
    let usage = shared.lock().account.usage_usd;
    let remaining = limit - usage;
    let prompt_cost = prompt_tokens as f64 * spec.usd_per_million_prompt / 1e6;
    let per_token = spec.usd_per_million_completion / 1e6;
    let needed = prompt_cost + max_tokens as f64 * per_token;
    if remaining >= needed {
        return None;
    }
    let affordable = if per_token > 0.0 && remaining > prompt_cost {
        ((remaining - prompt_cost) / per_token).floor() as u64
    } else {
        0
    };
    Some(bodies::insufficient_credits(
        max_tokens,
        affordable.min(max_tokens),
    ))
}

/// The answer's text: a short support reply in the customer's language.
fn reply_text(seed: u64, seq: u64, messages: &[llm_resilience::chat::Message]) -> String {
    let last = messages
        .iter()
        .rev()
        .find(|m| m.role == llm_resilience::chat::Role::User)
        .map(|m| m.content.to_lowercase())
        .unwrap_or_default();
    let indonesian = ["kak", "gak", "pesanan", "makasih", "gimana", "bisa"]
        .iter()
        .any(|w| last.contains(w));
    let en = [
        "Thanks for your message! I checked your order and it is on its way with JNE; it should arrive within 2 days. 😊",
        "I'm sorry for the trouble. Please open a return from the order page and upload an unboxing video — our courier picks it up for free within Java.",
        "Yes, that item is in stock and ships today if you pay before 14:00 WIB. You can use code NUSA1212 for 12% off electronics.",
        "Your payment is confirmed and the order will ship today. Is there anything else I can help you with? 🙏",
    ];
    let id = [
        "Terima kasih kak! Pesanannya sudah dikirim lewat JNE dan estimasi tiba 2 hari lagi ya 😊",
        "Mohon maaf atas kendalanya kak. Silakan ajukan retur di halaman pesanan dan unggah video unboxing, kurir kami jemput gratis.",
        "Stoknya ready kak, dikirim hari ini kalau bayar sebelum jam 14:00 WIB. Pakai kode NUSA1212 untuk diskon 12% elektronik ya.",
        "Pembayaran sudah terkonfirmasi kak, pesanan dikirim hari ini. Ada lagi yang bisa Sari bantu? 🙏",
    ];
    let pool = if indonesian { id } else { en };
    let i = (rng::unit_from(seed, seq, DRAW_REPLY) * pool.len() as f64) as usize;
    pool.get(i).unwrap_or(&pool[0]).to_string()
}

/// Splits a reply into stream chunks of a few words each.
fn split_reply(reply: &str) -> Vec<String> {
    let words: Vec<&str> = reply.split_inclusive(' ').collect();
    words.chunks(3).map(|c| c.concat()).collect()
}
