//! The event log: every event goes to the JSON Lines sink (a file or stdout) as it happens and
//! is kept in memory for the caller (the demo's report, the tests).
//!
//! Why timestamps are taken here: `t_ms` is milliseconds since the run started, one monotonic
//! clock for every event of a run, so the timeline can be drawn from the log alone.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use crate::events::{Event, EventBody};

/// Where events go.
pub struct EventLog {
    start: Instant,
    sink: Mutex<Option<Box<dyn Write + Send>>>,
    kept: Mutex<Vec<Event>>,
    failed: Mutex<Option<String>>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

impl EventLog {
    /// A log starting now, writing to `sink` (if any).
    pub fn new(sink: Option<Box<dyn Write + Send>>) -> EventLog {
        EventLog {
            start: Instant::now(),
            sink: Mutex::new(sink),
            kept: Mutex::new(Vec::new()),
            failed: Mutex::new(None),
        }
    }

    /// Milliseconds since the run started.
    pub fn t_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records one event.
    pub fn emit(&self, body: EventBody) {
        let event = Event {
            t_ms: self.t_ms(),
            body,
        };
        {
            let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
            // One `write_all` of the whole line: on an unbuffered file that is one write(2), so a
            // killed worker's log ends at a whole line.
            let mut line = event.to_line();
            line.push('\n');
            if let Some(w) = sink.as_mut()
                && let Err(e) = w.write_all(line.as_bytes())
            {
                // Keep running (the jobs matter more than the log); report it at the end.
                let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                failed.get_or_insert_with(|| e.to_string());
            }
        }
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    /// Flushes the sink; the first write error of the run, if any.
    pub fn finish(&self) -> Result<(), String> {
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = sink.as_mut()
            && let Err(e) = w.flush()
        {
            return Err(e.to_string());
        }
        match self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
