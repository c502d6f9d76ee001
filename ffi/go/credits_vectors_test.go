package llmresilience

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// creditSettingsFromWire reads a vector's CreditConfig JSON into settings (null: off).
func creditSettingsFromWire(v any) CreditSettings {
	m, _ := v.(map[string]any)
	var s CreditSettings
	usd := func(name string, into *float64) {
		x, present := m[name]
		switch {
		case !present:
		case x == nil:
			*into = -1
		default:
			*into = x.(float64)
		}
	}
	usd("warning_balance_usd", &s.WarningBalanceUSD)
	usd("critical_balance_usd", &s.CriticalBalanceUSD)
	usd("daily_spend_usd", &s.DailySpendUSD)
	usd("runway_hours", &s.RunwayHours)
	if x, ok := m["hysteresis_percent"].(float64); ok {
		s.HysteresisPercent = int(x)
		if x == 0 {
			s.HysteresisPercent = -1 // an explicit 0, rejected by the library
		}
	}
	if x, ok := m["burn_window_ms"].(float64); ok {
		s.BurnWindow = time.Duration(x) * time.Millisecond
	}
	if x, ok := m["min_burn_span_ms"].(float64); ok {
		s.MinBurnSpan = time.Duration(x) * time.Millisecond
	}
	return s
}

// body is a vector's response body as bytes: a JSON value is serialized, a string is used as
// it is.
func body(v any) []byte {
	if s, ok := v.(string); ok {
		return []byte(s)
	}
	text, _ := json.Marshal(v)
	return text
}

// wireAffordable is SuggestMaxTokens' answer in the library's JSON form.
func wireAffordable(a Affordable, ok bool) any {
	if !ok {
		return nil
	}
	m := map[string]any{"affordable_tokens": a.AffordableTokens, "requested_tokens": nil,
		"suggested_max_tokens": nil}
	if a.HasRequested {
		m["requested_tokens"] = a.RequestedTokens
	}
	if a.SuggestedMaxTokens > 0 {
		m["suggested_max_tokens"] = a.SuggestedMaxTokens
	}
	return toGeneric(m)
}

func creditsCase(c map[string]any) error {
	m, err := NewCreditMonitor(creditSettingsFromWire(c["config"]))
	if err != nil {
		return err
	}
	defer func() { m.Close() }()
	steps, _ := c["steps"].([]any)
	for i, raw := range steps {
		step := raw.(map[string]any)
		op, _ := step["op"].(string)
		var got any
		switch op {
		case "observe":
			var snap CreditSnapshot
			if v := step["key"]; v != nil {
				k, err := ParseKey(body(v))
				if err != nil {
					return fmt.Errorf("step %d: %w", i, err)
				}
				snap.Key = &k
			}
			if v := step["credits"]; v != nil {
				cr, err := ParseCredits(body(v))
				if err != nil {
					return fmt.Errorf("step %d: %w", i, err)
				}
				snap.Credits = &cr
			}
			now, _ := step["now_ms"].(float64)
			var wall time.Time
			if w, ok := step["wall_clock_ms"].(float64); ok {
				wall = time.UnixMilli(int64(w))
			}
			alerts, err := m.ObserveAt(snap, uint64(now), wall)
			if err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
			status, err := m.Status()
			if err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
			if alerts == nil {
				alerts = []Alert{}
			}
			if status.Active == nil {
				status.Active = []AlertKind{}
			}
			got = toGeneric(map[string]any{"alerts": alerts, "status": status})
		case "snapshot_restore":
			snap, err := m.Snapshot()
			if err != nil {
				return err
			}
			again, err := RestoreCreditMonitor(snap)
			if err != nil {
				return err
			}
			m.Close()
			m = again
			continue
		case "parse_key", "parse_credits":
			var v any
			var err error
			if op == "parse_key" {
				v, err = ParseKey(body(step["body"]))
			} else {
				v, err = ParseCredits(body(step["body"]))
			}
			if err != nil {
				re, ok := err.(*ResponseError)
				if !ok {
					return fmt.Errorf("step %d: %w", i, err)
				}
				w := map[string]any{"error": re.Code, "field": re.Field, "message": re.Message, "code": nil,
					"expected": re.Expected, "found": re.Found}
				if re.APICode != 0 {
					w["code"] = re.APICode
				}
				got = toGeneric(w)
			} else {
				got = toGeneric(v)
			}
		case "afford":
			text, _ := step["text"].(string)
			got = wireAffordable(SuggestMaxTokens(text))
		case "new":
			// The raw config: CreditSettings cannot express some invalid values (a negative
			// threshold means "off" there, zero "default"), and this op tests their rejection.
			made, err := newCreditMonitorJSON(body(step["config"]))
			if err == nil {
				made.Close()
				got = map[string]any{"ok": true}
			} else if ce, ok := err.(*ConfigError); ok {
				got = map[string]any{"error": "config", "problems": float64(len(strings.Split(ce.Problems, "; ")))}
			} else {
				return fmt.Errorf("step %d: %w", i, err)
			}
		default:
			return fmt.Errorf("step %d: unknown op %q", i, op)
		}
		if err := matchJSON(step["expect"], got, true); err != nil {
			return fmt.Errorf("step %d (%s): %w", i, op, err)
		}
	}
	return nil
}

// TestCreditsVectors runs tests/vectors/credits.json through CreditMonitor, ParseKey,
// ParseCredits and SuggestMaxTokens, and prints "[go] credits vectors: N passed, M failed".
func TestCreditsVectors(t *testing.T) {
	file := loadVectorFile(t, "credits.json")
	cases, _ := file["cases"].([]any)
	if len(cases) == 0 {
		t.Fatal("credits.json has no cases")
	}
	passed, failed := 0, 0
	for _, raw := range cases {
		c := raw.(map[string]any)
		if err := creditsCase(c); err != nil {
			failed++
			t.Errorf("%s: %v", c["name"], err)
		} else {
			passed++
		}
	}
	fmt.Printf("[go] credits vectors: %d passed, %d failed\n", passed, failed)
}
