//! The worker's structured events: one JSON object per line, the same schema from the Rust and
//! the Go worker (`examples/scenarios/README.md`, "Events").
//!
//! Why a closed schema: the report and the timeline are computed from these lines alone, so a
//! run of either worker, on either surface, can be compared with any other; and an operator
//! reading a log at 3 a.m. sees the same fields whoever wrote it. No event carries a key, a
//! prompt or an answer; failure messages are the core's redacted text.

use serde::{Deserialize, Serialize};

/// One line of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the run started (the worker's monotonic clock).
    pub t_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

/// What happened; the `event` field names the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventBody {
    /// A run began.
    RunStart {
        /// The scenario's name.
        scenario: String,
        /// `ours` or `naive`.
        policy: String,
        /// `component`, `native` or `go`.
        surface: String,
        /// Jobs in the queue at the start (resumed ones included).
        jobs: u64,
        /// Jobs taken over from a previous run's persisted state.
        resumed: u64,
    },
    /// The session's rate limit delayed a job.
    Deferred {
        /// The job.
        job: String,
        /// Its chat session.
        session: String,
        /// How long it waits, ms.
        wait_ms: u64,
    },
    /// The model's breaker refused a call: a call not sent.
    Rejected {
        /// The job.
        job: String,
        /// The model whose breaker is open.
        model: String,
        /// When the breaker will admit a probe, ms from now.
        retry_in_ms: u64,
    },
    /// The context was built and trimmed for a request.
    Trim {
        /// The job.
        job: String,
        /// The model the request is for.
        model: String,
        /// The prompt budget, tokens.
        budget_tokens: u64,
        /// The trimmed prompt's size by the worker's count, tokens.
        tokens: u64,
        /// Messages sent.
        kept: u64,
        /// Messages dropped.
        dropped: u64,
        /// Messages or documents cut short.
        cut: u64,
    },
    /// A request was sent.
    Request {
        /// The job.
        job: String,
        /// Its chat session.
        session: String,
        /// The model asked.
        model: String,
        /// 1 for the first attempt of the job.
        attempt: u32,
        /// Streamed (SSE) or not.
        stream: bool,
        /// The request's `max_tokens`.
        max_tokens: u64,
        /// The prompt's size by the worker's count, tokens.
        tokens: u64,
    },
    /// A request ended: an answer, an error response or a transport failure.
    Response {
        /// The job.
        job: String,
        /// The model asked.
        model: String,
        /// The attempt this answers.
        attempt: u32,
        /// The HTTP status; `None` on a transport failure.
        status: Option<u16>,
        /// Whether the job got its answer.
        ok: bool,
        /// From sending to the end of the body, ms.
        latency_ms: u64,
        /// The mock's `x-mock-fault` header, when it failed on purpose.
        fault: Option<String>,
        /// The failure's kind (failures only).
        kind: Option<String>,
        /// Whether the core calls it retryable (failures only).
        retryable: Option<bool>,
        /// The server's retry hint, ms.
        retry_after_ms: Option<u64>,
        /// The core's redacted message (failures only).
        message: Option<String>,
    },
    /// What the policy decided about a failure.
    Decision {
        /// The job.
        job: String,
        /// The attempt that failed (the attempts made so far: `0` for a job that holds for
        /// credit before its first request).
        attempt: u32,
        /// `retry`, `shrink`, `give-up`, `lower-max-tokens`, `fallback` or `hold-for-credit`
        /// (the account is out of credit: the job waits up to `after_ms` for a top-up).
        decision: String,
        /// The wait before the next attempt, ms (`hold-for-credit`: the longest hold,
        /// `credit_hold_ms`).
        after_ms: Option<u64>,
        /// The prompt size to shrink to, tokens (`shrink`), or the new `max_tokens`
        /// (`lower-max-tokens`).
        target_tokens: Option<u64>,
        /// Why (give-ups: the core's reason; fallbacks: the give-up or breaker that moved the
        /// job; holds: the account is out of credit).
        reason: Option<String>,
    },
    /// A breaker changed state.
    Breaker {
        /// The model.
        model: String,
        /// `closed`, `open`, `half-open`, `forced-open` or `disabled`.
        from: String,
        /// The new state.
        to: String,
    },
    /// A credit alert was raised or cleared.
    Alert {
        /// The core's alert name: `balance-warning`, `balance-critical`, `daily-spend` or
        /// `runway`.
        alert: String,
        /// `raised` or `cleared`.
        state: String,
        /// The value that crossed the threshold.
        value: f64,
    },
    /// A job finished.
    JobDone {
        /// The job.
        job: String,
        /// Its chat session.
        session: String,
        /// Whether it is on a long conversation.
        long: bool,
        /// `answered` or `failed`.
        outcome: String,
        /// The last failure's kind (failures only).
        kind: Option<String>,
        /// Requests sent for it.
        attempts: u32,
        /// Of which retries.
        retries: u32,
        /// Context shrinks after an overflow.
        shrinks: u32,
        /// The model that answered, or the last one asked.
        model: Option<String>,
    },
    /// The worker was asked to stop.
    Shutdown {
        /// `SIGINT`, `SIGTERM` or `cancel`.
        signal: String,
        /// Jobs in flight when it was asked.
        in_flight: u64,
        /// Of those, finished within the grace period.
        finished_in_grace: u64,
        /// Jobs written to the state directory for the next start.
        persisted: u64,
    },
    /// The run ended.
    RunEnd {
        /// Jobs answered in this run.
        answered: u64,
        /// Jobs that failed for good.
        failed: u64,
        /// Jobs persisted for the next start.
        persisted: u64,
        /// Jobs neither finished nor persisted. Must be 0.
        lost: u64,
    },
}

impl Event {
    /// One JSON line (no trailing newline).
    pub fn to_line(&self) -> String {
        // Serializing plain strings, numbers and options cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// Parses one line.
    pub fn from_line(line: &str) -> Result<Event, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// Parses a whole JSON Lines log; blank lines are skipped, a bad line is an error naming it.
pub fn parse_log(text: &str) -> Result<Vec<Event>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Event::from_line(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_round_trips_with_the_event_name_flattened() {
        let e = Event {
            t_ms: 12,
            body: EventBody::Rejected {
                job: "job-0001".into(),
                model: "openai/gpt-4o-mini".into(),
                retry_in_ms: 800,
            },
        };
        let line = e.to_line();
        assert_eq!(
            line,
            r#"{"t_ms":12,"event":"rejected","job":"job-0001","model":"openai/gpt-4o-mini","retry_in_ms":800}"#
        );
        assert_eq!(Event::from_line(&line).unwrap(), e);
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = parse_log("{\"t_ms\":1,\"event\":\"run_end\",\"answered\":1,\"failed\":0,\"persisted\":0,\"lost\":0}\n\nnot json").unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
    }
}
