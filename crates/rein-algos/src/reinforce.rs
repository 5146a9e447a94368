//! REINFORCE (Williams 1992): the policy-gradient theorem with Monte-Carlo returns,
//! `grad J = E[sum_t grad log pi(a_t|s_t) (G_t - b(s_t))]`, with an optional learned value
//! baseline `b(s) = V(s)` fitted by regression on the returns (a policy network and a value
//! network, each with its own Adam optimiser).
//!
//! Episodes are collected from `num_envs` envs; an update uses `batch_episodes` complete
//! episodes (partial ones carry over to the next batch). `G_t = r_t + gamma G_{t+1}` with
//! `G_T = 0` after termination and `G_T = V(final observation)` after truncation (when a
//! baseline exists; 0 without).

use crate::actor_critic::ActorCritic;
use crate::onpolicy::{
    load_on_policy, Collector, EnvFactory, OnPolicyState, UpdateLog, UpdateTiming,
};
use crate::AlgoError;
use rein_core::returns::normalize;
use rein_core::{rng_from_seed, ReinRng};
use rein_nn::{clip_grad_norm, Activation, Adam};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// REINFORCE hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReinforceConfig {
    /// Environment steps to train for.
    pub total_timesteps: u64,
    /// Parallel environments.
    pub num_envs: usize,
    /// Complete episodes per update.
    pub batch_episodes: usize,
    /// Adam learning rate of the policy.
    pub learning_rate: f64,
    /// Adam learning rate of the value baseline.
    pub value_learning_rate: f64,
    /// Discount.
    pub gamma: f64,
    /// Learn a value baseline and subtract it from the returns.
    pub use_baseline: bool,
    /// Normalise the advantages of a batch.
    pub normalize_advantage: bool,
    /// Entropy coefficient.
    pub ent_coef: f64,
    /// Global gradient-norm bound of each network (negative: none).
    pub max_grad_norm: f64,
    /// Hidden layer sizes.
    pub net_arch: Vec<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Initial log standard deviation (continuous actions).
    pub log_std_init: f64,
    /// Seed.
    pub seed: u64,
    /// Threads stepping the vector env.
    pub env_threads: usize,
}

impl Default for ReinforceConfig {
    fn default() -> Self {
        Self {
            total_timesteps: 500_000,
            num_envs: 8,
            batch_episodes: 16,
            learning_rate: 1e-3,
            value_learning_rate: 1e-3,
            gamma: 0.99,
            use_baseline: true,
            normalize_advantage: true,
            ent_coef: 0.0,
            max_grad_norm: -1.0,
            net_arch: vec![64, 64],
            activation: Activation::Tanh,
            log_std_init: 0.0,
            seed: 0,
            env_threads: 1,
        }
    }
}

const PRESETS: &[(&str, &str)] = &[(
    "CartPole-v1",
    include_str!("../presets/reinforce/CartPole-v1.toml"),
)];

impl ReinforceConfig {
    /// The shipped preset for `env_id` (text of its TOML), if any.
    pub fn preset_toml(env_id: &str) -> Option<&'static str> {
        PRESETS
            .iter()
            .find(|(id, _)| *id == env_id)
            .map(|(_, t)| *t)
    }

    /// Checks the values, naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_envs == 0 || self.batch_episodes == 0 || self.env_threads == 0 {
            return Err("num_envs, batch_episodes and env_threads must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(format!("gamma must be in [0, 1], got {}", self.gamma));
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 {
            return Err(format!(
                "learning_rate must be positive, got {}",
                self.learning_rate
            ));
        }
        if self.net_arch.is_empty() || self.net_arch.contains(&0) {
            return Err(format!(
                "net_arch must list positive hidden sizes, got {:?}",
                self.net_arch
            ));
        }
        Ok(())
    }
}

/// Steps of one env's current episode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Trajectory {
    obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f64>,
}

/// A REINFORCE agent with its environments.
pub struct Reinforce {
    /// Hyperparameters.
    pub config: ReinforceConfig,
    /// Policy network (actor) and value baseline (critic).
    pub policy: ActorCritic,
    opt_policy: Adam,
    opt_log_std: Adam,
    opt_value: Adam,
    /// The environments.
    pub collector: Collector,
    rng: ReinRng,
    open: Vec<Trajectory>,
    batch: Vec<(Trajectory, Vec<f64>)>,
    /// Updates so far.
    pub update: u64,
    started: Instant,
    /// Time spent so far (this process only).
    pub timing: UpdateTiming,
}

