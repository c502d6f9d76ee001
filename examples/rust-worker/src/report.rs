//! The side-by-side report: one run's event log summarised, ours beside naive, and the Go
//! service's claims checked against the measurement.
//!
//! # Why these metrics
//!
//! The Go service this library replaces claimed four things. Each is measured here from the
//! event log alone (`examples/scenarios/README.md`, "Events"), so a log from the Rust worker
//! and one from the Go worker are summarised by the same code:
//!
//! - **"−60 % unnecessary retries"** — a retry (a `request` with `attempt > 1`) is
//!   *unnecessary* when its `response` failed too: it cost a call, money and the provider's
//!   patience, and bought nothing. Measured: responses with `attempt > 1` and `ok == false`.
//!   The claim is met when ours ≤ 40 % of naive's.
//! - **"−80 % wasted calls during outages"** — a call sent to a provider that is down
//!   cannot succeed; a breaker exists to stop sending them. Measured: responses whose
//!   `fault` (the mock's `x-mock-fault` header) is `outage`. Met when ours ≤ 20 % of naive's.
//! - **"+15 % success on long conversations"** — long conversations overflow the window;
//!   trimming by tokens (instead of "keep 10 messages, then 5") decides whether the customer
//!   gets an answer. Measured: the share of `job_done` with `long: true` whose outcome is
//!   `answered`; the change is *relative* (ours' rate ÷ naive's rate − 1, not percentage
//!   points). Met when ours' rate ≥ 1.15 × naive's.
//! - **"zero lost jobs on shutdown"** — a job is lost when it is neither finished nor
//!   persisted for the next start. Measured twice: the `run_end` event's `lost`, and
//!   recomputed as `run_start.jobs − distinct jobs with a job_done − persisted`; a mismatch
//!   is flagged, and the larger of the two is what the claim is checked on.
//!
//! Every comparison is done in integers (cross-multiplied), so a measurement exactly on a
//! claim's threshold is judged exactly; a relative change against a naive count of 0 is
//! reported as `n/a (naive had 0)`, never divided.
//!
//! The other metrics explain those four: retries sent, retries avoided (below), failures by
//! kind, context shrinks and how many then succeeded, alerts, deferrals, fallbacks, breaker
//! openings, and job latency.
//!
//! Out of credit: `402 responses` counts the responses classified `quota-exhausted` (a call
//! sent into an empty account); `held for credit` counts the `hold-for-credit` decisions (a
//! job waiting for a top-up instead of calling), and `held then answered` the distinct jobs
//! that held and were answered in the end. A hold is not a give-up (only a `give-up` decision
//! is), and the attempt after a hold is a `request` with `attempt > 1`, so it counts as a
//! retry like any other.
//!
//! # Retries avoided, exactly
//!
//! The naive baseline retries *every* error, [`NAIVE_RETRIES`] times. So a call our policy
//! did not make, and naive would have, is one of:
//!
//! - a breaker `rejected` event (a call not sent because the model's breaker was open);
//! - a `give-up` decision whose `reason` is one of the core's give-up reasons
//!   ([`POLICY_GIVE_UP_REASONS`]: a permanent failure, attempts or the retry budget
//!   exhausted, a server wait or the deadline too long, nothing to shrink from) *and* whose
//!   failed `attempt` is ≤ [`NAIVE_RETRIES`] — naive, at that point, would still have
//!   retried. A give-up after more attempts than naive would make is not counted, nor is a
//!   give-up for another reason (e.g. a shutdown).
//!
//! Each such event counts once (a lower bound: naive might have retried more than once).
//!
//! # Robustness
//!
//! A log cut by a crash, a log missing `run_start`, or a log written by the Go worker (which
//! may write `""` or `0` where the Rust worker writes `null`) is summarised without panicking:
//! what is there is counted, and [`RunSummary::warnings`] says what was missing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventBody};

/// How many times the naive baseline retries every error (`policy.json`, `naive.retries`).
pub const NAIVE_RETRIES: u32 = 3;

/// The core's give-up reasons (kebab-case, as `GiveUpReason` serialises them): every one is a
/// failure the naive loop would have retried.
pub const POLICY_GIVE_UP_REASONS: [&str; 6] = [
    "permanent",
    "attempts-exhausted",
    "budget-exhausted",
    "wait-too-long",
    "deadline",
    "cannot-shrink",
];

/// The `run_end` event's counts, as the worker wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEndCounts {
    /// Jobs answered in this run.
    pub answered: u64,
    /// Jobs that failed for good.
    pub failed: u64,
    /// Jobs persisted for the next start.
    pub persisted: u64,
    /// Jobs neither finished nor persisted.
    pub lost: u64,
}

