//! Owned handles: the one way this crate hands C a boxed object and takes it back, and the one
//! body shared by every `llmr_*_new` / `llmr_*_restore` that builds a handle from JSON.

use std::ffi::c_char;

use serde::de::DeserializeOwned;

use crate::json::{ErrorOut, Rejection, read_json};
use crate::ptr::OutPtr;
use crate::result::LlmrResult;

/// Hands `value` to C as an owned handle; take it back with [`free_handle`].
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Drops a handle made by [`into_handle`]. NULL does nothing.
///
/// # Safety
///
/// `p` must be NULL or a pointer from [`into_handle`] for the same `T`, not freed since and no
/// longer used by any thread.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: `p` came from `Box::into_raw` and is dropped exactly once (contract).
        drop(unsafe { Box::from_raw(p) });
    }
}

/// Builds a handle from `len` bytes of JSON at `json`: parses them as `T`, turns that into the
/// handle with `build`, and writes the handle to `*out` — or, on any error, NULL to `*out`, the
/// explanation to `*error_out` (if not NULL) and returns the code.
///
/// # Safety
///
/// `json` must be NULL or valid for reads of `len` bytes; `out` NULL or valid for a write of a
/// pointer; so must `error_out` (which may be NULL).
pub(crate) unsafe fn new_from_json<T: DeserializeOwned, H>(
    json: *const c_char,
    len: usize,
    out: *mut *mut H,
    error_out: *mut *mut c_char,
    build: impl FnOnce(T) -> Result<H, Rejection>,
) -> LlmrResult {
    // SAFETY: `error_out` is NULL or writable (contract).
    let mut error_out = unsafe { ErrorOut::new(error_out) };
    // SAFETY: `out` is NULL or writable (contract).
    let mut out = match unsafe { OutPtr::new(out) } {
        Ok(out) => out,
        Err(e) => return e,
    };
    out.write(std::ptr::null_mut());
    // SAFETY: `json` is NULL or readable for `len` bytes (contract).
    match unsafe { read_json::<T>(json, len) }.and_then(build) {
        Ok(handle) => {
            out.write(into_handle(handle));
            LlmrResult::LlmrOk
        }
        Err(r) => error_out.report(r),
    }
}
