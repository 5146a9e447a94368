//! rein's threaded vector env for Python (`rein.make_vec` wraps it in a
//! `gymnasium.vector.VectorEnv`): steps run without the GIL and write into numpy arrays the
//! caller owns, so a step makes no Python object per env.

use crate::convert::dict_from_json;
use crate::env::env_err;
use numpy::{
    PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1,
    PyReadwriteArray2,
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
}

/// Where one step's outputs go: numpy arrays owned by the Python vector env.
type Outputs<'py> = (
    PyReadwriteArray2<'py, f32>,
    PyReadwriteArray1<'py, f64>,
    PyReadwriteArray1<'py, bool>,
    PyReadwriteArray1<'py, bool>,
);

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
        let options = match crate::convert::py_to_json(options)? {
            serde_json::Value::Object(o) => o,
            serde_json::Value::Null => Default::default(),
            other => {
                return Err(PyValueError::new_err(format!(
                    "options must be a dict, got {other}"
                )))
            }
        };
        rein_envs::make_with(id, &options).map_err(env_err)?; // the registry's message
        let id = id.to_string();
        let mode = if same_step {
            AutoresetMode::SameStep
        } else {
            AutoresetMode::NextStep
        };
        let venv = VectorEnv::from_fn(num_envs, mode, threads.min(num_envs), move |_| {
            rein_envs::make_with(&id, &options)
        })
        .map_err(env_err)?;
        Ok(Self {
            actions: Vec::with_capacity(num_envs),
            venv,
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

    /// Resets every env (env `i` with `seed + i`), writing the flat observations into `obs`;
    /// returns every env's reset info (a list of dicts).
    #[pyo3(signature = (obs, seed=None))]
    fn reset<'py>(
        &mut self,
        py: Python<'py>,
        mut obs: PyReadwriteArray2<'py, f32>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let venv = &mut self.venv;
        py.detach(|| venv.reset(seed).map(|_| ()))
            .map_err(env_err)?;
        let step = self.venv.last_step();
        copy_into(&mut obs, step.obs)?;
        let infos = step
            .infos
            .iter()
            .map(|info| dict_from_json(py, info))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, infos)
    }

    /// One step with discrete actions (an int64 array, one per env).
    fn step_discrete<'py>(
        &mut self,
        py: Python<'py>,
        actions: PyReadonlyArray1<'py, i64>,
        out: Outputs<'py>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.actions.clear();
        self.actions
            .extend(actions.as_slice()?.iter().map(|&a| Value::Discrete(a)));
        self.step(py, out)
    }

    /// One step with box actions (a float32 array of `num_envs` rows of flat actions).
    fn step_box<'py>(
        &mut self,
        py: Python<'py>,
        actions: PyReadonlyArray2<'py, f32>,
        out: Outputs<'py>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let a = actions.as_array();
        self.actions.clear();
        self.actions
            .extend(a.rows().into_iter().map(|r| Value::Box(r.iter().copied().collect())));
        self.step(py, out)
    }
}

impl RustVecEnv {
    /// Steps with `self.actions` and writes the outputs; returns `(infos, final_obs)`:
    /// `infos` a list of `(i, dict)` for the envs whose info is not empty, `final_obs` (same-
    /// step mode) a list of `(i, flat float32 array)` for the envs that ended.
    fn step<'py>(&mut self, py: Python<'py>, out: Outputs<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let (mut obs, mut rewards, mut terminated, mut truncated) = out;
        let (venv, actions) = (&mut self.venv, &self.actions);
        py.detach(|| venv.step(actions).map(|_| ()))
            .map_err(env_err)?;
        let step = self.venv.last_step();
        copy_into(&mut obs, step.obs)?;
        rewards.as_slice_mut()?.copy_from_slice(step.rewards);
        terminated.as_slice_mut()?.copy_from_slice(step.terminated);
        truncated.as_slice_mut()?.copy_from_slice(step.truncated);
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
}

fn copy_into(dst: &mut PyReadwriteArray2<'_, f32>, src: &[f32]) -> PyResult<()> {
    let d = dst.as_slice_mut()?;
    if d.len() != src.len() {
        return Err(PyValueError::new_err(format!(
            "the observation buffer holds {} numbers, the envs give {}",
            d.len(),
            src.len()
        )));
    }
    d.copy_from_slice(src);
    Ok(())
}