/// The `shutdown` event, when the run was asked to stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownInfo {
    /// `SIGINT`, `SIGTERM` or `cancel`.
    pub signal: String,
    /// Jobs in flight when it was asked.
    pub in_flight: u64,
    /// Of those, finished within the grace period.
    pub finished_in_grace: u64,
    /// Jobs written to the state directory.
    pub persisted: u64,
}

/// One run's log, summarised. Every count is computed from the events alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The scenario's name (`run_start`; `unknown` when the log has none).
    pub scenario: String,
    /// `ours` or `naive` (`unknown` when the log has no `run_start`).
    pub policy: String,
    /// `component`, `native` or `go` (`unknown` when the log has no `run_start`).
    pub surface: String,
    /// Jobs in the queue at the start (`run_start.jobs`); without a `run_start`, the distinct
    /// jobs named anywhere in the log.
    pub jobs: u64,
    /// Jobs resumed from a previous run's persisted state.
    pub resumed: u64,
    /// Distinct jobs with a `job_done`.
    pub jobs_done: u64,
    /// Distinct jobs whose (last) `job_done` says `answered`.
    pub answered: u64,
    /// Distinct jobs whose (last) `job_done` says `failed`.
    pub failed: u64,
    /// Failed jobs by their last failure's kind (`unspecified` when the log names none).
    pub failed_by_kind: BTreeMap<String, u64>,
    /// `request` events: calls sent.
    pub requests: u64,
    /// `request` events with `attempt > 1`.
    pub retries_sent: u64,
    /// `response` events with `attempt > 1` that failed: retries that bought nothing.
    pub unnecessary_retries: u64,
    /// `rejected` events: calls the breaker did not send.
    pub breaker_rejections: u64,
    /// `give-up` decisions on a failure naive would still have retried (module docs).
    pub give_ups_naive_would_retry: u64,
    /// Every `give-up` decision by its reason's tag (`other` when it is not a core reason).
    pub give_ups_by_reason: BTreeMap<String, u64>,
    /// `breaker_rejections + give_ups_naive_would_retry`.
    pub retries_avoided: u64,
    /// `response` events with `fault == "outage"`: calls sent to a provider that was down.
    pub calls_wasted_in_outages: u64,
    /// `shrink` decisions.
    pub shrinks: u64,
    /// Shrinks whose job's next `response` was an answer.
    pub shrinks_then_answered: u64,
    /// Distinct jobs with a `job_done` that says `long: true`.
    pub long_jobs: u64,
    /// Of those, answered.
    pub long_answered: u64,
    /// `alert` events with `state: raised`, by alert.
    pub alerts_raised: BTreeMap<String, u64>,
    /// `deferred` events: jobs the session's rate limit delayed.
    pub deferred: u64,
    /// `fallback` decisions.
    pub fallbacks: u64,
    /// `hold-for-credit` decisions: a job waited for a top-up instead of calling.
    #[serde(default)]
    pub holds_for_credit: u64,
    /// Distinct jobs with a `hold-for-credit` decision whose (last) `job_done` says `answered`.
    #[serde(default)]
    pub held_then_answered: u64,
    /// `response` events with `kind == "quota-exhausted"`: calls sent into an empty account.
    #[serde(default)]
    pub quota_exhausted_responses: u64,
    /// `breaker` transitions to `open`, by model.
    pub breaker_opens: BTreeMap<String, u64>,
    /// The `shutdown` event, if the run was asked to stop.
    pub shutdown: Option<ShutdownInfo>,
    /// Jobs persisted for the next start (`run_end`, else `shutdown`, else 0).
    pub persisted: u64,
    /// The `run_end` event's counts; `None` when the log was cut before it.
    pub run_end: Option<RunEndCounts>,
    /// `run_end.lost`, as the worker reported it.
    pub lost_reported: Option<u64>,
    /// `jobs − jobs_done − persisted` (never below 0).
    pub lost_recomputed: u64,
    /// The worker's `lost` and the recomputed one differ.
    pub lost_mismatch: bool,
    /// Median job latency, ms: from the job's first `request` to its `job_done`
    /// (nearest-rank); `None` when no job has both.
    pub latency_p50_ms: Option<u64>,
    /// 95th percentile of the same (nearest-rank).
    pub latency_p95_ms: Option<u64>,
    /// The log has exactly one `run_start` and a `run_end`.
    pub complete: bool,
    /// What was odd about the log (missing or repeated events, mismatched counts).
    pub warnings: Vec<String>,
}

