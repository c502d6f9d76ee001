package worker

// The SSE half of readStream, without HTTP: a plain function over an io.Reader, so the fuzz
// test can feed it any bytes in any chunking and check that it never panics, that a reader's
// chunk boundaries never change the outcome, and that an error chunk is a JSON line taken from
// the stream. readStream (chat.go) turns the outcome into an attempt.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
)

// sseMaxLine is the longest SSE line read (4 MiB); a longer line fails the stream with
// bufio.ErrTooLong, as any read error does.
const sseMaxLine = 4 << 20

// sseEnd is how an SSE stream ended.
type sseEnd int

const (
	// sseDone: a `data: [DONE]` line.
	sseDone sseEnd = iota
	// sseError: an error chunk (an error object, or a choice finishing with "error").
	sseError
	// sseEOF: the stream ended without [DONE] or an error chunk.
	sseEOF
	// sseReadErr: reading failed (the reader's error, or a line over sseMaxLine).
	sseReadErr
)

// sseOutcome is what decodeSSE read.
type sseOutcome struct {
	end sseEnd
	// finished: some choice finished with a reason other than "error" before the end.
	finished bool
	// chunk is the error chunk's data payload (trimmed, a copy), for sseError.
	chunk []byte
	// err is the read error, for sseReadErr.
	err error
}

// streamChunk is the part of an SSE chunk the worker looks at.
type streamChunk struct {
	Error   json.RawMessage `json:"error"`
	Choices []struct {
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

// decodeSSE reads SSE lines from r until [DONE], an error chunk, the end or a read error.
// Comments (": OPENROUTER PROCESSING"), event names, blank lines and data that is not JSON
// are skipped.
func decodeSSE(r io.Reader) sseOutcome {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), sseMaxLine)
	finished := false
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		data, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue
		}
		data = bytes.TrimSpace(data)
		if bytes.Equal(data, []byte("[DONE]")) {
			return sseOutcome{end: sseDone, finished: finished}
		}
		var c streamChunk
		if err := json.Unmarshal(data, &c); err != nil {
			continue
		}
		failed := len(c.Error) != 0 && !bytes.Equal(c.Error, []byte("null"))
		for _, ch := range c.Choices {
			if ch.FinishReason != nil {
				if *ch.FinishReason == "error" {
					failed = true
				} else {
					finished = true
				}
			}
		}
		if failed {
			return sseOutcome{end: sseError, finished: finished, chunk: append([]byte(nil), data...)}
		}
	}
	if err := sc.Err(); err != nil {
		return sseOutcome{end: sseReadErr, finished: finished, err: err}
	}
	return sseOutcome{end: sseEOF, finished: finished}
}
