//! The deep agents as one family: [`Algo`] names them (one enum, where the command line and
//! the Python package dispatch), [`Agent`] holds any of them with the env factory it trains
//! on and is the `rein_train::Trainer` the run loop drives: one iteration (`update`) is a
//! rollout and its optimisation for the on-policy agents, a training phase of `train_freq`
//! env steps and its gradient steps for the off-policy ones.

use crate::a2c::{A2c, A2cConfig};
use crate::actor_critic::ActorCritic;
use crate::dqn::{Dqn, DqnConfig, DqnLog};
use crate::onpolicy::{EnvFactory, UpdateLog};
use crate::ppo::{Ppo, PpoConfig, PpoLog};
use crate::reinforce::{Reinforce, ReinforceConfig};
use crate::sac::{Sac, SacConfig, SacLog};
use crate::td3::{Td3, Td3Config, Td3Log};
use crate::AlgoError;
use rein_train::{Curve, Evaluation, Progress, Trainer, TrainerError};
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;

/// A deep RL algorithm of `rein train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    /// Proximal Policy Optimization.
    Ppo,
    /// Advantage Actor-Critic.
    A2c,
    /// REINFORCE (with a learned baseline by default).
    Reinforce,
    /// Deep Q-Network.
    Dqn,
    /// Twin Delayed DDPG.
    Td3,
    /// Deep Deterministic Policy Gradient (TD3 with one critic, no smoothing, no delay).
    Ddpg,
    /// Soft Actor-Critic.
    Sac,
}

impl Algo {
    /// Every deep algorithm.
    pub const ALL: [Algo; 7] = [
        Algo::Ppo,
        Algo::A2c,
        Algo::Reinforce,
        Algo::Dqn,
        Algo::Td3,
        Algo::Ddpg,
        Algo::Sac,
    ];

    /// The name in run directories, checkpoints and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Ppo => "ppo",
            Algo::A2c => "a2c",
            Algo::Reinforce => "reinforce",
            Algo::Dqn => "dqn",
            Algo::Td3 => "td3",
            Algo::Ddpg => "ddpg",
            Algo::Sac => "sac",
        }
    }

    /// The algorithm called `name`, if it is a deep one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// True for the agents that learn from a replay buffer (DQN, TD3, DDPG, SAC).
    pub fn is_off_policy(self) -> bool {
        matches!(self, Algo::Dqn | Algo::Td3 | Algo::Ddpg | Algo::Sac)
    }

    /// The default settings, then the shipped rl-baselines3-zoo preset for `env_id` when
    /// there is one, as a JSON tree (overrides apply by `rein_train::settings::set_path`).
    pub fn settings(self, env_id: &str) -> Result<serde_json::Value, AlgoError> {
        let json = |r: Result<serde_json::Value, serde_json::Error>| {
            r.map_err(|e| AlgoError::Config(e.to_string()))
        };
        let (mut base, preset) = match self {
            Algo::Ppo => (
                json(serde_json::to_value(PpoConfig::default()))?,
                PpoConfig::preset_toml(env_id),
            ),
            Algo::A2c => (
                json(serde_json::to_value(A2cConfig::default()))?,
                A2cConfig::preset_toml(env_id),
            ),
            Algo::Reinforce => (
                json(serde_json::to_value(ReinforceConfig::default()))?,
                ReinforceConfig::preset_toml(env_id),
            ),
            Algo::Dqn => (
                json(serde_json::to_value(DqnConfig::default()))?,
                DqnConfig::preset_toml(env_id),
            ),
            Algo::Td3 => (
                json(serde_json::to_value(Td3Config::default()))?,
                Td3Config::preset_toml("td3", env_id),
            ),
            Algo::Ddpg => (
                json(serde_json::to_value(Td3Config::ddpg()))?,
                Td3Config::preset_toml("ddpg", env_id),
            ),
            Algo::Sac => (
                json(serde_json::to_value(SacConfig::default()))?,
                SacConfig::preset_toml(env_id),
            ),
        };
        if let Some(text) = preset {
            let origin = format!("the shipped {} preset for {env_id}", self.name());
            let mut sources = rein_train::settings::Sources::default();
            rein_train::settings::apply_toml(&mut base, text, &origin, &mut sources)
                .map_err(|e| AlgoError::Config(e.message))?;
        }
        Ok(base)
    }
}

