//! Retry decisions over the C ABI: a policy, a service-wide budget and per-call state.
//!
//! - [`LlmrRetryPolicy`] is immutable after creation: share one across threads, no lock.
//! - [`LlmrRetryBudget`] is shared by every call of a service; a mutex inside makes it safe
//!   from many threads.
//! - [`LlmrRetryCall`] is one call's state (attempts so far, the jitter generator). It has a
//!   mutex too, so misuse from two threads is safe, but a call is meant to be driven by one
//!   thread at a time.
//!
//! A decision is a value ([`LlmrDecision`]); the caller does the sleeping.

use std::ffi::{CStr, c_char};
use std::sync::{Mutex, MutexGuard, PoisonError};

use llm_resilience::retry::{
    BudgetConfig, CallState, Decision, GiveUpReason, RetryBudget, RetryConfig, RetryPolicy,
};
use llm_resilience::{Classification, ErrorKind};

use crate::classify::LlmrErrorKind;
use crate::handle::{
    free_handle, get_handle, get_optional_handle, into_handle, new_from_json, registered,
};
use crate::json::Rejection;
use crate::panic::ffi_boundary;
use crate::ptr::{OutPtr, try_ref};
use crate::result::LlmrResult;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The core never panics, and its state is valid between any two calls.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A validated retry policy (`llmr_retry_policy_new`, `llmr_retry_policy_free`). Immutable:
/// any number of threads may use one at once.
pub struct LlmrRetryPolicy {
    inner: RetryPolicy,
}

registered!(LlmrRetryPolicy);

/// A service-wide retry budget (`llmr_retry_budget_new`, `llmr_retry_budget_free`): retries
/// allowed are a share of recent requests plus a small floor. Safe to share between threads.
pub struct LlmrRetryBudget {
    inner: Mutex<RetryBudget>,
}

registered!(LlmrRetryBudget);

/// One call's retry state (`llmr_retry_start_call`, `llmr_retry_call_free`). Drive it from one
/// thread at a time (a mutex inside keeps misuse memory-safe).
pub struct LlmrRetryCall {
    inner: Mutex<CallState>,
}

registered!(LlmrRetryCall);

/// What to do about a failed attempt. Values are part of the ABI and never reused.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmrRetryAction {
    /// Send the same request again after `after_ms`.
    Retry = 0,
    /// Shrink the request to at most `target_tokens`, then send it after `after_ms`.
    ShrinkContext = 1,
    /// Stop and report the failure; `reason` says why.
    GiveUp = 2,
}

/// Why a call gave up. Values are part of the ABI and never reused.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmrGiveUpReason {
    /// Not a give-up (the action is retry or shrink-context).
    None = 0,
    /// The failure cannot be cured by retrying (`kind` says which).
    Permanent = 1,
    /// The retries allowed for this kind (`kind`), or for the call, are used up (`retries`
    /// made so far).
    AttemptsExhausted = 2,
    /// The service-wide retry budget is empty.
    BudgetExhausted = 3,
    /// The server asked for a longer wait (`wait_ms`) than the policy allows (`ceiling_ms`).
    WaitTooLong = 4,
    /// The retry (at `retry_at_ms`) would pass the call's deadline (`deadline_at_ms`).
    Deadline = 5,
    /// Context overflow, but neither the error nor the caller gives a size to shrink from.
    CannotShrink = 6,
}

/// The failure a decision is about: the fields of an `LlmrClassification` the policy reads.
/// Each `has_*` flag says whether the value after it is present.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LlmrFailure {
    /// An `LlmrErrorKind` value; any other value is `LLMR_INVALID_ARGUMENT`.
    pub kind: u32,
    /// Whether retrying the same request can succeed.
    pub retryable: bool,
    /// Whether the server said how long to wait.
    pub has_retry_after_ms: bool,
    /// How long the server asked to wait, ms.
    pub retry_after_ms: u64,
    /// Whether the error states the context limit.
    pub has_limit_tokens: bool,
    /// The context limit or per-request cap the error states, in tokens.
    pub limit_tokens: u64,
    /// Whether the error states the request size.
    pub has_requested_tokens: bool,
    /// The size of the request the error states, in tokens.
    pub requested_tokens: u64,
}

