package llmresilience

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func mustPolicy(t testing.TB, s RetrySettings) *RetryPolicy {
	t.Helper()
	p, err := NewRetryPolicy(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func mustBudget(t testing.TB, s BudgetSettings) *RetryBudget {
	t.Helper()
	b, err := NewRetryBudget(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestRetryDefaultsAndDecisions(t *testing.T) {
	p := mustPolicy(t, RetrySettings{Jitter: JitterNone})
	b := mustBudget(t, BudgetSettings{})
	t0 := time.Now()
	c := p.Start(t0, 1, b)
	defer c.Close()

	d := c.Decide(Classification{Kind: KindOverloaded, Retryable: true}, t0, 0)
	if d.Action != ActionRetry || d.After != 500*time.Millisecond || d.Attempt != 2 {
		t.Fatalf("first backoff: %v", d)
	}
	d = c.Decide(Classification{Kind: KindOverloaded, Retryable: true}, t0, 0)
	if d.After != time.Second || d.Attempt != 3 || d.String() != "retry after 1s (attempt 3)" {
		t.Fatalf("second backoff: %v", d)
	}
	d = c.Decide(Classification{Kind: KindAuth}, t0, 0)
	if d.Action != ActionGiveUp || d.Reason != ReasonPermanent || d.Kind != KindAuth {
		t.Fatalf("auth: %v", d)
	}
	if d.String() != "give-up: permanent (auth)" {
		t.Fatalf("String: %q", d.String())
	}
	hint := Classification{Kind: KindRateLimited, Retryable: true, HasRetryAfter: true, RetryAfter: 2 * time.Minute}
	d = c.Decide(hint, t0, 0)
	if d.Reason != ReasonWaitTooLong || d.Wait != 2*time.Minute || d.Ceiling != time.Minute {
		t.Fatalf("wait too long: %v", d)
	}
	hint.RetryAfter = 119 * time.Second / 2
	d = c.Decide(hint, t0.Add(time.Minute+30*time.Second), 0)
	if d.Reason != ReasonDeadline || !d.DeadlineAt.Equal(timeOfMillis(clockMillis(t0)).Add(2*time.Minute)) {
		t.Fatalf("deadline: %v", d)
	}
	overflow := Classification{Kind: KindContextOverflow, HasLimitTokens: true, LimitTokens: 1000,
		HasRequestedTokens: true, RequestedTokens: 2000}
	d = c.Decide(overflow, t0, 1800)
	if d.Action != ActionShrinkContext || d.TargetTokens != 855 || d.After != 0 {
		t.Fatalf("shrink: %v", d)
	}
	if got := b.AvailableAt(t0); got != 100-3 {
		t.Fatalf("budget after 3 retries: %d", got)
	}
}

func TestRetryNamesAreTheLibrarys(t *testing.T) {
	for a, want := range map[Action]string{ActionRetry: "retry", ActionShrinkContext: "shrink-context",
		ActionGiveUp: "give-up", Action(9): "invalid-action"} {
		if a.String() != want {
			t.Errorf("%d: %q", a, a.String())
		}
	}
	for r, want := range map[GiveUpReason]string{ReasonNone: "none", ReasonPermanent: "permanent",
		ReasonAttemptsExhausted: "attempts-exhausted", ReasonBudgetExhausted: "budget-exhausted",
		ReasonWaitTooLong: "wait-too-long", ReasonDeadline: "deadline", ReasonCannotShrink: "cannot-shrink"} {
		if r.String() != want {
			t.Errorf("%d: %q", r, r.String())
		}
	}
	if JitterDecorrelated.String() != "decorrelated" || Jitter(7).String() != "Jitter(7)" {
		t.Error("jitter names")
	}
}

func TestRetrySettingsNegativeMeansZero(t *testing.T) {
	p := mustPolicy(t, RetrySettings{MaxTotalRetries: -1, Deadline: -1})
	c := p.Start(time.Now(), 1, nil)
	defer c.Close()
	d := c.Decide(Classification{Kind: KindTimeout, Retryable: true}, time.Now(), 0)
	if d.Reason != ReasonAttemptsExhausted || d.Kind != KindTimeout || d.Retries != 0 {
		t.Fatalf("no retries allowed: %v", d)
	}
	b := mustBudget(t, BudgetSettings{MinRetriesPerSecond: -1, RetryPercent: -1})
	if n := b.AvailableAt(time.Now()); n != 0 {
		t.Fatalf("an empty budget: %d", n)
	}
	p2 := mustPolicy(t, RetrySettings{MaxRetries: map[Kind]int{KindTimeout: 1}})
	c2 := p2.Start(time.Now(), 1, b)
	defer c2.Close()
	if d := c2.Decide(Classification{Kind: KindTimeout, Retryable: true}, time.Now(), 0); d.Reason != ReasonBudgetExhausted {
		t.Fatalf("budget: %v", d)
	}
}

func TestRetryBadSettingsListEveryProblem(t *testing.T) {
	_, err := NewRetryPolicy(RetrySettings{BaseDelay: time.Second, MaxDelay: time.Millisecond, ShrinkPercent: 100,
		ShrinkMarginPercent: 60})
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ConfigError: %v", err)
	}
	for _, want := range []string{"max_delay_ms", "shrink_percent", "shrink_margin_percent"} {
		if !strings.Contains(ce.Problems, want) {
			t.Errorf("%q not in %q", want, ce.Problems)
		}
	}
	if _, err := NewRetryPolicy(RetrySettings{Jitter: Jitter(5)}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad jitter: %v", err)
	}
	if _, err := NewRetryPolicy(RetrySettings{MaxRetries: map[Kind]int{Kind(77): 1}}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad kind: %v", err)
	}
	if _, err := NewRetryBudget(BudgetSettings{Window: time.Millisecond, RetryPercent: 5000}); !errors.Is(err, ErrInvalidConfig) ||
		!strings.Contains(err.Error(), "window_ms") || !strings.Contains(err.Error(), "retry_percent") {
		t.Errorf("bad budget: %v", err)
	}
}

func TestRetrySameSeedSameJitterAndUnknownKind(t *testing.T) {
	p := mustPolicy(t, RetrySettings{})
	now := time.Now()
	var delays [2]time.Duration
	for i := range delays {
		c := p.Start(now, 42, nil)
		delays[i] = c.Decide(Classification{Kind: KindServerError, Retryable: true}, now, 0).After
		c.Close()
	}
	if delays[0] != delays[1] || delays[0] > 500*time.Millisecond {
		t.Fatalf("seeded full jitter: %v", delays)
	}
	c := p.Start(now, 1, nil)
	defer c.Close()
	if d := c.Decide(Classification{Kind: Kind(99), Retryable: true}, now, 0); d.Action != ActionGiveUp || d.Kind != KindUnknown {
		t.Fatalf("a kind outside Kinds: %v", d)
	}
}

func TestRetryCloseIsIdempotentAndUseAfterClosePanics(t *testing.T) {
	p, _ := NewRetryPolicy(RetrySettings{})
	b, _ := NewRetryBudget(BudgetSettings{})
	c := p.Start(time.Now(), 1, b)
	c.Close()
	c.Close()
	b.Close()
	b.Close()
	if b.AvailableAt(time.Now()) != 0 {
		t.Error("a closed budget has nothing available")
	}
	defer func() {
		if r := recover(); r == nil || !errors.Is(r.(error), ErrClosed) {
			t.Fatalf("Decide on a closed call: %v", r)
		}
		p.Close()
		p.Close()
	}()
	c.Decide(Classification{Kind: KindTimeout}, time.Now(), 0)
}

func TestRetryDoRetriesShrinksAndGivesUp(t *testing.T) {
	p := mustPolicy(t, RetrySettings{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond})
	ctx := context.Background()

	// Two overloads, then success.
	var tries []Try
	err := p.Do(ctx, nil, func(ctx context.Context, try Try) error {
		tries = append(tries, try)
		if len(tries) < 3 {
			return &Failure{Err: errors.New("529"), Classification: Classification{Kind: KindOverloaded, Retryable: true}}
		}
		return nil
	})
	if err != nil || len(tries) != 3 || tries[2].Attempt != 3 {
		t.Fatalf("retried to success: %v %v", err, tries)
	}

	// A context overflow: the next try carries the shrink target.
	tries = nil
	err = p.Do(ctx, nil, func(ctx context.Context, try Try) error {
		tries = append(tries, try)
		if try.Attempt == 1 {
			return fmt.Errorf("call: %w", &Failure{Err: errors.New("too long"), RequestTokens: 1000,
				Classification: Classification{Kind: KindContextOverflow}})
		}
		return nil
	})
	if err != nil || len(tries) != 2 || tries[1].TargetTokens != 700 {
		t.Fatalf("shrink: %v %v", err, tries)
	}

	// A permanent failure gives up at once, with the reason and the error.
	sentinel := errors.New("401")
	err = p.Do(ctx, nil, func(ctx context.Context, try Try) error {
		return &Failure{Err: sentinel, Classification: Classification{Kind: KindAuth}}
	})
	var gu *GiveUpError
	if !errors.As(err, &gu) || gu.Decision.Reason != ReasonPermanent || !errors.Is(err, sentinel) {
		t.Fatalf("permanent: %v", err)
	}

	// A plain error is a transport failure: retried, then given up when attempts run out.
	n := 0
	err = p.Do(ctx, nil, func(ctx context.Context, try Try) error {
		n++
		return errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	})
	if !errors.As(err, &gu) || gu.Decision.Reason != ReasonAttemptsExhausted || gu.Decision.Kind != KindNetwork || n != 4 {
		t.Fatalf("network: %d tries, %v", n, err)
	}

	// A cancelled context ends the wait.
	slow := mustPolicy(t, RetrySettings{BaseDelay: time.Hour, MaxDelay: time.Hour, Jitter: JitterNone, Deadline: -1})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	err = slow.Do(cctx, nil, func(ctx context.Context, try Try) error {
		return &Failure{Classification: Classification{Kind: KindTimeout, Retryable: true}}
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx: %v", err)
	}
}

func ExampleRetryCall_Decide() {
	policy, _ := NewRetryPolicy(RetrySettings{})
	defer policy.Close()
	budget, _ := NewRetryBudget(BudgetSettings{})
	defer budget.Close()

	start := time.Now()
	call := policy.Start(start, 7, budget)
	defer call.Close()
	// The provider said 429 with Retry-After: 2.
	limited := Classification{Kind: KindRateLimited, Retryable: true, HasRetryAfter: true, RetryAfter: 2 * time.Second}
	fmt.Println(call.Decide(limited, start, 0))
	// Then the request no longer fit the model's window of 8192 tokens.
	overflow := Classification{Kind: KindContextOverflow, HasLimitTokens: true, LimitTokens: 8192,
		HasRequestedTokens: true, RequestedTokens: 9000}
	fmt.Println(call.Decide(overflow, start.Add(2*time.Second), 9000))
	// Then the API key was revoked.
	fmt.Println(call.Decide(Classification{Kind: KindAuth}, start.Add(3*time.Second), 0))
	// Output:
	// retry after 2s (attempt 2)
	// shrink-context to 7782 tokens after 0s (attempt 3)
	// give-up: permanent (auth)
}
