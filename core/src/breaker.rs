//! Circuit breaking: stop calling a provider that is failing, and find out when it recovers.
//!
//! # Why a breaker
//!
//! When a provider is down, every call to it waits for a timeout or a 5xx and then fails. A
//! breaker remembers that recent calls failed and *rejects* new ones at once (`Open`), so the
//! caller can fall back to another model immediately instead of making a customer wait, and the
//! provider is not hammered while it tries to recover.
//!
//! # Why half-open
//!
//! An open breaker cannot know when the provider is back without trying. After the open
//! duration it lets a few *probe* calls through (`HalfOpen`). If they succeed, the breaker
//! closes; if one fails, it opens again, for longer each time when so configured. Limiting
//! the number of probes matters: letting all traffic through the moment the timer expires
//! would turn one outage into a thundering herd. A probe whose result never arrives (the
//! caller crashed, or forgot) frees its slot after `max_probe_wait_ms`, so the breaker cannot
//! be wedged half-open forever.
//!
//! # What counts
//!
//! Only failures that say something about the provider's health count: timeouts, 5xx,
//! overload, network errors and rate limiting (by default; configurable by [`ErrorKind`]).
//! A context overflow, a flagged message or a bad request is the caller's problem — counting
//! them would let one customer's long conversation open the breaker for everyone. A
//! cancellation by the caller counts as nothing.
//!
//! # Generations
//!
//! Every state change starts a new *generation*. A permit remembers the generation it was
//! admitted in, and results of calls admitted before a state change are ignored: a slow call
//! that started while the breaker was closed must not close (or re-open) it after it opened.
//!
//! # Shape
//!
//! Two steps, time as an argument: [`Breaker::acquire`] at `now_ms` gives a [`Permit`] or a
//! [`Rejected`] with how long to wait; [`Breaker::record`] with that permit, the [`Outcome`]
//! and `now_ms` gives the state [`Transition`], if any. [`BreakerSet`] keeps one breaker per key
//! (model or provider) in bounded memory, and finds the breaker to evict for a new key in
//! O(1). Both serialize (serde) so a restart loses nothing.
//!
//! # Clocks
//!
//! A breaker keeps its own time with a [`Clock`] (see [`crate::clock`] for the rule): a small
//! step back (≤ 1 s) stands still, a bigger one starts a new epoch in which time runs on from
//! where it stood, and a forward step counts at most 2³² ms. So a breaker that once saw a
//! far-future `now_ms` (a nanosecond timestamp, or a snapshot restored after a reboot) is not
//! frozen at that time: once its clock runs again it opens and closes as usual. A permit's
//! `admitted_ms` is in the breaker's time (equal to your `now_ms` until the clock jumps), so a
//! permit stays valid across a new epoch. A snapshot restored into a process whose clock
//! restarted stays open for the rest of its open period, measured from the first call after
//! the restore.
//!
//! # Snapshots
//!
//! A snapshot (the serde form of [`Breaker`] or [`BreakerSet`]) carries a format `version`
//! ([`SNAPSHOT_VERSION`]) and the breaker's clock. [`Breaker::restore`] rejects a newer
//! version and migrates one without a version (written before versions existed; its
//! `last_now_ms` becomes the clock). It also rejects a `generation` above [`MAX_GENERATION`]:
//! the generation wraps (`wrapping_add`) rather than saturating, because a saturated
//! generation would stop changing and let results of calls from earlier generations count;
//! bounding restored values keeps a wrap — which would make a permit from 2⁶⁴ state changes
//! ago look current — more than 10¹⁹ state changes away.

use crate::classify::ErrorKind;
use crate::clock::{Clock, SNAPSHOT_VERSION, check_version};
use crate::config::{ConfigError, Problems};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The window over which the failure rate is measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Window {
    /// The last `calls` recorded calls.
    Count {
        /// How many calls the window holds. 1..=10 000.
        calls: u32,
    },
    /// The calls recorded in the last `ms` milliseconds (kept in ten buckets).
    Time {
        /// The window's length, ms. At least 10.
        ms: u64,
    },
}

/// Trip on a failure (or slow-call) rate over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateRule {
    /// The window. Default: the last 20 calls.
    pub window: Window,
    /// No rate is judged before the window holds this many calls. Default 10. At least 1.
    pub min_calls: u32,
    /// Trip when failures are at least this percentage of the window's calls. Default 50.
    /// 1..=100.
    pub failure_percent: u32,
    /// A call slower than this counts as slow, ms. `None` (default): slowness is not judged.
    pub slow_call_ms: Option<u64>,
    /// Trip when slow calls are at least this percentage. Default 100. 1..=100.
    pub slow_percent: u32,
}

impl Default for RateRule {
    fn default() -> Self {
        RateRule {
            window: Window::Count { calls: 20 },
            min_calls: 10,
            failure_percent: 50,
            slow_call_ms: None,
            slow_percent: 100,
        }
    }
}

/// How long the breaker stays open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenDuration {
    /// The first open period, ms. Default 60 000 (what the Go service uses). At least 1.
    pub base_ms: u64,
    /// Each re-open (a failed probe) multiplies the period by this percentage. 100 (default):
    /// fixed. 200: doubling. 100..=1000.
    pub growth_percent: u32,
    /// The longest open period, ms. Default 600 000. At least `base_ms`.
    pub max_ms: u64,
    /// When the failure that opened the breaker carried a server retry hint longer than the
    /// period, stay open that long instead (up to `max_ms`). Default true.
    pub use_server_hint: bool,
}

impl Default for OpenDuration {
    fn default() -> Self {
        OpenDuration {
            base_ms: 60_000,
            growth_percent: 100,
            max_ms: 600_000,
            use_server_hint: true,
        }
    }
}

/// Settings of a [`Breaker`]. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Trip after this many consecutive counted failures. Default `Some(5)` (the Go service's
    /// rule). `None`: not used. At least 1.
    pub consecutive_failures: Option<u32>,
    /// Trip on a failure rate over a window. Default `Some(RateRule::default())`.
    pub failure_rate: Option<RateRule>,
    /// How long to stay open.
    pub open_duration: OpenDuration,
    /// Probes admitted at once while half-open. Default 1. 1..=1000.
    pub half_open_probes: u32,
    /// Successful probes needed to close. Default 1. At least 1.
    pub half_open_successes: u32,
    /// A probe that has not reported after this long frees its slot, ms. Default 30 000.
    /// At least 1.
    pub max_probe_wait_ms: u64,
    /// The failure kinds that count against the provider. Default: rate-limited, timeout,
    /// overloaded, unavailable, server-error, network. Other kinds are ignored.
    pub counted_kinds: BTreeSet<ErrorKind>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: Some(5),
            failure_rate: Some(RateRule::default()),
            open_duration: OpenDuration::default(),
            half_open_probes: 1,
            half_open_successes: 1,
            max_probe_wait_ms: 30_000,
            counted_kinds: [
                ErrorKind::RateLimited,
                ErrorKind::Timeout,
                ErrorKind::Overloaded,
                ErrorKind::Unavailable,
                ErrorKind::ServerError,
                ErrorKind::Network,
            ]
            .into_iter()
            .collect(),
        }
    }
}

impl BreakerConfig {
    /// Checks every field; lists each rejected one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        p.check(self.consecutive_failures != Some(0), || {
            "consecutive_failures must be >= 1 or null (got 0)".into()
        });
        if let Some(rule) = &self.failure_rate {
            match rule.window {
                Window::Count { calls } => p.check((1..=10_000).contains(&calls), || {
                    format!("failure_rate.window.calls must be in 1..=10000 (got {calls})")
                }),
                Window::Time { ms } => p.check(ms >= BUCKETS as u64, || {
                    format!("failure_rate.window.ms must be >= 10 (got {ms})")
                }),
            }
            p.check(rule.min_calls >= 1, || {
                "failure_rate.min_calls must be >= 1 (got 0)".into()
            });
            p.check((1..=100).contains(&rule.failure_percent), || {
                format!(
                    "failure_rate.failure_percent must be in 1..=100 (got {})",
                    rule.failure_percent
                )
            });
            p.check((1..=100).contains(&rule.slow_percent), || {
                format!(
                    "failure_rate.slow_percent must be in 1..=100 (got {})",
                    rule.slow_percent
                )
            });
        }
        let d = &self.open_duration;
        p.check(d.base_ms >= 1, || {
            "open_duration.base_ms must be >= 1 (got 0)".into()
        });
        p.check((100..=1000).contains(&d.growth_percent), || {
            format!(
                "open_duration.growth_percent must be in 100..=1000 (got {})",
                d.growth_percent
            )
        });
        p.check(d.max_ms >= d.base_ms, || {
            format!(
                "open_duration.max_ms must be >= base_ms (got {} < {})",
                d.max_ms, d.base_ms
            )
        });
        p.check((1..=1000).contains(&self.half_open_probes), || {
            format!(
                "half_open_probes must be in 1..=1000 (got {})",
                self.half_open_probes
            )
        });
        p.check(self.half_open_successes >= 1, || {
            "half_open_successes must be >= 1 (got 0)".into()
        });
        p.check(self.max_probe_wait_ms >= 1, || {
            "max_probe_wait_ms must be >= 1 (got 0)".into()
        });
        p.finish(())
    }
}

