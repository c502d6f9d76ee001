//! Credit monitoring over the C ABI: an opaque `LlmrCreditMonitor` handle that many threads
//! share, the `/key` and `/credits` body parsers, and the 402 "can only afford" reader.
//!
//! Configs, snapshots, parsed bodies, alerts and status speak JSON (the core's serde forms).
//! Every label, error message and alert message is redacted by the core: no output of this
//! module holds an API key, even when a key is fed in as a label or an error message.
//!
//! # Threads and time
//!
//! As for the breaker: a handle holds its monitor behind a mutex (a poisoned lock is used as
//! it is), and `now_ms` is milliseconds on the caller's monotonic clock. `wall_clock_ms` (Unix
//! time, ms) is only used to know the UTC day.

use std::ffi::c_char;
use std::sync::{Mutex, MutexGuard, PoisonError};

use llm_resilience::credits::{
    CreditConfig, CreditMonitor, CreditSnapshot, CreditsError, MAX_AFFORD_SCAN_BYTES,
    parse_credits, parse_key, suggest_max_tokens,
};

use crate::handle::{free_handle, get_handle, new_from_json, registered};
use crate::json::{ErrorOut, LLMR_LIMIT_JSON_BYTES, Rejection, read_json, write_json};
use crate::panic::ffi_boundary;
use crate::ptr::{OutPtr, try_slice, try_str};
use crate::result::LlmrResult;

/// A credit monitor. Opaque: create it with `llmr_credit_monitor_new` or
/// `llmr_credit_monitor_restore`, release it with `llmr_credit_monitor_free`. Safe to share
/// between threads.
pub struct LlmrCreditMonitor {
    inner: Mutex<CreditMonitor>,
}

registered!(LlmrCreditMonitor);

/// What a 402 "can only afford" text says (`llmr_credits_suggest_max_tokens`). Plain data.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmrAffordable {
    /// Whether the text holds a "can only afford M"; every other field is 0 / false if not.
    pub found: bool,
    /// Whether "You requested up to N tokens" was found with it.
    pub has_requested_tokens: bool,
    /// N.
    pub requested_tokens: u64,
    /// The smallest M in the text.
    pub affordable_tokens: u64,
    /// Whether a `max_tokens` to retry with is suggested (false: nothing is left; top up).
    pub has_suggested_max_tokens: bool,
    /// M less the core's 5 % margin, never more than N.
    pub suggested_max_tokens: u64,
}

impl LlmrAffordable {
    const ZEROED: LlmrAffordable = LlmrAffordable {
        found: false,
        has_requested_tokens: false,
        requested_tokens: 0,
        affordable_tokens: 0,
        has_suggested_max_tokens: false,
        suggested_max_tokens: 0,
    };
}

/// Locks `m`; a lock poisoned by a panicking thread is used as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes a caller-owned string (or the error of making one) to `out`.
fn deliver(out: &mut OutPtr<'_, *mut c_char>, text: Result<*mut c_char, LlmrResult>) -> LlmrResult {
    match text {
        Ok(s) => {
            out.write(s);
            LlmrResult::LlmrOk
        }
        Err(e) => e,
    }
}

/// Creates a monitor with nothing observed yet from a `CreditConfig` JSON (`{}` for every
/// default: warn under 5 USD, critical under 1 USD, alert over 1 USD spent per UTC day and
/// under 24 h of runway, 20 % hysteresis, 6 h burn window, 30 min least burn span; `null`
/// turns an alert off).
///
/// Returns `LLMR_OK` with a new handle in `*out`, or `LLMR_NULL_PARAMETER`,
/// `LLMR_INPUT_TOO_LARGE`, `LLMR_INVALID_CONFIG` (then `*error_out`, if `error_out` is not
/// NULL, names every rejected field; release it with `llmr_string_free`) or `LLMR_PANIC`. On
/// any error `*out` is NULL.
///
/// # Safety
///
/// `config` must be NULL or valid for reads of `config_len` bytes; `out` NULL or valid for a
/// write of a pointer; so must `error_out` (which may be NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_credit_monitor_new(
    config: *const c_char,
    config_len: usize,
    out: *mut *mut LlmrCreditMonitor,
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
                |c: CreditConfig| {
                    CreditMonitor::new(c)
                        .map(|m| LlmrCreditMonitor {
                            inner: Mutex::new(m),
                        })
                        .map_err(Rejection::config)
                },
            )
        }
    })
}

