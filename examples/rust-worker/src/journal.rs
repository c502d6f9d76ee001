//! The write-ahead journal in `--state DIR`: what makes a `kill -9` lose nothing and answer
//! nothing twice.
//!
//! Why a journal and not a state file written at shutdown: a file written only on SIGTERM says
//! nothing after a crash, a power cut or an OOM kill. The next start then takes the whole queue
//! again (every job answered before the crash is answered a second time), or, behind a queue that
//! acknowledges on receipt, loses every job it had taken; and breaker and limiter state is gone
//! either way. The journal records each fact *before* the worker acts on it, so whatever moment
//! the process dies at, the next start knows which jobs it owns and which of them are done.
//!
//! # What is written, and when (the order is the guarantee)
//!
//! - **accepted** (the job's id and whole input, with its counts): for every job of the queue,
//!   in one batch, before the run takes the first one and therefore before any call for it.
//! - **finished** (`answered` or `failed`, with the job id): after the job's last response and
//!   *before* the worker counts it (the `answered`/`failed` counters, the `job_done` event).
//! - **snapshot** (breaker set, limiter, credit monitor and the engine clock): every
//!   [`SNAPSHOT_INTERVAL_MS`] and at every graceful shutdown.
//! - **progress** (attempts, retries, shrinks of an unfinished job): at a graceful shutdown.
//! - **log** (the run's `--events` file) at each start; **reported** after a clean end.
//!
//! Each append is written and `fdatasync`ed before the caller goes on; appends from concurrent
//! jobs are batched by one writer thread (group commit), so one sync covers every record that
//! arrived while the previous one ran.
//!
//! The next start replays the journal: finished ids are never run again (de-duplication by job
//! id), accepted-but-unfinished jobs are resumed first, the latest snapshots are restored.
//! **Guarantee:** each job is counted — `answered` or `failed`, one `job_done` line across all
//! runs' logs — exactly once, however many crashes and restarts happen before the queue is
//! done. A kill between a `finished` record's sync and its `job_done` line (the sync takes
//! milliseconds, so this happens) leaves the job counted in the journal without its line; the
//! `finished` record carries the event, and the next start looks for it in the killed run's
//! event log (the `log` record) and writes it in its own log when it is missing (a log moved or
//! deleted between the runs counts as missing). Events sent
//! to stdout cannot be read back: those lines are then not written again (at most once). Calls
//! *to the provider* are at least once: a job whose request was in flight when the process
//! died has no `finished` record and is called again.
//!
//! # Format
//!
//! `journal.jsonl`, one record per line: the CRC-32 (IEEE) of the JSON in 8 lower-case hex
//! digits, a space, the record as one JSON object, a newline — self-delimiting and checksummed.
//! A last record without its newline, or without a checksum that matches (a write torn by a
//! power cut), is ignored and dropped at the next compaction; it was never acknowledged, so
//! nothing acted on it. A bad record *followed by a good one* is not a torn write but damage,
//! and the worker refuses to start (it would otherwise forget jobs it owns). A record whose
//! checksum matches but whose values are hostile (another format version, a clock beyond
//! [`MAX_CLOCK_MS`]) is an error too, never a panic.
//!
//! # Compaction
//!
//! At every start, at a clean close, and whenever the appended bytes exceed both
//! [`JournalOptions::compact_after_bytes`] and the size of the last compacted journal, the writer
//! rewrites the live set — the header, the latest snapshot, the finished ids, the unfinished jobs
//! — to `journal.jsonl.tmp`, syncs it, renames it over `journal.jsonl` and syncs the directory. A
//! crash at any step leaves either the old journal or the new one, whole. Finished ids are kept
//! (an id only, a few dozen bytes) for as long as the journal is the scenario's, so a redelivered
//! job is recognised; the finished jobs' inputs are dropped.
//!
//! # Modes
//!
//! The journal holds customer messages: the directory is created `0700` and every file `0600`.
//! An existing directory or state file with group or other permission bits is *tightened*
//! (those bits cleared, stderr says so) rather than refused, because the worker owns its state
//! directory; one it cannot tighten (not its owner) is an error at start-up. A directory that
//! cannot be written is an error at start-up too, before any job is taken: the start-up
//! compaction is the proof that it can be written.
//!
//! One worker per state directory: the journal is opened under an exclusive lock on
//! `journal.lock` (the kernel drops it when the process dies), so a second worker started on the
//! same directory — a supervisor that restarts a worker it thinks is hung — refuses to start
//! instead of running the same jobs.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::engine::Snapshots;
use crate::events::{Event, EventBody};
use crate::state::{PersistedJob, STATE_FILE, SavedState, StateError};

