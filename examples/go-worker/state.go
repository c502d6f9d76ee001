package worker

// The state directory, and the layout written before the journal (journal.go): jobs.json
// (the jobs a graceful shutdown persisted) and one file per snapshot. A worker started on such
// a directory reads them once, writes their content to the journal and removes them.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The files of the old layout.
const (
	jobsFile     = "jobs.json"
	breakersFile = "breakers.json"
	limiterFile  = "limiter.json"
	creditsFile  = "credits.json"
)

// persistedJobs is jobs.json: the unfinished jobs with what their requests need, and what
// each had already done (by job id; absent: nothing yet), so a resumed job goes on counting
// its attempts instead of starting over.
type persistedJobs struct {
	Version  int                    `json:"version"`
	Batch    Batch                  `json:"batch"`
	Progress map[string]jobProgress `json:"progress,omitempty"`
}

// jobProgress is an unfinished job's counts, as job_done reports them.
type jobProgress struct {
	// Attempts is the number of requests already sent, Retries and Shrinks of which were
	// retries and context shrinks.
	Attempts int `json:"attempts"`
	Retries  int `json:"retries"`
	Shrinks  int `json:"shrinks"`
}

// readState reads dir/name; a missing file is (nil, nil).
func readState(dir, name string) ([]byte, error) {
	if dir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// loadJobs reads the old layout's jobs.json; ok is false when there is none.
func loadJobs(dir string) (b Batch, progress map[string]jobProgress, ok bool, err error) {
	data, err := readState(dir, jobsFile)
	if err != nil || data == nil {
		return Batch{}, nil, false, err
	}
	var p persistedJobs
	if err := json.Unmarshal(data, &p); err != nil {
		return Batch{}, nil, false, fmt.Errorf("%s: %w", jobsFile, err)
	}
	if p.Version != 1 {
		return Batch{}, nil, false, fmt.Errorf("%s: version %d, want 1", jobsFile, p.Version)
	}
	for id, pr := range p.Progress {
		if err := pr.check(); err != nil {
			return Batch{}, nil, false, fmt.Errorf("%s: progress of %s: %w", jobsFile, id, err)
		}
	}
	return p.Batch, p.Progress, true, nil
}

// mkdirState creates the state directory, or tightens an existing one, to 0700 (it holds the
// customers' messages), then proves it can be written: a file is created, written, fsynced
// and removed, and the directory fsynced. A directory that cannot be written is an error now,
// at start-up, before any job is taken — not at the first job's end or at the shutdown.
func mkdirState(dir string) error {
	fail := func(err error) error {
		return fmt.Errorf("go-worker: the state directory %s cannot be used: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fail(err)
	}
	if !st.IsDir() {
		return fail(errors.New("not a directory"))
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fail(err)
		}
	}
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fail(err)
	}
	_, werr := probe.Write([]byte("probe\n"))
	if werr == nil {
		werr = probe.Sync()
	}
	if cerr := probe.Close(); werr == nil {
		werr = cerr
	}
	if rerr := os.Remove(probe.Name()); werr == nil {
		werr = rerr
	}
	if werr == nil {
		werr = syncDir(dir)
	}
	if werr != nil {
		return fail(werr)
	}
	return nil
}
