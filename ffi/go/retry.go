package llmresilience

/*
#include "llm_resilience.h"

#cgo noescape llmr_retry_decide
#cgo nocallback llmr_retry_decide
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"runtime"
	"time"
)

// Jitter is how a backoff delay is randomised.
type Jitter int

const (
	// JitterFull (the default) picks a uniform delay in [0, min(max, base·2^(n−1))].
	JitterFull Jitter = iota
	// JitterNone uses base·2^(n−1), capped: callers that retry in lockstep stay in lockstep.
	JitterNone
	// JitterDecorrelated picks min(max, uniform(base, 3·previous)).
	JitterDecorrelated
)

// String returns the name the library uses ("full", "none", "decorrelated").
func (j Jitter) String() string {
	switch j {
	case JitterFull:
		return "full"
	case JitterNone:
		return "none"
	case JitterDecorrelated:
		return "decorrelated"
	}
	return fmt.Sprintf("Jitter(%d)", int(j))
}

// RetrySettings configures a RetryPolicy. The zero value of every field means its documented
// default, so RetrySettings{} is the library's default policy. Where 0 is a meaningful
// setting, a negative value asks for it (MaxTotalRetries: -1 means no retries).
type RetrySettings struct {
	// MaxRetries is the number of retries allowed per kind, not counting the first attempt;
	// kinds not listed get none. nil: the defaults (rate-limited 4, timeout 2,
	// context-overflow 2 (shrinking), overloaded 4, unavailable 3, server-error 2, network 3).
	MaxRetries map[Kind]int
	// MaxTotalRetries is the number of retries allowed per call across all kinds. Default 6;
	// negative: 0.
	MaxTotalRetries int
	// BaseDelay is the first backoff delay (whole milliseconds). Default 500 ms.
	BaseDelay time.Duration
	// MaxDelay is the largest backoff delay, at least BaseDelay. Default 30 s.
	MaxDelay time.Duration
	// Jitter randomises the backoff. Default JitterFull.
	Jitter Jitter
	// MaxServerWait is the longest server-directed wait honoured; a longer Retry-After gives
	// up (a fallback model answers sooner). Default 60 s; negative: 0.
	MaxServerWait time.Duration
	// Deadline is the time allowed for the whole call, retries and waits included. Default
	// 120 s; negative: no deadline.
	Deadline time.Duration
	// ShrinkPercent is the share of its current size a request is shrunk to after a context
	// overflow that states no numbers, in 1..99. Default 70.
	ShrinkPercent int
	// ShrinkMarginPercent is the safety margin kept below a stated context limit, in percent
	// of the limit, at most 50. Default 5; negative: 0.
	ShrinkMarginPercent int
}

// orZero maps the "negative asks for 0" convention.
func orZero(n int64) int64 {
	if n < 0 {
		return 0
	}
	return n
}

func (s RetrySettings) configJSON() ([]byte, error) {
	m := map[string]any{}
	if s.MaxRetries != nil {
		perKind := map[string]int{}
		for k, n := range s.MaxRetries {
			if _, ok := kindNames[k]; !ok {
				return nil, &ConfigError{Problems: fmt.Sprintf("MaxRetries: %s is not a kind", k)}
			}
			perKind[k.String()] = n
		}
		m["max_retries"] = perKind
	}
	if s.MaxTotalRetries != 0 {
		m["max_total_retries"] = orZero(int64(s.MaxTotalRetries))
	}
	if s.BaseDelay != 0 {
		m["base_delay_ms"] = s.BaseDelay.Milliseconds()
	}
	if s.MaxDelay != 0 {
		m["max_delay_ms"] = s.MaxDelay.Milliseconds()
	}
	switch s.Jitter {
	case JitterFull:
	case JitterNone, JitterDecorrelated:
		m["jitter"] = s.Jitter.String()
	default:
		return nil, &ConfigError{Problems: fmt.Sprintf("Jitter: %s is not a jitter", s.Jitter)}
	}
	if s.MaxServerWait != 0 {
		m["max_server_wait_ms"] = orZero(s.MaxServerWait.Milliseconds())
	}
	switch {
	case s.Deadline < 0:
		m["deadline_ms"] = nil
	case s.Deadline > 0:
		m["deadline_ms"] = s.Deadline.Milliseconds()
	}
	if s.ShrinkPercent != 0 {
		m["shrink_percent"] = s.ShrinkPercent
	}
	if s.ShrinkMarginPercent != 0 {
		m["shrink_margin_percent"] = orZero(int64(s.ShrinkMarginPercent))
	}
	return json.Marshal(m)
}

// BudgetSettings configures a RetryBudget. The zero value of every field means its documented
// default; a negative value asks for 0.
type BudgetSettings struct {
	// Window is how long a request counts towards the budget (at least 10 ms). Default 10 s.
	Window time.Duration
	// MinRetriesPerSecond is the number of retries always allowed per second, whatever the
	// traffic. Default 10.
	MinRetriesPerSecond int
	// RetryPercent is the retries allowed as a percentage of the requests in the window, at
	// most 1000. Default 20.
	RetryPercent int
}

func (s BudgetSettings) configJSON() ([]byte, error) {
	m := map[string]any{}
	if s.Window != 0 {
		m["window_ms"] = orZero(s.Window.Milliseconds())
	}
	if s.MinRetriesPerSecond != 0 {
		m["min_retries_per_sec"] = orZero(int64(s.MinRetriesPerSecond))
	}
	if s.RetryPercent != 0 {
		m["retry_percent"] = orZero(int64(s.RetryPercent))
	}
	return json.Marshal(m)
}

// RetryPolicy decides whether, when and how to retry a failed call. It is immutable and safe
// for concurrent use; share one per service. Close releases it (a cleanup does if it is
// garbage collected first); calls started from it keep it alive.
type RetryPolicy struct {
	ptr     *C.LlmrRetryPolicy
	g       handleGuard
	cleanup runtime.Cleanup
}

// NewRetryPolicy creates a policy. Invalid settings are an error wrapping ErrInvalidConfig
// that lists every problem.
func NewRetryPolicy(s RetrySettings) (*RetryPolicy, error) {
	text, err := s.configJSON()
	if err != nil {
		return nil, err
	}
	var ptr *C.LlmrRetryPolicy
	err = newFromJSON(text, func(p *C.char, n C.size_t, errOut **C.char) C.LlmrResult {
		return C.llmr_retry_policy_new(p, n, &ptr, errOut)
	})
	if err != nil {
		return nil, err
	}
	p := &RetryPolicy{ptr: ptr}
	p.cleanup = runtime.AddCleanup(p, func(h *C.LlmrRetryPolicy) { C.llmr_retry_policy_free(h) }, ptr)
	return p, nil
}

// Close releases the policy; calling it again does nothing. It may run concurrently with
// Start or with Decide on its calls: those in progress finish safely, later ones panic with
// an error wrapping ErrClosed.
func (p *RetryPolicy) Close() error {
	p.g.close(func() {
		p.cleanup.Stop()
		C.llmr_retry_policy_free(p.ptr)
	})
	return nil
}

// RetryBudget bounds retries per service, not per call: every request deposits a fraction of
// a retry, every retry withdraws a whole one, and a small floor lets a quiet service still
// retry. In normal times it is always full; during an outage it caps retries at about
// RetryPercent of traffic instead of multiplying it. Safe for concurrent use.
type RetryBudget struct {
	ptr     *C.LlmrRetryBudget
	g       handleGuard
	cleanup runtime.Cleanup
}

// NewRetryBudget creates a budget. Invalid settings are an error wrapping ErrInvalidConfig.
func NewRetryBudget(s BudgetSettings) (*RetryBudget, error) {
	text, err := s.configJSON()
	if err != nil {
		return nil, err
	}
	var ptr *C.LlmrRetryBudget
	err = newFromJSON(text, func(p *C.char, n C.size_t, errOut **C.char) C.LlmrResult {
		return C.llmr_retry_budget_new(p, n, &ptr, errOut)
	})
	if err != nil {
		return nil, err
	}
	b := &RetryBudget{ptr: ptr}
	b.cleanup = runtime.AddCleanup(b, func(h *C.LlmrRetryBudget) { C.llmr_retry_budget_free(h) }, ptr)
	return b, nil
}

// Close releases the budget; calling it again does nothing. It may run concurrently with
// other uses of the budget: those in progress finish safely.
func (b *RetryBudget) Close() error {
	b.g.close(func() {
		b.cleanup.Stop()
		C.llmr_retry_budget_free(b.ptr)
	})
	return nil
}

// Deposit records one original request now (Start already does for the calls it starts).
func (b *RetryBudget) Deposit() { b.DepositAt(time.Now()) }

// DepositAt is Deposit at time t. It does nothing on a closed budget.
func (b *RetryBudget) DepositAt(t time.Time) {
	if !b.g.enter() {
		return
	}
	C.llmr_retry_budget_deposit(b.ptr, C.uint64_t(clockMillis(t)))
	b.g.leave()
	runtime.KeepAlive(b)
}

// Available returns how many retries the budget would allow now.
func (b *RetryBudget) Available() uint64 { return b.AvailableAt(time.Now()) }

// AvailableAt is Available at time t (0 on a closed budget).
func (b *RetryBudget) AvailableAt(t time.Time) uint64 {
	if !b.g.enter() {
		return 0
	}
	var n C.uint64_t
	C.llmr_retry_budget_available(b.ptr, C.uint64_t(clockMillis(t)), &n)
	b.g.leave()
	runtime.KeepAlive(b)
	return uint64(n)
}

// RetryCall is the retry state of one call (retries so far, its jitter generator). Drive it
// from one goroutine; Close it when the call is over (a cleanup releases it otherwise).
type RetryCall struct {
	ptr     *C.LlmrRetryCall
	g       handleGuard
	policy  *RetryPolicy
	budget  *RetryBudget
	cleanup runtime.Cleanup
}

// Start starts a call at now and deposits it into budget. seed makes its jitter reproducible:
// the same seed gives the same delays on every surface (use a random one in production).
// budget may be nil: retries are then limited by the policy alone. Start panics if the policy
// or the budget was closed (a programming error, like using a closed channel).
func (p *RetryPolicy) Start(now time.Time, seed uint64, budget *RetryBudget) *RetryCall {
	var b *C.LlmrRetryBudget
	if budget != nil {
		if !budget.g.enter() {
			panic(fmt.Errorf("RetryPolicy.Start: the budget: %w", ErrClosed))
		}
		defer budget.g.leave()
		b = budget.ptr
	}
	if !p.g.enter() {
		panic(fmt.Errorf("RetryPolicy.Start: %w", ErrClosed))
	}
	var ptr *C.LlmrRetryCall
	r := C.llmr_retry_start_call(p.ptr, C.uint64_t(clockMillis(now)), C.uint64_t(seed), b, &ptr)
	p.g.leave()
	runtime.KeepAlive(p)
	runtime.KeepAlive(budget)
	if err := handleError(r, nil); err != nil {
		panic(fmt.Errorf("RetryPolicy.Start: %w", err))
	}
	c := &RetryCall{ptr: ptr, policy: p, budget: budget}
	c.cleanup = runtime.AddCleanup(c, func(h *C.LlmrRetryCall) { C.llmr_retry_call_free(h) }, ptr)
	return c
}

// Close releases the call; calling it again does nothing. It may run concurrently with
// Decide: a decision in progress finishes safely, later ones panic with ErrClosed.
func (c *RetryCall) Close() error {
	c.g.close(func() {
		c.cleanup.Stop()
		C.llmr_retry_call_free(c.ptr)
	})
	return nil
}

// Action is what to do about a failed attempt. The values are those of the C ABI's
// LlmrRetryAction.
type Action uint32

const (
	// ActionRetry: send the same request again after Decision.After.
	ActionRetry Action = C.LLMR_RETRY_ACTION_RETRY
	// ActionShrinkContext: shrink the request to at most Decision.TargetTokens, then send it
	// after Decision.After.
	ActionShrinkContext Action = C.LLMR_RETRY_ACTION_SHRINK_CONTEXT
	// ActionGiveUp: stop and report the failure; Decision.Reason says why.
	ActionGiveUp Action = C.LLMR_RETRY_ACTION_GIVE_UP
)

// String returns the kebab-case name ("shrink-context").
func (a Action) String() string {
	return C.GoString(C.llmr_retry_action_name(C.uint32_t(a)))
}

// GiveUpReason says why a call gave up. The values are those of the C ABI's
// LlmrGiveUpReason.
type GiveUpReason uint32

const (
	// ReasonNone: not a give-up.
	ReasonNone GiveUpReason = C.LLMR_GIVE_UP_REASON_NONE
	// ReasonPermanent: retrying cannot cure the failure (Decision.Kind says which).
	ReasonPermanent GiveUpReason = C.LLMR_GIVE_UP_REASON_PERMANENT
	// ReasonAttemptsExhausted: the retries allowed for Decision.Kind, or for the call, are
	// used up (Decision.Retries made).
	ReasonAttemptsExhausted GiveUpReason = C.LLMR_GIVE_UP_REASON_ATTEMPTS_EXHAUSTED
	// ReasonBudgetExhausted: the service-wide retry budget is empty.
	ReasonBudgetExhausted GiveUpReason = C.LLMR_GIVE_UP_REASON_BUDGET_EXHAUSTED
	// ReasonWaitTooLong: the server asked for a longer wait (Decision.Wait) than the policy
	// allows (Decision.Ceiling).
	ReasonWaitTooLong GiveUpReason = C.LLMR_GIVE_UP_REASON_WAIT_TOO_LONG
	// ReasonDeadline: the retry (at Decision.RetryAt) would pass the call's deadline
	// (Decision.DeadlineAt).
	ReasonDeadline GiveUpReason = C.LLMR_GIVE_UP_REASON_DEADLINE
	// ReasonCannotShrink: context overflow, but neither the error nor the caller gives a size
	// to shrink from.
	ReasonCannotShrink GiveUpReason = C.LLMR_GIVE_UP_REASON_CANNOT_SHRINK
)

// String returns the kebab-case name ("budget-exhausted").
func (r GiveUpReason) String() string {
	return C.GoString(C.llmr_give_up_reason_name(C.uint32_t(r)))
}

// Decision is what to do about a failed attempt. Fields that do not apply to Action (or to
// Reason) are zero.
type Decision struct {
	// Action is what to do.
	Action Action
	// After is how long to wait before sending (retry and shrink-context).
	After time.Duration
	// Attempt is the number of the attempt about to be made (2 for the first retry).
	Attempt int
	// TargetTokens is the request size to aim for (shrink-context).
	TargetTokens uint64
	// Reason is why the call gave up (give-up).
	Reason GiveUpReason
	// Kind is the failure's kind (permanent, attempts-exhausted).
	Kind Kind
	// Retries is the number of retries already made (attempts-exhausted).
	Retries int
	// Wait is what the server asked for, and Ceiling the policy's limit (wait-too-long).
	Wait, Ceiling time.Duration
	// RetryAt is when the retry would have been sent, and DeadlineAt the call's deadline
	// (deadline).
	RetryAt, DeadlineAt time.Time
}

// String formats the decision on one line: "retry after 1.2s (attempt 2)",
// "give-up: wait-too-long (wait 2m0s > 1m0s)".
func (d Decision) String() string {
	switch d.Action {
	case ActionRetry:
		return fmt.Sprintf("retry after %s (attempt %d)", d.After, d.Attempt)
	case ActionShrinkContext:
		return fmt.Sprintf("shrink-context to %d tokens after %s (attempt %d)", d.TargetTokens, d.After, d.Attempt)
	}
	s := "give-up: " + d.Reason.String()
	switch d.Reason {
	case ReasonPermanent:
		s += fmt.Sprintf(" (%s)", d.Kind)
	case ReasonAttemptsExhausted:
		s += fmt.Sprintf(" (%s after %d retries)", d.Kind, d.Retries)
	case ReasonWaitTooLong:
		s += fmt.Sprintf(" (wait %s > %s)", d.Wait, d.Ceiling)
	case ReasonDeadline:
		s += fmt.Sprintf(" (retry at %s > deadline %s)", d.RetryAt.Format(time.RFC3339Nano), d.DeadlineAt.Format(time.RFC3339Nano))
	}
	return s
}

// Decide decides what to do about a failed attempt of the call at now, given the failure's
// classification (Classify's result, or one built by hand). requestTokens is the caller's own
// count of the request that failed (0: unknown); it makes the shrink target of a context
// overflow exact in the caller's measure. A retry withdraws one from the call's budget; a
// give-up costs nothing. Decide never sleeps: the caller waits Decision.After.
//
// A failure.Kind outside Kinds is decided as KindUnknown (no retries by default). Decide panics if the
// call, its policy or its budget was closed (a programming error).
func (c *RetryCall) Decide(failure Classification, now time.Time, requestTokens int) Decision {
	if !c.g.enter() {
		panic(fmt.Errorf("RetryCall.Decide: %w", ErrClosed))
	}
	defer c.g.leave()
	if !c.policy.g.enter() {
		panic(fmt.Errorf("RetryCall.Decide: the policy: %w", ErrClosed))
	}
	defer c.policy.g.leave()
	if c.budget != nil {
		if !c.budget.g.enter() {
			panic(fmt.Errorf("RetryCall.Decide: the budget: %w", ErrClosed))
		}
		defer c.budget.g.leave()
	}
	kind := failure.Kind
	if kind > KindUnknown { // the kinds are 0..KindUnknown
		kind = KindUnknown
	}
	f := C.LlmrFailure{
		kind:                 C.uint32_t(kind),
		retryable:            C.bool(failure.Retryable),
		has_retry_after_ms:   C.bool(failure.HasRetryAfter),
		has_limit_tokens:     C.bool(failure.HasLimitTokens),
		limit_tokens:         C.uint64_t(failure.LimitTokens),
		has_requested_tokens: C.bool(failure.HasRequestedTokens),
		requested_tokens:     C.uint64_t(failure.RequestedTokens),
	}
	if failure.HasRetryAfter && failure.RetryAfter > 0 {
		// Rounded up: waiting a little longer than asked is safe, shorter is not.
		f.retry_after_ms = C.uint64_t((failure.RetryAfter + time.Millisecond - 1) / time.Millisecond)
	}
	var b *C.LlmrRetryBudget
	if c.budget != nil {
		b = c.budget.ptr
	}
	if debugGC {
		runtime.GC()
	}
	var d C.LlmrDecision
	r := C.llmr_retry_decide(c.policy.ptr, c.ptr, &f, C.uint64_t(clockMillis(now)),
		C.bool(requestTokens > 0), C.uint64_t(max(requestTokens, 0)), b, &d)
	runtime.KeepAlive(c)
	if err := handleError(r, nil); err != nil {
		panic(fmt.Errorf("RetryCall.Decide: %w", err))
	}
	out := Decision{
		Action:       Action(d.action),
		After:        millis(uint64(d.after_ms)),
		Attempt:      int(d.attempt),
		TargetTokens: uint64(d.target_tokens),
		Reason:       GiveUpReason(d.reason),
		Retries:      int(d.retries),
		Wait:         millis(uint64(d.wait_ms)),
		Ceiling:      millis(uint64(d.ceiling_ms)),
	}
	if out.Reason == ReasonPermanent || out.Reason == ReasonAttemptsExhausted {
		out.Kind = Kind(d.kind)
	}
	if out.Reason == ReasonDeadline {
		out.RetryAt = timeOfMillis(uint64(d.retry_at_ms))
		out.DeadlineAt = timeOfMillis(uint64(d.deadline_at_ms))
	}
	return out
}
