//! What the on-policy agents (PPO, A2C) share: the vector env with its optional
//! normalisation, rollout collection into a time-major buffer with truncation bootstrapping,
//! episode statistics, and checkpointing of all of it.

use crate::actor_critic::{ActionKind, ActorCritic};
use crate::AlgoError;
use rein_core::collective;
use rein_core::returns::compute_gae;
use rein_core::wrappers::VecNormalize;
use rein_core::{AutoresetMode, ReinRng, Space, Value, VectorEnv};
use std::collections::VecDeque;
use std::sync::Arc;

/// Makes sub-env `i` of the vector env (rein-core's type, named here for the agents).
pub use rein_core::EnvFactory;

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
    /// Environment steps so far (of every rank under MPI: all ranks step `num_envs` envs at a
    /// time, so `total_timesteps` and schedules count the whole run's steps).
    pub global_step: u64,
    /// MPI ranks (1 without MPI).
    ranks: usize,
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
    ) -> Result<(Self, usize, ActionKind), AlgoError> {
        let factory = Arc::clone(&make_env);
        let mut venv =
            VectorEnv::from_fn(num_envs, AutoresetMode::SameStep, env_threads, move |i| {
                factory(i)
            })?;
        let obs_space = venv.single_observation_space().clone();
        if !matches!(obs_space, Space::Box { .. }) {
            return Err(AlgoError::Config(format!(
                "policy-gradient agents need Box observations, got {obs_space}"
            )));
        }
        let kind = ActionKind::from_space(venv.single_action_space())?;
        let obs_dim = venv.obs_dim();
        // Under MPI rank r's envs are seeded as envs r*num_envs.. of one process.
        let mut obs = venv
            .reset(Some(collective::env_seed(seed, num_envs)))?
            .to_vec();
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
                ranks: collective::world().size(),
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

    /// Mean return and length of the last 100 finished episodes (NaN before any), and the
    /// episodes finished so far. Under MPI: over every rank's last 100 and all ranks'
    /// episodes (one allreduce; collective).
    pub fn episode_stats(&self) -> (f64, f64, u64) {
        let local = [
            self.recent.iter().map(|r| r.0).sum::<f64>(),
            self.recent.iter().map(|r| r.1 as f64).sum::<f64>(),
            self.recent.len() as f64,
            self.episodes as f64,
        ];
        let [ret, len, n, episodes] = collective::sum_f64(&local)[..] else {
            unreachable!("four sums")
        };
        if n == 0.0 {
            return (f64::NAN, f64::NAN, episodes as u64);
        }
        (ret / n, len / n, episodes as u64)
    }

    /// Collects `n_steps` steps of every env with actions sampled from `policy`. A truncated
    /// episode's last step gets the value of its final observation as `next_values`.
    pub fn collect(
        &mut self,
        policy: &mut ActorCritic,
        rng: &mut ReinRng,
        n_steps: usize,
    ) -> Result<(), AlgoError> {
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
            self.global_step += (n * self.ranks) as u64;
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
    pub fn state(&self) -> Result<CollectorState, AlgoError> {
        Ok(CollectorState {
            norm: self.norm.clone(),
            obs: self.obs.clone(),
            ep_returns: self.ep_returns.clone(),
            ep_lengths: self.ep_lengths.clone(),
            recent: self.recent.clone(),
            episodes: self.episodes,
            global_step: self.global_step,
            venv: self.venv.snapshot()?,
        })
    }

    /// Restores [`Collector::state`].
    pub fn restore(&mut self, s: CollectorState) -> Result<(), AlgoError> {
        self.venv.restore(&s.venv)?;
        self.norm = s.norm;
        self.obs = s.obs;
        self.ep_returns = s.ep_returns;
        self.ep_lengths = s.ep_lengths;
        self.recent = s.recent;
        self.episodes = s.episodes;
        self.global_step = s.global_step;
        Ok(())
    }
}

impl<C: Clone, A> OnPolicyState<C, A> {
    /// The state of an agent with these parts (cloned), ready to write.
    pub fn capture(
        config: &C,
        update: u64,
        rng: &ReinRng,
        collector: &Collector,
        algo: A,
    ) -> Result<Self, AlgoError> {
        Ok(Self {
            config: config.clone(),
            update,
            rng: rng.clone(),
            collector: collector.state()?,
            algo,
        })
    }
}

/// The parts of an on-policy agent a checkpoint restores besides its own state: policy,
/// collector, generator and update counter.
pub(crate) type Parts<'a> = (
    &'a mut ActorCritic,
    &'a mut Collector,
    &'a mut ReinRng,
    &'a mut u64,
);