/// A breaker's state, as callers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are rejected until the open period ends.
    Open,
    /// A few probe calls are let through to test recovery.
    HalfOpen,
    /// Rejects every call until [`Breaker::reset`] (an operator's switch).
    ForcedOpen,
    /// Admits every call and counts nothing (an operator's switch).
    Disabled,
}

impl State {
    /// The kebab-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
            State::ForcedOpen => "forced-open",
            State::Disabled => "disabled",
        }
    }
}

/// How an admitted call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// The provider answered.
    Success,
    /// The call failed with this kind (counted only if the kind is in `counted_kinds`).
    Failure {
        /// The classified kind.
        kind: ErrorKind,
        /// The server's retry hint, ms, if any (may lengthen the open period).
        retry_after_ms: Option<u64>,
    },
    /// The caller cancelled, or the result says nothing about the provider: not counted.
    Ignored,
}

/// Permission to make one call. Give it back to [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permit {
    /// The breaker generation the call was admitted in.
    pub generation: u64,
    /// A number unique within the breaker, for probe accounting.
    pub id: u64,
    /// When the call was admitted (for slow-call timing), in the breaker's time: your `now_ms`
    /// while the clock never jumped (see [`crate::clock`]). Give the permit back unchanged.
    pub admitted_ms: u64,
    /// Whether this call is a half-open probe.
    pub probe: bool,
}

/// A call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The state that rejected it.
    pub state: State,
    /// When to try again, ms from now; `None` when forced open (no timer).
    pub retry_in_ms: Option<u64>,
}

/// A change of state caused by a recorded outcome (or by the open timer, seen at acquire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
}

/// What recording an outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "recorded", rename_all = "kebab-case")]
pub enum Recorded {
    /// Counted (or ignored by kind); `transition` is set when the state changed.
    Counted {
        /// The state change, if any.
        transition: Option<Transition>,
    },
    /// The permit belongs to an earlier generation (or a probe that already timed out); its
    /// result was ignored.
    Stale,
}

/// Numbers an operator or a metrics exporter can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// The current state.
    pub state: State,
    /// Calls in the failure-rate window.
    pub window_calls: u64,
    /// Counted failures in the window.
    pub window_failures: u64,
    /// Slow calls in the window.
    pub window_slow: u64,
    /// Counted failures in a row, as of now.
    pub consecutive_failures: u32,
    /// Probes admitted and not yet reported.
    pub probes_in_flight: u32,
    /// Successful probes in this half-open period.
    pub probe_successes: u32,
    /// How many times the breaker has opened (trips and re-opens).
    pub times_opened: u64,
    /// Calls rejected since creation.
    pub rejected: u64,
    /// The current generation.
    pub generation: u64,
}

/// Number of buckets a time window is divided into.
const BUCKETS: usize = 10;

/// One call's bits in a count window.
const FAILED: u8 = 1;
const SLOW: u8 = 2;

/// The failure-rate window's data.
///
/// A count window keeps running totals of its failed and slow calls, so that recording an
/// outcome costs the same for a window of 10 calls as for one of 10 000. The totals are not
/// serialized (snapshots hold only the calls, see [`WindowRepr`]); they are recomputed when a
/// snapshot is read, so they cannot disagree with the calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WindowRepr", into = "WindowRepr")]
enum WindowData {
    /// The last calls, oldest first (bits: FAILED, SLOW), and how many of them failed or were
    /// slow.
    Count {
        calls: VecDeque<u8>,
        failures: u64,
        slow: u64,
    },
    /// Ten buckets of (index, calls, failures, slow).
    Time { buckets: Vec<Bucket> },
}

/// The serialized form of [`WindowData`].
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum WindowRepr {
    Count { calls: VecDeque<u8> },
    Time { buckets: Vec<Bucket> },
}

impl From<WindowRepr> for WindowData {
    fn from(repr: WindowRepr) -> Self {
        match repr {
            WindowRepr::Count { calls } => WindowData::Count {
                failures: calls.iter().filter(|&&b| b & FAILED != 0).count() as u64,
                slow: calls.iter().filter(|&&b| b & SLOW != 0).count() as u64,
                calls,
            },
            WindowRepr::Time { buckets } => WindowData::Time { buckets },
        }
    }
}

