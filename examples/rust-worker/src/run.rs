//! The worker loop: jobs arrive, wait for their session's rate limit, pick a model, trim, send,
//! and let the policy engine decide about every failure.
//!
//! Why the fallback order is the policy's `models` list: the first model is the one the bot is
//! tuned for; the next ones are only used while the first one's breaker refuses calls, so a
//! provider outage costs a few calls (the ones that open the breaker) instead of one per
//! message, and traffic goes back to the first model as soon as a probe succeeds.
//!
//! Why a job falls back to the next model when the retry policy gives up on one: the give-up
//! (attempts exhausted, a server wait too long, a permanent not-found, or the retry budget
//! empty) is a verdict about *this* provider, and only when the failure counts against the
//! provider (the breaker's `counted_kinds`, or `not-found`: the model is gone). The next model
//! of `policy.models` is another provider, with its own health, so the job moves there once
//! (at most once per model; from then on it only considers models from that index on), with a
//! fresh retry call (its own attempt and budget accounting), and a `fallback` decision naming
//! the give-up reason and the kind. It never moves past the job's deadline (the retry
//! config's `deadline_ms` from the job's start): a fallen-back job gives up rather than wait
//! beyond it. A failure of the request itself (auth, invalid request, moderation, quota) is
//! not the provider's fault and would fail on every model: it still gives up. This is the Go
//! worker's `fallbackAfter` rule, so the two workers decide alike.
//!
//! Why jobs hold for credit (`credit_hold_ms`): a 402 that no lower `max_tokens` can fix is
//! a fact about the *account*, not the call. The first one marks the shared
//! [`CreditGate`] dry; every job of the run then holds before its next request (one
//! `hold-for-credit` decision per job per dry period) instead of sending it into a known 402,
//! until `credit_hold_ms` after the account went dry (later jobs then fail at once), and all
//! holders go on as soon as the credit poller sees a top-up. A job that held after a 402 counts its next attempt as a retry; one whose hold
//! times out gives up (`quota-exhausted`). A hold is an await like any other: a shutdown
//! persists the holding job with its counts. `credit_hold_ms: 0` keeps the old behaviour
//! (the core calls the 402 permanent and the job gives up).
//!
//! Why a service-wide retry budget (inside the engine): when everything fails at once, per-call
//! retry limits still multiply the load by the retry count; the budget caps retries to a share
//! of the traffic, so an outage is not made worse by the clients.
//!
//! Shutdown: a cancel (SIGINT/SIGTERM in the binary, [`CancelHandle::cancel`] in-process)
//! stops taking jobs, lets in-flight jobs finish for `shutdown_grace_ms`, then cancels the rest
//! at their next await (releasing their breaker permits). Every job the run took is then
//! answered, failed or persisted; `lost` is computed from those counts, not assumed.
//!
//! Crashes (with a state directory): the write-ahead journal ([`crate::journal`]) has every job
//! of the queue before the first is taken, and every end before it is counted (`conclude`:
//! journal, then `job_done`, then the count), so a restart de-duplicates by job id and resumes
//! the rest; snapshots go to the journal every [`SNAPSHOT_INTERVAL_MS`]. The state directory is
//! checked first, so one that cannot be written stops the start before any job is taken.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llm_resilience::breaker::{BreakerConfig, Outcome, Permit, State};
use llm_resilience::chat::{Message, Role};
use llm_resilience::context::{ContextBudget, ContextError, TrimInput};
use llm_resilience::credits::AlertState;
use llm_resilience::ratelimit::Verdict;
use llm_resilience::retry::{Decision, GiveUpReason};
use llm_resilience::{Classification, ClassifyInput, ErrorKind};
use mock_openrouter::workload::{Job, Jobs};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::client::{CallResult, Client, Stopwatch};
use crate::credit_gate::{CreditGate, HoldEnd};
use crate::engine::{Engine, EngineChoice, EngineConfig, EngineError, job_seed};
use crate::events::{Event, EventBody};
use crate::journal::{
    self, JobOutcome, Journal, JournalError, JournalOptions, Live, Record, SNAPSHOT_INTERVAL_MS,
};
use crate::log::EventLog;
use crate::policy::Policy;
use crate::state::{self, PersistedJob};

/// How long to wait before asking again a breaker that gives no time (forced open), ms.
const RECHECK_MS: u64 = 1_000;

/// The reason of a `hold-for-credit` decision.
const HOLD_REASON: &str = "account out of credit: waiting for a top-up";

/// The `shutdown` event's `signal` when the run stopped itself because the journal failed.
pub const JOURNAL_ERROR_SIGNAL: &str = "journal-error";

/// The reason of the give-up after a hold that timed out.
const HOLD_TIMEOUT_REASON: &str = "credit did not return within credit_hold_ms";

/// Stops a run from another task: the binary's signal handler, or the demo.
#[derive(Debug, Clone)]
pub struct CancelHandle {
    tx: Arc<watch::Sender<Option<String>>>,
}

impl Default for CancelHandle {
    fn default() -> Self {
        CancelHandle::new()
    }
}

impl CancelHandle {
    /// A handle nobody has cancelled yet.
    pub fn new() -> CancelHandle {
        CancelHandle {
            tx: Arc::new(watch::channel(None).0),
        }
    }

    /// Asks the run to stop; `signal` names why (`SIGINT`, `SIGTERM`, `cancel`). The first
    /// request wins.
    pub fn cancel(&self, signal: &str) {
        self.tx.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(signal.to_string());
                true
            } else {
                false
            }
        });
    }

    fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.tx.subscribe()
    }
}

/// What to run.
pub struct RunOptions {
    /// The workload (system prompt, documents, jobs).
    pub jobs: Jobs,
    /// The policy file.
    pub policy: Policy,
    /// Run the naive baseline instead of the policy.
    pub naive: bool,
    /// Which engine to build.
    pub engine: EngineChoice,
    /// The API base URL (`…/api/v1`).
    pub base_url: String,
    /// The API key (only ever sent in the `Authorization` header).
    pub api_key: String,
    /// Where the JSON Lines go (`None`: kept in memory only).
    pub events: Option<Box<dyn std::io::Write + Send>>,
    /// The file `events` writes to, when it is one: with a state directory, the next start
    /// reads it back to find the `job_done` lines a crash kept from being written.
    pub events_path: Option<PathBuf>,
    /// Where to persist and resume.
    pub state_dir: Option<PathBuf>,
    /// Show the progress bar (when stderr is a terminal).
    pub progress: bool,
    /// Stops the run.
    pub cancel: CancelHandle,
    /// Take at most this many jobs from the queue.
    pub max_jobs: Option<usize>,
    /// A mock's `POST /mock/reset` URL: called right before the first job is taken, so the
    /// scenario's clock (fault windows, arrivals) starts with the run's, however long the
    /// engine took to load.
    pub mock_reset: Option<String>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("scenario", &self.jobs.scenario)
            .field("naive", &self.naive)
            .field("engine", &self.engine)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Every event of the run.
    pub events: Vec<Event>,
    /// Jobs answered.
    pub answered: u64,
    /// Jobs failed for good.
    pub failed: u64,
    /// Jobs persisted for the next start.
    pub persisted: u64,
    /// Jobs neither finished nor persisted.
    pub lost: u64,
    /// Jobs resumed from a previous run.
    pub resumed: u64,
    /// A write error of the event sink, if one happened.
    pub log_error: Option<String>,
    /// The journal's first failure, if one happened (the run then stopped taking jobs).
    pub journal_error: Option<String>,
}

