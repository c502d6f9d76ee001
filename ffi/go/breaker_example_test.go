package llmresilience_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	llmresilience "github.com/llm-resilience/llm-resilience/ffi/go"
)

// The Go service's rule: five consecutive provider failures open the breaker for 60 s. Zero
// fields take the documented defaults; FailureRatePercent -1 turns the failure-rate rule off.
func ExampleBreaker_Execute() {
	b, err := llmresilience.NewBreaker(llmresilience.Settings{
		ConsecutiveFailures: 5,
		FailureRatePercent:  -1,
		OpenTimeout:         60 * time.Second,
	})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	callProvider := func(ctx context.Context) error {
		// A real call would classify the HTTP response; a timeout is what a deadline gives.
		return context.DeadlineExceeded
	}
	for range 5 {
		b.Execute(context.Background(), callProvider)
	}
	err = b.Execute(context.Background(), callProvider)
	var open *llmresilience.OpenError
	fmt.Println(errors.Is(err, llmresilience.ErrOpenState), errors.As(err, &open), open.RetryIn > 59*time.Second)
	fmt.Println(b.State())
	// Output:
	// true true true
	// open
}

// The two-step form: acquire a permit, make the call, report how it ended. The At-twins take
// the time explicitly (here a fixed start, so the output is the same on every run).
func ExampleBreaker_AcquireAt() {
	b, _ := llmresilience.NewBreaker(llmresilience.Settings{ConsecutiveFailures: 1, FailureRatePercent: -1})
	defer b.Close()
	t0 := time.Now()

	p, _ := b.AcquireAt(t0)
	c := llmresilience.Classification{Kind: llmresilience.KindRateLimited, RetryAfter: 90 * time.Second, HasRetryAfter: true}
	rec, _ := b.RecordAt(p, llmresilience.OutcomeOf(c), t0)
	fmt.Println(rec.From, "->", rec.To)

	// The server asked for 90 s, longer than the 60 s default: the breaker stays open that long.
	_, err := b.AcquireAt(t0.Add(30 * time.Second))
	fmt.Println(err)
	// Output:
	// closed -> open
	// llm-resilience: circuit breaker is open; retry in 1m0s
}