/// A retry decision. Fields that do not apply to `action` (or to `reason`) are 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmrDecision {
    /// What to do.
    pub action: LlmrRetryAction,
    /// Retry and shrink-context: how long to wait before sending, ms.
    pub after_ms: u64,
    /// Retry and shrink-context: the number of the attempt about to be made (2 for the first
    /// retry).
    pub attempt: u32,
    /// Shrink-context: the request size to aim for, in tokens.
    pub target_tokens: u64,
    /// Give-up: why (`LLMR_GIVE_UP_REASON_NONE` otherwise).
    pub reason: LlmrGiveUpReason,
    /// Permanent and attempts-exhausted: the failure's kind.
    pub kind: LlmrErrorKind,
    /// Attempts-exhausted: retries already made in the call.
    pub retries: u32,
    /// Wait-too-long: what the server asked for, ms.
    pub wait_ms: u64,
    /// Wait-too-long: the policy's ceiling, ms.
    pub ceiling_ms: u64,
    /// Deadline: when the retry would have been sent (caller's clock, ms).
    pub retry_at_ms: u64,
    /// Deadline: the call's deadline (caller's clock, ms).
    pub deadline_at_ms: u64,
}

impl LlmrDecision {
    /// What `*out` holds after an error.
    const ZEROED: LlmrDecision = LlmrDecision {
        action: LlmrRetryAction::Retry,
        after_ms: 0,
        attempt: 0,
        target_tokens: 0,
        reason: LlmrGiveUpReason::None,
        kind: LlmrErrorKind::Auth,
        retries: 0,
        wait_ms: 0,
        ceiling_ms: 0,
        retry_at_ms: 0,
        deadline_at_ms: 0,
    };

    fn from_core(d: &Decision) -> Self {
        let z = LlmrDecision::ZEROED;
        match *d {
            Decision::Retry { after_ms, attempt } => LlmrDecision {
                after_ms,
                attempt,
                ..z
            },
            Decision::ShrinkContext {
                target_tokens,
                after_ms,
                attempt,
            } => LlmrDecision {
                action: LlmrRetryAction::ShrinkContext,
                after_ms,
                attempt,
                target_tokens,
                ..z
            },
            Decision::GiveUp { ref reason } => {
                let z = LlmrDecision {
                    action: LlmrRetryAction::GiveUp,
                    ..z
                };
                match *reason {
                    GiveUpReason::Permanent { kind } => LlmrDecision {
                        reason: LlmrGiveUpReason::Permanent,
                        kind: kind.into(),
                        ..z
                    },
                    GiveUpReason::AttemptsExhausted { kind, retries } => LlmrDecision {
                        reason: LlmrGiveUpReason::AttemptsExhausted,
                        kind: kind.into(),
                        retries,
                        ..z
                    },
                    GiveUpReason::BudgetExhausted => LlmrDecision {
                        reason: LlmrGiveUpReason::BudgetExhausted,
                        ..z
                    },
                    GiveUpReason::WaitTooLong {
                        wait_ms,
                        ceiling_ms,
                    } => LlmrDecision {
                        reason: LlmrGiveUpReason::WaitTooLong,
                        wait_ms,
                        ceiling_ms,
                        ..z
                    },
                    GiveUpReason::Deadline {
                        retry_at_ms,
                        deadline_at_ms,
                    } => LlmrDecision {
                        reason: LlmrGiveUpReason::Deadline,
                        retry_at_ms,
                        deadline_at_ms,
                        ..z
                    },
                    GiveUpReason::CannotShrink => LlmrDecision {
                        reason: LlmrGiveUpReason::CannotShrink,
                        ..z
                    },
                }
            }
        }
    }
}

/// Every core kind, indexed by `LlmrErrorKind` value.
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

impl LlmrFailure {
    /// The core classification (no strings: the policy does not read them; nothing allocated).
    fn to_core(self) -> Result<Classification, LlmrResult> {
        let kind = usize::try_from(self.kind)
            .ok()
            .and_then(|i| KINDS.get(i).copied())
            .ok_or(LlmrResult::LlmrInvalidArgument)?;
        Ok(Classification {
            kind,
            retryable: self.retryable,
            retry_after_ms: self.has_retry_after_ms.then_some(self.retry_after_ms),
            limit_tokens: self.has_limit_tokens.then_some(self.limit_tokens),
            requested_tokens: self.has_requested_tokens.then_some(self.requested_tokens),
            provider: None,
            code: None,
            error_type: None,
            message: String::new(),
        })
    }
}

