//! What the on-policy agents (PPO, A2C) share: the vector env with its optional
//! normalisation, rollout collection into a time-major buffer with truncation bootstrapping,
//! episode statistics, and checkpointing of all of it.

use crate::actor_critic::{ActionKind, ActorCritic};
use rein_core::returns::compute_gae;
use rein_core::wrappers::VecNormalize;
use rein_core::{AutoresetMode, Env, EnvError, ReinRng, Space, Value, VectorEnv};
use std::collections::VecDeque;
use std::sync::Arc;

/// Makes sub-env `i` of the vector env.
pub type EnvFactory = Arc<dyn Fn(usize) -> Result<Box<dyn Env>, EnvError> + Send + Sync>;

/// Errors of the policy-gradient agents.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// An invalid hyperparameter.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The environment failed or does not fit.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Training diverged.
    #[error("training diverged: {0}")]
    NonFinite(String),
    /// A checkpoint could not be written or read.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

/// Rollout storage, time-major (`t * num_envs + e`).
#[derive(Debug, Default, Clone)]
pub struct Rollout {
    /// Observations (normalised when normalisation is on).
    pub obs: Vec<f32>,
    /// Raw (unclipped) actions, `action_dim` per step.
    pub actions: Vec<f32>,
    /// log pi(a|s) when the action was taken.
    pub log_probs: Vec<f32>,
    /// V(s) when the action was taken.
    pub values: Vec<f64>,
    /// Rewards (scaled when reward normalisation is on).
    pub rewards: Vec<f64>,
    /// The step ended in a terminal state.
    pub terminated: Vec<bool>,
    /// The step hit the time limit.
    pub truncated: Vec<bool>,
    /// Value of the state the step led to (V of the final observation after truncation).
    pub next_values: Vec<f64>,
}

/// The environments of an on-policy agent and everything about them that a checkpoint keeps.
pub struct Collector {
    venv: VectorEnv,
    /// Observation/reward normalisation statistics (when enabled).
    pub norm: Option<VecNormalize>,
    /// Current (normalised) observations, `num_envs x obs_dim`.
    pub obs: Vec<f32>,
    ep_returns: Vec<f64>,
    ep_lengths: Vec<u64>,
    recent: VecDeque<(f64, u64)>,
    /// Episodes finished so far.
    pub episodes: u64,
    /// Environment steps so far.
    pub global_step: u64,
    /// The last rollout.
    pub buf: Rollout,
}

impl Collector {
    /// Builds `num_envs` envs (same-step autoreset), resets them with `seed`, and returns the
    /// collector with the policy's view of the spaces.
    pub fn new(
        num_envs: usize,
        env_threads: usize,
        seed: u64,
        normalize: (bool, bool),
        gamma: f64,
        make_env: EnvFactory,
    ) -> Result<(Self, usize, ActionKind), PgError> {
        let factory = Arc::clone(&make_env);
        let mut venv =
            VectorEnv::from_fn(num_envs, AutoresetMode::SameStep, env_threads, move |i| {
                factory(i)
            })?;
        let obs_space = venv.single_observation_space().clone();
        if !matches!(obs_space, Space::Box { .. }) {
            return Err(PgError::Config(format!(
                "policy-gradient agents need Box observations, got {obs_space}"
            )));
        }
        let kind = ActionKind::from_space(venv.single_action_space())?;
        let obs_dim = venv.obs_dim();
        let mut obs = venv.reset(Some(seed))?.to_vec();
        let (norm_obs, norm_reward) = normalize;
        let mut norm = (norm_obs || norm_reward)
            .then(|| VecNormalize::new(num_envs, obs_dim, norm_obs, norm_reward, gamma));
        if let Some(n) = norm.as_mut() {
            n.normalize_obs(&mut obs);
        }
        Ok((
            Self {
                venv,
                norm,
                obs,
                ep_returns: vec![0.0; num_envs],
                ep_lengths: vec![0; num_envs],
                recent: VecDeque::new(),
                episodes: 0,
                global_step: 0,
                buf: Rollout::default(),
            },
            obs_dim,
            kind,
        ))
    }

    /// Number of envs.
    pub fn num_envs(&self) -> usize {
        self.venv.num_envs()
    }

    /// Mean return and length of the last 100 finished episodes (NaN before any).
    pub fn episode_stats(&self) -> (f64, f64) {
        if self.recent.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        let n = self.recent.len() as f64;
        (
            self.recent.iter().map(|r| r.0).sum::<f64>() / n,
            self.recent.iter().map(|r| r.1 as f64).sum::<f64>() / n,
        )
    }

