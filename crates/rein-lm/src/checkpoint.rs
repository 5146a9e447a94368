//! Reading and writing Hugging Face model directories: `config.json` plus `model.safetensors`
//! or sharded weights (f32, f16 or bf16 tensors), for GPT-2 (`transformer.`-prefixed names as
//! `save_pretrained` writes, or the bare names of the original `gpt2` checkpoint) and the
//! Llama family; `.gguf` files through [`crate::gguf`]; and trainer checkpoints.

use crate::models::gpt2::parameter_shapes;
use crate::models::{Model, ModelConfig};
use crate::LmError;
use candle_core::{DType, Device, Tensor};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Tensors of a safetensors file, converted to f32, by name.
pub fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>, LmError> {
    let bytes = std::fs::read(path).map_err(|e| LmError::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| LmError::Format(format!("{}: not a safetensors file: {e}", path.display())))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let data = view.data();
        let t = match view.dtype() {
            safetensors::Dtype::F32 => {
                let v: Vec<f32> = data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Tensor::from_vec(v, shape, &Device::Cpu)?
            }
            safetensors::Dtype::F16 | safetensors::Dtype::BF16 => {
                let dt = if view.dtype() == safetensors::Dtype::F16 {
                    DType::F16
                } else {
                    DType::BF16
                };
                Tensor::from_raw_buffer(data, dt, &shape, &Device::Cpu)?.to_dtype(DType::F32)?
            }
            other => {
                // Buffers such as the old causal-mask `attn.bias` (u8/bool) are not parameters.
                if name.ends_with("attn.bias") || name.ends_with("attn.masked_bias") {
                    continue;
                }
                return Err(LmError::Format(format!(
                    "{}: tensor {name} has dtype {other:?}; expected F32, F16 or BF16",
                    path.display()
                )));
            }
        };
        out.insert(name, t);
    }
    Ok(out)
}

/// The weights of a model directory: `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json` (`weight_map`), converted to f32.
pub fn read_weights(dir: &Path) -> Result<(HashMap<String, Tensor>, String), LmError> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok((read_safetensors(&single)?, single.display().to_string()));
    }
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| LmError::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| LmError::Format(format!("{}: not JSON: {e}", index.display())))?;
        let map = v["weight_map"].as_object().ok_or_else(|| {
            LmError::Format(format!(
                "{}: expected a \"weight_map\" object of tensor name -> shard file",
                index.display()
            ))
        })?;
        let mut shards: Vec<&str> = map.values().filter_map(|f| f.as_str()).collect();
        shards.sort_unstable();
        shards.dedup();
        let mut all = HashMap::new();
        for shard in shards {
            if shard.contains('/') || shard.contains("..") {
                return Err(LmError::Format(format!(
                    "{}: shard {shard:?} is not a file name in the directory",
                    index.display()
                )));
            }
            let path = dir.join(shard);
            if !path.exists() {
                return Err(LmError::Format(format!(
                    "{}: missing (listed in {})",
                    path.display(),
                    index.display()
                )));
            }
            all.extend(read_safetensors(&path)?);
        }
        return Ok((all, index.display().to_string()));
    }
    let hint = if dir.join("pytorch_model.bin").exists() {
        " (only pytorch_model.bin is there: convert it with save_pretrained(safe_serialization=True))"
    } else {
        ""
    };
    Err(LmError::Format(format!(
        "{}: missing, and no model.safetensors.index.json{hint}",
        single.display()
    )))
}

/// Loads a model: a Hugging Face directory (`config.json` of any supported `model_type`
/// plus its safetensors weights) or a llama.cpp `.gguf` file. Tensors that are not parameters
/// of the architecture (a value head, a reward head `score.weight`) are returned alongside,
/// with their names.
pub fn load_model_with_extras(path: &Path) -> Result<(Model, HashMap<String, Tensor>), LmError> {
    if crate::gguf::is_gguf(path) {
        return Ok((crate::gguf::load_model(path)?, HashMap::new()));
    }
    let cfg_path = path.join("config.json");
    if !cfg_path.exists() {
        return Err(LmError::Format(format!(
            "{}: missing (a model is a directory with config.json and model.safetensors, or a .gguf file)",
            cfg_path.display()
        )));
    }
    let config = ModelConfig::load(&cfg_path)?;
    let (raw, source) = read_weights(path)?;
    let mut params = HashMap::new();
    let mut extras = HashMap::new();
    match &config {
        ModelConfig::Gpt2(c) => {
            let expected: HashSet<String> =
                parameter_shapes(c).into_iter().map(|(n, _)| n).collect();
            for (name, t) in raw {
                let bare = name
                    .strip_prefix("transformer.")
                    .unwrap_or(&name)
                    .to_string();
                if expected.contains(&bare) {
                    params.insert(bare, t);
                } else if bare == "lm_head.weight"
                    || bare.ends_with("attn.bias")
                    || bare.ends_with("attn.masked_bias")
                {
                    // Tied LM head, causal-mask buffers: nothing to load.
                } else {
                    extras.insert(name, t);
                }
            }
        }
        ModelConfig::Llama(c) => {
            let expected: HashSet<String> = crate::models::llama::parameter_shapes(c)
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            for (name, t) in raw {
                if expected.contains(&name) {
                    params.insert(name, t);
                } else if (name == "lm_head.weight" && c.tie_word_embeddings)
                    || name.ends_with("rotary_emb.inv_freq")
                {
                    // A tied head saved anyway, rotary buffers of old checkpoints.
                } else {
                    extras.insert(name, t);
                }
            }
        }
    }
    let model = Model::from_tensors(config, params, &source)?;
    Ok((model, extras))
}

