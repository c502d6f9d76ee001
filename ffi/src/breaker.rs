//! The circuit breaker over the C ABI: opaque handles `LlmrBreaker` and `LlmrBreakerSet` that
//! many threads share.
//!
//! Construction, snapshots and restores speak JSON (the core's serde forms: a `BreakerConfig`
//! with defaults for every missing field, and the snapshot the library itself wrote). The hot
//! path — `llmr_breaker_acquire` and `llmr_breaker_record` — takes and fills plain C structs:
//! no JSON, no allocation, one uncontended mutex.
//!
//! # Threads
//!
//! Every function that takes a handle may be called from any number of threads at once; a
//! handle holds its breaker behind a mutex. A thread that panicked while holding it (a bug:
//! the core does not panic) leaves the breaker as it was after its last complete step, and the
//! next caller uses it as it is: a poisoned lock is not an error here.
//!
//! # Time
//!
//! `now_ms` is milliseconds on the caller's monotonic clock (any origin, the same for every
//! call on one handle). A clock that goes backwards is treated as standing still.

use std::ffi::c_char;
use std::sync::{Mutex, MutexGuard, PoisonError};

use llm_resilience::ErrorKind;
use llm_resilience::breaker::{
    Breaker, BreakerConfig, BreakerSet, Counts, MAX_KEY_BYTES, Outcome, Permit, Recorded, Rejected,
    State, Transition,
};

use crate::handle::{free_handle, get_handle, new_from_json, registered};
use crate::json::{Rejection, write_json};
use crate::panic::ffi_boundary;
use crate::ptr::{OutPtr, try_ref, try_str};
use crate::result::LlmrResult;

/// A breaker's state. The values are part of the ABI and are never reused.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmrBreakerState {
    /// Calls flow; outcomes are counted.
    Closed = 0,
    /// Calls are rejected until the open period ends.
    Open = 1,
    /// A few probe calls are let through to test recovery.
    HalfOpen = 2,
    /// Every call is rejected until `llmr_breaker_reset` (an operator's switch).
    ForcedOpen = 3,
    /// Every call is admitted and nothing is counted (an operator's switch).
    Disabled = 4,
}

impl From<State> for LlmrBreakerState {
    fn from(state: State) -> Self {
        match state {
            State::Closed => LlmrBreakerState::Closed,
            State::Open => LlmrBreakerState::Open,
            State::HalfOpen => LlmrBreakerState::HalfOpen,
            State::ForcedOpen => LlmrBreakerState::ForcedOpen,
            State::Disabled => LlmrBreakerState::Disabled,
        }
    }
}

/// How an admitted call ended. The values are part of the ABI and are never reused; the
/// functions take it as `uint32_t` so that an out-of-range value is answered with
/// `LLMR_INVALID_ARGUMENT`, not undefined behaviour.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmrOutcome {
    /// The provider answered.
    Success = 0,
    /// The call failed with an `LlmrErrorKind`; counted only if the breaker's config counts
    /// that kind (by default: rate-limited, timeout, overloaded, unavailable, server-error,
    /// network).
    Failure = 1,
    /// The caller cancelled, or the result says nothing about the provider: not counted.
    Ignored = 2,
}

/// The `ErrorKind` for each `LlmrErrorKind` value (index = value).
const KINDS: [ErrorKind; 13] = [
    ErrorKind::Auth,
    ErrorKind::QuotaExhausted,
    ErrorKind::Moderation,
    ErrorKind::RateLimited,
    ErrorKind::Timeout,
    ErrorKind::ContextOverflow,
    ErrorKind::InvalidRequest,
    ErrorKind::NotFound,
    ErrorKind::Overloaded,
    ErrorKind::Unavailable,
    ErrorKind::ServerError,
    ErrorKind::Network,
    ErrorKind::Unknown,
];

/// Permission to make one call, from `llmr_breaker_acquire`. Pass it back, unchanged, to
/// `llmr_breaker_record`. Plain data: copy it freely; nothing to free.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmrPermit {
    /// The breaker generation the call was admitted in (results from an earlier generation
    /// are ignored as stale).
    pub generation: u64,
    /// A number unique within the breaker, for probe accounting.
    pub id: u64,
    /// When the call was admitted, ms (for slow-call timing).
    pub admitted_ms: u64,
    /// Whether this call is a half-open probe.
    pub probe: bool,
}

impl LlmrPermit {
    const ZEROED: LlmrPermit = LlmrPermit {
        generation: 0,
        id: 0,
        admitted_ms: 0,
        probe: false,
    };
}

impl From<Permit> for LlmrPermit {
    fn from(p: Permit) -> Self {
        LlmrPermit {
            generation: p.generation,
            id: p.id,
            admitted_ms: p.admitted_ms,
            probe: p.probe,
        }
    }
}

impl From<LlmrPermit> for Permit {
    fn from(p: LlmrPermit) -> Self {
        Permit {
            generation: p.generation,
            id: p.id,
            admitted_ms: p.admitted_ms,
            probe: p.probe,
        }
    }
}

/// The answer of `llmr_breaker_acquire`: a permit, or a rejection with when to try again.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmrAdmission {
    /// Whether the call may go ahead; then `permit` is set.
    pub admitted: bool,
    /// The permit (all zero when not admitted).
    pub permit: LlmrPermit,
    /// When not admitted: the state that rejected the call (`OPEN`, `HALF_OPEN` with every
    /// probe slot taken, or `FORCED_OPEN`). `CLOSED` when admitted.
    pub state: LlmrBreakerState,
    /// When not admitted: whether `retry_in_ms` is known (not when forced open).
    pub has_retry_in_ms: bool,
    /// When to try again, ms from `now_ms`.
    pub retry_in_ms: u64,
}

impl LlmrAdmission {
    const ZEROED: LlmrAdmission = LlmrAdmission {
        admitted: false,
        permit: LlmrPermit::ZEROED,
        state: LlmrBreakerState::Closed,
        has_retry_in_ms: false,
        retry_in_ms: 0,
    };

