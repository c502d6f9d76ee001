//! Rate limiting per chat session: GCRA, weighted, in bounded memory.
//!
//! # Why GCRA
//!
//! The Generic Cell Rate Algorithm keeps one number per key — the *theoretical arrival time*
//! (TAT), when the key's bucket would be empty again — instead of a token count and a refill
//! timestamp. A request of `n` units at time `t` is allowed when `max(TAT, t) + n·T` is at most
//! `t + burst·T` (with `T = period / limit`, the emission interval), and then becomes the new
//! TAT. It is exact (no refill rounding), O(1), and a denial says exactly when the next "yes"
//! comes: `max(TAT, t) + n·T − burst·T − t`.
//!
//! # Why weighted, reservations and blocks
//!
//! Messages per minute are weight 1. Tokens per minute are not known until the provider
//! answers: reserve the estimate with [`RateLimiter::check`], then [`RateLimiter::settle`] the
//! real cost (a refund or a debit of the difference). A provider's 429 with a retry hint knows
//! better than any local estimate: [`RateLimiter::block_until`] holds the key until then.
//!
//! # Why bounded memory, and what is evicted
//!
//! A support bot sees an unbounded number of chat sessions; a limiter that keeps every one
//! forever is a memory leak. Keys are stored as a seeded 64-bit hash of the session id with the
//! TAT and two links of a least-recently-used list — about 40 bytes a key at steady state
//! (measured in `core/tests/ratelimit_memory.rs`). At `max_keys`, a new key evicts first a key
//! whose state equals a fresh key's (TAT in the past: forgetting it changes nothing), looking
//! at the 8 least recently used, and otherwise the least recently used one. The work per call
//! stays O(1).
//!
//! # Clocks
//!
//! The limiter keeps its own time with a [`Clock`] (the rule is in [`crate::clock`]): checks
//! that arrive out of order by up to 1 s see no time pass (and do not make time run fast when
//! the later reading arrives), a bigger step back starts a new epoch in which time runs on from
//! where it stood, and one forward step counts at most 2³² ms. So a far-future `now_ms` (a
//! nanosecond timestamp) does not deny a session until that time: the next normal reading
//! starts a new epoch and the session's wait is measured from there. `block_until`'s
//! `until_ms` is your clock's time; it is converted through the limiter's clock. Snapshots
//! ([`RateLimitSnapshot`]) carry the clock and a format version.
//!
//! Two session ids whose 64-bit hashes collide would share a limit; at 10⁶ sessions the chance
//! is about 3·10⁻⁸. Set `hash_seed` to a secret random value if session ids can be chosen by an
//! attacker.

use crate::clock::{Clock, SNAPSHOT_VERSION, check_version};
use crate::config::{ConfigError, Problems};
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

/// Longest session key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// How many least-recently-used keys are inspected for a fresh one before evicting the last.
const EVICTION_SCAN: usize = 8;

/// Marks the end of the LRU list.
const NONE: u32 = u32::MAX;

/// Settings of a [`RateLimiter`]. Defaults: 10 messages per minute per session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Units allowed per period. Default 10. At least 1.
    pub limit: u32,
    /// The period, ms. Default 60 000. 1..=31 days.
    pub period_ms: u64,
    /// Units that may be spent at once after a quiet spell. Default: `limit`. At least 1.
    pub burst: Option<u32>,
    /// Most keys held at once. Default 100 000. 1..=10 000 000.
    pub max_keys: u32,
    /// Seed of the key hash (see the module docs). Default 0.
    pub hash_seed: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            limit: 10,
            period_ms: 60_000,
            burst: None,
            max_keys: 100_000,
            hash_seed: 0,
        }
    }
}

/// The answer to a rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Allowed; the units are spent.
    Allowed {
        /// Units that could still be spent right now.
        remaining: u32,
    },
    /// Denied; nothing is spent.
    Denied {
        /// When the same request would be allowed, ms from now (rounded up).
        retry_in_ms: u64,
    },
}

