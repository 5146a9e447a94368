//! Language models for Python (`rein.lm`): loading and generation, and GRPO/PPO fine-tuning
//! through rein's run loop with reward functions written in Python, called as TRL calls
//! them: `fn(prompts=..., completions=..., **columns) -> list[float | None]`.

use crate::convert::py_to_json;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rein_lm::chat::Message;
use rein_lm::generate::{generate, PromptText};
use rein_lm::pretrained::{Pretrained, SamplingRequest};
use rein_lm::rl::reward::{PromptRecord, Reward, Sample};
use rein_lm::rl::trainer::{RlTrainer, GRPO_KIND, PPO_KIND};
use rein_lm::LmError;
use rein_train::RunOptions;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::convert::runtime;

/// A prompt given from Python: a string, or a list of `{"role", "content"}` messages.
fn prompt_text(obj: &Bound<'_, PyAny>) -> PyResult<PromptText> {
    if let Ok(s) = obj.extract::<String>() {
        return Ok(PromptText::Plain(s));
    }
    let json = py_to_json(obj)?;
    let messages = rein_lm::chat::parse_conversation(&json, true).map_err(|e| {
        PyValueError::new_err(format!(
            "a prompt must be a string or a list of messages: {e}"
        ))
    })?;
    Ok(PromptText::Chat(messages))
}

/// One generated continuation for Python: `(text, token log-probs, token ids)`.
type Generation = (String, Vec<f32>, Vec<u32>);

/// A model (HF directory or GGUF file, optionally with a PEFT adapter) with its tokenizer,
/// chat template and generation defaults.
#[pyclass(module = "rein._rein")]
pub struct RustLm {
    pretrained: Mutex<Pretrained>,
}

#[pymethods]
impl RustLm {
    /// Loads `path` (and `adapter`, a PEFT directory).
    #[new]
    #[pyo3(signature = (path, adapter=None))]
    fn new(path: PathBuf, adapter: Option<PathBuf>) -> PyResult<Self> {
        let p = Pretrained::load_with_adapter(&path, adapter.as_deref()).map_err(runtime)?;
        Ok(Self {
            pretrained: Mutex::new(p),
        })
    }

    /// Generates a continuation of each prompt (a string, or messages rendered with the chat
    /// template, which then stop at the end-of-turn tokens); request i uses seed `seed + i`.
    /// Returns `(text, token log-probs, token ids)` per prompt.
    #[pyo3(signature = (prompts, max_new_tokens, min_new_tokens, sample, temperature, top_k, top_p, repetition_penalty, stop, seed, batch_size))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        py: Python<'_>,
        prompts: Vec<Bound<'_, PyAny>>,
        max_new_tokens: usize,
        min_new_tokens: usize,
        sample: bool,
        temperature: Option<f32>,
        top_k: Option<usize>,
        top_p: Option<f32>,
        repetition_penalty: Option<f32>,
        stop: Vec<String>,
        seed: u64,
        batch_size: usize,
    ) -> PyResult<Vec<Generation>> {
        // A prompt is token ids, text or messages.
        let texts = prompts
            .iter()
            .map(|o| match o.extract::<Vec<u32>>() {
                Ok(ids) if !o.is_instance_of::<pyo3::types::PyString>() => Ok(Err(ids)),
                _ => prompt_text(o).map(Ok),
            })
            .collect::<PyResult<Vec<_>>>()?;
        let p = self.pretrained.lock().unwrap_or_else(|e| e.into_inner());
        let chat = texts.iter().any(|t| matches!(t, Ok(PromptText::Chat(_))));
        let request = SamplingRequest {
            max_new_tokens,
            min_new_tokens,
            sample,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            stop_strings: stop,
            ignore_eos: false,
        };
        let cfg = p.generation_config(&request, seed, chat);
        cfg.validate()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let ids = texts
            .iter()
            .map(|t| match t {
                Err(ids) => Ok(ids.clone()),
                Ok(PromptText::Plain(s)) => p.need_tokenizer()?.encode(s),
                Ok(PromptText::Chat(m)) => p.apply_chat_template(m, true).map(|x| x.1),
            })
            .collect::<Result<Vec<_>, LmError>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let Some(i) = ids.iter().position(Vec::is_empty) {
            return Err(PyValueError::new_err(format!(
                "prompt {i} encodes to no tokens"
            )));
        }
        let p = &*p;
        let out = py.detach(|| {
            let mut out = Vec::with_capacity(ids.len());
            for (k, chunk) in ids.chunks(batch_size.max(1)).enumerate() {
                let seeds: Vec<u64> = (0..chunk.len())
                    .map(|i| seed + (k * batch_size.max(1) + i) as u64)
                    .collect();
                out.extend(generate(
                    &p.model,
                    chunk,
                    &cfg,
                    Some(&seeds),
                    p.tokenizer.as_ref(),
                )?);
            }
            Ok::<_, LmError>(out)
        });
        Ok(out
            .map_err(runtime)?
            .into_iter()
            .map(|g| (g.text.unwrap_or_default(), g.logprobs, g.ids))
            .collect())
    }

    /// The chat template's text and token ids of `messages`.
    fn apply_chat_template(
        &self,
        messages: &Bound<'_, PyAny>,
        add_generation_prompt: bool,
    ) -> PyResult<(String, Vec<u32>)> {
        let PromptText::Chat(m) = prompt_text(messages)? else {
            return Err(PyValueError::new_err(
                "messages must be a list of {role, content}",
            ));
        };
        let p = self.pretrained.lock().unwrap_or_else(|e| e.into_inner());
        p.apply_chat_template(&m, add_generation_prompt)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }
}

