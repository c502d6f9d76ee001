package llmresilience

/*
#include <stdlib.h>
#include "llm_resilience.h"
*/
import "C"

import (
	"errors"
	"sync/atomic"
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
		// The library's check of a freed handle: a call that raced with Close.
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

// handleGuard makes Close safe to call while other goroutines use the handle, at the cost of
// one atomic load per call. The work is split with the library:
//
//   - here, a closed flag set once by Close (compare-and-swap, so the C object is freed once)
//     and read by every method first: a call made after Close returns ErrClosed without
//     entering C; the handle's pointer field is never written after construction, so `go test
//     -race` sees no race between Close and a call;
//   - in the library, handles are registry tokens (ffi/src/handle.rs): a call that read the
//     flag just before Close freed the handle either finishes on its own reference to the
//     object (it cannot be pulled from under it) or gets LLMR_INVALID_HANDLE, which
//     handleError turns into ErrClosed.
//
// Before, a Close racing with a call freed the object under the call (Limiter: an
// unsynchronised pointer write besides; Breaker: a CAS flag alone cannot close the window
// between the flag's load and the C call): a use-after-free in the library, seen as a hang on
// a lock inside freed memory. Nothing here blocks, so no call can wait on Close or the reverse.
type handleGuard struct {
	closed atomic.Bool
}

// enter reports whether the handle is still open (the library catches a Close that lands
// after this check). leave marks the end of the call; both bracket every C call on a handle.
func (g *handleGuard) enter() bool { return !g.closed.Load() }

// leave ends a call that enter admitted (nothing to release: see handleGuard).
func (g *handleGuard) leave() {}

// close runs free once, the first time it is called; it reports whether it did.
func (g *handleGuard) close(free func()) bool {
	if !g.closed.CompareAndSwap(false, true) {
		return false
	}
	free()
	return true
}
