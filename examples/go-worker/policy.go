package worker

// This file reads examples/scenarios/policy.json. Its retry, budget, breaker, ratelimit,
// context and credits sections are the core's own JSON configs; the Go package takes typed
// Settings structs instead of JSON, so each section is decoded strictly (unknown fields are
// errors) and mapped field by field onto those structs. The values themselves are checked by
// the core when the handles are built (Validate), so a bad number gets the core's own message.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	llmr "github.com/llm-resilience/llm-resilience/ffi/go"
)

// ErrInvalidPolicy is wrapped by every *PolicyError.
var ErrInvalidPolicy = errors.New("go-worker: invalid policy")

// PolicyError says which field of the policy file is wrong and why. errors.Is(err,
// ErrInvalidPolicy) holds; Unwrap also reaches the underlying error (a JSON error, or the
// package's *ConfigError when the core rejected a section).
type PolicyError struct {
	// Field is the JSON path of the problem ("breaker.failure_rate.window.type"), or "" for
	// the whole file.
	Field string
	// Err is the underlying problem.
	Err error
}

// Error implements error.
func (e *PolicyError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%v: %v", ErrInvalidPolicy, e.Err)
	}
	return fmt.Sprintf("%v: %s: %v", ErrInvalidPolicy, e.Field, e.Err)
}

// Unwrap returns ErrInvalidPolicy and the underlying error.
func (e *PolicyError) Unwrap() []error { return []error{ErrInvalidPolicy, e.Err} }

func policyErr(field string, format string, args ...any) error {
	return &PolicyError{Field: field, Err: fmt.Errorf(format, args...)}
}

// NaivePolicy is the baseline the report compares with: retry every error a fixed number of
// times with a fixed backoff, cut the history to a number of messages (fewer after an
// overflow), first model only, no breaker, limiter or budget.
type NaivePolicy struct {
	// Retries is the number of retries on any error.
	Retries int
	// Backoff is the fixed wait between attempts.
	Backoff time.Duration
	// HistoryMessages is how many history messages are sent.
	HistoryMessages int
	// HistoryMessagesAfterOverflow is how many are sent after a context overflow.
	HistoryMessagesAfterOverflow int
}

// Policy is the decoded policy file: the worker's own settings and the package's Settings.
type Policy struct {
	// Models is the preference order; the first whose breaker admits a call is used.
	Models []string
	// MaxTokens is the max_tokens of every request (lowered once after a 402 "can only
	// afford").
	MaxTokens int
	// RequestTimeout bounds each HTTP request.
	RequestTimeout time.Duration
	// Concurrency is the number of jobs processed at once.
	Concurrency int
	// ShutdownGrace is how long in-flight jobs may run after a shutdown request.
	ShutdownGrace time.Duration
	// CreditPoll is the period of GET /api/v1/key.
	CreditPoll time.Duration
	// CreditHold is how long a job waits for a top-up once the account is out of credit
	// (the credit hold, see gate.go); 0 turns holding off: a job that meets a 402 the
	// lower-max-tokens step cannot handle gives up at once.
	CreditHold time.Duration
	// Retry is the retry policy (the core's RetryConfig).
	Retry llmr.RetrySettings
	// Budget is the service-wide retry budget (RetryBudgetConfig).
	Budget llmr.BudgetSettings
	// Breaker configures each model's breaker (BreakerConfig).
	Breaker llmr.Settings
	// BreakerMaxKeys bounds the breaker set (default 64).
	BreakerMaxKeys int
	// RateLimit is the per-session limit (RateLimitConfig).
	RateLimit llmr.LimiterSettings
	// Context is the trimming budget (ContextConfig) without ContextWindow: the window of
	// each model comes from GET /api/v1/models.
	Context llmr.ContextSettings
	// Credits configures the credit monitor (CreditConfig).
	Credits llmr.CreditSettings
	// Naive is the baseline policy.
	Naive NaivePolicy
}

