//! TD3 (Fujimoto et al. 2018) and, as its special case, DDPG (Lillicrap et al. 2016), as
//! Stable-Baselines3 implements them (SB3's DDPG is TD3 with one critic, no target smoothing
//! and no policy delay):
//!
//! - deterministic actor `mu(s)` with a tanh output in [-1, 1], rescaled to the Box bounds at
//!   the env; exploration `clip(mu(s) + N(0, sigma), -1, 1)` after `learning_starts` uniform
//!   random steps;
//! - critics `Q_i(s, a)`, targets `r + gamma (1 - terminated) min_i Q_i'(s', a')` with
//!   `a' = clip(mu'(s') + clip(N(0, target_noise), -c, c), -1, 1)`; loss `sum_i mse(Q_i, y)`;
//! - every `policy_delay` critic steps: actor loss `-mean Q_1(s, mu(s))`, then Polyak updates
//!   `theta' <- tau theta + (1 - tau) theta'` of all target networks.

use crate::offpolicy::{
    box_bounds, critic_input, evaluate_policy, unscale_action, OffPolicyEnv, OffPolicyState,
};
use crate::onpolicy::EnvFactory;
use crate::AlgoError;
use rand::Rng;
use rand_distr::{Distribution, Normal, StandardNormal};
use rein_core::replay::ReplayBatch;
use rein_core::{rng_from_seed, ReinRng, Value};
use rein_nn::kernels::fast_tanh;
use rein_nn::{Activation, Adam, Mlp, MlpCache};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Exploration noise process of TD3/DDPG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseKind {
    /// Independent `N(0, sigma)` draws each step (SB3's `NormalActionNoise`).
    Normal,
    /// Ornstein-Uhlenbeck process `x <- x + theta (0 - x) dt + sigma sqrt(dt) N(0, 1)`
    /// (SB3's `OrnsteinUhlenbeckActionNoise`), reset to 0 at every episode start.
    OrnsteinUhlenbeck,
}

/// The state of the exploration noise (the Ornstein-Uhlenbeck process has memory, so it is
/// part of the checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionNoise {
    state: Vec<f32>,
}

impl ActionNoise {
    /// Zero state for `dim` action components.
    pub fn new(dim: usize) -> Self {
        Self {
            state: vec![0.0; dim],
        }
    }

    /// Back to zero (episode start).
    pub fn reset(&mut self) {
        self.state.iter_mut().for_each(|x| *x = 0.0);
    }

    /// The next noise vector of process `kind` with scale `sigma` (and, for
    /// Ornstein-Uhlenbeck, rate `theta` and time step `dt`).
    pub fn sample(
        &mut self,
        kind: NoiseKind,
        sigma: f64,
        theta: f64,
        dt: f64,
        rng: &mut ReinRng,
    ) -> Result<Vec<f32>, AlgoError> {
        let sigma = sigma as f32;
        match kind {
            NoiseKind::Normal => {
                let n = Normal::new(0.0f32, sigma).map_err(|e| AlgoError::Config(e.to_string()))?;
                Ok(self.state.iter().map(|_| n.sample(rng)).collect())
            }
            NoiseKind::OrnsteinUhlenbeck => {
                let (theta, dt) = (theta as f32, dt as f32);
                for x in self.state.iter_mut() {
                    let z: f32 = StandardNormal.sample(rng);
                    *x += theta * (0.0 - *x) * dt + sigma * dt.sqrt() * z;
                }
                Ok(self.state.clone())
            }
        }
    }
}

