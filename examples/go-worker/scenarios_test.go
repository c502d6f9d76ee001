package worker

// The scenarios of examples/scenarios/ against the mock binary, asserting on outcomes (never
// on timings): what must hold for our policy, and, where the claim is a comparison, the same
// scenario under the naive baseline.

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	llmr "github.com/llm-resilience/llm-resilience/ffi/go"
)

// countResponses counts response events with the given x-mock-fault.
func countResponses(ev *eventLines, fault string) int {
	n := 0
	for _, e := range ev.named("response") {
		if e["fault"] == fault {
			n++
		}
	}
	return n
}

// jobsDone maps job id → its job_done event.
func jobsDone(t *testing.T, ev *eventLines) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, e := range ev.named("job_done") {
		id, _ := e["job"].(string)
		if _, dup := out[id]; dup {
			t.Errorf("job %s finished twice", id)
		}
		out[id] = e
	}
	return out
}

func TestProviderOutage(t *testing.T) {
	t.Parallel()
	m := startMock(t, "provider-outage")
	p := policy(t)
	ours, ev := runOnce(t, context.Background(), m, nil)
	summary("provider-outage ours", ours)
	oursStats := m.stats(t)
	naive, nev := runOnce(t, context.Background(), m, func(o *Options) { o.Naive = true })
	summary("provider-outage naive", naive)

	if ours.Answered != ours.Jobs || ours.Lost != 0 {
		t.Errorf("ours: %d of %d answered, %d lost; want every job answered (the fallback model is healthy)", ours.Answered, ours.Jobs, ours.Lost)
	}
	opened := false
	for _, e := range ev.named("breaker") {
		if e["model"] == p.Models[0] && e["to"] == "open" {
			opened = true
		}
	}
	if !opened {
		t.Errorf("the breaker of %s never opened", p.Models[0])
	}
	byFallback := 0
	for _, e := range jobsDone(t, ev) {
		if e["outcome"] == "answered" && e["model"] == p.Models[1] {
			byFallback++
		}
	}
	if byFallback == 0 {
		t.Errorf("no job was answered by the fallback model %s", p.Models[1])
	}
	// Calls wasted during the outage: responses the outage fault produced.
	wasted, naiveWasted := countResponses(ev, "outage"), countResponses(nev, "outage")
	if oursStats.Faults["outage"] != wasted {
		t.Errorf("events count %d outage responses, the mock %d", wasted, oursStats.Faults["outage"])
	}
	if naiveWasted == 0 || wasted*2 > naiveWasted {
		t.Errorf("outage responses: ours %d, naive %d; want ours at most half of naive's", wasted, naiveWasted)
	}
	if ours.Answered < naive.Answered {
		t.Errorf("ours answered %d, naive %d", ours.Answered, naive.Answered)
	}
	t.Logf("outage responses: ours %d, naive %d; answered by fallback %d", wasted, naiveWasted, byFallback)
}

func TestLongConversations(t *testing.T) {
	t.Parallel()
	m := startMock(t, "long-conversations")
	ours, ev := runOnce(t, context.Background(), m, nil)
	summary("long-conversations ours", ours)
	naive, nev := runOnce(t, context.Background(), m, func(o *Options) { o.Naive = true })
	summary("long-conversations naive", naive)

	longAnswered := func(ev *eventLines) (answered, total int) {
		for _, e := range jobsDone(t, ev) {
			if e["long"] == true {
				total++
				if e["outcome"] == "answered" {
					answered++
				}
			}
		}
		return
	}
	la, lt := longAnswered(ev)
	if lt == 0 || la != lt {
		t.Errorf("ours: %d of %d long jobs answered; want all", la, lt)
	}
	// A job that overflowed must have been shrunk and then answered (or nothing overflowed).
	overflowed := map[string]bool{}
	for _, e := range ev.named("response") {
		if e["kind"] == "context-overflow" {
			overflowed[e["job"].(string)] = true
		}
	}
	done := jobsDone(t, ev)
	for id := range overflowed {
		if done[id]["outcome"] != "answered" || num(done[id]["shrinks"]) < 1 {
			t.Errorf("job %s overflowed and then ended %v", id, done[id])
		}
	}
	na, nt := longAnswered(nev)
	if nt != lt || na >= la {
		t.Errorf("long jobs answered: ours %d/%d, naive %d/%d; want ours ahead", la, lt, na, nt)
	}
	t.Logf("long jobs answered: ours %d/%d (overflows %d), naive %d/%d", la, lt, len(overflowed), na, nt)
}

