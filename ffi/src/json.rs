//! JSON across the C ABI: configs and snapshots go in and out as JSON text, and the error
//! strings that explain a rejected config. Shared by every handle type (breaker, limiter,
//! retry policy).
//!
//! Strings handed out here (`char *`) are owned by the caller and released with
//! [`llmr_string_free`], the one free function for every standalone string of the ABI.

use std::ffi::c_char;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::panic::ffi_boundary;
use crate::ptr::{OutPtr, free_c_string, to_c_string, try_str};
use crate::result::LlmrResult;

/// At most this many bytes of JSON (a config or a snapshot) may be passed; more is
/// `LLMR_INPUT_TOO_LARGE`. A snapshot of a full keyed set is tens of MiB; a gigabyte can only
/// come from a bug (a negative length cast to `size_t`).
pub const LLMR_LIMIT_JSON_BYTES: usize = 1073741824;

/// Why a JSON input was rejected: the result code and, for a bad config or snapshot, the text
/// listing every problem.
pub(crate) struct Rejection {
    /// The code the exported function returns.
    pub(crate) code: LlmrResult,
    /// The explanation written to `error_out` (if the caller asked for it).
    pub(crate) message: Option<String>,
}

impl From<LlmrResult> for Rejection {
    fn from(code: LlmrResult) -> Self {
        Rejection {
            code,
            message: None,
        }
    }
}

impl Rejection {
    /// An invalid config or snapshot, explained by `message`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Rejection {
            code: LlmrResult::LlmrInvalidConfig,
            message: Some(message.into()),
        }
    }

    /// A config the core rejected: every problem, joined by `"; "`.
    pub(crate) fn config(error: llm_resilience::ConfigError) -> Self {
        Rejection::invalid(error.problems.join("; "))
    }

    /// The same rejection, its message prefixed with the argument it is about (`"snapshot: …"`),
    /// so a call that takes several JSON texts (or a snapshot where a config could be meant)
    /// names the one at fault.
    pub(crate) fn about(mut self, what: &str) -> Self {
        if let Some(message) = self.message.as_mut() {
            *message = format!("{what}: {message}");
        }
        self
    }
}

/// Parses `len` bytes at `p` as JSON into a `T`. A NULL pointer with length 0 is an error
/// (`LLMR_NULL_PARAMETER`): there is no "absent" config; pass `{}` for every default.
///
/// # Safety
///
/// If `p` is not NULL and `len <= LLMR_LIMIT_JSON_BYTES`, `p` must be valid for reads of
/// `len` bytes during the call.
pub(crate) unsafe fn read_json<T: DeserializeOwned>(
    p: *const c_char,
    len: usize,
) -> Result<T, Rejection> {
    if p.is_null() {
        return Err(LlmrResult::LlmrNullParameter.into());
    }
    // SAFETY: forwarded to the caller.
    let text = match unsafe { try_str(p, len, LLMR_LIMIT_JSON_BYTES) } {
        Ok(text) => text,
        // Invalid UTF-8 is malformed JSON: say so in the error string as well.
        Err(LlmrResult::LlmrInvalidUtf8) => {
            return Err(Rejection::invalid("the JSON text is not valid UTF-8"));
        }
        Err(e) => return Err(e.into()),
    };
    serde_json::from_str(text).map_err(|e| Rejection::invalid(format!("invalid JSON: {e}")))
}

/// Serializes `value` as a caller-owned JSON string (release it with [`llmr_string_free`]).
/// The crate's state types always serialize; a failure would be a bug and is reported as
/// `LLMR_PANIC`.
pub(crate) fn write_json<T: Serialize>(value: &T) -> Result<*mut c_char, LlmrResult> {
    serde_json::to_string(value)
        .map(|text| to_c_string(&text))
        .map_err(|_| LlmrResult::LlmrPanic)
}

/// The optional `char **error_out` of a constructor: NULL when the caller does not want the
/// explanation. Set to NULL at the start, so that it holds a string only after an error.
pub(crate) struct ErrorOut<'a>(Option<OutPtr<'a, *mut c_char>>);

impl ErrorOut<'_> {
    /// Wraps `p` (may be NULL) and clears the target.
    ///
    /// # Safety
    ///
    /// If `p` is not NULL it must be aligned and valid for a write of one pointer.
    pub(crate) unsafe fn new(p: *mut *mut c_char) -> Self {
        // SAFETY: forwarded to the caller.
        let mut out = unsafe { OutPtr::new(p) }.ok();
        if let Some(out) = &mut out {
            out.write(std::ptr::null_mut());
        }
        ErrorOut(out)
    }

    /// Reports `rejection`: writes its message (if any, and if the caller asked) and returns
    /// its code.
    pub(crate) fn report(&mut self, rejection: Rejection) -> LlmrResult {
        if let (Some(out), Some(message)) = (&mut self.0, rejection.message) {
            out.write(to_c_string(&message));
        }
        rejection.code
    }
}

/// Releases a string this library handed out on its own (an error message, a JSON snapshot,
/// a key list). NULL does nothing. Strings inside structs are released by that struct's free
/// function instead (`llmr_classification_free`).
///
/// # Safety
///
/// `s` must be NULL or a string returned by this library through a `char **` output, not
/// freed since.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_string_free(s: *mut c_char) {
    ffi_boundary!({
        let mut owned = s;
        // SAFETY: `owned` is a local holding NULL or a string from `to_c_string` (contract).
        unsafe { free_c_string(&mut owned) };
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::ptr;

    #[test]
    fn json_is_read_checked_and_explained() {
        let good = b"{\"a\": 1}";
        // SAFETY: the pointers are NULL or point to live byte arrays of the given length.
        unsafe {
            let v: serde_json::Value = read_json(good.as_ptr().cast(), good.len()).ok().unwrap();
            assert_eq!(v["a"], 1);
            let null = read_json::<serde_json::Value>(ptr::null(), 0)
                .err()
                .unwrap();
            assert_eq!(null.code, LlmrResult::LlmrNullParameter);
            let bad = b"{\"a\": \xff}";
            let e = read_json::<serde_json::Value>(bad.as_ptr().cast(), bad.len())
                .err()
                .unwrap();
            assert_eq!(e.code, LlmrResult::LlmrInvalidConfig);
            assert!(e.message.unwrap().contains("UTF-8"));
            let e = read_json::<serde_json::Value>(b"{".as_ptr().cast(), 1)
                .err()
                .unwrap();
            assert!(e.message.unwrap().starts_with("invalid JSON"));
        }
    }

    #[test]
    fn error_out_is_optional_and_cleared_first() {
        let mut slot: *mut c_char = c"stale".as_ptr().cast_mut();
        // SAFETY: `slot` is a valid place for one pointer; NULL is allowed.
        unsafe {
            let mut out = ErrorOut::new(&mut slot);
            assert!(slot.is_null());
            let code = out.report(Rejection::invalid("why"));
            assert_eq!(code, LlmrResult::LlmrInvalidConfig);
            assert_eq!(CStr::from_ptr(slot), c"why");
            llmr_string_free(slot);
            llmr_string_free(ptr::null_mut());
            let mut none = ErrorOut::new(ptr::null_mut());
            assert_eq!(
                none.report(LlmrResult::LlmrNullParameter.into()),
                LlmrResult::LlmrNullParameter
            );
        }
    }
}
