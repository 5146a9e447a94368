//! Wrappers: environments that change another environment's behaviour, as
//! `gymnasium.wrappers` and Stable-Baselines3's `VecNormalize`.
//!
//! Each wrapper owns the inner environment and is itself an [`Env`], so they stack:
//! `RecordEpisodeStatistics::new(TimeLimit::new(env, 500))`.

use crate::env::{snapshot_field, Env, EnvSpec, Info, Render, Step};
use crate::error::EnvError;
use crate::space::{Dtype, Space, Value};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Forwards the methods that a wrapper does not change to `self.env`.
macro_rules! forward_common {
    () => {
        fn render(&self) -> Result<Render, EnvError> {
            self.env.render()
        }
        fn name(&self) -> String {
            self.env.name()
        }
        fn spec(&self) -> Option<&EnvSpec> {
            self.env.spec()
        }
        fn get_state(&self) -> Result<serde_json::Value, EnvError> {
            self.env.get_state()
        }
    };
}

/// Truncates episodes after `max_episode_steps` steps (`gymnasium.wrappers.TimeLimit`).
///
/// `truncated` is true on step `max_episode_steps` even when that step also terminates.
pub struct TimeLimit<E> {
    env: E,
    max_episode_steps: u64,
    elapsed_steps: u64,
}

impl<E: Env> TimeLimit<E> {
    /// Wraps `env` with a limit of `max_episode_steps` steps per episode.
    pub fn new(env: E, max_episode_steps: u64) -> Self {
        Self {
            env,
            max_episode_steps,
            elapsed_steps: 0,
        }
    }

    /// Steps taken in the current episode.
    pub fn elapsed_steps(&self) -> u64 {
        self.elapsed_steps
    }

    /// The inner environment.
    pub fn inner(&self) -> &E {
        &self.env
    }

    /// The inner environment, mutably.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.env
    }
}

impl<E: Env> Env for TimeLimit<E> {
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.elapsed_steps = 0;
        self.env.reset(seed)
    }
    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        let mut step = self.env.step(action)?;
        self.elapsed_steps += 1;
        if self.elapsed_steps >= self.max_episode_steps {
            step.truncated = true;
        }
        Ok(step)
    }
    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        self.env.set_state(state)
    }
    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        Ok(serde_json::json!({"elapsed_steps": self.elapsed_steps, "env": self.env.snapshot()?}))
    }
    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        self.elapsed_steps = snapshot_field(&self.name(), snap, "elapsed_steps")?;
        self.env.restore(&snap["env"])
    }
    forward_common!();
}

/// Statistics of one finished episode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpisodeStats {
    /// Undiscounted return.
    pub r: f64,
    /// Length in steps.
    pub l: u64,
}

/// Records each episode's return and length (`gymnasium.wrappers.RecordEpisodeStatistics`):
/// on the last step of an episode, `info["episode"] = {"r": return, "l": length}`, and the
/// last `buffer_len` episodes are kept for logging.
pub struct RecordEpisodeStatistics<E> {
    env: E,
    episode_return: f64,
    episode_length: u64,
    /// Recent finished episodes, oldest first.
    pub recent: VecDeque<EpisodeStats>,
    buffer_len: usize,
    /// Number of finished episodes since creation.
    pub episode_count: u64,
}

impl<E: Env> RecordEpisodeStatistics<E> {
    /// Wraps `env`, keeping the last 100 episodes (Gymnasium's default `buffer_length`).
    pub fn new(env: E) -> Self {
        Self {
            env,
            episode_return: 0.0,
            episode_length: 0,
            recent: VecDeque::new(),
            buffer_len: 100,
            episode_count: 0,
        }
    }

    /// The inner environment.
    pub fn inner(&self) -> &E {
        &self.env
    }
}

