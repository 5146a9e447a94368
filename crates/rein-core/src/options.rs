//! Constructor options of environments (Gymnasium's `gym.make(id, **kwargs)`), read from a
//! JSON object with errors that name the environment, the option and what it accepts. Shared by
//! every crate that builds environments (rein-envs, rein-mujoco).

use crate::EnvError;

/// Error for a kwarg with a wrong type.
pub fn bad_option(env: &str, key: &str, expected: &str, got: &serde_json::Value) -> EnvError {
    EnvError::InvalidOption {
        env: env.into(),
        message: format!("option {key:?} must be {expected}, got {got}"),
    }
}

/// Checks that every kwarg is one of `accepted`.
pub fn check_keys(
    env: &str,
    kwargs: &serde_json::Map<String, serde_json::Value>,
    accepted: &[&str],
) -> Result<(), EnvError> {
    for k in kwargs.keys() {
        if !accepted.contains(&k.as_str()) {
            return Err(EnvError::InvalidOption {
                env: env.into(),
                message: format!(
                    "unknown option {k:?}; accepted: {}",
                    if accepted.is_empty() {
                        "none".to_string()
                    } else {
                        accepted.join(", ")
                    }
                ),
            });
        }
    }
    Ok(())
}

/// A boolean kwarg with a default.
pub fn bool_option(
    env: &str,
    kwargs: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    default: bool,
) -> Result<bool, EnvError> {
    match kwargs.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad_option(env, key, "true or false", v)),
    }
}

/// A float kwarg with a default.
pub fn f64_option(
    env: &str,
    kwargs: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    default: f64,
) -> Result<f64, EnvError> {
    match kwargs.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| bad_option(env, key, "a number", v)),
    }
}

/// A pair of floats `[low, high]` (a range such as `healthy_z_range`), with a default. `null`
/// stands for an infinite bound, as Python's `float("inf")` cannot be written in JSON.
pub fn range_option(
    env: &str,
    kwargs: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    default: (f64, f64),
) -> Result<(f64, f64), EnvError> {
    let Some(v) = kwargs.get(key) else {
        return Ok(default);
    };
    let bad = || {
        bad_option(
            env,
            key,
            "two numbers [low, high] (null for an infinite bound)",
            v,
        )
    };
    let arr = v.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
    let bound = |x: &serde_json::Value, inf: f64| match x {
        serde_json::Value::Null => Some(inf),
        _ => x.as_f64(),
    };
    let low = bound(&arr[0], f64::NEG_INFINITY).ok_or_else(bad)?;
    let high = bound(&arr[1], f64::INFINITY).ok_or_else(bad)?;
    if low > high {
        return Err(bad());
    }
    Ok((low, high))
}
