//! Context trimming over the C ABI: JSON in (the budget, the conversation), JSON out (the
//! messages to send and the report), counting with an `LlmrTokenCounter`. The rules are the
//! core's (`llm_resilience::context`); nothing is decided here.
//!
//! A trimming failure the caller must act on (`LLMR_DOES_NOT_FIT`, `LLMR_CONTEXT_REJECTED`,
//! `LLMR_TOO_LARGE_TO_COUNT`) comes with the core's `ContextError` as JSON in `*error_out`
//! (`{"error": "does-not-fit", "required_tokens": …, "limit_tokens": …}`), so a binding can
//! rebuild the typed error. A malformed budget or input is `LLMR_INVALID_CONFIG` with a plain
//! text explanation, as for every other config.

use std::ffi::c_char;

use llm_resilience::chat::{Message, ToolSchema};
use llm_resilience::classify::Classification;
use llm_resilience::context::{
    ContextBudget, ContextConfig, ContextError, TrimInput, next_budget, trim,
};
use llm_resilience::retry::{RetryConfig, RetryPolicy};
use serde::{Deserialize, Serialize};

use crate::handle::get_handle;
use crate::json::{ErrorOut, Rejection, read_json, write_json};
use crate::panic::ffi_boundary;
use crate::ptr::OutPtr;
use crate::result::LlmrResult;
use crate::tokens::LlmrTokenCounter;

/// The input of `llmr_context_trim`, owned.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    system: String,
    #[serde(default)]
    documents: Vec<String>,
    #[serde(default)]
    history: Vec<Message>,
    latest: Message,
    #[serde(default)]
    tools: Vec<ToolSchema>,
}

/// The output of `llmr_context_next_budget`.
#[derive(Serialize)]
struct NextBudget<'a> {
    budget: &'a ContextConfig,
    limit_tokens: u64,
}

/// The result code of a core `ContextError`, with the error as JSON for `error_out`.
fn context_rejection(e: &ContextError) -> Rejection {
    let code = match e {
        ContextError::DoesNotFit { .. } => LlmrResult::LlmrDoesNotFit,
        ContextError::Tokens { .. } => LlmrResult::LlmrTooLargeToCount,
        _ => LlmrResult::LlmrContextRejected,
    };
    Rejection {
        code,
        message: serde_json::to_string(e).ok(),
    }
}

/// Writes `text` (already a caller-owned string) to `out` and returns `LLMR_OK`.
fn deliver(out: &mut OutPtr<'_, *mut c_char>, text: Result<*mut c_char, LlmrResult>) -> LlmrResult {
    match text {
        Ok(s) => {
            out.write(s);
            LlmrResult::LlmrOk
        }
        Err(e) => e,
    }
}

