package llmresilience

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Failure is an error with the classification Do decides on: wrap a failed response in it,
// with Classify's result, so that Do knows what went wrong (an error that is not a *Failure is
// classified with ClassifyTransport: no response arrived).
type Failure struct {
	// Err is the error itself.
	Err error
	// Classification is what the failure was (Classify or ClassifyAt of the response).
	Classification Classification
	// RequestTokens is the caller's count of the request that failed (0: unknown); it makes
	// a shrink-context target exact in the caller's measure.
	RequestTokens int
}

// Error implements error.
func (f *Failure) Error() string {
	if f.Err == nil {
		return f.Classification.String()
	}
	return f.Err.Error()
}

// Unwrap returns Err.
func (f *Failure) Unwrap() error { return f.Err }

// GiveUpError is what Do returns when the policy gave up: the decision (why) and the last
// attempt's error.
type GiveUpError struct {
	// Decision is the give-up decision; Decision.Reason says why.
	Decision Decision
	// Err is the last attempt's error.
	Err error
}

// Error implements error.
func (e *GiveUpError) Error() string {
	return "llm-resilience: " + e.Decision.String() + ": " + e.Err.Error()
}

// Unwrap returns the last attempt's error.
func (e *GiveUpError) Unwrap() error { return e.Err }

// Try describes one attempt of a call run by Do.
type Try struct {
	// Attempt is the attempt's number: 1 for the first.
	Attempt int
	// TargetTokens, when not 0, is the size the request must be shrunk to (in the caller's
	// own token count) before sending: the previous attempt overflowed the context.
	TargetTokens uint64
}

// Do runs fn until it succeeds, the policy gives up, or ctx is done, sleeping between attempts
// as each decision says. The call deposits into budget (which may be nil) and withdraws one
// retry per retry. The jitter seed is random.
//
// fn returns nil on success. A *Failure (possibly wrapped) carries the classification of a
// failed response; any other error is classified as a transport failure (ClassifyTransport).
// Do returns nil, a *GiveUpError (errors.As it for the reason; it unwraps to fn's error), or
// ctx.Err().
func (p *RetryPolicy) Do(ctx context.Context, budget *RetryBudget, fn func(ctx context.Context, try Try) error) error {
	call := p.Start(time.Now(), rand.Uint64(), budget)
	defer call.Close()
	try := Try{Attempt: 1}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := fn(ctx, try)
		if err == nil {
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		var f *Failure
		var c Classification
		tokens := 0
		if errors.As(err, &f) {
			c, tokens = f.Classification, f.RequestTokens
		} else {
			c = ClassifyTransport(err)
		}
		d := call.Decide(c, time.Now(), tokens)
		if d.Action == ActionGiveUp {
			return &GiveUpError{Decision: d, Err: err}
		}
		try = Try{Attempt: d.Attempt}
		if d.Action == ActionShrinkContext {
			try.TargetTokens = d.TargetTokens
		}
		if d.After <= 0 {
			continue
		}
		if timer == nil {
			timer = time.NewTimer(d.After)
		} else {
			timer.Reset(d.After)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}
