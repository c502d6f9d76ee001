//! The component engine (the default): every decision comes from the llm-resilience
//! WebAssembly component, run by wasmtime through `llmr_host`.
//!
//! Why one session for everything: the retry policy, its budget and the call resources must
//! live in one component instance (the WIT functions borrow them together), and a
//! `next_budget` runs on the policy. The breaker set, limiter, counter and credit monitor sit in
//! the same instance; `llmr_host` serialises the calls with one lock, and each is short.
//! The instance gets the exact counter's limits (`EXACT_COUNTER_LIMITS`): the o200k tables and
//! a limiter with many sessions need more memory than the default cap.
//!
//! The WIT interface has no `redact` export (every message the component produces is already
//! redacted), so [`Engine::redact`] applies the core's pure `redact` function natively; it is
//! used only on text the worker itself produces.

use std::path::Path;

use llm_resilience::breaker::{Outcome, Permit, Rejected, State};
use llm_resilience::chat::Message;
use llm_resilience::context::{ContextBudget, ContextError, TrimInput, Trimmed};
use llm_resilience::credits::{Affordable, AlertEvent, CreditSnapshot};
use llm_resilience::ratelimit::Verdict;
use llm_resilience::retry::Decision;
use llm_resilience::tokens::Encoding;
use llm_resilience::{Classification, ClassifyInput};
use llmr_host::{
    EXACT_COUNTER_LIMITS, HostBreakerSet, HostCounter, HostCreditMonitor, HostLimiter,
    HostRetryBudget, HostRetryPolicy, Plugin,
};

use super::{Engine, EngineConfig, EngineError, RetryCall, Snapshots};

/// The component, through wasmtime.
pub struct ComponentEngine {
    plugin: Plugin,
    breakers: HostBreakerSet,
    limiter: HostLimiter,
    policy: HostRetryPolicy,
    budget: HostRetryBudget,
    counter: HostCounter,
    credits: HostCreditMonitor,
}

impl std::fmt::Debug for ComponentEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentEngine").finish_non_exhaustive()
    }
}

fn host(context: &'static str) -> impl Fn(llmr_host::HostError) -> EngineError {
    move |e| EngineError::new(context, e)
}

impl ComponentEngine {
    /// Loads the component at `path` and creates (or restores) the handles in one session.
    pub fn new(
        path: &Path,
        config: &EngineConfig,
        snapshots: Option<&Snapshots>,
    ) -> Result<Self, EngineError> {
        let mut plugin = Plugin::from_file(path).map_err(host("component"))?;
        plugin
            .set_limits(EXACT_COUNTER_LIMITS)
            .map_err(host("component"))?;
        let session = plugin.session().map_err(host("component"))?;
        let (breakers, limiter, credits) = match snapshots {
            Some(s) => (
                session
                    .restore_breaker_set(&s.breakers.to_string())
                    .map_err(host("breaker snapshot"))?,
                session
                    .restore_limiter(&s.limiter.to_string())
                    .map_err(host("limiter snapshot"))?,
                session
                    .restore_credit_monitor(&s.credits.to_string())
                    .map_err(host("credit snapshot"))?,
            ),
            None => (
                session
                    .breaker_set(&config.breaker, config.breaker_max_keys)
                    .map_err(host("breaker config"))?,
                session
                    .limiter(&config.ratelimit)
                    .map_err(host("ratelimit config"))?,
                session
                    .credit_monitor(&config.credits)
                    .map_err(host("credit config"))?,
            ),
        };
        Ok(ComponentEngine {
            policy: session
                .retry_policy(&config.retry)
                .map_err(host("retry config"))?,
            budget: session
                .retry_budget(&config.budget)
                .map_err(host("budget config"))?,
            counter: session
                .exact_counter(Encoding::O200kBase)
                .map_err(host("tokenizer"))?,
            plugin,
            breakers,
            limiter,
            credits,
        })
    }
}

fn json(context: &'static str, text: &str) -> Result<serde_json::Value, EngineError> {
    serde_json::from_str(text).map_err(|e| EngineError::new(context, e))
}

