//! # rein-mujoco
//!
//! Continuous control on the MuJoCo 3.17.0 physics engine (through the `mujoco-rs` bindings):
//! Gymnasium 1.4's v5 robots ([`robots::GYM_IDS`]: HalfCheetah, Hopper, Walker2d, Ant,
//! Humanoid, ...) and the DeepMind Control Suite ([`dm_control::DM_IDS`], dm-control 1.0.50's
//! tasks with ids as Shimmy names them, `dm_control/cheetah-run-v0`). The MJCF model files are
//! the references' own, embedded (`assets/`, with their licences).
//!
//! Environments are plain [`rein_core::Env`]s without a time limit; `rein_envs::make` adds the
//! registered `TimeLimit` for the Gymnasium ids (dm-control tasks end by their own time limit,
//! as `truncated`).

pub mod dm_control;
pub mod gym;
pub mod robots;
pub mod sim;

use rein_core::{Env, EnvError, EnvSpec};
use serde_json::{Map, Value as Json};

/// Registration data of every MuJoCo id (Gymnasium's, and the dm-control tasks' with no
/// `TimeLimit`: they truncate themselves).
pub fn registry() -> Vec<EnvSpec> {
    let gym = robots::GYM_IDS
        .iter()
        .map(|&(id, steps, threshold)| EnvSpec {
            id: id.into(),
            max_episode_steps: Some(steps),
            reward_threshold: threshold,
            kwargs: Map::new(),
        });
    let dm = dm_control::DM_IDS.iter().map(|t| EnvSpec {
        id: t.id.into(),
        max_episode_steps: None,
        reward_threshold: None,
        kwargs: Map::new(),
    });
    gym.chain(dm).collect()
}

/// Builds MuJoCo environment `id` (without a time limit) with `kwargs` and attaches `spec`;
/// `None` when `id` is not a MuJoCo id.
pub fn make(
    id: &str,
    kwargs: &Map<String, Json>,
    spec: EnvSpec,
) -> Option<Result<Box<dyn Env>, EnvError>> {
    if let Some(env) = robots::make(id, kwargs) {
        return Some(env.map(|e| Box::new(e.with_spec(spec)) as Box<dyn Env>));
    }
    dm_control::make(id, kwargs).map(|env| env.map(|e| Box::new(e.with_spec(spec)) as Box<dyn Env>))
}

/// The error of `render` (and so of `rein eval --gif`): MuJoCo draws with OpenGL (EGL or OSMesa
/// offscreen), which rein does not link, so that the binary runs on headless machines without
/// GPU drivers or Mesa. Observations, states and `info` carry everything a plot needs.
pub fn render_unsupported(env: &str) -> EnvError {
    EnvError::Unsupported {
        env: env.into(),
        what: "rendering: MuJoCo draws with OpenGL (EGL or OSMesa), which rein does not link; \
               record states with `rein env rollout` and render them with MuJoCo's own viewer"
            .into(),
    }
}
