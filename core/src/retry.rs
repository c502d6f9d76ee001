//! Retry decisions: whether to retry a failed call, when, and with what change.
//!
//! # Why not just "retry 3 times"?
//!
//! A fixed number of retries per call is safe while failures are rare and independent. During
//! an outage they are neither: every call fails, every caller retries, and a service that sent
//! 100 requests a second now sends 400 — a *retry storm* that keeps the provider down, burns
//! rate limits for everyone sharing the key, and wastes money on calls that cannot succeed.
//! Max-attempts bounds the damage per call, not per service.
//!
//! A **retry budget** bounds it per service. Every original request deposits a fraction of a
//! token (say 0.2); every retry withdraws a whole one; a small floor (so many retries per second)
//! lets a quiet service still retry. In normal times the budget is always full and nothing
//! changes; during an outage, retries are capped at ~20 % of traffic instead of 300 %. This is
//! the design Finagle and gRPC use, and tower's `Budget`; [`RetryBudget`] keeps the deposits in
//! a sliding window so old traffic does not pay for today's retries.
//!
//! # What a decision looks at
//!
//! [`RetryPolicy::decide`] takes the [`Classification`] of the failure and the caller's
//! [`CallState`], and returns a [`Decision`] value — it never sleeps:
//!
//! - permanent kinds (auth, quota, moderation, invalid request, not found, unknown) give up at
//!   once: retrying them only costs money;
//! - `context-overflow` is retried only after shrinking the request, to a target computed from
//!   the limit and requested numbers in the error when it states them, else by a factor;
//! - each kind has its own retry limit (a provider that is overloaded deserves more patience
//!   than one that returns 500s);
//! - the delay is exponential backoff with jitter (full or decorrelated, from a seed so every
//!   surface makes the same decision), or exactly what the server asked for when it said so;
//! - a server wait longer than `max_server_wait_ms` gives up instead of waiting: a customer is
//!   waiting on the other end of the chat, and a fallback model answers sooner than a provider
//!   that asks for ten minutes;
//! - a deadline for the whole call, retries included;
//! - the retry budget, last, so a call that gives up for another reason costs no budget.
//!
//! # Clocks
//!
//! The [`RetryBudget`] is a long-lived handle: it keeps its own time with a [`Clock`] (the rule
//! is in [`crate::clock`]), so a far-future `now_ms` or a clock that restarted cannot freeze
//! its window. Its serde form carries the clock and a format version; bring one back with
//! [`RetryBudget::restore`].
//!
//! A [`CallState`] does not: it lives for one call (seconds), and its only use of time is the
//! deadline, `started_ms + deadline_ms` against `now_ms + delay`, both on the caller's clock.
//! Nothing in it can be frozen by a clock jump — every decision still counts attempts, so a
//! call ends after `max_total_retries` whatever the clock says — and all its arithmetic
//! saturates, so no value panics. A clock that goes backwards during a call makes the deadline
//! look further away (the call may use all its attempts); one that jumps far ahead gives up
//! with [`GiveUpReason::Deadline`], which is what a call that really waited that long should
//! do. A per-call clock would change neither outcome enough to be worth carrying.

use crate::classify::{Classification, ErrorKind};
use crate::clock::{Clock, SNAPSHOT_VERSION, check_version};
use crate::config::{ConfigError, Problems};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a backoff delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Jitter {
    /// No randomness: `base · 2^(n-1)`, capped. Callers that retry in lockstep stay in lockstep.
    None,
    /// A uniform delay in `[0, min(max, base · 2^(n-1))]` (AWS "full jitter").
    Full,
    /// `min(max, uniform(base, 3 · previous))` (AWS "decorrelated jitter").
    Decorrelated,
}

