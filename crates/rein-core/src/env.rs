//! The environment interface, with Gymnasium 1.x semantics.
//!
//! An [`Env`] is a (PO)MDP: `reset` starts an episode and returns the first observation,
//! `step` applies an action and returns a [`Step`]. `terminated` means the MDP reached a
//! terminal state (no bootstrapping past it); `truncated` means the episode was cut short
//! from outside, normally by the [`TimeLimit`](crate::wrappers::TimeLimit) wrapper (the value
//! of the next state still counts). Both can be true on the same step.

use crate::error::EnvError;
use crate::space::{Space, Value};
use serde::{Deserialize, Serialize};

/// Auxiliary diagnostic information returned by `reset` and `step`, as Gymnasium's `info`
/// dict (for example `prob` for toy-text environments). Empty maps do not allocate.
pub type Info = serde_json::Map<String, serde_json::Value>;

/// Makes sub-env `i` of a run or vector env (Gymnasium's `env_fns`): what trainers hold to
/// build their environments, and `rein_envs::factory` returns for a registered id.
pub type EnvFactory = std::sync::Arc<dyn Fn(usize) -> Result<Box<dyn Env>, EnvError> + Send + Sync>;

/// What `step` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Observation after the action.
    pub obs: Value,
    /// Reward for the transition.
    pub reward: f64,
    /// The new state is terminal in the MDP.
    pub terminated: bool,
    /// The episode was cut short (time limit) in a non-terminal state.
    pub truncated: bool,
    /// Diagnostics.
    pub info: Info,
}

impl Step {
    /// The episode is over, for either reason.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// An RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes.
    pub data: Vec<u8>,
}

/// A rendering of the current state.
#[derive(Debug, Clone, PartialEq)]
pub enum Render {
    /// Text, as Gymnasium's `ansi` mode (toy-text environments).
    Text(String),
    /// A picture, as Gymnasium's `rgb_array` mode (classic control).
    Rgb(RgbFrame),
}

/// Registration data of an environment (`gymnasium.envs.registration.EnvSpec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvSpec {
    /// Gymnasium id, e.g. `CartPole-v1`.
    pub id: String,
    /// Episode limit applied by `TimeLimit` (`None`: no limit).
    pub max_episode_steps: Option<u64>,
    /// Mean return at which the task counts as solved.
    pub reward_threshold: Option<f64>,
    /// Constructor options applied by the registry (e.g. `{"sab": true}` for Blackjack).
    pub kwargs: serde_json::Map<String, serde_json::Value>,
}

/// A reinforcement-learning environment with Gymnasium 1.x semantics.
///
/// Implement it for your own environments and check them with
/// [`check_env`](crate::checker::check_env). The trait is object safe: the registry and the
/// vector envs hold `Box<dyn Env>`.
pub trait Env: Send {
    /// The set of observations.
    fn observation_space(&self) -> &Space;

    /// The set of actions.
    fn action_space(&self) -> &Space;

    /// Starts a new episode. `Some(seed)` reseeds the environment's generator; `None` continues
    /// its stream (seeding it from entropy the first time), as `gymnasium.Env.reset`.
    fn reset(&mut self, seed: Option<u64>) -> (Value, Info);

    /// Applies `action`. Actions outside the action space are an error unless the environment
    /// documents that it clips them (Pendulum, MountainCarContinuous), as in Gymnasium.
    fn step(&mut self, action: &Value) -> Result<Step, EnvError>;

    /// Renders the current state: text for toy-text envs, an RGB frame for classic control.
    fn render(&self) -> Result<Render, EnvError> {
        Err(EnvError::Unsupported {
            env: self.name(),
            what: "render".into(),
        })
    }

    /// A short name for messages: the Gymnasium id for built-in environments.
    fn name(&self) -> String {
        self.spec()
            .map(|s| s.id.clone())
            .unwrap_or_else(|| std::any::type_name::<Self>().to_string())
    }

    /// Registration data, when the environment came from the registry.
    fn spec(&self) -> Option<&EnvSpec> {
        None
    }

    /// The internal state as Gymnasium keeps it in `env.unwrapped` (`state` array for classic
    /// control, the integer `s` for toy text, the hands for Blackjack), for debugging/planning.
    fn get_state(&self) -> Result<serde_json::Value, EnvError> {
        Err(EnvError::Unsupported {
            env: self.name(),
            what: "get_state".into(),
        })
    }

    /// Sets the internal state (format of [`Env::get_state`]) and returns the observation of
    /// that state. The episode continues from there (wrappers keep their counters).
    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        let _ = state;
        Err(EnvError::Unsupported {
            env: self.name(),
            what: "set_state".into(),
        })
    }

    /// Everything needed to continue the environment exactly where it is: internal state,
    /// generator state and wrapper counters (used by checkpoints for exact resume).
    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        Err(EnvError::Unsupported {
            env: self.name(),
            what: "snapshot".into(),
        })
    }

    /// Restores a [`Env::snapshot`].
    fn restore(&mut self, snapshot: &serde_json::Value) -> Result<(), EnvError> {
        let _ = snapshot;
        Err(EnvError::Unsupported {
            env: self.name(),
            what: "restore".into(),
        })
    }
}

/// Reads field `key` of a snapshot written by [`Env::snapshot`].
pub fn snapshot_field<T: serde::de::DeserializeOwned>(
    env: &str,
    snapshot: &serde_json::Value,
    key: &str,
) -> Result<T, EnvError> {
    let v = snapshot.get(key).ok_or_else(|| EnvError::InvalidState {
        env: env.into(),
        message: format!("snapshot has no field {key:?}"),
    })?;
    serde_json::from_value(v.clone()).map_err(|e| EnvError::InvalidState {
        env: env.into(),
        message: format!("snapshot field {key:?}: {e}"),
    })
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn observation_space(&self) -> &Space {
        (**self).observation_space()
    }
    fn action_space(&self) -> &Space {
        (**self).action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        (**self).reset(seed)
    }
    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        (**self).step(action)
    }
    fn render(&self) -> Result<Render, EnvError> {
        (**self).render()
    }
    fn name(&self) -> String {
        (**self).name()
    }
    fn spec(&self) -> Option<&EnvSpec> {
        (**self).spec()
    }
    fn get_state(&self) -> Result<serde_json::Value, EnvError> {
        (**self).get_state()
    }
    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        (**self).set_state(state)
    }
    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        (**self).snapshot()
    }
    fn restore(&mut self, snapshot: &serde_json::Value) -> Result<(), EnvError> {
        (**self).restore(snapshot)
    }
}

/// The error for an action outside `space`.
pub fn invalid_action(action: &Value, space: &Space) -> EnvError {
    EnvError::InvalidAction {
        action: action.to_string(),
        space: space.to_string(),
    }
}
