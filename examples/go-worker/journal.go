package worker

// The write-ahead journal: what makes a `kill -9` (or a power cut) lose no job and answer none
// twice.
//
// A worker that writes its state only at a graceful shutdown loses everything a crash
// interrupts, and worse, resumes an old state file again after a crash during a resumed run:
// jobs answered in between are answered again. So every fact the worker acts on is appended
// to <state>/journal and made durable *before* the worker acts on it:
//
//   - accepted: a job taken from the source, with its whole input (before any call for it);
//   - progress: a job's counts before each request it sends (attempts, retries, shrinks), so a
//     resumed job goes on counting;
//   - finished: a job answered or failed, by id, with its job_done event's fields (before
//     that event is written);
//   - reported: the job_done event of a finished job is about to be written (no fsync).
//   - snapshot: the breaker set, limiter and credit monitor (at an interval and at the end).
//
// On start-up the journal is replayed: finished ids are never run again (de-duplication by
// job id, also for a source that hands the same job over again), accepted jobs that did not
// finish are resumed, and the latest snapshots are restored. The provider sees each job at
// least once (a request in flight when the process died is sent again by the resumed job);
// answered/failed counts and job_done events are exactly once per job: a finished record
// whose "reported" mark is missing (the process died between the fsync and the event) has its
// job_done written by the next start, and the mark always precedes the event, so no start
// writes it twice. (A kill between the mark and the event write — two consecutive write
// calls, microseconds — costs that one event line, never a job: README.md.)
//
// Format: one record per line, `CRC32 JSON\n`: eight lower-case hex digits, the IEEE CRC-32 of
// the JSON bytes, a space, the JSON object, a newline (JSON escapes newlines in strings, so a
// line is one record). A power cut can leave the last record torn (cut short, or with pages
// that never reached the disk): replay stops at the first line that is unterminated or fails
// its checksum, and ignores it and everything after it, as write-ahead logs of databases do;
// nothing after it was ever made durable by an fsync. Replay is followed at once by a
// compaction, so nothing is ever appended behind a torn record.
//
// Compaction rewrites the journal to its live set — the batch's shared input, the unfinished
// jobs and their counts, the finished ids (the latest maxFinishedIDs of them) and the latest
// snapshot — through a temporary file: write, fsync, rename over the journal, fsync the
// directory. It runs at start-up, when the appended records outgrow the live set, and at the
// end of a run, so the file stays bounded. The file is 0600 in a 0700 directory: it holds the
// customers' messages.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// journalFile is the journal's name in the state directory.
const journalFile = "journal"

// journalVersion is the format version in the header record.
const journalVersion = 1

// maxFinishedIDs is how many finished job ids the journal remembers for de-duplication (the
// most recent ones). A source that hands over a job again after this many others finished
// would get it run again; at ~20 bytes per id the journal's share is about 2 MB.
const maxFinishedIDs = 100_000

// maxJournalBytes caps what replay reads: compaction keeps a journal far below it.
const maxJournalBytes = 1 << 30

// compactSlack is how many appended bytes the journal may carry beyond twice its live set
// before it is compacted (a variable so tests can force compactions).
var compactSlack int64 = 1 << 20

// batchMeta is what every request of a batch carries besides its job.
type batchMeta struct {
	// Scenario names the workload.
	Scenario string `json:"scenario"`
	// SystemPrompt is the bot's system prompt.
	SystemPrompt string `json:"system_prompt"`
	// Documents is the knowledge base.
	Documents []KBDocument `json:"documents"`
}

// snapshots are the engine's exported states (nil: none yet).
type snapshots struct {
	Breakers json.RawMessage `json:"breakers,omitempty"`
	Limiter  json.RawMessage `json:"limiter,omitempty"`
	Credits  json.RawMessage `json:"credits,omitempty"`
}