/// A Go worker may write `""` where the Rust worker writes `null`.
fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Normalises a give-up reason to one of [`POLICY_GIVE_UP_REASONS`], or `other`.
///
/// Accepts the core's kebab-case tag, snake_case, CamelCase and prose ("attempts exhausted
/// (rate-limited, 4 retries)"): the earliest tag found in the normalised text wins.
pub fn reason_tag(reason: &str) -> &'static str {
    let mut norm = String::with_capacity(reason.len() + 8);
    let mut prev_lower = false;
    for c in reason.chars() {
        if c.is_uppercase() && prev_lower {
            norm.push('-');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        match c {
            '_' | ' ' => norm.push('-'),
            c => norm.extend(c.to_lowercase()),
        }
    }
    POLICY_GIVE_UP_REASONS
        .iter()
        .filter_map(|tag| norm.find(tag).map(|at| (at, *tag)))
        .min()
        .map_or("other", |(_, tag)| tag)
}

/// Nearest-rank percentile of a sorted, non-empty slice.
fn nearest_rank(sorted: &[u64], p: usize) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p * n).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    *map.entry(key.to_string()).or_insert(0) += 1;
}

impl RunSummary {
    /// Summarises one run's log, with the naive baseline retrying [`NAIVE_RETRIES`] times.
    pub fn from_events(events: &[Event]) -> RunSummary {
        Self::from_events_with(events, NAIVE_RETRIES)
    }

