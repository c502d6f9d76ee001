// Package worker is the AI worker loop a Go support-bot service writes around the
// llm-resilience Go package: jobs from a queue, a pool of goroutines, a rate limit per chat
// session, a breaker per model with fallback, context trimming with the exact token counter,
// retries decided under a service-wide budget, credit alerts, a write-ahead journal that makes
// a crash lose no job and answer none twice (journal.go), and a graceful shutdown.
//
// It exists to show — and to test against the mock OpenRouter — that the Go side of the
// library is only plumbing: every decision (is this failure retryable, how long to wait, how
// far to shrink, is this model's breaker open, is this session over its limit, should an
// alert fire) is made by the package, i.e. by the Rust core. This package does the HTTP, the
// sleeping, the goroutines, the files and the events.
package worker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	llmr "github.com/llm-resilience/llm-resilience/ffi/go"
)

// Options configures a Worker.
type Options struct {
	// BaseURL is the OpenRouter root: "https://openrouter.ai" or the mock's URL. The worker
	// calls {BaseURL}/api/v1/….
	BaseURL string
	// Key is the API key sent as a bearer token. It is never written to an event or a file.
	Key string
	// Policy is the decoded policy file.
	Policy Policy
	// Naive runs the baseline policy (Policy.Naive) instead of ours; events say
	// policy "naive".
	Naive bool
	// Events receives the JSON Lines events (nil: none).
	Events io.Writer
	// StateDir, if not empty, holds the write-ahead journal (journal.go): every job accepted
	// and finished, and the engine's snapshots, so a restart — after a graceful shutdown or a
	// kill -9 — resumes the unfinished jobs and never answers a finished one again. It is
	// created (or tightened) to mode 0700 and must be writable: New fails otherwise.
	StateDir string
	// SnapshotInterval is how often the breaker, limiter and credit snapshots are journaled
	// during a run (0: every second; they are also journaled at the end of every run).
	SnapshotInterval time.Duration
	// Source hands out the jobs (nil: the mock's GET {BaseURL}/mock/jobs).
	Source JobSource
	// Client is the HTTP client (nil: a client without its own timeout; each request gets
	// Policy.RequestTimeout).
	Client *http.Client
	// Seed makes the retry jitter reproducible (mixed with each job's id).
	Seed uint64
}

// Restored says which snapshots a run restored from the state directory.
type Restored struct {
	// Breakers, Limiter and Credits are true when that snapshot was restored.
	Breakers, Limiter, Credits bool
}

// Result sums a run up (the events have the detail).
type Result struct {
	// Scenario is the workload's name.
	Scenario string
	// Jobs is the number of jobs this run owned, Resumed of which came from the state dir.
	Jobs, Resumed int
	// Answered, Failed and Persisted jobs; Lost = Jobs - Answered - Failed - Persisted.
	// Persisted jobs are the unfinished ones the journal holds: the next start resumes them.
	Answered, Failed, Persisted, Lost int
	// Duplicates counts jobs the source handed over that were dropped: already finished
	// (by job id, in the journal) or twice in the batch.
	Duplicates int
	// Recovered counts jobs a crashed run finished (the journal says so) whose job_done it
	// did not get to write: this run writes it and counts them (in Jobs and Answered or
	// Failed), never running them again.
	Recovered int
	// TornBytes is the size of a torn last journal record the start-up ignored (a crash or
	// power cut in the middle of an append).
	TornBytes int
	// FailedByKind counts failed jobs by kind.
	FailedByKind map[string]int
	// Requests, Retries, Shrinks and Rejections (breaker refusals) over all jobs.
	Requests, Retries, Shrinks, Rejections int
	// Held counts credit holds: hold-for-credit decisions (at most one per job per period
	// the account was out of credit).
	Held int
	// Alerts counts credit alerts raised, by alert.
	Alerts map[string]int
	// Shutdown is true when the context was cancelled before every job was done.
	Shutdown bool
	// Restored says which snapshots were restored.
	Restored Restored
}

// Worker runs jobs under a policy. Create it with New; Run may be called more than once
// (each run restores the state directory the previous one wrote).
type Worker struct {
	opts Options
}

// New checks the options.
func New(opts Options) (*Worker, error) {
	if opts.BaseURL == "" {
		return nil, errors.New("go-worker: BaseURL is required")
	}
	if !strings.HasPrefix(opts.BaseURL, "http://") && !strings.HasPrefix(opts.BaseURL, "https://") {
		return nil, errors.New("go-worker: BaseURL must be an http or https URL")
	}
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	if len(opts.Policy.Models) == 0 || opts.Policy.Concurrency < 1 {
		return nil, errors.New("go-worker: Policy is not decoded (use DecodePolicy or LoadPolicy)")
	}
	if opts.Client == nil {
		// Keep a connection per worker goroutine (the default keeps 2 per host); no client
		// timeout: each request, a stream's body included, gets Policy.RequestTimeout.
		opts.Client = &http.Client{}
		if t, ok := http.DefaultTransport.(*http.Transport); ok {
			t = t.Clone()
			t.MaxIdleConnsPerHost = opts.Policy.Concurrency
			opts.Client.Transport = t
		}
	}
	if opts.Source == nil {
		opts.Source = MockJobs{BaseURL: opts.BaseURL, Client: opts.Client}
	}
	if opts.StateDir != "" {
		if err := mkdirState(opts.StateDir); err != nil {
			return nil, err
		}
	}
	if opts.SnapshotInterval <= 0 {
		opts.SnapshotInterval = time.Second
	}
	return &Worker{opts: opts}, nil
}