/// Trims a conversation into a budget, counting with `counter`, and writes the result as JSON
/// to `*result_json` (release it with `llmr_string_free`).
///
/// `budget` is a `ContextConfig` JSON (`{}` for every default: a 128 000-token window, 1 024
/// reserved for the reply, a 256-token safety margin, documents cut to no less than 500
/// characters; also `max_history_messages`, `max_document_chars`, `max_message_chars`,
/// `min_document_chars`). `input` is `{"system": "…", "documents": ["…", …] (best first),
/// "history": [message, …] (oldest first), "latest": message (role user), "tools": [tool
/// schema, …]}` with messages and tool schemas as for `llmr_token_counter_count_messages`.
///
/// The result is `{"messages": [system, document…, history…, latest], "report":
/// {"tokens_before", "tokens_after", "limit_tokens", "documents": [fate…], "history":
/// [fate…]}}`, a fate being `{"fate": "kept"}`, `{"fate": "truncated", "chars_before",
/// "chars_after"}` or `{"fate": "dropped", "reason": "budget" | "max-messages" |
/// "orphan-tool-result" | "unanswered-tool-call" | "before-first-user-turn"}`.
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER`, `LLMR_INPUT_TOO_LARGE`, `LLMR_INVALID_CONFIG`
/// (malformed or rejected budget, malformed input; `*error_out` names every problem),
/// `LLMR_DOES_NOT_FIT` (the system prompt, the latest message and the tools alone exceed the
/// budget), `LLMR_CONTEXT_REJECTED` (the latest message is not a user message),
/// `LLMR_TOO_LARGE_TO_COUNT` or `LLMR_PANIC`. For the last three but one, `*error_out` (if
/// `error_out` is not NULL) is the `ContextError` JSON. On any error `*result_json` is NULL.
///
/// # Safety
///
/// `budget` and `input` must be NULL or valid for reads of their lengths; `counter` NULL, a
/// live handle or a freed one (`LLMR_INVALID_HANDLE`); `result_json` NULL or valid for a write of a pointer; so must `error_out`
/// (which may be NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn llmr_context_trim(
    budget: *const c_char,
    budget_len: usize,
    input: *const c_char,
    input_len: usize,
    counter: *const LlmrTokenCounter,
    result_json: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `error_out` is NULL or writable (contract).
        let mut error_out = unsafe { ErrorOut::new(error_out) };
        // SAFETY: `result_json` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(result_json) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(std::ptr::null_mut());
        let counter = match get_handle(counter) {
            Ok(c) => c,
            Err(e) => return e,
        };
        // SAFETY: `budget` is NULL or readable for `budget_len` bytes (contract).
        let budget = match unsafe { read_json::<ContextConfig>(budget, budget_len) }
            .and_then(|c| ContextBudget::new(c).map_err(Rejection::config))
            .map_err(|r| r.about("budget"))
        {
            Ok(b) => b,
            Err(r) => return error_out.report(r),
        };
        // SAFETY: `input` is NULL or readable for `input_len` bytes (contract).
        let input =
            match unsafe { read_json::<Input>(input, input_len) }.map_err(|r| r.about("input")) {
                Ok(i) => i,
                Err(r) => return error_out.report(r),
            };
        let trim_input = TrimInput {
            system: &input.system,
            documents: &input.documents,
            history: &input.history,
            latest: &input.latest,
            tools: &input.tools,
        };
        match trim(&budget, &trim_input, counter.counter()) {
            Ok(t) => deliver(&mut out, write_json(&t)),
            Err(e) => error_out.report(context_rejection(&e)),
        }
    })
}

/// The next budget after the provider rejected a request with a context overflow; writes
/// `{"budget": ContextConfig, "limit_tokens": N}` to `*budget_json` (release it with
/// `llmr_string_free`). `limit_tokens` equals the `target_tokens` the retry policy built from
/// `retry` decides for the same failure and `request_tokens`; pass `budget` back to
/// `llmr_context_trim` to shrink the request to exactly that.
///
/// `failure` is the classification as JSON (`{"kind": "context-overflow", "retryable": false,
/// "limit_tokens": 128000, "requested_tokens": 130412, …}`; `message` may be left out).
/// `current` is the budget that produced the rejected request (`ContextConfig` JSON).
/// `request_tokens` (if `has_request_tokens`) is that request's `tokens_after`. `retry` is a
/// `RetryConfig` JSON (`{}` for the defaults).
///
/// Returns `LLMR_OK`, `LLMR_NULL_PARAMETER`, `LLMR_INPUT_TOO_LARGE`, `LLMR_INVALID_CONFIG`
/// (malformed or rejected JSON), `LLMR_CONTEXT_REJECTED` (not a context overflow, or no
/// smaller budget can be computed: `*error_out` is the `ContextError` JSON) or `LLMR_PANIC`;
/// on an error `*budget_json` is NULL.
///
/// # Safety
///
/// `failure`, `current` and `retry` must be NULL or valid for reads of their lengths;
/// `budget_json` NULL or valid for a write of a pointer; so must `error_out` (may be NULL).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn llmr_context_next_budget(
    failure: *const c_char,
    failure_len: usize,
    current: *const c_char,
    current_len: usize,
    has_request_tokens: bool,
    request_tokens: u64,
    retry: *const c_char,
    retry_len: usize,
    budget_json: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> LlmrResult {
    ffi_boundary!({
        // SAFETY: `error_out` is NULL or writable (contract).
        let mut error_out = unsafe { ErrorOut::new(error_out) };
        // SAFETY: `budget_json` is NULL or writable (contract).
        let mut out = match unsafe { OutPtr::new(budget_json) } {
            Ok(out) => out,
            Err(e) => return e,
        };
        out.write(std::ptr::null_mut());
        // SAFETY: `failure` is NULL or readable for `failure_len` bytes (contract).
        let failure = match unsafe { read_json::<serde_json::Value>(failure, failure_len) }
            .and_then(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.entry("message").or_insert_with(|| "".into());
                }
                serde_json::from_value::<Classification>(v)
                    .map_err(|e| Rejection::invalid(format!("invalid classification: {e}")))
            })
            .map_err(|r| r.about("failure"))
        {
            Ok(f) => f,
            Err(r) => return error_out.report(r),
        };
        // SAFETY: `current` is NULL or readable for `current_len` bytes (contract).
        let current = match unsafe { read_json::<ContextConfig>(current, current_len) }
            .and_then(|c| ContextBudget::new(c).map_err(Rejection::config))
            .map_err(|r| r.about("current budget"))
        {
            Ok(b) => b,
            Err(r) => return error_out.report(r),
        };
        // SAFETY: `retry` is NULL or readable for `retry_len` bytes (contract).
        let policy = match unsafe { read_json::<RetryConfig>(retry, retry_len) }
            .and_then(|c| RetryPolicy::new(c).map_err(Rejection::config))
            .map_err(|r| r.about("retry config"))
        {
            Ok(p) => p,
            Err(r) => return error_out.report(r),
        };
        let mine = has_request_tokens.then_some(request_tokens);
        match next_budget(&failure, &current, mine, &policy) {
            Ok(b) => deliver(
                &mut out,
                write_json(&NextBudget {
                    budget: b.config(),
                    limit_tokens: b.limit_tokens(),
                }),
            ),
            Err(e) => error_out.report(context_rejection(&e)),
        }
    })
}

