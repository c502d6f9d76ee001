package llmresilience

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustLimiter(t testing.TB, s LimiterSettings) *Limiter {
	t.Helper()
	l, err := NewLimiter(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLimiterDefaultsAreTenAMinute(t *testing.T) {
	l := mustLimiter(t, LimiterSettings{})
	t0 := time.Now()
	for i := range 10 {
		v, err := l.AllowNAt("chat", 1, t0)
		if err != nil || !v.Allowed || v.Remaining != 9-i {
			t.Fatalf("check %d: %+v %v", i, v, err)
		}
	}
	v, err := l.AllowNAt("chat", 1, t0)
	if err != nil || v.Allowed || v.RetryIn != 6*time.Second {
		t.Fatalf("11th: %+v %v", v, err)
	}
	if !l.AllowAt("chat", t0.Add(6*time.Second)) {
		t.Fatal("allowed again after 6 s")
	}
	if n, err := l.RemainingAt("other", t0); err != nil || n != 10 {
		t.Fatalf("a fresh session has 10: %d %v", n, err)
	}
	if l.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (Remaining does not store)", l.Len())
	}
}

func TestLimiterTypedErrors(t *testing.T) {
	l := mustLimiter(t, LimiterSettings{Limit: 5})
	now := time.Now()
	for _, c := range []struct {
		session string
		n       int
		want    error
	}{
		{"", 1, ErrInvalidKey},
		{strings.Repeat("k", 257), 1, ErrInvalidKey},
		{"s", 0, ErrZeroUnits},
		{"s", -3, ErrZeroUnits},
		{"s", 6, ErrExceedsBurst},
		{"s", 1 << 40, ErrExceedsBurst},
	} {
		if _, err := l.AllowNAt(c.session, c.n, now); !errors.Is(err, c.want) {
			t.Errorf("AllowNAt(%q, %d) = %v, want %v", c.session[:min(len(c.session), 8)], c.n, err, c.want)
		}
	}
	if l.AllowAt("", now) {
		t.Error("Allow with an empty session")
	}
	// The C ABI takes UTF-8 keys only.
	if _, err := l.AllowNAt("\xff", 1, now); !errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("invalid UTF-8 session: %v", err)
	}
	if err := l.SettleAt("s", -1, 1, now); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("negative settle: %v", err)
	}
}

func TestLimiterBadSettingsListEveryProblem(t *testing.T) {
	_, err := NewLimiter(LimiterSettings{Limit: -1})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("negative limit: %v", err)
	}
	_, err = NewLimiter(LimiterSettings{Period: 40 * 24 * time.Hour, MaxKeys: 20_000_000})
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(ce.Problems, "period_ms") || !strings.Contains(ce.Problems, "max_keys") {
		t.Fatalf("two problems: %v", err)
	}
	if _, err := RestoreLimiter([]byte("{")); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad snapshot: %v", err)
	}
}

