//! Typed pointer helpers: the crate's only pointer dereferences.
//!
//! Each helper checks for NULL (returning [`LlmrResult::LlmrNullParameter`]) and for the ABI
//! size limits (returning [`LlmrResult::LlmrInputTooLarge`]) before it turns a raw pointer into
//! a reference or a slice. What it cannot check — that a non-NULL pointer is valid — is the
//! caller's contract, stated in each helper's `# Safety` section and in the header.

use std::ffi::{CString, c_char};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use crate::result::LlmrResult;

/// Borrows `*p`.
///
/// # Safety
///
/// If `p` is not NULL it must be aligned and point to an initialised `T` that stays valid and
/// unmodified for `'a`.
pub(crate) unsafe fn try_ref<'a, T>(p: *const T) -> Result<&'a T, LlmrResult> {
    // SAFETY: NULL is checked by `as_ref`; the rest is the caller's contract.
    unsafe { p.as_ref() }.ok_or(LlmrResult::LlmrNullParameter)
}

/// Borrows `len` elements starting at `p`. An empty slice needs no pointer (`p` may be NULL
/// when `len` is 0); a NULL `p` with a non-zero `len` is an error, and so is `len > max`.
///
/// # Safety
///
/// If `p` is not NULL and `len <= max`, `p` must be aligned and point to `len` initialised
/// `T`s that stay valid and unmodified for `'a`.
pub(crate) unsafe fn try_slice<'a, T>(
    p: *const T,
    len: usize,
    max: usize,
) -> Result<&'a [T], LlmrResult> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(LlmrResult::LlmrNullParameter);
    }
    if len > max {
        return Err(LlmrResult::LlmrInputTooLarge);
    }
    // SAFETY: `p` is not NULL; validity for `len` elements is the caller's contract, and the
    // limits keep `len * size_of::<T>()` far below `isize::MAX` for every `max` this crate uses.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Borrows `len` bytes at `p` as UTF-8 text (see [`try_slice`] for NULL and limits).
///
/// # Safety
///
/// As for [`try_slice`] with `T = u8`.
pub(crate) unsafe fn try_str<'a>(
    p: *const c_char,
    len: usize,
    max: usize,
) -> Result<&'a str, LlmrResult> {
    // SAFETY: forwarded to the caller.
    let bytes = unsafe { try_slice(p.cast::<u8>(), len, max) }?;
    std::str::from_utf8(bytes).map_err(|_| LlmrResult::LlmrInvalidUtf8)
}

/// Like [`try_str`], but a NULL `p` with length 0 means "absent".
///
/// # Safety
///
/// As for [`try_slice`] with `T = u8`.
pub(crate) unsafe fn try_opt_str<'a>(
    p: *const c_char,
    len: usize,
    max: usize,
) -> Result<Option<&'a str>, LlmrResult> {
    if p.is_null() && len == 0 {
        return Ok(None);
    }
    // SAFETY: forwarded to the caller.
    unsafe { try_str(p, len, max) }.map(Some)
}

/// A place to write one `T` into caller memory that may be uninitialised: it is only ever
/// written, never read, so no reference to it is created.
pub(crate) struct OutPtr<'a, T> {
    ptr: NonNull<T>,
    _borrow: PhantomData<&'a mut T>,
}

impl<T> OutPtr<'_, T> {
    /// Checks `p` for NULL.
    ///
    /// # Safety
    ///
    /// If `p` is not NULL it must be aligned, valid for a write of one `T` and not accessed
    /// by anything else while the `OutPtr` lives.
    pub(crate) unsafe fn new(p: *mut T) -> Result<Self, LlmrResult> {
        NonNull::new(p)
            .map(|ptr| OutPtr {
                ptr,
                _borrow: PhantomData,
            })
            .ok_or(LlmrResult::LlmrNullParameter)
    }

    /// Overwrites the target without reading or dropping what was there.
    pub(crate) fn write(&mut self, value: T) {
        // SAFETY: `new`'s contract: aligned, valid for writes, not aliased.
        unsafe { ptr::write(self.ptr.as_ptr(), value) }
    }
}

/// Hands `text` to C as an owned NUL-terminated string; release it with [`free_c_string`].
/// An interior NUL (which C could not see past) becomes U+FFFD.
pub(crate) fn to_c_string(text: &str) -> *mut c_char {
    let bytes = if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into_bytes()
    } else {
        text.as_bytes().to_vec()
    };
    // `bytes` holds no NUL, so `new` cannot fail; the fallback only avoids a panic path.
    CString::new(bytes).unwrap_or_default().into_raw()
}

/// Frees the string `*field` points to (if any) and sets `*field` to NULL, so a second call
/// does nothing.
///
/// # Safety
///
/// `field` must be aligned and valid for reads and writes, and `*field` must be NULL or a
/// pointer returned by [`to_c_string`] that was not freed since.
pub(crate) unsafe fn free_c_string(field: *mut *mut c_char) {
    // SAFETY: `field` is valid for reads and writes (contract); `replace` leaves NULL behind.
    let owned = unsafe { ptr::replace(field, ptr::null_mut()) };
    if !owned.is_null() {
        // SAFETY: `owned` came from `CString::into_raw` and is freed exactly once: the field
        // that held it is NULL now.
        drop(unsafe { CString::from_raw(owned) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_check_null_and_limits() {
        let data = [1u8, 2, 3];
        // SAFETY: the pointers are NULL or point to `data`.
        unsafe {
            assert_eq!(try_slice(ptr::null::<u8>(), 0, 8), Ok(&[][..]));
            assert_eq!(
                try_slice(ptr::null::<u8>(), 2, 8),
                Err(LlmrResult::LlmrNullParameter)
            );
            assert_eq!(
                try_slice(data.as_ptr(), 3, 2),
                Err(LlmrResult::LlmrInputTooLarge)
            );
            assert_eq!(try_slice(data.as_ptr(), 3, 3), Ok(&data[..]));
        }
    }

    #[test]
    fn strings_check_utf8_and_absence() {
        let bad = [b'a', 0xff];
        // SAFETY: the pointers are NULL or point to live byte arrays of the given length.
        unsafe {
            assert_eq!(
                try_str(bad.as_ptr().cast(), 2, 8),
                Err(LlmrResult::LlmrInvalidUtf8)
            );
            assert_eq!(try_opt_str(ptr::null(), 0, 8), Ok(None));
            assert_eq!(
                try_opt_str(ptr::null(), 1, 8),
                Err(LlmrResult::LlmrNullParameter)
            );
            assert_eq!(try_opt_str(c"".as_ptr(), 0, 8), Ok(Some("")));
        }
    }

    #[test]
    fn c_strings_round_trip_and_free_once() {
        let mut s = to_c_string("a\0b");
        // SAFETY: `s` is a live string from `to_c_string`.
        let text = unsafe { std::ffi::CStr::from_ptr(s) }
            .to_str()
            .map(str::to_owned);
        assert_eq!(text.as_deref(), Ok("a\u{FFFD}b"));
        // SAFETY: `&mut s` is a valid field holding a `to_c_string` pointer, then NULL.
        unsafe {
            free_c_string(&mut s);
            assert!(s.is_null());
            free_c_string(&mut s);
        }
    }
}