impl From<WindowData> for WindowRepr {
    fn from(data: WindowData) -> Self {
        match data {
            WindowData::Count { calls, .. } => WindowRepr::Count { calls },
            WindowData::Time { buckets } => WindowRepr::Time { buckets },
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Bucket {
    index: u64,
    calls: u64,
    failures: u64,
    slow: u64,
}

/// The state machine's private data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
enum Phase {
    Closed,
    Open {
        until_ms: u64,
    },
    HalfOpen {
        probes: Vec<(u64, u64)>,
        successes: u32,
    },
    ForcedOpen,
    Disabled,
}

/// The largest `generation` a restored snapshot may hold: 2⁵³ (one state change a millisecond
/// for 285 000 years). See the module docs (# Snapshots).
pub const MAX_GENERATION: u64 = 1 << 53;

/// A circuit breaker for one provider or model. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    /// Snapshot format; 0 when read from a snapshot written before versions existed.
    #[serde(default)]
    version: u32,
    config: BreakerConfig,
    phase: Phase,
    window: WindowData,
    consecutive_failures: u32,
    reopens: u32,
    generation: u64,
    next_id: u64,
    /// The breaker's time (`last_now_ms`, a plain number, in snapshots before version 1).
    #[serde(alias = "last_now_ms")]
    clock: Clock,
    times_opened: u64,
    rejected: u64,
}

impl Breaker {
    /// A closed breaker with `config` (validated).
    pub fn new(config: BreakerConfig) -> Result<Breaker, ConfigError> {
        config.validate()?;
        Ok(Breaker::fresh(config))
    }

    /// A closed breaker with an already validated `config`.
    fn fresh(config: BreakerConfig) -> Breaker {
        let window = empty_window(&config);
        Breaker {
            version: SNAPSHOT_VERSION,
            config,
            phase: Phase::Closed,
            window,
            consecutive_failures: 0,
            reopens: 0,
            generation: 0,
            next_id: 0,
            clock: Clock::new(),
            times_opened: 0,
            rejected: 0,
        }
    }

    /// Restores a breaker exported with serde (e.g. `serde_json::to_string(&breaker)`),
    /// checking its config and bounds so a corrupted snapshot gives an error, not a panic later.
    ///
    /// A snapshot of a newer format `version` is rejected; one without a version is migrated
    /// (see the module docs). The restored breaker keeps the snapshot's clock: if this process's
    /// clock restarted, the first call after the restore starts a new epoch.
    pub fn restore(mut snapshot: Breaker) -> Result<Breaker, ConfigError> {
        let mut p = Problems::default();
        check_version(&mut p, "version", snapshot.version);
        if let Err(e) = snapshot.config.validate() {
            p.extend("", e);
        }
        p.check(snapshot.generation <= MAX_GENERATION, || {
            format!(
                "generation must be <= {MAX_GENERATION} (got {})",
                snapshot.generation
            )
        });
        let now = snapshot.clock.now();
        match &snapshot.phase {
            Phase::Open { until_ms } => p.check(
                *until_ms <= now.saturating_add(snapshot.config.open_duration.max_ms),
                || "phase.until_ms is further ahead of the clock than open_duration.max_ms".into(),
            ),
            Phase::HalfOpen { probes, .. } => p
                .check(probes.iter().all(|&(_, admitted)| admitted <= now), || {
                    "phase.probes holds a probe admitted after the clock's time".into()
                }),
            _ => {}
        }
        let window_ok = match (&snapshot.window, &snapshot.config.failure_rate) {
            (WindowData::Count { calls, .. }, Some(rule)) => match rule.window {
                Window::Count { calls: size } => calls.len() <= size as usize,
                Window::Time { .. } => false,
            },
            (WindowData::Time { buckets }, Some(rule)) => {
                matches!(rule.window, Window::Time { .. }) && buckets.len() == BUCKETS
            }
            (WindowData::Count { calls, .. }, None) => calls.is_empty(),
            (WindowData::Time { .. }, None) => false,
        };
        p.check(window_ok, || {
            "snapshot window does not match its config".into()
        });
        if let Phase::HalfOpen { probes, .. } = &snapshot.phase {
            p.check(
                probes.len() <= snapshot.config.half_open_probes as usize,
                || "snapshot has more probes in flight than half_open_probes".into(),
            );
        }
        snapshot.version = SNAPSHOT_VERSION;
        p.finish(snapshot)
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The state at `now_ms` (an open breaker whose period has ended reads as half-open).
    /// Read-only: the clock is peeked, not moved (see [`crate::clock`]).
    pub fn state(&self, now_ms: u64) -> State {
        self.state_at(self.clock.peek(now_ms))
    }

    /// The state at handle time `now_ms`.
    fn state_at(&self, now_ms: u64) -> State {
        match self.phase {
            Phase::Open { until_ms } if now_ms >= until_ms => State::HalfOpen,
            ref phase => phase_state(phase),
        }
    }

    /// Asks to make a call at `now_ms`.
    pub fn acquire(&mut self, now_ms: u64) -> Result<Permit, Rejected> {
        let now_ms = self.clock.observe(now_ms);
        if let Phase::Open { until_ms } = self.phase
            && now_ms >= until_ms
        {
            self.enter(
                Phase::HalfOpen {
                    probes: Vec::new(),
                    successes: 0,
                },
                now_ms,
            );
        }
        let max_wait = self.config.max_probe_wait_ms;
        let limit = self.config.half_open_probes as usize;
        let probe = match &mut self.phase {
            Phase::Closed | Phase::Disabled => false,
            Phase::Open { until_ms } => {
                let retry_in_ms = Some(*until_ms - now_ms);
                return Err(self.reject(State::Open, retry_in_ms));
            }
            Phase::ForcedOpen => return Err(self.reject(State::ForcedOpen, None)),
            Phase::HalfOpen { probes, .. } => {
                // A probe that never reported frees its slot after max_probe_wait_ms.
                probes.retain(|&(_, admitted)| now_ms.saturating_sub(admitted) < max_wait);
                if probes.len() >= limit {
                    let oldest = probes.iter().map(|&(_, a)| a).min().unwrap_or(now_ms);
                    let retry_in_ms = Some(oldest.saturating_add(max_wait) - now_ms);
                    return Err(self.reject(State::HalfOpen, retry_in_ms));
                }
                probes.push((self.next_id, now_ms));
                true
            }
        };
        let permit = Permit {
            generation: self.generation,
            id: self.next_id,
            admitted_ms: now_ms,
            probe,
        };
        self.next_id = self.next_id.wrapping_add(1);
        Ok(permit)
    }

    /// Records how the call admitted by `permit` ended, at `now_ms`.
    pub fn record(&mut self, permit: Permit, outcome: Outcome, now_ms: u64) -> Recorded {
        let now_ms = self.clock.observe(now_ms);
        if permit.generation != self.generation {
            return Recorded::Stale;
        }
        let counted = match outcome {
            Outcome::Success => Some(false),
            Outcome::Failure { kind, .. } if self.config.counted_kinds.contains(&kind) => {
                Some(true)
            }
            Outcome::Failure { .. } | Outcome::Ignored => None,
        };
        let hint = match outcome {
            Outcome::Failure { retry_after_ms, .. } => retry_after_ms,
            _ => None,
        };
        let slow = self
            .config
            .failure_rate
            .as_ref()
            .and_then(|r| r.slow_call_ms)
            .is_some_and(|limit| now_ms.saturating_sub(permit.admitted_ms) >= limit);
        let transition = match &mut self.phase {
            Phase::Disabled | Phase::ForcedOpen | Phase::Open { .. } => None,
            Phase::HalfOpen { probes, successes } => {
                let Some(pos) = probes.iter().position(|&(id, _)| id == permit.id) else {
                    // Timed out earlier: its slot was already given to another probe.
                    return Recorded::Stale;
                };
                probes.swap_remove(pos);
                match counted {
                    Some(true) => {
                        self.reopens = self.reopens.saturating_add(1);
                        Some(self.open(now_ms, hint))
                    }
                    Some(false) => {
                        *successes = successes.saturating_add(1);
                        if *successes >= self.config.half_open_successes {
                            Some(self.enter(Phase::Closed, now_ms))
                        } else {
                            None
                        }
                    }
                    None => None,
                }
            }
            Phase::Closed => match counted {
                None => None,
                Some(failed) => {
                    self.count(failed, slow, now_ms);
                    if self.should_trip(now_ms) {
                        Some(self.open(now_ms, hint))
                    } else {
                        None
                    }
                }
            },
        };
        Recorded::Counted { transition }
    }

    /// Rejects every call until [`Breaker::reset`].
    pub fn force_open(&mut self, now_ms: u64) -> Option<Transition> {
        let now_ms = self.clock.observe(now_ms);
        self.change(Phase::ForcedOpen, now_ms)
    }

    /// Admits every call and counts nothing until [`Breaker::reset`].
    pub fn disable(&mut self, now_ms: u64) -> Option<Transition> {
        let now_ms = self.clock.observe(now_ms);
        self.change(Phase::Disabled, now_ms)
    }

    /// Back to closed with empty counts (also ends forced-open and disabled).
    pub fn reset(&mut self, now_ms: u64) -> Option<Transition> {
        let now_ms = self.clock.observe(now_ms);
        self.reopens = 0;
        let from = self.state_at(now_ms);
        self.enter(Phase::Closed, now_ms);
        (from != State::Closed).then_some(Transition {
            from,
            to: State::Closed,
        })
    }

    /// The counts at `now_ms`. Read-only: the clock is peeked, not moved.
    pub fn counts(&self, now_ms: u64) -> Counts {
        self.counts_at(self.clock.peek(now_ms))
    }

    /// The counts at handle time `now_ms`.
    fn counts_at(&self, now_ms: u64) -> Counts {
        let (window_calls, window_failures, window_slow) = self.window_totals(now_ms);
        let (probes_in_flight, probe_successes) = match &self.phase {
            Phase::HalfOpen { probes, successes } => (probes.len() as u32, *successes),
            _ => (0, 0),
        };
        Counts {
            state: self.state_at(now_ms),
            window_calls,
            window_failures,
            window_slow,
            consecutive_failures: self.consecutive_failures,
            probes_in_flight,
            probe_successes,
            times_opened: self.times_opened,
            rejected: self.rejected,
            generation: self.generation,
        }
    }

    fn reject(&mut self, state: State, retry_in_ms: Option<u64>) -> Rejected {
        self.rejected = self.rejected.saturating_add(1);
        Rejected { state, retry_in_ms }
    }

    /// Moves to `phase` unless already there; reports the transition.
    fn change(&mut self, phase: Phase, now_ms: u64) -> Option<Transition> {
        let from = self.state_at(now_ms);
        if from == phase_state(&phase) {
            return None;
        }
        Some(self.enter(phase, now_ms))
    }

    /// Enters `phase`: a new generation, fresh counts.
    fn enter(&mut self, phase: Phase, now_ms: u64) -> Transition {
        let from = match (&self.phase, &phase) {
            (Phase::Open { .. }, Phase::HalfOpen { .. }) => State::Open,
            // An expired open timer already reads as half-open to callers.
            _ => self.state_at(now_ms),
        };
        if matches!(phase, Phase::Closed) {
            self.reopens = 0;
        }
        self.phase = phase;
        self.generation = self.generation.wrapping_add(1);
        self.consecutive_failures = 0;
        self.window = empty_window(&self.config);
        Transition {
            from,
            to: phase_state(&self.phase),
        }
    }

    /// Opens for the configured period (grown by re-opens, lengthened by a server hint).
    fn open(&mut self, now_ms: u64, hint: Option<u64>) -> Transition {
        let d = &self.config.open_duration;
        let mut period = d.base_ms;
        for _ in 0..self.reopens {
            period = period
                .saturating_mul(u64::from(d.growth_percent))
                .checked_div(100)
                .unwrap_or(u64::MAX);
            if period >= d.max_ms {
                break;
            }
        }
        if d.use_server_hint
            && let Some(hint) = hint
        {
            period = period.max(hint);
        }
        let period = period.min(d.max_ms);
        self.times_opened = self.times_opened.saturating_add(1);
        self.enter(
            Phase::Open {
                until_ms: now_ms.saturating_add(period),
            },
            now_ms,
        )
    }

    /// Adds one closed-state call to the counts.
    fn count(&mut self, failed: bool, slow: bool, now_ms: u64) {
        self.consecutive_failures = if failed {
            self.consecutive_failures.saturating_add(1)
        } else {
            0
        };
        let bits = if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 };
        match (
            &mut self.window,
            self.config.failure_rate.as_ref().map(|r| &r.window),
        ) {
            (
                WindowData::Count {
                    calls,
                    failures,
                    slow: slow_calls,
                },
                Some(Window::Count { calls: size }),
            ) => {
                if calls.len() >= *size as usize
                    && let Some(old) = calls.pop_front()
                {
                    *failures = failures.saturating_sub(u64::from(old & FAILED != 0));
                    *slow_calls = slow_calls.saturating_sub(u64::from(old & SLOW != 0));
                }
                calls.push_back(bits);
                *failures += u64::from(failed);
                *slow_calls += u64::from(slow);
            }
            (WindowData::Time { buckets }, Some(Window::Time { ms })) => {
                let index = now_ms / (ms / BUCKETS as u64);
                let len = buckets.len().max(1) as u64;
                if let Some(b) = buckets.get_mut((index % len) as usize) {
                    if b.index != index {
                        *b = Bucket {
                            index,
                            ..Bucket::default()
                        };
                    }
                    b.calls = b.calls.saturating_add(1);
                    b.failures = b.failures.saturating_add(u64::from(failed));
                    b.slow = b.slow.saturating_add(u64::from(slow));
                }
            }
            _ => {}
        }
    }

    /// (calls, failures, slow) in the window as of `now_ms`.
    fn window_totals(&self, now_ms: u64) -> (u64, u64, u64) {
        match (
            &self.window,
            self.config.failure_rate.as_ref().map(|r| &r.window),
        ) {
            (
                WindowData::Count {
                    calls,
                    failures,
                    slow,
                },
                _,
            ) => (calls.len() as u64, *failures, *slow),
            (WindowData::Time { buckets }, Some(Window::Time { ms })) => {
                let current = now_ms / (ms / BUCKETS as u64);
                buckets
                    .iter()
                    .filter(|b| b.index <= current && current - b.index < BUCKETS as u64)
                    .fold((0, 0, 0), |(c, f, s), b| {
                        (c + b.calls, f + b.failures, s + b.slow)
                    })
            }
            _ => (0, 0, 0),
        }
    }

    fn should_trip(&self, now_ms: u64) -> bool {
        if let Some(n) = self.config.consecutive_failures
            && self.consecutive_failures >= n
        {
            return true;
        }
        let Some(rule) = &self.config.failure_rate else {
            return false;
        };
        let (calls, failures, slow) = self.window_totals(now_ms);
        if calls < u64::from(rule.min_calls) || calls == 0 {
            return false;
        }
        let at_least = |part: u64, percent: u32| {
            u128::from(part) * 100 >= u128::from(percent) * u128::from(calls)
        };
        at_least(failures, rule.failure_percent)
            || (rule.slow_call_ms.is_some() && at_least(slow, rule.slow_percent))
    }
}

fn phase_state(phase: &Phase) -> State {
    match phase {
        Phase::Closed => State::Closed,
        Phase::Open { .. } => State::Open,
        Phase::HalfOpen { .. } => State::HalfOpen,
        Phase::ForcedOpen => State::ForcedOpen,
        Phase::Disabled => State::Disabled,
    }
}

fn empty_window(config: &BreakerConfig) -> WindowData {
    match config.failure_rate.as_ref().map(|r| &r.window) {
        Some(Window::Time { .. }) => WindowData::Time {
            buckets: vec![Bucket::default(); BUCKETS],
        },
        _ => WindowData::Count {
            calls: VecDeque::new(),
            failures: 0,
            slow: 0,
        },
    }
}

/// One breaker per key (model, provider, or `provider/model`), in bounded memory.
///
/// # What is evicted
///
/// When a key the set does not hold arrives ([`BreakerSet::acquire`] or
/// [`BreakerSet::entry`]) and the set already holds `max_keys` breakers, exactly one breaker is
/// evicted first. Breakers fall into three tiers, and the victim comes from the first non-empty
/// one:
///
/// 1. **fresh**: closed, with no call in its failure-rate window and no consecutive failures
///    (forgetting it loses nothing a new breaker would not also know);
/// 2. **counted**: any other closed breaker, and a disabled one;
/// 3. **protected**: open (also one whose open period has run out, which reads as half-open),
///    half-open and forced open.
///
/// Within a tier the least recently used goes first: a key is *used* by every
/// [`BreakerSet::acquire`], [`BreakerSet::record`] and [`BreakerSet::entry`] for it. (Each of
/// those calls advances the set's 64-bit use counter, which cannot wrap in practice, and a key
/// remembers the counter's value at its last use; a snapshot holds both. Two keys can share a
/// value only in a hand-made snapshot; then the key that sorts first by bytes goes first.) So an open, half-open or
/// forced-open breaker is evicted only when every breaker in the set is one: losing protection
/// for a key is worse than losing a fresh one.
///
/// A breaker's tier is judged as of the latest `now_ms` that breaker itself has seen, not the
/// set's latest time. A time window whose calls have aged out therefore makes a breaker fresh
/// only once it is used again at the later time. This is deliberate: a tier then changes only
/// when its breaker does, and every change goes through this set, so the set can keep one
/// least-recently-used list per tier and find the victim in O(1) — judging every breaker at
/// the set's time would need a scan of all of them at every eviction.
///
/// # Cost
///
/// A new key in a full set, and every call on a held key, costs O(1) beyond the key's lookup
/// in the (sorted) map of breakers (measured in `core/benches/eviction.rs`). The lists cost
/// one more copy of each key and three links. They are not part of a snapshot: reading one
/// rebuilds them, in O(n log n), by sorting the keys by tier, last use and key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "SetSnapshot")]
pub struct BreakerSet {
    /// Snapshot format; 0 when read from a snapshot written before versions existed.
    #[serde(default)]
    version: u32,
    config: BreakerConfig,
    max_keys: usize,
    breakers: BTreeMap<String, Held>,
    tick: u64,
    /// The eviction order.
    #[serde(skip)]
    lru: Lru,
    /// The node of the key whose breaker the last [`BreakerSet::entry`] lent out mutably: its
    /// tier may have changed since, so the next call re-files it.
    #[serde(skip)]
    lent: Option<u32>,
}

/// A held breaker: serialized as `[breaker, last use]`.
#[derive(Debug, Clone)]
struct Held {
    breaker: Breaker,
    /// The use counter at the key's last use.
    used: u64,
    /// The key's node in the eviction lists (not serialized).
    node: u32,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.breaker == other.breaker && self.used == other.used
    }
}

impl Eq for Held {}

impl Serialize for Held {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.breaker, self.used).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Held {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (breaker, used) = <(Breaker, u64)>::deserialize(deserializer)?;
        Ok(Held {
            breaker,
            used,
            node: NO_NODE,
        })
    }
}