/// Creates a monitor from a snapshot written by `llmr_credit_monitor_snapshot` (burn history
/// and alert states survive a restart: nothing fires again). Results, errors and safety as
/// for `llmr_credit_monitor_new`.
///
/// # Safety
///
/// As for `llmr_credit_monitor_new`, with `snapshot` in place of `config`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_credit_monitor_restore(
    snapshot: *const c_char,
    snapshot_len: usize,
    out: *mut *mut LlmrCreditMonitor,
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
                |m: CreditMonitor| {
                    CreditMonitor::restore(m)
                        .map(|m| LlmrCreditMonitor {
                            inner: Mutex::new(m),
                        })
                        .map_err(Rejection::config)
                },
            )
        }
    })
}

/// Releases a monitor. NULL does nothing. No other thread may use the handle during or after
/// the call.
///
/// # Safety
///
/// `monitor` may be NULL, a handle from this library, or one already freed (nothing happens).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_credit_monitor_free(monitor: *mut LlmrCreditMonitor) {
    ffi_boundary!({ free_handle(monitor) })
}

/// Feeds one poll to the monitor and writes the alert events it caused to `*alerts_json` as a
/// JSON array (usually `[]`; each `{"alert": "balance-critical" | "balance-warning" |
/// "runway" | "daily-spend", "state": "fired" | "resolved", "value": number or null,
/// "threshold": number, "message": "…"}`; release it with `llmr_string_free`).
///
/// `snapshot` is `{"key": <llmr_credits_parse_key output>, "credits": <llmr_credits_parse_credits
/// output>}` (either may be left out or null). `now_ms` is the monotonic clock;
/// `wall_clock_ms` (if `has_wall_clock`) the Unix time, for the UTC day.
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER`, `LLMR_INPUT_TOO_LARGE`, `LLMR_INVALID_CONFIG`
/// (malformed snapshot JSON; `*error_out` says why; nothing was observed) or `LLMR_PANIC`; on
/// an error `*alerts_json` is NULL.
///
/// # Safety
///
/// `monitor` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `snapshot` NULL or valid for reads of
/// `snapshot_len` bytes; `alerts_json` NULL or valid for a write of a pointer; so must
/// `error_out` (which may be NULL).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn llmr_credit_monitor_observe(
    monitor: *const LlmrCreditMonitor,
    snapshot: *const c_char,
    snapshot_len: usize,
    now_ms: u64,
    has_wall_clock: bool,
    wall_clock_ms: u64,
    alerts_json: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `error_out` is NULL or writable (contract).
        let mut error_out = unsafe { ErrorOut::new(error_out) };
        // SAFETY: `alerts_json` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(alerts_json) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(std::ptr::null_mut());
        let monitor = match get_handle(monitor) {
            Ok(m) => m,
            Err(e) => return e,
        };
        // SAFETY: `snapshot` is NULL or readable for `snapshot_len` bytes (contract).
        let snapshot = match unsafe { read_json::<CreditSnapshot>(snapshot, snapshot_len) } {
            Ok(s) => s,
            Err(r) => return error_out.report(r),
        };
        let wall = has_wall_clock.then_some(wall_clock_ms);
        let alerts = lock(&monitor.inner).observe(&snapshot, now_ms, wall);
        deliver(&mut out, write_json(&alerts))
    })
}

/// Writes what the monitor knew after the last poll to `*status_json` (`{"balance_usd",
/// "account_balance_usd", "key_remaining_usd", "account_burn_usd_per_hour",
/// "key_burn_usd_per_hour", "runway_hours", "runway_unlimited", "daily_spend_usd", "active":
/// [alert…]}`; unknown numbers are null; release it with `llmr_string_free`).
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER` or `LLMR_PANIC`; on an error `*status_json` is
/// NULL.
///
/// # Safety
///
/// `monitor` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `status_json` NULL or valid for a write of a
/// pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_credit_monitor_status(
    monitor: *const LlmrCreditMonitor,
    status_json: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `status_json` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(status_json) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(std::ptr::null_mut());
        let monitor = match get_handle(monitor) {
            Ok(m) => m,
            Err(e) => return e,
        };
        let json = write_json(lock(&monitor.inner).status());
        deliver(&mut out, json)
    })
}

/// Exports the monitor's whole state (config, burn history, alert states) as JSON into
/// `*json_out` (release it with `llmr_string_free`); `llmr_credit_monitor_restore` reads it
/// back. Returns `LLMR_OK`, `LLMR_NULL_PARAMETER` or `LLMR_PANIC`; on an error `*json_out` is
/// NULL.
///
/// # Safety
///
/// `monitor` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `json_out` NULL or valid for a write of a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_credit_monitor_snapshot(
    monitor: *const LlmrCreditMonitor,
    json_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `json_out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(json_out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(std::ptr::null_mut());
        let monitor = match get_handle(monitor) {
            Ok(m) => m,
            Err(e) => return e,
        };
        let json = write_json(&*lock(&monitor.inner));
        deliver(&mut out, json)
    })
}

