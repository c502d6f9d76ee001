//! Token counting over the C ABI: an opaque `LlmrTokenCounter` handle, exact for one encoding
//! (o200k_base, cl100k_base: the library is built with the core's `tiktoken` feature) or the
//! table-free upper bound.
//!
//! A counter is immutable once built: any number of threads may count with one handle at
//! once, without a lock. Building an exact counter decodes its tables (tens of milliseconds,
//! tens of megabytes): build it once and keep it.

use std::ffi::c_char;

use llm_resilience::chat::{Message, ToolSchema};
use llm_resilience::tokens::{
    Encoding, MAX_TOKENIZE_BYTES, TokenCounter, TokenError, Tokenizer, UpperBound,
};

use crate::handle::{free_handle, get_handle, into_handle, registered};
use crate::json::{ErrorOut, LLMR_LIMIT_JSON_BYTES, Rejection, read_json};
use crate::panic::ffi_boundary;
use crate::ptr::{OutPtr, try_str};
use crate::result::LlmrResult;

/// At most this many bytes of text are tokenized in one call (a text, or a request's texts
/// together); more is `LLMR_TOO_LARGE_TO_COUNT`. The core's `MAX_TOKENIZE_BYTES`.
pub const LLMR_LIMIT_TOKENIZE_BYTES: usize = 4194304;
const _: () = assert!(LLMR_LIMIT_TOKENIZE_BYTES == MAX_TOKENIZE_BYTES);

/// A byte-pair encoding of OpenAI's models. The values are part of the ABI and are never
/// reused; functions take it as `uint32_t` (out of range: `LLMR_INVALID_ARGUMENT`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmrEncoding {
    /// `o200k_base`: gpt-4o, gpt-4o-mini, gpt-4.1, gpt-5, o1, o3, o4-mini.
    O200kBase = 0,
    /// `cl100k_base`: gpt-4, gpt-4-turbo, gpt-3.5-turbo.
    Cl100kBase = 1,
}

impl From<Encoding> for LlmrEncoding {
    fn from(e: Encoding) -> Self {
        match e {
            Encoding::O200kBase => LlmrEncoding::O200kBase,
            Encoding::Cl100kBase => LlmrEncoding::Cl100kBase,
        }
    }
}

/// A token counter. Opaque: create it with `llmr_token_counter_exact` or
/// `llmr_token_counter_upper_bound`, release it with `llmr_token_counter_free`. Immutable, so
/// safe to share between threads without a lock.
pub struct LlmrTokenCounter {
    inner: Counter,
}

registered!(LlmrTokenCounter);

/// The two counters of the core.
enum Counter {
    Exact(Tokenizer),
    Upper(UpperBound),
}

impl LlmrTokenCounter {
    /// The counter as the core's trait object (what context trimming takes).
    pub(crate) fn counter(&self) -> &dyn TokenCounter {
        match &self.inner {
            Counter::Exact(t) => t,
            Counter::Upper(u) => u,
        }
    }
}

/// The request texts a `count_messages` call reads: messages and tool schemas as JSON.
pub(crate) type Request = (Vec<Message>, Vec<ToolSchema>);

/// Creates an exact counter for `encoding` (an `LlmrEncoding` value), with the OpenAI
/// cookbook's chat overhead for it.
///
/// Returns `LLMR_OK` with a new handle in `*out`, or `LLMR_NULL_PARAMETER` (`out` NULL),
/// `LLMR_INVALID_ARGUMENT` (not an `LlmrEncoding`) or `LLMR_PANIC` (also when the built-in
/// tables cannot be decoded: a corrupt build). On any error `*out` is NULL.
///
/// # Safety
///
/// `out` must be NULL or valid for a write of a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_token_counter_exact(
    encoding: u32,
    out: *mut *mut LlmrTokenCounter,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(std::ptr::null_mut());
        let encoding = match encoding {
            0 => Encoding::O200kBase,
            1 => Encoding::Cl100kBase,
            _ => return LlmrResult::LlmrInvalidArgument,
        };
        match Tokenizer::new(encoding) {
            Ok(t) => {
                out.write(into_handle(LlmrTokenCounter {
                    inner: Counter::Exact(t),
                }));
                LlmrResult::LlmrOk
            }
            Err(_) => LlmrResult::LlmrPanic,
        }
    })
}

