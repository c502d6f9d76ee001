package worker

// The HTTP side of one attempt, against httptest servers that send the real shapes of
// tests/vectors/classify.json (OpenRouter's JSON answer, its mid-stream error chunk, a cut
// stream): every outcome must be what the classifier says, not what this package guesses.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	llmr "github.com/llm-resilience/llm-resilience/ffi/go"
)

const okJSON = `{"id":"gen-1","object":"chat.completion","model":"openai/gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10,"cost":0.00001}}`

// From tests/vectors/classify.json, "openrouter-sse-midstream-error-finish-reason".
const errorChunk = `{"id":"cmpl-abc123","object":"chat.completion.chunk","created":1234567890,"model":"gpt-3.5-turbo","provider":"openai","error":{"code":"server_error","message":"Provider disconnected unexpectedly"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}`

const contentChunk = `{"id":"gen-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}`
const stopChunk = `{"id":"gen-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}`

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// hold keeps a request unanswered until the client goes away (or 3 s pass). The body is read
// first: only then does the server notice a closed connection.
func hold(r *http.Request) {
	io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(3 * time.Second):
	}
}

func sse(w http.ResponseWriter, chunks ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	for _, c := range chunks {
		fmt.Fprintf(w, ": OPENROUTER PROCESSING\n\ndata: %s\n\n", c)
		w.(http.Flusher).Flush()
	}
}

func TestSendOutcomes(t *testing.T) {
	cases := []struct {
		name    string
		stream  bool
		h       http.HandlerFunc
		ok      bool
		kind    llmr.Kind
		status  int
		timeout time.Duration
	}{
		{"json answer", false, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, okJSON) }, true, 0, 200, 0},
		{"json error in a 200", false, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"error":{"message":"Provider returned error","code":502,"metadata":{"provider_name":"OpenAI"}}}`)
		}, false, llmr.KindUnavailable, 200, 0},
		{"429 with retry-after", false, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(429)
			fmt.Fprint(w, `{"error":{"message":"Rate limit exceeded: free-models-per-min.","code":429}}`)
		}, false, llmr.KindRateLimited, 429, 0},
		{"stream answer", true, func(w http.ResponseWriter, r *http.Request) { sse(w, contentChunk, stopChunk, "[DONE]") }, true, 0, 200, 0},
		{"stream error chunk", true, func(w http.ResponseWriter, r *http.Request) { sse(w, contentChunk, errorChunk) }, false, llmr.KindServerError, 200, 0},
		{"stream cut", true, func(w http.ResponseWriter, r *http.Request) { sse(w, contentChunk) }, false, llmr.KindNetwork, 200, 0},
		{"slow answer", false, func(w http.ResponseWriter, r *http.Request) {
			hold(r)
		}, false, llmr.KindTimeout, 0, 100 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := serve(t, c.h)
			timeout := c.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			a := send(context.Background(), http.DefaultClient, url, "k", chatRequest{Model: "m", MaxTokens: 5, Stream: c.stream}, timeout)
			if a.ok != c.ok || a.status != c.status || a.cancelled {
				t.Fatalf("ok=%v status=%d cancelled=%v (%v), want ok=%v status=%d", a.ok, a.status, a.cancelled, a.class, c.ok, c.status)
			}
			if !c.ok && a.class.Kind != c.kind {
				t.Errorf("kind = %v, want %v (%v)", a.class.Kind, c.kind, a.class)
			}
		})
	}
}

// A shutdown that cancels the job's context makes the attempt "cancelled", not a failure.
func TestSendCancelled(t *testing.T) {
	url := serve(t, func(w http.ResponseWriter, r *http.Request) { hold(r) })
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	a := send(ctx, http.DefaultClient, url, "k", chatRequest{Model: "m"}, 10*time.Second)
	if !a.cancelled || a.ok {
		t.Fatalf("cancelled=%v ok=%v, want a cancelled attempt", a.cancelled, a.ok)
	}
}

// A provider that echoes the key in its error (as OpenAI's 401 "Incorrect API key provided:
// sk-…" does): the response event carries the core's redacted message, never the key.
func TestResponseEventRedactsEchoedKey(t *testing.T) {
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.WriteHeader(401)
		fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`, key)
	})
	a := send(context.Background(), http.DefaultClient, url, fakeKey, chatRequest{Model: "m"}, 10*time.Second)
	if a.ok || a.class.Kind != llmr.KindAuth {
		t.Fatalf("attempt %+v, want an auth failure", a)
	}
	var buf bytes.Buffer
	r := &run{ev: NewEventLog(&buf, time.Now())}
	r.respond(Job{ID: "job-1"}, "m", 1, a)
	if !strings.Contains(buf.String(), "Incorrect API key") {
		t.Fatalf("the event lost the message: %s", buf.String())
	}
	if strings.Contains(buf.String(), "FAKE-not-a-real-key") {
		t.Fatalf("the event holds the key: %s", buf.String())
	}
}
