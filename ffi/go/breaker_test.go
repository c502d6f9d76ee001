package llmresilience

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustBreaker(t testing.TB, s Settings) *Breaker {
	t.Helper()
	b, err := NewBreaker(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBreakerZeroSettingsAreTheDocumentedDefaults(t *testing.T) {
	b := mustBreaker(t, Settings{})
	snap, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal(snap, &got); err != nil {
		t.Fatal(err)
	}
	want := `{"consecutive_failures":5,"counted_kinds":["rate-limited","timeout","overloaded","unavailable","server-error","network"],` +
		`"failure_rate":{"failure_percent":50,"min_calls":10,"slow_call_ms":null,"slow_percent":100,"window":{"calls":20,"type":"count"}},` +
		`"half_open_probes":1,"half_open_successes":1,"max_probe_wait_ms":30000,` +
		`"open_duration":{"base_ms":60000,"growth_percent":100,"max_ms":600000,"use_server_hint":true}}`
	text, _ := json.Marshal(got.Config)
	var a, w any
	json.Unmarshal(text, &a)
	json.Unmarshal([]byte(want), &w)
	if fmt.Sprint(a) != fmt.Sprint(w) {
		t.Errorf("zero Settings gave\n%s\nwant\n%s", text, want)
	}
}

func TestBreakerSettingsAreConverted(t *testing.T) {
	b := mustBreaker(t, Settings{
		ConsecutiveFailures: -1, FailureRateWindow: 30 * time.Second, FailureRateMinCalls: 3,
		FailureRatePercent: 40, SlowCall: 1500 * time.Microsecond, SlowCallPercent: 60,
		OpenTimeout: 20 * time.Minute, OpenTimeoutGrowthPercent: 200, IgnoreServerHint: true,
		HalfOpenProbes: 4, HalfOpenSuccesses: 2, MaxProbeWait: time.Second,
		CountedKinds: []Kind{KindTimeout},
	})
	snap, _ := b.Snapshot()
	for _, part := range []string{
		`"consecutive_failures":null`, `"window":{"type":"time","ms":30000}`, `"min_calls":3`,
		`"failure_percent":40`, `"slow_call_ms":2`, `"slow_percent":60`,
		`"base_ms":1200000`, `"growth_percent":200`, `"max_ms":1200000`, `"use_server_hint":false`,
		`"half_open_probes":4`, `"half_open_successes":2`, `"max_probe_wait_ms":1000`,
		`"counted_kinds":["timeout"]`,
	} {
		if !strings.Contains(string(snap), part) {
			t.Errorf("snapshot lacks %s: %s", part, snap)
		}
	}
	// No failure rate at all.
	b2 := mustBreaker(t, Settings{FailureRatePercent: -1})
	snap, _ = b2.Snapshot()
	if !strings.Contains(string(snap), `"failure_rate":null`) {
		t.Errorf("FailureRatePercent -1 did not turn the rule off: %s", snap)
	}
}

func TestBreakerInvalidSettingsListEveryProblem(t *testing.T) {
	_, err := NewBreaker(Settings{HalfOpenProbes: 5000, FailureRatePercent: 101, OpenTimeoutGrowthPercent: 50})
	var ce *ConfigError
	if !errors.Is(err, ErrInvalidConfig) || !errors.As(err, &ce) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	for _, field := range []string{"half_open_probes", "failure_percent", "growth_percent"} {
		if !strings.Contains(ce.Problems, field) {
			t.Errorf("%q not named in %q", field, ce.Problems)
		}
	}
	if _, err := NewBreaker(Settings{MaxProbeWait: -time.Second}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("negative duration: %v", err)
	}
	if _, err := NewBreaker(Settings{CountedKinds: []Kind{Kind(99)}}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad kind: %v", err)
	}
	if _, err := NewBreakerSet(Settings{}, 0); !errors.Is(err, ErrInvalidConfig) ||
		!strings.Contains(err.Error(), "max_keys") {
		t.Errorf("max_keys 0: %v", err)
	}
	if _, err := RestoreBreaker([]byte(`{"config":{}}`)); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("corrupt snapshot: %v", err)
	}
	if _, err := RestoreBreaker(nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("empty snapshot: %v", err)
	}
}

func TestBreakerRejectionsMatchTheSentinels(t *testing.T) {
	t0 := time.Now()
	var changes []string
	b := mustBreaker(t, Settings{ConsecutiveFailures: 1, OpenTimeout: time.Second,
		OnStateChange: func(from, to State) { changes = append(changes, from.String()+">"+to.String()) }})
	p, err := b.AcquireAt(t0)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := b.RecordAt(p, Outcome{Type: OutcomeFailure, Kind: KindUnavailable}, t0)
	if err != nil || !rec.Changed || rec.To != StateOpen {
		t.Fatalf("record: %+v %v", rec, err)
	}
	_, err = b.AcquireAt(t0.Add(400 * time.Millisecond))
	var oe *OpenError
	if !errors.Is(err, ErrOpenState) || errors.Is(err, ErrTooManyRequests) || !errors.As(err, &oe) {
		t.Fatalf("open: %v", err)
	}
	if !oe.HasRetryIn || oe.RetryIn != 600*time.Millisecond || oe.State != StateOpen {
		t.Errorf("open error: %+v", oe)
	}
	probe, err := b.AcquireAt(t0.Add(time.Second))
	if err != nil || !probe.Probe() {
		t.Fatalf("probe: %v", err)
	}
	_, err = b.AcquireAt(t0.Add(time.Second))
	if !errors.Is(err, ErrTooManyRequests) || errors.Is(err, ErrOpenState) {
		t.Fatalf("half-open full: %v", err)
	}
	if !strings.Contains(err.Error(), "retry in") {
		t.Errorf("message: %v", err)
	}
	b.RecordAt(probe, Succeeded, t0.Add(time.Second))
	if _, err := b.ForceOpenAt(t0.Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = b.AcquireAt(t0.Add(time.Hour))
	if !errors.As(err, &oe) || oe.State != StateForcedOpen || oe.HasRetryIn || !errors.Is(err, ErrOpenState) {
		t.Errorf("forced open: %v", err)
	}
	want := []string{"closed>open", "half-open>closed", "closed>forced-open"}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Errorf("OnStateChange saw %v, want %v", changes, want)
	}
	if s := b.StateAt(t0.Add(time.Hour)); s != StateForcedOpen || s.String() != "forced-open" {
		t.Errorf("state %v", s)
	}
	if State(42).String() != "State(42)" {
		t.Error(State(42).String())
	}
}

func TestBreakerOutcomes(t *testing.T) {
	cases := []struct {
		err  error
		want Outcome
	}{
		{nil, Succeeded},
		{context.Canceled, Ignored},
		{fmt.Errorf("wrapped: %w", context.Canceled), Ignored},
		{&ClassifiedError{Classification: Classification{Kind: KindRateLimited, RetryAfter: time.Second, HasRetryAfter: true}},
			Outcome{Type: OutcomeFailure, Kind: KindRateLimited, RetryAfter: time.Second, HasRetryAfter: true}},
		{fmt.Errorf("call: %w", &ClassifiedError{Classification: Classification{Kind: KindModeration}}), Failed(KindModeration)},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), Failed(KindNetwork)},
	}
	for _, c := range cases {
		if got := OutcomeOfError(c.err); got != c.want {
			t.Errorf("OutcomeOfError(%v) = %+v, want %+v", c.err, got, c.want)
		}
	}
	ce := &ClassifiedError{Classification: Classification{Kind: KindTimeout}, Err: context.DeadlineExceeded}
	if !errors.Is(ce, context.DeadlineExceeded) || !strings.Contains(ce.Error(), "timeout") {
		t.Errorf("ClassifiedError: %v", ce)
	}
	b := mustBreaker(t, Settings{})
	p, _ := b.Acquire()
	if _, err := b.Record(p, Outcome{Type: OutcomeType(9)}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad outcome type: %v", err)
	}
	if _, err := b.Record(p, Outcome{Type: OutcomeFailure, Kind: Kind(77)}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad kind: %v", err)
	}
}

