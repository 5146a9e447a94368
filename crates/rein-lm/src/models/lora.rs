//! LoRA adapters (Hu et al. 2021, eq. 3: `h = W x + (alpha / r) B A x`) as PEFT reads and
//! writes them: `adapter_config.json` (PEFT's `LoraConfig`) and `adapter_model.safetensors`
//! with names `base_model.model.<module>.lora_A.weight` (`[r, in]`) and `...lora_B.weight`
//! (`[out, r]`), so that an adapter trained by rein loads in PEFT and one trained by PEFT loads
//! here.
//!
//! An adapter applies to the linear layers of the Llama family (`q_proj` ... `down_proj`);
//! the frozen base weights are shared, never copied: the KL reference of the RL trainers is
//! the same model with the adapter off ([`Llama::without_adapter`](crate::models::llama::Llama::without_adapter)), as TRL does with a
//! PEFT model. What PEFT can configure but rein does not compute (DoRA, per-module rank or
//! alpha patterns, trainable biases, extra saved modules, ...) is refused by name when an
//! adapter is read, never ignored.

use crate::models::common::sorted_vars;
use crate::models::llama::parameter_shapes;
use crate::models::llama_config::LlamaConfig;
use crate::LmError;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::Rng;
use rein_core::ReinRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The linear layers of a Llama-family decoder layer that an adapter can target.
pub const LLAMA_LINEAR_MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// The prefix PEFT puts before a module name in `adapter_model.safetensors`.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// PEFT's `target_modules`: module names matched as suffixes, or one string: a regular
/// expression matched against the whole module name, or `"all-linear"` (every linear layer but
/// the output head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// Names: a module is targeted when its name equals one or ends with `.name`.
    Names(Vec<String>),
    /// A regular expression (full match) or `all-linear`.
    Pattern(String),
}

/// The LoRA hyperparameters of an adapter (PEFT's `LoraConfig` fields that rein computes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank `r`.
    pub r: usize,
    /// `lora_alpha`: the update is scaled by `alpha / r` (or `alpha / sqrt(r)` with rsLoRA).
    pub lora_alpha: f64,
    /// Dropout on the adapter's input in training passes.
    pub lora_dropout: f64,
    /// Which linear layers get an adapter.
    pub target_modules: TargetModules,
    /// Rank-stabilised scaling `alpha / sqrt(r)` (Kalajdzievski 2023).
    pub use_rslora: bool,
    /// Module names excluded although targeted (PEFT's `exclude_modules` as names).
    pub exclude_modules: Vec<String>,
    /// The base model the adapter was trained on (a path, as PEFT records it).
    pub base_model_name_or_path: Option<String>,
}

/// PEFT `LoraConfig` keys that change what the adapter computes: each must have its neutral
/// value (given) or the adapter is refused, naming the key.
const NEUTRAL_KEYS: [(&str, &str); 14] = [
    ("use_dora", "false"),
    ("bias", "\"none\""),
    ("fan_in_fan_out", "false"),
    ("lora_bias", "false"),
    ("rank_pattern", "{}"),
    ("alpha_pattern", "{}"),
    ("layers_to_transform", "null"),
    ("modules_to_save", "null"),
    ("target_parameters", "null"),
    ("trainable_token_indices", "null"),
    ("layer_replication", "null"),
    ("use_qalora", "false"),
    ("alora_invocation_tokens", "null"),
    ("use_bdlora", "null"),
];

