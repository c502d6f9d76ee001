//! The report and the timeline on small hand-written logs. Every expected number is derived
//! by hand in the comments next to it, from the log as written here — never by running the
//! code under test.

use llmr_worker::events::{Event, EventBody, parse_log};
use llmr_worker::report::{
    self, ClaimCheck, Comparison, RunSummary, Verdict, aggregate_claims, claims, compare,
    side_by_side, to_json,
};
use llmr_worker::timeline::render_svg;
use std::collections::BTreeMap;

/// Our policy, Rust worker: one log with every event type.
///
/// - job-0001 (chat-001): attempt 1 on gpt-4o-mini hits the outage (502, fault outage); retry;
///   the breaker opens; the retry is rejected by it; fallback; attempt 2 on claude answers.
/// - job-0002 (chat-002, long): overflow (400), shrink, attempt 2 answers.
/// - job-0003 (chat-003, long): 429, retry, 429 again, give-up (budget-exhausted) after
///   attempt 2.
/// - job-0004 (chat-002): deferred by the session limit, then persisted at the SIGTERM.
const OURS: &str = r#"
{"t_ms":0,"event":"run_start","scenario":"provider-outage","policy":"ours","surface":"component","jobs":4,"resumed":1}
{"t_ms":5,"event":"deferred","job":"job-0004","session":"chat-002","wait_ms":250}
{"t_ms":9,"event":"trim","job":"job-0001","model":"openai/gpt-4o-mini","budget_tokens":15232,"tokens":900,"kept":6,"dropped":0,"cut":0}
{"t_ms":10,"event":"request","job":"job-0001","session":"chat-001","model":"openai/gpt-4o-mini","attempt":1,"stream":false,"max_tokens":512,"tokens":900}
{"t_ms":12,"event":"request","job":"job-0002","session":"chat-002","model":"openai/gpt-4o-mini","attempt":1,"stream":true,"max_tokens":512,"tokens":15100}
{"t_ms":40,"event":"response","job":"job-0001","model":"openai/gpt-4o-mini","attempt":1,"status":502,"ok":false,"latency_ms":30,"fault":"outage","kind":"unavailable","retryable":true,"retry_after_ms":null,"message":"Provider returned error"}
{"t_ms":41,"event":"decision","job":"job-0001","attempt":1,"decision":"retry","after_ms":120,"target_tokens":null,"reason":null}
{"t_ms":45,"event":"response","job":"job-0002","model":"openai/gpt-4o-mini","attempt":1,"status":400,"ok":false,"latency_ms":33,"fault":null,"kind":"context-overflow","retryable":true,"retry_after_ms":null,"message":"This endpoint's maximum context length is 16000 tokens. However, you requested about 16612 tokens"}
{"t_ms":46,"event":"decision","job":"job-0002","attempt":1,"decision":"shrink","after_ms":0,"target_tokens":10000,"reason":null}
{"t_ms":47,"event":"request","job":"job-0002","session":"chat-002","model":"openai/gpt-4o-mini","attempt":2,"stream":true,"max_tokens":512,"tokens":9800}
{"t_ms":50,"event":"breaker","model":"openai/gpt-4o-mini","from":"closed","to":"open"}
{"t_ms":90,"event":"response","job":"job-0002","model":"openai/gpt-4o-mini","attempt":2,"status":200,"ok":true,"latency_ms":43,"fault":null,"kind":null,"retryable":null,"retry_after_ms":null,"message":null}
{"t_ms":91,"event":"job_done","job":"job-0002","session":"chat-002","long":true,"outcome":"answered","kind":null,"attempts":2,"retries":1,"shrinks":1,"model":"openai/gpt-4o-mini"}
{"t_ms":100,"event":"request","job":"job-0003","session":"chat-003","model":"anthropic/claude-3.5-haiku","attempt":1,"stream":false,"max_tokens":512,"tokens":3000}
{"t_ms":120,"event":"response","job":"job-0003","model":"anthropic/claude-3.5-haiku","attempt":1,"status":429,"ok":false,"latency_ms":20,"fault":"rate-limit","kind":"rate-limited","retryable":true,"retry_after_ms":180,"message":"Rate limit exceeded: limit_rpm/anthropic/claude-3.5-haiku"}
{"t_ms":121,"event":"decision","job":"job-0003","attempt":1,"decision":"retry","after_ms":180,"target_tokens":null,"reason":null}
{"t_ms":161,"event":"rejected","job":"job-0001","model":"openai/gpt-4o-mini","retry_in_ms":400}
{"t_ms":161,"event":"decision","job":"job-0001","attempt":1,"decision":"fallback","after_ms":0,"target_tokens":null,"reason":null}
{"t_ms":162,"event":"request","job":"job-0001","session":"chat-001","model":"anthropic/claude-3.5-haiku","attempt":2,"stream":false,"max_tokens":512,"tokens":900}
{"t_ms":200,"event":"response","job":"job-0001","model":"anthropic/claude-3.5-haiku","attempt":2,"status":200,"ok":true,"latency_ms":38,"fault":null,"kind":null,"retryable":null,"retry_after_ms":null,"message":null}
{"t_ms":201,"event":"job_done","job":"job-0001","session":"chat-001","long":false,"outcome":"answered","kind":null,"attempts":2,"retries":1,"shrinks":0,"model":"anthropic/claude-3.5-haiku"}
{"t_ms":210,"event":"alert","alert":"balance-warning","state":"raised","value":4.5}
{"t_ms":260,"event":"alert","alert":"balance-critical","state":"raised","value":0.9}
{"t_ms":270,"event":"alert","alert":"balance-warning","state":"cleared","value":6.0}
{"t_ms":300,"event":"request","job":"job-0003","session":"chat-003","model":"anthropic/claude-3.5-haiku","attempt":2,"stream":false,"max_tokens":512,"tokens":3000}
{"t_ms":320,"event":"response","job":"job-0003","model":"anthropic/claude-3.5-haiku","attempt":2,"status":429,"ok":false,"latency_ms":20,"fault":"rate-limit","kind":"rate-limited","retryable":true,"retry_after_ms":900,"message":"Rate limit exceeded"}
{"t_ms":320,"event":"decision","job":"job-0003","attempt":2,"decision":"give-up","after_ms":null,"target_tokens":null,"reason":"budget-exhausted"}
{"t_ms":321,"event":"job_done","job":"job-0003","session":"chat-003","long":true,"outcome":"failed","kind":"rate-limited","attempts":2,"retries":1,"shrinks":0,"model":"anthropic/claude-3.5-haiku"}
{"t_ms":400,"event":"shutdown","signal":"SIGTERM","in_flight":1,"finished_in_grace":0,"persisted":1}
{"t_ms":450,"event":"breaker","model":"openai/gpt-4o-mini","from":"open","to":"half-open"}
{"t_ms":480,"event":"run_end","answered":2,"failed":1,"persisted":1,"lost":0}
"#;

