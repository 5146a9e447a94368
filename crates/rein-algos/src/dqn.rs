//! Deep Q-Network (Mnih et al. 2015), as Stable-Baselines3's `DQN`:
//!
//! - behaviour: uniformly random actions for the first `learning_starts` steps, then
//!   epsilon-greedy with epsilon decaying linearly from `exploration_initial_eps` to
//!   `exploration_final_eps` over the first `exploration_fraction` of training;
//! - every transition goes to a replay buffer; after each `train_freq` env steps (past
//!   `learning_starts`), `gradient_steps` minibatch updates of
//!   `Huber(Q(s,a), r + gamma (1 - terminated) max_a' Q_target(s',a'))`
//!   (Double DQN: `Q_target(s', argmax_a' Q(s',a'))`), global gradient-norm clipping, Adam;
//! - the target network is a copy of the online one, refreshed every `target_update_interval`
//!   steps (Polyak averaging with `tau` < 1).
//!
//! Time-limit truncation is not termination: the stored next observation is the final one
//! and the target bootstraps from it.

use crate::offpolicy::{evaluate_policy, OffPolicyEnv, OffPolicyState};
use crate::onpolicy::EnvFactory;
use crate::AlgoError;
use rand::Rng;
use rein_core::replay::ReplayBatch;
use rein_core::schedule::Schedule;
use rein_core::{rng_from_seed, ReinRng, Space, Value};
use rein_nn::{clip_grad_norm, Activation, Adam, Mlp, MlpCache};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// DQN hyperparameters (defaults: SB3's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DqnConfig {
    /// Environment steps to train for.
    pub total_timesteps: u64,
    /// Adam learning rate: a number, or a schedule such as `"lin_0.0023"` (linearly to 0 over
    /// training, the zoo's `lin_` schedules: late updates become small, so the final policy
    /// does not swing).
    pub learning_rate: Schedule,
    /// Replay capacity.
    pub buffer_size: usize,
    /// Random-action steps before learning starts.
    pub learning_starts: u64,
    /// Minibatch size.
    pub batch_size: usize,
    /// Target update coefficient (1: hard copy).
    pub tau: f64,
    /// Discount.
    pub gamma: f64,
    /// Env steps between training phases.
    pub train_freq: u64,
    /// Gradient steps per training phase.
    pub gradient_steps: u64,
    /// Env steps between target updates.
    pub target_update_interval: u64,
    /// Fraction of training over which epsilon decays.
    pub exploration_fraction: f64,
    /// Initial epsilon.
    pub exploration_initial_eps: f64,
    /// Final epsilon.
    pub exploration_final_eps: f64,
    /// Global gradient-norm bound.
    pub max_grad_norm: f64,
    /// Hidden layer sizes of the Q-network.
    pub net_arch: Vec<usize>,
    /// Hidden activation (SB3: ReLU).
    pub activation: Activation,
    /// Double DQN target (van Hasselt et al. 2016).
    pub double_q: bool,
    /// Dueling head (Wang et al. 2016, eq. 9): the last layer outputs a state value V and
    /// advantages A, combined as `Q = V + A - mean_a A`.
    pub dueling: bool,
    /// Rewards summed into each target (n-step returns; 1: one-step TD).
    pub n_steps: usize,
    /// Env steps between evaluations of the greedy policy (0: none), SB3's `EvalCallback`
    /// with `best_model_save_path`: the network with the best mean return so far is kept,
    /// and it is the policy the run delivers (its final evaluation, `rein eval`, `--gif`).
    /// Training itself is unchanged by it (the evaluation has its own envs and no
    /// randomness).
    pub eval_freq: u64,
    /// Episodes per evaluation (seeded `2_000_000 + seed + k`, apart from the final
    /// evaluation's).
    pub eval_episodes: u64,
    /// Seed.
    pub seed: u64,
}