/// A rate-limit call that cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// The key is empty.
    #[error("rate-limit key is empty")]
    EmptyKey,
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("rate-limit key is {0} bytes, more than the {MAX_KEY_BYTES} allowed")]
    KeyTooLong(usize),
    /// Zero units were asked for.
    #[error("a rate-limit check needs at least 1 unit")]
    ZeroUnits,
    /// More units than the burst: no wait would ever allow it.
    #[error("{units} units can never be allowed: the burst is {burst}")]
    ExceedsBurst {
        /// Units asked for.
        units: u32,
        /// The burst.
        burst: u32,
    },
}

impl RateLimitError {
    /// A stable kebab-case code (`"exceeds-burst"`), the same on every surface.
    pub const fn code(&self) -> &'static str {
        match self {
            RateLimitError::EmptyKey => "empty-key",
            RateLimitError::KeyTooLong(_) => "key-too-long",
            RateLimitError::ZeroUnits => "zero-units",
            RateLimitError::ExceedsBurst { .. } => "exceeds-burst",
        }
    }
}

/// One key's state and its place in the LRU list.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    /// Theoretical arrival time, µs of the limiter's time (see [`crate::clock`]).
    tat_us: u64,
    /// Towards the most recently used.
    newer: u32,
    /// Towards the least recently used.
    older: u32,
}

/// A keyed GCRA rate limiter. See the module docs.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    config: RateLimitConfig,
    burst: u32,
    emission_us: u64,
    tolerance_us: u64,
    slots: Vec<Slot>,
    index: HashTable<u32>,
    newest: u32,
    oldest: u32,
    clock: Clock,
}

/// A [`RateLimiter`]'s state, for export and restore (serde). Keys are hashes, least recently
/// used first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitSnapshot {
    /// The snapshot format: [`SNAPSHOT_VERSION`] when written by this library; 0 (the field
    /// absent) for snapshots written before versions existed. [`RateLimiter::restore`] rejects
    /// newer formats.
    #[serde(default)]
    pub version: u32,
    /// The settings.
    pub config: RateLimitConfig,
    /// The limiter's clock (in snapshots before version 1: `last_now_ms`, a plain number,
    /// migrated to a clock at that time).
    #[serde(alias = "last_now_ms")]
    pub clock: Clock,
    /// (key hash, TAT in µs of the limiter's time), least recently used first.
    pub keys: Vec<(u64, u64)>,
}