    fn from_core(result: Result<Permit, Rejected>) -> Self {
        match result {
            Ok(p) => LlmrAdmission {
                admitted: true,
                permit: p.into(),
                ..LlmrAdmission::ZEROED
            },
            Err(r) => LlmrAdmission {
                state: r.state.into(),
                has_retry_in_ms: r.retry_in_ms.is_some(),
                retry_in_ms: r.retry_in_ms.unwrap_or(0),
                ..LlmrAdmission::ZEROED
            },
        }
    }
}

/// A change of state, or none (`has_transition` false; `from` and `to` are then `CLOSED`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmrTransition {
    /// Whether the state changed.
    pub has_transition: bool,
    /// The state before.
    pub from: LlmrBreakerState,
    /// The state after.
    pub to: LlmrBreakerState,
}

impl LlmrTransition {
    const NONE: LlmrTransition = LlmrTransition {
        has_transition: false,
        from: LlmrBreakerState::Closed,
        to: LlmrBreakerState::Closed,
    };

    fn from_core(t: Option<Transition>) -> Self {
        match t {
            Some(t) => LlmrTransition {
                has_transition: true,
                from: t.from.into(),
                to: t.to.into(),
            },
            None => LlmrTransition::NONE,
        }
    }
}

/// What `llmr_breaker_record` did.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmrRecorded {
    /// The permit belongs to an earlier generation (or to a probe that already timed out):
    /// its result was ignored. `has_transition` is then false.
    pub stale: bool,
    /// Whether the outcome changed the state.
    pub has_transition: bool,
    /// The state before (`CLOSED` when there was no transition).
    pub from: LlmrBreakerState,
    /// The state after (`CLOSED` when there was no transition).
    pub to: LlmrBreakerState,
}

impl LlmrRecorded {
    const ZEROED: LlmrRecorded = LlmrRecorded {
        stale: false,
        has_transition: false,
        from: LlmrBreakerState::Closed,
        to: LlmrBreakerState::Closed,
    };

    fn from_core(r: Recorded) -> Self {
        match r {
            Recorded::Stale => LlmrRecorded {
                stale: true,
                ..LlmrRecorded::ZEROED
            },
            Recorded::Counted { transition } => {
                let t = LlmrTransition::from_core(transition);
                LlmrRecorded {
                    stale: false,
                    has_transition: t.has_transition,
                    from: t.from,
                    to: t.to,
                }
            }
        }
    }
}

/// Numbers an operator or a metrics exporter can read (`llmr_breaker_counts`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmrCounts {
    /// The state at `now_ms`.
    pub state: LlmrBreakerState,
    /// Calls in the failure-rate window.
    pub window_calls: u64,
    /// Counted failures in the window.
    pub window_failures: u64,
    /// Slow calls in the window.
    pub window_slow: u64,
    /// Counted failures in a row.
    pub consecutive_failures: u32,
    /// Probes admitted and not yet reported.
    pub probes_in_flight: u32,
    /// Successful probes in this half-open period.
    pub probe_successes: u32,
    /// How many times the breaker has opened (trips and re-opens).
    pub times_opened: u64,
    /// Calls rejected since creation.
    pub rejected: u64,
    /// The current generation (it grows on every state change).
    pub generation: u64,
}

impl LlmrCounts {
    const ZEROED: LlmrCounts = LlmrCounts {
        state: LlmrBreakerState::Closed,
        window_calls: 0,
        window_failures: 0,
        window_slow: 0,
        consecutive_failures: 0,
        probes_in_flight: 0,
        probe_successes: 0,
        times_opened: 0,
        rejected: 0,
        generation: 0,
    };
}

impl From<Counts> for LlmrCounts {
    fn from(c: Counts) -> Self {
        LlmrCounts {
            state: c.state.into(),
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
}

/// A circuit breaker for one provider or model. Opaque: create it with `llmr_breaker_new` or
/// `llmr_breaker_restore`, release it with `llmr_breaker_free`. Safe to share between threads.
pub struct LlmrBreaker {
    inner: Mutex<Breaker>,
}

registered!(LlmrBreaker);

/// One breaker per key (model or provider), at most `max_keys` of them. Opaque: create it
/// with `llmr_breaker_set_new` or `llmr_breaker_set_restore`, release it with
/// `llmr_breaker_set_free`. Safe to share between threads.
pub struct LlmrBreakerSet {
    inner: Mutex<BreakerSet>,
}

registered!(LlmrBreakerSet);

/// Locks `m`; a lock poisoned by a panicking thread is used as it is (see the module docs).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Turns the C outcome arguments into the core's `Outcome`.
fn outcome_of(
    outcome: u32,
    kind: u32,
    has_retry_after: bool,
    retry_after_ms: u64,
) -> Result<Outcome, LlmrResult> {
    match outcome {
        0 => Ok(Outcome::Success),
        1 => {
            let kind = *KINDS
                .get(kind as usize)
                .ok_or(LlmrResult::LlmrInvalidArgument)?;
            Ok(Outcome::Failure {
                kind,
                retry_after_ms: has_retry_after.then_some(retry_after_ms),
            })
        }
        2 => Ok(Outcome::Ignored),
        _ => Err(LlmrResult::LlmrInvalidArgument),
    }
}

/// Borrows a key: `LLMR_INVALID_KEY` when empty or longer than 256 bytes, then UTF-8.
///
/// # Safety
///
/// If `key` is not NULL and `len` is in 1..=256, `key` must be valid for reads of `len`
/// bytes during the call.
unsafe fn read_key<'a>(key: *const c_char, len: usize) -> Result<&'a str, LlmrResult> {
    if len == 0 {
        return Err(LlmrResult::LlmrInvalidKey);
    }
    if key.is_null() {
        return Err(LlmrResult::LlmrNullParameter);
    }
    if len > MAX_KEY_BYTES {
        return Err(LlmrResult::LlmrInvalidKey);
    }
    // SAFETY: forwarded to the caller.
    unsafe { try_str(key, len, MAX_KEY_BYTES) }
}

/// Creates a closed breaker from a JSON `BreakerConfig` (UTF-8, `config_len` bytes, no NUL
/// needed; `{}` takes every default: 5 consecutive failures or 50 % of the last 20 calls (at
/// least 10) trip it, open 60 s, one probe, one success to close).
///
/// Returns `LLMR_OK` with a new handle in `*out`, or `LLMR_NULL_PARAMETER` (`config` or
/// `out` NULL), `LLMR_INPUT_TOO_LARGE` (over `LLMR_LIMIT_JSON_BYTES`), `LLMR_INVALID_CONFIG`
/// (malformed JSON, an unknown field, or values out of range: then, if `error_out` is not
/// NULL, `*error_out` is a string naming every rejected field, to release with
/// `llmr_string_free`) or `LLMR_PANIC`. On any error `*out` is NULL.
///
/// # Safety
///
/// `config` must be NULL or valid for reads of `config_len` bytes. `out` must be NULL or
/// valid for a write of a pointer; so must `error_out` (which may be NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_new(
    config: *const c_char,
    config_len: usize,
    out: *mut *mut LlmrBreaker,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: forwarded to the caller.
        unsafe {
            new_from_json(
                "config",
                config,
                config_len,
                out,
                error_out,
                |c: BreakerConfig| {
                    Breaker::new(c)
                        .map(|b| LlmrBreaker {
                            inner: Mutex::new(b),
                        })
                        .map_err(Rejection::config)
                },
            )
        }
    })
}