/// Loads a model (see [`load_model_with_extras`]).
pub fn load_model(path: &Path) -> Result<Model, LmError> {
    Ok(load_model_with_extras(path)?.0)
}

/// Serialises named tensors to safetensors bytes with `{"format": "pt"}` metadata, which
/// transformers expects.
pub fn safetensors_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>, LmError> {
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let data: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.contiguous()?)))
        .collect::<Result<_, candle_core::Error>>()?;
    safetensors::serialize(data, Some(meta)).map_err(|e| LmError::Format(e.to_string()))
}

/// Writes `dir/config.json` and `dir/model.safetensors` (f32) as `save_pretrained` does, so
/// that transformers' `from_pretrained` loads it (a model with a LoRA adapter merged): GPT-2's names `transformer.`-prefixed without
/// the tied `lm_head.weight`, the Llama family's under their own names. `extra` tensors (a value
/// head, a reward head) are stored under their own names. Files are written atomically.
pub fn save_model(model: &Model, dir: &Path, extra: &[(String, Tensor)]) -> Result<(), LmError> {
    std::fs::create_dir_all(dir).map_err(|e| LmError::io(dir, e))?;
    // A model with a LoRA adapter is written merged (PEFT's `merge_and_unload`).
    let merged;
    let model = if model.adapter().is_some() {
        merged = model.merged()?;
        &merged
    } else {
        model
    };
    let mut tensors: Vec<(String, Tensor)> = match model {
        Model::Gpt2(m) => m
            .named_vars()
            .into_iter()
            .map(|(n, v)| (format!("transformer.{n}"), v.as_tensor().clone()))
            .collect(),
        Model::Llama(_) => model.tensors(),
    };
    tensors.extend(extra.iter().cloned());
    let bytes = safetensors_bytes(&tensors)?;
    let path = dir.join("model.safetensors");
    rein_core::metrics::write_atomic(&path, &bytes).map_err(|e| LmError::io(&path, e))?;
    match model {
        Model::Gpt2(m) => m.config.save(&dir.join("config.json")),
        Model::Llama(m) => m.config.save(&dir.join("config.json")),
    }
}

/// Writes named tensors and a JSON state of a trainer of `kind` to one checkpoint, atomically,
/// in the container every rein trainer uses (`rein_train::Checkpoint`).
pub fn save_state<S: serde::Serialize>(
    path: &Path,
    kind: &str,
    tensors: &[(String, Tensor)],
    state: &S,
) -> Result<(), LmError> {
    let data = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.contiguous()?)))
        .collect::<Result<Vec<_>, candle_core::Error>>()?;
    rein_train::Checkpoint::write(path, kind, state, data)
        .map_err(|e| LmError::Format(e.to_string()))
}

/// `vars` renamed to `prefix.name`: trainer checkpoints hold several models and an optimiser in
/// one file, each under its own prefix (`policy.`, `ref.`, `value.`, `opt.`).
pub fn with_prefix(prefix: &str, vars: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    vars.into_iter()
        .map(|(n, t)| (format!("{prefix}.{n}"), t))
        .collect()
}

/// The inverse of [`with_prefix`]: tensors grouped by the part of their name before the first
/// dot (a name without a dot goes under "").
pub fn split_prefixes(raw: HashMap<String, Tensor>) -> HashMap<String, HashMap<String, Tensor>> {
    let mut out: HashMap<String, HashMap<String, Tensor>> = HashMap::new();
    for (n, t) in raw {
        let (p, rest) = n.split_once('.').unwrap_or(("", n.as_str()));
        out.entry(p.to_string())
            .or_default()
            .insert(rest.to_string(), t);
    }
    out
}

