// Command llmr-classify classifies failed LLM API calls from JSON lines through the Go package.
//
// It reads lines {"status":…, "headers":{…}, "body":"…", "transport":"…", "wall_clock_ms":…}
// (every field optional) from stdin and prints one classification JSON object per line, with
// the same fields as `llmr classify --jsonl`; a malformed line prints {"error":…,"line":N} and
// the exit status is 1 at the end. scripts/demo.py uses it to show that Go gets the same
// answers as every other surface.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	llmr "github.com/llm-resilience/llm-resilience/ffi/go"
)

type input struct {
	Status      *int              `json:"status"`
	Headers     map[string]string `json:"headers"`
	Body        *string           `json:"body"`
	Transport   *string           `json:"transport"`
	WallClockMs *int64            `json:"wall_clock_ms"`
}

type output struct {
	Kind            string  `json:"kind"`
	Retryable       bool    `json:"retryable"`
	RetryAfterMs    *int64  `json:"retry_after_ms"`
	LimitTokens     *uint64 `json:"limit_tokens"`
	RequestedTokens *uint64 `json:"requested_tokens"`
	Provider        *string `json:"provider"`
	Code            *string `json:"code"`
	ErrorType       *string `json:"error_type"`
	Message         string  `json:"message"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func classify(in input) (output, error) {
	status := 0
	if in.Status != nil {
		status = *in.Status
	}
	headers := http.Header{}
	for name, value := range in.Headers {
		headers[name] = []string{value} // as given: no canonicalisation
	}
	var body []byte
	if in.Body != nil {
		body = []byte(*in.Body)
	}
	transport := ""
	if in.Transport != nil {
		transport = *in.Transport
	}
	var wallClock time.Time
	if in.WallClockMs != nil {
		wallClock = time.UnixMilli(*in.WallClockMs)
	}
	c, err := llmr.ClassifyRaw(status, headers, body, transport, wallClock)
	if err != nil {
		return output{}, err
	}
	out := output{
		Kind:      c.Kind.String(),
		Retryable: c.Retryable,
		Provider:  optional(c.Provider),
		Code:      optional(c.Code),
		ErrorType: optional(c.ErrorType),
		Message:   c.Message,
	}
	if c.HasRetryAfter {
		ms := c.RetryAfter.Milliseconds()
		out.RetryAfterMs = &ms
	}
	if c.HasLimitTokens {
		out.LimitTokens = &c.LimitTokens
	}
	if c.HasRequestedTokens {
		out.RequestedTokens = &c.RequestedTokens
	}
	return out, nil
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetEscapeHTML(false)
	failed := false
	for lineNo := 1; scanner.Scan(); lineNo++ {
		if len(scanner.Bytes()) == 0 {
			continue
		}
		var in input
		var result any
		if err := json.Unmarshal(scanner.Bytes(), &in); err != nil {
			result, failed = map[string]any{"error": err.Error(), "line": lineNo}, true
		} else if out, err := classify(in); err != nil {
			result, failed = map[string]any{"error": err.Error(), "line": lineNo}, true
		} else {
			result = out
		}
		if err := encoder.Encode(result); err != nil {
			fmt.Fprintln(os.Stderr, "llmr-classify:", err)
			os.Exit(2)
		}
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "llmr-classify:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}
