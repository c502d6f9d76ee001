package llmresilience

import (
	"fmt"
	"strings"
	"testing"
)

// The same input as core/benches/context.rs: a 200-message conversation with 5 documents,
// trimmed into an 8 000-token window with the exact o200k_base counter.

const benchSystem = "You are the support assistant of Kopi Kita, an online coffee shop. Be brief and friendly."

func benchHistory() []Message {
	h := make([]Message, 200)
	for i := range h {
		role, sentence := RoleUser, "Halo kak, paket saya belum sampai 😭 bisa dicek? "
		if i%2 == 1 {
			role, sentence = RoleAssistant, "Baik kak, kami cek dulu ya 🙏 mohon ditunggu sebentar. "
		}
		h[i] = Message{Role: role, Content: fmt.Sprintf("Pesan %d, order INV/2026/%d: %s", i, i, strings.Repeat(sentence, i%4+1))}
	}
	return h
}

func benchInput() TrimInput {
	docs := make([]Document, 5)
	for d := range docs {
		docs[d] = Document{ID: fmt.Sprint(d), Text: fmt.Sprintf("Document %d. %s", d,
			strings.Repeat("Returns and refunds: you can return most items within 30 days of delivery for a full refund, provided they are unused. ", 20))}
	}
	return TrimInput{System: benchSystem, Documents: docs, History: benchHistory(),
		Latest: Message{Role: RoleUser, Content: "Kak, paket saya kapan sampai? 🙏"}}
}

var benchSettings = ContextSettings{ContextWindow: 8000, ReservedOutputTokens: 1024, SafetyMarginTokens: 256}

// BenchmarkTrimCgo trims the conversation through cgo (JSON in and out included); compare
// with `cargo bench -p llm-resilience --features tiktoken --bench context`
// (context/o200k_base/trim-200-messages-5-documents).
func BenchmarkTrimCgo(b *testing.B) {
	counter, err := NewTokenCounter(O200kBase)
	if err != nil {
		b.Fatal(err)
	}
	defer counter.Close()
	in := benchInput()
	t, err := Trim(benchSettings, in, counter)
	if err != nil {
		b.Fatal(err)
	}
	if t.Report.TokensAfter > t.Report.LimitTokens || len(t.Messages) < 3 {
		b.Fatalf("bad trim: %v", t.Report)
	}
	b.Logf("tokens %d -> %d of %d (%d messages sent)", t.Report.TokensBefore, t.Report.TokensAfter, t.Report.LimitTokens, len(t.Messages))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Trim(benchSettings, in, counter); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCountTextCgo counts the conversation's text (the history contents joined) through
// cgo; compare with context/o200k_base/count_text-conversation.
func BenchmarkCountTextCgo(b *testing.B) {
	counter, err := NewTokenCounter(O200kBase)
	if err != nil {
		b.Fatal(err)
	}
	defer counter.Close()
	var sb strings.Builder
	for _, m := range benchHistory() {
		sb.WriteString(m.Content)
	}
	text := sb.String()
	n, err := counter.CountText(text)
	if err != nil || n == 0 {
		b.Fatal(n, err)
	}
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := counter.CountText(text); err != nil {
			b.Fatal(err)
		}
	}
}