// record is one journal line; T says which fields it uses.
type record struct {
	// T is "header", "batch", "accepted", "progress", "finished", "reported" or "snapshot".
	T string `json:"t"`
	// Version is the header's format version.
	Version int `json:"version,omitempty"`
	// Batch is a batch record's shared input.
	Batch *batchMeta `json:"batch,omitempty"`
	// Job is an accepted job.
	Job *Job `json:"job,omitempty"`
	// ID is the job of a progress or finished record.
	ID string `json:"id,omitempty"`
	// IDs are finished jobs (a compacted journal lists them in a few records).
	IDs []string `json:"ids,omitempty"`
	// Progress is a progress record's counts.
	Progress *jobProgress `json:"progress,omitempty"`
	// Outcome ("answered" or "failed") and Kind (failures) of a finished record.
	Outcome string `json:"outcome,omitempty"`
	Kind    string `json:"kind,omitempty"`
	// Done is a finished record's job_done fields, for a restart to report it if the event
	// was never written.
	Done Event `json:"done,omitempty"`
	// Snapshots of a snapshot record.
	Snapshots *snapshots `json:"snapshots,omitempty"`
}

// journalState is the live set: what replay rebuilds and compaction writes.
type journalState struct {
	batch    batchMeta
	hasBatch bool
	// jobs are the accepted, unfinished jobs in acceptance order; index maps id → position.
	jobs     []Job
	index    map[string]int
	progress map[string]jobProgress
	// finished holds the finished ids; order is their finishing order (oldest first).
	finished map[string]bool
	order    []string
	// unreported are the finished jobs whose job_done was not marked written, with its
	// fields; unreportedOrder keeps their finishing order.
	unreported      map[string]Event
	unreportedOrder []string
	snaps           snapshots
	// snapSource names where each snapshot came from, for errors ("journal" or a legacy file).
	snapSource map[string]string
	// torn is the number of bytes replay ignored at the end (a torn last record).
	torn int
}

func newJournalState() *journalState {
	return &journalState{index: map[string]int{}, progress: map[string]jobProgress{},
		finished: map[string]bool{}, snapSource: map[string]string{}, unreported: map[string]Event{}}
}

// apply folds one record into the state.
func (s *journalState) apply(r record) error {
	switch r.T {
	case "header":
		if r.Version != journalVersion {
			return fmt.Errorf("version %d, want %d", r.Version, journalVersion)
		}
	case "batch":
		if r.Batch == nil {
			return errors.New("batch record without batch")
		}
		s.batch, s.hasBatch = *r.Batch, true
	case "accepted":
		if r.Job == nil || r.Job.ID == "" {
			return errors.New("accepted record without a job id")
		}
		if s.finished[r.Job.ID] {
			return nil
		}
		if i, ok := s.index[r.Job.ID]; ok {
			s.jobs[i] = *r.Job
			return nil
		}
		s.index[r.Job.ID] = len(s.jobs)
		s.jobs = append(s.jobs, *r.Job)
	case "progress":
		if r.Progress == nil || r.ID == "" {
			return errors.New("progress record without id or counts")
		}
		if err := r.Progress.check(); err != nil {
			return fmt.Errorf("progress of %s: %w", r.ID, err)
		}
		if _, ok := s.index[r.ID]; ok {
			s.progress[r.ID] = *r.Progress
		}
	case "finished":
		ids := r.IDs
		if r.ID != "" {
			ids = append(ids, r.ID)
		}
		if len(ids) == 0 {
			return errors.New("finished record without an id")
		}
		for _, id := range ids {
			s.finish(id)
		}
		if r.ID != "" && r.Done != nil && s.finished[r.ID] {
			if _, ok := s.unreported[r.ID]; !ok {
				s.unreportedOrder = append(s.unreportedOrder, r.ID)
			}
			s.unreported[r.ID] = r.Done
		}
	case "reported":
		if r.ID == "" {
			return errors.New("reported record without an id")
		}
		s.markReported(r.ID)
	case "snapshot":
		if r.Snapshots == nil {
			return errors.New("snapshot record without snapshots")
		}
		for name, v := range map[string]json.RawMessage{"breakers": r.Snapshots.Breakers,
			"limiter": r.Snapshots.Limiter, "credits": r.Snapshots.Credits} {
			if v == nil {
				continue
			}
			switch name {
			case "breakers":
				s.snaps.Breakers = v
			case "limiter":
				s.snaps.Limiter = v
			case "credits":
				s.snaps.Credits = v
			}
			s.snapSource[name] = journalFile + " (" + name + " snapshot)"
		}
	default:
		return fmt.Errorf("unknown record type %q", r.T)
	}
	return nil
}

