//! Proximal Policy Optimization (Schulman et al. 2017), detail for detail as Stable-Baselines3's
//! `PPO` so that the rl-baselines3-zoo hyperparameters carry over:
//!
//! 1. Collect `n_steps` transitions from each of `num_envs` envs (same-step autoreset; a
//!    truncated episode bootstraps from the value of its final observation).
//! 2. GAE(lambda) advantages, returns = advantages + values.
//! 3. `n_epochs` passes over shuffled minibatches of `batch_size`: advantages normalised per
//!    minibatch (unbiased std, +1e-8); clipped surrogate
//!    `max(-A r, -A clip(r, 1 - eps, 1 + eps))`, `r = exp(log pi - log pi_old)`; value loss
//!    `mean((R - V)^2)` with optional clipping of V around the old value; entropy bonus;
//!    `loss = pg + ent_coef * (-H) + vf_coef * value`; stop the epoch loop when
//!    `approx_kl = mean((r - 1) - log r) > 1.5 * target_kl`; global gradient-norm clipping;
//!    Adam (eps 1e-5).
//! 4. Learning rate and clip range are schedules (`rein_core::schedule`), e.g. annealed linearly to 0 with the fraction of
//!    steps remaining (the zoo's `lin_` schedules), updated once per rollout.

use crate::actor_critic::ActorCritic;
use crate::onpolicy::{load_on_policy, Collector, EnvFactory, OnPolicyState, UpdateTiming};
use crate::AlgoError;
use rand::seq::SliceRandom;
use rein_core::collective;
use rein_core::returns::explained_variance;
use rein_core::schedule::Schedule;
use rein_core::{rng_from_seed, ReinRng};
use rein_nn::{Activation, Adam};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// PPO hyperparameters (defaults: SB3's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    /// Environment steps to train for (over all envs).
    pub total_timesteps: u64,
    /// Parallel environments.
    pub num_envs: usize,
    /// Steps per env per rollout.
    pub n_steps: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Passes over each rollout.
    pub n_epochs: usize,
    /// Adam learning rate: a number, or a schedule such as `"lin_0.001"` (linearly to 0).
    pub learning_rate: Schedule,
    /// Discount.
    pub gamma: f64,
    /// GAE lambda.
    pub gae_lambda: f64,
    /// Surrogate clip range epsilon: a number or a schedule (`"lin_0.2"`).
    pub clip_range: Schedule,
    /// Clip range of the value function around the old values (negative: no clipping).
    pub clip_range_vf: f64,
    /// Normalise advantages per minibatch.
    pub normalize_advantage: bool,
    /// Entropy coefficient.
    pub ent_coef: f64,
    /// Value-loss coefficient.
    pub vf_coef: f64,
    /// Global gradient-norm bound.
    pub max_grad_norm: f64,
    /// Stop the epochs of an update when approx_kl exceeds 1.5 x this (negative: never).
    pub target_kl: f64,
    /// Hidden layer sizes of the actor and of the critic.
    pub net_arch: Vec<usize>,
    /// One trunk of `net_arch` shared by the actor and critic heads (else separate networks).
    pub shared_trunk: bool,
    /// Hidden activation.
    pub activation: Activation,
    /// Initial log standard deviation (continuous actions).
    pub log_std_init: f64,
    /// Normalise observations with running statistics (SB3 VecNormalize).
    pub normalize_obs: bool,
    /// Scale rewards by the running std of the discounted return (SB3 VecNormalize).
    pub normalize_reward: bool,
    /// Adam epsilon.
    pub adam_eps: f64,
    /// Seed of envs, sampling and initialisation.
    pub seed: u64,
    /// Threads stepping the vector env.
    pub env_threads: usize,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            total_timesteps: 1_000_000,
            num_envs: 1,
            n_steps: 2048,
            batch_size: 64,
            n_epochs: 10,
            learning_rate: Schedule::Constant { value: 3e-4 },
            gamma: 0.99,
            gae_lambda: 0.95,
            clip_range: Schedule::Constant { value: 0.2 },
            clip_range_vf: -1.0,
            normalize_advantage: true,
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            target_kl: -1.0,
            net_arch: vec![64, 64],
            shared_trunk: false,
            activation: Activation::Tanh,
            log_std_init: 0.0,
            normalize_obs: false,
            normalize_reward: false,
            adam_eps: 1e-5,
            seed: 0,
            env_threads: 1,
        }
    }
}

