//! Experience replay (Lin 1992; Mnih et al. 2015): a fixed-capacity ring of transitions in
//! contiguous arrays, sampled uniformly with a seeded generator.

use crate::rng::ReinRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Transitions `(s, a, r, s', terminated, truncated)`, oldest overwritten first. `s'` is the
/// true next observation: the final observation when the episode ended (so truncated
/// transitions can bootstrap from it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayBuffer {
    capacity: usize,
    obs_dim: usize,
    action_dim: usize,
    obs: Vec<f32>,
    next_obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    pos: usize,
    len: usize,
}

/// Borrowed views of a buffer's storage (see [`ReplayBuffer::arrays`]).
#[derive(Debug, Clone, Copy)]
pub struct ReplayArrays<'a> {
    /// Observations.
    pub obs: &'a [f32],
    /// Next observations.
    pub next_obs: &'a [f32],
    /// Actions.
    pub actions: &'a [f32],
    /// Rewards.
    pub rewards: &'a [f32],
    /// Terminal flags.
    pub terminated: &'a [bool],
    /// Truncation flags.
    pub truncated: &'a [bool],
}

/// A sampled minibatch, in contiguous arrays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayBatch {
    /// `batch x obs_dim`.
    pub obs: Vec<f32>,
    /// `batch x obs_dim`.
    pub next_obs: Vec<f32>,
    /// `batch x action_dim`.
    pub actions: Vec<f32>,
    /// Rewards.
    pub rewards: Vec<f32>,
    /// Terminal flags (no bootstrapping).
    pub terminated: Vec<bool>,
    /// Bootstrap multiplier `gamma^m` of each sample's next observation, where `m` is the number
    /// of rewards summed into it (filled by [`ReplayBuffer::sample_n_step_into`]).
    pub discounts: Vec<f32>,
    /// Ring index of each sample.
    pub indices: Vec<usize>,
}

