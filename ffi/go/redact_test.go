package llmresilience

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fakeKeys are real-shaped, visibly FAKE secrets (issue 4, item 4).
var fakeKeys = []string{
	"sk-or-v1-FAKE-not-a-real-key-0123456789abcdef-0123456789abcdef",
	"sk-ant-api03-FAKE-not-a-real-key-0123456789abcdefABCDEF-0123456789abcdefAA",
	"AIzaFAKE-not-a-real-key-0123456789abcdefXYZ",
	"sk-proj-FAKE-not-a-real-key-0123456789abcdef0123456789abcdef",
}

// bearer is the "Bearer …" form, whose token alone must not come back either.
const bearerToken = "FAKEbearerTOKEN0123456789abcdef0123456789"

// TestNoSecretInAnyOutput feeds FAKE keys into every input of this package's token, context
// and credits surfaces that can reach an error, an alert, a report or a message (and into
// classify), then greps every output: none may contain a key.
func TestNoSecretInAnyOutput(t *testing.T) {
	var outputs []string
	add := func(what string, v any) { outputs = append(outputs, what+": "+fmt.Sprintf("%+v", v)) }
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	for _, key := range append(fakeKeys, "Bearer "+bearerToken) {
		// ParseKey: a key as the label, and inside an API error's message.
		k, err := ParseKey([]byte(`{"data":{"label":"` + key + `","usage":3,"limit":10,"limit_remaining":0.5,"limit_reset":"daily"}}`))
		if err != nil {
			t.Fatal(err)
		}
		add("label", deref(k.Label))
		_, err = ParseKey([]byte(`{"error":{"code":401,"message":"Invalid API key: ` + key + `"}}`))
		if !errors.Is(err, ErrInvalidResponse) {
			t.Fatalf("api error: %v", err)
		}
		add("parse error", err)
		_, err = ParseCredits([]byte(`{"data":{"total_credits":"` + key + `","total_usage":1}}`))
		add("credits error", err)
		_, err = ParseKey([]byte(`{"data":{"usage":"` + key + `"}}`))
		add("field error", err)

		// CreditMonitor: a label that was never redacted (built by hand), alerts and status.
		m, err := NewCreditMonitor(CreditSettings{})
		if err != nil {
			t.Fatal(err)
		}
		raw := KeyInfo{Label: &key, LimitRemaining: k.LimitRemaining, Usage: k.Usage, UsageDaily: k.Usage}
		alerts, err := m.ObserveAt(CreditSnapshot{Key: &raw}, 0, time.UnixMilli(1_795_737_600_000))
		if err != nil {
			t.Fatal(err)
		}
		if len(alerts) == 0 {
			t.Fatal("expected alerts for a 0.50 USD balance")
		}
		for _, a := range alerts {
			add("alert", a.String())
		}
		st, _ := m.Status()
		add("status", st)
		snap, _ := m.Snapshot()
		add("snapshot", string(snap))
		m.Close()

		// Trimming errors: the key in the system prompt, the latest message, a tool schema.
		counter, err := NewTokenCounter(O200kBase)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Trim(ContextSettings{ContextWindow: 40, ReservedOutputTokens: 1, SafetyMarginTokens: 1},
			TrimInput{System: "key " + key, Latest: Message{Role: RoleUser, Content: key},
				Tools: []ToolSchema{{Name: "t", Description: key}}}, counter)
		if !errors.Is(err, ErrDoesNotFit) {
			t.Fatalf("does not fit: %v", err)
		}
		add("trim error", err)
		_, err = Trim(ContextSettings{}, TrimInput{System: "s", Latest: Message{Role: RoleAssistant, Content: key, Name: key}}, counter)
		if !errors.Is(err, ErrContextRejected) {
			t.Fatalf("latest not user: %v", err)
		}
		add("trim error", err)
		_, err = Trim(ContextSettings{}, TrimInput{System: "s", Latest: Message{Role: RoleUser, Content: key + strings.Repeat("x", 4<<20)}}, counter)
		if !errors.Is(err, ErrTooLargeToCount) {
			t.Fatalf("too large: %v", err)
		}
		add("trim error", err)
		_, err = Trim(ContextSettings{ContextWindow: -1}, TrimInput{System: key, Latest: Message{Role: RoleUser, Content: key}}, counter)
		add("config error", err)
		_, err = counter.CountText(key + strings.Repeat("y", 4<<20))
		add("count error", err)
		_, _, err = NextBudget(Classification{Kind: KindTimeout, Message: key}, ContextSettings{}, 10, RetrySettings{})
		add("next budget error", err)
		counter.Close()

		// Classify: the key in a header echo and in the body.
		h := http.Header{"Authorization": {"Bearer " + bearerToken}}
		c, err := ClassifyRaw(401, h, []byte(`{"error":{"message":"Incorrect API key provided: `+key+`","code":401}}`), "", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		add("classify", c.String())
		add("classify message", c.Message)
	}
	for _, out := range outputs {
		for _, key := range append(fakeKeys, bearerToken) {
			if strings.Contains(out, key) {
				t.Errorf("a FAKE key leaked: %s", out)
			}
		}
	}
	if len(outputs) < 50 {
		t.Fatalf("only %d outputs checked", len(outputs))
	}
}