    /// Summarises one run's log, with the naive baseline retrying `naive_retries` times
    /// (used only for [`RunSummary::give_ups_naive_would_retry`]).
    pub fn from_events_with(events: &[Event], naive_retries: u32) -> RunSummary {
        let mut warnings = Vec::new();
        let mut start: Option<(String, String, String, u64, u64)> = None;
        let mut run_starts = 0u64;
        let mut run_ends = 0u64;
        let mut run_end: Option<RunEndCounts> = None;
        let mut shutdown: Option<ShutdownInfo> = None;
        let mut seen_jobs: BTreeSet<&str> = BTreeSet::new();
        // job → (outcome answered?, long, kind) of its last job_done, and its time.
        let mut done: BTreeMap<&str, (bool, bool, Option<&str>, u64)> = BTreeMap::new();
        let mut duplicate_done = 0u64;
        let mut first_request: BTreeMap<&str, u64> = BTreeMap::new();
        // job → shrinks waiting for the job's next response.
        let mut pending_shrinks: BTreeMap<&str, u64> = BTreeMap::new();
        let mut held: BTreeSet<&str> = BTreeSet::new();
        let mut s = RunSummary {
            scenario: "unknown".into(),
            policy: "unknown".into(),
            surface: "unknown".into(),
            jobs: 0,
            resumed: 0,
            jobs_done: 0,
            answered: 0,
            failed: 0,
            failed_by_kind: BTreeMap::new(),
            requests: 0,
            retries_sent: 0,
            unnecessary_retries: 0,
            breaker_rejections: 0,
            give_ups_naive_would_retry: 0,
            give_ups_by_reason: BTreeMap::new(),
            retries_avoided: 0,
            calls_wasted_in_outages: 0,
            shrinks: 0,
            shrinks_then_answered: 0,
            long_jobs: 0,
            long_answered: 0,
            alerts_raised: BTreeMap::new(),
            deferred: 0,
            fallbacks: 0,
            holds_for_credit: 0,
            held_then_answered: 0,
            quota_exhausted_responses: 0,
            breaker_opens: BTreeMap::new(),
            shutdown: None,
            persisted: 0,
            run_end: None,
            lost_reported: None,
            lost_recomputed: 0,
            lost_mismatch: false,
            latency_p50_ms: None,
            latency_p95_ms: None,
            complete: false,
            warnings: Vec::new(),
        };

        for e in events {
            match &e.body {
                EventBody::RunStart {
                    scenario,
                    policy,
                    surface,
                    jobs,
                    resumed,
                } => {
                    run_starts += 1;
                    if start.is_none() {
                        start = Some((
                            scenario.clone(),
                            policy.clone(),
                            surface.clone(),
                            *jobs,
                            *resumed,
                        ));
                    }
                }
                EventBody::Deferred { job, .. } => {
                    seen_jobs.insert(job);
                    s.deferred += 1;
                }
                EventBody::Rejected { job, .. } => {
                    seen_jobs.insert(job);
                    s.breaker_rejections += 1;
                }
                EventBody::Trim { job, .. } => {
                    seen_jobs.insert(job);
                }
                EventBody::Request { job, attempt, .. } => {
                    seen_jobs.insert(job);
                    s.requests += 1;
                    if *attempt > 1 {
                        s.retries_sent += 1;
                    }
                    first_request.entry(job).or_insert(e.t_ms);
                }
                EventBody::Response {
                    job,
                    attempt,
                    ok,
                    fault,
                    kind,
                    ..
                } => {
                    seen_jobs.insert(job);
                    if present(kind) == Some("quota-exhausted") {
                        s.quota_exhausted_responses += 1;
                    }
                    if *attempt > 1 && !ok {
                        s.unnecessary_retries += 1;
                    }
                    if present(fault) == Some("outage") {
                        s.calls_wasted_in_outages += 1;
                    }
                    if let Some(n) = pending_shrinks.remove(job.as_str())
                        && *ok
                    {
                        s.shrinks_then_answered += n;
                    }
                }
                EventBody::Decision {
                    job,
                    attempt,
                    decision,
                    reason,
                    ..
                } => {
                    seen_jobs.insert(job);
                    match decision.as_str() {
                        "shrink" => {
                            s.shrinks += 1;
                            *pending_shrinks.entry(job).or_insert(0) += 1;
                        }
                        "fallback" => s.fallbacks += 1,
                        "hold-for-credit" => {
                            s.holds_for_credit += 1;
                            held.insert(job);
                        }
                        "give-up" | "give_up" | "giveup" => {
                            let tag = present(reason).map_or("other", reason_tag);
                            bump(&mut s.give_ups_by_reason, tag);
                            if tag != "other" && *attempt <= naive_retries {
                                s.give_ups_naive_would_retry += 1;
                            }
                        }
                        _ => {}
                    }
                }
                EventBody::Breaker { model, to, .. } => {
                    if to == "open" {
                        bump(&mut s.breaker_opens, model);
                    }
                }
                EventBody::Alert { alert, state, .. } => {
                    if state == "raised" {
                        bump(&mut s.alerts_raised, alert);
                    }
                }
                EventBody::JobDone {
                    job,
                    long,
                    outcome,
                    kind,
                    ..
                } => {
                    seen_jobs.insert(job);
                    let entry = (outcome == "answered", *long, present(kind), e.t_ms);
                    if done.insert(job, entry).is_some() {
                        duplicate_done += 1;
                    }
                }
                EventBody::Shutdown {
                    signal,
                    in_flight,
                    finished_in_grace,
                    persisted,
                } => {
                    shutdown = Some(ShutdownInfo {
                        signal: signal.clone(),
                        in_flight: *in_flight,
                        finished_in_grace: *finished_in_grace,
                        persisted: *persisted,
                    });
                }
                EventBody::RunEnd {
                    answered,
                    failed,
                    persisted,
                    lost,
                } => {
                    run_ends += 1;
                    run_end = Some(RunEndCounts {
                        answered: *answered,
                        failed: *failed,
                        persisted: *persisted,
                        lost: *lost,
                    });
                }
            }
        }

        match start {
            Some((scenario, policy, surface, jobs, resumed)) => {
                s.scenario = scenario;
                s.policy = policy;
                s.surface = surface;
                s.jobs = jobs;
                s.resumed = resumed;
            }
            None => {
                s.jobs = seen_jobs.len() as u64;
                warnings.push(
                    "no run_start: jobs counted from the jobs the log names (a lower bound)".into(),
                );
            }
        }
        if run_starts > 1 {
            warnings.push(format!(
                "{run_starts} run_start events: the first one is used"
            ));
        }
        if run_ends == 0 {
            warnings.push("no run_end: the log was cut mid-run".into());
        } else if run_ends > 1 {
            warnings.push(format!("{run_ends} run_end events: the last one is used"));
        }
        if duplicate_done > 0 {
            warnings.push(format!(
                "{duplicate_done} repeated job_done: each job counted once, by its last one"
            ));
        }

        let mut latencies = Vec::new();
        for (job, (answered, long, kind, t_done)) in &done {
            if *answered {
                s.answered += 1;
                if held.contains(job) {
                    s.held_then_answered += 1;
                }
            } else {
                s.failed += 1;
                bump(&mut s.failed_by_kind, kind.unwrap_or("unspecified"));
            }
            if *long {
                s.long_jobs += 1;
                if *answered {
                    s.long_answered += 1;
                }
            }
            if let Some(t0) = first_request.get(job) {
                latencies.push(t_done.saturating_sub(*t0));
            }
        }
        latencies.sort_unstable();
        s.latency_p50_ms = nearest_rank(&latencies, 50);
        s.latency_p95_ms = nearest_rank(&latencies, 95);
        s.jobs_done = done.len() as u64;
        s.retries_avoided = s.breaker_rejections + s.give_ups_naive_would_retry;

        s.persisted = run_end
            .map(|r| r.persisted)
            .or(shutdown.as_ref().map(|sd| sd.persisted))
            .unwrap_or(0);
        s.lost_recomputed = s
            .jobs
            .saturating_sub(s.jobs_done)
            .saturating_sub(s.persisted);
        s.lost_reported = run_end.map(|r| r.lost);
        if let Some(r) = run_end {
            if r.lost != s.lost_recomputed {
                s.lost_mismatch = true;
                warnings.push(format!(
                    "lost mismatch: run_end says {}, recomputed {} ({} jobs − {} done − {} persisted)",
                    r.lost, s.lost_recomputed, s.jobs, s.jobs_done, s.persisted
                ));
            }
            if r.answered != s.answered || r.failed != s.failed {
                warnings.push(format!(
                    "run_end says {} answered / {} failed, job_done events say {} / {}",
                    r.answered, r.failed, s.answered, s.failed
                ));
            }
        }
        if s.jobs_done > s.jobs {
            warnings.push(format!(
                "{} jobs done but run_start announced {}",
                s.jobs_done, s.jobs
            ));
        }
        s.run_end = run_end;
        s.shutdown = shutdown;
        s.complete = run_starts == 1 && run_ends >= 1;
        s.warnings = warnings;
        s
    }