func TestLimiterReserveSettleBlockAndSnapshot(t *testing.T) {
	// Tokens per minute: 10 000, reserve an estimate, settle the real count.
	l := mustLimiter(t, LimiterSettings{Limit: 10_000})
	t0 := time.Now()
	r, err := l.ReserveAt("chat", 4000, t0)
	if err != nil || !r.Allowed || r.Remaining != 6000 {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	if err := r.SettleAt(1000, t0); err != nil {
		t.Fatal(err)
	}
	if n, _ := l.RemainingAt("chat", t0); n != 9000 {
		t.Fatalf("after a refund of 3000: %d", n)
	}
	if err := l.BlockUntilAt("chat", t0.Add(30*time.Second), t0); err != nil {
		t.Fatal(err)
	}
	v, _ := l.AllowNAt("chat", 1, t0.Add(29*time.Second))
	if v.Allowed || v.RetryIn != time.Second {
		t.Fatalf("blocked: %+v", v)
	}
	snap, err := l.Snapshot()
	if err != nil || !strings.Contains(string(snap), `"keys"`) || strings.Contains(string(snap), "chat") {
		t.Fatalf("snapshot %s: %v", snap, err)
	}
	r2, err := RestoreLimiter(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	for _, h := range []*Limiter{l, r2} {
		v, _ := h.AllowNAt("chat", 1, t0.Add(29*time.Second))
		if v.Allowed || v.RetryIn != time.Second {
			t.Fatalf("restored: %+v", v)
		}
	}
}

func TestLimiterWaitSleepsUntilAllowedOrCtxDone(t *testing.T) {
	l := mustLimiter(t, LimiterSettings{Limit: 1, Period: 50 * time.Millisecond})
	ctx := context.Background()
	start := time.Now()
	for range 3 {
		if err := l.Wait(ctx, "s"); err != nil {
			t.Fatal(err)
		}
	}
	// The first is immediate, the next two wait ~50 ms each.
	if took := time.Since(start); took < 95*time.Millisecond || took > 2*time.Second {
		t.Fatalf("3 waits at 1/50ms took %s", took)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	if err := l.Wait(short, "s"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past the ctx deadline: %v", err)
	}
	if err := l.WaitN(ctx, "s", 2); !errors.Is(err, ErrExceedsBurst) {
		t.Fatalf("WaitN above the burst: %v", err)
	}
}

func TestLimiterCloseIsIdempotent(t *testing.T) {
	l, err := NewLimiter(LimiterSettings{})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l.Close()
	if _, err := l.AllowN("s", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if l.Allow("s") || l.Len() != 0 {
		t.Fatal("a closed limiter allows nothing and holds nothing")
	}
	if _, err := l.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// 64 goroutines on one limiter and one session, on the real clock (run with -race): the
// allowed total never exceeds burst + rate · elapsed.
func TestLimiterSixtyFourGoroutines(t *testing.T) {
	l := mustLimiter(t, LimiterSettings{Limit: 1000, Period: time.Second, Burst: 20})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if l.Allow("one-shared-session") {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// 1 per ms, +1 for the millisecond the clock was read in.
	limit := 20 + elapsed.Milliseconds() + 1
	if got := allowed.Load(); got == 0 || got > limit {
		t.Fatalf("%d allowed in %s (limit %d)", got, elapsed, limit)
	}
}

func TestLibraryClockRoundTrips(t *testing.T) {
	for _, ms := range []uint64{0, 1, 1500, uint64(clockBaseMS), uint64(clockBaseMS) + 12345} {
		if got := clockMillis(timeOfMillis(ms)); got != ms {
			t.Errorf("clockMillis(timeOfMillis(%d)) = %d", ms, got)
		}
	}
	if d := int64(clockMillis(time.Now())) - time.Now().UnixMilli(); d < -5 || d > 5 {
		t.Errorf("the library clock is %d ms off Unix time", d)
	}
	// Floor, not truncation, before the base.
	if got := clockMillis(clockBase.Add(-time.Microsecond)); got != uint64(clockBaseMS)-1 {
		t.Errorf("1 µs before the base: %d", got)
	}
}

func ExampleLimiter() {
	// 10 messages per minute per chat session (the defaults).
	limiter, _ := NewLimiter(LimiterSettings{})
	defer limiter.Close()

	now := time.Now()
	session := "6281234567890@s.whatsapp.net"
	for range 10 {
		limiter.AllowAt(session, now)
	}
	v, _ := limiter.AllowNAt(session, 1, now)
	fmt.Printf("11th message: allowed=%v, retry in %s\n", v.Allowed, v.RetryIn)

	// The provider answered 429 with Retry-After: 30 for this session.
	_ = limiter.BlockUntilAt(session, now.Add(30*time.Second), now)
	v, _ = limiter.AllowNAt(session, 1, now.Add(6*time.Second))
	fmt.Printf("after 6 s: allowed=%v, retry in %s\n", v.Allowed, v.RetryIn)
	// Output:
	// 11th message: allowed=false, retry in 6s
	// after 6 s: allowed=false, retry in 24s
}
