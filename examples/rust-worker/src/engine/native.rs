//! The native engine: the `llm-resilience` core linked into the worker (`--native`).
//!
//! The core's handles are plain values; one mutex guards the mutable ones (breakers, limiter,
//! retry budget, credit monitor), because the worker's jobs run concurrently and the budget is
//! service-wide by design. Every call is short (microseconds), so one lock is enough.

use std::sync::{Mutex, MutexGuard};

use llm_resilience::breaker::{BreakerConfig, BreakerSet, Outcome, Permit, Rejected, State};
use llm_resilience::chat::Message;
use llm_resilience::context::{self, ContextBudget, ContextError, TrimInput, Trimmed};
use llm_resilience::credits::{self, Affordable, AlertEvent, CreditMonitor, CreditSnapshot};
use llm_resilience::ratelimit::{RateLimitSnapshot, RateLimiter, Verdict};
use llm_resilience::retry::{Decision, RetryBudget, RetryPolicy};
use llm_resilience::tokens::{Encoding, TokenCounter, Tokenizer};
use llm_resilience::{Classification, ClassifyInput};

use super::{Engine, EngineConfig, EngineError, RetryCall, Snapshots};

struct Handles {
    breakers: BreakerSet,
    limiter: RateLimiter,
    budget: RetryBudget,
    credits: CreditMonitor,
}

/// The core, natively.
pub struct NativeEngine {
    policy: RetryPolicy,
    tokenizer: Tokenizer,
    handles: Mutex<Handles>,
}

impl std::fmt::Debug for NativeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeEngine").finish_non_exhaustive()
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    context: &'static str,
    json: &str,
) -> Result<T, EngineError> {
    serde_json::from_str(json).map_err(|e| EngineError::new(context, e))
}