    /// The jobs lost, as the claim is checked: the larger of the reported and the recomputed
    /// count (a log cut before `run_end` counts the unfinished, unpersisted jobs).
    pub fn lost(&self) -> u64 {
        self.lost_reported.unwrap_or(0).max(self.lost_recomputed)
    }
}

/// Whether a measurement meets a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The measurement is at least as good as the claim.
    Meets,
    /// The measurement falls short of the claim.
    Misses,
    /// Nothing to measure (e.g. naive had 0 unnecessary retries and so had ours, or the
    /// scenario has no long conversations).
    NotMeasurable,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Meets => "MEETS",
            Verdict::Misses => "MISSES",
            Verdict::NotMeasurable => "n/a",
        }
    }
}

/// One of the Go service's claims, checked against a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimCheck {
    /// A stable id: `unnecessary-retries`, `wasted-outage-calls`, `long-success`, `lost-jobs`.
    pub id: String,
    /// The claim as the Go service wrote it.
    pub claim: String,
    /// Ours' measured value (a count, or for `long-success` a rate in 0..=1).
    pub ours: f64,
    /// Naive's measured value, same unit.
    pub naive: f64,
    /// The relative change in percent (`(ours − naive) / naive × 100`); `None` when naive
    /// had 0 or there was nothing to measure.
    pub change_percent: Option<f64>,
    /// The measurement in words, e.g. `ours 4, naive 10: -60.0 %`.
    pub measured: String,
    /// Whether the measurement meets the claim.
    pub verdict: Verdict,
}

/// The counts the claims are computed from; summed over scenarios for the aggregate.
#[derive(Debug, Clone, Copy, Default)]
struct ClaimInputs {
    unnecessary: u64,
    wasted: u64,
    long_jobs: u64,
    long_answered: u64,
    lost: u64,
    shutdowns: u64,
}

impl ClaimInputs {
    fn of(s: &RunSummary) -> ClaimInputs {
        ClaimInputs {
            unnecessary: s.unnecessary_retries,
            wasted: s.calls_wasted_in_outages,
            long_jobs: s.long_jobs,
            long_answered: s.long_answered,
            lost: s.lost(),
            shutdowns: u64::from(s.shutdown.is_some()),
        }
    }

    fn add(self, o: ClaimInputs) -> ClaimInputs {
        ClaimInputs {
            unnecessary: self.unnecessary.saturating_add(o.unnecessary),
            wasted: self.wasted.saturating_add(o.wasted),
            long_jobs: self.long_jobs.saturating_add(o.long_jobs),
            long_answered: self.long_answered.saturating_add(o.long_answered),
            lost: self.lost.saturating_add(o.lost),
            shutdowns: self.shutdowns.saturating_add(o.shutdowns),
        }
    }
}

fn pct(change: f64) -> String {
    format!("{change:+.1} %")
}

/// A "−R %" claim: met when `ours ≤ (100 − R) % of naive`, compared in integers.
fn reduction_claim(
    id: &str,
    claim: &str,
    reduce_percent: u64,
    ours: u64,
    naive: u64,
) -> ClaimCheck {
    let (change_percent, measured, verdict) = if naive == 0 {
        let verdict = if ours == 0 {
            Verdict::NotMeasurable
        } else {
            Verdict::Misses
        };
        (
            None,
            format!("ours {ours}, naive {naive}: n/a (naive had 0)"),
            verdict,
        )
    } else {
        let change = (ours as f64 - naive as f64) * 100.0 / naive as f64;
        let meets =
            u128::from(ours) * 100 <= u128::from(naive) * u128::from(100 - reduce_percent.min(100));
        (
            Some(change),
            format!("ours {ours}, naive {naive}: {}", pct(change)),
            if meets {
                Verdict::Meets
            } else {
                Verdict::Misses
            },
        )
    };
    ClaimCheck {
        id: id.into(),
        claim: claim.into(),
        ours: ours as f64,
        naive: naive as f64,
        change_percent,
        measured,
        verdict,
    }
}