/// TD3/DDPG hyperparameters (defaults: SB3's TD3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Td3Config {
    /// Environment steps to train for.
    pub total_timesteps: u64,
    /// Adam learning rate (actor and critics).
    pub learning_rate: f64,
    /// Replay capacity.
    pub buffer_size: usize,
    /// Uniformly random steps before learning starts.
    pub learning_starts: u64,
    /// Minibatch size.
    pub batch_size: usize,
    /// Polyak coefficient of the target networks.
    pub tau: f64,
    /// Discount.
    pub gamma: f64,
    /// Env steps between training phases.
    pub train_freq: u64,
    /// Gradient steps per training phase.
    pub gradient_steps: u64,
    /// Standard deviation of the exploration noise (in [-1, 1] action units).
    pub action_noise_std: f64,
    /// Exploration noise process: independent Gaussian draws, or Ornstein-Uhlenbeck
    /// (temporally correlated, as in the DDPG paper).
    pub action_noise: NoiseKind,
    /// Mean-reversion rate theta of the Ornstein-Uhlenbeck noise.
    pub ou_theta: f64,
    /// Time step dt of the Ornstein-Uhlenbeck noise.
    pub ou_dt: f64,
    /// Rewards summed into each critic target (1: one-step TD).
    pub n_steps: usize,
    /// Number of critics (2: TD3's clipped double Q; 1: DDPG).
    pub n_critics: usize,
    /// Critic steps per actor step (2: TD3; 1: DDPG).
    pub policy_delay: u64,
    /// Std of the target policy smoothing noise (0: DDPG).
    pub target_policy_noise: f64,
    /// Clip of the target policy smoothing noise.
    pub target_noise_clip: f64,
    /// Hidden layer sizes of actor and critics.
    pub net_arch: Vec<usize>,
    /// Seed.
    pub seed: u64,
}

impl Default for Td3Config {
    fn default() -> Self {
        Self {
            total_timesteps: 100_000,
            learning_rate: 1e-3,
            buffer_size: 1_000_000,
            learning_starts: 100,
            batch_size: 256,
            tau: 0.005,
            gamma: 0.99,
            train_freq: 1,
            gradient_steps: 1,
            action_noise_std: 0.1,
            action_noise: NoiseKind::Normal,
            ou_theta: 0.15,
            ou_dt: 1e-2,
            n_steps: 1,
            n_critics: 2,
            policy_delay: 2,
            target_policy_noise: 0.2,
            target_noise_clip: 0.5,
            net_arch: vec![400, 300],
            seed: 0,
        }
    }
}

impl Td3Config {
    /// SB3's DDPG: TD3 with one critic, no policy delay and no target smoothing.
    pub fn ddpg() -> Self {
        Self {
            n_critics: 1,
            policy_delay: 1,
            target_policy_noise: 0.0,
            target_noise_clip: 0.0,
            ..Self::default()
        }
    }

    /// The shipped preset for (`algo` = "td3" or "ddpg", `env_id`), if any.
    pub fn preset_toml(algo: &str, env_id: &str) -> Option<&'static str> {
        match (algo, env_id) {
            ("td3", "Pendulum-v1") => Some(include_str!("../presets/td3/Pendulum-v1.toml")),
            ("td3", "Hopper-v5") => Some(include_str!("../presets/td3/Hopper-v5.toml")),
            ("ddpg", "Pendulum-v1") => Some(include_str!("../presets/ddpg/Pendulum-v1.toml")),
            _ => None,
        }
    }

    /// Checks the values, naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0
            || self.buffer_size == 0
            || self.train_freq == 0
            || self.policy_delay == 0
            || self.n_steps == 0
        {
            return Err(
                "batch_size, buffer_size, train_freq, policy_delay and n_steps must be at least 1"
                    .into(),
            );
        }
        if !(1..=2).contains(&self.n_critics) {
            return Err(format!("n_critics must be 1 or 2, got {}", self.n_critics));
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
        Ok(())
    }
}

/// One row of TD3/DDPG metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Td3Log {
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
    /// Steps per second.
    pub sps: f64,
}

impl Td3Log {
    /// Column names of `metrics.csv`.
    pub const COLUMNS: [&'static str; 6] = [
        "global_step",
        "episodes",
        "episodic_return_mean",
        "critic_loss",
        "actor_loss",
        "sps",
    ];

    /// Values in the order of [`Td3Log::COLUMNS`].
    pub fn row(&self) -> [f64; 6] {
        [
            self.global_step as f64,
            self.episodes as f64,
            self.ep_return_mean,
            self.critic_loss,
            self.actor_loss,
            self.sps,
        ]
    }
}