/// The naive baseline as the Go worker writes it: fields in struct order, `""` and `0` where
/// the Rust worker writes `null`, optional fields left out (`omitempty`) on job-0004's lines,
/// a snake_case give-up reason, a transport failure as status 0.
///
/// - job-0001: outage ×3 (attempts 1–3), attempt 4 answers.
/// - job-0002 (long): overflow, shrink (10 → 5 messages), overflow again, retry, connection
///   reset (status 0), retry, overflow; give-up after attempt 4.
/// - job-0003 (long) and job-0004: answered at once.
const NAIVE_GO: &str = r#"
{"event":"run_start","t_ms":0,"scenario":"provider-outage","policy":"naive","surface":"go","jobs":4,"resumed":0}
{"event":"request","t_ms":10,"job":"job-0001","session":"chat-001","model":"openai/gpt-4o-mini","attempt":1,"stream":false,"max_tokens":512,"tokens":900}
{"event":"response","t_ms":38,"job":"job-0001","model":"openai/gpt-4o-mini","attempt":1,"status":502,"ok":false,"latency_ms":28,"fault":"outage","kind":"unavailable","retryable":true,"retry_after_ms":0,"message":"Provider returned error"}
{"event":"decision","t_ms":38,"job":"job-0001","attempt":1,"decision":"retry","after_ms":200,"target_tokens":0,"reason":""}
{"event":"request","t_ms":11,"job":"job-0002","session":"chat-002","model":"openai/gpt-4o-mini","attempt":1,"stream":true,"max_tokens":512,"tokens":15100}
{"event":"response","t_ms":44,"job":"job-0002","model":"openai/gpt-4o-mini","attempt":1,"status":400,"ok":false,"latency_ms":33,"fault":"","kind":"context-overflow","retryable":true,"retry_after_ms":0,"message":"maximum context length is 16000 tokens"}
{"event":"decision","t_ms":44,"job":"job-0002","attempt":1,"decision":"shrink","after_ms":200,"target_tokens":0,"reason":""}
{"event":"request","t_ms":240,"job":"job-0001","session":"chat-001","model":"openai/gpt-4o-mini","attempt":2,"stream":false,"max_tokens":512,"tokens":900}
{"event":"request","t_ms":245,"job":"job-0002","session":"chat-002","model":"openai/gpt-4o-mini","attempt":2,"stream":true,"max_tokens":512,"tokens":15050}
{"event":"response","t_ms":270,"job":"job-0001","model":"openai/gpt-4o-mini","attempt":2,"status":503,"ok":false,"latency_ms":30,"fault":"outage","kind":"unavailable","retryable":true,"retry_after_ms":0,"message":"Provider returned error"}
{"event":"decision","t_ms":270,"job":"job-0001","attempt":2,"decision":"retry","after_ms":200,"target_tokens":0,"reason":""}
{"event":"response","t_ms":280,"job":"job-0002","model":"openai/gpt-4o-mini","attempt":2,"status":400,"ok":false,"latency_ms":35,"fault":"","kind":"context-overflow","retryable":true,"retry_after_ms":0,"message":"maximum context length is 16000 tokens"}
{"event":"decision","t_ms":280,"job":"job-0002","attempt":2,"decision":"retry","after_ms":200,"target_tokens":0,"reason":""}
{"event":"request","t_ms":300,"job":"job-0003","session":"chat-003","model":"openai/gpt-4o-mini","attempt":1,"stream":false,"max_tokens":512,"tokens":3000}
{"event":"response","t_ms":330,"job":"job-0003","model":"openai/gpt-4o-mini","attempt":1,"status":200,"ok":true,"latency_ms":30,"fault":"","kind":"","retryable":false,"retry_after_ms":0,"message":""}
{"event":"job_done","t_ms":331,"job":"job-0003","session":"chat-003","long":true,"outcome":"answered","kind":"","attempts":1,"retries":0,"shrinks":0,"model":"openai/gpt-4o-mini"}
{"event":"request","t_ms":470,"job":"job-0001","session":"chat-001","model":"openai/gpt-4o-mini","attempt":3,"stream":false,"max_tokens":512,"tokens":900}
{"event":"request","t_ms":480,"job":"job-0002","session":"chat-002","model":"openai/gpt-4o-mini","attempt":3,"stream":true,"max_tokens":512,"tokens":15050}
{"event":"response","t_ms":500,"job":"job-0001","model":"openai/gpt-4o-mini","attempt":3,"status":502,"ok":false,"latency_ms":30,"fault":"outage","kind":"unavailable","retryable":true,"retry_after_ms":0,"message":"Provider returned error"}
{"event":"decision","t_ms":500,"job":"job-0001","attempt":3,"decision":"retry","after_ms":200,"target_tokens":0,"reason":""}
{"event":"response","t_ms":490,"job":"job-0002","model":"openai/gpt-4o-mini","attempt":3,"status":0,"ok":false,"latency_ms":10,"fault":"","kind":"network","retryable":true,"retry_after_ms":0,"message":"connection reset by peer"}
{"event":"decision","t_ms":490,"job":"job-0002","attempt":3,"decision":"retry","after_ms":200,"target_tokens":0,"reason":""}
{"event":"request","t_ms":700,"job":"job-0001","session":"chat-001","model":"openai/gpt-4o-mini","attempt":4,"stream":false,"max_tokens":512,"tokens":900}
{"event":"request","t_ms":705,"job":"job-0002","session":"chat-002","model":"openai/gpt-4o-mini","attempt":4,"stream":true,"max_tokens":512,"tokens":15050}
{"event":"response","t_ms":740,"job":"job-0001","model":"openai/gpt-4o-mini","attempt":4,"status":200,"ok":true,"latency_ms":40,"fault":"","kind":"","retryable":false,"retry_after_ms":0,"message":""}
{"event":"job_done","t_ms":741,"job":"job-0001","session":"chat-001","long":false,"outcome":"answered","kind":"","attempts":4,"retries":3,"shrinks":0,"model":"openai/gpt-4o-mini"}
{"event":"response","t_ms":745,"job":"job-0002","model":"openai/gpt-4o-mini","attempt":4,"status":400,"ok":false,"latency_ms":40,"fault":"","kind":"context-overflow","retryable":true,"retry_after_ms":0,"message":"maximum context length is 16000 tokens"}
{"event":"decision","t_ms":745,"job":"job-0002","attempt":4,"decision":"give-up","after_ms":0,"target_tokens":0,"reason":"attempts_exhausted"}
{"event":"job_done","t_ms":746,"job":"job-0002","session":"chat-002","long":true,"outcome":"failed","kind":"context-overflow","attempts":4,"retries":3,"shrinks":1,"model":"openai/gpt-4o-mini"}
{"event":"request","t_ms":750,"job":"job-0004","session":"chat-002","model":"openai/gpt-4o-mini","attempt":1,"stream":false,"max_tokens":512,"tokens":700}
{"event":"response","t_ms":790,"job":"job-0004","model":"openai/gpt-4o-mini","attempt":1,"status":200,"ok":true,"latency_ms":40}
{"event":"job_done","t_ms":791,"job":"job-0004","session":"chat-002","long":false,"outcome":"answered","attempts":1,"retries":0,"shrinks":0,"model":"openai/gpt-4o-mini"}
{"event":"run_end","t_ms":800,"answered":3,"failed":1,"persisted":0,"lost":0}
"#;