fn rate(answered: u64, jobs: u64) -> f64 {
    if jobs == 0 {
        0.0
    } else {
        answered as f64 / jobs as f64
    }
}

/// "+15 % success on long conversations": relative change of the answered share.
fn long_success_claim(o: ClaimInputs, n: ClaimInputs) -> ClaimCheck {
    let claim = "+15 % success on long conversations";
    let (ro, rn) = (
        rate(o.long_answered, o.long_jobs),
        rate(n.long_answered, n.long_jobs),
    );
    let shares = format!(
        "ours {}/{} ({:.1} %), naive {}/{} ({:.1} %)",
        o.long_answered,
        o.long_jobs,
        ro * 100.0,
        n.long_answered,
        n.long_jobs,
        rn * 100.0
    );
    let (change_percent, measured, verdict) = if o.long_jobs == 0 || n.long_jobs == 0 {
        (
            None,
            format!("{shares}: n/a (no long conversations)"),
            Verdict::NotMeasurable,
        )
    } else if n.long_answered == 0 {
        let verdict = if o.long_answered > 0 {
            Verdict::Meets
        } else {
            Verdict::Misses
        };
        (None, format!("{shares}: n/a (naive had 0)"), verdict)
    } else {
        // (oa/on) / (na/nn) − 1 = (oa·nn − na·on) / (na·on), from integers.
        let (cross_o, cross_n) = (
            u128::from(o.long_answered) * u128::from(n.long_jobs),
            u128::from(n.long_answered) * u128::from(o.long_jobs),
        );
        let change = (cross_o as f64 - cross_n as f64) * 100.0 / cross_n as f64;
        // ours_a / ours_n ≥ 1.15 × naive_a / naive_n, cross-multiplied.
        let meets = cross_o * 100 >= cross_n * 115;
        (
            Some(change),
            format!("{shares}: {} ({:+.1} pp)", pct(change), (ro - rn) * 100.0),
            if meets {
                Verdict::Meets
            } else {
                Verdict::Misses
            },
        )
    };
    ClaimCheck {
        id: "long-success".into(),
        claim: claim.into(),
        ours: ro,
        naive: rn,
        change_percent,
        measured,
        verdict,
    }
}

fn claims_of(o: ClaimInputs, n: ClaimInputs) -> Vec<ClaimCheck> {
    let shutdown_note = if o.shutdowns == 0 {
        " (no shutdown in ours' run)"
    } else {
        ""
    };
    vec![
        reduction_claim(
            "unnecessary-retries",
            "−60 % unnecessary retries",
            60,
            o.unnecessary,
            n.unnecessary,
        ),
        reduction_claim(
            "wasted-outage-calls",
            "−80 % wasted calls during outages",
            80,
            o.wasted,
            n.wasted,
        ),
        long_success_claim(o, n),
        ClaimCheck {
            id: "lost-jobs".into(),
            claim: "zero lost jobs on shutdown".into(),
            ours: o.lost as f64,
            naive: n.lost as f64,
            change_percent: None,
            measured: format!("ours lost {}, naive lost {}{shutdown_note}", o.lost, n.lost),
            verdict: if o.lost == 0 {
                Verdict::Meets
            } else {
                Verdict::Misses
            },
        },
    ]
}

/// The four claims for one scenario, ours against naive.
pub fn claims(ours: &RunSummary, naive: &RunSummary) -> Vec<ClaimCheck> {
    claims_of(ClaimInputs::of(ours), ClaimInputs::of(naive))
}

/// The four claims over all scenarios: counts summed, then compared.
pub fn aggregate_claims(runs: &[(String, RunSummary, RunSummary)]) -> Vec<ClaimCheck> {
    let (o, n) = runs.iter().fold(
        (ClaimInputs::default(), ClaimInputs::default()),
        |(o, n), (_, ours, naive)| (o.add(ClaimInputs::of(ours)), n.add(ClaimInputs::of(naive))),
    );
    claims_of(o, n)
}

/// One scenario in [`to_json`]'s output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioComparison {
    /// The scenario's name.
    pub scenario: String,
    /// Our policy's run.
    pub ours: RunSummary,
    /// The naive baseline's run.
    pub naive: RunSummary,
    /// The claims checked on this scenario.
    pub claims: Vec<ClaimCheck>,
}

/// [`to_json`]'s whole output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// One entry per scenario, in the order given.
    pub scenarios: Vec<ScenarioComparison>,
    /// The claims over all scenarios together.
    pub aggregate_claims: Vec<ClaimCheck>,
}

/// Builds the machine-readable comparison.
pub fn compare(runs: &[(String, RunSummary, RunSummary)]) -> Comparison {
    Comparison {
        scenarios: runs
            .iter()
            .map(|(name, ours, naive)| ScenarioComparison {
                scenario: name.clone(),
                ours: ours.clone(),
                naive: naive.clone(),
                claims: claims(ours, naive),
            })
            .collect(),
        aggregate_claims: aggregate_claims(runs),
    }
}

