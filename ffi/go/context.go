package llmresilience

/*
#include <stdlib.h>
#include "llm_resilience.h"
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// Errors of context trimming. The error returned is a *ContextError that wraps one of them.
var (
	// ErrDoesNotFit: the system prompt, the latest message and the tool schemas alone exceed
	// the budget. Nothing is cut from them: shorten the message or pick a larger model.
	ErrDoesNotFit = errors.New("llm-resilience: the system prompt and the latest message do not fit")
	// ErrContextRejected: the latest message is not a user message, or (NextBudget) the
	// failure is not a context overflow or gives nothing to shrink from.
	ErrContextRejected = errors.New("llm-resilience: context input rejected")
)

// ContextSettings is a trimming budget. The zero value of every field means its documented
// default, so ContextSettings{} is a 128 000-token window with 1 024 tokens reserved for the
// reply and a 256-token safety margin.
type ContextSettings struct {
	// ContextWindow is the model's context window, tokens. Default 128 000.
	ContextWindow int
	// ReservedOutputTokens are kept free for the reply (the request's max_tokens). Default
	// 1 024; negative means 0.
	ReservedOutputTokens int
	// SafetyMarginTokens are kept free for counting differences with the provider. Default
	// 256; negative means 0.
	SafetyMarginTokens int
	// MaxHistoryMessages keeps at most this many history messages (newest). 0: no limit;
	// negative: send no history.
	MaxHistoryMessages int
	// MaxDocumentChars cuts longer documents to this many characters. 0: no cap.
	MaxDocumentChars int
	// MaxMessageChars cuts longer history messages to this many characters. 0: no cap.
	MaxMessageChars int
	// MinDocumentChars is how far documents are cut, lowest-ranked first, before any history
	// is dropped. Default 500; negative means 0 (drop documents before any history).
	MinDocumentChars int
}

// contextConfig is the library's ContextConfig JSON.
type contextConfig struct {
	ContextWindow        *int64 `json:"context_window,omitempty"`
	ReservedOutputTokens *int64 `json:"reserved_output_tokens,omitempty"`
	SafetyMarginTokens   *int64 `json:"safety_margin_tokens,omitempty"`
	MaxHistoryMessages   *int64 `json:"max_history_messages,omitempty"`
	MaxDocumentChars     *int64 `json:"max_document_chars,omitempty"`
	MaxMessageChars      *int64 `json:"max_message_chars,omitempty"`
	MinDocumentChars     *int64 `json:"min_document_chars,omitempty"`
}

func setting(n int) *int64 {
	if n == 0 {
		return nil
	}
	v := orZero(int64(n))
	return &v
}

func (s ContextSettings) configJSON() []byte {
	c := contextConfig{
		ContextWindow:        setting(s.ContextWindow),
		ReservedOutputTokens: setting(s.ReservedOutputTokens),
		SafetyMarginTokens:   setting(s.SafetyMarginTokens),
		MaxHistoryMessages:   setting(s.MaxHistoryMessages),
		MaxDocumentChars:     setting(s.MaxDocumentChars),
		MaxMessageChars:      setting(s.MaxMessageChars),
		MinDocumentChars:     setting(s.MinDocumentChars),
	}
	if s.ContextWindow < 0 {
		w := int64(s.ContextWindow) // rejected by the library, with the reason
		c.ContextWindow = &w
	}
	text, _ := json.Marshal(c) // pointers to numbers always marshal
	return text
}

// settingsOf turns a library ContextConfig back into settings (0 becomes -1 where 0 is not
// the default).
func settingsOf(c contextConfig) ContextSettings {
	get := func(p *int64, zero int) int {
		if p == nil {
			return 0
		}
		if *p == 0 {
			return zero
		}
		return int(*p)
	}
	return ContextSettings{
		ContextWindow:        get(c.ContextWindow, 0),
		ReservedOutputTokens: get(c.ReservedOutputTokens, -1),
		SafetyMarginTokens:   get(c.SafetyMarginTokens, -1),
		MaxHistoryMessages:   get(c.MaxHistoryMessages, -1),
		MaxDocumentChars:     get(c.MaxDocumentChars, 0),
		MaxMessageChars:      get(c.MaxMessageChars, 0),
		MinDocumentChars:     get(c.MinDocumentChars, -1),
	}
}

// Document is a knowledge-base document to send with the request.
type Document struct {
	// ID is the caller's name for it (not sent, not counted), to read the report by.
	ID string
	// Text is what is sent, as a system message.
	Text string
}

// TrimInput is what to trim. Trim never changes it.
type TrimInput struct {
	// System is the system prompt; always sent first, whole.
	System string
	// Documents are knowledge-base documents, best-ranked first.
	Documents []Document
	// History is the conversation so far, oldest first (without the latest message).
	History []Message
	// Latest is the customer's latest message; it must have RoleUser. Always sent last, whole.
	Latest Message
	// Tools are the tool schemas sent with the request (they count against the budget).
	Tools []ToolSchema
}

// FateKind is what happened to one document or history message.
type FateKind string

// The three fates.
const (
	// Kept: sent unchanged.
	Kept FateKind = "kept"
	// Truncated: sent cut to a prefix of CharsAfter of its CharsBefore characters, then
	// "…[truncated]".
	Truncated FateKind = "truncated"
	// Dropped: not sent, for Reason.
	Dropped FateKind = "dropped"
)

// DropReason is why a document or history message was not sent.
type DropReason string

// The drop reasons.
const (
	// DropBudget: it did not fit in the token budget.
	DropBudget DropReason = "budget"
	// DropMaxMessages: more history messages than MaxHistoryMessages.
	DropMaxMessages DropReason = "max-messages"
	// DropOrphanToolResult: a tool result that no kept tool call asks for.
	DropOrphanToolResult DropReason = "orphan-tool-result"
	// DropUnansweredToolCall: a tool call whose results are not all in the history.
	DropUnansweredToolCall DropReason = "unanswered-tool-call"
	// DropBeforeFirstUserTurn: before the first kept user message.
	DropBeforeFirstUserTurn DropReason = "before-first-user-turn"
)

// Fate is what happened to one document or history message.
type Fate struct {
	// Kind is kept, truncated or dropped.
	Kind FateKind `json:"fate"`
	// CharsBefore is, when truncated, the characters (Unicode code points) of the original.
	CharsBefore int `json:"chars_before"`
	// CharsAfter is, when truncated, the characters of the prefix sent (marker not counted).
	CharsAfter int `json:"chars_after"`
	// Reason is, when dropped, why.
	Reason DropReason `json:"reason"`
}

// String formats the fate: "kept", "truncated 1200→500 chars", "dropped (budget)".
func (f Fate) String() string {
	switch f.Kind {
	case Truncated:
		return fmt.Sprintf("truncated %d→%d chars", f.CharsBefore, f.CharsAfter)
	case Dropped:
		return fmt.Sprintf("dropped (%s)", f.Reason)
	default:
		return string(f.Kind)
	}
}

// TrimReport says what Trim did.
type TrimReport struct {
	// TokensBefore is the untrimmed request, counted; valid only if HasTokensBefore (not
	// when it is larger than the counter accepts).
	TokensBefore int
	// HasTokensBefore says whether TokensBefore is known.
	HasTokensBefore bool
	// TokensAfter is the request returned, counted: never more than LimitTokens.
	TokensAfter int
	// LimitTokens is the budget's limit: window − reserved output − safety margin.
	LimitTokens int
	// Documents has one fate per input document, in input order.
	Documents []Fate
	// History has one fate per input history message, in input order.
	History []Fate
}

// String summarises the report: "tokens 5210→3980 of 4000; kept 7, truncated 1, dropped 4".
func (r TrimReport) String() string {
	before := "?"
	if r.HasTokensBefore {
		before = fmt.Sprint(r.TokensBefore)
	}
	var k, t, d int
	for _, f := range append(append([]Fate{}, r.Documents...), r.History...) {
		switch f.Kind {
		case Kept:
			k++
		case Truncated:
			t++
		default:
			d++
		}
	}
	return fmt.Sprintf("tokens %s→%d of %d; kept %d, truncated %d, dropped %d",
		before, r.TokensAfter, r.LimitTokens, k, t, d)
}

// Trimmed is the request to send and what was done to get it.
type Trimmed struct {
	// Messages is [system, document…, history…, latest]; each kept document is a system
	// message, best first.
	Messages []Message
	// Report says what was kept, cut and dropped, and the token counts.
	Report TrimReport
}

// ContextError is a trimming or NextBudget failure the caller must act on. errors.Is(err,
// ErrDoesNotFit), ErrContextRejected or ErrTooLargeToCount holds.
type ContextError struct {
	// Code is the library's name: "does-not-fit", "latest-not-user", "tokens",
	// "not-overflow" or "cannot-shrink".
	Code string
	// RequiredTokens (does-not-fit) is what the system prompt and latest message take.
	RequiredTokens int
	// LimitTokens (does-not-fit) is the budget's limit.
	LimitTokens int
	// Role (latest-not-user) is the latest message's role.
	Role Role
	// Kind (not-overflow) is the failure's kind.
	Kind Kind
	// Message (tokens) is the counter's error.
	Message string
}

// Error implements error.
func (e *ContextError) Error() string {
	switch e.Code {
	case "does-not-fit":
		return fmt.Sprintf("llm-resilience: the system prompt and the latest message alone take %d tokens, over the budget of %d",
			e.RequiredTokens, e.LimitTokens)
	case "latest-not-user":
		return fmt.Sprintf("llm-resilience: the latest message must have the user role (got %s)", e.Role)
	case "not-overflow":
		return fmt.Sprintf("llm-resilience: not a context overflow (got %s)", e.Kind)
	case "tokens":
		return "llm-resilience: token counting failed: " + e.Message
	default:
		return "llm-resilience: context: " + e.Code
	}
}

// Unwrap makes errors.Is work with ErrDoesNotFit, ErrContextRejected and ErrTooLargeToCount.
func (e *ContextError) Unwrap() error {
	switch e.Code {
	case "does-not-fit":
		return ErrDoesNotFit
	case "tokens":
		return ErrTooLargeToCount
	default:
		return ErrContextRejected
	}
}

// contextError reads the library's ContextError JSON for a trimming result code.
func contextError(r C.LlmrResult, message *C.char) error {
	switch uint32(r) {
	case C.LLMR_DOES_NOT_FIT, C.LLMR_CONTEXT_REJECTED, C.LLMR_TOO_LARGE_TO_COUNT:
		var wire struct {
			Error          string `json:"error"`
			RequiredTokens int    `json:"required_tokens"`
			LimitTokens    int    `json:"limit_tokens"`
			Role           Role   `json:"role"`
			Kind           string `json:"kind"`
			Message        string `json:"message"`
		}
		if message == nil || json.Unmarshal([]byte(C.GoString(message)), &wire) != nil {
			return tokenError(r, nil)
		}
		e := &ContextError{Code: wire.Error, RequiredTokens: wire.RequiredTokens,
			LimitTokens: wire.LimitTokens, Role: wire.Role, Message: wire.Message}
		if wire.Kind != "" {
			e.Kind = kindOfName(wire.Kind)
		}
		return e
	default:
		return handleError(r, message)
	}
}

// kindOfName is the Kind with the library's name (KindUnknown if none).
func kindOfName(name string) Kind {
	for k, n := range kindNames {
		if n == name {
			return k
		}
	}
	return KindUnknown
}

// callJSON runs a library function that writes a JSON string (or an error string) and
// returns the JSON text.
func callJSON(f func(out, errOut **C.char) C.LlmrResult, fail func(C.LlmrResult, *C.char) error) ([]byte, error) {
	var out, message *C.char
	r := f(&out, &message)
	defer C.llmr_string_free(message)
	if r != C.LLMR_OK {
		return nil, fail(r, message)
	}
	return []byte(takeString(out)), nil
}

// Trim fits a conversation into a budget, counting with counter (an exact counter for the
// model's encoding, or the upper bound). The system prompt and the latest message are always
// sent whole; documents shrink before history is dropped; history is kept newest first, as
// whole exchanges starting with a user turn; text is cut only between grapheme clusters; the
// result never exceeds the budget by the counter's measure. A budget the library rejects is a
// *ConfigError; ErrDoesNotFit, ErrContextRejected and ErrTooLargeToCount come as a
// *ContextError.
func Trim(settings ContextSettings, in TrimInput, counter *TokenCounter) (Trimmed, error) {
	if counter == nil {
		return Trimmed{}, ErrClosed
	}
	docs := make([]string, len(in.Documents))
	for i, d := range in.Documents {
		docs[i] = d.Text
	}
	history := in.History
	if history == nil {
		history = []Message{}
	}
	tools := in.Tools
	if tools == nil {
		tools = []ToolSchema{}
	}
	input, err := json.Marshal(struct {
		System    string       `json:"system"`
		Documents []string     `json:"documents"`
		History   []Message    `json:"history"`
		Latest    Message      `json:"latest"`
		Tools     []ToolSchema `json:"tools"`
	}{in.System, docs, history, in.Latest, tools})
	if err != nil {
		return Trimmed{}, err
	}
	bp, bn := cJSON(settings.configJSON())
	defer C.free(unsafe.Pointer(bp))
	ip, in2 := cJSON(input)
	defer C.free(unsafe.Pointer(ip))
	if debugGC {
		runtime.GC()
	}
	if !counter.g.enter() {
		return Trimmed{}, ErrClosed
	}
	text, err := callJSON(func(out, errOut **C.char) C.LlmrResult {
		return C.llmr_context_trim(bp, bn, ip, in2, counter.ptr, out, errOut)
	}, contextError)
	counter.g.leave()
	runtime.KeepAlive(counter)
	if err != nil {
		return Trimmed{}, err
	}
	var wire struct {
		Messages []Message `json:"messages"`
		Report   struct {
			TokensBefore *int   `json:"tokens_before"`
			TokensAfter  int    `json:"tokens_after"`
			LimitTokens  int    `json:"limit_tokens"`
			Documents    []Fate `json:"documents"`
			History      []Fate `json:"history"`
		} `json:"report"`
	}
	if err := json.Unmarshal(text, &wire); err != nil {
		return Trimmed{}, fmt.Errorf("llm-resilience: reading the trim result: %w", err)
	}
	rep := TrimReport{TokensAfter: wire.Report.TokensAfter, LimitTokens: wire.Report.LimitTokens,
		Documents: wire.Report.Documents, History: wire.Report.History}
	if wire.Report.TokensBefore != nil {
		rep.TokensBefore, rep.HasTokensBefore = *wire.Report.TokensBefore, true
	}
	return Trimmed{Messages: wire.Messages, Report: rep}, nil
}

// classificationJSON is the library's Classification JSON of c.
func classificationJSON(c Classification) ([]byte, error) {
	m := map[string]any{"kind": c.Kind.String(), "retryable": c.Retryable}
	if c.HasRetryAfter {
		m["retry_after_ms"] = c.RetryAfter.Milliseconds()
	}
	if c.HasLimitTokens {
		m["limit_tokens"] = c.LimitTokens
	}
	if c.HasRequestedTokens {
		m["requested_tokens"] = c.RequestedTokens
	}
	return json.Marshal(m)
}

// NextBudget returns the budget to trim to after the provider rejected a request of
// requestTokens tokens (the trimmed request's Report.TokensAfter; 0 if unknown) with a
// context overflow, and its limit in tokens. The limit equals the target of the
// ShrinkContext decision a RetryPolicy with the same settings makes for the same failure, so
// trimming to it shrinks the request exactly as far as the retry policy asked. A failure
// that is not a context overflow, or that gives nothing to shrink from, is a *ContextError
// wrapping ErrContextRejected.
func NextBudget(failure Classification, current ContextSettings, requestTokens int, retry RetrySettings) (ContextSettings, int, error) {
	fj, err := classificationJSON(failure)
	if err != nil {
		return ContextSettings{}, 0, err
	}
	rj, err := retry.configJSON()
	if err != nil {
		return ContextSettings{}, 0, err
	}
	fp, fn := cJSON(fj)
	defer C.free(unsafe.Pointer(fp))
	cp, cn := cJSON(current.configJSON())
	defer C.free(unsafe.Pointer(cp))
	rp, rn := cJSON(rj)
	defer C.free(unsafe.Pointer(rp))
	text, err := callJSON(func(out, errOut **C.char) C.LlmrResult {
		return C.llmr_context_next_budget(fp, fn, cp, cn, C.bool(requestTokens > 0),
			C.uint64_t(max(requestTokens, 0)), rp, rn, out, errOut)
	}, contextError)
	if err != nil {
		return ContextSettings{}, 0, err
	}
	var wire struct {
		Budget      contextConfig `json:"budget"`
		LimitTokens int           `json:"limit_tokens"`
	}
	if err := json.Unmarshal(text, &wire); err != nil {
		return ContextSettings{}, 0, fmt.Errorf("llm-resilience: reading the next budget: %w", err)
	}
	return settingsOf(wire.Budget), wire.LimitTokens, nil
}