impl std::fmt::Display for Algo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One of the deep agents.
// One agent lives per run, so the variants' sizes do not matter; boxing them would only
// add a pointer chase to every `update`.
#[allow(clippy::large_enum_variant)]
pub enum AgentImpl {
    /// PPO.
    Ppo(Ppo),
    /// A2C.
    A2c(A2c),
    /// REINFORCE.
    Reinforce(Reinforce),
    /// DQN.
    Dqn(Dqn),
    /// TD3 or DDPG.
    Td3(Td3),
    /// SAC.
    Sac(Sac),
}

/// A deep agent with the environments it trains and is evaluated on.
pub struct Agent {
    algo: Algo,
    /// The agent itself (for benchmarks and inspection).
    pub inner: AgentImpl,
    make_env: EnvFactory,
}

/// REINFORCE's columns: A2C's without the explained variance (it keeps no value predictions
/// of the rollout).
const REINFORCE_COLUMNS: [&str; 10] = [
    "global_step",
    "update",
    "episodic_return_mean",
    "episodic_length_mean",
    "episodes",
    "policy_loss",
    "value_loss",
    "entropy",
    "learning_rate",
    "sps",
];

/// Evaluation episodes at the end of a run, and the offset of their seeds from the run's.
const EVAL_EPISODES: u64 = 10;
const EVAL_SEED_OFFSET: u64 = 1_000_000;

fn parse<C: DeserializeOwned>(settings: serde_json::Value) -> Result<C, AlgoError> {
    let none = rein_train::settings::Sources::default();
    Ok(rein_train::settings::deserialize(settings, &none)?)
}

impl Agent {
    /// A new agent of `algo` from its settings (a JSON tree as [`Algo::settings`] gives,
    /// with any overrides), validated.
    pub fn new(
        algo: Algo,
        settings: serde_json::Value,
        make_env: EnvFactory,
    ) -> Result<Self, AlgoError> {
        let f = Arc::clone(&make_env);
        let inner = match algo {
            Algo::Ppo => AgentImpl::Ppo(Ppo::new(parse(settings)?, f)?),
            Algo::A2c => AgentImpl::A2c(A2c::new(parse(settings)?, f)?),
            Algo::Reinforce => AgentImpl::Reinforce(Reinforce::new(parse(settings)?, f)?),
            Algo::Dqn => AgentImpl::Dqn(Dqn::new(parse(settings)?, f)?),
            Algo::Td3 | Algo::Ddpg => AgentImpl::Td3(Td3::new(parse(settings)?, f)?),
            Algo::Sac => AgentImpl::Sac(Sac::new(parse(settings)?, f)?),
        };
        Ok(Self {
            algo,
            inner,
            make_env,
        })
    }

    /// The agent saved in the checkpoint at `path`, whatever its algorithm (the checkpoint
    /// names it); `make_env` must make the environments it was trained on.
    pub fn load(path: &Path, make_env: EnvFactory) -> Result<Self, AlgoError> {
        let kind = rein_train::Checkpoint::peek_kind(path)?;
        let algo = Algo::from_name(&kind).ok_or_else(|| {
            AlgoError::Checkpoint(rein_train::CheckpointError::Invalid {
                path: path.to_path_buf(),
                message: format!("a checkpoint of a {kind} trainer, not of a rein train agent"),
            })
        })?;
        let f = Arc::clone(&make_env);
        let inner = match algo {
            Algo::Ppo => AgentImpl::Ppo(Ppo::load_checkpoint(path, f)?),
            Algo::A2c => AgentImpl::A2c(A2c::load_checkpoint(path, f)?),
            Algo::Reinforce => AgentImpl::Reinforce(Reinforce::load_checkpoint(path, f)?),
            Algo::Dqn => AgentImpl::Dqn(Dqn::load_checkpoint(path, f)?),
            Algo::Td3 | Algo::Ddpg => AgentImpl::Td3(Td3::load_checkpoint(path, f)?),
            Algo::Sac => AgentImpl::Sac(Sac::load_checkpoint(path, f)?),
        };
        Ok(Self {
            algo,
            inner,
            make_env,
        })
    }

    /// The algorithm.
    pub fn algo(&self) -> Algo {
        self.algo
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        match &self.inner {
            AgentImpl::Ppo(a) => a.config.seed,
            AgentImpl::A2c(a) => a.config.seed,
            AgentImpl::Reinforce(a) => a.config.seed,
            AgentImpl::Dqn(a) => a.config.seed,
            AgentImpl::Td3(a) => a.config.seed,
            AgentImpl::Sac(a) => a.config.seed,
        }
    }

