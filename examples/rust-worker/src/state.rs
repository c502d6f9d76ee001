//! Persist and resume: what a worker leaves in `--state DIR` for the next start.
//!
//! Why persist snapshots and not only jobs: a worker restarted during an outage would otherwise
//! come back with every breaker closed and hammer the provider that is still down, and every
//! chat session would get a fresh rate limit. The breaker set, the limiter and the credit
//! monitor (which alerts are already raised) are kept beside the unfinished jobs, and the
//! engine clock's last reading with them, so restored timestamps stay in the past.
//!
//! The state lives in a write-ahead journal ([`crate::journal`]), written as the run goes, so
//! a crash loses nothing. This module holds the types a restart takes over ([`SavedState`],
//! [`PersistedJob`]), the errors, and [`load`], a read-only view of a state directory. A
//! `state.json` written by an older worker (only at a graceful shutdown) is still read, and
//! migrated into the journal at the next start.

use std::path::{Path, PathBuf};

use mock_openrouter::workload::Job;
use serde::{Deserialize, Serialize};

use crate::engine::Snapshots;

/// The state file of older workers (written only at a graceful shutdown), still read once.
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
    /// The state holds something this worker will not act on: a damaged journal, another
    /// format version, a hostile value (a clock near `u64::MAX`).
    #[error("state {path}: {why}")]
    Rejected {
        /// The file.
        path: PathBuf,
        /// What and where (the journal's line number).
        why: String,
    },
    /// The state directory cannot be written: found at start-up, before any job is taken.
    #[error(
        "state directory {dir} cannot be written ({source}); the worker journals every job \
         there before it takes it, so it does not start"
    )]
    NotWritable {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A state directory or file readable by others that the worker cannot make private.
    #[error(
        "state {path} is mode {mode:04o} (readable by others) and cannot be tightened to \
         {want:04o}: {source}"
    )]
    NotPrivate {
        /// The directory or file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
        /// The mode it should have.
        want: u32,
        /// Why the change failed.
        source: std::io::Error,
    },
    /// Another worker holds the state directory's lock.
    #[error("state directory {dir} is in use by another worker (its journal.lock is held)")]
    Busy {
        /// The directory.
        dir: PathBuf,
    },
    /// `--state` names something that is not a directory.
    #[error("state {path}: not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
}

/// The state of `dir` without changing anything: the journal replayed (a torn last record
/// ignored), else an older worker's `state.json`; `None` when there is neither.
pub fn load(dir: &Path) -> Result<Option<SavedState>, StateError> {
    if let Some(r) = crate::journal::replay(dir)?
        && let Some(live) = r.live
    {
        return Ok(Some(live.saved_state()));
    }
    load_legacy(dir)
}

/// Reads an older worker's `dir/state.json`; `None` when there is none. Its clock is checked
/// like the journal's.
pub fn load_legacy(dir: &Path) -> Result<Option<SavedState>, StateError> {
    let path = dir.join(STATE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Io { path, source }),
    };
    let state: SavedState = serde_json::from_str(&text).map_err(|source| StateError::Invalid {
        path: path.clone(),
        source,
    })?;
    if state.clock_ms > crate::journal::MAX_CLOCK_MS {
        return Err(StateError::Rejected {
            path,
            why: format!(
                "clock_ms {} is above the largest accepted {} (2^53 - 1 ms): the state is \
                 damaged or from another clock",
                state.clock_ms,
                crate::journal::MAX_CLOCK_MS
            ),
        });
    }
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{self, Journal, JournalOptions, Live};

    fn state(clock_ms: u64) -> SavedState {
        SavedState {
            scenario: "s".into(),
            clock_ms,
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
        }
    }

    #[test]
    fn a_legacy_state_is_read_migrated_and_a_missing_one_is_none() {
        let dir = std::env::temp_dir().join(format!("llmr-worker-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&dir).unwrap(), None);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(STATE_FILE),
            serde_json::to_vec(&state(42)).unwrap(),
        )
        .unwrap();
        assert_eq!(load(&dir).unwrap(), Some(state(42)));
        // The next start takes it into the journal and removes it; the view is the same.
        let recovered = journal::recover(&dir).unwrap();
        let live = recovered.live.unwrap();
        assert_eq!(live.saved_state(), state(42));
        Journal::start(&dir, live, JournalOptions::default()).unwrap();
        assert!(!dir.join(STATE_FILE).exists());
        assert_eq!(load(&dir).unwrap(), Some(state(42)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(STATE_FILE), "{").unwrap();
        assert!(matches!(load(&dir), Err(StateError::Invalid { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_legacy_clock_near_u64_max_is_a_typed_error() {
        let dir =
            std::env::temp_dir().join(format!("llmr-worker-state-max-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(STATE_FILE),
            serde_json::to_vec(&state(u64::MAX)).unwrap(),
        )
        .unwrap();
        let err = load(&dir).unwrap_err();
        assert!(matches!(err, StateError::Rejected { .. }), "{err}");
        assert!(journal::recover(&dir).is_err());
        assert!(Live::from_saved(state(u64::MAX)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
