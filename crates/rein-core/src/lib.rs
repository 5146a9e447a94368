//! # rein-core
//!
//! The environment side of rein, with no neural-network code: spaces, the [`Env`] trait with
//! Gymnasium 1.x semantics, wrappers, vector environments, seeding, schedules, metrics logging
//! and the environment checker. Everything else in rein builds on these types.

pub mod canvas;
pub mod checker;
pub mod collective;
pub mod env;
pub mod error;
pub mod fuzz;
pub mod metrics;
pub mod numpy;
pub mod options;
pub mod replay;
pub mod returns;
pub mod rng;
pub mod schedule;
pub mod space;
pub mod vector;
pub mod wrappers;

pub use checker::{check_env, CheckReport};
pub use env::{Env, EnvFactory, EnvSpec, Info, Render, RgbFrame, Step};
pub use error::EnvError;
pub use rng::{rng_from_seed, EnvRng, ReinRng};
pub use space::{Dtype, Space, Value};
pub use vector::{AutoresetMode, RolloutPolicy, RolloutStats, VecStep, VectorEnv};