impl RateLimiter {
    /// A limiter with `config` (validated; every problem listed).
    pub fn new(config: RateLimitConfig) -> Result<RateLimiter, ConfigError> {
        let mut p = Problems::default();
        p.check(config.limit >= 1, || "limit must be >= 1 (got 0)".into());
        p.check((1..=31 * 86_400_000).contains(&config.period_ms), || {
            format!(
                "period_ms must be in 1..=2678400000 (got {})",
                config.period_ms
            )
        });
        p.check(config.burst != Some(0), || {
            "burst must be >= 1 (got 0)".into()
        });
        p.check((1..=10_000_000).contains(&config.max_keys), || {
            format!("max_keys must be in 1..=10000000 (got {})", config.max_keys)
        });
        let burst = config.burst.unwrap_or(config.limit).max(1);
        let emission_us = config.period_ms.saturating_mul(1000) / u64::from(config.limit.max(1));
        p.check(emission_us >= 1, || {
            "period_ms / limit must be at least 1 µs".into()
        });
        p.finish(RateLimiter {
            burst,
            emission_us,
            tolerance_us: emission_us.saturating_mul(u64::from(burst)),
            config,
            slots: Vec::new(),
            index: HashTable::new(),
            newest: NONE,
            oldest: NONE,
            clock: Clock::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Asks to spend `units` for `key` at `now_ms`. Allowed units are spent at once.
    pub fn check(&mut self, key: &str, units: u32, now_ms: u64) -> Result<Verdict, RateLimitError> {
        let hash = self.hash(key)?;
        if units == 0 {
            return Err(RateLimitError::ZeroUnits);
        }
        if units > self.burst {
            return Err(RateLimitError::ExceedsBurst {
                units,
                burst: self.burst,
            });
        }
        let now_us = self.now_us(now_ms);
        let tat = self.find(hash).map_or(now_us, |i| self.slots[i].tat_us);
        let new_tat = tat
            .max(now_us)
            .saturating_add(u64::from(units).saturating_mul(self.emission_us));
        let allow_at = new_tat.saturating_sub(self.tolerance_us);
        if allow_at > now_us {
            if let Some(i) = self.find(hash) {
                self.touch(i);
            }
            return Ok(Verdict::Denied {
                retry_in_ms: (allow_at - now_us).div_ceil(1000),
            });
        }
        self.store(hash, new_tat, now_us);
        let remaining = now_us
            .saturating_add(self.tolerance_us)
            .saturating_sub(new_tat)
            / self.emission_us;
        Ok(Verdict::Allowed {
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        })
    }

    /// Settles a reservation: `reserved` units were allowed for `key`, the call really cost
    /// `actual`. The difference is refunded (never beyond a fresh key's full burst) or debited
    /// (later calls wait longer).
    pub fn settle(
        &mut self,
        key: &str,
        reserved: u32,
        actual: u32,
        now_ms: u64,
    ) -> Result<(), RateLimitError> {
        let hash = self.hash(key)?;
        let now_us = self.now_us(now_ms);
        let tat = self.find(hash).map_or(now_us, |i| self.slots[i].tat_us);
        let tat = if actual >= reserved {
            let debit = u64::from(actual - reserved).saturating_mul(self.emission_us);
            tat.max(now_us).saturating_add(debit)
        } else {
            let refund = u64::from(reserved - actual).saturating_mul(self.emission_us);
            tat.saturating_sub(refund).max(now_us)
        };
        self.store(hash, tat, now_us);
        Ok(())
    }

    /// Denies `key` until `until_ms` (e.g. a provider's 429 retry hint); never shortens an
    /// existing wait. `until_ms` is on your clock, like `now_ms`; it is converted to the
    /// limiter's time through its clock once `now_ms` is observed (a block more than 2³² ms
    /// ahead counts as that long; see [`Clock::to_handle`]).
    pub fn block_until(
        &mut self,
        key: &str,
        until_ms: u64,
        now_ms: u64,
    ) -> Result<(), RateLimitError> {
        let hash = self.hash(key)?;
        let now_us = self.now_us(now_ms);
        let blocked = self
            .clock
            .to_handle(until_ms)
            .saturating_mul(1000)
            .saturating_add(self.tolerance_us - self.emission_us);
        let tat = self.find(hash).map_or(now_us, |i| self.slots[i].tat_us);
        self.store(hash, tat.max(blocked), now_us);
        Ok(())
    }

    /// Units `key` could spend at `now_ms` without waiting (does not spend or touch, and does
    /// not move the clock).
    pub fn remaining(&self, key: &str, now_ms: u64) -> Result<u32, RateLimitError> {
        let hash = self.hash(key)?;
        let now_us = self.clock.peek(now_ms).saturating_mul(1000);
        let tat = self.find(hash).map_or(now_us, |i| self.slots[i].tat_us);
        let free = now_us
            .saturating_add(self.tolerance_us)
            .saturating_sub(tat.max(now_us))
            / self.emission_us;
        Ok(u32::try_from(free).unwrap_or(u32::MAX))
    }

    /// The state, for export (least recently used first).
    pub fn snapshot(&self) -> RateLimitSnapshot {
        let mut keys = Vec::with_capacity(self.slots.len());
        let mut i = self.oldest;
        while let Some(slot) = self.slots.get(i as usize) {
            keys.push((slot.hash, slot.tat_us));
            i = slot.newer;
        }
        RateLimitSnapshot {
            version: SNAPSHOT_VERSION,
            config: self.config.clone(),
            clock: self.clock,
            keys,
        }
    }

    /// Rebuilds a limiter from a snapshot (format version, config and key count checked). The
    /// limiter keeps the snapshot's clock: if this process's clock restarted, the first call
    /// after the restore starts a new epoch and every wait runs on from where it stood.
    pub fn restore(snapshot: RateLimitSnapshot) -> Result<RateLimiter, ConfigError> {
        let mut p = Problems::default();
        check_version(&mut p, "version", snapshot.version);
        let mut limiter = RateLimiter::new(snapshot.config)?;
        p.check(
            snapshot.keys.len() <= limiter.config.max_keys as usize,
            || {
                format!(
                    "snapshot holds {} keys, more than max_keys {}",
                    snapshot.keys.len(),
                    limiter.config.max_keys
                )
            },
        );
        let mut seen = HashTable::<u64>::new();
        for &(hash, _) in &snapshot.keys {
            if seen.find(hash, |&h| h == hash).is_some() {
                p.check(false, || format!("snapshot repeats key hash {hash}"));
                break;
            }
            seen.insert_unique(hash, hash, |&h| h);
        }
        limiter.clock = snapshot.clock;
        let now_us = snapshot.clock.now().saturating_mul(1000);
        for (hash, tat_us) in snapshot.keys {
            limiter.store(hash, tat_us, now_us);
        }
        p.finish(limiter)
    }

    fn hash(&self, key: &str) -> Result<u64, RateLimitError> {
        if key.is_empty() {
            return Err(RateLimitError::EmptyKey);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(RateLimitError::KeyTooLong(key.len()));
        }
        Ok(twox_hash::XxHash64::oneshot(
            self.config.hash_seed,
            key.as_bytes(),
        ))
    }

    /// The limiter's time in µs after observing the caller's `now_ms` (see [`crate::clock`]).
    fn now_us(&mut self, now_ms: u64) -> u64 {
        self.clock.observe(now_ms).saturating_mul(1000)
    }

    fn find(&self, hash: u64) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| {
                slots.get(i as usize).is_some_and(|s| s.hash == hash)
            })
            .map(|&i| i as usize)
    }

    /// Sets `hash`'s TAT, creating the key (evicting one when full) and marking it newest.
    fn store(&mut self, hash: u64, tat_us: u64, now_us: u64) {
        if let Some(i) = self.find(hash) {
            self.slots[i].tat_us = tat_us;
            self.touch(i);
            return;
        }
        let slot = Slot {
            hash,
            tat_us,
            newer: NONE,
            older: NONE,
        };
        let i = if self.slots.len() >= self.config.max_keys as usize {
            let victim = self.victim(now_us);
            self.unlink(victim);
            let old = self.slots[victim].hash;
            if let Ok(entry) = self.index.find_entry(old, |&j| j as usize == victim) {
                entry.remove();
            }
            self.slots[victim] = slot;
            victim
        } else {
            self.slots.push(slot);
            self.slots.len() - 1
        };
        let slots = &self.slots;
        self.index.insert_unique(hash, i as u32, |&j| {
            slots.get(j as usize).map_or(0, |s| s.hash)
        });
        self.link_newest(i);
    }

    /// The key to evict: a fresh-equivalent one among the least recently used, else the least
    /// recently used.
    fn victim(&self, now_us: u64) -> usize {
        let mut i = self.oldest;
        for _ in 0..EVICTION_SCAN {
            match self.slots.get(i as usize) {
                Some(s) if s.tat_us <= now_us => return i as usize,
                Some(s) => i = s.newer,
                None => break,
            }
        }
        self.oldest as usize
    }

    fn touch(&mut self, i: usize) {
        if self.newest as usize != i {
            self.unlink(i);
            self.link_newest(i);
        }
    }

    fn unlink(&mut self, i: usize) {
        let Slot { newer, older, .. } = self.slots[i];
        match self.slots.get_mut(newer as usize) {
            Some(n) => n.older = older,
            None => self.newest = older,
        }
        match self.slots.get_mut(older as usize) {
            Some(o) => o.newer = newer,
            None => self.oldest = newer,
        }
        self.slots[i].newer = NONE;
        self.slots[i].older = NONE;
    }

    fn link_newest(&mut self, i: usize) {
        let previous = self.newest;
        if let Some(p) = self.slots.get_mut(previous as usize) {
            p.newer = i as u32;
        }
        self.slots[i].older = previous;
        self.slots[i].newer = NONE;
        self.newest = i as u32;
        if self.oldest == NONE {
            self.oldest = i as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limiter(limit: u32, period_ms: u64, burst: Option<u32>, max_keys: u32) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            limit,
            period_ms,
            burst,
            max_keys,
            hash_seed: 7,
        })
        .unwrap()
    }