/// Presets shipped with rein (`presets/ppo/<env>.toml`), rl-baselines3-zoo hyperparameters.
const PRESETS: &[(&str, &str)] = &[
    (
        "CartPole-v1",
        include_str!("../presets/ppo/CartPole-v1.toml"),
    ),
    ("Acrobot-v1", include_str!("../presets/ppo/Acrobot-v1.toml")),
    (
        "Pendulum-v1",
        include_str!("../presets/ppo/Pendulum-v1.toml"),
    ),
    (
        "HalfCheetah-v5",
        include_str!("../presets/ppo/HalfCheetah-v5.toml"),
    ),
    ("Hopper-v5", include_str!("../presets/ppo/Hopper-v5.toml")),
    (
        "Walker2d-v5",
        include_str!("../presets/ppo/Walker2d-v5.toml"),
    ),
];

impl PpoConfig {
    /// The shipped preset for `env_id` (text of its TOML), if any.
    pub fn preset_toml(env_id: &str) -> Option<&'static str> {
        PRESETS
            .iter()
            .find(|(id, _)| *id == env_id)
            .map(|(_, t)| *t)
    }

    /// Checks the values, naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        let pos = |name: &str, v: usize| {
            if v == 0 {
                Err(format!("{name} must be at least 1"))
            } else {
                Ok(())
            }
        };
        pos("num_envs", self.num_envs)?;
        pos("n_steps", self.n_steps)?;
        pos("batch_size", self.batch_size)?;
        pos("n_epochs", self.n_epochs)?;
        pos("env_threads", self.env_threads)?;
        if self.batch_size > self.num_envs * self.n_steps {
            return Err(format!(
                "batch_size {} exceeds the rollout size num_envs * n_steps = {}",
                self.batch_size,
                self.num_envs * self.n_steps
            ));
        }
        for (name, v) in [("gamma", self.gamma), ("gae_lambda", self.gae_lambda)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        self.learning_rate.check_positive("learning_rate")?;
        self.clip_range.check_positive("clip_range")?;
        if self.net_arch.is_empty() || self.net_arch.contains(&0) {
            return Err(format!(
                "net_arch must list positive hidden sizes, got {:?}",
                self.net_arch
            ));
        }
        Ok(())
    }
}

/// One row of training metrics (SB3's and CleanRL's names in the doc comments).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PpoLog {
    /// Environment steps so far (`time/total_timesteps`).
    pub global_step: u64,
    /// Updates so far.
    pub update: u64,
    /// Mean return of the last 100 finished episodes (`rollout/ep_rew_mean`), NaN before any.
    pub ep_return_mean: f64,
    /// Mean length of the last 100 finished episodes.
    pub ep_len_mean: f64,
    /// Episodes finished so far.
    pub episodes: u64,
    /// `train/policy_gradient_loss`.
    pub policy_loss: f64,
    /// `train/value_loss`.
    pub value_loss: f64,
    /// `train/entropy_loss` with the sign flipped: mean entropy.
    pub entropy: f64,
    /// `train/approx_kl` of the last minibatch.
    pub approx_kl: f64,
    /// `train/clip_fraction`.
    pub clip_fraction: f64,
    /// `train/explained_variance`.
    pub explained_variance: f64,
    /// `train/learning_rate`.
    pub learning_rate: f64,
    /// `train/clip_range`.
    pub clip_range: f64,
    /// Environment steps per second since the start (`time/fps`).
    pub sps: f64,
}

impl PpoLog {
    /// Column names of `metrics.csv`.
    pub const COLUMNS: [&'static str; 14] = [
        "global_step",
        "update",
        "episodic_return_mean",
        "episodic_length_mean",
        "episodes",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_fraction",
        "explained_variance",
        "learning_rate",
        "clip_range",
        "sps",
    ];

    /// Values in the order of [`PpoLog::COLUMNS`].
    pub fn row(&self) -> [f64; 14] {
        [
            self.global_step as f64,
            self.update as f64,
            self.ep_return_mean,
            self.ep_len_mean,
            self.episodes as f64,
            self.policy_loss,
            self.value_loss,
            self.entropy,
            self.approx_kl,
            self.clip_fraction,
            self.explained_variance,
            self.learning_rate,
            self.clip_range,
            self.sps,
        ]
    }
}

/// A PPO agent with its environments; `update` runs one rollout and one optimisation
/// phase, `train` runs until `total_timesteps`.
pub struct Ppo {
    /// Hyperparameters.
    pub config: PpoConfig,
    /// The policy and value networks.
    pub policy: ActorCritic,
    /// One Adam state per parameter group of the policy (see `ActorCritic::param_groups`).
    optimizers: Vec<Adam>,
    /// The environments, normalisation and the last rollout.
    pub collector: Collector,
    rng: ReinRng,
    /// Updates so far.
    pub update: u64,
    started: Instant,
    /// Time spent so far (this process only; not saved in checkpoints).
    pub timing: UpdateTiming,
}

