package llmresilience

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixed is the wall clock the tests pass, so that results do not depend on when they run.
var fixed = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestVersionIsTheLinkedLibrary(t *testing.T) {
	if got := Version(); got != "0.1.0" {
		t.Fatalf("Version() = %q, want 0.1.0 (the symbol llmr_version_0_1_0 was linked)", got)
	}
}

func TestKindNamesComeFromTheCABI(t *testing.T) {
	want := []string{"auth", "quota-exhausted", "moderation", "rate-limited", "timeout",
		"context-overflow", "invalid-request", "not-found", "overloaded", "unavailable",
		"server-error", "network", "unknown"}
	if len(Kinds) != len(want) {
		t.Fatalf("%d kinds, want %d", len(Kinds), len(want))
	}
	for i, k := range Kinds {
		if uint32(k) != uint32(i) {
			t.Errorf("%v = %d, want %d", k, uint32(k), i)
		}
		if k.String() != want[i] {
			t.Errorf("Kind(%d).String() = %q, want %q", i, k.String(), want[i])
		}
	}
	if got := Kind(99).String(); got != "Kind(99)" {
		t.Errorf("Kind(99).String() = %q", got)
	}
}

func TestResultCodesBecomeErrors(t *testing.T) {
	cases := map[uint32]error{1: ErrNullParameter, 2: ErrInvalidUTF8, 3: ErrInputTooLarge, 4: ErrPanic}
	for code, want := range cases {
		if err := resultError(code); !errors.Is(err, want) {
			t.Errorf("result %d: got %v, want %v", code, err, want)
		}
	}
	if err := resultError(0); err != nil {
		t.Errorf("LLMR_OK: got %v", err)
	}
	if err := resultError(77); err == nil || !strings.Contains(err.Error(), "invalid-result") {
		t.Errorf("unknown result: got %v", err)
	}
}

func TestNilResponseUsesTheBodyOnly(t *testing.T) {
	body := []byte(`{"error":{"message":"Invalid API key provided","code":"invalid_api_key"}}`)
	got := ClassifyAt(nil, body, fixed)
	want, err := ClassifyRaw(0, nil, body, "", fixed)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("ClassifyAt(nil, …) = %v, ClassifyRaw(no status) = %v", got, want)
	}
	if got.Kind != KindAuth || got.Retryable {
		t.Fatalf("invalid_api_key without a response: %v, want auth, not retryable", got)
	}
	if empty := Classify(nil, nil); empty.Kind != KindUnknown || empty.Retryable {
		t.Fatalf("Classify(nil, nil) = %v, want unknown, not retryable", empty)
	}
}

func TestNilErrorIsNotAFailure(t *testing.T) {
	got := ClassifyTransport(nil)
	if got != (Classification{Kind: KindUnknown}) {
		t.Fatalf("ClassifyTransport(nil) = %#v", got)
	}
}

func TestHeaderNamesAreCaseInsensitive(t *testing.T) {
	var results []Classification
	for _, name := range []string{"retry-after-ms", "Retry-After-Ms", "RETRY-AFTER-MS"} {
		// A literal map keeps the name as written (Header.Set would canonicalize it).
		resp := &http.Response{StatusCode: 429, Header: http.Header{name: {"1500"}}}
		results = append(results, ClassifyAt(resp, nil, fixed))
	}
	for i, c := range results {
		if c != results[0] {
			t.Errorf("spelling %d: %v, differs from %v", i, c, results[0])
		}
		if !c.HasRetryAfter || c.RetryAfter != 1500*time.Millisecond {
			t.Errorf("spelling %d: retry after %v (present %v), want 1.5s", i, c.RetryAfter, c.HasRetryAfter)
		}
		if c.Kind != KindRateLimited || !c.Retryable {
			t.Errorf("spelling %d: %v, want rate-limited, retryable", i, c)
		}
	}
}

func TestInvalidUTF8(t *testing.T) {
	h := http.Header{"Retry-After": {"2\xff"}, "X-Bad\xfe": {"1"}}
	if _, err := ClassifyRaw(429, h, nil, "", fixed); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("ClassifyRaw with invalid UTF-8 headers: err = %v, want ErrInvalidUTF8", err)
	}
	if _, err := ClassifyRaw(0, nil, nil, "read: connection reset \xff", fixed); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("ClassifyRaw with an invalid UTF-8 transport: err = %v", err)
	}
	// The lenient functions clean the text instead, and classify what is left.
	got := ClassifyAt(&http.Response{StatusCode: 429, Header: h}, nil, fixed)
	if got.Kind != KindRateLimited {
		t.Fatalf("429 with invalid UTF-8 headers: %v, want rate-limited", got)
	}
	got = ClassifyTransport(errors.New("read tcp 127.0.0.1:1: connection reset by peer \xff"))
	if got.Kind != KindNetwork || !strings.Contains(got.Message, "\uFFFD") {
		t.Fatalf("reset with invalid UTF-8: %v, want network with U+FFFD in the message", got)
	}
	// Binary bodies are fine everywhere.
	if _, err := ClassifyRaw(500, nil, []byte{0, 0xff, 0xfe, 0}, "", fixed); err != nil {
		t.Fatalf("binary body: %v", err)
	}
}

