//! Advantage Actor-Critic, the synchronous variant of A3C (Mnih et al. 2016), as
//! Stable-Baselines3's `A2C`:
//!
//! 1. Collect `n_steps` (5) transitions from each env.
//! 2. Advantages by GAE(lambda); lambda = 1 gives the classic n-step returns
//!    `R_t = r_t + gamma r_{t+1} + ... + gamma^n V(s_{t+n})`.
//! 3. One gradient step on the whole rollout:
//!    `loss = -mean(A log pi(a|s)) + vf_coef mean((R - V)^2) - ent_coef mean(H)`,
//!    global gradient-norm clipping, RMSprop (alpha 0.99, eps 1e-5) or Adam.

use crate::actor_critic::ActorCritic;
use crate::onpolicy::{
    load_on_policy, Collector, EnvFactory, OnPolicyState, UpdateLog, UpdateTiming,
};
use crate::AlgoError;
use rein_core::returns::{explained_variance, normalize};
use rein_core::schedule::Schedule;
use rein_core::{rng_from_seed, ReinRng};
use rein_nn::{Activation, Adam, RmsProp};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// A2C hyperparameters (defaults: SB3's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct A2cConfig {
    /// Environment steps to train for.
    pub total_timesteps: u64,
    /// Parallel environments.
    pub num_envs: usize,
    /// Steps per env per update.
    pub n_steps: usize,
    /// Learning rate: a number, or a schedule such as `"lin_0.0007"` (linearly to 0).
    pub learning_rate: Schedule,
    /// Discount.
    pub gamma: f64,
    /// GAE lambda (1: n-step returns).
    pub gae_lambda: f64,
    /// Entropy coefficient.
    pub ent_coef: f64,
    /// Value-loss coefficient.
    pub vf_coef: f64,
    /// Global gradient-norm bound.
    pub max_grad_norm: f64,
    /// RMSprop (true, SB3's default) or Adam.
    pub use_rms_prop: bool,
    /// RMSprop epsilon (also Adam's).
    pub rms_prop_eps: f64,
    /// Normalise advantages over the rollout.
    pub normalize_advantage: bool,
    /// Hidden layer sizes of actor and critic.
    pub net_arch: Vec<usize>,
    /// One trunk of `net_arch` shared by the actor and critic heads.
    pub shared_trunk: bool,
    /// Hidden activation.
    pub activation: Activation,
    /// Initial log standard deviation (continuous actions).
    pub log_std_init: f64,
    /// Normalise observations (SB3 VecNormalize).
    pub normalize_obs: bool,
    /// Normalise rewards (SB3 VecNormalize).
    pub normalize_reward: bool,
    /// Seed.
    pub seed: u64,
    /// Threads stepping the vector env.
    pub env_threads: usize,
}

impl Default for A2cConfig {
    fn default() -> Self {
        Self {
            total_timesteps: 1_000_000,
            num_envs: 1,
            n_steps: 5,
            learning_rate: Schedule::Constant { value: 7e-4 },
            gamma: 0.99,
            gae_lambda: 1.0,
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            use_rms_prop: true,
            rms_prop_eps: 1e-5,
            normalize_advantage: false,
            net_arch: vec![64, 64],
            shared_trunk: false,
            activation: Activation::Tanh,
            log_std_init: 0.0,
            normalize_obs: false,
            normalize_reward: false,
            seed: 0,
            env_threads: 1,
        }
    }
}

const PRESETS: &[(&str, &str)] = &[(
    "CartPole-v1",
    include_str!("../presets/a2c/CartPole-v1.toml"),
)];

