//! Error classification over the C ABI: `llmr_classify` and the structs it reads and fills.

use std::ffi::{CStr, c_char};
use std::mem::offset_of;
use std::ptr;

use llm_resilience::{Classification, ClassifyInput, ErrorKind};

use crate::panic::ffi_boundary;
use crate::ptr::{OutPtr, free_c_string, to_c_string, try_opt_str, try_ref, try_slice, try_str};
use crate::result::LlmrResult;

/// At most this many headers may be passed (`headers_len`); more is `LLMR_INPUT_TOO_LARGE`.
/// The core reads only the first 128 of them.
pub const LLMR_LIMIT_HEADERS: usize = 4096;
/// At most this many bytes per header name, header value and transport message; more is
/// `LLMR_INPUT_TOO_LARGE`. The core ignores headers over 8 KiB and reads 16 KiB of a transport
/// message.
pub const LLMR_LIMIT_STRING_BYTES: usize = 1048576;
/// At most this many body bytes (`body_len`); more is `LLMR_INPUT_TOO_LARGE`. The core reads
/// only the first 256 KiB.
pub const LLMR_LIMIT_BODY_BYTES: usize = 1073741824;

/// What kind of failure a call met: a closed set with one catch-all (`LLMR_ERROR_KIND_UNKNOWN`).
///
/// The values are part of the ABI and never change meaning; a new kind would get the next
/// free value. `llmr_error_kind_name` gives the kebab-case name (`"rate-limited"`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmrErrorKind {
    /// Credentials invalid, revoked or missing. Not retryable.
    Auth = 0,
    /// The account or key has no money or quota left. Not retryable until topped up or reset.
    QuotaExhausted = 1,
    /// The input or output was flagged by a content filter. Not retryable.
    Moderation = 2,
    /// Temporary throttling; waiting helps. Retryable after the hinted delay.
    RateLimited = 3,
    /// The call timed out (client, gateway or upstream). Retryable.
    Timeout = 4,
    /// The request is larger than the endpoint accepts. Retryable only after shrinking.
    ContextOverflow = 5,
    /// Malformed or unsupported request. Not retryable.
    InvalidRequest = 6,
    /// The model or endpoint does not exist. Not retryable (use a fallback model).
    NotFound = 7,
    /// The provider is saturated. Retryable with backoff.
    Overloaded = 8,
    /// The upstream is down or unreachable. Retryable; trips breakers.
    Unavailable = 9,
    /// Any other upstream 5xx. Retryable, a limited number of times.
    ServerError = 10,
    /// Connection refused or reset, DNS, TLS, a cut stream. Retryable (TLS failures are not).
    Network = 11,
    /// None of the above; callers must not parse the message. Not retryable.
    Unknown = 12,
}

impl From<ErrorKind> for LlmrErrorKind {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Auth => LlmrErrorKind::Auth,
            ErrorKind::QuotaExhausted => LlmrErrorKind::QuotaExhausted,
            ErrorKind::Moderation => LlmrErrorKind::Moderation,
            ErrorKind::RateLimited => LlmrErrorKind::RateLimited,
            ErrorKind::Timeout => LlmrErrorKind::Timeout,
            ErrorKind::ContextOverflow => LlmrErrorKind::ContextOverflow,
            ErrorKind::InvalidRequest => LlmrErrorKind::InvalidRequest,
            ErrorKind::NotFound => LlmrErrorKind::NotFound,
            ErrorKind::Overloaded => LlmrErrorKind::Overloaded,
            ErrorKind::Unavailable => LlmrErrorKind::Unavailable,
            ErrorKind::ServerError => LlmrErrorKind::ServerError,
            ErrorKind::Network => LlmrErrorKind::Network,
            ErrorKind::Unknown => LlmrErrorKind::Unknown,
        }
    }
}

/// The NUL-terminated kebab-case names, indexed by `LlmrErrorKind` value.
const KIND_NAMES: [&CStr; 13] = [
    c"auth",
    c"quota-exhausted",
    c"moderation",
    c"rate-limited",
    c"timeout",
    c"context-overflow",
    c"invalid-request",
    c"not-found",
    c"overloaded",
    c"unavailable",
    c"server-error",
    c"network",
    c"unknown",
];