// handles are the package's stateful objects of one run.
type handles struct {
	breakers *llmr.BreakerSet
	limiter  *llmr.Limiter
	monitor  *llmr.CreditMonitor
	retry    *llmr.RetryPolicy
	budget   *llmr.RetryBudget
	counter  *llmr.TokenCounter
}

func (h *handles) close() {
	for _, c := range []io.Closer{h.breakers, h.limiter, h.monitor, h.retry, h.budget, h.counter} {
		if c != nil && !isNilCloser(c) {
			c.Close()
		}
	}
}

// isNilCloser tells a typed nil pointer inside an io.Closer.
func isNilCloser(c io.Closer) bool {
	switch v := c.(type) {
	case *llmr.BreakerSet:
		return v == nil
	case *llmr.Limiter:
		return v == nil
	case *llmr.CreditMonitor:
		return v == nil
	case *llmr.RetryPolicy:
		return v == nil
	case *llmr.RetryBudget:
		return v == nil
	case *llmr.TokenCounter:
		return v == nil
	}
	return false
}

// openHandles restores each snapshot the journal holds (jr may be nil: no state dir) and
// creates the others.
func (w *Worker) openHandles(jr *journal) (*handles, Restored, error) {
	p := w.opts.Policy
	h := &handles{}
	var r Restored
	fail := func(err error) (*handles, Restored, error) {
		h.close()
		return nil, Restored{}, err
	}
	var snaps snapshots
	source := map[string]string{}
	if jr != nil {
		snaps, source = jr.snapshots()
	}
	var err error
	if snaps.Breakers != nil {
		if h.breakers, err = llmr.RestoreBreakerSet(snaps.Breakers); err != nil {
			return fail(fmt.Errorf("%s: %w", source["breakers"], err))
		}
		r.Breakers = true
	} else if h.breakers, err = llmr.NewBreakerSet(p.Breaker, p.BreakerMaxKeys); err != nil {
		return fail(err)
	}
	if snaps.Limiter != nil {
		if h.limiter, err = llmr.RestoreLimiter(snaps.Limiter); err != nil {
			return fail(fmt.Errorf("%s: %w", source["limiter"], err))
		}
		r.Limiter = true
	} else if h.limiter, err = llmr.NewLimiter(p.RateLimit); err != nil {
		return fail(err)
	}
	if snaps.Credits != nil {
		if h.monitor, err = llmr.RestoreCreditMonitor(snaps.Credits); err != nil {
			return fail(fmt.Errorf("%s: %w", source["credits"], err))
		}
		r.Credits = true
	} else if h.monitor, err = llmr.NewCreditMonitor(p.Credits); err != nil {
		return fail(err)
	}
	if h.retry, err = llmr.NewRetryPolicy(p.Retry); err != nil {
		return fail(err)
	}
	if h.budget, err = llmr.NewRetryBudget(p.Budget); err != nil {
		return fail(err)
	}
	if h.counter, err = llmr.NewTokenCounter(llmr.O200kBase); err != nil {
		return fail(err)
	}
	return h, r, nil
}

// snapshot exports the three snapshots.
func (h *handles) snapshot() (snapshots, error) {
	var s snapshots
	var err error
	if s.Breakers, err = h.breakers.Snapshot(); err != nil {
		return s, fmt.Errorf("breakers snapshot: %w", err)
	}
	if s.Limiter, err = h.limiter.Snapshot(); err != nil {
		return s, fmt.Errorf("limiter snapshot: %w", err)
	}
	if s.Credits, err = h.monitor.Snapshot(); err != nil {
		return s, fmt.Errorf("credits snapshot: %w", err)
	}
	return s, nil
}

// outcome is how one job's processing ended.
type outcome int

const (
	outcomeAnswered outcome = iota
	outcomeFailed
	// outcomeUnfinished: cancelled by the shutdown (or a journal failure); the journal still
	// holds the job as accepted, so the next start resumes it.
	outcomeUnfinished
)

// run is the state of one Run.
type run struct {
	w       *Worker
	p       Policy
	h       *handles
	ev      *EventLog
	batch   Batch
	docs    []llmr.Document
	windows map[string]int
	chatURL string
	// gate is the account's credit state (ours, with Policy.CreditHold > 0).
	gate creditGate
	// shutdown is closed when the run is asked to stop: credit holds end at once (their
	// jobs are persisted) instead of using the grace that in-flight calls get.
	shutdown <-chan struct{}
	// jr is the journal (nil without a state dir); stop ends the run when it fails.
	jr   *journal
	stop context.CancelCauseFunc

	// resumedProgress is what the persisted jobs had done before (read only).
	resumedProgress map[string]jobProgress

	mu         sync.Mutex
	res        Result
	unfinished []Job
	// journalErr is the journal's first failure: the run stops and returns it.
	journalErr error
	inFlight   int
	stopping   bool
	inGrace    int // jobs finished after the shutdown request
}

