//! Crash durability of `--state DIR` (the write-ahead journal, `src/journal.rs`), against the
//! built binary and a mock on 127.0.0.1 that this test process starts and keeps for all runs.
//!
//! - `sigkill_at_random_points_loses_nothing_and_answers_nothing_twice`: SIGKILL at ≥ 20 seeded
//!   random points (during start-up and recovery, mid-run, during a graceful shutdown; every one
//!   after the first during a resumed run; compaction every 16 KiB so some land inside one), a
//!   restart after each, then a run to the end. It
//!   counts, per job of the scenario, the `job_done` lines of every run's event log (the
//!   worker's counted answers; each line is one write(2), so a killed run's log keeps every line
//!   it wrote) and the journal's `finished` records: **zero lost, zero answered twice**, and no
//!   request for a job after the run that counted it. Calls *to the provider* are at least
//!   once: a job whose request was in flight at a kill is called again, and the test prints how
//!   many answers the mock served beyond the counted ones.
//! - a torn last journal record is ignored (the job it would have finished runs again);
//! - an end the journal counted whose `job_done` line a kill kept out of the run's log gets its
//!   line at the next start, and only that one;
//! - a state directory that cannot be written is an error at start-up: exit 1, a clear message,
//!   no request to the mock, no `run_start`;
//! - the directory is `0700` and the journal `0600`; an open directory and an older worker's
//!   `0644` `state.json` are tightened (and the state migrated);
//! - a state whose `clock_ms` is `u64::MAX` is a typed error, not a panic (this is a debug
//!   build, where the overflow used to panic); the largest accepted clock runs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use llmr_worker::events::{Event, EventBody, parse_log};
use llmr_worker::journal::{self, JobOutcome, Journal, JournalOptions, Live, Record};
use llmr_worker::state::{PersistedJob, SavedState};
use mock_openrouter::{MockHandle, MockServer, Scenario};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmr-worker-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Traversable by the unprivileged user of the read-only test.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// A test-only scenario (not in `examples/scenarios`, so the demo and the scenario tests do not
/// run it): `jobs` jobs over 1.5 s, latencies long enough that a run takes a few seconds, a 429
/// burst and an outage of the first model (breakers open), resets and stream errors throughout.
fn write_scenario(dir: &Path, jobs: u32) -> PathBuf {
    let text = serde_json::json!({
        "name": "crash-test",
        "description": "test-only: the SIGKILL test's workload",
        "seed": 91,
        "models": {
            "openai/gpt-4o-mini": {
                "context_window": 16000, "latency_ms": [60, 180], "token_ratio_percent": 100,
                "usd_per_million_prompt": 0.15, "usd_per_million_completion": 0.6,
                "provider": "OpenAI"
            },
            "anthropic/claude-3.5-haiku": {
                "context_window": 32000, "latency_ms": [60, 180], "token_ratio_percent": 115,
                "usd_per_million_prompt": 0.8, "usd_per_million_completion": 4.0,
                "provider": "Anthropic"
            }
        },
        "account": { "limit_usd": 10.0, "usage_usd": 0.0, "is_free_tier": false },
        "workload": {
            "jobs": jobs, "sessions": jobs.min(60), "arrival_ms": 1500, "long_share": 0.05,
            "stream_share": 0.3, "flagged_share": 0.02, "indonesian_share": 0.5
        },
        "faults": [
            { "type": "rate-limit", "model": "openai/gpt-4o-mini", "from_ms": 300, "to_ms": 900,
              "share": 0.4, "retry_after_s": 1 },
            { "type": "outage", "model": "openai/gpt-4o-mini", "from_ms": 1500, "to_ms": 3000,
              "status": 503 },
            { "type": "reset", "from_ms": 0, "to_ms": 100000000, "share": 0.03 },
            { "type": "stream-error", "from_ms": 0, "to_ms": 100000000, "share": 0.03,
              "after_chunks": 2 }
        ]
    });
    let path = dir.join("crash-test.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&text).expect("json")).expect("scenario");
    path
}

fn job_ids(scenario: &Path) -> Vec<String> {
    let s = Scenario::from_file(scenario).expect("scenario");
    mock_openrouter::generate(&s)
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect()
}

/// The mock, on this test's runtime, for every run of the test.
fn start_mock(rt: &tokio::runtime::Runtime, scenario: &Path) -> (MockHandle, String) {
    let s = Scenario::from_file(scenario).expect("scenario");
    let mock = rt
        .block_on(MockServer::start(s, ([127, 0, 0, 1], 0).into()))
        .expect("the mock starts");
    let url = format!("{}/api/v1", mock.url());
    (mock, url)
}

fn worker(scenario: &Path, base_url: &str, state: &Path, log: Option<&Path>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmr-worker"));
    cmd.args(["run", "--quiet", "--native", "--scenario"])
        .arg(scenario)
        .args(["--base-url", base_url, "--state"])
        .arg(state);
    if let Some(log) = log {
        cmd.arg("--events").arg(log);
    }
    cmd
}

fn spawn(mut cmd: Command, stderr: &Path) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).expect("stderr file"))
        .spawn()
        .expect("the worker starts")
}