impl LoraConfig {
    /// The configuration of an `adapter_config.json` object. Errors name the key: a
    /// `peft_type` other than `LORA`, a missing `r`/`lora_alpha`/`target_modules`, or a
    /// non-neutral value of a feature rein does not compute (see the module docs).
    pub fn from_json(v: &serde_json::Value) -> Result<Self, String> {
        let obj = v.as_object().ok_or("not a JSON object")?;
        match obj.get("peft_type").and_then(|t| t.as_str()) {
            None | Some("LORA") => {}
            Some(other) => {
                return Err(format!(
                    "peft_type {other:?} is not supported (only \"LORA\" adapters)"
                ))
            }
        }
        for (key, neutral) in NEUTRAL_KEYS {
            let Some(val) = obj.get(key) else { continue };
            let neutral: serde_json::Value = serde_json::from_str(neutral).expect("literal");
            let empty_list = val.as_array().is_some_and(|a| a.is_empty());
            if *val != neutral && !(neutral.is_null() && empty_list) {
                return Err(format!(
                    "{key} = {val} is not supported (rein computes plain LoRA: it needs {neutral})"
                ));
            }
        }
        let r = obj
            .get("r")
            .and_then(|x| x.as_u64())
            .filter(|&r| r > 0)
            .ok_or("r must be a positive integer")? as usize;
        let lora_alpha = obj
            .get("lora_alpha")
            .and_then(|x| x.as_f64())
            .ok_or("lora_alpha must be a number")?;
        let lora_dropout = match obj.get("lora_dropout") {
            None | Some(serde_json::Value::Null) => 0.0,
            Some(x) => x
                .as_f64()
                .filter(|p| (0.0..1.0).contains(p))
                .ok_or("lora_dropout must be a number in [0, 1)")?,
        };
        let target_modules: TargetModules = serde_json::from_value(
            obj.get("target_modules")
                .cloned()
                .ok_or("target_modules is missing")?,
        )
        .map_err(|_| "target_modules must be a list of module names or one string")?;
        let use_rslora = obj
            .get("use_rslora")
            .map(|x| x.as_bool().ok_or("use_rslora must be true or false"))
            .transpose()?
            .unwrap_or(false);
        let exclude_modules = match obj.get("exclude_modules") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(x) => serde_json::from_value(x.clone())
                .map_err(|_| "exclude_modules must be a list of module names")?,
        };
        let base_model_name_or_path = obj
            .get("base_model_name_or_path")
            .and_then(|x| x.as_str())
            .map(str::to_string);
        let c = Self {
            r,
            lora_alpha,
            lora_dropout,
            target_modules,
            use_rslora,
            exclude_modules,
            base_model_name_or_path,
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks ranges; names the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.r == 0 {
            return Err("r must be at least 1".into());
        }
        if !(self.lora_alpha.is_finite() && self.lora_alpha > 0.0) {
            return Err(format!(
                "lora_alpha must be positive, got {}",
                self.lora_alpha
            ));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(format!(
                "lora_dropout must be in [0, 1), got {}",
                self.lora_dropout
            ));
        }
        if let TargetModules::Pattern(p) = &self.target_modules {
            if p != "all-linear" {
                regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    format!("target_modules {p:?} is not a regular expression: {e}")
                })?;
            }
        }
        Ok(())
    }

    /// The factor of `B A x`: `alpha / r`, or `alpha / sqrt(r)` with rsLoRA.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Whether the linear layer `module` (full name, e.g. `model.layers.0.self_attn.q_proj`) is
    /// targeted, as PEFT's `check_target_module_exists` decides.
    fn targets(&self, module: &str) -> bool {
        let suffix = |names: &[String]| {
            names
                .iter()
                .any(|t| module == t || module.ends_with(&format!(".{t}")))
        };
        if suffix(&self.exclude_modules) {
            return false;
        }
        match &self.target_modules {
            TargetModules::Names(names) => suffix(names),
            TargetModules::Pattern(p) if p == "all-linear" => true,
            TargetModules::Pattern(p) => regex::Regex::new(&format!("^(?:{p})$"))
                .map(|re| re.is_match(module))
                .unwrap_or(false),
        }
    }

    /// The targeted linear layers of `model` with their `(in, out)` sizes, in layer order. A
    /// target name that matches no linear layer is an error (as in PEFT), and so is one that
    /// names the embedding or the LM head (rein adapts the decoder's linear layers only).
    pub fn targeted_modules(
        &self,
        model: &LlamaConfig,
    ) -> Result<Vec<(String, usize, usize)>, String> {
        let mut out = Vec::new();
        for (name, shape) in parameter_shapes(model) {
            let Some(module) = name.strip_suffix(".weight") else {
                continue;
            };
            let kind = module.rsplit('.').next().unwrap_or("");
            if LLAMA_LINEAR_MODULES.contains(&kind) && self.targets(module) {
                out.push((module.to_string(), shape[1], shape[0]));
            }
        }
        if let TargetModules::Names(names) = &self.target_modules {
            for t in names {
                let last = t.rsplit('.').next().unwrap_or("");
                if ["embed_tokens", "lm_head", "score"].contains(&last) {
                    return Err(format!(
                        "target_modules: {t:?} is not a linear layer of the decoder; rein adapts {}",
                        LLAMA_LINEAR_MODULES.join(", ")
                    ));
                }
                if !out
                    .iter()
                    .any(|(m, _, _)| m == t || m.ends_with(&format!(".{t}")))
                {
                    return Err(format!(
                        "target_modules: {t:?} matches no linear layer of the model (its layers: {})",
                        LLAMA_LINEAR_MODULES.join(", ")
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err("target_modules matches no linear layer of the model".into());
        }
        Ok(out)
    }

    /// `adapter_config.json` content in PEFT's form (every key PEFT 0.21 writes that matters,
    /// with its neutral value), which `PeftModel.from_pretrained` reads.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": self.base_model_name_or_path,
            "r": self.r,
            "lora_alpha": self.lora_alpha,
            "lora_dropout": self.lora_dropout,
            "target_modules": self.target_modules,
            "exclude_modules": if self.exclude_modules.is_empty() { serde_json::Value::Null } else { serde_json::json!(self.exclude_modules) },
            "use_rslora": self.use_rslora,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "lora_bias": false,
            "use_dora": false,
            "modules_to_save": null,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "revision": null,
        })
    }
}