// Run takes the jobs (the journal's unfinished ones if the state dir holds any, else from the
// source, de-duplicated against the jobs the journal saw finish), processes them until all
// are done or ctx is cancelled, and journals every step (journal.go).
// The error reports a setup or persistence failure; job failures are in the Result.
func (w *Worker) Run(ctx context.Context) (Result, error) {
	start := time.Now()
	ev := NewEventLog(w.opts.Events, start)
	ctx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	// Replay the journal (nothing is written yet), restore the snapshots, then compact: a
	// state the worker cannot read or write is an error before any job is taken.
	var jr *journal
	if w.opts.StateDir != "" {
		var err error
		if jr, err = openJournal(w.opts.StateDir); err != nil {
			return Result{}, fmt.Errorf("go-worker: state dir %s: %w", w.opts.StateDir, err)
		}
		defer jr.close()
	}
	h, restored, err := w.openHandles(jr)
	if err != nil {
		return Result{}, err
	}
	defer h.close()
	torn := 0
	if jr != nil {
		torn = jr.tornBytes()
		if err := jr.compact(); err != nil {
			return Result{}, fmt.Errorf("go-worker: state dir %s: %w", w.opts.StateDir, err)
		}
	}
	// The windows first: a run that cannot start must not have taken jobs from the source.
	windows, err := fetchModels(ctx, w.opts.Client, w.opts.BaseURL, w.opts.Key)
	if err != nil {
		return Result{}, err
	}
	var (
		batch    Batch
		progress map[string]jobProgress
		resumed  bool
		dups     int
	)
	if jr != nil {
		batch, progress = jr.resumable()
		resumed = len(batch.Jobs) > 0
	}
	if !resumed {
		if batch, err = w.opts.Source.Take(ctx); err != nil {
			return Result{}, err
		}
		batch.Jobs, dups = w.dedup(jr, batch.Jobs)
		// Accepted before any call: from here on a crash resumes these jobs.
		if jr != nil {
			if err := jr.accept(batch); err != nil {
				n := len(batch.Jobs)
				return Result{Scenario: batch.Scenario, Jobs: n, Lost: n, Duplicates: dups},
					fmt.Errorf("go-worker: journaling the accepted jobs: %w", err)
			}
		}
		if a, ok := w.opts.Source.(AckingSource); ok {
			if err := a.Ack(ctx, batch); err != nil {
				return Result{}, fmt.Errorf("go-worker: acknowledging the jobs: %w", err)
			}
		}
	}
	r := &run{
		w: w, p: w.opts.Policy, h: h, ev: ev, batch: batch, windows: windows,
		chatURL: w.opts.BaseURL + "/api/v1/chat/completions", shutdown: ctx.Done(),
		resumedProgress: progress, jr: jr, stop: stopRun,
	}
	for _, d := range batch.Documents {
		r.docs = append(r.docs, llmr.Document{ID: d.ID, Text: d.Text})
	}
	var recovered []Event
	if jr != nil {
		recovered = jr.unreportedDone()
	}
	r.res = Result{Scenario: batch.Scenario, Jobs: len(batch.Jobs) + len(recovered), FailedByKind: map[string]int{},
		Alerts: map[string]int{}, Restored: restored, Duplicates: dups, TornBytes: torn, Recovered: len(recovered)}
	if resumed {
		r.res.Resumed = len(batch.Jobs)
	}
	policyName := "ours"
	if w.opts.Naive {
		policyName = "naive"
	}
	ev.Emit("run_start", Event{"scenario": batch.Scenario, "policy": policyName, "surface": "go",
		"jobs": r.res.Jobs, "resumed": r.res.Resumed})
	for _, e := range recovered {
		r.report(e)
	}

	// The job context outlives ctx by the shutdown grace: in-flight jobs may finish.
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	workersDone := make(chan struct{})
	shutdownInfo := make(chan Event, 1)
	go func() {
		select {
		case <-workersDone:
			close(shutdownInfo)
			return
		case <-ctx.Done():
		}
		r.mu.Lock()
		r.stopping = true
		inFlight := r.inFlight
		r.mu.Unlock()
		// signal.NotifyContext cancels with a cause naming the signal ("terminated signal
		// received"); a plain cancel has context.Canceled itself as its cause.
		signal := "cancel"
		if c := context.Cause(ctx); c != nil && c != context.Canceled { //nolint:errorlint // identity is the point
			signal = c.Error()
		}
		shutdownInfo <- Event{"signal": signal, "in_flight": inFlight}
		grace := time.NewTimer(r.p.ShutdownGrace)
		defer grace.Stop()
		select {
		case <-workersDone:
		case <-grace.C:
			cancelJobs()
		}
	}()

	pollCtx, stopPoll := context.WithCancel(jobCtx)
	var pollWG sync.WaitGroup
	pollWG.Add(1)
	go func() {
		defer pollWG.Done()
		r.pollCredits(pollCtx)
	}()
	if jr != nil {
		pollWG.Add(1)
		go func() {
			defer pollWG.Done()
			r.snapshotEvery(pollCtx, w.opts.SnapshotInterval)
		}()
	}

	queue := make(chan Job)
	var feedWG sync.WaitGroup
	feedWG.Add(1)
	go func() {
		defer feedWG.Done()
		defer close(queue)
		for i, j := range batch.Jobs {
			if !resumed {
				if wait := time.Until(start.Add(time.Duration(j.ArriveMs) * time.Millisecond)); wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-ctx.Done():
						t.Stop()
						r.keepUnfinished(batch.Jobs[i:]...)
						return
					case <-t.C:
					}
				}
			}
			select {
			case <-ctx.Done():
				r.keepUnfinished(batch.Jobs[i:]...)
				return
			case queue <- j:
			}
		}
	}()

	var wg sync.WaitGroup
	for range r.p.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				if ctx.Err() != nil { // taken as the shutdown began: not started
					r.keepUnfinished(j)
					continue
				}
				r.mu.Lock()
				r.inFlight++
				r.mu.Unlock()
				o, kind := r.process(jobCtx, j)
				r.finish(j, o, kind)
			}
		}()
	}
	wg.Wait()
	feedWG.Wait()
	close(workersDone)
	stopPoll()
	pollWG.Wait()

	var persistErr error
	r.mu.Lock()
	unfinished := len(r.unfinished)
	persistErr = r.journalErr
	r.mu.Unlock()
	if jr != nil {
		// Every unfinished job is in the journal since it was accepted (with its counts up to
		// its latest request): the next start resumes it whatever happens below.
		r.res.Persisted = unfinished
		if persistErr == nil {
			persistErr = r.snapshotNow()
		}
		if persistErr == nil {
			persistErr = jr.compact()
		}
	}
	r.res.Lost = r.res.Jobs - r.res.Answered - r.res.Failed - r.res.Persisted
	if info, ok := <-shutdownInfo; ok {
		r.res.Shutdown = true
		info["finished_in_grace"] = r.inGrace
		info["persisted"] = r.res.Persisted
		ev.Emit("shutdown", info)
	}
	ev.Emit("run_end", Event{"answered": r.res.Answered, "failed": r.res.Failed,
		"persisted": r.res.Persisted, "lost": r.res.Lost})
	if persistErr != nil {
		return r.res, fmt.Errorf("go-worker: persisting the state: %w", persistErr)
	}
	if err := ev.Err(); err != nil {
		return r.res, fmt.Errorf("go-worker: writing events: %w", err)
	}
	return r.res, nil
}