impl Default for DqnConfig {
    fn default() -> Self {
        Self {
            total_timesteps: 100_000,
            learning_rate: Schedule::Constant { value: 1e-4 },
            buffer_size: 1_000_000,
            learning_starts: 100,
            batch_size: 32,
            tau: 1.0,
            gamma: 0.99,
            train_freq: 4,
            gradient_steps: 1,
            target_update_interval: 10_000,
            exploration_fraction: 0.1,
            exploration_initial_eps: 1.0,
            exploration_final_eps: 0.05,
            max_grad_norm: 10.0,
            net_arch: vec![64, 64],
            activation: Activation::Relu,
            double_q: false,
            dueling: false,
            n_steps: 1,
            eval_freq: 0,
            eval_episodes: 5,
            seed: 0,
        }
    }
}

const PRESETS: &[(&str, &str)] = &[
    (
        "CartPole-v1",
        include_str!("../presets/dqn/CartPole-v1.toml"),
    ),
    (
        "MountainCar-v0",
        include_str!("../presets/dqn/MountainCar-v0.toml"),
    ),
];

impl DqnConfig {
    /// The shipped preset for `env_id` (text of its TOML), if any.
    pub fn preset_toml(env_id: &str) -> Option<&'static str> {
        PRESETS
            .iter()
            .find(|(id, _)| *id == env_id)
            .map(|(_, t)| *t)
    }

    /// Checks the values, naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0
            || self.buffer_size == 0
            || self.train_freq == 0
            || self.n_steps == 0
        {
            return Err(
                "batch_size, buffer_size, train_freq and n_steps must be at least 1".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.tau) || self.tau == 0.0
        {
            return Err(format!(
                "gamma must be in [0, 1] and tau in (0, 1], got {} and {}",
                self.gamma, self.tau
            ));
        }
        self.learning_rate.check_positive("learning_rate")?;
        if self.net_arch.contains(&0) {
            return Err(format!(
                "net_arch must list positive sizes, got {:?}",
                self.net_arch
            ));
        }
        Ok(())
    }

    /// Epsilon after `step` of training (SB3's `get_linear_fn`).
    pub fn epsilon(&self, step: u64) -> f64 {
        let progress = step as f64 / self.total_timesteps.max(1) as f64;
        if progress > self.exploration_fraction {
            self.exploration_final_eps
        } else {
            self.exploration_initial_eps
                + progress * (self.exploration_final_eps - self.exploration_initial_eps)
                    / self.exploration_fraction.max(1e-12)
        }
    }
}

/// One row of DQN metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DqnLog {
    /// Environment steps.
    pub global_step: u64,
    /// Episodes finished.
    pub episodes: u64,
    /// Mean return of the last 100 episodes.
    pub ep_return_mean: f64,
    /// Mean Huber loss of the last training phase.
    pub loss: f64,
    /// Mean Q(s, a) of the last training phase.
    pub q_mean: f64,
    /// Exploration rate.
    pub epsilon: f64,
    /// Gradient steps so far.
    pub grad_steps: u64,
    /// Steps per second.
    pub sps: f64,
}

impl DqnLog {
    /// Column names of `metrics.csv`.
    pub const COLUMNS: [&'static str; 8] = [
        "global_step",
        "episodes",
        "episodic_return_mean",
        "loss",
        "q_mean",
        "epsilon",
        "grad_steps",
        "sps",
    ];

    /// Values in the order of [`DqnLog::COLUMNS`].
    pub fn row(&self) -> [f64; 8] {
        [
            self.global_step as f64,
            self.episodes as f64,
            self.ep_return_mean,
            self.loss,
            self.q_mean,
            self.epsilon,
            self.grad_steps as f64,
            self.sps,
        ]
    }
}