    /// Environment steps so far.
    pub fn global_step(&self) -> u64 {
        match &self.inner {
            AgentImpl::Ppo(a) => a.global_step(),
            AgentImpl::A2c(a) => a.global_step(),
            AgentImpl::Reinforce(a) => a.global_step(),
            AgentImpl::Dqn(a) => a.global_step(),
            AgentImpl::Td3(a) => a.global_step(),
            AgentImpl::Sac(a) => a.global_step(),
        }
    }

    /// Environment steps to train for.
    pub fn total_timesteps(&self) -> u64 {
        match &self.inner {
            AgentImpl::Ppo(a) => a.config.total_timesteps,
            AgentImpl::A2c(a) => a.config.total_timesteps,
            AgentImpl::Reinforce(a) => a.config.total_timesteps,
            AgentImpl::Dqn(a) => a.config.total_timesteps,
            AgentImpl::Td3(a) => a.config.total_timesteps,
            AgentImpl::Sac(a) => a.config.total_timesteps,
        }
    }

    /// Sets the run's budget to `total` environment steps, for a resumed run trained longer
    /// (or shorter): SB3's `learn(total, reset_num_timesteps=False)`. Schedules read the
    /// progress `global_step / total`, so they stretch to the new total (a linear learning
    /// rate continues from its value at that fraction, which rises when the budget grows),
    /// as SB3's do. A budget below the steps already trained is refused.
    pub fn set_total_timesteps(&mut self, total: u64) -> Result<(), AlgoError> {
        let done = self.global_step();
        if total < done {
            return Err(AlgoError::Config(format!(
                "total_timesteps {total} is less than the {done} steps this run has already trained"
            )));
        }
        match &mut self.inner {
            AgentImpl::Ppo(a) => a.config.total_timesteps = total,
            AgentImpl::A2c(a) => a.config.total_timesteps = total,
            AgentImpl::Reinforce(a) => a.config.total_timesteps = total,
            AgentImpl::Dqn(a) => a.config.total_timesteps = total,
            AgentImpl::Td3(a) => a.config.total_timesteps = total,
            AgentImpl::Sac(a) => a.config.total_timesteps = total,
        }
        Ok(())
    }

    /// Sets a resumed run's budget ([`Agent::set_total_timesteps`]) and records it in the run
    /// directory's `config.toml`, which keeps the run's effective settings, so that feeding it
    /// back with `--config` gives the new budget. Shared by `rein train --resume` and Python.
    pub fn extend_run(&mut self, dir: &Path, total: u64) -> Result<(), AlgoError> {
        self.set_total_timesteps(total)?;
        let mut rc = RunConfig::read(dir)?;
        rc.config["total_timesteps"] = serde_json::json!(total);
        rc.write(dir)
    }

    /// The policy and its observation normaliser, for the agents with an [`ActorCritic`]
    /// (PPO, A2C, REINFORCE): rendering episodes, inspection.
    pub fn actor_critic(
        &mut self,
    ) -> Option<(&mut ActorCritic, Option<rein_core::wrappers::VecNormalize>)> {
        match &mut self.inner {
            AgentImpl::Ppo(a) => Some((&mut a.policy, a.collector.norm.clone())),
            AgentImpl::A2c(a) => Some((&mut a.policy, a.collector.norm.clone())),
            AgentImpl::Reinforce(a) => Some((&mut a.policy, a.collector.norm.clone())),
            _ => None,
        }
    }

    /// The trained policy's action for one flat observation (`obs` as `Space::flatten`
    /// writes it), for serving a policy (Python's `predict`): the on-policy agents normalise
    /// the observation as in training, then sample (or, with `deterministic`, take the most
    /// likely action); DQN acts greedily with its delivered network and TD3/DDPG/SAC with the
    /// deterministic actor, whatever `deterministic` says, as their evaluation does.
    pub fn policy_action(
        &mut self,
        obs: &[f32],
        deterministic: bool,
        rng: &mut rein_core::ReinRng,
    ) -> rein_core::Value {
        match &mut self.inner {
            AgentImpl::Dqn(a) => rein_core::Value::Discrete(a.policy_action(obs) as i64),
            AgentImpl::Td3(a) => {
                let act = a.policy_action(obs);
                a.env_action(&act)
            }
            AgentImpl::Sac(a) => {
                let act = a.deterministic_action(obs);
                a.env_action(&act)
            }
            _ => {
                let (policy, norm) = self.actor_critic().expect("on-policy agents have one");
                let mut x = obs.to_vec();
                if let Some(norm) = &norm {
                    norm.apply_obs(&mut x);
                }
                let mut raw = vec![0.0; policy.kind.action_dim()];
                let mut log_prob = [0.0];
                policy.act(&x, 1, deterministic, rng, &mut raw, &mut log_prob);
                policy.env_action(&raw)
            }
        }
    }