/// Our policy while the account runs dry (`credits-run-out`), Rust worker:
///
/// - job-0001: attempt 1 gets a 402 without a number (quota-exhausted); the account is dry,
///   the job holds (attempt 1); the top-up opens the gate; attempt 2 answers.
/// - job-0002: arrives while dry: holds before its first request (attempt 0), then attempt 1
///   answers after the top-up.
/// - job-0003: a later dry period: attempt 1 gets a 402, holds, the credit does not return
///   within credit_hold_ms: give-up, failed quota-exhausted.
const CREDIT: &str = r#"
{"t_ms":0,"event":"run_start","scenario":"credits-run-out","policy":"ours","surface":"native","jobs":3,"resumed":0}
{"t_ms":100,"event":"request","job":"job-0001","session":"chat-001","model":"openai/gpt-4o-mini","attempt":1,"stream":false,"max_tokens":512,"tokens":900}
{"t_ms":130,"event":"response","job":"job-0001","model":"openai/gpt-4o-mini","attempt":1,"status":402,"ok":false,"latency_ms":30,"fault":"credits","kind":"quota-exhausted","retryable":false,"retry_after_ms":null,"message":"Insufficient credits. Add more using https://openrouter.ai/settings/credits"}
{"t_ms":131,"event":"decision","job":"job-0001","attempt":1,"decision":"hold-for-credit","after_ms":3000,"target_tokens":null,"reason":"account out of credit: waiting for a top-up"}
{"t_ms":200,"event":"alert","alert":"balance-critical","state":"raised","value":0.0}
{"t_ms":300,"event":"decision","job":"job-0002","attempt":0,"decision":"hold-for-credit","after_ms":3000,"target_tokens":null,"reason":"account out of credit: waiting for a top-up"}
{"t_ms":900,"event":"request","job":"job-0001","session":"chat-001","model":"openai/gpt-4o-mini","attempt":2,"stream":false,"max_tokens":512,"tokens":900}
{"t_ms":900,"event":"request","job":"job-0002","session":"chat-002","model":"openai/gpt-4o-mini","attempt":1,"stream":true,"max_tokens":512,"tokens":1200}
{"t_ms":930,"event":"response","job":"job-0002","model":"openai/gpt-4o-mini","attempt":1,"status":200,"ok":true,"latency_ms":30,"fault":null,"kind":null,"retryable":null,"retry_after_ms":null,"message":null}
{"t_ms":931,"event":"job_done","job":"job-0002","session":"chat-002","long":false,"outcome":"answered","kind":null,"attempts":1,"retries":0,"shrinks":0,"model":"openai/gpt-4o-mini"}
{"t_ms":950,"event":"response","job":"job-0001","model":"openai/gpt-4o-mini","attempt":2,"status":200,"ok":true,"latency_ms":50,"fault":null,"kind":null,"retryable":null,"retry_after_ms":null,"message":null}
{"t_ms":951,"event":"job_done","job":"job-0001","session":"chat-001","long":false,"outcome":"answered","kind":null,"attempts":2,"retries":1,"shrinks":0,"model":"openai/gpt-4o-mini"}
{"t_ms":1000,"event":"request","job":"job-0003","session":"chat-003","model":"openai/gpt-4o-mini","attempt":1,"stream":false,"max_tokens":512,"tokens":700}
{"t_ms":1030,"event":"response","job":"job-0003","model":"openai/gpt-4o-mini","attempt":1,"status":402,"ok":false,"latency_ms":30,"fault":"credits","kind":"quota-exhausted","retryable":false,"retry_after_ms":null,"message":"Insufficient credits. Add more using https://openrouter.ai/settings/credits"}
{"t_ms":1031,"event":"decision","job":"job-0003","attempt":1,"decision":"hold-for-credit","after_ms":3000,"target_tokens":null,"reason":"account out of credit: waiting for a top-up"}
{"t_ms":4031,"event":"decision","job":"job-0003","attempt":1,"decision":"give-up","after_ms":null,"target_tokens":null,"reason":"credit did not return within credit_hold_ms"}
{"t_ms":4032,"event":"job_done","job":"job-0003","session":"chat-003","long":false,"outcome":"failed","kind":"quota-exhausted","attempts":1,"retries":0,"shrinks":0,"model":"openai/gpt-4o-mini"}
{"t_ms":4040,"event":"run_end","answered":2,"failed":1,"persisted":0,"lost":0}
"#;

