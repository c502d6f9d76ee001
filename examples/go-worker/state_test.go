package worker

// The state directory without the mock: a corrupt journal (or file of the old layout) is an
// error before any job is taken (a worker that silently dropped a bad file would lose those
// jobs), a torn last record is ignored, compaction leaves no temporary files behind and keeps
// the journal bounded, the modes are 0600/0700, and a directory that cannot be written is an
// error at start-up.

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// modelsOnly serves GET /api/v1/models and counts GET /mock/jobs.
func modelsOnly(t *testing.T, taken *atomic.Int32) string {
	return serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/models":
			fmt.Fprint(w, `{"data":[{"id":"openai/gpt-4o-mini","context_length":16000}]}`)
		case "/mock/jobs":
			taken.Add(1)
			fmt.Fprint(w, `{"scenario":"x","system_prompt":"s","documents":[],"jobs":[]}`)
		default:
			http.NotFound(w, r)
		}
	})
}

func TestCorruptStateIsAnError(t *testing.T) {
	for _, c := range []struct{ file, text string }{
		{jobsFile, `{"version":1,"batch":`},
		{jobsFile, `{"version":7,"batch":{"jobs":[]}}`},
		{jobsFile, `{"version":1,"batch":{"jobs":[]},"progress":{"job-0001":{"attempts":1,"retries":2,"shrinks":0}}}`},
		{jobsFile, `{"version":1,"batch":{"jobs":[]},"progress":{"job-0001":{"attempts":-1,"retries":0,"shrinks":0}}}`},
		{breakersFile, `{"not":"a snapshot"}`},
		{limiterFile, `[]`},
		{creditsFile, `{"config":{"warning_balance_usd":"five"}}`},
		// An intact journal line (its checksum matches) that is not a valid record: a bug or
		// a hand edit, never a crash.
		{journalFile, journalLines(t, `{"t":"accepted","job":{"id":"job-0001"}}`)},
		{journalFile, journalLines(t, `{"t":"header","version":2}`)},
		{journalFile, journalLines(t, `{"t":"header","version":1}`, `{"t":"teleport","id":"x"}`)},
		{journalFile, journalLines(t, `{"t":"header","version":1}`, `{"t":"progress","id":"job-0001","progress":{"attempts":1,"retries":2,"shrinks":0}}`)},
		{journalFile, journalLines(t, `{"t":"header","version":1}`, `{"t":"snapshot","snapshots":{"breakers":{"not":"a snapshot"}}}`)},
	} {
		t.Run(c.file+" "+c.text, func(t *testing.T) {
			var taken atomic.Int32
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, c.file), []byte(c.text), 0o600); err != nil {
				t.Fatal(err)
			}
			w, err := New(Options{BaseURL: modelsOnly(t, &taken), Key: "k", Policy: policy(t), StateDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			res, err := w.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.file) {
				t.Fatalf("Run = %+v, %v; want an error naming %s", res, err, c.file)
			}
			if taken.Load() != 0 {
				t.Errorf("jobs were taken from the source although the run could not start")
			}
		})
	}
}

// journalLines encodes JSON texts as journal lines (with their checksums).
func journalLines(t *testing.T, texts ...string) string {
	t.Helper()
	var b strings.Builder
	for _, text := range texts {
		fmt.Fprintf(&b, "%08x %s\n", crc32.ChecksumIEEE([]byte(text)), text)
	}
	return b.String()
}

