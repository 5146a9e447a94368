//! `rein.train` and `rein.load`: the deep agents trained through the same run loop as
//! `rein train` (`rein_train::run`), with an observer that calls Python back per metrics row,
//! and trained policies served with SB3's `predict`.

use crate::convert::{py_to_json, py_to_value};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rein_algos::agent::{Agent, Algo, RunConfig};
use rein_algos::onpolicy::EnvFactory;
use rein_core::{Space, Value};
use rein_train::settings::{set_path, Sources};
use rein_train::{files, Observer, Progress, RunEnd, RunOptions};
use std::path::{Path, PathBuf};

use crate::convert::runtime;

/// The env of a run, made for every sub-env.
fn env_factory(
    env: &str,
    options: &serde_json::Map<String, serde_json::Value>,
) -> PyResult<EnvFactory> {
    rein_envs::factory(env, options).map_err(crate::env::env_err)
}

/// Applies Python's keyword settings (a dict of `--set` keys, nested ones dotted) over the
/// preset `cfg`, refusing unknown keys by name; returns where each came from, so that a value
/// of the wrong type names its keyword argument.
fn apply_settings(cfg: &mut serde_json::Value, settings: &Bound<'_, PyAny>) -> PyResult<Sources> {
    let mut sources = Sources::default();
    if let serde_json::Value::Object(s) = py_to_json(settings)? {
        for (k, v) in s {
            set_path(cfg, &k, v).map_err(|e| PyValueError::new_err(format!("setting {k}: {e}")))?;
            sources.record(&k, format!("the keyword argument {k}"));
        }
    }
    Ok(sources)
}

/// Calls the user's `callback(row)` with each metrics row as a dict; a `False` return or a
/// KeyboardInterrupt (Ctrl-C) stops the run after the update, with a checkpoint.
pub(crate) struct PythonObserver {
    callback: Option<Py<PyAny>>,
    columns: Vec<String>,
    rows: Vec<Vec<f64>>,
    stop: bool,
    /// An exception the callback raised (other than KeyboardInterrupt), raised again after
    /// the run stopped with its checkpoint.
    error: Option<PyErr>,
    interrupted: bool,
}

impl PythonObserver {
    /// An observer calling `callback` with the rows of `trainer` (by its columns).
    pub(crate) fn new(callback: Option<Py<PyAny>>, trainer: &dyn rein_train::Trainer) -> Self {
        Self {
            callback,
            columns: trainer.columns().iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            stop: false,
            error: None,
            interrupted: false,
        }
    }
}

impl Observer for PythonObserver {
    fn on_update(&mut self, _progress: Progress, row: &[f64], _status: &str) {
        self.rows.push(row.to_vec());
        Python::attach(|py| {
            if let Err(e) = py.check_signals() {
                self.interrupted = e.is_instance_of::<PyKeyboardInterrupt>(py);
                if !self.interrupted {
                    self.error = Some(e);
                }
                self.stop = true;
                return;
            }
            let Some(cb) = &self.callback else { return };
            let d = PyDict::new(py);
            for (c, v) in self.columns.iter().zip(row) {
                if d.set_item(c, v).is_err() {
                    return;
                }
            }
            match cb.call1(py, (d,)) {
                Ok(r) => {
                    if r.bind(py)
                        .is(pyo3::types::PyBool::new(py, false).to_owned())
                    {
                        self.stop = true;
                    }
                }
                Err(e) => {
                    self.interrupted = e.is_instance_of::<PyKeyboardInterrupt>(py);
                    if !self.interrupted {
                        self.error = Some(e);
                    }
                    self.stop = true;
                }
            }
        });
    }

    fn should_stop(&mut self) -> bool {
        self.stop
    }
}

/// What `train` returns to Python: `(run_dir, columns, rows, eval_json, ended)`.
pub(crate) type TrainOutcome = (String, Vec<String>, Vec<Vec<f64>>, Option<String>, String);