// finish moves id from the unfinished jobs to the finished ids.
func (s *journalState) finish(id string) {
	if i, ok := s.index[id]; ok {
		s.jobs = append(s.jobs[:i], s.jobs[i+1:]...)
		delete(s.index, id)
		for k := i; k < len(s.jobs); k++ {
			s.index[s.jobs[k].ID] = k
		}
		delete(s.progress, id)
	}
	if s.finished[id] {
		return
	}
	s.finished[id] = true
	s.order = append(s.order, id)
	if len(s.order) > maxFinishedIDs {
		drop := len(s.order) - maxFinishedIDs
		for _, old := range s.order[:drop] {
			delete(s.finished, old)
			s.markReported(old)
		}
		s.order = append([]string(nil), s.order[drop:]...)
	}
}

// markReported forgets id's pending job_done.
func (s *journalState) markReported(id string) {
	if _, ok := s.unreported[id]; !ok {
		return
	}
	delete(s.unreported, id)
	for i, u := range s.unreportedOrder {
		if u == id {
			s.unreportedOrder = append(s.unreportedOrder[:i], s.unreportedOrder[i+1:]...)
			break
		}
	}
}

// check rejects counts that cannot be a job's.
func (p jobProgress) check() error {
	if p.Attempts < 0 || p.Retries < 0 || p.Shrinks < 0 || p.Retries+p.Shrinks > p.Attempts {
		return fmt.Errorf("%+v is not a count of attempts", p)
	}
	return nil
}

// encodeRecord is one journal line.
func encodeRecord(r record) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	line := make([]byte, 0, len(body)+10)
	line = fmt.Appendf(line, "%08x ", crc32.ChecksumIEEE(body))
	line = append(line, body...)
	return append(line, '\n'), nil
}

// decodeJournal replays data into a state. It stops at the first unterminated or corrupt line
// (a torn tail: ignored, counted in torn); a line that is intact but not a valid record is an
// error naming it (a bug or a hand edit, not a crash).
func decodeJournal(data []byte) (*journalState, error) {
	s := newJournalState()
	off, n := 0, 0
	for off < len(data) {
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			break // unterminated: torn
		}
		line := data[off : off+nl]
		if len(line) < 10 || line[8] != ' ' {
			break
		}
		want, err := strconv.ParseUint(string(line[:8]), 16, 32)
		if err != nil || uint32(want) != crc32.ChecksumIEEE(line[9:]) {
			break
		}
		n++
		var r record
		dec := json.NewDecoder(bytes.NewReader(line[9:]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("%s: record %d: %w", journalFile, n, err)
		}
		if n == 1 && r.T != "header" {
			return nil, fmt.Errorf("%s: record 1 is %q, want the header", journalFile, r.T)
		}
		if err := s.apply(r); err != nil {
			return nil, fmt.Errorf("%s: record %d (%s): %w", journalFile, n, r.T, err)
		}
		off += nl + 1
	}
	s.torn = len(data) - off
	return s, nil
}

// journal is an open journal: the state it holds and the file records are appended to. Safe
// for concurrent use.
type journal struct {
	dir string

	mu    sync.Mutex
	state *journalState
	f     *os.File
	// live is the size of the file after the latest compaction, since the bytes appended.
	live, since int64
	// legacy lists files of the old layout to remove once the journal holds their content.
	legacy []string
}

// openJournal reads the journal of dir (or, when there is none, the files of the old
// layout: jobs.json and the three snapshots) without writing anything. Call compact before
// appending: it writes the live set to a fresh file.
func openJournal(dir string) (*journal, error) {
	data, err := os.ReadFile(filepath.Join(dir, journalFile))
	switch {
	case err == nil:
		if len(data) > maxJournalBytes {
			return nil, fmt.Errorf("%s: %d bytes, over the %d this worker reads", journalFile, len(data), maxJournalBytes)
		}
		s, err := decodeJournal(data)
		if err != nil {
			return nil, err
		}
		return &journal{dir: dir, state: s}, nil
	case errors.Is(err, fs.ErrNotExist):
		return openLegacy(dir)
	default:
		return nil, fmt.Errorf("%s: %w", journalFile, err)
	}
}

