package llmresilience

/*
#include <stdlib.h>
#include "llm_resilience.h"
*/
import "C"

import (
	"encoding/json"
	"errors"
	"runtime"
	"unsafe"
)

// ErrTooLargeToCount: a text, or a request's texts together, is longer than the 4 MiB the
// token counter tokenizes in one call. Nothing was counted.
var ErrTooLargeToCount = errors.New("llm-resilience: text too large to count (over 4 MiB)")

// Role is who wrote a chat message.
type Role string

// The four roles of the OpenAI-compatible chat API.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
)

// ToolCall is a tool call made by an assistant message.
type ToolCall struct {
	// ID is the call's id; the tool result names it in ToolCallID.
	ID string `json:"id"`
	// Name is the function called.
	Name string `json:"name"`
	// Arguments is the JSON text the model produced.
	Arguments string `json:"arguments"`
}

// Message is one chat message, as the OpenAI-compatible chat API (and OpenRouter) carries it.
type Message struct {
	// Role says who wrote it.
	Role Role `json:"role"`
	// Content is the text (may be empty for an assistant message that only calls tools).
	Content string `json:"content"`
	// Name is an optional participant name ("" for none).
	Name string `json:"name,omitempty"`
	// ToolCalls are the tool calls of an assistant message.
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// ToolCallID is, for a tool message, the id of the call it answers.
	ToolCallID string `json:"tool_call_id,omitempty"`
}

// ToolSchema is a tool (function) the model may call, as sent in the request's tools.
type ToolSchema struct {
	// Name is the function name.
	Name string `json:"name"`
	// Description is what it does.
	Description string `json:"description"`
	// Parameters is its JSON-schema parameters, as JSON text.
	Parameters string `json:"parameters"`
}

// Encoding is a byte-pair encoding of OpenAI's models.
type Encoding uint32

// The encodings the library counts exactly.
const (
	// O200kBase is gpt-4o, gpt-4o-mini, gpt-4.1, gpt-5 and the o-series.
	O200kBase Encoding = C.LLMR_ENCODING_O200K_BASE
	// Cl100kBase is gpt-4, gpt-4-turbo and gpt-3.5-turbo.
	Cl100kBase Encoding = C.LLMR_ENCODING_CL100K_BASE
)

// String returns tiktoken's name of the encoding ("o200k_base").
func (e Encoding) String() string {
	switch e {
	case O200kBase:
		return "o200k_base"
	case Cl100kBase:
		return "cl100k_base"
	default:
		return "invalid-encoding"
	}
}

// EncodingForModel returns the encoding an OpenAI model id uses ("openai/gpt-4o" →
// O200kBase, "gpt-4" → Cl100kBase); every other model gets O200kBase, the best starting point
// for other providers' models.
func EncodingForModel(model string) Encoding {
	var e C.LlmrEncoding
	p, n := keyArg(model)
	if C.llmr_encoding_for_model(p, n, &e) != C.LLMR_OK {
		return O200kBase
	}
	return Encoding(e)
}

// TokenCounter counts tokens: exactly for one Encoding (NewTokenCounter), or as an upper
// bound that is never lower than either encoding's count (NewUpperBoundCounter). It is
// immutable and safe for concurrent use. Close releases it; one that is garbage collected
// without Close is released by a cleanup.
type TokenCounter struct {
	ptr     *C.LlmrTokenCounter
	g       handleGuard
	cleanup runtime.Cleanup
}

func newTokenCounter(ptr *C.LlmrTokenCounter) *TokenCounter {
	c := &TokenCounter{ptr: ptr}
	c.cleanup = runtime.AddCleanup(c, func(p *C.LlmrTokenCounter) { C.llmr_token_counter_free(p) }, ptr)
	return c
}

// NewTokenCounter builds an exact counter for e, with the OpenAI cookbook's chat overhead.
// It decodes the encoding's tables (tens of milliseconds, tens of megabytes): build it once
// and share it.
func NewTokenCounter(e Encoding) (*TokenCounter, error) {
	var ptr *C.LlmrTokenCounter
	if r := C.llmr_token_counter_exact(C.uint32_t(e), &ptr); r != C.LLMR_OK {
		return nil, handleError(r, nil)
	}
	return newTokenCounter(ptr), nil
}

// NewUpperBoundCounter builds the table-free counter whose count is never lower than what
// o200k_base or cl100k_base gives (requests include a chat overhead covering both).
func NewUpperBoundCounter() (*TokenCounter, error) {
	var ptr *C.LlmrTokenCounter
	if r := C.llmr_token_counter_upper_bound(&ptr); r != C.LLMR_OK {
		return nil, handleError(r, nil)
	}
	return newTokenCounter(ptr), nil
}

// Close releases the counter. Calling it again does nothing; other methods then return
// ErrClosed (Trim with it too). Close may run concurrently with other methods: a count in
// progress finishes safely, later ones return ErrClosed.
func (c *TokenCounter) Close() error {
	c.g.close(func() {
		c.cleanup.Stop()
		C.llmr_token_counter_free(c.ptr)
	})
	return nil
}

// tokenError turns a result code of the token, context and credits functions into an error.
func tokenError(r C.LlmrResult, message *C.char) error {
	if uint32(r) == C.LLMR_TOO_LARGE_TO_COUNT {
		return ErrTooLargeToCount
	}
	return handleError(r, message)
}

// CountText returns the tokens of text. Text over 4 MiB is ErrTooLargeToCount; text that is
// not valid UTF-8 is ErrInvalidUTF8.
func (c *TokenCounter) CountText(text string) (int, error) {
	var n C.uint64_t
	p, l := keyArg(text)
	if debugGC {
		runtime.GC()
	}
	if !c.g.enter() {
		return 0, ErrClosed
	}
	r := C.llmr_token_counter_count_text(c.ptr, p, l, &n)
	c.g.leave()
	runtime.KeepAlive(c)
	if r != C.LLMR_OK {
		return 0, tokenError(r, nil)
	}
	return int(n), nil
}

// CountMessages returns the tokens of a whole chat request: every message with its chat
// overhead, the tool schemas and the reply priming, as Trim counts it.
func (c *TokenCounter) CountMessages(messages []Message, tools []ToolSchema) (int, error) {
	if messages == nil {
		messages = []Message{}
	}
	if tools == nil {
		tools = []ToolSchema{}
	}
	mj, err := json.Marshal(messages)
	if err != nil {
		return 0, err
	}
	tj, err := json.Marshal(tools)
	if err != nil {
		return 0, err
	}
	mp, mn := cJSON(mj)
	defer C.free(unsafe.Pointer(mp))
	tp, tn := cJSON(tj)
	defer C.free(unsafe.Pointer(tp))
	var n C.uint64_t
	var message *C.char
	if debugGC {
		runtime.GC()
	}
	if !c.g.enter() {
		return 0, ErrClosed
	}
	r := C.llmr_token_counter_count_messages(c.ptr, mp, mn, tp, tn, &n, &message)
	c.g.leave()
	runtime.KeepAlive(c)
	defer C.llmr_string_free(message)
	if r != C.LLMR_OK {
		return 0, tokenError(r, message)
	}
	return int(n), nil
}