/// The journal's name inside the state directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// The compaction's temporary file.
pub const JOURNAL_TMP: &str = "journal.jsonl.tmp";

/// The lock file: one worker per state directory (an exclusive lock the kernel drops when the
/// process dies, `kill -9` included).
pub const LOCK_FILE: &str = "journal.lock";

/// The journal format written by this worker (the `open` record's `v`).
pub const FORMAT_VERSION: u32 = 1;

/// The largest engine clock a state may hold, ms (2^53 − 1, about 285,000 years: the largest
/// integer every JSON reader keeps exactly). Anything above is damage or another clock.
pub const MAX_CLOCK_MS: u64 = (1 << 53) - 1;

/// A record longer than this is not one this worker wrote (a job's input is far smaller).
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// How often a run journals the engine's snapshots, ms.
pub const SNAPSHOT_INTERVAL_MS: u64 = 500;

/// The default compaction threshold, bytes appended since the last compaction.
pub const DEFAULT_COMPACT_AFTER_BYTES: u64 = 1 << 20;

/// How a finished job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    /// The job got its answer.
    Answered,
    /// The job failed for good.
    Failed,
}

/// One journal record; `rec` names the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rec", rename_all = "snake_case")]
pub enum Record {
    /// The first record of every (compacted) journal.
    Open {
        /// The format version, [`FORMAT_VERSION`].
        v: u32,
        /// The scenario whose jobs the journal holds.
        scenario: String,
        /// The engine clock the live set was compacted at, ms.
        clock_ms: u64,
    },
    /// The worker took a job: written before any call for it.
    Accepted(PersistedJob),
    /// An unfinished job's counts (at a graceful shutdown).
    Progress {
        /// The job.
        id: String,
        /// Requests sent for it so far.
        attempts: u32,
        /// Of which retries.
        retries: u32,
        /// Context shrinks so far.
        shrinks: u32,
    },
    /// The job ended: written before the worker counts it.
    Finished {
        /// The job.
        id: String,
        /// How it ended.
        outcome: JobOutcome,
        /// Its `job_done` event, kept until a start finds the line in the run's event log (and
        /// writes it again when the run died before it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        done: Option<EventBody>,
    },
    /// The event log the run writes (`None`: not a file, e.g. stdout).
    Log {
        /// The log's absolute path.
        path: Option<PathBuf>,
    },
    /// Every `job_done` line so far is in the log (written after a clean end of the run).
    Reported,
    /// The engine's handles and clock.
    Snapshot {
        /// The engine clock when they were taken, ms.
        clock_ms: u64,
        /// The handles.
        snapshots: Snapshots,
    },
}

/// What the journal says now: the state a restart takes over.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// The scenario the jobs belong to.
    pub scenario: String,
    /// The engine clock of the latest snapshot (or of the last compaction), ms.
    pub clock_ms: u64,
    /// The latest snapshots.
    pub snapshots: Option<Snapshots>,
    /// Every finished job of the scenario and how it ended.
    pub finished: BTreeMap<String, JobOutcome>,
    /// The event log of the last run (`None`: none, or not a file).
    pub log: Option<PathBuf>,
    /// Finished jobs whose `job_done` line is not known to be in `log`, with the event.
    pub unreported: BTreeMap<String, EventBody>,
    unfinished: BTreeMap<u64, PersistedJob>,
    seq_of: HashMap<String, u64>,
    next_seq: u64,
}

impl Live {
    /// An empty live set for `scenario`, starting from `clock_ms` and `snapshots`.
    pub fn new(scenario: &str, clock_ms: u64, snapshots: Option<Snapshots>) -> Live {
        Live {
            scenario: scenario.to_string(),
            clock_ms,
            snapshots,
            ..Live::default()
        }
    }

    /// The accepted jobs not finished yet, in the order they were accepted.
    pub fn unfinished(&self) -> Vec<PersistedJob> {
        self.unfinished.values().cloned().collect()
    }

    /// How many accepted jobs are not finished.
    pub fn unfinished_len(&self) -> usize {
        self.unfinished.len()
    }

    /// Whether the journal knows the job (accepted or finished).
    pub fn knows(&self, id: &str) -> bool {
        self.finished.contains_key(id) || self.seq_of.contains_key(id)
    }

