//! # rein-algos
//!
//! Reinforcement-learning algorithms, one file per algorithm, each reading top to bottom with
//! its update rule documented at the top: the tabular agents ([`qlearning`], [`sarsa`], shared
//! pieces in [`tabular`]), the on-policy agents ([`ppo`], [`a2c`], [`reinforce`], sharing
//! [`onpolicy::Collector`] and [`actor_critic::ActorCritic`]) and the off-policy agents
//! ([`dqn`], [`td3`] with DDPG, [`sac`], sharing [`offpolicy`]'s env loop). [`agent`] makes
//! any of the deep agents a `rein_train::Trainer` for the one run loop.

// The agents index envs, time steps and layers together in their loops.
#![allow(clippy::needless_range_loop)]

pub mod a2c;
pub mod actor_critic;
pub mod agent;
pub mod bench;
mod checkpoint;
pub mod dqn;
pub mod offpolicy;
pub mod onpolicy;
pub mod ppo;
pub mod qlearning;
pub mod reinforce;
pub mod sac;
pub mod sarsa;
pub mod tabular;
pub mod td3;

pub use qlearning::train_q_learning;
pub use sarsa::{train_sarsa, SarsaTarget};
pub use tabular::{
    evaluate_policy, EvalStats, QTable, SuccessRule, TabularConfig, TabularError, TabularLog,
};

/// Errors of the deep agents (on-policy and off-policy).
#[derive(Debug, thiserror::Error)]
pub enum AlgoError {
    /// An invalid hyperparameter.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The environment failed or does not fit.
    #[error(transparent)]
    Env(#[from] rein_core::EnvError),
    /// A setting of the wrong type (its key in [`rein_train::settings::SettingsError::key`]).
    #[error("invalid settings: {0}")]
    Settings(#[from] rein_train::settings::SettingsError),
    /// Training diverged.
    #[error("training diverged: {0}")]
    NonFinite(String),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] rein_train::CheckpointError),
}