/// Creates the upper-bound counter: never fewer tokens than o200k_base or cl100k_base count
/// for the same text (requests include a chat overhead that covers both), with no tables.
/// Use it where exact counts are not needed, or to check a budget cheaply.
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER` or `LLMR_PANIC`; on an error `*out` is NULL.
///
/// # Safety
///
/// `out` must be NULL or valid for a write of a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_token_counter_upper_bound(
    out: *mut *mut LlmrTokenCounter,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(std::ptr::null_mut());
        out.write(into_handle(LlmrTokenCounter {
            inner: Counter::Upper(UpperBound::default()),
        }));
        LlmrResult::LlmrOk
    })
}

/// Releases a counter. NULL does nothing. No other thread may use the handle during or after
/// the call.
///
/// # Safety
///
/// None beyond the type: `counter` may be NULL, a handle from `llmr_token_counter_exact` /
/// `llmr_token_counter_upper_bound`, or one already freed (nothing happens).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_token_counter_free(counter: *mut LlmrTokenCounter) {
    ffi_boundary!({ free_handle(counter) })
}

/// Writes to `*out` the encoding an OpenAI model id uses (`openai/gpt-4o` → o200k_base,
/// `gpt-4` → cl100k_base; every other model → o200k_base, the best starting point for other
/// providers' models).
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER`, `LLMR_INVALID_UTF8`, `LLMR_INPUT_TOO_LARGE`
/// (over `LLMR_LIMIT_STRING_BYTES`) or `LLMR_PANIC`; on an error `*out` is `O200K_BASE`.
///
/// # Safety
///
/// `model` must be NULL or valid for reads of `model_len` bytes; `out` NULL or valid for a
/// write of an `LlmrEncoding`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_encoding_for_model(
    model: *const c_char,
    model_len: usize,
    out: *mut LlmrEncoding,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(LlmrEncoding::O200kBase);
        // SAFETY: `model` is NULL or readable for `model_len` bytes (contract).
        let model = match unsafe { try_str(model, model_len, crate::LLMR_LIMIT_STRING_BYTES) } {
            Ok(m) => m,
            Err(e) => return e,
        };
        out.write(Encoding::for_model(model).into());
        LlmrResult::LlmrOk
    })
}

/// The result code of a counting failure.
pub(crate) fn token_error_code(_e: &TokenError) -> LlmrResult {
    LlmrResult::LlmrTooLargeToCount
}