    /// Applies one record (not the `open` header); `Err` says why its values are unacceptable.
    pub fn apply(&mut self, record: &Record) -> Result<(), String> {
        match record {
            Record::Open { .. } => {
                return Err("an open record in the middle of the journal".into());
            }
            Record::Accepted(pj) => {
                if !self.knows(&pj.job.id) {
                    let seq = self.next_seq;
                    self.next_seq = self.next_seq.saturating_add(1);
                    self.seq_of.insert(pj.job.id.clone(), seq);
                    self.unfinished.insert(seq, pj.clone());
                }
            }
            Record::Progress {
                id,
                attempts,
                retries,
                shrinks,
            } => {
                if let Some(pj) = self.seq_of.get(id).and_then(|s| self.unfinished.get_mut(s)) {
                    pj.attempts = *attempts;
                    pj.retries = *retries;
                    pj.shrinks = *shrinks;
                }
            }
            Record::Finished { id, outcome, done } => {
                if let Some(seq) = self.seq_of.remove(id) {
                    self.unfinished.remove(&seq);
                }
                if !self.finished.contains_key(id) {
                    self.finished.insert(id.clone(), *outcome);
                    if let Some(d) = done {
                        self.unreported.insert(id.clone(), d.clone());
                    }
                }
            }
            Record::Log { path } => self.log = path.clone(),
            Record::Reported => self.unreported.clear(),
            Record::Snapshot {
                clock_ms,
                snapshots,
            } => {
                check_clock(*clock_ms)?;
                self.clock_ms = *clock_ms;
                self.snapshots = Some(snapshots.clone());
            }
        }
        Ok(())
    }

    /// The live set as records: what a compaction writes.
    pub fn records(&self) -> Vec<Record> {
        let mut out = vec![Record::Open {
            v: FORMAT_VERSION,
            scenario: self.scenario.clone(),
            clock_ms: self.clock_ms,
        }];
        if self.log.is_some() {
            out.push(Record::Log {
                path: self.log.clone(),
            });
        }
        if let Some(s) = &self.snapshots {
            out.push(Record::Snapshot {
                clock_ms: self.clock_ms,
                snapshots: s.clone(),
            });
        }
        out.extend(self.finished.iter().map(|(id, outcome)| Record::Finished {
            id: id.clone(),
            outcome: *outcome,
            done: self.unreported.get(id).cloned(),
        }));
        out.extend(self.unfinished.values().cloned().map(Record::Accepted));
        out
    }

    /// The [`SavedState`] view (the unfinished jobs, the snapshots, the clock).
    pub fn saved_state(&self) -> SavedState {
        SavedState {
            scenario: self.scenario.clone(),
            clock_ms: self.clock_ms,
            jobs: self.unfinished(),
            snapshots: self.snapshots.clone(),
        }
    }

    /// The live set of a legacy `state.json` (every job unfinished, none finished).
    pub fn from_saved(s: SavedState) -> Result<Live, String> {
        check_clock(s.clock_ms)?;
        let mut live = Live::new(&s.scenario, s.clock_ms, s.snapshots);
        for pj in s.jobs {
            live.apply(&Record::Accepted(pj))?;
        }
        Ok(live)
    }
}

/// The jobs with a `job_done` line in the event log at `path` (lines that do not parse are
/// skipped; a missing file has none).
pub fn logged_ends(path: &Path) -> std::collections::BTreeSet<String> {
    let text = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| Event::from_line(l).ok())
        .filter_map(|e| match e.body {
            EventBody::JobDone { job, .. } => Some(job),
            _ => None,
        })
        .collect()
}

fn check_clock(clock_ms: u64) -> Result<(), String> {
    if clock_ms > MAX_CLOCK_MS {
        return Err(format!(
            "clock_ms {clock_ms} is above the largest accepted {MAX_CLOCK_MS} (2^53 - 1 ms): \
             the state is damaged or from another clock"
        ));
    }
    Ok(())
}

/// The CRC-32 (IEEE 802.3, reflected, the zlib/PNG one) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes
        .iter()
        .fold(!0u32, |c, &b| TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8))
}

/// One record as a journal line: checksum, space, JSON, newline.
pub fn encode(record: &Record) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_vec(record)?;
    let mut line = format!("{:08x} ", crc32(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    Ok(line)
}

/// Why a line is not a record.
enum LineError {
    /// Torn or damaged: no checksum, or one that does not match.
    Damaged(String),
    /// The checksum matches: the writer wrote it, and its content is unacceptable.
    Invalid(String),
}

fn decode(line: &[u8]) -> Result<Record, LineError> {
    if line.len() > MAX_RECORD_BYTES {
        return Err(LineError::Damaged(format!(
            "a record of {} bytes (the largest is {MAX_RECORD_BYTES})",
            line.len()
        )));
    }
    let (Some(hex), Some(b' '), Some(json)) = (line.get(..8), line.get(8), line.get(9..)) else {
        return Err(LineError::Damaged("no checksum".into()));
    };
    let want = std::str::from_utf8(hex)
        .ok()
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| LineError::Damaged("no checksum".into()))?;
    if crc32(json) != want {
        return Err(LineError::Damaged("checksum mismatch".into()));
    }
    serde_json::from_slice(json).map_err(|e| LineError::Invalid(format!("invalid record: {e}")))
}