// The wire shapes. Pointers tell "absent" from "0"; json.RawMessage tells null from absent
// where the core gives null a meaning (a rule turned off).
type policyFile struct {
	Models           []string        `json:"models"`
	MaxTokens        *int            `json:"max_tokens"`
	RequestTimeoutMs *int64          `json:"request_timeout_ms"`
	Concurrency      *int            `json:"concurrency"`
	ShutdownGraceMs  *int64          `json:"shutdown_grace_ms"`
	CreditPollMs     *int64          `json:"credit_poll_ms"`
	CreditHoldMs     json.RawMessage `json:"credit_hold_ms"`
	Retry            json.RawMessage `json:"retry"`
	Budget           json.RawMessage `json:"budget"`
	Breaker          json.RawMessage `json:"breaker"`
	BreakerMaxKeys   *int            `json:"breaker_max_keys"`
	RateLimit        json.RawMessage `json:"ratelimit"`
	Context          json.RawMessage `json:"context"`
	Credits          json.RawMessage `json:"credits"`
	Naive            json.RawMessage `json:"naive"`
}

type retryWire struct {
	MaxRetries          map[string]int  `json:"max_retries"`
	MaxTotalRetries     *int            `json:"max_total_retries"`
	BaseDelayMs         *int64          `json:"base_delay_ms"`
	MaxDelayMs          *int64          `json:"max_delay_ms"`
	Jitter              *string         `json:"jitter"`
	MaxServerWaitMs     *int64          `json:"max_server_wait_ms"`
	DeadlineMs          json.RawMessage `json:"deadline_ms"`
	ShrinkPercent       *int            `json:"shrink_percent"`
	ShrinkMarginPercent *int            `json:"shrink_margin_percent"`
}

type budgetWire struct {
	WindowMs         *int64 `json:"window_ms"`
	MinRetriesPerSec *int   `json:"min_retries_per_sec"`
	RetryPercent     *int   `json:"retry_percent"`
}

type breakerWire struct {
	ConsecutiveFailures json.RawMessage `json:"consecutive_failures"`
	FailureRate         json.RawMessage `json:"failure_rate"`
	OpenDuration        *struct {
		BaseMs        *int64 `json:"base_ms"`
		GrowthPercent *int   `json:"growth_percent"`
		MaxMs         *int64 `json:"max_ms"`
		UseServerHint *bool  `json:"use_server_hint"`
	} `json:"open_duration"`
	HalfOpenProbes    *int     `json:"half_open_probes"`
	HalfOpenSuccesses *int     `json:"half_open_successes"`
	MaxProbeWaitMs    *int64   `json:"max_probe_wait_ms"`
	CountedKinds      []string `json:"counted_kinds"`
}

type failureRateWire struct {
	Window *struct {
		Type  string `json:"type"`
		Ms    *int64 `json:"ms"`
		Calls *int   `json:"calls"`
	} `json:"window"`
	MinCalls       *int            `json:"min_calls"`
	FailurePercent *int            `json:"failure_percent"`
	SlowCallMs     json.RawMessage `json:"slow_call_ms"`
	SlowPercent    *int            `json:"slow_percent"`
}

type rateLimitWire struct {
	Limit    *int    `json:"limit"`
	PeriodMs *int64  `json:"period_ms"`
	Burst    *int    `json:"burst"`
	MaxKeys  *int    `json:"max_keys"`
	HashSeed *uint64 `json:"hash_seed"`
}

type contextWire struct {
	ContextWindow        json.RawMessage `json:"context_window"`
	ReservedOutputTokens *int            `json:"reserved_output_tokens"`
	SafetyMarginTokens   *int            `json:"safety_margin_tokens"`
	MaxHistoryMessages   json.RawMessage `json:"max_history_messages"`
	MaxDocumentChars     json.RawMessage `json:"max_document_chars"`
	MaxMessageChars      json.RawMessage `json:"max_message_chars"`
	MinDocumentChars     *int            `json:"min_document_chars"`
}

type creditsWire struct {
	WarningBalanceUSD  json.RawMessage `json:"warning_balance_usd"`
	CriticalBalanceUSD json.RawMessage `json:"critical_balance_usd"`
	DailySpendUSD      json.RawMessage `json:"daily_spend_usd"`
	RunwayHours        json.RawMessage `json:"runway_hours"`
	HysteresisPercent  *int            `json:"hysteresis_percent"`
	BurnWindowMs       *int64          `json:"burn_window_ms"`
	MinBurnSpanMs      *int64          `json:"min_burn_span_ms"`
}

type naiveWire struct {
	Retries                      *int   `json:"retries"`
	BackoffMs                    *int64 `json:"backoff_ms"`
	HistoryMessages              *int   `json:"history_messages"`
	HistoryMessagesAfterOverflow *int   `json:"history_messages_after_overflow"`
}

