//! Retry decisions through the component: the WIT `retry` interface with the core's types.

use llm_resilience::Classification;
use llm_resilience::retry::{Decision, GiveUpReason};

use crate::plugin::bindings::exports::llm::resilience::retry as wit;
use crate::plugin::{classification_to_wit, kind_from_wit};
use crate::session::Resource;
use crate::{HostError, Session};

/// A validated retry policy living in the component
/// ([`llm_resilience::retry::RetryPolicy`] behind the WIT `policy` resource).
///
/// Its budget and its calls must be created in the same [`Session`]: the component takes them
/// as borrowed handles of its own instance. Passing one from another session is
/// [`HostError::ForeignResource`].
#[derive(Debug)]
pub struct HostRetryPolicy {
    resource: Resource,
}

/// A service-wide retry budget living in the component
/// ([`llm_resilience::retry::RetryBudget`] behind the WIT `budget` resource).
#[derive(Debug)]
pub struct HostRetryBudget {
    resource: Resource,
}

/// The state of one call across its attempts, living in the component
/// ([`llm_resilience::retry::CallState`] behind the WIT `call` resource). Made by
/// [`HostRetryPolicy::start_call`]; dropping it frees it.
#[derive(Debug)]
pub struct HostCall {
    resource: Resource,
}

impl Session {
    /// A retry policy from a JSON config (`RetryConfig`; `"{}"` for the defaults). Every
    /// rejected field is listed in [`HostError::Config`].
    pub fn retry_policy(&self, config_json: &str) -> Result<HostRetryPolicy, HostError> {
        self.create(|store, plugin| {
            plugin
                .llm_resilience_retry()
                .policy()
                .call_create(store, config_json)
        })
        .map(|resource| HostRetryPolicy { resource })
    }

    /// A retry budget from a JSON config (`BudgetConfig`; `"{}"` for the defaults).
    pub fn retry_budget(&self, config_json: &str) -> Result<HostRetryBudget, HostError> {
        self.create(|store, plugin| {
            plugin
                .llm_resilience_retry()
                .budget()
                .call_create(store, config_json)
        })
        .map(|resource| HostRetryBudget { resource })
    }
}

impl HostRetryPolicy {
    /// The policy's handle (for `next_budget` in `context.rs`).
    pub(crate) fn resource(&self) -> &Resource {
        &self.resource
    }

    /// The session the policy lives in (create its budget and calls there).
    pub fn session(&self) -> &Session {
        &self.resource.session
    }

    /// Starts a call at `now_ms`; `seed` makes its jitter reproducible (the same seed gives the
    /// same delays as the native core). Deposits one request into `budget`.
    pub fn start_call(
        &self,
        now_ms: u64,
        seed: u64,
        budget: &HostRetryBudget,
    ) -> Result<HostCall, HostError> {
        self.resource.same_session(&budget.resource)?;
        let budget = budget.resource.handle;
        let handle = self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_retry()
                .policy()
                .call_start_call(store, this, now_ms, seed, budget)
        })?;
        Ok(HostCall {
            resource: self.resource.session.adopt(handle),
        })
    }

    /// Decides what to do about a failed attempt of `call` at `now_ms`. `request_tokens` is the
    /// caller's own count of the request that failed; a retry withdraws from `budget`.
    pub fn decide(
        &self,
        call: &HostCall,
        failure: &Classification,
        now_ms: u64,
        request_tokens: Option<u64>,
        budget: &HostRetryBudget,
    ) -> Result<Decision, HostError> {
        self.resource.same_session(&call.resource)?;
        self.resource.same_session(&budget.resource)?;
        let (call, budget) = (call.resource.handle, budget.resource.handle);
        let failure = classification_to_wit(failure);
        self.resource
            .call(|store, plugin, this| {
                plugin.llm_resilience_retry().policy().call_decide(
                    store,
                    this,
                    call,
                    &failure,
                    now_ms,
                    request_tokens,
                    budget,
                )
            })
            .map(decision_from_wit)
    }
}

impl HostRetryBudget {
    /// The session the budget lives in.
    pub fn session(&self) -> &Session {
        &self.resource.session
    }

    /// Records one original request at `now_ms` ([`HostRetryPolicy::start_call`] does this
    /// too).
    pub fn deposit(&self, now_ms: u64) -> Result<(), HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_retry()
                .budget()
                .call_deposit(store, this, now_ms)
        })
    }

    /// How many retries the budget would allow at `now_ms`.
    pub fn available(&self, now_ms: u64) -> Result<u64, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_retry()
                .budget()
                .call_available(store, this, now_ms)
        })
    }
}

impl HostCall {
    /// Retries decided so far in this call.
    pub fn retries(&self) -> Result<u32, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_retry()
                .call()
                .call_retries(store, this)
        })
    }
}

fn decision_from_wit(d: wit::Decision) -> Decision {
    match d {
        wit::Decision::Retry(r) => Decision::Retry {
            after_ms: r.after_ms,
            attempt: r.attempt,
        },
        wit::Decision::ShrinkContext(s) => Decision::ShrinkContext {
            target_tokens: s.target_tokens,
            after_ms: s.after_ms,
            attempt: s.attempt,
        },
        wit::Decision::GiveUp(reason) => Decision::GiveUp {
            reason: match reason {
                wit::GiveUpReason::Permanent(kind) => GiveUpReason::Permanent {
                    kind: kind_from_wit(kind),
                },
                wit::GiveUpReason::AttemptsExhausted(e) => GiveUpReason::AttemptsExhausted {
                    kind: kind_from_wit(e.kind),
                    retries: e.retries,
                },
                wit::GiveUpReason::BudgetExhausted => GiveUpReason::BudgetExhausted,
                wit::GiveUpReason::WaitTooLong(w) => GiveUpReason::WaitTooLong {
                    wait_ms: w.wait_ms,
                    ceiling_ms: w.ceiling_ms,
                },
                wit::GiveUpReason::Deadline(d) => GiveUpReason::Deadline {
                    retry_at_ms: d.retry_at_ms,
                    deadline_at_ms: d.deadline_at_ms,
                },
                wit::GiveUpReason::CannotShrink => GiveUpReason::CannotShrink,
            },
        },
    }
}