impl<E: Env> Env for RecordEpisodeStatistics<E> {
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.episode_return = 0.0;
        self.episode_length = 0;
        self.env.reset(seed)
    }
    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        let mut step = self.env.step(action)?;
        self.episode_return += step.reward;
        self.episode_length += 1;
        if step.done() {
            let stats = EpisodeStats {
                r: self.episode_return,
                l: self.episode_length,
            };
            step.info.insert(
                "episode".into(),
                serde_json::json!({"r": stats.r, "l": stats.l}),
            );
            if self.recent.len() == self.buffer_len {
                self.recent.pop_front();
            }
            self.recent.push_back(stats);
            self.episode_count += 1;
            self.episode_return = 0.0;
            self.episode_length = 0;
        }
        Ok(step)
    }
    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        self.env.set_state(state)
    }
    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        Ok(serde_json::json!({
            "episode_return": self.episode_return, "episode_length": self.episode_length,
            "recent": self.recent, "episode_count": self.episode_count, "env": self.env.snapshot()?,
        }))
    }
    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        let name = self.name();
        self.episode_return = snapshot_field(&name, snap, "episode_return")?;
        self.episode_length = snapshot_field(&name, snap, "episode_length")?;
        self.recent = snapshot_field(&name, snap, "recent")?;
        self.episode_count = snapshot_field(&name, snap, "episode_count")?;
        self.env.restore(&snap["env"])
    }
    forward_common!();
}

/// Running mean and variance of a stream of vectors (Chan et al.'s parallel algorithm), as
/// Stable-Baselines3's `RunningMeanStd`, with the same initial count of 1e-4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningMeanStd {
    /// Per-component mean.
    pub mean: Vec<f64>,
    /// Per-component (population) variance.
    pub var: Vec<f64>,
    /// Number of samples seen (plus the initial 1e-4).
    pub count: f64,
}

impl RunningMeanStd {
    /// Statistics of dimension `dim`: mean 0, variance 1, count 1e-4.
    pub fn new(dim: usize) -> Self {
        Self {
            mean: vec![0.0; dim],
            var: vec![1.0; dim],
            count: 1e-4,
        }
    }

    /// Adds one sample.
    pub fn update_one(&mut self, x: &[f64]) {
        self.update_moments(x, &vec![0.0; x.len()], 1.0);
    }

    /// Merges a batch with the given mean, variance and size:
    /// `delta = m_b - m_a`, `M2 = var_a n_a + var_b n_b + delta^2 n_a n_b / (n_a + n_b)`.
    pub fn update_moments(&mut self, batch_mean: &[f64], batch_var: &[f64], batch_count: f64) {
        let tot = self.count + batch_count;
        for i in 0..self.mean.len() {
            let delta = batch_mean[i] - self.mean[i];
            let m_a = self.var[i] * self.count;
            let m_b = batch_var[i] * batch_count;
            let m2 = m_a + m_b + delta * delta * self.count * batch_count / tot;
            self.mean[i] += delta * batch_count / tot;
            self.var[i] = m2 / tot;
        }
        self.count = tot;
    }
}

/// Saved state of the normalisation wrappers, for checkpoints and evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizeState {
    /// Observation statistics.
    pub rms: RunningMeanStd,
    /// Whether statistics are still updated.
    pub training: bool,
}

/// Normalises Box observations with running statistics, as SB3's `VecNormalize`:
/// `clip((obs - mean) / sqrt(var + epsilon), -clip, clip)`, epsilon 1e-8, clip 10.
pub struct NormalizeObservation<E> {
    env: E,
    space: Space,
    rms: RunningMeanStd,
    /// Update the statistics on every observation (turn off for evaluation).
    pub training: bool,
    /// Clip bound for normalised observations.
    pub clip: f64,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

impl<E: Env> NormalizeObservation<E> {
    /// Wraps `env`; its observation space must be a float32 `Box`.
    pub fn new(env: E) -> Result<Self, EnvError> {
        let dim = match env.observation_space() {
            Space::Box {
                dtype: Dtype::Float32,
                low,
                ..
            } => low.len(),
            other => {
                return Err(EnvError::Invalid(format!(
                    "NormalizeObservation needs a float32 Box observation space, got {other}"
                )))
            }
        };
        let clip = 10.0;
        let space = Space::box_f32(vec![-clip; dim], vec![clip; dim]);
        Ok(Self {
            env,
            space,
            rms: RunningMeanStd::new(dim),
            training: true,
            clip,
            epsilon: 1e-8,
        })
    }

    /// The statistics, to save with a checkpoint.
    pub fn state(&self) -> NormalizeState {
        NormalizeState {
            rms: self.rms.clone(),
            training: self.training,
        }
    }

    /// Restores statistics saved by [`NormalizeObservation::state`].
    pub fn load_state(&mut self, state: NormalizeState) -> Result<(), EnvError> {
        if state.rms.mean.len() != self.rms.mean.len() {
            return Err(EnvError::Invalid(format!(
                "normaliser state has dimension {}, the observation space {}",
                state.rms.mean.len(),
                self.rms.mean.len()
            )));
        }
        self.rms = state.rms;
        self.training = state.training;
        Ok(())
    }