/// Trains `algo` on `env` (a new run in `runs_dir`, or `resume`, a run directory, continued
/// exactly) through rein's run loop; returns `(run_dir, columns, rows, eval_json, ended)`
/// where `ended` is `finished`, `max_updates` or `stopped`.
#[pyfunction]
#[pyo3(signature = (algo, env, seed, total_timesteps, settings, env_options, runs_dir, resume, callback, checkpoint_seconds, max_updates))]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    algo: Option<String>,
    env: Option<String>,
    seed: Option<u64>,
    total_timesteps: Option<u64>,
    settings: &Bound<'_, PyAny>,
    env_options: &Bound<'_, PyAny>,
    runs_dir: PathBuf,
    resume: Option<PathBuf>,
    callback: Option<Py<PyAny>>,
    checkpoint_seconds: f64,
    max_updates: Option<u64>,
) -> PyResult<TrainOutcome> {
    let (mut agent, dir, resumed) = match &resume {
        Some(dir) => {
            let rc = RunConfig::read(dir).map_err(runtime)?;
            let ckpt = dir.join(files::CHECKPOINT);
            let mut agent =
                Agent::load(&ckpt, env_factory(&rc.env, &rc.env_options)?).map_err(runtime)?;
            if let Some(total) = total_timesteps {
                agent.extend_run(dir, total).map_err(runtime)?;
            }
            (agent, dir.clone(), true)
        }
        None => {
            let name = algo.ok_or_else(|| PyValueError::new_err("an algorithm is required"))?;
            let env = env.ok_or_else(|| PyValueError::new_err("env= is required"))?;
            let algo = Algo::from_name(&name).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "unknown algorithm {name:?}: expected one of ppo, a2c, reinforce, dqn, td3, ddpg, sac"
                ))
            })?;
            let options = crate::convert::options_from_py(env_options)?;
            let mut cfg = algo.settings(&env).map_err(runtime)?;
            let sources = apply_settings(&mut cfg, settings)?;
            if let Some(s) = seed {
                cfg["seed"] = serde_json::json!(s);
            }
            if let Some(n) = total_timesteps {
                cfg["total_timesteps"] = serde_json::json!(n);
            }
            let agent = Agent::new(algo, cfg.clone(), env_factory(&env, &options)?).map_err(
                |e| match e {
                    rein_algos::AlgoError::Settings(s) => {
                        PyValueError::new_err(format!("invalid settings: {}", sources.explain(s)))
                    }
                    e => runtime(e),
                },
            )?;
            let dir = rein_train::create_run_dir(&runs_dir, &env, algo.name(), agent.seed())
                .map_err(runtime)?;
            let rc = RunConfig {
                algo: algo.name().into(),
                env: env.clone(),
                env_options: options,
                config: cfg,
            };
            rc.write(&dir).map_err(runtime)?;
            (agent, dir, false)
        }
    };
    let mut observer = PythonObserver::new(callback, &agent);
    let options = RunOptions {
        checkpoint_every: 0,
        checkpoint_seconds,
        max_updates,
        sample_every: 0,
        resumed,
        // Python trains in one process.
        check_weights_every: 0,
    };
    let end = py.detach(|| rein_train::run(&mut agent, &dir, &options, &mut observer));
    outcome(&dir, resumed, end, observer)
}

/// A run error as Python's RuntimeError; a new run that failed before its first checkpoint
/// has its directory removed, as the CLI does, and the message says so.
pub(crate) fn run_failed(dir: &Path, resumed: bool, e: rein_train::RunError) -> PyErr {
    if rein_train::discard_failed_start(dir, resumed) {
        runtime(format!(
            "{e}\n(the run failed before its first checkpoint, so its directory {} was removed)",
            dir.display()
        ))
    } else {
        runtime(e)
    }
}

/// What a run of the loop gives Python: the callback's exception raised again (the run
/// stopped after its update, with a checkpoint), KeyboardInterrupt after Ctrl-C, a run error
/// as RuntimeError, else the run's outcome with every row of its metrics.csv.
pub(crate) fn outcome(
    dir: &Path,
    resumed: bool,
    end: Result<RunEnd, rein_train::RunError>,
    mut observer: PythonObserver,
) -> PyResult<TrainOutcome> {
    if let Some(e) = observer.error.take() {
        return Err(e);
    }
    let end = end.map_err(|e| run_failed(dir, resumed, e))?;
    if observer.interrupted {
        return Err(PyKeyboardInterrupt::new_err(format!(
            "training stopped with a checkpoint; continue with resume={:?}",
            dir.display().to_string()
        )));
    }
    // All rows of the run (a resumed run's earlier rows too), from its metrics.csv.
    let rows = read_rows(dir).unwrap_or(observer.rows);
    let (eval, ended) = match end {
        RunEnd::Finished(e) => (e.map(|e| e.json.to_string()), "finished"),
        RunEnd::MaxUpdates => (None, "max_updates"),
        RunEnd::Interrupted => (None, "stopped"),
    };
    Ok((
        dir.display().to_string(),
        observer.columns,
        rows,
        eval,
        ended.to_string(),
    ))
}