impl Reinforce {
    /// Builds the agent.
    pub fn new(config: ReinforceConfig, make_env: EnvFactory) -> Result<Self, AlgoError> {
        config.validate().map_err(AlgoError::Config)?;
        let (collector, obs_dim, kind) = Collector::new(
            config.num_envs,
            config.env_threads,
            config.seed,
            (false, false),
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
            false, // two separate networks, as the policy + value baseline design has it
            &mut rng,
        );
        Ok(Self {
            opt_policy: Adam::new(policy.actor.params.len(), config.learning_rate, 1e-8),
            opt_log_std: Adam::new(policy.log_std.len(), config.learning_rate, 1e-8),
            opt_value: Adam::new(policy.critic.params.len(), config.value_learning_rate, 1e-8),
            policy,
            collector,
            rng: rein_core::collective::rank_rng(rng, config.seed),
            open: vec![Trajectory::default(); config.num_envs],
            batch: Vec::new(),
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

    /// Steps the envs until `batch_episodes` episodes are complete, then updates.
    pub fn update(&mut self) -> Result<UpdateLog, AlgoError> {
        let t0 = Instant::now();
        let (n, d) = (self.config.num_envs, self.policy.obs_dim);
        let ad = self.policy.kind.action_dim();
        while self.batch.len() < self.config.batch_episodes {
            self.collector.collect(&mut self.policy, &mut self.rng, 1)?;
            let b = &self.collector.buf;
            for e in 0..n {
                let tr = &mut self.open[e];
                tr.obs.extend_from_slice(&b.obs[e * d..(e + 1) * d]);
                tr.actions
                    .extend_from_slice(&b.actions[e * ad..(e + 1) * ad]);
                tr.rewards.push(b.rewards[e]);
                if b.terminated[e] || b.truncated[e] {
                    let mut g = if b.truncated[e] && !b.terminated[e] && self.config.use_baseline {
                        b.next_values[e]
                    } else {
                        0.0
                    };
                    let mut returns = vec![0.0; tr.rewards.len()];
                    for t in (0..tr.rewards.len()).rev() {
                        g = tr.rewards[t] + self.config.gamma * g;
                        returns[t] = g;
                    }
                    self.batch.push((std::mem::take(tr), returns));
                }
            }
        }
        let t1 = Instant::now();
        let log = self.optimize()?;
        self.timing.rollout_secs += (t1 - t0).as_secs_f64();
        self.timing.optimize_secs += t1.elapsed().as_secs_f64();
        Ok(log)
    }

    fn optimize(&mut self) -> Result<UpdateLog, AlgoError> {
        let cfg = self.config.clone();
        let batch = std::mem::take(&mut self.batch);
        let obs: Vec<f32> = batch
            .iter()
            .flat_map(|(t, _)| t.obs.iter().copied())
            .collect();
        let actions: Vec<f32> = batch
            .iter()
            .flat_map(|(t, _)| t.actions.iter().copied())
            .collect();
        let returns: Vec<f64> = batch.iter().flat_map(|(_, r)| r.iter().copied()).collect();
        let m = returns.len();
        let (ad, out_dim) = (self.policy.kind.action_dim(), self.policy.kind.actor_out());
        self.policy.zero_grad();
        // Baseline: V(s_t) of the current value network, fitted to G_t.
        let mut adv = returns.clone();
        let mut vl = 0.0;
        if cfg.use_baseline {
            self.policy
                .critic
                .forward(&obs, m, &mut self.policy.critic_cache);
            let v = self.policy.critic_cache.output().to_vec();
            let grad_v: Vec<f32> = (0..m)
                .map(|k| {
                    let err = v[k] as f64 - returns[k];
                    vl += err * err;
                    adv[k] = returns[k] - v[k] as f64;
                    (2.0 * err / m as f64) as f32
                })
                .collect();
            self.policy
                .critic
                .backward(&mut self.policy.critic_cache, &grad_v);
        }
        if cfg.normalize_advantage {
            normalize(&mut adv, 1e-8);
        }
        self.policy
            .actor
            .forward(&obs, m, &mut self.policy.actor_cache);
        let out = self.policy.actor_cache.output().to_vec();
        let mut grad_out = vec![0.0f32; m * out_dim];
        let mut lp = vec![0.0f32; out_dim];
        let (mut pg, mut ent) = (0.0, 0.0);
        let g_entropy = (-cfg.ent_coef / m as f64) as f32;
        for k in 0..m {
            let action = &actions[k * ad..(k + 1) * ad];
            let row = &out[k * out_dim..(k + 1) * out_dim];
            let (logp, entropy) = self.policy.log_prob_entropy(row, action, &mut lp);
            pg += -adv[k] * logp as f64;
            ent += entropy as f64;
            let g = &mut grad_out[k * out_dim..(k + 1) * out_dim];
            self.policy
                .head_backward(row, action, &lp, (-adv[k] / m as f64) as f32, g_entropy, g);
        }
        self.policy
            .actor
            .backward(&mut self.policy.actor_cache, &grad_out);
        self.policy.average_grads_over_ranks();
        if cfg.max_grad_norm > 0.0 {
            clip_grad_norm(
                &mut [&mut self.policy.actor.grads, &mut self.policy.log_std_grad],
                cfg.max_grad_norm,
            );
            clip_grad_norm(&mut [&mut self.policy.critic.grads], cfg.max_grad_norm);
        }
        let gn: f32 = self.policy.actor.grads.iter().map(|g| g * g).sum();
        if !gn.is_finite() {
            return Err(AlgoError::NonFinite(format!(
                "policy gradient is not finite at update {}",
                self.update
            )));
        }
        self.opt_policy
            .step(&mut self.policy.actor.params, &self.policy.actor.grads);
        if !self.policy.log_std.is_empty() {
            self.opt_log_std
                .step(&mut self.policy.log_std, &self.policy.log_std_grad);
        }
        if cfg.use_baseline {
            self.opt_value
                .step(&mut self.policy.critic.params, &self.policy.critic.grads);
        }
        self.update += 1;
        self.timing.grad_steps += 1;
        let (ret_mean, len_mean, episodes) = self.collector.episode_stats();
        Ok(UpdateLog {
            global_step: self.global_step(),
            update: self.update,
            ep_return_mean: ret_mean,
            ep_len_mean: len_mean,
            episodes,
            policy_loss: pg / m as f64,
            value_loss: if cfg.use_baseline {
                vl / m as f64
            } else {
                f64::NAN
            },
            entropy: ent / m as f64,
            explained_variance: f64::NAN,
            learning_rate: cfg.learning_rate,
            sps: self.global_step() as f64 / self.started.elapsed().as_secs_f64().max(1e-9),
        })
    }

    /// Writes a checkpoint for exact resume, including the episodes in progress.
    pub fn save_checkpoint(&self, path: &std::path::Path) -> Result<(), AlgoError> {
        let algo = ReinforceState {
            opt_policy: self.opt_policy.clone(),
            opt_log_std: self.opt_log_std.clone(),
            opt_value: self.opt_value.clone(),
            open: self.open.clone(),
            batch: self.batch.clone(),
        };
        let state =
            OnPolicyState::capture(&self.config, self.update, &self.rng, &self.collector, algo)?;
        crate::checkpoint::save(path, "reinforce", &state, &self.policy.to_tensors())
    }

    /// Rebuilds an agent from [`Reinforce::save_checkpoint`].
    pub fn load_checkpoint(
        path: &std::path::Path,
        make_env: EnvFactory,
    ) -> Result<Self, AlgoError> {
        let (mut agent, s) = load_on_policy::<ReinforceConfig, ReinforceState, Self>(
            path,
            "reinforce",
            |c| Self::new(c, make_env),
            |a| (&mut a.policy, &mut a.collector, &mut a.rng, &mut a.update),
        )?;
        agent.opt_policy = s.opt_policy;
        agent.opt_log_std = s.opt_log_std;
        agent.opt_value = s.opt_value;
        agent.open = s.open;
        agent.batch = s.batch;
        Ok(agent)
    }
}

/// What only REINFORCE keeps in a checkpoint: its three optimisers and the episodes in
/// progress and collected for the next update.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReinforceState {
    opt_policy: Adam,
    opt_log_std: Adam,
    opt_value: Adam,
    open: Vec<Trajectory>,
    batch: Vec<(Trajectory, Vec<f64>)>,
}
