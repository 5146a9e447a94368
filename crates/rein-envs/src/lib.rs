//! # rein-envs
//!
//! Rein's built-in environments, reproducing Gymnasium 1.4 exactly (dynamics, rewards,
//! termination, time limits, observation encodings, handling of out-of-bound actions), the
//! registry that builds them by Gymnasium id, and the tabular MDP toolkit ([`mdp`]).
//!
//! ```
//! use rein_core::{Env, Value};
//! let mut env = rein_envs::make("CartPole-v1").unwrap();
//! let (obs, _info) = env.reset(Some(0));
//! let step = env.step(&Value::Discrete(1)).unwrap();
//! assert_eq!(step.reward, 1.0);
//! # let _ = obs;
//! ```

// The table builders and DP sweeps index states, actions and map cells in nested loops that
// mirror Gymnasium's own loops, so that the ports can be reviewed line by line.
#![allow(clippy::needless_range_loop)]

pub mod bench;
pub mod classic;
pub mod mdp;
pub mod toy_text;
mod util;

use rein_core::wrappers::TimeLimit;
use rein_core::{Env, EnvError, EnvSpec};
use serde_json::{json, Map, Value as Json};
use toy_text::{DiscreteEnv, FrozenLakeOptions};
use util::{bad_option, bool_option, check_keys, f64_option};

/// Every registered id with its Gymnasium 1.4 registration data.
pub fn registry() -> Vec<EnvSpec> {
    let spec = |id: &str, steps: Option<u64>, threshold: Option<f64>, kwargs: Json| EnvSpec {
        id: id.into(),
        max_episode_steps: steps,
        reward_threshold: threshold,
        kwargs: kwargs.as_object().cloned().unwrap_or_default(),
    };
    #[allow(unused_mut)]
    let mut specs = vec![
        spec("CartPole-v1", Some(500), Some(475.0), json!({})),
        spec("MountainCar-v0", Some(200), Some(-110.0), json!({})),
        spec("MountainCarContinuous-v0", Some(999), Some(90.0), json!({})),
        spec("Pendulum-v1", Some(200), None, json!({})),
        spec("Acrobot-v1", Some(500), Some(-100.0), json!({})),
        spec(
            "FrozenLake-v1",
            Some(100),
            Some(0.70),
            json!({"map_name": "4x4"}),
        ),
        spec(
            "FrozenLake8x8-v1",
            Some(200),
            Some(0.85),
            json!({"map_name": "8x8"}),
        ),
        spec("Taxi-v4", Some(200), Some(8.0), json!({})),
        spec("CliffWalking-v1", None, None, json!({})),
        spec(
            "CliffWalkingSlippery-v1",
            None,
            None,
            json!({"is_slippery": true}),
        ),
        spec(
            "Blackjack-v1",
            None,
            None,
            json!({"sab": true, "natural": false}),
        ),
    ];
    #[cfg(feature = "mujoco")]
    specs.extend(rein_mujoco::registry());
    specs
}