impl Ppo {
    /// Builds the agent: the vector env from `make_env`, the networks initialised from `seed`.
    pub fn new(config: PpoConfig, make_env: EnvFactory) -> Result<Self, AlgoError> {
        config.validate().map_err(AlgoError::Config)?;
        let (collector, obs_dim, kind) = Collector::new(
            config.num_envs,
            config.env_threads,
            config.seed,
            (config.normalize_obs, config.normalize_reward),
            config.gamma,
            make_env,
        )?;
        let mut rng = rng_from_seed(config.seed);
        let policy = ActorCritic::new(
            obs_dim,
            kind,
            &config.net_arch,
            config.activation,
            config.log_std_init as f32,
            config.shared_trunk,
            &mut rng,
        );
        let (lr, eps) = (config.learning_rate.initial(), config.adam_eps);
        Ok(Self {
            optimizers: policy
                .param_group_sizes()
                .into_iter()
                .map(|n| Adam::new(n, lr, eps))
                .collect(),
            policy,
            collector,
            rng: rein_core::collective::rank_rng(rng, config.seed),
            update: 0,
            started: Instant::now(),
            timing: UpdateTiming::default(),
            config,
        })
    }

    /// Environment steps so far.
    pub fn global_step(&self) -> u64 {
        self.collector.global_step
    }

    /// Collects one rollout and runs one optimisation phase.
    pub fn update(&mut self) -> Result<PpoLog, AlgoError> {
        let t0 = Instant::now();
        self.collector
            .collect(&mut self.policy, &mut self.rng, self.config.n_steps)?;
        let t1 = Instant::now();
        let log = self.optimize()?;
        self.timing.rollout_secs += (t1 - t0).as_secs_f64();
        self.timing.optimize_secs += t1.elapsed().as_secs_f64();
        Ok(log)
    }

    /// Floating-point operations of one gradient step on a full minibatch.
    pub fn flops_per_grad_step(&self) -> f64 {
        self.policy.flops_per_grad_step(self.config.batch_size)
    }

