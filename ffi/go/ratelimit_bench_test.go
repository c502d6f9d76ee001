package llmresilience

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// The limiter benchmarks compare the cgo call into the Rust GCRA limiter with
// golang.org/x/time/rate, on the same schedule: 1000 units per second, burst 1000, the clock
// advancing 1 ms per call, so that (nearly) every call is allowed on both sides. Run:
//
//	go test -run '^$' -bench 'Limiter|Rate|Retry|CgoNoop' -benchmem -count 5
//
// BENCHMARKS.md holds the results.

const benchKeys = 1000

func benchSessions() []string {
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = "6281234" + strconv.Itoa(100000+i) + "@s.whatsapp.net"
	}
	return keys
}

func benchLimiter(b *testing.B) *Limiter {
	l, err := NewLimiter(LimiterSettings{Limit: 1000, Period: time.Second, Burst: 1000, MaxKeys: 2 * benchKeys})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// BenchmarkLimiterAllowAtOneKey: llmr, one session.
func BenchmarkLimiterAllowAtOneKey(b *testing.B) {
	l := benchLimiter(b)
	t := time.Now()
	allowed := 0
	b.ResetTimer()
	for i := range b.N {
		if l.AllowAt("6281234567890@s.whatsapp.net", t.Add(time.Duration(i)*time.Millisecond)) {
			allowed++
		}
	}
	if allowed < b.N/2 {
		b.Fatalf("only %d of %d allowed", allowed, b.N)
	}
}

// BenchmarkRateAllowNOneKey: x/time/rate, one rate.Limiter.
func BenchmarkRateAllowNOneKey(b *testing.B) {
	l := rate.NewLimiter(1000, 1000)
	t := time.Now()
	allowed := 0
	b.ResetTimer()
	for i := range b.N {
		if l.AllowN(t.Add(time.Duration(i)*time.Millisecond), 1) {
			allowed++
		}
	}
	if allowed < b.N/2 {
		b.Fatalf("only %d of %d allowed", allowed, b.N)
	}
}

// BenchmarkLimiterAllowAtKeyed: llmr, 1000 sessions in turn (one limiter handles all keys).
func BenchmarkLimiterAllowAtKeyed(b *testing.B) {
	l := benchLimiter(b)
	keys := benchSessions()
	t := time.Now()
	b.ResetTimer()
	for i := range b.N {
		l.AllowAt(keys[i%benchKeys], t.Add(time.Duration(i)*time.Microsecond))
	}
}

// keyedRate is the usual Go way to key x/time/rate: a map of limiters behind a mutex.
type keyedRate struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func (k *keyedRate) allowAt(key string, t time.Time) bool {
	k.mu.Lock()
	l, ok := k.m[key]
	if !ok {
		l = rate.NewLimiter(1000, 1000)
		k.m[key] = l
	}
	k.mu.Unlock()
	return l.AllowN(t, 1)
}

// BenchmarkRateAllowNKeyed: x/time/rate, 1000 sessions in a map behind a mutex.
func BenchmarkRateAllowNKeyed(b *testing.B) {
	k := &keyedRate{m: map[string]*rate.Limiter{}}
	keys := benchSessions()
	t := time.Now()
	b.ResetTimer()
	for i := range b.N {
		k.allowAt(keys[i%benchKeys], t.Add(time.Duration(i)*time.Microsecond))
	}
}

// BenchmarkLimiterAllowKeyedParallel: llmr, 1000 sessions, all goroutines, real clock.
func BenchmarkLimiterAllowKeyedParallel(b *testing.B) {
	l := benchLimiter(b)
	keys := benchSessions()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(keys[i%benchKeys])
			i++
		}
	})
}

// BenchmarkRateAllowKeyedParallel: x/time/rate map behind a mutex, all goroutines, real clock.
func BenchmarkRateAllowKeyedParallel(b *testing.B) {
	k := &keyedRate{m: map[string]*rate.Limiter{}}
	keys := benchSessions()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k.allowAt(keys[i%benchKeys], time.Now())
			i++
		}
	})
}
