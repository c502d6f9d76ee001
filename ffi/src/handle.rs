//! Owned handles: the one way this crate hands C an object and finds it again (a registry of
//! live handles, see [`Registry`]), and the one body shared by every `llmr_*_new` /
//! `llmr_*_restore` that builds a handle from JSON.

use std::collections::BTreeMap;
use std::ffi::c_char;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use serde::de::DeserializeOwned;

use crate::json::{ErrorOut, Rejection, read_json};
use crate::ptr::OutPtr;
use crate::result::LlmrResult;

/// How many shards a registry has: a lookup locks one shard for reading, so calls on
/// different handles rarely touch the same lock word.
const SHARDS: usize = 64;

/// The live handles of one type, by the token C holds.
///
/// Why a registry instead of `Box::into_raw`: with a raw pointer, a call made after the free
/// function (or racing with it) reads freed memory — undefined behaviour, seen in practice as
/// a hang on a mutex inside the freed object. Here the pointer C holds is only a token (a
/// unique number, never an address, never dereferenced), the object lives in an [`Arc`] in the
/// registry, and every call looks the token up: a freed (or never issued) token is
/// [`LlmrResult::LlmrInvalidHandle`], a double free does nothing, and a free racing with a call
/// only drops the registry's reference — the call keeps its own until it returns. Tokens are
/// never reused (a 64-bit counter), so a stale token cannot reach a newer handle. No `unsafe`
/// is involved: a handle is never turned back into a reference from a pointer.
pub(crate) struct Registry<T> {
    shards: [RwLock<BTreeMap<usize, Arc<T>>>; SHARDS],
}

impl<T> Registry<T> {
    /// An empty registry. (A B-tree rather than a hash map: its nodes are found from their
    /// start, so valgrind does not mistake a registry for a possible leak, and an empty one
    /// holds no allocation.)
    pub(crate) const fn new() -> Self {
        Registry {
            shards: [const { RwLock::new(BTreeMap::new()) }; SHARDS],
        }
    }

    fn shard(&self, token: usize) -> &RwLock<BTreeMap<usize, Arc<T>>> {
        &self.shards[(token >> TOKEN_SHIFT) % SHARDS]
    }
}

/// Tokens are multiples of `1 << TOKEN_SHIFT` (aligned like a real allocation, for C code that
/// asserts alignment; never 0).
const TOKEN_SHIFT: u32 = 4;

/// The next token number (shared by every handle type, so a token of one type is never a
/// token of another).
static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(1);

/// A type handed to C as a handle: each has its own [`Registry`] (see [`registered!`]).
pub(crate) trait Handle: Send + Sync + Sized + 'static {
    /// The registry of this type's live handles.
    fn registry() -> &'static Registry<Self>;
}

/// Implements [`Handle`] for a type with a registry of its own.
macro_rules! registered {
    ($t:ty) => {
        impl $crate::handle::Handle for $t {
            fn registry() -> &'static $crate::handle::Registry<Self> {
                static REGISTRY: $crate::handle::Registry<$t> = $crate::handle::Registry::new();
                &REGISTRY
            }
        }
    };
}
pub(crate) use registered;

/// Hands `value` to C as a handle: registers it and returns its token, to give back to
/// [`get_handle`] and [`free_handle`]. The token is not an address: C must not dereference it
/// (the handle types are opaque in the header, so C cannot).
pub(crate) fn into_handle<T: Handle>(value: T) -> *mut T {
    let n = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    let token = n << TOKEN_SHIFT;
    T::registry()
        .shard(token)
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(token, Arc::new(value));
    std::ptr::without_provenance_mut(token)
}

/// The live handle behind `p`: [`LlmrResult::LlmrNullParameter`] for NULL,
/// [`LlmrResult::LlmrInvalidHandle`] for a token that was freed or never issued. The caller
/// holds its own reference for the duration of the call, so a concurrent free cannot pull the
/// object from under it.
pub(crate) fn get_handle<T: Handle>(p: *const T) -> Result<Arc<T>, LlmrResult> {
    if p.is_null() {
        return Err(LlmrResult::LlmrNullParameter);
    }
    let token = p.addr();
    T::registry()
        .shard(token)
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&token)
        .cloned()
        .ok_or(LlmrResult::LlmrInvalidHandle)
}

