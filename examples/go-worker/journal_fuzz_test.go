package worker

// FuzzJournal: journal replay (decodeJournal) over any bytes never panics; a journal it
// accepts compacts (liveRecords) to records that replay to the same live set. Seeds: a real
// journal written by the worker's own append path, torn at several points.

import (
	"reflect"
	"testing"
)

func FuzzJournal(f *testing.F) {
	s := newJournalState()
	var seed []byte
	for _, r := range []record{
		{T: "header", Version: journalVersion},
		{T: "accepted", Job: &Job{ID: "job-1", Session: "6281234567890@s.whatsapp.net", History: []ChatMessage{{Role: "assistant", Content: "Halo! Ada yang bisa dibantu?"}}, Message: "Halo kak, pesanan saya belum sampai 😭"}},
		{T: "accepted", Job: &Job{ID: "job-2", Session: "6281234567891@s.whatsapp.net", Stream: true, Message: "Where is my order?"}},
		{T: "progress", ID: "job-1", Progress: &jobProgress{Attempts: 2, Retries: 1}},
		{T: "finished", ID: "job-2", Done: Event{"type": "job_done", "job": "job-2", "outcome": "answered"}},
		{T: "reported", ID: "job-2"},
	} {
		line, err := encodeRecord(r)
		if err != nil {
			f.Fatal(err)
		}
		seed = append(seed, line...)
		if err := s.apply(r); err != nil {
			f.Fatal(err)
		}
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-7])
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decodeJournal(data)
		if err != nil {
			return
		}
		var compacted []byte
		for _, r := range s.liveRecords() {
			line, err := encodeRecord(r)
			if err != nil {
				t.Fatalf("a replayed record does not encode: %v", err)
			}
			compacted = append(compacted, line...)
		}
		again, err := decodeJournal(compacted)
		if err != nil {
			t.Fatalf("a compacted journal does not replay: %v", err)
		}
		if again.torn != 0 {
			t.Fatalf("a compacted journal has a torn tail of %d bytes", again.torn)
		}
		sameJobs := len(s.jobs) == len(again.jobs) && (len(s.jobs) == 0 || reflect.DeepEqual(s.jobs, again.jobs))
		if !sameJobs || !reflect.DeepEqual(s.finished, again.finished) ||
			!reflect.DeepEqual(s.progress, again.progress) {
			t.Fatalf("compaction changed the live set")
		}
	})
}