/// One response header: UTF-8 name and value, each a pointer and a length (no NUL needed).
///
/// A pointer may be NULL only when its length is 0. Names are matched case-insensitively.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LlmrHeader {
    /// The header name (UTF-8).
    pub name: *const c_char,
    /// The length of `name` in bytes, at most `LLMR_LIMIT_STRING_BYTES`.
    pub name_len: usize,
    /// The header value (UTF-8).
    pub value: *const c_char,
    /// The length of `value` in bytes, at most `LLMR_LIMIT_STRING_BYTES`.
    pub value_len: usize,
}

/// One failed call, as the caller saw it: an HTTP response (status, headers, body — any may be
/// missing or empty), or a transport failure (`transport` set).
///
/// Every pointer may be NULL when its length is 0; the memory is only read during the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LlmrClassifyInput {
    /// Whether `status` holds the HTTP status of a response.
    pub has_status: bool,
    /// The HTTP status; ignored unless `has_status`.
    pub status: u16,
    /// The response headers, in the order received (`headers_len` entries).
    pub headers: *const LlmrHeader,
    /// The number of headers, at most `LLMR_LIMIT_HEADERS`.
    pub headers_len: usize,
    /// The response body: any bytes (JSON, SSE, HTML, text; need not be UTF-8).
    pub body: *const u8,
    /// The body length in bytes, at most `LLMR_LIMIT_BODY_BYTES`.
    pub body_len: usize,
    /// The transport error's message (UTF-8) when the call failed before a response; NULL
    /// (with `transport_len` 0) when there is none. A non-NULL pointer with length 0 is an
    /// empty message.
    pub transport: *const c_char,
    /// The length of `transport` in bytes, at most `LLMR_LIMIT_STRING_BYTES`.
    pub transport_len: usize,
    /// Whether `wall_clock_ms` holds the current wall-clock time.
    pub has_wall_clock_ms: bool,
    /// Unix time in milliseconds, used only to turn an HTTP-date `Retry-After` or an epoch
    /// reset header into a delay; ignored unless `has_wall_clock_ms`.
    pub wall_clock_ms: u64,
}

/// What a failure was, and what it says about retrying. Filled by `llmr_classify`; the strings
/// it holds are owned by the caller and released by `llmr_classification_free`.
///
/// Each `has_*` flag says whether the value after it is present; an absent value is 0.
#[repr(C)]
#[derive(Debug)]
pub struct LlmrClassification {
    /// The kind of failure.
    pub kind: LlmrErrorKind,
    /// Whether retrying the same request (perhaps after `retry_after_ms`) can succeed.
    pub retryable: bool,
    /// Whether the server said how long to wait.
    pub has_retry_after_ms: bool,
    /// How long the server asked to wait, in milliseconds.
    pub retry_after_ms: u64,
    /// Whether the error states the context limit.
    pub has_limit_tokens: bool,
    /// The context limit or per-request cap the error states, in tokens.
    pub limit_tokens: u64,
    /// Whether the error states the request size.
    pub has_requested_tokens: bool,
    /// The size of the request the error states, in tokens.
    pub requested_tokens: u64,
    /// The provider that produced the error (`"openai"`), NUL-terminated; NULL when unknown.
    pub provider: *mut c_char,
    /// The provider's own error code (`"rate_limit_exceeded"`), NUL-terminated; NULL if none.
    pub code: *mut c_char,
    /// OpenRouter's `error.metadata.error_type`, NUL-terminated; NULL if none.
    pub error_type: *mut c_char,
    /// A human-readable message with secrets redacted, NUL-terminated (an interior NUL is
    /// shown as U+FFFD); never NULL after `LLMR_OK`, possibly empty.
    pub message: *mut c_char,
}