    fn allowed(v: Verdict) -> bool {
        matches!(v, Verdict::Allowed { .. })
    }

    #[test]
    fn ten_messages_a_minute_by_default() {
        let mut l = RateLimiter::new(RateLimitConfig::default()).unwrap();
        for expected_remaining in (0..10).rev() {
            assert_eq!(
                l.check("6281234567890@s.whatsapp.net", 1, 0),
                Ok(Verdict::Allowed {
                    remaining: expected_remaining
                })
            );
        }
        // One every six seconds after the burst.
        assert_eq!(
            l.check("6281234567890@s.whatsapp.net", 1, 0),
            Ok(Verdict::Denied { retry_in_ms: 6_000 })
        );
        assert_eq!(
            l.check("6281234567890@s.whatsapp.net", 1, 5_999),
            Ok(Verdict::Denied { retry_in_ms: 1 })
        );
        assert!(allowed(
            l.check("6281234567890@s.whatsapp.net", 1, 6_000).unwrap()
        ));
        // Another session has its own limit.
        assert!(allowed(
            l.check("6289876543210@s.whatsapp.net", 1, 6_000).unwrap()
        ));
    }

    #[test]
    fn weighted_requests_spend_several_units() {
        let mut l = limiter(100, 60_000, None, 10);
        assert_eq!(l.check("s", 60, 0), Ok(Verdict::Allowed { remaining: 40 }));
        // 50 more need 10 units back: 10 · 600 ms.
        assert_eq!(
            l.check("s", 50, 0),
            Ok(Verdict::Denied { retry_in_ms: 6_000 })
        );
        assert_eq!(l.remaining("s", 0), Ok(40));
        assert_eq!(
            l.check("s", 101, 0),
            Err(RateLimitError::ExceedsBurst {
                units: 101,
                burst: 100
            })
        );
        assert_eq!(l.check("s", 0, 0), Err(RateLimitError::ZeroUnits));
        assert_eq!(l.check("", 1, 0), Err(RateLimitError::EmptyKey));
        assert_eq!(
            l.check(&"k".repeat(257), 1, 0),
            Err(RateLimitError::KeyTooLong(257))
        );
    }

