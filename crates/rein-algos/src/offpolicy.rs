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

/// Implements [`OffPolicyAgent`] for an agent with the shared layout: a `config` with
/// `total_timesteps`, `train_freq` and `seed`, an `env: OffPolicyEnv`, and inherent
/// `train_phase` (returning a log with `row()`), `save_checkpoint` and `evaluate`.
macro_rules! impl_off_policy_agent {
    ($agent:ty, $log:ty) => {
        impl $crate::offpolicy::OffPolicyAgent for $agent {
            fn train_phase_row(&mut self) -> Result<Vec<f64>, PgError> {
                Ok(self.train_phase()?.row().to_vec())
            }
            fn columns(&self) -> &'static [&'static str] {
                &<$log>::COLUMNS
            }
            fn global_step(&self) -> u64 {
                self.env.global_step
            }
            fn total_timesteps(&self) -> u64 {
                self.config.total_timesteps
            }
            fn train_freq(&self) -> u64 {
                self.config.train_freq
            }
            fn seed(&self) -> u64 {
                self.config.seed
            }
            fn save_checkpoint(&self, path: &std::path::Path) -> Result<(), PgError> {
                <$agent>::save_checkpoint(self, path)
            }
            fn evaluate(
                &mut self,
                make_env: &EnvFactory,
                episodes: u64,
                seed: u64,
            ) -> Result<(f64, f64), PgError> {
                <$agent>::evaluate(self, make_env, episodes, seed)
            }
        }
    };
}
pub(crate) use impl_off_policy_agent;

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

/// The single-environment interaction every off-policy agent shares: step, store the
/// transition (with the true final observation when an episode ends, so that truncated
/// transitions bootstrap from it), keep episode statistics, and save/restore all of it.
pub(crate) struct OffPolicyEnv {
    pub venv: rein_core::VectorEnv,
    /// Current observation.
    pub obs: Vec<f32>,
    pub buffer: rein_core::replay::ReplayBuffer,
    /// Environment steps so far.
    pub global_step: u64,
    ep_return: f64,
    recent: std::collections::VecDeque<f64>,
    episodes: u64,
}

impl OffPolicyEnv {
    /// One env from `make_env`, reset with `seed`, and an empty buffer.
    pub fn new(
        make_env: EnvFactory,
        seed: u64,
        buffer_size: usize,
        stored_action_dim: usize,
    ) -> Result<Self, PgError> {
        let mut venv =
            rein_core::VectorEnv::from_fn(1, rein_core::AutoresetMode::SameStep, 1, move |i| {
                make_env(i)
            })?;
        let obs = venv.reset(Some(seed))?.to_vec();
        let obs_dim = venv.obs_dim();
        Ok(Self {
            venv,
            obs,
            buffer: rein_core::replay::ReplayBuffer::new(buffer_size, obs_dim, stored_action_dim),
            global_step: 0,
            ep_return: 0.0,
            recent: Default::default(),
            episodes: 0,
        })
    }

    /// Steps with `action`, stores `(obs, stored_action, r, s', terminated, truncated)`;
    /// returns whether the episode ended.
    pub fn step(
        &mut self,
        action: rein_core::Value,
        stored_action: &[f32],
    ) -> Result<bool, PgError> {
        let step = self.venv.step(&[action])?;
        let (reward, terminated, truncated) =
            (step.rewards[0], step.terminated[0], step.truncated[0]);
        let next = step.obs.to_vec();
        let real_next = if terminated || truncated {
            self.venv
                .final_obs(0)
                .map(|f| f.to_vec())
                .unwrap_or_else(|| next.clone())
        } else {
            next.clone()
        };
        self.buffer.push(
            &self.obs,
            stored_action,
            reward as f32,
            &real_next,
            terminated,
            truncated,
        );
        self.ep_return += reward;
        let done = terminated || truncated;
        if done {
            if self.recent.len() == 100 {
                self.recent.pop_front();
            }
            self.recent.push_back(self.ep_return);
            self.ep_return = 0.0;
            self.episodes += 1;
        }
        self.obs = next;
        self.global_step += 1;
        Ok(done)
    }

    /// Episodes finished.
    pub fn episodes(&self) -> u64 {
        self.episodes
    }

