package worker

// The crash test: the real command, killed with SIGKILL at seeded random points (during
// start-up, the first run, and resumed runs), restarted on the same state directory each time,
// then run to the end. It counts, over every run, the jobs lost (in the workload but never
// finished in the journal) and the jobs answered twice (more than one job_done): both must be
// zero. Before the journal the same procedure answered 162 jobs twice (268 with kills during
// resumed runs).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// killScenario is the workload of the crash test: 600 jobs over 2 s, latencies long enough that
// each run is killed with work in flight, and faults that make jobs retry, fall back and fail
// (resets, an outage of the primary, stream errors, flagged messages). The account has no
// limit, so no credit hold stretches the run.
const killScenario = `{
  "name": "kill-nine",
  "description": "600 jobs, resets, a primary outage, stream errors: the worker is killed and restarted",
  "seed": 99,
  "models": {
    "openai/gpt-4o-mini": { "context_window": 16000, "latency_ms": [60, 180], "token_ratio_percent": 100,
      "usd_per_million_prompt": 0.15, "usd_per_million_completion": 0.6, "provider": "OpenAI" },
    "anthropic/claude-3.5-haiku": { "context_window": 32000, "latency_ms": [60, 180], "token_ratio_percent": 100,
      "usd_per_million_prompt": 0.8, "usd_per_million_completion": 4.0, "provider": "Anthropic" }
  },
  "account": { "limit_usd": null, "usage_usd": 0.0, "is_free_tier": false },
  "workload": { "jobs": 600, "sessions": 60, "arrival_ms": 2000, "long_share": 0.05,
    "stream_share": 0.3, "flagged_share": 0.02, "indonesian_share": 0.5 },
  "faults": [
    { "type": "outage", "model": "openai/gpt-4o-mini", "from_ms": 1500, "to_ms": 3000, "status": 503 },
    { "type": "reset", "from_ms": 0, "to_ms": 3600000, "share": 0.03 },
    { "type": "stream-error", "from_ms": 0, "to_ms": 3600000, "share": 0.03, "after_chunks": 1 }
  ]
}`

var (
	workerBinOnce sync.Once
	workerBin     string
	workerBinErr  error
)

// buildWorker builds the command once per test binary.
func buildWorker(t *testing.T) string {
	t.Helper()
	workerBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "llmr-go-worker-bin-")
		if err != nil {
			workerBinErr = err
			return
		}
		workerBin = filepath.Join(dir, "llmr-go-worker")
		cmd := exec.Command("go", "build", "-o", workerBin, "./cmd/llmr-go-worker")
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			workerBinErr = fmt.Errorf("go build ./cmd/llmr-go-worker: %v\n%s", err, out)
		}
	})
	if workerBinErr != nil {
		t.Fatal(workerBinErr)
	}
	return workerBin
}

// readEventFile parses a run's events; a last line cut by the kill is skipped (the worker
// writes whole lines, so only the last one can be cut).
func readEventFile(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			if i == len(lines)-1 && !bytes.HasSuffix(line, []byte("\n")) {
				continue
			}
			t.Fatalf("%s: line %d: %v", filepath.Base(path), i+1, err)
		}
		for _, problem := range schemaErrors(m) {
			t.Errorf("%s: schema: %s in %v", filepath.Base(path), problem, m)
		}
		out = append(out, m)
	}
	return out
}

// hasRunStart reports whether a run's events file has its run_start line yet.
func hasRunStart(path string) bool {
	data, err := os.ReadFile(path)
	return err == nil && bytes.Contains(data, []byte(`"event":"run_start"`))
}

