//! The status code of every fallible function.

use std::ffi::{CStr, c_char};

use crate::panic::ffi_boundary;

/// What a fallible `llmr_` function did. `LLMR_OK` (0) is success.
///
/// The numeric values are part of the ABI: a code is never reused for a different meaning, and
/// new codes are only ever added at the end. On any code other than `LLMR_OK` the function's
/// output is left zeroed (no string is allocated, nothing needs freeing).
// The C names are `LLMR_OK`, `LLMR_NULL_PARAMETER`, …: the variants carry the prefix because
// this enum is exported without its type name (`cbindgen:prefix-with-name=false`).
/// cbindgen:prefix-with-name=false
#[allow(clippy::enum_variant_names)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmrResult {
    /// Success.
    LlmrOk = 0,
    /// A required pointer was NULL, or a pointer was NULL while its length was not 0.
    LlmrNullParameter = 1,
    /// A header name, header value, transport message or other text was not valid UTF-8.
    LlmrInvalidUtf8 = 2,
    /// A count or length exceeded the documented ABI limits (`LLMR_LIMIT_*`).
    LlmrInputTooLarge = 3,
    /// The library panicked (a bug); the call had no effect.
    LlmrPanic = 4,
    /// A config or snapshot (JSON) was malformed or rejected; the error string names each
    /// problem.
    LlmrInvalidConfig = 5,
    /// A key (session, model or provider) was empty or longer than 256 bytes.
    LlmrInvalidKey = 6,
    /// A rate-limit check asked for zero units.
    LlmrZeroUnits = 7,
    /// A rate-limit check asked for more units than the burst: no wait would allow it.
    LlmrExceedsBurst = 8,
    /// An enum argument passed as `uint32_t` (an `LlmrOutcome`, an `LlmrErrorKind`) had a
    /// value outside its documented set; the call had no effect.
    LlmrInvalidArgument = 9,
    /// A text (or a request's texts together) is longer than the token counter tokenizes
    /// (`LLMR_LIMIT_TOKENIZE_BYTES`, 4 MiB): nothing was counted.
    LlmrTooLargeToCount = 10,
    /// Context trimming: the system prompt, the latest message and the tool schemas alone
    /// exceed the budget. The error string is the core's `ContextError` JSON with both numbers.
    LlmrDoesNotFit = 11,
    /// Context trimming or the next budget refused the input for another reason named in the
    /// error string (`ContextError` JSON: `latest-not-user`, `not-overflow`, `cannot-shrink`).
    LlmrContextRejected = 12,
    /// An OpenRouter `/key` or `/credits` body could not be used; the error string is the
    /// core's `CreditsError` JSON (`too-large`, `invalid-json`, `api`, `missing-field`,
    /// `invalid-field`, `out-of-range`), which never holds a field's value.
    LlmrInvalidResponse = 13,
    /// A handle that was already freed (or never created by this library) was passed: the
    /// call had no effect. Handles are looked up in a registry, so a use after free is this
    /// error, never a read of freed memory.
    LlmrInvalidHandle = 14,
}

impl LlmrResult {
    /// Every code, in numeric order.
    pub(crate) const ALL: [LlmrResult; 15] = [
        LlmrResult::LlmrOk,
        LlmrResult::LlmrNullParameter,
        LlmrResult::LlmrInvalidUtf8,
        LlmrResult::LlmrInputTooLarge,
        LlmrResult::LlmrPanic,
        LlmrResult::LlmrInvalidConfig,
        LlmrResult::LlmrInvalidKey,
        LlmrResult::LlmrZeroUnits,
        LlmrResult::LlmrExceedsBurst,
        LlmrResult::LlmrInvalidArgument,
        LlmrResult::LlmrTooLargeToCount,
        LlmrResult::LlmrDoesNotFit,
        LlmrResult::LlmrContextRejected,
        LlmrResult::LlmrInvalidResponse,
        LlmrResult::LlmrInvalidHandle,
    ];

    /// The stable, kebab-case name of the code (`"invalid-utf8"`).
    pub(crate) const fn name(self) -> &'static CStr {
        match self {
            LlmrResult::LlmrOk => c"ok",
            LlmrResult::LlmrNullParameter => c"null-parameter",
            LlmrResult::LlmrInvalidUtf8 => c"invalid-utf8",
            LlmrResult::LlmrInputTooLarge => c"input-too-large",
            LlmrResult::LlmrPanic => c"panic",
            LlmrResult::LlmrInvalidConfig => c"invalid-config",
            LlmrResult::LlmrInvalidKey => c"invalid-key",
            LlmrResult::LlmrZeroUnits => c"zero-units",
            LlmrResult::LlmrExceedsBurst => c"exceeds-burst",
            LlmrResult::LlmrInvalidArgument => c"invalid-argument",
            LlmrResult::LlmrTooLargeToCount => c"too-large-to-count",
            LlmrResult::LlmrDoesNotFit => c"does-not-fit",
            LlmrResult::LlmrContextRejected => c"context-rejected",
            LlmrResult::LlmrInvalidResponse => c"invalid-response",
            LlmrResult::LlmrInvalidHandle => c"invalid-handle",
        }
    }

    /// The code with this numeric value, if there is one.
    pub(crate) fn from_u32(value: u32) -> Option<LlmrResult> {
        LlmrResult::ALL.into_iter().find(|r| *r as u32 == value)
    }
}

/// Returns the name of a result code as a static, NUL-terminated string: `"ok"`,
/// `"null-parameter"`, `"invalid-utf8"`, `"input-too-large"`, `"panic"`, `"invalid-config"`,
/// `"invalid-key"`, `"zero-units"`, `"exceeds-burst"`, `"invalid-argument"`,
/// `"too-large-to-count"`, `"does-not-fit"`, `"context-rejected"`, `"invalid-response"`, or
/// `"invalid-result"` for a value that is not an `LlmrResult`.
///
/// `result` is any `LlmrResult` value (taken as `uint32_t` so that an out-of-range value is
/// answered, not undefined behaviour). The string must not be freed.
#[unsafe(no_mangle)]
pub extern "C" fn llmr_result_name(result: u32) -> *const c_char {
    ffi_boundary!({
        match LlmrResult::from_u32(result) {
            Some(r) => r.name().as_ptr(),
            None => c"invalid-result".as_ptr(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_named() {
        let values: Vec<u32> = LlmrResult::ALL.iter().map(|r| *r as u32).collect();
        assert_eq!(values, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        for r in LlmrResult::ALL {
            // SAFETY: llmr_result_name returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(llmr_result_name(r as u32)) };
            assert_eq!(name, r.name());
        }
        // SAFETY: as above.
        let invalid = unsafe { CStr::from_ptr(llmr_result_name(99)) };
        assert_eq!(invalid, c"invalid-result");
    }
}
