package worker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	llmr "github.com/llm-resilience/llm-resilience/ffi/go"
)

// policyPath is the repository's policy file, the one every worker reads.
var policyPath = filepath.Join("..", "scenarios", "policy.json")

func TestPolicyFileDecodes(t *testing.T) {
	p, err := LoadPolicy(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Models) != 2 || p.Models[0] != "openai/gpt-4o-mini" {
		t.Errorf("models = %v", p.Models)
	}
	if p.RequestTimeout != 2*time.Second || p.Concurrency != 8 || p.ShutdownGrace != 3*time.Second {
		t.Errorf("worker fields = %v %v %v", p.RequestTimeout, p.Concurrency, p.ShutdownGrace)
	}
	if p.Retry.MaxRetries[llmr.KindRateLimited] != 4 || p.Retry.Deadline != 20*time.Second || p.Retry.Jitter != llmr.JitterFull {
		t.Errorf("retry = %+v", p.Retry)
	}
	if p.Breaker.FailureRateWindow != 2*time.Second || p.Breaker.OpenTimeout != 500*time.Millisecond ||
		p.Breaker.SlowCall != 0 || len(p.Breaker.CountedKinds) != 6 || p.Breaker.IgnoreServerHint {
		t.Errorf("breaker = %+v", p.Breaker)
	}
	if p.RateLimit.Limit != 4 || p.RateLimit.Burst != 3 || p.RateLimit.Period != time.Second {
		t.Errorf("ratelimit = %+v", p.RateLimit)
	}
	if p.Context.ContextWindow != 0 || p.Context.MaxHistoryMessages != 0 || p.Context.MaxDocumentChars != 4000 {
		t.Errorf("context = %+v", p.Context)
	}
	if p.Credits.RunwayHours >= 0 || p.Credits.WarningBalanceUSD != 5 {
		t.Errorf("credits = %+v (runway null must turn the alert off)", p.Credits)
	}
	if p.Naive.Retries != 3 || p.Naive.HistoryMessagesAfterOverflow != 5 {
		t.Errorf("naive = %+v", p.Naive)
	}
	if p.CreditHold != 3*time.Second {
		t.Errorf("credit hold = %v, want 3s", p.CreditHold)
	}
}

// credit_hold_ms: 0 turns holding off, absent is 0 (older policy files), a day is the most.
func TestPolicyCreditHold(t *testing.T) {
	base, err := os.ReadFile(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	const line = `"credit_hold_ms": 3000,`
	if !strings.Contains(string(base), line) {
		t.Fatalf("policy.json no longer contains %q", line)
	}
	for _, c := range []struct {
		to   string
		want time.Duration
	}{
		{`"credit_hold_ms": 0,`, 0},
		{``, 0},
		{`"credit_hold_ms": 86400000,`, 24 * time.Hour},
		{`"credit_hold_ms": 1,`, time.Millisecond},
	} {
		p, err := DecodePolicy(strings.NewReader(strings.Replace(string(base), line, c.to, 1)))
		if err != nil {
			t.Errorf("%q: %v", c.to, err)
			continue
		}
		if p.CreditHold != c.want {
			t.Errorf("%q: CreditHold = %v, want %v", c.to, p.CreditHold, c.want)
		}
	}
}

// TestPolicyRejectsBadValues edits one field of the real file at a time; each edit must give a
// *PolicyError naming the field.
func TestPolicyRejectsBadValues(t *testing.T) {
	base, err := os.ReadFile(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, from, to, field string
		core                  bool // the core's own check (a *ConfigError inside)
	}{
		{"unknown top-level field", `"max_tokens": 512,`, `"max_tokens": 512, "colour": 1,`, "", false},
		{"unknown retry field", `"base_delay_ms": 100,`, `"base_delay_ms": 100, "bse": 1,`, "retry", false},
		{"no models", `"models": ["openai/gpt-4o-mini", "anthropic/claude-3.5-haiku"]`, `"models": []`, "models", false},
		{"duplicate model", `"anthropic/claude-3.5-haiku"]`, `"openai/gpt-4o-mini"]`, "models", false},
		{"zero concurrency", `"concurrency": 8`, `"concurrency": 0`, "concurrency", false},
		{"negative timeout", `"request_timeout_ms": 2000`, `"request_timeout_ms": -5`, "request_timeout_ms", false},
		{"string timeout", `"request_timeout_ms": 2000`, `"request_timeout_ms": "2s"`, "", false},
		{"unknown kind", `"rate-limited": 4,`, `"rate-limitd": 4,`, "retry.max_retries", false},
		{"unknown jitter", `"jitter": "full"`, `"jitter": "some"`, "retry.jitter", false},
		{"bad window type", `"type": "time"`, `"type": "calls"`, "breaker.failure_rate.window.type", false},
		{"counted kind", `"counted_kinds": ["rate-limited",`, `"counted_kinds": ["rated",`, "breaker.counted_kinds", false},
		{"window in context", `"reserved_output_tokens": 512,`, `"context_window": 4000, "reserved_output_tokens": 512,`, "context.context_window", false},
		{"failure percent over 100", `"failure_percent": 50`, `"failure_percent": 150`, "breaker", true},
		{"shrink percent 100", `"shrink_percent": 70`, `"shrink_percent": 100`, "retry", true},
		{"burst over limit scale", `"period_ms": 1000`, `"period_ms": 0`, "ratelimit.period_ms", false},
		{"hysteresis over 90", `"hysteresis_percent": 20`, `"hysteresis_percent": 95`, "credits", true},
		{"missing naive", `"naive": {`, `"naive_": {`, "", false},
		{"negative credit hold", `"credit_hold_ms": 3000`, `"credit_hold_ms": -1`, "credit_hold_ms", false},
		{"credit hold over a day", `"credit_hold_ms": 3000`, `"credit_hold_ms": 86400001`, "credit_hold_ms", false},
		{"absurd credit hold", `"credit_hold_ms": 3000`, `"credit_hold_ms": 1e30`, "credit_hold_ms", false},
		{"fractional credit hold", `"credit_hold_ms": 3000`, `"credit_hold_ms": 2.5`, "credit_hold_ms", false},
		{"string credit hold", `"credit_hold_ms": 3000`, `"credit_hold_ms": "3s"`, "credit_hold_ms", false},
		{"null credit hold", `"credit_hold_ms": 3000`, `"credit_hold_ms": null`, "credit_hold_ms", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := string(base)
			if !strings.Contains(text, c.from) {
				t.Fatalf("policy.json no longer contains %q", c.from)
			}
			_, err := DecodePolicy(strings.NewReader(strings.Replace(text, c.from, c.to, 1)))
			var pe *PolicyError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("err = %v, want a *PolicyError", err)
			}
			if pe.Field != c.field {
				t.Errorf("field = %q, want %q (%v)", pe.Field, c.field, err)
			}
			var ce *llmr.ConfigError
			if c.core != errors.As(err, &ce) {
				t.Errorf("core ConfigError inside = %v, want %v (%v)", !c.core, c.core, err)
			}
		})
	}
}

func TestPolicyRejectsNonJSON(t *testing.T) {
	for _, text := range []string{"", "[]", "{", `{"models": ["a"]} {}`} {
		_, err := DecodePolicy(strings.NewReader(text))
		if !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("%q: err = %v, want ErrInvalidPolicy", text, err)
		}
	}
}
