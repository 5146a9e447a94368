//! The causal-LM interface ([`CausalLm`]) that every decoder implements, and [`Model`], the
//! decoder a command or trainer holds (GPT-2 or the Llama family), so that each trainer,
//! generation and evaluation exist once for every architecture.

use crate::kernels::loss::{head_logprobs, HeadLogProbs};
use crate::kernels::ops::tied_head;
use crate::models::common::{Dropout, ForwardInput, KvCache};
use crate::models::config::Gpt2Config;
use crate::models::gpt2::Gpt2;
use crate::models::llama::Llama;
use crate::models::llama_config::{LlamaConfig, SUPPORTED_MODEL_TYPES};
use crate::models::lora::{LoraAdapter, LoraSettings};
use crate::LmError;
use candle_core::{Tensor, Var};
use rein_core::ReinRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;

/// What generation, the losses and the trainers need of a decoder-only language model.
pub trait CausalLm {
    /// Final hidden states `[batch, seq, hidden]` (after the last norm): the input of the LM
    /// head and of value and reward heads. With `cache`, earlier keys and values are attended
    /// to and this call's appended; with `dropout`, the configured dropout applies.
    fn hidden(
        &self,
        input: &ForwardInput,
        cache: Option<&mut KvCache>,
        dropout: Option<&mut Dropout>,
    ) -> Result<Tensor, LmError>;

    /// The `[vocab, hidden]` matrix of the LM head (`logits = h W^T`; the token embedding
    /// where the model ties them).
    fn lm_head_weight(&self) -> Result<&Tensor, LmError>;

    /// Logits `[batch, seq, vocab]` of hidden states `[batch, seq, hidden]`.
    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor, LmError> {
        let (b, t, d) = hidden.dims3()?;
        let w = self.lm_head_weight()?;
        Ok(tied_head(&hidden.reshape((b * t, d))?, w)?.reshape((b, t, w.dim(0)?))?)
    }

    /// Log-probabilities `[batch, seq]` of `targets` under the LM head at `temperature`, from
    /// hidden states `[batch, seq, hidden]`, with each position's entropy when `entropy`: the
    /// logits never become a graph node (see [`head_logprobs`]). What losses use instead of
    /// [`CausalLm::lm_head`].
    fn target_logprobs(
        &self,
        hidden: &Tensor,
        targets: &Tensor,
        temperature: f64,
        entropy: bool,
    ) -> Result<HeadLogProbs, LmError> {
        head_logprobs(
            hidden,
            self.lm_head_weight()?,
            targets,
            temperature,
            entropy,
        )
    }

    /// Logits of a batch without cache or dropout.
    fn logits(&self, input: &ForwardInput) -> Result<Tensor, LmError> {
        let h = self.hidden(input, None, None)?;
        self.lm_head(&h)
    }

    /// The trainable parameters by name, sorted by name.
    fn named_vars(&self) -> Vec<(String, Var)>;

    /// Vocabulary size.
    fn vocab_size(&self) -> usize;

    /// Longest sequence the model takes (`n_positions`, `max_position_embeddings`).
    fn max_positions(&self) -> usize;

    /// Width of the hidden states.
    fn hidden_size(&self) -> usize;

    /// End-of-sequence ids of the model's config (the first is the one appended to examples).
    fn eos_token_ids(&self) -> Vec<u32>;
}

impl CausalLm for Gpt2 {
    fn hidden(
        &self,
        input: &ForwardInput,
        cache: Option<&mut KvCache>,
        dropout: Option<&mut Dropout>,
    ) -> Result<Tensor, LmError> {
        Gpt2::hidden(self, input, cache, dropout)
    }
    fn lm_head_weight(&self) -> Result<&Tensor, LmError> {
        Ok(Gpt2::lm_head_weight(self))
    }
    fn named_vars(&self) -> Vec<(String, Var)> {
        Gpt2::named_vars(self)
    }
    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }
    fn max_positions(&self) -> usize {
        self.config.n_positions
    }
    fn hidden_size(&self) -> usize {
        self.config.n_embd
    }
    fn eos_token_ids(&self) -> Vec<u32> {
        self.config.eos_token_id.into_iter().collect()
    }
}

impl CausalLm for Llama {
    fn hidden(
        &self,
        input: &ForwardInput,
        cache: Option<&mut KvCache>,
        dropout: Option<&mut Dropout>,
    ) -> Result<Tensor, LmError> {
        Llama::hidden(self, input, cache, dropout)
    }
    fn lm_head_weight(&self) -> Result<&Tensor, LmError> {
        Llama::lm_head_weight(self)
    }
    fn named_vars(&self) -> Vec<(String, Var)> {
        Llama::named_vars(self)
    }
    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }
    fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }
    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }
    fn eos_token_ids(&self) -> Vec<u32> {
        self.config.eos_token_ids.clone()
    }
}

/// The architecture of a [`Model`]: what checkpoints store to rebuild it.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// GPT-2.
    Gpt2(Gpt2Config),
    /// A Llama-family decoder.
    Llama(LlamaConfig),
}

