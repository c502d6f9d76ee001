package llmresilience

/*
#include "llm_resilience.h"

// The hot path keeps no pointer after it returns and never calls back into Go: its arguments
// can stay on the Go stack, and the call skips the callback bookkeeping.
#cgo noescape llmr_rate_limiter_check
#cgo nocallback llmr_rate_limiter_check
*/
import "C"

import (
	"context"
	"encoding/json"
	"math"
	"runtime"
	"time"
	"unsafe"
)

// LimiterSettings configures a Limiter. The zero value of every field means its documented
// default, so LimiterSettings{} is 10 messages per minute per session.
type LimiterSettings struct {
	// Limit is the number of units allowed per Period. Default 10.
	Limit int
	// Period is the window Limit applies to, at least 1 ms and at most 31 days (whole
	// milliseconds count). Default 1 minute.
	Period time.Duration
	// Burst is the number of units that may be spent at once after a quiet spell. Default:
	// Limit.
	Burst int
	// MaxKeys is the most sessions held at once (about 45 bytes each); beyond it a session
	// whose state equals a fresh one's, or else the least recently used, is forgotten.
	// Default 100 000; at most 10 000 000.
	MaxKeys int
	// HashSeed seeds the hash sessions are stored under. Set it to a secret random value if
	// session ids can be chosen by an attacker. Default 0.
	HashSeed uint64
}

// configJSON is the RateLimitConfig JSON the library reads; zero fields are left out so that
// the library's own defaults apply.
func (s LimiterSettings) configJSON() []byte {
	m := map[string]any{}
	if s.Limit != 0 {
		m["limit"] = s.Limit
	}
	if s.Period != 0 {
		m["period_ms"] = s.Period.Milliseconds()
	}
	if s.Burst != 0 {
		m["burst"] = s.Burst
	}
	if s.MaxKeys != 0 {
		m["max_keys"] = s.MaxKeys
	}
	if s.HashSeed != 0 {
		m["hash_seed"] = s.HashSeed
	}
	text, _ := json.Marshal(m) // a map of numbers always marshals
	return text
}

// Verdict is the answer to a rate-limit check.
type Verdict struct {
	// Allowed says whether the units were allowed (and spent).
	Allowed bool
	// Remaining is, when allowed, the number of units that could still be spent right now.
	Remaining int
	// RetryIn is, when denied, how long until the same request would be allowed (rounded up
	// to the millisecond). Nothing was spent.
	RetryIn time.Duration
}

// Limiter is a keyed rate limiter (GCRA: exact, O(1), bounded memory) over the Rust core: one
// limit per session (a chat, a user, an API key). It is safe for concurrent use.
//
// Every method that reads the clock has a twin ending in At that takes the time instead
// (Allow calls AllowAt(session, time.Now())): tests and replays drive the twins.
//
// Close releases the C handle; a Limiter that is garbage collected without Close is released
// by a cleanup. Close may run concurrently with other methods: a call in progress
// finishes safely, later calls return ErrClosed.
type Limiter struct {
	ptr     *C.LlmrRateLimiter
	g       handleGuard
	cleanup runtime.Cleanup
}

func newLimiter(ptr *C.LlmrRateLimiter) *Limiter {
	l := &Limiter{ptr: ptr}
	l.cleanup = runtime.AddCleanup(l, func(p *C.LlmrRateLimiter) { C.llmr_rate_limiter_free(p) }, ptr)
	return l
}

// NewLimiter creates a limiter. An invalid setting (a negative value, a Period under 1 ms, a
// Limit so high that Period/Limit is under 1 µs, …) is an error wrapping ErrInvalidConfig
// that lists every problem.
func NewLimiter(s LimiterSettings) (*Limiter, error) {
	var ptr *C.LlmrRateLimiter
	err := newFromJSON(s.configJSON(), func(p *C.char, n C.size_t, errOut **C.char) C.LlmrResult {
		return C.llmr_rate_limiter_new(p, n, &ptr, errOut)
	})
	if err != nil {
		return nil, err
	}
	return newLimiter(ptr), nil
}

// RestoreLimiter rebuilds a limiter from the bytes Snapshot returned (possibly in another
// process: the library clock stays close to Unix time across restarts).
func RestoreLimiter(snapshot []byte) (*Limiter, error) {
	var ptr *C.LlmrRateLimiter
	err := newFromJSON(snapshot, func(p *C.char, n C.size_t, errOut **C.char) C.LlmrResult {
		return C.llmr_rate_limiter_restore(p, n, &ptr, errOut)
	})
	if err != nil {
		return nil, err
	}
	return newLimiter(ptr), nil
}