    /// Collects `n_steps` steps of every env with actions sampled from `policy`. A truncated
    /// episode's last step gets the value of its final observation as `next_values`.
    pub fn collect(
        &mut self,
        policy: &mut ActorCritic,
        rng: &mut ReinRng,
        n_steps: usize,
    ) -> Result<(), PgError> {
        let (n, d) = (self.num_envs(), policy.obs_dim);
        let ad = policy.kind.action_dim();
        let total = n * n_steps;
        let b = &mut self.buf;
        b.obs.resize(total * d, 0.0);
        b.actions.resize(total * ad, 0.0);
        b.log_probs.resize(total, 0.0);
        b.values.resize(total, 0.0);
        b.rewards.resize(total, 0.0);
        b.terminated.resize(total, false);
        b.truncated.resize(total, false);
        b.next_values.resize(total, 0.0);
        let mut env_actions: Vec<Value> = vec![Value::Discrete(0); n];
        for t in 0..n_steps {
            let base = t * n;
            let b = &mut self.buf;
            b.obs[base * d..(base + n) * d].copy_from_slice(&self.obs);
            policy.act(
                &self.obs,
                n,
                false,
                rng,
                &mut b.actions[base * ad..(base + n) * ad],
                &mut b.log_probs[base..base + n],
            );
            let values = policy.values(&self.obs, n);
            for e in 0..n {
                b.values[base + e] = values[e] as f64;
                env_actions[e] =
                    policy.env_action(&b.actions[(base + e) * ad..(base + e + 1) * ad]);
            }
            let step = self.venv.step(&env_actions)?;
            let mut rewards = step.rewards.to_vec();
            let terminated = step.terminated.to_vec();
            let truncated = step.truncated.to_vec();
            let mut next_obs = step.obs.to_vec();
            // Episode statistics on the raw rewards.
            for e in 0..n {
                self.ep_returns[e] += rewards[e];
                self.ep_lengths[e] += 1;
                if terminated[e] || truncated[e] {
                    if self.recent.len() == 100 {
                        self.recent.pop_front();
                    }
                    self.recent
                        .push_back((self.ep_returns[e], self.ep_lengths[e]));
                    self.episodes += 1;
                    self.ep_returns[e] = 0.0;
                    self.ep_lengths[e] = 0;
                }
            }
            let dones: Vec<bool> = terminated
                .iter()
                .zip(&truncated)
                .map(|(a, b)| *a || *b)
                .collect();
            // Values of the final observations of truncated episodes, for bootstrapping.
            let trunc_envs: Vec<usize> =
                (0..n).filter(|&e| truncated[e] && !terminated[e]).collect();
            let mut final_obs = Vec::with_capacity(trunc_envs.len() * d);
            for &e in &trunc_envs {
                final_obs.extend_from_slice(
                    self.venv
                        .final_obs(e)
                        .unwrap_or(&next_obs[e * d..(e + 1) * d]),
                );
            }
            if let Some(norm) = self.norm.as_mut() {
                norm.normalize_obs(&mut next_obs);
                norm.apply_obs(&mut final_obs);
                norm.normalize_rewards(&mut rewards, &dones);
            }
            if !trunc_envs.is_empty() {
                let v = policy.values(&final_obs, trunc_envs.len());
                for (k, &e) in trunc_envs.iter().enumerate() {
                    self.buf.next_values[base + e] = v[k] as f64;
                }
            }
            let b = &mut self.buf;
            b.rewards[base..base + n].copy_from_slice(&rewards);
            b.terminated[base..base + n].copy_from_slice(&terminated);
            b.truncated[base..base + n].copy_from_slice(&truncated);
            self.obs = next_obs;
            self.global_step += n as u64;
        }
        // V(s_{t+1}) for transitions that did not end an episode.
        let last = policy.values(&self.obs, n);
        let b = &mut self.buf;
        for t in 0..n_steps {
            for e in 0..n {
                let i = t * n + e;
                if !(b.terminated[i] || b.truncated[i]) {
                    b.next_values[i] = if t + 1 < n_steps {
                        b.values[i + n]
                    } else {
                        last[e] as f64
                    };
                }
            }
        }
        Ok(())
    }