/// Counts the tokens of `len` bytes of UTF-8 text at `text` (no NUL needed; NULL with length
/// 0 is the empty text) into `*out`.
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER`, `LLMR_INVALID_UTF8`, `LLMR_TOO_LARGE_TO_COUNT`
/// (over `LLMR_LIMIT_TOKENIZE_BYTES`; found from the length alone, before any byte is read),
/// `LLMR_INPUT_TOO_LARGE` (over `LLMR_LIMIT_JSON_BYTES`: a bug such as a negative length) or
/// `LLMR_PANIC`; on an error `*out` is 0.
///
/// # Safety
///
/// `counter` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `text` NULL or valid for reads of `len` bytes;
/// `out` NULL or valid for a write of a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_token_counter_count_text(
    counter: *const LlmrTokenCounter,
    text: *const c_char,
    len: usize,
    out: *mut u64,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(0);
        let counter = match get_handle(counter) {
            Ok(c) => c,
            Err(e) => return e,
        };
        if len > 0 && text.is_null() {
            return LlmrResult::LlmrNullParameter;
        }
        if len > LLMR_LIMIT_JSON_BYTES {
            return LlmrResult::LlmrInputTooLarge;
        }
        if len > LLMR_LIMIT_TOKENIZE_BYTES {
            return LlmrResult::LlmrTooLargeToCount;
        }
        // SAFETY: `text` is NULL (with length 0) or readable for `len` bytes (contract).
        let text = match unsafe { try_str(text, len, LLMR_LIMIT_TOKENIZE_BYTES) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        match counter.counter().count_text(text) {
            Ok(n) => {
                out.write(n);
                LlmrResult::LlmrOk
            }
            Err(e) => token_error_code(&e),
        }
    })
}

/// Reads a request: messages (a JSON array of chat messages) and tools (a JSON array of tool
/// schemas; NULL with length 0 for none).
///
/// # Safety
///
/// Both pointers NULL or valid for reads of their lengths.
unsafe fn read_request(
    messages: *const c_char,
    messages_len: usize,
    tools: *const c_char,
    tools_len: usize,
) -> Result<Request, Rejection> {
    // SAFETY: forwarded to the caller.
    let messages = unsafe { read_json::<Vec<Message>>(messages, messages_len) }
        .map_err(|r| r.about("messages"))?;
    let tools = if tools.is_null() && tools_len == 0 {
        Vec::new()
    } else {
        // SAFETY: forwarded to the caller.
        unsafe { read_json::<Vec<ToolSchema>>(tools, tools_len) }.map_err(|r| r.about("tools"))?
    };
    Ok((messages, tools))
}

/// Counts a whole chat request into `*out`: every message with its chat overhead, the tool
/// schemas and the reply priming, as context trimming counts it.
///
/// `messages` is a JSON array of messages (`{"role": "user", "content": "…", "name": …,
/// "tool_calls": [{"id", "name", "arguments"}], "tool_call_id": …}`; roles `system`, `user`,
/// `assistant`, `tool`). `tools` is a JSON array of tool schemas (`{"name", "description",
/// "parameters"}`, parameters as JSON text), or NULL with length 0 for none.
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER`, `LLMR_INPUT_TOO_LARGE`, `LLMR_INVALID_CONFIG`
/// (malformed JSON: then `*error_out`, if `error_out` is not NULL, says why; release it with
/// `llmr_string_free`), `LLMR_TOO_LARGE_TO_COUNT` (the texts add up to more than
/// `LLMR_LIMIT_TOKENIZE_BYTES`) or `LLMR_PANIC`; on an error `*out` is 0.
///
/// # Safety
///
/// `counter` may be NULL, a live handle or a freed one (`LLMR_INVALID_HANDLE`); `messages` and `tools` NULL or valid for reads of
/// their lengths; `out` NULL or valid for a write of a `uint64_t`; `error_out` NULL or valid
/// for a write of a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_token_counter_count_messages(
    counter: *const LlmrTokenCounter,
    messages: *const c_char,
    messages_len: usize,
    tools: *const c_char,
    tools_len: usize,
    out: *mut u64,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `error_out` is NULL or writable (contract).
        let mut error_out = unsafe { ErrorOut::new(error_out) };
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(0);
        let counter = match get_handle(counter) {
            Ok(c) => c,
            Err(e) => return e,
        };
        // SAFETY: both are NULL or readable for their lengths (contract).
        let (messages, tools) =
            match unsafe { read_request(messages, messages_len, tools, tools_len) } {
                Ok(r) => r,
                Err(r) => return error_out.report(r),
            };
        match counter.counter().count_messages(&messages, &tools) {
            Ok(n) => {
                out.write(n);
                LlmrResult::LlmrOk
            }
            Err(e) => token_error_code(&e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr;

    fn exact() -> *mut LlmrTokenCounter {
        let mut c = ptr::null_mut();
        // SAFETY: `c` is writable.
        let r = unsafe { llmr_token_counter_exact(0, &mut c) };
        assert_eq!(r, LlmrResult::LlmrOk);
        c
    }

    fn count(c: *const LlmrTokenCounter, text: &[u8]) -> (LlmrResult, u64) {
        let mut n = 99;
        // SAFETY: `text` is live for its length; `n` is writable.
        let r =
            unsafe { llmr_token_counter_count_text(c, text.as_ptr().cast(), text.len(), &mut n) };
        (r, n)
    }

    #[test]
    fn counts_exactly_and_as_a_bound() {
        let c = exact();
        let mut u = ptr::null_mut();
        // SAFETY: `u` is writable.
        unsafe { llmr_token_counter_upper_bound(&mut u) };
        assert_eq!(count(c, b"hello world"), (LlmrResult::LlmrOk, 2));
        let (r, bound) = count(u, b"hello world");
        assert_eq!(r, LlmrResult::LlmrOk);
        assert!(bound >= 2);
        // Empty text, NULL pointer with length 0.
        let mut n = 7;
        // SAFETY: NULL with length 0 is allowed.
        let r = unsafe { llmr_token_counter_count_text(c, ptr::null(), 0, &mut n) };
        assert_eq!((r, n), (LlmrResult::LlmrOk, 0));
        // SAFETY: handles are live and freed once.
        unsafe {
            llmr_token_counter_free(c);
            llmr_token_counter_free(u);
            llmr_token_counter_free(ptr::null_mut());
        }
    }

    #[test]
    fn rejects_nulls_bad_utf8_and_too_large() {
        let c = exact();
        assert_eq!(count(ptr::null(), b"x"), (LlmrResult::LlmrNullParameter, 0));
        assert_eq!(count(c, b"a\xff"), (LlmrResult::LlmrInvalidUtf8, 0));
        let big = vec![b'a'; LLMR_LIMIT_TOKENIZE_BYTES + 1];
        assert_eq!(count(c, &big), (LlmrResult::LlmrTooLargeToCount, 0));
        let mut n = 0;
        // SAFETY: NULL with a length, and NULL out, are rejected before any read.
        unsafe {
            assert_eq!(
                llmr_token_counter_count_text(c, ptr::null(), 3, &mut n),
                LlmrResult::LlmrNullParameter
            );
            assert_eq!(
                llmr_token_counter_count_text(c, c"x".as_ptr(), 1, ptr::null_mut()),
                LlmrResult::LlmrNullParameter
            );
            assert_eq!(
                llmr_token_counter_count_text(c, c"x".as_ptr(), usize::MAX, &mut n),
                LlmrResult::LlmrInputTooLarge
            );
            assert_eq!(
                llmr_token_counter_exact(7, &mut ptr::null_mut()),
                LlmrResult::LlmrInvalidArgument
            );
            assert_eq!(
                llmr_token_counter_exact(0, ptr::null_mut()),
                LlmrResult::LlmrNullParameter
            );
            llmr_token_counter_free(c);
        }
    }

    #[test]
    fn counts_requests_from_json() {
        let c = exact();
        let messages =
            r#"[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]"#;
        let tools = r#"[{"name":"lookup_order","description":"Find an order.","parameters":"{}"}]"#;
        let mut n = 0;
        let mut err = ptr::null_mut();
        // SAFETY: the strings are live for their lengths; outputs are writable.
        unsafe {
            assert_eq!(
                llmr_token_counter_count_messages(
                    c,
                    messages.as_ptr().cast(),
                    messages.len(),
                    ptr::null(),
                    0,
                    &mut n,
                    &mut err
                ),
                LlmrResult::LlmrOk
            );
            let plain = n;
            assert!(plain > 0 && err.is_null());
            assert_eq!(
                llmr_token_counter_count_messages(
                    c,
                    messages.as_ptr().cast(),
                    messages.len(),
                    tools.as_ptr().cast(),
                    tools.len(),
                    &mut n,
                    &mut err
                ),
                LlmrResult::LlmrOk
            );
            assert!(n > plain);
            let bad = r#"[{"role":"robot","content":"x"}]"#;
            assert_eq!(
                llmr_token_counter_count_messages(
                    c,
                    bad.as_ptr().cast(),
                    bad.len(),
                    ptr::null(),
                    0,
                    &mut n,
                    &mut err
                ),
                LlmrResult::LlmrInvalidConfig
            );
            assert_eq!(n, 0);
            let message = std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned();
            assert!(message.contains("robot"), "{message}");
            crate::llmr_string_free(err);
            let huge = format!(
                r#"[{{"role":"user","content":"{}"}}]"#,
                "a".repeat(LLMR_LIMIT_TOKENIZE_BYTES + 1)
            );
            assert_eq!(
                llmr_token_counter_count_messages(
                    c,
                    huge.as_ptr().cast(),
                    huge.len(),
                    ptr::null(),
                    0,
                    &mut n,
                    ptr::null_mut()
                ),
                LlmrResult::LlmrTooLargeToCount
            );
            assert_eq!(
                llmr_token_counter_count_messages(
                    c,
                    ptr::null(),
                    0,
                    ptr::null(),
                    0,
                    &mut n,
                    ptr::null_mut()
                ),
                LlmrResult::LlmrNullParameter
            );
            let mut e = LlmrEncoding::Cl100kBase;
            let model = "openai/gpt-4";
            assert_eq!(
                llmr_encoding_for_model(model.as_ptr().cast(), model.len(), &mut e),
                LlmrResult::LlmrOk
            );
            assert_eq!(e, LlmrEncoding::Cl100kBase);
            llmr_token_counter_free(c);
        }
    }
}