/// Creates a breaker from a snapshot written by `llmr_breaker_snapshot` (possibly by another
/// process, before a restart). Results, errors and safety as for `llmr_breaker_new`; a
/// corrupted snapshot is `LLMR_INVALID_CONFIG` with every problem named.
///
/// # Safety
///
/// As for `llmr_breaker_new`, with `snapshot` in place of `config`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_restore(
    snapshot: *const c_char,
    snapshot_len: usize,
    out: *mut *mut LlmrBreaker,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: forwarded to the caller.
        unsafe {
            new_from_json(
                "snapshot",
                snapshot,
                snapshot_len,
                out,
                error_out,
                |b: Breaker| {
                    Breaker::restore(b)
                        .map(|b| LlmrBreaker {
                            inner: Mutex::new(b),
                        })
                        .map_err(Rejection::config)
                },
            )
        }
    })
}

/// Releases a breaker. NULL, or a breaker already freed, does nothing; a call still using it
/// on another thread finishes first, and every later call returns `LLMR_INVALID_HANDLE`.
///
/// # Safety
///
/// None beyond the type: `breaker` may be any value this library handed out, or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_free(breaker: *mut LlmrBreaker) {
    ffi_boundary!({ free_handle(breaker) })
}

/// Exports the breaker's whole state as JSON into `*json_out` (release it with
/// `llmr_string_free`); `llmr_breaker_restore` reads it back.
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER` or `LLMR_PANIC`; on an error `*json_out` is NULL.
///
/// # Safety
///
/// `breaker` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `json_out` NULL or valid for a write of a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_snapshot(
    breaker: *const LlmrBreaker,
    json_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `json_out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(json_out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(std::ptr::null_mut());
        let breaker = match get_handle(breaker) {
            Ok(b) => b,
            Err(e) => return e,
        };
        let json = write_json(&*lock(&breaker.inner));
        match json {
            Ok(s) => {
                out.write(s);
                LlmrResult::LlmrOk
            }
            Err(e) => e,
        }
    })
}

/// Asks to make a call at `now_ms`: fills `*out` with a permit (`admitted`) or the rejecting
/// state and when to retry. The hot path: no JSON, no allocation.
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER` or `LLMR_PANIC`; on an error `*out` is zeroed
/// (not admitted).
///
/// # Safety
///
/// `breaker` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `out` NULL or valid for a write of an
/// `LlmrAdmission`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_acquire(
    breaker: *const LlmrBreaker,
    now_ms: u64,
    out: *mut LlmrAdmission,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(LlmrAdmission::ZEROED);
        let breaker = match get_handle(breaker) {
            Ok(b) => b,
            Err(e) => return e,
        };
        let result = lock(&breaker.inner).acquire(now_ms);
        out.write(LlmrAdmission::from_core(result));
        LlmrResult::LlmrOk
    })
}

/// Records how the call admitted by `*permit` ended, at `now_ms`: `outcome` is an
/// `LlmrOutcome` value; for `LLMR_OUTCOME_FAILURE`, `kind` is its `LlmrErrorKind` value and
/// `retry_after_ms` (if `has_retry_after`) the server's retry hint, which may keep the breaker
/// open longer. `kind` and the hint are ignored for other outcomes. Fills `*out` with whether
/// the result was stale and the transition it caused, if any. No JSON, no allocation.
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER`, `LLMR_INVALID_ARGUMENT` (an outcome or kind
/// value outside its enum; nothing was recorded) or `LLMR_PANIC`; on an error `*out` is
/// zeroed.
///
/// # Safety
///
/// `breaker` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `permit` NULL or valid for a read of an
/// `LlmrPermit`; `out` NULL or valid for a write of an `LlmrRecorded`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_record(
    breaker: *const LlmrBreaker,
    permit: *const LlmrPermit,
    outcome: u32,
    kind: u32,
    has_retry_after: bool,
    retry_after_ms: u64,
    now_ms: u64,
    out: *mut LlmrRecorded,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(LlmrRecorded::ZEROED);
        let breaker = match get_handle(breaker) {
            Ok(b) => b,
            Err(e) => return e,
        };
        // SAFETY: `permit` is NULL or readable (contract).
        let permit = match unsafe { try_ref(permit) } {
            Ok(p) => Permit::from(*p),
            Err(e) => return e,
        };
        let outcome = match outcome_of(outcome, kind, has_retry_after, retry_after_ms) {
            Ok(o) => o,
            Err(e) => return e,
        };
        let recorded = lock(&breaker.inner).record(permit, outcome, now_ms);
        out.write(LlmrRecorded::from_core(recorded));
        LlmrResult::LlmrOk
    })
}