func TestInputBeyondTheABILimits(t *testing.T) {
	h := http.Header{}
	for i := range 5000 {
		h[fmt.Sprintf("X-Filler-%04d", i)] = []string{"1"}
	}
	if _, err := ClassifyRaw(503, h, nil, "", fixed); !errors.Is(err, ErrInputTooLarge) {
		t.Fatalf("ClassifyRaw with 5000 headers: err = %v, want ErrInputTooLarge", err)
	}
	if got := ClassifyAt(&http.Response{StatusCode: 503, Header: h}, nil, fixed); got.Kind != KindUnavailable {
		t.Fatalf("503 with 5000 headers: %v, want unavailable", got)
	}
	long := strings.Repeat("é", 600_000) // 1.2 MB, over the 1 MiB string limit
	if _, err := ClassifyRaw(0, nil, nil, long, fixed); !errors.Is(err, ErrInputTooLarge) {
		t.Fatalf("ClassifyRaw with a 1.2 MB transport message: err = %v", err)
	}
	// The lenient form cuts the text to the limit and classifies it (the core keeps a short
	// message from its start).
	if got := ClassifyTransport(errors.New(long)); !strings.HasPrefix(got.Message, "éé") {
		t.Fatalf("ClassifyTransport with a 1.2 MB message: %v", got)
	}
	if _, err := ClassifyRaw(70000, nil, nil, "", fixed); !errors.Is(err, ErrInvalidStatus) {
		t.Fatalf("status 70000: err = %v, want ErrInvalidStatus", err)
	}
}

func TestCleanStringCutsAtARuneBoundary(t *testing.T) {
	s := cleanString(strings.Repeat("é", 600_000))
	if len(s) > 1<<20 || !strings.HasPrefix(strings.Repeat("é", 600_000), s) || len(s)%2 != 0 {
		t.Fatalf("cleanString: %d bytes, not a whole-rune prefix within 1 MiB", len(s))
	}
}

// A real net/http call to a port nobody listens on.
func TestTransportErrorConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/v1/chat/completions")
	if err == nil {
		t.Fatal("expected a connection error")
	}
	got := ClassifyTransport(err)
	t.Logf("%v -> %v", err, got)
	if got.Kind != KindNetwork || !got.Retryable {
		t.Fatalf("%q: %v, want network, retryable", err, got)
	}
	if !strings.Contains(got.Message, "connection refused") {
		t.Fatalf("message %q lacks the error text", got.Message)
	}
}

// A real net/http call to a server that answers only after the client gave up.
func TestTransportErrorClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	_, err := (&http.Client{Timeout: 100 * time.Millisecond}).Get(srv.URL)
	if err == nil {
		t.Fatal("expected a timeout")
	}
	got := ClassifyTransport(err)
	t.Logf("%v -> %v", err, got)
	if got.Kind != KindTimeout || !got.Retryable {
		t.Fatalf("%q: %v, want timeout, retryable", err, got)
	}
}

// A real response: Classify sees the status and every header of resp.
func TestClassifyReadsTheWholeResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"message":"Service Unavailable","code":503}}`)
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := ClassifyAt(resp, body, fixed)
	want, err := ClassifyRaw(resp.StatusCode, resp.Header, body, "", fixed)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("ClassifyAt = %v, ClassifyRaw = %v", got, want)
	}
	if got.Kind != KindUnavailable || !got.Retryable || !got.HasRetryAfter || got.RetryAfter != 3*time.Second {
		t.Fatalf("503 with Retry-After: 3: %v, want unavailable, retryable, retry after 3s", got)
	}
}

func TestClassificationString(t *testing.T) {
	c := Classification{Kind: KindContextOverflow, LimitTokens: 128000, HasLimitTokens: true,
		RequestedTokens: 130001, HasRequestedTokens: true, Code: "context_length_exceeded",
		Message: "too long"}
	want := "context-overflow not-retryable limit-tokens=128000 requested-tokens=130001 code=context_length_exceeded: too long"
	if got := c.String(); got != want {
		t.Fatalf("String() = %q\nwant        %q", got, want)
	}
	r := Classification{Kind: KindRateLimited, Retryable: true, HasRetryAfter: true, RetryAfter: 0}
	if got := r.String(); got != "rate-limited retryable retry-after=0s" {
		t.Fatalf("String() = %q", got)
	}
}

func TestMillisSaturates(t *testing.T) {
	if got := millis(1500); got != 1500*time.Millisecond {
		t.Fatalf("millis(1500) = %v", got)
	}
	if got := millis(^uint64(0)); got <= 0 {
		t.Fatalf("millis(max) = %v, want a large positive duration", got)
	}
}

// Many goroutines share the library: under -race this checks the Go side; the results must
// all be equal because the core is pure.
func TestConcurrentCallsAgree(t *testing.T) {
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"7"}}}
	body := []byte(`{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}`)
	want := ClassifyAt(resp, body, fixed)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if got := ClassifyAt(resp, body, fixed); got != want {
					errs <- fmt.Sprintf("goroutine %d call %d: %v != %v", g, i, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
