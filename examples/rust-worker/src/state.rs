//! Persist and resume: what a stopped worker leaves for the next start in `--state DIR`.
//!
//! Why persist snapshots and not only jobs: a worker restarted during an outage would otherwise
//! come back with every breaker closed and hammer the provider that is still down, and every
//! chat session would get a fresh rate limit. The breaker set, the limiter and the credit
//! monitor (which alerts are already raised) are written beside the unfinished jobs, and the
//! engine clock's last reading with them, so restored timestamps stay in the past.
//!
//! One file, `state.json`, written to a temporary file and renamed over the old one: a crash
//! mid-write leaves the previous state whole, never half of each.

use std::path::{Path, PathBuf};

use mock_openrouter::workload::Job;
use serde::{Deserialize, Serialize};

use crate::engine::Snapshots;

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "state.json";

/// A job not finished when the worker stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedJob {
    /// The job as it came from the queue.
    pub job: Job,
    /// Requests already sent for it.
    pub attempts: u32,
    /// Of which retries.
    pub retries: u32,
    /// Context shrinks already made.
    pub shrinks: u32,
}

/// Everything the next start takes over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedState {
    /// The scenario the jobs belong to.
    pub scenario: String,
    /// The engine clock when the state was written, ms; the next run's clock starts here.
    pub clock_ms: u64,
    /// The jobs to resume, in queue order.
    pub jobs: Vec<PersistedJob>,
    /// The engine's handles (absent for a run that had none to save).
    pub snapshots: Option<Snapshots>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file operation failed.
    #[error("state {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The state file is not valid.
    #[error("state {path}: invalid: {source}")]
    Invalid {
        /// The path.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Reads `dir/state.json`; `None` when there is none yet.
pub fn load(dir: &Path) -> Result<Option<SavedState>, StateError> {
    let path = dir.join(STATE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Io { path, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| StateError::Invalid { path, source })
}

/// Writes `dir/state.json` atomically (temporary file, then rename).
pub fn save(dir: &Path, state: &SavedState) -> Result<(), StateError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let text = serde_json::to_vec_pretty(state).map_err(|source| StateError::Invalid {
        path: path.clone(),
        source,
    })?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&text).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_a_missing_one_is_none() {
        let dir = std::env::temp_dir().join(format!("llmr-worker-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&dir).unwrap(), None);
        let state = SavedState {
            scenario: "s".into(),
            clock_ms: 42,
            jobs: vec![PersistedJob {
                job: Job {
                    id: "job-0001".into(),
                    session: "chat-001".into(),
                    arrive_ms: 5,
                    long: false,
                    stream: true,
                    flagged: false,
                    history: vec![],
                    message: "hi".into(),
                },
                attempts: 2,
                retries: 1,
                shrinks: 0,
            }],
            snapshots: None,
        };
        save(&dir, &state).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(state));
        assert!(!dir.join("state.json.tmp").exists());
        std::fs::write(dir.join(STATE_FILE), "{").unwrap();
        assert!(matches!(load(&dir), Err(StateError::Invalid { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
