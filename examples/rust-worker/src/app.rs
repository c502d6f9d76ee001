//! What the command line does, callable in-process (the tests and the demo use it): run a
//! scenario against the in-process mock (or a given base URL), run the demo, print a report.
//!
//! Why the mock runs in-process by default: the demo and the tests need no network, no key and
//! no second program; the mock binds 127.0.0.1 on a free port and stops with the run.

use std::path::{Path, PathBuf};

use mock_openrouter::{MockServer, Scenario};

use crate::engine::EngineChoice;
use crate::events::{self, Event};
use crate::policy::{Policy, PolicyError};
use crate::report::{self, RunSummary};
use crate::run::{self, CancelHandle, RunOptions, RunOutcome};
use crate::timeline;

/// The real OpenRouter API, for `--live`.
pub const LIVE_BASE_URL: &str = "https://openrouter.ai/api/v1";

/// The environment variable holding the API key.
pub const KEY_ENV: &str = "OPENROUTER_API_KEY";

/// The key sent to a mock when `OPENROUTER_API_KEY` is not set (the mock accepts any bearer).
pub const MOCK_KEY: &str = "mock-key-not-secret";

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The scenario file is unusable.
    #[error("scenario: {0}")]
    Scenario(String),
    /// The policy file is unusable.
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// The mock could not start.
    #[error("mock: {0}")]
    Mock(String),
    /// The run failed.
    #[error("{0}")]
    Run(#[from] run::RunError),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// An event log is malformed.
    #[error("{path}: {message}")]
    Log {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> AppError + '_ {
    move |e| AppError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// `examples/scenarios` of this checkout.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// `examples/scenarios/policy.json`.
pub fn default_policy_path() -> PathBuf {
    scenarios_dir().join("policy.json")
}

/// One scenario run.
pub struct ScenarioRun {
    /// The scenario file.
    pub scenario: PathBuf,
    /// The policy.
    pub policy: Policy,
    /// The naive baseline instead of ours.
    pub naive: bool,
    /// The engine.
    pub engine: EngineChoice,
    /// The API base URL; `None`: start the mock in-process.
    pub base_url: Option<String>,
    /// The API key.
    pub api_key: String,
    /// Where the JSON Lines go.
    pub events: Option<Box<dyn std::io::Write + Send>>,
    /// The file `events` writes to, when it is one (with `state_dir`, a restart after a crash
    /// reads it back; see `run::RunOptions::events_path`).
    pub events_path: Option<PathBuf>,
    /// Persist/resume directory.
    pub state_dir: Option<PathBuf>,
    /// Progress bar.
    pub progress: bool,
    /// Stops the run.
    pub cancel: CancelHandle,
    /// Cap on the jobs taken.
    pub max_jobs: Option<usize>,
}

impl std::fmt::Debug for ScenarioRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScenarioRun")
            .field("scenario", &self.scenario)
            .field("naive", &self.naive)
            .finish_non_exhaustive()
    }
}

/// Loads a scenario file.
pub fn load_scenario(path: &Path) -> Result<Scenario, AppError> {
    Scenario::from_file(path).map_err(|e| AppError::Scenario(e.to_string()))
}

/// Runs one scenario: the mock in-process unless a base URL is given.
pub async fn run_scenario(r: ScenarioRun) -> Result<RunOutcome, AppError> {
    let scenario = load_scenario(&r.scenario)?;
    let jobs = mock_openrouter::generate(&scenario);
    let (base_url, mock) = match r.base_url {
        Some(url) => (url, None),
        None => {
            let m = MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
                .await
                .map_err(|e| AppError::Mock(e.to_string()))?;
            (format!("{}/api/v1", m.url()), Some(m))
        }
    };
    let outcome = run::run(RunOptions {
        jobs,
        policy: r.policy,
        naive: r.naive,
        engine: r.engine,
        base_url,
        api_key: r.api_key,
        events: r.events,
        events_path: r.events_path,
        state_dir: r.state_dir,
        progress: r.progress,
        cancel: r.cancel,
        max_jobs: r.max_jobs,
        mock_reset: mock.as_ref().map(|m| format!("{}/mock/reset", m.url())),
    })
    .await;
    if let Some(m) = mock {
        m.shutdown().await;
    }
    Ok(outcome?)
}