// openLegacy reads the layout written before the journal (jobs.json at a graceful shutdown,
// one file per snapshot), so an upgrade resumes what the old worker persisted.
func openLegacy(dir string) (*journal, error) {
	s := newJournalState()
	j := &journal{dir: dir, state: s}
	b, progress, ok, err := loadJobs(dir)
	if err != nil {
		return nil, err
	}
	if ok {
		j.legacy = append(j.legacy, jobsFile)
		s.batch = batchMeta{Scenario: b.Scenario, SystemPrompt: b.SystemPrompt, Documents: b.Documents}
		s.hasBatch = true
		for _, job := range b.Jobs {
			if err := s.apply(record{T: "accepted", Job: &job}); err != nil {
				return nil, fmt.Errorf("%s: %w", jobsFile, err)
			}
		}
		for id, p := range progress {
			if _, ok := s.index[id]; ok {
				s.progress[id] = p
			}
		}
	}
	for _, f := range []struct {
		name, key string
		dst       *json.RawMessage
	}{{breakersFile, "breakers", &s.snaps.Breakers}, {limiterFile, "limiter", &s.snaps.Limiter},
		{creditsFile, "credits", &s.snaps.Credits}} {
		data, err := readState(dir, f.name)
		if err != nil {
			return nil, err
		}
		if data != nil {
			*f.dst = data
			s.snapSource[f.key] = f.name
			j.legacy = append(j.legacy, f.name)
		}
	}
	return j, nil
}

// resumable returns the shared input and the unfinished jobs with their counts.
func (j *journal) resumable() (Batch, map[string]jobProgress) {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.state
	b := Batch{Scenario: s.batch.Scenario, SystemPrompt: s.batch.SystemPrompt, Documents: s.batch.Documents,
		Jobs: append([]Job(nil), s.jobs...)}
	p := make(map[string]jobProgress, len(s.progress))
	for id, pr := range s.progress {
		p[id] = pr
	}
	return b, p
}

// snapshots returns the latest snapshots and where each came from.
func (j *journal) snapshots() (snapshots, map[string]string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state.snaps, j.state.snapSource
}

// finishedID says whether id finished (within the de-duplication window).
func (j *journal) finishedID(id string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state.finished[id]
}

// tornBytes is how many bytes replay ignored at the end of the file.
func (j *journal) tornBytes() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state.torn
}

// compact writes the live set to a temporary file, fsyncs it, renames it over the journal and
// fsyncs the directory; later appends go to the new file. Files of the old layout are removed
// once the journal holds their content.
// liveRecords is the live set as records, in the order compaction writes them: replaying
// them gives back the same unfinished jobs, progress, finished ids and snapshots.
func (s *journalState) liveRecords() []record {
	recs := []record{{T: "header", Version: journalVersion}}
	if s.hasBatch {
		b := s.batch
		recs = append(recs, record{T: "batch", Batch: &b})
	}
	for i := range s.jobs {
		recs = append(recs, record{T: "accepted", Job: &s.jobs[i]})
		if p, ok := s.progress[s.jobs[i].ID]; ok {
			recs = append(recs, record{T: "progress", ID: s.jobs[i].ID, Progress: &p})
		}
	}
	reported := make([]string, 0, len(s.order))
	for _, id := range s.order {
		if _, ok := s.unreported[id]; !ok {
			reported = append(reported, id)
		}
	}
	for i := 0; i < len(reported); i += 1000 {
		recs = append(recs, record{T: "finished", IDs: reported[i:min(i+1000, len(reported))]})
	}
	for _, id := range s.unreportedOrder {
		recs = append(recs, record{T: "finished", ID: id, Done: s.unreported[id]})
	}
	if s.snaps.Breakers != nil || s.snaps.Limiter != nil || s.snaps.Credits != nil {
		sn := s.snaps
		recs = append(recs, record{T: "snapshot", Snapshots: &sn})
	}
	return recs
}

func (j *journal) compact() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.compactLocked()
}

