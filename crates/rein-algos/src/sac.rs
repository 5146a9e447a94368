//! Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications"),
//! as Stable-Baselines3's `SAC` does it, gradient step by gradient step:
//!
//! - actor: a ReLU trunk with two linear heads, mean `mu(s)` and `log_std(s)` clamped to
//!   [-20, 2]; actions `a = tanh(u)`, `u = mu + std * eps` (reparameterised), with the
//!   change-of-variables correction `log pi(a|s) = sum_j log N(u_j; mu_j, std_j)
//!   - sum_j log(1 - tanh(u_j)^2 + 1e-6)` (paper, appendix C, eq. 21);
//! - two critics and their Polyak-averaged targets; target
//!   `y = r + gamma^n (1 - terminated) (min_i Q_i'(s', a') - alpha log pi(a'|s'))` with
//!   `a' ~ pi(.|s')` (eq. 3 with the soft value of eq. 3's V); loss `0.5 sum_i mse(Q_i, y)`;
//! - temperature: `alpha = exp(log_alpha)`, learned with the loss
//!   `-log_alpha * mean(log pi(a|s) + target_entropy)` (eq. 18, `target_entropy = -dim(A)` by
//!   default), or fixed;
//! - per gradient step, in SB3's order: temperature step, critic step (with the alpha from
//!   before that step), actor step on `mean(alpha log pi(a|s) - min_i Q_i(s, a))` with the
//!   just-updated critics, then the target update every `target_update_interval` steps.
//!
//! Exploration samples from the policy (uniform actions before `learning_starts`); optional
//! extra Gaussian or Ornstein-Uhlenbeck action noise as SB3's `action_noise`. Evaluation acts
//! with `tanh(mu(s))`.

use crate::offpolicy::{
    box_bounds, critic_input, evaluate_policy, unscale_action, OffPolicyEnv, OffPolicyState,
};
use crate::onpolicy::EnvFactory;
use crate::td3::{ActionNoise, NoiseKind};
use crate::AlgoError;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rein_core::replay::ReplayBatch;
use rein_core::{rng_from_seed, ReinRng, Value};
use rein_nn::kernels::fast_tanh;
use rein_nn::{Activation, Adam, Mlp, MlpCache};
use serde::{Deserialize, Serialize};
use std::time::Instant;

const LOG_STD_MIN: f32 = -20.0;
const LOG_STD_MAX: f32 = 2.0;
/// Added inside the log of the tanh correction, as SB3, to keep it finite at |a| = 1.
const TANH_EPS: f32 = 1e-6;
const HALF_LOG_2PI: f32 = 0.918_938_5;

/// SAC hyperparameters (defaults: SB3's SAC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SacConfig {
    /// Environment steps to train for.
    pub total_timesteps: u64,
    /// Adam learning rate (actor, critics and temperature).
    pub learning_rate: f64,
    /// Replay capacity.
    pub buffer_size: usize,
    /// Uniformly random steps before learning starts.
    pub learning_starts: u64,
    /// Minibatch size.
    pub batch_size: usize,
    /// Polyak coefficient of the target critics.
    pub tau: f64,
    /// Discount.
    pub gamma: f64,
    /// Env steps between training phases.
    pub train_freq: u64,
    /// Gradient steps per training phase.
    pub gradient_steps: u64,
    /// Gradient steps between target updates.
    pub target_update_interval: u64,
    /// Learn the temperature alpha (SB3's `ent_coef = "auto"`).
    pub auto_ent_coef: bool,
    /// Initial (or, without `auto_ent_coef`, fixed) temperature alpha.
    pub ent_coef: f64,
    /// Entropy target of the temperature loss; `None` is SB3's `-dim(A)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_entropy: Option<f64>,
    /// Extra exploration noise added to sampled actions (0: none, SB3's default).
    pub action_noise_std: f64,
    /// Process of the extra exploration noise.
    pub action_noise: NoiseKind,
    /// Rate theta of Ornstein-Uhlenbeck noise.
    pub ou_theta: f64,
    /// Time step dt of Ornstein-Uhlenbeck noise.
    pub ou_dt: f64,
    /// Rewards summed into each critic target (1: one-step TD).
    pub n_steps: usize,
    /// Hidden layer sizes of the actor and the critics.
    pub net_arch: Vec<usize>,
    /// Seed.
    pub seed: u64,
}