func TestBreakerExecute(t *testing.T) {
	b := mustBreaker(t, Settings{ConsecutiveFailures: 2, FailureRatePercent: -1})
	ctx := context.Background()
	boom := &ClassifiedError{Classification: Classification{Kind: KindServerError}}
	ran := 0
	for range 2 {
		err := b.Execute(ctx, func(context.Context) error { ran++; return boom })
		if err != boom {
			t.Fatalf("Execute returned %v", err)
		}
	}
	if b.State() != StateOpen {
		t.Fatalf("two server errors: %v", b.State())
	}
	err := b.Execute(ctx, func(context.Context) error { ran++; return nil })
	if !errors.Is(err, ErrOpenState) || ran != 2 {
		t.Fatalf("open breaker ran fn: %v, ran %d", err, ran)
	}
	// A cancelled context is ignored, even when fn reports a failure; a panic is ignored too.
	b2 := mustBreaker(t, Settings{ConsecutiveFailures: 1, FailureRatePercent: -1})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	b2.Execute(cctx, func(context.Context) error { return boom })
	func() {
		defer func() { recover() }()
		b2.Execute(ctx, func(context.Context) error { panic("bug") })
	}()
	if c := b2.Counts(); c.State != StateClosed || c.ConsecutiveFailures != 0 {
		t.Fatalf("cancelled or panicking calls were counted: %+v", c)
	}
	done, err := b2.Allow()
	if err != nil {
		t.Fatal(err)
	}
	done(Failed(KindTimeout))
	if b2.State() != StateOpen {
		t.Errorf("done(failure) did not trip it: %v", b2.State())
	}
}