/// The comparison as pretty-printed JSON, for machines (CI, the README's figures).
pub fn to_json(runs: &[(String, RunSummary, RunSummary)]) -> String {
    // Plain strings, numbers, maps and options: serialising cannot fail. A non-finite float
    // (none is produced) would become `null`.
    serde_json::to_string_pretty(&compare(runs)).unwrap_or_else(|_| String::from("{}"))
}

fn opt_ms(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v} ms"))
}

/// Rows of a plain-text table, padded by characters (not bytes).
struct Table {
    rows: Vec<[String; 3]>,
}

impl Table {
    fn row(&mut self, metric: impl Into<String>, ours: impl ToString, naive: impl ToString) {
        self.rows
            .push([metric.into(), ours.to_string(), naive.to_string()]);
    }

    fn map_rows(
        &mut self,
        prefix: &str,
        ours: &BTreeMap<String, u64>,
        naive: &BTreeMap<String, u64>,
    ) {
        let keys: BTreeSet<&String> = ours.keys().chain(naive.keys()).collect();
        for k in keys {
            self.row(
                format!("  {prefix}{k}"),
                ours.get(k).copied().unwrap_or(0),
                naive.get(k).copied().unwrap_or(0),
            );
        }
    }

    fn render(&self, out: &mut String) {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        };
        let (w0, w1, w2) = (width(0), width(1), width(2));
        for (i, r) in self.rows.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {:<w0$}  {:>w1$}  {:>w2$}",
                r[0],
                r[1],
                r[2],
                w0 = w0,
                w1 = w1,
                w2 = w2
            );
            if i == 0 {
                let _ = writeln!(out, "  {}", "-".repeat(w0 + w1 + w2 + 4));
            }
        }
    }
}

fn claim_lines(out: &mut String, claims: &[ClaimCheck]) {
    let w = claims
        .iter()
        .map(|c| c.claim.chars().count())
        .max()
        .unwrap_or(0);
    for c in claims {
        let pad = w - c.claim.chars().count();
        let _ = writeln!(
            out,
            "  {}{}  {:<6}  {}",
            c.claim,
            " ".repeat(pad),
            c.verdict.label(),
            c.measured
        );
    }
}