// dedup drops the jobs the journal saw finish and the repeats of an id within the batch.
func (w *Worker) dedup(jr *journal, jobs []Job) ([]Job, int) {
	kept := make([]Job, 0, len(jobs))
	seen := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		if seen[j.ID] || (jr != nil && jr.finishedID(j.ID)) {
			continue
		}
		seen[j.ID] = true
		kept = append(kept, j)
	}
	return kept, len(jobs) - len(kept)
}

// journalFailed records the journal's first failure and stops the run: a worker that cannot
// make its steps durable must not go on acting (the unfinished jobs stay in the journal).
func (r *run) journalFailed(err error) {
	r.mu.Lock()
	if r.journalErr == nil {
		r.journalErr = fmt.Errorf("go-worker: journal: %w", err)
	}
	err = r.journalErr
	r.mu.Unlock()
	r.stop(err)
}

// snapshotNow journals the engine's snapshots (durably).
func (r *run) snapshotNow() error {
	s, err := r.h.snapshot()
	if err != nil {
		return err
	}
	return r.jr.snapshot(s)
}

// snapshotEvery journals the snapshots every interval until ctx ends.
func (r *run) snapshotEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.snapshotNow(); err != nil {
			r.journalFailed(err)
			return
		}
	}
}

// journalProgress journals a job's counts before it sends its next request (attempts
// including that request); false when the journal failed (the job stops, unfinished).
func (r *run) journalProgress(j Job, s jobState) bool {
	if r.jr == nil {
		return true
	}
	if err := r.jr.progress(j.ID, jobProgress{Attempts: s.attempts + 1, Retries: s.retries, Shrinks: s.shrinks}); err != nil {
		r.journalFailed(err)
		return false
	}
	return true
}

func (r *run) keepUnfinished(jobs ...Job) {
	r.mu.Lock()
	r.unfinished = append(r.unfinished, jobs...)
	r.mu.Unlock()
}

// finish records a job's end.
func (r *run) finish(j Job, o outcome, kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight--
	if r.stopping && o != outcomeUnfinished {
		r.inGrace++
	}
	switch o {
	case outcomeAnswered:
		r.res.Answered++
	case outcomeFailed:
		r.res.Failed++
		r.res.FailedByKind[kind]++
	case outcomeUnfinished:
		r.unfinished = append(r.unfinished, j)
	}
}

func (r *run) count(f func(*Result)) {
	r.mu.Lock()
	f(&r.res)
	r.mu.Unlock()
}

// jobSeed mixes the worker's seed with the job id, so a job's jitter is the same every run.
func jobSeed(seed uint64, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64() ^ seed
}