impl NativeEngine {
    /// Builds the handles from `config`, or restores them from `snapshots`.
    pub fn new(config: &EngineConfig, snapshots: Option<&Snapshots>) -> Result<Self, EngineError> {
        let policy = RetryPolicy::new(parse("retry config", &config.retry)?)
            .map_err(|e| EngineError::new("retry config", e))?;
        let budget = RetryBudget::new(parse("budget config", &config.budget)?)
            .map_err(|e| EngineError::new("budget config", e))?;
        let (breakers, limiter, credits) = match snapshots {
            Some(s) => (
                BreakerSet::restore(
                    serde_json::from_value(s.breakers.clone())
                        .map_err(|e| EngineError::new("breaker snapshot", e))?,
                )
                .map_err(|e| EngineError::new("breaker snapshot", e))?,
                RateLimiter::restore(
                    serde_json::from_value::<RateLimitSnapshot>(s.limiter.clone())
                        .map_err(|e| EngineError::new("limiter snapshot", e))?,
                )
                .map_err(|e| EngineError::new("limiter snapshot", e))?,
                CreditMonitor::restore(
                    serde_json::from_value(s.credits.clone())
                        .map_err(|e| EngineError::new("credit snapshot", e))?,
                )
                .map_err(|e| EngineError::new("credit snapshot", e))?,
            ),
            None => (
                BreakerSet::new(
                    parse::<BreakerConfig>("breaker config", &config.breaker)?,
                    config.breaker_max_keys as usize,
                )
                .map_err(|e| EngineError::new("breaker config", e))?,
                RateLimiter::new(parse("ratelimit config", &config.ratelimit)?)
                    .map_err(|e| EngineError::new("ratelimit config", e))?,
                CreditMonitor::new(parse("credit config", &config.credits)?)
                    .map_err(|e| EngineError::new("credit config", e))?,
            ),
        };
        let tokenizer =
            Tokenizer::new(Encoding::O200kBase).map_err(|e| EngineError::new("tokenizer", e))?;
        Ok(NativeEngine {
            policy,
            tokenizer,
            handles: Mutex::new(Handles {
                breakers,
                limiter,
                budget,
                credits,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Handles> {
        // The guarded values stay consistent even if a holder panicked (each call is one
        // core call).
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Engine for NativeEngine {
    fn surface(&self) -> &'static str {
        "native"
    }

    fn classify(&self, input: &ClassifyInput<'_>) -> Result<Classification, EngineError> {
        Ok(llm_resilience::classify(input))
    }

    fn limiter_check(&self, session: &str, now_ms: u64) -> Result<Verdict, EngineError> {
        self.lock()
            .limiter
            .check(session, 1, now_ms)
            .map_err(|e| EngineError::new("limiter", e))
    }

    fn breaker_acquire(
        &self,
        model: &str,
        now_ms: u64,
    ) -> Result<Result<Permit, Rejected>, EngineError> {
        self.lock()
            .breakers
            .acquire(model, now_ms)
            .map_err(|e| EngineError::new("breaker", e))
    }

    fn breaker_record(
        &self,
        model: &str,
        permit: Permit,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<(), EngineError> {
        self.lock()
            .breakers
            .record(model, permit, outcome, now_ms)
            .map(|_| ())
            .map_err(|e| EngineError::new("breaker", e))
    }

    fn breaker_state(&self, model: &str, now_ms: u64) -> Result<Option<State>, EngineError> {
        Ok(self.lock().breakers.get(model).map(|b| b.state(now_ms)))
    }

    fn start_call(&self, now_ms: u64, seed: u64) -> Result<RetryCall, EngineError> {
        let mut h = self.lock();
        Ok(RetryCall::Native(self.policy.start_call(
            now_ms,
            seed,
            &mut h.budget,
        )))
    }

    fn decide(
        &self,
        call: &mut RetryCall,
        failure: &Classification,
        now_ms: u64,
        request_tokens: Option<u64>,
    ) -> Result<Decision, EngineError> {
        let RetryCall::Native(call) = call else {
            return Err(EngineError::new(
                "retry",
                "a component call given to the native engine",
            ));
        };
        let mut h = self.lock();
        Ok(self
            .policy
            .decide(call, failure, now_ms, request_tokens, &mut h.budget))
    }

    fn next_budget(
        &self,
        failure: &Classification,
        current: &ContextBudget,
        request_tokens: Option<u64>,
    ) -> Result<Result<ContextBudget, ContextError>, EngineError> {
        Ok(context::next_budget(
            failure,
            current,
            request_tokens,
            &self.policy,
        ))
    }

    fn trim(
        &self,
        budget: &ContextBudget,
        input: &TrimInput<'_>,
    ) -> Result<Result<Trimmed, ContextError>, EngineError> {
        Ok(context::trim(budget, input, &self.tokenizer))
    }

    fn count_messages(&self, messages: &[Message]) -> Result<u64, EngineError> {
        self.tokenizer
            .count_messages(messages, &[])
            .map_err(|e| EngineError::new("tokens", e))
    }

    fn credit_observe(&self, key_body: &str, now_ms: u64) -> Result<Vec<AlertEvent>, EngineError> {
        let key = credits::parse_key(key_body).map_err(|e| EngineError::new("credits", e))?;
        let snapshot = CreditSnapshot {
            key: Some(key),
            credits: None,
        };
        Ok(self.lock().credits.observe(&snapshot, now_ms, None))
    }

    fn credit_balance(&self) -> Result<Option<f64>, EngineError> {
        Ok(self.lock().credits.status().balance_usd)
    }

    fn suggest_max_tokens(&self, text: &str) -> Result<Option<Affordable>, EngineError> {
        Ok(credits::suggest_max_tokens(text))
    }

    fn redact(&self, text: &str) -> String {
        llm_resilience::redact::redact(text)
    }

    fn snapshot(&self) -> Result<Snapshots, EngineError> {
        let h = self.lock();
        let value = |context: &'static str, v: Result<serde_json::Value, serde_json::Error>| {
            v.map_err(|e| EngineError::new(context, e))
        };
        Ok(Snapshots {
            breakers: value("breaker snapshot", serde_json::to_value(&h.breakers))?,
            limiter: value(
                "limiter snapshot",
                serde_json::to_value(h.limiter.snapshot()),
            )?,
            credits: value("credit snapshot", serde_json::to_value(&h.credits))?,
        })
    }
}
