//! Measures the rate limiter's memory per key at steady state with a counting allocator.
//! The target (issue #3) is at most 64 bytes a key, session id included (it is hashed).

use llm_resilience::ratelimit::{RateLimitConfig, RateLimiter};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn steady_state_is_at_most_64_bytes_a_key() {
    for keys in [10_000u32, 60_000, 100_000] {
        let before = LIVE.load(Ordering::Relaxed);
        let mut limiter = RateLimiter::new(RateLimitConfig {
            max_keys: keys,
            ..RateLimitConfig::default()
        })
        .unwrap();
        // Twice as many sessions as keys: the limiter fills up, then evicts.
        for i in 0..u64::from(keys) * 2 {
            let session = format!("62812{i:08}@s.whatsapp.net");
            limiter.check(&session, 1, i).unwrap();
        }
        assert_eq!(limiter.len(), keys as usize);
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        let per_key = bytes as f64 / f64::from(keys);
        println!("rate limiter: {keys} keys, {bytes} bytes, {per_key:.1} bytes/key");
        assert!(per_key <= 64.0, "{per_key:.1} bytes a key");
        drop(limiter);
    }
}