/// The budget used when the caller passes none: large enough never to run out.
fn unlimited_budget() -> RetryBudget {
    let config = BudgetConfig {
        window_ms: 10_000,
        min_retries_per_sec: u32::MAX,
        retry_percent: 0,
    };
    // A constant, valid config (a unit test builds it); were it ever rejected, the panic
    // boundary would turn this into `LLMR_PANIC`.
    RetryBudget::new(config).expect("the unlimited budget's config is valid")
}

/// Creates a policy from a `RetryConfig` JSON object; every field is optional (`{}`: all
/// defaults): `max_retries` (per kind, e.g. `{"rate-limited": 4}`; kinds not listed get 0; default rate-limited 4, timeout 2, context-overflow 2, overloaded 4, unavailable 3,
/// server-error 2, network 3), `max_total_retries` (6), `base_delay_ms` (500, > 0),
/// `max_delay_ms` (30000, ≥ base), `jitter` (`"none"`, `"full"` (default) or
/// `"decorrelated"`), `max_server_wait_ms` (60000), `deadline_ms` (120000; `null`: none; not
/// 0), `shrink_percent` (70, 1..=99), `shrink_margin_percent` (5, ≤ 50).
///
/// Returns `LLMR_OK` (`*out` is a new handle), `LLMR_NULL_PARAMETER`, `LLMR_INPUT_TOO_LARGE` or
/// `LLMR_INVALID_CONFIG` (not UTF-8, bad JSON, an unknown field, a value out of range;
/// `*error_out`, if asked for, names every problem; release it with `llmr_string_free`). On any result but `LLMR_OK`, `*out` is NULL.
///
/// # Safety
///
/// `config_json`, if not NULL, must be valid for reads of `config_json_len` bytes. `out` and
/// `error_out`, if not NULL, must be valid for a write of one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_retry_policy_new(
    config_json: *const c_char,
    config_json_len: usize,
    out: *mut *mut LlmrRetryPolicy,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: forwarded to the caller.
        unsafe {
            new_from_json(
                "config",
                config_json,
                config_json_len,
                out,
                error_out,
                |c: RetryConfig| {
                    RetryPolicy::new(c)
                        .map(|inner| LlmrRetryPolicy { inner })
                        .map_err(Rejection::config)
                },
            )
        }
    })
}

/// Creates a budget from a `BudgetConfig` JSON object; every field is optional: `window_ms`
/// (10000, ≥ 10), `min_retries_per_sec` (10), `retry_percent` (20, ≤ 1000). Results, `out` and
/// `error_out` as for `llmr_retry_policy_new`.
///
/// # Safety
///
/// As for `llmr_retry_policy_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_retry_budget_new(
    config_json: *const c_char,
    config_json_len: usize,
    out: *mut *mut LlmrRetryBudget,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: forwarded to the caller.
        unsafe {
            new_from_json(
                "config",
                config_json,
                config_json_len,
                out,
                error_out,
                |c: BudgetConfig| {
                    RetryBudget::new(c)
                        .map(|b| LlmrRetryBudget {
                            inner: Mutex::new(b),
                        })
                        .map_err(Rejection::config)
                },
            )
        }
    })
}

/// Records one original request at `now_ms` (`llmr_retry_start_call` already does, for the
/// calls it starts).
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER` or `LLMR_PANIC`.
///
/// # Safety
///
/// `budget` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_retry_budget_deposit(
    budget: *const LlmrRetryBudget,
    now_ms: u64,
) -> LlmrResult {
    ffi_boundary!({
        match get_handle(budget) {
            Ok(b) => {
                lock(&b.inner).deposit(now_ms);
                LlmrResult::LlmrOk
            }
            Err(e) => e,
        }
    })
}

/// Writes to `*out` how many retries the budget would allow at `now_ms`.
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER` or `LLMR_PANIC`; on any result but `LLMR_OK`,
/// `*out` is 0.
///
/// # Safety
///
/// `budget` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `out`, if not NULL, valid for a write of one
/// `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_retry_budget_available(
    budget: *const LlmrRetryBudget,
    now_ms: u64,
    out: *mut u64,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(0);
        match get_handle(budget) {
            Ok(b) => {
                out.write(lock(&b.inner).available(now_ms));
                LlmrResult::LlmrOk
            }
            Err(e) => e,
        }
    })
}