func (j *journal) compactLocked() error {
	if j.f == nil {
		// The first compaction of a run: temporary files of a process killed mid-compaction
		// (or mid-probe) are garbage now.
		for _, pattern := range []string{"." + journalFile + ".tmp-*", ".probe-*"} {
			stale, _ := filepath.Glob(filepath.Join(j.dir, pattern))
			for _, f := range stale {
				os.Remove(f)
			}
		}
	}
	s := j.state
	var buf bytes.Buffer
	add := func(r record) error {
		line, err := encodeRecord(r)
		if err != nil {
			return err
		}
		buf.Write(line)
		return nil
	}
	recs := s.liveRecords()
	for _, r := range recs {
		if err := add(r); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(j.dir, "."+journalFile+".tmp-*") // mode 0600
	if err != nil {
		return fmt.Errorf("%s: %w", journalFile, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("%s: %w", journalFile, err)
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("%s: %w", journalFile, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("%s: %w", journalFile, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(j.dir, journalFile)); err != nil {
		return fmt.Errorf("%s: %w", journalFile, err)
	}
	if err := syncDir(j.dir); err != nil {
		return fmt.Errorf("%s: %w", journalFile, err)
	}
	ok = true
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.live, j.since = tmp, int64(buf.Len()), 0
	s.torn = 0
	if len(j.legacy) > 0 {
		for _, name := range j.legacy {
			if err := os.Remove(filepath.Join(j.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		j.legacy = nil
		if err := syncDir(j.dir); err != nil {
			return err
		}
	}
	return nil
}

// syncDir fsyncs a directory, so a file created or renamed in it survives a power cut.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// appendRecords applies recs to the state and appends them in one write; with sync, the file
// is fsynced before it returns (the records are durable then). Without sync a record survives
// a process crash (it is in the kernel's page cache) but maybe not a power cut.
func (j *journal) appendRecords(sync bool, recs ...record) error {
	var buf bytes.Buffer
	for _, r := range recs {
		// What replay would reject must never reach the file (it would stop the next start).
		if r.Progress != nil {
			if err := r.Progress.check(); err != nil {
				return fmt.Errorf("%s: progress of %s: %w", journalFile, r.ID, err)
			}
		}
		line, err := encodeRecord(r)
		if err != nil {
			return err
		}
		buf.Write(line)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return fmt.Errorf("%s: not open for appending", journalFile)
	}
	if _, err := j.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("%s: %w", journalFile, err)
	}
	if sync {
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("%s: %w", journalFile, err)
		}
	}
	for _, r := range recs {
		if err := j.state.apply(r); err != nil {
			return fmt.Errorf("%s: %w", journalFile, err)
		}
	}
	j.since += int64(buf.Len())
	if j.since > 2*j.live+compactSlack {
		return j.compactLocked()
	}
	return nil
}

// accept journals a batch's shared input and its jobs (one fsync for all of them).
func (j *journal) accept(b Batch) error {
	meta := batchMeta{Scenario: b.Scenario, SystemPrompt: b.SystemPrompt, Documents: b.Documents}
	recs := []record{{T: "batch", Batch: &meta}}
	for i := range b.Jobs {
		recs = append(recs, record{T: "accepted", Job: &b.Jobs[i]})
	}
	return j.appendRecords(true, recs...)
}

// progress journals a job's counts before a request (no fsync: see appendRecords).
func (j *journal) progress(id string, p jobProgress) error {
	return j.appendRecords(false, record{T: "progress", ID: id, Progress: &p})
}

// finished journals a job's end with its job_done fields, durably.
func (j *journal) finished(id, outcome, kind string, done Event) error {
	return j.appendRecords(true, record{T: "finished", ID: id, Outcome: outcome, Kind: kind, Done: done})
}

// reported marks a finished job's job_done as about to be written (no fsync: a power cut
// that loses the mark makes the next start write the event again, see appendRecords).
func (j *journal) reported(id string) error {
	return j.appendRecords(false, record{T: "reported", ID: id})
}

// unreportedDone returns the job_done fields of the finished jobs not marked reported, in
// finishing order.
func (j *journal) unreportedDone() []Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]Event, 0, len(j.state.unreportedOrder))
	for _, id := range j.state.unreportedOrder {
		out = append(out, j.state.unreported[id])
	}
	return out
}

// snapshot journals the engine's snapshots, durably.
func (j *journal) snapshot(s snapshots) error {
	return j.appendRecords(true, record{T: "snapshot", Snapshots: &s})
}

// close closes the file (the journal stays on disk).
func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// readJournal reads the state directory's journal (or the old layout) without changing it:
// the unfinished jobs with their counts, and the finished job ids (what a restart will do).
func readJournal(dir string) (unfinished Batch, progress map[string]jobProgress, finished []string, err error) {
	j, err := openJournal(dir)
	if err != nil {
		return Batch{}, nil, nil, err
	}
	b, p := j.resumable()
	return b, p, append([]string(nil), j.state.order...), nil
}