/// Writes the state at `now_ms` to `*out` (an open breaker whose period has ended reads as
/// half-open). Returns `LLMR_OK`, `LLMR_NULL_PARAMETER` or `LLMR_PANIC`.
///
/// # Safety
///
/// `breaker` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `out` NULL or valid for a write of an
/// `LlmrBreakerState`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_state(
    breaker: *const LlmrBreaker,
    now_ms: u64,
    out: *mut LlmrBreakerState,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(LlmrBreakerState::Closed);
        let breaker = match get_handle(breaker) {
            Ok(b) => b,
            Err(e) => return e,
        };
        let state = lock(&breaker.inner).state(now_ms);
        out.write(state.into());
        LlmrResult::LlmrOk
    })
}

/// Writes the counts at `now_ms` to `*out`. Returns `LLMR_OK`, `LLMR_NULL_PARAMETER` or
/// `LLMR_PANIC`; on an error `*out` is zeroed.
///
/// # Safety
///
/// `breaker` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `out` NULL or valid for a write of an
/// `LlmrCounts`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_counts(
    breaker: *const LlmrBreaker,
    now_ms: u64,
    out: *mut LlmrCounts,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(LlmrCounts::ZEROED);
        let breaker = match get_handle(breaker) {
            Ok(b) => b,
            Err(e) => return e,
        };
        let counts = lock(&breaker.inner).counts(now_ms);
        out.write(counts.into());
        LlmrResult::LlmrOk
    })
}

/// Runs one operator switch and writes the transition (or none) to `out`.
///
/// # Safety
///
/// As for [`llmr_breaker_force_open`].
unsafe fn switch(
    breaker: *const LlmrBreaker,
    now_ms: u64,
    out: *mut LlmrTransition,
    op: fn(&mut Breaker, u64) -> Option<Transition>,
) -> LlmrResult {
    // SAFETY: `out` is NULL or writable (contract).
    let mut out = match unsafe { OutPtr::new(out) } {
        Ok(out) => out,
        Err(e) => return e,
    };
    out.write(LlmrTransition::NONE);
    let breaker = match get_handle(breaker) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let t = op(&mut lock(&breaker.inner), now_ms);
    out.write(LlmrTransition::from_core(t));
    LlmrResult::LlmrOk
}

/// Forces the breaker open: every call is rejected (without a retry time) until
/// `llmr_breaker_reset`. Writes the transition to `*out` (none if it was forced open already).
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER` or `LLMR_PANIC`.
///
/// # Safety
///
/// `breaker` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `out` NULL or valid for a write of an
/// `LlmrTransition`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_force_open(
    breaker: *const LlmrBreaker,
    now_ms: u64,
    out: *mut LlmrTransition,
) -> LlmrResult {
    // SAFETY: forwarded to the caller.
    ffi_boundary!({ unsafe { switch(breaker, now_ms, out, Breaker::force_open) } })
}

/// Disables the breaker: every call is admitted and nothing is counted until
/// `llmr_breaker_reset`. Results and safety as for `llmr_breaker_force_open`.
///
/// # Safety
///
/// As for `llmr_breaker_force_open`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_disable(
    breaker: *const LlmrBreaker,
    now_ms: u64,
    out: *mut LlmrTransition,
) -> LlmrResult {
    // SAFETY: forwarded to the caller.
    ffi_boundary!({ unsafe { switch(breaker, now_ms, out, Breaker::disable) } })
}

/// Resets the breaker to closed with empty counts (also ends forced-open and disabled).
/// Results and safety as for `llmr_breaker_force_open`.
///
/// # Safety
///
/// As for `llmr_breaker_force_open`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_reset(
    breaker: *const LlmrBreaker,
    now_ms: u64,
    out: *mut LlmrTransition,
) -> LlmrResult {
    // SAFETY: forwarded to the caller.
    ffi_boundary!({ unsafe { switch(breaker, now_ms, out, Breaker::reset) } })
}

/// Creates a keyed set of at most `max_keys` (1..=100 000) breakers, each built from the JSON
/// `BreakerConfig` (as for `llmr_breaker_new`). When a new key arrives and the set is full, a
/// breaker with nothing counted goes first, then the least recently used closed one; open
/// ones go last.
///
/// Returns as `llmr_breaker_new` (an out-of-range `max_keys` is `LLMR_INVALID_CONFIG`, listed
/// with the config's problems).
///
/// # Safety
///
/// As for `llmr_breaker_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_set_new(
    config: *const c_char,
    config_len: usize,
    max_keys: usize,
    out: *mut *mut LlmrBreakerSet,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: forwarded to the caller.
        unsafe {
            new_from_json(
                "config",
                config,
                config_len,
                out,
                error_out,
                |c: BreakerConfig| {
                    BreakerSet::new(c, max_keys)
                        .map(|s| LlmrBreakerSet {
                            inner: Mutex::new(s),
                        })
                        .map_err(Rejection::config)
                },
            )
        }
    })
}

/// Creates a set from a snapshot written by `llmr_breaker_set_snapshot`. Results, errors and
/// safety as for `llmr_breaker_restore`.
///
/// # Safety
///
/// As for `llmr_breaker_restore`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_set_restore(
    snapshot: *const c_char,
    snapshot_len: usize,
    out: *mut *mut LlmrBreakerSet,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: forwarded to the caller.
        unsafe {
            new_from_json(
                "snapshot",
                snapshot,
                snapshot_len,
                out,
                error_out,
                |s: BreakerSet| {
                    BreakerSet::restore(s)
                        .map(|s| LlmrBreakerSet {
                            inner: Mutex::new(s),
                        })
                        .map_err(Rejection::config)
                },
            )
        }
    })
}

