package llmresilience

// Close racing with use, for every handle type: many goroutines call the handle while another
// closes it at a random moment. Every call must either work or return ErrClosed (RetryCall's
// Decide and RetryPolicy's Start, which return no error, panic with an error wrapping it), and
// everything must end: before the guard, the Limiter (whose Close set its pointer to nil
// unsynchronised) and the CAS-guarded Breaker could free the C object under a call in
// progress — a use-after-free that hung on a lock inside freed memory, and a data race that
// `go test -race` reports.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// closeRace runs use from `workers` goroutines, `rounds` times each, while Close runs after a
// random number of uses; use returns the call's error. It fails on an error other than
// ErrClosed, on a hang (60 s), and when no call saw the closed handle or none got through.
func closeRace(t *testing.T, name string, workers int, use func() error, closeFn func() error) {
	t.Helper()
	var ok, closed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, workers)
	rounds := 400
	if debugGC { // a GC before every C call (the llmr_debug tag): far slower, fewer rounds
		rounds = 20
	}
	// Close after an eighth to a half of the uses have started: some finish before it.
	total := workers * rounds
	closeAfter := int64(total/8 + rand.IntN(total*3/8))
	var calls atomic.Int64
	var closeOnce sync.Once
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Each worker runs its rounds, then goes on until it has seen the handle closed (a
			// busy machine may run every round before the closing goroutine is scheduled), up to
			// a bound that only a Close that never takes effect would reach.
			for i := 0; i < rounds*100; i++ {
				if calls.Add(1) == closeAfter {
					go closeOnce.Do(func() { closeFn() })
				}
				err := use()
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrClosed):
					closed.Add(1)
					if i >= rounds {
						return
					}
				default:
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		close(start)
		wg.Wait()
		closeOnce.Do(func() { closeFn() })
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: Close racing with use hung (60 s)", name)
	}
	close(errs)
	for err := range errs {
		t.Errorf("%s: unexpected error %v", name, err)
	}
	if ok.Load() == 0 || closed.Load() == 0 {
		t.Errorf("%s: %d calls worked and %d saw ErrClosed; the race was not exercised", name, ok.Load(), closed.Load())
	}
	// Use after Close: the typed error, every time; a second Close does nothing.
	if err := closeFn(); err != nil {
		t.Errorf("%s: second Close: %v", name, err)
	}
	if err := use(); !errors.Is(err, ErrClosed) {
		t.Errorf("%s: use after Close = %v, want ErrClosed", name, err)
	}
}

// recoverClosed turns a panic with an error into that error (Start and Decide panic on a
// closed handle: they have no error result).
func recoverClosed(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(error)
			if !ok {
				e = fmt.Errorf("panic: %v", r)
			}
			err = e
		}
	}()
	f()
	return nil
}

func TestCloseRacingWithUse(t *testing.T) {
	const workers = 32
	for i := range 5 { // several random close points per type
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			l, err := NewLimiter(LimiterSettings{Limit: 1000000, Period: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			var n atomic.Int64
			closeRace(t, "Limiter", workers, func() error {
				session := fmt.Sprint("s", n.Add(1)%64)
				if _, err := l.AllowN(session, 1); err != nil {
					return err
				}
				if _, err := l.Remaining(session); err != nil {
					return err
				}
				if err := l.BlockUntil(session, time.Now()); err != nil {
					return err
				}
				_, err := l.Snapshot()
				return err
			}, l.Close)

			b, err := NewBreaker(Settings{})
			if err != nil {
				t.Fatal(err)
			}
			closeRace(t, "Breaker", workers, func() error {
				p, err := b.Acquire()
				if err != nil {
					return err
				}
				if _, err := b.Record(p, Succeeded); err != nil {
					return err
				}
				_, err = b.Snapshot()
				return err
			}, b.Close)

			set, err := NewBreakerSet(Settings{}, 16)
			if err != nil {
				t.Fatal(err)
			}
			closeRace(t, "BreakerSet", workers, func() error {
				key := fmt.Sprint("m", n.Add(1)%32)
				p, err := set.AcquireAt(key, time.Now())
				if err != nil {
					return err
				}
				if _, err := set.RecordAt(key, p, Succeeded, time.Now()); err != nil {
					return err
				}
				_, err = set.Keys()
				return err
			}, set.Close)

			m, err := NewCreditMonitor(CreditSettings{})
			if err != nil {
				t.Fatal(err)
			}
			closeRace(t, "CreditMonitor", workers, func() error {
				bal := 10.0
				if _, err := m.Observe(CreditSnapshot{Credits: &CreditsInfo{TotalCredits: bal, TotalUsage: 1}}, time.Now()); err != nil {
					return err
				}
				if _, err := m.Status(); err != nil {
					return err
				}
				_, err := m.Snapshot()
				return err
			}, m.Close)

			counter, err := NewUpperBoundCounter()
			if err != nil {
				t.Fatal(err)
			}
			closeRace(t, "TokenCounter", workers, func() error {
				if _, err := counter.CountText("hello there"); err != nil {
					return err
				}
				if _, err := counter.CountMessages([]Message{{Role: RoleUser, Content: "hi"}}, nil); err != nil {
					return err
				}
				_, err := Trim(ContextSettings{ContextWindow: 8000}, TrimInput{Latest: Message{Role: RoleUser, Content: "hi"}}, counter)
				return err
			}, counter.Close)

			budget, err := NewRetryBudget(BudgetSettings{})
			if err != nil {
				t.Fatal(err)
			}
			other, err := NewRetryPolicy(RetrySettings{})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			closeRace(t, "RetryBudget", workers, func() error {
				budget.Deposit() // does nothing once closed
				_ = budget.Available()
				return recoverClosed(func() {
					c := other.Start(time.Now(), 1, budget)
					defer c.Close()
					c.Decide(Classification{Kind: KindTimeout, Retryable: true}, time.Now(), 0)
				})
			}, budget.Close)

			policy, err := NewRetryPolicy(RetrySettings{})
			if err != nil {
				t.Fatal(err)
			}
			closeRace(t, "RetryPolicy (Start and Decide)", workers, func() error {
				return recoverClosed(func() {
					c := policy.Start(time.Now(), 1, nil)
					defer c.Close()
					c.Decide(Classification{Kind: KindTimeout, Retryable: true}, time.Now(), 0)
				})
			}, policy.Close)
		})
	}
}