// strict decodes one JSON value into v, rejecting unknown fields and trailing data.
func strict(field string, data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return &PolicyError{Field: field, Err: err}
	}
	if d.More() {
		return policyErr(field, "trailing data after the JSON value")
	}
	return nil
}

// isNull reports whether raw is JSON null; absent (empty) is not null.
func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// optInt reads a nullable integer: absent → (0, false, nil); null → (0, true, nil).
func optInt(field string, raw json.RawMessage) (n int64, null bool, err error) {
	if len(raw) == 0 {
		return 0, false, nil
	}
	if isNull(raw) {
		return 0, true, nil
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, false, &PolicyError{Field: field, Err: err}
	}
	return n, false, nil
}

// optFloat reads a nullable number like optInt.
func optFloat(field string, raw json.RawMessage) (f float64, null bool, err error) {
	if len(raw) == 0 {
		return 0, false, nil
	}
	if isNull(raw) {
		return 0, true, nil
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, false, &PolicyError{Field: field, Err: err}
	}
	return f, false, nil
}

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

// kindByName maps the core's kind names ("rate-limited") to kinds.
func kindByName(name string) (llmr.Kind, bool) {
	for _, k := range llmr.Kinds {
		if k.String() == name {
			return k, true
		}
	}
	return 0, false
}

// LoadPolicy reads and decodes a policy file (DecodePolicy).
func LoadPolicy(path string) (Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, &PolicyError{Err: err}
	}
	return DecodePolicy(bytes.NewReader(data))
}