impl Engine for ComponentEngine {
    fn surface(&self) -> &'static str {
        "component"
    }

    fn classify(&self, input: &ClassifyInput<'_>) -> Result<Classification, EngineError> {
        self.plugin.classify(input).map_err(host("classify"))
    }

    fn limiter_check(&self, session: &str, now_ms: u64) -> Result<Verdict, EngineError> {
        self.limiter
            .check(session, 1, now_ms)
            .map_err(host("limiter"))?
            .map_err(|e| EngineError::new("limiter", e))
    }

    fn breaker_acquire(
        &self,
        model: &str,
        now_ms: u64,
    ) -> Result<Result<Permit, Rejected>, EngineError> {
        self.breakers
            .acquire(model, now_ms)
            .map_err(host("breaker"))?
            .map_err(|e| EngineError::new("breaker", e))
    }

    fn breaker_record(
        &self,
        model: &str,
        permit: Permit,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<(), EngineError> {
        self.breakers
            .record(model, permit, outcome, now_ms)
            .map_err(host("breaker"))?
            .map(|_| ())
            .map_err(|e| EngineError::new("breaker", e))
    }

    fn breaker_state(&self, model: &str, now_ms: u64) -> Result<Option<State>, EngineError> {
        self.breakers.state(model, now_ms).map_err(host("breaker"))
    }

    fn start_call(&self, now_ms: u64, seed: u64) -> Result<RetryCall, EngineError> {
        self.policy
            .start_call(now_ms, seed, &self.budget)
            .map(RetryCall::Component)
            .map_err(host("retry"))
    }

    fn decide(
        &self,
        call: &mut RetryCall,
        failure: &Classification,
        now_ms: u64,
        request_tokens: Option<u64>,
    ) -> Result<Decision, EngineError> {
        let RetryCall::Component(call) = call else {
            return Err(EngineError::new(
                "retry",
                "a native call given to the component engine",
            ));
        };
        self.policy
            .decide(call, failure, now_ms, request_tokens, &self.budget)
            .map_err(host("retry"))
    }

    fn next_budget(
        &self,
        failure: &Classification,
        current: &ContextBudget,
        request_tokens: Option<u64>,
    ) -> Result<Result<ContextBudget, ContextError>, EngineError> {
        self.policy
            .next_budget(failure, current, request_tokens)
            .map_err(host("context"))
    }

    fn trim(
        &self,
        budget: &ContextBudget,
        input: &TrimInput<'_>,
    ) -> Result<Result<Trimmed, ContextError>, EngineError> {
        self.counter.trim(budget, input).map_err(host("context"))
    }

    fn count_messages(&self, messages: &[Message]) -> Result<u64, EngineError> {
        self.counter
            .count_messages(messages, &[])
            .map_err(host("tokens"))?
            .map_err(|e| EngineError::new("tokens", e))
    }

    fn credit_observe(&self, key_body: &str, now_ms: u64) -> Result<Vec<AlertEvent>, EngineError> {
        let key = self
            .plugin
            .parse_key(key_body)
            .map_err(host("credits"))?
            .map_err(|e| EngineError::new("credits", e))?;
        let snapshot = CreditSnapshot {
            key: Some(key),
            credits: None,
        };
        self.credits
            .observe(&snapshot, now_ms, None)
            .map_err(host("credits"))
    }

    fn credit_balance(&self) -> Result<Option<f64>, EngineError> {
        Ok(self.credits.status().map_err(host("credits"))?.balance_usd)
    }

    fn suggest_max_tokens(&self, text: &str) -> Result<Option<Affordable>, EngineError> {
        self.plugin
            .suggest_max_tokens(text)
            .map_err(host("credits"))
    }

    fn redact(&self, text: &str) -> String {
        llm_resilience::redact::redact(text)
    }

    fn snapshot(&self) -> Result<Snapshots, EngineError> {
        Ok(Snapshots {
            breakers: json(
                "breaker snapshot",
                &self.breakers.snapshot().map_err(host("breaker snapshot"))?,
            )?,
            limiter: json(
                "limiter snapshot",
                &self.limiter.snapshot().map_err(host("limiter snapshot"))?,
            )?,
            credits: json(
                "credit snapshot",
                &self.credits.snapshot().map_err(host("credit snapshot"))?,
            )?,
        })
    }
}
