//! What the training loop of `rein train` needs from an off-policy agent (DQN, TD3, DDPG).

use crate::onpolicy::{EnvFactory, PgError};

/// An off-policy agent: env steps and gradient steps in phases of `train_freq` steps.
pub trait OffPolicyAgent {
    /// Steps the env for one phase and trains; returns the metrics row.
    fn train_phase_row(&mut self) -> Result<Vec<f64>, PgError>;
    /// Names of the metrics columns (`global_step` first, `episodic_return_mean` among them).
    fn columns(&self) -> &'static [&'static str];
    /// Environment steps so far.
    fn global_step(&self) -> u64;
    /// Steps to train for.
    fn total_timesteps(&self) -> u64;
    /// Env steps per phase (one metrics row each).
    fn train_freq(&self) -> u64;
    /// The run's seed.
    fn seed(&self) -> u64;
    /// Writes a checkpoint (networks, optimisers, replay buffer, env) for exact resume.
    fn save_checkpoint(&self, path: &std::path::Path) -> Result<(), PgError>;
    /// Mean and standard deviation of the greedy policy's return over fresh episodes.
    fn evaluate(
        &mut self,
        make_env: &EnvFactory,
        episodes: u64,
        seed: u64,
    ) -> Result<(f64, f64), PgError>;
}

/// Replay-buffer arrays as checkpoint tensors (`replay.*`; flags as 0/1 floats). Only the
/// filled part is written: until the ring wraps, entries `len..capacity` are unused.
pub(crate) fn replay_tensors(
    buffer: &rein_core::replay::ReplayBuffer,
) -> Vec<rein_nn::io::NamedTensor> {
    let r = buffer.arrays();
    let n = buffer.len();
    let cap = r.rewards.len();
    let (od, ad) = (r.obs.len() / cap, r.actions.len() / cap);
    let flags = |v: &[bool]| {
        v[..n]
            .iter()
            .map(|&b| f32::from(u8::from(b)))
            .collect::<Vec<f32>>()
    };
    [
        ("replay.obs", r.obs[..n * od].to_vec()),
        ("replay.next_obs", r.next_obs[..n * od].to_vec()),
        ("replay.actions", r.actions[..n * ad].to_vec()),
        ("replay.rewards", r.rewards[..n].to_vec()),
        ("replay.terminated", flags(r.terminated)),
        ("replay.truncated", flags(r.truncated)),
    ]
    .into_iter()
    .map(|(name, data)| rein_nn::io::NamedTensor {
        name: name.into(),
        shape: vec![data.len()],
        data,
    })
    .collect()
}

/// Restores [`replay_tensors`] into `buffer` with the saved position and length.
pub(crate) fn restore_replay(
    buffer: &mut rein_core::replay::ReplayBuffer,
    tensors: &std::collections::HashMap<String, rein_nn::io::NamedTensor>,
    pos: usize,
    len: usize,
) -> Result<(), String> {
    let r = buffer.arrays();
    let cap = r.rewards.len();
    let (od, ad) = (r.obs.len() / cap, r.actions.len() / cap);
    // Saved tensors hold the filled part; pad back to the capacity.
    let t = |name: &str, per: usize| -> Result<Vec<f32>, String> {
        let mut v = tensors
            .get(name)
            .map(|t| t.data.clone())
            .ok_or_else(|| format!("missing tensor {name}"))?;
        if v.len() > cap * per {
            return Err(format!(
                "tensor {name} holds more than the buffer's capacity"
            ));
        }
        v.resize(cap * per, 0.0);
        Ok(v)
    };
    let flags = |v: Vec<f32>| v.into_iter().map(|x| x != 0.0).collect::<Vec<bool>>();
    buffer.restore(
        t("replay.obs", od)?,
        t("replay.next_obs", od)?,
        t("replay.actions", ad)?,
        t("replay.rewards", 1)?,
        flags(t("replay.terminated", 1)?),
        flags(t("replay.truncated", 1)?),
        pos,
        len,
    )
}
