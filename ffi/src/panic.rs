//! The panic boundary: no exported function unwinds into C.
//!
//! Unwinding across an `extern "C"` function aborts the process (Rust 1.81+), which would take
//! a Go service down with it. Every exported body therefore runs inside [`ffi_boundary!`],
//! which catches the panic and returns a value that says so: [`LlmrResult::LlmrPanic`] for
//! fallible functions, `NULL` for functions that return a pointer, nothing for `void`.
//!
//! The core promises never to panic, so this is a second line of defence, not control flow.

use std::ffi::c_char;

use crate::result::LlmrResult;

/// The value an exported function returns when its body panicked.
pub(crate) trait PanicValue {
    /// The value returned instead of unwinding.
    fn panic_value() -> Self;
}

impl PanicValue for LlmrResult {
    fn panic_value() -> Self {
        LlmrResult::LlmrPanic
    }
}

impl PanicValue for *const c_char {
    fn panic_value() -> Self {
        std::ptr::null()
    }
}

impl PanicValue for () {
    fn panic_value() -> Self {}
}

/// Runs `$body` (a block) and returns its value, or the type's [`PanicValue`] if it panicked.
///
/// `return` inside the block returns from the block, not from the enclosing function. The body
/// is wrapped in `AssertUnwindSafe`: after a panic nothing it touched is used again, because
/// outputs are written in one final step.
macro_rules! ffi_boundary {
    ($body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => $crate::panic::PanicValue::panic_value(),
        }
    };
}

pub(crate) use ffi_boundary;

#[cfg(test)]
mod tests {
    use super::*;

    fn panicking_result(fail: bool) -> LlmrResult {
        ffi_boundary!({
            if fail {
                panic!("boom");
            }
            LlmrResult::LlmrOk
        })
    }

    fn panicking_pointer(fail: bool) -> *const c_char {
        ffi_boundary!({
            if fail {
                panic!("boom");
            }
            c"ok".as_ptr()
        })
    }

    #[test]
    fn a_panic_becomes_the_panic_value() {
        assert_eq!(panicking_result(false), LlmrResult::LlmrOk);
        assert_eq!(panicking_result(true), LlmrResult::LlmrPanic);
        assert!(!panicking_pointer(false).is_null());
        assert!(panicking_pointer(true).is_null());
    }
}
