//! Circuit breakers through the component: the WIT `breaker` interface with the core's types.

use llm_resilience::breaker::{
    Counts, KeyError, Outcome, Permit, Recorded, Rejected, State, Transition,
};

use crate::plugin::bindings::exports::llm::resilience::breaker as wit;
use crate::plugin::kind_to_wit;
use crate::session::Resource;
use crate::{HostError, Plugin, Session};

/// A circuit breaker living in the component ([`llm_resilience::breaker::Breaker`] behind the
/// WIT `breaker` resource).
///
/// Every method is the native one with the same arguments and the same result, wrapped in
/// `Result<_, HostError>` for what can go wrong in the host (a trap, a lost instance). Handles
/// are `Send + Sync`; calls take `&self` (the session serialises them). Dropping the handle
/// frees the breaker inside the component.
#[derive(Debug)]
pub struct HostBreaker {
    resource: Resource,
}

impl Session {
    /// A closed breaker from a JSON config (`BreakerConfig`; `"{}"` for the defaults). Every
    /// rejected field is listed in [`HostError::Config`].
    pub fn breaker(&self, config_json: &str) -> Result<HostBreaker, HostError> {
        self.create(|store, plugin| {
            plugin
                .llm_resilience_breaker()
                .breaker()
                .call_create(store, config_json)
        })
        .map(|resource| HostBreaker { resource })
    }

    /// A breaker from a snapshot ([`HostBreaker::snapshot`], or `serde_json::to_string` of a
    /// native [`Breaker`](llm_resilience::breaker::Breaker)). A corrupt snapshot is a
    /// [`HostError::Config`].
    pub fn restore_breaker(&self, snapshot_json: &str) -> Result<HostBreaker, HostError> {
        self.create(|store, plugin| {
            plugin
                .llm_resilience_breaker()
                .breaker()
                .call_restore(store, snapshot_json)
        })
        .map(|resource| HostBreaker { resource })
    }

    /// A set of at most `max_keys` breakers sharing a JSON config.
    pub fn breaker_set(
        &self,
        config_json: &str,
        max_keys: u32,
    ) -> Result<HostBreakerSet, HostError> {
        self.create(|store, plugin| {
            plugin
                .llm_resilience_breaker()
                .breaker_set()
                .call_create(store, config_json, max_keys)
        })
        .map(|resource| HostBreakerSet { resource })
    }

    /// A breaker set from a snapshot ([`HostBreakerSet::snapshot`], or `serde_json::to_string`
    /// of a native [`BreakerSet`](llm_resilience::breaker::BreakerSet)).
    pub fn restore_breaker_set(&self, snapshot_json: &str) -> Result<HostBreakerSet, HostError> {
        self.create(|store, plugin| {
            plugin
                .llm_resilience_breaker()
                .breaker_set()
                .call_restore(store, snapshot_json)
        })
        .map(|resource| HostBreakerSet { resource })
    }
}

impl Plugin {
    /// A breaker in a session of its own: [`Session::breaker`] on a new [`Plugin::session`].
    pub fn breaker(&self, config_json: &str) -> Result<HostBreaker, HostError> {
        self.session()?.breaker(config_json)
    }

    /// A restored breaker in a session of its own: [`Session::restore_breaker`].
    pub fn restore_breaker(&self, snapshot_json: &str) -> Result<HostBreaker, HostError> {
        self.session()?.restore_breaker(snapshot_json)
    }

    /// A breaker set in a session of its own: [`Session::breaker_set`].
    pub fn breaker_set(
        &self,
        config_json: &str,
        max_keys: u32,
    ) -> Result<HostBreakerSet, HostError> {
        self.session()?.breaker_set(config_json, max_keys)
    }

    /// A restored breaker set in a session of its own: [`Session::restore_breaker_set`].
    pub fn restore_breaker_set(&self, snapshot_json: &str) -> Result<HostBreakerSet, HostError> {
        self.session()?.restore_breaker_set(snapshot_json)
    }
}