/// Trains a tabular agent (`qlearning`, `sarsa`, `expected_sarsa`) on `env` as `rein train`
/// does (the env's preset, then `settings`, `seed`), calling `callback(row)` per log row;
/// writes the run directory (config.toml, metrics.csv, learning_curve.png, q_table.json,
/// eval.json). Tabular runs train in seconds and keep no checkpoint, so a callback only
/// observes. Returns what `train` returns.
#[pyfunction]
#[pyo3(signature = (algo, env, seed, settings, env_options, runs_dir, callback))]
#[allow(clippy::too_many_arguments)]
pub fn train_tabular(
    py: Python<'_>,
    algo: &str,
    env: &str,
    seed: Option<u64>,
    settings: &Bound<'_, PyAny>,
    env_options: &Bound<'_, PyAny>,
    runs_dir: PathBuf,
    callback: Option<Py<PyAny>>,
) -> PyResult<TrainOutcome> {
    use rein_algos::tabular::{run_tabular, StateIndexer, TabularAlgo, TabularLog};
    let tabular = TabularAlgo::from_name(algo)
        .ok_or_else(|| PyValueError::new_err(format!("{algo:?} is not a tabular algorithm")))?;
    let options = crate::convert::options_from_py(env_options)?;
    let mut env_box = rein_envs::make_with(env, &options).map_err(crate::env::env_err)?;
    if StateIndexer::new(env_box.observation_space()).is_none() {
        return Err(PyValueError::new_err(format!(
            "{algo} is a tabular algorithm: it needs Discrete observations, and {env} has {}",
            env_box.observation_space()
        )));
    }
    let mut cfg = serde_json::to_value(rein_algos::TabularConfig::preset(env)).map_err(runtime)?;
    let sources = apply_settings(&mut cfg, settings)?;
    if let Some(s) = seed {
        cfg["seed"] = serde_json::json!(s);
    }
    let config: rein_algos::TabularConfig = rein_train::settings::deserialize(cfg, &sources)
        .map_err(|e| PyValueError::new_err(format!("invalid settings: {e}")))?;
    config
        .validate()
        .map_err(|e| PyValueError::new_err(format!("invalid settings: {e}")))?;
    let dir = rein_train::create_run_dir(&runs_dir, env, algo, config.seed).map_err(runtime)?;
    RunConfig {
        algo: algo.into(),
        env: env.into(),
        env_options: options,
        config: serde_json::to_value(&config).map_err(runtime)?,
    }
    .write(&dir)
    .map_err(runtime)?;
    let mut rows = Vec::new();
    let mut raised = None;
    let result = run_tabular(
        tabular,
        env,
        env_box.as_mut(),
        &config,
        &dir,
        &mut |log: &TabularLog| {
            let row = log.row().to_vec();
            if let (Some(cb), None) = (&callback, &raised) {
                let d = PyDict::new(py);
                for (c, v) in TabularLog::COLUMNS.iter().zip(&row) {
                    let _ = d.set_item(c, v);
                }
                if let Err(e) = cb.call1(py, (d,)) {
                    raised = Some(e);
                }
            }
            rows.push(row);
        },
    );
    if let Some(e) = raised {
        return Err(e);
    }
    let (_, stats) = result.map_err(runtime)?;
    let eval = serde_json::json!({
        "episodes": stats.episodes, "mean_return": stats.mean_return,
        "std_return": stats.std_return, "success_rate": stats.success_rate,
        "mean_length": stats.mean_length,
    });
    let text = serde_json::to_string_pretty(&eval).map_err(runtime)?;
    rein_core::metrics::write_atomic(&dir.join(files::EVAL), text.as_bytes()).map_err(runtime)?;
    Ok((
        dir.display().to_string(),
        TabularLog::COLUMNS.iter().map(|s| s.to_string()).collect(),
        rows,
        Some(eval.to_string()),
        "finished".into(),
    ))
}

/// The numeric rows of a run's metrics.csv.
fn read_rows(dir: &Path) -> Option<Vec<Vec<f64>>> {
    let text = std::fs::read_to_string(dir.join(files::METRICS)).ok()?;
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(|x| x.parse::<f64>().ok()).collect())
        .collect()
}

/// What a policy acts with: a deep agent, or a tabular run's Q-table (greedy).
enum Served {
    Deep(Box<Agent>),
    Tabular {
        q: rein_algos::QTable,
        states: rein_algos::tabular::StateIndexer,
    },
}

/// A trained agent loaded from its run directory (a deep agent's checkpoint or a tabular
/// run's q_table.json), serving actions.
#[pyclass(module = "rein._rein")]
pub struct RustPolicy {
    served: Served,
    observation_space: Space,
    action_space: Space,
    rng: rein_core::ReinRng,
    flat: Vec<f32>,
}