    /// One episode (reset with `seed`) of the policy, every state rendered, for GIFs: the
    /// greedy Q policy of DQN, the deterministic actor of TD3/DDPG/SAC, and the on-policy
    /// agents' policy (most likely action when `deterministic`). `None` when the env renders
    /// text, not frames.
    pub fn render_episode(
        &mut self,
        deterministic: bool,
        seed: u64,
    ) -> Result<Option<Vec<rein_core::RgbFrame>>, AlgoError> {
        use crate::offpolicy::render_policy_episode;
        let mut env = (self.make_env)(0)?;
        let env = env.as_mut();
        match &mut self.inner {
            AgentImpl::Dqn(a) => render_policy_episode(env, seed, &mut |x| {
                rein_core::Value::Discrete(a.policy_action(x) as i64)
            }),
            AgentImpl::Td3(a) => render_policy_episode(env, seed, &mut |x| {
                let act = a.policy_action(x);
                a.env_action(&act)
            }),
            AgentImpl::Sac(a) => render_policy_episode(env, seed, &mut |x| {
                let act = a.deterministic_action(x);
                a.env_action(&act)
            }),
            _ => {
                let (policy, norm) = self.actor_critic().expect("on-policy agents have one");
                Ok(policy.render_episode(env, norm.as_ref(), deterministic, seed)?)
            }
        }
    }

    /// Mean and population standard deviation of the return over `episodes` fresh episodes
    /// (episode k seeded `seed + k`); `deterministic` acts with the most likely action (the
    /// greedy or deterministic policy; the off-policy agents always act so).
    pub fn evaluate_returns(
        &mut self,
        episodes: u64,
        deterministic: bool,
        seed: u64,
    ) -> Result<(f64, f64), AlgoError> {
        let make_env = Arc::clone(&self.make_env);
        match &mut self.inner {
            AgentImpl::Dqn(a) => a.evaluate(&make_env, episodes, seed),
            AgentImpl::Td3(a) => a.evaluate(&make_env, episodes, seed),
            AgentImpl::Sac(a) => a.evaluate(&make_env, episodes, seed),
            _ => {
                let mut env = make_env(0)?;
                let (policy, norm) = self.actor_critic().expect("on-policy agents have one");
                Ok(policy.evaluate(env.as_mut(), norm.as_ref(), episodes, deterministic, seed)?)
            }
        }
    }
}

