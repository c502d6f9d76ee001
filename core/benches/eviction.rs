//! The cost of a new key in a full keyed store, at 1k, 10k and 100k keys, side by side in one
//! run: `cargo bench -p llm-resilience --bench eviction`.
//!
//! A new key in a full [`BreakerSet`] evicts one breaker; a new session in a full
//! [`RateLimiter`] evicts one key. Both must cost O(1) or O(log n), not a scan of every key
//! (issue 9, finding 5: the scan took 13 µs at 1k keys, 220 µs at 10k, 10.4 ms at 100k).
//!
//! - `breaker_set/new-key/N`: a set of N breakers (closed with a success counted, 1 % open)
//!   receives a key it does not hold. The new breaker has nothing counted, so the next new key
//!   evicts it (fresh ones go first).
//! - `breaker_set/new-key+record/N`: the same, and the new key then records a success, so every
//!   new key evicts the least recently used closed breaker.
//! - `breaker_set/known-key/N`: acquire + record on keys the set holds (no eviction): what the
//!   eviction index costs on the hot path.
//! - `ratelimit/new-key/N`: a limiter full of N sessions sees a session it does not hold.
//!
//! Compare ratios, not absolute numbers: the machine is shared.
//!
//! Last run (2 shared cores under a load of ~14; the binary of commit 7eb4072, before the
//! change, and the one after it run alternately, group by group, with `--warm-up-time 1
//! --measurement-time 2 --sample-size 10`), median per iteration, before → after:
//!
//! | group | 1k | 10k | 100k |
//! |---|---|---|---|
//! | `breaker_set/new-key` | 28 µs → 1.6 µs | 707 µs → 2.3 µs | 26.1 ms → 3.4 µs |
//! | `breaker_set/new-key+record` | 39 µs → 3.1 µs | 655 µs → 3.0 µs | 25.1 ms → 3.2 µs |
//! | `breaker_set/known-key` | 666 ns → 658 ns | 1.39 µs → 1.42 µs | 1.61 µs → 1.37 µs |
//! | `ratelimit/new-key` (unchanged) | 179 ns → 198 ns | 193 ns → 184 ns | 534 ns → 272 ns |

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use llm_resilience::breaker::{BreakerConfig, BreakerSet, Outcome};
use llm_resilience::classify::ErrorKind;
use llm_resilience::ratelimit::{RateLimitConfig, RateLimiter};
use std::hint::black_box;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

const FAIL: Outcome = Outcome::Failure {
    kind: ErrorKind::Timeout,
    retry_after_ms: None,
};

/// Rotation keys: twice the set's size, so the next key in turn is never held.
fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..2 * n)
        .map(|i| format!("{prefix}/model-{i:07}"))
        .collect()
}

/// A full set of `n` breakers: 1 % open, the rest closed with one success counted. Returns the
/// set and the rotation keys (the first `n` - n/100 of them are held).
fn full_set(n: usize) -> (BreakerSet, Vec<String>) {
    let config = BreakerConfig {
        consecutive_failures: Some(1),
        ..BreakerConfig::default()
    };
    let mut set = BreakerSet::new(config, n).unwrap();
    let open = n / 100;
    for i in 0..open {
        let key = format!("open/model-{i:07}");
        let p = set.acquire(&key, 0).unwrap().unwrap();
        set.record(&key, p, FAIL, 0).unwrap();
    }
    let keys = keys("closed", n);
    for key in &keys[..n - open] {
        let p = set.acquire(key, 0).unwrap().unwrap();
        set.record(key, p, Outcome::Success, 0).unwrap();
    }
    assert_eq!(set.len(), n);
    (set, keys)
}

fn breaker_set(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker_set/new-key");
    for n in SIZES {
        let (mut set, keys) = full_set(n);
        // Only the keys the set does not hold: each new one evicts the one before it.
        let unheld = &keys[n - n / 100..];
        let mut next = 0;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                next = (next + 1) % unheld.len();
                set.acquire(black_box(&unheld[next]), 1)
            })
        });
        assert_eq!(set.len(), n);
    }
    group.finish();

    let mut group = c.benchmark_group("breaker_set/new-key+record");
    for n in SIZES {
        let (mut set, keys) = full_set(n);
        let mut next = n - n / 100;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                next = (next + 1) % keys.len();
                let key = black_box(&keys[next]);
                let p = set.acquire(key, 1).unwrap().unwrap();
                set.record(key, p, Outcome::Success, 1)
            })
        });
        assert_eq!(set.len(), n);
    }
    group.finish();

    let mut group = c.benchmark_group("breaker_set/known-key");
    for n in SIZES {
        let (mut set, keys) = full_set(n);
        let held = n - n / 100;
        let mut next = 0;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                next = (next + 1) % held;
                let key = black_box(&keys[next]);
                let p = set.acquire(key, 1).unwrap().unwrap();
                set.record(key, p, Outcome::Success, 1)
            })
        });
        assert_eq!(set.len(), n);
    }
    group.finish();
}

fn ratelimit(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit/new-key");
    for n in SIZES {
        let mut limiter = RateLimiter::new(RateLimitConfig {
            max_keys: n as u32,
            ..RateLimitConfig::default()
        })
        .unwrap();
        let keys = keys("62812", n);
        for key in &keys[..n] {
            limiter.check(key, 1, 0).unwrap();
        }
        assert_eq!(limiter.len(), n);
        let mut next = n - 1;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                next = (next + 1) % keys.len();
                limiter.check(black_box(&keys[next]), 1, 1)
            })
        });
        assert_eq!(limiter.len(), n);
    }
    group.finish();
}

criterion_group!(benches, breaker_set, ratelimit);
criterion_main!(benches);