/// A journal read back.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The live set (`None`: the journal held no whole record).
    pub live: Option<Live>,
    /// Whole records applied.
    pub records: usize,
    /// What was ignored at the end, if anything (a torn last write).
    pub torn_tail: Option<String>,
}

/// Replays journal bytes (`path` names them in errors).
pub fn replay_bytes(bytes: &[u8], path: &Path) -> Result<Replayed, StateError> {
    let rejected = |line: usize, why: String| StateError::Rejected {
        path: path.to_path_buf(),
        why: format!("line {line}: {why}"),
    };
    let mut live: Option<Live> = None;
    let mut records = 0usize;
    let mut bad: Option<(usize, String)> = None;
    let mut rest = bytes;
    let mut line_no = 0usize;
    let mut torn_tail = None;
    while !rest.is_empty() {
        line_no += 1;
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            torn_tail = Some(format!(
                "an unterminated last record of {} bytes at line {line_no}",
                rest.len()
            ));
            break;
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        match decode(line) {
            Ok(record) => {
                if let Some((at, why)) = &bad {
                    return Err(StateError::Rejected {
                        path: path.to_path_buf(),
                        why: format!(
                            "line {at}: {why}, and whole records follow it: the journal is \
                             damaged, not torn (move it away to start afresh, losing its jobs)"
                        ),
                    });
                }
                match (&mut live, &record) {
                    (
                        None,
                        Record::Open {
                            v,
                            scenario,
                            clock_ms,
                        },
                    ) => {
                        if *v != FORMAT_VERSION {
                            return Err(rejected(
                                line_no,
                                format!("format version {v}; this worker reads {FORMAT_VERSION}"),
                            ));
                        }
                        check_clock(*clock_ms).map_err(|why| rejected(line_no, why))?;
                        live = Some(Live::new(scenario, *clock_ms, None));
                    }
                    (None, _) => {
                        return Err(rejected(line_no, "the first record is not `open`".into()));
                    }
                    (Some(l), r) => l.apply(r).map_err(|why| rejected(line_no, why))?,
                }
                records += 1;
            }
            Err(LineError::Invalid(why)) => return Err(rejected(line_no, why)),
            Err(LineError::Damaged(why)) => {
                bad.get_or_insert((line_no, why));
            }
        }
    }
    if let Some((at, why)) = bad {
        let tail = format!("a damaged last record at line {at} ({why})");
        torn_tail = Some(match torn_tail {
            Some(t) => format!("{tail} and {t}"),
            None => tail,
        });
    }
    Ok(Replayed {
        live,
        records,
        torn_tail,
    })
}

/// Replays `dir/journal.jsonl` without changing anything; `None` when there is none.
pub fn replay(dir: &Path) -> Result<Option<Replayed>, StateError> {
    let path = dir.join(JOURNAL_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => replay_bytes(&bytes, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io { path, source }),
    }
}

/// What a start found in the state directory.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The live set to take over (`None`: a new directory).
    pub live: Option<Live>,
    /// What the start did or noticed (tightened modes, a torn tail, a migrated `state.json`),
    /// for stderr.
    pub notes: Vec<String>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Clears the group and other bits of `path` when it has any; a note when it did.
fn tighten(path: &Path, private: u32) -> Result<Option<String>, StateError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    let new = mode & !0o077;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(new)).map_err(|source| {
        StateError::NotPrivate {
            path: path.to_path_buf(),
            mode,
            want: private,
            source,
        }
    })?;
    Ok(Some(format!(
        "{} was mode {mode:04o}, readable by others; tightened to {new:04o}",
        path.display()
    )))
}

/// Makes `dir` a private state directory (created `0700`, or tightened) and tightens the state
/// files in it; the notes for stderr.
pub fn prepare_dir(dir: &Path) -> Result<Vec<String>, StateError> {
    let mut notes = Vec::new();
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(StateError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        Ok(_) => notes.extend(tighten(dir, 0o700)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StateError::NotWritable {
                    dir: dir.to_path_buf(),
                    source,
                })?;
            // The umask may have taken owner bits: the worker's own directory is exactly 0700.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err(dir))?;
        }
        // Below a file, or a parent that cannot be searched: it cannot be written either.
        Err(source) => {
            return Err(StateError::NotWritable {
                dir: dir.to_path_buf(),
                source,
            });
        }
    }
    for name in [JOURNAL_FILE, JOURNAL_TMP, LOCK_FILE, STATE_FILE] {
        notes.extend(tighten(&dir.join(name), 0o600)?);
    }
    Ok(notes)
}

