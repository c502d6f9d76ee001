package worker

// What survives a restart: the jobs a run took but did not finish, and the snapshots of the
// breaker set, the limiter and the credit monitor (the package exports and restores them).
// Every file is written to a temporary name and renamed, so a crash mid-write leaves the old
// file or the new one, never half of one.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The files of a state directory.
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

// writeAtomic writes data to dir/name through a temporary file and a rename.
func writeAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
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

// loadJobs reads jobs.json; ok is false when there is none.
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
		if pr.Attempts < 0 || pr.Retries < 0 || pr.Shrinks < 0 || pr.Retries+pr.Shrinks > pr.Attempts {
			return Batch{}, nil, false, fmt.Errorf("%s: progress of %s: %+v is not a count of attempts", jobsFile, id, pr)
		}
	}
	return p.Batch, p.Progress, true, nil
}

// saveJobs writes the unfinished jobs and their progress, or removes jobs.json when there
// are none.
func saveJobs(dir string, b Batch, progress map[string]jobProgress) error {
	if len(b.Jobs) == 0 {
		err := os.Remove(filepath.Join(dir, jobsFile))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	data, err := json.Marshal(persistedJobs{Version: 1, Batch: b, Progress: progress})
	if err != nil {
		return err
	}
	return writeAtomic(dir, jobsFile, data)
}

// mkdirState creates the state directory (owner-only: it holds the customers' messages).
func mkdirState(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("go-worker: state dir: %w", err)
	}
	return nil
}