// sleep waits d or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// input is the job as the trimmer takes it.
func (r *run) input(j Job) llmr.TrimInput {
	history := make([]llmr.Message, 0, len(j.History))
	for _, m := range j.History {
		history = append(history, llmr.Message{Role: llmr.Role(m.Role), Content: m.Content})
	}
	return llmr.TrimInput{System: r.batch.SystemPrompt, Documents: r.docs, History: history,
		Latest: llmr.Message{Role: llmr.RoleUser, Content: j.Message}}
}

// millisOrNil is a duration in ms for an event, or null.
func millisOrNil(d time.Duration, ok bool) any {
	if !ok {
		return nil
	}
	return d.Milliseconds()
}

// respond emits the response event of an attempt.
func (r *run) respond(j Job, model string, attemptNo int, a attempt) {
	e := Event{"job": j.ID, "model": model, "attempt": attemptNo, "ok": a.ok,
		"latency_ms": a.latency.Milliseconds(), "status": nil, "fault": nil,
		"kind": nil, "retryable": nil, "retry_after_ms": nil}
	if a.status != 0 {
		e["status"] = a.status
	}
	if a.fault != "" {
		e["fault"] = a.fault
	}
	if !a.ok {
		e["kind"] = a.class.Kind.String()
		e["retryable"] = a.class.Retryable
		e["retry_after_ms"] = millisOrNil(a.class.RetryAfter, a.class.HasRetryAfter)
		e["message"] = a.class.Message // redacted by the core
	}
	r.ev.Emit("response", e)
}

// jobState is one job's progress, for its job_done event.
type jobState struct {
	attempts, retries, shrinks int
	model                      string
}

func (r *run) done(j Job, s jobState, o outcome, kind string) (outcome, string) {
	e := Event{"job": j.ID, "session": j.Session, "long": j.Long, "attempts": s.attempts,
		"retries": s.retries, "shrinks": s.shrinks, "model": nil}
	if s.model != "" {
		e["model"] = s.model
	}
	switch o {
	case outcomeAnswered:
		e["outcome"] = "answered"
	case outcomeFailed:
		e["outcome"] = "failed"
		e["kind"] = kind
	default:
		// Unfinished jobs have no job_done: the journal holds them, with their counts.
		return o, kind
	}
	// Durable before it is acted on: once the journal says finished, no restart runs the job
	// again; if the journal cannot say it, the job stays unfinished (and is resumed).
	if r.jr != nil {
		if err := r.jr.finished(j.ID, e["outcome"].(string), kind, e); err != nil {
			r.journalFailed(err)
			return outcomeUnfinished, ""
		}
		// The mark first, then the event: a start never writes a job_done twice.
		if err := r.jr.reported(j.ID); err != nil {
			r.journalFailed(err) // the next start writes the event
			return o, kind
		}
	}
	r.ev.Emit("job_done", e)
	return o, kind
}

// report writes the job_done of a job a crashed run finished but did not report, and counts
// it in this run.
func (r *run) report(e Event) {
	id, _ := e["job"].(string)
	if err := r.jr.reported(id); err != nil {
		r.journalFailed(err)
		return
	}
	r.ev.Emit("job_done", e)
	r.mu.Lock()
	defer r.mu.Unlock()
	if e["outcome"] == "failed" {
		kind, _ := e["kind"].(string)
		r.res.Failed++
		r.res.FailedByKind[kind]++
	} else {
		r.res.Answered++
	}
}

// resumed is a job's state at its start: zero, or the counts a previous run persisted.
func (r *run) resumed(j Job) jobState {
	pr := r.resumedProgress[j.ID]
	return jobState{attempts: pr.Attempts, retries: pr.Retries, shrinks: pr.Shrinks}
}

// process runs one job to its end.
func (r *run) process(ctx context.Context, j Job) (outcome, string) {
	if r.w.opts.Naive {
		return r.processNaive(ctx, j)
	}
	return r.processOurs(ctx, j)
}