/// The LoRA settings of a trainer (`[settings.lora]` in presets, `--set lora.r=16`): off by
/// default; on, a fresh adapter (`A` as PEFT's Kaiming-uniform, `B` zero) is trained instead of
/// the whole model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraSettings {
    /// Train a LoRA adapter instead of every weight.
    pub enabled: bool,
    /// Rank.
    pub r: usize,
    /// `lora_alpha`.
    pub alpha: f64,
    /// `lora_dropout`.
    pub dropout: f64,
    /// Targeted modules (names, or `["all-linear"]`).
    pub target_modules: Vec<String>,
    /// rsLoRA scaling.
    pub use_rslora: bool,
    /// The learning rate while the adapter trains (adapters want a larger one than full
    /// fine-tuning, so one preset serves both); `None`: the trainer's `learning_rate`.
    pub learning_rate: Option<f64>,
}

impl Default for LoraSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            r: 16,
            alpha: 32.0,
            dropout: 0.0,
            target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"]
                .map(String::from)
                .to_vec(),
            use_rslora: false,
            learning_rate: None,
        }
    }
}

impl LoraSettings {
    /// Checks ranges; names the field at fault (`lora.r`, `lora.learning_rate`, ...).
    pub fn validate(&self) -> Result<(), LmError> {
        if let Some(lr) = self.learning_rate {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(LmError::Input(format!(
                    "lora.learning_rate: must be positive, got {lr}"
                )));
            }
        }
        if self.target_modules.is_empty() {
            return Err(LmError::Input(
                "lora.target_modules: name at least one module (or \"all-linear\")".into(),
            ));
        }
        self.to_config(None).map(|_| ())
    }

    /// The learning rate a trainer uses: `learning_rate` of these settings when the adapter
    /// trains and it is set, else the trainer's own `full`.
    pub fn learning_rate_or(&self, full: f64) -> f64 {
        match (self.enabled, self.learning_rate) {
            (true, Some(lr)) => lr,
            _ => full,
        }
    }

    /// The adapter configuration of these settings for the base model at `base`.
    pub fn to_config(&self, base: Option<&Path>) -> Result<LoraConfig, LmError> {
        let target_modules =
            if self.target_modules.len() == 1 && self.target_modules[0] == "all-linear" {
                TargetModules::Pattern("all-linear".into())
            } else {
                TargetModules::Names(self.target_modules.clone())
            };
        let c = LoraConfig {
            r: self.r,
            lora_alpha: self.alpha,
            lora_dropout: self.dropout,
            target_modules,
            use_rslora: self.use_rslora,
            exclude_modules: Vec::new(),
            base_model_name_or_path: base.map(|p| {
                std::fs::canonicalize(p)
                    .unwrap_or_else(|_| p.to_path_buf())
                    .display()
                    .to_string()
            }),
        };
        c.validate().map_err(|e| {
            let e = e
                .replace("lora_alpha", "alpha")
                .replace("lora_dropout", "dropout");
            LmError::Input(format!("lora.{e}"))
        })?;
        Ok(c)
    }
}

