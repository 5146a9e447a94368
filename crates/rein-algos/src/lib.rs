//! # rein-algos
//!
//! Reinforcement-learning algorithms, one file per algorithm, each reading top to bottom with
//! its update rule documented at the top. This crate holds the tabular agents today:
//! [`qlearning`], [`sarsa`] (SARSA and expected SARSA), with their shared pieces in
//! [`tabular`].

// The agents index envs, time steps and layers together in their loops.
#![allow(clippy::needless_range_loop)]

pub mod a2c;
pub mod actor_critic;
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
pub use tabular::{evaluate_policy, EvalStats, QTable, TabularConfig, TabularError, TabularLog};
