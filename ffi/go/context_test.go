package llmresilience

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokenCounterCountsAndRejects(t *testing.T) {
	exact, err := NewTokenCounter(O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	upper, err := NewUpperBoundCounter()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := exact.CountText("hello world"); n != 2 || err != nil {
		t.Fatalf("exact: %d %v", n, err)
	}
	if n, err := upper.CountText("hello world"); n < 2 || err != nil {
		t.Fatalf("upper: %d %v", n, err)
	}
	if _, err := exact.CountText("a\xff"); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("bad UTF-8: %v", err)
	}
	if _, err := exact.CountText(strings.Repeat("a", 4<<20+1)); !errors.Is(err, ErrTooLargeToCount) {
		t.Fatalf("too large: %v", err)
	}
	msgs := []Message{{Role: RoleSystem, Content: "Be brief."}, {Role: RoleUser, Content: "hi"}}
	plain, err := exact.CountMessages(msgs, nil)
	if err != nil || plain == 0 {
		t.Fatal(plain, err)
	}
	withTools, err := exact.CountMessages(msgs, []ToolSchema{{Name: "lookup_order", Description: "Find an order.", Parameters: "{}"}})
	if err != nil || withTools <= plain {
		t.Fatal(withTools, plain, err)
	}
	if _, err := exact.CountMessages([]Message{{Role: "robot"}}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad role: %v", err)
	}
	if EncodingForModel("openai/gpt-4") != Cl100kBase || EncodingForModel("anthropic/claude-3.5-sonnet") != O200kBase {
		t.Fatal("EncodingForModel")
	}
	if _, err := NewTokenCounter(Encoding(7)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad encoding: %v", err)
	}
	exact.Close()
	exact.Close()
	upper.Close()
	if _, err := exact.CountText("x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

func TestTrimAndNextBudget(t *testing.T) {
	counter, err := NewTokenCounter(O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	defer counter.Close()
	in := benchInput()
	got, err := Trim(benchSettings, in, counter)
	if err != nil {
		t.Fatal(err)
	}
	r := got.Report
	if r.TokensAfter > r.LimitTokens || !r.HasTokensBefore || r.TokensBefore <= r.LimitTokens {
		t.Fatalf("report: %v", r)
	}
	if got.Messages[0].Content != benchSystem || got.Messages[len(got.Messages)-1].Content != in.Latest.Content {
		t.Fatal("system and latest must be first and last, whole")
	}
	if len(r.Documents) != 5 || len(r.History) != 200 || !strings.Contains(r.String(), "of 6720") {
		t.Fatalf("report: %v", r)
	}
	if r.History[0].Kind != Dropped || r.History[0].Reason != DropBudget || r.History[0].String() != "dropped (budget)" {
		t.Fatalf("oldest message: %v", r.History[0])
	}
	// The provider still says it is too long: the next budget shrinks to the retry target.
	failure := Classification{Kind: KindContextOverflow, LimitTokens: 6000, HasLimitTokens: true,
		RequestedTokens: 7000, HasRequestedTokens: true}
	next, limit, err := NextBudget(failure, benchSettings, r.TokensAfter, RetrySettings{})
	if err != nil {
		t.Fatal(err)
	}
	if limit >= r.TokensAfter || next.ReservedOutputTokens != 1024 {
		t.Fatalf("next: %+v %d", next, limit)
	}
	again, err := Trim(next, in, counter)
	if err != nil || again.Report.LimitTokens != limit || again.Report.TokensAfter > limit {
		t.Fatalf("again: %v %v", again.Report, err)
	}
	var ce *ContextError
	_, _, err = NextBudget(Classification{Kind: KindTimeout}, benchSettings, 10, RetrySettings{})
	if !errors.As(err, &ce) || ce.Code != "not-overflow" || ce.Kind != KindTimeout || !errors.Is(err, ErrContextRejected) {
		t.Fatalf("not overflow: %v", err)
	}
	_, err = Trim(ContextSettings{ContextWindow: 20, ReservedOutputTokens: 1, SafetyMarginTokens: 1}, in, counter)
	if !errors.As(err, &ce) || !errors.Is(err, ErrDoesNotFit) || ce.LimitTokens != 18 || ce.RequiredTokens <= 18 {
		t.Fatalf("does not fit: %v", err)
	}
	_, err = Trim(ContextSettings{MaxDocumentChars: 10, MinDocumentChars: 20}, in, counter)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "min_document_chars") {
		t.Fatalf("bad settings: %v", err)
	}
	if _, err := Trim(ContextSettings{}, in, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("nil counter: %v", err)
	}
}

func TestCreditMonitorRoundTrip(t *testing.T) {
	m, err := NewCreditMonitor(CreditSettings{RunwayHours: -1, DailySpendUSD: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	credits, err := ParseCredits([]byte(`{"data":{"total_credits":20,"total_usage":15.1}}`))
	if err != nil || credits.Balance() < 4.89 || credits.Balance() > 4.91 {
		t.Fatal(credits, err)
	}
	alerts, err := m.Observe(CreditSnapshot{Credits: &credits}, time.Now())
	if err != nil || len(alerts) != 1 || alerts[0].Kind != AlertBalanceWarning || alerts[0].State != AlertFired {
		t.Fatalf("%v %v", alerts, err)
	}
	if !strings.HasPrefix(alerts[0].String(), "balance-warning fired: ") {
		t.Fatal(alerts[0].String())
	}
	snap, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	again, err := RestoreCreditMonitor(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	st, err := again.Status()
	if err != nil || len(st.Active) != 1 || st.BalanceUSD == nil {
		t.Fatalf("%+v %v", st, err)
	}
	if alerts, _ := again.Observe(CreditSnapshot{Credits: &credits}, time.Now()); len(alerts) != 0 {
		t.Fatalf("fired again after a restore: %v", alerts)
	}
	if _, err := NewCreditMonitor(CreditSettings{HysteresisPercent: 95}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad settings: %v", err)
	}
	if _, err := RestoreCreditMonitor([]byte("{")); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad snapshot: %v", err)
	}
	var re *ResponseError
	if _, err := ParseCredits([]byte(`{"data":{"total_credits":1}}`)); !errors.As(err, &re) || re.Code != "missing-field" {
		t.Fatalf("missing: %v", err)
	}
	a, ok := SuggestMaxTokens("You requested up to 16384 tokens, but can only afford 4000.")
	if !ok || a.SuggestedMaxTokens != 3800 || a.RequestedTokens != 16384 {
		t.Fatalf("afford: %+v", a)
	}
	if _, ok := SuggestMaxTokens("nothing here"); ok {
		t.Fatal("found nothing")
	}
	m2, _ := NewCreditMonitor(CreditSettings{})
	m2.Close()
	if _, err := m2.Status(); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}