// writeLegacyJobs writes the old layout's jobs.json.
func writeLegacyJobs(t *testing.T, dir string, b Batch, progress map[string]jobProgress) {
	t.Helper()
	data, err := json.Marshal(persistedJobs{Version: 1, Batch: b, Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, jobsFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// dirNames lists a directory.
func dirNames(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

func TestEmptyRunWritesSnapshotsAtomically(t *testing.T) {
	var taken atomic.Int32
	dir := t.TempDir()
	w, err := New(Options{BaseURL: modelsOnly(t, &taken), Key: "k", Policy: policy(t), StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.Run(context.Background())
	if err != nil || res.Jobs != 0 || res.Lost != 0 || taken.Load() != 1 {
		t.Fatalf("Run = %+v, %v (taken %d)", res, err, taken.Load())
	}
	if names := dirNames(t, dir); names != journalFile {
		t.Errorf("state dir holds %v; want the journal and nothing else", names)
	}
	// The next run restores the snapshots the journal holds.
	res, err = w.Run(context.Background())
	if err != nil || !res.Restored.Breakers || !res.Restored.Limiter || !res.Restored.Credits {
		t.Fatalf("second Run = %+v, %v", res, err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	p := policy(t)
	for _, o := range []Options{
		{Policy: p},
		{BaseURL: "ftp://x", Policy: p},
		{BaseURL: "http://127.0.0.1:1"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o.BaseURL)
		}
	}
	if _, err := New(Options{BaseURL: "http://127.0.0.1:1", Policy: p, StateDir: filepath.Join(t.TempDir(), "a", "b")}); err != nil {
		t.Errorf("a missing state dir must be created: %v", err)
	}
}

// A state directory that cannot be written is an error from New — at start-up, before any job
// is taken — naming the directory. The tests run as root, which ignores permission bits, so
// the directories are made unwritable by the file system's structure instead: a regular file
// where the directory should be, a path under a regular file, and a journal that is a
// directory (the start-up compaction cannot replace it).
func TestUnwritableStateDirIsAStartupError(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "state")} {
		var taken atomic.Int32
		_, err := New(Options{BaseURL: modelsOnly(t, &taken), Key: "k", Policy: policy(t), StateDir: dir})
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "state directory") {
			t.Errorf("New(StateDir %s) = %v; want an error naming the state directory", dir, err)
		}
	}
	dir := filepath.Join(base, "journal-is-a-dir")
	if err := os.MkdirAll(filepath.Join(dir, journalFile, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	var taken atomic.Int32
	w, err := New(Options{BaseURL: modelsOnly(t, &taken), Key: "k", Policy: policy(t), StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := w.Run(context.Background()); err == nil || !strings.Contains(err.Error(), journalFile) {
		t.Errorf("Run = %+v, %v; want an error naming the journal", res, err)
	}
	if taken.Load() != 0 {
		t.Errorf("jobs were taken although the journal cannot be written")
	}
}

// The journal is 0600 in a 0700 directory (it holds customers' messages); an existing, wider
// directory is tightened.
func TestStateModes(t *testing.T) {
	var taken atomic.Int32
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	w, err := New(Options{BaseURL: modelsOnly(t, &taken), Key: "k", Policy: policy(t), StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
	st, err = os.Stat(filepath.Join(dir, journalFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	fresh := filepath.Join(t.TempDir(), "a", "b")
	if _, err := New(Options{BaseURL: "http://127.0.0.1:1", Policy: policy(t), StateDir: fresh}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(fresh); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("new state dir mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
}

// testJobs are n jobs of one session.
func testJobs(n int) []Job {
	var jobs []Job
	for i := 1; i <= n; i++ {
		jobs = append(jobs, Job{ID: fmt.Sprintf("job-%04d", i), Session: "chat-001", Message: fmt.Sprintf("message %d", i)})
	}
	return jobs
}

// newTestJournal opens (and compacts) the journal of a fresh directory.
func newTestJournal(t *testing.T) (*journal, string) {
	t.Helper()
	dir := t.TempDir()
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.compact(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.close() })
	return j, dir
}

// Replay rebuilds what was journaled: accepted jobs minus finished ones, the latest counts of
// each, the latest snapshot.
func TestJournalReplay(t *testing.T) {
	j, dir := newTestJournal(t)
	if err := j.accept(Batch{Scenario: "s", SystemPrompt: "p", Documents: []KBDocument{{ID: "d", Text: "t"}}, Jobs: testJobs(4)}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { return j.progress("job-0001", jobProgress{Attempts: 1}) },
		func() error { return j.progress("job-0002", jobProgress{Attempts: 2, Retries: 1}) },
		func() error { return j.progress("job-0001", jobProgress{Attempts: 2, Shrinks: 1}) },
		func() error { return j.finished("job-0003", "answered", "", nil) },
		func() error { return j.finished("job-0002", "failed", "moderation", nil) },
		func() error { return j.snapshot(snapshots{Limiter: json.RawMessage(`{"a":1}`)}) },
		func() error { return j.snapshot(snapshots{Limiter: json.RawMessage(`{"a":2}`)}) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	b, progress, finished, err := readJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ids := jobIDs(b.Jobs); ids != "job-0001 job-0004" || b.SystemPrompt != "p" || len(b.Documents) != 1 {
		t.Errorf("unfinished %s, batch %+v", ids, b)
	}
	if len(progress) != 1 || progress["job-0001"] != (jobProgress{Attempts: 2, Shrinks: 1}) {
		t.Errorf("progress %+v", progress)
	}
	if strings.Join(finished, " ") != "job-0003 job-0002" {
		t.Errorf("finished %v", finished)
	}
	j2, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if snaps, _ := j2.snapshots(); string(snaps.Limiter) != `{"a":2}` || snaps.Breakers != nil {
		t.Errorf("snapshots %+v", snaps)
	}
}

func jobIDs(jobs []Job) string {
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return strings.Join(ids, " ")
}

// A torn last record — cut short by a crash mid-append, or whose bytes never reached the disk
// (checksum mismatch) — is ignored: replay gives the state before it, says how many bytes it
// ignored, and the start-up compaction removes them, so later appends follow valid records.
func TestTornLastRecordIsIgnored(t *testing.T) {
	for name, tail := range map[string]func(line []byte) []byte{
		"cut short":    func(line []byte) []byte { return line[:len(line)/2] },
		"no newline":   func(line []byte) []byte { return line[:len(line)-1] },
		"bad checksum": func(line []byte) []byte { c := append([]byte(nil), line...); c[20] ^= 1; return c },
		"zeroed":       func(line []byte) []byte { return make([]byte, len(line)) },
		"garbage before a valid one": func(line []byte) []byte {
			return append([]byte("0000zzzz {\"t\":\n"), line...)
		},
	} {
		t.Run(name, func(t *testing.T) {
			j, dir := newTestJournal(t)
			if err := j.accept(Batch{Scenario: "s", Jobs: testJobs(3)}); err != nil {
				t.Fatal(err)
			}
			if err := j.finished("job-0001", "answered", "", nil); err != nil {
				t.Fatal(err)
			}
			j.close()
			line, err := encodeRecord(record{T: "finished", ID: "job-0002", Outcome: "answered"})
			if err != nil {
				t.Fatal(err)
			}
			torn := tail(line)
			f, err := os.OpenFile(filepath.Join(dir, journalFile), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(torn); err != nil {
				t.Fatal(err)
			}
			f.Close()
			j2, err := openJournal(dir)
			if err != nil {
				t.Fatalf("a torn last record must be ignored: %v", err)
			}
			if j2.tornBytes() != len(torn) {
				t.Errorf("torn bytes %d, want %d", j2.tornBytes(), len(torn))
			}
			b, _ := j2.resumable()
			if ids := jobIDs(b.Jobs); ids != "job-0002 job-0003" || j2.finishedID("job-0002") || !j2.finishedID("job-0001") {
				t.Errorf("unfinished %s after a torn finished record", ids)
			}
			if err := j2.compact(); err != nil {
				t.Fatal(err)
			}
			if err := j2.finished("job-0003", "answered", "", nil); err != nil {
				t.Fatal(err)
			}
			j2.close()
			b, _, finished, err := readJournal(dir)
			if err != nil || jobIDs(b.Jobs) != "job-0002" || strings.Join(finished, " ") != "job-0001 job-0003" {
				t.Errorf("after compaction and an append: unfinished %s, finished %v, %v", jobIDs(b.Jobs), finished, err)
			}
		})
	}
}

// Appends beyond twice the live set compact the journal: it stays bounded however long the
// run, and the compaction loses nothing.
func TestJournalStaysBounded(t *testing.T) {
	old := compactSlack
	compactSlack = 4 << 10
	defer func() { compactSlack = old }()
	j, dir := newTestJournal(t)
	if err := j.accept(Batch{Scenario: "s", Jobs: testJobs(10)}); err != nil {
		t.Fatal(err)
	}
	maxSize := int64(0)
	for i := 1; i <= 2000; i++ {
		if err := j.progress("job-0005", jobProgress{Attempts: i}); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(filepath.Join(dir, journalFile)); err == nil && st.Size() > maxSize {
			maxSize = st.Size()
		}
	}
	if maxSize > 16<<10 {
		t.Errorf("the journal grew to %d bytes for 10 jobs", maxSize)
	}
	_, progress, _, err := readJournal(dir)
	if err != nil || progress["job-0005"].Attempts != 2000 {
		t.Errorf("progress after compactions %+v, %v", progress["job-0005"], err)
	}
	if names := dirNames(t, dir); names != journalFile {
		t.Errorf("state dir holds %s", names)
	}
	// A compaction killed before its rename leaves a temporary file: the next start's
	// compaction removes it.
	j.close()
	if err := os.WriteFile(filepath.Join(dir, "."+journalFile+".tmp-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	j2, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.close()
	if err := j2.compact(); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); names != journalFile {
		t.Errorf("after a start-up compaction the state dir holds %s", names)
	}
}

// The finished ids are kept for de-duplication, the latest maxFinishedIDs of them.
func TestFinishedIDsAreBounded(t *testing.T) {
	s := newJournalState()
	for i := range maxFinishedIDs + 10 {
		s.finish(fmt.Sprint(i))
	}
	if len(s.finished) != maxFinishedIDs || len(s.order) != maxFinishedIDs || s.finished["9"] || !s.finished["10"] {
		t.Errorf("finished %d, order %d", len(s.finished), len(s.order))
	}
}

// staticSource hands over the same batch at every Take and records the acknowledgements.
type staticSource struct {
	batch Batch
	mu    sync.Mutex
	acked []string
	dir   string
	// journaled is, at each Ack, whether the journal held the acknowledged jobs.
	journaled []bool
}

func (s *staticSource) Take(context.Context) (Batch, error) { return s.batch, nil }

func (s *staticSource) Ack(_ context.Context, b Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ub, _, fin, err := readJournal(s.dir)
	held := err == nil
	for _, j := range b.Jobs {
		s.acked = append(s.acked, j.ID)
		held = held && (strings.Contains(" "+jobIDs(ub.Jobs)+" ", " "+j.ID+" ") || slices.Contains(fin, j.ID))
	}
	s.journaled = append(s.journaled, held)
	return nil
}

// answering serves the models, the key and an answer to every chat request (counted).
func answering(t *testing.T, chats *atomic.Int32) string {
	return serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/models":
			fmt.Fprint(w, `{"data":[{"id":"openai/gpt-4o-mini","context_length":16000},{"id":"anthropic/claude-3.5-haiku","context_length":16000}]}`)
		case "/api/v1/chat/completions":
			chats.Add(1)
			fmt.Fprint(w, `{"id":"x","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"ok"}}]}`)
		case "/api/v1/key":
			fmt.Fprint(w, `{"data":{"usage":0,"limit":null}}`)
		default:
			http.NotFound(w, r)
		}
	})
}

// A source that hands the same jobs over again (a queue redelivering after a crash): the jobs
// the journal saw finish are dropped by id, never answered again; an AckingSource is
// acknowledged only once the journal holds the jobs.
func TestFinishedJobsAreNotRunAgain(t *testing.T) {
	dir := t.TempDir()
	var chats atomic.Int32
	url := answering(t, &chats)
	jobs := testJobs(6)
	for i := range jobs {
		jobs[i].Session = fmt.Sprintf("chat-%d", i)
	}
	src := &staticSource{batch: Batch{Scenario: "s", Jobs: append(jobs, jobs[2])}, dir: dir}
	w, err := New(Options{BaseURL: url, Key: "k", Policy: policy(t), StateDir: dir, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.Run(context.Background())
	if err != nil || res.Jobs != 6 || res.Answered != 6 || res.Duplicates != 1 || chats.Load() != 6 {
		t.Fatalf("first run %+v, %v, %d calls", res, err, chats.Load())
	}
	res, err = w.Run(context.Background())
	if err != nil || res.Jobs != 0 || res.Answered != 0 || res.Duplicates != 7 || chats.Load() != 6 {
		t.Fatalf("second run %+v, %v, %d calls; want every job dropped as finished", res, err, chats.Load())
	}
	if len(src.acked) != 6 || len(src.journaled) != 2 || !src.journaled[0] || !src.journaled[1] {
		t.Errorf("acknowledged %v, journaled at each ack %v", src.acked, src.journaled)
	}
}

// A process killed between a job's finished record (fsynced) and its job_done event: the
// journal has no "reported" mark for it, so the next start writes that job_done — once, with
// the fields the dead process had — and counts the job, without running it again; the start
// after that writes nothing more.
func TestUnreportedJobDoneIsWrittenByTheNextStart(t *testing.T) {
	j, dir := newTestJournal(t)
	jobs := testJobs(2)
	if err := j.accept(Batch{Scenario: "s", Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	done := Event{"job": "job-0001", "session": "chat-001", "long": false, "outcome": "failed",
		"kind": "moderation", "attempts": 1, "retries": 0, "shrinks": 0, "model": "openai/gpt-4o-mini"}
	if err := j.finished("job-0001", "failed", "moderation", done); err != nil {
		t.Fatal(err)
	}
	j.close()
	var chats atomic.Int32
	src := &staticSource{batch: Batch{Scenario: "s", Jobs: jobs}, dir: dir}
	for run := 1; run <= 2; run++ {
		ev := &eventLines{}
		w, err := New(Options{BaseURL: answering(t, &chats), Key: "k", Policy: policy(t), StateDir: dir, Source: src, Events: ev})
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, ev, res)
		dones := ev.named("job_done")
		switch run {
		case 1: // job-0002 resumed and answered; job-0001 reported, not run
			if res.Recovered != 1 || res.Jobs != 2 || res.Answered != 1 || res.FailedByKind["moderation"] != 1 || chats.Load() != 1 || len(dones) != 2 {
				t.Fatalf("run 1: %+v, %d calls, %d job_done", res, chats.Load(), len(dones))
			}
			if dones[0]["job"] != "job-0001" || dones[0]["kind"] != "moderation" || num(dones[0]["attempts"]) != 1 {
				t.Errorf("recovered job_done %v", dones[0])
			}
		case 2: // everything finished and reported: the source's jobs are duplicates
			if res.Recovered != 0 || res.Jobs != 0 || len(dones) != 0 || res.Duplicates != 2 || chats.Load() != 1 {
				t.Fatalf("run 2: %+v, %d calls, %d job_done", res, chats.Load(), len(dones))
			}
		}
	}
}

// A directory in the old layout (jobs.json from a graceful shutdown, one file per snapshot)
// is read once: its jobs are resumed with their counts, its snapshots restored, and its files
// replaced by the journal. A jobs.json without counts still loads.
func TestOldLayoutIsMigrated(t *testing.T) {
	dir := t.TempDir()
	b := Batch{Scenario: "x", Jobs: []Job{{ID: "job-0001", Session: "chat-001"}, {ID: "job-0002", Session: "chat-001"}}}
	want := map[string]jobProgress{"job-0001": {Attempts: 3, Retries: 1, Shrinks: 1}}
	writeLegacyJobs(t, dir, b, want)
	got, progress, ok, err := loadJobs(dir)
	if err != nil || !ok || len(got.Jobs) != 2 {
		t.Fatalf("loadJobs = %+v, %v, %v", got, ok, err)
	}
	if len(progress) != 1 || progress["job-0001"] != want["job-0001"] || progress["job-0002"] != (jobProgress{}) {
		t.Errorf("progress = %+v, want %+v", progress, want)
	}
	// Migration: the journal takes the content over and the old files go.
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.compact(); err != nil {
		t.Fatal(err)
	}
	j.close()
	if names := dirNames(t, dir); names != journalFile {
		t.Errorf("after migration the dir holds %s", names)
	}
	ub, p2, _, err := readJournal(dir)
	if err != nil || jobIDs(ub.Jobs) != "job-0001 job-0002" || p2["job-0001"] != want["job-0001"] {
		t.Errorf("migrated %s %+v, %v", jobIDs(ub.Jobs), p2, err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, jobsFile), []byte(`{"version":1,"batch":{"jobs":[{"id":"job-0001"}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, progress, ok, err := loadJobs(other); err != nil || !ok || len(progress) != 0 {
		t.Errorf("a file without progress: %v, %v, %v", progress, ok, err)
	}
}
