//! The account gate: while the account is out of credit, jobs hold instead of calling.
//!
//! Why: a 402 "insufficient credits" is permanent for *that* call (the core says so, rightly),
//! but it is a fact about the *account*, shared by every job. Sending each new job's request
//! into a known 402 wastes a call per job and fails customers that a top-up minutes later would
//! have answered. So the first unaffordable 402 marks the account **dry**; from then on every
//! job of the run (ours only; the naive baseline knows nothing of this) holds before its next
//! request, for at most the policy's `credit_hold_ms`, and all holders wake as soon as the
//! credit poller sees money again.
//!
//! When the gate opens: the poller feeds every `GET /key` to the credit monitor and then hands
//! the monitor's latest `balance_usd` to [`CreditGate::observe`]. Between top-ups a balance only
//! falls (calls are billed), so a balance strictly above the balance at the time the account
//! went dry (+ [`TOP_UP_EPSILON_USD`], against rounding) can only be a top-up. When no balance
//! had been observed when the account went dry, any balance above the epsilon opens it.
//!
//! The gate holds no clock and does no IO: holding is [`CreditGate::hold`], which races the
//! gate's opening against a timeout future the caller supplies (a `tokio::time::sleep` in the
//! worker, a ready or pending future in the tests), so every path is testable without sleeping.
//! It is not persisted: a restarted worker polls the credit again before it matters.

use std::future::Future;
use std::sync::Mutex;

use tokio::sync::watch;

/// A balance must exceed the balance at dry time by more than this to count as a top-up, USD.
pub const TOP_UP_EPSILON_USD: f64 = 0.01;

/// The account ran out of credit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dry {
    /// When it was marked dry, on the caller's clock (ms).
    pub since_ms: u64,
    /// The credit monitor's latest `balance_usd` at that time (`None`: never observed).
    pub balance_at_dry: Option<f64>,
    /// Which dry period this is (0, 1, …): one `hold-for-credit` per job per period.
    pub period: u64,
}

/// How a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEnd {
    /// The gate opened (a top-up was seen), or was not dry in the first place.
    Opened,
    /// The timeout came first; the account is still dry.
    TimedOut,
}

#[derive(Debug, Default)]
struct Inner {
    dry: Option<Dry>,
    /// The latest balance the monitor reported.
    latest_balance: Option<f64>,
    /// Dry periods so far (the next one's number).
    periods: u64,
}

/// The account gate shared by all jobs of one run.
#[derive(Debug)]
pub struct CreditGate {
    inner: Mutex<Inner>,
    /// The number of openings so far: holders wait for it to change.
    opened: watch::Sender<u64>,
}

impl Default for CreditGate {
    fn default() -> Self {
        CreditGate::new()
    }
}

