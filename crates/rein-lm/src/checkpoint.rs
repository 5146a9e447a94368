//! Reading and writing Hugging Face model directories: `config.json` plus `model.safetensors`
//! (f32, f16 or bf16 tensors; `transformer.`-prefixed names as `save_pretrained` writes, or the
//! bare names of the original `gpt2` checkpoint).

use crate::models::config::Gpt2Config;
use crate::models::gpt2::{parameter_shapes, Gpt2};
use crate::LmError;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
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

/// Loads `dir/config.json` and `dir/model.safetensors`. Tensors that are not GPT-2 parameters
/// (a value head, a reward head) are returned alongside, with their names.
pub fn load_model_with_extras(dir: &Path) -> Result<(Gpt2, HashMap<String, Tensor>), LmError> {
    let cfg_path = dir.join("config.json");
    if !cfg_path.exists() {
        return Err(LmError::Format(format!(
            "{}: missing (a model directory needs config.json and model.safetensors)",
            cfg_path.display()
        )));
    }
    let config = Gpt2Config::load(&cfg_path)?;
    let weights = dir.join("model.safetensors");
    if !weights.exists() {
        let hint = if dir.join("pytorch_model.bin").exists() {
            " (only pytorch_model.bin is there: convert it with save_pretrained(safe_serialization=True))"
        } else {
            ""
        };
        return Err(LmError::Format(format!(
            "{}: missing{hint}",
            weights.display()
        )));
    }
    let raw = read_safetensors(&weights)?;
    let mut params = HashMap::new();
    let mut extras = HashMap::new();
    let expected: std::collections::HashSet<String> = parameter_shapes(&config)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
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
    let model = Gpt2::from_tensors(config, params, &weights.display().to_string())?;
    Ok((model, extras))
}

/// Loads a model directory (see [`load_model_with_extras`]).
pub fn load_model(dir: &Path) -> Result<Gpt2, LmError> {
    Ok(load_model_with_extras(dir)?.0)
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

/// Writes `dir/config.json` and `dir/model.safetensors` (names `transformer.`-prefixed, f32,
/// no `lm_head.weight` since it is tied), loadable by `GPT2LMHeadModel.from_pretrained`.
/// `extra` tensors (a value head) are stored under their own names. Files are written
/// atomically.
pub fn save_model(model: &Gpt2, dir: &Path, extra: &[(String, Tensor)]) -> Result<(), LmError> {
    std::fs::create_dir_all(dir).map_err(|e| LmError::io(dir, e))?;
    let mut tensors: Vec<(String, Tensor)> = model
        .named_vars()
        .into_iter()
        .map(|(n, v)| (format!("transformer.{n}"), v.as_tensor().clone()))
        .collect();
    tensors.extend(extra.iter().cloned());
    let bytes = safetensors_bytes(&tensors)?;
    let path = dir.join("model.safetensors");
    rein_core::metrics::write_atomic(&path, &bytes).map_err(|e| LmError::io(&path, e))?;
    model.config.save(&dir.join("config.json"))
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

/// A model directory with its tokenizer; a directory without one is an error naming it.
pub fn load_model_and_tokenizer(dir: &Path) -> Result<(Gpt2, crate::Tokenizer), LmError> {
    let model = load_model(dir)?;
    let tk = crate::Tokenizer::from_dir(dir)?.ok_or_else(|| {
        LmError::Format(format!(
            "{}: no tokenizer.json (or vocab.json + merges.txt)",
            dir.display()
        ))
    })?;
    Ok((model, tk))
}
