package worker

// The events' schema (examples/scenarios/README.md, "Events"), checked on every event of every
// scenario run: the report reads the Go worker's lines with the same types as the Rust
// worker's, so a field of the wrong type, a missing one or an unknown one is a test failure.

import (
	"fmt"
	"sort"
	"testing"
)

// fieldType is what a field may hold: 's' string, 'n' count (an integer ≥ 0), 'f' any
// number, 'b' bool; a '?' suffix allows
// null; a leading '~' makes the field optional.
type fieldType string

var eventSchema = map[string]map[string]fieldType{
	"run_start": {"scenario": "s", "policy": "s", "surface": "s", "jobs": "n", "resumed": "n"},
	"deferred":  {"job": "s", "session": "s", "wait_ms": "n"},
	"rejected":  {"job": "s", "model": "s", "retry_in_ms": "n"},
	"trim": {"job": "s", "model": "s", "budget_tokens": "n", "tokens": "n", "kept": "n",
		"dropped": "n", "cut": "n"},
	"request": {"job": "s", "session": "s", "model": "s", "attempt": "n", "stream": "b",
		"max_tokens": "n", "tokens": "n"},
	"response": {"job": "s", "model": "s", "attempt": "n", "status": "n?", "ok": "b",
		"latency_ms": "n", "fault": "s?", "kind": "s?", "retryable": "b?", "retry_after_ms": "n?",
		"message": "~s"},
	// model: the model a fallback moves to (an addition; readers ignore it).
	"decision": {"job": "s", "attempt": "n", "decision": "s", "after_ms": "n?",
		"target_tokens": "n?", "reason": "s?", "model": "~s"},
	"breaker": {"model": "s", "from": "s", "to": "s"},
	"alert":   {"alert": "s", "state": "s", "value": "f"},
	"job_done": {"job": "s", "session": "s", "long": "b", "outcome": "s", "kind": "~s",
		"attempts": "n", "retries": "n", "shrinks": "n", "model": "s?"},
	"shutdown": {"signal": "s", "in_flight": "n", "finished_in_grace": "n", "persisted": "n"},
	"run_end":  {"answered": "n", "failed": "n", "persisted": "n", "lost": "n"},
}

// enums are the closed values of some fields.
var enums = map[string]map[string]bool{
	"decision.decision": {"retry": true, "shrink": true, "give-up": true, "lower-max-tokens": true, "fallback": true,
		"hold-for-credit": true},
	"alert.state":       {"raised": true, "cleared": true},
	"job_done.outcome":  {"answered": true, "failed": true},
	"run_start.policy":  {"ours": true, "naive": true},
	"run_start.surface": {"go": true},
}

// schemaErrors lists what is wrong with one event (nil: nothing).
func schemaErrors(e map[string]any) []string {
	name, _ := e["event"].(string)
	fields, ok := eventSchema[name]
	if !ok {
		return []string{fmt.Sprintf("unknown event %q", name)}
	}
	var errs []string
	for k := range e {
		if _, known := fields[k]; !known && k != "event" && k != "t_ms" {
			errs = append(errs, fmt.Sprintf("%s: unknown field %q", name, k))
		}
	}
	for k, ft := range fields {
		v, present := e[k]
		spec := string(ft)
		optional := spec[0] == '~'
		if optional {
			spec = spec[1:]
		}
		if !present {
			if !optional {
				errs = append(errs, fmt.Sprintf("%s: missing %q", name, k))
			}
			continue
		}
		nullable := len(spec) == 2
		ok := false
		switch x := v.(type) {
		case nil:
			ok = nullable
		case string:
			ok = spec[0] == 's'
			if allowed, closed := enums[name+"."+k]; closed && !allowed[x] {
				errs = append(errs, fmt.Sprintf("%s.%s: %q is not one of the values", name, k, x))
			}
		case float64:
			ok = spec[0] == 'f' || (spec[0] == 'n' && x >= 0 && x == float64(int64(x)))
		case bool:
			ok = spec[0] == 'b'
		}
		if !ok {
			errs = append(errs, fmt.Sprintf("%s.%s: %v (%T) is not %s", name, k, v, v, ft))
		}
	}
	if name == "job_done" && (e["outcome"] == "failed") != (e["kind"] != nil) {
		errs = append(errs, "job_done: kind must be there exactly when the job failed")
	}
	sort.Strings(errs)
	return errs
}

// The checker itself: it must catch what it is there to catch.
func TestSchemaCheckerCatches(t *testing.T) {
	good := map[string]any{"event": "rejected", "t_ms": 1.0, "job": "j", "model": "m", "retry_in_ms": 0.0}
	if errs := schemaErrors(good); errs != nil {
		t.Fatalf("a good event: %v", errs)
	}
	for _, bad := range []map[string]any{
		{"event": "rejected", "t_ms": 1.0, "job": "j", "model": "m", "retry_in_ms": nil},
		{"event": "rejected", "t_ms": 1.0, "job": "j", "model": "m"},
		{"event": "rejected", "t_ms": 1.0, "job": "j", "model": "m", "retry_in_ms": 1.0, "extra": 1.0},
		{"event": "alert", "t_ms": 1.0, "alert": "a", "state": "fired", "value": 1.0},
		{"event": "job_done", "t_ms": 1.0, "job": "j", "session": "s", "long": false, "outcome": "failed",
			"attempts": 1.0, "retries": 0.0, "shrinks": 0.0, "model": nil},
		{"event": "trim", "t_ms": 1.0, "job": "j", "model": "m", "budget_tokens": -1.0, "tokens": 1.0,
			"kept": 1.0, "dropped": 0.0, "cut": 0.0},
		{"event": "nope", "t_ms": 1.0},
	} {
		if errs := schemaErrors(bad); len(errs) == 0 {
			t.Errorf("accepted %v", bad)
		}
	}
}
