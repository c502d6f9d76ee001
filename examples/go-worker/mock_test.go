package worker

// The harness of the scenario tests: start the mock binary with a scenario, read its URL from
// its first stdout line, keep its stdin open (closing it stops the mock, so a test that dies
// takes its mock with it), reset it before each run, run the worker, parse its events.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKey is the key every test run sends: no event, no state file may ever contain it.
const fakeKey = "sk-or-v1-FAKE-not-a-real-key-0123456789abcdef-0123456789abcdef"

// repoRoot is the repository's root, from this package's directory.
var repoRoot = filepath.Join("..", "..")

// mockServer is a running mock-openrouter.
type mockServer struct {
	url   string
	stdin io.WriteCloser
	cmd   *exec.Cmd
}

// startMock starts the mock with examples/scenarios/<scenario>.json. The binary is
// $LLMR_MOCK_BIN, or target/release/mock-openrouter; a missing binary fails the test with
// the command that builds it.
func startMock(t *testing.T, scenario string) *mockServer {
	t.Helper()
	return startMockFile(t, filepath.Join(repoRoot, "examples", "scenarios", scenario+".json"))
}

// startMockFile starts the mock with the scenario file at path.
func startMockFile(t *testing.T, path string) *mockServer {
	t.Helper()
	bin := os.Getenv("LLMR_MOCK_BIN")
	if bin == "" {
		bin = filepath.Join(repoRoot, "target", "release", "mock-openrouter")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the mock binary %s is missing (%v): build it with `cargo build --release -p mock-openrouter` "+
			"from the repository root, or set LLMR_MOCK_BIN", bin, err)
	}
	cmd := exec.Command(bin, "--scenario", path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the mock: %v", err)
	}
	m := &mockServer{stdin: stdin, cmd: cmd}
	t.Cleanup(func() {
		stdin.Close() // the mock exits when its stdin closes
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("the mock did not exit when its stdin closed")
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-lines:
		url, found := strings.CutPrefix(line, "listening on ")
		if !ok || !found || !strings.HasPrefix(url, "http://127.0.0.1:") {
			t.Fatalf("the mock's first line is %q, want \"listening on http://127.0.0.1:PORT\"; stderr: %s", line, stderr.String())
		}
		m.url = url
	case <-time.After(30 * time.Second):
		t.Fatalf("the mock printed no address within 30 s; stderr: %s", stderr.String())
	}
	return m
}

// reset restarts the mock's scenario clock, counters and account.
func (m *mockServer) reset(t *testing.T) {
	t.Helper()
	resp, err := http.Post(m.url+"/mock/reset", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /mock/reset: %d", resp.StatusCode)
	}
}

// mockStats is the part of GET /mock/stats the tests read.
type mockStats struct {
	Requests         int            `json:"requests"`
	RequestsPerModel map[string]int `json:"requests_per_model"`
	Faults           map[string]int `json:"faults"`
	InOutageWindow   map[string]int `json:"in_outage_window"`
	Answers          int            `json:"answers"`
}