    fn normalize(&mut self, obs: Value) -> Value {
        let Value::Box(v) = obs else { return obs };
        if self.training {
            let x: Vec<f64> = v.iter().map(|&a| a as f64).collect();
            self.rms.update_one(&x);
        }
        Value::Box(
            v.iter()
                .enumerate()
                .map(|(i, &a)| {
                    let z = (a as f64 - self.rms.mean[i]) / (self.rms.var[i] + self.epsilon).sqrt();
                    z.clamp(-self.clip, self.clip) as f32
                })
                .collect(),
        )
    }
}

impl<E: Env> Env for NormalizeObservation<E> {
    fn observation_space(&self) -> &Space {
        &self.space
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        let (obs, info) = self.env.reset(seed);
        (self.normalize(obs), info)
    }
    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        let mut step = self.env.step(action)?;
        step.obs = self.normalize(std::mem::replace(&mut step.obs, Value::Discrete(0)));
        Ok(step)
    }
    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        let obs = self.env.set_state(state)?;
        Ok(self.normalize(obs))
    }
    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        Ok(serde_json::json!({"normalizer": self.state(), "env": self.env.snapshot()?}))
    }
    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        let st: NormalizeState = snapshot_field(&self.name(), snap, "normalizer")?;
        self.load_state(st)?;
        self.env.restore(&snap["env"])
    }
    forward_common!();
}

/// Saved state of [`NormalizeReward`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizeRewardState {
    /// Statistics of the discounted return.
    pub rms: RunningMeanStd,
    /// The running discounted return of the current episode.
    pub ret: f64,
    /// Whether statistics are still updated.
    pub training: bool,
}

/// Scales rewards by the running standard deviation of the discounted return, as SB3's
/// `VecNormalize(norm_reward=True)`: `ret = ret * gamma + r`, `r / sqrt(var(ret) + eps)`,
/// clipped to `[-clip, clip]`; `ret` restarts at 0 after each episode.
pub struct NormalizeReward<E> {
    env: E,
    rms: RunningMeanStd,
    ret: f64,
    /// Discount of the running return.
    pub gamma: f64,
    /// Update the statistics (turn off for evaluation).
    pub training: bool,
    /// Clip bound for scaled rewards.
    pub clip: f64,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

impl<E: Env> NormalizeReward<E> {
    /// Wraps `env` with discount `gamma` (SB3 default 0.99), clip 10, epsilon 1e-8.
    pub fn new(env: E, gamma: f64) -> Self {
        Self {
            env,
            rms: RunningMeanStd::new(1),
            ret: 0.0,
            gamma,
            training: true,
            clip: 10.0,
            epsilon: 1e-8,
        }
    }

    /// The statistics, to save with a checkpoint.
    pub fn state(&self) -> NormalizeRewardState {
        NormalizeRewardState {
            rms: self.rms.clone(),
            ret: self.ret,
            training: self.training,
        }
    }

    /// Restores statistics saved by [`NormalizeReward::state`].
    pub fn load_state(&mut self, state: NormalizeRewardState) {
        self.rms = state.rms;
        self.ret = state.ret;
        self.training = state.training;
    }
}

impl<E: Env> Env for NormalizeReward<E> {
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.ret = 0.0;
        self.env.reset(seed)
    }
    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        let mut step = self.env.step(action)?;
        self.ret = self.ret * self.gamma + step.reward;
        if self.training {
            self.rms.update_one(&[self.ret]);
        }
        step.reward =
            (step.reward / (self.rms.var[0] + self.epsilon).sqrt()).clamp(-self.clip, self.clip);
        if step.done() {
            self.ret = 0.0;
        }
        Ok(step)
    }
    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        self.env.set_state(state)
    }
    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        Ok(serde_json::json!({"normalizer": self.state(), "env": self.env.snapshot()?}))
    }
    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        let st: NormalizeRewardState = snapshot_field(&self.name(), snap, "normalizer")?;
        self.load_state(st);
        self.env.restore(&snap["env"])
    }
    forward_common!();
}

fn box_bounds(space: &Space, wrapper: &str) -> Result<(Vec<f64>, Vec<f64>), EnvError> {
    match space {
        Space::Box {
            dtype: Dtype::Float32,
            low,
            high,
            ..
        } => Ok((low.clone(), high.clone())),
        other => Err(EnvError::Invalid(format!(
            "{wrapper} needs a float32 Box action space, got {other}"
        ))),
    }
}

