//! Adapter for the `retry` interface: WIT resources over `llm_resilience::retry`.

use crate::Plugin;
use crate::bindings::exports::llm::resilience::classify::Classification;
use crate::bindings::exports::llm::resilience::retry::{
    Budget, BudgetBorrow, Call, CallBorrow, Deadline, Decision, Exhausted, GiveUpReason, Guest,
    GuestBudget, GuestCall, GuestPolicy, Policy, RetryAfter, Shrink, WaitTooLong,
};
use crate::classify::{classification_from_wit, kind_to_wit};
use crate::config::{parse, problems};
use llm_resilience::retry as core;
use std::cell::RefCell;

/// The `budget` resource.
pub struct BudgetResource(RefCell<core::RetryBudget>);
/// The `call` resource.
pub struct CallResource(RefCell<core::CallState>);
/// The `policy` resource.
pub struct PolicyResource(pub(crate) core::RetryPolicy);

impl Guest for Plugin {
    type Budget = BudgetResource;
    type Call = CallResource;
    type Policy = PolicyResource;
}

impl GuestBudget for BudgetResource {
    fn create(config_json: String) -> Result<Budget, Vec<String>> {
        let config = parse("retry budget config", &config_json)?;
        let budget = core::RetryBudget::new(config).map_err(problems)?;
        Ok(Budget::new(BudgetResource(RefCell::new(budget))))
    }

    fn deposit(&self, now_ms: u64) {
        self.0.borrow_mut().deposit(now_ms);
    }

    fn available(&self, now_ms: u64) -> u64 {
        self.0.borrow_mut().available(now_ms)
    }
}

impl GuestCall for CallResource {
    fn retries(&self) -> u32 {
        self.0.borrow().retries()
    }
}

impl GuestPolicy for PolicyResource {
    fn create(config_json: String) -> Result<Policy, Vec<String>> {
        let config = parse("retry config", &config_json)?;
        let policy = core::RetryPolicy::new(config).map_err(problems)?;
        Ok(Policy::new(PolicyResource(policy)))
    }

    fn start_call(&self, now_ms: u64, seed: u64, budget: BudgetBorrow<'_>) -> Call {
        let budget = budget.get::<BudgetResource>();
        let call = self.0.start_call(now_ms, seed, &mut budget.0.borrow_mut());
        Call::new(CallResource(RefCell::new(call)))
    }

    fn decide(
        &self,
        call: CallBorrow<'_>,
        failure: Classification,
        now_ms: u64,
        request_tokens: Option<u64>,
        budget: BudgetBorrow<'_>,
    ) -> Decision {
        let call = call.get::<CallResource>();
        let budget = budget.get::<BudgetResource>();
        let decision = self.0.decide(
            &mut call.0.borrow_mut(),
            &classification_from_wit(failure),
            now_ms,
            request_tokens,
            &mut budget.0.borrow_mut(),
        );
        match decision {
            core::Decision::Retry { after_ms, attempt } => {
                Decision::Retry(RetryAfter { after_ms, attempt })
            }
            core::Decision::ShrinkContext {
                target_tokens,
                after_ms,
                attempt,
            } => Decision::ShrinkContext(Shrink {
                target_tokens,
                after_ms,
                attempt,
            }),
            core::Decision::GiveUp { reason } => Decision::GiveUp(give_up(reason)),
        }
    }
}

fn give_up(reason: core::GiveUpReason) -> GiveUpReason {
    match reason {
        core::GiveUpReason::Permanent { kind } => GiveUpReason::Permanent(kind_to_wit(kind)),
        core::GiveUpReason::AttemptsExhausted { kind, retries } => {
            GiveUpReason::AttemptsExhausted(Exhausted {
                kind: kind_to_wit(kind),
                retries,
            })
        }
        core::GiveUpReason::BudgetExhausted => GiveUpReason::BudgetExhausted,
        core::GiveUpReason::WaitTooLong {
            wait_ms,
            ceiling_ms,
        } => GiveUpReason::WaitTooLong(WaitTooLong {
            wait_ms,
            ceiling_ms,
        }),
        core::GiveUpReason::Deadline {
            retry_at_ms,
            deadline_at_ms,
        } => GiveUpReason::Deadline(Deadline {
            retry_at_ms,
            deadline_at_ms,
        }),
        core::GiveUpReason::CannotShrink => GiveUpReason::CannotShrink,
    }
}