fn log(text: &str) -> Vec<Event> {
    parse_log(text).expect("the hand-written log parses")
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn claim<'a>(claims: &'a [ClaimCheck], id: &str) -> &'a ClaimCheck {
    claims
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("claim {id} present"))
}

#[test]
fn the_ours_log_has_every_event_type() {
    let names: std::collections::BTreeSet<&str> = log(OURS)
        .iter()
        .map(|e| match e.body {
            EventBody::RunStart { .. } => "run_start",
            EventBody::Deferred { .. } => "deferred",
            EventBody::Rejected { .. } => "rejected",
            EventBody::Trim { .. } => "trim",
            EventBody::Request { .. } => "request",
            EventBody::Response { .. } => "response",
            EventBody::Decision { .. } => "decision",
            EventBody::Breaker { .. } => "breaker",
            EventBody::Alert { .. } => "alert",
            EventBody::JobDone { .. } => "job_done",
            EventBody::Shutdown { .. } => "shutdown",
            EventBody::RunEnd { .. } => "run_end",
        })
        .collect();
    assert_eq!(names.len(), 12, "{names:?}");
}

#[test]
fn ours_summary_matches_the_hand_count() {
    let s = RunSummary::from_events(&log(OURS));
    assert_eq!(
        (s.scenario.as_str(), s.policy.as_str(), s.surface.as_str()),
        ("provider-outage", "ours", "component")
    );
    assert_eq!((s.jobs, s.resumed), (4, 1));
    // job_done for 0001 (answered), 0002 (answered), 0003 (failed, rate-limited).
    assert_eq!((s.jobs_done, s.answered, s.failed), (3, 2, 1));
    assert_eq!(s.failed_by_kind, map(&[("rate-limited", 1)]));
    // Requests: 0001 ×2, 0002 ×2, 0003 ×2; retries: each job's attempt 2.
    assert_eq!((s.requests, s.retries_sent), (6, 3));
    // Attempt > 1 and failed: only 0003's second 429.
    assert_eq!(s.unnecessary_retries, 1);
    // One rejection; one give-up (budget-exhausted) at attempt 2 ≤ 3.
    assert_eq!(s.breaker_rejections, 1);
    assert_eq!(s.give_ups_naive_would_retry, 1);
    assert_eq!(s.give_ups_by_reason, map(&[("budget-exhausted", 1)]));
    assert_eq!(s.retries_avoided, 2);
    assert_eq!(s.calls_wasted_in_outages, 1);
    // 0002 shrank once and its next response answered.
    assert_eq!((s.shrinks, s.shrinks_then_answered), (1, 1));
    // Long: 0002 (answered), 0003 (failed).
    assert_eq!((s.long_jobs, s.long_answered), (2, 1));
    // balance-warning raised once (and cleared once: not counted), balance-critical once.
    assert_eq!(
        s.alerts_raised,
        map(&[("balance-critical", 1), ("balance-warning", 1)])
    );
    assert_eq!((s.deferred, s.fallbacks), (1, 1));
    // No 402 and no hold in this log.
    assert_eq!(
        (
            s.quota_exhausted_responses,
            s.holds_for_credit,
            s.held_then_answered
        ),
        (0, 0, 0)
    );
    // closed → open once; open → half-open is not an opening.
    assert_eq!(s.breaker_opens, map(&[("openai/gpt-4o-mini", 1)]));
    let sd = s.shutdown.as_ref().expect("shutdown seen");
    assert_eq!(
        (
            sd.signal.as_str(),
            sd.in_flight,
            sd.finished_in_grace,
            sd.persisted
        ),
        ("SIGTERM", 1, 0, 1)
    );
    // 4 jobs − 3 done − 1 persisted = 0, as run_end says.
    assert_eq!(s.persisted, 1);
    assert_eq!((s.lost_reported, s.lost_recomputed), (Some(0), 0));
    assert!(!s.lost_mismatch);
    assert_eq!(s.lost(), 0);
    // Latencies (first request → job_done): 0001 201−10=191, 0002 91−12=79, 0003 321−100=221.
    // Sorted [79, 191, 221]: p50 rank ⌈1.5⌉=2 → 191; p95 rank ⌈2.85⌉=3 → 221.
    assert_eq!((s.latency_p50_ms, s.latency_p95_ms), (Some(191), Some(221)));
    assert!(s.complete);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn holds_for_credit_are_counted_and_are_not_give_ups() {
    let s = RunSummary::from_events(&log(CREDIT));
    // Holds: 0001 (after its 402), 0002 (before its first request), 0003 (after its 402).
    assert_eq!(s.holds_for_credit, 3);
    // Answered after holding: 0001 and 0002; 0003 held and failed.
    assert_eq!(s.held_then_answered, 2);
    // 402s: 0001 attempt 1, 0003 attempt 1.
    assert_eq!(s.quota_exhausted_responses, 2);
    assert_eq!((s.jobs_done, s.answered, s.failed), (3, 2, 1));
    assert_eq!(s.failed_by_kind, map(&[("quota-exhausted", 1)]));
    // Requests: 0001 ×2, 0002 ×1, 0003 ×1; the attempt after 0001's hold is its one retry,
    // and it answered: not unnecessary.
    assert_eq!(
        (s.requests, s.retries_sent, s.unnecessary_retries),
        (4, 1, 0)
    );
    // One give-up (0003's timed-out hold), not a core reason: no retry avoided by it. The
    // holds themselves are no give-ups.
    assert_eq!(s.give_ups_by_reason, map(&[("other", 1)]));
    assert_eq!((s.give_ups_naive_would_retry, s.retries_avoided), (0, 0));
    assert_eq!(s.alerts_raised, map(&[("balance-critical", 1)]));
    assert_eq!((s.fallbacks, s.deferred, s.shrinks), (0, 0, 0));
    // Latency from the first request: 0001 951−100=851, 0002 931−900=31, 0003 4032−1000=3032;
    // sorted [31, 851, 3032]: p50 rank 2 → 851, p95 rank 3 → 3032.
    assert_eq!(
        (s.latency_p50_ms, s.latency_p95_ms),
        (Some(851), Some(3032))
    );
    assert_eq!(s.lost(), 0);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);

    // The table rows, ours beside the (hold-free) naive log of another scenario.
    let naive = RunSummary::from_events(&log(NAIVE_GO));
    assert_eq!(
        (
            naive.holds_for_credit,
            naive.held_then_answered,
            naive.quota_exhausted_responses
        ),
        (0, 0, 0)
    );
    let table = side_by_side(&[("credits-run-out".into(), s, naive)]);
    let tail = |needle: &str| -> Vec<String> {
        let line = table
            .lines()
            .find(|l| l.trim_start().starts_with(needle))
            .unwrap_or_else(|| panic!("a line starting with {needle:?} in\n{table}"));
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        words[words.len() - 2..].to_vec()
    };
    assert_eq!(tail("402 responses"), ["2", "0"]);
    assert_eq!(tail("held for credit"), ["3", "0"]);
    assert_eq!(tail("held then answered"), ["2", "0"]);
}