/// The plain-text report: per scenario a table (one row per metric, ours beside naive) and
/// the claims checked on it, then the claims over all scenarios together.
pub fn side_by_side(runs: &[(String, RunSummary, RunSummary)]) -> String {
    let mut out = String::new();
    for (name, o, n) in runs {
        let _ = writeln!(out, "== {name} ==");
        let mut t = Table { rows: Vec::new() };
        t.row(
            "metric",
            format!("ours ({})", o.surface),
            format!("naive ({})", n.surface),
        );
        t.row("jobs", o.jobs, n.jobs);
        t.row("resumed", o.resumed, n.resumed);
        t.row("answered", o.answered, n.answered);
        t.row("failed", o.failed, n.failed);
        t.map_rows("failed: ", &o.failed_by_kind, &n.failed_by_kind);
        t.row("requests sent", o.requests, n.requests);
        t.row("retries sent", o.retries_sent, n.retries_sent);
        t.row(
            "unnecessary retries (failed again)",
            o.unnecessary_retries,
            n.unnecessary_retries,
        );
        t.row("retries avoided", o.retries_avoided, n.retries_avoided);
        t.row(
            "  breaker rejections",
            o.breaker_rejections,
            n.breaker_rejections,
        );
        t.row(
            "  give-ups naive would retry",
            o.give_ups_naive_would_retry,
            n.give_ups_naive_would_retry,
        );
        t.map_rows("give-up: ", &o.give_ups_by_reason, &n.give_ups_by_reason);
        t.row(
            "calls wasted during outages",
            o.calls_wasted_in_outages,
            n.calls_wasted_in_outages,
        );
        t.row("context shrinks", o.shrinks, n.shrinks);
        t.row(
            "  then answered",
            o.shrinks_then_answered,
            n.shrinks_then_answered,
        );
        t.row("long conversations", o.long_jobs, n.long_jobs);
        t.row("  answered", o.long_answered, n.long_answered);
        t.row(
            "alerts raised",
            o.alerts_raised.values().sum::<u64>(),
            n.alerts_raised.values().sum::<u64>(),
        );
        t.map_rows("alert: ", &o.alerts_raised, &n.alerts_raised);
        t.row("deferred (session rate limit)", o.deferred, n.deferred);
        t.row("fallbacks", o.fallbacks, n.fallbacks);
        t.row(
            "402 responses",
            o.quota_exhausted_responses,
            n.quota_exhausted_responses,
        );
        t.row("held for credit", o.holds_for_credit, n.holds_for_credit);
        t.row(
            "  held then answered",
            o.held_then_answered,
            n.held_then_answered,
        );
        t.row(
            "breaker opens",
            o.breaker_opens.values().sum::<u64>(),
            n.breaker_opens.values().sum::<u64>(),
        );
        t.map_rows("opened: ", &o.breaker_opens, &n.breaker_opens);
        let sd = |s: &RunSummary| {
            s.shutdown.as_ref().map_or_else(
                || "-".to_string(),
                |sd| {
                    format!(
                        "{} ({}/{} in grace)",
                        sd.signal, sd.finished_in_grace, sd.in_flight
                    )
                },
            )
        };
        t.row("shutdown", sd(o), sd(n));
        t.row("persisted", o.persisted, n.persisted);
        let lost_reported = |s: &RunSummary| {
            s.lost_reported
                .map_or_else(|| "- (no run_end)".to_string(), |v| v.to_string())
        };
        t.row("lost (run_end)", lost_reported(o), lost_reported(n));
        let lost_re = |s: &RunSummary| {
            if s.lost_mismatch {
                format!("{} MISMATCH", s.lost_recomputed)
            } else {
                s.lost_recomputed.to_string()
            }
        };
        t.row("lost (recomputed)", lost_re(o), lost_re(n));
        t.row(
            "job latency p50",
            opt_ms(o.latency_p50_ms),
            opt_ms(n.latency_p50_ms),
        );
        t.row(
            "job latency p95",
            opt_ms(o.latency_p95_ms),
            opt_ms(n.latency_p95_ms),
        );
        t.render(&mut out);
        for (who, s) in [("ours", o), ("naive", n)] {
            if s.scenario != *name {
                let _ = writeln!(out, "  ! {who}: log's scenario is {:?}", s.scenario);
            }
            for w in &s.warnings {
                let _ = writeln!(out, "  ! {who}: {w}");
            }
        }
        let _ = writeln!(out, "  claims:");
        claim_lines(&mut out, &claims(o, n));
        out.push('\n');
    }
    let _ = writeln!(out, "== all {} scenarios: claims ==", runs.len());
    claim_lines(&mut out, &aggregate_claims(runs));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn give_up_reasons_are_recognised_in_any_spelling() {
        assert_eq!(reason_tag("attempts-exhausted"), "attempts-exhausted");
        assert_eq!(reason_tag("attempts_exhausted"), "attempts-exhausted");
        assert_eq!(reason_tag("AttemptsExhausted"), "attempts-exhausted");
        assert_eq!(
            reason_tag("attempts exhausted (rate-limited, 4 retries)"),
            "attempts-exhausted"
        );
        assert_eq!(reason_tag("BudgetExhausted"), "budget-exhausted");
        assert_eq!(reason_tag("wait too long: 90000 ms"), "wait-too-long");
        assert_eq!(reason_tag("permanent (auth)"), "permanent");
        assert_eq!(reason_tag("cannot-shrink"), "cannot-shrink");
        assert_eq!(reason_tag("Deadline"), "deadline");
        assert_eq!(reason_tag("shutdown"), "other");
        assert_eq!(reason_tag(""), "other");
    }

    #[test]
    fn nearest_rank_percentiles() {
        // n = 20: p50 is the 10th value, p95 the 19th.
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(nearest_rank(&v, 50), Some(10));
        assert_eq!(nearest_rank(&v, 95), Some(19));
        assert_eq!(nearest_rank(&[7], 95), Some(7));
        assert_eq!(nearest_rank(&[], 50), None);
    }

    #[test]
    fn a_give_up_after_more_attempts_than_naive_makes_is_not_avoided() {
        let give_up = |attempt: u32, reason: &str| Event {
            t_ms: 1,
            body: EventBody::Decision {
                job: "j".into(),
                attempt,
                decision: "give-up".into(),
                after_ms: None,
                target_tokens: None,
                reason: Some(reason.into()),
            },
        };
        // Attempt 3 ≤ 3 counts; attempt 4 and a shutdown give-up do not.
        let events = [
            give_up(3, "attempts-exhausted"),
            give_up(4, "attempts-exhausted"),
            give_up(1, "shutdown"),
        ];
        let s = RunSummary::from_events(&events);
        assert_eq!(s.give_ups_naive_would_retry, 1);
        assert_eq!(s.give_ups_by_reason.get("attempts-exhausted"), Some(&2));
        assert_eq!(s.give_ups_by_reason.get("other"), Some(&1));
        // With a naive baseline of 5 retries, attempt 4 counts too.
        assert_eq!(
            RunSummary::from_events_with(&events, 5).give_ups_naive_would_retry,
            2
        );
    }
}