/// Reads the checkpoint of an on-policy agent of `kind`: builds the agent from the saved
/// config with `build`, restores the [`Parts`] `parts` points at, and returns the agent with
/// the algorithm's own state.
pub(crate) fn load_on_policy<C, A, T>(
    path: &std::path::Path,
    kind: &str,
    build: impl FnOnce(C) -> Result<T, AlgoError>,
    parts: impl FnOnce(&mut T) -> Parts<'_>,
) -> Result<(T, A), AlgoError>
where
    C: serde::de::DeserializeOwned + Clone,
    A: serde::de::DeserializeOwned,
{
    let saved = crate::checkpoint::load::<OnPolicyState<C, A>>(path, &[kind])?;
    let mut agent = build(saved.state.config.clone())?;
    let (policy, collector, rng, update) = parts(&mut agent);
    saved.load_policy(policy)?;
    let s = saved.state;
    *update = s.update;
    *rng = s.rng;
    collector.restore(s.collector)?;
    Ok((agent, s.algo))
}

/// What a checkpoint keeps of a [`Collector`]: normaliser statistics, current observations,
/// episodes in progress and every env's state and generator.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CollectorState {
    norm: Option<VecNormalize>,
    obs: Vec<f32>,
    ep_returns: Vec<f64>,
    ep_lengths: Vec<u64>,
    recent: VecDeque<(f64, u64)>,
    episodes: u64,
    global_step: u64,
    venv: serde_json::Value,
}

/// The checkpoint state of an on-policy agent: its settings, counters, generator and
/// collector, and `algo`, what only that algorithm keeps (optimiser moments, episodes in
/// progress).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OnPolicyState<C, A> {
    /// The agent's settings.
    pub config: C,
    /// Updates so far.
    pub update: u64,
    /// The agent's generator.
    #[serde(with = "rein_core::rng::as_string")]
    pub rng: ReinRng,
    /// Environments and episode statistics.
    pub collector: CollectorState,
    /// The algorithm's own state.
    pub algo: A,
}

/// Where training time went in an on-policy agent (for `rein bench ppo`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UpdateTiming {
    /// Seconds collecting rollouts (policy inference and env steps).
    pub rollout_secs: f64,
    /// Seconds in the optimisation phases.
    pub optimize_secs: f64,
    /// Gradient steps taken.
    pub grad_steps: u64,
}

/// One metrics row of an A2C or REINFORCE update (PPO's [`crate::ppo::PpoLog`] adds its
/// clipping and KL columns).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UpdateLog {
    /// Environment steps so far.
    pub global_step: u64,
    /// Updates so far.
    pub update: u64,
    /// Mean return of the last 100 finished episodes, NaN before any.
    pub ep_return_mean: f64,
    /// Mean length of the last 100 finished episodes.
    pub ep_len_mean: f64,
    /// Episodes finished so far.
    pub episodes: u64,
    /// Policy-gradient loss.
    pub policy_loss: f64,
    /// Value loss.
    pub value_loss: f64,
    /// Mean entropy.
    pub entropy: f64,
    /// Explained variance of the value predictions.
    pub explained_variance: f64,
    /// Learning rate of the update.
    pub learning_rate: f64,
    /// Environment steps per second since the start.
    pub sps: f64,
}

impl UpdateLog {
    /// Column names of `metrics.csv`.
    pub const COLUMNS: [&'static str; 11] = [
        "global_step",
        "update",
        "episodic_return_mean",
        "episodic_length_mean",
        "episodes",
        "policy_loss",
        "value_loss",
        "entropy",
        "explained_variance",
        "learning_rate",
        "sps",
    ];

    /// Values in the order of [`UpdateLog::COLUMNS`].
    pub fn row(&self) -> [f64; 11] {
        [
            self.global_step as f64,
            self.update as f64,
            self.ep_return_mean,
            self.ep_len_mean,
            self.episodes as f64,
            self.policy_loss,
            self.value_loss,
            self.entropy,
            self.explained_variance,
            self.learning_rate,
            self.sps,
        ]
    }
}