/// Like [`get_handle`], but NULL means "none" (an optional handle argument).
pub(crate) fn get_optional_handle<T: Handle>(p: *const T) -> Result<Option<Arc<T>>, LlmrResult> {
    if p.is_null() {
        return Ok(None);
    }
    get_handle(p).map(Some)
}

/// Releases the handle behind `p`. NULL, a token already freed and one never issued do
/// nothing. The object is dropped now, or when the last call still using it returns.
pub(crate) fn free_handle<T: Handle>(p: *mut T) {
    if p.is_null() {
        return;
    }
    let token = p.addr();
    let removed = T::registry()
        .shard(token)
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&token);
    drop(removed); // outside the lock: dropping a large handle (token tables) takes a while
}

/// Builds a handle from `len` bytes of JSON at `json`: parses them as `T`, turns that into the
/// handle with `build`, and writes the handle to `*out` — or, on any error, NULL to `*out`, the
/// explanation to `*error_out` (if not NULL) and returns the code.
///
/// # Safety
///
/// `json` must be NULL or valid for reads of `len` bytes; `out` NULL or valid for a write of a
/// pointer; so must `error_out` (which may be NULL).
pub(crate) unsafe fn new_from_json<T: DeserializeOwned, H: Handle>(
    what: &str,
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
    match unsafe { read_json::<T>(json, len) }
        .and_then(build)
        .map_err(|r| r.about(what))
    {
        Ok(handle) => {
            out.write(into_handle(handle));
            LlmrResult::LlmrOk
        }
        Err(r) => error_out.report(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A handle type of the tests' own.
    struct Probe {
        calls: Mutex<u32>,
    }
    registered!(Probe);

    #[test]
    fn a_freed_handle_is_a_typed_error_and_a_double_free_does_nothing() {
        let p = into_handle(Probe {
            calls: Mutex::new(0),
        });
        assert!(!p.is_null());
        assert_eq!(p.addr() % (1 << TOKEN_SHIFT), 0);
        let held = get_handle(p).ok();
        assert!(held.is_some());
        free_handle(p);
        assert_eq!(get_handle(p).err(), Some(LlmrResult::LlmrInvalidHandle));
        // The reference taken before the free still works: the object lives until it drops.
        if let Some(h) = held {
            *h.calls.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        }
        free_handle(p); // nothing happens
        free_handle(std::ptr::null_mut::<Probe>());
        assert_eq!(
            get_handle(std::ptr::null::<Probe>()).err(),
            Some(LlmrResult::LlmrNullParameter)
        );
        assert!(matches!(
            get_optional_handle(std::ptr::null::<Probe>()),
            Ok(None)
        ));
        // A token never issued, and one of another type, are not handles of this type.
        assert_eq!(
            get_handle(std::ptr::without_provenance::<Probe>(12345 << TOKEN_SHIFT)).err(),
            Some(LlmrResult::LlmrInvalidHandle)
        );
    }

    #[test]
    fn tokens_are_never_reused() {
        let a = into_handle(Probe {
            calls: Mutex::new(0),
        });
        free_handle(a);
        let b = into_handle(Probe {
            calls: Mutex::new(0),
        });
        assert_ne!(a.addr(), b.addr());
        assert_eq!(get_handle(a).err(), Some(LlmrResult::LlmrInvalidHandle));
        assert!(get_handle(b).is_ok());
        free_handle(b);
    }

    #[test]
    fn a_free_racing_with_calls_never_pulls_the_object_from_under_them() {
        for _ in 0..20 {
            let p = into_handle(Probe {
                calls: Mutex::new(0),
            });
            let token = p.addr();
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    std::thread::spawn(move || {
                        let p = std::ptr::without_provenance::<Probe>(token);
                        let mut ok = 0u32;
                        loop {
                            match get_handle(p) {
                                Ok(h) => {
                                    // Holds its reference while the free happens.
                                    *h.calls.lock().unwrap_or_else(PoisonError::into_inner) += 1;
                                    ok += 1;
                                }
                                Err(e) => return (ok, e),
                            }
                        }
                    })
                })
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(1));
            free_handle(p);
            for t in threads {
                let (_, e) = t.join().unwrap_or((0, LlmrResult::LlmrPanic));
                assert_eq!(e, LlmrResult::LlmrInvalidHandle);
            }
        }
    }
}