/// A breaker's eviction tier (see [`BreakerSet`]); the lowest is evicted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    /// Closed, nothing counted.
    Fresh = 0,
    /// Closed with something counted, or disabled.
    Counted = 1,
    /// Open, half-open or forced open.
    Protected = 2,
}

/// Marks the end of an eviction list (and a breaker not yet in one).
const NO_NODE: u32 = u32::MAX;

/// One least-recently-used list per [`Tier`], linked through a slab of nodes (one per held
/// key). A list's order is the order of its keys' last use, because a key is appended at its
/// newest end whenever it is used, and nothing else moves it.
#[derive(Debug, Clone)]
struct Lru {
    nodes: Vec<Node>,
    /// Nodes of evicted keys, for reuse.
    free: Vec<u32>,
    /// Per tier: (least, most) recently used node.
    ends: [(u32, u32); 3],
}

#[derive(Debug, Clone)]
struct Node {
    key: String,
    tier: Tier,
    /// Towards the least recently used.
    older: u32,
    /// Towards the most recently used.
    newer: u32,
}

impl Default for Lru {
    fn default() -> Self {
        Lru {
            nodes: Vec::new(),
            free: Vec::new(),
            ends: [(NO_NODE, NO_NODE); 3],
        }
    }
}

impl Lru {
    /// Adds `key` as the most recently used of `tier`; gives its node.
    fn push(&mut self, key: String, tier: Tier) -> u32 {
        let node = Node {
            key,
            tier,
            older: NO_NODE,
            newer: NO_NODE,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.link(i, tier);
        i
    }

    /// Moves node `i` to the most recently used end of `tier`.
    fn touch(&mut self, i: u32, tier: Tier) {
        self.unlink(i);
        self.link(i, tier);
    }

    /// Removes the least recently used key of the lowest non-empty tier.
    fn pop(&mut self) -> Option<String> {
        let i = self
            .ends
            .iter()
            .map(|&(oldest, _)| oldest)
            .find(|&i| i != NO_NODE)?;
        self.unlink(i);
        self.free.push(i);
        self.nodes
            .get_mut(i as usize)
            .map(|n| std::mem::take(&mut n.key))
    }

    fn link(&mut self, i: u32, tier: Tier) {
        let (oldest, newest) = self.ends[tier as usize];
        let Some(node) = self.nodes.get_mut(i as usize) else {
            return;
        };
        node.tier = tier;
        node.older = newest;
        node.newer = NO_NODE;
        if let Some(n) = self.nodes.get_mut(newest as usize) {
            n.newer = i;
        }
        let oldest = if oldest == NO_NODE { i } else { oldest };
        self.ends[tier as usize] = (oldest, i);
    }

    fn unlink(&mut self, i: u32) {
        let Some(&Node {
            tier, older, newer, ..
        }) = self.nodes.get(i as usize)
        else {
            return;
        };
        let ends = &mut self.ends[tier as usize];
        match self.nodes.get_mut(newer as usize) {
            Some(n) => n.older = older,
            None => ends.1 = older,
        }
        match self.nodes.get_mut(older as usize) {
            Some(o) => o.newer = newer,
            None => ends.0 = newer,
        }
    }
}

/// The serialized form of a [`BreakerSet`]: the set without its eviction lists.
#[derive(Deserialize)]
struct SetSnapshot {
    /// Snapshot format; 0 when read from a snapshot written before versions existed.
    #[serde(default)]
    version: u32,
    config: BreakerConfig,
    max_keys: usize,
    breakers: BTreeMap<String, Held>,
    tick: u64,
}

impl From<SetSnapshot> for BreakerSet {
    fn from(s: SetSnapshot) -> Self {
        let mut set = BreakerSet {
            version: s.version,
            config: s.config,
            max_keys: s.max_keys,
            breakers: s.breakers,
            tick: s.tick,
            lru: Lru::default(),
            lent: None,
        };
        set.rebuild_lru();
        set
    }
}

/// Two sets are equal when their snapshots are (the eviction lists follow from the breakers).
impl PartialEq for BreakerSet {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
            && self.max_keys == other.max_keys
            && self.breakers == other.breakers
            && self.tick == other.tick
    }
}

impl Eq for BreakerSet {}