    /// GAE advantages and returns of the last rollout.
    pub fn gae(&self, gamma: f64, lambda: f64) -> (Vec<f64>, Vec<f64>) {
        let b = &self.buf;
        compute_gae(
            &b.rewards,
            &b.values,
            &b.next_values,
            &b.terminated,
            &b.truncated,
            self.num_envs(),
            gamma,
            lambda,
        )
    }

    /// The collector's state for a checkpoint.
    pub fn snapshot(&self) -> Result<serde_json::Value, PgError> {
        Ok(serde_json::json!({
            "norm": self.norm,
            "obs": self.obs,
            "ep_returns": self.ep_returns,
            "ep_lengths": self.ep_lengths,
            "recent": self.recent,
            "episodes": self.episodes,
            "global_step": self.global_step,
            "venv": self.venv.snapshot()?,
        }))
    }

    /// Restores [`Collector::snapshot`].
    pub fn restore(&mut self, s: &serde_json::Value) -> Result<(), PgError> {
        fn get<T: serde::de::DeserializeOwned>(
            s: &serde_json::Value,
            k: &str,
        ) -> Result<T, PgError> {
            let v = s.get(k).cloned().ok_or_else(|| {
                PgError::Checkpoint(format!("collector state has no field {k:?}"))
            })?;
            serde_json::from_value(v)
                .map_err(|e| PgError::Checkpoint(format!("collector field {k:?}: {e}")))
        }
        self.norm = get(s, "norm")?;
        self.obs = get(s, "obs")?;
        self.ep_returns = get(s, "ep_returns")?;
        self.ep_lengths = get(s, "ep_lengths")?;
        self.recent = get(s, "recent")?;
        self.episodes = get(s, "episodes")?;
        self.global_step = get(s, "global_step")?;
        self.venv.restore(&s["venv"])?;
        Ok(())
    }
}

/// The contents of a checkpoint file: weights and the JSON training state.
pub struct Checkpoint {
    path: String,
    state: serde_json::Value,
    /// Weights by name.
    pub tensors: std::collections::HashMap<String, rein_nn::io::NamedTensor>,
}

impl Checkpoint {
    /// Writes `policy`'s weights and `state` to one safetensors file, atomically (the state is
    /// JSON in the metadata under `rein_state`; weights in PyTorch's `[out, in]` layout).
    pub fn write(
        path: &std::path::Path,
        policy: &ActorCritic,
        state: serde_json::Value,
    ) -> Result<(), PgError> {
        Self::write_tensors(path, &policy.to_tensors(), state)
    }

    /// Writes any named tensors and `state` the same way (for agents without an
    /// [`ActorCritic`], such as DQN and TD3).
    pub fn write_tensors(
        path: &std::path::Path,
        tensors: &[rein_nn::io::NamedTensor],
        state: serde_json::Value,
    ) -> Result<(), PgError> {
        let meta = std::collections::HashMap::from([("rein_state".to_string(), state.to_string())]);
        rein_nn::io::save(path, tensors, meta).map_err(|e| PgError::Checkpoint(e.to_string()))
    }

    /// Reads a checkpoint written by [`Checkpoint::write`].
    pub fn read(path: &std::path::Path) -> Result<Self, PgError> {
        let p = path.display().to_string();
        let (tensors, meta) =
            rein_nn::io::load(path).map_err(|e| PgError::Checkpoint(e.to_string()))?;
        let text = meta.get("rein_state").ok_or_else(|| {
            PgError::Checkpoint(format!(
                "{p}: no rein_state metadata (not a rein checkpoint)"
            ))
        })?;
        let state = serde_json::from_str(text)
            .map_err(|e| PgError::Checkpoint(format!("{p}: rein_state: {e}")))?;
        Ok(Self {
            path: p,
            state,
            tensors,
        })
    }

    /// Field `key` of the training state.
    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T, PgError> {
        let v = self.state.get(key).cloned().ok_or_else(|| {
            PgError::Checkpoint(format!("{}: rein_state has no field {key:?}", self.path))
        })?;
        serde_json::from_value(v)
            .map_err(|e| PgError::Checkpoint(format!("{}: field {key:?}: {e}", self.path)))
    }

    /// Loads the weights into `policy`, checking names and shapes.
    pub fn load_policy(&self, policy: &mut ActorCritic) -> Result<(), PgError> {
        policy
            .load_tensors(&self.tensors)
            .map_err(|e| PgError::Checkpoint(format!("{}: {e}", self.path)))
    }

