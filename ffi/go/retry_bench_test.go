package llmresilience

import (
	"testing"
	"time"
)

// BenchmarkRetryDecide: one Decide that retries (an overload, full jitter, a budget
// withdrawal) on a call whose limits are set high enough never to run out.
func BenchmarkRetryDecide(b *testing.B) {
	p := mustPolicy(b, RetrySettings{MaxTotalRetries: 1 << 30, MaxRetries: map[Kind]int{KindOverloaded: 1 << 30},
		Deadline: -1})
	budget := mustBudget(b, BudgetSettings{MinRetriesPerSecond: 1 << 30})
	t := time.Now()
	c := p.Start(t, 1, budget)
	defer c.Close()
	failure := Classification{Kind: KindOverloaded, Retryable: true}
	b.ResetTimer()
	for i := range b.N {
		if d := c.Decide(failure, t.Add(time.Duration(i)*time.Microsecond), 0); d.Action != ActionRetry {
			b.Fatalf("decision %d: %v", i, d)
		}
	}
}

// BenchmarkRetryDecideGiveUp: one Decide that gives up at once (a permanent kind).
func BenchmarkRetryDecideGiveUp(b *testing.B) {
	p := mustPolicy(b, RetrySettings{})
	budget := mustBudget(b, BudgetSettings{})
	t := time.Now()
	c := p.Start(t, 1, budget)
	defer c.Close()
	failure := Classification{Kind: KindAuth}
	b.ResetTimer()
	for range b.N {
		c.Decide(failure, t, 0)
	}
}

// BenchmarkRetryCallLifecycle: what one failed-then-retried request costs: Start (a C handle
// and a budget deposit), one Decide, Close.
func BenchmarkRetryCallLifecycle(b *testing.B) {
	p := mustPolicy(b, RetrySettings{})
	budget := mustBudget(b, BudgetSettings{})
	t := time.Now()
	failure := Classification{Kind: KindServerError, Retryable: true}
	b.ResetTimer()
	for i := range b.N {
		now := t.Add(time.Duration(i) * time.Microsecond)
		c := p.Start(now, uint64(i), budget)
		c.Decide(failure, now, 0)
		c.Close()
	}
}
