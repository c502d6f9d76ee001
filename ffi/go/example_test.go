package llmresilience_test

import (
	"fmt"
	"net/http"

	llmresilience "github.com/llm-resilience/llm-resilience/ffi/go"
)

// An OpenAI 429 for a tokens-per-minute limit, as the API returns it: the body says
// rate_limit_exceeded and "try again in 2.4s"; the retry-after-ms header says the same.
func ExampleClassify() {
	resp := &http.Response{
		StatusCode: http.StatusTooManyRequests,
		Header: http.Header{
			"Content-Type":   {"application/json"},
			"Retry-After-Ms": {"2400"},
		},
	}
	body := []byte(`{
  "error": {
    "message": "Rate limit reached for gpt-4o in organization org-abc123 on tokens per min (TPM): Limit 30000, Used 29324, Requested 1100. Please try again in 2.4s. Visit https://platform.openai.com/account/rate-limits to learn more.",
    "type": "tokens",
    "param": null,
    "code": "rate_limit_exceeded"
  }
}`)
	c := llmresilience.Classify(resp, body)
	fmt.Println("kind:", c.Kind)
	fmt.Println("retryable:", c.Retryable)
	fmt.Println("retry after:", c.RetryAfter)
	fmt.Println("code:", c.Code)
	// Output:
	// kind: rate-limited
	// retryable: true
	// retry after: 2.4s
	// code: rate_limit_exceeded
}

// A call that failed before any response: the error text decides.
func ExampleClassifyTransport() {
	_, err := http.Get("http://127.0.0.1:1/v1/chat/completions") // nothing listens on port 1
	c := llmresilience.ClassifyTransport(err)
	fmt.Println(c.Kind, c.Retryable)
	// Output: network true
}