/// Settings of a [`RetryPolicy`]. Every field has a documented default ([`Default`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries allowed per kind (not counting the first attempt). Kinds not listed get 0.
    /// Default: rate-limited 4, timeout 2, context-overflow 2 (shrinks), overloaded 4,
    /// unavailable 3, server-error 2, network 3.
    pub max_retries: BTreeMap<ErrorKind, u32>,
    /// Retries allowed per call across all kinds. Default 6.
    pub max_total_retries: u32,
    /// First backoff delay, ms. Default 500. Must be > 0.
    pub base_delay_ms: u64,
    /// Largest backoff delay, ms. Default 30 000. Must be ≥ `base_delay_ms`.
    pub max_delay_ms: u64,
    /// Backoff randomisation. Default [`Jitter::Full`].
    pub jitter: Jitter,
    /// The longest server-directed wait honoured, ms; longer hints give up. Default 60 000.
    pub max_server_wait_ms: u64,
    /// Time allowed for the whole call, retries and waits included, ms. Default 120 000.
    /// `None`: no deadline.
    pub deadline_ms: Option<u64>,
    /// Without numbers in a context-overflow error, shrink the request to this share of its
    /// current size, in percent. Default 70. Must be in 1..=99.
    pub shrink_percent: u32,
    /// Safety margin kept below a stated context limit, in percent of the limit. Default 5.
    /// Must be ≤ 50.
    pub shrink_margin_percent: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        let max_retries = [
            (ErrorKind::RateLimited, 4),
            (ErrorKind::Timeout, 2),
            (ErrorKind::ContextOverflow, 2),
            (ErrorKind::Overloaded, 4),
            (ErrorKind::Unavailable, 3),
            (ErrorKind::ServerError, 2),
            (ErrorKind::Network, 3),
        ]
        .into_iter()
        .collect();
        RetryConfig {
            max_retries,
            max_total_retries: 6,
            base_delay_ms: 500,
            max_delay_ms: 30_000,
            jitter: Jitter::Full,
            max_server_wait_ms: 60_000,
            deadline_ms: Some(120_000),
            shrink_percent: 70,
            shrink_margin_percent: 5,
        }
    }
}

/// A validated retry policy. Immutable; share it across calls.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    config: RetryConfig,
}

/// The per-call state a [`RetryPolicy`] needs: created by [`RetryPolicy::start_call`], passed
/// to every [`RetryPolicy::decide`] of that call. Serializable, so a call can move between
/// processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallState {
    started_ms: u64,
    retries: u32,
    retries_by_kind: BTreeMap<ErrorKind, u32>,
    previous_delay_ms: u64,
    rng: Pcg32,
}

impl CallState {
    /// Retries decided so far in this call.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// When the call started (the caller's monotonic clock, ms).
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }
}

/// What the caller should do about a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Send the same request again after `after_ms`.
    Retry {
        /// How long to wait first, ms.
        after_ms: u64,
        /// The number of the attempt about to be made (2 for the first retry).
        attempt: u32,
    },
    /// Shrink the request to at most `target_tokens` (by the caller's own count), then retry
    /// after `after_ms`.
    ShrinkContext {
        /// The request size to aim for, in tokens.
        target_tokens: u64,
        /// How long to wait first, ms (0: at once).
        after_ms: u64,
        /// The number of the attempt about to be made.
        attempt: u32,
    },
    /// Stop; report the failure.
    GiveUp {
        /// Why.
        reason: GiveUpReason,
    },
}

/// Why a call gave up. Each variant carries what an operator needs to read the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum GiveUpReason {
    /// The failure cannot be cured by retrying (auth, quota, moderation, invalid request, …).
    Permanent {
        /// The failure's kind.
        kind: ErrorKind,
    },
    /// The retries allowed for this kind, or for the call, are used up.
    AttemptsExhausted {
        /// The failure's kind.
        kind: ErrorKind,
        /// Retries already made in this call.
        retries: u32,
    },
    /// The service-wide retry budget is empty: retries are already a large share of traffic.
    BudgetExhausted,
    /// The server asked for a longer wait than the policy allows.
    WaitTooLong {
        /// What the server asked for, ms.
        wait_ms: u64,
        /// The policy's ceiling, ms.
        ceiling_ms: u64,
    },
    /// Waiting would pass the call's deadline.
    Deadline {
        /// When the retry would be sent (caller's clock, ms).
        retry_at_ms: u64,
        /// The deadline (caller's clock, ms).
        deadline_at_ms: u64,
    },
    /// Context overflow, but neither the error nor the caller gives a size to shrink from.
    CannotShrink,
}

impl RetryPolicy {
    /// Validates `config`; lists every rejected field.
    pub fn new(config: RetryConfig) -> Result<RetryPolicy, ConfigError> {
        let mut p = Problems::default();
        p.check(config.base_delay_ms > 0, || {
            "base_delay_ms must be > 0 (got 0)".to_string()
        });
        p.check(config.max_delay_ms >= config.base_delay_ms, || {
            format!(
                "max_delay_ms must be >= base_delay_ms (got {} < {})",
                config.max_delay_ms, config.base_delay_ms
            )
        });
        p.check(config.deadline_ms != Some(0), || {
            "deadline_ms must be > 0 or null (got 0)".to_string()
        });
        p.check((1..=99).contains(&config.shrink_percent), || {
            format!(
                "shrink_percent must be in 1..=99 (got {})",
                config.shrink_percent
            )
        });
        p.check(config.shrink_margin_percent <= 50, || {
            format!(
                "shrink_margin_percent must be <= 50 (got {})",
                config.shrink_margin_percent
            )
        });
        p.finish(RetryPolicy { config })
    }

