package worker

// One chat completion attempt over net/http: JSON or SSE. It only does the IO and hands
// every failure to the package's classifier — a transport error, an error status, an error
// object inside a 200 body, or OpenRouter's mid-stream error chunk (finish_reason "error").

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	llmr "github.com/llm-resilience/llm-resilience/ffi/go"
)

// chatRequest is the body of POST /api/v1/chat/completions.
type chatRequest struct {
	Model     string         `json:"model"`
	Messages  []llmr.Message `json:"messages"`
	MaxTokens int            `json:"max_tokens"`
	Stream    bool           `json:"stream,omitempty"`
}

// attempt is how one HTTP attempt ended.
type attempt struct {
	// status is the HTTP status, 0 when no response arrived.
	status int
	ok     bool
	// cancelled: the job's context ended (shutdown), the attempt says nothing.
	cancelled bool
	fault     string
	latency   time.Duration
	class     llmr.Classification
}

// send makes one attempt. jobCtx cancels it for shutdown; timeout bounds it alone.
func send(jobCtx context.Context, client *http.Client, url, key string, body chatRequest, timeout time.Duration) attempt {
	payload, err := json.Marshal(body)
	if err != nil { // messages are strings: cannot happen, but never panic
		return attempt{class: llmr.Classification{Kind: llmr.KindInvalidRequest, Message: "cannot encode the request"}}
	}
	ctx, cancel := context.WithTimeout(jobCtx, timeout)
	defer cancel()
	started := time.Now()
	a := doSend(ctx, client, url, key, payload, body.Stream)
	a.latency = time.Since(started)
	if !a.ok && jobCtx.Err() != nil {
		a.cancelled = true
	}
	return a
}

func doSend(ctx context.Context, client *http.Client, url, key string, payload []byte, stream bool) attempt {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return attempt{class: llmr.ClassifyTransport(err)}
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	resp, err := client.Do(req)
	if err != nil {
		return attempt{class: transportClass(ctx, err)}
	}
	defer resp.Body.Close()
	a := attempt{status: resp.StatusCode, fault: resp.Header.Get("x-mock-fault")}
	if resp.StatusCode != http.StatusOK || !stream {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			a.class = transportClass(ctx, err)
			return a
		}
		if resp.StatusCode == http.StatusOK && answered(b) {
			a.ok = true
			return a
		}
		a.class = llmr.Classify(resp, b)
		return a
	}
	return readStream(ctx, resp, a)
}

// transportClass classifies a failure with no (complete) response. A deadline of our own is a
// client timeout; the package reads the rest from the error text.
func transportClass(ctx context.Context, err error) llmr.Classification {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = context.DeadlineExceeded
	}
	return llmr.ClassifyTransport(err)
}

// answered says whether a 200 JSON body is a completion (not an error object).
func answered(body []byte) bool {
	var w struct {
		Error   json.RawMessage   `json:"error"`
		Choices []json.RawMessage `json:"choices"`
	}
	if json.Unmarshal(body, &w) != nil {
		return false
	}
	return len(w.Error) == 0 && len(w.Choices) > 0
}

// readStream reads SSE events until [DONE] (decodeSSE, sse.go). An error chunk (an error
// object, or a choice finishing with "error") is classified as the body of a 200; a cut stream
// is a transport failure.
func readStream(ctx context.Context, resp *http.Response, a attempt) attempt {
	out := decodeSSE(resp.Body)
	switch out.end {
	case sseDone:
		a.ok = out.finished
		if !out.finished {
			a.class = llmr.ClassifyTransport(io.ErrUnexpectedEOF)
		}
	case sseError:
		a.class = llmr.Classify(resp, out.chunk)
	case sseReadErr:
		a.class = transportClass(ctx, out.err)
	case sseEOF:
		if out.finished { // a stream that finished but left out [DONE] still answered
			a.ok = true
		} else {
			a.class = llmr.ClassifyTransport(io.ErrUnexpectedEOF)
		}
	}
	return a
}
