//! The keyed GCRA rate limiter over the C ABI: an opaque [`LlmrRateLimiter`] handle.
//!
//! One handle may be shared by any number of threads: every call takes the handle's mutex for
//! the few hundred nanoseconds the core needs. The hot path ([`llmr_rate_limiter_check`])
//! parses no JSON and allocates nothing once the key is known. Time is the caller's monotonic
//! clock in milliseconds (`now_ms`); a clock that goes backwards is treated as standing still.

use std::ffi::c_char;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use llm_resilience::ratelimit::{
    RateLimitConfig, RateLimitError, RateLimitSnapshot, RateLimiter, Verdict,
};

use crate::handle::{free_handle, get_handle, new_from_json, registered};
use crate::json::{Rejection, write_json};
use crate::panic::ffi_boundary;
use crate::ptr::{OutPtr, try_str};
use crate::result::LlmrResult;

/// Keys longer than this are rejected as `LLMR_INPUT_TOO_LARGE` before they are read; keys up
/// to it but longer than the core's 256 bytes are `LLMR_INVALID_KEY`.
const KEY_LIMIT: usize = crate::classify::LLMR_LIMIT_STRING_BYTES;

/// A keyed rate limiter (GCRA, weighted, bounded memory). Create it with
/// `llmr_rate_limiter_new` or `llmr_rate_limiter_restore`, release it with
/// `llmr_rate_limiter_free`. Safe to use from many threads at once.
pub struct LlmrRateLimiter {
    inner: Mutex<RateLimiter>,
}

registered!(LlmrRateLimiter);

impl LlmrRateLimiter {
    /// The limiter, whatever a panicking thread left behind (the core never panics, and a
    /// limiter's state is valid between any two calls).
    fn lock(&self) -> MutexGuard<'_, RateLimiter> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The answer to `llmr_rate_limiter_check`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmrVerdict {
    /// Whether the units were allowed (and spent).
    pub allowed: bool,
    /// When allowed: units that could still be spent right now. 0 when denied.
    pub remaining: u32,
    /// When denied: how long until the same request would be allowed, ms (rounded up). 0 when
    /// allowed.
    pub retry_in_ms: u64,
}

impl LlmrVerdict {
    const ZEROED: LlmrVerdict = LlmrVerdict {
        allowed: false,
        remaining: 0,
        retry_in_ms: 0,
    };
}

impl From<Verdict> for LlmrVerdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Allowed { remaining } => LlmrVerdict {
                allowed: true,
                remaining,
                retry_in_ms: 0,
            },
            Verdict::Denied { retry_in_ms } => LlmrVerdict {
                allowed: false,
                remaining: 0,
                retry_in_ms,
            },
        }
    }
}

fn limit_error(e: RateLimitError) -> LlmrResult {
    match e {
        RateLimitError::EmptyKey | RateLimitError::KeyTooLong(_) => LlmrResult::LlmrInvalidKey,
        RateLimitError::ZeroUnits => LlmrResult::LlmrZeroUnits,
        RateLimitError::ExceedsBurst { .. } => LlmrResult::LlmrExceedsBurst,
    }
}

/// Finds the handle and borrows the key.
///
/// # Safety
///
/// `key` is NULL or valid for reads of `key_len` bytes.
unsafe fn handle_and_key<'a>(
    l: *const LlmrRateLimiter,
    key: *const c_char,
    key_len: usize,
) -> Result<(Arc<LlmrRateLimiter>, &'a str), LlmrResult> {
    let l = get_handle(l)?;
    // SAFETY: forwarded to the caller.
    let key = unsafe { try_str(key, key_len, KEY_LIMIT) }?;
    Ok((l, key))
}

