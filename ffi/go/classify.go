package llmresilience

/*
#include <stdlib.h>
#include "llm_resilience.h"

// Not in the header on purpose: the version-named symbol of the library version this binding
// was written for. A library of another version does not export it, so linking fails.
extern const char *llmr_version_0_1_0(void);

// A non-NULL pointer for an empty (but present) transport message.
static const char *llmr_go_empty(void) { return ""; }
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Kind is what kind of failure a call met: a closed set with one catch-all (KindUnknown).
// The values are those of the C ABI's LlmrErrorKind.
type Kind uint32

// The kinds of failure. String gives the kebab-case name used everywhere ("rate-limited").
const (
	// KindAuth: credentials invalid, revoked or missing. Not retryable.
	KindAuth Kind = C.LLMR_ERROR_KIND_AUTH
	// KindQuotaExhausted: no money or quota left on the account or key. Not retryable.
	KindQuotaExhausted Kind = C.LLMR_ERROR_KIND_QUOTA_EXHAUSTED
	// KindModeration: the input or output was flagged by a content filter. Not retryable.
	KindModeration Kind = C.LLMR_ERROR_KIND_MODERATION
	// KindRateLimited: temporary throttling; retry after the hinted delay.
	KindRateLimited Kind = C.LLMR_ERROR_KIND_RATE_LIMITED
	// KindTimeout: the call timed out (client, gateway or upstream). Retryable.
	KindTimeout Kind = C.LLMR_ERROR_KIND_TIMEOUT
	// KindContextOverflow: the request is larger than the endpoint accepts; shrink it first.
	KindContextOverflow Kind = C.LLMR_ERROR_KIND_CONTEXT_OVERFLOW
	// KindInvalidRequest: malformed or unsupported request. Not retryable.
	KindInvalidRequest Kind = C.LLMR_ERROR_KIND_INVALID_REQUEST
	// KindNotFound: the model or endpoint does not exist. Not retryable; use a fallback model.
	KindNotFound Kind = C.LLMR_ERROR_KIND_NOT_FOUND
	// KindOverloaded: the provider is saturated. Retryable with backoff.
	KindOverloaded Kind = C.LLMR_ERROR_KIND_OVERLOADED
	// KindUnavailable: the upstream is down or unreachable. Retryable; trips breakers.
	KindUnavailable Kind = C.LLMR_ERROR_KIND_UNAVAILABLE
	// KindServerError: any other upstream 5xx. Retryable, a limited number of times.
	KindServerError Kind = C.LLMR_ERROR_KIND_SERVER_ERROR
	// KindNetwork: connection refused or reset, DNS, TLS, a cut stream. Retryable except TLS.
	KindNetwork Kind = C.LLMR_ERROR_KIND_NETWORK
	// KindUnknown: none of the above; do not parse the message. Not retryable.
	KindUnknown Kind = C.LLMR_ERROR_KIND_UNKNOWN
)

// Kinds lists every kind in numeric order.
var Kinds = [...]Kind{
	KindAuth, KindQuotaExhausted, KindModeration, KindRateLimited, KindTimeout,
	KindContextOverflow, KindInvalidRequest, KindNotFound, KindOverloaded, KindUnavailable,
	KindServerError, KindNetwork, KindUnknown,
}

// kindNames holds the names the C ABI gives (llmr_error_kind_name), read once.
var kindNames = func() map[Kind]string {
	names := make(map[Kind]string, len(Kinds))
	for _, k := range Kinds {
		names[k] = C.GoString(C.llmr_error_kind_name(C.uint32_t(k)))
	}
	return names
}()

// String returns the kebab-case name ("quota-exhausted"), or "Kind(N)" for a value that is
// not a kind.
func (k Kind) String() string {
	if name, ok := kindNames[k]; ok {
		return name
	}
	return fmt.Sprintf("Kind(%d)", uint32(k))
}

// Classification is what a failure was, and what it says about retrying.
type Classification struct {
	// Kind is the kind of failure.
	Kind Kind
	// Retryable says whether retrying the same request (after RetryAfter, if any) can succeed.
	Retryable bool
	// RetryAfter is how long the server asked to wait; valid only if HasRetryAfter (a hint of
	// 0 is a real hint: "now").
	RetryAfter time.Duration
	// HasRetryAfter says whether the response carried a retry delay.
	HasRetryAfter bool
	// LimitTokens is the context limit or per-request cap the error states; valid only if
	// HasLimitTokens.
	LimitTokens uint64
	// HasLimitTokens says whether the error stated a token limit.
	HasLimitTokens bool
	// RequestedTokens is the request size the error states; valid only if HasRequestedTokens.
	RequestedTokens uint64
	// HasRequestedTokens says whether the error stated the request size.
	HasRequestedTokens bool
	// Provider is the provider that produced the error ("openai"); "" when unknown.
	Provider string
	// Code is the provider's own error code ("rate_limit_exceeded"); "" when there is none.
	Code string
	// ErrorType is OpenRouter's error.metadata.error_type; "" when there is none.
	ErrorType string
	// Message is a human-readable message with secrets redacted. Show or log it; do not
	// parse it.
	Message string
}

// String formats the classification on one line, e.g.
// "rate-limited retryable retry-after=2.4s code=rate_limit_exceeded: Rate limit reached …".
func (c Classification) String() string {
	var b strings.Builder
	b.WriteString(c.Kind.String())
	if c.Retryable {
		b.WriteString(" retryable")
	} else {
		b.WriteString(" not-retryable")
	}
	if c.HasRetryAfter {
		fmt.Fprintf(&b, " retry-after=%s", c.RetryAfter)
	}
	if c.HasLimitTokens {
		fmt.Fprintf(&b, " limit-tokens=%d", c.LimitTokens)
	}
	if c.HasRequestedTokens {
		fmt.Fprintf(&b, " requested-tokens=%d", c.RequestedTokens)
	}
	for _, f := range [...]struct{ key, value string }{
		{"provider", c.Provider}, {"code", c.Code}, {"error-type", c.ErrorType},
	} {
		if f.value != "" {
			fmt.Fprintf(&b, " %s=%s", f.key, f.value)
		}
	}
	if c.Message != "" {
		b.WriteString(": ")
		b.WriteString(c.Message)
	}
	return b.String()
}

// Errors the C layer reports (see LlmrResult in llm_resilience.h). ClassifyRaw returns them;
// the other functions prevent them by cleaning their input.
var (
	// ErrNullParameter: the library was given a NULL pointer (a bug in this package).
	ErrNullParameter = errors.New("llm-resilience: null parameter")
	// ErrInvalidUTF8: a header name or value, or the transport message, is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("llm-resilience: invalid UTF-8 in a header or the transport message")
	// ErrInputTooLarge: more than 4096 headers, a header or transport message over 1 MiB, or a
	// body over 1 GiB.
	ErrInputTooLarge = errors.New("llm-resilience: input beyond the C ABI limits")
	// ErrPanic: the library panicked (a bug); the call had no effect.
	ErrPanic = errors.New("llm-resilience: the library panicked")
	// ErrInvalidStatus: a status outside 0..65535 was given to ClassifyRaw.
	ErrInvalidStatus = errors.New("llm-resilience: HTTP status out of range")
)

// resultError turns an LlmrResult into a Go error (nil for LLMR_OK).
func resultError(r uint32) error {
	switch r {
	case C.LLMR_OK:
		return nil
	case C.LLMR_NULL_PARAMETER:
		return ErrNullParameter
	case C.LLMR_INVALID_UTF8:
		return ErrInvalidUTF8
	case C.LLMR_INPUT_TOO_LARGE:
		return ErrInputTooLarge
	case C.LLMR_PANIC:
		return ErrPanic
	default:
		return fmt.Errorf("llm-resilience: result %d (%s)", r,
			C.GoString(C.llmr_result_name(C.uint32_t(r))))
	}
}

// Version returns the version of the linked library ("0.1.0").
func Version() string {
	// The version-named symbol: the reference that makes a stale library fail to link.
	return C.GoString(C.llmr_version_0_1_0())
}

// Classify classifies a failed HTTP call from its response and the body read from it, using
// the current wall-clock time (for HTTP-date Retry-After and epoch reset headers). resp may be
// nil (then only the body is used). It is ClassifyAt(resp, body, time.Now()).
func Classify(resp *http.Response, body []byte) Classification {
	return ClassifyAt(resp, body, time.Now())
}

// ClassifyAt is Classify at an explicit wall-clock time; a zero wallClock means unknown (date
// and epoch hints are then ignored). All of resp's headers are passed, in sorted name order;
// invalid UTF-8 in them becomes U+FFFD. It never fails (see the package doc).
func ClassifyAt(resp *http.Response, body []byte, wallClock time.Time) Classification {
	in := rawInput{body: clip(body, C.LLMR_LIMIT_BODY_BYTES), wallClock: wallClock}
	if resp != nil {
		in.status, in.hasStatus = statusOf(resp.StatusCode)
		in.headers = flattenHeaders(resp.Header, true)
	}
	return mustClassify(in)
}

// ClassifyTransport classifies a call that failed before a response arrived, from the error's
// text (err.Error()), as returned by net/http's Client.Do. A nil error is not a failure: the
// result is KindUnknown, not retryable, with an empty message, so that code classifying every
// outcome never retries a success. It never fails (see the package doc).
func ClassifyTransport(err error) Classification {
	if err == nil {
		return Classification{Kind: KindUnknown}
	}
	text := cleanString(err.Error())
	return mustClassify(rawInput{transport: &text})
}

// ClassifyRaw is the low-level form: status (0 or less: no response), headers (in sorted name
// order), body, the transport error text ("" for none) and the wall-clock time (zero:
// unknown) are passed to the library as they are, and its errors are returned: ErrInvalidUTF8,
// ErrInputTooLarge, ErrInvalidStatus, ErrPanic.
func ClassifyRaw(status int, headers http.Header, body []byte, transport string, wallClock time.Time) (Classification, error) {
	in := rawInput{body: body, wallClock: wallClock, headers: flattenHeaders(headers, false)}
	if status > math.MaxUint16 {
		return Classification{}, ErrInvalidStatus
	}
	in.status, in.hasStatus = statusOf(status)
	if transport != "" {
		in.transport = &transport
	}
	return classify(in)
}

// header is one name/value pair, in the order passed to the library.
type header struct{ name, value string }

// rawInput mirrors LlmrClassifyInput with Go values.
type rawInput struct {
	status    uint16
	hasStatus bool
	headers   []header
	body      []byte
	transport *string // nil: no transport failure
	wallClock time.Time
}

func statusOf(code int) (uint16, bool) {
	if code <= 0 || code > math.MaxUint16 {
		return 0, false
	}
	return uint16(code), true
}

// flattenHeaders lists h in sorted name order (map order would make which headers the core
// sees, past its cap, differ from run to run). With clean, names and values are made valid
// UTF-8, pairs beyond the ABI limits are left out (the core ignores headers over 8 KiB and
// after the 128th anyway).
func flattenHeaders(h http.Header, clean bool) []header {
	if len(h) == 0 {
		return nil
	}
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]header, 0, len(names))
	for _, name := range names {
		for _, value := range h[name] {
			if clean {
				if len(out) == C.LLMR_LIMIT_HEADERS {
					return out
				}
				if len(name) > C.LLMR_LIMIT_STRING_BYTES || len(value) > C.LLMR_LIMIT_STRING_BYTES {
					continue
				}
				out = append(out, header{cleanString(name), cleanString(value)})
				continue
			}
			out = append(out, header{name, value})
		}
	}
	return out
}

// cleanString makes s valid UTF-8 of at most LLMR_LIMIT_STRING_BYTES bytes (cut at a rune
// boundary; the core reads only the first 16 KiB of a transport message).
func cleanString(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= C.LLMR_LIMIT_STRING_BYTES {
		return s
	}
	cut := C.LLMR_LIMIT_STRING_BYTES
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func clip(b []byte, limit int) []byte {
	if len(b) > limit {
		return b[:limit]
	}
	return b
}

// mustClassify is classify for cleaned input, where the C layer can only fail by a bug: then
// the result is KindUnknown with the error as its message.
func mustClassify(in rawInput) Classification {
	c, err := classify(in)
	if err != nil {
		return Classification{Kind: KindUnknown, Message: err.Error()}
	}
	return c
}

// pinString returns a pointer to s's bytes for C, pinned until pinner is unpinned; NULL for "".
func pinString(pinner *runtime.Pinner, s string) *C.char {
	if len(s) == 0 {
		return nil
	}
	p := unsafe.StringData(s)
	pinner.Pin(p)
	return (*C.char)(unsafe.Pointer(p))
}

// classify makes the one C call: it pins every piece of Go memory the C input points to,
// calls llmr_classify, copies the result into Go values and frees the C strings.
func classify(in rawInput) (Classification, error) {
	var pinner runtime.Pinner
	defer pinner.Unpin()

	// Allocated by Go and pinned, so that C may read Go pointers stored in it.
	cin := new(C.LlmrClassifyInput)
	pinner.Pin(cin)
	if in.hasStatus {
		cin.has_status = true
		cin.status = C.uint16_t(in.status)
	}
	var headers []C.LlmrHeader
	if len(in.headers) > 0 {
		headers = make([]C.LlmrHeader, len(in.headers))
		for i, h := range in.headers {
			headers[i] = C.LlmrHeader{
				name:      pinString(&pinner, h.name),
				name_len:  C.size_t(len(h.name)),
				value:     pinString(&pinner, h.value),
				value_len: C.size_t(len(h.value)),
			}
		}
		pinner.Pin(&headers[0])
		cin.headers = &headers[0]
		cin.headers_len = C.size_t(len(headers))
	}
	if len(in.body) > 0 {
		pinner.Pin(&in.body[0])
		cin.body = (*C.uint8_t)(unsafe.Pointer(&in.body[0]))
		cin.body_len = C.size_t(len(in.body))
	}
	if in.transport != nil {
		if *in.transport == "" {
			cin.transport = C.llmr_go_empty()
		} else {
			cin.transport = pinString(&pinner, *in.transport)
			cin.transport_len = C.size_t(len(*in.transport))
		}
	}
	if !in.wallClock.IsZero() && in.wallClock.UnixMilli() >= 0 {
		cin.has_wall_clock_ms = true
		cin.wall_clock_ms = C.uint64_t(in.wallClock.UnixMilli())
	}

	if debugGC {
		runtime.GC()
	}
	var out C.LlmrClassification
	r := C.llmr_classify(cin, &out)
	// The strings in out are C memory owned by us from here on; free them however we leave.
	defer C.llmr_classification_free(&out)
	runtime.KeepAlive(in)
	runtime.KeepAlive(headers)
	runtime.KeepAlive(cin)
	if err := resultError(uint32(r)); err != nil {
		return Classification{}, err
	}

	c := Classification{
		Kind:               Kind(out.kind),
		Retryable:          bool(out.retryable),
		HasRetryAfter:      bool(out.has_retry_after_ms),
		LimitTokens:        uint64(out.limit_tokens),
		HasLimitTokens:     bool(out.has_limit_tokens),
		RequestedTokens:    uint64(out.requested_tokens),
		HasRequestedTokens: bool(out.has_requested_tokens),
		Provider:           goString(out.provider),
		Code:               goString(out.code),
		ErrorType:          goString(out.error_type),
		Message:            goString(out.message),
	}
	if c.HasRetryAfter {
		c.RetryAfter = millis(uint64(out.retry_after_ms))
	}
	return c, nil
}

func goString(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// millis converts milliseconds to a Duration, saturating instead of overflowing.
func millis(ms uint64) time.Duration {
	if ms > uint64(math.MaxInt64/int64(time.Millisecond)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ms) * time.Millisecond
}