    #[test]
    fn a_reservation_settles_to_the_real_cost() {
        // A tokens-per-minute budget: 10 000 tokens a minute.
        let mut l = limiter(10_000, 60_000, None, 10);
        assert!(allowed(l.check("s", 4_000, 0).unwrap()));
        l.settle("s", 4_000, 1_000, 0).unwrap();
        assert_eq!(l.remaining("s", 0), Ok(9_000));
        l.settle("s", 1_000, 3_000, 0).unwrap();
        assert_eq!(l.remaining("s", 0), Ok(7_000));
        // A refund never gives more than a fresh key's burst.
        l.settle("s", 9_999, 0, 0).unwrap();
        assert_eq!(l.remaining("s", 0), Ok(10_000));
    }

    #[test]
    fn a_server_429_blocks_the_key_until_its_hint() {
        let mut l = limiter(10, 60_000, None, 10);
        l.block_until("s", 30_000, 1_000).unwrap();
        assert_eq!(
            l.check("s", 1, 1_000),
            Ok(Verdict::Denied {
                retry_in_ms: 29_000
            })
        );
        assert_eq!(
            l.check("s", 1, 29_999),
            Ok(Verdict::Denied { retry_in_ms: 1 })
        );
        assert!(allowed(l.check("s", 1, 30_000).unwrap()));
        // A shorter block does not shorten the wait.
        l.block_until("t", 80_000, 30_000).unwrap();
        l.block_until("t", 40_000, 30_000).unwrap();
        assert_eq!(
            l.check("t", 1, 30_000),
            Ok(Verdict::Denied {
                retry_in_ms: 50_000
            })
        );
    }

