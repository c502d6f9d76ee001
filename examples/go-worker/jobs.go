package worker

// Jobs come from a JobSource so that production can plug its queue in; the mock's
// GET /mock/jobs is one source. The worker journals a batch's jobs as accepted right after
// Take, before any call (an AckingSource is acknowledged then); from that point a shutdown or
// a crash resumes every one it has not finished.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ChatMessage is one message of a job's history.
type ChatMessage struct {
	// Role is "user" or "assistant".
	Role string `json:"role"`
	// Content is the text.
	Content string `json:"content"`
}

// Job is one customer message to answer.
type Job struct {
	// ID identifies the job ("job-0001").
	ID string `json:"id"`
	// Session is the chat session it belongs to; the rate limit is per session.
	Session string `json:"session"`
	// ArriveMs is when the job arrives, in ms after the run starts.
	ArriveMs int64 `json:"arrive_ms"`
	// Long marks a long conversation.
	Long bool `json:"long"`
	// Stream asks for a streamed (SSE) answer.
	Stream bool `json:"stream"`
	// Flagged marks a message the moderator flags.
	Flagged bool `json:"flagged"`
	// History is the conversation so far, oldest first.
	History []ChatMessage `json:"history"`
	// Message is the customer's new message.
	Message string `json:"message"`
}

// KBDocument is a knowledge-base document, ranked (most relevant first).
type KBDocument struct {
	// ID names the document.
	ID string `json:"id"`
	// Text is its content.
	Text string `json:"text"`
}

// Batch is what a source hands over: the jobs and what every request carries with them.
type Batch struct {
	// Scenario names the workload.
	Scenario string `json:"scenario"`
	// SystemPrompt is the bot's system prompt.
	SystemPrompt string `json:"system_prompt"`
	// Documents is the knowledge base.
	Documents []KBDocument `json:"documents"`
	// Jobs are the customer messages.
	Jobs []Job `json:"jobs"`
}

// JobSource hands the worker its jobs. Take is called once per run; the jobs it returns are
// the worker's from then on (a queue would acknowledge them).
type JobSource interface {
	// Take hands over the jobs of one run.
	Take(ctx context.Context) (Batch, error)
}

// AckingSource is a JobSource that wants to know when the worker owns the jobs for good: Ack
// is called with the jobs of a Take once the journal holds them durably (with a state dir;
// without one, at once). A queue should acknowledge its messages there, not in Take: a crash
// between the two then redelivers them instead of losing them, and the journal de-duplicates
// the redelivery by job id.
type AckingSource interface {
	JobSource
	// Ack acknowledges the jobs of the latest Take (the ones the worker kept after
	// de-duplication).
	Ack(ctx context.Context, b Batch) error
}

// MockJobs takes the workload from the mock's GET {BaseURL}/mock/jobs.
type MockJobs struct {
	// BaseURL is the mock's root ("http://127.0.0.1:PORT").
	BaseURL string
	// Client is the HTTP client (nil: http.DefaultClient).
	Client *http.Client
}

// maxBody caps every body the worker reads.
const maxBody = 64 << 20

// Take fetches the workload.
func (m MockJobs) Take(ctx context.Context) (Batch, error) {
	var b Batch
	err := getJSON(ctx, m.Client, strings.TrimRight(m.BaseURL, "/")+"/mock/jobs", "", &b)
	if err != nil {
		return Batch{}, fmt.Errorf("taking jobs: %w", err)
	}
	return b, nil
}

// getJSON GETs url (with a bearer key if not empty) and decodes a 200 JSON body into v.
func getJSON(ctx context.Context, client *http.Client, url, key string, v any) error {
	body, status, err := get(ctx, client, url, key)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", redactURL(url), status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", redactURL(url), err)
	}
	return nil
}

func get(ctx context.Context, client *http.Client, url, key string) ([]byte, int, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, 0, err
	}
	return body, resp.StatusCode, nil
}

// redactURL drops a query string (none of ours has one, but a URL in an error must never
// carry a secret).
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// ModelInfo is what GET /api/v1/models says about one model.
type ModelInfo struct {
	// ID is the model id.
	ID string `json:"id"`
	// ContextLength is its window in tokens.
	ContextLength int `json:"context_length"`
}

// fetchModels reads GET {base}/api/v1/models into id → window.
func fetchModels(ctx context.Context, client *http.Client, base, key string) (map[string]int, error) {
	var w struct {
		Data []ModelInfo `json:"data"`
	}
	if err := getJSON(ctx, client, base+"/api/v1/models", key, &w); err != nil {
		return nil, fmt.Errorf("reading the models: %w", err)
	}
	out := make(map[string]int, len(w.Data))
	for _, m := range w.Data {
		if m.ContextLength > 0 {
			out[m.ID] = m.ContextLength
		}
	}
	return out, nil
}