/// Python reward functions with weights, combined as TRL combines them: a weighted sum in
/// which a `None` (or NaN) score leaves that function out for that sample (`nansum`), so a
/// sample no function scores gets 0.
struct PythonRewards {
    funcs: Vec<(f64, Py<PyAny>, String)>,
    /// The exception a function raised, given back to the caller after the run stops.
    raised: Arc<Mutex<Option<PyErr>>>,
}

/// A sample's prompt and completion as TRL passes them: texts, or for a conversational
/// prompt its messages and `[{"role": "assistant", "content": completion}]`.
fn prompt_and_completion<'py>(
    py: Python<'py>,
    s: &Sample<'_>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    match s.messages {
        Some(m) => {
            let to_dict = |m: &Message| -> PyResult<Bound<'py, PyAny>> {
                let d = PyDict::new(py);
                d.set_item("role", &m.role)?;
                d.set_item("content", &m.content)?;
                Ok(d.into_any())
            };
            let prompt = PyList::new(py, m.iter().map(to_dict).collect::<PyResult<Vec<_>>>()?)?;
            let reply = Message::new("assistant", s.response);
            let completion = PyList::new(py, [to_dict(&reply)?])?;
            Ok((prompt.into_any(), completion.into_any()))
        }
        None => Ok((
            s.prompt.into_pyobject(py)?.into_any(),
            s.response.into_pyobject(py)?.into_any(),
        )),
    }
}

impl PythonRewards {
    fn call(&self, py: Python<'_>, samples: &[Sample]) -> PyResult<Result<Vec<f64>, String>> {
        let n = samples.len();
        let prompts = PyList::empty(py);
        let completions = PyList::empty(py);
        for s in samples {
            let (p, c) = prompt_and_completion(py, s)?;
            prompts.append(p)?;
            completions.append(c)?;
        }
        let kwargs = PyDict::new(py);
        // Every column of any row, as a list over the samples (None where a row lacks it).
        let mut keys: Vec<&String> = samples.iter().flat_map(|s| s.columns.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            if k == "prompts" || k == "completions" {
                continue;
            }
            let col = samples
                .iter()
                .map(|s| match s.columns.get(k) {
                    Some(v) => crate::convert::json_to_py(py, v),
                    None => Ok(py.None().into_bound(py)),
                })
                .collect::<PyResult<Vec<_>>>()?;
            kwargs.set_item(k, PyList::new(py, col)?)?;
        }
        kwargs.set_item("prompts", prompts)?;
        kwargs.set_item("completions", completions)?;
        let mut total = vec![0.0; n];
        for (w, f, name) in &self.funcs {
            let out = f.bind(py).call((), Some(&kwargs))?;
            let Ok(list) = out
                .try_iter()
                .and_then(|it| it.collect::<PyResult<Vec<_>>>())
            else {
                return Ok(Err(format!(
                    "reward function {name} returned {}, expected a list of {n} floats (or None)",
                    out.get_type().name()?
                )));
            };
            if list.len() != n {
                return Ok(Err(format!(
                    "reward function {name} returned {} scores for {n} completions",
                    list.len()
                )));
            }
            for (i, x) in list.iter().enumerate() {
                if x.is_none() {
                    continue;
                }
                if x.is_instance_of::<pyo3::types::PyBool>() {
                    return Ok(Err(format!(
                        "reward function {name}: score {i} is a bool, expected a float or None"
                    )));
                }
                let Ok(v) = x.extract::<f64>() else {
                    return Ok(Err(format!(
                        "reward function {name}: score {i} is {}, expected a float or None",
                        x.repr()?
                    )));
                };
                if !v.is_nan() {
                    total[i] += w * v;
                }
            }
        }
        Ok(Ok(total))
    }
}

