//! `llmr-worker`: the support bot's AI worker on the command line.
//!
//! - `run --scenario FILE …` runs one scenario (the mock in-process unless `--base-url`), JSON
//!   Lines events to `--events FILE` or stdout, the progress bar on stderr;
//! - `run --live …` runs against the real OpenRouter with `OPENROUTER_API_KEY` (at most
//!   `--max-jobs`, default 5);
//! - `demo [--out DIR]` runs every scenario ours and naive, prints the report, draws the
//!   timeline and shows a shutdown/resume;
//! - `report LOG…` prints the report of event logs (of either worker).
//!
//! SIGINT/SIGTERM during `run` stop it gracefully (see `run`); the exit status is 0 when no job
//! was lost, 1 on an error (a state directory that cannot be written is one, at start-up; a
//! journal that failed during the run is one too, after `run_end`), 2 when jobs were lost.
//! With `--state DIR` every job is journaled as it is taken and as it ends (`journal`), so a
//! crash, even `kill -9`, loses none and the next start answers none twice.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use llmr_worker::app::{self, AppError, DemoOptions, ScenarioRun};
use llmr_worker::engine::EngineChoice;
use llmr_worker::policy::Policy;
use llmr_worker::run::CancelHandle;

#[derive(Parser)]
#[command(
    name = "llmr-worker",
    version,
    about = "The support bot's AI worker, every call decided by llm-resilience"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario.
    Run {
        /// The scenario file (`examples/scenarios/<name>.json`).
        #[arg(long)]
        scenario: PathBuf,
        /// The policy file (default: `examples/scenarios/policy.json`).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Run the naive baseline instead of the policy.
        #[arg(long)]
        naive: bool,
        /// Use the native core instead of the component.
        #[arg(long)]
        native: bool,
        /// The component file (default: `$LLMR_COMPONENT` or `target/llm-resilience.wasm`).
        #[arg(long)]
        component: Option<PathBuf>,
        /// The API base URL, e.g. `http://127.0.0.1:PORT/api/v1` (default: start the mock).
        #[arg(long)]
        base_url: Option<String>,
        /// Write events here (default: stdout).
        #[arg(long)]
        events: Option<PathBuf>,
        /// Persist unfinished jobs and state here; resume from it.
        #[arg(long)]
        state: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Call the real OpenRouter with `OPENROUTER_API_KEY` (costs money).
        #[arg(long)]
        live: bool,
        /// With `--live`: take at most this many jobs.
        #[arg(long, default_value_t = 5)]
        max_jobs: usize,
    },
    /// Every scenario, ours and naive, then the report, the timeline and a shutdown/resume.
    Demo {
        /// Where logs and the timeline go.
        #[arg(long, default_value = "target/demo")]
        out: PathBuf,
        /// Use the native core instead of the component.
        #[arg(long)]
        native: bool,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
    },
    /// Print the report of event logs.
    Report {
        /// JSON Lines event logs.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
    },
}

fn engine_choice(native: bool, component: Option<PathBuf>) -> EngineChoice {
    if native {
        EngineChoice::Native
    } else {
        EngineChoice::Component(component.unwrap_or_else(llmr_host::default_component_path))
    }
}

/// Cancels `handle` on SIGINT or SIGTERM.
fn on_signals(handle: CancelHandle) -> Result<(), std::io::Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        handle.cancel(name);
    });
    Ok(())
}

async fn real_main(cli: Cli) -> Result<ExitCode, AppError> {
    match cli.command {
        Command::Run {
            scenario,
            policy,
            naive,
            native,
            component,
            base_url,
            events,
            state,
            quiet,
            live,
            max_jobs,
        } => {
            let policy = Policy::from_file(&policy.unwrap_or_else(app::default_policy_path))?;
            let key = std::env::var(app::KEY_ENV).ok().filter(|k| !k.is_empty());
            let (base_url, api_key, max_jobs) = if live {
                let Some(key) = key else {
                    eprintln!("llmr-worker: --live needs {} to be set", app::KEY_ENV);
                    return Ok(ExitCode::from(1));
                };
                (Some(app::LIVE_BASE_URL.to_string()), key, Some(max_jobs))
            } else {
                (base_url, key.unwrap_or_else(|| app::MOCK_KEY.into()), None)
            };
            // Unbuffered: each event is one write(2), so the lines written before a crash (even
            // a SIGKILL) are in the file, whole.
            let sink: Box<dyn std::io::Write + Send> = match &events {
                Some(path) => Box::new(std::fs::File::create(path).map_err(|e| AppError::Io {
                    path: path.clone(),
                    message: e.to_string(),
                })?),
                None => Box::new(std::io::stdout()),
            };
            let cancel = CancelHandle::new();
            on_signals(cancel.clone()).map_err(|e| AppError::Io {
                path: PathBuf::from("signals"),
                message: e.to_string(),
            })?;
            let outcome = app::run_scenario(ScenarioRun {
                scenario,
                policy,
                naive,
                engine: engine_choice(native, component),
                base_url,
                api_key,
                events: Some(sink),
                events_path: events.clone(),
                state_dir: state,
                progress: !quiet,
                cancel,
                max_jobs,
            })
            .await?;
            if let Some(e) = &outcome.log_error {
                eprintln!("llmr-worker: writing events: {e}");
            }
            eprintln!(
                "llmr-worker: answered {}, failed {}, persisted {}, lost {}",
                outcome.answered, outcome.failed, outcome.persisted, outcome.lost
            );
            Ok(if outcome.lost > 0 {
                ExitCode::from(2)
            } else if let Some(e) = &outcome.journal_error {
                eprintln!("llmr-worker: the journal failed during the run: {e}");
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Demo { out, native, quiet } => {
            let policy = Policy::from_file(&app::default_policy_path())?;
            let text = app::demo(DemoOptions {
                out,
                engine: engine_choice(native, None),
                policy,
                progress: !quiet,
            })
            .await?;
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { logs } => {
            let logs = app::read_logs(&logs)?;
            println!("{}", app::report_of_logs(&logs));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("llmr-worker: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(real_main(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "llmr-worker: {}",
                llm_resilience::redact::redact(&e.to_string())
            );
            ExitCode::from(1)
        }
    }
}
