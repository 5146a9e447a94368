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

use crate::onpolicy::{Checkpoint, EnvFactory, PgError};
use rand::Rng;
use rand_distr::{Distribution, Normal};
use rein_core::replay::{ReplayBatch, ReplayBuffer};
use rein_core::{rng_from_seed, AutoresetMode, ReinRng, Space, Value, VectorEnv};
use rein_nn::kernels::fast_tanh;
use rein_nn::{Activation, Adam, Mlp, MlpCache};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Instant;

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
    /// Standard deviation of the Gaussian exploration noise (in [-1, 1] action units).
    pub action_noise_std: f64,
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
        {
            return Err(
                "batch_size, buffer_size, train_freq and policy_delay must be at least 1".into(),
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
    buffer: ReplayBuffer,
    venv: VectorEnv,
    obs: Vec<f32>,
    low: Vec<f32>,
    high: Vec<f32>,
    rng: ReinRng,
    /// Environment steps so far.
    pub global_step: u64,
    critic_steps: u64,
    ep_return: f64,
    recent: VecDeque<f64>,
    episodes: u64,
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
    pub fn new(config: Td3Config, make_env: EnvFactory) -> Result<Self, PgError> {
        config.validate().map_err(PgError::Config)?;
        let mut venv = VectorEnv::from_fn(1, AutoresetMode::SameStep, 1, move |i| make_env(i))?;
        let (low, high) = match venv.single_action_space() {
            Space::Box { low, high, .. } if low.iter().chain(high).all(|x| x.is_finite()) => (
                low.iter().map(|&x| x as f32).collect::<Vec<_>>(),
                high.iter().map(|&x| x as f32).collect::<Vec<_>>(),
            ),
            other => {
                return Err(PgError::Config(format!(
                    "TD3/DDPG need a bounded Box action space, got {other}"
                )))
            }
        };
        let (obs_dim, act_dim) = (venv.obs_dim(), low.len());
        let obs = venv.reset(Some(config.seed))?.to_vec();
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
            buffer: ReplayBuffer::new(config.buffer_size, obs_dim, act_dim),
            actor,
            actor_target,
            critics,
            critic_targets,
            venv,
            obs,
            low,
            high,
            rng,
            global_step: 0,
            critic_steps: 0,
            ep_return: 0.0,
            recent: VecDeque::new(),
            episodes: 0,
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
        Value::Box(
            a.iter()
                .zip(self.low.iter().zip(&self.high))
                .map(|(&x, (&l, &h))| l + (x + 1.0) * 0.5 * (h - l))
                .collect(),
        )
    }

    /// Steps the env `train_freq` times, then trains; returns the metrics.
    pub fn train_phase(&mut self) -> Result<Td3Log, PgError> {
        let cfg = self.config.clone();
        let act_dim = self.low.len();
        let noise = Normal::new(0.0f32, cfg.action_noise_std as f32)
            .map_err(|e| PgError::Config(e.to_string()))?;
        for _ in 0..cfg.train_freq {
            let a: Vec<f32> = if self.global_step < cfg.learning_starts {
                (0..act_dim)
                    .map(|_| self.rng.random_range(-1.0f32..=1.0))
                    .collect()
            } else {
                let obs = self.obs.clone();
                let mut a = self.policy_action(&obs);
                for x in a.iter_mut() {
                    *x = (*x + noise.sample(&mut self.rng)).clamp(-1.0, 1.0);
                }
                a
            };
            let step = self.venv.step(&[self.env_action(&a)])?;
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
                &a,
                reward as f32,
                &real_next,
                terminated,
                truncated,
            );
            self.ep_return += reward;
            if terminated || truncated {
                if self.recent.len() == 100 {
                    self.recent.pop_front();
                }
                self.recent.push_back(self.ep_return);
                self.ep_return = 0.0;
                self.episodes += 1;
            }
            self.obs = next;
            self.global_step += 1;
            if self.global_step >= cfg.total_timesteps {
                break;
            }
        }
        let (mut cl, mut al, mut n_c, mut n_a) = (0.0, 0.0, 0u64, 0u64);
        if self.global_step > cfg.learning_starts {
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
        let nrec = self.recent.len().max(1) as f64;
        Ok(Td3Log {
            global_step: self.global_step,
            episodes: self.episodes,
            ep_return_mean: if self.recent.is_empty() {
                f64::NAN
            } else {
                self.recent.iter().sum::<f64>() / nrec
            },
            critic_loss: if n_c > 0 { cl / n_c as f64 } else { f64::NAN },
            actor_loss: if n_a > 0 { al / n_a as f64 } else { f64::NAN },
            sps: self.global_step as f64 / self.started.elapsed().as_secs_f64().max(1e-9),
        })
    }

    fn gradient_step(&mut self) -> Result<(f64, Option<f64>), PgError> {
        let cfg = &self.config;
        let (b, ad) = (cfg.batch_size, self.low.len());
        let od = self.obs.len();
        self.buffer.sample_into(b, &mut self.rng, &mut self.batch);
        // Target actions with smoothing noise.
        self.actor_target
            .forward(&self.batch.next_obs, b, &mut self.caches[1]);
        let mut next_a = self.caches[1].output().to_vec();
        tanh_rows(&mut next_a);
        if cfg.target_policy_noise > 0.0 {
            let n = Normal::new(0.0f32, cfg.target_policy_noise as f32)
                .map_err(|e| PgError::Config(e.to_string()))?;
            let c = cfg.target_noise_clip as f32;
            for x in next_a.iter_mut() {
                *x = (*x + n.sample(&mut self.rng).clamp(-c, c)).clamp(-1.0, 1.0);
            }
        }
        let cat = |o: &[f32], a: &[f32]| -> Vec<f32> {
            let mut out = Vec::with_capacity(b * (od + ad));
            for k in 0..b {
                out.extend_from_slice(&o[k * od..(k + 1) * od]);
                out.extend_from_slice(&a[k * ad..(k + 1) * ad]);
            }
            out
        };
        let next_in = cat(&self.batch.next_obs, &next_a);
        let mut next_q = vec![f32::INFINITY; b];
        for t in &self.critic_targets {
            t.forward(&next_in, b, &mut self.caches[2]);
            for (q, &v) in next_q.iter_mut().zip(self.caches[2].output()) {
                *q = q.min(v);
            }
        }
        let gamma = cfg.gamma as f32;
        let y: Vec<f32> = (0..b)
            .map(|k| {
                self.batch.rewards[k]
                    + if self.batch.terminated[k] {
                        0.0
                    } else {
                        gamma * next_q[k]
                    }
            })
            .collect();
        // Critic step: sum of MSEs.
        let cur_in = cat(&self.batch.obs, &self.batch.actions);
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
        let inp = cat(&self.batch.obs, &a);
        let c0 = &mut self.critics[0];
        c0.forward(&inp, b, &mut self.caches[3]);
        let actor_loss = -self.caches[3]
            .output()
            .iter()
            .map(|&q| q as f64)
            .sum::<f64>()
            / b as f64;
        let mut d_in = vec![0.0f32; b * (od + ad)];
        let saved = c0.grads.clone();
        c0.backward_with_input_grad(&mut self.caches[3], &vec![-1.0 / b as f32; b], &mut d_in);
        c0.grads = saved; // the critic is not updated by the actor loss
        let mut d_pre = vec![0.0f32; b * ad];
        for k in 0..b {
            for j in 0..ad {
                let t = a[k * ad + j];
                d_pre[k * ad + j] = d_in[k * (od + ad) + od + j] * (1.0 - t * t);
            }
        }
        self.actor.backward(&mut self.caches[0], &d_pre);
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
    pub fn train(&mut self, on_log: &mut dyn FnMut(&Td3Log)) -> Result<(), PgError> {
        while self.global_step < self.config.total_timesteps {
            let log = self.train_phase()?;
            on_log(&log);
        }
        Ok(())
    }

    /// Writes everything needed to continue exactly (networks, targets, optimisers, replay
    /// buffer, generator, env) to one safetensors file, atomically.
    pub fn save_checkpoint(&self, path: &std::path::Path) -> Result<(), PgError> {
        let mut tensors = self.actor.to_tensors("actor");
        tensors.extend(self.actor_target.to_tensors("actor_target"));
        for (i, (c, t)) in self.critics.iter().zip(&self.critic_targets).enumerate() {
            tensors.extend(c.to_tensors(&format!("critic{i}")));
            tensors.extend(t.to_tensors(&format!("critic_target{i}")));
        }
        tensors.extend(crate::offpolicy::replay_tensors(&self.buffer));
        let state = serde_json::json!({
            "config": self.config,
            "global_step": self.global_step,
            "critic_steps": self.critic_steps,
            "opt_actor": self.opt_actor,
            "opt_critics": self.opt_critics,
            "rng": rein_core::rng::rng_to_string(&self.rng),
            "venv": self.venv.snapshot()?,
            "obs": self.obs,
            "ep_return": self.ep_return,
            "recent": self.recent,
            "episodes": self.episodes,
            "replay_pos": self.buffer.position(),
            "replay_len": self.buffer.len(),
        });
        Checkpoint::write_tensors(path, &tensors, state)
    }

    /// Rebuilds an agent from [`Td3::save_checkpoint`].
    pub fn load_checkpoint(path: &std::path::Path, make_env: EnvFactory) -> Result<Self, PgError> {
        let ckpt = Checkpoint::read(path)?;
        let mut agent = Self::new(ckpt.get("config")?, make_env)?;
        ckpt.load_mlp(&mut agent.actor, "actor")?;
        ckpt.load_mlp(&mut agent.actor_target, "actor_target")?;
        for i in 0..agent.critics.len() {
            ckpt.load_mlp(&mut agent.critics[i], &format!("critic{i}"))?;
            ckpt.load_mlp(&mut agent.critic_targets[i], &format!("critic_target{i}"))?;
        }
        ckpt.load_replay(&mut agent.buffer)?;
        agent.global_step = ckpt.get("global_step")?;
        agent.critic_steps = ckpt.get("critic_steps")?;
        agent.opt_actor = ckpt.get("opt_actor")?;
        agent.opt_critics = ckpt.get("opt_critics")?;
        agent.rng = ckpt.rng("rng")?;
        agent
            .venv
            .restore(&ckpt.get::<serde_json::Value>("venv")?)?;
        agent.obs = ckpt.get("obs")?;
        agent.ep_return = ckpt.get("ep_return")?;
        agent.recent = ckpt.get("recent")?;
        agent.episodes = ckpt.get("episodes")?;
        Ok(agent)
    }

    /// Mean and standard deviation of the deterministic policy's return over fresh episodes.
    pub fn evaluate(
        &mut self,
        make_env: &EnvFactory,
        episodes: u64,
        seed: u64,
    ) -> Result<(f64, f64), PgError> {
        let mut env = make_env(0)?;
        let space = env.observation_space().clone();
        let mut returns = Vec::new();
        for k in 0..episodes {
            let (mut obs, _) = env.reset(Some(seed.wrapping_add(k)));
            let mut ret = 0.0;
            loop {
                let x = space.flatten(&obs)?;
                let a = self.policy_action(&x);
                let step = env.step(&self.env_action(&a))?;
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
}

impl crate::offpolicy::OffPolicyAgent for Td3 {
    fn train_phase_row(&mut self) -> Result<Vec<f64>, PgError> {
        Ok(self.train_phase()?.row().to_vec())
    }
    fn columns(&self) -> &'static [&'static str] {
        &Td3Log::COLUMNS
    }
    fn global_step(&self) -> u64 {
        self.global_step
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
        Td3::save_checkpoint(self, path)
    }
    fn evaluate(
        &mut self,
        make_env: &EnvFactory,
        episodes: u64,
        seed: u64,
    ) -> Result<(f64, f64), PgError> {
        Td3::evaluate(self, make_env, episodes, seed)
    }
}