/// Why a run could not start or finish its bookkeeping.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The engine could not be built.
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    /// The HTTP client failed before the jobs started.
    #[error("{0}")]
    Client(#[from] crate::client::ClientError),
    /// The state directory could not be read or written.
    #[error("{0}")]
    State(#[from] state::StateError),
    /// The state belongs to another scenario.
    #[error("state directory holds jobs of scenario {found}, not {expected}")]
    OtherScenario {
        /// The scenario asked for.
        expected: String,
        /// The state's.
        found: String,
    },
    /// A model of the policy is not served.
    #[error("model {0} is not in GET /models")]
    UnknownModel(String),
    /// The journal could not take the queue's jobs at the start (no job was taken).
    #[error("{0}")]
    Journal(#[from] JournalError),
}

/// Everything a job task shares.
struct Ctx {
    engine: Box<dyn Engine>,
    client: Client,
    policy: Policy,
    log: Arc<EventLog>,
    system: String,
    documents: Vec<String>,
    budgets: HashMap<String, ContextBudget>,
    clock_start: Instant,
    clock_base: u64,
    hard_cancel: watch::Receiver<bool>,
    breaker_seen: Mutex<HashMap<String, State>>,
    results: Mutex<Results>,
    progress: indicatif::ProgressBar,
    gate: CreditGate,
    /// The kinds that count against a provider (the breaker's `counted_kinds`).
    counted_kinds: BTreeSet<ErrorKind>,
    /// The retry config's `deadline_ms` (`None`: no deadline).
    deadline_ms: Option<u64>,
    /// The write-ahead journal (with `--state`).
    journal: Option<Journal>,
    /// The run's own cancel handle (a failed journal stops the run).
    cancel: CancelHandle,
    /// The journal's first failure.
    journal_error: Mutex<Option<String>>,
}

#[derive(Default)]
struct Results {
    answered: u64,
    failed: u64,
    unfinished: Vec<PersistedJob>,
}

/// The job was cancelled at an await point.
struct Cancelled;

enum JobEnd {
    Answered,
    Failed,
    Unfinished(PersistedJob),
}

impl Ctx {
    /// The engine clock: continues from the previous run's state.
    fn now(&self) -> u64 {
        // Saturating: a clock base near u64::MAX (a state the journal would reject) must not
        // panic here either.
        self.clock_base.saturating_add(
            u64::try_from(self.clock_start.elapsed().as_millis()).unwrap_or(u64::MAX),
        )
    }

    /// The journal failed: say so once and stop the run (its jobs stay in the journal).
    fn journal_failed(&self, e: &JournalError) {
        let mut first = self.journal_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            eprintln!("llmr-worker: {e}; stopping (unfinished jobs stay in the journal)");
            *first = Some(e.to_string());
        }
        drop(first);
        self.cancel.cancel(JOURNAL_ERROR_SIGNAL);
    }

    fn emit(&self, body: EventBody) {
        self.log.emit(body);
    }

    /// Runs `fut` unless the hard cancel comes first.
    async fn cancellable<T>(
        &self,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T, Cancelled> {
        let mut rx = self.hard_cancel.clone();
        tokio::select! {
            biased;
            _ = rx.wait_for(|c| *c) => Err(Cancelled),
            v = fut => Ok(v),
        }
    }

    async fn sleep(&self, ms: u64) -> Result<(), Cancelled> {
        self.cancellable(tokio::time::sleep(Duration::from_millis(ms)))
            .await
    }

    /// Logs `model`'s breaker transitions since it was last looked at.
    fn note_breaker(&self, model: &str) {
        let Ok(Some(now_state)) = self.engine.breaker_state(model, self.now()) else {
            return;
        };
        let mut seen = self.breaker_seen.lock().unwrap_or_else(|p| p.into_inner());
        let before = seen
            .insert(model.to_string(), now_state)
            .unwrap_or(State::Closed);
        if before != now_state {
            self.emit(EventBody::Breaker {
                model: model.to_string(),
                from: before.as_str().into(),
                to: now_state.as_str().into(),
            });
        }
    }

    fn finish(&self, end: JobEnd) {
        let mut r = self.results.lock().unwrap_or_else(|p| p.into_inner());
        match end {
            JobEnd::Answered => r.answered += 1,
            JobEnd::Failed => r.failed += 1,
            JobEnd::Unfinished(j) => {
                r.unfinished.push(j);
                return;
            }
        }
        self.progress.inc(1);
    }
}

fn role(name: &str) -> Role {
    match name {
        "system" => Role::System,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        _ => Role::User,
    }
}

fn unix_ms() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
}

/// A give-up reason as one short line.
fn reason_text(reason: &GiveUpReason) -> String {
    match reason {
        GiveUpReason::Permanent { kind } => format!("permanent: {}", kind.as_str()),
        GiveUpReason::AttemptsExhausted { kind, retries } => {
            format!(
                "attempts exhausted: {} after {retries} retries",
                kind.as_str()
            )
        }
        GiveUpReason::BudgetExhausted => "retry budget exhausted".into(),
        GiveUpReason::WaitTooLong {
            wait_ms,
            ceiling_ms,
        } => {
            format!("wait too long: {wait_ms} ms > {ceiling_ms} ms")
        }
        GiveUpReason::Deadline { .. } => "deadline".into(),
        GiveUpReason::CannotShrink => "cannot shrink".into(),
    }
}

/// A give-up reason's tag, as the core serialises it (kebab-case).
fn reason_tag(reason: &GiveUpReason) -> &'static str {
    match reason {
        GiveUpReason::Permanent { .. } => "permanent",
        GiveUpReason::AttemptsExhausted { .. } => "attempts-exhausted",
        GiveUpReason::BudgetExhausted => "budget-exhausted",
        GiveUpReason::WaitTooLong { .. } => "wait-too-long",
        GiveUpReason::Deadline { .. } => "deadline",
        GiveUpReason::CannotShrink => "cannot-shrink",
    }
}