/// Prepares `dir` ([`prepare_dir`]) and reads what it holds: the journal, else a `state.json`
/// of an older worker (migrated into the journal when the run starts it).
pub fn recover(dir: &Path) -> Result<Recovered, StateError> {
    let mut notes = prepare_dir(dir)?;
    if let Some(r) = replay(dir)? {
        if let Some(t) = &r.torn_tail {
            notes.push(format!(
                "{}: ignored {t} (a write torn by a crash; never acknowledged)",
                dir.join(JOURNAL_FILE).display()
            ));
        }
        if r.live.is_some() {
            return Ok(Recovered {
                live: r.live,
                notes,
            });
        }
    }
    let legacy = crate::state::load_legacy(dir)?;
    let live = match legacy {
        Some(s) => {
            let path = dir.join(STATE_FILE);
            notes.push(format!(
                "{}: taking over {} jobs from a state file of an older worker",
                path.display(),
                s.jobs.len()
            ));
            Some(Live::from_saved(s).map_err(|why| StateError::Rejected { path, why })?)
        }
        None => None,
    };
    Ok(Recovered { live, notes })
}

/// Writes `live` as the whole journal: temporary file (`0600`), sync, rename, sync the
/// directory. Returns the size written.
fn compact(dir: &Path, live: &Live) -> std::io::Result<u64> {
    let tmp = dir.join(JOURNAL_TMP);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut buf = Vec::new();
    for r in live.records() {
        buf.extend_from_slice(&encode(&r).map_err(std::io::Error::other)?);
    }
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(JOURNAL_FILE))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(buf.len() as u64)
}

fn open_append(dir: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .append(true)
        .mode(0o600)
        .open(dir.join(JOURNAL_FILE))
}

/// Why an append failed: the journal is then unusable for the rest of the run (after a failed
/// write or sync the file's content is unknown, so nothing more is acknowledged).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("journal {path}: {message}")]
pub struct JournalError {
    /// The journal.
    pub path: PathBuf,
    /// What failed.
    pub message: String,
}

/// Tuning.
#[derive(Debug, Clone, Copy)]
pub struct JournalOptions {
    /// Compact once more than this many bytes (and more than the last compacted size) were
    /// appended.
    pub compact_after_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            compact_after_bytes: DEFAULT_COMPACT_AFTER_BYTES,
        }
    }
}

enum Cmd {
    Append {
        bytes: Vec<u8>,
        records: Vec<Record>,
        ack: tokio::sync::oneshot::Sender<Result<(), JournalError>>,
    },
    Close {
        ack: tokio::sync::oneshot::Sender<Result<(), JournalError>>,
    },
}

/// The open journal of a run: appends are durable when they return.
#[derive(Debug)]
pub struct Journal {
    tx: Mutex<Option<mpsc::Sender<Cmd>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    path: PathBuf,
    /// Held (locked) for as long as the journal is open.
    _lock: std::fs::File,
}

/// Takes `dir`'s lock file, or says which worker's it is not.
fn lock_dir(dir: &Path) -> Result<std::fs::File, StateError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|source| StateError::NotWritable {
            dir: dir.to_path_buf(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Busy {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StateError::Io { path, source }),
    }
}

struct Writer {
    dir: PathBuf,
    path: PathBuf,
    file: std::fs::File,
    live: Live,
    appended: u64,
    compacted: u64,
    opts: JournalOptions,
    failed: Option<JournalError>,
    compactions: u64,
}

