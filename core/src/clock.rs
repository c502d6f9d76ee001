//! Handle time: how a stateful handle turns the caller's `now_ms` into a clock it can trust.
//!
//! # Why handles keep their own time
//!
//! The core reads no clock: every call takes `now_ms`, "milliseconds on the caller's monotonic
//! clock". Real callers break that promise in two ways, and a handle that trusts `now_ms` as
//! is breaks with them:
//!
//! - **Time far ahead.** One call with a nanosecond timestamp by mistake (`1.7·10¹⁸`), or a
//!   `u64::MAX` sentinel, moves the clock millennia ahead.
//! - **Time going backwards.** A snapshot restored after a reboot into a process whose
//!   monotonic clock started again near zero; two threads that read the clock before taking
//!   the handle's lock and arrive out of order.
//!
//! The first rule the core had — "a clock that goes backwards stands still" (`now = max(now,
//! last)`) — turns either mistake into a handle frozen at the far-future time *forever*: a
//! breaker that trips afterwards never admits again (0 of 1 440 acquires over a simulated day).
//!
//! # The rule
//!
//! Every stateful handle (breaker, rate limiter, retry budget, credit monitor) owns a
//! [`Clock`]: the last host value it accepted and its own *handle time*, which only moves
//! forwards. [`Clock::observe`] maps each host `now_ms` to handle time:
//!
//! 1. **First observation** of a fresh handle: handle time = the host value, clamped to at most
//!    [`MAX_START_MS`] (2⁵³ ms, 285 000 years) so handle time starts far from overflow. In the
//!    ordinary case handle time *equals* the caller's time, so every number a handle reports
//!    (`retry_in_ms`, a permit's `admitted_ms`, a snapshot's times) means what it always meant.
//! 2. **Forward step** of `d` ms: handle time advances by `min(d, MAX_FORWARD_STEP_MS)`.
//!    [`MAX_FORWARD_STEP_MS`] is 2³² ms (49.7 days): longer than any open period, rate-limit
//!    period (≤ 31 days) or window a handle keeps, so a genuine long pause still expires every
//!    timer, while no sequence of values can drive handle time to `u64` overflow in practice
//!    (2³² capped steps from 2⁵³ are needed to get there).
//! 3. **Small step back** (at most [`BACKWARD_TOLERANCE_MS`], 1 s): scheduling jitter between
//!    threads that read the clock before taking the lock. Handle time stands still *and the
//!    last host value is kept*, so values arriving out of order do not make time run fast (a
//!    limiter fed 10 000, 9 500, 10 000 sees 0 ms pass, not 500).
//! 4. **Big step back** (more than the tolerance): a **new epoch** — the host's clock was
//!    restarted or replaced. No time passes at that step; the new host value becomes the base,
//!    and handle time advances normally from there.
//!
//! So no sequence of `now_ms` values can freeze a handle for more than
//! [`BACKWARD_TOLERANCE_MS`] of host time: after any value, host time that advances normally
//! advances handle time within that tolerance. A far-future value costs at most one capped
//! step (an open breaker may end early; a window forgets early) — the safe direction, as
//! recovery is probed rather than assumed — and is followed by a new epoch when the real clock
//! comes back.
//!
//! # Absolute times and snapshots
//!
//! Durations crossing the API (`retry_in_ms`, `after_ms`) need no conversion. An absolute time
//! the caller passes (e.g. `RateLimiter::block_until`'s `until_ms`) is converted with
//! [`Clock::to_handle`], relative to the last observation; [`Clock::to_host`] goes the other
//! way. Values a handle hands out only to receive them back (a breaker permit's `admitted_ms`)
//! stay in handle time, so they remain valid across a new epoch.
//!
//! Every snapshot carries its clock and a format `version` ([`SNAPSHOT_VERSION`]). Restoring
//! into another epoch is safe by the rule above: the first observation after a reboot is a big
//! step back, hence a new epoch, so an open breaker stays open for its *remaining* period
//! measured from that observation — not forever (the old rule) and not zero. Snapshots written
//! before versions existed (no `version`, a plain `last_now_ms` number instead of a clock) are
//! read as version 0 and migrated: host = handle = `last_now_ms`.

use crate::config::Problems;
use serde::{Deserialize, Serialize};