/// The index of the model a job falls back to after the retry policy gave up on `model`, or
/// `None` (module docs): only for a give-up about the provider (attempts exhausted, wait too
/// long, permanent, budget exhausted) on a failure that counts against it (`counted_kinds`,
/// or `not-found`), and only when `model` has a next model.
fn fallback_after(
    models: &[String],
    counted_kinds: &BTreeSet<ErrorKind>,
    model: &str,
    kind: ErrorKind,
    reason: &GiveUpReason,
) -> Option<usize> {
    match reason {
        GiveUpReason::AttemptsExhausted { .. }
        | GiveUpReason::WaitTooLong { .. }
        | GiveUpReason::Permanent { .. }
        | GiveUpReason::BudgetExhausted => {}
        GiveUpReason::Deadline { .. } | GiveUpReason::CannotShrink => return None,
    }
    let provider = kind == ErrorKind::NotFound || counted_kinds.contains(&kind);
    if !provider {
        return None;
    }
    let at = models.iter().position(|m| m == model)?;
    (at + 1 < models.len()).then_some(at + 1)
}

/// A failed attempt, classified.
struct Failure {
    class: Classification,
    /// The body or chunk text (for a 402's "can only afford").
    text: String,
}

/// The job's live counters.
struct Progress {
    pj: PersistedJob,
    model: Option<String>,
}

/// How a job ended, before it is committed and counted.
struct Done {
    answered: bool,
    kind: Option<String>,
}

fn done(answered: bool, kind: Option<&str>) -> Done {
    Done {
        answered,
        kind: kind.map(str::to_string),
    }
}

/// Commits a job's end: `finished` into the journal (synced) first, then the `job_done` event
/// and the count. When the journal cannot take it, the job stays unfinished (its `accepted`
/// record resumes it at the next start) and the run stops taking jobs.
async fn conclude(ctx: &Ctx, p: Progress, d: Done) -> JobEnd {
    let event = EventBody::JobDone {
        job: p.pj.job.id.clone(),
        session: p.pj.job.session.clone(),
        long: p.pj.job.long,
        outcome: if d.answered { "answered" } else { "failed" }.into(),
        kind: d.kind,
        attempts: p.pj.attempts,
        retries: p.pj.retries,
        shrinks: p.pj.shrinks,
        model: p.model.clone(),
    };
    if let Some(journal) = &ctx.journal {
        let record = Record::Finished {
            id: p.pj.job.id.clone(),
            outcome: if d.answered {
                JobOutcome::Answered
            } else {
                JobOutcome::Failed
            },
            done: Some(event.clone()),
        };
        if let Err(e) = journal.append(vec![record]).await {
            ctx.journal_failed(&e);
            return JobEnd::Unfinished(p.pj);
        }
    }
    ctx.emit(event);
    if d.answered {
        JobEnd::Answered
    } else {
        JobEnd::Failed
    }
}

impl Progress {
    fn decision(
        &self,
        ctx: &Ctx,
        decision: &str,
        after_ms: Option<u64>,
        target: Option<u64>,
        reason: Option<String>,
    ) {
        ctx.emit(EventBody::Decision {
            job: self.pj.job.id.clone(),
            attempt: self.pj.attempts,
            decision: decision.into(),
            after_ms,
            target_tokens: target,
            reason,
        });
    }
}