impl Reward for PythonRewards {
    fn name(&self) -> String {
        self.funcs
            .iter()
            .map(|(w, _, n)| {
                if *w == 1.0 {
                    n.clone()
                } else {
                    format!("{w}*{n}")
                }
            })
            .collect::<Vec<_>>()
            .join(" + ")
    }

    fn score(&mut self, samples: &[Sample]) -> Result<Vec<f64>, LmError> {
        Python::attach(|py| match self.call(py, samples) {
            Ok(Ok(scores)) => Ok(scores),
            Ok(Err(message)) => Err(LmError::Input(message)),
            Err(e) => {
                let shown = e.to_string();
                *self.raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Err(LmError::Input(format!("a reward function raised {shown}")))
            }
        })
    }
}

/// The trainer, movable into the GIL-free section of `lm_train`.
struct Detached<'a>(&'a mut RlTrainer);

// SAFETY: `Python::detach` runs its closure on the calling thread, so the trainer never
// changes threads; its only non-`Send` part, the Python reward, takes the GIL before it
// touches Python objects.
unsafe impl Send for Detached<'_> {}

impl<'a> Detached<'a> {
    /// The trainer (a method, so that a closure captures the whole `Detached`, not its field).
    fn into_inner(self) -> &'a mut RlTrainer {
        self.0
    }
}

