//! Graceful shutdown: SIGTERM to the built binary (and the in-process cancel handle) persists
//! the unfinished jobs with the breaker and limiter state; the next start resumes them, and
//! across the two runs every job of the scenario ends exactly once.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use llmr_worker::app::{self, ScenarioRun};
use llmr_worker::engine::EngineChoice;
use llmr_worker::events::{Event, EventBody, parse_log};
use llmr_worker::run::CancelHandle;
use llmr_worker::state;

const SCENARIO: &str = "provider-outage";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmr-worker-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn scenario_job_ids() -> Vec<String> {
    let s = app::load_scenario(&common::scenario(SCENARIO)).expect("scenario");
    mock_openrouter::generate(&s)
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect()
}

/// Each job of the scenario ended (answered or failed) exactly once across the logs.
fn assert_each_job_done_once(logs: &[&[Event]]) {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for log in logs {
        for d in common::done(log) {
            *seen.entry(d.job).or_insert(0) += 1;
        }
    }
    let ids = scenario_job_ids();
    for id in &ids {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "job {id} ended {:?} times",
            seen.get(id)
        );
    }
    assert_eq!(
        seen.len(),
        ids.len(),
        "jobs ended that the scenario does not have"
    );
}

fn counts(state_dir: &Path) -> (usize, usize, usize) {
    let s = state::load(state_dir)
        .expect("state")
        .expect("a state file");
    let snaps = s.snapshots.expect("snapshots");
    (
        s.jobs.len(),
        snaps.breakers["breakers"]
            .as_object()
            .map_or(0, |b| b.len()),
        snaps.limiter["keys"].as_array().map_or(0, |k| k.len()),
    )
}