func TestBreakerSnapshotSurvivesARestart(t *testing.T) {
	t0 := time.Now()
	b := mustBreaker(t, Settings{ConsecutiveFailures: 1, OpenTimeout: time.Minute})
	p, _ := b.AcquireAt(t0)
	b.RecordAt(p, Failed(KindOverloaded), t0)
	snap, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r, err := RestoreBreaker(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, want := r.CountsAt(t0), b.CountsAt(t0); got != want {
		t.Errorf("restored counts %+v, want %+v", got, want)
	}
	var oe *OpenError
	if _, err := r.AcquireAt(t0.Add(10 * time.Second)); !errors.As(err, &oe) || oe.RetryIn != 50*time.Second {
		t.Errorf("restored breaker: %v", err)
	}
}

func TestBreakerSetKeys(t *testing.T) {
	s, err := NewBreakerSet(Settings{ConsecutiveFailures: 1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	if _, err := s.AcquireAt("", now); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("empty key: %v", err)
	}
	if _, err := s.AcquireAt(strings.Repeat("k", 257), now); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("long key: %v", err)
	}
	if _, err := s.AcquireAt("a\xffb", now); !errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("bad UTF-8 key: %v", err)
	}
	done, err := s.Allow("openai/gpt-4o")
	if err != nil {
		t.Fatal(err)
	}
	done(Failed(KindUnavailable))
	if _, err := s.Allow("openai/gpt-4o"); !errors.Is(err, ErrOpenState) {
		t.Errorf("key not open: %v", err)
	}
	if err := s.Execute(context.Background(), "anthropic/claude", func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	keys, err := s.Keys()
	if err != nil || fmt.Sprint(keys) != "[anthropic/claude openai/gpt-4o]" {
		t.Errorf("keys %v %v", keys, err)
	}
	snap, _ := s.Snapshot()
	r, err := RestoreBreakerSet(snap)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Allow("openai/gpt-4o"); !errors.Is(err, ErrOpenState) {
		t.Errorf("restored key not open: %v", err)
	}
	r.Close()
}

func TestBreakerCloseIsIdempotent(t *testing.T) {
	b, _ := NewBreaker(Settings{})
	b.Close()
	b.Close()
	if _, err := b.Allow(); !errors.Is(err, ErrClosed) {
		t.Errorf("Allow after Close: %v", err)
	}
	if _, err := b.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Errorf("Snapshot after Close: %v", err)
	}
	s, _ := NewBreakerSet(Settings{}, 1)
	s.Close()
	s.Close()
	if _, err := s.Allow("k"); !errors.Is(err, ErrClosed) {
		t.Errorf("set Allow after Close: %v", err)
	}
	// Unclosed handles are released by the garbage collector (runtime.AddCleanup).
	for range 100 {
		NewBreaker(Settings{})
	}
	runtime.GC()
}