func TestCreditsRunOut(t *testing.T) {
	t.Parallel()
	m := startMock(t, "credits-run-out")
	p := policy(t)
	ours, ev := runOnce(t, context.Background(), m, nil)
	summary("credits-run-out ours", ours)
	if ours.Answered+ours.Failed != ours.Jobs || ours.Lost != 0 {
		t.Errorf("%+v: every job must be answered or failed", ours)
	}
	for kind := range ours.FailedByKind {
		if kind != "quota-exhausted" {
			t.Errorf("a job failed with %s; only quota-exhausted is expected when the money runs out", kind)
		}
	}
	// Alerts: each raised once per crossing, never twice without a clear in between.
	raised := map[string]int{}
	active := map[string]bool{}
	for _, e := range ev.named("alert") {
		kind := e["alert"].(string)
		switch e["state"] {
		case "raised":
			if active[kind] {
				t.Errorf("%s raised twice without being cleared", kind)
			}
			active[kind] = true
			raised[kind]++
		case "cleared":
			active[kind] = false
		default:
			t.Errorf("alert state %v", e["state"])
		}
	}
	if raised["balance-warning"] != 1 || raised["balance-critical"] < 1 {
		t.Errorf("raised %v; want balance-warning once (the balance never recovers above $6) and balance-critical", raised)
	}
	// A 402 "can only afford N" lowers max_tokens once. How many requests land in the window
	// where the key can pay for some but not all of max_tokens depends on the interleaving
	// (answers cost about as much as the window is wide), so what must hold is per job: a job
	// whose first 402 named a usable number lowered max_tokens, and never twice.
	lowered := map[string]bool{}
	for _, e := range ev.named("decision") {
		if e["decision"] == "lower-max-tokens" {
			if lowered[e["job"].(string)] {
				t.Errorf("job %v lowered max_tokens twice", e["job"])
			}
			lowered[e["job"].(string)] = true
		}
	}
	first402 := map[string]bool{}
	for _, e := range ev.named("response") {
		id, _ := e["job"].(string)
		if num(e["status"]) != 402 || first402[id] {
			continue
		}
		first402[id] = true
		msg, _ := e["message"].(string)
		if a, ok := llmr.SuggestMaxTokens(msg); ok && a.SuggestedMaxTokens > 0 && a.SuggestedMaxTokens < p.MaxTokens && !lowered[id] {
			t.Errorf("job %s got %q and did not lower max_tokens", id, msg)
		}
	}
	if ours.FailedByKind["quota-exhausted"] == 0 || len(first402) == 0 {
		t.Errorf("no job ran out of credit: the scenario exercised nothing")
	}
	answeredAfter := 0
	done := jobsDone(t, ev)
	for id, e := range done {
		if lowered[id] && e["outcome"] == "answered" {
			answeredAfter++
		}
	}

	// The credit hold: once the account is dry no job sends a request into the 402; jobs
	// hold for a top-up, and the $3 top-up answers some of them.
	holds := holdDecisions(ev)
	if len(holds) == 0 {
		t.Fatal("no hold-for-credit decision: the account never went dry, or the jobs gave up")
	}
	held := map[string]int{}
	for _, e := range holds {
		held[e["job"].(string)]++
		// The hold lasts what is left of the account's window (credit_hold_ms from going dry).
		if after := num(e["after_ms"]); after <= 0 || after > int(p.CreditHold.Milliseconds()) || e["target_tokens"] != nil ||
			e["reason"] != "account out of credit: waiting for a top-up" {
			t.Errorf("hold decision %v", e)
		}
	}
	heldAnswered := 0
	for id := range held {
		switch e := done[id]; {
		case e == nil:
			t.Errorf("job %s held and never finished", id)
		case e["outcome"] == "answered":
			heldAnswered++
		}
	}
	if heldAnswered == 0 {
		t.Errorf("%d jobs held, none was answered after the top-up", len(held))
	}
	// A job whose hold ran out — or that came after the account's hold window had passed, and
	// so failed at once — gives up with quota-exhausted.
	for _, e := range ev.named("decision") {
		if e["decision"] == "give-up" && e["reason"] == "credit did not return within credit_hold_ms" {
			id := e["job"].(string)
			if done[id]["outcome"] != "failed" || done[id]["kind"] != "quota-exhausted" {
				t.Errorf("job %s gave up on credit: held %d times, ended %v", id, held[id], done[id])
			}
		}
	}
	// No stream of 402s while dry. The scenario runs dry twice (before and after the top-up);
	// each time, at most a pool's worth of requests meets a 402 that lowering max_tokens can
	// still cure, then at most a pool's worth already in flight when the account went dry.
	quota := 0
	for _, e := range ev.named("response") {
		if e["kind"] == "quota-exhausted" {
			quota++
		}
	}
	if quota > 4*p.Concurrency {
		t.Errorf("%d quota-exhausted responses; want at most 4 × concurrency = %d", quota, 4*p.Concurrency)
	}
	t.Logf("alerts raised %v; max_tokens lowered for %d jobs, %d then answered; %d holds by %d jobs, %d of them answered; %d quota-exhausted responses",
		raised, len(lowered), answeredAfter, len(holds), len(held), heldAnswered, quota)
}

