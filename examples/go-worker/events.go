package worker

// Events are the worker's only log: JSON Lines in the schema of examples/scenarios/README.md,
// the same from every worker so one report reads them all. Every message written here has
// been redacted by the core (Classification.Message, Alert.Message); prompts, answers and the
// key never reach an event.

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Event is one line: its name and its fields (t_ms and event are added by the writer).
type Event map[string]any

// EventLog writes events as JSON Lines, safe for concurrent use. The zero value is not usable:
// create it with NewEventLog.
type EventLog struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	err   error
}

// NewEventLog writes to w (nil: nowhere), timing events from start.
func NewEventLog(w io.Writer, start time.Time) *EventLog {
	if w == nil {
		w = io.Discard
	}
	return &EventLog{w: w, start: start}
}

// Emit writes one event. A write error is kept (Err) and later events are dropped: the worker
// must not stop answering customers because its log disk is full.
func (l *EventLog) Emit(name string, fields Event) {
	if l == nil {
		return
	}
	line := make(map[string]any, len(fields)+2)
	for k, v := range fields {
		line[k] = v
	}
	line["event"] = name
	l.mu.Lock()
	defer l.mu.Unlock()
	line["t_ms"] = time.Since(l.start).Milliseconds()
	if l.err != nil {
		return
	}
	b, err := json.Marshal(line)
	if err != nil {
		l.err = err
		return
	}
	b = append(b, '\n')
	if _, err := l.w.Write(b); err != nil {
		l.err = err
	}
}

// Err returns the first write error, if any.
func (l *EventLog) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}