    /// The validated settings.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// Starts a call at `now_ms`. `seed` makes its jitter reproducible: the same seed gives the
    /// same delays on every surface. Also deposits this request into `budget`.
    pub fn start_call(&self, now_ms: u64, seed: u64, budget: &mut RetryBudget) -> CallState {
        budget.deposit(now_ms);
        CallState {
            started_ms: now_ms,
            retries: 0,
            retries_by_kind: BTreeMap::new(),
            previous_delay_ms: self.config.base_delay_ms,
            rng: Pcg32::seed_from_u64(seed),
        }
    }

    /// Decides what to do about a failed attempt of `call`, at `now_ms`.
    ///
    /// `request_tokens` is the caller's own count of the request that failed; it makes the
    /// shrink target for `context-overflow` exact in the caller's measure. A retry (of any kind)
    /// withdraws from `budget`; a give-up does not.
    pub fn decide(
        &self,
        call: &mut CallState,
        failure: &Classification,
        now_ms: u64,
        request_tokens: Option<u64>,
        budget: &mut RetryBudget,
    ) -> Decision {
        let c = &self.config;
        let kind = failure.kind;
        let overflow = kind == ErrorKind::ContextOverflow;
        if !failure.retryable && !overflow {
            return give_up(GiveUpReason::Permanent { kind });
        }
        let kind_retries = call.retries_by_kind.get(&kind).copied().unwrap_or(0);
        let kind_limit = c.max_retries.get(&kind).copied().unwrap_or(0);
        if kind_retries >= kind_limit || call.retries >= c.max_total_retries {
            return give_up(GiveUpReason::AttemptsExhausted {
                kind,
                retries: call.retries,
            });
        }
        let target_tokens = if overflow {
            match self.shrink_target(failure, request_tokens) {
                Some(t) => Some(t),
                None => return give_up(GiveUpReason::CannotShrink),
            }
        } else {
            None
        };
        let delay = match failure.retry_after_ms {
            Some(wait) if wait > c.max_server_wait_ms => {
                return give_up(GiveUpReason::WaitTooLong {
                    wait_ms: wait,
                    ceiling_ms: c.max_server_wait_ms,
                });
            }
            Some(wait) => wait,
            // A shrunk request is a different request: send it at once.
            None if overflow => 0,
            None => self.backoff(call, kind_retries.max(call.retries).saturating_add(1)),
        };
        let retry_at_ms = now_ms.saturating_add(delay);
        if let Some(deadline) = c.deadline_ms {
            let deadline_at_ms = call.started_ms.saturating_add(deadline);
            if retry_at_ms > deadline_at_ms {
                return give_up(GiveUpReason::Deadline {
                    retry_at_ms,
                    deadline_at_ms,
                });
            }
        }
        if !budget.try_withdraw(now_ms) {
            return give_up(GiveUpReason::BudgetExhausted);
        }
        call.retries = call.retries.saturating_add(1);
        let kind_count = call.retries_by_kind.entry(kind).or_insert(0);
        *kind_count = kind_count.saturating_add(1);
        call.previous_delay_ms = delay.max(c.base_delay_ms);
        let attempt = call.retries.saturating_add(1);
        match target_tokens {
            Some(target_tokens) => Decision::ShrinkContext {
                target_tokens,
                after_ms: delay,
                attempt,
            },
            None => Decision::Retry {
                after_ms: delay,
                attempt,
            },
        }
    }

    /// The request size to shrink to after a context overflow.
    ///
    /// With limit L and requested R from the error: the caller's count scaled by L/R, less the
    /// margin (the caller's tokenizer may count differently from the provider's), or L less the
    /// margin without a caller count. Without numbers: the caller's count times
    /// `shrink_percent`.
    fn shrink_target(&self, failure: &Classification, request_tokens: Option<u64>) -> Option<u64> {
        let c = &self.config;
        let keep = |n: u64| n.saturating_mul(u64::from(100 - c.shrink_margin_percent)) / 100;
        match (
            failure.limit_tokens,
            failure.requested_tokens,
            request_tokens,
        ) {
            (Some(limit), Some(requested), Some(mine)) if requested > limit && limit > 0 => {
                let scaled = u128::from(mine) * u128::from(limit) / u128::from(requested);
                Some(keep(u64::try_from(scaled).unwrap_or(u64::MAX)))
            }
            (Some(limit), _, Some(mine)) if limit > 0 => Some(keep(limit.min(mine))),
            (Some(limit), _, None) if limit > 0 => Some(keep(limit)),
            (_, _, Some(mine)) if mine > 0 => {
                Some(mine.saturating_mul(u64::from(c.shrink_percent)) / 100)
            }
            _ => None,
        }
    }