/// Releases a set. NULL, or a set already freed, does nothing; a call still using it on
/// another thread finishes first, and every later call returns `LLMR_INVALID_HANDLE`.
///
/// # Safety
///
/// None beyond the type: `set` may be any value this library handed out, or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_set_free(set: *mut LlmrBreakerSet) {
    ffi_boundary!({ free_handle(set) })
}

/// Writes the set's state as JSON (every key's breaker) or its sorted key list as a JSON array.
///
/// # Safety
///
/// As for [`llmr_breaker_set_snapshot`].
unsafe fn set_json(
    set: *const LlmrBreakerSet,
    json_out: *mut *mut c_char,
    keys: bool,
) -> LlmrResult {
    // SAFETY: `json_out` is NULL or writable (contract).
    let mut out = match unsafe { OutPtr::new(json_out) } {
        Ok(out) => out,
        Err(e) => return e,
    };
    out.write(std::ptr::null_mut());
    let set = match get_handle(set) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let guard = lock(&set.inner);
    let json = if keys {
        write_json(&guard.keys().collect::<Vec<_>>())
    } else {
        write_json(&*guard)
    };
    drop(guard);
    match json {
        Ok(s) => {
            out.write(s);
            LlmrResult::LlmrOk
        }
        Err(e) => e,
    }
}

/// Exports the set's whole state as JSON into `*json_out` (release it with
/// `llmr_string_free`); `llmr_breaker_set_restore` reads it back. Returns `LLMR_OK`,
/// `LLMR_NULL_PARAMETER` or `LLMR_PANIC`; on an error `*json_out` is NULL.
///
/// # Safety
///
/// `set` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `json_out` NULL or valid for a write of a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_set_snapshot(
    set: *const LlmrBreakerSet,
    json_out: *mut *mut c_char,
) -> LlmrResult {
    // SAFETY: forwarded to the caller.
    ffi_boundary!({ unsafe { set_json(set, json_out, false) } })
}

/// Writes the keys the set holds, sorted, as a JSON array of strings into `*json_out`
/// (release it with `llmr_string_free`). Results and safety as for
/// `llmr_breaker_set_snapshot`.
///
/// # Safety
///
/// As for `llmr_breaker_set_snapshot`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_set_keys(
    set: *const LlmrBreakerSet,
    json_out: *mut *mut c_char,
) -> LlmrResult {
    // SAFETY: forwarded to the caller.
    ffi_boundary!({ unsafe { set_json(set, json_out, true) } })
}