impl HostBreaker {
    /// The session the breaker lives in.
    pub fn session(&self) -> &Session {
        &self.resource.session
    }

    /// Asks to make a call at `now_ms`: a permit, or a rejection with when to come back.
    pub fn acquire(&self, now_ms: u64) -> Result<Result<Permit, Rejected>, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_breaker()
                    .breaker()
                    .call_acquire(store, this, now_ms)
            })
            .map(admission_from_wit)
    }

    /// Records how the call admitted by `permit` ended; returns the state change, if any.
    pub fn record(
        &self,
        permit: Permit,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<Recorded, HostError> {
        let (permit, outcome) = (permit_to_wit(permit), outcome_to_wit(outcome));
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_breaker()
                    .breaker()
                    .call_record(store, this, permit, outcome, now_ms)
            })
            .map(recorded_from_wit)
    }

    /// The state at `now_ms`.
    pub fn state(&self, now_ms: u64) -> Result<State, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_breaker()
                    .breaker()
                    .call_state(store, this, now_ms)
            })
            .map(state_from_wit)
    }

    /// The counts at `now_ms`.
    pub fn counts(&self, now_ms: u64) -> Result<Counts, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_breaker()
                    .breaker()
                    .call_counts(store, this, now_ms)
            })
            .map(|c| Counts {
                state: state_from_wit(c.state),
                window_calls: c.window_calls,
                window_failures: c.window_failures,
                window_slow: c.window_slow,
                consecutive_failures: c.consecutive_failures,
                probes_in_flight: c.probes_in_flight,
                probe_successes: c.probe_successes,
                times_opened: c.times_opened,
                rejected: c.rejected,
                generation: c.generation,
            })
    }

    /// Rejects every call until [`reset`](HostBreaker::reset).
    pub fn force_open(&self, now_ms: u64) -> Result<Option<Transition>, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_breaker()
                    .breaker()
                    .call_force_open(store, this, now_ms)
            })
            .map(|t| t.map(transition_from_wit))
    }

    /// Admits every call and counts nothing until [`reset`](HostBreaker::reset).
    pub fn disable(&self, now_ms: u64) -> Result<Option<Transition>, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_breaker()
                    .breaker()
                    .call_disable(store, this, now_ms)
            })
            .map(|t| t.map(transition_from_wit))
    }

    /// Back to closed with empty counts.
    pub fn reset(&self, now_ms: u64) -> Result<Option<Transition>, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_breaker()
                    .breaker()
                    .call_reset(store, this, now_ms)
            })
            .map(|t| t.map(transition_from_wit))
    }

    /// The whole state as JSON: the serde form of a native
    /// [`Breaker`](llm_resilience::breaker::Breaker), so `Breaker::restore` reads it as well as
    /// [`Session::restore_breaker`].
    pub fn snapshot(&self) -> Result<String, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_breaker()
                .breaker()
                .call_snapshot(store, this)
        })
    }
}

/// One breaker per key (model or provider) in bounded memory, living in the component
/// ([`llm_resilience::breaker::BreakerSet`] behind the WIT `breaker-set` resource).
///
/// The methods return the native results wrapped in `Result<_, HostError>`; the key errors are
/// the core's [`KeyError`].
#[derive(Debug)]
pub struct HostBreakerSet {
    resource: Resource,
}

impl HostBreakerSet {
    /// The session the set lives in.
    pub fn session(&self) -> &Session {
        &self.resource.session
    }