// TestBreakerVectorRunnerCanFail: a wrong expectation is reported, so a passing vector run
// means something.
func TestBreakerVectorRunnerCanFail(t *testing.T) {
	bad := breakerCase{Name: "wrong", Config: json.RawMessage(`{}`), Steps: []json.RawMessage{
		json.RawMessage(`{"now_ms": 0, "op": "acquire", "expect": {"admitted": true, "probe": true}}`),
	}}
	if err := runBreakerCase(bad); err == nil {
		t.Fatal("a wrong expectation passed")
	}
}

// TestBreakerStress64Goroutines: 64 goroutines share one breaker (run under -race). The clock
// is a shared counter that only grows. Checked after every record: probes in flight never
// exceed HalfOpenProbes, the window never holds more failures than calls; at the end the
// breaker's rejection count equals the rejections the goroutines saw.
func TestBreakerStress64Goroutines(t *testing.T) {
	const goroutines, rounds, probes = 64, 400, 3
	b := mustBreaker(t, Settings{
		ConsecutiveFailures: 3, FailureRateWindowCalls: 20, FailureRateMinCalls: 10,
		OpenTimeout: 20 * time.Millisecond, OpenTimeoutGrowthPercent: 150, MaxOpenTimeout: 200 * time.Millisecond,
		HalfOpenProbes: probes, HalfOpenSuccesses: 2, MaxProbeWait: 50 * time.Millisecond,
	})
	var clock atomic.Uint64
	tick := func() time.Time { return timeOfMillis(clock.Add(1)) }
	var rejected, admitted, probesSeen, transitions atomic.Uint64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seed := uint64(g)*0x9E3779B97F4A7C15 | 1
			for range rounds {
				seed ^= seed << 13
				seed ^= seed >> 7
				seed ^= seed << 17
				p, err := b.AcquireAt(tick())
				if err != nil {
					var oe *OpenError
					if !errors.As(err, &oe) {
						errs <- err
						return
					}
					rejected.Add(1)
					continue
				}
				admitted.Add(1)
				if p.Probe() {
					probesSeen.Add(1)
				}
				o := Succeeded
				switch seed % 10 {
				case 0, 1, 2, 3:
					o = Failed(KindTimeout)
				case 4:
					o = Ignored
				}
				if seed%97 == 0 {
					continue // a lost permit: its probe slot must time out
				}
				now := tick()
				rec, err := b.RecordAt(p, o, now)
				if err != nil {
					errs <- err
					return
				}
				if rec.Changed {
					transitions.Add(1)
				}
				c := b.CountsAt(now)
				if c.ProbesInFlight > probes || c.WindowFailures > c.WindowCalls || c.WindowCalls > 20 {
					errs <- fmt.Errorf("inconsistent counts %+v", c)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	end := b.CountsAt(timeOfMillis(clock.Load()))
	if end.Rejected != rejected.Load() {
		t.Errorf("breaker counted %d rejections, goroutines saw %d", end.Rejected, rejected.Load())
	}
	if rejected.Load()+admitted.Load() != goroutines*rounds {
		t.Errorf("%d + %d calls, want %d", rejected.Load(), admitted.Load(), goroutines*rounds)
	}
	if end.TimesOpened == 0 || probesSeen.Load() == 0 || transitions.Load() == 0 {
		t.Errorf("the breaker did not go through its states: %+v, %d probes", end, probesSeen.Load())
	}
	t.Logf("%d admitted, %d rejected, %d probes, %d transitions, opened %d times",
		admitted.Load(), rejected.Load(), probesSeen.Load(), transitions.Load(), end.TimesOpened)
}