impl A2cConfig {
    /// The shipped preset for `env_id` (text of its TOML), if any.
    pub fn preset_toml(env_id: &str) -> Option<&'static str> {
        PRESETS
            .iter()
            .find(|(id, _)| *id == env_id)
            .map(|(_, t)| *t)
    }

    /// Checks the values, naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_envs == 0 || self.n_steps == 0 || self.env_threads == 0 {
            return Err("num_envs, n_steps and env_threads must be at least 1".into());
        }
        for (name, v) in [("gamma", self.gamma), ("gae_lambda", self.gae_lambda)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        self.learning_rate.check_positive("learning_rate")?;
        if self.net_arch.is_empty() || self.net_arch.contains(&0) {
            return Err(format!(
                "net_arch must list positive hidden sizes, got {:?}",
                self.net_arch
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Optim {
    Rms(RmsProp),
    Adam(Adam),
}

impl Optim {
    fn new(n: usize, cfg: &A2cConfig) -> Self {
        if cfg.use_rms_prop {
            Optim::Rms(RmsProp::new(
                n,
                cfg.learning_rate.initial(),
                0.99,
                cfg.rms_prop_eps,
            ))
        } else {
            Optim::Adam(Adam::new(n, cfg.learning_rate.initial(), cfg.rms_prop_eps))
        }
    }

    fn step(&mut self, lr: f64, params: &mut [f32], grads: &[f32]) {
        match self {
            Optim::Rms(o) => {
                o.lr = lr;
                o.step(params, grads)
            }
            Optim::Adam(o) => {
                o.lr = lr;
                o.step(params, grads)
            }
        }
    }
}

/// An A2C agent with its environments.
pub struct A2c {
    /// Hyperparameters.
    pub config: A2cConfig,
    /// The policy and value networks.
    pub policy: ActorCritic,
    optimizers: Vec<Optim>,
    /// The environments, normalisation and the last rollout.
    pub collector: Collector,
    rng: ReinRng,
    /// Updates so far.
    pub update: u64,
    started: Instant,
    /// Time spent so far (this process only).
    pub timing: UpdateTiming,
}

impl A2c {
    /// Builds the agent.
    pub fn new(config: A2cConfig, make_env: EnvFactory) -> Result<Self, AlgoError> {
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
        let optimizers = policy
            .param_group_sizes()
            .into_iter()
            .map(|n| Optim::new(n, &config))
            .collect();
        Ok(Self {
            policy,
            optimizers,
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

    /// Collects one rollout and takes one gradient step.
    pub fn update(&mut self) -> Result<UpdateLog, AlgoError> {
        let t0 = Instant::now();
        self.collector
            .collect(&mut self.policy, &mut self.rng, self.config.n_steps)?;
        let t1 = Instant::now();
        let cfg = self.config.clone();
        let (mut adv, returns) = self.collector.gae(cfg.gamma, cfg.gae_lambda);
        if cfg.normalize_advantage {
            normalize(&mut adv, 1e-8);
        }
        let b = &self.collector.buf;
        let explained = explained_variance(&b.values, &returns);
        let m = adv.len();
        let (d, ad, out_dim) = (
            self.policy.obs_dim,
            self.policy.kind.action_dim(),
            self.policy.kind.actor_out(),
        );
        let obs = b.obs.clone();
        let actions = b.actions.clone();
        self.policy.zero_grad();
        self.policy.forward(&obs, m);
        let out = self.policy.actor_cache.output().to_vec();
        let mut grad_out = vec![0.0f32; m * out_dim];
        let mut lp = vec![0.0f32; out_dim];
        let (mut pg, mut ent) = (0.0f64, 0.0f64);
        let g_entropy = (-cfg.ent_coef / m as f64) as f32;
        for k in 0..m {
            let action = &actions[k * ad..(k + 1) * ad];
            let row = &out[k * out_dim..(k + 1) * out_dim];
            let (logp, entropy) = self.policy.log_prob_entropy(row, action, &mut lp);
            pg += -adv[k] * logp as f64;
            ent += entropy as f64;
            let g_logp = (-adv[k] / m as f64) as f32;
            self.policy.head_backward(
                row,
                action,
                &lp,
                g_logp,
                g_entropy,
                &mut grad_out[k * out_dim..(k + 1) * out_dim],
            );
        }
        let v = self.policy.critic_cache.output().to_vec();
        let mut vl = 0.0f64;
        let grad_v: Vec<f32> = (0..m)
            .map(|k| {
                let err = v[k] as f64 - returns[k];
                vl += err * err;
                (cfg.vf_coef * 2.0 * err / m as f64) as f32
            })
            .collect();
        self.policy.backward(&grad_out, &grad_v);
        self.policy.average_grads_over_ranks();
        let norm = self.policy.clip_grad_norm(cfg.max_grad_norm);
        if !norm.is_finite() {
            return Err(AlgoError::NonFinite(format!(
                "gradient norm is {norm} at update {}",
                self.update
            )));
        }
        let lr = cfg
            .learning_rate
            .value(self.global_step(), cfg.total_timesteps, 0);
        for ((p, g), opt) in self
            .policy
            .param_groups()
            .into_iter()
            .zip(&mut self.optimizers)
        {
            opt.step(lr, p, g);
        }
        self.update += 1;
        self.timing.grad_steps += 1;
        self.timing.rollout_secs += (t1 - t0).as_secs_f64();
        self.timing.optimize_secs += t1.elapsed().as_secs_f64();
        let (ret_mean, len_mean, episodes) = self.collector.episode_stats();
        let _ = d;
        Ok(UpdateLog {
            global_step: self.global_step(),
            update: self.update,
            ep_return_mean: ret_mean,
            ep_len_mean: len_mean,
            episodes,
            policy_loss: pg / m as f64,
            value_loss: vl / m as f64,
            entropy: ent / m as f64,
            explained_variance: explained,
            learning_rate: lr,
            sps: self.global_step() as f64 / self.started.elapsed().as_secs_f64().max(1e-9),
        })
    }

    /// Writes a checkpoint for exact resume (as [`crate::ppo::Ppo::save_checkpoint`]).
    pub fn save_checkpoint(&self, path: &std::path::Path) -> Result<(), AlgoError> {
        let state = OnPolicyState::capture(
            &self.config,
            self.update,
            &self.rng,
            &self.collector,
            self.optimizers.clone(),
        )?;
        crate::checkpoint::save(path, "a2c", &state, &self.policy.to_tensors())
    }

    /// Rebuilds an agent from [`A2c::save_checkpoint`].
    pub fn load_checkpoint(
        path: &std::path::Path,
        make_env: EnvFactory,
    ) -> Result<Self, AlgoError> {
        let (mut agent, algo) = load_on_policy::<A2cConfig, Vec<Optim>, Self>(
            path,
            "a2c",
            |c| Self::new(c, make_env),
            |a| (&mut a.policy, &mut a.collector, &mut a.rng, &mut a.update),
        )?;
        agent.optimizers = algo;
        Ok(agent)
    }
}