// processOurs is the policy path: limiter, breakers with fallback, trimming, retry decisions.
func (r *run) processOurs(ctx context.Context, j Job) (outcome, string) {
	s := r.resumed(j)
	// The session's rate limit: an invalid session id (empty, too long) is not limited.
	if v, err := r.h.limiter.AllowN(j.Session, 1); err == nil && !v.Allowed {
		r.ev.Emit("deferred", Event{"job": j.ID, "session": j.Session, "wait_ms": v.RetryIn.Milliseconds()})
		if err := r.h.limiter.Wait(ctx, j.Session); err != nil {
			if ctx.Err() != nil {
				return r.done(j, s, outcomeUnfinished, "")
			}
		}
	}
	call := r.h.retry.Start(time.Now(), jobSeed(r.w.opts.Seed, j.ID), r.h.budget)
	defer func() { call.Close() }()
	first := 0 // the first model of the preference list this job may still use
	var deadline time.Time
	if r.p.Retry.Deadline > 0 {
		deadline = time.Now().Add(r.p.Retry.Deadline)
	}
	maxTokens, lowered := r.p.MaxTokens, false
	shrunk := map[string]llmr.ContextSettings{}
	in := r.input(j)
	attemptNo := s.attempts + 1 // a resumed job goes on counting
	lastKind := ""
	holding := r.p.CreditHold > 0
	for {
		// The credit hold: no request goes into a known 402.
		gv := r.gate.view()
		if holding && gv.dry {
			switch r.holdForCredit(ctx, j, attemptNo, gv) {
			case holdCancelled:
				return r.done(j, s, outcomeUnfinished, "")
			case holdTimedOut:
				return r.creditGiveUp(j, s, attemptNo)
			}
			continue
		}
		model, permit, wait, ok := r.pickModel(j, attemptNo, first)
		if !ok {
			if wait <= 0 {
				wait = r.p.Retry.BaseDelay
			}
			if !deadline.IsZero() && time.Now().Add(wait).After(deadline) {
				r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo, "decision": "give-up",
					"after_ms": nil, "target_tokens": nil, "reason": "deadline: every model's breaker is open"})
				if lastKind == "" {
					lastKind = llmr.KindUnavailable.String()
				}
				return r.done(j, s, outcomeFailed, lastKind)
			}
			if !sleep(ctx, wait) {
				return r.done(j, s, outcomeUnfinished, "")
			}
			continue
		}
		s.model = model
		settings, ok := shrunk[model]
		if !ok {
			settings = r.p.Context
			settings.ContextWindow = r.windows[model]
		}
		t, err := llmr.Trim(settings, in, r.h.counter)
		if err != nil {
			r.h.breakers.RecordAt(model, permit, llmr.Ignored, time.Now())
			r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo, "decision": "give-up",
				"after_ms": nil, "target_tokens": nil, "reason": "does-not-fit"})
			return r.done(j, s, outcomeFailed, llmr.KindContextOverflow.String())
		}
		r.ev.Emit("trim", trimEvent(j, model, t))
		if !r.journalProgress(j, s) {
			r.h.breakers.RecordAt(model, permit, llmr.Ignored, time.Now())
			return r.done(j, s, outcomeUnfinished, "")
		}
		r.ev.Emit("request", Event{"job": j.ID, "session": j.Session, "model": model,
			"attempt": attemptNo, "stream": j.Stream, "max_tokens": maxTokens, "tokens": t.Report.TokensAfter})
		s.attempts++
		r.count(func(res *Result) { res.Requests++ })
		a := send(ctx, r.w.opts.Client, r.chatURL, r.w.opts.Key,
			chatRequest{Model: model, Messages: t.Messages, MaxTokens: maxTokens, Stream: j.Stream},
			r.p.RequestTimeout)
		if a.cancelled {
			r.h.breakers.RecordAt(model, permit, llmr.Ignored, time.Now())
			return r.done(j, s, outcomeUnfinished, "")
		}
		o := llmr.Succeeded
		if !a.ok {
			o = llmr.OutcomeOf(a.class)
		}
		if rec, err := r.h.breakers.RecordAt(model, permit, o, time.Now()); err == nil && rec.Transition.Changed {
			r.ev.Emit("breaker", Event{"model": model, "from": rec.Transition.From.String(), "to": rec.Transition.To.String()})
		}
		r.respond(j, model, attemptNo, a)
		if a.ok {
			return r.done(j, s, outcomeAnswered, "")
		}
		lastKind = a.class.Kind.String()
		// A 402 that says how many tokens the credit can pay for: lower max_tokens, once.
		if a.class.Kind == llmr.KindQuotaExhausted && !lowered {
			if aff, ok := llmr.SuggestMaxTokens(a.class.Message); ok && aff.SuggestedMaxTokens > 0 && aff.SuggestedMaxTokens < maxTokens {
				lowered, maxTokens = true, aff.SuggestedMaxTokens
				attemptNo++
				r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo, "decision": "lower-max-tokens",
					"after_ms": 0, "target_tokens": maxTokens, "reason": "can only afford " + fmt.Sprint(aff.AffordableTokens)})
				continue
			}
		}
		// Out of credit and nothing to lower: hold for a top-up instead of giving up. The
		// retry call is not consulted (its state is kept); a hold that ends with the gate
		// open is a retry.
		if holding && a.class.Kind == llmr.KindQuotaExhausted {
			held := r.gate.markDry(time.Now(), gv.opens)
			switch r.holdForCredit(ctx, j, attemptNo+1, held) {
			case holdCancelled:
				return r.done(j, s, outcomeUnfinished, "")
			case holdTimedOut:
				return r.creditGiveUp(j, s, attemptNo)
			}
			attemptNo++
			s.retries++
			r.count(func(res *Result) { res.Retries++ })
			continue
		}
		d := call.Decide(a.class, time.Now(), t.Report.TokensAfter)
		switch d.Action {
		case llmr.ActionRetry:
			s.retries++
			r.count(func(res *Result) { res.Retries++ })
			r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo + 1, "decision": "retry",
				"after_ms": d.After.Milliseconds(), "target_tokens": nil, "reason": lastKind})
		case llmr.ActionShrinkContext:
			next, _, err := llmr.NextBudget(a.class, settings, t.Report.TokensAfter, r.p.Retry)
			if err != nil {
				r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo, "decision": "give-up",
					"after_ms": nil, "target_tokens": nil, "reason": "cannot-shrink"})
				return r.done(j, s, outcomeFailed, lastKind)
			}
			shrunk[model] = next
			s.shrinks++
			r.count(func(res *Result) { res.Shrinks++ })
			r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo + 1, "decision": "shrink",
				"after_ms": d.After.Milliseconds(), "target_tokens": d.TargetTokens, "reason": lastKind})
		default:
			if next := r.fallbackAfter(model, a.class.Kind, d.Reason); next > first {
				// The policy gave up on this model for a failure of the provider's: the next
				// model in the preference list gets the job, with a fresh retry call.
				first = next
				call.Close()
				call = r.h.retry.Start(time.Now(), jobSeed(r.w.opts.Seed, j.ID)+uint64(next), r.h.budget)
				attemptNo++
				r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo, "decision": "fallback",
					"after_ms": 0, "target_tokens": nil, "reason": d.Reason.String() + ": " + lastKind, "model": r.p.Models[next]})
				continue
			}
			r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo, "decision": "give-up",
				"after_ms": nil, "target_tokens": nil, "reason": d.Reason.String()})
			return r.done(j, s, outcomeFailed, lastKind)
		}
		// The job's own count, not the call's (d.Attempt): a fallback starts a fresh call,
		// and lowering max_tokens, a credit hold and a resumed job add attempts the call
		// does not know about.
		attemptNo++
		if !sleep(ctx, d.After) {
			return r.done(j, s, outcomeUnfinished, "")
		}
	}
}

