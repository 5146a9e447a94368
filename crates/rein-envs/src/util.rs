//! Helpers shared by the built-in environments.

use rein_core::{EnvError, Space, Value};

/// The `Env` methods that every built-in env implements the same way, from its fields
/// `obs_space`, `act_space` and `spec`, and (given `$name`) the name used in messages.
macro_rules! builtin_env_accessors {
    ($name:expr) => {
        crate::util::builtin_env_accessors!();
        fn name(&self) -> String {
            $name.into()
        }
    };
    () => {
        fn observation_space(&self) -> &Space {
            &self.obs_space
        }
        fn action_space(&self) -> &Space {
            &self.act_space
        }
        fn spec(&self) -> Option<&EnvSpec> {
            self.spec.as_ref()
        }
    };
}
pub(crate) use builtin_env_accessors;

/// The discrete action of `action` if it lies in `space` (a `Discrete` space), else the
/// standard invalid-action error. Gymnasium's envs assert the same.
pub(crate) fn discrete_action(action: &Value, space: &Space) -> Result<usize, EnvError> {
    match (action, space) {
        (Value::Discrete(a), Space::Discrete { n, start })
            if *a >= *start && ((*a - *start) as u64) < *n =>
        {
            Ok((*a - *start) as usize)
        }
        _ => Err(rein_core::env::invalid_action(action, space)),
    }
}

/// The single number of a one-element float32 Box action (any value, bounds unchecked: the
/// continuous envs clip it as Gymnasium does).
pub(crate) fn scalar_box_action(action: &Value, space: &Space) -> Result<f32, EnvError> {
    match action {
        Value::Box(v) if v.len() == 1 => Ok(v[0]),
        Value::BoxF64(v) if v.len() == 1 => Ok(v[0] as f32),
        _ => Err(rein_core::env::invalid_action(action, space)),
    }
}

/// Reads a JSON array of `n` numbers (a `state` argument).
pub(crate) fn state_array<const N: usize>(
    env: &str,
    state: &serde_json::Value,
    names: &str,
) -> Result<[f64; N], EnvError> {
    let err = || EnvError::InvalidState {
        env: env.into(),
        message: format!("expected a JSON array of {N} numbers {names}, got {state}"),
    };
    let arr = state.as_array().ok_or_else(err)?;
    if arr.len() != N {
        return Err(err());
    }
    let mut out = [0.0; N];
    for (o, v) in out.iter_mut().zip(arr) {
        *o = v.as_f64().ok_or_else(err)?;
    }
    Ok(out)
}

/// A JSON array of f64 values, written exactly (shortest round trip).
pub(crate) fn state_json(values: &[f64]) -> serde_json::Value {
    serde_json::Value::Array(
        values
            .iter()
            .map(|&x| rein_core::space::f64_to_json(x))
            .collect(),
    )
}

/// Uniform draw in `[low, high)` as numpy's `uniform`: `low + (high - low) * u`.
pub(crate) fn uniform(rng: &mut rein_core::ReinRng, low: f64, high: f64) -> f64 {
    use rand::Rng;
    low + (high - low) * rng.random::<f64>()
}

/// A bounded float32 Box whose bounds are the given f32 values.
pub(crate) fn f32_box(low: &[f32], high: &[f32]) -> Space {
    Space::box_f32(
        low.iter().map(|&x| x as f64).collect(),
        high.iter().map(|&x| x as f64).collect(),
    )
}

pub(crate) use rein_core::numpy::{square_pow as np_square_pow, square_powf as np_square_powf};
pub(crate) use rein_core::options::{bad_option, bool_option, check_keys, f64_option};