/// Reads event logs.
pub fn read_logs(paths: &[PathBuf]) -> Result<Vec<Vec<Event>>, AppError> {
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(io(p))?;
            events::parse_log(&text).map_err(|message| AppError::Log {
                path: p.clone(),
                message,
            })
        })
        .collect()
}

/// The report of event logs: ours/naive pairs side by side when both policies of a scenario
/// are present, else one summary per log.
pub fn report_of_logs(logs: &[Vec<Event>]) -> String {
    let mut pairs: Vec<(String, Option<RunSummary>, Option<RunSummary>)> = Vec::new();
    for log in logs {
        let (scenario, policy) = log
            .iter()
            .find_map(|e| match &e.body {
                events::EventBody::RunStart {
                    scenario, policy, ..
                } => Some((scenario.clone(), policy.clone())),
                _ => None,
            })
            .unwrap_or_else(|| ("unknown".into(), "ours".into()));
        let summary = RunSummary::from_events(log);
        let slot = match pairs.iter_mut().find(|(s, ..)| *s == scenario) {
            Some(slot) => slot,
            None => {
                pairs.push((scenario.clone(), None, None));
                let last = pairs.len() - 1;
                &mut pairs[last]
            }
        };
        if policy == "naive" {
            slot.2 = Some(summary);
        } else {
            slot.1 = Some(summary);
        }
    }
    let runs: Vec<(String, RunSummary, RunSummary)> = pairs
        .into_iter()
        .map(|(s, ours, naive)| {
            let empty = || RunSummary::from_events(&[]);
            (s, ours.unwrap_or_else(empty), naive.unwrap_or_else(empty))
        })
        .collect();
    report::side_by_side(&runs)
}

/// The scenario files of `examples/scenarios` (every `*.json` but the policy), sorted.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>, AppError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name().is_some_and(|n| n != "policy.json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The demo's options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where logs, the SVG and the state go.
    pub out: PathBuf,
    /// The engine for "ours".
    pub engine: EngineChoice,
    /// The policy.
    pub policy: Policy,
    /// Progress bars.
    pub progress: bool,
}

/// Every scenario ours and naive, the side-by-side report, the timeline of `provider-outage`,
/// and a shutdown/resume run on `mixed`. Returns the text to print.
pub async fn demo(o: DemoOptions) -> Result<String, AppError> {
    std::fs::create_dir_all(&o.out).map_err(io(&o.out))?;
    let mut runs: Vec<(String, RunSummary, RunSummary)> = Vec::new();
    let mut text = String::new();
    let mut outage_events: Option<Vec<Event>> = None;
    for file in scenario_files(&scenarios_dir())? {
        let name = load_scenario(&file)?.name;
        let mut pair = Vec::new();
        for naive in [false, true] {
            let log_path = o.out.join(format!(
                "{name}-{}.jsonl",
                if naive { "naive" } else { "ours" }
            ));
            let sink = std::fs::File::create(&log_path).map_err(io(&log_path))?;
            let outcome = run_scenario(ScenarioRun {
                scenario: file.clone(),
                policy: o.policy.clone(),
                naive,
                engine: o.engine.clone(),
                base_url: None,
                api_key: MOCK_KEY.into(),
                events: Some(Box::new(std::io::BufWriter::new(sink))),
                events_path: None,
                state_dir: None,
                progress: o.progress,
                cancel: CancelHandle::new(),
                max_jobs: None,
            })
            .await?;
            text.push_str(&format!(
                "{name} ({}): {} answered, {} failed, log {}\n",
                if naive { "naive" } else { "ours" },
                outcome.answered,
                outcome.failed,
                log_path.display()
            ));
            if name == "provider-outage" && !naive {
                outage_events = Some(outcome.events.clone());
            }
            pair.push(RunSummary::from_events(&outcome.events));
        }
        let naive = pair.pop();
        let ours = pair.pop();
        if let (Some(ours), Some(naive)) = (ours, naive) {
            runs.push((name, ours, naive));
        }
    }
    text.push('\n');
    text.push_str(&report::side_by_side(&runs));
    if let Some(events) = outage_events {
        let svg_path = o.out.join("provider-outage.svg");
        let svg = timeline::render_svg(&events, "provider-outage (ours)");
        std::fs::write(&svg_path, svg).map_err(io(&svg_path))?;
        text.push_str(&format!("\ntimeline: {}\n", svg_path.display()));
    }
    let mixed = scenarios_dir().join("mixed.json");
    if mixed.exists() {
        text.push_str(&shutdown_resume(&o, &mixed).await?);
    }
    Ok(text)
}