impl Writer {
    fn fail(&mut self, what: &str, e: &std::io::Error) -> JournalError {
        let err = JournalError {
            path: self.path.clone(),
            message: format!("{what}: {e}"),
        };
        self.failed = Some(err.clone());
        err
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), JournalError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(bytes) {
            return Err(self.fail("write", &e));
        }
        if let Err(e) = self.file.sync_data() {
            return Err(self.fail("sync", &e));
        }
        self.appended = self.appended.saturating_add(bytes.len() as u64);
        Ok(())
    }

    fn maybe_compact(&mut self) {
        if self.appended > self.opts.compact_after_bytes.max(self.compacted) {
            self.compact_now();
        }
    }

    fn compact_now(&mut self) {
        if self.failed.is_some() {
            return;
        }
        let result = compact(&self.dir, &self.live).and_then(|size| {
            self.file = open_append(&self.dir)?;
            Ok(size)
        });
        match result {
            Ok(size) => {
                self.compacted = size;
                self.appended = 0;
                self.compactions += 1;
            }
            Err(e) => {
                let err = self.fail("compaction", &e);
                eprintln!("llmr-worker: {err}");
            }
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            let mut bytes = Vec::new();
            let mut acks = Vec::new();
            let mut applied = Vec::new();
            let mut close = None;
            for cmd in batch {
                match cmd {
                    Cmd::Append {
                        bytes: b,
                        records,
                        ack,
                    } => {
                        bytes.extend_from_slice(&b);
                        applied.extend(records);
                        acks.push(ack);
                    }
                    Cmd::Close { ack } => close = Some(ack),
                }
            }
            let result = self.write(&bytes);
            if result.is_ok() {
                for r in &applied {
                    // Our own records: values were checked when they were made.
                    let _ = self.live.apply(r);
                }
            }
            for ack in acks {
                let _ = ack.send(result.clone());
            }
            if close.is_some() && self.appended > 0 {
                // A clean end leaves the live set only: the finished jobs' messages go.
                self.compact_now();
            } else {
                self.maybe_compact();
            }
            if let Some(ack) = close {
                let _ = ack.send(match &self.failed {
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                });
                return;
            }
        }
    }
}