// Not parallel: its 26 process starts would load the machine under the timing-sensitive
// scenario tests (the parallel tests wait until the sequential ones are done).
func TestKillNineLosesNothingAndAnswersNothingTwice(t *testing.T) {
	bin := buildWorker(t)
	tmp := t.TempDir()
	scenario := filepath.Join(tmp, "kill-nine.json")
	if err := os.WriteFile(scenario, []byte(killScenario), 0o600); err != nil {
		t.Fatal(err)
	}
	m := startMockFile(t, scenario)
	state := filepath.Join(tmp, "state")
	seed := uint64(20261208)
	if s := os.Getenv("LLMR_KILL_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("LLMR_KILL_SEED: %v", err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	const wantKills = 24
	policyFile, err := filepath.Abs(policyPath)
	if err != nil {
		t.Fatal(err)
	}

	// start runs the command once; the events go to run-NN.jsonl.
	runs := 0
	start := func() (*exec.Cmd, chan error, *bytes.Buffer, string) {
		runs++
		events := filepath.Join(tmp, fmt.Sprintf("run-%02d.jsonl", runs))
		cmd := exec.Command(bin, "-base-url", m.url, "-policy", policyFile, "-events", events,
			"-state", state, "-seed", "1")
		cmd.Env = append(os.Environ(), "OPENROUTER_API_KEY="+fakeKey)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		return cmd, done, &stderr, events
	}

	kills, resumedKills, startupKills := 0, 0, 0
	var points []string
	began := time.Now()
	for kills < wantKills {
		if runs > 4*wantKills {
			t.Fatalf("only %d kills in %d runs: the workload finishes too fast for the kill points", kills, runs)
		}
		// A quarter of the points fall anywhere in the first 1.5 s (mostly the start-up:
		// replay, restoring the snapshots, building the token tables, compaction, accepting
		// the jobs); the rest fall 0–600 ms after the run started working (its run_start
		// event), so they land among jobs in flight whatever the machine's speed.
		cmd, done, stderr, events := start()
		var delay time.Duration
		waited := ""
		if rng.IntN(4) == 0 {
			delay = time.Duration(rng.IntN(1500)) * time.Millisecond
		} else {
			delay = time.Duration(rng.IntN(600)) * time.Millisecond
			waited = "run_start + "
			deadline := time.Now().Add(60 * time.Second)
			for !hasRunStart(events) && time.Now().Before(deadline) {
				select {
				case err := <-done:
					t.Fatalf("run %d exited (%v) before its run_start: %s", runs, err, stderr)
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d exited on its own with %v: %s", runs, err, stderr)
			}
			// Everything was finished before the kill point: the remaining points have
			// nothing to interrupt.
			t.Fatalf("run %d finished every job before kill %d (at %s%v): %s", runs, kills+1, waited, delay, stderr)
		case <-time.After(delay):
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-done
		kills++
		kind := "start-up"
		if evs := readEventFile(t, events); len(evs) > 0 && evs[0]["event"] == "run_start" {
			kind = "first run"
			if num(evs[0]["resumed"]) > 0 {
				kind = "resumed run"
				resumedKills++
			}
		} else {
			startupKills++
		}
		points = append(points, fmt.Sprintf("%s%v (%s)", waited, delay, kind))
	}
	killPhase := time.Since(began)

	// Then to the end, and once more: the last start finds every job finished, takes the
	// workload again from the source and drops all of it as duplicates.
	var finalStderr string
	for i := 0; i < 2; i++ {
		_, done, stderr, _ := start()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the final run %d failed: %v: %s", i+1, err, stderr)
			}
		case <-time.After(120 * time.Second):
			t.Fatalf("the final run %d did not finish within 120 s", i+1)
		}
		finalStderr = stderr.String()
	}

	var workload Batch
	if err := getJSON(context.Background(), nil, m.url+"/mock/jobs", "", &workload); err != nil {
		t.Fatal(err)
	}
	unfinished, _, finishedIDs, err := readJournal(state)
	if err != nil {
		t.Fatal(err)
	}
	finished := map[string]bool{}
	for _, id := range finishedIDs {
		finished[id] = true
	}
	jobDone := map[string]int{}
	requests := 0
	for i := 1; i <= runs; i++ {
		for _, e := range readEventFile(t, filepath.Join(tmp, fmt.Sprintf("run-%02d.jsonl", i))) {
			switch e["event"] {
			case "job_done":
				jobDone[e["job"].(string)]++
			case "request":
				requests++
			}
		}
	}
	lost, twice, silent := 0, 0, 0
	for _, j := range workload.Jobs {
		if !finished[j.ID] {
			lost++
			t.Errorf("job %s lost: not finished in the journal", j.ID)
		}
		if jobDone[j.ID] > 1 {
			twice++
			t.Errorf("job %s answered %d times", j.ID, jobDone[j.ID])
		}
		if finished[j.ID] && jobDone[j.ID] == 0 {
			silent++
		}
	}
	if len(unfinished.Jobs) != 0 {
		t.Errorf("%d jobs still unfinished in the journal after the final runs", len(unfinished.Jobs))
	}
	want := fmt.Sprintf("jobs 0 (resumed 0, duplicates dropped %d)", len(workload.Jobs))
	if !bytes.Contains([]byte(finalStderr), []byte(want)) {
		t.Errorf("the last start says %q; want %q", finalStderr, want)
	}
	// A job finished in the journal without a job_done line: only a kill between the
	// "reported" mark and the event write (two consecutive writes) can do that; a kill
	// anywhere else has its job_done written by the next start (Result.Recovered).
	if silent > 1 {
		t.Errorf("%d finished jobs have no job_done event", silent)
	}
	if resumedKills < wantKills/2 {
		t.Errorf("only %d of %d kills fell in resumed runs", resumedKills, kills)
	}
	if st, err := os.Stat(filepath.Join(state, journalFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("journal: %v, %v", st, err)
	}
	if names := dirNames(t, state); names != journalFile {
		t.Errorf("the state dir holds %s; want only the journal (no temporary file left by a kill)", names)
	}
	fmt.Printf("[go-worker] kill -9 (seed %d): %d kills (%d start-up, %d first run, %d resumed) in %v, %d runs; jobs %d: lost %d, answered twice %d, finished without job_done %d; %d requests\n",
		seed, kills, startupKills, kills-startupKills-resumedKills, resumedKills, killPhase.Round(time.Millisecond),
		runs, len(workload.Jobs), lost, twice, silent, requests)
	t.Logf("kill points: %v", points)
	sc := bufio.NewScanner(bytes.NewReader([]byte(finalStderr)))
	for sc.Scan() {
		t.Log(sc.Text())
	}
}

// The command on a state directory it cannot write: a non-zero exit with a message naming
// the directory, before any job is taken (root ignores permission bits, so the "directory"
// is a path under a regular file).
func TestCommandRefusesAnUnwritableStateDir(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t)
	var taken atomic.Int32
	url := modelsOnly(t, &taken)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(file, "state")
	policyFile, err := filepath.Abs(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-base-url", url, "-policy", policyFile, "-state", state)
	cmd.Env = append(os.Environ(), "OPENROUTER_API_KEY=mock")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("exit %v, want a non-zero exit; output %s", err, out)
	}
	if !bytes.Contains(out, []byte("state directory "+state+" cannot be used")) {
		t.Errorf("the message does not name the state directory: %s", out)
	}
	if taken.Load() != 0 {
		t.Errorf("jobs were taken")
	}
}