    #[test]
    fn eviction_prefers_keys_equal_to_fresh_ones_then_the_least_recent() {
        let mut l = limiter(1, 1_000, None, 3);
        l.check("a", 1, 0).unwrap(); // TAT 1 000
        l.check("b", 1, 0).unwrap();
        l.check("c", 1, 0).unwrap();
        // At 500 ms nobody is fresh: the least recently used ("a") goes.
        l.check("d", 1, 500).unwrap();
        assert_eq!(l.check("a", 1, 500), Ok(Verdict::Allowed { remaining: 0 }));
        // "a" came back fresh and evicted "b" (the least recent); "c" still remembers.
        assert_eq!(
            l.check("c", 1, 500),
            Ok(Verdict::Denied { retry_in_ms: 500 })
        );
        // At 1 400, "c" (TAT 1 000) is fresh-equivalent though "d" (TAT 1 500) is older in use.
        l.check("d", 1, 1_400)
            .unwrap_or(Verdict::Denied { retry_in_ms: 0 });
        l.check("e", 1, 1_400).unwrap();
        assert_eq!(l.len(), 3);
        let keys: Vec<u64> = l.snapshot().keys.iter().map(|k| k.0).collect();
        assert!(!keys.contains(&l.hash("c").unwrap()));
        assert!(keys.contains(&l.hash("a").unwrap()));
    }

    #[test]
    fn a_clock_that_jumps_backwards_starts_a_new_epoch() {
        let mut l = limiter(1, 10_000, None, 10);
        assert!(allowed(l.check("s", 1, 50_000).unwrap()));
        // 50 s back: a new epoch; no time passes at that step, so the wait is the same.
        assert_eq!(
            l.check("s", 1, 0),
            Ok(Verdict::Denied {
                retry_in_ms: 10_000
            })
        );
        // Time runs on from there: 10 s later it is allowed. (The old rule, standing still at
        // 50 000, would deny until host time 60 000.)
        assert_eq!(l.remaining("s", 9_999), Ok(0));
        assert_eq!(l.remaining("s", 10_000), Ok(1));
        assert!(allowed(l.check("s", 1, 10_000).unwrap()));
    }

    #[test]
    fn out_of_order_checks_do_not_make_time_run_fast() {
        let mut l = limiter(1, 10_000, None, 10);
        assert!(allowed(l.check("s", 1, 10_000).unwrap()));
        // Readings 0.9 s late, then the newest again: no time passed at all.
        assert_eq!(
            l.check("s", 1, 9_100),
            Ok(Verdict::Denied {
                retry_in_ms: 10_000
            })
        );
        assert_eq!(
            l.check("s", 1, 10_000),
            Ok(Verdict::Denied {
                retry_in_ms: 10_000
            })
        );
    }

    #[test]
    fn a_nanosecond_timestamp_does_not_deny_a_session_until_then() {
        let mut l = limiter(1, 10_000, None, 10);
        assert!(allowed(l.check("s", 1, 1_700_000_000_000_000_000).unwrap()));
        // Back to milliseconds: a new epoch; the session waits its 10 s, not 1.7·10¹⁸ ms.
        assert_eq!(
            l.check("s", 1, 5_000),
            Ok(Verdict::Denied {
                retry_in_ms: 10_000
            })
        );
        assert!(allowed(l.check("s", 1, 15_000).unwrap()));
    }

    #[test]
    fn block_until_is_converted_through_the_clock() {
        let mut l = limiter(10, 60_000, None, 10);
        l.check("s", 1, 100_000).unwrap();
        // A reboot: host 2 000 is a new epoch. Blocked until host 32 000 = 30 s from now.
        l.block_until("t", 32_000, 2_000).unwrap();
        assert_eq!(
            l.check("t", 1, 2_000),
            Ok(Verdict::Denied {
                retry_in_ms: 30_000
            })
        );
        assert!(allowed(l.check("t", 1, 32_000).unwrap()));
        // A block "until" a time already past does nothing; one far ahead is capped at 2^32 ms.
        l.block_until("u", 0, 32_000).unwrap();
        assert!(allowed(l.check("u", 1, 32_000).unwrap()));
        l.block_until("v", u64::MAX, 32_000).unwrap();
        assert_eq!(
            l.check("v", 1, 32_000),
            Ok(Verdict::Denied {
                retry_in_ms: crate::clock::MAX_FORWARD_STEP_MS
            })
        );
    }