/// Creates a limiter from a `RateLimitConfig` JSON object: `{"limit": 10, "period_ms": 60000,
/// "burst": 10, "max_keys": 100000, "hash_seed": 0}`. Every field is optional (the values
/// shown are the defaults; `burst` defaults to `limit`). Pass `{}` for all defaults.
///
/// Returns `LLMR_OK` (`*out` is a new handle), `LLMR_NULL_PARAMETER` (`out` or
/// `config_json` NULL), `LLMR_INPUT_TOO_LARGE` (over `LLMR_LIMIT_JSON_BYTES`) or
/// `LLMR_INVALID_CONFIG` (not UTF-8, bad JSON, an unknown field, or a value out of range;
/// `*error_out` names every problem). On any result but `LLMR_OK`, `*out` is NULL.
///
/// `error_out` may be NULL. Otherwise it is set to NULL, or, after `LLMR_INVALID_CONFIG`, to an
/// owned message to release with `llmr_string_free`.
///
/// # Safety
///
/// `config_json`, if not NULL, must be valid for reads of `config_json_len` bytes. `out` and
/// `error_out`, if not NULL, must be valid for a write of one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_rate_limiter_new(
    config_json: *const c_char,
    config_json_len: usize,
    out: *mut *mut LlmrRateLimiter,
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
                |c: RateLimitConfig| {
                    RateLimiter::new(c)
                        .map(|l| LlmrRateLimiter {
                            inner: Mutex::new(l),
                        })
                        .map_err(Rejection::config)
                },
            )
        }
    })
}

/// Rebuilds a limiter from the JSON `llmr_rate_limiter_snapshot` produced (its config is
/// validated again). Results, `out` and `error_out` as for `llmr_rate_limiter_new`.
///
/// # Safety
///
/// As for `llmr_rate_limiter_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_rate_limiter_restore(
    snapshot_json: *const c_char,
    snapshot_json_len: usize,
    out: *mut *mut LlmrRateLimiter,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: forwarded to the caller.
        unsafe {
            new_from_json(
                "snapshot",
                snapshot_json,
                snapshot_json_len,
                out,
                error_out,
                |s: RateLimitSnapshot| {
                    RateLimiter::restore(s)
                        .map(|l| LlmrRateLimiter {
                            inner: Mutex::new(l),
                        })
                        .map_err(Rejection::config)
                },
            )
        }
    })
}

/// Exports the limiter's state as JSON (its config, the latest time seen, and each key's hash
/// and state, least recently used first) into `*json_out`, an owned NUL-terminated string to
/// release with `llmr_string_free`. Session ids are not in it, only their seeded hashes.
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER` (`limiter` or `json_out` NULL; `*json_out` is then
/// NULL if writable) or `LLMR_PANIC`.
///
/// # Safety
///
/// `limiter` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `json_out`, if not NULL, must be valid for a write
/// of one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_rate_limiter_snapshot(
    limiter: *const LlmrRateLimiter,
    json_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `json_out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(json_out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(std::ptr::null_mut());
        let l = match get_handle(limiter) {
            Ok(l) => l,
            Err(e) => return e,
        };
        let snapshot = l.lock().snapshot();
        match write_json(&snapshot) {
            Ok(json) => {
                out.write(json);
                LlmrResult::LlmrOk
            }
            Err(e) => e,
        }
    })
}

/// Releases a limiter. NULL does nothing.
///
/// # Safety
///
/// `limiter` may be NULL, a handle from this library, or one already freed (nothing happens).
/// A call still using it on another thread finishes first.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_rate_limiter_free(limiter: *mut LlmrRateLimiter) {
    ffi_boundary!({ free_handle(limiter) })
}

/// Asks to spend `units` for `key` (a session id, UTF-8, 1..=256 bytes) at `now_ms`. Allowed
/// units are spent at once; a denial spends nothing and says when the same request would be
/// allowed. Parses no JSON; allocates only when the key is new.
///
/// Returns `LLMR_OK` (`*out` holds the verdict), `LLMR_NULL_PARAMETER`, `LLMR_INVALID_UTF8`
/// (the key), `LLMR_INVALID_KEY` (empty, or over 256 bytes), `LLMR_INPUT_TOO_LARGE` (a key over
/// `LLMR_LIMIT_STRING_BYTES`), `LLMR_ZERO_UNITS`, `LLMR_EXCEEDS_BURST` (more units than the
/// burst: no wait would allow them) or `LLMR_PANIC`. On any result but `LLMR_OK`, `*out` is
/// zeroed.
///
/// # Safety
///
/// `limiter` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `key`, if not NULL, valid for reads of `key_len`
/// bytes; `out`, if not NULL, valid for a write of one `LlmrVerdict`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_rate_limiter_check(
    limiter: *const LlmrRateLimiter,
    key: *const c_char,
    key_len: usize,
    units: u32,
    now_ms: u64,
    out: *mut LlmrVerdict,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(LlmrVerdict::ZEROED);
        // SAFETY: `limiter` and `key` per the contract.
        let (l, key) = match unsafe { handle_and_key(limiter, key, key_len) } {
            Ok(v) => v,
            Err(e) => return e,
        };
        let verdict = l.lock().check(key, units, now_ms);
        match verdict {
            Ok(v) => {
                out.write(v.into());
                LlmrResult::LlmrOk
            }
            Err(e) => limit_error(e),
        }
    })
}