impl LlmrClassification {
    /// The all-zero value: what `out` holds after an error. Holds no strings.
    const ZEROED: LlmrClassification = LlmrClassification {
        kind: LlmrErrorKind::Auth,
        retryable: false,
        has_retry_after_ms: false,
        retry_after_ms: 0,
        has_limit_tokens: false,
        limit_tokens: 0,
        has_requested_tokens: false,
        requested_tokens: 0,
        provider: ptr::null_mut(),
        code: ptr::null_mut(),
        error_type: ptr::null_mut(),
        message: ptr::null_mut(),
    };

    fn from_core(c: &Classification) -> Self {
        let opt = |s: &Option<String>| s.as_deref().map_or(ptr::null_mut(), to_c_string);
        LlmrClassification {
            kind: c.kind.into(),
            retryable: c.retryable,
            has_retry_after_ms: c.retry_after_ms.is_some(),
            retry_after_ms: c.retry_after_ms.unwrap_or(0),
            has_limit_tokens: c.limit_tokens.is_some(),
            limit_tokens: c.limit_tokens.unwrap_or(0),
            has_requested_tokens: c.requested_tokens.is_some(),
            requested_tokens: c.requested_tokens.unwrap_or(0),
            provider: opt(&c.provider),
            code: opt(&c.code),
            error_type: opt(&c.error_type),
            message: to_c_string(&c.message),
        }
    }
}

/// Reads the C input and runs the core on it.
///
/// # Safety
///
/// Every non-NULL pointer in `input` (and in its headers) must be valid for reads of its
/// length for the duration of the call.
unsafe fn classify_input(input: &LlmrClassifyInput) -> Result<Classification, LlmrResult> {
    // SAFETY: the caller's contract covers `headers`/`headers_len`.
    let raw_headers = unsafe { try_slice(input.headers, input.headers_len, LLMR_LIMIT_HEADERS) }?;
    let mut headers = Vec::with_capacity(raw_headers.len());
    for h in raw_headers {
        // SAFETY: the caller's contract covers every header's name and value.
        let name = unsafe { try_str(h.name, h.name_len, LLMR_LIMIT_STRING_BYTES) }?;
        // SAFETY: as above.
        let value = unsafe { try_str(h.value, h.value_len, LLMR_LIMIT_STRING_BYTES) }?;
        headers.push((name, value));
    }
    // SAFETY: the caller's contract covers `body`/`body_len`.
    let body = unsafe { try_slice(input.body, input.body_len, LLMR_LIMIT_BODY_BYTES) }?;
    // SAFETY: the caller's contract covers `transport`/`transport_len`.
    let transport = unsafe {
        try_opt_str(
            input.transport,
            input.transport_len,
            LLMR_LIMIT_STRING_BYTES,
        )
    }?;
    Ok(llm_resilience::classify(&ClassifyInput {
        status: input.has_status.then_some(input.status),
        headers: &headers,
        body,
        transport,
        wall_clock_ms: input.has_wall_clock_ms.then_some(input.wall_clock_ms),
    }))
}

/// Classifies one failed call: reads `*input`, fills `*out`.
///
/// Returns `LLMR_OK`, or `LLMR_NULL_PARAMETER` (`input` or `out` NULL, or a NULL pointer with
/// a non-zero length), `LLMR_INVALID_UTF8` (a header name or value, or the transport message,
/// is not UTF-8; the body may be any bytes), `LLMR_INPUT_TOO_LARGE` (beyond the `LLMR_LIMIT_*`
/// limits) or `LLMR_PANIC`. On any result but `LLMR_OK`, `*out` (if `out` is not NULL) is
/// zeroed and holds nothing to free.
///
/// `*out` is overwritten without being read: free a previous result first. After `LLMR_OK` it
/// owns strings; release them with `llmr_classification_free`.
///
/// # Safety
///
/// `input`, if not NULL, must point to a valid `LlmrClassifyInput` whose non-NULL pointers are
/// valid for reads of their lengths during the call. `out`, if not NULL, must be valid for a
/// write of one `LlmrClassification` (it may be uninitialised).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_classify(
    input: *const LlmrClassifyInput,
    out: *mut LlmrClassification,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `out` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(out) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(LlmrClassification::ZEROED);
        // SAFETY: `input` is NULL or points to a valid input (contract).
        let input = match unsafe { try_ref(input) } {
            Ok(input) => input,
            Err(e) => return e,
        };
        // SAFETY: the pointers inside `input` are valid for their lengths (contract).
        match unsafe { classify_input(input) } {
            Ok(c) => {
                out.write(LlmrClassification::from_core(&c));
                LlmrResult::LlmrOk
            }
            Err(e) => e,
        }
    })
}

