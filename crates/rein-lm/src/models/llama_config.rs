//! The configuration of the Llama family (`model_type` `llama`, `mistral`, `qwen2`, `qwen3`) as
//! transformers reads `config.json`: both the transformers-5 form (`rope_parameters`, `dtype`)
//! and the transformers-4 form most hub checkpoints have (`rope_theta` at the top level,
//! `rope_scaling` null or a dict with `rope_type`/`type`, `torch_dtype`).
//!
//! The file's own object is kept (`raw`) and written back with rein's values on top, so that a
//! saved directory keeps every key (and the rotary form) it was loaded with.

use crate::LmError;
use serde_json::{json, Map, Value};
use std::path::Path;

/// The `model_type`s this decoder implements.
pub const SUPPORTED_MODEL_TYPES: [&str; 4] = ["llama", "mistral", "qwen2", "qwen3"];

/// Which member of the family: the names and biases differ, the computation is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `LlamaForCausalLM` (Llama 2/3, SmolLM2, TinyLlama, ...): biases per `attention_bias`
    /// and `mlp_bias`.
    Llama,
    /// `MistralForCausalLM`: no biases, an optional sliding window.
    Mistral,
    /// `Qwen2ForCausalLM` (Qwen2, Qwen2.5): biases on the q/k/v projections only.
    Qwen2,
    /// `Qwen3ForCausalLM`: per-head RMSNorm of queries and keys before the rotation.
    Qwen3,
}

impl Family {
    /// The family of a `model_type`, or an error naming the supported ones.
    pub fn parse(model_type: &str) -> Result<Self, String> {
        Ok(match model_type {
            "llama" => Self::Llama,
            "mistral" => Self::Mistral,
            "qwen2" => Self::Qwen2,
            "qwen3" => Self::Qwen3,
            other => {
                return Err(format!(
                    "model_type {other:?} is not supported (supported: gpt2, {})",
                    SUPPORTED_MODEL_TYPES.join(", ")
                ))
            }
        })
    }

    /// transformers' `model_type`.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Mistral => "mistral",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
        }
    }

    /// The causal-LM class name of `architectures`.
    pub fn causal_lm_class(self) -> &'static str {
        match self {
            Self::Llama => "LlamaForCausalLM",
            Self::Mistral => "MistralForCausalLM",
            Self::Qwen2 => "Qwen2ForCausalLM",
            Self::Qwen3 => "Qwen3ForCausalLM",
        }
    }
}

/// How the rotary frequencies are scaled (`rope_type`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// `theta^(-2i/d)` as in Su et al. 2021.
    Default,
    /// Position interpolation (Chen et al. 2023): every frequency divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3.1's scaling (transformers' `_compute_llama3_parameters`): long wavelengths
    /// divided by `factor`, short ones kept, a smooth interpolation between.
    Llama3 {
        /// Divisor of the low frequencies.
        factor: f64,
        /// `original_max_position_embeddings / low_freq_factor` is the long-wavelength bound.
        low_freq_factor: f64,
        /// `original_max_position_embeddings / high_freq_factor` is the short-wavelength bound.
        high_freq_factor: f64,
        /// The context length the model was pretrained with.
        original_max_position_embeddings: f64,
    },
}

/// A Llama-family architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Member of the family.
    pub family: Family,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than the query heads).
    pub num_key_value_heads: usize,
    /// Per-head size (explicit in Qwen3 and others; else `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// Longest sequence (positions beyond are refused).
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary base.
    pub rope_theta: f64,
    /// Rotary frequency scaling.
    pub rope_scaling: RopeScaling,
    /// Biases on the q/k/v projections.
    pub qkv_bias: bool,
    /// A bias on the output projection.
    pub o_bias: bool,
    /// Biases in the MLP.
    pub mlp_bias: bool,
    /// The LM head is the token embedding.
    pub tie_word_embeddings: bool,
    /// A sequence-classification checkpoint (`architectures` names a
    /// `*ForSequenceClassification` class): a reward-model backbone without an LM head of its
    /// own.
    pub sequence_classification: bool,
    /// Mistral's sliding attention window (`None`: full attention).
    pub sliding_window: Option<usize>,
    /// The MLP's activation (`hidden_act`, `silu` in every released model).
    pub hidden_act: String,
    /// Std of the normal initialisation of new models.
    pub initializer_range: f64,
    /// Beginning-of-sequence id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence ids (`eos_token_id` may be a list).
    pub eos_token_ids: Vec<u32>,
    /// Padding id.
    pub pad_token_id: Option<u32>,
    /// The object read from `config.json` (empty for a new model), written back under rein's
    /// values.
    pub raw: Map<String, Value>,
}