/// A DQN agent with its environment.
pub struct Dqn {
    /// Hyperparameters.
    pub config: DqnConfig,
    /// Online Q-network.
    pub q: Mlp,
    /// Target Q-network.
    pub q_target: Mlp,
    opt: Adam,
    env: OffPolicyEnv,
    n_actions: usize,
    rng: ReinRng,
    grad_steps: u64,
    cache: MlpCache,
    target_cache: MlpCache,
    batch: ReplayBatch,
    started: Instant,
    make_env: EnvFactory,
    /// The best evaluation's mean return and network so far (with `eval_freq`).
    best: Option<(f64, Mlp)>,
}

/// Offset of the periodic evaluations' seeds from the run's.
const EVAL_SEED_OFFSET: u64 = 2_000_000;

impl Dqn {
    /// Builds the agent on one environment from `make_env`.
    pub fn new(config: DqnConfig, make_env: EnvFactory) -> Result<Self, AlgoError> {
        config.validate().map_err(AlgoError::Config)?;
        let env = OffPolicyEnv::new(
            std::sync::Arc::clone(&make_env),
            config.seed,
            config.buffer_size,
            1,
        )?;
        let venv = &env.venv;
        let n_actions = match venv.single_action_space() {
            Space::Discrete { n, start: 0 } => *n as usize,
            other => {
                return Err(AlgoError::Config(format!(
                    "DQN needs a Discrete action space, got {other}"
                )))
            }
        };
        if !matches!(venv.single_observation_space(), Space::Box { .. }) {
            return Err(AlgoError::Config(format!(
                "DQN needs Box observations, got {}",
                venv.single_observation_space()
            )));
        }
        let obs_dim = venv.obs_dim();
        let mut rng = rng_from_seed(config.seed);
        let head = if config.dueling {
            1 + n_actions
        } else {
            n_actions
        };
        let sizes: Vec<usize> = std::iter::once(obs_dim)
            .chain(config.net_arch.iter().copied())
            .chain([head])
            .collect();
        let mut q = Mlp::new(&sizes, config.activation);
        q.init_pytorch_default(&mut rng);
        let mut q_target = Mlp::new(&sizes, config.activation);
        q_target.copy_params_from(&q);
        Ok(Self {
            opt: Adam::new(q.params.len(), config.learning_rate.initial(), 1e-8),
            q,
            q_target,
            env,
            n_actions,
            rng: rein_core::collective::rank_rng(rng, config.seed),
            grad_steps: 0,
            cache: MlpCache::default(),
            target_cache: MlpCache::default(),
            batch: ReplayBatch::default(),
            started: Instant::now(),
            make_env,
            best: None,
            config,
        })
    }

    /// The network the run delivers: the best evaluated one with `eval_freq`, else the
    /// online network.
    pub fn policy_network(&self) -> &Mlp {
        self.best.as_ref().map_or(&self.q, |(_, net)| net)
    }

    /// Greedy action of the delivered network ([`Dqn::policy_network`]).
    pub fn policy_action(&mut self, obs: &[f32]) -> usize {
        let net = self.best.as_ref().map_or(&self.q, |(_, net)| net);
        greedy_action(
            net,
            obs,
            &mut self.cache,
            self.n_actions,
            self.config.dueling,
        )
    }

    /// After a training phase that crossed a multiple of `eval_freq`: evaluates the online
    /// network and keeps it when its mean return beats the best so far (strictly, as SB3's
    /// `EvalCallback`: of equal ones the first is kept).
    fn maybe_evaluate(&mut self, before: u64) -> Result<(), AlgoError> {
        let every = self.config.eval_freq;
        let now = self.env.global_step;
        if every == 0 || now / every == before / every {
            return Ok(());
        }
        let seed = EVAL_SEED_OFFSET + self.config.seed;
        let make_env = std::sync::Arc::clone(&self.make_env);
        let (mean, _) = evaluate_policy(&make_env, self.config.eval_episodes, seed, &mut |x| {
            Value::Discrete(self.greedy(x) as i64)
        })?;
        if self.best.as_ref().is_none_or(|(b, _)| mean > *b) {
            self.best = Some((mean, self.q.clone()));
        }
        Ok(())
    }