// Close releases the limiter. Calling it again does nothing; other methods then return
// ErrClosed (Allow returns false).
func (l *Limiter) Close() error {
	l.g.close(func() {
		l.cleanup.Stop()
		C.llmr_rate_limiter_free(l.ptr)
	})
	return nil
}

// keyArg passes session to C without copying: cgo keeps the string's bytes in place for the
// duration of the call, and the library does not keep the pointer.
func keyArg(session string) (*C.char, C.size_t) {
	return (*C.char)(unsafe.Pointer(unsafe.StringData(session))), C.size_t(len(session))
}

// units checks n for the C ABI's uint32_t: below 1 is ErrZeroUnits, above 2³²−1 can never fit
// in a burst.
func units(n int) (C.uint32_t, error) {
	switch {
	case n < 1:
		return 0, ErrZeroUnits
	case n > math.MaxUint32:
		return 0, ErrExceedsBurst
	}
	return C.uint32_t(n), nil
}

// Allow spends one unit for session now, if the limit allows it. It reports false when
// denied, and also for an invalid session (empty or over 256 bytes) or a closed limiter; use
// AllowN to tell these apart.
func (l *Limiter) Allow(session string) bool { return l.AllowAt(session, time.Now()) }

// AllowAt is Allow at time t.
func (l *Limiter) AllowAt(session string, t time.Time) bool {
	v, err := l.AllowNAt(session, 1, t)
	return err == nil && v.Allowed
}

// AllowN asks to spend n units for session now. Allowed units are spent at once; a denial
// spends nothing and says when the same request would be allowed. Errors: ErrInvalidKey,
// ErrZeroUnits, ErrExceedsBurst (no wait would allow n), ErrClosed.
func (l *Limiter) AllowN(session string, n int) (Verdict, error) {
	return l.AllowNAt(session, n, time.Now())
}

// AllowNAt is AllowN at time t. It allocates nothing once the session is known.
func (l *Limiter) AllowNAt(session string, n int, t time.Time) (Verdict, error) {
	u, err := units(n)
	if err != nil {
		return Verdict{}, err
	}
	if !l.g.enter() {
		return Verdict{}, ErrClosed
	}
	if debugGC {
		runtime.GC()
	}
	key, keyLen := keyArg(session)
	var v C.LlmrVerdict
	r := C.llmr_rate_limiter_check(l.ptr, key, keyLen, u, C.uint64_t(clockMillis(t)), &v)
	l.g.leave()
	runtime.KeepAlive(l)
	runtime.KeepAlive(session)
	if r != C.LLMR_OK {
		return Verdict{}, handleError(r, nil)
	}
	return Verdict{
		Allowed:   bool(v.allowed),
		Remaining: int(v.remaining),
		RetryIn:   millis(uint64(v.retry_in_ms)),
	}, nil
}

// Wait blocks until one unit for session is allowed (and spends it), or ctx is done, in which
// case it returns ctx.Err() and spends nothing. It sleeps on a timer for exactly the wait
// each denial names.
func (l *Limiter) Wait(ctx context.Context, session string) error {
	return l.WaitN(ctx, session, 1)
}