func (m *mockServer) stats(t *testing.T) mockStats {
	t.Helper()
	var s mockStats
	if err := getJSON(context.Background(), nil, m.url+"/mock/stats", "", &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// policy is the repository's policy file.
func policy(t *testing.T) Policy {
	t.Helper()
	p, err := LoadPolicy(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// eventLines collects the worker's events; onLine (optional) sees each parsed event.
type eventLines struct {
	mu     sync.Mutex
	raw    bytes.Buffer
	events []map[string]any
	onLine func(map[string]any)
	bad    error
}

// Write takes one JSON line per call (EventLog writes whole lines).
func (e *eventLines) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.raw.Write(p)
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		if e.bad == nil {
			e.bad = fmt.Errorf("event line %q: %w", p, err)
		}
		return len(p), nil
	}
	e.events = append(e.events, m)
	if e.onLine != nil {
		e.onLine(m)
	}
	return len(p), nil
}

// named returns the events called name.
func (e *eventLines) named(name string) []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []map[string]any
	for _, m := range e.events {
		if m["event"] == name {
			out = append(out, m)
		}
	}
	return out
}

// runOnce resets the mock and runs a worker over its jobs. mutate (optional) edits the
// options; the events are checked against the schema and for the key.
func runOnce(t *testing.T, ctx context.Context, m *mockServer, mutate func(*Options)) (Result, *eventLines) {
	t.Helper()
	ev := &eventLines{}
	opts := Options{BaseURL: m.url, Key: fakeKey, Policy: policy(t), Events: ev, Seed: 1}
	if mutate != nil {
		mutate(&opts)
	}
	m.reset(t)
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	keepEvents(t, ev, opts.Naive)
	checkEvents(t, ev, res)
	return res, ev
}

// keepEvents writes the run's events to $LLMR_GO_WORKER_EVENTS/<test>-<policy>[-N].jsonl when
// that variable names a directory, so the report can be drawn from the Go runs.
func keepEvents(t *testing.T, ev *eventLines, naive bool) {
	t.Helper()
	dir := os.Getenv("LLMR_GO_WORKER_EVENTS")
	if dir == "" {
		return
	}
	name := strings.TrimPrefix(t.Name(), "Test") + "-ours"
	if naive {
		name = strings.TrimPrefix(t.Name(), "Test") + "-naive"
	}
	path := filepath.Join(dir, name+".jsonl")
	for n := 2; ; n++ {
		if _, err := os.Stat(path); err != nil {
			break
		}
		path = filepath.Join(dir, fmt.Sprintf("%s-%d.jsonl", name, n))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, ev.raw.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkEvents asserts what every run's events must satisfy: valid lines, the Go surface, one
// run_start and one run_end agreeing with the Result, a job_done per finished job, no key.
func checkEvents(t *testing.T, ev *eventLines, res Result) {
	t.Helper()
	if ev.bad != nil {
		t.Fatal(ev.bad)
	}
	if bytes.Contains(ev.raw.Bytes(), []byte(fakeKey)) || bytes.Contains(ev.raw.Bytes(), []byte("FAKE-not-a-real-key")) {
		t.Fatalf("an event holds the API key")
	}
	starts, ends := ev.named("run_start"), ev.named("run_end")
	if len(starts) != 1 || len(ends) != 1 {
		t.Fatalf("run_start %d, run_end %d; want one each", len(starts), len(ends))
	}
	if starts[0]["surface"] != "go" || num(starts[0]["jobs"]) != res.Jobs {
		t.Errorf("run_start = %v", starts[0])
	}
	end := ends[0]
	if num(end["answered"]) != res.Answered || num(end["failed"]) != res.Failed ||
		num(end["persisted"]) != res.Persisted || num(end["lost"]) != res.Lost {
		t.Errorf("run_end = %v, result = %+v", end, res)
	}
	done := ev.named("job_done")
	if len(done) != res.Answered+res.Failed {
		t.Errorf("%d job_done events for %d answered + %d failed", len(done), res.Answered, res.Failed)
	}
	// Each job's requests are numbered 1, 2, 3, … in order (a resumed job goes on from
	// where the previous run left it).
	last := map[string]int{}
	for _, e := range ev.named("request") {
		id, _ := e["job"].(string)
		if n := num(e["attempt"]); last[id] != 0 && n != last[id]+1 {
			t.Errorf("job %s: request attempt %d after %d", id, n, last[id])
		} else if last[id] == 0 && n < 1 {
			t.Errorf("job %s: request attempt %v", id, e["attempt"])
		}
		last[id] = num(e["attempt"])
	}
	if holds := len(holdDecisions(ev)); holds != res.Held {
		t.Errorf("%d hold-for-credit decisions, result says held %d", holds, res.Held)
	}
	bad := 0
	for _, e := range ev.events {
		if _, ok := e["t_ms"].(float64); !ok {
			t.Fatalf("event without t_ms: %v", e)
		}
		for _, problem := range schemaErrors(e) {
			if bad++; bad <= 10 {
				t.Errorf("schema: %s in %v", problem, e)
			}
		}
	}
}

// holdDecisions returns the hold-for-credit decisions.
func holdDecisions(ev *eventLines) []map[string]any {
	var out []map[string]any
	for _, e := range ev.named("decision") {
		if e["decision"] == "hold-for-credit" {
			out = append(out, e)
		}
	}
	return out
}

// num reads a JSON number as an int (-1 if it is not one).
func num(v any) int {
	f, ok := v.(float64)
	if !ok {
		return -1
	}
	return int(f)
}

// summary prints the line test.sh shows for a run.
func summary(name string, res Result) {
	fmt.Printf("[go-worker] %-28s jobs %3d  answered %3d  failed %3d %v  persisted %3d  lost %d  requests %d  retries %d  shrinks %d  rejected %d  held %d  alerts %v\n",
		name, res.Jobs, res.Answered, res.Failed, res.FailedByKind, res.Persisted, res.Lost,
		res.Requests, res.Retries, res.Shrinks, res.Rejections, res.Held, res.Alerts)
}
