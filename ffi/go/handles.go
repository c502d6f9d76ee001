package llmresilience

/*
#include <stdlib.h>
#include "llm_resilience.h"
*/
import "C"

import (
	"errors"
	"sync"
	"time"
	"unsafe"
)

// Shared by the handle types (Limiter, RetryPolicy, RetryBudget, the breakers): the clock
// conversion, the errors of the issue-3 result codes, and JSON configs passed to C.

// clockBase anchors the library's millisecond clock: now_ms = Unix ms at process start + the
// monotonic time elapsed since. Within a process it never jumps (it follows Go's monotonic
// clock when the time.Time has one); across restarts it stays close to Unix time, so a
// snapshot taken by one process still means the same instants in the next.
var (
	clockBase   = time.Now()
	clockBaseMS = clockBase.UnixMilli()
)

// clockMillis converts t to the library's clock (milliseconds; 0 for times before 1970).
func clockMillis(t time.Time) uint64 {
	d := t.Sub(clockBase)
	ms := int64(d / time.Millisecond)
	if d < 0 && d%time.Millisecond != 0 {
		ms-- // floor, not truncation, so that every instant maps to the ms it falls in
	}
	ms += clockBaseMS
	if ms < 0 {
		return 0
	}
	return uint64(ms)
}

// timeOfMillis is the inverse of clockMillis: the time.Time (with a monotonic reading,
// derived from clockBase) that clockMillis maps to ms. Tests and replays use it to drive the At-twins.
func timeOfMillis(ms uint64) time.Time {
	return clockBase.Add(time.Duration(int64(ms)-clockBaseMS) * time.Millisecond)
}

// Errors of the result codes added for the handle types (see LlmrResult).
var (
	// ErrInvalidConfig: a config or snapshot was rejected. The error returned wraps it in a
	// *ConfigError that lists every problem.
	ErrInvalidConfig = errors.New("llm-resilience: invalid config")
	// ErrInvalidKey: a key (session, model or provider) was empty or longer than 256 bytes.
	ErrInvalidKey = errors.New("llm-resilience: key empty or longer than 256 bytes")
	// ErrZeroUnits: a rate-limit check asked for zero units.
	ErrZeroUnits = errors.New("llm-resilience: a rate-limit check needs at least 1 unit")
	// ErrExceedsBurst: a rate-limit check asked for more units than the burst; no wait would
	// allow it.
	ErrExceedsBurst = errors.New("llm-resilience: more units than the burst")
	// ErrInvalidArgument: an enum value outside its documented set (a bug in this package).
	ErrInvalidArgument = errors.New("llm-resilience: enum argument out of range")
	// ErrClosed: the handle was used after Close.
	ErrClosed = errors.New("llm-resilience: handle used after Close")
)

// ConfigError is a rejected config or snapshot: Problems is the library's message naming
// every problem. errors.Is(err, ErrInvalidConfig) holds.
type ConfigError struct {
	Problems string
}

// Error implements error.
func (e *ConfigError) Error() string {
	return "llm-resilience: invalid config: " + e.Problems
}

// Unwrap makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// handleError turns an LlmrResult of a handle function into a Go error (nil for LLMR_OK).
// message is the library's error_out string (may be NULL); it is not freed here.
func handleError(r C.LlmrResult, message *C.char) error {
	switch uint32(r) {
	case C.LLMR_INVALID_CONFIG:
		problems := "(no message)"
		if message != nil {
			problems = C.GoString(message)
		}
		return &ConfigError{Problems: problems}
	case C.LLMR_INVALID_KEY:
		return ErrInvalidKey
	case C.LLMR_ZERO_UNITS:
		return ErrZeroUnits
	case C.LLMR_EXCEEDS_BURST:
		return ErrExceedsBurst
	case C.LLMR_INVALID_ARGUMENT:
		return ErrInvalidArgument
	case C.LLMR_INVALID_HANDLE:
		// The library's own check of a freed handle (the guard keeps Go from getting here).
		return ErrClosed
	default:
		return resultError(uint32(r))
	}
}

// cJSON copies text into C memory for a *_new or *_restore call; free it with C.free.
// The library reads it only during the call.
func cJSON(text []byte) (*C.char, C.size_t) {
	return (*C.char)(C.CBytes(text)), C.size_t(len(text))
}

// newFromJSON runs a constructor that takes (json, len, out, error_out) and frees the JSON
// copy and the error string. It exists so each handle type does this the same way.
func newFromJSON(text []byte, ctor func(p *C.char, n C.size_t, errOut **C.char) C.LlmrResult) error {
	p, n := cJSON(text)
	defer C.free(unsafe.Pointer(p))
	var message *C.char
	r := ctor(p, n, &message)
	defer C.llmr_string_free(message)
	if err := handleError(r, message); err != nil {
		return err
	}
	return nil
}

// takeString copies a library-owned string into Go and frees it.
func takeString(s *C.char) string {
	defer C.llmr_string_free(s)
	return C.GoString(s)
}

// handleGuard makes Close safe to call while other goroutines use the handle. Every method
// enters the guard around its C call; Close takes it exclusively, so it waits for the calls in
// progress (each is short: the library never blocks) and then frees the C object, while the
// calls that come later see the handle closed and return ErrClosed. Without it, a Close racing
// with a call freed the object under the call: a use-after-free in the library, seen as a
// hang on a lock inside freed memory. A plain closed flag (even set by a compare-and-swap) is
// not enough: a call can load the flag, then Close frees, then the call goes on.
//
// A method must leave the guard before it runs user code (a callback), and must not enter
// the same guard twice (a read lock is not re-entrant while Close waits).
type handleGuard struct {
	mu     sync.RWMutex
	closed bool
}

// enter reports whether the handle is open; if so the caller must call leave after its C call.
func (g *handleGuard) enter() bool {
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return false
	}
	return true
}

// leave ends a call that enter admitted.
func (g *handleGuard) leave() { g.mu.RUnlock() }

// close runs free once, after the calls in progress have left; it reports whether it did.
func (g *handleGuard) close(free func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.closed = true
	free()
	return true
}