/// Starts a call at `now_ms` and deposits it into `budget`. `seed` makes its jitter
/// reproducible: the same seed gives the same delays on every surface. `budget` may be NULL:
/// the call's retries are then limited by the policy alone.
///
/// Returns `LLMR_OK` (`*call_out` is a new handle, release it with `llmr_retry_call_free`),
/// `LLMR_NULL_PARAMETER` (`policy` or `call_out` NULL) or `LLMR_PANIC`. On any result but
/// `LLMR_OK`, `*call_out` is NULL.
///
/// # Safety
///
/// `policy` and `budget` may be NULL, live handles or freed ones (`LLMR_INVALID_HANDLE`); `call_out`, if not NULL, valid for a
/// write of one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_retry_start_call(
    policy: *const LlmrRetryPolicy,
    now_ms: u64,
    seed: u64,
    budget: *const LlmrRetryBudget,
    call_out: *mut *mut LlmrRetryCall,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `call_out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(call_out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(std::ptr::null_mut());
        let policy = match get_handle(policy) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let state = match get_optional_handle(budget) {
            Ok(Some(b)) => policy.inner.start_call(now_ms, seed, &mut lock(&b.inner)),
            Ok(None) => policy
                .inner
                .start_call(now_ms, seed, &mut unlimited_budget()),
            Err(e) => return e,
        };
        out.write(into_handle(LlmrRetryCall {
            inner: Mutex::new(state),
        }));
        LlmrResult::LlmrOk
    })
}

/// Decides what to do about a failed attempt of `call`, at `now_ms`.
///
/// `has_request_tokens`/`request_tokens` is the caller's own count of the request that failed;
/// it makes the shrink target of a context overflow exact in the caller's measure. A retry
/// withdraws one from `budget` (which may be NULL: no budget); a give-up costs nothing. Pass
/// the same budget as to `llmr_retry_start_call`.
///
/// Returns `LLMR_OK` (`*out` holds the decision), `LLMR_NULL_PARAMETER` (`policy`, `call`,
/// `failure` or `out` NULL), `LLMR_INVALID_ARGUMENT` (`failure->kind` is not an
/// `LlmrErrorKind`; the call's state is unchanged) or `LLMR_PANIC`. On any result but `LLMR_OK`, `*out` is zeroed.
///
/// # Safety
///
/// `policy`, `call` and `budget` may be NULL, live handles or freed ones (`LLMR_INVALID_HANDLE`); `failure`, if not NULL, must
/// point to a valid `LlmrFailure`; `out`, if not NULL, valid for a write of one
/// `LlmrDecision`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn llmr_retry_decide(
    policy: *const LlmrRetryPolicy,
    call: *const LlmrRetryCall,
    failure: *const LlmrFailure,
    now_ms: u64,
    has_request_tokens: bool,
    request_tokens: u64,
    budget: *const LlmrRetryBudget,
    out: *mut LlmrDecision,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(LlmrDecision::ZEROED);
        let policy = match get_handle(policy) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let call = match get_handle(call) {
            Ok(c) => c,
            Err(e) => return e,
        };
        // SAFETY: `failure` is NULL or valid (contract).
        let failure = match unsafe { try_ref(failure) }.and_then(|f| f.to_core()) {
            Ok(f) => f,
            Err(e) => return e,
        };
        let tokens = has_request_tokens.then_some(request_tokens);
        let budget = match get_optional_handle(budget) {
            Ok(b) => b,
            Err(e) => return e,
        };
        // Lock order: the call, then the budget (the same everywhere).
        let mut state = lock(&call.inner);
        let decision = match budget {
            Some(b) => {
                policy
                    .inner
                    .decide(&mut state, &failure, now_ms, tokens, &mut lock(&b.inner))
            }
            None => policy.inner.decide(
                &mut state,
                &failure,
                now_ms,
                tokens,
                &mut unlimited_budget(),
            ),
        };
        out.write(LlmrDecision::from_core(&decision));
        LlmrResult::LlmrOk
    })
}

/// Releases a policy. NULL does nothing.
///
/// # Safety
///
/// `policy` may be NULL, a handle from this library, or one already freed (nothing happens). A call still using it on another thread finishes first.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_retry_policy_free(policy: *mut LlmrRetryPolicy) {
    ffi_boundary!({ free_handle(policy) })
}

/// Releases a budget. NULL does nothing.
///
/// # Safety
///
/// `budget` may be NULL, a handle from this library, or one already freed (nothing happens). A call still using it on another thread finishes first.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_retry_budget_free(budget: *mut LlmrRetryBudget) {
    ffi_boundary!({ free_handle(budget) })
}

/// Releases a call. NULL does nothing.
///
/// # Safety
///
/// `call` may be NULL, a handle from this library, or one already freed (nothing happens). A call still using it on another thread finishes first.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_retry_call_free(call: *mut LlmrRetryCall) {
    ffi_boundary!({ free_handle(call) })
}

const ACTION_NAMES: [&CStr; 3] = [c"retry", c"shrink-context", c"give-up"];
const REASON_NAMES: [&CStr; 7] = [
    c"none",
    c"permanent",
    c"attempts-exhausted",
    c"budget-exhausted",
    c"wait-too-long",
    c"deadline",
    c"cannot-shrink",
];

/// Returns the kebab-case name of an `LlmrRetryAction` (`"shrink-context"`), or
/// `"invalid-action"`, as a static string that must not be freed.
#[unsafe(no_mangle)]
pub extern "C" fn llmr_retry_action_name(action: u32) -> *const c_char {
    ffi_boundary!({
        usize::try_from(action)
            .ok()
            .and_then(|i| ACTION_NAMES.get(i))
            .map_or(c"invalid-action".as_ptr(), |n| n.as_ptr())
    })
}

/// Returns the kebab-case name of an `LlmrGiveUpReason` (`"budget-exhausted"`; `"none"` for
/// `LLMR_GIVE_UP_REASON_NONE`), or `"invalid-reason"`, as a static string that must not be
/// freed.
#[unsafe(no_mangle)]
pub extern "C" fn llmr_give_up_reason_name(reason: u32) -> *const c_char {
    ffi_boundary!({
        usize::try_from(reason)
            .ok()
            .and_then(|i| REASON_NAMES.get(i))
            .map_or(c"invalid-reason".as_ptr(), |n| n.as_ptr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::llmr_string_free;
    use std::ptr;

    fn policy(config: &str) -> *mut LlmrRetryPolicy {
        let mut p = ptr::null_mut();
        // SAFETY: valid literal and local.
        let r = unsafe {
            llmr_retry_policy_new(
                config.as_ptr().cast(),
                config.len(),
                &mut p,
                ptr::null_mut(),
            )
        };
        assert_eq!(r, LlmrResult::LlmrOk);
        p
    }

    fn budget(config: &str) -> *mut LlmrRetryBudget {
        let mut b = ptr::null_mut();
        // SAFETY: valid literal and local.
        let r = unsafe {
            llmr_retry_budget_new(
                config.as_ptr().cast(),
                config.len(),
                &mut b,
                ptr::null_mut(),
            )
        };
        assert_eq!(r, LlmrResult::LlmrOk);
        b
    }

    fn start(
        p: *const LlmrRetryPolicy,
        b: *const LlmrRetryBudget,
        now: u64,
        seed: u64,
    ) -> *mut LlmrRetryCall {
        let mut c = ptr::null_mut();
        // SAFETY: live handles, valid local.
        let r = unsafe { llmr_retry_start_call(p, now, seed, b, &mut c) };
        assert_eq!(r, LlmrResult::LlmrOk);
        c
    }

    fn failure(kind: LlmrErrorKind, retryable: bool) -> LlmrFailure {
        LlmrFailure {
            kind: kind as u32,
            retryable,
            has_retry_after_ms: false,
            retry_after_ms: 0,
            has_limit_tokens: false,
            limit_tokens: 0,
            has_requested_tokens: false,
            requested_tokens: 0,
        }
    }

    fn decide(
        p: *const LlmrRetryPolicy,
        c: *const LlmrRetryCall,
        f: &LlmrFailure,
        now: u64,
        tokens: Option<u64>,
        b: *const LlmrRetryBudget,
    ) -> LlmrDecision {
        let mut d = LlmrDecision::ZEROED;
        // SAFETY: live handles, valid locals.
        let r = unsafe {
            llmr_retry_decide(
                p,
                c,
                f,
                now,
                tokens.is_some(),
                tokens.unwrap_or(0),
                b,
                &mut d,
            )
        };
        assert_eq!(r, LlmrResult::LlmrOk);
        d
    }

    fn rejected_policy(config: &str) -> String {
        let mut p = ptr::null_mut();
        let mut err = ptr::null_mut();
        // SAFETY: valid literal and locals; `err` freed once.
        unsafe {
            let r = llmr_retry_policy_new(config.as_ptr().cast(), config.len(), &mut p, &mut err);
            assert_eq!(r, LlmrResult::LlmrInvalidConfig);
            assert!(p.is_null());
            let m = CStr::from_ptr(err).to_string_lossy().into_owned();
            llmr_string_free(err);
            m
        }
    }

    #[test]
    fn decisions_match_the_core() {
        let p = policy(r#"{"jitter": "none", "deadline_ms": 10000}"#);
        let b = budget("{}");
        let c = start(p, b, 0, 7);
        let d = decide(p, c, &failure(LlmrErrorKind::Overloaded, true), 10, None, b);
        assert_eq!(
            (d.action, d.after_ms, d.attempt, d.reason),
            (LlmrRetryAction::Retry, 500, 2, LlmrGiveUpReason::None)
        );
        let d = decide(p, c, &failure(LlmrErrorKind::Auth, false), 10, None, b);
        assert_eq!(
            (d.action, d.reason, d.kind),
            (
                LlmrRetryAction::GiveUp,
                LlmrGiveUpReason::Permanent,
                LlmrErrorKind::Auth
            )
        );
        let mut f = failure(LlmrErrorKind::RateLimited, true);
        f.has_retry_after_ms = true;
        f.retry_after_ms = 90_000;
        let d = decide(p, c, &f, 10, None, b);
        assert_eq!(
            (d.reason, d.wait_ms, d.ceiling_ms),
            (LlmrGiveUpReason::WaitTooLong, 90_000, 60_000)
        );
        f.retry_after_ms = 9_999;
        let d = decide(p, c, &f, 10, None, b);
        assert_eq!(
            (d.reason, d.retry_at_ms, d.deadline_at_ms),
            (LlmrGiveUpReason::Deadline, 10_009, 10_000)
        );
        let mut f = failure(LlmrErrorKind::ContextOverflow, false);
        let d = decide(p, c, &f, 10, None, b);
        assert_eq!(d.reason, LlmrGiveUpReason::CannotShrink);
        f.has_limit_tokens = true;
        f.limit_tokens = 1000;
        f.has_requested_tokens = true;
        f.requested_tokens = 2000;
        let d = decide(p, c, &f, 10, Some(1800), b);
        assert_eq!(
            (d.action, d.target_tokens, d.after_ms, d.attempt),
            (LlmrRetryAction::ShrinkContext, 855, 0, 3)
        );
        // An out-of-range kind is rejected, and the decision zeroed.
        let mut f = failure(LlmrErrorKind::Timeout, true);
        f.kind = 13;
        let mut d = LlmrDecision {
            attempt: 5,
            ..LlmrDecision::ZEROED
        };
        // SAFETY: live handles, valid locals.
        let r = unsafe { llmr_retry_decide(p, c, &f, 10, false, 0, b, &mut d) };
        assert_eq!(
            (r, d),
            (LlmrResult::LlmrInvalidArgument, LlmrDecision::ZEROED)
        );
        let mut n = 0;
        // SAFETY: live handles freed once; valid local.
        unsafe {
            // 10 reserve + 20 % of one deposit (rounded down), less the two retries.
            assert_eq!(
                llmr_retry_budget_available(b, 10, &mut n),
                LlmrResult::LlmrOk
            );
            assert_eq!(n, 100 - 2);
            assert_eq!(llmr_retry_budget_deposit(b, 10), LlmrResult::LlmrOk);
            llmr_retry_call_free(c);
            llmr_retry_budget_free(b);
            llmr_retry_policy_free(p);
        }
    }

    #[test]
    fn attempts_and_budget_run_out() {
        let p = policy(r#"{"max_retries": {"timeout": 1}}"#);
        let b = budget(r#"{"min_retries_per_sec": 0, "retry_percent": 100}"#);
        let c = start(p, b, 0, 1);
        let t = failure(LlmrErrorKind::Timeout, true);
        assert_eq!(decide(p, c, &t, 0, None, b).action, LlmrRetryAction::Retry);
        let d = decide(p, c, &t, 0, None, b);
        assert_eq!(
            (d.reason, d.kind, d.retries),
            (
                LlmrGiveUpReason::AttemptsExhausted,
                LlmrErrorKind::Timeout,
                1
            )
        );
        let c2 = start(p, ptr::null(), 0, 1);
        // No budget deposit from c2 (NULL budget) and c's one deposit is spent.
        assert_eq!(
            decide(p, c2, &t, 0, None, b).reason,
            LlmrGiveUpReason::BudgetExhausted
        );
        // Without a budget the policy alone decides.
        assert_eq!(
            decide(p, c2, &t, 0, None, ptr::null()).action,
            LlmrRetryAction::Retry
        );
        // SAFETY: freed once.
        unsafe {
            llmr_retry_call_free(c);
            llmr_retry_call_free(c2);
            llmr_retry_budget_free(b);
            llmr_retry_policy_free(p);
        }
    }

    #[test]
    fn same_seed_same_jitter() {
        let p = policy("{}");
        let f = failure(LlmrErrorKind::ServerError, true);
        let delays: Vec<u64> = (0..2)
            .map(|_| {
                let c = start(p, ptr::null(), 0, 42);
                let d = decide(p, c, &f, 0, None, ptr::null());
                // SAFETY: freed once.
                unsafe { llmr_retry_call_free(c) };
                d.after_ms
            })
            .collect();
        assert_eq!(delays[0], delays[1]);
        assert!(delays[0] <= 500);
        // SAFETY: freed once.
        unsafe { llmr_retry_policy_free(p) };
    }

    #[test]
    fn bad_configs_list_every_problem() {
        let m = rejected_policy(
            r#"{"base_delay_ms": 0, "max_delay_ms": 0, "deadline_ms": 0, "shrink_percent": 100, "shrink_margin_percent": 51}"#,
        );
        for needle in [
            "base_delay_ms must be > 0",
            "deadline_ms must be > 0 or null",
            "shrink_percent must be in 1..=99",
            "shrink_margin_percent must be <= 50",
        ] {
            assert!(m.contains(needle), "{needle:?} not in {m:?}");
        }
        let m = rejected_policy(r#"{"base_delay_ms": 10, "max_delay_ms": 5}"#);
        assert!(m.contains("max_delay_ms must be >= base_delay_ms"), "{m}");
        assert!(rejected_policy(r#"{"jitter": "some"}"#).contains("unknown variant"));
        assert!(rejected_policy(r#"{"max_retries": {"teapot": 1}}"#).contains("unknown variant"));
        assert!(rejected_policy(r#"{"retries": 1}"#).contains("unknown field"));
        let mut b = ptr::null_mut();
        let mut err = ptr::null_mut();
        let cfg = r#"{"window_ms": 5, "retry_percent": 1001}"#;
        // SAFETY: valid literal and locals; freed once.
        unsafe {
            let r = llmr_retry_budget_new(cfg.as_ptr().cast(), cfg.len(), &mut b, &mut err);
            assert_eq!(r, LlmrResult::LlmrInvalidConfig);
            let m = CStr::from_ptr(err).to_string_lossy().into_owned();
            assert!(
                m.contains("window_ms must be >= 10")
                    && m.contains("retry_percent must be <= 1000"),
                "{m}"
            );
            llmr_string_free(err);
            let r = llmr_retry_budget_new([0xffu8].as_ptr().cast(), 1, &mut b, ptr::null_mut());
            assert_eq!(r, LlmrResult::LlmrInvalidConfig);
        }
        // The budget used for a NULL budget is valid.
        assert!(unlimited_budget().available(0) > 1_000_000);
    }

    #[test]
    fn nulls_are_rejected_and_frees_are_null_safe() {
        let p = policy("{}");
        let b = budget("{}");
        let c = start(p, b, 0, 1);
        let f = failure(LlmrErrorKind::Timeout, true);
        let mut d = LlmrDecision {
            attempt: 9,
            ..LlmrDecision::ZEROED
        };
        let mut out = ptr::null_mut();
        let mut n = 3;
        let null = LlmrResult::LlmrNullParameter;
        // SAFETY: every pointer is NULL or valid.
        unsafe {
            assert_eq!(
                llmr_retry_policy_new(ptr::null(), 0, ptr::null_mut(), ptr::null_mut()),
                null
            );
            assert_eq!(
                llmr_retry_budget_new(ptr::null(), 1, &mut out, ptr::null_mut()),
                null
            );
            assert_eq!(
                llmr_retry_start_call(ptr::null(), 0, 0, b, &mut ptr::null_mut()),
                null
            );
            assert_eq!(llmr_retry_start_call(p, 0, 0, b, ptr::null_mut()), null);
            assert_eq!(
                llmr_retry_decide(ptr::null(), c, &f, 0, false, 0, b, &mut d),
                null
            );
            assert_eq!(
                llmr_retry_decide(p, ptr::null(), &f, 0, false, 0, b, &mut d),
                null
            );
            assert_eq!(
                llmr_retry_decide(p, c, ptr::null(), 0, false, 0, b, &mut d),
                null
            );
            assert_eq!(d, LlmrDecision::ZEROED);
            assert_eq!(
                llmr_retry_decide(p, c, &f, 0, false, 0, b, ptr::null_mut()),
                null
            );
            assert_eq!(llmr_retry_budget_deposit(ptr::null(), 0), null);
            assert_eq!(llmr_retry_budget_available(ptr::null(), 0, &mut n), null);
            assert_eq!(n, 0);
            assert_eq!(llmr_retry_budget_available(b, 0, ptr::null_mut()), null);
            llmr_retry_call_free(ptr::null_mut());
            llmr_retry_budget_free(ptr::null_mut());
            llmr_retry_policy_free(ptr::null_mut());
            llmr_retry_call_free(c);
            llmr_retry_budget_free(b);
            llmr_retry_policy_free(p);
        }
    }

    #[test]
    fn names_are_stable() {
        let name = |p: *const c_char| {
            // SAFETY: the name functions return static NUL-terminated strings.
            unsafe { CStr::from_ptr(p) }.to_str().map(str::to_owned)
        };
        assert_eq!(
            name(llmr_retry_action_name(
                LlmrRetryAction::ShrinkContext as u32
            ))
            .as_deref(),
            Ok("shrink-context")
        );
        assert_eq!(
            name(llmr_retry_action_name(3)).as_deref(),
            Ok("invalid-action")
        );
        assert_eq!(
            name(llmr_give_up_reason_name(
                LlmrGiveUpReason::CannotShrink as u32
            ))
            .as_deref(),
            Ok("cannot-shrink")
        );
        assert_eq!(
            name(llmr_give_up_reason_name(7)).as_deref(),
            Ok("invalid-reason")
        );
        // Every reason converts to its own value, named by the core's serde tag; every action
        // by the decision's tag.
        let kind = ErrorKind::Timeout;
        for core in [
            GiveUpReason::Permanent { kind },
            GiveUpReason::AttemptsExhausted { kind, retries: 1 },
            GiveUpReason::BudgetExhausted,
            GiveUpReason::WaitTooLong {
                wait_ms: 1,
                ceiling_ms: 0,
            },
            GiveUpReason::Deadline {
                retry_at_ms: 1,
                deadline_at_ms: 0,
            },
            GiveUpReason::CannotShrink,
        ] {
            let decision = Decision::GiveUp {
                reason: core.clone(),
            };
            let d = LlmrDecision::from_core(&decision);
            let tag = serde_json::to_value(&core).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(
                name(llmr_give_up_reason_name(d.reason as u32)).unwrap(),
                tag
            );
            assert_eq!(d.action, LlmrRetryAction::GiveUp);
        }
        for decision in [
            Decision::Retry {
                after_ms: 1,
                attempt: 2,
            },
            Decision::ShrinkContext {
                target_tokens: 1,
                after_ms: 0,
                attempt: 2,
            },
            Decision::GiveUp {
                reason: GiveUpReason::CannotShrink,
            },
        ] {
            let tag = serde_json::to_value(&decision).unwrap()["decision"]
                .as_str()
                .unwrap()
                .to_owned();
            let d = LlmrDecision::from_core(&decision);
            assert_eq!(name(llmr_retry_action_name(d.action as u32)).unwrap(), tag);
        }
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(LlmrErrorKind::from(*k) as usize, i);
        }
    }
}
