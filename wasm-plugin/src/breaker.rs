//! Adapter for the `breaker` interface: WIT resources over `llm_resilience::breaker`.

use crate::Plugin;
use crate::bindings::exports::llm::resilience::breaker::{
    Admission, Counts, Failure, Guest, GuestBreaker, GuestBreakerSet, KeyError, Outcome, Permit,
    Recorded, Rejected, State, Transition,
};
use crate::classify::kind_from_wit;
use crate::config::{parse, problems, to_json};
use llm_resilience::breaker as core;
use std::cell::RefCell;

/// The `breaker` resource.
pub struct BreakerResource(RefCell<core::Breaker>);

/// The `breaker-set` resource.
pub struct BreakerSetResource(RefCell<core::BreakerSet>);

impl Guest for Plugin {
    type Breaker = BreakerResource;
    type BreakerSet = BreakerSetResource;
}

impl GuestBreaker for BreakerResource {
    fn create(
        config_json: String,
    ) -> Result<crate::bindings::exports::llm::resilience::breaker::Breaker, Vec<String>> {
        let config = parse("breaker config", &config_json)?;
        let breaker = core::Breaker::new(config).map_err(problems)?;
        Ok(
            crate::bindings::exports::llm::resilience::breaker::Breaker::new(BreakerResource(
                RefCell::new(breaker),
            )),
        )
    }

    fn restore(
        snapshot_json: String,
    ) -> Result<crate::bindings::exports::llm::resilience::breaker::Breaker, Vec<String>> {
        let snapshot = parse("breaker snapshot", &snapshot_json)?;
        let breaker = core::Breaker::restore(snapshot).map_err(problems)?;
        Ok(
            crate::bindings::exports::llm::resilience::breaker::Breaker::new(BreakerResource(
                RefCell::new(breaker),
            )),
        )
    }

    fn acquire(&self, now_ms: u64) -> Admission {
        admission(self.0.borrow_mut().acquire(now_ms))
    }

    fn record(&self, permit: Permit, outcome: Outcome, now_ms: u64) -> Recorded {
        recorded(self.0.borrow_mut().record(
            permit_from_wit(permit),
            outcome_from_wit(outcome),
            now_ms,
        ))
    }

    fn state(&self, now_ms: u64) -> State {
        state_to_wit(self.0.borrow().state(now_ms))
    }

    fn counts(&self, now_ms: u64) -> Counts {
        let c = self.0.borrow().counts(now_ms);
        Counts {
            state: state_to_wit(c.state),
            window_calls: c.window_calls,
            window_failures: c.window_failures,
            window_slow: c.window_slow,
            consecutive_failures: c.consecutive_failures,
            probes_in_flight: c.probes_in_flight,
            probe_successes: c.probe_successes,
            times_opened: c.times_opened,
            rejected: c.rejected,
            generation: c.generation,
        }
    }

    fn force_open(&self, now_ms: u64) -> Option<Transition> {
        self.0.borrow_mut().force_open(now_ms).map(transition)
    }

    fn disable(&self, now_ms: u64) -> Option<Transition> {
        self.0.borrow_mut().disable(now_ms).map(transition)
    }

    fn reset(&self, now_ms: u64) -> Option<Transition> {
        self.0.borrow_mut().reset(now_ms).map(transition)
    }

    fn snapshot(&self) -> String {
        to_json(&*self.0.borrow())
    }
}

impl GuestBreakerSet for BreakerSetResource {
    fn create(
        config_json: String,
        max_keys: u32,
    ) -> Result<crate::bindings::exports::llm::resilience::breaker::BreakerSet, Vec<String>> {
        let config = parse("breaker config", &config_json)?;
        let set = core::BreakerSet::new(config, max_keys as usize).map_err(problems)?;
        Ok(
            crate::bindings::exports::llm::resilience::breaker::BreakerSet::new(
                BreakerSetResource(RefCell::new(set)),
            ),
        )
    }

    fn restore(
        snapshot_json: String,
    ) -> Result<crate::bindings::exports::llm::resilience::breaker::BreakerSet, Vec<String>> {
        let snapshot = parse("breaker-set snapshot", &snapshot_json)?;
        let set = core::BreakerSet::restore(snapshot).map_err(problems)?;
        Ok(
            crate::bindings::exports::llm::resilience::breaker::BreakerSet::new(
                BreakerSetResource(RefCell::new(set)),
            ),
        )
    }

    fn acquire(&self, key: String, now_ms: u64) -> Result<Admission, KeyError> {
        self.0
            .borrow_mut()
            .acquire(&key, now_ms)
            .map(admission)
            .map_err(key_error)
    }

    fn record(
        &self,
        key: String,
        permit: Permit,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<Recorded, KeyError> {
        self.0
            .borrow_mut()
            .record(
                &key,
                permit_from_wit(permit),
                outcome_from_wit(outcome),
                now_ms,
            )
            .map(recorded)
            .map_err(key_error)
    }

    fn state(&self, key: String, now_ms: u64) -> Option<State> {
        self.0
            .borrow()
            .get(&key)
            .map(|b| state_to_wit(b.state(now_ms)))
    }

    fn keys(&self) -> Vec<String> {
        self.0.borrow().keys().map(str::to_string).collect()
    }

    fn snapshot(&self) -> String {
        to_json(&*self.0.borrow())
    }
}

fn admission(result: Result<core::Permit, core::Rejected>) -> Admission {
    match result {
        Ok(p) => Admission::Admitted(Permit {
            generation: p.generation,
            id: p.id,
            admitted_ms: p.admitted_ms,
            probe: p.probe,
        }),
        Err(r) => Admission::Rejected(Rejected {
            state: state_to_wit(r.state),
            retry_in_ms: r.retry_in_ms,
        }),
    }
}

fn recorded(r: core::Recorded) -> Recorded {
    match r {
        core::Recorded::Counted { transition: t } => Recorded::Counted(t.map(transition)),
        core::Recorded::Stale => Recorded::Stale,
    }
}

fn permit_from_wit(p: Permit) -> core::Permit {
    core::Permit {
        generation: p.generation,
        id: p.id,
        admitted_ms: p.admitted_ms,
        probe: p.probe,
    }
}

fn outcome_from_wit(o: Outcome) -> core::Outcome {
    match o {
        Outcome::Success => core::Outcome::Success,
        Outcome::Failure(Failure {
            kind,
            retry_after_ms,
        }) => core::Outcome::Failure {
            kind: kind_from_wit(kind),
            retry_after_ms,
        },
        Outcome::Ignored => core::Outcome::Ignored,
    }
}

fn transition(t: core::Transition) -> Transition {
    Transition {
        from: state_to_wit(t.from),
        to: state_to_wit(t.to),
    }
}

fn state_to_wit(s: core::State) -> State {
    match s {
        core::State::Closed => State::Closed,
        core::State::Open => State::Open,
        core::State::HalfOpen => State::HalfOpen,
        core::State::ForcedOpen => State::ForcedOpen,
        core::State::Disabled => State::Disabled,
    }
}

fn key_error(e: core::KeyError) -> KeyError {
    match e {
        core::KeyError::Empty => KeyError::EmptyKey,
        core::KeyError::TooLong(_) => KeyError::KeyTooLong,
    }
}