fn get_usize(obj: &Map<String, Value>, key: &str) -> Result<Option<usize>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| format!("{key} must be a non-negative integer, got {v}")),
    }
}

fn need_usize(obj: &Map<String, Value>, key: &str) -> Result<usize, String> {
    get_usize(obj, key)?.ok_or_else(|| format!("{key} is missing"))
}

fn get_f64(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("{key} must be a number, got {v}")),
    }
}

fn get_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("{key} must be true or false, got {v}")),
    }
}

/// Token ids of `key`: one id, a list of ids or null.
fn get_ids(obj: &Map<String, Value>, key: &str) -> Result<Vec<u32>, String> {
    let one = |v: &Value| {
        v.as_u64()
            .filter(|&n| n <= u32::MAX as u64)
            .map(|n| n as u32)
            .ok_or_else(|| format!("{key} must be a token id or a list of them, got {v}"))
    };
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(one).collect(),
        Some(v) => Ok(vec![one(v)?]),
    }
}

/// The rotary settings of either form: `(theta, scaling)`.
fn parse_rope(obj: &Map<String, Value>) -> Result<(f64, RopeScaling), String> {
    let (params, where_) = match obj.get("rope_parameters") {
        Some(Value::Object(p)) => (Some(p), "rope_parameters"),
        Some(Value::Null) | None => match obj.get("rope_scaling") {
            Some(Value::Object(p)) => (Some(p), "rope_scaling"),
            Some(Value::Null) | None => (None, ""),
            Some(v) => return Err(format!("rope_scaling must be null or an object, got {v}")),
        },
        Some(v) => return Err(format!("rope_parameters must be an object, got {v}")),
    };
    let theta = params
        .map(|p| get_f64(p, "rope_theta"))
        .transpose()
        .map_err(|e| format!("{where_}.{e}"))?
        .flatten()
        .or(get_f64(obj, "rope_theta")?)
        .unwrap_or(10000.0);
    if !(theta > 1.0 && theta.is_finite()) {
        return Err(format!("rope_theta must be a number above 1, got {theta}"));
    }
    let Some(p) = params else {
        return Ok((theta, RopeScaling::Default));
    };
    let kind = p
        .get("rope_type")
        .or_else(|| p.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let num = |key: &str| -> Result<f64, String> {
        get_f64(p, key)
            .map_err(|e| format!("{where_}.{e}"))?
            .filter(|v| *v > 0.0 && v.is_finite())
            .ok_or_else(|| {
                format!("{where_}.{key} must be a positive number for rope_type {kind:?}")
            })
    };
    let scaling = match kind {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear {
            factor: num("factor")?,
        },
        "llama3" => {
            let s = RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            };
            if let RopeScaling::Llama3 {
                low_freq_factor,
                high_freq_factor,
                ..
            } = s
            {
                if high_freq_factor <= low_freq_factor {
                    return Err(format!(
                        "{where_}: high_freq_factor ({high_freq_factor}) must exceed low_freq_factor ({low_freq_factor})"
                    ));
                }
            }
            s
        }
        other => {
            return Err(format!(
                "{where_}.rope_type {other:?} is not supported (supported: default, linear, llama3)"
            ))
        }
    };
    Ok((theta, scaling))
}