impl Default for SacConfig {
    fn default() -> Self {
        Self {
            total_timesteps: 100_000,
            learning_rate: 3e-4,
            buffer_size: 1_000_000,
            learning_starts: 100,
            batch_size: 256,
            tau: 0.005,
            gamma: 0.99,
            train_freq: 1,
            gradient_steps: 1,
            target_update_interval: 1,
            auto_ent_coef: true,
            ent_coef: 1.0,
            target_entropy: None,
            action_noise_std: 0.0,
            action_noise: NoiseKind::Normal,
            ou_theta: 0.15,
            ou_dt: 1e-2,
            n_steps: 1,
            net_arch: vec![256, 256],
            seed: 0,
        }
    }
}

impl SacConfig {
    /// The shipped preset for `env_id`, if any.
    pub fn preset_toml(env_id: &str) -> Option<&'static str> {
        match env_id {
            "Pendulum-v1" => Some(include_str!("../presets/sac/Pendulum-v1.toml")),
            "MountainCarContinuous-v0" => {
                Some(include_str!("../presets/sac/MountainCarContinuous-v0.toml"))
            }
            "HalfCheetah-v5" => Some(include_str!("../presets/sac/HalfCheetah-v5.toml")),
            "dm_control/cheetah-run-v0" => Some(include_str!(
                "../presets/sac/dm_control-cheetah-run-v0.toml"
            )),
            _ => None,
        }
    }

    /// Checks the values, naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0
            || self.buffer_size == 0
            || self.train_freq == 0
            || self.target_update_interval == 0
            || self.n_steps == 0
        {
            return Err("batch_size, buffer_size, train_freq, target_update_interval and n_steps must be at least 1".into());
        }
        if !((0.0..=1.0).contains(&self.gamma) && self.tau > 0.0 && self.tau <= 1.0) {
            return Err(format!(
                "gamma must be in [0, 1] and tau in (0, 1], got {} and {}",
                self.gamma, self.tau
            ));
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 {
            return Err(format!(
                "learning_rate must be positive, got {}",
                self.learning_rate
            ));
        }
        if self.ent_coef.is_nan() || self.ent_coef <= 0.0 {
            return Err(format!("ent_coef must be positive, got {}", self.ent_coef));
        }
        if self.action_noise_std.is_nan() || self.action_noise_std < 0.0 {
            return Err(format!(
                "action_noise_std must be at least 0, got {}",
                self.action_noise_std
            ));
        }
        Ok(())
    }
}

/// One row of SAC metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SacLog {
    /// Environment steps.
    pub global_step: u64,
    /// Episodes finished.
    pub episodes: u64,
    /// Mean return of the last 100 episodes.
    pub ep_return_mean: f64,
    /// Mean critic loss of the last phase.
    pub critic_loss: f64,
    /// Mean actor loss of the last phase.
    pub actor_loss: f64,
    /// Temperature alpha after the last phase.
    pub ent_coef: f64,
    /// Mean temperature loss of the last phase.
    pub ent_coef_loss: f64,
    /// Mean `-log pi(a|s)` of the policy's batch actions (an entropy estimate).
    pub entropy: f64,
    /// Steps per second.
    pub sps: f64,
}

impl SacLog {
    /// Column names of `metrics.csv` (SB3's names where it has one).
    pub const COLUMNS: [&'static str; 9] = [
        "global_step",
        "episodes",
        "episodic_return_mean",
        "critic_loss",
        "actor_loss",
        "ent_coef",
        "ent_coef_loss",
        "entropy",
        "sps",
    ];