    /// Greedy action for one observation.
    pub fn greedy(&mut self, obs: &[f32]) -> usize {
        greedy_action(
            &self.q,
            obs,
            &mut self.cache,
            self.n_actions,
            self.config.dueling,
        )
    }

    /// Steps the env `train_freq` times, then trains; returns the metrics.
    pub fn update(&mut self) -> Result<DqnLog, AlgoError> {
        let cfg = self.config.clone();
        let before = self.env.global_step;
        let mut epsilon = cfg.epsilon(self.env.global_step);
        for _ in 0..cfg.train_freq {
            epsilon = cfg.epsilon(self.env.global_step);
            let a = if self.env.global_step < cfg.learning_starts
                || self.rng.random::<f64>() < epsilon
            {
                self.rng.random_range(0..self.n_actions)
            } else {
                let obs = self.env.obs.clone();
                self.greedy(&obs)
            };
            let step_before = self.env.global_step;
            self.env.step(Value::Discrete(a as i64), &[a as f32])?;
            // Each time global_step passes a multiple of the interval (one step of every
            // rank under MPI may pass several steps at once).
            let interval = cfg.target_update_interval.max(1);
            if self.env.global_step / interval > step_before / interval {
                if cfg.tau >= 1.0 {
                    self.q_target.copy_params_from(&self.q);
                } else {
                    self.q_target.polyak_from(&self.q, cfg.tau as f32);
                }
            }
            if self.env.global_step >= cfg.total_timesteps {
                break;
            }
        }
        let (mut loss_sum, mut q_sum, mut n) = (0.0, 0.0, 0u64);
        self.opt.lr = cfg
            .learning_rate
            .value(self.env.global_step, cfg.total_timesteps, 0);
        if self.env.global_step > cfg.learning_starts {
            for _ in 0..cfg.gradient_steps {
                let (l, qm) = self.gradient_step()?;
                loss_sum += l;
                q_sum += qm;
                n += 1;
            }
        }
        self.maybe_evaluate(before)?;
        let (ep_return_mean, episodes) = self.env.episode_stats();
        Ok(DqnLog {
            global_step: self.env.global_step,
            episodes,
            ep_return_mean,
            loss: if n > 0 { loss_sum / n as f64 } else { f64::NAN },
            q_mean: if n > 0 { q_sum / n as f64 } else { f64::NAN },
            epsilon,
            grad_steps: self.grad_steps,
            sps: self.env.global_step as f64 / self.started.elapsed().as_secs_f64().max(1e-9),
        })
    }