/// Runs a body parser and writes its result or its error.
///
/// # Safety
///
/// As for `llmr_credits_parse_key`.
unsafe fn parse_body<T: serde::Serialize>(
    body: *const c_char,
    body_len: usize,
    json_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
    parser: fn(&str) -> Result<T, CreditsError>,
) -> LlmrResult {
    // SAFETY: `error_out` is NULL or writable (contract).
    let mut error_out = unsafe { ErrorOut::new(error_out) };
    // SAFETY: `json_out` is NULL or writable (contract).
    let mut out = match unsafe { OutPtr::new(json_out) } {
        Ok(out) => out,
        Err(e) => return e,
    };
    out.write(std::ptr::null_mut());
    // SAFETY: `body` is NULL (with length 0) or readable for `body_len` bytes (contract).
    let body = match unsafe { try_str(body, body_len, LLMR_LIMIT_JSON_BYTES) } {
        Ok(b) => b,
        Err(e) => return e,
    };
    match parser(body) {
        Ok(v) => deliver(&mut out, write_json(&v)),
        Err(e) => error_out.report(Rejection {
            code: LlmrResult::LlmrInvalidResponse,
            message: serde_json::to_string(&e).ok(),
        }),
    }
}

/// Parses a `GET /api/v1/key` body and writes the key info as JSON to `*json_out` (`{"label",
/// "usage", "usage_daily", "usage_weekly", "usage_monthly", "byok_usage", "limit",
/// "limit_remaining", "limit_reset": "daily" | "weekly" | "monthly" | "other", "is_free_tier",
/// "include_byok_in_limit", "expires_at"}`, each null when absent; the label is redacted).
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER`, `LLMR_INVALID_UTF8`, `LLMR_INPUT_TOO_LARGE`,
/// `LLMR_INVALID_RESPONSE` (then `*error_out`, if `error_out` is not NULL, is the
/// `CreditsError` JSON: `{"error": "too-large" | "invalid-json" | "api" | "missing-field" |
/// "invalid-field" | "out-of-range", …}`; bodies over 64 KiB are `too-large`) or
/// `LLMR_PANIC`; on an error `*json_out` is NULL.
///
/// # Safety
///
/// `body` must be NULL or valid for reads of `body_len` bytes; `json_out` NULL or valid for a
/// write of a pointer; so must `error_out` (which may be NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_credits_parse_key(
    body: *const c_char,
    body_len: usize,
    json_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    // SAFETY: forwarded to the caller.
    ffi_boundary!({ unsafe { parse_body(body, body_len, json_out, error_out, parse_key) } })
}

/// Parses a `GET /api/v1/credits` body and writes `{"total_credits", "total_usage"}` as JSON
/// to `*json_out`. Results, errors and safety as for `llmr_credits_parse_key` (both totals are
/// required).
///
/// # Safety
///
/// As for `llmr_credits_parse_key`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_credits_parse_credits(
    body: *const c_char,
    body_len: usize,
    json_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    // SAFETY: forwarded to the caller.
    ffi_boundary!({ unsafe { parse_body(body, body_len, json_out, error_out, parse_credits) } })
}

