package llmresilience

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// stepFile is a step-table vector file (tests/vectors/{ratelimit,retry}.json).
type stepFile struct {
	Cases []struct {
		Name   string                     `json:"name"`
		Config map[string]json.RawMessage `json:"config"`
		Budget map[string]json.RawMessage `json:"budget"`
		Steps  []map[string]any           `json:"steps"`
	} `json:"cases"`
}

func loadSteps(t *testing.T, name string) stepFile {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "..", "tests", "vectors", name))
	if err != nil {
		t.Fatal(err)
	}
	var f stepFile
	if err := json.Unmarshal(text, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(f.Cases) == 0 {
		t.Fatalf("%s has no cases", name)
	}
	return f
}

// stepMatches is the core runner's rule: every field expect names must have the same value in
// got (recursively for objects); other values must be equal. Both sides are JSON-decoded.
func stepMatches(expect, got any) bool {
	if e, ok := expect.(map[string]any); ok {
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range e {
			if !stepMatches(v, g[k]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(expect, got)
}

// asJSON normalises a Go value to what encoding/json decodes (numbers as float64).
func asJSON(v any) any {
	text, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(text, &out)
	return out
}

func num(step map[string]any, field string) uint64 {
	f, _ := step[field].(float64)
	return uint64(f)
}

func str(step map[string]any, field string) string {
	s, _ := step[field].(string)
	return s
}

// rawInt reads an optional integer config field: (value, present).
func rawInt(m map[string]json.RawMessage, field string) (int64, bool) {
	raw, ok := m[field]
	if !ok {
		return 0, false
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, false
	}
	return n, true
}

// limiterSettings maps a RateLimitConfig JSON object to LimiterSettings.
func limiterSettings(t *testing.T, c map[string]json.RawMessage) LimiterSettings {
	var s LimiterSettings
	for field := range c {
		n, ok := rawInt(c, field)
		if !ok {
			t.Fatalf("config field %s: not an integer", field)
		}
		switch field {
		case "limit":
			s.Limit = int(n)
		case "period_ms":
			s.Period = millis(uint64(n))
		case "burst":
			s.Burst = int(n)
		case "max_keys":
			s.MaxKeys = int(n)
		case "hash_seed":
			s.HashSeed = uint64(n)
		default:
			t.Fatalf("config field %s: unknown", field)
		}
	}
	return s
}

func limitErrorName(err error, session string) string {
	switch {
	case errors.Is(err, ErrInvalidKey) && session == "":
		return "empty-key"
	case errors.Is(err, ErrInvalidKey):
		return "key-too-long"
	case errors.Is(err, ErrZeroUnits):
		return "zero-units"
	case errors.Is(err, ErrExceedsBurst):
		return "exceeds-burst"
	}
	return err.Error()
}

// runLimiterCase runs one case through the Go API (the At-twins); it returns the first
// mismatch, or "".
func runLimiterCase(t *testing.T, steps []map[string]any, s LimiterSettings) string {
	l, err := NewLimiter(s)
	if err != nil {
		return "new: " + err.Error()
	}
	defer func() { l.Close() }()
	for i, step := range steps {
		now := timeOfMillis(num(step, "now_ms"))
		key := str(step, "key")
		var got any
		switch op := str(step, "op"); op {
		case "check":
			v, err := l.AllowNAt(key, int(num(step, "units")), now)
			switch {
			case err != nil:
				got = map[string]any{"error": limitErrorName(err, key)}
			case v.Allowed:
				got = map[string]any{"verdict": "allowed", "remaining": v.Remaining}
			default:
				got = map[string]any{"verdict": "denied", "retry_in_ms": v.RetryIn.Milliseconds()}
			}
		case "settle":
			err = l.SettleAt(key, int(num(step, "reserved")), int(num(step, "actual")), now)
		case "block_until":
			err = l.BlockUntilAt(key, timeOfMillis(num(step, "until_ms")), now)
		case "remaining":
			got, err = l.RemainingAt(key, now)
		case "len":
			got = l.Len()
		case "snapshot_restore":
			var snap []byte
			if snap, err = l.Snapshot(); err == nil {
				var restored *Limiter
				if restored, err = RestoreLimiter(snap); err == nil {
					l.Close()
					l = restored
				}
			}
		default:
			return fmt.Sprintf("step %d: unknown op %s", i, op)
		}
		if err != nil {
			return fmt.Sprintf("step %d (%s): %v", i, step["op"], err)
		}
		if expect, ok := step["expect"]; ok && !stepMatches(expect, asJSON(got)) {
			return fmt.Sprintf("step %d (%s): expected %v, got %v", i, step["op"], expect, asJSON(got))
		}
	}
	return ""
}

func TestRateLimitVectors(t *testing.T) {
	f := loadSteps(t, "ratelimit.json")
	passed, failed := 0, 0
	for _, c := range f.Cases {
		if msg := runLimiterCase(t, c.Steps, limiterSettings(t, c.Config)); msg != "" {
			failed++
			t.Errorf("%s: %s", c.Name, msg)
		} else {
			passed++
		}
	}
	// Printed to stdout (not t.Log) so that it shows in every run.
	fmt.Printf("[go] ratelimit vectors: %d passed, %d failed\n", passed, failed)
}
