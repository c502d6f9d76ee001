package worker

// The credit hold. When the account runs out of credit, the core rightly calls the 402
// quota-exhausted, a permanent failure: the same call cannot succeed as it is. Giving up on
// the job is still the wrong move for a support bot — the operator gets the balance alert and
// tops the account up, and every customer message that arrived meanwhile would be lost, while
// every new job would send its request straight into the next 402. So the worker keeps one
// gate per run (shared by all jobs of our policy; the naive baseline has none): the first
// unhandled 402 makes the account *dry*, no job sends a request while it is dry, holding jobs
// wait at most Policy.CreditHold, and the credit poller opens the gate when the balance the
// credit monitor reports shows a top-up. The decisions stay the core's (the classification,
// the balance); this file only keeps the account's state and wakes the waiting goroutines.

import (
	"sync"
	"time"
)

// topUpMarginUSD is how much the balance must rise above its level at the time the account
// went dry for the poller to call it a top-up. Balances only fall otherwise (every answer is
// charged), so any rise beyond rounding is money added.
const topUpMarginUSD = 0.01

// creditGate is the account's credit state, shared by the jobs of one run. Safe for
// concurrent use; the zero value is an open gate that has seen no balance.
type creditGate struct {
	mu sync.Mutex
	// latest is the credit monitor's latest balance_usd (nil: never observed).
	latest *float64
	// dry is set while the account is out of credit.
	dry bool
	// since is when the account went dry (the event's clock, for the record).
	since time.Time
	// atDry is the balance when the account went dry (nil: none observed then).
	atDry *float64
	// wake is closed when the current dry period ends; nil while the gate is open.
	wake chan struct{}
	// opens counts the gate's openings: a 402 to a request sent before the latest opening
	// says nothing about the account after the top-up.
	opens uint64
}

// gateView is what a job reads from the gate before sending a request.
type gateView struct {
	// dry is true while the account is out of credit.
	dry bool
	// wake is closed when the dry period ends (nil when the gate is open).
	wake <-chan struct{}
	// opens is the gate's opening count, given back to markDry.
	opens uint64
	// since is when the dry period began (zero when the gate is open).
	since time.Time
}

// view returns the gate's current state.
func (g *creditGate) view() gateView {
	g.mu.Lock()
	defer g.mu.Unlock()
	return gateView{dry: g.dry, wake: g.wake, opens: g.opens, since: g.since}
}

// markDry records that a request sent when the gate had opened opensAtSend times met an
// unhandled quota-exhausted failure at now. The account becomes dry unless it already is, or
// the gate opened again since that request was sent (then the 402 is stale and the job may go
// on at once). It returns the view the job holds on: dry with the period's wake channel, or
// open.
func (g *creditGate) markDry(now time.Time, opensAtSend uint64) gateView {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.dry && g.opens == opensAtSend {
		g.dry, g.since, g.wake = true, now, make(chan struct{})
		g.atDry = nil
		if g.latest != nil {
			b := *g.latest
			g.atDry = &b
		}
	}
	return gateView{dry: g.dry, wake: g.wake, opens: g.opens, since: g.since}
}

// observe takes the balance_usd the credit monitor reported after a poll (nil: the poll gave
// none) and opens the gate when it shows a top-up: strictly more than the balance at the time
// the account went dry plus topUpMarginUSD, or, when no balance was known then, more than
// topUpMarginUSD. It reports whether this observation opened the gate; every holder wakes.
//
// The balance at dry is the latest poll's, which can be older than the 402 (polls come every
// credit_poll_ms, and a burst of answers spends between two of them): a lower balance seen
// while dry replaces it, so a stale, higher reading cannot hide the next top-up. Balances only
// fall between top-ups, so the lowest one seen is the level a top-up rises from.
func (g *creditGate) observe(balance *float64) bool {
	if balance == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	b := *balance
	g.latest = &b
	if !g.dry {
		return false
	}
	floor := 0.0
	if g.atDry != nil {
		floor = *g.atDry
	}
	if b <= floor+topUpMarginUSD {
		if g.atDry != nil && b < *g.atDry {
			g.atDry = &b
		}
		return false
	}
	g.dry, g.atDry = false, nil
	close(g.wake)
	g.wake = nil
	g.opens++
	return true
}

// holdResult is how a credit hold ended.
type holdResult int

const (
	// holdOpened: the gate opened, the job goes on.
	holdOpened holdResult = iota
	// holdTimedOut: the hold's time ran out first.
	holdTimedOut
	// holdCancelled: the run is shutting down (or the job's context ended); the job is
	// persisted.
	holdCancelled
)

// waitGate blocks until wake is closed (or is nil: the gate was open), timeout fires, or
// either cancel channel is closed. A nil timeout or cancel channel never fires. The channels
// are the whole clock: tests drive it without sleeping.
func waitGate(wake <-chan struct{}, timeout <-chan time.Time, cancel, shutdown <-chan struct{}) holdResult {
	if wake == nil {
		return holdOpened
	}
	// A gate already open wins over a timer that fired at the same moment.
	select {
	case <-wake:
		return holdOpened
	default:
	}
	select {
	case <-wake:
		return holdOpened
	case <-timeout:
		return holdTimedOut
	case <-cancel:
		return holdCancelled
	case <-shutdown:
		return holdCancelled
	}
}