impl CreditGate {
    /// An open gate; no balance observed yet.
    pub fn new() -> CreditGate {
        CreditGate {
            inner: Mutex::new(Inner::default()),
            opened: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The dry period, or `None` when the gate is open.
    pub fn dry(&self) -> Option<Dry> {
        self.lock().dry
    }

    /// How many times the gate has opened: read it before sending a request and hand it to
    /// [`CreditGate::mark_dry`] with the 402 that request got.
    pub fn openings(&self) -> u64 {
        *self.opened.borrow()
    }

    /// Marks the account dry at `now_ms` (an unaffordable 402 to a request sent when the gate
    /// had opened `openings_at_send` times), unless it already is; returns the current dry
    /// period. A 402 to a request sent before the latest top-up is stale: the gate stays open
    /// and `None` is returned.
    pub fn mark_dry(&self, now_ms: u64, openings_at_send: u64) -> Option<Dry> {
        let mut g = self.lock();
        if let Some(d) = g.dry {
            return Some(d);
        }
        if self.openings() != openings_at_send {
            return None;
        }
        let d = Dry {
            since_ms: now_ms,
            balance_at_dry: g.latest_balance,
            period: g.periods,
        };
        g.periods += 1;
        g.dry = Some(d);
        Some(d)
    }

    /// The credit monitor's latest `balance_usd`, after a poll. Returns `true` when this
    /// opened the gate (a top-up while dry); every holder then wakes.
    pub fn observe(&self, balance_usd: Option<f64>) -> bool {
        let mut g = self.lock();
        if balance_usd.is_some() {
            g.latest_balance = balance_usd;
        }
        let (Some(dry), Some(now)) = (g.dry, balance_usd) else {
            return false;
        };
        let floor = dry.balance_at_dry.unwrap_or(0.0) + TOP_UP_EPSILON_USD;
        if now.is_nan() || now <= floor {
            // A lower balance while dry becomes the floor: the balance read when the account
            // went dry may be stale (read just before the last calls were billed), and a later
            // top-up smaller than that gap must still open the gate.
            if let Some(d) = g
                .dry
                .as_mut()
                .filter(|d| d.balance_at_dry.is_some_and(|b| now < b))
            {
                d.balance_at_dry = Some(now);
            }
            return false;
        }
        g.dry = None;
        drop(g);
        self.opened.send_modify(|n| *n += 1);
        true
    }

    /// Waits until the gate is open or `timeout` completes, whichever is first. An open gate
    /// returns [`HoldEnd::Opened`] at once. Dropping the future (a cancelled job) is safe.
    pub async fn hold(&self, timeout: impl Future<Output = ()>) -> HoldEnd {
        let mut rx = self.opened.subscribe();
        // Subscribed before looking: an opening after this check still wakes us.
        if self.dry().is_none() {
            return HoldEnd::Opened;
        }
        tokio::select! {
            biased;
            changed = rx.changed() => match changed {
                Ok(()) => HoldEnd::Opened,
                // The sender lives as long as the gate, which outlives this borrow.
                Err(_) => HoldEnd::TimedOut,
            },
            () = timeout => {
                if self.dry().is_none() { HoldEnd::Opened } else { HoldEnd::TimedOut }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_top_up_opens_a_lower_balance_does_not() {
        let gate = CreditGate::new();
        assert!(!gate.observe(Some(0.30)), "an open gate does not 'open'");
        let d = gate.mark_dry(2_500, 0).unwrap();
        assert_eq!(
            d,
            Dry {
                since_ms: 2_500,
                balance_at_dry: Some(0.30),
                period: 0
            }
        );
        // Marking again keeps the first period and its balance.
        assert_eq!(gate.mark_dry(2_600, 0), Some(d));
        // Balances fall as the last calls are billed: still dry, and the floor follows them
        // down (the balance read at dry time may be stale).
        assert!(!gate.observe(Some(0.12)));
        assert_eq!(gate.dry().unwrap().balance_at_dry, Some(0.12));
        // Equal, or within the epsilon of the floor: not a top-up.
        assert!(!gate.observe(Some(0.12)));
        assert!(!gate.observe(Some(0.125)));
        // A missing balance (a failed poll) changes nothing.
        assert!(!gate.observe(None));
        assert!(gate.dry().is_some());
        // A $0.20 top-up opens it, though it ends below the stale $0.30 of dry time.
        assert!(gate.observe(Some(0.32)));
        assert_eq!(gate.dry(), None);
        assert_eq!(gate.openings(), 1);
        // A 402 to a request sent before that top-up is stale: the gate stays open.
        assert_eq!(gate.mark_dry(3_500, 0), None);
        assert_eq!(gate.dry(), None);
        // The next dry period has the next number and the latest balance.
        let d2 = gate.mark_dry(9_000, 1).unwrap();
        assert_eq!((d2.period, d2.balance_at_dry), (1, Some(0.32)));
    }

    #[test]
    fn without_an_observed_balance_any_positive_balance_opens() {
        let gate = CreditGate::new();
        assert_eq!(gate.mark_dry(10, 0).unwrap().balance_at_dry, None);
        assert!(!gate.observe(Some(0.0)));
        assert!(!gate.observe(Some(0.01)), "not above the epsilon");
        assert!(gate.dry().is_some());
        assert!(gate.observe(Some(0.02)));
        assert!(gate.dry().is_none());
    }

    #[tokio::test]
    async fn holding_on_an_open_gate_returns_at_once() {
        let gate = CreditGate::new();
        assert_eq!(gate.hold(std::future::pending()).await, HoldEnd::Opened);
    }

    #[tokio::test]
    async fn a_hold_times_out_while_dry() {
        let gate = CreditGate::new();
        gate.mark_dry(0, 0);
        assert_eq!(gate.hold(std::future::ready(())).await, HoldEnd::TimedOut);
        assert!(gate.dry().is_some());
    }

    #[tokio::test]
    async fn every_holder_wakes_when_a_top_up_is_seen() {
        let gate = Arc::new(CreditGate::new());
        gate.observe(Some(0.05));
        gate.mark_dry(100, 0);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut holders = Vec::new();
        for _ in 0..3 {
            let g = gate.clone();
            holders.push(tokio::spawn(
                async move { g.hold(std::future::pending()).await },
            ));
        }
        // A holder whose timeout is a signal we never send before the top-up.
        let g = gate.clone();
        let timed = tokio::spawn(async move {
            g.hold(async {
                let _ = rx.await;
            })
            .await
        });
        tokio::task::yield_now().await;
        assert!(!gate.observe(Some(0.01)));
        assert!(gate.observe(Some(3.05)));
        for h in holders {
            assert_eq!(h.await.unwrap(), HoldEnd::Opened);
        }
        assert_eq!(timed.await.unwrap(), HoldEnd::Opened);
        drop(tx);
    }
}
