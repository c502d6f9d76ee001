package llmresilience

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadVectorFile reads tests/vectors/<name> as generic JSON.
func loadVectorFile(t *testing.T, name string) map[string]any {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "..", "tests", "vectors", name))
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := json.Unmarshal(text, &file); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return file
}

// toGeneric round-trips v through JSON into generic values.
func toGeneric(v any) any {
	text, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(text, &out)
	return out
}

// matchJSON is the vectors' matching rule: an expected object matches when every field it
// names matches (an absent field is null). With credits, numbers match within a relative
// 1e-9, message_contains / message_excludes test "message", and arrays match element by
// element; without, arrays and scalars must be equal.
func matchJSON(expect, got any, credits bool) error {
	switch e := expect.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("expected an object, got %v", got)
		}
		message, _ := g["message"].(string)
		for k, v := range e {
			if credits && (k == "message_contains" || k == "message_excludes") {
				for _, s := range v.([]any) {
					if strings.Contains(message, s.(string)) != (k == "message_contains") {
						return fmt.Errorf("message %q: %s %q", message, k, s)
					}
				}
				continue
			}
			if err := matchJSON(v, g[k], credits); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(e) {
			return fmt.Errorf("expected %v, got %v", expect, got)
		}
		for i := range e {
			var err error
			if credits {
				err = matchJSON(e[i], g[i], credits)
			} else if !jsonEqual(e[i], g[i]) {
				err = fmt.Errorf("expected %v, got %v", e[i], g[i])
			}
			if err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	case float64:
		g, ok := got.(float64)
		if ok && (g == e || credits && math.Abs(e-g) <= 1e-9*math.Max(math.Abs(e), 1)) {
			return nil
		}
		return fmt.Errorf("expected %v, got %v", expect, got)
	default:
		if jsonEqual(expect, got) {
			return nil
		}
		return fmt.Errorf("expected %v, got %v", expect, got)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// wireFate is a Fate in the library's JSON form (only the fields its kind has).
func wireFate(f Fate) map[string]any {
	m := map[string]any{"fate": string(f.Kind)}
	switch f.Kind {
	case Truncated:
		m["chars_before"], m["chars_after"] = f.CharsBefore, f.CharsAfter
	case Dropped:
		m["reason"] = string(f.Reason)
	}
	return m
}

// wireTrimmed is a Trimmed in the library's JSON form, for comparison with the vectors.
func wireTrimmed(t Trimmed) any {
	fates := func(fs []Fate) []any {
		out := []any{}
		for _, f := range fs {
			out = append(out, wireFate(f))
		}
		return out
	}
	var before any
	if t.Report.HasTokensBefore {
		before = t.Report.TokensBefore
	}
	return toGeneric(map[string]any{
		"messages": t.Messages,
		"report": map[string]any{
			"tokens_before": before, "tokens_after": t.Report.TokensAfter,
			"limit_tokens": t.Report.LimitTokens, "documents": fates(t.Report.Documents),
			"history": fates(t.Report.History),
		},
	})
}

// wireContextError is a *ContextError in the library's JSON form.
func wireContextError(err error) any {
	e, ok := err.(*ContextError)
	if !ok {
		return map[string]any{"error": err.Error()}
	}
	m := map[string]any{"error": e.Code}
	switch e.Code {
	case "does-not-fit":
		m["required_tokens"], m["limit_tokens"] = e.RequiredTokens, e.LimitTokens
	case "latest-not-user":
		m["role"] = string(e.Role)
	case "not-overflow":
		m["kind"] = e.Kind.String()
	case "tokens":
		m["message"] = e.Message
	}
	return toGeneric(m)
}

// settingsFromWire reads a vector's ContextConfig JSON into settings.
func settingsFromWire(t *testing.T, v any) ContextSettings {
	var c contextConfig
	text, _ := json.Marshal(v)
	if err := json.Unmarshal(text, &c); err != nil {
		t.Fatal(err)
	}
	return settingsOf(c)
}

func contextTrimCase(t *testing.T, c map[string]any, counter *TokenCounter) error {
	var in struct {
		System    string       `json:"system"`
		Documents []string     `json:"documents"`
		History   []Message    `json:"history"`
		Latest    Message      `json:"latest"`
		Tools     []ToolSchema `json:"tools"`
	}
	text, _ := json.Marshal(c["input"])
	if err := json.Unmarshal(text, &in); err != nil {
		return err
	}
	docs := make([]Document, len(in.Documents))
	for i, d := range in.Documents {
		docs[i] = Document{ID: fmt.Sprint(i), Text: d}
	}
	got, err := Trim(settingsFromWire(t, c["budget"]), TrimInput{System: in.System, Documents: docs,
		History: in.History, Latest: in.Latest, Tools: in.Tools}, counter)
	if expect, ok := c["expect"]; ok {
		if err != nil {
			return err
		}
		return matchJSON(expect, wireTrimmed(got), false)
	}
	if err == nil {
		return fmt.Errorf("expected an error, got %v", got.Report)
	}
	return matchJSON(c["expect_error"], wireContextError(err), false)
}

func contextNextBudgetCase(t *testing.T, c map[string]any) error {
	f := c["failure"].(map[string]any)
	failure := Classification{Kind: kindOfName(f["kind"].(string))}
	failure.Retryable, _ = f["retryable"].(bool)
	if v, ok := f["limit_tokens"].(float64); ok {
		failure.LimitTokens, failure.HasLimitTokens = uint64(v), true
	}
	if v, ok := f["requested_tokens"].(float64); ok {
		failure.RequestedTokens, failure.HasRequestedTokens = uint64(v), true
	}
	var retry RetrySettings
	if r, ok := c["retry"].(map[string]any); ok && len(r) > 0 {
		return fmt.Errorf("retry settings %v are not mapped by this runner", r)
	}
	request, _ := c["request_tokens"].(float64)
	next, limit, err := NextBudget(failure, settingsFromWire(t, c["current"]), int(request), retry)
	if expect, ok := c["expect"]; ok {
		if err != nil {
			return err
		}
		return matchJSON(expect, toGeneric(map[string]any{"limit_tokens": limit, "context_window": next.ContextWindow}), false)
	}
	if err == nil {
		return fmt.Errorf("expected an error, got limit %d", limit)
	}
	return matchJSON(c["expect_error"], wireContextError(err), false)
}

// TestContextVectors runs tests/vectors/context.json through Trim (with the upper-bound
// counter, as the file says) and NextBudget, and prints "[go] context vectors: N passed, M
// failed".
func TestContextVectors(t *testing.T) {
	file := loadVectorFile(t, "context.json")
	counter, err := NewUpperBoundCounter()
	if err != nil {
		t.Fatal(err)
	}
	defer counter.Close()
	passed, failed := 0, 0
	for _, list := range []string{"cases", "next_budget"} {
		cases, _ := file[list].([]any)
		if len(cases) == 0 {
			t.Fatalf("context.json has no %s", list)
		}
		for _, raw := range cases {
			c := raw.(map[string]any)
			var err error
			if list == "cases" {
				err = contextTrimCase(t, c, counter)
			} else {
				err = contextNextBudgetCase(t, c)
			}
			if err != nil {
				failed++
				t.Errorf("%s: %v", c["name"], err)
			} else {
				passed++
			}
		}
	}
	fmt.Printf("[go] context vectors: %d passed, %d failed\n", passed, failed)
}