impl ModelConfig {
    /// The configuration of a `config.json` object, dispatched on its `model_type` (`gpt2` or
    /// absent: GPT-2; `llama`, `mistral`, `qwen2`, `qwen3`: the Llama family; anything else is
    /// refused naming the supported types).
    pub fn from_json(v: &serde_json::Value) -> Result<Self, String> {
        match v.get("model_type").and_then(|m| m.as_str()) {
            None | Some("gpt2") => {
                let c: Gpt2Config = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
                c.validate()?;
                Ok(Self::Gpt2(c))
            }
            Some(t) if SUPPORTED_MODEL_TYPES.contains(&t) => {
                Ok(Self::Llama(LlamaConfig::from_json(v)?))
            }
            Some(other) => Err(format!(
                "model_type {other:?} is not supported (supported: gpt2, {})",
                SUPPORTED_MODEL_TYPES.join(", ")
            )),
        }
    }

    /// Reads `config.json`, errors naming the file.
    pub fn load(path: &std::path::Path) -> Result<Self, LmError> {
        let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| LmError::Format(format!("{}: not JSON: {e}", path.display())))?;
        Self::from_json(&v).map_err(|e| LmError::Format(format!("{}: {e}", path.display())))
    }

    /// `config.json` content.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Gpt2(c) => serde_json::to_value(c).expect("a config serialises"),
            Self::Llama(c) => c.to_json(),
        }
    }

    /// Number of parameters.
    pub fn num_parameters(&self) -> usize {
        match self {
            Self::Gpt2(c) => c.num_parameters(),
            Self::Llama(c) => c.num_parameters(),
        }
    }

    /// Longest sequence the architecture takes.
    pub fn max_positions(&self) -> usize {
        match self {
            Self::Gpt2(c) => c.n_positions,
            Self::Llama(c) => c.max_position_embeddings,
        }
    }

    /// Sets the vocabulary size and makes `eos` the BOS and EOS token (a new model for a
    /// tokenizer trained here, whose `<|endoftext|>` is both).
    pub fn set_vocabulary(&mut self, vocab_size: usize, eos: u32) {
        match self {
            Self::Gpt2(c) => {
                c.vocab_size = vocab_size;
                c.eos_token_id = Some(eos);
                c.bos_token_id = Some(eos);
            }
            Self::Llama(c) => {
                c.vocab_size = vocab_size;
                c.eos_token_ids = vec![eos];
                c.bos_token_id = Some(eos);
            }
        }
    }

    /// transformers' `model_type`.
    pub fn model_type(&self) -> &'static str {
        match self {
            Self::Gpt2(_) => "gpt2",
            Self::Llama(c) => c.family.model_type(),
        }
    }
}

impl Serialize for ModelConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ModelConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Self::from_json(&v).map_err(serde::de::Error::custom)
    }
}

const LORA_ON_GPT2: &str =
    "LoRA adapters are implemented for the Llama family (llama, mistral, qwen2, qwen3), not GPT-2";

/// Mixed into the seed of a fresh adapter's initialisation, so that it does not repeat the
/// sampling stream of the same seed.
const LORA_SEED_STREAM: u64 = 0x4c6f_5241;

/// A decoder of any supported architecture.
pub enum Model {
    /// GPT-2.
    Gpt2(Gpt2),
    /// The Llama family.
    Llama(Llama),
}

impl From<Gpt2> for Model {
    fn from(m: Gpt2) -> Self {
        Self::Gpt2(m)
    }
}

impl From<Llama> for Model {
    fn from(m: Llama) -> Self {
        Self::Llama(m)
    }
}

macro_rules! each {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            Model::Gpt2($m) => $body,
            Model::Llama($m) => $body,
        }
    };
}

impl CausalLm for Model {
    fn hidden(
        &self,
        input: &ForwardInput,
        cache: Option<&mut KvCache>,
        dropout: Option<&mut Dropout>,
    ) -> Result<Tensor, LmError> {
        each!(self, m => m.hidden(input, cache, dropout))
    }
    fn lm_head_weight(&self) -> Result<&Tensor, LmError> {
        each!(self, m => CausalLm::lm_head_weight(m))
    }
    fn named_vars(&self) -> Vec<(String, Var)> {
        each!(self, m => m.named_vars())
    }
    fn vocab_size(&self) -> usize {
        each!(self, m => CausalLm::vocab_size(m))
    }
    fn max_positions(&self) -> usize {
        each!(self, m => CausalLm::max_positions(m))
    }
    fn hidden_size(&self) -> usize {
        each!(self, m => CausalLm::hidden_size(m))
    }
    fn eos_token_ids(&self) -> Vec<u32> {
        each!(self, m => CausalLm::eos_token_ids(m))
    }
}

impl Model {
    /// A model of `config` from named tensors (the architecture's own names), checking every
    /// name and shape; `source` names the file in errors.
    pub fn from_tensors(
        config: ModelConfig,
        tensors: HashMap<String, Tensor>,
        source: &str,
    ) -> Result<Self, LmError> {
        Ok(match config {
            ModelConfig::Gpt2(c) => Gpt2::from_tensors(c, tensors, source)?.into(),
            ModelConfig::Llama(c) => Llama::from_tensors(c, tensors, source)?.into(),
        })
    }