/// Settles a reservation: `reserved` units were allowed for `key` by an earlier check, the call
/// really cost `actual`. The difference is refunded (never beyond a fresh key's full burst) or
/// debited (later checks wait longer). Use it for tokens per minute: check the estimate, settle
/// the real count.
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER`, `LLMR_INVALID_UTF8`, `LLMR_INVALID_KEY`,
/// `LLMR_INPUT_TOO_LARGE` or `LLMR_PANIC`.
///
/// # Safety
///
/// As for `llmr_rate_limiter_check` (without `out`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_rate_limiter_settle(
    limiter: *const LlmrRateLimiter,
    key: *const c_char,
    key_len: usize,
    reserved: u32,
    actual: u32,
    now_ms: u64,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `limiter` and `key` per the contract.
        let (l, key) = match unsafe { handle_and_key(limiter, key, key_len) } {
            Ok(v) => v,
            Err(e) => return e,
        };
        let settled = l.lock().settle(key, reserved, actual, now_ms);
        settled.map_or_else(limit_error, |()| LlmrResult::LlmrOk)
    })
}

/// Denies `key` until `until_ms` (on the same clock as `now_ms`), e.g. after a provider's 429
/// with a retry hint. Never shortens an existing wait.
///
/// Returns as `llmr_rate_limiter_settle`.
///
/// # Safety
///
/// As for `llmr_rate_limiter_check` (without `out`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_rate_limiter_block_until(
    limiter: *const LlmrRateLimiter,
    key: *const c_char,
    key_len: usize,
    until_ms: u64,
    now_ms: u64,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `limiter` and `key` per the contract.
        let (l, key) = match unsafe { handle_and_key(limiter, key, key_len) } {
            Ok(v) => v,
            Err(e) => return e,
        };
        let blocked = l.lock().block_until(key, until_ms, now_ms);
        blocked.map_or_else(limit_error, |()| LlmrResult::LlmrOk)
    })
}

/// Writes to `*out` the units `key` could spend at `now_ms` without waiting. Spends nothing.
///
/// Returns as `llmr_rate_limiter_settle`; on any result but `LLMR_OK`, `*out` is 0.
///
/// # Safety
///
/// As for `llmr_rate_limiter_check`, with `out` valid for a write of one `uint32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_rate_limiter_remaining(
    limiter: *const LlmrRateLimiter,
    key: *const c_char,
    key_len: usize,
    now_ms: u64,
    out: *mut u32,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(0);
        // SAFETY: `limiter` and `key` per the contract.
        let (l, key) = match unsafe { handle_and_key(limiter, key, key_len) } {
            Ok(v) => v,
            Err(e) => return e,
        };
        let remaining = l.lock().remaining(key, now_ms);
        match remaining {
            Ok(n) => {
                out.write(n);
                LlmrResult::LlmrOk
            }
            Err(e) => limit_error(e),
        }
    })
}

