//! Everything the worker asks the policy, behind one trait with two implementations.
//!
//! Why an abstraction: the point of llm-resilience is that a decision made through the
//! WebAssembly component (what a production host embedding the plugin runs) is the same
//! decision the native core makes. The worker is written once against [`Engine`]; the default
//! [`component::ComponentEngine`] runs every call through `llmr_host` and wasmtime, and
//! `--native` swaps in [`native::NativeEngine`] (the `llm-resilience` crate linked in). The
//! worker itself holds no policy logic: it adapts types, does the HTTP and the sleeping, and
//! logs what the engine decided.
//!
//! Stateful pieces (the per-model breaker set, the per-session limiter, the retry budget and
//! the credit monitor) live inside the engine. Their state can be exported as the core's serde
//! JSON ([`Snapshots`]) and given back to a new engine of either kind, which is how a restart
//! keeps breakers open and limits spent.

pub mod component;
pub mod native;

use llm_resilience::breaker::{Outcome, Permit, Rejected, State};
use llm_resilience::chat::Message;
use llm_resilience::context::{ContextBudget, ContextError, TrimInput, Trimmed};
use llm_resilience::credits::{Affordable, AlertEvent};
use llm_resilience::ratelimit::Verdict;
use llm_resilience::retry::Decision;
use llm_resilience::{Classification, ClassifyInput};
use serde::{Deserialize, Serialize};

pub use component::ComponentEngine;
pub use native::NativeEngine;

/// Why the engine could not answer (a bad config, a bad snapshot, a component trap).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{context}: {message}")]
pub struct EngineError {
    /// Which call failed.
    pub context: &'static str,
    /// What went wrong.
    pub message: String,
}

impl EngineError {
    /// An error from `context` with `message`.
    pub fn new(context: &'static str, message: impl std::fmt::Display) -> EngineError {
        EngineError {
            context,
            message: message.to_string(),
        }
    }
}

/// The exported state of the engine's handles, each in the core's serde form (the component
/// exports the same JSON), so a snapshot from one surface restores into the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshots {
    /// The breaker set (one breaker per model).
    pub breakers: serde_json::Value,
    /// The per-session rate limiter.
    pub limiter: serde_json::Value,
    /// The credit monitor (burn history, which alerts are active).
    pub credits: serde_json::Value,
}

/// One job's retry state: a call started with [`Engine::start_call`].
pub enum RetryCall {
    /// The native core's call state.
    Native(llm_resilience::retry::CallState),
    /// A call resource in the component.
    Component(llmr_host::HostCall),
}

impl std::fmt::Debug for RetryCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryCall::Native(c) => f.debug_tuple("Native").field(c).finish(),
            RetryCall::Component(_) => f.write_str("Component(..)"),
        }
    }
}

/// The configs an engine is built from: the policy file's JSON objects, unchanged.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `RetryConfig` JSON.
    pub retry: String,
    /// `BudgetConfig` JSON.
    pub budget: String,
    /// `BreakerConfig` JSON.
    pub breaker: String,
    /// Most breakers in the set.
    pub breaker_max_keys: u32,
    /// `RateLimitConfig` JSON.
    pub ratelimit: String,
    /// `CreditConfig` JSON.
    pub credits: String,
}

impl EngineConfig {
    /// The engine configs of a policy file.
    pub fn from_policy(policy: &crate::policy::Policy) -> EngineConfig {
        EngineConfig {
            retry: policy.retry.to_string(),
            budget: policy.budget.to_string(),
            breaker: policy.breaker.to_string(),
            breaker_max_keys: policy.breaker_max_keys,
            ratelimit: policy.ratelimit.to_string(),
            credits: policy.credits.to_string(),
        }
    }
}

/// Everything the worker asks the policy. Time is always the caller's monotonic clock, ms.
pub trait Engine: Send + Sync {
    /// `component` or `native` (the `surface` of `run_start`).
    fn surface(&self) -> &'static str;

    /// Classifies a failed call: an HTTP response, an error chunk, or a transport failure.
    fn classify(&self, input: &ClassifyInput<'_>) -> Result<Classification, EngineError>;

    /// Asks the per-session limiter for one message of `session`.
    fn limiter_check(&self, session: &str, now_ms: u64) -> Result<Verdict, EngineError>;

    /// Asks `model`'s breaker to admit a call.
    fn breaker_acquire(
        &self,
        model: &str,
        now_ms: u64,
    ) -> Result<Result<Permit, Rejected>, EngineError>;

    /// Records how an admitted call to `model` ended.
    fn breaker_record(
        &self,
        model: &str,
        permit: Permit,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<(), EngineError>;

    /// `model`'s breaker state at `now_ms` (`None` before its first call).
    fn breaker_state(&self, model: &str, now_ms: u64) -> Result<Option<State>, EngineError>;

    /// Starts one job's retry state; `seed` drives its jitter.
    fn start_call(&self, now_ms: u64, seed: u64) -> Result<RetryCall, EngineError>;

    /// What to do about a failed attempt (under the service-wide retry budget).
    fn decide(
        &self,
        call: &mut RetryCall,
        failure: &Classification,
        now_ms: u64,
        request_tokens: Option<u64>,
    ) -> Result<Decision, EngineError>;

    /// The budget to re-trim with after a context overflow.
    fn next_budget(
        &self,
        failure: &Classification,
        current: &ContextBudget,
        request_tokens: Option<u64>,
    ) -> Result<Result<ContextBudget, ContextError>, EngineError>;

    /// Fits a conversation into `budget`, counting exactly (o200k_base).
    fn trim(
        &self,
        budget: &ContextBudget,
        input: &TrimInput<'_>,
    ) -> Result<Result<Trimmed, ContextError>, EngineError>;

    /// The exact size of a request (for the naive worker's `request` events).
    fn count_messages(&self, messages: &[Message]) -> Result<u64, EngineError>;

    /// Feeds one `GET /api/v1/key` body to the credit monitor; the alerts it raised or cleared.
    fn credit_observe(&self, key_body: &str, now_ms: u64) -> Result<Vec<AlertEvent>, EngineError>;

    /// The credit monitor's latest binding balance, USD (`None` before any observation).
    fn credit_balance(&self) -> Result<Option<f64>, EngineError>;

    /// Reads a 402 "can only afford M" and suggests a `max_tokens`.
    fn suggest_max_tokens(&self, text: &str) -> Result<Option<Affordable>, EngineError>;

    /// Removes keys and bearer tokens from `text`.
    fn redact(&self, text: &str) -> String;

    /// Exports the breaker set, limiter and credit monitor.
    fn snapshot(&self) -> Result<Snapshots, EngineError>;
}

/// Which engine to build.
#[derive(Debug, Clone)]
pub enum EngineChoice {
    /// The component at this path, through wasmtime.
    Component(std::path::PathBuf),
    /// The native core.
    Native,
}

impl EngineChoice {
    /// Builds the engine, restoring `snapshots` when given.
    pub fn build(
        &self,
        config: &EngineConfig,
        snapshots: Option<&Snapshots>,
    ) -> Result<Box<dyn Engine>, EngineError> {
        Ok(match self {
            EngineChoice::Component(path) => {
                Box::new(ComponentEngine::new(path, config, snapshots)?)
            }
            EngineChoice::Native => Box::new(NativeEngine::new(config, snapshots)?),
        })
    }
}

/// A stable seed for a job's retry jitter (FNV-1a of its id), so a run is reproducible.
pub fn job_seed(job_id: &str) -> u64 {
    job_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
