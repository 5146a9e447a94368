//! Seeded mutations of valid files, for the tests that every loader (checkpoints, models,
//! tokenizers, GGUF, adapters, presets, prompt files, MDP files) gives an error or a valid
//! result on damaged input and never panics or hangs.

use rand::Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One seeded mutation of `valid`: a few flipped bits, a truncation, a chunk copied over
/// another place, random bytes over a stretch, a number replaced by a huge, negative or
/// non-number value, deep nesting in front, or inserted bytes.
pub fn mutate(valid: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    let mut b = valid.to_vec();
    if b.is_empty() {
        return vec![rng.random()];
    }
    let n = b.len();
    match rng.random_range(0..8u32) {
        // Flip a few bits.
        0 => {
            for _ in 0..rng.random_range(1..=8usize) {
                let i = rng.random_range(0..n);
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << rng.random_range(0..8u32);
                }
            }
        }
        // Cut it short.
        1 => b.truncate(rng.random_range(0..n)),
        // Copy a chunk over another place.
        2 => {
            let (from, to) = (rng.random_range(0..n), rng.random_range(0..n));
            let len = rng.random_range(1..=64usize).min(n - from.max(to));
            let chunk = b[from..from + len].to_vec();
            b[to..to + len].copy_from_slice(&chunk);
        }
        // Random bytes over a stretch.
        3 => {
            let at = rng.random_range(0..n);
            for x in b.iter_mut().skip(at).take(rng.random_range(1..=32usize)) {
                *x = rng.random();
            }
        }
        // A number replaced by a huge, negative or non-number value.
        4 | 5 => {
            let digits: Vec<usize> = (0..b.len()).filter(|&i| b[i].is_ascii_digit()).collect();
            if let Some(&i) = digits.get(rng.random_range(0..digits.len().max(1))) {
                let with: &[u8] = match rng.random_range(0..5u32) {
                    0 => b"99999999999999999999",
                    1 => b"-1",
                    2 => b"NaN",
                    3 => b"1e309",
                    _ => b"18446744073709551615",
                };
                b.splice(i..i + 1, with.iter().copied());
            } else {
                b.truncate(n / 2);
            }
        }
        // Deep nesting in front.
        6 => {
            let depth = rng.random_range(100..5000usize);
            let mut v = vec![b'['; depth];
            v.extend_from_slice(&b);
            b = v;
        }
        // Bytes inserted.
        _ => {
            let at = rng.random_range(0..=b.len());
            let ins: Vec<u8> = (0..rng.random_range(1..=16usize))
                .map(|_| rng.random())
                .collect();
            b.splice(at..at, ins);
        }
    }
    b
}

/// The most heap one loading attempt of a mutation test may add: the valid files are
/// kilobytes, so anything near this is a size read from the damaged file and believed (a
/// config with 10^20 layers).
pub const ALLOCATION_BOUND: usize = 1 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their high-water mark, so that a mutation
/// test can hold each load to [`ALLOCATION_BOUND`]. A test binary installs it with
/// `#[global_allocator] static A: rein_core::fuzz::CountingAllocator = CountingAllocator;`
/// and measures with [`peak_allocation`].
pub struct CountingAllocator;

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let live = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Runs `f` and returns its result with the most bytes that were live at once during it
/// beyond those live before it (0 unless [`CountingAllocator`] is the global allocator).
/// Tests of one binary run in parallel, so the figure includes their allocations too: an
/// upper bound, which is what a bound check needs.
pub fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(before))
}
