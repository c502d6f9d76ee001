package llmresilience

// Benchmarks of the breaker through cgo, side by side with an empty cgo call (the floor any
// cgo binding pays) and with github.com/sony/gobreaker/v2's two-step breaker (pure Go).
// Results and the command are in BENCHMARKS.md:
//
//	go test -run '^$' -bench 'Breaker|Cgo|Gobreaker' -benchmem -count 5 .

import (
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BenchmarkCgoNoop: one call to llmr_noop, a C ABI function that does nothing.
func BenchmarkCgoNoop(b *testing.B) {
	for b.Loop() {
		noop()
	}
}

// benchBreaker is a breaker that stays closed: only successes are recorded.
func benchBreaker(b *testing.B) *Breaker {
	br, err := NewBreaker(Settings{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br
}

// BenchmarkBreakerAcquire: AcquireAt alone (one cgo call), at a fixed time.
func BenchmarkBreakerAcquire(b *testing.B) {
	br := benchBreaker(b)
	now := time.Now()
	for b.Loop() {
		if _, err := br.AcquireAt(now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBreakerRecord: RecordAt alone (one cgo call): a success for a permit of the
// current generation, counted in the window each time.
func BenchmarkBreakerRecord(b *testing.B) {
	br := benchBreaker(b)
	now := time.Now()
	p, err := br.AcquireAt(now)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := br.RecordAt(p, Succeeded, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBreakerAcquireRecord: the allocation-free pair, AcquireAt + RecordAt (two cgo
// calls).
func BenchmarkBreakerAcquireRecord(b *testing.B) {
	br := benchBreaker(b)
	now := time.Now()
	for b.Loop() {
		p, err := br.AcquireAt(now)
		if err != nil {
			b.Fatal(err)
		}
		br.RecordAt(p, Succeeded, now)
	}
}

// BenchmarkBreakerAllowDone: the gobreaker-shaped pair, AllowAt + done (two cgo calls, the
// done closure, and time.Now inside done).
func BenchmarkBreakerAllowDone(b *testing.B) {
	br := benchBreaker(b)
	now := time.Now()
	for b.Loop() {
		done, err := br.AllowAt(now)
		if err != nil {
			b.Fatal(err)
		}
		done(Succeeded)
	}
}

// BenchmarkBreakerAllowDoneNow: Allow + done, both reading the clock (what a caller writes).
func BenchmarkBreakerAllowDoneNow(b *testing.B) {
	br := benchBreaker(b)
	for b.Loop() {
		done, err := br.Allow()
		if err != nil {
			b.Fatal(err)
		}
		done(Succeeded)
	}
}

// BenchmarkBreakerAcquireRecordParallel: the pair from GOMAXPROCS goroutines on one breaker.
func BenchmarkBreakerAcquireRecordParallel(b *testing.B) {
	br := benchBreaker(b)
	now := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := br.AcquireAt(now)
			if err != nil {
				b.Error(err)
				return
			}
			br.RecordAt(p, Succeeded, now)
		}
	})
}

// BenchmarkBreakerSetAcquireRecord: the pair on a keyed set, for a key already held.
func BenchmarkBreakerSetAcquireRecord(b *testing.B) {
	s, err := NewBreakerSet(Settings{}, 1000)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	now := time.Now()
	const key = "openrouter/anthropic/claude-sonnet-4"
	for b.Loop() {
		p, err := s.AcquireAt(key, now)
		if err != nil {
			b.Fatal(err)
		}
		s.RecordAt(key, p, Succeeded, now)
	}
}

// BenchmarkGobreakerTwoStep: gobreaker v2's TwoStepCircuitBreaker, Allow + done(nil).
func BenchmarkGobreakerTwoStep(b *testing.B) {
	cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{Name: "bench"})
	for b.Loop() {
		done, err := cb.Allow()
		if err != nil {
			b.Fatal(err)
		}
		done(nil)
	}
}

// BenchmarkGobreakerTwoStepParallel: the same from GOMAXPROCS goroutines.
func BenchmarkGobreakerTwoStepParallel(b *testing.B) {
	cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{Name: "bench"})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := cb.Allow()
			if err != nil {
				b.Error(err)
				return
			}
			done(nil)
		}
	})
}

// TestBreakerHotPathDoesNotAllocate: AcquireAt and RecordAt allocate nothing (admitted
// call, closed breaker).
func TestBreakerHotPathDoesNotAllocate(t *testing.T) {
	br, err := NewBreaker(Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	now := time.Now()
	var failed error
	allocs := testing.AllocsPerRun(200, func() {
		p, err := br.AcquireAt(now)
		if err == nil {
			_, err = br.RecordAt(p, Succeeded, now)
		}
		if err != nil {
			failed = err
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	if allocs != 0 && !debugGC {
		t.Errorf("AcquireAt + RecordAt allocate %.1f times per call", allocs)
	}
}
