//! Seeding. Every random draw in rein comes from a [`ReinRng`] seeded explicitly, so that a run
//! with the same seed (and thread count) is reproducible to the bit.

use rand::SeedableRng;

/// The pseudo-random generator used by environments, spaces and agents: PCG-XSL-RR 128/64,
/// fast, small state, and with a stable output stream across platforms and crate versions.
pub type ReinRng = rand_pcg::Pcg64;

/// A generator seeded from `seed` (a fixed, documented expansion of the 64-bit seed).
pub fn rng_from_seed(seed: u64) -> ReinRng {
    ReinRng::seed_from_u64(seed)
}

/// A generator seeded from the operating system's entropy, for `reset(None)` before any seed
/// was given (Gymnasium does the same).
pub fn rng_from_entropy() -> ReinRng {
    let seed: u64 = rand::random();
    ReinRng::seed_from_u64(seed)
}

/// Keeps an environment's generator with Gymnasium's `reset(seed=...)` semantics: a seed
/// reseeds, `None` continues the current stream (or draws entropy the first time).
#[derive(Debug, Clone)]
pub struct EnvRng {
    rng: Option<ReinRng>,
}

impl Default for EnvRng {
    fn default() -> Self {
        Self::new()
    }
}

impl EnvRng {
    /// An unseeded generator: the first `reseed(None)` seeds it from entropy.
    pub fn new() -> Self {
        Self { rng: None }
    }

    /// Apply the `seed` argument of `reset`.
    pub fn reseed(&mut self, seed: Option<u64>) {
        match seed {
            Some(s) => self.rng = Some(rng_from_seed(s)),
            None => {
                if self.rng.is_none() {
                    self.rng = Some(rng_from_entropy());
                }
            }
        }
    }

    /// The generator (seeded from entropy if it never was).
    pub fn get(&mut self) -> &mut ReinRng {
        self.rng.get_or_insert_with(rng_from_entropy)
    }
}