#[test]
fn sigterm_persists_and_the_next_start_resumes() {
    let dir = temp_dir("sigterm");
    let state_dir = dir.join("state");
    let scenario = common::scenario(SCENARIO);
    let run = |log: &Path| {
        Command::new(env!("CARGO_BIN_EXE_llmr-worker"))
            .args(["run", "--quiet", "--native", "--scenario"])
            .arg(&scenario)
            .arg("--events")
            .arg(log)
            .arg("--state")
            .arg(&state_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the worker starts")
    };

    // First run: SIGTERM once a few jobs are done (watching the log, not the clock).
    let log1 = dir.join("run1.jsonl");
    let child = run(&log1);
    let mut waited = 0;
    loop {
        let text = std::fs::read_to_string(&log1).unwrap_or_default();
        if text.matches("\"job_done\"").count() >= 10 {
            break;
        }
        waited += 1;
        assert!(waited < 1200, "the worker never finished 10 jobs");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let out = child.wait_with_output().expect("the worker exits");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let events1 = parse_log(&std::fs::read_to_string(&log1).expect("log 1")).expect("valid log");
    let shutdown = events1.iter().find_map(|e| match &e.body {
        EventBody::Shutdown {
            signal, persisted, ..
        } => Some((signal.clone(), *persisted)),
        _ => None,
    });
    let (signal, persisted) = shutdown.expect("a shutdown event");
    assert_eq!(signal, "SIGTERM");
    let (answered1, failed1, persisted1, lost1) = common::run_end(&events1);
    assert!(persisted > 0 && persisted == persisted1);
    assert_eq!(lost1, 0);
    assert_eq!(answered1 + failed1 + persisted1, 120);
    let (jobs_saved, breakers_saved, sessions_saved) = counts(&state_dir);
    assert_eq!(jobs_saved as u64, persisted1);
    assert!(breakers_saved > 0 && sessions_saved > 0);

    // Second run with the same state: resumes exactly those jobs, with the state restored.
    let log2 = dir.join("run2.jsonl");
    let out2 = run(&log2).wait_with_output().expect("run 2 exits");
    let stderr2 = String::from_utf8_lossy(&out2.stderr);
    assert!(out2.status.success(), "run 2: {stderr2}");
    assert!(
        stderr2.contains(&format!(
            "restored state: {breakers_saved} breakers, {sessions_saved} limiter sessions; resuming {persisted1} jobs"
        )),
        "{stderr2}"
    );
    let events2 = parse_log(&std::fs::read_to_string(&log2).expect("log 2")).expect("valid log");
    assert!(matches!(
        events2[0].body,
        EventBody::RunStart { resumed, jobs, .. } if resumed == persisted1 && jobs == persisted1
    ));
    let (_, _, persisted2, lost2) = common::run_end(&events2);
    assert_eq!((persisted2, lost2), (0, 0));
    assert_each_job_done_once(&[&events1, &events2]);
    assert_eq!(counts(&state_dir).0, 0, "the finished run left jobs behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_in_process_cancel_handle_persists_and_resumes() {
    let dir = temp_dir("cancel");
    let state_dir = dir.join("state");
    let rt = common::runtime();
    let run = |cancel: CancelHandle, sink: Option<Box<dyn Write + Send>>| {
        rt.block_on(app::run_scenario(ScenarioRun {
            scenario: common::scenario(SCENARIO),
            policy: common::policy(),
            naive: false,
            engine: EngineChoice::Native,
            base_url: None,
            api_key: app::MOCK_KEY.into(),
            events: sink,
            events_path: None,
            state_dir: Some(state_dir.clone()),
            progress: false,
            cancel,
            max_jobs: None,
        }))
        .expect("the run completes")
    };
    let cancel = CancelHandle::new();
    let first = run(
        cancel.clone(),
        Some(Box::new(app::CancelAfterDone::new(
            std::io::sink(),
            15,
            cancel,
        ))),
    );
    assert!(first.persisted > 0);
    assert_eq!(first.lost, 0);
    assert!(first.events.iter().any(|e| matches!(
        &e.body,
        EventBody::Shutdown { signal, .. } if signal == "cancel"
    )));
    let second = run(CancelHandle::new(), None);
    assert_eq!(second.resumed, first.persisted);
    assert_eq!((second.persisted, second.lost), (0, 0));
    assert_each_job_done_once(&[&first.events, &second.events]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Cancels the run once `after` `hold-for-credit` decisions were written.
struct CancelOnHolds {
    seen: usize,
    after: usize,
    cancel: CancelHandle,
}

impl Write for CancelOnHolds {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let needle = b"\"hold-for-credit\"";
        self.seen += buf.windows(needle.len()).filter(|w| w == needle).count();
        if self.seen >= self.after {
            self.cancel.cancel("cancel");
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_job_holding_for_credit_is_persisted_with_its_counts() {
    let dir = temp_dir("hold");
    let state_dir = dir.join("state");
    let rt = common::runtime();
    let mut policy = common::policy();
    // Cancel the holders at once: the top-up (3.2 s) must not end their holds in the grace.
    policy.shutdown_grace_ms = 20;
    let cancel = CancelHandle::new();
    let run = rt
        .block_on(app::run_scenario(ScenarioRun {
            scenario: common::scenario("credits-run-out"),
            policy,
            naive: false,
            engine: EngineChoice::Native,
            base_url: None,
            api_key: app::MOCK_KEY.into(),
            events: Some(Box::new(CancelOnHolds {
                seen: 0,
                after: 3,
                cancel: cancel.clone(),
            })),
            events_path: None,
            state_dir: Some(state_dir.clone()),
            progress: false,
            cancel,
            max_jobs: None,
        }))
        .expect("the run completes");
    assert_eq!(run.lost, 0);
    assert!(run.persisted > 0);
    // The jobs that held and did not end: every one is in the state, with the attempts it made.
    let ended: std::collections::BTreeSet<String> = common::done(&run.events)
        .into_iter()
        .map(|d| d.job)
        .collect();
    let mut requests: BTreeMap<&str, u32> = BTreeMap::new();
    let mut holding: std::collections::BTreeSet<&str> = Default::default();
    for e in &run.events {
        match &e.body {
            EventBody::Request { job, .. } => *requests.entry(job).or_insert(0) += 1,
            EventBody::Decision { job, decision, .. } if decision == "hold-for-credit" => {
                holding.insert(job);
            }
            _ => {}
        }
    }
    holding.retain(|j| !ended.contains(*j));
    assert!(!holding.is_empty(), "no job was holding at the shutdown");
    let saved = state::load(&state_dir)
        .expect("state")
        .expect("a state file");
    for job in &holding {
        let p = saved
            .jobs
            .iter()
            .find(|p| p.job.id == *job)
            .unwrap_or_else(|| panic!("holding {job} was not persisted"));
        assert_eq!(p.attempts, requests.get(job).copied().unwrap_or(0), "{job}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