/// `llmr_breaker_acquire` for the breaker of `key` (UTF-8, 1..=256 bytes; created when new,
/// evicting one when the set is full). A new key allocates once; a known key does not.
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER`, `LLMR_INVALID_KEY` (empty, or longer than 256
/// bytes), `LLMR_INVALID_UTF8` or `LLMR_PANIC`; on an error `*out` is zeroed.
///
/// # Safety
///
/// `set` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `key` NULL or valid for reads of `key_len` bytes;
/// `out` NULL or valid for a write of an `LlmrAdmission`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_set_acquire(
    set: *const LlmrBreakerSet,
    key: *const c_char,
    key_len: usize,
    now_ms: u64,
    out: *mut LlmrAdmission,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(LlmrAdmission::ZEROED);
        let set = match get_handle(set) {
            Ok(s) => s,
            Err(e) => return e,
        };
        // SAFETY: `key` is NULL or readable for `key_len` bytes (contract).
        let key = match unsafe { read_key(key, key_len) } {
            Ok(k) => k,
            Err(e) => return e,
        };
        let result = lock(&set.inner).acquire(key, now_ms);
        match result {
            Ok(result) => {
                out.write(LlmrAdmission::from_core(result));
                LlmrResult::LlmrOk
            }
            Err(_) => LlmrResult::LlmrInvalidKey,
        }
    })
}

/// `llmr_breaker_record` for the breaker of `key`. A key that is no longer held (evicted
/// since the permit was given) makes the result stale. Returns as `llmr_breaker_record`, plus
/// `LLMR_INVALID_KEY` and `LLMR_INVALID_UTF8` for the key.
///
/// # Safety
///
/// As for `llmr_breaker_record` and, for `key`, `llmr_breaker_set_acquire`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_breaker_set_record(
    set: *const LlmrBreakerSet,
    key: *const c_char,
    key_len: usize,
    permit: *const LlmrPermit,
    outcome: u32,
    kind: u32,
    has_retry_after: bool,
    retry_after_ms: u64,
    now_ms: u64,
    out: *mut LlmrRecorded,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(LlmrRecorded::ZEROED);
        let set = match get_handle(set) {
            Ok(s) => s,
            Err(e) => return e,
        };
        // SAFETY: `key` is NULL or readable for `key_len` bytes (contract).
        let key = match unsafe { read_key(key, key_len) } {
            Ok(k) => k,
            Err(e) => return e,
        };
        // SAFETY: `permit` is NULL or readable (contract).
        let permit = match unsafe { try_ref(permit) } {
            Ok(p) => Permit::from(*p),
            Err(e) => return e,
        };
        let outcome = match outcome_of(outcome, kind, has_retry_after, retry_after_ms) {
            Ok(o) => o,
            Err(e) => return e,
        };
        let recorded = lock(&set.inner).record(key, permit, outcome, now_ms);
        match recorded {
            Ok(r) => {
                out.write(LlmrRecorded::from_core(r));
                LlmrResult::LlmrOk
            }
            Err(_) => LlmrResult::LlmrInvalidKey,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LlmrErrorKind;
    use crate::json::llmr_string_free;
    use std::ffi::CStr;
    use std::ptr;
    use std::sync::atomic::{AtomicU64, Ordering};

    const TIMEOUT: u32 = LlmrErrorKind::Timeout as u32;

    fn new_breaker(config: &str) -> Result<*mut LlmrBreaker, (LlmrResult, Option<String>)> {
        let mut b = ptr::null_mut();
        let mut err = ptr::null_mut();
        // SAFETY: `config` is live for its length; `b` and `err` are writable.
        let r = unsafe { llmr_breaker_new(config.as_ptr().cast(), config.len(), &mut b, &mut err) };
        if r == LlmrResult::LlmrOk {
            assert!(err.is_null());
            return Ok(b);
        }
        assert!(b.is_null());
        let message = take_string(err);
        Err((r, message))
    }

    fn take_string(s: *mut c_char) -> Option<String> {
        if s.is_null() {
            return None;
        }
        // SAFETY: `s` is a live string from this library, freed right after.
        let text = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
        // SAFETY: as above.
        unsafe { llmr_string_free(s) };
        Some(text)
    }

    fn acquire(b: *const LlmrBreaker, now: u64) -> LlmrAdmission {
        let mut a = LlmrAdmission::ZEROED;
        // SAFETY: `b` is a live handle; `a` is writable.
        let code = unsafe { llmr_breaker_acquire(b, now, &mut a) };
        assert_eq!(code, LlmrResult::LlmrOk);
        a
    }

    fn record(b: *const LlmrBreaker, p: &LlmrPermit, outcome: u32, now: u64) -> LlmrRecorded {
        let mut r = LlmrRecorded::ZEROED;
        // SAFETY: `b` is a live handle; `p` and `r` are valid.
        let code = unsafe { llmr_breaker_record(b, p, outcome, TIMEOUT, false, 0, now, &mut r) };
        assert_eq!(code, LlmrResult::LlmrOk);
        r
    }

    fn counts(b: *const LlmrBreaker, now: u64) -> LlmrCounts {
        let mut c = LlmrCounts::ZEROED;
        // SAFETY: `b` is a live handle; `c` is writable.
        let code = unsafe { llmr_breaker_counts(b, now, &mut c) };
        assert_eq!(code, LlmrResult::LlmrOk);
        c
    }

    #[test]
    fn kinds_match_the_classify_enum() {
        for (value, kind) in KINDS.into_iter().enumerate() {
            assert_eq!(LlmrErrorKind::from(kind) as u32, value as u32);
        }
        assert_eq!(
            outcome_of(1, 13, false, 0),
            Err(LlmrResult::LlmrInvalidArgument)
        );
        assert_eq!(
            outcome_of(3, 0, false, 0),
            Err(LlmrResult::LlmrInvalidArgument)
        );
        assert_eq!(outcome_of(0, 99, true, 5), Ok(Outcome::Success));
        assert_eq!(
            outcome_of(1, 3, true, 5),
            Ok(Outcome::Failure {
                kind: ErrorKind::RateLimited,
                retry_after_ms: Some(5)
            })
        );
    }

    #[test]
    fn nulls_are_reported_and_outputs_zeroed() {
        let b = new_breaker("{}").unwrap();
        let mut a = LlmrAdmission {
            admitted: true,
            ..LlmrAdmission::ZEROED
        };
        let permit = LlmrPermit::ZEROED;
        let mut rec = LlmrRecorded {
            stale: true,
            ..LlmrRecorded::ZEROED
        };
        let mut set = ptr::null_mut();
        // SAFETY: every pointer is NULL or valid.
        unsafe {
            assert_eq!(
                llmr_breaker_acquire(ptr::null(), 0, &mut a),
                LlmrResult::LlmrNullParameter
            );
            assert!(!a.admitted);
            assert_eq!(
                llmr_breaker_acquire(b, 0, ptr::null_mut()),
                LlmrResult::LlmrNullParameter
            );
            assert_eq!(
                llmr_breaker_record(b, ptr::null(), 0, 0, false, 0, 0, &mut rec),
                LlmrResult::LlmrNullParameter
            );
            assert!(!rec.stale);
            assert_eq!(
                llmr_breaker_record(b, &permit, 7, 0, false, 0, 0, &mut rec),
                LlmrResult::LlmrInvalidArgument
            );
            assert_eq!(
                llmr_breaker_record(b, &permit, 1, 40, false, 0, 0, &mut rec),
                LlmrResult::LlmrInvalidArgument
            );
            assert_eq!(
                llmr_breaker_state(ptr::null(), 0, &mut { LlmrBreakerState::Open }),
                LlmrResult::LlmrNullParameter
            );
            assert_eq!(
                llmr_breaker_counts(b, 0, ptr::null_mut()),
                LlmrResult::LlmrNullParameter
            );
            assert_eq!(
                llmr_breaker_reset(ptr::null(), 0, &mut { LlmrTransition::NONE }),
                LlmrResult::LlmrNullParameter
            );
            assert_eq!(
                llmr_breaker_snapshot(b, ptr::null_mut()),
                LlmrResult::LlmrNullParameter
            );
            assert_eq!(
                llmr_breaker_new(ptr::null(), 0, &mut ptr::null_mut(), ptr::null_mut()),
                LlmrResult::LlmrNullParameter
            );
            assert_eq!(
                llmr_breaker_new(c"{}".as_ptr(), 2, ptr::null_mut(), ptr::null_mut()),
                LlmrResult::LlmrNullParameter
            );
            assert_eq!(
                llmr_breaker_set_new(c"{}".as_ptr(), 2, 4, &mut set, ptr::null_mut()),
                LlmrResult::LlmrOk
            );
            assert_eq!(
                llmr_breaker_set_acquire(set, ptr::null(), 3, 0, &mut a),
                LlmrResult::LlmrNullParameter
            );
            assert_eq!(
                llmr_breaker_set_keys(ptr::null(), &mut ptr::null_mut()),
                LlmrResult::LlmrNullParameter
            );
            llmr_breaker_free(ptr::null_mut());
            llmr_breaker_set_free(ptr::null_mut());
            llmr_breaker_free(b);
            llmr_breaker_set_free(set);
        }
    }

    #[test]
    fn bad_configs_list_every_problem() {
        let (code, message) = new_breaker(
            r#"{"consecutive_failures": 0, "half_open_probes": 0, "max_probe_wait_ms": 0,
                "open_duration": {"base_ms": 0, "growth_percent": 50}}"#,
        )
        .unwrap_err();
        assert_eq!(code, LlmrResult::LlmrInvalidConfig);
        let message = message.unwrap();
        for field in [
            "consecutive_failures",
            "half_open_probes",
            "max_probe_wait_ms",
            "base_ms",
            "growth_percent",
        ] {
            assert!(message.contains(field), "{field} missing in {message}");
        }
        let (code, message) = new_breaker(r#"{"half_open_probez": 1}"#).unwrap_err();
        assert_eq!(code, LlmrResult::LlmrInvalidConfig);
        assert!(message.unwrap().contains("half_open_probez"));
        let (code, message) = new_breaker("{").unwrap_err();
        assert_eq!(code, LlmrResult::LlmrInvalidConfig);
        assert!(message.unwrap().starts_with("config: invalid JSON"));
        // The set lists max_keys with the config's problems.
        let mut set = ptr::null_mut();
        let mut err = ptr::null_mut();
        let config = r#"{"half_open_successes": 0}"#;
        // SAFETY: `config` is live; `set` and `err` are writable.
        let code = unsafe {
            llmr_breaker_set_new(config.as_ptr().cast(), config.len(), 0, &mut set, &mut err)
        };
        assert_eq!(code, LlmrResult::LlmrInvalidConfig);
        assert!(set.is_null());
        let message = take_string(err).unwrap();
        assert!(
            message.contains("half_open_successes") && message.contains("max_keys"),
            "{message}"
        );
    }

    #[test]
    fn keys_are_checked() {
        let mut set = ptr::null_mut();
        let mut a = LlmrAdmission::ZEROED;
        let mut rec = LlmrRecorded::ZEROED;
        let long = "k".repeat(257);
        let bad = [b'a', 0xff];
        // SAFETY: every pointer is NULL or valid for its length.
        unsafe {
            assert_eq!(
                llmr_breaker_set_new(c"{}".as_ptr(), 2, 2, &mut set, ptr::null_mut()),
                LlmrResult::LlmrOk
            );
            assert_eq!(
                llmr_breaker_set_acquire(set, c"".as_ptr(), 0, 0, &mut a),
                LlmrResult::LlmrInvalidKey
            );
            assert_eq!(
                llmr_breaker_set_acquire(set, long.as_ptr().cast(), long.len(), 0, &mut a),
                LlmrResult::LlmrInvalidKey
            );
            assert_eq!(
                llmr_breaker_set_acquire(set, bad.as_ptr().cast(), 2, 0, &mut a),
                LlmrResult::LlmrInvalidUtf8
            );
            assert_eq!(
                llmr_breaker_set_record(
                    set,
                    bad.as_ptr().cast(),
                    2,
                    &LlmrPermit::ZEROED,
                    0,
                    0,
                    false,
                    0,
                    0,
                    &mut rec
                ),
                LlmrResult::LlmrInvalidUtf8
            );
            let key = "openai/gpt-4o";
            assert_eq!(
                llmr_breaker_set_acquire(set, key.as_ptr().cast(), key.len(), 0, &mut a),
                LlmrResult::LlmrOk
            );
            assert!(a.admitted);
            assert_eq!(
                llmr_breaker_set_record(
                    set,
                    key.as_ptr().cast(),
                    key.len(),
                    &a.permit,
                    0,
                    0,
                    false,
                    0,
                    1,
                    &mut rec
                ),
                LlmrResult::LlmrOk
            );
            assert!(!rec.stale && !rec.has_transition);
            // A key never acquired: stale, not an error.
            assert_eq!(
                llmr_breaker_set_record(
                    set,
                    c"other".as_ptr(),
                    5,
                    &a.permit,
                    0,
                    0,
                    false,
                    0,
                    1,
                    &mut rec
                ),
                LlmrResult::LlmrOk
            );
            assert!(rec.stale);
            let mut keys = ptr::null_mut();
            assert_eq!(llmr_breaker_set_keys(set, &mut keys), LlmrResult::LlmrOk);
            assert_eq!(take_string(keys).unwrap(), r#"["openai/gpt-4o"]"#);
            llmr_breaker_set_free(set);
        }
    }

    #[test]
    fn snapshots_round_trip_through_json() {
        let b = new_breaker(r#"{"consecutive_failures": 2, "failure_rate": null}"#).unwrap();
        let a = acquire(b, 0);
        record(b, &a.permit, LlmrOutcome::Failure as u32, 1);
        let mut json = ptr::null_mut();
        // SAFETY: `b` is live; `json` is writable.
        let code = unsafe { llmr_breaker_snapshot(b, &mut json) };
        assert_eq!(code, LlmrResult::LlmrOk);
        let json = take_string(json).unwrap();
        let mut restored = ptr::null_mut();
        // SAFETY: `json` is live; `restored` is writable.
        let code = unsafe {
            llmr_breaker_restore(
                json.as_ptr().cast(),
                json.len(),
                &mut restored,
                ptr::null_mut(),
            )
        };
        assert_eq!(code, LlmrResult::LlmrOk);
        assert_eq!(counts(restored, 2), counts(b, 2));
        assert_eq!(counts(restored, 2).consecutive_failures, 1);
        let a = acquire(restored, 3);
        let r = record(restored, &a.permit, LlmrOutcome::Failure as u32, 4);
        assert!(r.has_transition);
        assert_eq!(
            (r.from, r.to),
            (LlmrBreakerState::Closed, LlmrBreakerState::Open)
        );
        // A corrupted snapshot is rejected with the reason.
        let bad = json.replace("\"half_open_probes\":1", "\"half_open_probes\":0");
        let mut err = ptr::null_mut();
        let mut none = ptr::null_mut();
        // SAFETY: `bad` is live; `none` and `err` are writable.
        let code =
            unsafe { llmr_breaker_restore(bad.as_ptr().cast(), bad.len(), &mut none, &mut err) };
        assert_eq!(code, LlmrResult::LlmrInvalidConfig);
        assert!(none.is_null());
        assert!(take_string(err).unwrap().contains("half_open_probes"));
        // Sets too.
        let mut set = ptr::null_mut();
        let mut adm = LlmrAdmission::ZEROED;
        // SAFETY: every pointer is valid.
        unsafe {
            assert_eq!(
                llmr_breaker_set_new(c"{}".as_ptr(), 2, 8, &mut set, ptr::null_mut()),
                LlmrResult::LlmrOk
            );
            llmr_breaker_set_acquire(set, c"m".as_ptr(), 1, 0, &mut adm);
            let mut snap = ptr::null_mut();
            assert_eq!(
                llmr_breaker_set_snapshot(set, &mut snap),
                LlmrResult::LlmrOk
            );
            let snap = take_string(snap).unwrap();
            let mut again = ptr::null_mut();
            assert_eq!(
                llmr_breaker_set_restore(
                    snap.as_ptr().cast(),
                    snap.len(),
                    &mut again,
                    ptr::null_mut()
                ),
                LlmrResult::LlmrOk
            );
            let mut keys = ptr::null_mut();
            llmr_breaker_set_keys(again, &mut keys);
            assert_eq!(take_string(keys).unwrap(), r#"["m"]"#);
            llmr_breaker_set_free(again);
            llmr_breaker_set_free(set);
            llmr_breaker_free(restored);
            llmr_breaker_free(b);
        }
    }

    #[test]
    fn switches_report_their_transitions() {
        let b = new_breaker("{}").unwrap();
        let mut t = LlmrTransition::NONE;
        let mut state = LlmrBreakerState::Closed;
        // SAFETY: `b` is live; outputs are writable.
        unsafe {
            assert_eq!(llmr_breaker_force_open(b, 0, &mut t), LlmrResult::LlmrOk);
            assert_eq!(
                t,
                LlmrTransition {
                    has_transition: true,
                    from: LlmrBreakerState::Closed,
                    to: LlmrBreakerState::ForcedOpen
                }
            );
            let a = acquire(b, 5);
            assert!(!a.admitted && !a.has_retry_in_ms);
            assert_eq!(a.state, LlmrBreakerState::ForcedOpen);
            llmr_breaker_disable(b, 6, &mut t);
            assert_eq!(t.to, LlmrBreakerState::Disabled);
            llmr_breaker_state(b, 7, &mut state);
            assert_eq!(state, LlmrBreakerState::Disabled);
            llmr_breaker_reset(b, 8, &mut t);
            assert_eq!(t.to, LlmrBreakerState::Closed);
            llmr_breaker_reset(b, 9, &mut t);
            assert!(!t.has_transition);
            llmr_breaker_free(b);
        }
    }

    /// 64 threads on one handle, with a shared monotonic counter as the clock. Each loops
    /// acquire / record with outcomes from its own pseudo-random sequence. Checked after every
    /// step: probes in flight never exceed `half_open_probes`, the window never holds more
    /// failures than calls nor more calls than its size. At the end: the breaker's rejection
    /// count equals the rejections the threads saw, nothing panicked.
    #[test]
    fn sixty_four_threads_share_one_handle() {
        const THREADS: u64 = 64;
        const ROUNDS: u64 = 2_000;
        const PROBES: u32 = 3;
        let b = new_breaker(
            r#"{"consecutive_failures": 3,
                "failure_rate": {"window": {"type": "count", "calls": 20}, "min_calls": 10},
                "open_duration": {"base_ms": 200, "growth_percent": 150, "max_ms": 2000},
                "half_open_probes": 3, "half_open_successes": 2, "max_probe_wait_ms": 500}"#,
        )
        .unwrap();
        let handle = b as usize;
        let clock = AtomicU64::new(0);
        let (rejected, admitted, probes) = std::thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let clock = &clock;
                    s.spawn(move || {
                        let b = handle as *const LlmrBreaker;
                        let mut seed = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                        let (mut rejected, mut admitted, mut probes) = (0u64, 0u64, 0u64);
                        for _ in 0..ROUNDS {
                            seed ^= seed << 13;
                            seed ^= seed >> 7;
                            seed ^= seed << 17;
                            let a = acquire(b, clock.fetch_add(1, Ordering::SeqCst));
                            if !a.admitted {
                                rejected += 1;
                                assert!(matches!(
                                    a.state,
                                    LlmrBreakerState::Open | LlmrBreakerState::HalfOpen
                                ));
                                continue;
                            }
                            admitted += 1;
                            probes += u64::from(a.permit.probe);
                            // 40 % failures: enough to trip it again and again, few enough
                            // for probes to close it, so it goes through every state.
                            let outcome = match seed % 10 {
                                0..=3 => LlmrOutcome::Failure,
                                4 => LlmrOutcome::Ignored,
                                _ => LlmrOutcome::Success,
                            };
                            if seed % 97 == 0 {
                                continue; // a lost permit: its probe slot must time out
                            }
                            let now = clock.fetch_add(1, Ordering::SeqCst);
                            record(b, &a.permit, outcome as u32, now);
                            let c = counts(b, now);
                            assert!(c.probes_in_flight <= PROBES, "{c:?}");
                            assert!(c.window_failures <= c.window_calls, "{c:?}");
                            assert!(c.window_calls <= 20, "{c:?}");
                        }
                        (rejected, admitted, probes)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("no thread panicked"))
                .fold((0, 0, 0), |(r, a, p), (r2, a2, p2)| {
                    (r + r2, a + a2, p + p2)
                })
        });
        let end = counts(b, clock.load(Ordering::SeqCst));
        assert_eq!(end.rejected, rejected);
        assert_eq!(rejected + admitted, THREADS * ROUNDS);
        assert!(end.times_opened > 0, "the breaker never opened: {end:?}");
        assert!(rejected > 0 && admitted > 0 && probes > 0);
        // SAFETY: no thread uses the handle any more.
        unsafe { llmr_breaker_free(b) };
    }
}