/// Clips Box actions into the action space before they reach the environment
/// (`gymnasium.wrappers.ClipAction`); the wrapper's action space is unbounded.
pub struct ClipAction<E> {
    env: E,
    low: Vec<f64>,
    high: Vec<f64>,
    space: Space,
}

impl<E: Env> ClipAction<E> {
    /// Wraps `env`; its action space must be a float32 `Box`.
    pub fn new(env: E) -> Result<Self, EnvError> {
        let (low, high) = box_bounds(env.action_space(), "ClipAction")?;
        let n = low.len();
        let space = Space::box_f32(vec![f64::NEG_INFINITY; n], vec![f64::INFINITY; n]);
        Ok(Self {
            env,
            low,
            high,
            space,
        })
    }
}

impl<E: Env> Env for ClipAction<E> {
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }
    fn action_space(&self) -> &Space {
        &self.space
    }
    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.env.reset(seed)
    }
    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        let Value::Box(a) = action else {
            return Err(crate::env::invalid_action(action, &self.space));
        };
        if a.len() != self.low.len() {
            return Err(crate::env::invalid_action(action, &self.space));
        }
        let clipped = Value::Box(
            a.iter()
                .enumerate()
                .map(|(i, &x)| x.clamp(self.low[i] as f32, self.high[i] as f32))
                .collect(),
        );
        self.env.step(&clipped)
    }
    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        self.env.set_state(state)
    }
    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        self.env.snapshot()
    }
    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        self.env.restore(snap)
    }
    forward_common!();
}

/// Affinely maps actions from `[min_action, max_action]` to the environment's Box bounds
/// (`gymnasium.wrappers.RescaleAction`): `low + (high - low) * (a - min) / (max - min)`.
pub struct RescaleAction<E> {
    env: E,
    low: Vec<f64>,
    high: Vec<f64>,
    min_action: f64,
    max_action: f64,
    space: Space,
}

impl<E: Env> RescaleAction<E> {
    /// Wraps `env` so that agents act in `[min_action, max_action]` (usually `[-1, 1]`).
    pub fn new(env: E, min_action: f64, max_action: f64) -> Result<Self, EnvError> {
        let (low, high) = box_bounds(env.action_space(), "RescaleAction")?;
        if low.iter().chain(&high).any(|x| !x.is_finite()) || min_action >= max_action {
            return Err(EnvError::Invalid(format!(
                "RescaleAction needs finite action bounds and min_action < max_action, got \
                 low {low:?}, high {high:?}, range [{min_action}, {max_action}]"
            )));
        }
        let n = low.len();
        let space = Space::box_f32(vec![min_action; n], vec![max_action; n]);
        Ok(Self {
            env,
            low,
            high,
            min_action,
            max_action,
            space,
        })
    }
}

impl<E: Env> Env for RescaleAction<E> {
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }
    fn action_space(&self) -> &Space {
        &self.space
    }
    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.env.reset(seed)
    }
    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        if !self.space.contains(action) {
            return Err(crate::env::invalid_action(action, &self.space));
        }
        let a = action.as_box().unwrap_or(&[]);
        let scaled = Value::Box(
            a.iter()
                .enumerate()
                .map(|(i, &x)| {
                    let t = (x as f64 - self.min_action) / (self.max_action - self.min_action);
                    (self.low[i] + (self.high[i] - self.low[i]) * t) as f32
                })
                .collect(),
        );
        self.env.step(&scaled)
    }
    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        self.env.set_state(state)
    }
    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        self.env.snapshot()
    }
    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        self.env.restore(snap)
    }
    forward_common!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_mean_std_matches_batch_moments() {
        let data = [[1.0, 10.0], [2.0, 20.0], [4.0, 40.0], [-3.0, 0.5]];
        let mut rms = RunningMeanStd::new(2);
        rms.count = 0.0; // exact moments without the 1e-4 prior
        for x in &data {
            rms.update_one(x);
        }
        for d in 0..2 {
            let n = data.len() as f64;
            let mean = data.iter().map(|x| x[d]).sum::<f64>() / n;
            let var = data.iter().map(|x| (x[d] - mean).powi(2)).sum::<f64>() / n;
            assert!((rms.mean[d] - mean).abs() < 1e-12);
            assert!((rms.var[d] - var).abs() < 1e-9);
        }
    }
}