/// GRPO (`kind` "grpo") or PPO ("ppo") fine-tuning of `model` on `prompts` (a JSONL path or
/// a list of row dicts) with Python reward functions, through rein's run loop; or `resume`,
/// a run directory, continued exactly with the same functions. Returns what `train` returns.
#[pyfunction]
#[pyo3(signature = (kind, model, prompts, reward_funcs, reward_weights, settings, runs_dir, resume, callback, checkpoint_every, max_updates))]
#[allow(clippy::too_many_arguments)]
pub fn lm_train(
    py: Python<'_>,
    kind: &str,
    model: Option<PathBuf>,
    prompts: Option<Bound<'_, PyAny>>,
    reward_funcs: Vec<Py<PyAny>>,
    reward_weights: Option<Vec<f64>>,
    settings: &Bound<'_, PyAny>,
    runs_dir: PathBuf,
    resume: Option<PathBuf>,
    callback: Option<Py<PyAny>>,
    checkpoint_every: u64,
    max_updates: Option<u64>,
) -> PyResult<crate::train::TrainOutcome> {
    let ckpt_kind = match kind {
        "grpo" => GRPO_KIND,
        "ppo" => PPO_KIND,
        other => return Err(PyValueError::new_err(format!("unknown trainer {other:?}"))),
    };
    if reward_funcs.is_empty() {
        return Err(PyValueError::new_err(
            "reward_funcs: give at least one reward function",
        ));
    }
    let weights = reward_weights.unwrap_or_else(|| vec![1.0; reward_funcs.len()]);
    if weights.len() != reward_funcs.len() {
        return Err(PyValueError::new_err(format!(
            "reward_weights has {} weights for {} reward functions",
            weights.len(),
            reward_funcs.len()
        )));
    }
    let funcs = reward_funcs
        .into_iter()
        .zip(weights)
        .map(|(f, w)| {
            let name = f
                .bind(py)
                .getattr("__name__")
                .and_then(|n| n.extract::<String>())
                .unwrap_or_else(|_| "reward".into());
            (w, f, name)
        })
        .collect();
    let raised = Arc::new(Mutex::new(None));
    let reward = Box::new(PythonRewards {
        funcs,
        raised: Arc::clone(&raised),
    });
    let overrides: Vec<(String, serde_json::Value)> = match py_to_json(settings)? {
        serde_json::Value::Object(o) => o.into_iter().collect(),
        _ => Vec::new(),
    };
    let (mut trainer, run, resumed) = match resume {
        Some(run) => {
            let mut t = RlTrainer::resume_with_reward(&run, reward).map_err(runtime)?;
            if rein_train::Trainer::kind(&t) != ckpt_kind {
                return Err(PyValueError::new_err(format!(
                    "{} is a {} run, not {kind}",
                    run.display(),
                    rein_train::Trainer::kind(&t)
                )));
            }
            for (k, v) in &overrides {
                match (k.as_str(), v.as_u64()) {
                    ("max_steps", Some(n)) => {
                        t.set_max_steps(n)
                            .map_err(|e| PyValueError::new_err(e.to_string()))?;
                        rein_train::write_config(&run, &t.settings_toml().map_err(runtime)?)
                            .map_err(runtime)?;
                    }
                    _ => {
                        return Err(PyValueError::new_err(format!(
                        "setting {k}: a resumed run keeps its settings (only max_steps may change)"
                    )))
                    }
                }
            }
            (t, run, true)
        }
        None => {
            let model = model.ok_or_else(|| PyValueError::new_err("model= is required"))?;
            let prompts = prompts.ok_or_else(|| PyValueError::new_err("prompts= is required"))?;
            let records: Vec<PromptRecord> = if let Ok(path) = prompts.extract::<PathBuf>() {
                rein_lm::rl::reward::read_prompts(&path)
                    .map_err(|e| PyValueError::new_err(e.to_string()))?
            } else {
                let rows = prompts.try_iter()?.collect::<PyResult<Vec<_>>>()?;
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| {
                        PromptRecord::from_row(&py_to_json(r)?, &format!("prompts[{i}]"))
                            .map_err(|e| PyValueError::new_err(e.to_string()))
                    })
                    .collect::<PyResult<Vec<_>>>()?
            };
            if records.is_empty() {
                return Err(PyValueError::new_err("prompts: no rows"));
            }
            let (t, config_toml, seed) =
                RlTrainer::build_with_reward(ckpt_kind, None, &overrides, &model, records, reward)
                    .map_err(|e| PyValueError::new_err(e.to_string()))?;
            let run = rein_train::create_run_dir(&runs_dir, "lm", kind, seed).map_err(runtime)?;
            t.write_run_files(&run, &config_toml, &[])
                .map_err(runtime)?;
            (t, run, false)
        }
    };
    let mut observer = crate::train::PythonObserver::new(callback, &trainer);
    let options = RunOptions {
        checkpoint_every,
        checkpoint_seconds: 0.0,
        max_updates,
        sample_every: checkpoint_every.max(1),
        resumed,
        // Python trains in one process.
        check_weights_every: 0,
    };
    let detached = Detached(&mut trainer);
    let (run_ref, options_ref) = (&run, &options);
    let (end, observer) = py.detach(move || {
        let t = detached.into_inner();
        let end = rein_train::run(t, run_ref, options_ref, &mut observer);
        (end, observer)
    });
    let raised = raised.lock().unwrap_or_else(|p| p.into_inner()).take();
    match (end, raised) {
        (Err(e), Some(cause)) => {
            // The reward function's own exception, with its traceback, as the cause.
            let err = crate::train::run_failed(&run, resumed, e);
            err.set_cause(py, Some(cause));
            Err(err)
        }
        (end, _) => crate::train::outcome(&run, resumed, end, observer),
    }
}