    /// Asks to make a call for `key` at `now_ms` (the key's breaker is created if needed,
    /// evicting one when the set is full).
    #[allow(clippy::type_complexity)] // the native result, wrapped once
    pub fn acquire(
        &self,
        key: &str,
        now_ms: u64,
    ) -> Result<Result<Result<Permit, Rejected>, KeyError>, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_breaker()
                    .breaker_set()
                    .call_acquire(store, this, key, now_ms)
            })
            .map(|r| r.map(admission_from_wit).map_err(|e| key_error(e, key)))
    }

    /// Records the outcome of a call for `key` (an evicted key's result is stale).
    pub fn record(
        &self,
        key: &str,
        permit: Permit,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<Result<Recorded, KeyError>, HostError> {
        let (permit, outcome) = (permit_to_wit(permit), outcome_to_wit(outcome));
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_breaker()
                    .breaker_set()
                    .call_record(store, this, key, permit, outcome, now_ms)
            })
            .map(|r| r.map(recorded_from_wit).map_err(|e| key_error(e, key)))
    }

    /// The state of `key`'s breaker at `now_ms`; `None` if the key is not held.
    pub fn state(&self, key: &str, now_ms: u64) -> Result<Option<State>, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_breaker()
                    .breaker_set()
                    .call_state(store, this, key, now_ms)
            })
            .map(|s| s.map(state_from_wit))
    }

    /// The keys held, sorted.
    pub fn keys(&self) -> Result<Vec<String>, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_breaker()
                .breaker_set()
                .call_keys(store, this)
        })
    }

    /// The whole state as JSON: the serde form of a native
    /// [`BreakerSet`](llm_resilience::breaker::BreakerSet).
    pub fn snapshot(&self) -> Result<String, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_breaker()
                .breaker_set()
                .call_snapshot(store, this)
        })
    }
}

fn admission_from_wit(a: wit::Admission) -> Result<Permit, Rejected> {
    match a {
        wit::Admission::Admitted(p) => Ok(Permit {
            generation: p.generation,
            id: p.id,
            admitted_ms: p.admitted_ms,
            probe: p.probe,
        }),
        wit::Admission::Rejected(r) => Err(Rejected {
            state: state_from_wit(r.state),
            retry_in_ms: r.retry_in_ms,
        }),
    }
}

fn permit_to_wit(p: Permit) -> wit::Permit {
    wit::Permit {
        generation: p.generation,
        id: p.id,
        admitted_ms: p.admitted_ms,
        probe: p.probe,
    }
}

fn outcome_to_wit(o: Outcome) -> wit::Outcome {
    match o {
        Outcome::Success => wit::Outcome::Success,
        Outcome::Failure {
            kind,
            retry_after_ms,
        } => wit::Outcome::Failure(wit::Failure {
            kind: kind_to_wit(kind),
            retry_after_ms,
        }),
        Outcome::Ignored => wit::Outcome::Ignored,
    }
}

fn recorded_from_wit(r: wit::Recorded) -> Recorded {
    match r {
        wit::Recorded::Counted(t) => Recorded::Counted {
            transition: t.map(transition_from_wit),
        },
        wit::Recorded::Stale => Recorded::Stale,
    }
}

fn transition_from_wit(t: wit::Transition) -> Transition {
    Transition {
        from: state_from_wit(t.from),
        to: state_from_wit(t.to),
    }
}

fn state_from_wit(s: wit::State) -> State {
    match s {
        wit::State::Closed => State::Closed,
        wit::State::Open => State::Open,
        wit::State::HalfOpen => State::HalfOpen,
        wit::State::ForcedOpen => State::ForcedOpen,
        wit::State::Disabled => State::Disabled,
    }
}

/// The core's key error; the WIT enum drops the length, which the host knows.
fn key_error(e: wit::KeyError, key: &str) -> KeyError {
    match e {
        wit::KeyError::EmptyKey => KeyError::Empty,
        wit::KeyError::KeyTooLong => KeyError::TooLong(key.len()),
    }
}

// Kinds cross as the classify interface's enum; make sure the two conversions stay inverse.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::kind_from_wit;
    use llm_resilience::ErrorKind;

    #[test]
    fn outcomes_keep_kind_and_hint() {
        for kind in ErrorKind::ALL {
            let o = outcome_to_wit(Outcome::Failure {
                kind,
                retry_after_ms: Some(7),
            });
            match o {
                wit::Outcome::Failure(f) => {
                    assert_eq!(kind_from_wit(f.kind), kind);
                    assert_eq!(f.retry_after_ms, Some(7));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