    fn gradient_step(&mut self) -> Result<(f64, f64), AlgoError> {
        let (b, na, dueling) = (self.config.batch_size, self.n_actions, self.config.dueling);
        self.env.buffer.sample_n_step_into(
            b,
            self.config.n_steps,
            self.config.gamma as f32,
            &mut self.rng,
            &mut self.batch,
        );
        // Targets from the target network (Double DQN: actions chosen by the online one).
        self.q_target
            .forward(&self.batch.next_obs, b, &mut self.target_cache);
        let tq = q_values(self.target_cache.output(), na, dueling);
        let next_q: Vec<f32> = if self.config.double_q {
            self.q.forward(&self.batch.next_obs, b, &mut self.cache);
            let online = q_values(self.cache.output(), na, dueling);
            (0..b)
                .map(|k| {
                    let row = &online[k * na..(k + 1) * na];
                    let best = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let a = row.iter().position(|&x| x == best).unwrap_or(0);
                    tq[k * na + a]
                })
                .collect()
        } else {
            (0..b)
                .map(|k| {
                    tq[k * na..(k + 1) * na]
                        .iter()
                        .cloned()
                        .fold(f32::NEG_INFINITY, f32::max)
                })
                .collect()
        };
        let target: Vec<f32> = (0..b)
            .map(|k| {
                let cont = if self.batch.terminated[k] { 0.0 } else { 1.0 };
                self.batch.rewards[k] + cont * self.batch.discounts[k] * next_q[k]
            })
            .collect();
        self.q.zero_grad();
        self.q.forward(&self.batch.obs, b, &mut self.cache);
        let out = &q_values(self.cache.output(), na, dueling);
        let mut grad = vec![0.0f32; b * na];
        let (mut loss, mut qm) = (0.0f64, 0.0f64);
        for k in 0..b {
            let a = self.batch.actions[k] as usize;
            let diff = out[k * na + a] - target[k];
            qm += out[k * na + a] as f64;
            // Huber (smooth L1, beta 1): 0.5 d^2 for |d| < 1, else |d| - 0.5.
            loss += if diff.abs() < 1.0 {
                0.5 * (diff * diff) as f64
            } else {
                (diff.abs() - 0.5) as f64
            };
            grad[k * na + a] = diff.clamp(-1.0, 1.0) / b as f32;
        }
        let grad = if dueling {
            dueling_grad(&grad, na)
        } else {
            grad
        };
        self.q.backward(&mut self.cache, &grad);
        rein_core::collective::average_f32(&mut self.q.grads);
        let norm = clip_grad_norm(&mut [&mut self.q.grads], self.config.max_grad_norm);
        if !norm.is_finite() {
            return Err(AlgoError::NonFinite(format!(
                "Q-network gradient norm is {norm}"
            )));
        }
        self.opt.step(&mut self.q.params, &self.q.grads);
        self.grad_steps += 1;
        Ok((loss / b as f64, qm / b as f64))
    }

    /// Trains until `total_timesteps`, calling `on_log` after every training phase.
    pub fn train(&mut self, on_log: &mut dyn FnMut(&DqnLog)) -> Result<(), AlgoError> {
        while self.env.global_step < self.config.total_timesteps {
            let log = self.update()?;
            on_log(&log);
        }
        Ok(())
    }

    /// The networks' tensors as the checkpoint names them (no replay arrays).
    pub fn network_tensors(&self) -> Vec<rein_nn::io::NamedTensor> {
        let mut tensors = self.q.to_tensors("q");
        tensors.extend(self.q_target.to_tensors("q_target"));
        if let Some((_, net)) = &self.best {
            tensors.extend(net.to_tensors("q_best"));
        }
        tensors
    }

    /// Writes everything needed to continue exactly (both networks, the replay buffer as
    /// tensors, optimiser moments, generator, env state) to one checkpoint, atomically.
    pub fn save_checkpoint(&self, path: &std::path::Path) -> Result<(), AlgoError> {
        let mut tensors = self.network_tensors();
        tensors.extend(self.env.tensors());
        let state = OffPolicyState {
            config: self.config.clone(),
            rng: self.rng.clone(),
            env: self.env.state()?,
            algo: DqnState {
                grad_steps: self.grad_steps,
                opt: self.opt.clone(),
                best_return: self.best.as_ref().map(|(b, _)| *b),
            },
        };
        crate::checkpoint::save(path, "dqn", &state, &tensors)
    }

    /// Rebuilds an agent from [`Dqn::save_checkpoint`].
    pub fn load_checkpoint(
        path: &std::path::Path,
        make_env: EnvFactory,
    ) -> Result<Self, AlgoError> {
        let saved = crate::checkpoint::load::<OffPolicyState<DqnConfig, DqnState>>(path, &["dqn"])?;
        let mut agent = Self::new(saved.state.config.clone(), make_env)?;
        saved.load_mlp(&mut agent.q, "q")?;
        saved.load_mlp(&mut agent.q_target, "q_target")?;
        let s = saved.state.clone();
        agent.env.restore(s.env, &saved)?;
        agent.rng = s.rng;
        agent.grad_steps = s.algo.grad_steps;
        agent.opt = s.algo.opt;
        if let Some(b) = s.algo.best_return {
            let mut net = agent.q.clone();
            saved.load_mlp(&mut net, "q_best")?;
            agent.best = Some((b, net));
        }
        Ok(agent)
    }