    /// Values in the order of [`SacLog::COLUMNS`].
    pub fn row(&self) -> [f64; 9] {
        [
            self.global_step as f64,
            self.episodes as f64,
            self.ep_return_mean,
            self.critic_loss,
            self.actor_loss,
            self.ent_coef,
            self.ent_coef_loss,
            self.entropy,
            self.sps,
        ]
    }
}

/// Samples from the tanh-squashed Gaussian for a batch of actor outputs (`mu | log_std` per
/// row), keeping what the backward pass needs.
#[derive(Debug, Default, Clone)]
struct SquashedSample {
    /// tanh(u), `batch x act_dim`.
    actions: Vec<f32>,
    /// log pi(a|s) per row.
    log_probs: Vec<f32>,
    /// The standard normal draws.
    eps: Vec<f32>,
    /// Clamped log std.
    log_std: Vec<f32>,
    /// Whether log std was inside the clamp range (gradient passes).
    inside: Vec<bool>,
}

impl SquashedSample {
    fn draw(raw: &[f32], act_dim: usize, rng: &mut ReinRng) -> Self {
        let b = raw.len() / (2 * act_dim);
        let mut s = Self::default();
        for k in 0..b {
            let row = &raw[k * 2 * act_dim..(k + 1) * 2 * act_dim];
            let mut lp = 0.0f32;
            for j in 0..act_dim {
                let ls_raw = row[act_dim + j];
                let ls = ls_raw.clamp(LOG_STD_MIN, LOG_STD_MAX);
                let e: f32 = StandardNormal.sample(rng);
                let u = row[j] + ls.exp() * e;
                let a = fast_tanh(u);
                lp += -0.5 * e * e - ls - HALF_LOG_2PI - (1.0 - a * a + TANH_EPS).ln();
                s.actions.push(a);
                s.eps.push(e);
                s.log_std.push(ls);
                s.inside.push((LOG_STD_MIN..=LOG_STD_MAX).contains(&ls_raw));
            }
            s.log_probs.push(lp);
        }
        s
    }
}

/// A SAC agent with its environment.
pub struct Sac {
    /// Hyperparameters.
    pub config: SacConfig,
    /// Actor: observation to `mu | log_std` (2 x act_dim outputs).
    pub actor: Mlp,
    /// Critics Q_i(s, a).
    pub critics: Vec<Mlp>,
    critic_targets: Vec<Mlp>,
    log_alpha: f32,
    target_entropy: f32,
    opt_actor: Adam,
    opt_critics: Vec<Adam>,
    opt_alpha: Adam,
    env: OffPolicyEnv,
    noise: ActionNoise,
    low: Vec<f32>,
    high: Vec<f32>,
    rng: ReinRng,
    grad_steps: u64,
    caches: [MlpCache; 4],
    batch: ReplayBatch,
    started: Instant,
}

