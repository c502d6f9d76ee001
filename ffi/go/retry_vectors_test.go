package llmresilience

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func kindNamed(t *testing.T, name string) Kind {
	for _, k := range Kinds {
		if k.String() == name {
			return k
		}
	}
	t.Fatalf("no kind named %q", name)
	return KindUnknown
}

// retrySettings maps a RetryConfig JSON object to RetrySettings (an explicit 0 becomes the
// "negative means 0" setting, an explicit null deadline a negative Deadline).
func retrySettings(t *testing.T, c map[string]json.RawMessage) RetrySettings {
	var s RetrySettings
	zeroOr := func(n int64) int64 {
		if n == 0 {
			return -1
		}
		return n
	}
	for field, raw := range c {
		n, isInt := rawInt(c, field)
		switch field {
		case "max_retries":
			var m map[string]int
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			s.MaxRetries = map[Kind]int{}
			for name, r := range m {
				s.MaxRetries[kindNamed(t, name)] = r
			}
		case "max_total_retries":
			s.MaxTotalRetries = int(zeroOr(n))
		case "base_delay_ms":
			s.BaseDelay = millis(uint64(n))
		case "max_delay_ms":
			s.MaxDelay = millis(uint64(n))
		case "jitter":
			var j string
			_ = json.Unmarshal(raw, &j)
			s.Jitter = map[string]Jitter{"full": JitterFull, "none": JitterNone, "decorrelated": JitterDecorrelated}[j]
		case "max_server_wait_ms":
			s.MaxServerWait = time.Duration(zeroOr(n)) * time.Millisecond
		case "deadline_ms":
			if !isInt {
				s.Deadline = -1 // null: no deadline
			} else {
				s.Deadline = millis(uint64(n))
			}
		case "shrink_percent":
			s.ShrinkPercent = int(n)
		case "shrink_margin_percent":
			s.ShrinkMarginPercent = int(zeroOr(n))
		default:
			t.Fatalf("retry config field %s: unknown", field)
		}
	}
	return s
}

func budgetSettings(t *testing.T, c map[string]json.RawMessage) BudgetSettings {
	var s BudgetSettings
	for field := range c {
		n, ok := rawInt(c, field)
		if !ok {
			t.Fatalf("budget field %s: not an integer", field)
		}
		if n == 0 {
			n = -1 // an explicit 0
		}
		switch field {
		case "window_ms":
			s.Window = time.Duration(n) * time.Millisecond
		case "min_retries_per_sec":
			s.MinRetriesPerSecond = int(n)
		case "retry_percent":
			s.RetryPercent = int(n)
		default:
			t.Fatalf("budget field %s: unknown", field)
		}
	}
	return s
}

// failureOf builds the Classification of a step's failure object.
func failureOf(t *testing.T, f map[string]any) Classification {
	c := Classification{Kind: kindNamed(t, str(f, "kind"))}
	c.Retryable, _ = f["retryable"].(bool)
	if v, ok := f["retry_after_ms"].(float64); ok {
		c.HasRetryAfter, c.RetryAfter = true, millis(uint64(v))
	}
	if v, ok := f["limit_tokens"].(float64); ok {
		c.HasLimitTokens, c.LimitTokens = true, uint64(v)
	}
	if v, ok := f["requested_tokens"].(float64); ok {
		c.HasRequestedTokens, c.RequestedTokens = true, uint64(v)
	}
	return c
}

// decisionJSON writes a Decision as the vectors do.
func decisionJSON(d Decision) map[string]any {
	got := map[string]any{"decision": d.Action.String()}
	if d.Action != ActionGiveUp {
		got["after_ms"] = d.After.Milliseconds()
		got["attempt"] = d.Attempt
		if d.Action == ActionShrinkContext {
			got["target_tokens"] = d.TargetTokens
		}
		return got
	}
	reason := map[string]any{"reason": d.Reason.String()}
	switch d.Reason {
	case ReasonPermanent:
		reason["kind"] = d.Kind.String()
	case ReasonAttemptsExhausted:
		reason["kind"] = d.Kind.String()
		reason["retries"] = d.Retries
	case ReasonWaitTooLong:
		reason["wait_ms"] = d.Wait.Milliseconds()
		reason["ceiling_ms"] = d.Ceiling.Milliseconds()
	case ReasonDeadline:
		reason["retry_at_ms"] = clockMillis(d.RetryAt)
		reason["deadline_at_ms"] = clockMillis(d.DeadlineAt)
	}
	got["reason"] = reason
	return got
}

func runRetryCase(t *testing.T, steps []map[string]any, rs RetrySettings, bs BudgetSettings) string {
	policy, err := NewRetryPolicy(rs)
	if err != nil {
		return "policy: " + err.Error()
	}
	defer policy.Close()
	budget, err := NewRetryBudget(bs)
	if err != nil {
		return "budget: " + err.Error()
	}
	defer budget.Close()
	calls := map[string]*RetryCall{}
	defer func() {
		for _, c := range calls {
			c.Close()
		}
	}()
	for i, step := range steps {
		now := timeOfMillis(num(step, "now_ms"))
		var got any
		switch op := str(step, "op"); op {
		case "start_call":
			if old := calls[str(step, "call")]; old != nil {
				old.Close()
			}
			calls[str(step, "call")] = policy.Start(now, num(step, "seed"), budget)
			continue
		case "deposit":
			budget.DepositAt(now)
			continue
		case "budget_available":
			got = budget.AvailableAt(now)
		case "decide":
			call := calls[str(step, "call")]
			if call == nil {
				return fmt.Sprintf("step %d: decide on an unknown call", i)
			}
			failure, _ := step["failure"].(map[string]any)
			d := call.Decide(failureOf(t, failure), now, int(num(step, "request_tokens")))
			m := decisionJSON(d)
			expect, _ := step["expect"].(map[string]any)
			if between, ok := expect["after_ms_between"].([]any); ok && len(between) == 2 {
				lo, _ := between[0].(float64)
				hi, _ := between[1].(float64)
				after := float64(d.After.Milliseconds())
				if d.Action != ActionGiveUp && lo <= after && after <= hi {
					m["after_ms_between"] = between
				} else {
					m["after_ms_between"] = after
				}
			}
			got = m
		default:
			return fmt.Sprintf("step %d: unknown op %s", i, op)
		}
		if expect, ok := step["expect"]; ok && !stepMatches(expect, asJSON(got)) {
			return fmt.Sprintf("step %d (%s): expected %v, got %v", i, step["op"], expect, asJSON(got))
		}
	}
	return ""
}

func TestRetryVectors(t *testing.T) {
	f := loadSteps(t, "retry.json")
	passed, failed := 0, 0
	for _, c := range f.Cases {
		msg := runRetryCase(t, c.Steps, retrySettings(t, c.Config), budgetSettings(t, c.Budget))
		if msg != "" {
			failed++
			t.Errorf("%s: %s", c.Name, msg)
		} else {
			passed++
		}
	}
	// Printed to stdout (not t.Log) so that it shows in every run.
	fmt.Printf("[go] retry vectors: %d passed, %d failed\n", passed, failed)
}
