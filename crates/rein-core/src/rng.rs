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

/// The generator's state as text. PCG64 keeps 128-bit integers, which `serde_json::Value`
/// cannot hold as numbers, so checkpoints store this string instead.
pub fn rng_to_string(rng: &ReinRng) -> String {
    serde_json::to_string(rng).unwrap_or_default()
}

/// Reads a generator written by [`rng_to_string`].
pub fn rng_from_str(text: &str) -> Result<ReinRng, String> {
    serde_json::from_str(text).map_err(|e| format!("invalid generator state {text:?}: {e}"))
}

/// `#[serde(with = "rein_core::rng::as_string")]` for a [`ReinRng`] field of a checkpoint
/// state: the generator as the text of [`rng_to_string`].
pub mod as_string {
    use super::{rng_from_str, rng_to_string, ReinRng};

    /// Writes the generator as text.
    pub fn serialize<S: serde::Serializer>(rng: &ReinRng, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rng_to_string(rng))
    }

    /// Reads a generator written by [`serialize`].
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ReinRng, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        rng_from_str(&text).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for EnvRng {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.rng.as_ref().map(rng_to_string).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for EnvRng {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text: Option<String> = serde::Deserialize::deserialize(d)?;
        let rng = text
            .map(|t| rng_from_str(&t))
            .transpose()
            .map_err(serde::de::Error::custom)?;
        Ok(Self { rng })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn generator_state_round_trips_through_json() {
        let mut r = rng_from_seed(7);
        let _: u64 = r.random();
        let mut back = rng_from_str(&rng_to_string(&r)).unwrap();
        assert_eq!(r.random::<u64>(), back.random::<u64>());
        let mut e = EnvRng::new();
        e.reseed(Some(3));
        let v = serde_json::to_value(&e).unwrap();
        let mut e2: EnvRng = serde_json::from_value(v).unwrap();
        assert_eq!(e.get().random::<u64>(), e2.get().random::<u64>());
    }
}