/// Reads OpenRouter's 402 "You requested up to N tokens, but can only afford M." (the message
/// or the whole body) and fills `*out` with the smallest M and a `max_tokens` to retry with.
/// Only the first 64 KiB are read (and checked as UTF-8; a character cut at that boundary is
/// ignored). No allocation.
///
/// Returns `LLMR_OK` (also when nothing was found: `found` is false), `LLMR_NULL_PARAMETER`,
/// `LLMR_INVALID_UTF8`, `LLMR_INPUT_TOO_LARGE` or `LLMR_PANIC`; on an error `*out` is zeroed.
///
/// # Safety
///
/// `text` must be NULL or valid for reads of `text_len` bytes; `out` NULL or valid for a write
/// of an `LlmrAffordable`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_credits_suggest_max_tokens(
    text: *const c_char,
    text_len: usize,
    out: *mut LlmrAffordable,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(LlmrAffordable::ZEROED);
        // SAFETY: `text` is NULL (with length 0) or readable for `text_len` bytes (contract).
        let bytes = match unsafe { try_slice(text.cast::<u8>(), text_len, LLMR_LIMIT_JSON_BYTES) } {
            Ok(b) => b,
            Err(e) => return e,
        };
        let head = &bytes[..bytes.len().min(MAX_AFFORD_SCAN_BYTES)];
        let text = match std::str::from_utf8(head) {
            Ok(t) => t,
            // A character cut by the 64 KiB boundary: read up to it.
            Err(e) if e.error_len().is_none() && head.len() < bytes.len() => {
                std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
            }
            Err(_) => return LlmrResult::LlmrInvalidUtf8,
        };
        if let Some(a) = suggest_max_tokens(text) {
            out.write(LlmrAffordable {
                found: true,
                has_requested_tokens: a.requested_tokens.is_some(),
                requested_tokens: a.requested_tokens.unwrap_or(0),
                affordable_tokens: a.affordable_tokens,
                has_suggested_max_tokens: a.suggested_max_tokens.is_some(),
                suggested_max_tokens: a.suggested_max_tokens.unwrap_or(0),
            });
        }
        LlmrResult::LlmrOk
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::ptr;

    const FAKE: &str = "sk-or-v1-FAKE-not-a-real-key-0123456789abcdef-0123456789abcdef";

    fn take(s: *mut c_char) -> Option<String> {
        if s.is_null() {
            return None;
        }
        // SAFETY: a live string from this library, freed once.
        let text = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
        // SAFETY: as above.
        unsafe { crate::llmr_string_free(s) };
        Some(text)
    }

    fn key(body: &[u8]) -> (LlmrResult, Option<String>, Option<String>) {
        let mut out = ptr::null_mut();
        let mut err = ptr::null_mut();
        // SAFETY: `body` is live for its length; outputs are writable.
        let r =
            unsafe { llmr_credits_parse_key(body.as_ptr().cast(), body.len(), &mut out, &mut err) };
        (r, take(out), take(err))
    }

    #[test]
    fn parses_bodies_and_redacts() {
        let body = format!(
            r#"{{"data":{{"label":"{FAKE}","usage":1.5,"limit":10,"limit_remaining":8.5}}}}"#
        );
        let (r, out, err) = key(body.as_bytes());
        assert_eq!(r, LlmrResult::LlmrOk);
        assert!(err.is_none());
        let out = out.unwrap();
        assert!(
            !out.contains(FAKE) && out.contains("\"usage\":1.5"),
            "{out}"
        );
        let api = format!(r#"{{"error":{{"code":401,"message":"bad key {FAKE}"}}}}"#);
        let (r, out, err) = key(api.as_bytes());
        assert_eq!(r, LlmrResult::LlmrInvalidResponse);
        assert!(out.is_none());
        let err = err.unwrap();
        assert!(err.contains("\"api\"") && !err.contains(FAKE), "{err}");
        assert_eq!(key(b"{\xff").0, LlmrResult::LlmrInvalidUtf8);
        let (r, _, err) = key(b"{");
        assert_eq!(r, LlmrResult::LlmrInvalidResponse);
        assert!(err.unwrap().contains("invalid-json"));
        let big = vec![b' '; 70_000];
        let (r, _, err) = key(&big);
        assert_eq!(r, LlmrResult::LlmrInvalidResponse);
        assert!(err.unwrap().contains("too-large"));
        let mut out = ptr::null_mut();
        // SAFETY: NULL with a length is rejected before any read.
        unsafe {
            assert_eq!(
                llmr_credits_parse_credits(ptr::null(), 4, &mut out, ptr::null_mut()),
                LlmrResult::LlmrNullParameter
            );
            let body = r#"{"data":{"total_credits":20,"total_usage":14}}"#;
            assert_eq!(
                llmr_credits_parse_credits(
                    body.as_ptr().cast(),
                    body.len(),
                    &mut out,
                    ptr::null_mut()
                ),
                LlmrResult::LlmrOk
            );
            assert_eq!(
                take(out).unwrap(),
                r#"{"total_credits":20.0,"total_usage":14.0}"#
            );
        }
    }

    #[test]
    fn monitors_alert_snapshot_and_restore() {
        let mut m = ptr::null_mut();
        let mut err = ptr::null_mut();
        let config = r#"{"runway_hours": null, "daily_spend_usd": null}"#;
        // SAFETY: every pointer is live for its length or writable.
        unsafe {
            assert_eq!(
                llmr_credit_monitor_new(config.as_ptr().cast(), config.len(), &mut m, &mut err),
                LlmrResult::LlmrOk
            );
            let snap = format!(
                r#"{{"credits":{{"total_credits":20,"total_usage":15.1}},"key":{{"label":"{FAKE}","limit_remaining":100}}}}"#
            );
            let mut alerts = ptr::null_mut();
            assert_eq!(
                llmr_credit_monitor_observe(
                    m,
                    snap.as_ptr().cast(),
                    snap.len(),
                    0,
                    true,
                    1_795_737_600_000,
                    &mut alerts,
                    &mut err
                ),
                LlmrResult::LlmrOk
            );
            let alerts = take(alerts).unwrap();
            assert!(
                alerts.contains("balance-warning") && !alerts.contains(FAKE),
                "{alerts}"
            );
            let mut status = ptr::null_mut();
            assert_eq!(
                llmr_credit_monitor_status(m, &mut status),
                LlmrResult::LlmrOk
            );
            assert!(
                take(status)
                    .unwrap()
                    .contains("\"active\":[\"balance-warning\"]")
            );
            let mut json = ptr::null_mut();
            assert_eq!(
                llmr_credit_monitor_snapshot(m, &mut json),
                LlmrResult::LlmrOk
            );
            let json = take(json).unwrap();
            let mut again = ptr::null_mut();
            assert_eq!(
                llmr_credit_monitor_restore(
                    json.as_ptr().cast(),
                    json.len(),
                    &mut again,
                    ptr::null_mut()
                ),
                LlmrResult::LlmrOk
            );
            // The restored monitor does not fire the same alert again.
            let mut alerts = ptr::null_mut();
            llmr_credit_monitor_observe(
                again,
                snap.as_ptr().cast(),
                snap.len(),
                1,
                false,
                0,
                &mut alerts,
                ptr::null_mut(),
            );
            assert_eq!(take(alerts).unwrap(), "[]");
            // Errors.
            assert_eq!(
                llmr_credit_monitor_observe(
                    m,
                    c"{".as_ptr(),
                    1,
                    2,
                    false,
                    0,
                    &mut alerts,
                    &mut err
                ),
                LlmrResult::LlmrInvalidConfig
            );
            assert!(alerts.is_null());
            assert!(take(err).unwrap().starts_with("invalid JSON"));
            let mut err = ptr::null_mut();
            let bad = r#"{"hysteresis_percent": 0, "warning_balance_usd": 0.5}"#;
            let mut none = ptr::null_mut();
            assert_eq!(
                llmr_credit_monitor_new(bad.as_ptr().cast(), bad.len(), &mut none, &mut err),
                LlmrResult::LlmrInvalidConfig
            );
            assert!(none.is_null());
            let message = take(err).unwrap();
            assert!(
                message.contains("hysteresis_percent") && message.contains("warning_balance_usd"),
                "{message}"
            );
            assert_eq!(
                llmr_credit_monitor_new(ptr::null(), 0, &mut none, ptr::null_mut()),
                LlmrResult::LlmrNullParameter
            );
            assert_eq!(
                llmr_credit_monitor_status(ptr::null(), &mut status),
                LlmrResult::LlmrNullParameter
            );
            llmr_credit_monitor_free(again);
            llmr_credit_monitor_free(m);
            llmr_credit_monitor_free(ptr::null_mut());
        }
    }

    #[test]
    fn reads_can_only_afford() {
        let text = "This request requires more credits, or fewer max_tokens. You requested up to 16384 tokens, but can only afford 4000.";
        let mut a = LlmrAffordable::ZEROED;
        // SAFETY: `text` is live; `a` is writable.
        unsafe {
            assert_eq!(
                llmr_credits_suggest_max_tokens(text.as_ptr().cast(), text.len(), &mut a),
                LlmrResult::LlmrOk
            );
            assert!(a.found && a.has_requested_tokens && a.has_suggested_max_tokens);
            assert_eq!(
                (
                    a.requested_tokens,
                    a.affordable_tokens,
                    a.suggested_max_tokens
                ),
                (16384, 4000, 3800)
            );
            assert_eq!(
                llmr_credits_suggest_max_tokens(c"nothing".as_ptr(), 7, &mut a),
                LlmrResult::LlmrOk
            );
            assert!(!a.found);
            assert_eq!(
                llmr_credits_suggest_max_tokens(b"\xff".as_ptr().cast(), 1, &mut a),
                LlmrResult::LlmrInvalidUtf8
            );
            assert_eq!(
                llmr_credits_suggest_max_tokens(ptr::null(), 0, ptr::null_mut()),
                LlmrResult::LlmrNullParameter
            );
        }
    }
}