impl LlamaConfig {
    /// Reads and checks a `config.json` object; errors name the key.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let obj = value
            .as_object()
            .ok_or("config.json must hold a JSON object")?;
        let model_type = obj
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or("model_type is missing")?;
        let family = Family::parse(model_type)?;
        let hidden_size = need_usize(obj, "hidden_size")?;
        let num_attention_heads = need_usize(obj, "num_attention_heads")?;
        if num_attention_heads == 0 {
            return Err("num_attention_heads must be at least 1".into());
        }
        let head_dim = get_usize(obj, "head_dim")?.unwrap_or(hidden_size / num_attention_heads);
        let (rope_theta, rope_scaling) = parse_rope(obj)?;
        let attention_bias = get_bool(obj, "attention_bias")?.unwrap_or(false);
        let (qkv_bias, o_bias, mlp_bias) = match family {
            Family::Llama => (
                attention_bias,
                attention_bias,
                get_bool(obj, "mlp_bias")?.unwrap_or(false),
            ),
            Family::Mistral => (false, false, false),
            // Qwen2's q/k/v projections always carry biases (transformers hard-codes them).
            Family::Qwen2 => (true, false, false),
            Family::Qwen3 => (attention_bias, attention_bias, false),
        };
        let sliding_window = match family {
            Family::Mistral => get_usize(obj, "sliding_window")?,
            Family::Qwen2 | Family::Qwen3 => {
                let used = get_bool(obj, "use_sliding_window")?.unwrap_or(false);
                let window = get_usize(obj, "sliding_window")?;
                if used && window.is_some() {
                    return Err(format!(
                        "use_sliding_window with sliding_window {} is not supported for {model_type} (only full attention; Mistral's sliding window is)",
                        window.unwrap_or(0)
                    ));
                }
                None
            }
            Family::Llama => None,
        };
        if let Some(p) = get_f64(obj, "attention_dropout")? {
            if p != 0.0 {
                return Err(format!(
                    "attention_dropout {p} is not supported (rein trains the Llama family without dropout, as every released checkpoint is configured)"
                ));
            }
        }
        let cfg = Self {
            family,
            vocab_size: need_usize(obj, "vocab_size")?,
            hidden_size,
            intermediate_size: need_usize(obj, "intermediate_size")?,
            num_hidden_layers: need_usize(obj, "num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads: get_usize(obj, "num_key_value_heads")?
                .unwrap_or(num_attention_heads),
            head_dim,
            max_position_embeddings: get_usize(obj, "max_position_embeddings")?.unwrap_or(2048),
            rms_norm_eps: get_f64(obj, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            qkv_bias,
            o_bias,
            mlp_bias,
            tie_word_embeddings: get_bool(obj, "tie_word_embeddings")?.unwrap_or(false),
            sequence_classification: obj
                .get("architectures")
                .and_then(Value::as_array)
                .is_some_and(|a| {
                    a.iter().any(|c| {
                        c.as_str()
                            .is_some_and(|c| c.ends_with("ForSequenceClassification"))
                    })
                }),
            sliding_window,
            hidden_act: obj
                .get("hidden_act")
                .and_then(Value::as_str)
                .unwrap_or("silu")
                .to_string(),
            initializer_range: get_f64(obj, "initializer_range")?.unwrap_or(0.02),
            bos_token_id: get_ids(obj, "bos_token_id")?.first().copied(),
            eos_token_ids: get_ids(obj, "eos_token_id")?,
            pad_token_id: get_ids(obj, "pad_token_id")?.first().copied(),
            raw: obj.clone(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads `config.json`, errors naming the file and key.
    pub fn load(path: &Path) -> Result<Self, LmError> {
        let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| LmError::Format(format!("{}: not JSON: {e}", path.display())))?;
        Self::from_json(&v).map_err(|e| LmError::Format(format!("{}: {e}", path.display())))
    }

    /// Checks that the numbers describe a buildable model, naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        // Upper bounds far above any released model (Llama 3.1 405B: 126 layers, 16384 wide,
        // 53248 MLP, 128 heads, vocab 128256; Gemma: vocab 256000): a damaged config.json
        // with a huge size is refused before anything is allocated for it.
        crate::models::config::check_sizes(&[
            ("vocab_size", self.vocab_size, 1 << 24),
            ("hidden_size", self.hidden_size, 1 << 17),
            ("intermediate_size", self.intermediate_size, 1 << 20),
            ("num_hidden_layers", self.num_hidden_layers, 1 << 12),
            ("num_attention_heads", self.num_attention_heads, 1 << 12),
            ("num_key_value_heads", self.num_key_value_heads, 1 << 12),
            ("head_dim", self.head_dim, 1 << 14),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                1 << 26,
            ),
        ])?;
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim ({}) must be even for the rotary embedding",
                self.head_dim
            ));
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return Err(format!(
                "rms_norm_eps must be positive, got {}",
                self.rms_norm_eps
            ));
        }
        if self.sliding_window == Some(0) {
            return Err("sliding_window must be at least 1 (or null)".into());
        }
        crate::models::gpt2::ActivationFunction::parse(&self.hidden_act)
            .map_err(|e| e.replace("activation_function", "hidden_act"))?;
        Ok(())
    }

    /// The rotary inverse frequencies, `[head_dim / 2]`, as transformers' rope initialisers
    /// compute them (`1 / theta^(2i/d)`, then the `rope_type`'s scaling).
    pub fn inv_freq(&self) -> Vec<f32> {
        let d = self.head_dim as f64;
        let base: Vec<f64> = (0..self.head_dim / 2)
            .map(|i| 1.0 / self.rope_theta.powf(2.0 * i as f64 / d))
            .collect();
        let scaled: Vec<f64> = match self.rope_scaling {
            RopeScaling::Default => base,
            RopeScaling::Linear { factor } => base.iter().map(|f| f / factor).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => {
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen > low_wavelen {
                            f / factor
                        } else if wavelen < high_wavelen {
                            f
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        };
        scaled.into_iter().map(|f| f as f32).collect()
    }

    /// Number of parameters (a tied head counted once).
    pub fn num_parameters(&self) -> usize {
        crate::models::llama::parameter_shapes(self)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// The first end-of-sequence id, if any.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token_ids.first().copied()
    }

    /// `config.json` of this architecture: the loaded object with rein's values on top, the
    /// rotary settings in the form the file had (transformers 5's `rope_parameters` for new
    /// models).
    pub fn to_json(&self) -> Value {
        let mut o = self.raw.clone();
        let f = self.family;
        o.insert("model_type".into(), f.model_type().into());
        o.entry("architectures")
            .or_insert_with(|| json!([f.causal_lm_class()]));
        for (k, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            o.insert(k.into(), v.into());
        }
        o.insert("rms_norm_eps".into(), self.rms_norm_eps.into());
        o.insert(
            "tie_word_embeddings".into(),
            self.tie_word_embeddings.into(),
        );
        o.insert("hidden_act".into(), self.hidden_act.clone().into());
        o.insert("initializer_range".into(), self.initializer_range.into());
        match f {
            Family::Llama => {
                o.insert("attention_bias".into(), self.qkv_bias.into());
                o.insert("mlp_bias".into(), self.mlp_bias.into());
            }
            Family::Qwen3 => {
                o.insert("attention_bias".into(), self.qkv_bias.into());
            }
            Family::Mistral => {
                o.insert("sliding_window".into(), json!(self.sliding_window));
            }
            Family::Qwen2 => {}
        }
        let mut rope = Map::new();
        rope.insert("rope_theta".into(), self.rope_theta.into());
        match self.rope_scaling {
            RopeScaling::Default => {
                rope.insert("rope_type".into(), "default".into());
            }
            RopeScaling::Linear { factor } => {
                rope.insert("rope_type".into(), "linear".into());
                rope.insert("factor".into(), factor.into());
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                rope.insert("rope_type".into(), "llama3".into());
                rope.insert("factor".into(), factor.into());
                rope.insert("low_freq_factor".into(), low_freq_factor.into());
                rope.insert("high_freq_factor".into(), high_freq_factor.into());
                rope.insert(
                    "original_max_position_embeddings".into(),
                    (original_max_position_embeddings as u64).into(),
                );
            }
        }
        let transformers4 = !o.contains_key("rope_parameters") && o.contains_key("rope_theta");
        if transformers4 {
            o.insert("rope_theta".into(), self.rope_theta.into());
            rope.remove("rope_theta");
            let scaling = if self.rope_scaling == RopeScaling::Default {
                Value::Null
            } else {
                Value::Object(rope)
            };
            o.insert("rope_scaling".into(), scaling);
        } else {
            o.remove("rope_theta");
            o.remove("rope_scaling");
            o.insert("rope_parameters".into(), Value::Object(rope));
        }
        let ids = |v: &[u32]| match v {
            [] => Value::Null,
            [one] => json!(one),
            many => json!(many),
        };
        o.insert(
            "bos_token_id".into(),
            ids(&self.bos_token_id.into_iter().collect::<Vec<_>>()),
        );
        o.insert("eos_token_id".into(), ids(&self.eos_token_ids));
        o.insert(
            "pad_token_id".into(),
            ids(&self.pad_token_id.into_iter().collect::<Vec<_>>()),
        );
        if !o.contains_key("dtype") && !o.contains_key("torch_dtype") {
            o.insert("dtype".into(), "float32".into());
        }
        Value::Object(o)
    }

    /// Writes `config.json` (see [`Self::to_json`]) atomically.
    pub fn save(&self, path: &Path) -> Result<(), LmError> {
        let text = serde_json::to_string_pretty(&self.to_json())
            .map_err(|e| LmError::Format(e.to_string()))?;
        rein_core::metrics::write_atomic(path, text.as_bytes()).map_err(|e| LmError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
               "num_hidden_layers": 1, "num_attention_heads": 2})
    }

    #[test]
    fn reads_both_rotary_forms_and_refuses_unknown_ones() {
        let mut v4 = base();
        v4["rope_theta"] = json!(500000.0);
        v4["rope_scaling"] = json!({"type": "linear", "factor": 2.0});
        let c4 = LlamaConfig::from_json(&v4).unwrap();
        assert_eq!(c4.rope_theta, 500000.0);
        assert_eq!(c4.rope_scaling, RopeScaling::Linear { factor: 2.0 });
        // Written back in the transformers-4 form it came in.
        let back = c4.to_json();
        assert_eq!(back["rope_theta"], json!(500000.0));
        assert_eq!(back["rope_scaling"]["factor"], json!(2.0));
        assert_eq!(LlamaConfig::from_json(&back).unwrap(), {
            let mut c = c4.clone();
            c.raw = back.as_object().unwrap().clone();
            c
        });
        let mut v5 = base();
        v5["rope_parameters"] = json!({"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0});
        let e = LlamaConfig::from_json(&v5).unwrap_err();
        assert!(
            e.contains("rope_type \"yarn\"") && e.contains("llama3"),
            "{e}"
        );
        let mut bad = base();
        bad["model_type"] = json!("falcon");
        let e = LlamaConfig::from_json(&bad).unwrap_err();
        assert!(e.contains("falcon") && e.contains("qwen3"), "{e}");
        let mut gqa = base();
        gqa["num_key_value_heads"] = json!(3);
        let e = LlamaConfig::from_json(&gqa).unwrap_err();
        assert!(e.contains("num_key_value_heads"), "{e}");
    }

    /// Llama 3.1's scaling against values of transformers' `_compute_llama3_parameters`
    /// (factor 8, low 1, high 4, original 8192, theta 500000, head_dim 128): the first
    /// frequency is kept, the last divided by 8.
    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let mut v = base();
        v["hidden_size"] = json!(256);
        v["rope_parameters"] = json!({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
        let c = LlamaConfig::from_json(&v).unwrap();
        let f = c.inv_freq();
        assert_eq!(f.len(), 64);
        assert_eq!(f[0], 1.0);
        let plain = 1.0 / 500000f64.powf(126.0 / 128.0);
        assert!((f[63] as f64 - plain / 8.0).abs() < 1e-12);
    }
}