#[pymethods]
impl RustPolicy {
    /// Loads the run in `run_dir` (its checkpoint and config.toml).
    #[new]
    fn new(run_dir: PathBuf) -> PyResult<Self> {
        let rc = RunConfig::read(&run_dir).map_err(runtime)?;
        let env = rein_envs::make_with(&rc.env, &rc.env_options).map_err(crate::env::env_err)?;
        let (served, seed) = if rein_algos::tabular::TabularAlgo::from_name(&rc.algo).is_some() {
            let q = rein_algos::QTable::read(&run_dir.join("q_table.json")).map_err(runtime)?;
            let states = rein_algos::tabular::StateIndexer::new(env.observation_space())
                .ok_or_else(|| runtime("the run's env has no tabular states"))?;
            (Served::Tabular { q, states }, 0)
        } else {
            let agent = Agent::load(
                &run_dir.join(files::CHECKPOINT),
                env_factory(&rc.env, &rc.env_options)?,
            )
            .map_err(runtime)?;
            let seed = agent.seed();
            (Served::Deep(Box::new(agent)), seed)
        };
        Ok(Self {
            rng: rein_core::rng_from_seed(seed),
            served,
            observation_space: env.observation_space().clone(),
            action_space: env.action_space().clone(),
            flat: Vec::new(),
        })
    }

    /// The run's env id and options as JSON text.
    #[staticmethod]
    fn run_env(run_dir: PathBuf) -> PyResult<(String, String)> {
        let rc = RunConfig::read(&run_dir).map_err(runtime)?;
        Ok((
            rc.env,
            serde_json::Value::Object(rc.env_options).to_string(),
        ))
    }

    /// The observation and action spaces as JSON text.
    fn spaces_json(&self) -> (String, String) {
        let j = |s: &Space| serde_json::to_string(s).expect("a space serialises");
        (j(&self.observation_space), j(&self.action_space))
    }

    /// The action for one observation (as the env gives it).
    fn act_one<'py>(
        &mut self,
        py: Python<'py>,
        obs: &Bound<'py, PyAny>,
        deterministic: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let v = observation(obs, &self.observation_space)?;
        let a = match &mut self.served {
            Served::Tabular { q, states } => {
                let s = states.index(&v).map_err(crate::env::env_err)?;
                Value::Discrete(q.greedy(s) as i64)
            }
            Served::Deep(agent) => {
                self.flat.resize(self.observation_space.flat_dim(), 0.0);
                self.observation_space
                    .flatten_into(&v, &mut self.flat)
                    .map_err(crate::env::env_err)?;
                agent.policy_action(&self.flat, deterministic, &mut self.rng)
            }
        };
        crate::convert::value_to_py(py, &a, &self.action_space)
    }

    /// Actions for a batch of flat observations (`n x flat_dim` float32), as an array:
    /// int64 `(n,)` for discrete actions, float32 `(n, *shape)` for boxes.
    fn act_flat_batch<'py>(
        &mut self,
        py: Python<'py>,
        obs: numpy::PyReadonlyArray2<'py, f32>,
        deterministic: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Served::Deep(agent) = &mut self.served else {
            return Err(runtime(
                "a tabular policy acts on one observation at a time",
            ));
        };
        let a = obs.as_array();
        let mut discrete = Vec::new();
        let mut boxes = Vec::new();
        for row in a.rows() {
            let x: Vec<f32> = row.iter().copied().collect();
            match agent.policy_action(&x, deterministic, &mut self.rng) {
                Value::Discrete(i) => discrete.push(i),
                Value::Box(b) => boxes.extend_from_slice(&b),
                other => return Err(runtime(format!("unexpected action {other:?}"))),
            }
        }
        let n = a.nrows();
        Ok(match &self.action_space {
            Space::Discrete { .. } => PyArray1::from_slice(py, &discrete).into_any(),
            Space::Box { shape, .. } => {
                let mut s = vec![n];
                s.extend(shape);
                PyArray1::from_slice(py, &boxes).reshape(s)?.into_any()
            }
            s => return Err(runtime(format!("actions of space {s} are not served"))),
        })
    }
}

/// One observation from Python as a value of `space` (the action conversion, with errors
/// that say "observation").
fn observation(obs: &Bound<'_, PyAny>, space: &Space) -> PyResult<Value> {
    py_to_value(obs, space).map_err(|e| {
        PyValueError::new_err(
            e.to_string()
                .replace("ValueError: ", "")
                .replace("the action", "the observation")
                .replace("action space", "observation space"),
        )
    })
}