/// A TD3 (or DDPG) agent with its environment.
pub struct Td3 {
    /// Hyperparameters.
    pub config: Td3Config,
    /// Actor mu(s) (linear output; tanh applied by the agent).
    pub actor: Mlp,
    actor_target: Mlp,
    /// Critics Q_i(s, a).
    pub critics: Vec<Mlp>,
    critic_targets: Vec<Mlp>,
    opt_actor: Adam,
    opt_critics: Vec<Adam>,
    env: OffPolicyEnv,
    noise: ActionNoise,
    low: Vec<f32>,
    high: Vec<f32>,
    rng: ReinRng,
    critic_steps: u64,
    caches: [MlpCache; 4],
    batch: ReplayBatch,
    started: Instant,
}

fn tanh_rows(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = fast_tanh(*v);
    }
}

impl Td3 {
    /// Builds the agent on one environment (Box observations and actions).
    pub fn new(config: Td3Config, make_env: EnvFactory) -> Result<Self, AlgoError> {
        config.validate().map_err(AlgoError::Config)?;
        let probe = make_env(0)?;
        let (low, high) = box_bounds(probe.action_space(), "TD3/DDPG")?;
        drop(probe);
        let act_dim = low.len();
        let env = OffPolicyEnv::new(make_env, config.seed, config.buffer_size, act_dim)?;
        let obs_dim = env.venv.obs_dim();
        let mut rng = rng_from_seed(config.seed);
        let sizes = |inp: usize, out: usize| -> Vec<usize> {
            std::iter::once(inp)
                .chain(config.net_arch.iter().copied())
                .chain([out])
                .collect()
        };
        let mut actor = Mlp::new(&sizes(obs_dim, act_dim), Activation::Relu);
        actor.init_pytorch_default(&mut rng);
        let mut actor_target = Mlp::new(&sizes(obs_dim, act_dim), Activation::Relu);
        actor_target.copy_params_from(&actor);
        let mut critics = Vec::new();
        let mut critic_targets = Vec::new();
        for _ in 0..config.n_critics {
            let mut c = Mlp::new(&sizes(obs_dim + act_dim, 1), Activation::Relu);
            c.init_pytorch_default(&mut rng);
            let mut t = Mlp::new(&sizes(obs_dim + act_dim, 1), Activation::Relu);
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
            noise: ActionNoise::new(act_dim),
            env,
            actor,
            actor_target,
            critics,
            critic_targets,
            low,
            high,
            rng: rein_core::collective::rank_rng(rng, config.seed),
            critic_steps: 0,
            caches: Default::default(),
            batch: ReplayBatch::default(),
            started: Instant::now(),
            config,
        })
    }

    /// mu(s) in [-1, 1] for one observation.
    pub fn policy_action(&mut self, obs: &[f32]) -> Vec<f32> {
        self.actor.forward(obs, 1, &mut self.caches[0]);
        let mut a = self.caches[0].output().to_vec();
        tanh_rows(&mut a);
        a
    }

    /// The env action for an action in [-1, 1]: `low + (a + 1) (high - low) / 2`.
    pub fn env_action(&self, a: &[f32]) -> Value {
        unscale_action(a, &self.low, &self.high)
    }

    /// Environment steps so far.
    pub fn global_step(&self) -> u64 {
        self.env.global_step
    }

    /// Steps the env `train_freq` times, then trains; returns the metrics.
    pub fn update(&mut self) -> Result<Td3Log, AlgoError> {
        let cfg = self.config.clone();
        let act_dim = self.low.len();
        for _ in 0..cfg.train_freq {
            let a: Vec<f32> = if self.env.global_step < cfg.learning_starts {
                (0..act_dim)
                    .map(|_| self.rng.random_range(-1.0f32..=1.0))
                    .collect()
            } else {
                let obs = self.env.obs.clone();
                let mut a = self.policy_action(&obs);
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
                a
            };
            if self.env.step(self.env_action(&a), &a)? {
                self.noise.reset();
            }
            if self.env.global_step >= cfg.total_timesteps {
                break;
            }
        }
        let (mut cl, mut al, mut n_c, mut n_a) = (0.0, 0.0, 0u64, 0u64);
        if self.env.global_step > cfg.learning_starts {
            for _ in 0..cfg.gradient_steps {
                let (c, a) = self.gradient_step()?;
                cl += c;
                n_c += 1;
                if let Some(a) = a {
                    al += a;
                    n_a += 1;
                }
            }
        }
        let (ep_return_mean, episodes) = self.env.episode_stats();
        Ok(Td3Log {
            global_step: self.env.global_step,
            episodes,
            ep_return_mean,
            critic_loss: if n_c > 0 { cl / n_c as f64 } else { f64::NAN },
            actor_loss: if n_a > 0 { al / n_a as f64 } else { f64::NAN },
            sps: self.env.global_step as f64 / self.started.elapsed().as_secs_f64().max(1e-9),
        })
    }

    fn gradient_step(&mut self) -> Result<(f64, Option<f64>), AlgoError> {
        let cfg = &self.config;
        let (b, ad) = (cfg.batch_size, self.low.len());
        let od = self.env.obs.len();
        self.env.buffer.sample_n_step_into(
            b,
            cfg.n_steps,
            cfg.gamma as f32,
            &mut self.rng,
            &mut self.batch,
        );
        // Target actions with smoothing noise.
        self.actor_target
            .forward(&self.batch.next_obs, b, &mut self.caches[1]);
        let mut next_a = self.caches[1].output().to_vec();
        tanh_rows(&mut next_a);
        if cfg.target_policy_noise > 0.0 {
            let n = Normal::new(0.0f32, cfg.target_policy_noise as f32)
                .map_err(|e| AlgoError::Config(e.to_string()))?;
            let c = cfg.target_noise_clip as f32;
            for x in next_a.iter_mut() {
                *x = (*x + n.sample(&mut self.rng).clamp(-c, c)).clamp(-1.0, 1.0);
            }
        }
        let next_in = critic_input(&self.batch.next_obs, &next_a, b);
        let mut next_q = vec![f32::INFINITY; b];
        for t in &self.critic_targets {
            t.forward(&next_in, b, &mut self.caches[2]);
            for (q, &v) in next_q.iter_mut().zip(self.caches[2].output()) {
                *q = q.min(v);
            }
        }
        let y: Vec<f32> = (0..b)
            .map(|k| {
                self.batch.rewards[k]
                    + if self.batch.terminated[k] {
                        0.0
                    } else {
                        self.batch.discounts[k] * next_q[k]
                    }
            })
            .collect();
        // Critic step: sum of MSEs.
        let cur_in = critic_input(&self.batch.obs, &self.batch.actions, b);
        let mut critic_loss = 0.0f64;
        for (c, opt) in self.critics.iter_mut().zip(&mut self.opt_critics) {
            c.zero_grad();
            c.forward(&cur_in, b, &mut self.caches[3]);
            let g: Vec<f32> = self.caches[3]
                .output()
                .iter()
                .zip(&y)
                .map(|(&q, &t)| {
                    critic_loss += ((q - t) * (q - t)) as f64 / b as f64;
                    2.0 * (q - t) / b as f32
                })
                .collect();
            c.backward(&mut self.caches[3], &g);
            rein_core::collective::average_f32(&mut c.grads);
            opt.step(&mut c.params, &c.grads);
        }
        self.critic_steps += 1;
        if !self.critic_steps.is_multiple_of(cfg.policy_delay) {
            return Ok((critic_loss, None));
        }
        // Actor step: maximise Q_1(s, mu(s)).
        self.actor.zero_grad();
        self.actor.forward(&self.batch.obs, b, &mut self.caches[0]);
        let mut a = self.caches[0].output().to_vec();
        tanh_rows(&mut a);
        let inp = critic_input(&self.batch.obs, &a, b);
        let c0 = &mut self.critics[0];
        c0.forward(&inp, b, &mut self.caches[3]);
        let actor_loss = -self.caches[3]
            .output()
            .iter()
            .map(|&q| q as f64)
            .sum::<f64>()
            / b as f64;
        let mut d_in = vec![0.0f32; b * (od + ad)];
        // The critic is not updated by the actor loss: input gradient only.
        c0.input_grad(&mut self.caches[3], &vec![-1.0 / b as f32; b], &mut d_in);
        let mut d_pre = vec![0.0f32; b * ad];
        for k in 0..b {
            for j in 0..ad {
                let t = a[k * ad + j];
                d_pre[k * ad + j] = d_in[k * (od + ad) + od + j] * (1.0 - t * t);
            }
        }
        self.actor.backward(&mut self.caches[0], &d_pre);
        rein_core::collective::average_f32(&mut self.actor.grads);
        self.opt_actor
            .step(&mut self.actor.params, &self.actor.grads);
        let tau = cfg.tau as f32;
        for (t, c) in self.critic_targets.iter_mut().zip(&self.critics) {
            t.polyak_from(c, tau);
        }
        self.actor_target.polyak_from(&self.actor, tau);
        Ok((critic_loss, Some(actor_loss)))
    }

    /// Trains until `total_timesteps`, calling `on_log` after every training phase.
    pub fn train(&mut self, on_log: &mut dyn FnMut(&Td3Log)) -> Result<(), AlgoError> {
        while self.env.global_step < self.config.total_timesteps {
            let log = self.update()?;
            on_log(&log);
        }
        Ok(())
    }

    /// The networks' tensors as the checkpoint names them (no replay arrays).
    pub fn network_tensors(&self) -> Vec<rein_nn::io::NamedTensor> {
        let mut tensors = self.actor.to_tensors("actor");
        tensors.extend(self.actor_target.to_tensors("actor_target"));
        for (i, (c, t)) in self.critics.iter().zip(&self.critic_targets).enumerate() {
            tensors.extend(c.to_tensors(&format!("critic{i}")));
            tensors.extend(t.to_tensors(&format!("critic_target{i}")));
        }
        tensors
    }

    /// Writes everything needed to continue exactly (networks, targets, optimisers, replay
    /// buffer, generator, env) to one checkpoint, atomically.
    pub fn save_checkpoint(&self, path: &std::path::Path) -> Result<(), AlgoError> {
        let mut tensors = self.network_tensors();
        tensors.extend(self.env.tensors());
        let state = OffPolicyState {
            config: self.config.clone(),
            rng: self.rng.clone(),
            env: self.env.state()?,
            algo: Td3State {
                critic_steps: self.critic_steps,
                opt_actor: self.opt_actor.clone(),
                opt_critics: self.opt_critics.clone(),
                noise: self.noise.clone(),
            },
        };
        crate::checkpoint::save(path, self.kind(), &state, &tensors)
    }

    /// `ddpg` for DDPG's settings (one critic, no smoothing, no delay), else `td3`.
    pub fn kind(&self) -> &'static str {
        if self.config.n_critics == 1
            && self.config.policy_delay == 1
            && self.config.target_policy_noise == 0.0
        {
            "ddpg"
        } else {
            "td3"
        }
    }

    /// Rebuilds an agent from [`Td3::save_checkpoint`].
    pub fn load_checkpoint(
        path: &std::path::Path,
        make_env: EnvFactory,
    ) -> Result<Self, AlgoError> {
        let saved =
            crate::checkpoint::load::<OffPolicyState<Td3Config, Td3State>>(path, &["td3", "ddpg"])?;
        let mut agent = Self::new(saved.state.config.clone(), make_env)?;
        saved.load_mlp(&mut agent.actor, "actor")?;
        saved.load_mlp(&mut agent.actor_target, "actor_target")?;
        for i in 0..agent.critics.len() {
            saved.load_mlp(&mut agent.critics[i], &format!("critic{i}"))?;
            saved.load_mlp(&mut agent.critic_targets[i], &format!("critic_target{i}"))?;
        }
        let s = saved.state.clone();
        agent.env.restore(s.env, &saved)?;
        agent.rng = s.rng;
        agent.critic_steps = s.algo.critic_steps;
        agent.opt_actor = s.algo.opt_actor;
        agent.opt_critics = s.algo.opt_critics;
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
            let a = self.policy_action(x);
            self.env_action(&a)
        })
    }
}

/// What only TD3 (and DDPG) keeps in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Td3State {
    critic_steps: u64,
    opt_actor: Adam,
    opt_critics: Vec<Adam>,
    noise: ActionNoise,
}