impl Sac {
    /// Builds the agent on one environment (Box observations, bounded Box actions).
    pub fn new(config: SacConfig, make_env: EnvFactory) -> Result<Self, AlgoError> {
        config.validate().map_err(AlgoError::Config)?;
        let probe = make_env(0)?;
        let (low, high) = box_bounds(probe.action_space(), "SAC")?;
        drop(probe);
        let ad = low.len();
        let env = OffPolicyEnv::new(make_env, config.seed, config.buffer_size, ad)?;
        let od = env.venv.obs_dim();
        let mut rng = rng_from_seed(config.seed);
        let sizes = |inp: usize, out: usize| -> Vec<usize> {
            std::iter::once(inp)
                .chain(config.net_arch.iter().copied())
                .chain([out])
                .collect()
        };
        let mut actor = Mlp::new(&sizes(od, 2 * ad), Activation::Relu);
        actor.init_pytorch_default(&mut rng);
        let (mut critics, mut critic_targets) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let mut c = Mlp::new(&sizes(od + ad, 1), Activation::Relu);
            c.init_pytorch_default(&mut rng);
            let mut t = Mlp::new(&sizes(od + ad, 1), Activation::Relu);
            t.copy_params_from(&c);
            critics.push(c);
            critic_targets.push(t);
        }
        let lr = config.learning_rate;
        Ok(Self {
            opt_actor: Adam::new(actor.params.len(), lr, 1e-8),
            opt_critics: critics
                .iter()
                .map(|c| Adam::new(c.params.len(), lr, 1e-8))
                .collect(),
            opt_alpha: Adam::new(1, lr, 1e-8),
            log_alpha: (config.ent_coef as f32).ln(),
            target_entropy: config.target_entropy.unwrap_or(-(ad as f64)) as f32,
            noise: ActionNoise::new(ad),
            env,
            actor,
            critics,
            critic_targets,
            low,
            high,
            rng: rein_core::collective::rank_rng(rng, config.seed),
            grad_steps: 0,
            caches: Default::default(),
            batch: ReplayBatch::default(),
            started: Instant::now(),
            config,
        })
    }

    /// Environment steps so far.
    pub fn global_step(&self) -> u64 {
        self.env.global_step
    }

    /// The temperature alpha.
    pub fn ent_coef(&self) -> f64 {
        f64::from(self.log_alpha.exp())
    }

    /// The deterministic action `tanh(mu(s))` in [-1, 1] for one observation.
    pub fn deterministic_action(&mut self, obs: &[f32]) -> Vec<f32> {
        let ad = self.low.len();
        self.actor.forward(obs, 1, &mut self.caches[0]);
        self.caches[0].output()[..ad]
            .iter()
            .map(|&m| fast_tanh(m))
            .collect()
    }

    pub(crate) fn env_action(&self, a: &[f32]) -> Value {
        unscale_action(a, &self.low, &self.high)
    }

    /// Steps the env `train_freq` times, then trains; returns the metrics.
    pub fn update(&mut self) -> Result<SacLog, AlgoError> {
        let cfg = self.config.clone();
        let ad = self.low.len();
        for _ in 0..cfg.train_freq {
            let a: Vec<f32> = if self.env.global_step < cfg.learning_starts {
                (0..ad)
                    .map(|_| self.rng.random_range(-1.0f32..=1.0))
                    .collect()
            } else {
                self.actor.forward(&self.env.obs, 1, &mut self.caches[0]);
                let mut a =
                    SquashedSample::draw(self.caches[0].output(), ad, &mut self.rng).actions;
                if cfg.action_noise_std > 0.0 {
                    let eps = self.noise.sample(
                        cfg.action_noise,
                        cfg.action_noise_std,
                        cfg.ou_theta,
                        cfg.ou_dt,
                        &mut self.rng,
                    )?;
                    for (x, e) in a.iter_mut().zip(eps) {
                        *x = (*x + e).clamp(-1.0, 1.0);
                    }
                }
                a
            };
            if self.env.step(self.env_action(&a), &a)? {
                self.noise.reset();
            }
            if self.env.global_step >= cfg.total_timesteps {
                break;
            }
        }
        let mut sums = [0.0f64; 4];
        let mut n = 0u64;
        if self.env.global_step > cfg.learning_starts {
            for _ in 0..cfg.gradient_steps {
                let r = self.gradient_step()?;
                for (s, v) in sums.iter_mut().zip(r) {
                    *s += v;
                }
                n += 1;
            }
        }
        let mean = |i: usize| {
            if n > 0 {
                sums[i] / n as f64
            } else {
                f64::NAN
            }
        };
        let (ep_return_mean, episodes) = self.env.episode_stats();
        Ok(SacLog {
            global_step: self.env.global_step,
            episodes,
            ep_return_mean,
            critic_loss: mean(0),
            actor_loss: mean(1),
            ent_coef: self.ent_coef(),
            ent_coef_loss: mean(2),
            entropy: mean(3),
            sps: self.env.global_step as f64 / self.started.elapsed().as_secs_f64().max(1e-9),
        })
    }

    /// One SAC update; returns (critic loss, actor loss, temperature loss, entropy estimate).
    fn gradient_step(&mut self) -> Result<[f64; 4], AlgoError> {
        let cfg = self.config.clone();
        let (b, ad) = (cfg.batch_size, self.low.len());
        let od = self.env.obs.len();
        self.env.buffer.sample_n_step_into(
            b,
            cfg.n_steps,
            cfg.gamma as f32,
            &mut self.rng,
            &mut self.batch,
        );
        // Policy actions for the current observations (used by the temperature and actor
        // losses; the actor itself changes only at the end of the step).
        self.actor.zero_grad();
        self.actor.forward(&self.batch.obs, b, &mut self.caches[0]);
        let pi = SquashedSample::draw(self.caches[0].output(), ad, &mut self.rng);
        let mean_logp = pi.log_probs.iter().map(|&x| x as f64).sum::<f64>() / b as f64;
        // Temperature step (eq. 18): d/dlog_alpha = -mean(log pi + target_entropy).
        let alpha = self.log_alpha.exp();
        let mut alpha_loss = f64::NAN;
        if cfg.auto_ent_coef {
            let g = -(mean_logp + f64::from(self.target_entropy));
            alpha_loss = f64::from(self.log_alpha) * g;
            let mut p = [self.log_alpha];
            let mut g = [g as f32];
            rein_core::collective::average_f32(&mut g);
            self.opt_alpha.step(&mut p, &g);
            self.log_alpha = p[0];
        }
        // Critic targets from the target critics at a' ~ pi(.|s').
        self.actor
            .forward(&self.batch.next_obs, b, &mut self.caches[1]);
        let next = SquashedSample::draw(self.caches[1].output(), ad, &mut self.rng);
        let next_in = critic_input(&self.batch.next_obs, &next.actions, b);
        let mut next_q = vec![f32::INFINITY; b];
        for t in &self.critic_targets {
            t.forward(&next_in, b, &mut self.caches[2]);
            for (q, &v) in next_q.iter_mut().zip(self.caches[2].output()) {
                *q = q.min(v);
            }
        }
        let y: Vec<f32> = (0..b)
            .map(|k| {
                let soft = next_q[k] - alpha * next.log_probs[k];
                self.batch.rewards[k]
                    + if self.batch.terminated[k] {
                        0.0
                    } else {
                        self.batch.discounts[k] * soft
                    }
            })
            .collect();
        // Critic step: 0.5 * sum_i mse(Q_i, y).
        let cur_in = critic_input(&self.batch.obs, &self.batch.actions, b);
        let mut critic_loss = 0.0f64;
        for (c, opt) in self.critics.iter_mut().zip(&mut self.opt_critics) {
            c.zero_grad();
            c.forward(&cur_in, b, &mut self.caches[2]);
            let g: Vec<f32> = self.caches[2]
                .output()
                .iter()
                .zip(&y)
                .map(|(&q, &t)| {
                    critic_loss += 0.5 * f64::from((q - t) * (q - t)) / b as f64;
                    (q - t) / b as f32
                })
                .collect();
            c.backward(&mut self.caches[2], &g);
            rein_core::collective::average_f32(&mut c.grads);
            opt.step(&mut c.params, &c.grads);
        }
        if !critic_loss.is_finite() {
            return Err(AlgoError::NonFinite(format!(
                "SAC critic loss is {critic_loss}"
            )));
        }
        // Actor step: mean(alpha log pi(a|s) - min_i Q_i(s, a)), a reparameterised.
        let pi_in = critic_input(&self.batch.obs, &pi.actions, b);
        let mut min_q = vec![f32::INFINITY; b];
        let mut d_a = vec![0.0f32; b * ad];
        let mut d_in = vec![0.0f32; b * (od + ad)];
        // Each sample's gradient flows through the critic achieving the minimum.
        let [_, _, c0_cache, c1_cache] = &mut self.caches;
        self.critics[0].forward(&pi_in, b, c0_cache);
        self.critics[1].forward(&pi_in, b, c1_cache);
        let which: Vec<usize> = (0..b)
            .map(|k| {
                let (q0, q1) = (c0_cache.output()[k], c1_cache.output()[k]);
                min_q[k] = q0.min(q1);
                usize::from(q1 < q0)
            })
            .collect();
        for (i, cache) in [c0_cache, c1_cache].into_iter().enumerate() {
            let c = &mut self.critics[i];
            let g: Vec<f32> = which
                .iter()
                .map(|&w| if w == i { 1.0 } else { 0.0 })
                .collect();
            // The critics are not updated by the actor loss: input gradient only.
            c.input_grad(cache, &g, &mut d_in);
            for k in (0..b).filter(|&k| which[k] == i) {
                d_a[k * ad..(k + 1) * ad]
                    .copy_from_slice(&d_in[k * (od + ad) + od..(k + 1) * (od + ad)]);
            }
        }
        let actor_loss = (0..b)
            .map(|k| f64::from(alpha * pi.log_probs[k] - min_q[k]))
            .sum::<f64>()
            / b as f64;
        let mut d_raw = vec![0.0f32; b * 2 * ad];
        let inv_b = 1.0 / b as f32;
        for k in 0..b {
            for j in 0..ad {
                let idx = k * ad + j;
                let a = pi.actions[idx];
                let one_m = 1.0 - a * a;
                // d/du of -log(1 - tanh(u)^2 + eps).
                let c = 2.0 * a * one_m / (one_m + TANH_EPS);
                let dq_du = d_a[idx] * one_m;
                let std_eps = pi.log_std[idx].exp() * pi.eps[idx];
                let d_mu = alpha * c - dq_du;
                let d_ls = alpha * (-1.0 + c * std_eps) - dq_du * std_eps;
                d_raw[k * 2 * ad + j] = d_mu * inv_b;
                d_raw[k * 2 * ad + ad + j] = if pi.inside[idx] { d_ls * inv_b } else { 0.0 };
            }
        }
        self.actor.backward(&mut self.caches[0], &d_raw);
        rein_core::collective::average_f32(&mut self.actor.grads);
        self.opt_actor
            .step(&mut self.actor.params, &self.actor.grads);
        self.grad_steps += 1;
        if self.grad_steps.is_multiple_of(cfg.target_update_interval) {
            let tau = cfg.tau as f32;
            for (t, c) in self.critic_targets.iter_mut().zip(&self.critics) {
                t.polyak_from(c, tau);
            }
        }
        Ok([critic_loss, actor_loss, alpha_loss, -mean_logp])
    }

    /// Trains until `total_timesteps`, calling `on_log` after every training phase.
    pub fn train(&mut self, on_log: &mut dyn FnMut(&SacLog)) -> Result<(), AlgoError> {
        while self.env.global_step < self.config.total_timesteps {
            let log = self.update()?;
            on_log(&log);
        }
        Ok(())
    }

    /// The networks' tensors as the checkpoint names them (no replay arrays).
    pub fn network_tensors(&self) -> Vec<rein_nn::io::NamedTensor> {
        let mut tensors = self.actor.to_tensors("actor");
        for (i, (c, t)) in self.critics.iter().zip(&self.critic_targets).enumerate() {
            tensors.extend(c.to_tensors(&format!("critic{i}")));
            tensors.extend(t.to_tensors(&format!("critic_target{i}")));
        }
        tensors
    }

    /// Writes everything needed to continue exactly to one checkpoint, atomically.
    pub fn save_checkpoint(&self, path: &std::path::Path) -> Result<(), AlgoError> {
        let mut tensors = self.network_tensors();
        tensors.extend(self.env.tensors());
        let state = OffPolicyState {
            config: self.config.clone(),
            rng: self.rng.clone(),
            env: self.env.state()?,
            algo: SacState {
                grad_steps: self.grad_steps,
                log_alpha: self.log_alpha,
                opt_actor: self.opt_actor.clone(),
                opt_critics: self.opt_critics.clone(),
                opt_alpha: self.opt_alpha.clone(),
                noise: self.noise.clone(),
            },
        };
        crate::checkpoint::save(path, "sac", &state, &tensors)
    }

    /// Rebuilds an agent from [`Sac::save_checkpoint`].
    pub fn load_checkpoint(
        path: &std::path::Path,
        make_env: EnvFactory,
    ) -> Result<Self, AlgoError> {
        let saved = crate::checkpoint::load::<OffPolicyState<SacConfig, SacState>>(path, &["sac"])?;
        let mut agent = Self::new(saved.state.config.clone(), make_env)?;
        saved.load_mlp(&mut agent.actor, "actor")?;
        for i in 0..agent.critics.len() {
            saved.load_mlp(&mut agent.critics[i], &format!("critic{i}"))?;
            saved.load_mlp(&mut agent.critic_targets[i], &format!("critic_target{i}"))?;
        }
        let s = saved.state.clone();
        agent.env.restore(s.env, &saved)?;
        agent.rng = s.rng;
        agent.grad_steps = s.algo.grad_steps;
        agent.log_alpha = s.algo.log_alpha;
        agent.opt_actor = s.algo.opt_actor;
        agent.opt_critics = s.algo.opt_critics;
        agent.opt_alpha = s.algo.opt_alpha;
        agent.noise = s.algo.noise;
        Ok(agent)
    }

    /// Mean and standard deviation of the deterministic policy's return over fresh episodes.
    pub fn evaluate(
        &mut self,
        make_env: &EnvFactory,
        episodes: u64,
        seed: u64,
    ) -> Result<(f64, f64), AlgoError> {
        evaluate_policy(make_env, episodes, seed, &mut |x| {
            let a = self.deterministic_action(x);
            self.env_action(&a)
        })
    }
}