    fn optimize(&mut self) -> Result<PpoLog, AlgoError> {
        let cfg = self.config.clone();
        let (n, d) = (cfg.num_envs, self.policy.obs_dim);
        let ad = self.policy.kind.action_dim();
        let total = n * cfg.n_steps;
        let (adv, returns) = self.collector.gae(cfg.gamma, cfg.gae_lambda);
        let b = &self.collector.buf;
        let explained = explained_variance(&b.values, &returns);
        let (step, steps) = (self.global_step(), cfg.total_timesteps);
        let lr = cfg.learning_rate.value(step, steps, 0);
        let clip = cfg.clip_range.value(step, steps, 0);
        for opt in &mut self.optimizers {
            opt.lr = lr;
        }

        let out_dim = self.policy.kind.actor_out();
        let bs = cfg.batch_size;
        let mut indices: Vec<usize> = (0..total).collect();
        let (mut mb_obs, mut mb_adv) = (vec![0.0f32; bs * d], vec![0.0f64; bs]);
        let mut grad_out = vec![0.0f32; bs * out_dim];
        let mut grad_v = vec![0.0f32; bs];
        let mut lp = vec![0.0f32; out_dim];
        let (mut pg_sum, mut v_sum, mut ent_sum, mut clip_sum, mut count) =
            (0.0, 0.0, 0.0, 0.0, 0usize);
        let mut approx_kl = 0.0;
        'epochs: for _ in 0..cfg.n_epochs {
            indices.shuffle(&mut self.rng);
            for mb in indices.chunks(bs) {
                let m = mb.len();
                for (k, &i) in mb.iter().enumerate() {
                    mb_obs[k * d..(k + 1) * d]
                        .copy_from_slice(&self.collector.buf.obs[i * d..(i + 1) * d]);
                    mb_adv[k] = adv[i];
                }
                let mb_obs = &mb_obs[..m * d];
                if cfg.normalize_advantage && m > 1 {
                    rein_core::returns::normalize(&mut mb_adv[..m], 1e-8);
                }
                self.policy.zero_grad();
                self.policy.forward(mb_obs, m);
                // Actor: surrogate and entropy.
                let out = self.policy.actor_cache.output().to_vec();
                let (mut kl_sum, mut pg, mut ent, mut clipped) = (0.0f64, 0.0f64, 0.0f64, 0usize);
                let g_entropy = (-cfg.ent_coef / m as f64) as f32;
                for k in 0..m {
                    let i = mb[k];
                    let action = &self.collector.buf.actions[i * ad..(i + 1) * ad];
                    let row = &out[k * out_dim..(k + 1) * out_dim];
                    let (logp, entropy) = self.policy.log_prob_entropy(row, action, &mut lp);
                    let log_ratio = (logp - self.collector.buf.log_probs[i]) as f64;
                    let ratio = log_ratio.exp();
                    let a = mb_adv[k];
                    let l1 = -a * ratio;
                    let l2 = -a * ratio.clamp(1.0 - clip, 1.0 + clip);
                    pg += l1.max(l2);
                    ent += entropy as f64;
                    kl_sum += (ratio - 1.0) - log_ratio;
                    if (ratio - 1.0).abs() > clip {
                        clipped += 1;
                    }
                    let g_logp = if l1 >= l2 {
                        (-a * ratio / m as f64) as f32
                    } else {
                        0.0
                    };
                    let g = &mut grad_out[k * out_dim..(k + 1) * out_dim];
                    self.policy
                        .head_backward(row, action, &lp, g_logp, g_entropy, g);
                }
                approx_kl = kl_sum / m as f64;
                if cfg.target_kl > 0.0 && collective::is_distributed() {
                    // Every rank stops at the same minibatch: the mean over ranks decides.
                    let n = collective::world().size() as f64;
                    approx_kl = collective::sum_f64(&[approx_kl])[0] / n;
                }
                if cfg.target_kl > 0.0 && approx_kl > 1.5 * cfg.target_kl {
                    break 'epochs;
                }
                // Critic: (optionally clipped) squared error.
                let v = self.policy.critic_cache.output().to_vec();
                let mut vl = 0.0f64;
                for k in 0..m {
                    let i = mb[k];
                    let (vk, old) = (v[k] as f64, self.collector.buf.values[i]);
                    let (pred, dpred) = if cfg.clip_range_vf > 0.0 {
                        let c = cfg.clip_range_vf;
                        let diff = vk - old;
                        (
                            old + diff.clamp(-c, c),
                            if diff.abs() < c { 1.0 } else { 0.0 },
                        )
                    } else {
                        (vk, 1.0)
                    };
                    let err = pred - returns[i];
                    vl += err * err;
                    grad_v[k] = (cfg.vf_coef * 2.0 * err * dpred / m as f64) as f32;
                }
                self.policy.backward(&grad_out[..m * out_dim], &grad_v[..m]);
                self.policy.average_grads_over_ranks();
                let norm = self.policy.clip_grad_norm(cfg.max_grad_norm);
                if !norm.is_finite() {
                    return Err(AlgoError::NonFinite(format!(
                        "gradient norm is {norm} at update {}; lower the learning rate",
                        self.update
                    )));
                }
                for ((p, g), opt) in self
                    .policy
                    .param_groups()
                    .into_iter()
                    .zip(&mut self.optimizers)
                {
                    opt.step(p, g);
                }
                self.timing.grad_steps += 1;
                pg_sum += pg / m as f64;
                v_sum += vl / m as f64;
                ent_sum += ent / m as f64;
                clip_sum += clipped as f64 / m as f64;
                count += 1;
            }
        }
        self.update += 1;
        let c = count.max(1) as f64;
        let (ret_mean, len_mean, episodes) = self.collector.episode_stats();
        Ok(PpoLog {
            global_step: self.global_step(),
            update: self.update,
            ep_return_mean: ret_mean,
            ep_len_mean: len_mean,
            episodes,
            policy_loss: pg_sum / c,
            value_loss: v_sum / c,
            entropy: ent_sum / c,
            approx_kl,
            clip_fraction: clip_sum / c,
            explained_variance: explained,
            learning_rate: lr,
            clip_range: clip,
            sps: self.global_step() as f64 / self.started.elapsed().as_secs_f64().max(1e-9),
        })
    }

    /// Writes everything needed to continue training exactly (weights, optimiser moments,
    /// counters, generator, normaliser, environment states) to one checkpoint, atomically.
    /// Weights use PyTorch's layout (`actor.{l}.weight` is `[out, in]`).
    pub fn save_checkpoint(&self, path: &std::path::Path) -> Result<(), AlgoError> {
        let state = OnPolicyState::capture(
            &self.config,
            self.update,
            &self.rng,
            &self.collector,
            self.optimizers.clone(),
        )?;
        crate::checkpoint::save(path, "ppo", &state, &self.policy.to_tensors())
    }

    /// Rebuilds an agent from a checkpoint written by [`Ppo::save_checkpoint`] (the config is
    /// the one saved in it; `make_env` must make the same environments).
    pub fn load_checkpoint(
        path: &std::path::Path,
        make_env: EnvFactory,
    ) -> Result<Self, AlgoError> {
        let (mut agent, algo) = load_on_policy::<PpoConfig, Vec<Adam>, Self>(
            path,
            "ppo",
            |c| Self::new(c, make_env),
            |a| (&mut a.policy, &mut a.collector, &mut a.rng, &mut a.update),
        )?;
        agent.optimizers = algo;
        Ok(agent)
    }
}