impl Trainer for Agent {
    fn kind(&self) -> &'static str {
        match &self.inner {
            AgentImpl::Td3(a) => a.kind(),
            _ => self.algo.name(),
        }
    }

    fn columns(&self) -> &'static [&'static str] {
        match &self.inner {
            AgentImpl::Ppo(_) => &PpoLog::COLUMNS,
            AgentImpl::A2c(_) => &UpdateLog::COLUMNS,
            AgentImpl::Reinforce(_) => &REINFORCE_COLUMNS,
            AgentImpl::Dqn(_) => &DqnLog::COLUMNS,
            AgentImpl::Td3(_) => &Td3Log::COLUMNS,
            AgentImpl::Sac(_) => &SacLog::COLUMNS,
        }
    }

    fn update(&mut self) -> Result<Vec<f64>, TrainerError> {
        Ok(match &mut self.inner {
            AgentImpl::Ppo(a) => a.update()?.row().to_vec(),
            AgentImpl::A2c(a) => a.update()?.row().to_vec(),
            AgentImpl::Reinforce(a) => {
                let row = a.update()?.row();
                let keep = UpdateLog::COLUMNS
                    .iter()
                    .map(|c| REINFORCE_COLUMNS.contains(c));
                row.into_iter()
                    .zip(keep)
                    .filter(|(_, k)| *k)
                    .map(|(v, _)| v)
                    .collect()
            }
            AgentImpl::Dqn(a) => a.update()?.row().to_vec(),
            AgentImpl::Td3(a) => a.update()?.row().to_vec(),
            AgentImpl::Sac(a) => a.update()?.row().to_vec(),
        })
    }

    fn updates(&self) -> u64 {
        match &self.inner {
            AgentImpl::Ppo(a) => a.update,
            AgentImpl::A2c(a) => a.update,
            AgentImpl::Reinforce(a) => a.update,
            // One training phase per `train_freq` env steps (the last one may be shorter).
            AgentImpl::Dqn(a) => a.global_step().div_ceil(a.config.train_freq.max(1)),
            AgentImpl::Td3(a) => a.global_step().div_ceil(a.config.train_freq.max(1)),
            AgentImpl::Sac(a) => a.global_step().div_ceil(a.config.train_freq.max(1)),
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            done: self.global_step(),
            total: self.total_timesteps(),
            unit: "steps",
        }
    }

    fn status(&self, row: &[f64]) -> String {
        let col = |name: &str| {
            self.columns()
                .iter()
                .position(|c| *c == name)
                .map_or(f64::NAN, |i| row[i])
        };
        match self.algo.is_off_policy() {
            true => format!("return(100) {:.1}", col("episodic_return_mean")),
            false => format!(
                "return(100) {:.1}  {:.0} steps/s",
                col("episodic_return_mean"),
                col("sps")
            ),
        }
    }

    fn save_checkpoint(&self, path: &Path) -> Result<(), TrainerError> {
        match &self.inner {
            AgentImpl::Ppo(a) => a.save_checkpoint(path)?,
            AgentImpl::A2c(a) => a.save_checkpoint(path)?,
            AgentImpl::Reinforce(a) => a.save_checkpoint(path)?,
            AgentImpl::Dqn(a) => a.save_checkpoint(path)?,
            AgentImpl::Td3(a) => a.save_checkpoint(path)?,
            AgentImpl::Sac(a) => a.save_checkpoint(path)?,
        }
        Ok(())
    }

    fn parameter_checksum(&self) -> Option<u64> {
        let tensors = match &self.inner {
            AgentImpl::Ppo(a) => a.policy.to_tensors(),
            AgentImpl::A2c(a) => a.policy.to_tensors(),
            AgentImpl::Reinforce(a) => a.policy.to_tensors(),
            AgentImpl::Dqn(a) => a.network_tensors(),
            AgentImpl::Td3(a) => a.network_tensors(),
            AgentImpl::Sac(a) => a.network_tensors(),
        };
        Some(rein_core::collective::checksum_f32(
            tensors.iter().map(|t| &t.data[..]),
        ))
    }

    fn curve(&self) -> Curve {
        Curve {
            file: "learning_curve.png",
            x: ("global_step", "steps"),
            y: ("episodic_return_mean", "episodic return"),
        }
    }

    /// Ten deterministic episodes, seeded `1_000_000 + seed + k`.
    fn evaluate(&mut self) -> Result<Option<Evaluation>, TrainerError> {
        let (mean, std) =
            self.evaluate_returns(EVAL_EPISODES, true, EVAL_SEED_OFFSET + self.seed())?;
        let json = serde_json::json!({"episodes": EVAL_EPISODES, "deterministic": true,
            "mean_return": mean, "std_return": std, "global_step": self.global_step()});
        let summary = format!(
            "trained {} steps; deterministic policy over {EVAL_EPISODES} episodes: return {mean:.2} +/- {std:.2}",
            self.global_step()
        );
        Ok(Some(Evaluation { json, summary }))
    }
}

/// A `rein train` run directory's `config.toml`: the algorithm, the env id and options, and
/// every effective setting (`config`), which `--config` accepts back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunConfig {
    /// The algorithm's name (`ppo`, `qlearning`, ...).
    pub algo: String,
    /// The env id.
    pub env: String,
    /// The env's options (Gymnasium's make kwargs).
    #[serde(default)]
    pub env_options: serde_json::Map<String, serde_json::Value>,
    /// Every effective setting.
    pub config: serde_json::Value,
}

impl RunConfig {
    /// Writes `dir/config.toml`, atomically.
    pub fn write(&self, dir: &Path) -> Result<(), AlgoError> {
        let text = toml::to_string_pretty(self).map_err(|e| AlgoError::Config(e.to_string()))?;
        rein_train::write_config(dir, &text).map_err(|e| AlgoError::Config(e.to_string()))
    }

    /// Reads `dir/config.toml`; errors name the file.
    pub fn read(dir: &Path) -> Result<Self, AlgoError> {
        let path = dir.join(rein_train::files::CONFIG);
        let bad = |m: String| AlgoError::Config(format!("{}: {m}", path.display()));
        // Under MPI every rank reads rank 0's file.
        let bytes =
            rein_core::collective::read_on_root(|| std::fs::read(&path).map_err(|e| e.to_string()))
                .map_err(bad)?;
        let text = String::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
        toml::from_str(&text).map_err(|e| bad(format!("not a run's config.toml: {e}")))
    }
}