/// A step back of at most this many ms is jitter: handle time stands still. 1 000 ms.
pub const BACKWARD_TOLERANCE_MS: u64 = 1_000;

/// The most one observation can advance handle time, ms: 2³² (about 49.7 days).
pub const MAX_FORWARD_STEP_MS: u64 = 1 << 32;

/// The largest handle time a fresh handle starts at, ms: 2⁵³ (about 285 000 years).
pub const MAX_START_MS: u64 = 1 << 53;

/// The snapshot format this library writes. Snapshots with a larger `version` are rejected;
/// snapshots without one (version 0, written before versions existed) are migrated.
pub const SNAPSHOT_VERSION: u32 = 1;

/// What one observation did to the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first observation of a fresh clock: it set the base.
    First,
    /// The host clock moved forwards (possibly by 0); handle time advanced with it, capped at
    /// [`MAX_FORWARD_STEP_MS`].
    Forward,
    /// A step back within [`BACKWARD_TOLERANCE_MS`]: handle time stood still and the last host
    /// value was kept.
    Jitter,
    /// A step back beyond the tolerance: a new epoch; no time passed, the host value is the new
    /// base.
    NewEpoch,
}

/// A handle's clock: the last host time accepted and the handle's own monotonic time. See the
/// module docs for the rule.
///
/// Serialized as `{"host_ms": <u64 or null>, "handle_ms": <u64>}`; a plain number (the
/// `last_now_ms` of snapshots written before clocks existed) reads as a clock at that time, and
/// `null` as a fresh clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ClockRepr")]
pub struct Clock {
    /// The last host `now_ms` accepted as a base; `None` before the first observation.
    host_ms: Option<u64>,
    /// Handle time at that host time, ms.
    handle_ms: u64,
}

/// What a snapshot may hold where a clock belongs.
#[derive(Deserialize)]
#[serde(untagged)]
enum ClockRepr {
    Clock {
        host_ms: Option<u64>,
        handle_ms: u64,
    },
    /// A legacy `last_now_ms` (a number, or `null` for a monitor that never observed).
    Legacy(Option<u64>),
}

impl From<ClockRepr> for Clock {
    fn from(repr: ClockRepr) -> Clock {
        match repr {
            ClockRepr::Clock { host_ms, handle_ms } => Clock { host_ms, handle_ms },
            ClockRepr::Legacy(Some(ms)) => Clock::resumed(ms),
            ClockRepr::Legacy(None) => Clock::new(),
        }
    }
}

impl Clock {
    /// A fresh clock: the first observation sets its base.
    pub const fn new() -> Clock {
        Clock {
            host_ms: None,
            handle_ms: 0,
        }
    }

    /// A clock that last saw host time `at_ms` with handle time equal to it (how a snapshot
    /// written before clocks existed, holding only `last_now_ms`, is migrated).
    pub const fn resumed(at_ms: u64) -> Clock {
        Clock {
            host_ms: Some(at_ms),
            handle_ms: at_ms,
        }
    }

    /// Handle time at the last observation (0 before any).
    pub const fn now(&self) -> u64 {
        self.handle_ms
    }

    /// The last host time accepted as a base, if any was observed.
    pub const fn host(&self) -> Option<u64> {
        self.host_ms
    }

    /// Whether nothing was observed yet.
    pub const fn is_fresh(&self) -> bool {
        self.host_ms.is_none()
    }

    /// Accepts host time `host_now_ms`; returns handle time. For mutating operations.
    pub fn observe(&mut self, host_now_ms: u64) -> u64 {
        self.observe_step(host_now_ms).0
    }

    /// [`observe`](Clock::observe), also saying what kind of step it was (a handle whose
    /// history cannot span epochs, like the credit monitor's burn history, drops it on
    /// [`Step::NewEpoch`]).
    pub fn observe_step(&mut self, host_now_ms: u64) -> (u64, Step) {
        let (now, step) = self.next(host_now_ms);
        if step != Step::Jitter {
            self.host_ms = Some(host_now_ms);
        }
        self.handle_ms = now;
        (now, step)
    }

    /// The handle time `host_now_ms` would map to, without accepting it. For read-only
    /// operations (`state`, `counts`, `remaining`): they answer as of that time but leave the
    /// clock alone.
    pub fn peek(&self, host_now_ms: u64) -> u64 {
        self.next(host_now_ms).0
    }