// WaitN is Wait for n units. Errors other than ctx's are those of AllowN.
func (l *Limiter) WaitN(ctx context.Context, session string, n int) error {
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
		v, err := l.AllowNAt(session, n, time.Now())
		if err != nil {
			return err
		}
		if v.Allowed {
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(v.RetryIn)
		} else {
			timer.Reset(v.RetryIn)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// Reservation is an allowed estimate (of tokens, say) waiting to be settled with the real
// cost. See Limiter.Reserve.
type Reservation struct {
	// Verdict is the check's answer. Only an allowed reservation needs settling.
	Verdict
	l       *Limiter
	session string
	units   int
}

// Reserve checks an estimate of n units for session now, for limits whose real cost is only
// known afterwards (tokens per minute): spend the estimate, call, then Settle the real count.
// Errors as for AllowN.
func (l *Limiter) Reserve(session string, n int) (Reservation, error) {
	return l.ReserveAt(session, n, time.Now())
}

// ReserveAt is Reserve at time t.
func (l *Limiter) ReserveAt(session string, n int, t time.Time) (Reservation, error) {
	v, err := l.AllowNAt(session, n, t)
	if err != nil {
		return Reservation{}, err
	}
	return Reservation{Verdict: v, l: l, session: session, units: n}, nil
}

// Settle records the real cost of an allowed reservation now (see Limiter.Settle). A denied
// reservation spent nothing: settling it does nothing.
func (r Reservation) Settle(actual int) error { return r.SettleAt(actual, time.Now()) }

// SettleAt is Settle at time t.
func (r Reservation) SettleAt(actual int, t time.Time) error {
	if !r.Allowed || r.l == nil {
		return nil
	}
	return r.l.SettleAt(r.session, r.units, actual, t)
}

// Settle corrects a reservation now: reserved units were allowed for session, the call really
// cost actual. The difference is refunded (never beyond a fresh session's full burst) or
// debited (later checks wait longer). Negative or over 2³²−1 counts are ErrInvalidArgument.
func (l *Limiter) Settle(session string, reserved, actual int) error {
	return l.SettleAt(session, reserved, actual, time.Now())
}

// SettleAt is Settle at time t.
func (l *Limiter) SettleAt(session string, reserved, actual int, t time.Time) error {
	if reserved < 0 || actual < 0 || reserved > math.MaxUint32 || actual > math.MaxUint32 {
		return ErrInvalidArgument
	}
	if !l.g.enter() {
		return ErrClosed
	}
	if debugGC {
		runtime.GC()
	}
	key, keyLen := keyArg(session)
	r := C.llmr_rate_limiter_settle(l.ptr, key, keyLen, C.uint32_t(reserved), C.uint32_t(actual),
		C.uint64_t(clockMillis(t)))
	l.g.leave()
	runtime.KeepAlive(l)
	runtime.KeepAlive(session)
	return handleError(r, nil)
}

// BlockUntil denies session until until, e.g. after a provider's 429 with a retry hint
// (blocked := time.Now().Add(c.RetryAfter)). It never shortens an existing wait.
func (l *Limiter) BlockUntil(session string, until time.Time) error {
	return l.BlockUntilAt(session, until, time.Now())
}

// BlockUntilAt is BlockUntil at time t.
func (l *Limiter) BlockUntilAt(session string, until, t time.Time) error {
	if !l.g.enter() {
		return ErrClosed
	}
	if debugGC {
		runtime.GC()
	}
	key, keyLen := keyArg(session)
	r := C.llmr_rate_limiter_block_until(l.ptr, key, keyLen, C.uint64_t(clockMillis(until)),
		C.uint64_t(clockMillis(t)))
	l.g.leave()
	runtime.KeepAlive(l)
	runtime.KeepAlive(session)
	return handleError(r, nil)
}

// Remaining returns the units session could spend now without waiting. It spends nothing.
func (l *Limiter) Remaining(session string) (int, error) {
	return l.RemainingAt(session, time.Now())
}

// RemainingAt is Remaining at time t.
func (l *Limiter) RemainingAt(session string, t time.Time) (int, error) {
	if !l.g.enter() {
		return 0, ErrClosed
	}
	if debugGC {
		runtime.GC()
	}
	key, keyLen := keyArg(session)
	var n C.uint32_t
	r := C.llmr_rate_limiter_remaining(l.ptr, key, keyLen, C.uint64_t(clockMillis(t)), &n)
	l.g.leave()
	runtime.KeepAlive(l)
	runtime.KeepAlive(session)
	if err := handleError(r, nil); err != nil {
		return 0, err
	}
	return int(n), nil
}

// Len returns the number of sessions the limiter holds (0 after Close).
func (l *Limiter) Len() int {
	if !l.g.enter() {
		return 0
	}
	var n C.size_t
	C.llmr_rate_limiter_len(l.ptr, &n)
	l.g.leave()
	runtime.KeepAlive(l)
	return int(n)
}

// Snapshot exports the limiter's state as JSON: its settings, the latest time seen and each
// session's state under its seeded hash (session ids are not in it). RestoreLimiter reads it.
func (l *Limiter) Snapshot() ([]byte, error) {
	if !l.g.enter() {
		return nil, ErrClosed
	}
	var out *C.char
	r := C.llmr_rate_limiter_snapshot(l.ptr, &out)
	l.g.leave()
	runtime.KeepAlive(l)
	if err := handleError(r, nil); err != nil {
		return nil, err
	}
	return []byte(takeString(out)), nil
}
