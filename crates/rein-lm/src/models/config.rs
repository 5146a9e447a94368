//! Hugging Face `GPT2Config` (`config.json`): the architecture knobs that real checkpoints use.

use crate::LmError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// GPT-2 architecture, read from and written to `config.json` with Hugging Face's field names
/// and defaults (`transformers.GPT2Config`). Keys rein does not use are kept in `extra` and
/// written back, so a round trip does not lose them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Gpt2Config {
    /// Vocabulary size (rows of `wte`).
    pub vocab_size: usize,
    /// Maximum sequence length (rows of `wpe`).
    pub n_positions: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Attention heads per block.
    pub n_head: usize,
    /// MLP inner size; `None` is `4 * n_embd`.
    pub n_inner: Option<usize>,
    /// MLP activation: `gelu_new` (tanh approximation), `gelu_pytorch_tanh`, `gelu` (erf),
    /// `relu`, `silu`/`swish`, `tanh` or `quick_gelu`.
    pub activation_function: String,
    /// Dropout after the embeddings (training only).
    pub embd_pdrop: f64,
    /// Dropout on attention probabilities (training only).
    pub attn_pdrop: f64,
    /// Dropout on residual branches (training only).
    pub resid_pdrop: f64,
    /// LayerNorm epsilon.
    pub layer_norm_epsilon: f64,
    /// Scale attention scores by `1/sqrt(head_dim)`.
    pub scale_attn_weights: bool,
    /// Also scale scores by `1/(layer_idx + 1)` (a GPT-2 option some checkpoints set).
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Std of the normal initialisation of new models.
    pub initializer_range: f64,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id.
    pub eos_token_id: Option<u32>,
    /// Padding token id, if the checkpoint names one.
    pub pad_token_id: Option<u32>,
    /// Other keys of `config.json`, preserved.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for Gpt2Config {
    /// `transformers.GPT2Config()`: GPT-2 small (124M).
    fn default() -> Self {
        Self {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 768,
            n_layer: 12,
            n_head: 12,
            n_inner: None,
            activation_function: "gelu_new".into(),
            embd_pdrop: 0.1,
            attn_pdrop: 0.1,
            resid_pdrop: 0.1,
            layer_norm_epsilon: 1e-5,
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: false,
            initializer_range: 0.02,
            bos_token_id: Some(50256),
            eos_token_id: Some(50256),
            pad_token_id: None,
            extra: Default::default(),
        }
    }
}

impl Gpt2Config {
    /// Reads and checks `config.json`.
    pub fn load(path: &Path) -> Result<Self, LmError> {
        let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
        let cfg: Self = serde_json::from_str(&text)
            .map_err(|e| LmError::Format(format!("{}: {e}", path.display())))?;
        cfg.validate()
            .map_err(|e| LmError::Format(format!("{}: {e}", path.display())))?;
        Ok(cfg)
    }

    /// Writes `config.json` in Hugging Face's layout (with `model_type` and `architectures`).
    pub fn save(&self, path: &Path) -> Result<(), LmError> {
        let mut v = serde_json::to_value(self).map_err(|e| LmError::Format(e.to_string()))?;
        let obj = v.as_object_mut().expect("a struct serialises to an object");
        obj.insert("model_type".into(), "gpt2".into());
        obj.entry("architectures")
            .or_insert_with(|| serde_json::json!(["GPT2LMHeadModel"]));
        obj.insert("n_ctx".into(), self.n_positions.into());
        let text = serde_json::to_string_pretty(&v).map_err(|e| LmError::Format(e.to_string()))?;
        rein_core::metrics::write_atomic(path, text.as_bytes()).map_err(|e| LmError::io(path, e))
    }

    /// Checks that the numbers describe a buildable model, naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        // Upper bounds far above any GPT-2 (XL: 48 layers, 1600 wide, 25 heads, 1024
        // positions): a damaged config.json is refused before its sizes are allocated.
        check_sizes(&[
            ("vocab_size", self.vocab_size, 1 << 24),
            ("n_positions", self.n_positions, 1 << 20),
            ("n_embd", self.n_embd, 1 << 16),
            ("n_layer", self.n_layer, 1 << 12),
            ("n_head", self.n_head, 1 << 12),
        ])?;
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(format!(
                "n_embd ({}) must be a multiple of n_head ({})",
                self.n_embd, self.n_head
            ));
        }
        crate::models::gpt2::ActivationFunction::parse(&self.activation_function)?;
        for (name, p) in [
            ("embd_pdrop", self.embd_pdrop),
            ("attn_pdrop", self.attn_pdrop),
            ("resid_pdrop", self.resid_pdrop),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        if self.layer_norm_epsilon.is_nan() || self.layer_norm_epsilon <= 0.0 {
            return Err(format!(
                "layer_norm_epsilon must be positive, got {}",
                self.layer_norm_epsilon
            ));
        }
        Ok(())
    }

    /// MLP inner size.
    pub fn inner(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// Per-head size.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Number of parameters (the tied LM head counted once).
    pub fn num_parameters(&self) -> usize {
        let (d, f) = (self.n_embd, self.inner());
        let block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d);
        self.vocab_size * d + self.n_positions * d + self.n_layer * block + 2 * d
    }
}

/// Checks `(name, value, most)` sizes of a config.json: each at least 1 and at most `most`, a
/// bound far above any released model, so that a damaged file is refused before anything is
/// allocated for it.
pub(crate) fn check_sizes(sizes: &[(&str, usize, usize)]) -> Result<(), String> {
    for &(name, v, most) in sizes {
        if v == 0 {
            return Err(format!("{name} must be at least 1"));
        }
        if v > most {
            return Err(format!(
                "{name} is {v}, more than any real model has (at most {most}): the file is damaged"
            ));
        }
    }
    Ok(())
}
