package llmresilience

/*
#include <stdlib.h>
#include "llm_resilience.h"

// The hot path neither keeps the pointers it is given nor calls back into Go: cgo can then
// leave the Go arguments on the stack and skip the callback bookkeeping (Go 1.24+).
#cgo noescape llmr_breaker_acquire
#cgo nocallback llmr_breaker_acquire
#cgo noescape llmr_breaker_record
#cgo nocallback llmr_breaker_record
#cgo noescape llmr_breaker_set_acquire
#cgo nocallback llmr_breaker_set_acquire
#cgo noescape llmr_breaker_set_record
#cgo nocallback llmr_breaker_set_record
#cgo noescape llmr_breaker_state
#cgo nocallback llmr_breaker_state
#cgo noescape llmr_breaker_counts
#cgo nocallback llmr_breaker_counts
#cgo nocallback llmr_noop
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"
	"unsafe"
)

// State is a circuit breaker's state. The values are those of the C ABI's LlmrBreakerState.
type State uint32

// The breaker states.
const (
	// StateClosed: calls flow; outcomes are counted.
	StateClosed State = C.LLMR_BREAKER_STATE_CLOSED
	// StateOpen: calls are rejected (ErrOpenState) until the open period ends.
	StateOpen State = C.LLMR_BREAKER_STATE_OPEN
	// StateHalfOpen: a few probe calls are let through to test recovery; the others are
	// rejected (ErrTooManyRequests).
	StateHalfOpen State = C.LLMR_BREAKER_STATE_HALF_OPEN
	// StateForcedOpen: every call is rejected until Reset (an operator's switch).
	StateForcedOpen State = C.LLMR_BREAKER_STATE_FORCED_OPEN
	// StateDisabled: every call is admitted and nothing is counted until Reset.
	StateDisabled State = C.LLMR_BREAKER_STATE_DISABLED
)

// String returns the kebab-case name used on every surface ("half-open"), or "State(N)".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	case StateForcedOpen:
		return "forced-open"
	case StateDisabled:
		return "disabled"
	}
	return fmt.Sprintf("State(%d)", uint32(s))
}

// Sentinel errors of the breaker. A rejected call returns an *OpenError, which matches one of
// them with errors.Is and carries when to try again. (Config, key and closed-handle errors
// are the shared ErrInvalidConfig, ErrInvalidKey and ErrClosed.)
var (
	// ErrOpenState: the breaker is open (or forced open) and rejects calls.
	ErrOpenState = errors.New("llm-resilience: circuit breaker is open")
	// ErrTooManyRequests: the breaker is half-open and every probe slot is taken.
	ErrTooManyRequests = errors.New("llm-resilience: circuit breaker is half-open and its probe slots are taken")
)

// OpenError is the error of a rejected call. errors.Is(err, ErrOpenState) holds when the
// breaker is open or forced open, errors.Is(err, ErrTooManyRequests) when it is half-open.
type OpenError struct {
	// State is the state that rejected the call.
	State State
	// RetryIn is how long until a call may be admitted; valid only if HasRetryIn (a forced-open
	// breaker has no timer).
	RetryIn time.Duration
	// HasRetryIn says whether RetryIn is known.
	HasRetryIn bool
}

// Error says why the call was rejected and, if known, when to try again.
func (e *OpenError) Error() string {
	what := ErrOpenState.Error()
	if e.State == StateHalfOpen {
		what = ErrTooManyRequests.Error()
	} else if e.State == StateForcedOpen {
		what += " (forced)"
	}
	if e.HasRetryIn {
		return fmt.Sprintf("%s; retry in %s", what, e.RetryIn)
	}
	return what
}

// Is matches ErrTooManyRequests for a half-open rejection and ErrOpenState otherwise.
func (e *OpenError) Is(target error) bool {
	if e.State == StateHalfOpen {
		return target == ErrTooManyRequests
	}
	return target == ErrOpenState
}

// OutcomeType says how an admitted call ended. The values are those of the C ABI's
// LlmrOutcome.
type OutcomeType uint32

// The outcome types.
const (
	// OutcomeSuccess: the provider answered.
	OutcomeSuccess OutcomeType = C.LLMR_OUTCOME_SUCCESS
	// OutcomeFailure: the call failed with a Kind; counted only if the breaker counts that
	// kind (see Settings.CountedKinds).
	OutcomeFailure OutcomeType = C.LLMR_OUTCOME_FAILURE
	// OutcomeIgnored: the caller cancelled, or the result says nothing about the provider.
	OutcomeIgnored OutcomeType = C.LLMR_OUTCOME_IGNORED
)

// Outcome is how an admitted call ended, as the breaker needs to know it. Build it with
// Succeeded, Ignored, Failed, OutcomeOf or OutcomeOfError.
type Outcome struct {
	// Type is success, failure or ignored.
	Type OutcomeType
	// Kind is the failure's kind (for OutcomeFailure).
	Kind Kind
	// RetryAfter is the server's retry hint, valid only if HasRetryAfter; a hint longer than
	// the open period keeps the breaker open longer (unless Settings.IgnoreServerHint).
	RetryAfter time.Duration
	// HasRetryAfter says whether the failure carried a retry hint.
	HasRetryAfter bool
}

// Succeeded is the outcome of a call the provider answered.
var Succeeded = Outcome{Type: OutcomeSuccess}

// Ignored is the outcome of a call that says nothing about the provider (cancelled by the
// caller, or failed for a reason of the caller's own).
var Ignored = Outcome{Type: OutcomeIgnored}

// Failed is the outcome of a call that failed with kind, without a retry hint.
func Failed(kind Kind) Outcome {
	return Outcome{Type: OutcomeFailure, Kind: kind}
}

// OutcomeOf is the outcome of a call that failed as c says (its kind and retry hint).
func OutcomeOf(c Classification) Outcome {
	return Outcome{Type: OutcomeFailure, Kind: c.Kind, RetryAfter: c.RetryAfter, HasRetryAfter: c.HasRetryAfter}
}

// ClassifiedError is an error that carries its Classification, so that Execute (and
// OutcomeOfError) need not guess the kind from the text. Return one from the function given
// to Execute when the failure was an HTTP response you classified.
type ClassifiedError struct {
	// Classification says what the failure was.
	Classification Classification
	// Err is the underlying error, if any.
	Err error
}

// Error returns the classification (and the underlying error, if any) on one line.
func (e *ClassifiedError) Error() string {
	if e.Err != nil {
		return e.Classification.String() + ": " + e.Err.Error()
	}
	return e.Classification.String()
}

// Unwrap returns the underlying error.
func (e *ClassifiedError) Unwrap() error { return e.Err }

// OutcomeOfError is the outcome of a call that returned err: nil is a success; a cancellation
// (errors.Is(err, context.Canceled)) is ignored; an error wrapping a *ClassifiedError fails
// with its classification; any other error is classified by its text (ClassifyTransport), so
// a deadline counts as a timeout and a refused connection as a network failure, while an
// error the library does not recognise is KindUnknown, which breakers do not count by default.
func OutcomeOfError(err error) Outcome {
	if err == nil {
		return Succeeded
	}
	if errors.Is(err, context.Canceled) {
		return Ignored
	}
	var ce *ClassifiedError
	if errors.As(err, &ce) {
		return OutcomeOf(ce.Classification)
	}
	return OutcomeOf(ClassifyTransport(err))
}

// Settings configures a Breaker. The zero value is valid: every zero field takes the default
// documented on it (the C ABI's BreakerConfig defaults: trip after 5 consecutive failures or
// 50 % failures of the last 20 calls, open 60 s, one probe, one success to close).
type Settings struct {
	// ConsecutiveFailures trips the breaker after this many counted failures in a row.
	// 0: 5. Negative: this rule is off.
	ConsecutiveFailures int

	// FailureRatePercent trips the breaker when counted failures are at least this percentage
	// (1..100) of the calls in the window. 0: 50. Negative: the failure-rate rule is off (and
	// so is the slow-call rule, which shares its window).
	FailureRatePercent int
	// FailureRateWindowCalls is the window's size in calls (1..10000), used when
	// FailureRateWindow is 0. 0: 20.
	FailureRateWindowCalls int
	// FailureRateWindow, when positive, makes the window time-based: the calls of the last
	// FailureRateWindow (at least 10 ms).
	FailureRateWindow time.Duration
	// FailureRateMinCalls: no rate is judged before the window holds this many calls. 0: 10.
	FailureRateMinCalls int
	// SlowCall, when positive, counts a call that took at least this long as slow. 0: slowness
	// is not judged.
	SlowCall time.Duration
	// SlowCallPercent trips the breaker when slow calls are at least this percentage (1..100)
	// of the window. 0: 100.
	SlowCallPercent int

	// OpenTimeout is how long the breaker stays open the first time. 0: 60 s.
	OpenTimeout time.Duration
	// OpenTimeoutGrowthPercent multiplies the open period on each re-open (a failed probe):
	// 100 keeps it fixed, 200 doubles it (100..1000). 0: 100.
	OpenTimeoutGrowthPercent int
	// MaxOpenTimeout caps the open period. 0: 10 minutes, or OpenTimeout if that is longer.
	MaxOpenTimeout time.Duration
	// IgnoreServerHint: when false (the default), a failure whose server retry hint is longer
	// than the open period keeps the breaker open that long (up to MaxOpenTimeout).
	IgnoreServerHint bool

	// HalfOpenProbes is how many probe calls a half-open breaker admits at once (1..1000).
	// 0: 1.
	HalfOpenProbes int
	// HalfOpenSuccesses is how many successful probes close the breaker. 0: 1.
	HalfOpenSuccesses int
	// MaxProbeWait frees the slot of a probe that has not reported after this long. 0: 30 s.
	MaxProbeWait time.Duration

	// CountedKinds are the failure kinds that count against the provider. nil: rate-limited,
	// timeout, overloaded, unavailable, server-error, network. (A non-nil empty slice counts
	// nothing.)
	CountedKinds []Kind

	// OnStateChange, if set, is called after a recorded outcome or an operator switch changed
	// the state (not for the open → half-open change, which happens when a call is admitted
	// after the open period: see State). It runs on the caller's goroutine, outside any lock.
	OnStateChange func(from, to State)
}

// durationMs converts a positive duration to whole milliseconds, rounding up so that a
// sub-millisecond setting does not become 0.
func durationMs(d time.Duration) uint64 {
	return uint64((d + time.Millisecond - 1) / time.Millisecond)
}

// configJSON converts the settings to the core's BreakerConfig JSON. Only the fields that are
// set are written, so the core's defaults are the one source of the documented defaults;
// out-of-range values are passed through for the core to reject with a precise message.
func (s Settings) configJSON() ([]byte, error) {
	cfg := map[string]any{}
	switch {
	case s.ConsecutiveFailures < 0:
		cfg["consecutive_failures"] = nil
	case s.ConsecutiveFailures > 0:
		cfg["consecutive_failures"] = s.ConsecutiveFailures
	}
	if s.FailureRatePercent < 0 {
		cfg["failure_rate"] = nil
	} else {
		rate := map[string]any{}
		if s.FailureRatePercent > 0 {
			rate["failure_percent"] = s.FailureRatePercent
		}
		if s.FailureRateWindow > 0 {
			rate["window"] = map[string]any{"type": "time", "ms": durationMs(s.FailureRateWindow)}
		} else if s.FailureRateWindowCalls != 0 {
			rate["window"] = map[string]any{"type": "count", "calls": s.FailureRateWindowCalls}
		}
		if s.FailureRateMinCalls != 0 {
			rate["min_calls"] = s.FailureRateMinCalls
		}
		if s.SlowCall > 0 {
			rate["slow_call_ms"] = durationMs(s.SlowCall)
		}
		if s.SlowCallPercent != 0 {
			rate["slow_percent"] = s.SlowCallPercent
		}
		cfg["failure_rate"] = rate
	}
	open := map[string]any{"use_server_hint": !s.IgnoreServerHint}
	if s.OpenTimeout != 0 {
		open["base_ms"] = durationMs(s.OpenTimeout)
	}
	if s.OpenTimeoutGrowthPercent != 0 {
		open["growth_percent"] = s.OpenTimeoutGrowthPercent
	}
	switch {
	case s.MaxOpenTimeout != 0:
		open["max_ms"] = durationMs(s.MaxOpenTimeout)
	case s.OpenTimeout > 10*time.Minute:
		open["max_ms"] = durationMs(s.OpenTimeout)
	}
	cfg["open_duration"] = open
	if s.HalfOpenProbes != 0 {
		cfg["half_open_probes"] = s.HalfOpenProbes
	}
	if s.HalfOpenSuccesses != 0 {
		cfg["half_open_successes"] = s.HalfOpenSuccesses
	}
	if s.MaxProbeWait != 0 {
		cfg["max_probe_wait_ms"] = durationMs(s.MaxProbeWait)
	}
	if s.CountedKinds != nil {
		kinds := make([]string, 0, len(s.CountedKinds))
		for _, k := range s.CountedKinds {
			if _, ok := kindNames[k]; !ok {
				return nil, &ConfigError{Problems: fmt.Sprintf("CountedKinds holds %s, which is not a kind", k)}
			}
			kinds = append(kinds, k.String())
		}
		cfg["counted_kinds"] = kinds
	}
	for _, v := range []int{s.ConsecutiveFailures, s.FailureRatePercent, s.FailureRateWindowCalls,
		s.FailureRateMinCalls, s.SlowCallPercent, s.OpenTimeoutGrowthPercent, s.HalfOpenProbes,
		s.HalfOpenSuccesses} {
		if v > math.MaxUint32 {
			return nil, &ConfigError{Problems: fmt.Sprintf("a count or percentage above 2^32-1 (%d)", v)}
		}
	}
	for _, d := range []time.Duration{s.FailureRateWindow, s.SlowCall, s.OpenTimeout, s.MaxOpenTimeout, s.MaxProbeWait} {
		if d < 0 {
			return nil, &ConfigError{Problems: fmt.Sprintf("a negative duration (%s)", d)}
		}
	}
	return json.Marshal(cfg)
}

// nowMillis is clockMillis(time.Now()) for the methods without an explicit time, read the
// cheaper way: time.Since(clockBase) reads only the monotonic clock (one clock read instead of
// time.Now's two, about 25 ns instead of 50 ns on the benchmark machine).
func nowMillis() uint64 {
	return clockBaseMillis + uint64(time.Since(clockBase)/time.Millisecond)
}

// clockBaseMillis is clockMillis(clockBase).
var clockBaseMillis = clockMillis(clockBase)

// breakerError turns an LlmrResult into a Go error (see handleError); message may be NULL.
func breakerError(r C.LlmrResult, message *C.char) error {
	if r == C.LLMR_OK {
		return nil
	}
	return handleError(r, message)
}

// Permit is permission to make one call, from AcquireAt. Give it back to RecordAt. It is
// plain data: copying it costs nothing and nothing needs releasing.
type Permit struct {
	c C.LlmrPermit
}

// Probe says whether the call is a half-open probe.
func (p Permit) Probe() bool { return bool(p.c.probe) }

// Transition is a change of state: From and To differ when Changed.
type Transition struct {
	// Changed says whether the state changed; From and To are StateClosed otherwise.
	Changed bool
	// From is the state before.
	From State
	// To is the state after.
	To State
}

// Recorded is what RecordAt did.
type Recorded struct {
	// Stale: the permit belongs to an earlier generation (or to a probe whose slot timed out);
	// the outcome was ignored.
	Stale bool
	// Transition is the state change the outcome caused, if any.
	Transition
}

// Counts are numbers an operator or a metrics exporter can read.
type Counts struct {
	// State is the state at the time asked.
	State State
	// WindowCalls is the number of calls in the failure-rate window.
	WindowCalls uint64
	// WindowFailures is the number of counted failures in the window.
	WindowFailures uint64
	// WindowSlow is the number of slow calls in the window.
	WindowSlow uint64
	// ConsecutiveFailures is the number of counted failures in a row.
	ConsecutiveFailures uint32
	// ProbesInFlight is the number of probes admitted and not yet reported.
	ProbesInFlight uint32
	// ProbeSuccesses is the number of successful probes in this half-open period.
	ProbeSuccesses uint32
	// TimesOpened is how many times the breaker has opened (trips and re-opens).
	TimesOpened uint64
	// Rejected is the number of calls rejected since creation.
	Rejected uint64
	// Generation grows on every state change.
	Generation uint64
}

func countsFromC(c *C.LlmrCounts) Counts {
	return Counts{
		State:               State(c.state),
		WindowCalls:         uint64(c.window_calls),
		WindowFailures:      uint64(c.window_failures),
		WindowSlow:          uint64(c.window_slow),
		ConsecutiveFailures: uint32(c.consecutive_failures),
		ProbesInFlight:      uint32(c.probes_in_flight),
		ProbeSuccesses:      uint32(c.probe_successes),
		TimesOpened:         uint64(c.times_opened),
		Rejected:            uint64(c.rejected),
		Generation:          uint64(c.generation),
	}
}

func transitionFromC(has C.bool, from, to C.LlmrBreakerState) Transition {
	return Transition{Changed: bool(has), From: State(from), To: State(to)}
}

// admission converts an LlmrAdmission to a permit or an *OpenError.
func admission(a *C.LlmrAdmission) (Permit, error) {
	if a.admitted {
		return Permit{c: a.permit}, nil
	}
	e := &OpenError{State: State(a.state), HasRetryIn: bool(a.has_retry_in_ms)}
	if e.HasRetryIn {
		e.RetryIn = millis(uint64(a.retry_in_ms))
	}
	return Permit{}, e
}

// outcomeArgs converts an Outcome to the C arguments of llmr_breaker_record.
func outcomeArgs(o Outcome) (kind, outcome C.uint32_t, hasRetry C.bool, retryMs C.uint64_t) {
	outcome = C.uint32_t(o.Type)
	if o.Type == OutcomeFailure {
		kind = C.uint32_t(o.Kind)
		if o.HasRetryAfter {
			hasRetry = true
			if o.RetryAfter > 0 {
				retryMs = C.uint64_t(durationMs(o.RetryAfter))
			}
		}
	}
	return
}

// jsonArg returns the C pointer and length of b (NULL, 0 for an empty slice). The memory holds
// no Go pointers, so it may be passed to C for the duration of a call without pinning.
func jsonArg(b []byte) (*C.char, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return (*C.char)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

// Breaker is a circuit breaker for one provider or model, shared safely by any number of
// goroutines. Create it with NewBreaker or RestoreBreaker. Close releases it at once; a
// Breaker that becomes unreachable without Close is released by the garbage collector.
type Breaker struct {
	h        *C.LlmrBreaker
	g        handleGuard
	cleanup  runtime.Cleanup
	onChange func(from, to State)
}

func newBreaker(h *C.LlmrBreaker, onChange func(from, to State)) *Breaker {
	b := &Breaker{h: h, onChange: onChange}
	b.cleanup = runtime.AddCleanup(b, func(h *C.LlmrBreaker) { C.llmr_breaker_free(h) }, h)
	return b
}

// NewBreaker creates a closed breaker with settings s. Invalid settings give an error that
// matches ErrInvalidConfig and names every rejected field.
func NewBreaker(s Settings) (*Breaker, error) {
	config, err := s.configJSON()
	if err != nil {
		return nil, err
	}
	ptr, n := jsonArg(config)
	var h *C.LlmrBreaker
	var message *C.char
	r := C.llmr_breaker_new(ptr, n, &h, &message)
	runtime.KeepAlive(config)
	defer C.llmr_string_free(message)
	if err := breakerError(r, message); err != nil {
		return nil, err
	}
	return newBreaker(h, s.OnStateChange), nil
}

// RestoreBreaker creates a breaker from a Snapshot (taken by this process or by another one,
// before a restart). OnStateChange is not part of a snapshot: use RestoreBreakerWith to set
// it. A corrupted snapshot gives an error matching ErrInvalidConfig.
func RestoreBreaker(snapshot []byte) (*Breaker, error) {
	return RestoreBreakerWith(snapshot, nil)
}

// RestoreBreakerWith is RestoreBreaker with an OnStateChange callback (see Settings).
func RestoreBreakerWith(snapshot []byte, onStateChange func(from, to State)) (*Breaker, error) {
	if len(snapshot) == 0 {
		return nil, &ConfigError{Problems: "empty snapshot"}
	}
	ptr, n := jsonArg(snapshot)
	var h *C.LlmrBreaker
	var message *C.char
	r := C.llmr_breaker_restore(ptr, n, &h, &message)
	runtime.KeepAlive(snapshot)
	defer C.llmr_string_free(message)
	if err := breakerError(r, message); err != nil {
		return nil, err
	}
	return newBreaker(h, onStateChange), nil
}

// Close releases the breaker. It is idempotent; afterwards every method returns ErrClosed
// (or the zero value). It may run concurrently with other calls on the same Breaker: a call in
// progress finishes safely, later ones return ErrClosed.
func (b *Breaker) Close() error {
	b.g.close(func() {
		b.cleanup.Stop()
		C.llmr_breaker_free(b.h)
	})
	return nil
}

// Allow asks to make a call now. When admitted it returns done, to be called exactly once
// with the call's outcome (as with gobreaker, a second call would record a second outcome;
// the closure is the one allocation of the pair); when rejected, an *OpenError (matching
// ErrOpenState or ErrTooManyRequests) with when to try again. It is AllowAt(time.Now()).
func (b *Breaker) Allow() (done func(Outcome), err error) {
	return b.allow(nowMillis())
}

// AllowAt is Allow at an explicit time; done records at the current time. For full control of
// the clock use AcquireAt and RecordAt.
func (b *Breaker) AllowAt(now time.Time) (done func(Outcome), err error) {
	return b.allow(clockMillis(now))
}

func (b *Breaker) allow(nowMs uint64) (done func(Outcome), err error) {
	p, err := b.acquire(nowMs)
	if err != nil {
		return nil, err
	}
	return func(o Outcome) { b.record(p, o, nowMillis()) }, nil
}

// Acquire is AcquireAt(time.Now()).
func (b *Breaker) Acquire() (Permit, error) {
	return b.acquire(nowMillis())
}

// AcquireAt asks to make a call at now: a Permit to give back to RecordAt, or an *OpenError.
// It allocates nothing when the call is admitted.
func (b *Breaker) AcquireAt(now time.Time) (Permit, error) {
	return b.acquire(clockMillis(now))
}

func (b *Breaker) acquire(nowMs uint64) (Permit, error) {
	if !b.g.enter() {
		return Permit{}, ErrClosed
	}
	if debugGC {
		runtime.GC()
	}
	var a C.LlmrAdmission
	r := C.llmr_breaker_acquire(b.h, C.uint64_t(nowMs), &a)
	b.g.leave()
	runtime.KeepAlive(b)
	if r != C.LLMR_OK {
		return Permit{}, breakerError(r, nil)
	}
	return admission(&a)
}

// Record is RecordAt(p, o, time.Now()).
func (b *Breaker) Record(p Permit, o Outcome) (Recorded, error) {
	return b.record(p, o, nowMillis())
}

// RecordAt records at now how the call admitted by p ended, and returns whether the outcome
// was stale and the transition it caused. It allocates nothing. An outcome whose Type or Kind
// is not one of the constants gives an error (the C layer's "invalid-argument").
func (b *Breaker) RecordAt(p Permit, o Outcome, now time.Time) (Recorded, error) {
	return b.record(p, o, clockMillis(now))
}

func (b *Breaker) record(p Permit, o Outcome, nowMs uint64) (Recorded, error) {
	if !b.g.enter() {
		return Recorded{}, ErrClosed
	}
	if debugGC {
		runtime.GC()
	}
	kind, outcome, hasRetry, retryMs := outcomeArgs(o)
	var out C.LlmrRecorded
	r := C.llmr_breaker_record(b.h, &p.c, outcome, kind, hasRetry, retryMs, C.uint64_t(nowMs), &out)
	b.g.leave()
	runtime.KeepAlive(b)
	if r != C.LLMR_OK {
		return Recorded{}, breakerError(r, nil)
	}
	rec := Recorded{Stale: bool(out.stale), Transition: transitionFromC(out.has_transition, out.from, out.to)}
	if rec.Changed && b.onChange != nil {
		b.onChange(rec.From, rec.To)
	}
	return rec, nil
}

// Execute runs fn if the breaker admits a call, and records its outcome (OutcomeOfError of
// what fn returned, except that a cancellation of ctx is ignored whatever fn returned). A
// rejected call returns the *OpenError without running fn. If fn panics, the outcome is
// ignored and the panic continues.
func (b *Breaker) Execute(ctx context.Context, fn func(context.Context) error) error {
	p, err := b.acquire(nowMillis())
	if err != nil {
		return err
	}
	recorded := false
	defer func() {
		if !recorded {
			b.record(p, Ignored, nowMillis())
		}
	}()
	err = fn(ctx)
	o := OutcomeOfError(err)
	if errors.Is(ctx.Err(), context.Canceled) {
		o = Ignored
	}
	recorded = true
	b.record(p, o, nowMillis())
	return err
}

// State is StateAt(time.Now()).
func (b *Breaker) State() State {
	return b.state(nowMillis())
}

// StateAt returns the state at now (an open breaker whose period has ended reads as
// half-open). A closed Breaker reads as StateClosed.
func (b *Breaker) StateAt(now time.Time) State {
	return b.state(clockMillis(now))
}

func (b *Breaker) state(nowMs uint64) State {
	if !b.g.enter() {
		return StateClosed
	}
	var s C.LlmrBreakerState
	C.llmr_breaker_state(b.h, C.uint64_t(nowMs), &s)
	b.g.leave()
	runtime.KeepAlive(b)
	return State(s)
}

// Counts is CountsAt(time.Now()).
func (b *Breaker) Counts() Counts {
	return b.counts(nowMillis())
}

// CountsAt returns the counts at now (all zero for a closed Breaker).
func (b *Breaker) CountsAt(now time.Time) Counts {
	return b.counts(clockMillis(now))
}

func (b *Breaker) counts(nowMs uint64) Counts {
	if !b.g.enter() {
		return Counts{}
	}
	var c C.LlmrCounts
	C.llmr_breaker_counts(b.h, C.uint64_t(nowMs), &c)
	b.g.leave()
	runtime.KeepAlive(b)
	return countsFromC(&c)
}

type switchFunc func(*C.LlmrBreaker, C.uint64_t, *C.LlmrTransition) C.LlmrResult

func (b *Breaker) flip(now time.Time, f switchFunc) (Transition, error) {
	if !b.g.enter() {
		return Transition{}, ErrClosed
	}
	var t C.LlmrTransition
	r := f(b.h, C.uint64_t(clockMillis(now)), &t)
	b.g.leave()
	runtime.KeepAlive(b)
	if r != C.LLMR_OK {
		return Transition{}, breakerError(r, nil)
	}
	tr := transitionFromC(t.has_transition, t.from, t.to)
	if tr.Changed && b.onChange != nil {
		b.onChange(tr.From, tr.To)
	}
	return tr, nil
}

// ForceOpen is ForceOpenAt(time.Now()).
func (b *Breaker) ForceOpen() (Transition, error) { return b.ForceOpenAt(time.Now()) }

// ForceOpenAt forces the breaker open at now: every call is rejected until Reset.
func (b *Breaker) ForceOpenAt(now time.Time) (Transition, error) {
	return b.flip(now, func(h *C.LlmrBreaker, t C.uint64_t, out *C.LlmrTransition) C.LlmrResult {
		return C.llmr_breaker_force_open(h, t, out)
	})
}

// Disable is DisableAt(time.Now()).
func (b *Breaker) Disable() (Transition, error) { return b.DisableAt(time.Now()) }

// DisableAt disables the breaker at now: every call is admitted and nothing counted until
// Reset.
func (b *Breaker) DisableAt(now time.Time) (Transition, error) {
	return b.flip(now, func(h *C.LlmrBreaker, t C.uint64_t, out *C.LlmrTransition) C.LlmrResult {
		return C.llmr_breaker_disable(h, t, out)
	})
}

// Reset is ResetAt(time.Now()).
func (b *Breaker) Reset() (Transition, error) { return b.ResetAt(time.Now()) }

// ResetAt returns the breaker to closed with empty counts (also ending forced-open and
// disabled).
func (b *Breaker) ResetAt(now time.Time) (Transition, error) {
	return b.flip(now, func(h *C.LlmrBreaker, t C.uint64_t, out *C.LlmrTransition) C.LlmrResult {
		return C.llmr_breaker_reset(h, t, out)
	})
}

// Snapshot exports the breaker's whole state (config included) as JSON, for RestoreBreaker.
func (b *Breaker) Snapshot() ([]byte, error) {
	if !b.g.enter() {
		return nil, ErrClosed
	}
	var s *C.char
	r := C.llmr_breaker_snapshot(b.h, &s)
	b.g.leave()
	runtime.KeepAlive(b)
	if r != C.LLMR_OK {
		return nil, breakerError(r, nil)
	}
	return []byte(takeString(s)), nil
}

// BreakerSet keeps one breaker per key (a model, a provider, or "provider/model"), at most
// maxKeys of them, each with the same Settings. When a new key arrives and the set is full, a
// breaker with nothing counted goes first, then the least recently used closed one; open ones
// go last. Safe for concurrent use. Create it with NewBreakerSet or RestoreBreakerSet.
type BreakerSet struct {
	h       *C.LlmrBreakerSet
	g       handleGuard
	cleanup runtime.Cleanup
}

func newBreakerSet(h *C.LlmrBreakerSet) *BreakerSet {
	s := &BreakerSet{h: h}
	s.cleanup = runtime.AddCleanup(s, func(h *C.LlmrBreakerSet) { C.llmr_breaker_set_free(h) }, h)
	return s
}

// NewBreakerSet creates a set of at most maxKeys (1..100000) breakers with settings s
// (s.OnStateChange is not used by sets: RecordAt returns the transitions).
func NewBreakerSet(s Settings, maxKeys int) (*BreakerSet, error) {
	config, err := s.configJSON()
	if err != nil {
		return nil, err
	}
	if maxKeys < 0 {
		maxKeys = 0 // rejected by the library with the config's other problems
	}
	ptr, n := jsonArg(config)
	var h *C.LlmrBreakerSet
	var message *C.char
	r := C.llmr_breaker_set_new(ptr, n, C.size_t(maxKeys), &h, &message)
	runtime.KeepAlive(config)
	defer C.llmr_string_free(message)
	if err := breakerError(r, message); err != nil {
		return nil, err
	}
	return newBreakerSet(h), nil
}

// RestoreBreakerSet creates a set from a BreakerSet.Snapshot.
func RestoreBreakerSet(snapshot []byte) (*BreakerSet, error) {
	if len(snapshot) == 0 {
		return nil, &ConfigError{Problems: "empty snapshot"}
	}
	ptr, n := jsonArg(snapshot)
	var h *C.LlmrBreakerSet
	var message *C.char
	r := C.llmr_breaker_set_restore(ptr, n, &h, &message)
	runtime.KeepAlive(snapshot)
	defer C.llmr_string_free(message)
	if err := breakerError(r, message); err != nil {
		return nil, err
	}
	return newBreakerSet(h), nil
}

// Close releases the set; idempotent. It may run concurrently with other calls: a call in
// progress finishes safely, later ones return ErrClosed.
func (s *BreakerSet) Close() error {
	s.g.close(func() {
		s.cleanup.Stop()
		C.llmr_breaker_set_free(s.h)
	})
	return nil
}

// breakerKeyArg returns key's bytes for C (no copy: a string holds no Go pointers). An empty key is
// passed as a non-NULL pointer of length 0, which the library rejects as ErrInvalidKey.
func breakerKeyArg(key string) (*C.char, C.size_t) {
	if len(key) == 0 {
		return (*C.char)(unsafe.Pointer(&emptyKey)), 0
	}
	return (*C.char)(unsafe.Pointer(unsafe.StringData(key))), C.size_t(len(key))
}

var emptyKey byte

// Allow is AllowAt(key, time.Now()).
func (s *BreakerSet) Allow(key string) (done func(Outcome), err error) {
	return s.allow(key, nowMillis())
}

// AllowAt asks to make a call for key (UTF-8, 1..256 bytes) at now; see Breaker.AllowAt.
func (s *BreakerSet) AllowAt(key string, now time.Time) (done func(Outcome), err error) {
	return s.allow(key, clockMillis(now))
}

func (s *BreakerSet) allow(key string, nowMs uint64) (done func(Outcome), err error) {
	p, err := s.acquire(key, nowMs)
	if err != nil {
		return nil, err
	}
	return func(o Outcome) { s.record(key, p, o, nowMillis()) }, nil
}

// AcquireAt asks to make a call for key at now; see Breaker.AcquireAt. Errors: ErrInvalidKey,
// ErrInvalidUTF8, an *OpenError.
func (s *BreakerSet) AcquireAt(key string, now time.Time) (Permit, error) {
	return s.acquire(key, clockMillis(now))
}

func (s *BreakerSet) acquire(key string, nowMs uint64) (Permit, error) {
	if !s.g.enter() {
		return Permit{}, ErrClosed
	}
	if debugGC {
		runtime.GC()
	}
	kp, kn := breakerKeyArg(key)
	var a C.LlmrAdmission
	r := C.llmr_breaker_set_acquire(s.h, kp, kn, C.uint64_t(nowMs), &a)
	runtime.KeepAlive(key)
	s.g.leave()
	runtime.KeepAlive(s)
	if r != C.LLMR_OK {
		return Permit{}, breakerError(r, nil)
	}
	return admission(&a)
}

// RecordAt records the outcome of key's call admitted by p; a key evicted since is stale.
func (s *BreakerSet) RecordAt(key string, p Permit, o Outcome, now time.Time) (Recorded, error) {
	return s.record(key, p, o, clockMillis(now))
}

func (s *BreakerSet) record(key string, p Permit, o Outcome, nowMs uint64) (Recorded, error) {
	if !s.g.enter() {
		return Recorded{}, ErrClosed
	}
	if debugGC {
		runtime.GC()
	}
	kp, kn := breakerKeyArg(key)
	kind, outcome, hasRetry, retryMs := outcomeArgs(o)
	var out C.LlmrRecorded
	r := C.llmr_breaker_set_record(s.h, kp, kn, &p.c, outcome, kind, hasRetry, retryMs, C.uint64_t(nowMs), &out)
	runtime.KeepAlive(key)
	s.g.leave()
	runtime.KeepAlive(s)
	if r != C.LLMR_OK {
		return Recorded{}, breakerError(r, nil)
	}
	return Recorded{Stale: bool(out.stale), Transition: transitionFromC(out.has_transition, out.from, out.to)}, nil
}

// Execute runs fn under key's breaker; see Breaker.Execute.
func (s *BreakerSet) Execute(ctx context.Context, key string, fn func(context.Context) error) error {
	p, err := s.acquire(key, nowMillis())
	if err != nil {
		return err
	}
	recorded := false
	defer func() {
		if !recorded {
			s.record(key, p, Ignored, nowMillis())
		}
	}()
	err = fn(ctx)
	o := OutcomeOfError(err)
	if errors.Is(ctx.Err(), context.Canceled) {
		o = Ignored
	}
	recorded = true
	s.record(key, p, o, nowMillis())
	return err
}

// Keys returns the keys the set holds, sorted.
func (s *BreakerSet) Keys() ([]string, error) {
	if !s.g.enter() {
		return nil, ErrClosed
	}
	var out *C.char
	r := C.llmr_breaker_set_keys(s.h, &out)
	s.g.leave()
	runtime.KeepAlive(s)
	if r != C.LLMR_OK {
		return nil, breakerError(r, nil)
	}
	var keys []string
	if err := json.Unmarshal([]byte(takeString(out)), &keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// Snapshot exports the set's whole state as JSON, for RestoreBreakerSet.
func (s *BreakerSet) Snapshot() ([]byte, error) {
	if !s.g.enter() {
		return nil, ErrClosed
	}
	var out *C.char
	r := C.llmr_breaker_set_snapshot(s.h, &out)
	s.g.leave()
	runtime.KeepAlive(s)
	if r != C.LLMR_OK {
		return nil, breakerError(r, nil)
	}
	return []byte(takeString(out)), nil
}

// noop calls the library's empty function: the cost of one cgo call, for benchmarks.
func noop() { C.llmr_noop() }