/// A LoRA adapter: its configuration and its `A`/`B` matrices (trainable variables) under
/// `<module>.lora_A.weight` / `<module>.lora_B.weight` (PEFT's names without the prefix).
#[derive(Clone)]
pub struct LoraAdapter {
    /// Hyperparameters.
    pub config: LoraConfig,
    /// The `A` and `B` matrices.
    pub varmap: VarMap,
}

impl LoraAdapter {
    /// A fresh adapter for `model` initialised as PEFT's `init_lora_weights=True`: `A`
    /// Kaiming-uniform with `a = sqrt(5)` (uniform in `±1/sqrt(in)`), `B` zero, so that the
    /// adapted model starts equal to the base.
    pub fn new(
        config: LoraConfig,
        model: &LlamaConfig,
        rng: &mut ReinRng,
    ) -> Result<Self, LmError> {
        let targets = config
            .targeted_modules(model)
            .map_err(|e| LmError::Input(format!("lora: {e}")))?;
        let mut tensors = HashMap::new();
        for (module, inp, out) in targets {
            let bound = 1.0 / (inp as f64).sqrt();
            let a: Vec<f32> = (0..config.r * inp)
                .map(|_| rng.random_range(-bound..bound) as f32)
                .collect();
            tensors.insert(
                format!("{module}.lora_A.weight"),
                Tensor::from_vec(a, (config.r, inp), &Device::Cpu)?,
            );
            tensors.insert(
                format!("{module}.lora_B.weight"),
                Tensor::zeros((out, config.r), DType::F32, &Device::Cpu)?,
            );
        }
        Self::from_tensors(config, tensors, model, "new adapter")
    }