/// Restores AdamW moments (`opt.`-prefixed tensors, split off by [`split_prefixes`]) and the
/// step counter `opt_step` into `opt`, built over the same parameters.
pub fn restore_adamw(
    opt: &mut crate::optim::AdamW,
    tensors: &HashMap<String, Tensor>,
    opt_step: u64,
    path: &Path,
) -> Result<(), LmError> {
    opt.load_state_tensors(tensors)
        .map_err(|e| LmError::Format(format!("{}: {e}", path.display())))?;
    opt.step = opt_step;
    Ok(())
}

/// Reads a checkpoint written by [`save_state`] for a trainer of `kind`: its tensors and its
/// typed state (another kind, another format or a damaged file is an error naming the file).
pub fn load_state<S: serde::de::DeserializeOwned>(
    path: &Path,
    kind: &str,
) -> Result<(HashMap<String, Tensor>, S), LmError> {
    let ckpt = rein_train::Checkpoint::read_kind(path, &[kind])
        .map_err(|e| LmError::Format(e.to_string()))?;
    let state = ckpt.state().map_err(|e| LmError::Format(e.to_string()))?;
    let tensors = candle_core::safetensors::load_buffer(ckpt.bytes(), &Device::Cpu)?;
    Ok((tensors, state))
}

/// A model (a directory or a `.gguf` file) with its tokenizer; one without a tokenizer is an
/// error naming it.
pub fn load_model_and_tokenizer(path: &Path) -> Result<(Model, crate::Tokenizer), LmError> {
    let p = crate::pretrained::Pretrained::load(path)?;
    p.need_tokenizer()?;
    Ok((p.model, p.tokenizer.expect("checked above")))
}

/// How a trainer checkpoint records a policy with a LoRA adapter: the adapter's configuration
/// and the frozen base it sits on (a path and a checksum of its weights); the checkpoint's
/// policy tensors are then the adapter's matrices only, not the base's weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdapterRecord {
    /// The adapter's `adapter_config.json` content.
    pub config: serde_json::Value,
    /// The base model (directory or `.gguf` file), as given when the run started.
    pub base_model: std::path::PathBuf,
    /// [`crate::models::lora::base_fingerprint`] of the base weights.
    pub base_fingerprint: String,
}

impl AdapterRecord {
    /// The record of `model`'s adapter (`None` without one). An adapter that does not name
    /// its base model (`base_model_name_or_path`) cannot be resumed: an error.
    pub fn of(model: &Model) -> Result<Option<Self>, LmError> {
        let Some(ad) = model.adapter() else {
            return Ok(None);
        };
        let base = ad.config.base_model_name_or_path.clone().ok_or_else(|| {
            LmError::Input(
                "a LoRA adapter without base_model_name_or_path cannot be checkpointed: the base model must be a path".into(),
            )
        })?;
        Ok(Some(Self {
            config: ad.config.to_json(),
            base_model: base.into(),
            base_fingerprint: crate::models::lora::base_fingerprint(&model.base_tensors())?,
        }))
    }
}

/// The policy of a trainer checkpoint: built from its tensors, or with an adapter record its
/// adapter (the tensors) on the recorded base model, which must still have the architecture
/// `config` and the recorded weights (else an error naming the base and what changed).
pub fn checkpoint_model(
    config: ModelConfig,
    tensors: HashMap<String, Tensor>,
    adapter: Option<&AdapterRecord>,
    source: &str,
) -> Result<Model, LmError> {
    let Some(rec) = adapter else {
        return Model::from_tensors(config, tensors, source);
    };
    let base = load_model(&rec.base_model).map_err(|e| {
        LmError::Format(format!(
            "{source}: the LoRA run's base model {} does not load: {e}",
            rec.base_model.display()
        ))
    })?;
    // Compared as a checkpoint stores it (its JSON form), which is how `config` was read.
    let base_config = ModelConfig::from_json(&base.config().to_json()).map_err(LmError::Format)?;
    if base_config != config {
        return Err(LmError::Format(format!(
            "{source}: the base model {} has another architecture than the run's",
            rec.base_model.display()
        )));
    }
    let now = crate::models::lora::base_fingerprint(&base.base_tensors())?;
    if now != rec.base_fingerprint {
        return Err(LmError::Format(format!(
            "{source}: the base model {} changed since the run started (weights checksum {now}, recorded {})",
            rec.base_model.display(),
            rec.base_fingerprint
        )));
    }
    let lora = crate::models::lora::LoraConfig::from_json(&rec.config)
        .map_err(|e| LmError::Format(format!("{source}: adapter config: {e}")))?;
    let Model::Llama(m) = &base else {
        return Err(LmError::Format(format!(
            "{source}: a LoRA record on a GPT-2 base"
        )));
    };
    let adapter = crate::models::lora::LoraAdapter::from_tensors(lora, tensors, &m.config, source)?;
    base.with_adapter(adapter)
}