/// What only SAC keeps in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SacState {
    grad_steps: u64,
    log_alpha: f32,
    opt_actor: Adam,
    opt_critics: Vec<Adam>,
    opt_alpha: Adam,
    noise: ActionNoise,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-derived actor gradient of `alpha log pi(a|s) - w . a` (a linear "critic")
    /// matches finite differences of the same reparameterised sample.
    #[test]
    fn squashed_gaussian_gradient_matches_finite_differences() {
        let ad = 2;
        let raw = [0.3f32, -0.7, -0.5, 0.2];
        let w = [0.8f32, -1.3];
        let alpha = 0.4f32;
        let loss = |raw: &[f32]| -> f64 {
            let mut rng = rng_from_seed(5);
            let s = SquashedSample::draw(raw, ad, &mut rng);
            f64::from(alpha * s.log_probs[0] - (w[0] * s.actions[0] + w[1] * s.actions[1]))
        };
        let mut rng = rng_from_seed(5);
        let s = SquashedSample::draw(&raw, ad, &mut rng);
        for i in 0..4 {
            let j = i % ad;
            let a = s.actions[j];
            let one_m = 1.0 - a * a;
            let c = 2.0 * a * one_m / (one_m + TANH_EPS);
            let dq_du = w[j] * one_m;
            let std_eps = s.log_std[j].exp() * s.eps[j];
            let analytic = if i < ad {
                alpha * c - dq_du
            } else {
                alpha * (-1.0 + c * std_eps) - dq_du * std_eps
            };
            let h = 1e-3f32;
            let (mut p, mut m) = (raw, raw);
            p[i] += h;
            m[i] -= h;
            let numeric = (loss(&p) - loss(&m)) / (2.0 * f64::from(h));
            assert!(
                (f64::from(analytic) - numeric).abs() < 2e-3,
                "parameter {i}: analytic {analytic}, numeric {numeric}"
            );
        }
    }

    #[test]
    fn log_prob_is_the_squashed_gaussian_density() {
        // One dimension, mu = 0, log_std = 0: log pi(a) = log N(u; 0, 1) - log(1 - a^2 + eps).
        let mut rng = rng_from_seed(3);
        let s = SquashedSample::draw(&[0.0, 0.0], 1, &mut rng);
        let u = s.eps[0];
        let expected = -0.5 * u * u - HALF_LOG_2PI - (1.0 - u.tanh().powi(2) + TANH_EPS).ln();
        assert!((s.log_probs[0] - expected).abs() < 1e-4);
        assert!((s.actions[0] - u.tanh()).abs() < 1e-4);
    }
}
