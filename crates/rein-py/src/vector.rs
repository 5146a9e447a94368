//! rein's threaded vector env for Python (`rein.make_vec` wraps it in a
//! `gymnasium.vector.VectorEnv`): steps run without the GIL and write into numpy arrays the
//! caller owns, so a step makes no Python object per env.

use crate::convert::dict_from_json;
use crate::env::env_err;
use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use rein_core::vector::{AutoresetMode, VectorEnv};
use rein_core::{Space, Value};

/// `num_envs` copies of a registered env on `threads` threads, in Gymnasium's next-step or
/// same-step autoreset mode.
#[pyclass(module = "rein._rein")]
pub struct RustVecEnv {
    venv: VectorEnv,
    actions: Vec<Value>,
    action_space: Space,
    /// Where each step's outputs go: numpy arrays owned by the Python vector env, given once
    /// by `set_buffers` so that a step passes no arrays and makes no Python object per env.
    buffers: Option<Buffers>,
}

struct Buffers {
    obs: Py<PyArray2<f32>>,
    rewards: Py<PyArray1<f64>>,
    terminated: Py<PyArray1<bool>>,
    truncated: Py<PyArray1<bool>>,
}

#[pymethods]
impl RustVecEnv {
    /// Builds the vector env; `same_step` selects Gymnasium's SAME_STEP autoreset mode
    /// (NEXT_STEP otherwise).
    #[new]
    fn new(
        id: &str,
        options: &Bound<'_, PyAny>,
        num_envs: usize,
        threads: usize,
        same_step: bool,
    ) -> PyResult<Self> {
        if num_envs == 0 || threads == 0 {
            return Err(PyValueError::new_err(
                "num_envs and threads must be at least 1",
            ));
        }
        let make =
            rein_envs::factory(id, &crate::convert::options_from_py(options)?).map_err(env_err)?;
        let mode = if same_step {
            AutoresetMode::SameStep
        } else {
            AutoresetMode::NextStep
        };
        let venv = VectorEnv::from_fn(num_envs, mode, threads.min(num_envs), move |i| make(i))
            .map_err(env_err)?;
        Ok(Self {
            actions: Vec::with_capacity(num_envs),
            action_space: venv.single_action_space().clone(),
            venv,
            buffers: None,
        })
    }

    /// The number of sub-envs.
    #[getter]
    fn num_envs(&self) -> usize {
        self.venv.num_envs()
    }

    /// The length of one flat observation (`Space::flatten`: one-hot for discrete parts).
    #[getter]
    fn obs_dim(&self) -> usize {
        self.venv.obs_dim()
    }

    /// The single env's observation and action spaces as JSON text.
    fn spaces_json(&self) -> (String, String) {
        let j = |s: &Space| serde_json::to_string(s).expect("a space serialises");
        (
            j(self.venv.single_observation_space()),
            j(self.venv.single_action_space()),
        )
    }

    /// The arrays each step writes: flat observations `(num_envs, obs_dim)` float32, rewards
    /// float64, terminated and truncated bool, all C-contiguous, kept by the caller unchanged
    /// in shape for the env's life.
    fn set_buffers(
        &mut self,
        obs: Bound<'_, PyArray2<f32>>,
        rewards: Bound<'_, PyArray1<f64>>,
        terminated: Bound<'_, PyArray1<bool>>,
        truncated: Bound<'_, PyArray1<bool>>,
    ) -> PyResult<()> {
        let n = self.venv.num_envs();
        let ok = obs.is_c_contiguous()
            && rewards.is_c_contiguous()
            && terminated.is_c_contiguous()
            && truncated.is_c_contiguous()
            && obs.len() == n * self.venv.obs_dim()
            && rewards.len() == n
            && terminated.len() == n
            && truncated.len() == n;
        if !ok {
            return Err(PyValueError::new_err(
                "buffers must be C-contiguous of (num_envs, obs_dim) and num_envs elements",
            ));
        }
        self.buffers = Some(Buffers {
            obs: obs.unbind(),
            rewards: rewards.unbind(),
            terminated: terminated.unbind(),
            truncated: truncated.unbind(),
        });
        Ok(())
    }