    /// Converts an absolute host time into handle time, relative to the last observation:
    /// `handle + (host_abs − host)`. A time more than [`MAX_FORWARD_STEP_MS`] ahead counts as
    /// that far ahead (the bound a `now_ms` step gets); a time before handle time 0 is 0.
    /// Before any observation the value is taken as a first observation would be.
    pub fn to_handle(&self, host_abs_ms: u64) -> u64 {
        match self.host_ms {
            None => host_abs_ms.min(MAX_START_MS),
            Some(host) if host_abs_ms >= host => self
                .handle_ms
                .saturating_add((host_abs_ms - host).min(MAX_FORWARD_STEP_MS)),
            Some(host) => self.handle_ms.saturating_sub(host - host_abs_ms),
        }
    }

    /// Converts an absolute handle time into host time, relative to the last observation:
    /// `host + (handle_abs − handle)`, saturating at 0 and `u64::MAX`. Before any observation
    /// handle time is host time.
    pub fn to_host(&self, handle_abs_ms: u64) -> u64 {
        match self.host_ms {
            None => handle_abs_ms,
            Some(host) if handle_abs_ms >= self.handle_ms => {
                host.saturating_add(handle_abs_ms - self.handle_ms)
            }
            Some(host) => host.saturating_sub(self.handle_ms - handle_abs_ms),
        }
    }

    fn next(&self, host_now_ms: u64) -> (u64, Step) {
        match self.host_ms {
            None => (host_now_ms.min(MAX_START_MS), Step::First),
            Some(host) if host_now_ms >= host => (
                self.handle_ms
                    .saturating_add((host_now_ms - host).min(MAX_FORWARD_STEP_MS)),
                Step::Forward,
            ),
            Some(host) if host - host_now_ms <= BACKWARD_TOLERANCE_MS => {
                (self.handle_ms, Step::Jitter)
            }
            Some(_) => (self.handle_ms, Step::NewEpoch),
        }
    }
}