/// The error string of a `ContextError`, for tests.
#[cfg(test)]
fn error_text(e: &ContextError) -> *mut c_char {
    crate::ptr::to_c_string(&serde_json::to_string(e).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{llmr_token_counter_free, llmr_token_counter_upper_bound};
    use std::ffi::CStr;
    use std::ptr;

    fn take(s: *mut c_char) -> Option<String> {
        if s.is_null() {
            return None;
        }
        // SAFETY: a live string from this library, freed once.
        let text = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
        // SAFETY: as above.
        unsafe { crate::llmr_string_free(s) };
        Some(text)
    }

    fn run(budget: &[u8], input: &[u8]) -> (LlmrResult, Option<String>, Option<String>) {
        let mut c = ptr::null_mut();
        let mut out = ptr::null_mut();
        let mut err = ptr::null_mut();
        // SAFETY: the buffers are live for their lengths; outputs are writable.
        let r = unsafe {
            llmr_token_counter_upper_bound(&mut c);
            let r = llmr_context_trim(
                budget.as_ptr().cast(),
                budget.len(),
                input.as_ptr().cast(),
                input.len(),
                c,
                &mut out,
                &mut err,
            );
            llmr_token_counter_free(c);
            r
        };
        (r, take(out), take(err))
    }

    const INPUT: &str = r#"{"system":"Be brief.","documents":["Returns within 30 days."],
        "history":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}],
        "latest":{"role":"user","content":"where is my order?"}}"#;

    #[test]
    fn trims_and_reports() {
        let (r, out, err) = run(b"{}", INPUT.as_bytes());
        assert_eq!(r, LlmrResult::LlmrOk);
        assert!(err.is_none());
        let v: serde_json::Value = serde_json::from_str(&out.unwrap()).unwrap();
        assert_eq!(v["messages"].as_array().unwrap().len(), 5);
        assert_eq!(v["report"]["documents"][0]["fate"], "kept");
    }

    #[test]
    fn errors_are_typed() {
        let (r, out, err) = run(
            br#"{"context_window": 20, "reserved_output_tokens": 1, "safety_margin_tokens": 1}"#,
            INPUT.as_bytes(),
        );
        assert_eq!(r, LlmrResult::LlmrDoesNotFit);
        assert!(out.is_none());
        assert!(err.unwrap().contains("\"does-not-fit\""));
        let not_user = INPUT.replace(
            r#""role":"user","content":"where"#,
            r#""role":"assistant","content":"where"#,
        );
        let (r, _, err) = run(b"{}", not_user.as_bytes());
        assert_eq!(r, LlmrResult::LlmrContextRejected);
        assert!(err.unwrap().contains("latest-not-user"));
        let (r, _, err) = run(br#"{"context_window": 0}"#, INPUT.as_bytes());
        assert_eq!(r, LlmrResult::LlmrInvalidConfig);
        assert!(err.unwrap().contains("context_window"));
        let (r, _, err) = run(b"{}", b"{\"system\": \xff}");
        assert_eq!(r, LlmrResult::LlmrInvalidConfig);
        assert!(err.unwrap().contains("UTF-8"));
        let (r, _, _) = run(b"{}", b"[");
        assert_eq!(r, LlmrResult::LlmrInvalidConfig);
        let huge = format!(
            r#"{{"system":"s","latest":{{"role":"user","content":"{}"}}}}"#,
            "a".repeat(crate::LLMR_LIMIT_TOKENIZE_BYTES + 1)
        );
        let (r, _, err) = run(b"{}", huge.as_bytes());
        assert_eq!(r, LlmrResult::LlmrTooLargeToCount);
        assert!(err.unwrap().contains("\"tokens\""));
        let mut out = ptr::null_mut();
        // SAFETY: NULL counter and NULL output are rejected before any read.
        unsafe {
            assert_eq!(
                llmr_context_trim(
                    c"{}".as_ptr(),
                    2,
                    INPUT.as_ptr().cast(),
                    INPUT.len(),
                    ptr::null(),
                    &mut out,
                    ptr::null_mut()
                ),
                LlmrResult::LlmrNullParameter
            );
            let mut c = ptr::null_mut();
            llmr_token_counter_upper_bound(&mut c);
            assert_eq!(
                llmr_context_trim(
                    c"{}".as_ptr(),
                    2,
                    INPUT.as_ptr().cast(),
                    INPUT.len(),
                    c,
                    ptr::null_mut(),
                    ptr::null_mut()
                ),
                LlmrResult::LlmrNullParameter
            );
            llmr_token_counter_free(c);
        }
        let s = error_text(&ContextError::CannotShrink);
        assert_eq!(take(s).unwrap(), r#"{"error":"cannot-shrink"}"#);
    }

    fn next(failure: &str, request: Option<u64>) -> (LlmrResult, Option<String>, Option<String>) {
        let current = r#"{"context_window": 128000, "reserved_output_tokens": 4096, "safety_margin_tokens": 512}"#;
        let mut out = ptr::null_mut();
        let mut err = ptr::null_mut();
        // SAFETY: the strings are live for their lengths; outputs are writable.
        let r = unsafe {
            llmr_context_next_budget(
                failure.as_ptr().cast(),
                failure.len(),
                current.as_ptr().cast(),
                current.len(),
                request.is_some(),
                request.unwrap_or(0),
                c"{}".as_ptr(),
                2,
                &mut out,
                &mut err,
            )
        };
        (r, take(out), take(err))
    }

    #[test]
    fn next_budget_follows_the_retry_policy() {
        let (r, out, _) = next(
            r#"{"kind":"context-overflow","retryable":false,"limit_tokens":128000,"requested_tokens":130412}"#,
            Some(121000),
        );
        assert_eq!(r, LlmrResult::LlmrOk);
        let v: serde_json::Value = serde_json::from_str(&out.unwrap()).unwrap();
        assert_eq!(v["limit_tokens"], 112823);
        assert_eq!(v["budget"]["context_window"], 117431);
        let (r, _, err) = next(r#"{"kind":"timeout","retryable":true}"#, Some(1));
        assert_eq!(r, LlmrResult::LlmrContextRejected);
        assert!(err.unwrap().contains("not-overflow"));
        let (r, _, err) = next(r#"{"kind":"bogus"}"#, None);
        assert_eq!(r, LlmrResult::LlmrInvalidConfig);
        assert!(err.unwrap().starts_with("failure: invalid classification"));
    }

    #[test]
    fn errors_name_the_argument_at_fault() {
        // Three JSON texts go into next_budget: a bad one is named, not taken for another.
        let failure = r#"{"kind":"context-overflow","retryable":false,"limit_tokens":128000}"#;
        let call = |current: &str, retry: &str| {
            let (mut out, mut err) = (ptr::null_mut(), ptr::null_mut());
            // SAFETY: the strings are live for their lengths; outputs are writable.
            let r = unsafe {
                llmr_context_next_budget(
                    failure.as_ptr().cast(),
                    failure.len(),
                    current.as_ptr().cast(),
                    current.len(),
                    false,
                    0,
                    retry.as_ptr().cast(),
                    retry.len(),
                    &mut out,
                    &mut err,
                )
            };
            take(out);
            (r, take(err).unwrap_or_default())
        };
        let (r, err) = call("{}", r#"{"base_delay_ms": 0}"#);
        assert_eq!(r, LlmrResult::LlmrInvalidConfig);
        assert!(
            err.starts_with("retry config: ") && err.contains("base_delay_ms"),
            "{err}"
        );
        let (r, err) = call(r#"{"context_window": 0}"#, "{}");
        assert_eq!(r, LlmrResult::LlmrInvalidConfig);
        assert!(
            err.starts_with("current budget: ") && err.contains("context_window"),
            "{err}"
        );
        let (r, err) = call("{", "{}");
        assert_eq!(r, LlmrResult::LlmrInvalidConfig);
        assert!(err.starts_with("current budget: invalid JSON"), "{err}");
        // A bad snapshot is called a snapshot, not a configuration.
        let snapshot = r#"{"config": {}, "phase": {"state": "closed"}}"#;
        let (mut b, mut err) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: the string is live for its length; outputs are writable.
        let r = unsafe {
            crate::breaker::llmr_breaker_restore(
                snapshot.as_ptr().cast(),
                snapshot.len(),
                &mut b,
                &mut err,
            )
        };
        assert_eq!(r, LlmrResult::LlmrInvalidConfig);
        let err = take(err).unwrap_or_default();
        assert!(
            err.starts_with("snapshot: ") && !err.contains("configuration"),
            "{err}"
        );
    }
}
