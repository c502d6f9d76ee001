package llmresilience

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// surface is this package's name in a vector case's "skip" object.
const surface = "go"

// vectorSummary is printed by TestMain after the run (when TestClassifyVectors ran).
var vectorSummary string

func TestMain(m *testing.M) {
	code := m.Run()
	if vectorSummary != "" {
		fmt.Println(vectorSummary)
	}
	os.Exit(code)
}

// orderedHeaders keeps the headers of a vector in file order (a Go map would lose it). A value
// is a string, or an array of strings for a repeated header.
type orderedHeaders []header

func (h *orderedHeaders) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("headers: want an object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		var one string
		if err := json.Unmarshal(raw, &one); err == nil {
			*h = append(*h, header{name, one})
			continue
		}
		var many []string
		if err := json.Unmarshal(raw, &many); err != nil {
			return fmt.Errorf("headers[%q]: want a string or an array of strings", name)
		}
		for _, v := range many {
			*h = append(*h, header{name, v})
		}
	}
	_, err := dec.Token()
	return err
}

type vectorCase struct {
	Name  string            `json:"name"`
	Skip  map[string]string `json:"skip"`
	Input struct {
		Status      *int           `json:"status"`
		Headers     orderedHeaders `json:"headers"`
		Body        *string        `json:"body"`
		Transport   *string        `json:"transport"`
		WallClockMS *uint64        `json:"wall_clock_ms"`
	} `json:"input"`
	// Expect is kept raw: a field that is absent is not compared, null means "absent".
	Expect map[string]json.RawMessage `json:"expect"`
}

type vectorFile struct {
	Cases []vectorCase `json:"cases"`
}

func TestClassifyVectors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "tests", "vectors", "classify*.json"))
	if err != nil {
		t.Fatal(err)
	}
	passed, failed, skipped := 0, 0, 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var vf vectorFile
		if err := json.Unmarshal(data, &vf); err != nil {
			t.Errorf("%s: %v", path, err)
			failed++
			continue
		}
		file := filepath.Base(path)
		for _, vc := range vf.Cases {
			if reason, ok := vc.Skip[surface]; ok {
				t.Logf("skip %s: %s: %s (declared in the vector file)", file, vc.Name, reason)
				skipped++
				continue
			}
			problems := runVector(vc)
			if len(problems) == 0 {
				passed++
				continue
			}
			failed++
			for _, p := range problems {
				t.Errorf("%s: %s: %s", file, vc.Name, p)
			}
		}
	}
	vectorSummary = fmt.Sprintf("[go] classify vectors: %d passed, %d failed", passed, failed)
	if skipped > 0 {
		vectorSummary = fmt.Sprintf("[go] classify vectors: %d skipped by the vector files\n%s",
			skipped, vectorSummary)
	}
	t.Log(vectorSummary)
	if passed+failed == 0 {
		t.Fatal("no classify vectors found in tests/vectors/classify*.json")
	}
}

// runVector classifies one case through the C ABI and lists every mismatch.
func runVector(vc vectorCase) []string {
	in := rawInput{headers: vc.Input.Headers, transport: vc.Input.Transport}
	if s := vc.Input.Status; s != nil {
		if *s < 0 || *s > 65535 {
			return []string{fmt.Sprintf("input.status %d is not an HTTP status", *s)}
		}
		in.status, in.hasStatus = uint16(*s), true
	}
	if vc.Input.Body != nil {
		in.body = []byte(*vc.Input.Body)
	}
	if ms := vc.Input.WallClockMS; ms != nil {
		in.wallClock = time.UnixMilli(int64(*ms))
	}
	got, err := classify(in)
	if err != nil {
		return []string{"classify failed: " + err.Error()}
	}

	var problems []string
	mismatch := func(field string, want, have any) {
		problems = append(problems, fmt.Sprintf("%s: expected %v, got %v", field, want, have))
	}
	var kind string
	if err := json.Unmarshal(vc.Expect["kind"], &kind); err != nil {
		problems = append(problems, "expect.kind is missing")
	} else if got.Kind.String() != kind {
		mismatch("kind", kind, got.Kind)
	}
	var retryable bool
	if err := json.Unmarshal(vc.Expect["retryable"], &retryable); err != nil {
		problems = append(problems, "expect.retryable is missing")
	} else if got.Retryable != retryable {
		mismatch("retryable", retryable, got.Retryable)
	}
	retryMS := uint64(got.RetryAfter.Milliseconds())
	for _, f := range []struct {
		field string
		has   bool
		value uint64
	}{
		{"retry_after_ms", got.HasRetryAfter, retryMS},
		{"limit_tokens", got.HasLimitTokens, got.LimitTokens},
		{"requested_tokens", got.HasRequestedTokens, got.RequestedTokens},
	} {
		raw, asserted := vc.Expect[f.field]
		if !asserted {
			continue
		}
		var want *uint64
		if err := json.Unmarshal(raw, &want); err != nil {
			problems = append(problems, fmt.Sprintf("expect.%s is not a number or null", f.field))
		} else if want == nil && f.has {
			mismatch(f.field, "absent", f.value)
		} else if want != nil && !f.has {
			mismatch(f.field, *want, "absent")
		} else if want != nil && *want != f.value {
			mismatch(f.field, *want, f.value)
		}
	}
	for _, f := range []struct{ field, value string }{
		{"provider", got.Provider}, {"code", got.Code}, {"error_type", got.ErrorType},
	} {
		raw, asserted := vc.Expect[f.field]
		if !asserted {
			continue
		}
		var want *string
		if err := json.Unmarshal(raw, &want); err != nil {
			problems = append(problems, fmt.Sprintf("expect.%s is not a string or null", f.field))
		} else if want == nil && f.value != "" {
			mismatch(f.field, "absent", fmt.Sprintf("%q", f.value))
		} else if want != nil && *want != f.value {
			mismatch(f.field, fmt.Sprintf("%q", *want), fmt.Sprintf("%q", f.value))
		}
	}
	for _, f := range []struct {
		field   string
		contain bool
	}{{"message_contains", true}, {"message_excludes", false}} {
		raw, asserted := vc.Expect[f.field]
		if !asserted {
			continue
		}
		var subs []string
		if err := json.Unmarshal(raw, &subs); err != nil {
			problems = append(problems, fmt.Sprintf("expect.%s is not a list of strings", f.field))
			continue
		}
		for _, s := range subs {
			if strings.Contains(got.Message, s) != f.contain {
				verb := "lacks"
				if !f.contain {
					verb = "contains"
				}
				problems = append(problems, fmt.Sprintf("message %s %q: %q", verb, s, got.Message))
			}
		}
	}
	return problems
}