/// Records a problem when a snapshot's `version` is newer than [`SNAPSHOT_VERSION`].
pub(crate) fn check_version(p: &mut Problems, field: &str, version: u32) {
    p.check(version <= SNAPSHOT_VERSION, || {
        format!(
            "{field} {version} is newer than this library's snapshot format \
             {SNAPSHOT_VERSION}: restore it with a newer version of llm-resilience"
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_first_observation_sets_the_base_and_handle_time_equals_host_time() {
        let mut c = Clock::new();
        assert!(c.is_fresh());
        assert_eq!(c.observe_step(5_000), (5_000, Step::First));
        assert_eq!(c.observe_step(5_250), (5_250, Step::Forward));
        assert_eq!(c.observe(5_250), 5_250);
        assert_eq!(c.host(), Some(5_250));
        // A nanosecond timestamp as the very first value starts at 2^53, not near u64::MAX.
        let mut c = Clock::new();
        assert_eq!(c.observe(1_700_000_000_000_000_000), MAX_START_MS);
    }

    #[test]
    fn a_small_step_back_stands_still_and_keeps_the_host_value() {
        let mut c = Clock::resumed(10_000);
        assert_eq!(c.observe_step(9_500), (10_000, Step::Jitter));
        assert_eq!(c.observe_step(9_000), (10_000, Step::Jitter));
        // Exactly the tolerance is still jitter.
        assert_eq!(
            c.observe_step(10_000 - BACKWARD_TOLERANCE_MS).1,
            Step::Jitter
        );
        // Out-of-order arrivals do not make time run fast: back at 10 000, nothing passed.
        assert_eq!(c.observe(10_000), 10_000);
        assert_eq!(c.observe(10_200), 10_200);
    }

    #[test]
    fn a_big_step_back_is_a_new_epoch() {
        let mut c = Clock::resumed(100_000);
        assert_eq!(
            c.observe_step(100_000 - BACKWARD_TOLERANCE_MS - 1),
            (100_000, Step::NewEpoch)
        );
        // A reboot: the host clock starts again at 3; no time passes at that step...
        assert_eq!(c.observe_step(3), (100_000, Step::NewEpoch));
        assert_eq!(c.host(), Some(3));
        // ... and time advances normally from there.
        assert_eq!(c.observe(1_003), 101_000);
    }

    #[test]
    fn a_forward_step_is_capped() {
        let mut c = Clock::resumed(1_000);
        assert_eq!(
            c.observe(1_000 + MAX_FORWARD_STEP_MS),
            1_000 + MAX_FORWARD_STEP_MS
        );
        let mut c = Clock::resumed(1_000);
        assert_eq!(c.observe(u64::MAX), 1_000 + MAX_FORWARD_STEP_MS);
        // The real clock comes back: a new epoch, then normal time.
        assert_eq!(
            c.observe_step(2_000),
            (1_000 + MAX_FORWARD_STEP_MS, Step::NewEpoch)
        );
        assert_eq!(c.observe(2_500), 1_500 + MAX_FORWARD_STEP_MS);
    }

    #[test]
    fn peek_answers_like_observe_without_changing_anything() {
        let c = Clock::resumed(10_000);
        let mut d = c;
        for host in [0, 9_999, 10_000, 12_345, u64::MAX] {
            assert_eq!(c.peek(host), d.observe(host));
            d = c;
        }
        assert_eq!(Clock::new().peek(77), 77);
        assert_eq!(c, Clock::resumed(10_000));
    }

    #[test]
    fn conversions_both_ways() {
        let mut c = Clock::resumed(100_000);
        c.observe(500); // a new epoch: host 500 is handle 100 000
        assert_eq!(c.to_handle(30_500), 130_000);
        assert_eq!(c.to_host(130_000), 30_500);
        assert_eq!(c.to_handle(0), 99_500);
        assert_eq!(c.to_host(99_500), 0);
        // Before handle time 0 / host time 0: saturate.
        assert_eq!(Clock::resumed(10).to_handle(0), 0);
        assert_eq!(c.to_host(0), 0);
        // Far ahead counts as one capped step ahead.
        assert_eq!(c.to_handle(u64::MAX), 100_000 + MAX_FORWARD_STEP_MS);
        assert_eq!(Clock::resumed(0).to_host(u64::MAX), u64::MAX);
        // A fresh clock: as a first observation.
        assert_eq!(Clock::new().to_handle(42), 42);
        assert_eq!(Clock::new().to_handle(u64::MAX), MAX_START_MS);
        assert_eq!(Clock::new().to_host(42), 42);
    }

    #[test]
    fn serde_shape_and_legacy_numbers() {
        let c = Clock::resumed(7);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"host_ms":7,"handle_ms":7}"#);
        assert_eq!(serde_json::from_str::<Clock>(&json).unwrap(), c);
        assert_eq!(
            serde_json::from_str::<Clock>("123").unwrap(),
            Clock::resumed(123)
        );
        assert_eq!(serde_json::from_str::<Clock>("null").unwrap(), Clock::new());
        assert_eq!(
            serde_json::from_str::<Clock>(r#"{"host_ms":null,"handle_ms":0}"#).unwrap(),
            Clock::new()
        );
        assert!(serde_json::from_str::<Clock>(r#""soon""#).is_err());
    }

    #[test]
    fn extreme_values_never_panic() {
        for start in [0, 1, MAX_START_MS, u64::MAX - 1, u64::MAX] {
            let mut c = Clock::resumed(start);
            for host in [u64::MAX, 0, u64::MAX, 1, u64::MAX - 1, 0] {
                let before = c.now();
                let now = c.observe(host);
                assert!(now >= before);
                let _ = (c.peek(host), c.to_handle(host), c.to_host(host));
            }
        }
    }

    proptest! {
        /// Handle time never goes back, never jumps more than the cap, and after any sequence,
        /// host time advancing normally advances handle time within the tolerance.
        #[test]
        fn never_frozen(values in proptest::collection::vec(
                            prop_oneof![any::<u64>(), 0u64..10_000_000, Just(u64::MAX), Just(0u64)], 0..50),
                        tail_start in 0u64..1_000_000_000) {
            let mut c = Clock::new();
            let mut last = 0;
            for v in values {
                let before = c.host().is_some().then(|| c.now());
                let now = c.observe(v);
                if let Some(b) = before {
                    prop_assert!(now >= b && now - b <= MAX_FORWARD_STEP_MS);
                }
                last = now;
            }
            let base = c.observe(tail_start);
            prop_assert!(base >= last);
            let later = c.observe(tail_start + 60_000);
            prop_assert!(later - base + BACKWARD_TOLERANCE_MS >= 60_000);
        }
    }
}