/// Releases the strings a classification owns and sets those pointers to NULL. Calling it
/// again, on a zeroed struct, or with NULL does nothing. The struct itself (caller memory) is
/// not freed; its other fields are left as they are.
///
/// # Safety
///
/// `classification`, if not NULL, must point to an `LlmrClassification` filled by
/// `llmr_classify` (or zero-filled) whose strings were not freed by other means.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_classification_free(classification: *mut LlmrClassification) {
    ffi_boundary!({
        if classification.is_null() {
            return;
        }
        // Only the string fields are touched, through raw pointers: a struct the caller
        // zero-filled or copied around is never read as a whole.
        for offset in [
            offset_of!(LlmrClassification, provider),
            offset_of!(LlmrClassification, code),
            offset_of!(LlmrClassification, error_type),
            offset_of!(LlmrClassification, message),
        ] {
            let field = classification
                .wrapping_byte_add(offset)
                .cast::<*mut c_char>();
            // SAFETY: `classification` points to a valid struct (contract), so `field` is its
            // aligned string field, which holds NULL or a string this library allocated.
            unsafe { free_c_string(field) };
        }
    })
}

/// Returns the kebab-case name of an error kind (`"rate-limited"`) as a static NUL-terminated
/// string that must not be freed, or `"invalid"` for a value that is not an `LlmrErrorKind`.
///
/// `kind` is any `LlmrErrorKind` value (taken as `uint32_t`, the C type of `LlmrErrorKind`, so
/// an out-of-range value is answered rather than undefined behaviour).
#[unsafe(no_mangle)]
pub extern "C" fn llmr_error_kind_name(kind: u32) -> *const c_char {
    ffi_boundary!({
        let name = usize::try_from(kind)
            .ok()
            .and_then(|i| KIND_NAMES.get(i))
            .copied()
            .unwrap_or(c"invalid");
        name.as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use std::mem::MaybeUninit;

    use super::*;

    fn header(name: &[u8], value: &[u8]) -> LlmrHeader {
        LlmrHeader {
            name: name.as_ptr().cast(),
            name_len: name.len(),
            value: value.as_ptr().cast(),
            value_len: value.len(),
        }
    }

    fn input(headers: &[LlmrHeader], body: &[u8]) -> LlmrClassifyInput {
        LlmrClassifyInput {
            has_status: true,
            status: 429,
            headers: headers.as_ptr(),
            headers_len: headers.len(),
            body: body.as_ptr(),
            body_len: body.len(),
            transport: ptr::null(),
            transport_len: 0,
            has_wall_clock_ms: false,
            wall_clock_ms: 0,
        }
    }

    /// Runs `llmr_classify` into a struct full of garbage, as C stack memory would be.
    fn run(input: *const LlmrClassifyInput) -> (LlmrResult, LlmrClassification) {
        let mut out = MaybeUninit::<LlmrClassification>::uninit();
        // SAFETY: `out` is writable; garbage bytes stand in for uninitialised C memory.
        unsafe {
            ptr::write_bytes(
                out.as_mut_ptr().cast::<u8>(),
                0xA5,
                size_of::<LlmrClassification>(),
            )
        };
        // SAFETY: `input` is NULL or points to a live input whose pointers are valid.
        let result = unsafe { llmr_classify(input, out.as_mut_ptr()) };
        // SAFETY: `llmr_classify` wrote a whole struct (the result or the zeroed value).
        (result, unsafe { out.assume_init() })
    }

    fn c_str(p: *const c_char) -> Option<String> {
        // SAFETY: the pointer is NULL or a live NUL-terminated string from this crate.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    fn assert_zeroed(c: &LlmrClassification) {
        assert_eq!(c.kind, LlmrErrorKind::Auth);
        assert!(!c.retryable && !c.has_retry_after_ms && !c.has_limit_tokens);
        assert!(!c.has_requested_tokens);
        assert_eq!(
            (c.retry_after_ms, c.limit_tokens, c.requested_tokens),
            (0, 0, 0)
        );
        assert!(c.provider.is_null() && c.code.is_null());
        assert!(c.error_type.is_null() && c.message.is_null());
    }

    #[test]
    fn abi_limits_are_above_the_core_caps() {
        // Input the core would read must never be rejected by the ABI.
        assert!(LLMR_LIMIT_HEADERS > llm_resilience::MAX_HEADERS);
        assert!(LLMR_LIMIT_STRING_BYTES > llm_resilience::MAX_HEADER_BYTES);
        assert!(LLMR_LIMIT_STRING_BYTES > llm_resilience::MAX_TRANSPORT_BYTES);
        assert!(LLMR_LIMIT_BODY_BYTES > llm_resilience::MAX_BODY_BYTES);
    }

    #[test]
    fn kinds_follow_the_core_order_and_names() {
        for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
            let ffi = LlmrErrorKind::from(kind);
            assert_eq!(ffi as u32 as usize, i);
            assert_eq!(
                c_str(llmr_error_kind_name(ffi as u32)).as_deref(),
                Some(kind.as_str())
            );
        }
        assert_eq!(c_str(llmr_error_kind_name(13)).as_deref(), Some("invalid"));
        assert_eq!(
            c_str(llmr_error_kind_name(u32::MAX)).as_deref(),
            Some("invalid")
        );
    }

    #[test]
    fn round_trip_matches_the_core() {
        let headers = [
            header(b"Retry-After", b"7"),
            header(b"x-request-id", b"abc"),
        ];
        let body = br#"{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}"#;
        let (result, mut out) = run(&input(&headers, body));
        assert_eq!(result, LlmrResult::LlmrOk);
        let expected = llm_resilience::classify(&ClassifyInput {
            status: Some(429),
            headers: &[("Retry-After", "7"), ("x-request-id", "abc")],
            body,
            transport: None,
            wall_clock_ms: None,
        });
        assert_eq!(out.kind, LlmrErrorKind::from(expected.kind));
        assert_eq!(out.retryable, expected.retryable);
        assert_eq!(
            out.has_retry_after_ms.then_some(out.retry_after_ms),
            expected.retry_after_ms
        );
        assert_eq!(
            out.has_limit_tokens.then_some(out.limit_tokens),
            expected.limit_tokens
        );
        assert_eq!(
            out.has_requested_tokens.then_some(out.requested_tokens),
            expected.requested_tokens
        );
        assert_eq!(c_str(out.provider), expected.provider);
        assert_eq!(c_str(out.code), expected.code);
        assert_eq!(c_str(out.error_type), expected.error_type);
        assert_eq!(c_str(out.message), Some(expected.message));
        // SAFETY: `out` was filled by `llmr_classify`.
        unsafe { llmr_classification_free(&mut out) };
        assert!(out.message.is_null() && out.provider.is_null() && out.code.is_null());
        // SAFETY: idempotent: the pointers are NULL now.
        unsafe { llmr_classification_free(&mut out) };
        // SAFETY: NULL is accepted.
        unsafe { llmr_classification_free(ptr::null_mut()) };
    }

    #[test]
    fn transport_and_binary_body_are_accepted() {
        let body = [0xffu8, 0xfe, 0x00, b'x'];
        let mut inp = input(&[], &body);
        inp.has_status = false;
        inp.transport = c"dial tcp 127.0.0.1:1: connect: connection refused".as_ptr();
        inp.transport_len = c"dial tcp 127.0.0.1:1: connect: connection refused".count_bytes();
        let (result, mut out) = run(&inp);
        assert_eq!(result, LlmrResult::LlmrOk);
        let expected = llm_resilience::classify(&ClassifyInput {
            status: None,
            headers: &[],
            body: &body,
            transport: Some("dial tcp 127.0.0.1:1: connect: connection refused"),
            wall_clock_ms: None,
        });
        assert_eq!(out.kind, LlmrErrorKind::from(expected.kind));
        assert_eq!(c_str(out.message), Some(expected.message));
        // SAFETY: filled by `llmr_classify`.
        unsafe { llmr_classification_free(&mut out) };
    }

    #[test]
    fn null_pointers_are_rejected() {
        assert_eq!(
            // SAFETY: NULL for both is allowed.
            unsafe { llmr_classify(ptr::null(), ptr::null_mut()) },
            LlmrResult::LlmrNullParameter
        );
        let (result, out) = run(ptr::null());
        assert_eq!(result, LlmrResult::LlmrNullParameter);
        assert_zeroed(&out);

        let inp = input(&[], b"");
        // SAFETY: `inp` is valid; NULL out is allowed.
        let result = unsafe { llmr_classify(&inp, ptr::null_mut()) };
        assert_eq!(result, LlmrResult::LlmrNullParameter);

        let mut with_null_body = input(&[], b"");
        with_null_body.body_len = 3;
        with_null_body.body = ptr::null();
        let (result, out) = run(&with_null_body);
        assert_eq!(result, LlmrResult::LlmrNullParameter);
        assert_zeroed(&out);

        let headers = [LlmrHeader {
            name: ptr::null(),
            name_len: 4,
            value: ptr::null(),
            value_len: 0,
        }];
        let (result, out) = run(&input(&headers, b""));
        assert_eq!(result, LlmrResult::LlmrNullParameter);
        assert_zeroed(&out);

        let mut with_null_transport = input(&[], b"");
        with_null_transport.transport_len = 1;
        let (result, _) = run(&with_null_transport);
        assert_eq!(result, LlmrResult::LlmrNullParameter);
    }

    #[test]
    fn invalid_utf8_is_rejected_outside_the_body() {
        let bad_name = [header(b"x-\xff", b"1")];
        let (result, out) = run(&input(&bad_name, b""));
        assert_eq!(result, LlmrResult::LlmrInvalidUtf8);
        assert_zeroed(&out);

        let bad_value = [header(b"retry-after", b"\xc3\x28")];
        let (result, out) = run(&input(&bad_value, b""));
        assert_eq!(result, LlmrResult::LlmrInvalidUtf8);
        assert_zeroed(&out);

        let transport = b"reset \xff";
        let mut inp = input(&[], b"");
        inp.transport = transport.as_ptr().cast();
        inp.transport_len = transport.len();
        let (result, out) = run(&inp);
        assert_eq!(result, LlmrResult::LlmrInvalidUtf8);
        assert_zeroed(&out);
    }

    #[test]
    fn absurd_sizes_are_rejected() {
        let one = [header(b"a", b"b")];
        let mut too_many = input(&one, b"");
        too_many.headers_len = LLMR_LIMIT_HEADERS + 1;
        let (result, out) = run(&too_many);
        assert_eq!(result, LlmrResult::LlmrInputTooLarge);
        assert_zeroed(&out);

        let mut huge_body = input(&[], b"x");
        huge_body.body_len = usize::MAX;
        let (result, out) = run(&huge_body);
        assert_eq!(result, LlmrResult::LlmrInputTooLarge);
        assert_zeroed(&out);

        let long = vec![b'a'; LLMR_LIMIT_STRING_BYTES + 1];
        let long_value = [header(b"x-long", &long)];
        let (result, _) = run(&input(&long_value, b""));
        assert_eq!(result, LlmrResult::LlmrInputTooLarge);

        // At the limits themselves the call succeeds (the core reads only its own caps).
        let at_limit = vec![b'a'; LLMR_LIMIT_STRING_BYTES];
        let mut many: Vec<LlmrHeader> = (1..LLMR_LIMIT_HEADERS)
            .map(|_| header(b"x-filler", b"1"))
            .collect();
        many.push(header(b"x-long", &at_limit));
        let (result, mut out) = run(&input(&many, b""));
        assert_eq!(result, LlmrResult::LlmrOk);
        // SAFETY: filled by `llmr_classify`.
        unsafe { llmr_classification_free(&mut out) };
    }
}
