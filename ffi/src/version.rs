//! The library version.

use std::ffi::{CStr, c_char};

use crate::panic::ffi_boundary;

/// The crate version as a NUL-terminated string, built at compile time.
const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("the crate version contains a NUL byte"),
    };

const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// The ABI reports one version: the C ABI crate and the core it wraps are released together.
const _: () = assert!(
    same_str(env!("CARGO_PKG_VERSION"), llm_resilience::VERSION),
    "llm-resilience-ffi and llm-resilience must have the same version"
);

/// Returns the library version (`"0.1.0"`) as a static, NUL-terminated string that must not be
/// freed.
#[unsafe(no_mangle)]
pub extern "C" fn llmr_version() -> *const c_char {
    ffi_boundary!({ VERSION.as_ptr() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_version_symbol_agree_with_the_core() {
        // SAFETY: llmr_version returns a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(llmr_version()) };
        // SAFETY: so does the version-named symbol (0.1.0 is the crate version).
        let symbol = unsafe { CStr::from_ptr(crate::llmr_version_0_1_0()) };
        assert_eq!(v.to_str(), Ok(llm_resilience::VERSION));
        assert_eq!(v, symbol);
    }
}