/// Eviction support for [`BreakerSet`].
impl Breaker {
    /// The breaker's own time (its clock's, in handle time).
    fn seen_ms(&self) -> u64 {
        self.clock.now()
    }

    /// The eviction tier, as of the breaker's own clock.
    fn tier(&self) -> Tier {
        match self.phase {
            Phase::Closed => {
                let c = self.counts_at(self.seen_ms());
                if c.window_calls == 0 && c.consecutive_failures == 0 {
                    Tier::Fresh
                } else {
                    Tier::Counted
                }
            }
            Phase::Disabled => Tier::Counted,
            Phase::Open { .. } | Phase::HalfOpen { .. } | Phase::ForcedOpen => Tier::Protected,
        }
    }
}

/// Longest key a [`BreakerSet`] accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// A [`BreakerSet`] call was given a key it cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is empty.
    #[error("breaker key is empty")]
    Empty,
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("breaker key is {0} bytes, more than the {MAX_KEY_BYTES} allowed")]
    TooLong(usize),
}

impl KeyError {
    /// A stable kebab-case code (`"empty-key"`), the same on every surface.
    pub const fn code(&self) -> &'static str {
        match self {
            KeyError::Empty => "empty-key",
            KeyError::TooLong(_) => "key-too-long",
        }
    }
}

impl BreakerSet {
    /// A set of at most `max_keys` breakers (1..=100 000), each with `config`.
    pub fn new(config: BreakerConfig, max_keys: usize) -> Result<BreakerSet, ConfigError> {
        let mut p = Problems::default();
        if let Err(e) = config.validate() {
            p.extend("", e);
        }
        p.check((1..=100_000).contains(&max_keys), || {
            format!("max_keys must be in 1..=100000 (got {max_keys})")
        });
        p.finish(BreakerSet {
            version: SNAPSHOT_VERSION,
            config,
            max_keys,
            breakers: BTreeMap::new(),
            tick: 0,
            lru: Lru::default(),
            lent: None,
        })
    }

    /// Restores a set exported with serde, checking every breaker, the set's format `version`
    /// (as [`Breaker::restore`] does), and that no key was last used after the set's use
    /// counter (which only a hand-made snapshot can say).
    pub fn restore(snapshot: BreakerSet) -> Result<BreakerSet, ConfigError> {
        let mut p = Problems::default();
        check_version(&mut p, "version", snapshot.version);
        let mut set = BreakerSet::new(snapshot.config, snapshot.max_keys)?;
        set.tick = snapshot.tick;
        p.check(snapshot.breakers.len() <= set.max_keys, || {
            "snapshot holds more keys than max_keys".into()
        });
        for (key, held) in snapshot.breakers {
            p.check(held.used <= set.tick, || {
                format!(
                    "{key}: last used at {} after the set's use counter {}",
                    held.used, set.tick
                )
            });
            match Breaker::restore(held.breaker) {
                Ok(breaker) => {
                    let held = Held {
                        breaker,
                        used: held.used,
                        node: NO_NODE,
                    };
                    set.breakers.insert(key, held);
                }
                Err(e) => p.extend(&format!("{key}: "), e),
            }
        }
        set.rebuild_lru();
        p.finish(set)
    }

    /// Asks to make a call for `key` at `now_ms`.
    pub fn acquire(
        &mut self,
        key: &str,
        now_ms: u64,
    ) -> Result<Result<Permit, Rejected>, KeyError> {
        check_key(key)?;
        self.use_tick();
        Ok(match self.with_held(key, |b| b.acquire(now_ms)) {
            Ok(admission) => admission,
            Err(acquire) => {
                self.make_room();
                let mut breaker = Breaker::fresh(self.config.clone());
                let admission = acquire(&mut breaker);
                let node = self.lru.push(key.to_owned(), breaker.tier());
                let held = Held {
                    breaker,
                    used: self.tick,
                    node,
                };
                self.breakers.insert(key.to_owned(), held);
                admission
            }
        })
    }

    /// Records the outcome of a call for `key`. An unknown key (evicted since) is stale.
    pub fn record(
        &mut self,
        key: &str,
        permit: Permit,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<Recorded, KeyError> {
        check_key(key)?;
        self.use_tick();
        Ok(self
            .with_held(key, |b| b.record(permit, outcome, now_ms))
            .unwrap_or(Recorded::Stale))
    }

    /// The breaker for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Breaker> {
        self.breakers.get(key).map(|held| &held.breaker)
    }

    /// The breaker for `key`, created if needed (evicting one when full, see [`BreakerSet`]).
    /// Whatever is done with it counts in its eviction tier from the next call on the set.
    pub fn entry(&mut self, key: &str) -> Result<&mut Breaker, KeyError> {
        check_key(key)?;
        self.use_tick();
        if !self.breakers.contains_key(key) {
            self.make_room();
        }
        let (tick, config, lru) = (self.tick, &self.config, &mut self.lru);
        let held = self.breakers.entry(key.to_owned()).or_insert_with(|| {
            let breaker = Breaker::fresh(config.clone());
            let node = lru.push(key.to_owned(), breaker.tier());
            Held {
                breaker,
                used: tick,
                node,
            }
        });
        held.used = tick;
        lru.touch(held.node, held.breaker.tier());
        // The caller may change its tier: the next call re-files it.
        self.lent = Some(held.node);
        Ok(&mut held.breaker)
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.breakers.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.breakers.is_empty()
    }

    /// Keys held, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.breakers.keys().map(String::as_str)
    }

    /// Starts a call on the set: re-files the breaker lent by the last [`BreakerSet::entry`]
    /// under the tier it has now (still the most recently used), and advances the use counter.
    fn use_tick(&mut self) {
        if let Some(i) = self.lent.take()
            && let Some(node) = self.lru.nodes.get(i as usize)
            && let Some(held) = self.breakers.get(&node.key)
        {
            let tier = held.breaker.tier();
            if tier != node.tier {
                self.lru.touch(i, tier);
            }
        }
        self.tick = self.tick.wrapping_add(1);
    }

    /// Runs `f` on the breaker of `key`, marks the key used now and files it under the tier
    /// `f` left it in; gives `f` back if the key is not held.
    fn with_held<T, F: FnOnce(&mut Breaker) -> T>(&mut self, key: &str, f: F) -> Result<T, F> {
        let Some(held) = self.breakers.get_mut(key) else {
            return Err(f);
        };
        held.used = self.tick;
        let out = f(&mut held.breaker);
        self.lru.touch(held.node, held.breaker.tier());
        Ok(out)
    }

    /// Evicts the first breaker in eviction order if the set is full.
    fn make_room(&mut self) {
        if self.breakers.len() >= self.max_keys
            && let Some(key) = self.lru.pop()
        {
            self.breakers.remove(&key);
        }
    }

    /// Builds the eviction lists from the breakers (after a snapshot is read): by tier, last
    /// use and key.
    fn rebuild_lru(&mut self) {
        self.lent = None;
        self.lru = Lru::default();
        let mut order: Vec<(Tier, u64, &String)> = self
            .breakers
            .iter()
            .map(|(key, held)| (held.breaker.tier(), held.used, key))
            .collect();
        order.sort_unstable();
        let nodes: Vec<(String, u32)> = order
            .into_iter()
            .map(|(tier, _, key)| (key.clone(), self.lru.push(key.clone(), tier)))
            .collect();
        for (key, node) in nodes {
            if let Some(held) = self.breakers.get_mut(&key) {
                held.node = node;
            }
        }
    }
}

