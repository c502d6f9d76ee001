package worker

// The state directory without the mock: a corrupt file is an error before any job is taken
// (a worker that silently dropped a bad jobs.json would lose those jobs), and the atomic
// writer leaves no temporary files behind.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "breakers.json credits.json limiter.json" {
		t.Errorf("state dir holds %v; want the three snapshots and nothing else", names)
	}
	// The next run restores them.
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

// jobs.json keeps each unfinished job's counts; a file without them (written before they were
// kept) still loads, with nothing done.
func TestJobsProgressRoundTrip(t *testing.T) {
	dir := t.TempDir()
	b := Batch{Scenario: "x", Jobs: []Job{{ID: "job-0001", Session: "chat-001"}, {ID: "job-0002", Session: "chat-001"}}}
	want := map[string]jobProgress{"job-0001": {Attempts: 3, Retries: 1, Shrinks: 1}}
	if err := saveJobs(dir, b, want); err != nil {
		t.Fatal(err)
	}
	got, progress, ok, err := loadJobs(dir)
	if err != nil || !ok || len(got.Jobs) != 2 {
		t.Fatalf("loadJobs = %+v, %v, %v", got, ok, err)
	}
	if len(progress) != 1 || progress["job-0001"] != want["job-0001"] || progress["job-0002"] != (jobProgress{}) {
		t.Errorf("progress = %+v, want %+v", progress, want)
	}
	if err := os.WriteFile(filepath.Join(dir, jobsFile), []byte(`{"version":1,"batch":{"jobs":[{"id":"job-0001"}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, progress, ok, err := loadJobs(dir); err != nil || !ok || len(progress) != 0 {
		t.Errorf("a file without progress: %v, %v, %v", progress, ok, err)
	}
}