// A shutdown while jobs hold for credit (cancelled at the first hold that follows a 402, so
// that job has sent a request): the holds end at once, the holding jobs are unfinished and
// persisted with the others and with their counts, nothing is lost.
func TestShutdownWhileHoldingForCredit(t *testing.T) {
	t.Parallel()
	m := startMock(t, "credits-run-out")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, ev := runOnce(t, ctx, m, func(o *Options) {
		o.StateDir = dir
		o.Events.(*eventLines).onLine = func(e map[string]any) {
			if e["event"] == "decision" && e["decision"] == "hold-for-credit" && num(e["attempt"]) >= 2 {
				cancel()
			}
		}
	})
	summary("credits-run-out shutdown", res)
	if !res.Shutdown || res.Held == 0 || res.Persisted == 0 || res.Lost != 0 {
		t.Fatalf("%+v; want a shutdown during a hold, persisted > 0 and lost == 0", res)
	}
	batch, progress, _, err := readJournal(dir)
	if err != nil {
		t.Fatalf("journal: %v", err)
	}
	persisted := map[string]bool{}
	for _, j := range batch.Jobs {
		persisted[j.ID] = true
	}
	done := jobsDone(t, ev)
	for _, e := range holdDecisions(ev) {
		id := e["job"].(string)
		if done[id] == nil && !persisted[id] {
			t.Errorf("job %s was holding at the shutdown and is neither finished nor persisted", id)
		}
		if done[id] != nil && persisted[id] {
			t.Errorf("job %s finished and was persisted", id)
		}
	}
	if len(batch.Jobs) != res.Persisted {
		t.Errorf("the journal holds %d unfinished jobs, the result says %d persisted", len(batch.Jobs), res.Persisted)
	}
	// The persisted jobs keep their counts: as many attempts as requests they sent.
	sent := requestsPerJob(ev)
	withCounts := 0
	for _, j := range batch.Jobs {
		if progress[j.ID].Attempts != sent[j.ID] {
			t.Errorf("job %s sent %d requests, persisted with %+v", j.ID, sent[j.ID], progress[j.ID])
		}
		if progress[j.ID].Attempts > 0 {
			withCounts++
		}
	}
	if withCounts == 0 {
		t.Error("no persisted job had sent a request: the job whose 402 began the hold must be among them")
	}
}

// requestsPerJob counts the request events of each job over some runs.
func requestsPerJob(evs ...*eventLines) map[string]int {
	out := map[string]int{}
	for _, ev := range evs {
		for _, e := range ev.named("request") {
			id, _ := e["job"].(string)
			out[id]++
		}
	}
	return out
}