    /// The backoff delay before retry number `n` (1-based).
    fn backoff(&self, call: &mut CallState, n: u32) -> u64 {
        let c = &self.config;
        let exp = c
            .base_delay_ms
            .checked_shl(n.saturating_sub(1))
            .filter(|d| d >> n.saturating_sub(1) == c.base_delay_ms)
            .unwrap_or(u64::MAX)
            .min(c.max_delay_ms);
        match c.jitter {
            Jitter::None => exp,
            Jitter::Full => uniform(&mut call.rng, 0, exp),
            Jitter::Decorrelated => {
                let high = call
                    .previous_delay_ms
                    .saturating_mul(3)
                    .max(c.base_delay_ms);
                uniform(&mut call.rng, c.base_delay_ms, high).min(c.max_delay_ms)
            }
        }
    }
}

fn give_up(reason: GiveUpReason) -> Decision {
    Decision::GiveUp { reason }
}

/// A uniform integer in `[low, high]` (modulo bias is below 2^-32 for delays in ms).
fn uniform(rng: &mut Pcg32, low: u64, high: u64) -> u64 {
    if high <= low {
        return low;
    }
    let span = high - low;
    match span.checked_add(1) {
        Some(n) => low + rng.next_u64() % n,
        None => rng.next_u64(),
    }
}

/// Settings of a [`RetryBudget`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// How long a deposit counts, ms. Default 10 000. Must be ≥ 10.
    pub window_ms: u64,
    /// Retries always allowed per second, whatever the traffic. Default 10.
    pub min_retries_per_sec: u32,
    /// Retries allowed as a percentage of requests in the window. Default 20. At most 1000.
    pub retry_percent: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            window_ms: 10_000,
            min_retries_per_sec: 10,
            retry_percent: 20,
        }
    }
}

impl BudgetConfig {
    /// Records every rejected field in `p`.
    fn check(&self, p: &mut Problems) {
        p.check(self.window_ms >= BUDGET_SLOTS as u64, || {
            format!("window_ms must be >= 10 (got {})", self.window_ms)
        });
        p.check(self.retry_percent <= 1000, || {
            format!("retry_percent must be <= 1000 (got {})", self.retry_percent)
        });
    }
}

/// Number of slots the budget's window is divided into.
const BUDGET_SLOTS: usize = 10;

/// One slot of the budget's sliding window: the requests and retries in one tenth of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Slot {
    /// Which tenth of time this slot holds (`now_ms / slot_ms`).
    index: u64,
    deposits: u64,
    withdrawals: u64,
}

/// A service-wide retry budget over a sliding window (see the module docs for why).
///
/// Over any window, retries allowed ≤ `min_retries_per_sec · window` + `retry_percent` % of the
/// requests deposited in it. Time is the caller's monotonic clock in ms, kept by a [`Clock`]
/// (see [`crate::clock`]: jitter stands still, a bigger step back starts a new epoch, a forward
/// step counts at most 2³² ms). Its serde form is its snapshot: it carries a format `version`
/// and the clock; read one back with [`RetryBudget::restore`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryBudget {
    /// Snapshot format; 0 when read from a snapshot written before versions existed.
    #[serde(default)]
    version: u32,
    config: BudgetConfig,
    slots: [Slot; BUDGET_SLOTS],
    /// The budget's time (`last_now_ms`, a plain number, before version 1).
    #[serde(alias = "last_now_ms")]
    clock: Clock,
}

impl RetryBudget {
    /// Validates `config`; lists every rejected field.
    pub fn new(config: BudgetConfig) -> Result<RetryBudget, ConfigError> {
        let mut p = Problems::default();
        config.check(&mut p);
        p.finish(RetryBudget {
            version: SNAPSHOT_VERSION,
            config,
            slots: [Slot::default(); BUDGET_SLOTS],
            clock: Clock::new(),
        })
    }

    /// Restores a budget exported with serde: checks the format `version` (a newer one is
    /// rejected, one without a version is migrated) and the config. The budget keeps the
    /// snapshot's clock: if this process's clock restarted, the first call after the restore
    /// starts a new epoch.
    pub fn restore(mut snapshot: RetryBudget) -> Result<RetryBudget, ConfigError> {
        let mut p = Problems::default();
        check_version(&mut p, "version", snapshot.version);
        snapshot.config.check(&mut p);
        snapshot.version = SNAPSHOT_VERSION;
        p.finish(snapshot)
    }