#[test]
fn a_go_style_log_with_empty_strings_and_zeros_is_read_like_nulls() {
    let s = RunSummary::from_events(&log(NAIVE_GO));
    assert_eq!((s.policy.as_str(), s.surface.as_str()), ("naive", "go"));
    assert_eq!((s.jobs, s.jobs_done, s.answered, s.failed), (4, 4, 3, 1));
    // `kind: ""` on answered jobs must not become a failure kind.
    assert_eq!(s.failed_by_kind, map(&[("context-overflow", 1)]));
    // Requests: 0001 ×4, 0002 ×4, 0003 ×1, 0004 ×1 = 10; retries: attempts 2–4 of 0001, 0002.
    assert_eq!((s.requests, s.retries_sent), (10, 6));
    // Failed retries: 0001 attempts 2, 3; 0002 attempts 2, 3, 4.
    assert_eq!(s.unnecessary_retries, 5);
    // `fault: ""` is no fault; the three 502/503 with fault outage are.
    assert_eq!(s.calls_wasted_in_outages, 3);
    // The shrink's next response (attempt 2) failed again.
    assert_eq!((s.shrinks, s.shrinks_then_answered), (1, 0));
    // attempts_exhausted after attempt 4: naive itself would not retry again.
    assert_eq!(s.give_ups_by_reason, map(&[("attempts-exhausted", 1)]));
    assert_eq!((s.give_ups_naive_would_retry, s.retries_avoided), (0, 0));
    assert_eq!((s.long_jobs, s.long_answered), (2, 1));
    assert!(s.breaker_opens.is_empty() && s.alerts_raised.is_empty());
    assert_eq!((s.lost_reported, s.lost_recomputed), (Some(0), 0));
    // Latencies: 0001 741−10=731, 0002 746−11=735, 0003 331−300=31, 0004 791−750=41.
    // Sorted [31, 41, 731, 735]: p50 rank 2 → 41; p95 rank ⌈3.8⌉=4 → 735.
    assert_eq!((s.latency_p50_ms, s.latency_p95_ms), (Some(41), Some(735)));
    assert!(s.complete && s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn a_log_cut_mid_run_counts_what_is_there() {
    // The first 13 non-blank lines of OURS: up to job-0002's job_done at t=91.
    let cut: String = OURS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(13)
        .collect::<Vec<_>>()
        .join("\n");
    let events = log(&cut);
    assert_eq!(events.last().map(|e| e.t_ms), Some(91));
    let s = RunSummary::from_events(&events);
    assert_eq!((s.jobs, s.jobs_done, s.answered, s.failed), (4, 1, 1, 0));
    // Requests: 0001 att 1, 0002 att 1 and 2.
    assert_eq!(
        (s.requests, s.retries_sent, s.unnecessary_retries),
        (3, 1, 0)
    );
    assert_eq!((s.shrinks, s.shrinks_then_answered), (1, 1));
    assert_eq!(s.calls_wasted_in_outages, 1);
    // No run_end, no shutdown: nothing persisted, 4 − 1 − 0 = 3 jobs unaccounted for.
    assert_eq!(s.run_end, None);
    assert_eq!((s.lost_reported, s.lost_recomputed, s.lost()), (None, 3, 3));
    assert!(!s.lost_mismatch, "no run_end: nothing to mismatch");
    assert!(!s.complete);
    assert!(
        s.warnings.iter().any(|w| w.contains("no run_end")),
        "{:?}",
        s.warnings
    );
    // The claim is checked on the recomputed loss.
    let naive = RunSummary::from_events(&log(NAIVE_GO));
    assert_eq!(
        claim(&claims(&s, &naive), "lost-jobs").verdict,
        Verdict::Misses
    );

    // Cut before even run_start was read (a log that starts mid-way): jobs come from the names.
    let tail: Vec<Event> = log(OURS).into_iter().skip(20).collect();
    let s = RunSummary::from_events(&tail);
    assert_eq!(s.scenario, "unknown");
    // Lines 21.. name job-0001 (its job_done) and job-0003: 2 distinct jobs.
    assert_eq!(s.jobs, 2);
    assert!(s.warnings.iter().any(|w| w.contains("no run_start")));
    assert!(!s.complete);

    // And the empty log.
    let s = RunSummary::from_events(&[]);
    assert_eq!((s.jobs, s.requests, s.lost()), (0, 0, 0));
    assert_eq!((s.latency_p50_ms, s.latency_p95_ms), (None, None));
}

#[test]
fn a_lost_count_that_disagrees_with_the_job_dones_is_flagged() {
    let text = r#"
{"t_ms":0,"event":"run_start","scenario":"shutdown","policy":"ours","surface":"native","jobs":3,"resumed":0}
{"t_ms":5,"event":"job_done","job":"job-0001","session":"chat-001","long":false,"outcome":"answered","kind":null,"attempts":1,"retries":0,"shrinks":0,"model":"openai/gpt-4o-mini"}
{"t_ms":9,"event":"run_end","answered":1,"failed":0,"persisted":0,"lost":0}
"#;
    let s = RunSummary::from_events(&log(text));
    // 3 jobs − 1 done − 0 persisted = 2, but run_end says 0.
    assert_eq!((s.lost_reported, s.lost_recomputed), (Some(0), 2));
    assert!(s.lost_mismatch);
    assert_eq!(s.lost(), 2);
    let table = side_by_side(&[("shutdown".into(), s.clone(), s)]);
    assert!(table.contains("2 MISMATCH"), "{table}");
    assert!(
        table.contains("lost mismatch: run_end says 0, recomputed 2"),
        "{table}"
    );
}

#[test]
fn claims_on_the_two_logs_match_the_hand_computation() {
    let ours = RunSummary::from_events(&log(OURS));
    let naive = RunSummary::from_events(&log(NAIVE_GO));
    let c = claims(&ours, &naive);
    // Unnecessary retries 1 vs 5: (1 − 5) / 5 = −80 %; −80 ≤ −60: meets.
    let u = claim(&c, "unnecessary-retries");
    assert_eq!(u.change_percent, Some(-80.0));
    assert_eq!(u.verdict, Verdict::Meets);
    assert_eq!(u.measured, "ours 1, naive 5: -80.0 %");
    // Outage calls 1 vs 3: −66.7 %, short of −80 %.
    let w = claim(&c, "wasted-outage-calls");
    assert_eq!(w.verdict, Verdict::Misses);
    assert_eq!(w.measured, "ours 1, naive 3: -66.7 %");
    // Long conversations 1/2 vs 1/2: +0.0 %, short of +15 %.
    let l = claim(&c, "long-success");
    assert_eq!(l.change_percent, Some(0.0));
    assert_eq!(l.verdict, Verdict::Misses);
    assert_eq!(
        l.measured,
        "ours 1/2 (50.0 %), naive 1/2 (50.0 %): +0.0 % (+0.0 pp)"
    );
    // Lost: 0 → meets.
    assert_eq!(claim(&c, "lost-jobs").verdict, Verdict::Meets);

    let table = side_by_side(&[("provider-outage".into(), ours, naive)]);
    let line = |needle: &str| {
        table
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("a line with {needle:?} in\n{table}"))
            .to_string()
    };
    assert!(line("−60 % unnecessary retries").contains("MEETS"));
    assert!(line("−80 % wasted calls during outages").contains("MISSES"));
    // The table rows: metric, ours, naive.
    let row: Vec<String> = line("unnecessary retries (failed again)")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(row[row.len() - 2..], ["1".to_string(), "5".to_string()]);
    let row: Vec<String> = line("calls wasted during outages")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(row[row.len() - 2..], ["1".to_string(), "3".to_string()]);
    assert!(table.contains("== all 1 scenarios: claims =="));
}

/// A summary with only the claim inputs set, on top of the empty log's.
fn with(unnecessary: u64, wasted: u64, long_jobs: u64, long_answered: u64) -> RunSummary {
    let mut s = RunSummary::from_events(&[]);
    s.unnecessary_retries = unnecessary;
    s.calls_wasted_in_outages = wasted;
    s.long_jobs = long_jobs;
    s.long_answered = long_answered;
    s
}

#[test]
fn a_naive_count_of_zero_is_never_divided_by() {
    // Both 0 unnecessary retries: nothing to reduce. Ours 2 outage calls against naive 0: worse.
    let c = claims(&with(0, 2, 0, 0), &with(0, 0, 3, 0));
    let u = claim(&c, "unnecessary-retries");
    assert_eq!(
        (u.change_percent, u.verdict),
        (None, Verdict::NotMeasurable)
    );
    assert_eq!(u.measured, "ours 0, naive 0: n/a (naive had 0)");
    let w = claim(&c, "wasted-outage-calls");
    assert_eq!((w.change_percent, w.verdict), (None, Verdict::Misses));
    // Ours ran no long conversation.
    let l = claim(&c, "long-success");
    assert_eq!(
        (l.change_percent, l.verdict),
        (None, Verdict::NotMeasurable)
    );
    assert!(
        l.measured.ends_with("n/a (no long conversations)"),
        "{}",
        l.measured
    );

    // Naive answered none of 4 long ones, ours 1 of 4: no ratio, but better.
    let c = claims(&with(0, 0, 4, 1), &with(0, 0, 4, 0));
    let l = claim(&c, "long-success");
    assert_eq!((l.change_percent, l.verdict), (None, Verdict::Meets));
    assert!(l.measured.ends_with("n/a (naive had 0)"), "{}", l.measured);

    // The text never shows inf or NaN.
    let text = side_by_side(&[("zero".into(), with(0, 2, 0, 0), with(0, 0, 3, 0))]);
    assert!(!text.contains("inf") && !text.contains("NaN"), "{text}");
    let json = to_json(&[("zero".into(), with(0, 2, 0, 0), with(0, 0, 3, 0))]);
    assert!(!json.contains("inf") && !json.contains("NaN"), "{json}");
}

#[test]
fn thresholds_are_exact_and_the_aggregate_sums_counts() {
    // Scenario a: 1 vs 5; scenario b: 3 vs 5. Summed 4 vs 10: exactly −60 % → meets.
    // Outage calls a: 1 vs 10, b: 2 vs 0 → 3 vs 10 = −70 %: misses −80 %.
    // Long a: 23/40 vs 20/40 (+15 % exactly), b: none → summed 23/40 vs 20/40: meets.
    let runs = vec![
        ("a".to_string(), with(1, 1, 40, 23), with(5, 10, 40, 20)),
        ("b".to_string(), with(3, 2, 0, 0), with(5, 0, 0, 0)),
    ];
    let agg = aggregate_claims(&runs);
    let u = claim(&agg, "unnecessary-retries");
    assert_eq!(u.verdict, Verdict::Meets);
    assert_eq!(u.measured, "ours 4, naive 10: -60.0 %");
    let w = claim(&agg, "wasted-outage-calls");
    assert_eq!(w.verdict, Verdict::Misses);
    assert_eq!(w.measured, "ours 3, naive 10: -70.0 %");
    assert_eq!(claim(&agg, "long-success").verdict, Verdict::Meets);
    // One answered job fewer and +15 % is missed: 22/40 vs 20/40 = +10 %.
    let c = claims(&with(0, 0, 40, 22), &with(0, 0, 40, 20));
    assert_eq!(claim(&c, "long-success").verdict, Verdict::Misses);
    // Per scenario b alone: 3 vs 5 = −40 %: misses.
    let b = claims(&runs[1].1, &runs[1].2);
    assert_eq!(claim(&b, "unnecessary-retries").verdict, Verdict::Misses);

    let text = side_by_side(&runs);
    assert!(text.contains("== a =="), "{text}");
    assert!(text.contains("== b =="), "{text}");
    assert!(text.contains("== all 2 scenarios: claims =="), "{text}");
}

#[test]
fn the_json_report_round_trips_and_names_the_verdicts() {
    let ours = RunSummary::from_events(&log(OURS));
    let naive = RunSummary::from_events(&log(NAIVE_GO));
    let runs = vec![("provider-outage".to_string(), ours, naive)];
    let json = to_json(&runs);
    let back: Comparison = serde_json::from_str(&json).expect("to_json parses back");
    assert_eq!(back, compare(&runs));
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["scenarios"][0]["ours"]["unnecessary_retries"], 1);
    assert_eq!(v["scenarios"][0]["naive"]["unnecessary_retries"], 5);
    assert_eq!(v["scenarios"][0]["claims"][0]["verdict"], "meets");
    assert_eq!(v["aggregate_claims"][1]["verdict"], "misses");
    assert_eq!(v["aggregate_claims"][0]["change_percent"], -80.0);
    // The constants the docs promise.
    assert_eq!(report::NAIVE_RETRIES, 3);
}