    /// Mean and standard deviation of the delivered policy's return ([`Dqn::policy_network`],
    /// greedy) over fresh episodes.
    pub fn evaluate(
        &mut self,
        make_env: &EnvFactory,
        episodes: u64,
        seed: u64,
    ) -> Result<(f64, f64), AlgoError> {
        evaluate_policy(make_env, episodes, seed, &mut |x| {
            Value::Discrete(self.policy_action(x) as i64)
        })
    }

    /// Environment steps so far.
    pub fn global_step(&self) -> u64 {
        self.env.global_step
    }
}

/// The action of largest Q-value of `net` for one observation (the first of equal ones).
fn greedy_action(
    net: &Mlp,
    obs: &[f32],
    cache: &mut MlpCache,
    n_actions: usize,
    dueling: bool,
) -> usize {
    net.forward(obs, 1, cache);
    let row = &q_values(cache.output(), n_actions, dueling);
    let best = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    row.iter().position(|&x| x == best).unwrap_or(0)
}

/// Q-values (`batch x n_actions`) from the network's raw output: the output itself, or for a
/// dueling head (`batch x (1 + n_actions)`, value first) `Q = V + A - mean_a A`.
fn q_values(raw: &[f32], n_actions: usize, dueling: bool) -> Vec<f32> {
    if !dueling {
        return raw.to_vec();
    }
    let mut q = Vec::with_capacity(raw.len() / (n_actions + 1) * n_actions);
    for row in raw.chunks_exact(n_actions + 1) {
        let mean = row[1..].iter().sum::<f32>() / n_actions as f32;
        q.extend(row[1..].iter().map(|&a| row[0] + a - mean));
    }
    q
}

/// Gradient of the dueling combination: from `dL/dQ` to `dL/dV = sum_a dL/dQ_a` and
/// `dL/dA_a = dL/dQ_a - mean_b dL/dQ_b`.
fn dueling_grad(grad_q: &[f32], n_actions: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(grad_q.len() / n_actions * (n_actions + 1));
    for row in grad_q.chunks_exact(n_actions) {
        let sum = row.iter().sum::<f32>();
        out.push(sum);
        out.extend(row.iter().map(|&g| g - sum / n_actions as f32));
    }
    out
}

/// What only DQN keeps in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DqnState {
    grad_steps: u64,
    opt: Adam,
    /// The best evaluation's mean return (its network is the `q_best` tensors).
    #[serde(default)]
    best_return: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dueling_grad` is the exact gradient of `q_values` (checked on a linear function of Q).
    #[test]
    fn dueling_gradient_matches_finite_differences() {
        let na = 3;
        let raw = [0.5f32, 1.0, -2.0, 0.25, -1.0, 0.0, 3.0, 2.0];
        let w = [0.3f32, -1.1, 0.7, 2.0, 0.1, -0.4];
        let f = |raw: &[f32]| -> f64 {
            q_values(raw, na, true)
                .iter()
                .zip(&w)
                .map(|(&q, &w)| f64::from(q * w))
                .sum()
        };
        let analytic = dueling_grad(&w, na);
        for i in 0..raw.len() {
            let (mut p, mut m) = (raw, raw);
            p[i] += 1e-2;
            m[i] -= 1e-2;
            let numeric = (f(&p) - f(&m)) / 2e-2;
            assert!((f64::from(analytic[i]) - numeric).abs() < 1e-4, "entry {i}");
        }
        // Q = V + A - mean A: row 0 has V = 0.5, A = (1, -2, 0.25), mean -0.25.
        assert_eq!(&q_values(&raw, na, true)[..3], &[1.75, -1.25, 1.0]);
    }
}