// holdForCredit emits the hold-for-credit decision and waits until the gate's wake channel
// closes, Policy.CreditHold has passed since the account went dry, or the run stops. The hold
// window is the account's, not each job's: once the account has been dry that long, later
// jobs fail at once (the operator has the alert; a customer is better served by a quick
// fallback answer than by waiting out another full hold).
func (r *run) holdForCredit(ctx context.Context, j Job, attemptNo int, gv gateView) holdResult {
	if gv.wake == nil {
		return holdOpened
	}
	left := time.Until(gv.since.Add(r.p.CreditHold))
	if left <= 0 {
		return holdTimedOut
	}
	r.count(func(res *Result) { res.Held++ })
	r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo, "decision": "hold-for-credit",
		"after_ms": left.Milliseconds(), "target_tokens": nil,
		"reason": "account out of credit: waiting for a top-up"})
	t := time.NewTimer(left)
	defer t.Stop()
	return waitGate(gv.wake, t.C, ctx.Done(), r.shutdown)
}

// creditGiveUp ends a job whose credit hold ran out.
func (r *run) creditGiveUp(j Job, s jobState, attemptNo int) (outcome, string) {
	r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo, "decision": "give-up",
		"after_ms": nil, "target_tokens": nil, "reason": "credit did not return within credit_hold_ms"})
	return r.done(j, s, outcomeFailed, llmr.KindQuotaExhausted.String())
}

// pickModel returns the first model whose breaker admits a call (emitting a rejected event
// for each that does not, and a fallback decision when it is not the first), or the shortest
// wait until one might.
func (r *run) pickModel(j Job, attemptNo, first int) (string, llmr.Permit, time.Duration, bool) {
	var wait time.Duration
	for i, m := range r.p.Models {
		if i < first {
			continue
		}
		p, err := r.h.breakers.AcquireAt(m, time.Now())
		if err == nil {
			if i > first {
				r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo, "decision": "fallback",
					"after_ms": nil, "target_tokens": nil, "reason": "breaker open: " + r.p.Models[0], "model": m})
			}
			return m, p, 0, true
		}
		var oe *llmr.OpenError
		// 0 when the breaker names no time (half-open with its probe slots taken).
		retryIn := int64(0)
		if errors.As(err, &oe) && oe.HasRetryIn {
			retryIn = oe.RetryIn.Milliseconds()
			if wait == 0 || oe.RetryIn < wait {
				wait = oe.RetryIn
			}
		}
		r.count(func(res *Result) { res.Rejections++ })
		r.ev.Emit("rejected", Event{"job": j.ID, "model": m, "retry_in_ms": retryIn})
	}
	return "", llmr.Permit{}, wait, false
}

// fallbackAfter returns the index of the model to fall back to after the retry policy gave up
// on model, or -1. Only a failure that counts against the provider (the breaker's counted
// kinds, plus not-found: the model is gone) moves the job, and only when the policy gave up
// on this model (attempts exhausted, a server wait too long, a permanent not-found, or the
// retry budget empty: the budget keeps retries from piling onto the failing provider, and
// the next model is another provider) — never past the call's deadline. Each job moves at
// most once per model of the list.
func (r *run) fallbackAfter(model string, kind llmr.Kind, reason llmr.GiveUpReason) int {
	switch reason {
	case llmr.ReasonAttemptsExhausted, llmr.ReasonWaitTooLong, llmr.ReasonPermanent, llmr.ReasonBudgetExhausted:
	default:
		return -1
	}
	provider := kind == llmr.KindNotFound
	for _, k := range r.counted() {
		provider = provider || k == kind
	}
	if !provider {
		return -1
	}
	for i, m := range r.p.Models {
		if m == model && i+1 < len(r.p.Models) {
			return i + 1
		}
	}
	return -1
}

// counted is the breaker's counted kinds (the package's default list when the policy has none).
func (r *run) counted() []llmr.Kind {
	if r.p.Breaker.CountedKinds != nil {
		return r.p.Breaker.CountedKinds
	}
	return []llmr.Kind{llmr.KindRateLimited, llmr.KindTimeout, llmr.KindOverloaded,
		llmr.KindUnavailable, llmr.KindServerError, llmr.KindNetwork}
}

