package llmresilience

/*
#include <stdlib.h>
#include "llm_resilience.h"
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"
)

// ErrInvalidResponse: an OpenRouter /key or /credits body could not be used. The error
// returned is a *ResponseError that says why (it never holds a field's value).
var ErrInvalidResponse = errors.New("llm-resilience: unusable credits response")

// ResponseError is a /key or /credits body that cannot be used. errors.Is(err,
// ErrInvalidResponse) holds.
type ResponseError struct {
	// Code is "too-large", "invalid-json", "api", "missing-field", "invalid-field" or
	// "out-of-range".
	Code string `json:"error"`
	// Field is the field's path ("data.total_credits") for field errors.
	Field string `json:"field"`
	// Expected and Found are the JSON types of an invalid field.
	Expected string `json:"expected"`
	// Found is the JSON type found.
	Found string `json:"found"`
	// APICode is OpenRouter's error.code of an "api" error (0 if none).
	APICode int64 `json:"code"`
	// Message is OpenRouter's error.message of an "api" error, redacted.
	Message string `json:"message"`
}

// Error implements error.
func (e *ResponseError) Error() string {
	switch e.Code {
	case "api":
		return fmt.Sprintf("llm-resilience: OpenRouter returned an error %d: %s", e.APICode, e.Message)
	case "missing-field":
		return "llm-resilience: response has no " + e.Field
	case "invalid-field":
		return fmt.Sprintf("llm-resilience: %s must be %s, got %s", e.Field, e.Expected, e.Found)
	case "out-of-range":
		return "llm-resilience: " + e.Field + " is out of range"
	default:
		return "llm-resilience: credits response: " + e.Code
	}
}

// Unwrap makes errors.Is(err, ErrInvalidResponse) true.
func (e *ResponseError) Unwrap() error { return ErrInvalidResponse }

// KeyInfo is what GET /api/v1/key says about the key. Every field is optional (nil: absent).
type KeyInfo struct {
	// Label is the key's label, redacted (it can be the key itself).
	Label *string `json:"label"`
	// Usage is the key's total credit usage, USD.
	Usage *float64 `json:"usage"`
	// UsageDaily is the usage of the current UTC day, USD.
	UsageDaily *float64 `json:"usage_daily"`
	// UsageWeekly is the usage of the current UTC week, USD.
	UsageWeekly *float64 `json:"usage_weekly"`
	// UsageMonthly is the usage of the current UTC month, USD.
	UsageMonthly *float64 `json:"usage_monthly"`
	// ByokUsage is the total BYOK usage, USD.
	ByokUsage *float64 `json:"byok_usage"`
	// Limit is the key's spending limit, USD (nil: unlimited).
	Limit *float64 `json:"limit"`
	// LimitRemaining is what is left of the limit, USD.
	LimitRemaining *float64 `json:"limit_remaining"`
	// LimitReset is "daily", "weekly", "monthly" or "other" (nil: never).
	LimitReset *string `json:"limit_reset"`
	// IsFreeTier says whether the key is on the free tier.
	IsFreeTier *bool `json:"is_free_tier"`
	// IncludeByokInLimit says whether BYOK usage counts against the limit.
	IncludeByokInLimit *bool `json:"include_byok_in_limit"`
	// ExpiresAt is when the key expires (ISO 8601, as sent).
	ExpiresAt *string `json:"expires_at"`
}

// CreditsInfo is what GET /api/v1/credits says about the account (needs a management key).
type CreditsInfo struct {
	// TotalCredits is the credit ever bought, USD.
	TotalCredits float64 `json:"total_credits"`
	// TotalUsage is the credit ever used, USD.
	TotalUsage float64 `json:"total_usage"`
}

// Balance is TotalCredits − TotalUsage, USD.
func (c CreditsInfo) Balance() float64 { return c.TotalCredits - c.TotalUsage }

// parseBody runs a body parser of the library.
func parseBody(body []byte, parser func(p *C.char, n C.size_t, out, errOut **C.char) C.LlmrResult, into any) error {
	p, n := cJSON(body)
	defer C.free(unsafe.Pointer(p))
	text, err := callJSON(func(out, errOut **C.char) C.LlmrResult { return parser(p, n, out, errOut) },
		func(r C.LlmrResult, message *C.char) error {
			if uint32(r) == C.LLMR_INVALID_RESPONSE && message != nil {
				e := &ResponseError{}
				if json.Unmarshal([]byte(C.GoString(message)), e) == nil {
					return e
				}
			}
			return handleError(r, message)
		})
	if err != nil {
		return err
	}
	return json.Unmarshal(text, into)
}

// ParseKey parses a GET /api/v1/key body. Missing and null fields are nil; unknown fields are
// ignored; a field of the wrong type, a negative usage or limit, an error envelope or a body
// over 64 KiB is a *ResponseError.
func ParseKey(body []byte) (KeyInfo, error) {
	var k KeyInfo
	err := parseBody(body, func(p *C.char, n C.size_t, out, errOut **C.char) C.LlmrResult {
		return C.llmr_credits_parse_key(p, n, out, errOut)
	}, &k)
	return k, err
}

// ParseCredits parses a GET /api/v1/credits body (both totals required).
func ParseCredits(body []byte) (CreditsInfo, error) {
	var c CreditsInfo
	err := parseBody(body, func(p *C.char, n C.size_t, out, errOut **C.char) C.LlmrResult {
		return C.llmr_credits_parse_credits(p, n, out, errOut)
	}, &c)
	return c, err
}

// Affordable is what a 402 "can only afford" text says.
type Affordable struct {
	// RequestedTokens is N of "You requested up to N tokens"; valid only if HasRequested.
	RequestedTokens int
	// HasRequested says whether N was found.
	HasRequested bool
	// AffordableTokens is the smallest M of "can only afford M".
	AffordableTokens int
	// SuggestedMaxTokens is the max_tokens to retry with (M less a 5 % margin, never more
	// than N); 0 when nothing is left: top up instead of retrying.
	SuggestedMaxTokens int
}

// SuggestMaxTokens reads OpenRouter's 402 "… You requested up to N tokens, but can only
// afford M." (the message or the whole body; the first 64 KiB) and suggests a max_tokens that
// fits. ok is false when the text has no "can only afford M".
func SuggestMaxTokens(text string) (a Affordable, ok bool) {
	var out C.LlmrAffordable
	p, n := keyArg(text)
	if debugGC {
		runtime.GC()
	}
	if C.llmr_credits_suggest_max_tokens(p, n, &out) != C.LLMR_OK || !bool(out.found) {
		return Affordable{}, false
	}
	a = Affordable{AffordableTokens: int(out.affordable_tokens), HasRequested: bool(out.has_requested_tokens),
		RequestedTokens: int(out.requested_tokens)}
	if bool(out.has_suggested_max_tokens) {
		a.SuggestedMaxTokens = int(out.suggested_max_tokens)
	}
	return a, true
}

// CreditSettings configures a CreditMonitor. The zero value of every field means its
// documented default; a negative threshold turns that alert off.
type CreditSettings struct {
	// WarningBalanceUSD warns when the balance falls under it. Default 5.
	WarningBalanceUSD float64
	// CriticalBalanceUSD is critical when the balance falls under it. Default 1.
	CriticalBalanceUSD float64
	// DailySpendUSD alerts when the spend of the current UTC day goes over it. Default 1.
	DailySpendUSD float64
	// RunwayHours alerts when fewer hours of balance are left at the current burn rate.
	// Default 24.
	RunwayHours float64
	// HysteresisPercent is how far past its threshold a value must recover before an alert
	// re-arms, in percent of the threshold. Default 20; 1..90.
	HysteresisPercent int
	// BurnWindow is the window the burn rate is measured over. Default 6 h; 1 min .. 30 days.
	BurnWindow time.Duration
	// MinBurnSpan is the least history that gives a burn rate. Default 30 min.
	MinBurnSpan time.Duration
}

func (s CreditSettings) configJSON() []byte {
	m := map[string]any{}
	usd := func(name string, v float64) {
		switch {
		case v < 0:
			m[name] = nil
		case v > 0:
			m[name] = v
		}
	}
	usd("warning_balance_usd", s.WarningBalanceUSD)
	usd("critical_balance_usd", s.CriticalBalanceUSD)
	usd("daily_spend_usd", s.DailySpendUSD)
	usd("runway_hours", s.RunwayHours)
	if s.HysteresisPercent != 0 {
		m["hysteresis_percent"] = orZero(int64(s.HysteresisPercent))
	}
	if s.BurnWindow != 0 {
		m["burn_window_ms"] = orZero(s.BurnWindow.Milliseconds())
	}
	if s.MinBurnSpan != 0 {
		m["min_burn_span_ms"] = orZero(s.MinBurnSpan.Milliseconds())
	}
	text, _ := json.Marshal(m) // numbers and nulls always marshal
	return text
}

// CreditSnapshot is one poll: the /key response, the /credits response, or both.
type CreditSnapshot struct {
	// Key is the parsed /key body (nil if not polled).
	Key *KeyInfo `json:"key"`
	// Credits is the parsed /credits body (nil if not polled).
	Credits *CreditsInfo `json:"credits"`
}

// AlertKind is which alert.
type AlertKind string

// The alerts, in the order events are emitted.
const (
	AlertBalanceCritical AlertKind = "balance-critical"
	AlertBalanceWarning  AlertKind = "balance-warning"
	AlertRunway          AlertKind = "runway"
	AlertDailySpend      AlertKind = "daily-spend"
)

// AlertState says whether an alert started or ended.
type AlertState string

// The two alert states.
const (
	// AlertFired: the value crossed the threshold; it will not fire again until resolved.
	AlertFired AlertState = "fired"
	// AlertResolved: the value recovered clearly past the threshold.
	AlertResolved AlertState = "resolved"
)

// Alert is one alert event: at most one fired per crossing, one resolved per recovery.
type Alert struct {
	// Kind is which alert.
	Kind AlertKind `json:"alert"`
	// State is fired or resolved.
	State AlertState `json:"state"`
	// Value is the value that crossed (USD, or hours for runway); nil for a runway that
	// became unlimited.
	Value *float64 `json:"value"`
	// Threshold is the threshold, in the same unit.
	Threshold float64 `json:"threshold"`
	// Message is a line for an operator, redacted.
	Message string `json:"message"`
}

// String formats the alert for a log line: "balance-warning fired: <message>".
func (a Alert) String() string {
	return fmt.Sprintf("%s %s: %s", a.Kind, a.State, a.Message)
}

// CreditStatus is what the monitor knew after the last poll (nil: unknown).
type CreditStatus struct {
	// BalanceUSD is the binding balance (the smaller of the account balance and the key's
	// remaining limit).
	BalanceUSD *float64 `json:"balance_usd"`
	// AccountBalanceUSD is total_credits − total_usage.
	AccountBalanceUSD *float64 `json:"account_balance_usd"`
	// KeyRemainingUSD is the key's limit_remaining.
	KeyRemainingUSD *float64 `json:"key_remaining_usd"`
	// AccountBurnUSDPerHour is the account's burn rate.
	AccountBurnUSDPerHour *float64 `json:"account_burn_usd_per_hour"`
	// KeyBurnUSDPerHour is the key's burn rate.
	KeyBurnUSDPerHour *float64 `json:"key_burn_usd_per_hour"`
	// RunwayHours is the hours of balance left (nil: unknown or unlimited).
	RunwayHours *float64 `json:"runway_hours"`
	// RunwayUnlimited is true when a burn rate of zero makes the runway unlimited.
	RunwayUnlimited bool `json:"runway_unlimited"`
	// DailySpendUSD is today's spend.
	DailySpendUSD *float64 `json:"daily_spend_usd"`
	// Active lists the alerts currently fired.
	Active []AlertKind `json:"active"`
}

// CreditMonitor watches credit polls and emits each alert once per crossing, with
// hysteresis. It is safe for concurrent use; Snapshot and RestoreCreditMonitor carry its
// burn history and alert states across a restart. Close releases it; one that is garbage
// collected without Close is released by a cleanup.
type CreditMonitor struct {
	ptr     *C.LlmrCreditMonitor
	g       handleGuard
	cleanup runtime.Cleanup
}

func newCreditMonitor(ptr *C.LlmrCreditMonitor) *CreditMonitor {
	m := &CreditMonitor{ptr: ptr}
	m.cleanup = runtime.AddCleanup(m, func(p *C.LlmrCreditMonitor) { C.llmr_credit_monitor_free(p) }, ptr)
	return m
}

// NewCreditMonitor creates a monitor. An invalid setting is an error wrapping
// ErrInvalidConfig that lists every problem.
func NewCreditMonitor(s CreditSettings) (*CreditMonitor, error) {
	return newCreditMonitorJSON(s.configJSON())
}

// newCreditMonitorJSON creates a monitor from the library's CreditConfig JSON.
func newCreditMonitorJSON(config []byte) (*CreditMonitor, error) {
	var ptr *C.LlmrCreditMonitor
	err := newFromJSON(config, func(p *C.char, n C.size_t, errOut **C.char) C.LlmrResult {
		return C.llmr_credit_monitor_new(p, n, &ptr, errOut)
	})
	if err != nil {
		return nil, err
	}
	return newCreditMonitor(ptr), nil
}

// RestoreCreditMonitor rebuilds a monitor from the bytes Snapshot returned.
func RestoreCreditMonitor(snapshot []byte) (*CreditMonitor, error) {
	var ptr *C.LlmrCreditMonitor
	err := newFromJSON(snapshot, func(p *C.char, n C.size_t, errOut **C.char) C.LlmrResult {
		return C.llmr_credit_monitor_restore(p, n, &ptr, errOut)
	})
	if err != nil {
		return nil, err
	}
	return newCreditMonitor(ptr), nil
}

// Close releases the monitor. Calling it again does nothing; other methods then return
// ErrClosed. Close may run concurrently with other methods: a call in progress
// finishes safely, later ones return ErrClosed.
func (m *CreditMonitor) Close() error {
	m.g.close(func() {
		m.cleanup.Stop()
		C.llmr_credit_monitor_free(m.ptr)
	})
	return nil
}

// Observe feeds one poll taken at now (its monotonic reading times the burn rate, its wall
// clock gives the UTC day) and returns the alert events it caused, usually none.
func (m *CreditMonitor) Observe(s CreditSnapshot, now time.Time) ([]Alert, error) {
	return m.ObserveAt(s, clockMillis(now), now)
}

// ObserveAt is Observe with the library clock given in milliseconds (any monotonic origin)
// and the wall clock separately; a zero wallClock means unknown (no UTC-day spend, no limit
// reset). Replays and tests drive it.
func (m *CreditMonitor) ObserveAt(s CreditSnapshot, nowMs uint64, wallClock time.Time) ([]Alert, error) {
	snap, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	hasWall := !wallClock.IsZero() && wallClock.UnixMilli() >= 0
	var wall uint64
	if hasWall {
		wall = uint64(wallClock.UnixMilli())
	}
	p, n := cJSON(snap)
	defer C.free(unsafe.Pointer(p))
	if debugGC {
		runtime.GC()
	}
	if !m.g.enter() {
		return nil, ErrClosed
	}
	text, err := callJSON(func(out, errOut **C.char) C.LlmrResult {
		return C.llmr_credit_monitor_observe(m.ptr, p, n, C.uint64_t(nowMs), C.bool(hasWall), C.uint64_t(wall), out, errOut)
	}, handleError)
	m.g.leave()
	runtime.KeepAlive(m)
	if err != nil {
		return nil, err
	}
	var alerts []Alert
	if err := json.Unmarshal(text, &alerts); err != nil {
		return nil, fmt.Errorf("llm-resilience: reading alerts: %w", err)
	}
	return alerts, nil
}

// Status returns what the monitor knew after the last poll.
func (m *CreditMonitor) Status() (CreditStatus, error) {
	if !m.g.enter() {
		return CreditStatus{}, ErrClosed
	}
	text, err := callJSON(func(out, _ **C.char) C.LlmrResult {
		return C.llmr_credit_monitor_status(m.ptr, out)
	}, handleError)
	m.g.leave()
	runtime.KeepAlive(m)
	if err != nil {
		return CreditStatus{}, err
	}
	var s CreditStatus
	if err := json.Unmarshal(text, &s); err != nil {
		return CreditStatus{}, fmt.Errorf("llm-resilience: reading status: %w", err)
	}
	return s, nil
}

// Snapshot exports the monitor's whole state (config, burn history, alert states);
// RestoreCreditMonitor reads it back.
func (m *CreditMonitor) Snapshot() ([]byte, error) {
	if !m.g.enter() {
		return nil, ErrClosed
	}
	text, err := callJSON(func(out, _ **C.char) C.LlmrResult {
		return C.llmr_credit_monitor_snapshot(m.ptr, out)
	}, handleError)
	m.g.leave()
	runtime.KeepAlive(m)
	return text, err
}