/// Writes to `*out` the number of keys the limiter holds (at most its `max_keys`).
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER` or `LLMR_PANIC`; on any result but `LLMR_OK`,
/// `*out` is 0.
///
/// # Safety
///
/// `limiter` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `out`, if not NULL, valid for a write of one
/// `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_rate_limiter_len(
    limiter: *const LlmrRateLimiter,
    out: *mut usize,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(0);
        let l = match get_handle(limiter) {
            Ok(l) => l,
            Err(e) => return e,
        };
        out.write(l.lock().len());
        LlmrResult::LlmrOk
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::llmr_string_free;
    use std::ffi::CStr;
    use std::ptr;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    /// A handle from `config` (panics in the test on failure).
    fn new(config: &str) -> *mut LlmrRateLimiter {
        let mut l = ptr::null_mut();
        // SAFETY: the pointers are valid locals and literals.
        let r = unsafe {
            llmr_rate_limiter_new(
                config.as_ptr().cast(),
                config.len(),
                &mut l,
                ptr::null_mut(),
            )
        };
        assert_eq!(r, LlmrResult::LlmrOk);
        assert!(!l.is_null());
        l
    }

    /// Creates with `config`, expecting `LLMR_INVALID_CONFIG`; returns the message.
    fn rejected(config: &[u8]) -> String {
        let mut l = ptr::null_mut();
        let mut err = ptr::null_mut();
        // SAFETY: as above.
        let r = unsafe {
            llmr_rate_limiter_new(config.as_ptr().cast(), config.len(), &mut l, &mut err)
        };
        assert_eq!(r, LlmrResult::LlmrInvalidConfig);
        assert!(l.is_null());
        assert!(!err.is_null());
        // SAFETY: `err` is a live library string, freed once.
        unsafe {
            let message = CStr::from_ptr(err).to_string_lossy().into_owned();
            llmr_string_free(err);
            message
        }
    }

    fn check(
        l: *const LlmrRateLimiter,
        key: &[u8],
        units: u32,
        now: u64,
    ) -> (LlmrResult, LlmrVerdict) {
        let mut v = LlmrVerdict {
            allowed: true,
            remaining: 7,
            retry_in_ms: 7,
        };
        // SAFETY: `l` is live; `key` and `v` are valid locals.
        let r = unsafe {
            llmr_rate_limiter_check(l, key.as_ptr().cast(), key.len(), units, now, &mut v)
        };
        (r, v)
    }

    #[test]
    fn check_settle_block_remaining_len() {
        let l = new(r#"{"limit": 2, "period_ms": 1000}"#);
        assert_eq!(
            check(l, b"s", 1, 0).1,
            LlmrVerdict {
                allowed: true,
                remaining: 1,
                retry_in_ms: 0
            }
        );
        assert_eq!(check(l, b"s", 1, 0).1.remaining, 0);
        assert_eq!(
            check(l, b"s", 1, 0).1,
            LlmrVerdict {
                allowed: false,
                remaining: 0,
                retry_in_ms: 500
            }
        );
        let mut n = 9u32;
        let mut len = 9usize;
        // SAFETY: `l` is live; the key and outputs are valid locals.
        unsafe {
            assert_eq!(
                llmr_rate_limiter_settle(l, c"s".as_ptr(), 1, 2, 0, 0),
                LlmrResult::LlmrOk
            );
            assert_eq!(
                llmr_rate_limiter_remaining(l, c"s".as_ptr(), 1, 0, &mut n),
                LlmrResult::LlmrOk
            );
            assert_eq!(n, 2);
            assert_eq!(
                llmr_rate_limiter_block_until(l, c"t".as_ptr(), 1, 3000, 0),
                LlmrResult::LlmrOk
            );
            assert_eq!(llmr_rate_limiter_len(l, &mut len), LlmrResult::LlmrOk);
            assert_eq!(len, 2);
        }
        assert_eq!(check(l, b"t", 1, 2999).1.retry_in_ms, 1);
        assert!(check(l, b"t", 1, 3000).1.allowed);
        // SAFETY: `l` is live and freed once.
        unsafe { llmr_rate_limiter_free(l) };
    }

    #[test]
    fn typed_errors_zero_the_verdict() {
        let l = new("{}");
        let long = [b'k'; 257];
        for (key, units, want) in [
            (&b""[..], 1, LlmrResult::LlmrInvalidKey),
            (&long[..], 1, LlmrResult::LlmrInvalidKey),
            (&[b'a', 0xff][..], 1, LlmrResult::LlmrInvalidUtf8),
            (&b"s"[..], 0, LlmrResult::LlmrZeroUnits),
            (&b"s"[..], 11, LlmrResult::LlmrExceedsBurst),
        ] {
            let (r, v) = check(l, key, units, 0);
            assert_eq!(r, want);
            assert_eq!(v, LlmrVerdict::ZEROED);
        }
        let mut n = 5u32;
        // SAFETY: `l` is live; the outputs are valid locals.
        unsafe {
            assert_eq!(
                llmr_rate_limiter_settle(l, c"".as_ptr(), 0, 1, 1, 0),
                LlmrResult::LlmrInvalidKey
            );
            assert_eq!(
                llmr_rate_limiter_block_until(l, [0xffu8].as_ptr().cast(), 1, 1, 0),
                LlmrResult::LlmrInvalidUtf8
            );
            assert_eq!(
                llmr_rate_limiter_remaining(l, long.as_ptr().cast(), 257, 0, &mut n),
                LlmrResult::LlmrInvalidKey
            );
            assert_eq!(n, 0);
            llmr_rate_limiter_free(l);
        }
    }

    #[test]
    fn nulls_are_rejected_and_free_is_null_safe() {
        let l = new("{}");
        let mut v = LlmrVerdict::ZEROED;
        let mut n = 0u32;
        let mut len = 0usize;
        let mut s = ptr::null_mut();
        let mut out = ptr::null_mut();
        // SAFETY: every pointer is NULL or a valid local/handle.
        unsafe {
            let null = LlmrResult::LlmrNullParameter;
            assert_eq!(
                llmr_rate_limiter_new(ptr::null(), 0, ptr::null_mut(), ptr::null_mut()),
                null
            );
            assert_eq!(
                llmr_rate_limiter_new(ptr::null(), 3, &mut out, ptr::null_mut()),
                null
            );
            assert!(out.is_null());
            assert_eq!(
                llmr_rate_limiter_restore(ptr::null(), 0, ptr::null_mut(), ptr::null_mut()),
                null
            );
            assert_eq!(
                llmr_rate_limiter_check(ptr::null(), c"s".as_ptr(), 1, 1, 0, &mut v),
                null
            );
            assert_eq!(
                llmr_rate_limiter_check(l, ptr::null(), 1, 1, 0, &mut v),
                null
            );
            assert_eq!(
                llmr_rate_limiter_check(l, c"s".as_ptr(), 1, 1, 0, ptr::null_mut()),
                null
            );
            assert_eq!(
                llmr_rate_limiter_settle(ptr::null(), c"s".as_ptr(), 1, 1, 1, 0),
                null
            );
            assert_eq!(
                llmr_rate_limiter_block_until(ptr::null(), c"s".as_ptr(), 1, 1, 0),
                null
            );
            assert_eq!(
                llmr_rate_limiter_remaining(ptr::null(), c"s".as_ptr(), 1, 0, &mut n),
                null
            );
            assert_eq!(
                llmr_rate_limiter_remaining(l, c"s".as_ptr(), 1, 0, ptr::null_mut()),
                null
            );
            assert_eq!(llmr_rate_limiter_len(ptr::null(), &mut len), null);
            assert_eq!(llmr_rate_limiter_len(l, ptr::null_mut()), null);
            assert_eq!(llmr_rate_limiter_snapshot(ptr::null(), &mut s), null);
            assert!(s.is_null());
            assert_eq!(llmr_rate_limiter_snapshot(l, ptr::null_mut()), null);
            llmr_rate_limiter_free(ptr::null_mut());
            llmr_rate_limiter_free(l);
        }
    }

    #[test]
    fn bad_configs_list_every_problem() {
        let m = rejected(br#"{"limit": 0, "period_ms": 0, "burst": 0, "max_keys": 0}"#);
        for needle in [
            "limit must be >= 1",
            "period_ms must be in 1..=2678400000",
            "burst must be >= 1",
            "max_keys must be in 1..=10000000",
        ] {
            assert!(m.contains(needle), "{needle:?} not in {m:?}");
        }
        let m = rejected(br#"{"limit": 1000000, "period_ms": 1}"#);
        assert!(m.contains("period_ms / limit must be at least 1"), "{m}");
        let m = rejected(br#"{"max_keys": 20000000}"#);
        assert!(m.contains("max_keys must be in"), "{m}");
        assert!(rejected(br#"{"limitt": 3}"#).contains("unknown field"));
        assert!(rejected(br#"{"limit": -1}"#).contains("invalid value"));
        assert!(rejected(b"[1,").contains("EOF"));
        assert!(rejected(b"").contains("EOF"));
        assert!(rejected(&[b'{', 0xff]).contains("UTF-8"));
    }

    #[test]
    fn snapshot_round_trip_keeps_the_state() {
        let l = new(r#"{"limit": 3, "period_ms": 3000}"#);
        for _ in 0..3 {
            assert!(check(l, b"a", 1, 10).1.allowed);
        }
        assert!(check(l, b"b", 1, 10).1.allowed);
        let mut json = ptr::null_mut();
        // SAFETY: `l` is live; `json` a valid local.
        let r = unsafe { llmr_rate_limiter_snapshot(l, &mut json) };
        assert_eq!(r, LlmrResult::LlmrOk);
        // SAFETY: `json` is a live library string.
        let text = unsafe { CStr::from_ptr(json) }.to_bytes().to_vec();
        let mut r2 = ptr::null_mut();
        // SAFETY: `text` is valid for its length; `r2` a valid local.
        let r = unsafe {
            llmr_rate_limiter_restore(text.as_ptr().cast(), text.len(), &mut r2, ptr::null_mut())
        };
        assert_eq!(r, LlmrResult::LlmrOk);
        for h in [l, r2] {
            assert_eq!(
                check(h, b"a", 1, 10).1,
                LlmrVerdict {
                    allowed: false,
                    remaining: 0,
                    retry_in_ms: 1000
                }
            );
            assert_eq!(check(h, b"b", 1, 10).1.remaining, 1);
        }
        // A snapshot whose config is invalid is rejected with the message.
        let bad = String::from_utf8(text)
            .unwrap()
            .replace("\"limit\":3", "\"limit\":0");
        let mut r3 = ptr::null_mut();
        let mut err = ptr::null_mut();
        // SAFETY: as above; every library pointer is freed once.
        unsafe {
            let r = llmr_rate_limiter_restore(bad.as_ptr().cast(), bad.len(), &mut r3, &mut err);
            assert_eq!(r, LlmrResult::LlmrInvalidConfig);
            assert!(
                CStr::from_ptr(err)
                    .to_string_lossy()
                    .contains("limit must be >= 1")
            );
            llmr_string_free(err);
            llmr_string_free(json);
            llmr_rate_limiter_free(l);
            llmr_rate_limiter_free(r2);
        }
    }

    #[test]
    fn a_poisoned_lock_is_recovered_without_panicking() {
        let l = new("{}");
        let handle = get_handle(l).expect("a live handle");
        let poisoner = std::thread::scope(|s| {
            s.spawn(|| {
                let _guard = handle.inner.lock();
                panic!("poison the limiter's mutex");
            })
            .join()
        });
        assert!(poisoner.is_err());
        assert!(handle.inner.is_poisoned());
        assert_eq!(
            check(l, b"s", 1, 0),
            (
                LlmrResult::LlmrOk,
                LlmrVerdict {
                    allowed: true,
                    remaining: 9,
                    retry_in_ms: 0
                }
            )
        );
        // SAFETY: freed once.
        unsafe { llmr_rate_limiter_free(l) };
    }

    /// 64 threads on one handle and one key, on the real clock: the allowed total never exceeds
    /// burst + rate · elapsed.
    #[test]
    fn sixty_four_threads_never_exceed_burst_plus_rate() {
        // 1 unit per ms, burst 20.
        let l = new(r#"{"limit": 1000, "period_ms": 1000, "burst": 20}"#) as usize;
        let start = Instant::now();
        let allowed = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..64 {
                let allowed = &allowed;
                s.spawn(move || {
                    let l = l as *const LlmrRateLimiter;
                    let key = "one-shared-session";
                    for _ in 0..2000 {
                        let now = start.elapsed().as_millis() as u64;
                        let (r, v) = check(l, key.as_bytes(), 1, now);
                        assert_eq!(r, LlmrResult::LlmrOk);
                        if v.allowed {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let elapsed_ms = start.elapsed().as_millis() as u64;
        let total = allowed.load(Ordering::Relaxed);
        assert!(total > 0);
        assert!(
            total <= 20 + elapsed_ms,
            "{total} allowed in {elapsed_ms} ms with burst 20 and 1/ms"
        );
        // SAFETY: every thread has finished; freed once.
        unsafe { llmr_rate_limiter_free(l as *mut LlmrRateLimiter) };
    }
}
