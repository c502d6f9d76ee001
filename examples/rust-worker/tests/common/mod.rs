//! Helpers shared by the worker's integration tests: run a scenario in-process against the
//! in-process mock and read the events back.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use llmr_worker::app::{self, ScenarioRun};
use llmr_worker::engine::EngineChoice;
use llmr_worker::events::{Event, EventBody};
use llmr_worker::policy::Policy;
use llmr_worker::report::RunSummary;
use llmr_worker::run::{CancelHandle, RunOutcome};

/// `examples/scenarios/<name>.json`.
pub fn scenario(name: &str) -> PathBuf {
    app::scenarios_dir().join(format!("{name}.json"))
}

/// The shipped policy.
pub fn policy() -> Policy {
    Policy::from_file(&app::default_policy_path()).expect("the shipped policy parses")
}

/// The component engine; the component must have been built (`cargo run -p xtask -- component`).
pub fn component() -> EngineChoice {
    let path = llmr_host::default_component_path();
    assert!(
        path.exists(),
        "{} is missing: build it with `{}`",
        path.display(),
        llmr_host::BUILD_COMMAND
    );
    EngineChoice::Component(path)
}

/// Runs a scenario to its end against the in-process mock, and prints one summary line
/// (`scripts/test.sh` shows them beside the Go worker's).
pub fn run(name: &str, naive: bool, engine: EngineChoice) -> RunOutcome {
    let outcome = run_quietly(name, naive, engine);
    let s = RunSummary::from_events(&outcome.events);
    println!(
        "[rust-worker] {:<19} {:<5} {:<9} jobs {:>3}  answered {:>3}  failed {:>3}  lost {}  \
         retries {:>3} (unnecessary {:>3})  outage calls {:>3}  long answered {}/{}  alerts {}",
        s.scenario,
        s.policy,
        s.surface,
        s.jobs,
        s.answered,
        s.failed,
        s.lost_recomputed,
        s.retries_sent,
        s.unnecessary_retries,
        s.calls_wasted_in_outages,
        s.long_answered,
        s.long_jobs,
        s.alerts_raised.values().sum::<u64>(),
    );
    outcome
}

fn run_quietly(name: &str, naive: bool, engine: EngineChoice) -> RunOutcome {
    runtime().block_on(async {
        app::run_scenario(ScenarioRun {
            scenario: scenario(name),
            policy: policy(),
            naive,
            engine,
            base_url: None,
            api_key: app::MOCK_KEY.into(),
            events: None,
            events_path: None,
            state_dir: None,
            progress: false,
            cancel: CancelHandle::new(),
            max_jobs: None,
        })
        .await
        .expect("the run completes")
    })
}

/// A multi-threaded runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The `job_done` events: (job, outcome, long, model, kind, shrinks).
pub struct Done {
    pub job: String,
    pub answered: bool,
    pub long: bool,
    pub model: Option<String>,
    pub kind: Option<String>,
    pub shrinks: u32,
}

pub fn done(events: &[Event]) -> Vec<Done> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::JobDone {
                job,
                outcome,
                long,
                model,
                kind,
                shrinks,
                ..
            } => Some(Done {
                job: job.clone(),
                answered: outcome == "answered",
                long: *long,
                model: model.clone(),
                kind: kind.clone(),
                shrinks: *shrinks,
            }),
            _ => None,
        })
        .collect()
}

/// `response` events whose fault was `fault`.
pub fn responses_with_fault(events: &[Event], fault: &str) -> usize {
    events
        .iter()
        .filter(|e| matches!(&e.body, EventBody::Response { fault: Some(f), .. } if f == fault))
        .count()
}

/// `decision` events of one kind.
pub fn decisions(events: &[Event], which: &str) -> Vec<Event> {
    events
        .iter()
        .filter(|e| matches!(&e.body, EventBody::Decision { decision, .. } if decision == which))
        .cloned()
        .collect()
}

/// The last `run_end` event's counts (answered, failed, persisted, lost).
pub fn run_end(events: &[Event]) -> (u64, u64, u64, u64) {
    events
        .iter()
        .rev()
        .find_map(|e| match e.body {
            EventBody::RunEnd {
                answered,
                failed,
                persisted,
                lost,
            } => Some((answered, failed, persisted, lost)),
            _ => None,
        })
        .expect("a run_end event")
}
