package worker

// The credit gate without a mock and without sleeping: balances are fed as the poller would
// feed them, and the hold's timer, cancellation and shutdown are channels the test fires.

import (
	"sync"
	"testing"
	"time"
)

func usd(v float64) *float64 { return &v }

// closedChan is a channel that has already fired.
func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// firedTimer is a timer channel that has already fired.
func firedTimer() <-chan time.Time {
	c := make(chan time.Time, 1)
	c <- time.Time{}
	return c
}

func TestGateOpenUntilMarkedDry(t *testing.T) {
	var g creditGate
	if v := g.view(); v.dry || v.wake != nil {
		t.Fatalf("a new gate is %+v, want open", v)
	}
	if g.observe(usd(5)) || g.observe(nil) {
		t.Error("an open gate cannot be opened")
	}
	// An open gate lets the job go on at once, whatever its timer says.
	if got := waitGate(g.view().wake, firedTimer(), nil, nil); got != holdOpened {
		t.Errorf("waiting on an open gate: %v, want opened", got)
	}
}

func TestGateTopUpOpensIt(t *testing.T) {
	var g creditGate
	now := time.Unix(1000, 0)
	for _, b := range []float64{5.6, 2.4, 0.31} { // the balance falls as answers are charged
		g.observe(usd(b))
	}
	v := g.markDry(now, g.view().opens)
	if !v.dry || v.wake == nil {
		t.Fatalf("after an unhandled 402 the gate is %+v, want dry", v)
	}
	if g.atDry == nil || *g.atDry != 0.31 || !g.since.Equal(now) {
		t.Fatalf("dry since %v at %v, want %v at 0.31", g.since, g.atDry, now)
	}
	// A second 402 in the same period changes nothing: same wake, same balance at dry.
	again := g.markDry(now.Add(time.Second), v.opens)
	if again.wake != v.wake || *g.atDry != 0.31 || !g.since.Equal(now) {
		t.Errorf("a second 402 started a new period: %+v", again)
	}
	// The same balance, a rise within the margin, and lower balances (answers still in
	// flight when it went dry are charged) do not open it; the rise is measured from the
	// lowest balance seen.
	for _, b := range []float64{0.31, 0.315, 0.25, 0.2, 0.205} {
		if g.observe(usd(b)) {
			t.Errorf("balance %v opened the gate (dry at 0.31)", b)
		}
	}
	if g.observe(nil) || !g.view().dry {
		t.Error("a poll without a balance opened the gate")
	}
	// The timer fires while dry: the hold times out.
	if got := waitGate(v.wake, firedTimer(), nil, nil); got != holdTimedOut {
		t.Errorf("timer fired while dry: %v, want timed out", got)
	}
	// The top-up: 0.2 + 3.00.
	if !g.observe(usd(3.2)) {
		t.Fatal("a $3 top-up did not open the gate")
	}
	if after := g.view(); after.dry || after.wake != nil || after.opens != v.opens+1 {
		t.Errorf("after the top-up the gate is %+v", after)
	}
	// The holders of the period wake, even with a timer that has fired too.
	if got := waitGate(v.wake, firedTimer(), nil, nil); got != holdOpened {
		t.Errorf("a holder after the top-up: %v, want opened", got)
	}
	// A later period measures from its own balance.
	g.observe(usd(0.05))
	v2 := g.markDry(now.Add(2*time.Second), g.view().opens)
	if !v2.dry || v2.wake == v.wake || *g.atDry != 0.05 {
		t.Fatalf("second period %+v at %v", v2, g.atDry)
	}
	if g.observe(usd(0.05)) || !g.observe(usd(0.07)) {
		t.Error("second period: 0.05 must not open it, 0.07 must")
	}
}