    /// An adapter of `config` from tensors under PEFT's names (with or without the
    /// `base_model.model.` prefix), each checked against `model`: every targeted module needs
    /// both matrices of the right shapes, and a tensor of no targeted module is an error.
    pub fn from_tensors(
        config: LoraConfig,
        tensors: HashMap<String, Tensor>,
        model: &LlamaConfig,
        source: &str,
    ) -> Result<Self, LmError> {
        let bad = |e: String| LmError::Format(format!("{source}: {e}"));
        let targets = config.targeted_modules(model).map_err(bad)?;
        let mut tensors: HashMap<String, Tensor> = tensors
            .into_iter()
            .map(|(n, t)| {
                let n = n.strip_prefix(PEFT_PREFIX).unwrap_or(&n);
                // PEFT writes no adapter name; a `.default.` left in a name is dropped too.
                (
                    n.replace(".lora_A.default.", ".lora_A.")
                        .replace(".lora_B.default.", ".lora_B."),
                    t,
                )
            })
            .collect();
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("varmap lock");
            for (module, inp, out) in &targets {
                for (which, shape) in [("lora_A", [config.r, *inp]), ("lora_B", [*out, config.r])] {
                    let name = format!("{module}.{which}.weight");
                    let t = tensors.remove(&name).ok_or_else(|| {
                        bad(format!(
                            "tensor {PEFT_PREFIX}{name} (shape {shape:?}) is missing for the targeted module {module}"
                        ))
                    })?;
                    if t.dims() != shape {
                        return Err(bad(format!(
                            "tensor {PEFT_PREFIX}{name} has shape {:?}; r = {} and the model's {module} need {shape:?}",
                            t.dims(),
                            config.r
                        )));
                    }
                    data.insert(name, Var::from_tensor(&t.to_dtype(DType::F32)?)?);
                }
            }
        }
        if let Some(extra) = tensors.keys().min() {
            return Err(bad(format!(
                "tensor {extra} belongs to no module the adapter's target_modules select in this model"
            )));
        }
        Ok(Self { config, varmap })
    }

    /// Reads a PEFT adapter directory (`adapter_config.json`, `adapter_model.safetensors`) for
    /// `model`; errors name the file and the key or tensor.
    pub fn load(dir: &Path, model: &LlamaConfig) -> Result<Self, LmError> {
        let cfg_path = dir.join("adapter_config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| LmError::io(&cfg_path, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| LmError::Format(format!("{}: not JSON: {e}", cfg_path.display())))?;
        let config = LoraConfig::from_json(&v)
            .map_err(|e| LmError::Format(format!("{}: {e}", cfg_path.display())))?;
        let weights = dir.join("adapter_model.safetensors");
        let tensors = crate::checkpoint::read_safetensors(&weights)?;
        Self::from_tensors(config, tensors, model, &weights.display().to_string())
    }

    /// Writes the adapter as `PeftModel.save_pretrained` does (files written atomically).
    pub fn save(&self, dir: &Path) -> Result<(), LmError> {
        std::fs::create_dir_all(dir).map_err(|e| LmError::io(dir, e))?;
        let tensors: Vec<(String, Tensor)> = self
            .named_vars()
            .into_iter()
            .map(|(n, v)| (format!("{PEFT_PREFIX}{n}"), v.as_tensor().clone()))
            .collect();
        let bytes = crate::checkpoint::safetensors_bytes(&tensors)?;
        let path = dir.join("adapter_model.safetensors");
        rein_core::metrics::write_atomic(&path, &bytes).map_err(|e| LmError::io(&path, e))?;
        let path = dir.join("adapter_config.json");
        let json = serde_json::to_string_pretty(&self.config.to_json())
            .map_err(|e| LmError::Format(e.to_string()))?;
        rein_core::metrics::write_atomic(&path, json.as_bytes()).map_err(|e| LmError::io(&path, e))
    }

    /// The `A` and `B` variables by name, sorted.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.varmap)
    }

    /// The `(A, B)` pair of `module`, if it is adapted.
    pub(crate) fn pair(&self, module: &str) -> Option<(Tensor, Tensor)> {
        let data = self.varmap.data().lock().expect("varmap lock");
        let a = data.get(&format!("{module}.lora_A.weight"))?;
        let b = data.get(&format!("{module}.lora_B.weight"))?;
        Some((a.as_tensor().clone(), b.as_tensor().clone()))
    }

    /// Number of adapter parameters.
    pub fn num_parameters(&self) -> usize {
        self.named_vars()
            .iter()
            .map(|(_, v)| v.as_tensor().elem_count())
            .sum()
    }

    /// An independent copy (fresh variables with the same values).
    pub fn deep_copy(&self) -> Result<Self, LmError> {
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("varmap lock");
            for (n, v) in self.named_vars() {
                data.insert(n, Var::from_tensor(&v.as_tensor().copy()?)?);
            }
        }
        Ok(Self {
            config: self.config.clone(),
            varmap,
        })
    }
}

/// A checksum of a model's frozen base weights (element count, sum and sum of squares, each
/// over every tensor in name order), recorded with a LoRA run so that `--resume` refuses a base
/// model that changed since.
pub fn base_fingerprint(tensors: &[(String, Tensor)]) -> Result<String, LmError> {
    let (mut n, mut s, mut s2) = (0usize, 0f64, 0f64);
    for (_, t) in tensors {
        // Read in place: a copy would allocate each weight matrix again at every checkpoint.
        crate::kernels::ops::with_f32_slice(t, |v| {
            n += v.len();
            for &x in v {
                let x = f64::from(x);
                s += x;
                s2 += x * x;
            }
            Ok::<_, LmError>(())
        })?;
    }
    Ok(format!("{n}:{s:.9e}:{s2:.9e}"))
}