// ---------------------------------------------------------------- the timeline

fn class_count(doc: &roxmltree::Document<'_>, class: &str) -> usize {
    doc.descendants()
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.split_whitespace().any(|t| t == class))
        })
        .count()
}

/// The texts of every `<title>` (the marks' tooltips), in document order.
fn tooltips<'a>(doc: &'a roxmltree::Document<'_>) -> Vec<&'a str> {
    doc.descendants()
        .filter(|n| n.tag_name().name() == "title")
        .filter_map(|n| n.text())
        .collect()
}

#[test]
fn the_svg_has_one_mark_per_request_and_one_band_segment_per_breaker_period() {
    let svg = render_svg(&log(OURS), "provider-outage · ours");
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert_eq!(doc.root_element().attribute("width"), Some("1200"));
    // 6 requests: 3 first attempts, 3 retries; 1 rejected.
    assert_eq!(class_count(&doc, "req"), 6);
    assert_eq!(class_count(&doc, "first"), 3);
    assert_eq!(class_count(&doc, "retry"), 3);
    assert_eq!(class_count(&doc, "rejected"), 1);
    // gpt-4o-mini: closed [0, 50), open [50, 450), half-open [450, 480]; claude: closed.
    let states: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("breaker"))
        .filter_map(|n| n.attribute("data-state"))
        .collect();
    assert_eq!(states, ["closed", "open", "half-open", "closed"]);
    assert_eq!(class_count(&doc, "deferred"), 1);
    assert_eq!(class_count(&doc, "alert"), 3);
    assert_eq!(class_count(&doc, "shutdown"), 1);
    // The outage mark says so in its tooltip; the rejection names the job.
    let tips = tooltips(&doc);
    assert!(
        tips.contains(&"job-0001 attempt 1 at 0.010 s: outage (502, unavailable)"),
        "{tips:?}"
    );
    assert!(
        tips.contains(&"job-0002 attempt 2 at 0.047 s: ok"),
        "{tips:?}"
    );
    assert!(
        tips.iter()
            .any(|t| t.starts_with("job-0001 rejected by the breaker"))
    );
    // Axis ticks in seconds: the log ends at 480 ms → 100 ms steps, 0 s … 0.5 s.
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .filter_map(|n| n.text())
        .collect();
    assert!(
        texts.contains(&"0.0 s") && texts.contains(&"0.5 s"),
        "{texts:?}"
    );
    // Deterministic.
    assert_eq!(svg, render_svg(&log(OURS), "provider-outage · ours"));
}