// The latest poll before the 402 can be stale (read just after the previous top-up, before a
// burst of answers spent it): the lower balance the next poll shows becomes the level a top-up
// is measured from, so the next top-up still opens the gate.
func TestGateStaleBalanceAtDry(t *testing.T) {
	var g creditGate
	g.observe(usd(3.03)) // just after a $3 top-up
	v := g.markDry(time.Unix(0, 0), g.view().opens)
	if *g.atDry != 3.03 {
		t.Fatalf("balance at dry %v, want the latest poll's 3.03", *g.atDry)
	}
	if g.observe(usd(0.15)) || !g.view().dry {
		t.Fatal("a lower balance opened the gate")
	}
	if !g.observe(usd(3.15)) {
		t.Error("a $3 top-up from 0.15 did not open the gate (balance at dry stuck at the stale 3.03)")
	}
	if got := waitGate(v.wake, nil, nil, nil); got != holdOpened {
		t.Errorf("holder: %v, want opened", got)
	}
}

// No balance was known when the account went dry: any balance above the margin opens it.
func TestGateWithoutBalanceAtDry(t *testing.T) {
	var g creditGate
	v := g.markDry(time.Unix(0, 0), 0)
	if !v.dry || g.atDry != nil {
		t.Fatalf("gate %+v, balance at dry %v; want dry with none", v, g.atDry)
	}
	for _, b := range []float64{0, 0.01, -1} {
		if g.observe(usd(b)) {
			t.Errorf("balance %v opened the gate", b)
		}
	}
	if !g.observe(usd(0.02)) {
		t.Error("balance 0.02 did not open the gate")
	}
	if got := waitGate(v.wake, nil, nil, nil); got != holdOpened {
		t.Errorf("holder: %v, want opened", got)
	}
}

// A 402 to a request sent before the latest opening is stale: it must not close the gate
// that the top-up opened.
func TestGateStale402DoesNotCloseIt(t *testing.T) {
	var g creditGate
	g.observe(usd(0.1))
	sentAt := g.view().opens
	g.markDry(time.Unix(0, 0), sentAt)
	if !g.observe(usd(3.1)) {
		t.Fatal("top-up did not open the gate")
	}
	v := g.markDry(time.Unix(1, 0), sentAt)
	if v.dry || v.wake != nil {
		t.Errorf("a stale 402 closed the gate: %+v", v)
	}
	if got := waitGate(v.wake, nil, nil, nil); got != holdOpened {
		t.Errorf("holder of a stale 402: %v, want opened", got)
	}
	// A 402 to a request sent after the opening does close it.
	if v := g.markDry(time.Unix(2, 0), g.view().opens); !v.dry {
		t.Error("a fresh 402 did not close the gate")
	}
}

func TestGateHoldIsCancellable(t *testing.T) {
	var g creditGate
	v := g.markDry(time.Unix(0, 0), 0)
	if got := waitGate(v.wake, nil, closedChan(), nil); got != holdCancelled {
		t.Errorf("job context ended: %v, want cancelled", got)
	}
	if got := waitGate(v.wake, nil, nil, closedChan()); got != holdCancelled {
		t.Errorf("run shutting down: %v, want cancelled", got)
	}
	if !g.view().dry {
		t.Error("cancelling a hold opened the gate")
	}
}

// Every holder of a period wakes when the gate opens.
func TestGateWakesAllHolders(t *testing.T) {
	var g creditGate
	g.observe(usd(0.2))
	v := g.markDry(time.Unix(0, 0), 0)
	const holders = 16
	results := make(chan holdResult, holders)
	var wg sync.WaitGroup
	for range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- waitGate(v.wake, nil, nil, nil)
		}()
	}
	if !g.observe(usd(2.2)) {
		t.Fatal("top-up did not open the gate")
	}
	wg.Wait()
	close(results)
	n := 0
	for r := range results {
		if r != holdOpened {
			t.Errorf("a holder ended %v", r)
		}
		n++
	}
	if n != holders {
		t.Errorf("%d holders returned, want %d", n, holders)
	}
}