impl Journal {
    /// Writes `live` as the journal of `dir` (the start-up compaction: it proves the directory
    /// can be written, before any job is taken), removes a migrated `state.json`, and starts
    /// the writer.
    pub fn start(dir: &Path, live: Live, opts: JournalOptions) -> Result<Journal, StateError> {
        let lock = lock_dir(dir)?;
        let not_writable = |source| StateError::NotWritable {
            dir: dir.to_path_buf(),
            source,
        };
        let compacted = compact(dir, &live).map_err(not_writable)?;
        let file = open_append(dir).map_err(not_writable)?;
        let legacy = dir.join(STATE_FILE);
        if legacy.exists() {
            std::fs::remove_file(&legacy).map_err(io_err(&legacy))?;
        }
        let path = dir.join(JOURNAL_FILE);
        let writer = Writer {
            dir: dir.to_path_buf(),
            path: path.clone(),
            file,
            live,
            appended: 0,
            compacted,
            opts,
            failed: None,
            compactions: 0,
        };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("llmr-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err(dir))?;
        Ok(Journal {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            path,
            _lock: lock,
        })
    }

    fn closed(&self) -> JournalError {
        JournalError {
            path: self.path.clone(),
            message: "the journal is closed".into(),
        }
    }

    fn send(&self, cmd: Cmd) -> Result<(), JournalError> {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        match tx.as_ref() {
            Some(tx) => tx.send(cmd).map_err(|_| self.closed()),
            None => Err(self.closed()),
        }
    }

    /// Appends `records`; returns once they are written and synced (or the journal failed).
    pub async fn append(&self, records: Vec<Record>) -> Result<(), JournalError> {
        let mut bytes = Vec::new();
        for r in &records {
            bytes.extend_from_slice(&encode(r).map_err(|e| JournalError {
                path: self.path.clone(),
                message: format!("encode: {e}"),
            })?);
        }
        let (ack, rx) = tokio::sync::oneshot::channel();
        self.send(Cmd::Append {
            bytes,
            records,
            ack,
        })?;
        rx.await.map_err(|_| self.closed())?
    }

    /// Stops the writer after everything appended so far; the first failure of the run, if any.
    pub async fn close(&self) -> Result<(), JournalError> {
        let (ack, rx) = tokio::sync::oneshot::channel();
        let sent = self.send(Cmd::Close { ack });
        let result = match sent {
            Ok(()) => rx.await.unwrap_or_else(|_| Err(self.closed())),
            Err(e) => Err(e),
        };
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        result
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mock_openrouter::workload::Job;

    fn job(id: &str) -> PersistedJob {
        PersistedJob {
            job: Job {
                id: id.into(),
                session: "chat-001".into(),
                arrive_ms: 5,
                long: false,
                stream: false,
                flagged: false,
                history: vec![],
                message: format!("message of {id} 🙂"),
            },
            attempts: 0,
            retries: 0,
            shrinks: 0,
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("llmr-worker-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn lines(records: &[Record]) -> Vec<u8> {
        records.iter().flat_map(|r| encode(r).unwrap()).collect()
    }

    fn open() -> Record {
        Record::Open {
            v: FORMAT_VERSION,
            scenario: "s".into(),
            clock_ms: 10,
        }
    }

    fn finished(id: &str) -> Record {
        Record::Finished {
            id: id.into(),
            outcome: JobOutcome::Answered,
            done: None,
        }
    }

    #[test]
    fn crc32_is_the_ieee_one() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn replay_applies_accepts_finishes_progress_and_snapshots() {
        let snaps = Snapshots {
            breakers: serde_json::json!({"breakers": {}}),
            limiter: serde_json::json!({"keys": []}),
            credits: serde_json::json!({}),
        };
        let bytes = lines(&[
            open(),
            Record::Accepted(job("job-0001")),
            Record::Accepted(job("job-0002")),
            Record::Accepted(job("job-0003")),
            finished("job-0002"),
            Record::Progress {
                id: "job-0003".into(),
                attempts: 2,
                retries: 1,
                shrinks: 1,
            },
            Record::Snapshot {
                clock_ms: 900,
                snapshots: snaps.clone(),
            },
            // A redelivered accept of a finished job does not bring it back.
            Record::Accepted(job("job-0002")),
        ]);
        let r = replay_bytes(&bytes, Path::new("j")).unwrap();
        let live = r.live.unwrap();
        assert_eq!(r.records, 8);
        assert_eq!(r.torn_tail, None);
        let ids: Vec<String> = live.unfinished().into_iter().map(|p| p.job.id).collect();
        assert_eq!(ids, ["job-0001", "job-0003"]);
        assert_eq!(live.unfinished()[1].attempts, 2);
        assert_eq!(live.finished.get("job-0002"), Some(&JobOutcome::Answered));
        assert_eq!((live.clock_ms, live.snapshots), (900, Some(snaps)));
    }

    #[test]
    fn a_torn_last_record_is_ignored_never_parsed() {
        let whole = lines(&[open(), Record::Accepted(job("job-0001"))]);
        let last = encode(&finished("job-0001")).unwrap();
        // Every prefix of the last record (cut anywhere, newline or not), and the record with a
        // flipped byte: the job stays unfinished and nothing else changes.
        for cut in 0..last.len() {
            let mut bytes = whole.clone();
            bytes.extend_from_slice(&last[..cut]);
            let r = replay_bytes(&bytes, Path::new("j")).unwrap();
            let live = r.live.unwrap();
            assert_eq!(live.unfinished_len(), 1, "cut at {cut}");
            assert!(live.finished.is_empty(), "cut at {cut}");
            assert_eq!(r.torn_tail.is_some(), cut > 0, "cut at {cut}");
        }
        let mut flipped = last.clone();
        flipped[20] ^= 0x01;
        let mut bytes = whole.clone();
        bytes.extend_from_slice(&flipped);
        let r = replay_bytes(&bytes, Path::new("j")).unwrap();
        assert!(r.torn_tail.unwrap().contains("checksum mismatch"));
        assert_eq!(r.live.unwrap().unfinished_len(), 1);
        // Zeros where the record should be (a page not yet written when the power went).
        let mut bytes = whole;
        bytes.extend_from_slice(&[0u8; 300]);
        bytes.push(b'\n');
        let r = replay_bytes(&bytes, Path::new("j")).unwrap();
        assert_eq!(r.live.unwrap().unfinished_len(), 1);
    }

    #[test]
    fn damage_followed_by_whole_records_is_an_error() {
        let mut bytes = lines(&[open(), Record::Accepted(job("job-0001"))]);
        bytes.extend_from_slice(b"deadbeef {\"rec\":\"finished\"}\n");
        bytes.extend_from_slice(&encode(&finished("job-0001")).unwrap());
        let err = replay_bytes(&bytes, Path::new("j"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("damaged"), "{err}");
    }

    #[test]
    fn hostile_values_with_a_good_checksum_are_typed_errors() {
        let huge = Record::Open {
            v: FORMAT_VERSION,
            scenario: "s".into(),
            clock_ms: u64::MAX,
        };
        let err = replay_bytes(&lines(&[huge]), Path::new("j")).unwrap_err();
        assert!(matches!(err, StateError::Rejected { .. }));
        assert!(
            err.to_string().contains("clock_ms 18446744073709551615"),
            "{err}"
        );
        let snap = Record::Snapshot {
            clock_ms: MAX_CLOCK_MS + 1,
            snapshots: Snapshots {
                breakers: serde_json::Value::Null,
                limiter: serde_json::Value::Null,
                credits: serde_json::Value::Null,
            },
        };
        let err = replay_bytes(&lines(&[open(), snap]), Path::new("j")).unwrap_err();
        assert!(err.to_string().contains("line 2: clock_ms"), "{err}");
        let v2 = Record::Open {
            v: 2,
            scenario: "s".into(),
            clock_ms: 0,
        };
        let err = replay_bytes(&lines(&[v2]), Path::new("j")).unwrap_err();
        assert!(err.to_string().contains("format version 2"), "{err}");
        // A checksummed line that is not a record: written by someone, and not understood.
        let json = br#"{"rec":"delete-everything"}"#;
        let mut bytes = lines(&[open()]);
        bytes.extend_from_slice(format!("{:08x} ", crc32(json)).as_bytes());
        bytes.extend_from_slice(json);
        bytes.push(b'\n');
        let err = replay_bytes(&bytes, Path::new("j")).unwrap_err();
        assert!(err.to_string().contains("invalid record"), "{err}");
        let err = replay_bytes(&lines(&[finished("x")]), Path::new("j")).unwrap_err();
        assert!(err.to_string().contains("not `open`"), "{err}");
    }

    #[test]
    fn the_live_set_round_trips_through_its_records() {
        let mut live = Live::new("s", 77, None);
        for i in 1..=5 {
            live.apply(&Record::Accepted(job(&format!("job-{i:04}"))))
                .unwrap();
        }
        live.apply(&finished("job-0002")).unwrap();
        live.apply(&finished("job-0004")).unwrap();
        let back = replay_bytes(&lines(&live.records()), Path::new("j"))
            .unwrap()
            .live
            .unwrap();
        assert_eq!(back.unfinished(), live.unfinished());
        assert_eq!(back.finished, live.finished);
        assert_eq!((back.scenario, back.clock_ms), ("s".to_string(), 77));
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn appends_are_durable_compaction_keeps_the_live_set_and_bounds_the_file() {
        let dir = temp("compact");
        prepare_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let journal = Journal::start(
            &dir,
            Live::new("s", 0, None),
            JournalOptions {
                compact_after_bytes: 4096,
            },
        )
        .unwrap();
        assert_eq!(mode(&dir.join(JOURNAL_FILE)), 0o600);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut biggest = 0;
        rt.block_on(async {
            for i in 1..=400 {
                let id = format!("job-{i:04}");
                journal
                    .append(vec![Record::Accepted(job(&id))])
                    .await
                    .unwrap();
                // Each acknowledged append is on disk, whole.
                let live = replay(&dir).unwrap().unwrap().live.unwrap();
                assert!(live.knows(&id));
                if i % 2 == 0 {
                    journal.append(vec![finished(&id)]).await.unwrap();
                }
                biggest = biggest.max(std::fs::metadata(dir.join(JOURNAL_FILE)).unwrap().len());
            }
            journal.close().await.unwrap();
        });
        let r = replay(&dir).unwrap().unwrap();
        let live = r.live.unwrap();
        // Closed cleanly: the file is the live set, nothing more.
        assert_eq!(r.records, live.records().len());
        assert_eq!(live.unfinished_len(), 200);
        assert_eq!(live.finished.len(), 200);
        // Without compaction the file would hold 600 records (about 100 KiB).
        let all = lines(
            &(1..=400)
                .map(|i| Record::Accepted(job(&format!("job-{i:04}"))))
                .collect::<Vec<_>>(),
        )
        .len() as u64;
        assert!(biggest < all, "{biggest} >= {all}: never compacted");
        assert_eq!(mode(&dir.join(JOURNAL_FILE)), 0o600);
        assert!(!dir.join(JOURNAL_TMP).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_worker_on_the_same_directory_is_refused() {
        let dir = temp("lock");
        prepare_dir(&dir).unwrap();
        let first =
            Journal::start(&dir, Live::new("s", 0, None), JournalOptions::default()).unwrap();
        let err =
            Journal::start(&dir, Live::new("s", 0, None), JournalOptions::default()).unwrap_err();
        assert!(matches!(err, StateError::Busy { .. }), "{err}");
        assert_eq!(mode(&dir.join(LOCK_FILE)), 0o600);
        drop(first);
        Journal::start(&dir, Live::new("s", 0, None), JournalOptions::default()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_open_directory_and_files_are_tightened() {
        let dir = temp("modes");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.join(JOURNAL_FILE);
        std::fs::write(&file, lines(&[open()])).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let notes = prepare_dir(&dir).unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("0755") && notes[0].contains("0700"),
            "{notes:?}"
        );
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        // A second start has nothing to tighten.
        assert!(prepare_dir(&dir).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