impl ReplayBuffer {
    /// An empty buffer for `capacity` transitions.
    pub fn new(capacity: usize, obs_dim: usize, action_dim: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            obs_dim,
            action_dim,
            obs: vec![0.0; capacity.max(1) * obs_dim],
            next_obs: vec![0.0; capacity.max(1) * obs_dim],
            actions: vec![0.0; capacity.max(1) * action_dim],
            rewards: vec![0.0; capacity.max(1)],
            terminated: vec![false; capacity.max(1)],
            truncated: vec![false; capacity.max(1)],
            pos: 0,
            len: 0,
        }
    }

    /// Number of stored transitions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The stored arrays (full capacity; only the first `len()` entries, in ring order from
    /// `position()`, are live), for checkpoints.
    pub fn arrays(&self) -> ReplayArrays<'_> {
        ReplayArrays {
            obs: &self.obs,
            next_obs: &self.next_obs,
            actions: &self.actions,
            rewards: &self.rewards,
            terminated: &self.terminated,
            truncated: &self.truncated,
        }
    }

    /// Next write position of the ring.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Restores arrays written by [`ReplayBuffer::arrays`] with their position and length,
    /// checking every size.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &mut self,
        obs: Vec<f32>,
        next_obs: Vec<f32>,
        actions: Vec<f32>,
        rewards: Vec<f32>,
        terminated: Vec<bool>,
        truncated: Vec<bool>,
        pos: usize,
        len: usize,
    ) -> Result<(), String> {
        let c = self.capacity;
        if obs.len() != c * self.obs_dim
            || next_obs.len() != c * self.obs_dim
            || actions.len() != c * self.action_dim
            || rewards.len() != c
            || terminated.len() != c
            || truncated.len() != c
            || pos >= c
            || len > c
        {
            return Err(format!(
                "replay arrays do not match a buffer of capacity {c}"
            ));
        }
        (self.obs, self.next_obs, self.actions, self.rewards) = (obs, next_obs, actions, rewards);
        (self.terminated, self.truncated, self.pos, self.len) = (terminated, truncated, pos, len);
        Ok(())
    }

    /// Adds one transition, overwriting the oldest when full.
    pub fn push(
        &mut self,
        obs: &[f32],
        action: &[f32],
        reward: f32,
        next_obs: &[f32],
        terminated: bool,
        truncated: bool,
    ) {
        let (d, a, i) = (self.obs_dim, self.action_dim, self.pos);
        self.obs[i * d..(i + 1) * d].copy_from_slice(obs);
        self.next_obs[i * d..(i + 1) * d].copy_from_slice(next_obs);
        self.actions[i * a..(i + 1) * a].copy_from_slice(action);
        self.rewards[i] = reward;
        self.terminated[i] = terminated;
        self.truncated[i] = truncated;
        self.pos = (self.pos + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// Draws `batch` transitions uniformly (with replacement) into `out`.
    pub fn sample_into(&self, batch: usize, rng: &mut ReinRng, out: &mut ReplayBatch) {
        assert!(self.len > 0, "sampling from an empty replay buffer");
        let (d, a) = (self.obs_dim, self.action_dim);
        out.obs.resize(batch * d, 0.0);
        out.next_obs.resize(batch * d, 0.0);
        out.actions.resize(batch * a, 0.0);
        out.rewards.resize(batch, 0.0);
        out.terminated.resize(batch, false);
        out.indices.resize(batch, 0);
        for k in 0..batch {
            let i = rng.random_range(0..self.len);
            out.indices[k] = i;
            out.obs[k * d..(k + 1) * d].copy_from_slice(&self.obs[i * d..(i + 1) * d]);
            out.next_obs[k * d..(k + 1) * d].copy_from_slice(&self.next_obs[i * d..(i + 1) * d]);
            out.actions[k * a..(k + 1) * a].copy_from_slice(&self.actions[i * a..(i + 1) * a]);
            out.rewards[k] = self.rewards[i];
            out.terminated[k] = self.terminated[i];
        }
    }
}

impl ReplayBuffer {
    /// Draws `batch` start indices uniformly (the same generator draws as
    /// [`ReplayBuffer::sample_into`]) and returns n-step transitions (Sutton and Barto 2018,
    /// eq. 7.1): `R = sum_{k<m} gamma^k r_{i+k}`, where `m <= n` stops early at the end of an
    /// episode (terminated or truncated) or at the newest stored transition; `next_obs` and
    /// `terminated` are those of transition `i+m-1`, and `discounts = gamma^m`. With `n = 1`
    /// this is the one-step batch with `discounts = gamma`. Needs transitions pushed in time
    /// order from one environment.
    pub fn sample_n_step_into(
        &self,
        batch: usize,
        n: usize,
        gamma: f32,
        rng: &mut ReinRng,
        out: &mut ReplayBatch,
    ) {
        self.sample_into(batch, rng, out);
        out.discounts.clear();
        out.discounts.resize(batch, gamma);
        if n <= 1 {
            return;
        }
        let d = self.obs_dim;
        for k in 0..batch {
            let mut i = out.indices[k];
            let (mut ret, mut disc) = (0.0f32, 1.0f32);
            let mut m = 0;
            loop {
                ret += disc * self.rewards[i];
                disc *= gamma;
                m += 1;
                let next = (i + 1) % self.capacity;
                if m == n || self.terminated[i] || self.truncated[i] || next == self.pos {
                    break;
                }
                i = next;
            }
            out.rewards[k] = ret;
            out.terminated[k] = self.terminated[i];
            out.next_obs[k * d..(k + 1) * d].copy_from_slice(&self.next_obs[i * d..(i + 1) * d]);
            out.discounts[k] = disc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::rng_from_seed;

    #[test]
    fn ring_overwrites_oldest_and_samples_stored_transitions() {
        let mut b = ReplayBuffer::new(3, 1, 1);
        for k in 0..5 {
            b.push(
                &[k as f32],
                &[0.0],
                k as f32,
                &[k as f32 + 1.0],
                k == 4,
                false,
            );
        }
        assert_eq!(b.len(), 3);
        let mut rng = rng_from_seed(0);
        let mut batch = ReplayBatch::default();
        b.sample_into(200, &mut rng, &mut batch);
        let mut seen: Vec<f32> = batch.obs.clone();
        seen.sort_by(|a, b| a.total_cmp(b));
        seen.dedup();
        assert_eq!(seen, vec![2.0, 3.0, 4.0], "only the newest 3 remain");
        for k in 0..200 {
            assert_eq!(batch.next_obs[k], batch.obs[k] + 1.0);
            assert_eq!(batch.rewards[k], batch.obs[k]);
            assert_eq!(batch.terminated[k], batch.obs[k] == 4.0);
        }
    }

    #[test]
    fn n_step_sums_stop_at_episode_ends_and_at_the_newest_transition() {
        // Rewards 1, 2, 4, 8, 16; the episode ends (terminated) after transition 2 and the
        // buffer (capacity 8) holds 5 transitions.
        let mut b = ReplayBuffer::new(8, 1, 1);
        for k in 0..5 {
            b.push(
                &[k as f32],
                &[0.0],
                (1 << k) as f32,
                &[k as f32 + 0.5],
                k == 2,
                false,
            );
        }
        let mut rng = rng_from_seed(1);
        let mut batch = ReplayBatch::default();
        b.sample_n_step_into(300, 3, 0.5, &mut rng, &mut batch);
        for k in 0..300 {
            let (r, next, term, disc) = match batch.obs[k] as i32 {
                0 => (1.0 + 0.5 * 2.0 + 0.25 * 4.0, 2.5, true, 0.125),
                1 => (2.0 + 0.5 * 4.0, 2.5, true, 0.25),
                2 => (4.0, 2.5, true, 0.5),
                3 => (8.0 + 0.5 * 16.0, 4.5, false, 0.25),
                4 => (16.0, 4.5, false, 0.5),
                other => panic!("unexpected observation {other}"),
            };
            assert_eq!(
                (
                    batch.rewards[k],
                    batch.next_obs[k],
                    batch.terminated[k],
                    batch.discounts[k]
                ),
                (r, next, term, disc),
                "sample starting at {}",
                batch.obs[k]
            );
        }
        // n = 1 is the one-step batch with discount gamma.
        b.sample_n_step_into(50, 1, 0.5, &mut rng, &mut batch);
        assert!(batch.discounts.iter().all(|&g| g == 0.5));
        assert!((0..50).all(|k| batch.next_obs[k] == batch.obs[k] + 0.5));
    }
}