/// Sends one request and logs it; `Ok(None)` is an answer.
async fn attempt(
    ctx: &Ctx,
    p: &mut Progress,
    model: &str,
    messages: &[Message],
    max_tokens: u64,
    tokens: u64,
) -> Result<Option<Failure>, Cancelled> {
    p.pj.attempts = p.pj.attempts.saturating_add(1);
    p.model = Some(model.to_string());
    let job = &p.pj.job;
    ctx.emit(EventBody::Request {
        job: job.id.clone(),
        session: job.session.clone(),
        model: model.to_string(),
        attempt: p.pj.attempts,
        stream: job.stream,
        max_tokens,
        tokens,
    });
    let watch = Stopwatch::start();
    let result = ctx
        .cancellable(ctx.client.chat(model, messages, max_tokens, job.stream))
        .await?;
    let latency_ms = watch.ms();
    let (status, fault, class, text) = match result {
        CallResult::Answer { status, fault, .. } => {
            ctx.emit(EventBody::Response {
                job: job.id.clone(),
                model: model.to_string(),
                attempt: p.pj.attempts,
                status: Some(status),
                ok: true,
                latency_ms,
                fault,
                kind: None,
                retryable: None,
                retry_after_ms: None,
                message: None,
            });
            return Ok(None);
        }
        CallResult::Failed {
            status,
            headers,
            body,
            fault,
        } => {
            let pairs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let class = ctx.engine.classify(&ClassifyInput {
                status: Some(status),
                headers: &pairs,
                body: &body,
                transport: None,
                wall_clock_ms: unix_ms(),
            });
            (
                Some(status),
                fault,
                class,
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
        CallResult::Transport { message, fault, .. } => {
            let class = ctx.engine.classify(&ClassifyInput {
                transport: Some(&message),
                wall_clock_ms: unix_ms(),
                ..ClassifyInput::default()
            });
            (None, fault, class, String::new())
        }
    };
    let class = class.unwrap_or_else(|e| Classification {
        kind: ErrorKind::Unknown,
        retryable: false,
        retry_after_ms: None,
        limit_tokens: None,
        requested_tokens: None,
        provider: None,
        code: None,
        error_type: None,
        message: ctx.engine.redact(&e.to_string()),
    });
    ctx.emit(EventBody::Response {
        job: job.id.clone(),
        model: model.to_string(),
        attempt: p.pj.attempts,
        status,
        ok: false,
        latency_ms,
        fault,
        kind: Some(class.kind.as_str().into()),
        retryable: Some(class.retryable),
        retry_after_ms: class.retry_after_ms,
        message: Some(class.message.clone()),
    });
    Ok(Some(Failure { class, text }))
}

/// The policy's job: limiter, breaker-guided model choice, trim, send, decide.
async fn job_ours(ctx: &Ctx, pj: PersistedJob) -> JobEnd {
    let mut p = Progress { pj, model: None };
    match job_ours_inner(ctx, &mut p).await {
        Ok(d) => conclude(ctx, p, d).await,
        Err(Cancelled) => JobEnd::Unfinished(p.pj),
    }
}

fn engine_failed(ctx: &Ctx, p: &Progress, e: &EngineError) -> Done {
    eprintln!(
        "llmr-worker: job {}: {}",
        p.pj.job.id,
        ctx.engine.redact(&e.to_string())
    );
    done(false, Some("engine-error"))
}

/// Holds the job while the account is dry (one `hold-for-credit` decision), until a top-up
/// opens the gate or `credit_hold_ms` has passed since the account went dry.
///
/// The hold window is the account's, not each job's: once the account has been dry for
/// `credit_hold_ms`, later jobs fail at once (the operator has the alert; a customer is better
/// served by a quick fallback answer than by waiting out another full hold).
async fn hold_for_credit(ctx: &Ctx, p: &Progress) -> Result<HoldEnd, Cancelled> {
    let Some(dry) = ctx.gate.dry() else {
        return Ok(HoldEnd::Opened);
    };
    let left_ms = dry
        .since_ms
        .saturating_add(ctx.policy.credit_hold_ms)
        .saturating_sub(ctx.now());
    if left_ms == 0 {
        return Ok(HoldEnd::TimedOut);
    }
    p.decision(
        ctx,
        "hold-for-credit",
        Some(left_ms),
        None,
        Some(HOLD_REASON.into()),
    );
    ctx.cancellable(
        ctx.gate
            .hold(tokio::time::sleep(Duration::from_millis(left_ms))),
    )
    .await
}

/// The give-up after a hold that timed out.
fn credit_gave_up(ctx: &Ctx, p: &Progress) -> Done {
    p.decision(ctx, "give-up", None, None, Some(HOLD_TIMEOUT_REASON.into()));
    done(false, Some(ErrorKind::QuotaExhausted.as_str()))
}

async fn job_ours_inner(ctx: &Ctx, p: &mut Progress) -> Result<Done, Cancelled> {
    let job = p.pj.job.clone();
    // The session's rate limit: defer until it admits the message.
    loop {
        match ctx.engine.limiter_check(&job.session, ctx.now()) {
            Ok(Verdict::Allowed { .. }) => break,
            Ok(Verdict::Denied { retry_in_ms }) => {
                ctx.emit(EventBody::Deferred {
                    job: job.id.clone(),
                    session: job.session.clone(),
                    wait_ms: retry_in_ms,
                });
                ctx.sleep(retry_in_ms.max(1)).await?;
            }
            Err(e) => return Ok(engine_failed(ctx, p, &e)),
        }
    }
    let mut call = match ctx.engine.start_call(ctx.now(), job_seed(&job.id)) {
        Ok(c) => c,
        Err(e) => return Ok(engine_failed(ctx, p, &e)),
    };
    let history: Vec<Message> = job
        .history
        .iter()
        .map(|m| Message::new(role(&m.role), m.content.clone()))
        .collect();
    let latest = Message::new(Role::User, job.message.clone());
    let input = TrimInput {
        system: &ctx.system,
        documents: &ctx.documents,
        history: &history,
        latest: &latest,
        tools: &[],
    };
    let deadline = ctx.deadline_ms.map(|d| ctx.now().saturating_add(d));
    let holding = ctx.policy.credit_hold_ms > 0;
    // The first model of the preference list this job may still use (a give-up on a model
    // moves it past that model for good).
    let mut first_idx = 0usize;
    let mut max_tokens = ctx.policy.max_tokens;
    let mut lowered = false;
    let mut shrunk: HashMap<String, ContextBudget> = HashMap::new();
    loop {
        // No request into a known 402: hold while the account is dry.
        if holding && hold_for_credit(ctx, p).await? == HoldEnd::TimedOut {
            return Ok(credit_gave_up(ctx, p));
        }
        let first = ctx.policy.models[first_idx].clone();
        // The first model (from `first_idx` on) whose breaker admits the call.
        let (model, permit) = loop {
            let mut soonest: Option<u64> = None;
            let mut chosen: Option<(String, Permit)> = None;
            for m in &ctx.policy.models[first_idx..] {
                let admitted = ctx.engine.breaker_acquire(m, ctx.now());
                ctx.note_breaker(m);
                match admitted {
                    Ok(Ok(permit)) => {
                        chosen = Some((m.clone(), permit));
                        break;
                    }
                    Ok(Err(rejected)) => {
                        let retry_in_ms = rejected.retry_in_ms.unwrap_or(RECHECK_MS);
                        ctx.emit(EventBody::Rejected {
                            job: job.id.clone(),
                            model: m.clone(),
                            retry_in_ms,
                        });
                        soonest = Some(soonest.map_or(retry_in_ms, |s| s.min(retry_in_ms)));
                    }
                    Err(e) => return Ok(engine_failed(ctx, p, &e)),
                }
            }
            if let Some(c) = chosen {
                break c;
            }
            ctx.sleep(soonest.unwrap_or(1).max(1)).await?;
        };
        if model != first {
            p.decision(
                ctx,
                "fallback",
                None,
                None,
                Some(format!("breaker of {first} refused; using {model}")),
            );
        }
        let release = |outcome: Outcome| {
            if let Err(e) = ctx
                .engine
                .breaker_record(&model, permit, outcome, ctx.now())
            {
                eprintln!(
                    "llmr-worker: breaker: {}",
                    ctx.engine.redact(&e.to_string())
                );
            }
            ctx.note_breaker(&model);
        };
        // Build and trim the context for this model's window.
        let Some(budget) = shrunk
            .get(&model)
            .or_else(|| ctx.budgets.get(&model))
            .cloned()
        else {
            release(Outcome::Ignored);
            return Ok(done(false, Some("not-found")));
        };
        let trimmed = match ctx.engine.trim(&budget, &input) {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                release(Outcome::Ignored);
                let kind = match e {
                    ContextError::DoesNotFit { .. } => "context-overflow",
                    _ => "invalid-request",
                };
                p.decision(
                    ctx,
                    "give-up",
                    None,
                    None,
                    Some(ctx.engine.redact(&e.to_string())),
                );
                return Ok(done(false, Some(kind)));
            }
            Err(e) => {
                release(Outcome::Ignored);
                return Ok(engine_failed(ctx, p, &e));
            }
        };
        let (whole, cut, dropped) = trimmed.report.tally();
        let tokens = trimmed.report.tokens_after;
        ctx.emit(EventBody::Trim {
            job: job.id.clone(),
            model: model.clone(),
            budget_tokens: budget.limit_tokens(),
            tokens,
            kept: (whole + cut) as u64,
            dropped: dropped as u64,
            cut: cut as u64,
        });
        let openings = ctx.gate.openings();
        let sent = match attempt(ctx, p, &model, &trimmed.messages, max_tokens, tokens).await {
            Ok(s) => s,
            Err(Cancelled) => {
                release(Outcome::Ignored);
                return Err(Cancelled);
            }
        };
        let Some(failure) = sent else {
            release(Outcome::Success);
            return Ok(done(true, None));
        };
        let class = &failure.class;
        release(Outcome::Failure {
            kind: class.kind,
            retry_after_ms: class.retry_after_ms,
        });
        // A 402 that says what is affordable: retry once with the core's max_tokens.
        if class.kind == ErrorKind::QuotaExhausted && !lowered {
            lowered = true;
            match ctx.engine.suggest_max_tokens(&failure.text) {
                Ok(Some(a)) => {
                    if let Some(s) = a.suggested_max_tokens.filter(|&s| s > 0 && s < max_tokens) {
                        max_tokens = s;
                        p.pj.retries = p.pj.retries.saturating_add(1);
                        p.decision(ctx, "lower-max-tokens", Some(0), Some(s), None);
                        continue;
                    }
                }
                Ok(None) => {}
                Err(e) => return Ok(engine_failed(ctx, p, &e)),
            }
        }
        // A 402 no lower max_tokens fixes: the account is dry; hold instead of giving up.
        if class.kind == ErrorKind::QuotaExhausted && holding {
            // A 402 to a request sent before the last top-up says nothing about now.
            ctx.gate.mark_dry(ctx.now(), openings);
            match hold_for_credit(ctx, p).await? {
                HoldEnd::Opened => {
                    p.pj.retries = p.pj.retries.saturating_add(1);
                    continue;
                }
                HoldEnd::TimedOut => return Ok(credit_gave_up(ctx, p)),
            }
        }
        let decision = match ctx.engine.decide(&mut call, class, ctx.now(), Some(tokens)) {
            Ok(d) => d,
            Err(e) => return Ok(engine_failed(ctx, p, &e)),
        };
        // After a fallback the fresh retry call has its own deadline: keep the job's.
        let past_deadline = |after_ms: u64| {
            first_idx > 0 && deadline.is_some_and(|d| ctx.now().saturating_add(after_ms) > d)
        };
        match decision {
            Decision::Retry { after_ms, .. } | Decision::ShrinkContext { after_ms, .. }
                if past_deadline(after_ms) =>
            {
                p.decision(
                    ctx,
                    "give-up",
                    None,
                    None,
                    Some("deadline: the job's deadline passes before the next attempt".into()),
                );
                return Ok(done(false, Some(class.kind.as_str())));
            }
            Decision::Retry { after_ms, .. } => {
                p.pj.retries = p.pj.retries.saturating_add(1);
                p.decision(ctx, "retry", Some(after_ms), None, None);
                ctx.sleep(after_ms).await?;
            }
            Decision::ShrinkContext {
                target_tokens,
                after_ms,
                ..
            } => match ctx.engine.next_budget(class, &budget, Some(tokens)) {
                Ok(Ok(next)) => {
                    shrunk.insert(model.clone(), next);
                    p.pj.retries = p.pj.retries.saturating_add(1);
                    p.pj.shrinks = p.pj.shrinks.saturating_add(1);
                    p.decision(ctx, "shrink", Some(after_ms), Some(target_tokens), None);
                    ctx.sleep(after_ms).await?;
                }
                Ok(Err(e)) => {
                    p.decision(
                        ctx,
                        "give-up",
                        None,
                        None,
                        Some(ctx.engine.redact(&e.to_string())),
                    );
                    return Ok(done(false, Some(class.kind.as_str())));
                }
                Err(e) => return Ok(engine_failed(ctx, p, &e)),
            },
            Decision::GiveUp { reason } => {
                let next = fallback_after(
                    &ctx.policy.models,
                    &ctx.counted_kinds,
                    &model,
                    class.kind,
                    &reason,
                )
                .filter(|&n| n > first_idx);
                if let Some(next) = next
                    && deadline.is_none_or(|d| ctx.now() < d)
                {
                    // The give-up is about this provider; the next model is another one.
                    first_idx = next;
                    let seed = job_seed(&job.id).wrapping_add(next as u64);
                    call = match ctx.engine.start_call(ctx.now(), seed) {
                        Ok(c) => c,
                        Err(e) => return Ok(engine_failed(ctx, p, &e)),
                    };
                    p.pj.retries = p.pj.retries.saturating_add(1);
                    p.decision(
                        ctx,
                        "fallback",
                        Some(0),
                        None,
                        Some(format!(
                            "{}: {} on {model}; moving to {}",
                            reason_tag(&reason),
                            class.kind.as_str(),
                            ctx.policy.models[next]
                        )),
                    );
                    continue;
                }
                p.decision(ctx, "give-up", None, None, Some(reason_text(&reason)));
                return Ok(done(false, Some(class.kind.as_str())));
            }
        }
    }
}

/// The naive baseline: first model, last N history messages, every error retried a fixed
/// number of times after a fixed wait.
async fn job_naive(ctx: &Ctx, pj: PersistedJob) -> JobEnd {
    let mut p = Progress { pj, model: None };
    match job_naive_inner(ctx, &mut p).await {
        Ok(d) => conclude(ctx, p, d).await,
        Err(Cancelled) => JobEnd::Unfinished(p.pj),
    }
}

async fn job_naive_inner(ctx: &Ctx, p: &mut Progress) -> Result<Done, Cancelled> {
    let naive = ctx.policy.naive.clone();
    let job = p.pj.job.clone();
    let model = ctx.policy.models[0].clone();
    let mut keep = naive.history_messages;
    let mut tries_left = naive.retries;
    loop {
        let mut messages = vec![Message::new(Role::System, ctx.system.clone())];
        messages.extend(
            ctx.documents
                .iter()
                .map(|d| Message::new(Role::System, d.clone())),
        );
        let skip = job.history.len().saturating_sub(keep);
        messages.extend(
            job.history[skip..]
                .iter()
                .map(|m| Message::new(role(&m.role), m.content.clone())),
        );
        messages.push(Message::new(Role::User, job.message.clone()));
        // Counted for the log only: the naive worker does not budget tokens.
        let tokens = ctx.engine.count_messages(&messages).unwrap_or(0);
        let Some(failure) =
            attempt(ctx, p, &model, &messages, ctx.policy.max_tokens, tokens).await?
        else {
            return Ok(done(true, None));
        };
        let kind = failure.class.kind;
        if tries_left == 0 {
            p.decision(ctx, "give-up", None, None, Some("retries exhausted".into()));
            return Ok(done(false, Some(kind.as_str())));
        }
        tries_left -= 1;
        p.pj.retries = p.pj.retries.saturating_add(1);
        if kind == ErrorKind::ContextOverflow {
            keep = keep.min(naive.history_messages_after_overflow);
            p.pj.shrinks = p.pj.shrinks.saturating_add(1);
            p.decision(ctx, "shrink", Some(naive.backoff_ms), None, None);
        } else {
            p.decision(ctx, "retry", Some(naive.backoff_ms), None, None);
        }
        ctx.sleep(naive.backoff_ms).await?;
    }
}

/// Polls the key's credit and feeds the monitor until `stop`.
async fn poll_credits(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_millis(ctx.policy.credit_poll_ms);
    loop {
        match ctx.client.key().await {
            Ok(body) => match ctx.engine.credit_observe(&body, ctx.now()) {
                Ok(alerts) => {
                    // After the monitor: the gate opens on the balance it now reports.
                    match ctx.engine.credit_balance() {
                        Ok(balance) => {
                            ctx.gate.observe(balance);
                        }
                        Err(e) => eprintln!(
                            "llmr-worker: credits: {}",
                            ctx.engine.redact(&e.to_string())
                        ),
                    }
                    for a in alerts {
                        ctx.emit(EventBody::Alert {
                            alert: a.alert.as_str().into(),
                            state: match a.state {
                                AlertState::Fired => "raised",
                                AlertState::Resolved => "cleared",
                            }
                            .into(),
                            value: a.value.unwrap_or(a.threshold),
                        });
                    }
                }
                Err(e) => eprintln!(
                    "llmr-worker: credits: {}",
                    ctx.engine.redact(&e.to_string())
                ),
            },
            Err(e) => eprintln!(
                "llmr-worker: credits: {}",
                ctx.engine.redact(&e.to_string())
            ),
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Runs the jobs to the end, or until cancelled; persists what is left when a state directory
/// is given.
pub async fn run(opts: RunOptions) -> Result<RunOutcome, RunError> {
    let RunOptions {
        jobs,
        policy,
        naive,
        engine,
        base_url,
        api_key,
        events,
        events_path,
        state_dir,
        progress,
        cancel,
        max_jobs,
        mock_reset,
    } = opts;
    let scenario = jobs.scenario.clone();
    // The state directory first: a directory that cannot be written, or a damaged journal, is
    // an error here, before the engine, the network or any job.
    let plan = match &state_dir {
        Some(dir) => Some(plan_from_state(
            dir,
            &scenario,
            &jobs.jobs,
            max_jobs,
            events_path.as_deref(),
        )?),
        None => None,
    };
    let (resumed_jobs, fresh_jobs, clock_base, snapshots, journal, unreported) = match plan {
        Some(p) => (
            p.resumed,
            p.fresh,
            p.clock_ms,
            p.snapshots,
            Some(p.journal),
            p.unreported,
        ),
        None => (
            Vec::new(),
            fresh(&jobs.jobs, max_jobs),
            0,
            None,
            None,
            Vec::new(),
        ),
    };
    let resumed = (resumed_jobs.len() + unreported.len()) as u64;
    let mut queue = resumed_jobs;
    queue.extend(fresh_jobs.iter().cloned());
    let engine = engine.build(&EngineConfig::from_policy(&policy), snapshots.as_ref())?;
    if snapshots.is_some() {
        // Read back from the engine itself: what it now holds, not what the file said.
        let held = engine.snapshot()?;
        eprintln!(
            "llmr-worker: restored state: {} breakers, {} limiter sessions; resuming {resumed} jobs",
            held.breakers
                .get("breakers")
                .and_then(|b| b.as_object())
                .map_or(0, |b| b.len()),
            held.limiter
                .get("keys")
                .and_then(|k| k.as_array())
                .map_or(0, |k| k.len()),
        );
    }
    let client = Client::new(
        &base_url,
        &api_key,
        Duration::from_millis(policy.request_timeout_ms),
    )?;
    let windows = client.context_windows().await?;
    let mut budgets = HashMap::new();
    for m in &policy.models {
        let window = *windows
            .get(m)
            .ok_or_else(|| RunError::UnknownModel(m.clone()))?;
        let budget = policy
            .context_budget(window)
            .map_err(|e| EngineError::new("context budget", e))?;
        budgets.insert(m.clone(), budget);
    }
    if let Some(url) = &mock_reset {
        client.post_empty(url).await?;
    }
    // The queue is taken (acknowledged) now: journal every new job before the first call.
    if let Some(j) = &journal
        && !fresh_jobs.is_empty()
    {
        j.append(fresh_jobs.into_iter().map(Record::Accepted).collect())
            .await?;
    }
    let log = Arc::new(EventLog::new(events));
    let taken = (queue.len() + unreported.len()) as u64;
    log.emit(EventBody::RunStart {
        scenario: scenario.clone(),
        policy: if naive { "naive" } else { "ours" }.into(),
        surface: engine.surface().into(),
        jobs: taken,
        resumed,
    });
    // Ends the journal counted before a crash kept their `job_done` lines from the log: counted
    // here, once (the start found them missing from the previous run's log).
    let (mut reported_answered, mut reported_failed) = (0u64, 0u64);
    for event in unreported {
        if let EventBody::JobDone { outcome, .. } = &event {
            if outcome == "answered" {
                reported_answered += 1;
            } else {
                reported_failed += 1;
            }
        }
        log.emit(event);
    }
    let bar = if progress && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(taken);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} jobs ({elapsed})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!(
            "{scenario} ({})",
            if naive { "naive" } else { "ours" }
        ));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (hard_tx, hard_rx) = watch::channel(false);
    // The core's own config type gives the counted kinds, defaults included (the engine has
    // already accepted this JSON).
    let counted_kinds = serde_json::from_value::<BreakerConfig>(policy.breaker.clone())
        .unwrap_or_default()
        .counted_kinds;
    let deadline_ms = policy
        .retry
        .get("deadline_ms")
        .and_then(serde_json::Value::as_u64);
    let ctx = Arc::new(Ctx {
        engine,
        client,
        policy,
        log: log.clone(),
        system: jobs.system_prompt.clone(),
        documents: jobs.documents.iter().map(|d| d.text.clone()).collect(),
        budgets,
        clock_start: Instant::now(),
        clock_base,
        hard_cancel: hard_rx,
        breaker_seen: Mutex::new(HashMap::new()),
        results: Mutex::new(Results::default()),
        progress: bar,
        gate: CreditGate::new(),
        counted_kinds,
        deadline_ms,
        journal,
        cancel: cancel.clone(),
        journal_error: Mutex::new(None),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let poller = (!naive).then(|| tokio::spawn(poll_credits(ctx.clone(), stop_rx.clone())));
    let snapshotter = ctx
        .journal
        .is_some()
        .then(|| tokio::spawn(journal_snapshots(ctx.clone(), stop_rx)));

    let mut pending: VecDeque<PersistedJob> = queue.into();
    let semaphore = Arc::new(Semaphore::new(ctx.policy.concurrency));
    let mut tasks = JoinSet::new();
    let mut cancel_rx = cancel.subscribe();
    let mut signal: Option<String> = cancel_rx.borrow().clone();
    while signal.is_none() {
        let Some(next) = pending.front() else { break };
        let wait = next.job.arrive_ms.saturating_sub(log.t_ms());
        tokio::select! {
            biased;
            _ = cancel_rx.changed() => { signal = cancel_rx.borrow().clone(); continue; }
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
        let permit = tokio::select! {
            biased;
            _ = cancel_rx.changed() => { signal = cancel_rx.borrow().clone(); continue; }
            p = semaphore.clone().acquire_owned() => p,
        };
        let Ok(permit) = permit else { break };
        let Some(pj) = pending.pop_front() else { break };
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let end = if naive {
                job_naive(&ctx, pj).await
            } else {
                job_ours(&ctx, pj).await
            };
            ctx.finish(end);
            drop(permit);
        });
    }
    let mut shutdown = None;
    if let Some(signal) = signal {
        while tasks.try_join_next().is_some() {}
        let in_flight = tasks.len() as u64;
        let grace = Duration::from_millis(ctx.policy.shutdown_grace_ms);
        let _ =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        let finished_in_grace = in_flight - tasks.len() as u64;
        let _ = hard_tx.send(true);
        while tasks.join_next().await.is_some() {}
        shutdown = Some((signal, in_flight, finished_in_grace));
    } else {
        while tasks.join_next().await.is_some() {}
    }
    let _ = stop_tx.send(true);
    if let Some(p) = poller {
        let _ = p.await;
    }
    if let Some(s) = snapshotter {
        let _ = s.await;
    }
    ctx.progress.finish_and_clear();

    let (answered, failed, mut unfinished) = {
        let mut r = ctx.results.lock().unwrap_or_else(|p| p.into_inner());
        (
            r.answered + reported_answered,
            r.failed + reported_failed,
            std::mem::take(&mut r.unfinished),
        )
    };
    unfinished.extend(pending);
    // Every unfinished job is in the journal since its `accepted` record; add its counts and
    // the engine's final snapshots. The jobs stay resumable even if this last write fails.
    let persisted = match &ctx.journal {
        Some(j) => {
            let mut records: Vec<Record> = unfinished
                .iter()
                .map(|p| Record::Progress {
                    id: p.job.id.clone(),
                    attempts: p.attempts,
                    retries: p.retries,
                    shrinks: p.shrinks,
                })
                .collect();
            match ctx.engine.snapshot() {
                Ok(snapshots) => records.push(Record::Snapshot {
                    clock_ms: ctx.now(),
                    snapshots,
                }),
                Err(e) => eprintln!(
                    "llmr-worker: final snapshot: {}",
                    ctx.engine.redact(&e.to_string())
                ),
            }
            if let Err(e) = j.append(records).await {
                ctx.journal_failed(&e);
            }
            unfinished.len() as u64
        }
        None => 0,
    };
    let lost = taken.saturating_sub(answered + failed + persisted);
    if let Some((signal, in_flight, finished_in_grace)) = shutdown {
        log.emit(EventBody::Shutdown {
            signal,
            in_flight,
            finished_in_grace,
            persisted,
        });
    }
    log.emit(EventBody::RunEnd {
        answered,
        failed,
        persisted,
        lost,
    });
    let log_error = log.finish().err();
    if let Some(j) = &ctx.journal {
        // Every `job_done` line is in the log now: the next start need not look for them.
        if log_error.is_none()
            && let Err(e) = j.append(vec![Record::Reported]).await
        {
            ctx.journal_failed(&e);
        }
        if let Err(e) = j.close().await {
            ctx.journal_failed(&e);
        }
    }
    Ok(RunOutcome {
        events: log.events(),
        answered,
        failed,
        persisted,
        lost,
        resumed,
        log_error,
        journal_error: ctx
            .journal_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    })
}

/// What a start takes over from its state directory.
struct StatePlan {
    /// The journal's unfinished jobs, in the order they were accepted (arrival reset to 0).
    resumed: Vec<PersistedJob>,
    /// The queue's jobs the journal does not know: to be accepted now.
    fresh: Vec<PersistedJob>,
    clock_ms: u64,
    snapshots: Option<crate::engine::Snapshots>,
    journal: Journal,
    /// `job_done` events of ends counted before a crash and missing from the previous run's log.
    unreported: Vec<EventBody>,
}

/// The journal compaction threshold's override, bytes (a tuning and test knob).
pub const COMPACT_ENV: &str = "LLMR_JOURNAL_COMPACT_AFTER_BYTES";

/// Recovers `dir` (modes, journal or older `state.json`), decides the queue — de-duplicated by
/// job id against the journal — and starts the journal (the start-up compaction proves the
/// directory can be written).
fn plan_from_state(
    dir: &std::path::Path,
    scenario: &str,
    jobs: &[Job],
    max_jobs: Option<usize>,
    events_path: Option<&std::path::Path>,
) -> Result<StatePlan, RunError> {
    let recovered = journal::recover(dir)?;
    for note in &recovered.notes {
        eprintln!("llmr-worker: {note}");
    }
    let mut live = match recovered.live {
        Some(live) if live.scenario == scenario => live,
        Some(live) if live.unfinished_len() > 0 => {
            return Err(RunError::OtherScenario {
                expected: scenario.to_string(),
                found: live.scenario,
            });
        }
        // Another scenario's finished journal: its job ids mean nothing here; keep the engine.
        Some(live) => Live::new(scenario, live.clock_ms, live.snapshots),
        None => Live::new(scenario, 0, None),
    };
    let resumed: Vec<PersistedJob> = live
        .unfinished()
        .into_iter()
        .map(|mut j| {
            j.job.arrive_ms = 0;
            j
        })
        .collect();
    let fresh: Vec<PersistedJob> = fresh(jobs, max_jobs)
        .into_iter()
        .filter(|j| !live.knows(&j.job.id))
        .collect();
    if resumed.is_empty() && fresh.is_empty() && !live.finished.is_empty() {
        eprintln!(
            "llmr-worker: every job of {scenario} is finished in {} ({}); nothing to do \
             (a new --state directory runs the scenario again)",
            dir.display(),
            live.finished.len()
        );
    }
    // Ends counted in the journal whose `job_done` line the previous run may not have written
    // (it died between the two): look for them in its log; write the missing ones in this
    // run's log, and remember them there until this run's log is known complete.
    let previous = std::mem::take(&mut live.unreported);
    let unreported: Vec<EventBody> = match live.log.take() {
        Some(path) if !previous.is_empty() => {
            let seen = journal::logged_ends(&path);
            previous
                .into_iter()
                .filter(|(id, _)| !seen.contains(id))
                .map(|(_, e)| e)
                .collect()
        }
        _ => {
            if !previous.is_empty() {
                eprintln!(
                    "llmr-worker: {} ends counted before a crash went to an event sink that \
                     is not a file; their job_done lines are not written again",
                    previous.len()
                );
            }
            Vec::new()
        }
    };
    for e in &unreported {
        if let EventBody::JobDone { job, .. } = e {
            live.unreported.insert(job.clone(), e.clone());
        }
    }
    live.log = events_path.and_then(|p| std::path::absolute(p).ok());
    let (clock_ms, snapshots) = (live.clock_ms, live.snapshots.clone());
    let opts = JournalOptions {
        compact_after_bytes: std::env::var(COMPACT_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(JournalOptions::default().compact_after_bytes),
    };
    let journal = Journal::start(dir, live, opts)?;
    Ok(StatePlan {
        resumed,
        fresh,
        clock_ms,
        snapshots,
        journal,
        unreported,
    })
}

/// Journals the engine's snapshots every [`SNAPSHOT_INTERVAL_MS`] until `stop`.
async fn journal_snapshots(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let Some(journal) = &ctx.journal else { return };
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(Duration::from_millis(SNAPSHOT_INTERVAL_MS)) => {}
        }
        match ctx.engine.snapshot() {
            Ok(snapshots) => {
                let record = Record::Snapshot {
                    clock_ms: ctx.now(),
                    snapshots,
                };
                if let Err(e) = journal.append(vec![record]).await {
                    ctx.journal_failed(&e);
                    return;
                }
            }
            Err(e) => eprintln!(
                "llmr-worker: snapshot: {}",
                ctx.engine.redact(&e.to_string())
            ),
        }
    }
}

fn fresh(jobs: &[Job], max_jobs: Option<usize>) -> Vec<PersistedJob> {
    let mut queue: Vec<PersistedJob> = jobs
        .iter()
        .take(max_jobs.unwrap_or(usize::MAX))
        .map(|j| PersistedJob {
            job: j.clone(),
            attempts: 0,
            retries: 0,
            shrinks: 0,
        })
        .collect();
    queue.sort_by_key(|j| j.job.arrive_ms);
    queue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> Vec<String> {
        vec![
            "openai/gpt-4o-mini".into(),
            "anthropic/claude-3.5-haiku".into(),
        ]
    }

    fn counted() -> BTreeSet<ErrorKind> {
        BreakerConfig::default().counted_kinds
    }

    #[test]
    fn a_give_up_on_a_provider_failure_moves_to_the_next_model() {
        let (m, c) = (models(), counted());
        let exhausted = GiveUpReason::AttemptsExhausted {
            kind: ErrorKind::Unavailable,
            retries: 3,
        };
        assert_eq!(
            fallback_after(&m, &c, &m[0], ErrorKind::Unavailable, &exhausted),
            Some(1)
        );
        assert_eq!(
            fallback_after(
                &m,
                &c,
                &m[0],
                ErrorKind::RateLimited,
                &GiveUpReason::BudgetExhausted
            ),
            Some(1)
        );
        let wait = GiveUpReason::WaitTooLong {
            wait_ms: 90_000,
            ceiling_ms: 5_000,
        };
        assert_eq!(
            fallback_after(&m, &c, &m[0], ErrorKind::RateLimited, &wait),
            Some(1)
        );
        // A model that is gone: permanent not-found moves too.
        let gone = GiveUpReason::Permanent {
            kind: ErrorKind::NotFound,
        };
        assert_eq!(
            fallback_after(&m, &c, &m[0], ErrorKind::NotFound, &gone),
            Some(1)
        );
        // The last model has no next one.
        assert_eq!(
            fallback_after(&m, &c, &m[1], ErrorKind::Unavailable, &exhausted),
            None
        );
        // A model not in the list has no place in it.
        assert_eq!(
            fallback_after(&m, &c, "x/y", ErrorKind::Unavailable, &exhausted),
            None
        );
    }

    #[test]
    fn a_failure_of_the_request_or_a_deadline_does_not_move_the_job() {
        let (m, c) = (models(), counted());
        for kind in [
            ErrorKind::Auth,
            ErrorKind::QuotaExhausted,
            ErrorKind::Moderation,
            ErrorKind::InvalidRequest,
            ErrorKind::ContextOverflow,
        ] {
            let reason = GiveUpReason::Permanent { kind };
            assert_eq!(
                fallback_after(&m, &c, &m[0], kind, &reason),
                None,
                "{kind:?}"
            );
        }
        let deadline = GiveUpReason::Deadline {
            retry_at_ms: 21_000,
            deadline_at_ms: 20_000,
        };
        assert_eq!(
            fallback_after(&m, &c, &m[0], ErrorKind::Unavailable, &deadline),
            None
        );
        assert_eq!(
            fallback_after(
                &m,
                &c,
                &m[0],
                ErrorKind::ContextOverflow,
                &GiveUpReason::CannotShrink
            ),
            None
        );
        // The policy's counted kinds rule: without `timeout`, a timeout does not move the job.
        let only_unavailable = BTreeSet::from([ErrorKind::Unavailable]);
        assert_eq!(
            fallback_after(
                &m,
                &only_unavailable,
                &m[0],
                ErrorKind::Timeout,
                &GiveUpReason::BudgetExhausted
            ),
            None
        );
    }

    #[test]
    fn give_up_tags_are_the_cores_kebab_case() {
        for (reason, tag) in [
            (GiveUpReason::BudgetExhausted, "budget-exhausted"),
            (GiveUpReason::CannotShrink, "cannot-shrink"),
            (
                GiveUpReason::Permanent {
                    kind: ErrorKind::Auth,
                },
                "permanent",
            ),
        ] {
            let json = serde_json::to_value(&reason).unwrap();
            assert_eq!(json["reason"], tag);
            assert_eq!(reason_tag(&reason), tag);
        }
    }
}