    /// Mean return of the last 100 episodes (NaN before the first one ends).
    pub fn recent_mean(&self) -> f64 {
        if self.recent.is_empty() {
            f64::NAN
        } else {
            self.recent.iter().sum::<f64>() / self.recent.len() as f64
        }
    }

    /// Checkpoint state (the replay arrays go in [`OffPolicyEnv::tensors`]).
    pub fn state(&self) -> Result<serde_json::Value, PgError> {
        Ok(serde_json::json!({
            "global_step": self.global_step,
            "venv": self.venv.snapshot()?,
            "obs": self.obs,
            "ep_return": self.ep_return,
            "recent": self.recent,
            "episodes": self.episodes,
            "replay_pos": self.buffer.position(),
            "replay_len": self.buffer.len(),
        }))
    }

    /// The replay buffer as checkpoint tensors.
    pub fn tensors(&self) -> Vec<rein_nn::io::NamedTensor> {
        replay_tensors(&self.buffer)
    }

    /// Restores [`OffPolicyEnv::state`] and the replay tensors.
    pub fn restore(&mut self, ckpt: &crate::onpolicy::Checkpoint) -> Result<(), PgError> {
        ckpt.load_replay(&mut self.buffer)?;
        self.global_step = ckpt.get("global_step")?;
        self.venv.restore(&ckpt.get::<serde_json::Value>("venv")?)?;
        self.obs = ckpt.get("obs")?;
        self.ep_return = ckpt.get("ep_return")?;
        self.recent = ckpt.get("recent")?;
        self.episodes = ckpt.get("episodes")?;
        Ok(())
    }
}

/// Mean and population standard deviation of the return of `policy` (flat observation in,
/// env action out) over `episodes` fresh episodes seeded `seed, seed + 1, ...`.
pub(crate) fn evaluate_policy(
    make_env: &EnvFactory,
    episodes: u64,
    seed: u64,
    policy: &mut dyn FnMut(&[f32]) -> rein_core::Value,
) -> Result<(f64, f64), PgError> {
    let mut env = make_env(0)?;
    let space = env.observation_space().clone();
    let mut returns = Vec::new();
    for k in 0..episodes {
        let (mut obs, _) = env.reset(Some(seed.wrapping_add(k)));
        let mut ret = 0.0;
        loop {
            let x = space.flatten(&obs)?;
            let step = env.step(&policy(&x))?;
            ret += step.reward;
            obs = step.obs;
            if step.terminated || step.truncated {
                break;
            }
        }
        returns.push(ret);
    }
    let n = returns.len().max(1) as f64;
    let mean = returns.iter().sum::<f64>() / n;
    Ok((
        mean,
        (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt(),
    ))
}

/// Bounds of a bounded Box action space, for agents whose policy acts in [-1, 1].
pub(crate) fn box_bounds(
    space: &rein_core::Space,
    algo: &str,
) -> Result<(Vec<f32>, Vec<f32>), PgError> {
    match space {
        rein_core::Space::Box { low, high, .. }
            if low.iter().chain(high).all(|x| x.is_finite()) =>
        {
            Ok((
                low.iter().map(|&x| x as f32).collect(),
                high.iter().map(|&x| x as f32).collect(),
            ))
        }
        other => Err(PgError::Config(format!(
            "{algo} needs a bounded Box action space, got {other}"
        ))),
    }
}

/// The env action for a policy action in [-1, 1]: `low + (a + 1) (high - low) / 2`.
pub(crate) fn unscale_action(a: &[f32], low: &[f32], high: &[f32]) -> rein_core::Value {
    rein_core::Value::Box(
        a.iter()
            .zip(low.iter().zip(high))
            .map(|(&x, (&l, &h))| l + (x + 1.0) * 0.5 * (h - l))
            .collect(),
    )
}

/// Batch rows `[obs | action]` (`batch x (obs_dim + action_dim)`), the input of a Q critic.
pub(crate) fn critic_input(obs: &[f32], actions: &[f32], b: usize) -> Vec<f32> {
    let (od, ad) = (obs.len() / b, actions.len() / b);
    let mut out = Vec::with_capacity(b * (od + ad));
    for k in 0..b {
        out.extend_from_slice(&obs[k * od..(k + 1) * od]);
        out.extend_from_slice(&actions[k * ad..(k + 1) * ad]);
    }
    out
}
