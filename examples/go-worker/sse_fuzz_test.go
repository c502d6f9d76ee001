package worker

// FuzzSSE: the SSE decoder (sse.go) over any bytes, in any chunking. Its seeds are the SSE
// bodies of tests/vectors/classify.json (real streams: OpenRouter's documented mid-stream
// error chunk, OpenAI's, Anthropic's, Groq's, TGI's) and the stream the mock sends; the seed
// corpus runs in every `go test`, `go test -run '^$' -fuzz FuzzSSE` explores from there.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// chunkReader hands out data in pieces whose sizes cycle through sizes (0 read as 1).
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(r.sizes) > 0 {
		n = int(r.sizes[r.i%len(r.sizes)]) + 1
		r.i++
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// sseSeeds are the SSE-shaped bodies of the classifier's vectors plus the mock's stream.
func sseSeeds(t testing.TB) [][]byte {
	raw, err := os.ReadFile("../../tests/vectors/classify.json")
	if err != nil {
		t.Fatalf("reading the vectors: %v", err)
	}
	var v struct {
		Cases []struct {
			Input struct {
				Body json.RawMessage `json:"body"`
			} `json:"input"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("parsing the vectors: %v", err)
	}
	var seeds [][]byte
	for _, c := range v.Cases {
		var body string
		if json.Unmarshal(c.Input.Body, &body) == nil && (strings.HasPrefix(body, "data:") || strings.Contains(body, "\ndata:")) {
			seeds = append(seeds, []byte(body))
		}
	}
	if len(seeds) < 5 {
		t.Fatalf("only %d SSE bodies in the vectors", len(seeds))
	}
	return append(seeds,
		[]byte(": OPENROUTER PROCESSING\n\ndata: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Your refund\"},\"finish_reason\":null}]}\n\n"+
			"data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"content\":\"\"},\"finish_reason\":\"stop\"}]}\n\n"+
			"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1234,\"completion_tokens\":5}}\n\ndata: [DONE]\n\n"),
		[]byte(": OPENROUTER PROCESSING\r\n\r\ndata: {\"choices\":[{\"finish_reason\":\"stop\"}]}\r\n"),
		[]byte("data: {\"error\":null,\"choices\":[{\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]"),
	)
}

func FuzzSSE(f *testing.F) {
	for i, s := range sseSeeds(f) {
		f.Add(s, []byte{byte(i), 3, 0, 200})
	}
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		whole := decodeSSE(bytes.NewReader(data))
		chunked := decodeSSE(&chunkReader{data: data, sizes: sizes})
		if whole.end != chunked.end || whole.finished != chunked.finished || !bytes.Equal(whole.chunk, chunked.chunk) {
			t.Fatalf("chunking changed the outcome: %+v vs %+v", whole, chunked)
		}
		switch whole.end {
		case sseDone:
			if !bytes.Contains(data, []byte("[DONE]")) {
				t.Fatalf("[DONE] without [DONE] in the input")
			}
		case sseError:
			if !json.Valid(whole.chunk) || !bytes.Contains(data, whole.chunk) {
				t.Fatalf("error chunk %q is not JSON from the input", whole.chunk)
			}
		case sseReadErr:
			// A bytes.Reader never fails: only a line over the cap can.
			if !errors.Is(whole.err, bufio.ErrTooLong) || len(data) <= sseMaxLine {
				t.Fatalf("read error %v on %d bytes", whole.err, len(data))
			}
		case sseEOF:
			if whole.chunk != nil {
				t.Fatalf("a chunk without an error: %q", whole.chunk)
			}
		default:
			t.Fatalf("unknown end %d", whole.end)
		}
		if whole.finished && !bytes.Contains(data, []byte("finish_reason")) {
			t.Fatalf("finished without a finish_reason in the input")
		}
	})
}

// TestSSERealStreams: the real streams end as read by hand.
func TestSSERealStreams(t *testing.T) {
	s := sseSeeds(t)
	n := len(s)
	// The last three are ours: the mock's stream, a finished stream without [DONE], an
	// `"error":null` chunk that is no error.
	if out := decodeSSE(bytes.NewReader(s[n-3])); out.end != sseDone || !out.finished {
		t.Errorf("mock stream: %+v", out)
	}
	if out := decodeSSE(bytes.NewReader(s[n-2])); out.end != sseEOF || !out.finished {
		t.Errorf("finished without [DONE]: %+v", out)
	}
	if out := decodeSSE(bytes.NewReader(s[n-1])); out.end != sseDone || !out.finished {
		t.Errorf("error null: %+v", out)
	}
	// Every SSE body of the vectors carries an error chunk, except Google's prompt feedback
	// (no error key, no choices) which ends without one.
	errs := 0
	for _, b := range s[:n-3] {
		out := decodeSSE(bytes.NewReader(b))
		switch {
		case out.end == sseError:
			errs++
		case out.end == sseEOF && bytes.Contains(b, []byte("promptFeedback")):
		default:
			t.Errorf("%.60q: %+v", b, out)
		}
	}
	if errs != n-4 {
		t.Errorf("%d error chunks in %d vector bodies", errs, n-3)
	}
}