    #[test]
    fn snapshots_carry_a_version_and_old_ones_are_migrated() {
        let mut l = limiter(1, 10_000, None, 10);
        l.check("s", 1, 50_000).unwrap();
        let snap = l.snapshot();
        assert_eq!(snap.version, crate::clock::SNAPSHOT_VERSION);
        let mut v = serde_json::to_value(&snap).unwrap();
        v["version"] = 2.into();
        let err = RateLimiter::restore(serde_json::from_value(v.clone()).unwrap()).unwrap_err();
        assert!(err.to_string().contains("version 2 is newer"), "{err}");
        let o = v.as_object_mut().unwrap();
        o.remove("version");
        o.remove("clock");
        o.insert("last_now_ms".into(), 50_000.into());
        let mut old = RateLimiter::restore(serde_json::from_value(v).unwrap()).unwrap();
        assert_eq!(old.snapshot(), snap);
        // Restored after a reboot: the first check is a new epoch; the wait runs on from there.
        assert_eq!(
            old.check("s", 1, 300),
            Ok(Verdict::Denied {
                retry_in_ms: 10_000
            })
        );
        assert!(allowed(old.check("s", 1, 10_300).unwrap()));
    }

    #[test]
    fn snapshots_round_trip() {
        let mut l = limiter(10, 60_000, Some(3), 100);
        for (i, key) in ["a", "b", "c", "a"].iter().enumerate() {
            l.check(key, 1, i as u64 * 10).unwrap();
        }
        let json = serde_json::to_string(&l.snapshot()).unwrap();
        let mut r = RateLimiter::restore(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(r.snapshot(), l.snapshot());
        assert_eq!(r.check("a", 2, 30), l.check("a", 2, 30));
        let mut bad: RateLimitSnapshot = serde_json::from_str(&json).unwrap();
        bad.keys.push(bad.keys[0]);
        assert!(RateLimiter::restore(bad).is_err());
    }

    #[test]
    fn config_errors_list_every_problem() {
        let err = RateLimiter::new(RateLimitConfig {
            limit: 0,
            period_ms: 0,
            burst: Some(0),
            max_keys: 0,
            hash_seed: 0,
        })
        .unwrap_err();
        assert_eq!(err.problems.len(), 5, "{err}");
    }

    proptest! {
        /// Over any span of checks on one key, allowed units ≤ burst + span / T.
        #[test]
        fn never_more_than_burst_plus_rate_times_t(
            steps in proptest::collection::vec((0u64..2_000, 1u32..4), 1..300),
            limit in 1u32..20, burst in 1u32..8,
        ) {
            let mut l = limiter(limit, 10_000, Some(burst.max(3)), 4);
            let burst = burst.max(3);
            let emission_us = 10_000_000 / u64::from(limit);
            let (mut now, mut spent) = (0u64, 0u64);
            for (dt, units) in steps {
                now += dt;
                if let Ok(Verdict::Allowed { .. }) = l.check("s", units, now) {
                    spent += u64::from(units);
                }
                prop_assert!(spent <= u64::from(burst) + now * 1000 / emission_us,
                    "{spent} units by {now} ms");
            }
        }

        /// A denial's retry_in is exact: still "no" just before it, "yes" at it.
        #[test]
        fn a_denial_says_exactly_when_the_next_yes_comes(
            pre in proptest::collection::vec(0u64..3_000, 1..20), units in 1u32..4, limit in 1u32..50,
        ) {
            let mut l = limiter(limit, 60_000, Some(4), 8);
            let mut now = 0;
            for dt in pre {
                now += dt;
                let _ = l.check("s", 1, now);
            }
            if let Ok(Verdict::Denied { retry_in_ms }) = l.check("s", units, now) {
                let mut probe = l.clone();
                for fraction in [0, retry_in_ms / 4, retry_in_ms / 2, retry_in_ms.saturating_sub(1)] {
                    if fraction < retry_in_ms {
                        prop_assert!(!allowed(probe.check("s", units, now + fraction).unwrap()));
                    }
                }
                prop_assert!(allowed(l.check("s", units, now + retry_in_ms).unwrap()));
            }
        }
    }
}