fn read_log(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_log(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// SplitMix64: the kill points, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Waits until the log has a `run_start` line (or the worker exited, or `limit`).
fn wait_for_run_start(child: &mut Child, log: &Path, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("\"run_start\"")
        {
            return true;
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn sigkill_at_random_points_loses_nothing_and_answers_nothing_twice() {
    const KILLS: usize = 24;
    let dir = temp_dir("sigkill");
    let scenario = write_scenario(&dir, 150);
    let ids = job_ids(&scenario);
    let state = dir.join("state");
    let rt = common::runtime();
    let (mock, base_url) = start_mock(&rt, &scenario);
    let mut rng = Rng(0x5EED_0009);
    let mut logs: Vec<PathBuf> = Vec::new();
    let mut kills = 0usize;
    let mut how: BTreeMap<&str, usize> = BTreeMap::new();
    let started = Instant::now();
    let final_events = loop {
        let k = logs.len();
        assert!(
            k < 80,
            "{kills} kills landed in {k} runs: the workload is too short"
        );
        let log = dir.join(format!("run-{k:02}.jsonl"));
        let err = dir.join(format!("run-{k:02}.stderr"));
        logs.push(log.clone());
        let mut cmd = worker(&scenario, &base_url, &state, Some(&log));
        // Compact every 16 KiB appended (not 1 MiB): kills land inside compactions too.
        cmd.env(llmr_worker::run::COMPACT_ENV, "16384");
        let mut child = spawn(cmd, &err);
        if kills >= KILLS {
            // The last run: to the end.
            let status = child.wait().expect("wait");
            let stderr = std::fs::read_to_string(&err).unwrap_or_default();
            assert!(status.success(), "final run: {status:?}\n{stderr}");
            break read_log(&log);
        }
        let plan = match rng.below(10) {
            0 | 1 => "start-up",
            2 => "shutdown",
            _ => "mid-run",
        };
        if plan == "start-up" {
            // During recovery, the start-up compaction, the queue's accept batch, …
            std::thread::sleep(Duration::from_millis(rng.below(80)));
        } else {
            assert!(
                wait_for_run_start(&mut child, &log, Duration::from_secs(60))
                    || matches!(child.try_wait(), Ok(Some(_))),
                "run {k} never started"
            );
            std::thread::sleep(Duration::from_millis(rng.below(300)));
            if plan == "shutdown" {
                // SIGTERM, then SIGKILL inside the grace period.
                signal(&child, "-TERM");
                std::thread::sleep(Duration::from_millis(rng.below(150)));
            }
        }
        let _ = child.kill();
        let status = child.wait().expect("wait");
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        assert!(!stderr.contains("panicked"), "run {k}: {stderr}");
        if status.signal() == Some(9) {
            kills += 1;
            *how.entry(plan).or_insert(0) += 1;
        } else {
            assert!(status.success(), "run {k} ({plan}): {status:?}\n{stderr}");
            // It finished (or shut down) before the kill: the queue may be done already.
            let done = journal::replay(&state)
                .expect("journal")
                .and_then(|r| r.live)
                .is_some_and(|l| l.unfinished_len() == 0 && l.finished.len() == ids.len());
            assert!(
                !done || kills >= KILLS,
                "the queue was done after {kills} kills: the workload is too short"
            );
        }
    };
    let wall = started.elapsed();

    // Count from the logs: every `job_done` line is a counted end.
    let mut ends: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let mut requested_in: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (k, log) in logs.iter().enumerate() {
        for e in read_log(log) {
            match e.body {
                EventBody::JobDone { job, outcome, .. } => {
                    ends.entry(job).or_default().push((k, outcome));
                }
                EventBody::Request { job, .. } => {
                    requested_in.entry(job).or_default().insert(k);
                }
                _ => {}
            }
        }
    }
    let twice: Vec<_> = ends.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(twice.is_empty(), "jobs counted twice: {twice:?}");
    let live = journal::replay(&state)
        .expect("journal")
        .expect("a journal")
        .live
        .expect("a live set");
    let lost: Vec<&String> = ids
        .iter()
        .filter(|id| !live.finished.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "jobs lost: {lost:?}");
    assert_eq!(live.unfinished_len(), 0);
    assert_eq!(
        live.finished.len(),
        ids.len(),
        "finished ids not in the queue"
    );
    // The journal and the logs agree on every end the logs show; and nothing was asked for a
    // job after the run that counted it.
    let mut answered = 0;
    for (job, v) in &ends {
        let (k, outcome) = &v[0];
        let want = if outcome == "answered" {
            answered += 1;
            JobOutcome::Answered
        } else {
            JobOutcome::Failed
        };
        assert_eq!(live.finished.get(job), Some(&want), "{job}");
        let later: Vec<_> = requested_in
            .get(job)
            .map(|r| r.iter().filter(|&&r| r > *k).collect())
            .unwrap_or_default();
        assert!(
            later.is_empty(),
            "{job} counted in run {k}, requested again in {later:?}"
        );
    }
    // A kill between a `finished` record's sync and its `job_done` write: the next start finds
    // the line missing from the killed run's log and writes it in its own. Every end has one.
    let unlogged: Vec<&String> = ids.iter().filter(|id| !ends.contains_key(*id)).collect();
    assert!(
        unlogged.is_empty(),
        "ends without a job_done line: {unlogged:?}"
    );
    let rewritten = logs
        .iter()
        .map(|l| read_log(l))
        .map(|events| {
            // `job_done` lines of jobs with no other event in the run: ends written again.
            let asked: BTreeSet<String> = events
                .iter()
                .filter_map(|e| match &e.body {
                    EventBody::Request { job, .. }
                    | EventBody::Trim { job, .. }
                    | EventBody::Deferred { job, .. }
                    | EventBody::Rejected { job, .. }
                    | EventBody::Decision { job, .. } => Some(job.clone()),
                    _ => None,
                })
                .collect();
            common::done(&events)
                .into_iter()
                .filter(|d| !asked.contains(&d.job))
                .count()
        })
        .sum::<usize>();
    // The last run ends cleanly, with nothing persisted or lost.
    let (_, _, persisted, lost_n) = common::run_end(&final_events);
    assert_eq!((persisted, lost_n), (0, 0));
    // A start after the end takes nothing: every id is finished.
    let log = dir.join("after.jsonl");
    let out = worker(&scenario, &base_url, &state, Some(&log))
        .output()
        .expect("one more start");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(matches!(
        read_log(&log)[0].body,
        EventBody::RunStart {
            jobs: 0,
            resumed: 0,
            ..
        }
    ));
    assert_eq!(
        (mode(&state), mode(&state.join(journal::JOURNAL_FILE))),
        (0o700, 0o600)
    );
    let stats = mock.stats();
    assert!(stats.answers >= answered, "{} < {answered}", stats.answers);
    println!(
        "[rust-worker] SIGKILL: {kills} kills ({how:?}) in {} runs, {:.1} s; {} jobs: lost 0, \
         counted twice 0, job_done lines written by the next start {rewritten}; provider answers {} for {answered} \
         answered jobs ({} repeated after a kill: at-least-once to the provider)",
        logs.len(),
        wall.as_secs_f64(),
        ids.len(),
        stats.answers,
        stats.answers - answered,
    );
    rt.block_on(mock.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A journal of the scenario's queue, every job finished but `open`.
fn journal_with_open_jobs(state: &Path, scenario: &Path, open: &[&str]) {
    let s = Scenario::from_file(scenario).expect("scenario");
    let jobs = mock_openrouter::generate(&s);
    journal::prepare_dir(state).expect("prepare");
    let j = Journal::start(
        state,
        Live::new(&jobs.scenario, 0, None),
        JournalOptions::default(),
    )
    .expect("journal");
    let mut records: Vec<Record> = Vec::new();
    for job in jobs.jobs {
        let id = job.id.clone();
        records.push(Record::Accepted(PersistedJob {
            job,
            attempts: 0,
            retries: 0,
            shrinks: 0,
        }));
        if !open.contains(&id.as_str()) {
            records.push(Record::Finished {
                id,
                outcome: JobOutcome::Answered,
                done: None,
            });
        }
    }
    let rt = common::runtime();
    rt.block_on(async {
        j.append(records).await.expect("append");
        j.close().await.expect("close");
    });
}

#[test]
fn a_torn_last_record_is_ignored_and_its_job_runs() {
    let dir = temp_dir("torn");
    let scenario = write_scenario(&dir, 20);
    let state = dir.join("state");
    journal_with_open_jobs(&state, &scenario, &["job-0003", "job-0011"]);
    // The power went while `finished job-0011` was being appended: half of it reached the disk.
    let line = journal::encode(&Record::Finished {
        id: "job-0011".into(),
        outcome: JobOutcome::Answered,
        done: None,
    })
    .expect("encode");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(state.join(journal::JOURNAL_FILE))
        .expect("journal");
    f.write_all(&line[..line.len() / 2]).expect("torn write");
    drop(f);
    let rt = common::runtime();
    let (mock, base_url) = start_mock(&rt, &scenario);
    let log = dir.join("run.jsonl");
    let out = worker(&scenario, &base_url, &state, Some(&log))
        .output()
        .expect("the worker runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ignored an unterminated last record"),
        "{stderr}"
    );
    let events = read_log(&log);
    let ended: BTreeSet<String> = common::done(&events).into_iter().map(|d| d.job).collect();
    assert_eq!(
        ended,
        BTreeSet::from(["job-0003".to_string(), "job-0011".to_string()])
    );
    assert!(matches!(
        events[0].body,
        EventBody::RunStart {
            jobs: 2,
            resumed: 2,
            ..
        }
    ));
    // Compacted away: the journal is whole again, every job finished.
    let r = journal::replay(&state)
        .expect("journal")
        .expect("a journal");
    assert_eq!(r.torn_tail, None);
    assert_eq!(r.live.expect("live").finished.len(), 20);
    rt.block_on(mock.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

fn job_done(job: &str) -> EventBody {
    EventBody::JobDone {
        job: job.into(),
        session: "chat-001".into(),
        long: false,
        outcome: "answered".into(),
        kind: None,
        attempts: 1,
        retries: 0,
        shrinks: 0,
        model: Some("openai/gpt-4o-mini".into()),
    }
}

#[test]
fn an_end_missing_from_the_killed_runs_log_is_written_once_at_the_next_start() {
    let dir = temp_dir("reemit");
    let scenario = write_scenario(&dir, 20);
    let state = dir.join("state");
    let old_log = dir.join("killed-run.jsonl");
    // The killed run wrote job-0002's line, and died after journaling job-0001's end but
    // before its line.
    let line = Event {
        t_ms: 5,
        body: job_done("job-0002"),
    }
    .to_line();
    std::fs::write(&old_log, format!("{line}\n")).expect("old log");
    let s = Scenario::from_file(&scenario).expect("scenario");
    let jobs = mock_openrouter::generate(&s);
    journal::prepare_dir(&state).expect("prepare");
    let mut live = Live::new(&jobs.scenario, 0, None);
    live.log = Some(old_log.clone());
    let j = Journal::start(&state, live, JournalOptions::default()).expect("journal");
    let mut records = Vec::new();
    for job in jobs.jobs {
        let id = job.id.clone();
        records.push(Record::Accepted(PersistedJob {
            job,
            attempts: 0,
            retries: 0,
            shrinks: 0,
        }));
        let done = ["job-0001", "job-0002"]
            .contains(&id.as_str())
            .then(|| job_done(&id));
        records.push(Record::Finished {
            id,
            outcome: JobOutcome::Answered,
            done,
        });
    }
    let rt = common::runtime();
    rt.block_on(async {
        j.append(records).await.expect("append");
    });
    drop(j);
    let (mock, base_url) = start_mock(&rt, &scenario);
    for (k, want) in [(1, 1u64), (2, 0)] {
        // The second start finds the line in the first one's log: nothing more.
        let log = dir.join(format!("next-{k}.jsonl"));
        let out = worker(&scenario, &base_url, &state, Some(&log))
            .output()
            .expect("the worker runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events = read_log(&log);
        let ended: Vec<String> = common::done(&events).into_iter().map(|d| d.job).collect();
        let expected: Vec<String> = if want == 1 {
            vec!["job-0001".into()]
        } else {
            vec![]
        };
        assert_eq!(ended, expected, "start {k}");
        assert!(matches!(
            events[0].body,
            EventBody::RunStart { jobs, resumed, .. } if jobs == want && resumed == want
        ));
        let (answered, failed, persisted, lost) = common::run_end(&events);
        assert_eq!(
            (answered, failed, persisted, lost),
            (want, 0, 0, 0),
            "start {k}"
        );
    }
    assert_eq!(mock.stats().requests, 0, "a finished job was called again");
    rt.block_on(mock.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

/// This process's effective uid, from `/proc` (no libc in the tests).
fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .expect("a Uid line")
}

#[test]
fn a_state_directory_that_cannot_be_written_is_a_startup_error() {
    let dir = temp_dir("readonly");
    let scenario = write_scenario(&dir, 20);
    std::fs::set_permissions(&scenario, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let state = dir.join("state");
    std::fs::create_dir(&state).expect("state dir");
    let rt = common::runtime();
    let (mock, base_url) = start_mock(&rt, &scenario);
    let mut cmd = worker(&scenario, &base_url, &state, None);
    if euid() == 0 {
        // Root writes anywhere: run the worker as `nobody`, the owner of a read-only directory.
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).expect("chown");
        cmd.uid(65534).gid(65534);
    }
    // Read-only, and open to others: the worker tightens it (0500), and still cannot write it.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let out = cmd.output().expect("the worker runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "state directory {} cannot be written",
            state.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stdout.contains("run_start"), "a job was taken: {stdout}");
    let stats = mock.stats();
    assert_eq!(stats.requests, 0, "a call was made");
    assert_eq!(mode(&state), 0o500);
    // A state path below a file: the same, at start-up.
    let file = dir.join("a-file");
    std::fs::write(&file, "x").expect("file");
    let out = worker(&scenario, &base_url, &file.join("state"), None)
        .output()
        .expect("the worker runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be written"));
    assert_eq!(mock.stats().requests, 0);
    rt.block_on(mock.shutdown());
    let _ = std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn state_files_are_private_and_an_open_directory_is_tightened() {
    let dir = temp_dir("modes");
    let scenario = write_scenario(&dir, 20);
    let rt = common::runtime();
    let (mock, base_url) = start_mock(&rt, &scenario);
    // A new directory (two levels) is created 0700, the journal 0600.
    let fresh = dir.join("new").join("state");
    let out = worker(&scenario, &base_url, &fresh, Some(&dir.join("a.jsonl")))
        .output()
        .expect("the worker runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join(journal::JOURNAL_FILE)), 0o600);
    // An older worker's state: 0644 `state.json` in a 0755 directory, two jobs pending.
    let old = dir.join("old");
    std::fs::create_dir(&old).expect("dir");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let s = Scenario::from_file(&scenario).expect("scenario");
    let jobs = mock_openrouter::generate(&s);
    let saved = SavedState {
        scenario: jobs.scenario.clone(),
        clock_ms: 1234,
        jobs: jobs.jobs[..2]
            .iter()
            .map(|j| PersistedJob {
                job: j.clone(),
                attempts: 1,
                retries: 0,
                shrinks: 0,
            })
            .collect(),
        snapshots: None,
    };
    let legacy = old.join(llmr_worker::state::STATE_FILE);
    std::fs::write(&legacy, serde_json::to_vec(&saved).expect("json")).expect("write");
    std::fs::set_permissions(&legacy, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let log = dir.join("b.jsonl");
    let out = worker(&scenario, &base_url, &old, Some(&log))
        .output()
        .expect("the worker runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("was mode 0755") && stderr.contains("tightened to 0700"),
        "{stderr}"
    );
    assert!(stderr.contains("was mode 0644"), "{stderr}");
    assert_eq!(mode(&old), 0o700);
    assert_eq!(mode(&old.join(journal::JOURNAL_FILE)), 0o600);
    assert!(!legacy.exists(), "the migrated state.json is still there");
    // The two pending jobs resumed first, then the rest of the queue.
    assert!(matches!(
        read_log(&log)[0].body,
        EventBody::RunStart {
            jobs: 20,
            resumed: 2,
            ..
        }
    ));
    rt.block_on(mock.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_clock_near_u64_max_is_a_typed_error_not_a_panic() {
    let dir = temp_dir("clock");
    let scenario = write_scenario(&dir, 20);
    let rt = common::runtime();
    let (mock, base_url) = start_mock(&rt, &scenario);
    let line = |r: &Record| journal::encode(r).expect("encode");
    let open = |clock_ms| Record::Open {
        v: journal::FORMAT_VERSION,
        scenario: "crash-test".into(),
        clock_ms,
    };
    let snapshot = |clock_ms| Record::Snapshot {
        clock_ms,
        snapshots: llmr_worker::engine::Snapshots {
            breakers: serde_json::Value::Null,
            limiter: serde_json::Value::Null,
            credits: serde_json::Value::Null,
        },
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("open", line(&open(u64::MAX))),
        (
            "snapshot",
            [line(&open(0)), line(&snapshot(u64::MAX - 1))].concat(),
        ),
    ];
    for (what, bytes) in cases {
        let state = dir.join(format!("state-{what}"));
        std::fs::create_dir(&state).expect("dir");
        std::fs::write(state.join(journal::JOURNAL_FILE), bytes).expect("journal");
        let out = worker(&scenario, &base_url, &state, None)
            .output()
            .expect("the worker runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(
            stderr.contains("is above the largest accepted"),
            "{what}: {stderr}"
        );
    }
    // An older worker's state.json with the same clock.
    let state = dir.join("state-legacy");
    std::fs::create_dir(&state).expect("dir");
    let saved = SavedState {
        scenario: "crash-test".into(),
        clock_ms: u64::MAX,
        jobs: vec![],
        snapshots: None,
    };
    std::fs::write(
        state.join(llmr_worker::state::STATE_FILE),
        serde_json::to_vec(&saved).expect("json"),
    )
    .expect("write");
    let out = worker(&scenario, &base_url, &state, None)
        .output()
        .expect("the worker runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("clock_ms 18446744073709551615"), "{stderr}");
    // The largest accepted clock: the run goes through (saturating time, no overflow).
    let state = dir.join("state-max");
    std::fs::create_dir(&state).expect("dir");
    std::fs::write(
        state.join(journal::JOURNAL_FILE),
        line(&open(journal::MAX_CLOCK_MS)),
    )
    .expect("journal");
    let log = dir.join("max.jsonl");
    let out = worker(&scenario, &base_url, &state, Some(&log))
        .output()
        .expect("the worker runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let (answered, failed, _, lost) = common::run_end(&read_log(&log));
    assert_eq!((answered + failed, lost), (20, 0));
    rt.block_on(mock.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}