/// A log sink that cancels the run once it has written `after` `job_done` lines: the demo
/// stops mid-run at a point set by progress, not by the clock (loading the engine takes a
/// variable time).
pub struct CancelAfterDone<W> {
    inner: W,
    done: usize,
    after: usize,
    cancel: CancelHandle,
}

impl<W> CancelAfterDone<W> {
    /// Wraps `inner`; cancels `cancel` after `after` finished jobs.
    pub fn new(inner: W, after: usize, cancel: CancelHandle) -> Self {
        CancelAfterDone {
            inner,
            done: 0,
            after,
            cancel,
        }
    }
}

impl<W: std::io::Write> std::io::Write for CancelAfterDone<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.windows(10).any(|w| w == b"\"job_done\"") {
            self.done += 1;
            if self.done == self.after {
                self.cancel.cancel("cancel");
            }
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Cancels a run of `scenario` once a third of its jobs are done, persists, resumes; the
/// lines to print.
async fn shutdown_resume(o: &DemoOptions, scenario: &Path) -> Result<String, AppError> {
    let state_dir = o.out.join("state-mixed");
    let _ = std::fs::remove_dir_all(&state_dir);
    let jobs = load_scenario(scenario)?.workload.jobs;
    let mut lines = String::from("\nshutdown/resume on mixed:\n");
    let mut totals = (0u64, 0u64);
    for (i, label) in ["first run (cancelled)", "resumed run"]
        .into_iter()
        .enumerate()
    {
        let cancel = CancelHandle::new();
        let log_path = o.out.join(format!("mixed-shutdown-{}.jsonl", i + 1));
        let file =
            std::io::BufWriter::new(std::fs::File::create(&log_path).map_err(io(&log_path))?);
        let sink: Box<dyn std::io::Write + Send> = if i == 0 {
            Box::new(CancelAfterDone::new(
                file,
                jobs as usize / 3,
                cancel.clone(),
            ))
        } else {
            Box::new(file)
        };
        let outcome = run_scenario(ScenarioRun {
            scenario: scenario.to_path_buf(),
            policy: o.policy.clone(),
            naive: false,
            engine: o.engine.clone(),
            base_url: None,
            api_key: MOCK_KEY.into(),
            events: Some(sink),
            events_path: None,
            state_dir: Some(state_dir.clone()),
            progress: o.progress,
            cancel,
            max_jobs: None,
        })
        .await?;
        totals.0 += outcome.answered;
        totals.1 += outcome.failed;
        lines.push_str(&format!(
            "  {label}: resumed {}, answered {}, failed {}, persisted {}, lost {}\n",
            outcome.resumed, outcome.answered, outcome.failed, outcome.persisted, outcome.lost
        ));
    }
    lines.push_str(&format!(
        "  jobs lost: {} of {jobs} (answered {} + failed {} across both runs)\n",
        u64::from(jobs).saturating_sub(totals.0 + totals.1),
        totals.0,
        totals.1
    ));
    Ok(lines)
}