func trimEvent(j Job, model string, t llmr.Trimmed) Event {
	kept, dropped, cut := 0, 0, 0
	for _, f := range t.Report.History {
		switch f.Kind {
		case llmr.Kept:
			kept++
		case llmr.Dropped:
			dropped++
		case llmr.Truncated:
			cut++
		}
	}
	return Event{"job": j.ID, "model": model, "budget_tokens": t.Report.LimitTokens,
		"tokens": t.Report.TokensAfter, "kept": kept, "dropped": dropped, "cut": cut}
}

// processNaive is the baseline: first model, history cut to a number of messages, every error
// retried a fixed number of times with a fixed backoff. No breaker, limiter or budget.
func (r *run) processNaive(ctx context.Context, j Job) (outcome, string) {
	s := r.resumed(j)
	model := r.p.Models[0]
	s.model = model
	keep := r.p.Naive.HistoryMessages
	in := r.input(j)
	for attemptNo := s.attempts + 1; ; attemptNo++ {
		// Trim only applies the message cap here: the window is far larger than any request.
		settings := llmr.ContextSettings{ContextWindow: 100_000_000, ReservedOutputTokens: r.p.MaxTokens,
			MaxHistoryMessages: keep}
		if keep == 0 {
			settings.MaxHistoryMessages = -1
		}
		t, err := llmr.Trim(settings, in, r.h.counter)
		if err != nil {
			return r.done(j, s, outcomeFailed, llmr.KindContextOverflow.String())
		}
		r.ev.Emit("trim", trimEvent(j, model, t))
		if !r.journalProgress(j, s) {
			return r.done(j, s, outcomeUnfinished, "")
		}
		r.ev.Emit("request", Event{"job": j.ID, "session": j.Session, "model": model,
			"attempt": attemptNo, "stream": j.Stream, "max_tokens": r.p.MaxTokens, "tokens": t.Report.TokensAfter})
		s.attempts++
		r.count(func(res *Result) { res.Requests++ })
		a := send(ctx, r.w.opts.Client, r.chatURL, r.w.opts.Key,
			chatRequest{Model: model, Messages: t.Messages, MaxTokens: r.p.MaxTokens, Stream: j.Stream},
			r.p.RequestTimeout)
		if a.cancelled {
			return r.done(j, s, outcomeUnfinished, "")
		}
		r.respond(j, model, attemptNo, a)
		if a.ok {
			return r.done(j, s, outcomeAnswered, "")
		}
		kind := a.class.Kind.String()
		if attemptNo > r.p.Naive.Retries {
			r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo, "decision": "give-up",
				"after_ms": nil, "target_tokens": nil, "reason": "attempts-exhausted"})
			return r.done(j, s, outcomeFailed, kind)
		}
		if a.class.Kind == llmr.KindContextOverflow && keep > r.p.Naive.HistoryMessagesAfterOverflow {
			keep = r.p.Naive.HistoryMessagesAfterOverflow
			s.shrinks++
			r.count(func(res *Result) { res.Shrinks++ })
			r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo + 1, "decision": "shrink",
				"after_ms": r.p.Naive.Backoff.Milliseconds(), "target_tokens": nil, "reason": kind})
		} else {
			s.retries++
			r.count(func(res *Result) { res.Retries++ })
			r.ev.Emit("decision", Event{"job": j.ID, "attempt": attemptNo + 1, "decision": "retry",
				"after_ms": r.p.Naive.Backoff.Milliseconds(), "target_tokens": nil, "reason": kind})
		}
		if !sleep(ctx, r.p.Naive.Backoff) {
			return r.done(j, s, outcomeUnfinished, "")
		}
	}
}

// pollCredits reads GET /api/v1/key every CreditPoll and feeds the monitor; each alert it
// returns becomes an event.
func (r *run) pollCredits(ctx context.Context) {
	t := time.NewTicker(r.p.CreditPoll)
	defer t.Stop()
	for {
		body, status, err := get(ctx, r.w.opts.Client, r.w.opts.BaseURL+"/api/v1/key", r.w.opts.Key)
		if err == nil && status == http.StatusOK {
			if key, err := llmr.ParseKey(body); err == nil {
				alerts, err := r.h.monitor.Observe(llmr.CreditSnapshot{Key: &key}, time.Now())
				if err == nil {
					for _, a := range alerts {
						r.alert(a)
					}
					// The monitor's balance_usd (the binding one of account and key)
					// opens the credit gate on a top-up.
					if st, err := r.h.monitor.Status(); err == nil {
						r.gate.observe(st.BalanceUSD)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *run) alert(a llmr.Alert) {
	state := "raised"
	if a.State == llmr.AlertResolved {
		state = "cleared"
	} else {
		r.count(func(res *Result) { res.Alerts[string(a.Kind)]++ })
	}
	value := a.Threshold // the value that crossed it, or the threshold when the core has none
	if a.Value != nil {
		value = *a.Value
	}
	r.ev.Emit("alert", Event{"alert": string(a.Kind), "state": state, "value": value})
}