// DecodePolicy decodes a policy file and validates it: the worker's own fields here, every
// core section by building (and closing) its handle, so the core's checks apply. Every error
// is a *PolicyError.
func DecodePolicy(r io.Reader) (Policy, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return Policy{}, &PolicyError{Err: err}
	}
	var f policyFile
	if err := strict("", data, &f); err != nil {
		return Policy{}, err
	}
	var p Policy
	if len(f.Models) == 0 {
		return Policy{}, policyErr("models", "at least one model is required")
	}
	seen := map[string]bool{}
	for _, m := range f.Models {
		if m == "" || len(m) > 256 || seen[m] {
			return Policy{}, policyErr("models", "model ids must be distinct, 1..256 bytes (got %q)", m)
		}
		seen[m] = true
	}
	p.Models = f.Models
	required := []struct {
		field string
		v     *int64
		into  *time.Duration
	}{
		{"request_timeout_ms", f.RequestTimeoutMs, &p.RequestTimeout},
		{"shutdown_grace_ms", f.ShutdownGraceMs, &p.ShutdownGrace},
		{"credit_poll_ms", f.CreditPollMs, &p.CreditPoll},
	}
	for _, r := range required {
		if r.v == nil || *r.v <= 0 || *r.v > 3_600_000 {
			return Policy{}, policyErr(r.field, "required, 1..3600000 ms")
		}
		*r.into = ms(*r.v)
	}
	if p.CreditHold, err = decodeCreditHold(f.CreditHoldMs); err != nil {
		return Policy{}, err
	}
	if f.MaxTokens == nil || *f.MaxTokens < 1 || *f.MaxTokens > 1_000_000 {
		return Policy{}, policyErr("max_tokens", "required, 1..1000000")
	}
	p.MaxTokens = *f.MaxTokens
	if f.Concurrency == nil || *f.Concurrency < 1 || *f.Concurrency > 1024 {
		return Policy{}, policyErr("concurrency", "required, 1..1024")
	}
	p.Concurrency = *f.Concurrency
	p.BreakerMaxKeys = 64
	if f.BreakerMaxKeys != nil {
		if *f.BreakerMaxKeys < len(p.Models) {
			return Policy{}, policyErr("breaker_max_keys", "must hold every model (%d)", len(p.Models))
		}
		p.BreakerMaxKeys = *f.BreakerMaxKeys
	}
	for _, s := range []struct {
		name string
		raw  json.RawMessage
		dec  func(json.RawMessage, *Policy) error
	}{
		{"retry", f.Retry, decodeRetry},
		{"budget", f.Budget, decodeBudget},
		{"breaker", f.Breaker, decodeBreaker},
		{"ratelimit", f.RateLimit, decodeRateLimit},
		{"context", f.Context, decodeContext},
		{"credits", f.Credits, decodeCredits},
		{"naive", f.Naive, decodeNaive},
	} {
		if len(s.raw) == 0 || isNull(s.raw) {
			return Policy{}, policyErr(s.name, "required")
		}
		if err := s.dec(s.raw, &p); err != nil {
			return Policy{}, err
		}
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// maxCreditHoldMs bounds credit_hold_ms: a day. Holding customers' messages longer than that
// is not a hold but an outage of the bot, and a larger number is a typo (seconds × 1000 twice).
const maxCreditHoldMs = 86_400_000

// decodeCreditHold reads credit_hold_ms: an integer number of ms in 0..=maxCreditHoldMs;
// absent means 0 (no holding, the behaviour of policy files written before the field).
func decodeCreditHold(raw json.RawMessage) (time.Duration, error) {
	const field = "credit_hold_ms"
	if len(raw) == 0 {
		return 0, nil
	}
	if isNull(raw) {
		return 0, policyErr(field, "must be an integer number of ms, 0..%d (0: no holding), not null", maxCreditHoldMs)
	}
	var n int64
	if err := strict(field, raw, &n); err != nil {
		return 0, err
	}
	if n < 0 || n > maxCreditHoldMs {
		return 0, policyErr(field, "%d is outside 0..%d ms (0: no holding; at most a day)", n, maxCreditHoldMs)
	}
	return ms(n), nil
}

func decodeRetry(raw json.RawMessage, p *Policy) error {
	var w retryWire
	if err := strict("retry", raw, &w); err != nil {
		return err
	}
	s := &p.Retry
	if w.MaxRetries != nil {
		s.MaxRetries = map[llmr.Kind]int{}
		for name, n := range w.MaxRetries {
			k, ok := kindByName(name)
			if !ok {
				return policyErr("retry.max_retries", "%q is not a kind", name)
			}
			if n < 0 {
				return policyErr("retry.max_retries."+name, "negative")
			}
			s.MaxRetries[k] = n
		}
	}
	if w.MaxTotalRetries != nil {
		if *w.MaxTotalRetries < 0 {
			return policyErr("retry.max_total_retries", "negative")
		}
		s.MaxTotalRetries = *w.MaxTotalRetries
		if s.MaxTotalRetries == 0 {
			s.MaxTotalRetries = -1 // the package's "0" is the default; -1 asks for none
		}
	}
	for _, d := range []struct {
		field string
		v     *int64
		into  *time.Duration
	}{
		{"retry.base_delay_ms", w.BaseDelayMs, &s.BaseDelay},
		{"retry.max_delay_ms", w.MaxDelayMs, &s.MaxDelay},
		{"retry.max_server_wait_ms", w.MaxServerWaitMs, &s.MaxServerWait},
	} {
		if d.v == nil {
			continue
		}
		if *d.v < 0 {
			return policyErr(d.field, "negative")
		}
		*d.into = ms(*d.v)
	}
	if w.MaxServerWaitMs != nil && *w.MaxServerWaitMs == 0 {
		s.MaxServerWait = -1
	}
	if w.Jitter != nil {
		switch *w.Jitter {
		case "full":
			s.Jitter = llmr.JitterFull
		case "none":
			s.Jitter = llmr.JitterNone
		case "decorrelated":
			s.Jitter = llmr.JitterDecorrelated
		default:
			return policyErr("retry.jitter", "%q is not full, none or decorrelated", *w.Jitter)
		}
	}
	n, null, err := optInt("retry.deadline_ms", w.DeadlineMs)
	if err != nil {
		return err
	}
	switch {
	case null:
		s.Deadline = -1
	case n < 0:
		return policyErr("retry.deadline_ms", "negative")
	default:
		s.Deadline = ms(n)
	}
	if w.ShrinkPercent != nil {
		s.ShrinkPercent = *w.ShrinkPercent
		if s.ShrinkPercent == 0 {
			return policyErr("retry.shrink_percent", "must be 1..99")
		}
	}
	if w.ShrinkMarginPercent != nil {
		if *w.ShrinkMarginPercent < 0 {
			return policyErr("retry.shrink_margin_percent", "negative")
		}
		s.ShrinkMarginPercent = *w.ShrinkMarginPercent
		if s.ShrinkMarginPercent == 0 {
			s.ShrinkMarginPercent = -1
		}
	}
	return nil
}

func decodeBudget(raw json.RawMessage, p *Policy) error {
	var w budgetWire
	if err := strict("budget", raw, &w); err != nil {
		return err
	}
	if w.WindowMs != nil {
		if *w.WindowMs <= 0 {
			return policyErr("budget.window_ms", "must be positive")
		}
		p.Budget.Window = ms(*w.WindowMs)
	}
	for _, v := range []struct {
		field string
		n     *int
		into  *int
	}{
		{"budget.min_retries_per_sec", w.MinRetriesPerSec, &p.Budget.MinRetriesPerSecond},
		{"budget.retry_percent", w.RetryPercent, &p.Budget.RetryPercent},
	} {
		if v.n == nil {
			continue
		}
		if *v.n < 0 {
			return policyErr(v.field, "negative")
		}
		*v.into = *v.n
		if *v.n == 0 {
			*v.into = -1 // "0" in the package is the default
		}
	}
	return nil
}

func decodeBreaker(raw json.RawMessage, p *Policy) error {
	var w breakerWire
	if err := strict("breaker", raw, &w); err != nil {
		return err
	}
	s := &p.Breaker
	n, null, err := optInt("breaker.consecutive_failures", w.ConsecutiveFailures)
	if err != nil {
		return err
	}
	switch {
	case null:
		s.ConsecutiveFailures = -1
	case n < 0:
		return policyErr("breaker.consecutive_failures", "negative")
	default:
		s.ConsecutiveFailures = int(n) // 0 reaches the core as absent: its default
	}
	switch {
	case len(w.FailureRate) == 0:
	case isNull(w.FailureRate):
		s.FailureRatePercent = -1
	default:
		var fr failureRateWire
		if err := strict("breaker.failure_rate", w.FailureRate, &fr); err != nil {
			return err
		}
		if fr.Window != nil {
			switch fr.Window.Type {
			case "time":
				if fr.Window.Ms == nil || *fr.Window.Ms <= 0 || fr.Window.Calls != nil {
					return policyErr("breaker.failure_rate.window", "a time window needs a positive ms and no calls")
				}
				s.FailureRateWindow = ms(*fr.Window.Ms)
			case "count":
				if fr.Window.Calls == nil || *fr.Window.Calls <= 0 || fr.Window.Ms != nil {
					return policyErr("breaker.failure_rate.window", "a count window needs positive calls and no ms")
				}
				s.FailureRateWindowCalls = *fr.Window.Calls
			default:
				return policyErr("breaker.failure_rate.window.type", "%q is not time or count", fr.Window.Type)
			}
		}
		for _, v := range []struct {
			field string
			n     *int
			into  *int
		}{
			{"breaker.failure_rate.min_calls", fr.MinCalls, &s.FailureRateMinCalls},
			{"breaker.failure_rate.failure_percent", fr.FailurePercent, &s.FailureRatePercent},
			{"breaker.failure_rate.slow_percent", fr.SlowPercent, &s.SlowCallPercent},
		} {
			if v.n == nil {
				continue
			}
			if *v.n <= 0 {
				return policyErr(v.field, "must be positive")
			}
			*v.into = *v.n
		}
		slow, _, err := optInt("breaker.failure_rate.slow_call_ms", fr.SlowCallMs)
		if err != nil {
			return err
		}
		if slow < 0 {
			return policyErr("breaker.failure_rate.slow_call_ms", "negative")
		}
		s.SlowCall = ms(slow)
	}
	if od := w.OpenDuration; od != nil {
		if od.BaseMs != nil {
			if *od.BaseMs <= 0 {
				return policyErr("breaker.open_duration.base_ms", "must be positive")
			}
			s.OpenTimeout = ms(*od.BaseMs)
		}
		if od.GrowthPercent != nil {
			if *od.GrowthPercent <= 0 {
				return policyErr("breaker.open_duration.growth_percent", "must be positive")
			}
			s.OpenTimeoutGrowthPercent = *od.GrowthPercent
		}
		if od.MaxMs != nil {
			if *od.MaxMs <= 0 {
				return policyErr("breaker.open_duration.max_ms", "must be positive")
			}
			s.MaxOpenTimeout = ms(*od.MaxMs)
		}
		if od.UseServerHint != nil {
			s.IgnoreServerHint = !*od.UseServerHint
		}
	}
	for _, v := range []struct {
		field string
		n     *int
		into  *int
	}{
		{"breaker.half_open_probes", w.HalfOpenProbes, &s.HalfOpenProbes},
		{"breaker.half_open_successes", w.HalfOpenSuccesses, &s.HalfOpenSuccesses},
	} {
		if v.n == nil {
			continue
		}
		if *v.n <= 0 {
			return policyErr(v.field, "must be positive")
		}
		*v.into = *v.n
	}
	if w.MaxProbeWaitMs != nil {
		if *w.MaxProbeWaitMs <= 0 {
			return policyErr("breaker.max_probe_wait_ms", "must be positive")
		}
		s.MaxProbeWait = ms(*w.MaxProbeWaitMs)
	}
	if w.CountedKinds != nil {
		s.CountedKinds = make([]llmr.Kind, 0, len(w.CountedKinds))
		for _, name := range w.CountedKinds {
			k, ok := kindByName(name)
			if !ok {
				return policyErr("breaker.counted_kinds", "%q is not a kind", name)
			}
			s.CountedKinds = append(s.CountedKinds, k)
		}
	}
	return nil
}

func decodeRateLimit(raw json.RawMessage, p *Policy) error {
	var w rateLimitWire
	if err := strict("ratelimit", raw, &w); err != nil {
		return err
	}
	for _, v := range []struct {
		field string
		n     *int
		into  *int
	}{
		{"ratelimit.limit", w.Limit, &p.RateLimit.Limit},
		{"ratelimit.burst", w.Burst, &p.RateLimit.Burst},
		{"ratelimit.max_keys", w.MaxKeys, &p.RateLimit.MaxKeys},
	} {
		if v.n == nil {
			continue
		}
		if *v.n <= 0 {
			return policyErr(v.field, "must be positive")
		}
		*v.into = *v.n
	}
	if w.PeriodMs != nil {
		if *w.PeriodMs <= 0 {
			return policyErr("ratelimit.period_ms", "must be positive")
		}
		p.RateLimit.Period = ms(*w.PeriodMs)
	}
	if w.HashSeed != nil {
		p.RateLimit.HashSeed = *w.HashSeed
	}
	return nil
}

func decodeContext(raw json.RawMessage, p *Policy) error {
	var w contextWire
	if err := strict("context", raw, &w); err != nil {
		return err
	}
	if len(w.ContextWindow) != 0 && !isNull(w.ContextWindow) {
		return policyErr("context.context_window", "comes from GET /api/v1/models; leave it out")
	}
	s := &p.Context
	for _, v := range []struct {
		field string
		n     *int
		into  *int
	}{
		{"context.reserved_output_tokens", w.ReservedOutputTokens, &s.ReservedOutputTokens},
		{"context.safety_margin_tokens", w.SafetyMarginTokens, &s.SafetyMarginTokens},
		{"context.min_document_chars", w.MinDocumentChars, &s.MinDocumentChars},
	} {
		if v.n == nil {
			continue
		}
		if *v.n < 0 {
			return policyErr(v.field, "negative")
		}
		*v.into = *v.n
		if *v.n == 0 {
			*v.into = -1 // the package's "0" is the default; -1 asks for 0
		}
	}
	for _, v := range []struct {
		field string
		raw   json.RawMessage
		into  *int
		zero  int
	}{
		// null: no limit (the package's 0); 0 history messages: none (the package's -1).
		{"context.max_history_messages", w.MaxHistoryMessages, &s.MaxHistoryMessages, -1},
		{"context.max_document_chars", w.MaxDocumentChars, &s.MaxDocumentChars, 0},
		{"context.max_message_chars", w.MaxMessageChars, &s.MaxMessageChars, 0},
	} {
		n, null, err := optInt(v.field, v.raw)
		if err != nil {
			return err
		}
		switch {
		case null || len(v.raw) == 0:
		case n < 0:
			return policyErr(v.field, "negative")
		case n == 0:
			if v.zero == 0 {
				return policyErr(v.field, "must be positive or null")
			}
			*v.into = v.zero
		default:
			*v.into = int(n)
		}
	}
	return nil
}

func decodeCredits(raw json.RawMessage, p *Policy) error {
	var w creditsWire
	if err := strict("credits", raw, &w); err != nil {
		return err
	}
	s := &p.Credits
	for _, v := range []struct {
		field string
		raw   json.RawMessage
		into  *float64
	}{
		{"credits.warning_balance_usd", w.WarningBalanceUSD, &s.WarningBalanceUSD},
		{"credits.critical_balance_usd", w.CriticalBalanceUSD, &s.CriticalBalanceUSD},
		{"credits.daily_spend_usd", w.DailySpendUSD, &s.DailySpendUSD},
		{"credits.runway_hours", w.RunwayHours, &s.RunwayHours},
	} {
		f, null, err := optFloat(v.field, v.raw)
		if err != nil {
			return err
		}
		switch {
		case null:
			*v.into = -1 // the alert is off
		case f <= 0 && len(v.raw) != 0:
			return policyErr(v.field, "must be positive or null")
		default:
			*v.into = f
		}
	}
	if w.HysteresisPercent != nil {
		if *w.HysteresisPercent <= 0 {
			return policyErr("credits.hysteresis_percent", "must be positive")
		}
		s.HysteresisPercent = *w.HysteresisPercent
	}
	for _, d := range []struct {
		field string
		v     *int64
		into  *time.Duration
	}{
		{"credits.burn_window_ms", w.BurnWindowMs, &s.BurnWindow},
		{"credits.min_burn_span_ms", w.MinBurnSpanMs, &s.MinBurnSpan},
	} {
		if d.v == nil {
			continue
		}
		if *d.v <= 0 {
			return policyErr(d.field, "must be positive")
		}
		*d.into = ms(*d.v)
	}
	return nil
}

func decodeNaive(raw json.RawMessage, p *Policy) error {
	var w naiveWire
	if err := strict("naive", raw, &w); err != nil {
		return err
	}
	if w.Retries == nil || *w.Retries < 0 || *w.Retries > 100 {
		return policyErr("naive.retries", "required, 0..100")
	}
	if w.BackoffMs == nil || *w.BackoffMs < 0 || *w.BackoffMs > 600_000 {
		return policyErr("naive.backoff_ms", "required, 0..600000")
	}
	if w.HistoryMessages == nil || *w.HistoryMessages < 0 {
		return policyErr("naive.history_messages", "required, not negative")
	}
	if w.HistoryMessagesAfterOverflow == nil || *w.HistoryMessagesAfterOverflow < 0 {
		return policyErr("naive.history_messages_after_overflow", "required, not negative")
	}
	p.Naive = NaivePolicy{
		Retries:                      *w.Retries,
		Backoff:                      ms(*w.BackoffMs),
		HistoryMessages:              *w.HistoryMessages,
		HistoryMessagesAfterOverflow: *w.HistoryMessagesAfterOverflow,
	}
	return nil
}

// Validate builds every handle the policy configures (and closes it), so that the core
// checks each section; the first rejection is a *PolicyError naming the section and wrapping
// the package's error.
func (p Policy) Validate() error {
	if b, err := llmr.NewBreakerSet(p.Breaker, p.BreakerMaxKeys); err != nil {
		return &PolicyError{Field: "breaker", Err: err}
	} else {
		b.Close()
	}
	if l, err := llmr.NewLimiter(p.RateLimit); err != nil {
		return &PolicyError{Field: "ratelimit", Err: err}
	} else {
		l.Close()
	}
	if r, err := llmr.NewRetryPolicy(p.Retry); err != nil {
		return &PolicyError{Field: "retry", Err: err}
	} else {
		r.Close()
	}
	if b, err := llmr.NewRetryBudget(p.Budget); err != nil {
		return &PolicyError{Field: "budget", Err: err}
	} else {
		b.Close()
	}
	if m, err := llmr.NewCreditMonitor(p.Credits); err != nil {
		return &PolicyError{Field: "credits", Err: err}
	} else {
		m.Close()
	}
	if _, err := p.contextFor(p.Context.ReservedOutputTokens + p.Context.SafetyMarginTokens + 1024); err != nil {
		return &PolicyError{Field: "context", Err: err}
	}
	return nil
}

// contextFor is the policy's trimming budget for a model with the given window, checked by
// the core (a trim of an empty conversation).
func (p Policy) contextFor(window int) (llmr.ContextSettings, error) {
	s := p.Context
	s.ContextWindow = window
	counter, err := llmr.NewUpperBoundCounter()
	if err != nil {
		return s, err
	}
	defer counter.Close()
	_, err = llmr.Trim(s, llmr.TrimInput{Latest: llmr.Message{Role: llmr.RoleUser, Content: "hi"}}, counter)
	var ce *llmr.ConfigError
	if errors.As(err, &ce) {
		return s, err
	}
	return s, nil
}