    /// Resets every env (env `i` with `seed + i`), writing the flat observations into the
    /// buffer; returns every env's reset info (a list of dicts).
    #[pyo3(signature = (seed=None))]
    fn reset<'py>(&mut self, py: Python<'py>, seed: Option<u64>) -> PyResult<Bound<'py, PyList>> {
        let venv = &mut self.venv;
        py.detach(|| venv.reset(seed).map(|_| ()))
            .map_err(env_err)?;
        self.write_outputs(py)?;
        let step = self.venv.last_step();
        let infos = step
            .infos
            .iter()
            .map(|info| dict_from_json(py, info))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, infos)
    }

    /// One step with discrete actions (an int64 array, one per env); an action outside the
    /// space is a `ValueError` naming it.
    fn step_discrete<'py>(
        &mut self,
        py: Python<'py>,
        actions: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let a = actions.as_slice()?;
        if a.len() != self.venv.num_envs() {
            return Err(PyValueError::new_err(format!(
                "{} actions for {} envs",
                a.len(),
                self.venv.num_envs()
            )));
        }
        self.actions.clear();
        self.actions.extend(a.iter().map(|&a| Value::Discrete(a)));
        if let Some((i, bad)) = self
            .actions
            .iter()
            .enumerate()
            .find(|(_, x)| !self.action_space.contains(x))
        {
            return Err(PyValueError::new_err(format!(
                "action {bad} of env {i} is not in the action space {}",
                self.action_space
            )));
        }
        self.step(py)
    }

    /// One step with box actions (a float32 array of `num_envs` rows of flat actions).
    fn step_box<'py>(
        &mut self,
        py: Python<'py>,
        actions: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let a = actions.as_array();
        self.actions.clear();
        self.actions.extend(
            a.rows()
                .into_iter()
                .map(|r| Value::Box(r.iter().copied().collect())),
        );
        if self.actions.len() != self.venv.num_envs() {
            return Err(PyValueError::new_err(format!(
                "{} actions for {} envs",
                self.actions.len(),
                self.venv.num_envs()
            )));
        }
        self.step(py)
    }
}

impl RustVecEnv {
    /// Steps with `self.actions` and writes the outputs; returns `(infos, final_obs)`:
    /// `infos` a list of `(i, dict)` for the envs whose info is not empty, `final_obs` (same-
    /// step mode) a list of `(i, flat float32 array)` for the envs that ended.
    fn step<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let (venv, actions) = (&mut self.venv, &self.actions);
        py.detach(|| venv.step(actions).map(|_| ()))
            .map_err(env_err)?;
        self.write_outputs(py)?;
        let step = self.venv.last_step();
        let infos = PyList::empty(py);
        for (i, info) in step.infos.iter().enumerate() {
            if !info.is_empty() {
                infos.append((i, dict_from_json(py, info)?))?;
            }
        }
        let finals = PyList::empty(py);
        for i in 0..self.venv.num_envs() {
            if let Some(f) = self.venv.final_obs(i) {
                finals.append((i, PyArray1::from_slice(py, f)))?;
            }
        }
        PyTuple::new(py, [infos.into_any(), finals.into_any()])
    }

    /// Copies the last step's outputs into the caller's buffers.
    fn write_outputs(&self, py: Python<'_>) -> PyResult<()> {
        let b = self
            .buffers
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("set_buffers was not called"))?;
        let step = self.venv.last_step();
        // SAFETY: the arrays were checked C-contiguous of these sizes by `set_buffers`, the
        // GIL is held, and nothing else holds a Rust borrow of them: only numpy code, which
        // cannot run while this copies.
        unsafe {
            b.obs.bind(py).as_slice_mut()?.copy_from_slice(step.obs);
            b.rewards
                .bind(py)
                .as_slice_mut()?
                .copy_from_slice(step.rewards);
            b.terminated
                .bind(py)
                .as_slice_mut()?
                .copy_from_slice(step.terminated);
            b.truncated
                .bind(py)
                .as_slice_mut()?
                .copy_from_slice(step.truncated);
        }
        Ok(())
    }
}