#[test]
fn holds_are_drawn_on_the_deferred_lane_until_the_jobs_next_request() {
    let svg = render_svg(&log(CREDIT), "credits-run-out · ours");
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    // One bar per hold-for-credit decision; no rate-limit deferral in this log.
    assert_eq!(class_count(&doc, "held"), 3);
    assert_eq!(class_count(&doc, "deferred"), 0);
    let tips = tooltips(&doc);
    // 0001: 131 → its request at 900 = 769 ms; 0002: 300 → 900 = 600 ms; 0003: 1031 → its
    // job_done at 4032 = 3001 ms.
    for tip in [
        "job-0001 held for credit at 0.131 s (769 ms, at most 3000 ms)",
        "job-0002 held for credit at 0.300 s (600 ms, at most 3000 ms)",
        "job-0003 held for credit at 1.031 s (3001 ms, at most 3000 ms)",
    ] {
        assert!(tips.contains(&tip), "{tip} not in {tips:?}");
    }
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .filter_map(|n| n.text())
        .collect();
    assert!(texts.contains(&"held for credit"), "{texts:?}");
    assert!(texts.contains(&"deferred / held (credit)"), "{texts:?}");
    // A log without holds has neither the bars nor the legend entry.
    let plain = render_svg(&log(OURS), "ours");
    assert!(!plain.contains("held for credit"));
    assert!(!plain.contains(r#"class="held""#));
}

#[test]
fn the_naive_go_log_draws_no_breaker_and_marks_transport_failures() {
    let svg = render_svg(&log(NAIVE_GO), "naive");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed");
    assert_eq!(class_count(&doc, "req"), 10);
    assert_eq!(class_count(&doc, "retry"), 6);
    assert_eq!(class_count(&doc, "breaker"), 0);
    assert!(svg.contains("no breaker (naive)"));
    let tips = tooltips(&doc);
    // Status 0 with `fault: ""` is a transport failure; `fault: ""` with a 400 is its kind.
    assert!(
        tips.contains(&"job-0002 attempt 3 at 0.480 s: transport failure (no status, network)"),
        "{tips:?}"
    );
    assert!(
        tips.contains(&"job-0002 attempt 1 at 0.011 s: context-overflow (400, context-overflow)"),
        "{tips:?}"
    );
}

#[test]
fn titles_and_model_names_are_escaped() {
    let text = r#"
{"t_ms":0,"event":"run_start","scenario":"a<b","policy":"ours","surface":"native","jobs":1,"resumed":0}
{"t_ms":1,"event":"request","job":"j&1","session":"s","model":"evil/<model>&\"co\"","attempt":1,"stream":false,"max_tokens":1,"tokens":1}
{"t_ms":3,"event":"breaker","model":"evil/<model>&\"co\"","from":"closed","to":"open"}
{"t_ms":4,"event":"alert","alert":"runway<1h>","state":"raised","value":0.5}
"#;
    let title = "<&> test";
    let svg = render_svg(&log(text), title);
    let doc = roxmltree::Document::parse(&svg).expect("escaped text keeps the XML well-formed");
    assert!(svg.contains("&lt;&amp;&gt; test"));
    assert!(!svg.contains("<&>"));
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(texts.contains(&title), "{texts:?}");
    assert!(texts.contains(&"evil/<model>&\"co\""), "{texts:?}");
    // A request without a response and a breaker with two periods.
    assert_eq!(class_count(&doc, "req"), 1);
    assert_eq!(class_count(&doc, "breaker"), 2);
}

#[test]
fn an_empty_or_cut_log_still_draws() {
    let svg = render_svg(&[], "empty");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed");
    assert_eq!(class_count(&doc, "req"), 0);
    assert!(svg.contains("no run_start in the log"));
    // Cut after the breaker opened (first 11 lines): the open period runs to the last event.
    let cut: Vec<Event> = log(OURS).into_iter().take(11).collect();
    let svg = render_svg(&cut, "cut");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed");
    assert_eq!(class_count(&doc, "req"), 3);
    assert_eq!(class_count(&doc, "breaker"), 2);
}