fn check_key(key: &str) -> Result<(), KeyError> {
    if key.is_empty() {
        Err(KeyError::Empty)
    } else if key.len() > MAX_KEY_BYTES {
        Err(KeyError::TooLong(key.len()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FAIL: Outcome = Outcome::Failure {
        kind: ErrorKind::Unavailable,
        retry_after_ms: None,
    };

    fn consecutive_only(n: u32) -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: Some(n),
            failure_rate: None,
            ..BreakerConfig::default()
        }
    }

    fn call(b: &mut Breaker, outcome: Outcome, now: u64) -> Recorded {
        let permit = b.acquire(now).expect("admitted");
        b.record(permit, outcome, now)
    }

    fn opened(from: State) -> Recorded {
        Recorded::Counted {
            transition: Some(Transition {
                from,
                to: State::Open,
            }),
        }
    }

    #[test]
    fn five_consecutive_failures_open_it_for_sixty_seconds() {
        let mut b = Breaker::new(BreakerConfig::default()).unwrap();
        for t in 0..4 {
            assert_eq!(
                call(&mut b, FAIL, t),
                Recorded::Counted { transition: None }
            );
        }
        assert_eq!(call(&mut b, FAIL, 4), opened(State::Closed));
        assert_eq!(
            b.acquire(10_004),
            Err(Rejected {
                state: State::Open,
                retry_in_ms: Some(50_000)
            })
        );
        assert_eq!(b.counts(10_004).rejected, 1);
        assert_eq!(b.state(60_003), State::Open);
        assert_eq!(b.state(60_004), State::HalfOpen);
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let mut b = Breaker::new(consecutive_only(3)).unwrap();
        call(&mut b, FAIL, 0);
        call(&mut b, FAIL, 1);
        call(&mut b, Outcome::Success, 2);
        call(&mut b, FAIL, 3);
        call(&mut b, FAIL, 4);
        assert_eq!(b.state(5), State::Closed);
        assert_eq!(call(&mut b, FAIL, 5), opened(State::Closed));
    }

    #[test]
    fn kinds_that_say_nothing_about_the_provider_never_trip_it() {
        let mut b = Breaker::new(consecutive_only(1)).unwrap();
        for kind in [
            ErrorKind::ContextOverflow,
            ErrorKind::Moderation,
            ErrorKind::InvalidRequest,
            ErrorKind::Auth,
        ] {
            let outcome = Outcome::Failure {
                kind,
                retry_after_ms: None,
            };
            assert_eq!(
                call(&mut b, outcome, 0),
                Recorded::Counted { transition: None }
            );
        }
        call(&mut b, Outcome::Ignored, 0);
        assert_eq!(b.state(0), State::Closed);
        assert_eq!(b.counts(0).window_calls, 0);
    }

    #[test]
    fn half_open_admits_n_probes_and_closes_after_m_successes() {
        let mut b = Breaker::new(BreakerConfig {
            half_open_probes: 2,
            half_open_successes: 2,
            ..consecutive_only(1)
        })
        .unwrap();
        call(&mut b, FAIL, 0);
        let p1 = b.acquire(60_000).unwrap();
        let p2 = b.acquire(60_001).unwrap();
        assert!(p1.probe && p2.probe);
        assert_eq!(
            b.acquire(60_002),
            Err(Rejected {
                state: State::HalfOpen,
                retry_in_ms: Some(29_998)
            })
        );
        assert_eq!(
            b.record(p1, Outcome::Success, 60_010),
            Recorded::Counted { transition: None }
        );
        let p3 = b.acquire(60_011).unwrap();
        assert_eq!(
            b.record(p2, Outcome::Success, 60_020),
            Recorded::Counted {
                transition: Some(Transition {
                    from: State::HalfOpen,
                    to: State::Closed
                })
            }
        );
        // p3 was admitted half-open: its result belongs to an earlier generation.
        assert_eq!(b.record(p3, FAIL, 60_030), Recorded::Stale);
        assert_eq!(b.state(60_030), State::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_for_longer_each_time() {
        let mut b = Breaker::new(BreakerConfig {
            open_duration: OpenDuration {
                base_ms: 1_000,
                growth_percent: 200,
                max_ms: 3_000,
                use_server_hint: false,
            },
            ..consecutive_only(1)
        })
        .unwrap();
        call(&mut b, FAIL, 0);
        assert_eq!(call(&mut b, FAIL, 1_000), opened(State::HalfOpen));
        assert_eq!(b.acquire(2_999).unwrap_err().retry_in_ms, Some(1));
        assert_eq!(call(&mut b, FAIL, 3_000), opened(State::HalfOpen));
        // 4 000 would exceed max_ms: capped at 3 000.
        assert_eq!(b.acquire(3_000).unwrap_err().retry_in_ms, Some(3_000));
        assert_eq!(b.counts(3_000).times_opened, 3);
        // Closing resets the growth.
        call(&mut b, Outcome::Success, 6_000);
        call(&mut b, FAIL, 6_001);
        assert_eq!(b.acquire(6_001).unwrap_err().retry_in_ms, Some(1_000));
    }

    #[test]
    fn a_probe_that_never_reports_frees_its_slot() {
        let mut b = Breaker::new(BreakerConfig {
            max_probe_wait_ms: 5_000,
            ..consecutive_only(1)
        })
        .unwrap();
        call(&mut b, FAIL, 0);
        let lost = b.acquire(60_000).unwrap();
        assert!(b.acquire(64_999).is_err());
        let p = b.acquire(65_000).expect("slot freed");
        assert_eq!(b.record(lost, Outcome::Success, 65_001), Recorded::Stale);
        assert_eq!(b.counts(65_001).probes_in_flight, 1);
        assert!(matches!(
            b.record(p, Outcome::Success, 65_002),
            Recorded::Counted {
                transition: Some(Transition {
                    to: State::Closed,
                    ..
                })
            }
        ));
    }

    #[test]
    fn results_of_calls_admitted_before_a_trip_are_ignored() {
        let mut b = Breaker::new(consecutive_only(2)).unwrap();
        let slow = b.acquire(0).unwrap();
        call(&mut b, FAIL, 1);
        call(&mut b, FAIL, 2);
        assert_eq!(b.state(3), State::Open);
        assert_eq!(b.record(slow, Outcome::Success, 3), Recorded::Stale);
        assert_eq!(b.state(3), State::Open);
    }

    #[test]
    fn failure_rate_over_a_count_window_with_a_minimum() {
        let mut b = Breaker::new(BreakerConfig {
            consecutive_failures: None,
            failure_rate: Some(RateRule {
                window: Window::Count { calls: 10 },
                min_calls: 4,
                failure_percent: 50,
                ..RateRule::default()
            }),
            ..BreakerConfig::default()
        })
        .unwrap();
        call(&mut b, FAIL, 0);
        call(&mut b, FAIL, 0);
        call(&mut b, Outcome::Success, 0); // 2 of 3, below min_calls
        assert_eq!(b.state(0), State::Closed);
        // The fourth call, a success, still makes 2 failures of 4 = 50 %: the rate trips it.
        assert_eq!(call(&mut b, Outcome::Success, 0), opened(State::Closed));
    }

    #[test]
    fn failure_rate_over_a_time_window_forgets_old_calls() {
        let mut b = Breaker::new(BreakerConfig {
            consecutive_failures: None,
            failure_rate: Some(RateRule {
                window: Window::Time { ms: 10_000 },
                min_calls: 4,
                failure_percent: 75,
                ..RateRule::default()
            }),
            ..BreakerConfig::default()
        })
        .unwrap();
        call(&mut b, FAIL, 0);
        call(&mut b, FAIL, 0);
        call(&mut b, FAIL, 0);
        call(&mut b, Outcome::Success, 0);
        // 3 of 4 = 75 %: but the success came last; the check runs on every record.
        assert_eq!(b.state(0), State::Open);
        b.reset(0);
        call(&mut b, FAIL, 0);
        call(&mut b, FAIL, 0);
        call(&mut b, FAIL, 0);
        // Eleven seconds later those three are out of the window.
        call(&mut b, FAIL, 11_000);
        assert_eq!(b.counts(11_000).window_calls, 1);
        assert_eq!(b.state(11_000), State::Closed);
    }

    #[test]
    fn count_window_running_totals_match_a_recount() {
        let mut b = Breaker::new(BreakerConfig {
            consecutive_failures: None,
            failure_rate: Some(RateRule {
                window: Window::Count { calls: 7 },
                min_calls: 7,
                failure_percent: 100,
                slow_call_ms: Some(5),
                slow_percent: 100,
            }),
            ..BreakerConfig::default()
        })
        .unwrap();
        for i in 0..40u64 {
            let p = b.acquire(i * 10).unwrap();
            let outcome = if i % 3 == 0 { FAIL } else { Outcome::Success };
            b.record(p, outcome, i * 10 + (i % 4) * 3);
            // A snapshot holds only the calls; reading it recounts them.
            let json = serde_json::to_string(&b).unwrap();
            let recounted: Breaker = serde_json::from_str(&json).unwrap();
            assert_eq!(recounted.counts(i * 10), b.counts(i * 10), "after call {i}");
            assert_eq!(recounted, b);
        }
        assert_eq!(b.counts(400).window_calls, 7);
    }

    #[test]
    fn slow_calls_trip_it_when_configured() {
        let mut b = Breaker::new(BreakerConfig {
            consecutive_failures: None,
            failure_rate: Some(RateRule {
                window: Window::Count { calls: 4 },
                min_calls: 4,
                slow_call_ms: Some(10_000),
                slow_percent: 50,
                ..RateRule::default()
            }),
            ..BreakerConfig::default()
        })
        .unwrap();
        for (start, end) in [
            (0, 1_000),
            (1_000, 13_000),
            (13_000, 13_500),
            (13_500, 28_500),
        ] {
            let p = b.acquire(start).unwrap();
            b.record(p, Outcome::Success, end);
        }
        assert_eq!(b.state(28_500), State::Open);
    }

    #[test]
    fn a_server_hint_keeps_it_open_longer() {
        let mut b = Breaker::new(consecutive_only(1)).unwrap();
        let outcome = Outcome::Failure {
            kind: ErrorKind::RateLimited,
            retry_after_ms: Some(120_000),
        };
        call(&mut b, outcome, 0);
        assert_eq!(b.acquire(0).unwrap_err().retry_in_ms, Some(120_000));
    }

    #[test]
    fn operator_switches() {
        let mut b = Breaker::new(consecutive_only(1)).unwrap();
        assert_eq!(
            b.force_open(0),
            Some(Transition {
                from: State::Closed,
                to: State::ForcedOpen
            })
        );
        assert_eq!(
            b.acquire(1_000_000),
            Err(Rejected {
                state: State::ForcedOpen,
                retry_in_ms: None
            })
        );
        b.disable(1);
        for t in 0..10 {
            assert_eq!(
                call(&mut b, FAIL, t),
                Recorded::Counted { transition: None }
            );
        }
        assert_eq!(
            b.reset(20),
            Some(Transition {
                from: State::Disabled,
                to: State::Closed
            })
        );
        assert_eq!(b.reset(21), None);
    }

    #[test]
    fn a_clock_that_jumps_backwards_starts_a_new_epoch() {
        let mut b = Breaker::new(consecutive_only(1)).unwrap();
        call(&mut b, FAIL, 100_000);
        // The clock jumps back a minute: a new epoch, no time passes at that step...
        assert_eq!(b.acquire(40_000).unwrap_err().retry_in_ms, Some(60_000));
        assert_eq!(b.state(0), State::Open);
        // ... and time runs on from there: 60 s later (host 100 000) the period is over. Under
        // the old rule ("stands still" at 100 000) it would stay open until host 160 000.
        assert_eq!(b.state(99_999), State::Open);
        assert_eq!(b.state(100_000), State::HalfOpen);
        assert!(b.acquire(100_000).unwrap().probe);
    }

    #[test]
    fn jitter_stands_still_and_a_far_future_value_does_not_freeze_it() {
        let mut b = Breaker::new(consecutive_only(1)).unwrap();
        call(&mut b, FAIL, 10_000);
        // 0.5 s back: stands still (same time left), and does not make time run fast later.
        assert_eq!(b.acquire(9_500).unwrap_err().retry_in_ms, Some(60_000));
        assert_eq!(b.acquire(10_500).unwrap_err().retry_in_ms, Some(59_500));
        // A nanosecond timestamp by mistake moves time at most 2^32 ms: the period is over.
        let p = b.acquire(1_700_000_000_000_000_000).unwrap();
        assert!(p.probe);
        assert_eq!(p.admitted_ms, 10_500 + crate::clock::MAX_FORWARD_STEP_MS);
        // Back to milliseconds: a new epoch; the probe's result still counts (its admitted_ms
        // is in the breaker's time) and a failure opens it for 60 s of the new epoch.
        assert_eq!(b.record(p, FAIL, 11_000), opened(State::HalfOpen));
        assert_eq!(b.acquire(41_000).unwrap_err().retry_in_ms, Some(30_000));
        assert!(b.acquire(71_000).is_ok());
    }

    #[test]
    fn restored_into_another_epoch_it_stays_open_for_the_rest_of_its_period() {
        let mut b = Breaker::new(consecutive_only(1)).unwrap();
        // Opened at 5 000 000 ms of uptime, snapshot 20 s later: 40 s left.
        call(&mut b, FAIL, 5_000_000);
        assert_eq!(b.state(5_020_000), State::Open);
        b.acquire(5_020_000).unwrap_err();
        let json = serde_json::to_string(&b).unwrap();
        // The machine reboots; the new process's monotonic clock reads 1 200.
        let mut r = Breaker::restore(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(r.acquire(1_200).unwrap_err().retry_in_ms, Some(40_000));
        assert_eq!(r.state(41_199), State::Open);
        assert!(r.acquire(41_200).unwrap().probe);
    }

    #[test]
    fn snapshots_carry_a_version_and_old_ones_are_migrated() {
        let mut b = Breaker::new(consecutive_only(1)).unwrap();
        call(&mut b, FAIL, 7_000);
        let mut v: serde_json::Value = serde_json::to_value(&b).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(
            v["clock"],
            serde_json::json!({"host_ms": 7_000, "handle_ms": 7_000})
        );
        // A newer format is refused, naming the field.
        v["version"] = 2.into();
        let err = Breaker::restore(serde_json::from_value(v.clone()).unwrap()).unwrap_err();
        assert!(err.to_string().contains("version 2 is newer"), "{err}");
        // A snapshot written before versions: no version, `last_now_ms` instead of a clock.
        let o = v.as_object_mut().unwrap();
        o.remove("version");
        o.remove("clock");
        o.insert("last_now_ms".into(), 7_000.into());
        let old = Breaker::restore(serde_json::from_value(v).unwrap()).unwrap();
        assert_eq!(old, b);
        // An empty snapshot of a set without a version, too.
        let set = BreakerSet::new(consecutive_only(1), 4).unwrap();
        let mut v = serde_json::to_value(&set).unwrap();
        v.as_object_mut().unwrap().remove("version");
        assert_eq!(
            BreakerSet::restore(serde_json::from_value(v.clone()).unwrap()).unwrap(),
            set
        );
        v["version"] = 9.into();
        let err = BreakerSet::restore(serde_json::from_value(v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
    }

    #[test]
    fn restore_bounds_the_generation_and_times_against_the_clock() {
        let mut b = Breaker::new(consecutive_only(1)).unwrap();
        call(&mut b, FAIL, 0);
        let mut v = serde_json::to_value(&b).unwrap();
        v["generation"] = (MAX_GENERATION + 1).into();
        let err = Breaker::restore(serde_json::from_value(v.clone()).unwrap()).unwrap_err();
        assert!(err.to_string().contains("generation must be <="), "{err}");
        // At the bound it is accepted, and the next state change is still a new generation.
        v["generation"] = MAX_GENERATION.into();
        let mut r = Breaker::restore(serde_json::from_value(v.clone()).unwrap()).unwrap();
        let p = r.acquire(60_000).unwrap();
        assert_eq!(p.generation, MAX_GENERATION + 1);
        // Open far longer than max_ms beyond the clock: corrupt.
        v["phase"]["until_ms"] = u64::MAX.into();
        let err = Breaker::restore(serde_json::from_value(v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("until_ms"), "{err}");
    }

    #[test]
    fn snapshots_round_trip_and_corrupt_ones_are_rejected() {
        let mut b = Breaker::new(BreakerConfig::default()).unwrap();
        call(&mut b, FAIL, 0);
        call(&mut b, Outcome::Success, 1);
        let json = serde_json::to_string(&b).unwrap();
        let restored = Breaker::restore(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(restored, b);
        let bad = json.replace("\"half_open_probes\":1", "\"half_open_probes\":0");
        let err = Breaker::restore(serde_json::from_str(&bad).unwrap()).unwrap_err();
        assert!(err.to_string().contains("half_open_probes"), "{err}");
    }

    #[test]
    fn config_errors_list_every_problem() {
        let err = Breaker::new(BreakerConfig {
            consecutive_failures: Some(0),
            failure_rate: Some(RateRule {
                window: Window::Count { calls: 0 },
                min_calls: 0,
                failure_percent: 0,
                slow_call_ms: None,
                slow_percent: 101,
            }),
            open_duration: OpenDuration {
                base_ms: 0,
                growth_percent: 50,
                max_ms: 0,
                use_server_hint: true,
            },
            half_open_probes: 0,
            half_open_successes: 0,
            max_probe_wait_ms: 0,
            counted_kinds: BTreeSet::new(),
        })
        .unwrap_err();
        assert_eq!(err.problems.len(), 10, "{err}");
    }

    #[test]
    fn the_set_evicts_fresh_breakers_first_and_open_ones_last() {
        let config = BreakerConfig {
            consecutive_failures: Some(1),
            ..BreakerConfig::default()
        };
        let mut set = BreakerSet::new(config, 3).unwrap();
        set.acquire("open", 0).unwrap().unwrap();
        let p = set.entry("open").unwrap().acquire(0).unwrap();
        set.record("open", p, FAIL, 0).unwrap();
        let p = set.acquire("used", 1).unwrap().unwrap();
        set.record("used", p, Outcome::Success, 1).unwrap();
        set.acquire("fresh", 2).unwrap().unwrap();
        // "fresh" has nothing counted: it goes first, although it was used last.
        set.acquire("new1", 3).unwrap().unwrap();
        assert_eq!(set.keys().collect::<Vec<_>>(), ["new1", "open", "used"]);
        // Then the least recently used closed one ("used" has a success counted; "new1" is fresh).
        set.acquire("new2", 4).unwrap().unwrap();
        assert_eq!(set.keys().collect::<Vec<_>>(), ["new2", "open", "used"]);
        let p = set.acquire("used", 5).unwrap().unwrap();
        set.record("used", p, Outcome::Success, 5).unwrap();
        set.acquire("new3", 6).unwrap().unwrap();
        assert_eq!(set.keys().collect::<Vec<_>>(), ["new3", "open", "used"]);
        assert_eq!(set.get("open").unwrap().state(6), State::Open);
        assert_eq!(set.acquire("", 0), Err(KeyError::Empty));
        assert_eq!(
            set.acquire(&"x".repeat(300), 0),
            Err(KeyError::TooLong(300))
        );
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(
            BreakerSet::restore(serde_json::from_str(&json).unwrap()).unwrap(),
            set
        );
    }

    /// A config where one counted failure opens the breaker for a second, and a success is
    /// counted in the window (so a used closed breaker is not fresh).
    fn set_config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: Some(1),
            open_duration: OpenDuration {
                base_ms: 1_000,
                ..OpenDuration::default()
            },
            ..BreakerConfig::default()
        }
    }

    fn keys_of(set: &BreakerSet) -> Vec<&str> {
        set.keys().collect()
    }

    fn set_call(set: &mut BreakerSet, key: &str, outcome: Outcome, now: u64) {
        let p = set.acquire(key, now).unwrap().expect("admitted");
        set.record(key, p, outcome, now).unwrap();
    }

    #[test]
    fn the_set_evicts_by_tier_then_least_recent_use() {
        let mut set = BreakerSet::new(set_config(), 6).unwrap();
        set.entry("forced").unwrap().force_open(0);
        set.entry("disabled").unwrap().disable(0);
        set_call(&mut set, "counted", Outcome::Success, 0);
        set_call(&mut set, "open", FAIL, 0);
        set_call(&mut set, "half", FAIL, 0);
        // Its open period is over: this probe makes it half-open.
        assert!(set.acquire("half", 1_000).unwrap().unwrap().probe);
        set.acquire("fresh", 1_000).unwrap().unwrap();
        assert_eq!(set.len(), 6);

        // Fresh first, although it was used last.
        set.acquire("n1", 1_001).unwrap().unwrap();
        assert!(set.get("fresh").is_none());
        // A new key is fresh too: the next new key evicts it.
        set.acquire("n2", 1_002).unwrap().unwrap();
        assert_eq!(
            keys_of(&set),
            ["counted", "disabled", "forced", "half", "n2", "open"]
        );
        // With nothing fresh, the least recently used closed-or-disabled one: "disabled"
        // (used before "counted"), then "counted", then "n2".
        set_call(&mut set, "n2", Outcome::Success, 1_003);
        set_call(&mut set, "n3", Outcome::Success, 1_004);
        assert!(set.get("disabled").is_none());
        set_call(&mut set, "n4", Outcome::Success, 1_005);
        assert!(set.get("counted").is_none());
        set_call(&mut set, "n5", Outcome::Success, 1_006);
        assert!(set.get("n2").is_none());
        assert_eq!(keys_of(&set), ["forced", "half", "n3", "n4", "n5", "open"]);
        // Open, half-open and forced-open go only when nothing else is left: open the three
        // closed ones; then the least recently used protected one goes ("forced", used first).
        for (i, key) in ["n3", "n4", "n5"].into_iter().enumerate() {
            set_call(&mut set, key, FAIL, 1_010 + i as u64);
            assert_eq!(set.get(key).unwrap().state(1_010), State::Open);
        }
        set.acquire("n6", 1_020).unwrap().unwrap();
        assert!(set.get("forced").is_none());
        // "n6" is fresh, so it goes before any protected one.
        set.acquire("n7", 1_021).unwrap().unwrap();
        assert!(set.get("n6").is_none());
        set_call(&mut set, "n7", FAIL, 1_022);
        // All protected again: "open" (last used at 0) goes before "half" (used at 1 000).
        set.acquire("n8", 1_023).unwrap().unwrap();
        assert_eq!(keys_of(&set), ["half", "n3", "n4", "n5", "n7", "n8"]);
    }

    #[test]
    fn a_breaker_changed_through_entry_is_ranked_by_its_new_state() {
        let mut set = BreakerSet::new(set_config(), 2).unwrap();
        set.acquire("a", 0).unwrap().unwrap();
        set.acquire("b", 1).unwrap().unwrap();
        // "a" is the least recently used fresh one, but forcing it open through `entry`
        // protects it.
        set.entry("a").unwrap().force_open(2);
        set.acquire("b", 3).unwrap().unwrap();
        set.acquire("c", 4).unwrap().unwrap();
        assert_eq!(keys_of(&set), ["a", "c"]);
        // Reset through `entry`, "a" is fresh again and, used first, goes first.
        set_call(&mut set, "c", Outcome::Success, 5);
        set.entry("a").unwrap().reset(6);
        set.acquire("d", 7).unwrap().unwrap();
        assert_eq!(keys_of(&set), ["c", "d"]);
        // A change through `entry` right before a snapshot counts in the restored set too.
        set.entry("c").unwrap().force_open(8);
        let json = serde_json::to_string(&set).unwrap();
        let mut restored = BreakerSet::restore(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(restored, set);
        for s in [&mut set, &mut restored] {
            s.acquire("e", 9).unwrap().unwrap();
            assert_eq!(keys_of(s), ["c", "e"]);
        }
    }

    #[test]
    fn a_breaker_is_ranked_at_its_own_latest_time() {
        let config = BreakerConfig {
            consecutive_failures: None,
            failure_rate: Some(RateRule {
                window: Window::Time { ms: 10_000 },
                min_calls: 100,
                ..RateRule::default()
            }),
            ..BreakerConfig::default()
        };
        let mut set = BreakerSet::new(config, 2).unwrap();
        set_call(&mut set, "old", Outcome::Success, 0);
        set_call(&mut set, "young", Outcome::Success, 5_000);
        // At 30 000 both calls have left their windows. "old", used again then, has an empty
        // window at its own latest time: it is fresh and goes first, although used last.
        // "young" was last seen at 5 000, when its call was still in the window: it stays
        // counted until it is used again.
        set.acquire("old", 30_000).unwrap().unwrap();
        set.acquire("new", 30_000).unwrap().unwrap();
        assert_eq!(keys_of(&set), ["new", "young"]);
    }

    #[test]
    fn the_eviction_index_is_not_in_snapshots() {
        let mut set = BreakerSet::new(set_config(), 3).unwrap();
        set_call(&mut set, "a", FAIL, 0);
        set.entry("b").unwrap();
        let value = serde_json::to_value(&set).unwrap();
        let fields: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            ["breakers", "config", "max_keys", "tick", "version"]
        );
        // Reading a snapshot rebuilds the index: "b" (fresh) goes before "a" (open).
        let mut read: BreakerSet = serde_json::from_value(value).unwrap();
        read.acquire("c", 1).unwrap().unwrap();
        read.acquire("d", 2).unwrap().unwrap();
        assert_eq!(keys_of(&read), ["a", "c", "d"]);
        // Then "c", the least recently used of the fresh ones.
        read.acquire("e", 3).unwrap().unwrap();
        assert_eq!(keys_of(&read), ["a", "d", "e"]);
    }

    #[test]
    fn a_snapshot_whose_keys_were_used_after_the_counter_is_rejected() {
        let mut set = BreakerSet::new(set_config(), 3).unwrap();
        set.acquire("a", 0).unwrap().unwrap();
        set.acquire("b", 0).unwrap().unwrap();
        let json = serde_json::to_string(&set).unwrap();
        assert!(json.ends_with(r#""tick":2}"#), "{json}");
        let bad = json.replace(r#""tick":2}"#, r#""tick":1}"#);
        let err = BreakerSet::restore(serde_json::from_str(&bad).unwrap()).unwrap_err();
        assert!(err.to_string().contains("b: last used at 2"), "{err}");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Acquire(u64),
        Record(usize, u8, u64),
        Force(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..5_000).prop_map(Op::Acquire),
            4 => (0usize..64, 0u8..4, 0u64..5_000).prop_map(|(i, o, t)| Op::Record(i, o, t)),
            1 => (0u8..3).prop_map(Op::Force),
        ]
    }

    proptest! {
        /// Half-open never has more than `half_open_probes` probes in flight, whatever happens;
        /// nothing panics; a clock that jumps around is survived.
        #[test]
        fn half_open_never_admits_more_than_n(ops in proptest::collection::vec(op(), 1..300),
                                              probes in 1u32..4, jumpy in any::<bool>()) {
            let mut b = Breaker::new(BreakerConfig {
                half_open_probes: probes,
                half_open_successes: 2,
                max_probe_wait_ms: 3_000,
                open_duration: OpenDuration { base_ms: 2_000, growth_percent: 150, max_ms: 9_000, use_server_hint: true },
                ..consecutive_only(2)
            }).unwrap();
            let mut permits: Vec<Permit> = Vec::new();
            // `now` is what the caller passes (it may jump back); `clock` models the time the
            // breaker keeps (crate::clock's rule), observed whenever the breaker is given `now`.
            let mut now = 0u64;
            let mut clock = Clock::new();
            for op in ops {
                match op {
                    Op::Acquire(dt) => {
                        now = if jumpy && dt % 7 == 0 { now.saturating_sub(dt) } else { now + dt };
                        clock.observe(now);
                        if let Ok(p) = b.acquire(now) { permits.push(p); }
                    }
                    Op::Record(i, o, dt) => {
                        now += dt;
                        if permits.is_empty() { continue; }
                        clock.observe(now);
                        let p = permits.swap_remove(i % permits.len());
                        let outcome = match o {
                            0 => Outcome::Success,
                            1 => Outcome::Ignored,
                            2 => Outcome::Failure { kind: ErrorKind::Timeout, retry_after_ms: Some(dt) },
                            _ => Outcome::Failure { kind: ErrorKind::ContextOverflow, retry_after_ms: None },
                        };
                        b.record(p, outcome, now);
                    }
                    Op::Force(f) => {
                        clock.observe(now);
                        match f {
                            0 => { b.force_open(now); }
                            1 => { b.disable(now); }
                            _ => { b.reset(now); }
                        }
                    }
                }
                let latest = clock.now();
                let c = b.counts(now);
                prop_assert!(c.probes_in_flight <= probes);
                // Unreported probes of this half-open period that have not timed out.
                let live = permits.iter().filter(|p| p.probe && p.generation == c.generation
                    && latest - p.admitted_ms < 3_000).count();
                prop_assert!(live <= probes as usize, "{live} live probes > {probes}");
            }
        }
    }
}