    /// Loads the network saved under `prefix` into `mlp`, checking names and shapes.
    pub fn load_mlp(&self, mlp: &mut rein_nn::Mlp, prefix: &str) -> Result<(), PgError> {
        mlp.load_tensors(prefix, &self.tensors)
            .map_err(|e| PgError::Checkpoint(format!("{}: {e}", self.path)))
    }

    /// Restores the replay buffer saved by `offpolicy::replay_tensors`, with the position and
    /// length stored under `replay_pos` / `replay_len`.
    pub fn load_replay(&self, buffer: &mut rein_core::replay::ReplayBuffer) -> Result<(), PgError> {
        let (pos, len) = (self.get("replay_pos")?, self.get("replay_len")?);
        crate::offpolicy::restore_replay(buffer, &self.tensors, pos, len)
            .map_err(|e| PgError::Checkpoint(format!("{}: {e}", self.path)))
    }

    /// The generator saved under `key`.
    pub fn rng(&self, key: &str) -> Result<ReinRng, PgError> {
        let text: String = self.get(key)?;
        rein_core::rng::rng_from_str(&text)
            .map_err(|e| PgError::Checkpoint(format!("{}: {e}", self.path)))
    }
}

/// What the training loop of `rein train` needs from an on-policy agent.
pub trait OnPolicyAgent {
    /// Collects data and takes one update.
    fn train_update(&mut self) -> Result<crate::ppo::PpoLog, PgError>;
    /// Environment steps so far.
    fn global_step(&self) -> u64;
    /// Updates so far.
    fn updates(&self) -> u64;
    /// Steps to train for.
    fn total_timesteps(&self) -> u64;
    /// The run's seed.
    fn seed(&self) -> u64;
    /// Time spent so far.
    fn timing(&self) -> crate::ppo::PpoTiming;
    /// Writes a checkpoint for exact resume.
    fn save_checkpoint(&self, path: &std::path::Path) -> Result<(), PgError>;
    /// The policy (for rendering episodes and inspection).
    fn policy_mut(&mut self) -> &mut ActorCritic;
    /// The observation normaliser the policy was trained with, if any.
    fn obs_normalizer(&self) -> Option<rein_core::wrappers::VecNormalize>;
    /// Trains until `total_timesteps`, calling `on_log` after every update.
    fn train(&mut self, on_log: &mut dyn FnMut(&crate::ppo::PpoLog)) -> Result<(), PgError> {
        while self.global_step() < self.total_timesteps() {
            let log = self.train_update()?;
            on_log(&log);
        }
        Ok(())
    }

    /// Mean and standard deviation of the return over `episodes` episodes of a fresh env from
    /// `make_env` (episode k reset with `seed + k`), acting greedily with `deterministic`, with
    /// the observation normalisation of training.
    fn evaluate(
        &mut self,
        make_env: &EnvFactory,
        episodes: u64,
        deterministic: bool,
        seed: u64,
    ) -> Result<(f64, f64), PgError> {
        let mut env = make_env(0)?;
        let norm = self.obs_normalizer();
        Ok(self.policy_mut().evaluate(
            env.as_mut(),
            norm.as_ref(),
            episodes,
            deterministic,
            seed,
        )?)
    }
}

/// Implements [`OnPolicyAgent`] for an agent with the usual fields and methods.
macro_rules! impl_on_policy_agent {
    ($t:ty) => {
        impl $crate::onpolicy::OnPolicyAgent for $t {
            fn train_update(&mut self) -> Result<$crate::ppo::PpoLog, $crate::onpolicy::PgError> {
                <$t>::train_update(self)
            }
            fn global_step(&self) -> u64 {
                self.collector.global_step
            }
            fn updates(&self) -> u64 {
                self.update
            }
            fn total_timesteps(&self) -> u64 {
                self.config.total_timesteps
            }
            fn seed(&self) -> u64 {
                self.config.seed
            }
            fn timing(&self) -> $crate::ppo::PpoTiming {
                self.timing
            }
            fn policy_mut(&mut self) -> &mut $crate::actor_critic::ActorCritic {
                &mut self.policy
            }
            fn obs_normalizer(&self) -> Option<rein_core::wrappers::VecNormalize> {
                self.collector.norm.clone()
            }
            fn save_checkpoint(
                &self,
                path: &std::path::Path,
            ) -> Result<(), $crate::onpolicy::PgError> {
                <$t>::save_checkpoint(self, path)
            }
        }
    };
}
pub(crate) use impl_on_policy_agent;