/// Normalisation over a vector env's flat buffers, as SB3's `VecNormalize`: one set of
/// statistics shared by all sub-envs, updated with the batch of every step.
/// Observations: `clip((obs - mean) / sqrt(var + eps), -clip_obs, clip_obs)`. Rewards: divided
/// by the standard deviation of each env's running discounted return, clipped to
/// `[-clip_reward, clip_reward]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VecNormalize {
    /// Observation statistics (`None`: observations pass through).
    pub obs_rms: Option<RunningMeanStd>,
    /// Statistics of the discounted return (`None`: rewards pass through).
    pub ret_rms: Option<RunningMeanStd>,
    /// Running discounted return of each env.
    pub returns: Vec<f64>,
    /// Discount of the running return.
    pub gamma: f64,
    /// Clip bound for observations.
    pub clip_obs: f64,
    /// Clip bound for rewards.
    pub clip_reward: f64,
    /// Added to variances.
    pub epsilon: f64,
    /// Update statistics (off for evaluation).
    pub training: bool,
}

impl VecNormalize {
    /// Statistics for `num_envs` envs with `obs_dim`-dimensional observations.
    pub fn new(
        num_envs: usize,
        obs_dim: usize,
        norm_obs: bool,
        norm_reward: bool,
        gamma: f64,
    ) -> Self {
        Self {
            obs_rms: norm_obs.then(|| RunningMeanStd::new(obs_dim)),
            ret_rms: norm_reward.then(|| RunningMeanStd::new(1)),
            returns: vec![0.0; num_envs],
            gamma,
            clip_obs: 10.0,
            clip_reward: 10.0,
            epsilon: 1e-8,
            training: true,
        }
    }

    /// Updates the statistics with a batch of rows (when training) and normalises them in place.
    pub fn normalize_obs(&mut self, obs: &mut [f32]) {
        let Some(rms) = self.obs_rms.as_mut() else {
            return;
        };
        let d = rms.mean.len();
        if d == 0 || obs.is_empty() {
            return;
        }
        if self.training && crate::collective::is_distributed() {
            // Every rank updates with the same batch, all ranks' rows: statistics stay equal.
            let (mean, var, n) = crate::collective::batch_moments(obs, d);
            rms.update_moments(&mean, &var, n);
        } else if self.training {
            let n = (obs.len() / d) as f64;
            let mut mean = vec![0.0; d];
            for row in obs.chunks_exact(d) {
                for (m, &x) in mean.iter_mut().zip(row) {
                    *m += x as f64 / n;
                }
            }
            let mut var = vec![0.0; d];
            for row in obs.chunks_exact(d) {
                for ((v, &x), m) in var.iter_mut().zip(row).zip(&mean) {
                    *v += (x as f64 - m).powi(2) / n;
                }
            }
            rms.update_moments(&mean, &var, n);
        }
        self.apply_obs(obs);
    }

    /// Normalises rows with the current statistics, without updating them.
    pub fn apply_obs(&self, obs: &mut [f32]) {
        let Some(rms) = self.obs_rms.as_ref() else {
            return;
        };
        let d = rms.mean.len();
        for row in obs.chunks_exact_mut(d) {
            for (i, x) in row.iter_mut().enumerate() {
                let z = (*x as f64 - rms.mean[i]) / (rms.var[i] + self.epsilon).sqrt();
                *x = z.clamp(-self.clip_obs, self.clip_obs) as f32;
            }
        }
    }

    /// Scales one step's rewards (one per env) in place; `dones[i]` restarts env i's return.
    pub fn normalize_rewards(&mut self, rewards: &mut [f64], dones: &[bool]) {
        let Some(rms) = self.ret_rms.as_mut() else {
            return;
        };
        if self.training {
            for (r, &x) in self.returns.iter_mut().zip(rewards.iter()) {
                *r = *r * self.gamma + x;
            }
            if crate::collective::is_distributed() {
                let (mean, var, n) = crate::collective::batch_moments(&self.returns, 1);
                rms.update_moments(&mean, &var, n);
            } else {
                let n = self.returns.len() as f64;
                let mean = self.returns.iter().sum::<f64>() / n;
                let var = self.returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
                rms.update_moments(&[mean], &[var], n);
            }
        }
        let std = (rms.var[0] + self.epsilon).sqrt();
        for r in rewards.iter_mut() {
            *r = (*r / std).clamp(-self.clip_reward, self.clip_reward);
        }
        for (ret, &d) in self.returns.iter_mut().zip(dones) {
            if d {
                *ret = 0.0;
            }
        }
    }
}