// The key goes into every request of the mixed scenario (resets, stream errors, 429s, outages,
// moderation): it must not appear in any event or state file, while the events do carry the
// failure messages.
func TestNoKeyInEventsOrState(t *testing.T) {
	t.Parallel()
	m := startMock(t, "mixed")
	dir := t.TempDir()
	res, ev := runOnce(t, context.Background(), m, func(o *Options) { o.StateDir = dir })
	summary("mixed ours", res)
	messages := 0
	for _, e := range ev.named("response") {
		if s, _ := e["message"].(string); s != "" {
			messages++
		}
	}
	if messages == 0 {
		t.Fatal("no failure message was logged: the scenario exercised nothing")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if snaps, _ := j.snapshots(); len(files) != 1 || snaps.Breakers == nil || snaps.Limiter == nil || snaps.Credits == nil {
		t.Fatalf("state files %v; want the journal with the three snapshots", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(fakeKey)) || bytes.Contains(b, []byte("FAKE-not-a-real-key")) {
			t.Errorf("%s holds the key", filepath.Base(f))
		}
	}
	if res.Answered+res.Failed != res.Jobs || res.Lost != 0 {
		t.Errorf("%+v", res)
	}
}

// Cancel mid-run (after 15 jobs are done, while jobs are still arriving): nothing is lost, the
// unfinished jobs and the snapshots are persisted; a second run resumes them, restores the
// snapshots, and every job is answered or failed exactly once across the two runs.
func TestShutdownAndResume(t *testing.T) {
	t.Parallel()
	m := startMock(t, "provider-outage")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := 0
	first, ev1 := runOnce(t, ctx, m, func(o *Options) {
		o.StateDir = dir
		o.Events.(*eventLines).onLine = func(e map[string]any) {
			if e["event"] == "job_done" {
				if done++; done == 15 {
					cancel()
				}
			}
		}
	})
	summary("shutdown: first run", first)
	if !first.Shutdown || first.Persisted == 0 || first.Lost != 0 {
		t.Fatalf("first run %+v; want a shutdown with persisted > 0 and lost == 0", first)
	}
	sd := ev1.named("shutdown")
	if len(sd) != 1 || num(sd[0]["persisted"]) != first.Persisted || num(sd[0]["in_flight"]) < 0 {
		t.Fatalf("shutdown events %v", sd)
	}
	if held, _, _, err := readJournal(dir); err != nil || len(held.Jobs) != first.Persisted {
		t.Fatalf("the journal holds %d unfinished jobs (%v); the first run persisted %d", len(held.Jobs), err, first.Persisted)
	}

	second, ev2 := runOnce(t, context.Background(), m, func(o *Options) { o.StateDir = dir })
	summary("shutdown: resumed run", second)
	if second.Resumed != first.Persisted || second.Jobs != first.Persisted {
		t.Errorf("second run took %d jobs (%d resumed); the first persisted %d", second.Jobs, second.Resumed, first.Persisted)
	}
	if !second.Restored.Breakers || !second.Restored.Limiter || !second.Restored.Credits {
		t.Errorf("restored %+v; want every snapshot", second.Restored)
	}
	if second.Lost != 0 || second.Persisted != 0 || second.Answered+second.Failed != second.Jobs {
		t.Errorf("second run %+v", second)
	}
	if held, _, finished, err := readJournal(dir); err != nil || len(held.Jobs) != 0 || len(finished) != len(jobsDone(t, ev1))+len(jobsDone(t, ev2)) {
		t.Errorf("after every job finished the journal holds %d unfinished and %d finished jobs (%v)", len(held.Jobs), len(finished), err)
	}
	// Every job of the workload finished exactly once across the two runs.
	var batch Batch
	if err := getJSON(context.Background(), nil, m.url+"/mock/jobs", "", &batch); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, ev := range []*eventLines{ev1, ev2} {
		for id := range jobsDone(t, ev) {
			seen[id]++
		}
	}
	for _, j := range batch.Jobs {
		if seen[j.ID] != 1 {
			t.Errorf("job %s finished %d times across the two runs", j.ID, seen[j.ID])
		}
	}
	// A resumed job goes on counting: its job_done counts the requests of both runs.
	sent := requestsPerJob(ev1, ev2)
	for id, e := range jobsDone(t, ev2) {
		if num(e["attempts"]) != sent[id] {
			t.Errorf("job %s: job_done says %v attempts, %d requests were sent across the two runs", id, e["attempts"], sent[id])
		}
	}
	if len(seen) != len(batch.Jobs) {
		t.Errorf("%d distinct jobs finished, the workload has %d", len(seen), len(batch.Jobs))
	}
}