    /// A new, randomly initialised model of `config`.
    pub fn new_random(config: ModelConfig, rng: &mut ReinRng) -> Result<Self, LmError> {
        Ok(match config {
            ModelConfig::Gpt2(c) => Gpt2::new_random(c, rng)?.into(),
            ModelConfig::Llama(c) => Llama::new_random(c, rng)?.into(),
        })
    }

    /// The architecture.
    pub fn config(&self) -> ModelConfig {
        match self {
            Model::Gpt2(m) => ModelConfig::Gpt2(m.config.clone()),
            Model::Llama(m) => ModelConfig::Llama(m.config.clone()),
        }
    }

    /// An independent copy (fresh variables with the same values).
    pub fn deep_copy(&self) -> Result<Self, LmError> {
        Ok(match self {
            Model::Gpt2(m) => m.deep_copy()?.into(),
            Model::Llama(m) => m.deep_copy()?.into(),
        })
    }

    /// The frozen reference of the RL trainers: a copy of the starting model, or for a model
    /// with a LoRA adapter the base with the adapter off (its weights shared, not copied).
    pub fn reference_model(&self) -> Result<Self, LmError> {
        match self {
            Model::Llama(m) if m.adapter().is_some() => Ok(m.without_adapter()?.into()),
            _ => self.deep_copy(),
        }
    }

    /// The LoRA adapter, if the model has one.
    pub fn adapter(&self) -> Option<&LoraAdapter> {
        match self {
            Model::Gpt2(_) => None,
            Model::Llama(m) => m.adapter(),
        }
    }

    /// This model with `adapter` on its linear layers (its base weights shared and frozen).
    /// GPT-2 takes no adapter: LoRA is implemented for the Llama family.
    pub fn with_adapter(&self, adapter: LoraAdapter) -> Result<Self, LmError> {
        match self {
            Model::Gpt2(_) => Err(LmError::Input(LORA_ON_GPT2.into())),
            Model::Llama(m) => Ok(m.with_adapter(adapter)?.into()),
        }
    }

    /// A fresh adapter of `settings` (seeded by `seed`) on this model; `base` is recorded as
    /// the adapter's `base_model_name_or_path`.
    pub fn with_new_adapter(
        &self,
        settings: &LoraSettings,
        base: Option<&std::path::Path>,
        seed: u64,
    ) -> Result<Self, LmError> {
        let Model::Llama(m) = self else {
            return Err(LmError::Input(LORA_ON_GPT2.into()));
        };
        let mut rng = rein_core::rng_from_seed(seed ^ LORA_SEED_STREAM);
        let adapter = LoraAdapter::new(settings.to_config(base)?, &m.config, &mut rng)?;
        Ok(m.with_adapter(adapter)?.into())
    }

    /// The model a trainer trains for `settings`: with a fresh adapter (seeded by `seed`, its
    /// base recorded as `base`, the model's path) when `settings.enabled`, else itself.
    pub fn with_lora(
        self,
        settings: &LoraSettings,
        base: &std::path::Path,
        seed: u64,
    ) -> Result<Self, LmError> {
        if settings.enabled {
            self.with_new_adapter(settings, Some(base), seed)
        } else {
            Ok(self)
        }
    }

    /// The adapter read from a PEFT directory `dir` on this model.
    pub fn with_adapter_dir(&self, dir: &std::path::Path) -> Result<Self, LmError> {
        let Model::Llama(m) = self else {
            return Err(LmError::Input(LORA_ON_GPT2.into()));
        };
        let adapter = LoraAdapter::load(dir, &m.config)?;
        Ok(m.with_adapter(adapter)?.into())
    }

    /// The model with its adapter merged into the weights (itself, copied, without one).
    pub fn merged(&self) -> Result<Self, LmError> {
        match self {
            Model::Llama(m) if m.adapter().is_some() => Ok(m.merged()?.into()),
            _ => self.deep_copy(),
        }
    }

    /// The base weights with their names (every weight of a model without an adapter).
    pub fn base_tensors(&self) -> Vec<(String, Tensor)> {
        let vars = match self {
            Model::Gpt2(m) => m.named_vars(),
            Model::Llama(m) => m.base_vars(),
        };
        vars.into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect()
    }

    /// The trainable parameters' current values with their names (for checkpoints): with a
    /// LoRA adapter only its matrices.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect()
    }

    /// The first end-of-sequence id of the config.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token_ids().first().copied()
    }

    /// Number of parameters.
    pub fn num_parameters(&self) -> usize {
        self.config().num_parameters()
    }
}

/// A hash of `model`'s weights ([`rein_core::collective::checksum_f32`], in name order), which
/// data-parallel ranks compare; `None` when a weight cannot be read as f32.
pub fn parameter_checksum(model: &Model) -> Option<u64> {
    let mut tensors = model.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let values: Vec<Vec<f32>> = tensors
        .iter()
        .map(|(_, t)| {
            t.flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()
        })
        .collect::<Result<_, _>>()
        .ok()?;
    Some(rein_core::collective::checksum_f32(
        values.iter().map(Vec::as_slice),
    ))
}