/// The registration data of `id`.
pub fn spec(id: &str) -> Result<EnvSpec, EnvError> {
    registry()
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| EnvError::UnknownId {
            id: id.into(),
            known: registry()
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Builds the environment `id` as `gymnasium.make(id)` does: with its registered options and
/// its `TimeLimit`.
pub fn make(id: &str) -> Result<Box<dyn Env>, EnvError> {
    make_with(id, &Map::new())
}

/// A maker of `id` with `kwargs` for every sub-env of a run (the env factories of trainers
/// and vector envs, as Gymnasium's `env_fns`), its argument the sub-env index. The id and
/// options are checked once here, so that a bad one fails with the registry's message before
/// a run starts.
pub fn factory(id: &str, kwargs: &Map<String, Json>) -> Result<rein_core::EnvFactory, EnvError> {
    make_with(id, kwargs)?;
    let (id, kwargs) = (id.to_string(), kwargs.clone());
    Ok(std::sync::Arc::new(move |_| make_with(&id, &kwargs)))
}

/// Builds `id` with extra constructor options (Gymnasium's `**kwargs`, e.g.
/// `{"map_name": "8x8", "is_slippery": false}` for FrozenLake-v1). The option
/// `max_episode_steps` overrides the registered time limit (0: none), as in `gymnasium.make`.
pub fn make_with(id: &str, kwargs: &Map<String, Json>) -> Result<Box<dyn Env>, EnvError> {
    let spec = spec(id)?;
    let mut merged = spec.kwargs.clone();
    let mut max_steps = spec.max_episode_steps;
    for (k, v) in kwargs {
        if k == "max_episode_steps" {
            max_steps = match v {
                Json::Null => None,
                _ => match v.as_u64() {
                    Some(0) => None,
                    Some(n) => Some(n),
                    None => return Err(bad_option(id, k, "a non-negative integer", v)),
                },
            };
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    let spec = EnvSpec {
        max_episode_steps: max_steps,
        kwargs: merged.clone(),
        ..spec
    };
    #[cfg(feature = "mujoco")]
    if let Some(env) = rein_mujoco::make(id, &merged, spec.clone()) {
        let env = env?;
        return Ok(match max_steps {
            Some(n) => Box::new(TimeLimit::new(env, n)),
            None => env,
        });
    }
    let env: Box<dyn Env> = match id {
        "CartPole-v1" => {
            check_keys(id, &merged, &["sutton_barto_reward"])?;
            let sb = bool_option(id, &merged, "sutton_barto_reward", false)?;
            Box::new(classic::CartPole::new(sb).with_spec(spec.clone()))
        }
        "MountainCar-v0" => {
            check_keys(id, &merged, &[])?;
            Box::new(classic::MountainCar::new().with_spec(spec.clone()))
        }
        "MountainCarContinuous-v0" => {
            check_keys(id, &merged, &[])?;
            Box::new(classic::MountainCarContinuous::new().with_spec(spec.clone()))
        }
        "Pendulum-v1" => {
            check_keys(id, &merged, &["g"])?;
            let g = f64_option(id, &merged, "g", 10.0)?;
            Box::new(classic::Pendulum::new(g).with_spec(spec.clone()))
        }
        "Acrobot-v1" => {
            check_keys(id, &merged, &[])?;
            Box::new(classic::Acrobot::new().with_spec(spec.clone()))
        }
        "Blackjack-v1" => {
            check_keys(id, &merged, &["sab", "natural"])?;
            let sab = bool_option(id, &merged, "sab", false)?;
            let natural = bool_option(id, &merged, "natural", false)?;
            Box::new(toy_text::Blackjack::new(natural, sab).with_spec(spec.clone()))
        }
        _ => Box::new(build_discrete(id, &merged)?.with_spec(spec.clone())),
    };
    Ok(match max_steps {
        Some(n) => Box::new(TimeLimit::new(env, n)),
        None => env,
    })
}

/// Builds a table-driven toy-text env (FrozenLake, Taxi, CliffWalking) without wrappers, for
/// the MDP toolkit and for planning: its transition table is public.
pub fn make_discrete(id: &str, kwargs: &Map<String, Json>) -> Result<DiscreteEnv, EnvError> {
    let spec = spec(id)?;
    let mut merged = spec.kwargs.clone();
    for (k, v) in kwargs {
        if k != "max_episode_steps" {
            merged.insert(k.clone(), v.clone());
        }
    }
    let env = build_discrete(id, &merged)?;
    Ok(env.with_spec(EnvSpec {
        kwargs: merged,
        ..spec
    }))
}

fn build_discrete(id: &str, kw: &Map<String, Json>) -> Result<DiscreteEnv, EnvError> {
    match id {
        "FrozenLake-v1" | "FrozenLake8x8-v1" => {
            check_keys(
                id,
                kw,
                &[
                    "map_name",
                    "desc",
                    "is_slippery",
                    "success_rate",
                    "reward_schedule",
                    "map_seed",
                ],
            )?;
            let desc = match (kw.get("desc"), kw.get("map_name")) {
                (Some(d), _) if !d.is_null() => d
                    .as_array()
                    .and_then(|rows| rows.iter().map(|r| r.as_str().map(String::from)).collect())
                    .ok_or_else(|| bad_option(id, "desc", "a list of map rows (strings)", d))?,
                (_, Some(Json::String(name))) => toy_text::map_by_name(name).ok_or_else(|| {
                    bad_option(id, "map_name", "\"4x4\" or \"8x8\"", &json!(name))
                })?,
                (_, Some(Json::Null)) | (_, None) => {
                    let seed = kw.get("map_seed").and_then(Json::as_u64).unwrap_or(0);
                    toy_text::generate_random_map(8, 0.8, seed)
                }
                (_, Some(other)) => {
                    return Err(bad_option(id, "map_name", "\"4x4\" or \"8x8\"", other))
                }
            };
            let reward_schedule = match kw.get("reward_schedule") {
                None => [1.0, 0.0, 0.0],
                Some(v) => {
                    let arr: Option<Vec<f64>> = v
                        .as_array()
                        .and_then(|a| a.iter().map(Json::as_f64).collect());
                    match arr.as_deref() {
                        Some([g, h, f]) => [*g, *h, *f],
                        _ => {
                            return Err(bad_option(
                                id,
                                "reward_schedule",
                                "three numbers [goal, hole, frozen]",
                                v,
                            ))
                        }
                    }
                }
            };
            let opts = FrozenLakeOptions {
                desc,
                is_slippery: bool_option(id, kw, "is_slippery", true)?,
                success_rate: f64_option(id, kw, "success_rate", 1.0 / 3.0)?,
                reward_schedule,
            };
            toy_text::frozen_lake(id, &opts)
        }
        "Taxi-v4" => {
            check_keys(id, kw, &["is_rainy", "fickle_passenger"])?;
            for k in ["is_rainy", "fickle_passenger"] {
                if bool_option(id, kw, k, false)? {
                    return Err(EnvError::InvalidOption {
                        env: id.into(),
                        message: format!("option {k:?} = true is not implemented in rein yet"),
                    });
                }
            }
            Ok(toy_text::taxi(id))
        }
        "CliffWalking-v1" | "CliffWalkingSlippery-v1" => {
            check_keys(id, kw, &["is_slippery"])?;
            Ok(toy_text::cliff_walking(
                id,
                bool_option(id, kw, "is_slippery", false)?,
            ))
        }
        _ => Err(EnvError::InvalidOption {
            env: id.into(),
            message: "not a table-driven toy-text environment (FrozenLake, Taxi, CliffWalking)"
                .into(),
        }),
    }
}
