//! One built-in environment for Python (`rein.make` wraps it in a `gymnasium.Env`).

use crate::convert::{dict_from_json, py_to_value, value_to_py};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rein_core::{Env, EnvError, Render, Space};
use std::sync::{Mutex, MutexGuard};

/// A rein error as a Python exception: bad input is a `ValueError`, the rest `RuntimeError`.
pub fn env_err(e: EnvError) -> PyErr {
    match e {
        EnvError::ResetNeeded => PyRuntimeError::new_err(e.to_string()),
        e => PyValueError::new_err(e.to_string()),
    }
}

/// One environment from rein's registry, with its registered time limit unless the option
/// `max_episode_steps` says otherwise (0: none).
#[pyclass(module = "rein._rein")]
pub struct RustEnv {
    // A mutex only because Python classes must be `Sync`; methods that take `&mut self` (pyo3
    // already grants them exclusive access) reach it with `get_mut`, without locking.
    env: Mutex<Box<dyn Env>>,
    observation_space: Space,
    action_space: Space,
    renders_text: bool,
    /// Why the env cannot render (MuJoCo: no OpenGL), or None when it renders.
    render_error: Option<String>,
}

#[pymethods]
impl RustEnv {
    /// Builds `id` with `options` (a dict of Gymnasium's make kwargs).
    #[new]
    fn new(id: &str, options: &Bound<'_, PyAny>) -> PyResult<Self> {
        let options = crate::convert::options_from_py(options)?;
        let env = rein_envs::make_with(id, &options).map_err(env_err)?;
        // What the env renders, seen on a reset copy (rendering needs a state).
        let mut probe = rein_envs::make_with(id, &options).map_err(env_err)?;
        probe.reset(Some(0));
        let rendered = probe.render();
        let renders_text = matches!(rendered, Ok(Render::Text(_)));
        let render_error = rendered.err().map(|e| e.to_string());
        Ok(Self {
            renders_text,
            render_error,
            observation_space: env.observation_space().clone(),
            action_space: env.action_space().clone(),
            env: Mutex::new(env),
        })
    }

    /// The observation space as JSON text (rein's `Space` serialisation).
    fn observation_space_json(&self) -> String {
        serde_json::to_string(&self.observation_space).expect("a space serialises")
    }

    /// The action space as JSON text.
    fn action_space_json(&self) -> String {
        serde_json::to_string(&self.action_space).expect("a space serialises")
    }

    /// Resets the env (seeded when `seed` is given); returns `(obs, info)`.
    #[pyo3(signature = (seed=None))]
    fn reset<'py>(&mut self, py: Python<'py>, seed: Option<u64>) -> PyResult<Bound<'py, PyTuple>> {
        let (obs, info) = self.env_mut().reset(seed);
        PyTuple::new(
            py,
            [
                value_to_py(py, &obs, &self.observation_space)?,
                dict_from_json(py, &info)?.into_any(),
            ],
        )
    }

    /// One step; returns `(obs, reward, terminated, truncated, info)`.
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        action: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let a = py_to_value(action, &self.action_space)?;
        let s = self.env_mut().step(&a).map_err(env_err)?;
        PyTuple::new(
            py,
            [
                value_to_py(py, &s.obs, &self.observation_space)?,
                s.reward.into_pyobject(py)?.into_any(),
                pyo3::types::PyBool::new(py, s.terminated)
                    .to_owned()
                    .into_any(),
                pyo3::types::PyBool::new(py, s.truncated)
                    .to_owned()
                    .into_any(),
                dict_from_json(py, &s.info)?.into_any(),
            ],
        )
    }

    /// The current frame: a `(height, width, 3)` uint8 array for pictures, a string for
    /// text-rendering envs.
    fn render<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.env().render().map_err(env_err)? {
            Render::Text(t) => t.into_pyobject(py)?.into_any(),
            Render::Rgb(f) => PyArray1::from_slice(py, &f.data)
                .reshape([f.height, f.width, 3])?
                .into_any(),
        })
    }

    /// Whether the env renders text (`ansi`) rather than pictures (`rgb_array`).
    fn renders_text(&self) -> bool {
        self.renders_text
    }

    /// Why the env cannot render (the MuJoCo envs: rein does not link OpenGL), or None.
    fn render_error(&self) -> Option<String> {
        self.render_error.clone()
    }

    /// The env's state as `rein env rollout --state` takes it (JSON text).
    fn get_state(&self) -> PyResult<String> {
        Ok(self.env().get_state().map_err(env_err)?.to_string())
    }

    /// Sets the state (JSON text, as `get_state` gives); returns the observation.
    fn set_state<'py>(&mut self, py: Python<'py>, state: &str) -> PyResult<Bound<'py, PyAny>> {
        let json: serde_json::Value = serde_json::from_str(state)
            .map_err(|e| PyValueError::new_err(format!("the state is not JSON: {e}")))?;
        let obs = self.env_mut().set_state(&json).map_err(env_err)?;
        value_to_py(py, &obs, &self.observation_space)
    }

    /// Everything of the env (state, generator, replay queues) as JSON text.
    fn snapshot(&self) -> PyResult<String> {
        Ok(self.env().snapshot().map_err(env_err)?.to_string())
    }

    /// Restores a `snapshot` (JSON text).
    fn restore(&mut self, snapshot: &str) -> PyResult<()> {
        let json: serde_json::Value = serde_json::from_str(snapshot)
            .map_err(|e| PyValueError::new_err(format!("the snapshot is not JSON: {e}")))?;
        self.env_mut().restore(&json).map_err(env_err)
    }
}

impl RustEnv {
    fn env(&self) -> MutexGuard<'_, Box<dyn Env>> {
        self.env.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn env_mut(&mut self) -> &mut Box<dyn Env> {
        self.env.get_mut().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every registered id with its registration data, as JSON text (a list of EnvSpec).
#[pyfunction]
pub fn registry_json() -> String {
    serde_json::to_string(&rein_envs::registry()).expect("specs serialise")
}