    /// Records one original request at `now_ms`.
    pub fn deposit(&mut self, now_ms: u64) {
        let slot = self.slot(now_ms);
        slot.deposits = slot.deposits.saturating_add(1);
    }

    /// Takes one retry from the budget at `now_ms`; `false` (and nothing taken) when empty.
    pub fn try_withdraw(&mut self, now_ms: u64) -> bool {
        if self.available(now_ms) == 0 {
            return false;
        }
        let slot = self.slot(now_ms);
        slot.withdrawals = slot.withdrawals.saturating_add(1);
        true
    }

    /// How many retries the budget would allow right now.
    pub fn available(&mut self, now_ms: u64) -> u64 {
        let now_ms = self.clock.observe(now_ms);
        let current = now_ms / self.slot_ms();
        let (mut deposits, mut withdrawals) = (0u64, 0u64);
        for s in self.slots.iter().filter(|s| live(s.index, current)) {
            deposits = deposits.saturating_add(s.deposits);
            withdrawals = withdrawals.saturating_add(s.withdrawals);
        }
        // In hundredths of a retry, to keep the percentage exact.
        let reserve = u64::from(self.config.min_retries_per_sec)
            .saturating_mul(self.config.window_ms)
            .saturating_mul(100)
            / 1000;
        let earned = deposits.saturating_mul(u64::from(self.config.retry_percent));
        let allowed = reserve.saturating_add(earned) / 100;
        allowed.saturating_sub(withdrawals)
    }

    fn slot_ms(&self) -> u64 {
        self.config.window_ms / BUDGET_SLOTS as u64
    }

    /// The slot for `now_ms`, emptied first if it held an older tenth.
    fn slot(&mut self, now_ms: u64) -> &mut Slot {
        let now_ms = self.clock.observe(now_ms);
        let index = now_ms / self.slot_ms();
        let slot = &mut self.slots[(index % BUDGET_SLOTS as u64) as usize];
        if slot.index != index {
            *slot = Slot {
                index,
                ..Slot::default()
            };
        }
        slot
    }
}

