//! A small deterministic random source (SplitMix64).
//!
//! The mock needs reproducible draws, not cryptographic ones: the same scenario seed must give
//! the same workload and the same fault pattern on every machine and in every language that
//! reads the jobs. SplitMix64 is tiny, has no dependency and its output is fully specified.

/// One SplitMix64 step: the output for `state` (which the caller advances by the golden gamma).
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A stateless draw in `[0, 1)` from a seed and two integers (e.g. the request sequence number
/// and a fault index): the same inputs always give the same number.
pub fn unit_from(seed: u64, a: u64, b: u64) -> f64 {
    let h = mix(mix(seed ^ GAMMA).wrapping_add(a.wrapping_mul(GAMMA))
        ^ b.wrapping_mul(0x2545_f491_4f6c_dd1d));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A seeded sequence of draws.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A sequence from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: mix(seed ^ 0x6a09_e667_f3bc_c909),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// A draw in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A draw in `[lo, hi]` (inclusive; `lo` when `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo + 1;
        lo + self.next_u64() % span
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a slice, uniformly; `None` for an empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        let i = self.range(0, items.len() as u64 - 1) as usize;
        items.get(i)
    }
}