/// Whether a slot for tenth `index` is inside the window ending at tenth `current`.
fn live(index: u64, current: u64) -> bool {
    index <= current && current - index < BUDGET_SLOTS as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn failure(kind: ErrorKind, retryable: bool) -> Classification {
        Classification {
            kind,
            retryable,
            retry_after_ms: None,
            limit_tokens: None,
            requested_tokens: None,
            provider: None,
            code: None,
            error_type: None,
            message: String::new(),
        }
    }

    fn roomy_budget() -> RetryBudget {
        RetryBudget::new(BudgetConfig {
            min_retries_per_sec: 1000,
            ..BudgetConfig::default()
        })
        .unwrap()
    }

    fn policy(config: RetryConfig) -> RetryPolicy {
        RetryPolicy::new(config).unwrap()
    }

    #[test]
    fn permanent_kinds_give_up_at_once_and_cost_no_budget() {
        let p = policy(RetryConfig::default());
        let mut budget = RetryBudget::new(BudgetConfig {
            min_retries_per_sec: 1,
            ..BudgetConfig::default()
        })
        .unwrap();
        let mut call = p.start_call(0, 1, &mut budget);
        for kind in [
            ErrorKind::Auth,
            ErrorKind::QuotaExhausted,
            ErrorKind::Moderation,
            ErrorKind::InvalidRequest,
            ErrorKind::NotFound,
            ErrorKind::Unknown,
        ] {
            let d = p.decide(&mut call, &failure(kind, false), 10, None, &mut budget);
            assert_eq!(
                d,
                Decision::GiveUp {
                    reason: GiveUpReason::Permanent { kind }
                }
            );
        }
        assert_eq!(budget.available(10), 10);
    }

    #[test]
    fn server_hint_is_honoured_exactly_up_to_the_ceiling() {
        let p = policy(RetryConfig::default());
        let mut budget = roomy_budget();
        let mut call = p.start_call(0, 1, &mut budget);
        let mut f = failure(ErrorKind::RateLimited, true);
        f.retry_after_ms = Some(7_000);
        assert_eq!(
            p.decide(&mut call, &f, 100, None, &mut budget),
            Decision::Retry {
                after_ms: 7_000,
                attempt: 2
            }
        );
        f.retry_after_ms = Some(600_000);
        assert_eq!(
            p.decide(&mut call, &f, 8_000, None, &mut budget),
            Decision::GiveUp {
                reason: GiveUpReason::WaitTooLong {
                    wait_ms: 600_000,
                    ceiling_ms: 60_000
                }
            }
        );
    }

    #[test]
    fn each_kind_has_its_own_limit_and_the_call_a_total() {
        let p = policy(RetryConfig {
            jitter: Jitter::None,
            deadline_ms: None,
            ..RetryConfig::default()
        });
        let mut budget = roomy_budget();
        let mut call = p.start_call(0, 1, &mut budget);
        let f = failure(ErrorKind::ServerError, true);
        // Backoff without jitter: 500, 1000; then server-error's 2 retries are used up.
        assert_eq!(
            p.decide(&mut call, &f, 0, None, &mut budget),
            Decision::Retry {
                after_ms: 500,
                attempt: 2
            }
        );
        assert_eq!(
            p.decide(&mut call, &f, 0, None, &mut budget),
            Decision::Retry {
                after_ms: 1000,
                attempt: 3
            }
        );
        assert_eq!(
            p.decide(&mut call, &f, 0, None, &mut budget),
            Decision::GiveUp {
                reason: GiveUpReason::AttemptsExhausted {
                    kind: ErrorKind::ServerError,
                    retries: 2
                }
            }
        );
        // Another kind still has retries left, until the call's total (6) runs out.
        let n = failure(ErrorKind::Network, true);
        for _ in 0..3 {
            assert!(matches!(
                p.decide(&mut call, &n, 0, None, &mut budget),
                Decision::Retry { .. }
            ));
        }
        let o = failure(ErrorKind::Overloaded, true);
        assert!(matches!(
            p.decide(&mut call, &o, 0, None, &mut budget),
            Decision::Retry { attempt: 7, .. }
        ));
        assert!(matches!(
            p.decide(&mut call, &o, 0, None, &mut budget),
            Decision::GiveUp {
                reason: GiveUpReason::AttemptsExhausted { retries: 6, .. }
            }
        ));
    }

    #[test]
    fn deadline_counts_from_the_start_of_the_call() {
        let p = policy(RetryConfig {
            deadline_ms: Some(10_000),
            ..RetryConfig::default()
        });
        let mut budget = roomy_budget();
        let mut call = p.start_call(1_000, 1, &mut budget);
        let mut f = failure(ErrorKind::RateLimited, true);
        f.retry_after_ms = Some(5_000);
        assert_eq!(
            p.decide(&mut call, &f, 7_000, None, &mut budget),
            Decision::GiveUp {
                reason: GiveUpReason::Deadline {
                    retry_at_ms: 12_000,
                    deadline_at_ms: 11_000
                }
            }
        );
    }

    #[test]
    fn budget_caps_retries_at_a_share_of_traffic() {
        let p = policy(RetryConfig::default());
        let mut budget = RetryBudget::new(BudgetConfig {
            window_ms: 10_000,
            min_retries_per_sec: 0,
            retry_percent: 20,
        })
        .unwrap();
        // Ten requests earn two retries.
        let mut calls: Vec<CallState> = (0..10).map(|i| p.start_call(0, i, &mut budget)).collect();
        let f = failure(ErrorKind::Unavailable, true);
        let decisions: Vec<Decision> = calls
            .iter_mut()
            .map(|c| p.decide(c, &f, 100, None, &mut budget))
            .collect();
        let retried = decisions
            .iter()
            .filter(|d| matches!(d, Decision::Retry { .. }))
            .count();
        assert_eq!(retried, 2);
        assert_eq!(
            decisions[2],
            Decision::GiveUp {
                reason: GiveUpReason::BudgetExhausted
            }
        );
        // Once the window has passed, the old requests no longer pay for retries.
        assert_eq!(budget.available(20_000), 0);
    }

    #[test]
    fn context_overflow_shrinks_to_an_exact_target() {
        let p = policy(RetryConfig::default());
        let mut budget = roomy_budget();
        let mut call = p.start_call(0, 1, &mut budget);
        let mut f = failure(ErrorKind::ContextOverflow, false);
        f.limit_tokens = Some(128_000);
        f.requested_tokens = Some(130_000);
        // 129 000 · 128 000 / 130 000 = 127 015, less 5 % = 120 664.
        assert_eq!(
            p.decide(&mut call, &f, 0, Some(129_000), &mut budget),
            Decision::ShrinkContext {
                target_tokens: 120_664,
                after_ms: 0,
                attempt: 2
            }
        );
        // Only the limit, no caller count: the limit less 5 %.
        let mut g = failure(ErrorKind::ContextOverflow, false);
        g.limit_tokens = Some(8_192);
        assert_eq!(
            p.decide(&mut call, &g, 0, None, &mut budget),
            Decision::ShrinkContext {
                target_tokens: 7_782,
                after_ms: 0,
                attempt: 3
            }
        );
        // The third overflow exceeds the default 2 shrinks.
        assert!(matches!(
            p.decide(&mut call, &g, 0, None, &mut budget),
            Decision::GiveUp {
                reason: GiveUpReason::AttemptsExhausted { .. }
            }
        ));
    }

    #[test]
    fn context_overflow_without_numbers_uses_the_factor_or_gives_up() {
        let p = policy(RetryConfig::default());
        let mut budget = roomy_budget();
        let f = failure(ErrorKind::ContextOverflow, false);
        let mut call = p.start_call(0, 1, &mut budget);
        assert_eq!(
            p.decide(&mut call, &f, 0, Some(10_000), &mut budget),
            Decision::ShrinkContext {
                target_tokens: 7_000,
                after_ms: 0,
                attempt: 2
            }
        );
        let mut call = p.start_call(0, 1, &mut budget);
        assert_eq!(
            p.decide(&mut call, &f, 0, None, &mut budget),
            Decision::GiveUp {
                reason: GiveUpReason::CannotShrink
            }
        );
    }

    #[test]
    fn config_errors_list_every_problem() {
        let err = RetryPolicy::new(RetryConfig {
            base_delay_ms: 0,
            max_delay_ms: 0,
            deadline_ms: Some(0),
            shrink_percent: 100,
            shrink_margin_percent: 60,
            ..RetryConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.problems.len(), 4, "{err}");
        let err = RetryBudget::new(BudgetConfig {
            window_ms: 0,
            retry_percent: 5000,
            ..BudgetConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
    }

    #[test]
    fn config_from_json_keeps_defaults_for_missing_fields() {
        let c: RetryConfig =
            serde_json::from_str(r#"{"base_delay_ms": 250, "max_retries": {"timeout": 1}}"#)
                .unwrap();
        assert_eq!(c.base_delay_ms, 250);
        assert_eq!(c.max_delay_ms, 30_000);
        assert_eq!(c.max_retries.get(&ErrorKind::Timeout), Some(&1));
        assert!(serde_json::from_str::<RetryConfig>(r#"{"base_delay": 1}"#).is_err());
    }

    fn delays(p: &RetryPolicy, seed: u64) -> Vec<u64> {
        let mut budget = roomy_budget();
        let mut call = p.start_call(0, seed, &mut budget);
        let f = failure(ErrorKind::Overloaded, true);
        (0..4)
            .map(|_| match p.decide(&mut call, &f, 0, None, &mut budget) {
                Decision::Retry { after_ms, .. } => after_ms,
                other => panic!("expected a retry, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn jitter_is_reproducible_from_the_seed() {
        for jitter in [Jitter::Full, Jitter::Decorrelated] {
            let p = policy(RetryConfig {
                jitter,
                deadline_ms: None,
                ..RetryConfig::default()
            });
            assert_eq!(delays(&p, 42), delays(&p, 42));
            assert_ne!(delays(&p, 42), delays(&p, 43));
        }
    }

    #[test]
    fn a_clock_that_jumps_backwards_does_not_break_decisions() {
        let p = policy(RetryConfig::default());
        let mut budget = roomy_budget();
        let mut call = p.start_call(50_000, 1, &mut budget);
        let d = p.decide(
            &mut call,
            &failure(ErrorKind::Timeout, true),
            1_000,
            None,
            &mut budget,
        );
        assert!(matches!(d, Decision::Retry { .. }), "{d:?}");
    }

    #[test]
    fn the_budget_window_is_not_frozen_by_a_clock_jump() {
        let mut budget = RetryBudget::new(BudgetConfig {
            window_ms: 10_000,
            min_retries_per_sec: 0,
            retry_percent: 100,
        })
        .unwrap();
        budget.deposit(1_700_000_000_000_000_000);
        assert_eq!(budget.available(1_700_000_000_000_000_000), 1);
        // Back to milliseconds: a new epoch; the deposit still counts until its window ends,
        // 10 s of the new epoch later (the old rule froze the window at 1.7·10¹⁸ ms).
        assert_eq!(budget.available(5_000), 1);
        assert!(budget.try_withdraw(5_000));
        assert_eq!(budget.available(5_000), 0);
        assert_eq!(budget.available(16_000), 0);
        budget.deposit(16_000);
        assert_eq!(budget.available(16_000), 1);
    }

    #[test]
    fn budget_snapshots_carry_a_version_and_restore_into_another_epoch() {
        let mut budget = RetryBudget::new(BudgetConfig {
            window_ms: 10_000,
            min_retries_per_sec: 0,
            retry_percent: 100,
        })
        .unwrap();
        budget.deposit(80_000);
        let mut v = serde_json::to_value(&budget).unwrap();
        assert_eq!(v["version"], 1);
        let restored = RetryBudget::restore(serde_json::from_value(v.clone()).unwrap()).unwrap();
        assert_eq!(restored, budget);
        v["version"] = 3.into();
        let err = RetryBudget::restore(serde_json::from_value(v.clone()).unwrap()).unwrap_err();
        assert!(err.to_string().contains("version 3 is newer"), "{err}");
        // Written before versions: `last_now_ms` becomes the clock.
        let o = v.as_object_mut().unwrap();
        o.remove("version");
        o.remove("clock");
        o.insert("last_now_ms".into(), 80_000.into());
        let mut old = RetryBudget::restore(serde_json::from_value(v).unwrap()).unwrap();
        assert_eq!(old, budget);
        // After a reboot (host 500): a new epoch, the deposit still in the window.
        assert_eq!(old.available(500), 1);
        assert_eq!(old.available(10_500), 0);
    }

    #[test]
    fn a_call_survives_any_clock_values() {
        let p = policy(RetryConfig {
            jitter: Jitter::None,
            ..RetryConfig::default()
        });
        let mut budget = roomy_budget();
        let f = failure(ErrorKind::Overloaded, true);
        for (start, now) in [
            (u64::MAX, 0),
            (0, u64::MAX),
            (u64::MAX, u64::MAX),
            (1_700_000_000_000_000_000, 5),
            (5, 1_700_000_000_000_000_000),
        ] {
            let mut call = p.start_call(start, 1, &mut budget);
            let mut decisions = 0;
            // Every call ends within its attempts, whatever the clock says.
            while let Decision::Retry { .. } = p.decide(&mut call, &f, now, None, &mut budget) {
                decisions += 1;
                assert!(decisions <= 6, "{start} {now}");
            }
        }
        // A clock far ahead of the start gives up on the deadline, as a call that really
        // waited that long should.
        let mut call = p.start_call(5, 1, &mut budget);
        assert!(matches!(
            p.decide(&mut call, &f, 1_700_000_000_000_000_000, None, &mut budget),
            Decision::GiveUp {
                reason: GiveUpReason::Deadline { .. }
            }
        ));
    }

    proptest! {
        #[test]
        fn backoff_stays_within_bounds(seed in any::<u64>(), jitter in 0u8..3, base in 1u64..5_000, extra in 0u64..100_000) {
            let jitter = [Jitter::None, Jitter::Full, Jitter::Decorrelated][jitter as usize];
            let p = policy(RetryConfig { jitter, base_delay_ms: base, max_delay_ms: base + extra, deadline_ms: None, ..RetryConfig::default() });
            for d in delays(&p, seed) {
                prop_assert!(d <= base + extra);
            }
        }

        /// Over any sequence, the retries taken in the last (window − one slot) never exceed the
        /// floor plus the percentage of the requests deposited in the last full window.
        #[test]
        fn budget_bound_holds(ops in proptest::collection::vec((any::<bool>(), 0u64..3_000), 1..400),
                              min_per_sec in 0u32..5, percent in 0u32..100) {
            let config = BudgetConfig { window_ms: 10_000, min_retries_per_sec: min_per_sec, retry_percent: percent };
            let mut budget = RetryBudget::new(config.clone()).unwrap();
            let (mut now, mut deposits, mut withdrawals) = (0u64, Vec::new(), Vec::new());
            for (is_deposit, step) in ops {
                now += step;
                if is_deposit {
                    budget.deposit(now);
                    deposits.push(now);
                } else if budget.try_withdraw(now) {
                    withdrawals.push(now);
                    let recent = withdrawals.iter().filter(|&&t| t + 9_000 > now).count() as u64;
                    let earned = deposits.iter().filter(|&&t| t + 10_000 >= now).count() as u64;
                    let bound = (u64::from(min_per_sec) * 10 * 100 + earned * u64::from(percent)) / 100;
                    prop_assert!(recent <= bound, "{recent} retries > bound {bound} at {now}");
                }
            }
        }
    }
}
