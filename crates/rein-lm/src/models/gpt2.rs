//! GPT-2 (Radford et al. 2019) as Hugging Face's `GPT2LMHeadModel` computes it: learned
//! positions, pre-LayerNorm blocks, fused QKV `Conv1D` (weights stored `[in, out]`), MLP with
//! `gelu_new`, final LayerNorm, LM head tied to the token embedding.
//!
//! Parameters live in one candle `VarMap` under Hugging Face's names without the
//! `transformer.` prefix (`wte.weight`, `h.0.attn.c_attn.weight`, ...), so that the same
//! tensors serve inference, gradients and checkpoints.

use crate::kernels::attention::{attention, packed_self_attention, AttentionMask};
use crate::models::common::{
    checked_varmap, copied_tensors, sorted_vars, Dropout, ForwardInput, KvCache,
};
use crate::models::config::Gpt2Config;
use crate::LmError;
use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::VarMap;
use rein_core::ReinRng;

/// The MLP non-linearity named by `activation_function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationFunction {
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// `x Phi(x)` with the exact normal CDF (`gelu`).
    GeluErf,
    /// `max(x, 0)`.
    Relu,
    /// `x sigmoid(x)`.
    Silu,
    /// `tanh(x)`.
    Tanh,
    /// `x sigmoid(1.702 x)`.
    QuickGelu,
}

impl ActivationFunction {
    /// Parses Hugging Face's `activation_function` names.
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "gelu" => Self::GeluErf,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            "tanh" => Self::Tanh,
            "quick_gelu" => Self::QuickGelu,
            other => {
                return Err(format!(
                "activation_function {other:?} is not supported (expected gelu_new, gelu_pytorch_tanh, gelu, relu, silu, swish, tanh or quick_gelu)"
            ))
            }
        })
    }

    /// The activation of every element of `x` (differentiable).
    pub fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::GeluTanh => crate::kernels::ops::gelu_tanh(x),
            Self::GeluErf => x.gelu_erf(),
            Self::Relu => x.relu(),
            Self::Silu => x.silu(),
            Self::Tanh => x.tanh(),
            Self::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
        }
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        crate::kernels::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// Hugging Face `Conv1D`: `y = x W + b` with `W` stored `[in, out]`.
struct Conv1D {
    weight: Tensor,
    bias: Tensor,
}

impl Conv1D {
    /// `x` `[rows, in]` (the residual stream is kept 2-D: a reshape is a graph node whose
    /// gradient candle allocates and adds backward).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        crate::kernels::ops::linear(x, &self.weight, &self.bias)
    }
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Conv1D,
    attn_proj: Conv1D,
    ln_2: LayerNorm,
    c_fc: Conv1D,
    mlp_proj: Conv1D,
}

/// The expected parameter names and shapes of a configuration (HF names without the
/// `transformer.` prefix).
pub fn parameter_shapes(cfg: &Gpt2Config) -> Vec<(String, Vec<usize>)> {
    let (d, f) = (cfg.n_embd, cfg.inner());
    let mut out = vec![
        ("wte.weight".to_string(), vec![cfg.vocab_size, d]),
        ("wpe.weight".to_string(), vec![cfg.n_positions, d]),
    ];
    for i in 0..cfg.n_layer {
        let p = format!("h.{i}.");
        for (name, shape) in [
            ("ln_1.weight", vec![d]),
            ("ln_1.bias", vec![d]),
            ("attn.c_attn.weight", vec![d, 3 * d]),
            ("attn.c_attn.bias", vec![3 * d]),
            ("attn.c_proj.weight", vec![d, d]),
            ("attn.c_proj.bias", vec![d]),
            ("ln_2.weight", vec![d]),
            ("ln_2.bias", vec![d]),
            ("mlp.c_fc.weight", vec![d, f]),
            ("mlp.c_fc.bias", vec![f]),
            ("mlp.c_proj.weight", vec![f, d]),
            ("mlp.c_proj.bias", vec![d]),
        ] {
            out.push((format!("{p}{name}"), shape));
        }
    }
    out.push(("ln_f.weight".into(), vec![d]));
    out.push(("ln_f.bias".into(), vec![d]));
    out
}

/// A GPT-2 language model.
pub struct Gpt2 {
    /// Architecture.
    pub config: Gpt2Config,
    /// All parameters (trainable `Var`s), by HF name without the `transformer.` prefix.
    pub varmap: VarMap,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    act: ActivationFunction,
}

impl Gpt2 {
    /// A model from named tensors (HF names without prefix), checking every shape.
    pub fn from_tensors(
        config: Gpt2Config,
        tensors: std::collections::HashMap<String, Tensor>,
        source: &str,
    ) -> Result<Self, LmError> {
        config
            .validate()
            .map_err(|e| LmError::Format(format!("{source}: {e}")))?;
        let varmap = checked_varmap(parameter_shapes(&config), tensors, source)?;
        Self::from_varmap(config, varmap)
    }

    /// A new model with GPT-2's initialisation: normal(0, initializer_range) weights,
    /// residual projections scaled by `1/sqrt(2 n_layer)`, zero biases, unit LayerNorms.
    pub fn new_random(config: Gpt2Config, rng: &mut ReinRng) -> Result<Self, LmError> {
        config
            .validate()
            .map_err(|e| LmError::Format(format!("config: {e}")))?;
        let std = config.initializer_range;
        let proj_std = std / (2.0 * config.n_layer as f64).sqrt();
        let mut tensors = std::collections::HashMap::new();
        for (name, shape) in parameter_shapes(&config) {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = if name.contains("ln_") {
                vec![if name.ends_with("weight") { 1.0 } else { 0.0 }; n]
            } else if name.ends_with("bias") {
                vec![0.0; n]
            } else {
                let s = if name.ends_with("c_proj.weight") {
                    proj_std
                } else {
                    std
                };
                (0..n)
                    .map(|_| {
                        let z: f64 =
                            rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
                        (z * s) as f32
                    })
                    .collect()
            };
            tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
        }
        Self::from_tensors(config, tensors, "new model")
    }

    fn from_varmap(config: Gpt2Config, varmap: VarMap) -> Result<Self, LmError> {
        let get = |name: &str| -> Tensor {
            varmap.data().lock().expect("varmap lock")[name]
                .as_tensor()
                .clone()
        };
        let eps = config.layer_norm_epsilon;
        let ln = |p: &str| LayerNorm {
            weight: get(&format!("{p}.weight")),
            bias: get(&format!("{p}.bias")),
            eps,
        };
        let conv = |p: &str| Conv1D {
            weight: get(&format!("{p}.weight")),
            bias: get(&format!("{p}.bias")),
        };
        let blocks = (0..config.n_layer)
            .map(|i| Block {
                ln_1: ln(&format!("h.{i}.ln_1")),
                c_attn: conv(&format!("h.{i}.attn.c_attn")),
                attn_proj: conv(&format!("h.{i}.attn.c_proj")),
                ln_2: ln(&format!("h.{i}.ln_2")),
                c_fc: conv(&format!("h.{i}.mlp.c_fc")),
                mlp_proj: conv(&format!("h.{i}.mlp.c_proj")),
            })
            .collect();
        let act =
            ActivationFunction::parse(&config.activation_function).map_err(LmError::Format)?;
        Ok(Self {
            wte: get("wte.weight"),
            wpe: get("wpe.weight"),
            ln_f: ln("ln_f"),
            blocks,
            act,
            config,
            varmap,
        })
    }

    /// The trainable parameters with their names, in a fixed (sorted) order.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.varmap)
    }

    /// The parameters' current values with their names (for checkpoints).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect()
    }

    /// An independent copy (fresh variables with the same values): the frozen reference model
    /// of the RL trainers.
    pub fn deep_copy(&self) -> Result<Self, LmError> {
        Self::from_tensors(
            self.config.clone(),
            copied_tensors(self.named_vars())?,
            "copy",
        )
    }

    /// Final hidden states `[batch, seq, n_embd]` (after `ln_f`). With `cache`, keys and values
    /// of earlier calls are attended to and this call's are appended. With `dropout`, the
    /// configured dropout applies (training); gradients flow when the caller tracks them.
    pub fn hidden(
        &self,
        input: &ForwardInput,
        mut cache: Option<&mut KvCache>,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<Tensor, LmError> {
        let cfg = &self.config;
        let (b, t) = input.ids.dims2()?;
        let past = cache.as_ref().map_or(0, |c| c.len());
        let total = past + t;
        if let Some(m) = input.mask {
            if m.len() != b || m.iter().any(|r| r.len() != total) {
                return Err(LmError::Input(format!(
                    "attention mask must be {b} rows of {total} entries"
                )));
            }
        }
        let max_pos = input.positions.flatten_all()?.max(0)?.to_scalar::<u32>()? as usize;
        if max_pos >= cfg.n_positions {
            return Err(LmError::Input(format!(
                "position {max_pos} is beyond the model's n_positions = {}",
                cfg.n_positions
            )));
        }
        let d = cfg.n_embd;
        let tok = self.wte.index_select(&input.ids.flatten_all()?, 0)?;
        let pos = self.wpe.index_select(&input.positions.flatten_all()?, 0)?;
        // The residual stream stays `[b * t, d]`, and without a cache or attention dropout
        // (training and scoring) heads are split and merged inside one op: every reshape,
        // narrow or transpose is a node whose gradient candle allocates and adds backward.
        let attn_dropout = dropout.is_some() && cfg.attn_pdrop > 0.0;
        let packed = cache.is_none() && !attn_dropout;
        let mut h = (tok + pos)?;
        if let Some(dr) = dropout.as_mut() {
            h = dr.apply(&h, cfg.embd_pdrop)?;
        }
        let dev = h.device().clone();
        let mask = AttentionMask::causal(b, t, past, input.mask, None);
        // Dropout on the attention probabilities needs them as a tensor: only then does the
        // composed (slower) path run.
        let composed_mask = if attn_dropout {
            Some((
                Tensor::from_vec(mask.bias.to_vec(), (b, 1, t, total), &dev)?,
                match &mask.row_ok {
                    Some(ok) => Some(Tensor::from_vec(ok.to_vec(), (b, 1, t, 1), &dev)?),
                    None => None,
                },
            ))
        } else {
            None
        };
        let (nh, hd) = (cfg.n_head, cfg.head_dim());
        let mut new_layers = Vec::with_capacity(self.blocks.len());
        for (li, blk) in self.blocks.iter().enumerate() {
            let mut scale = 1.0;
            if cfg.scale_attn_weights {
                scale /= (hd as f64).sqrt();
            }
            if cfg.scale_attn_by_inverse_layer_idx {
                scale /= (li + 1) as f64;
            }
            let x = blk.ln_1.forward(&h)?;
            let qkv = blk.c_attn.forward(&x)?;
            let att = if packed {
                packed_self_attention(&qkv, b, nh, &mask, scale)?
            } else {
                let qkv = qkv.reshape((b, t, 3 * d))?;
                let split = |i: usize| -> candle_core::Result<Tensor> {
                    qkv.narrow(2, i * d, d)?
                        .reshape((b, t, nh, hd))?
                        .transpose(1, 2)?
                        .contiguous()
                };
                let (q, mut k, mut v) = (split(0)?, split(1)?, split(2)?);
                if let Some(c) = cache.as_ref() {
                    if let Some(Some((pk, pv))) = c.layers.get(li) {
                        k = Tensor::cat(&[pk, &k], 2)?;
                        v = Tensor::cat(&[pv, &v], 2)?;
                    }
                }
                let heads = match (&composed_mask, dropout.as_mut()) {
                    (Some((bias, row_ok)), Some(dr)) => {
                        let scores =
                            (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(bias)?;
                        let mut probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
                        if let Some(ok) = row_ok {
                            probs = probs.broadcast_mul(ok)?;
                        }
                        dr.apply(&probs, cfg.attn_pdrop)?.matmul(&v)?
                    }
                    _ => attention(&q, &k, &v, &mask, scale)?,
                };
                match cache.as_ref() {
                    Some(c) if c.with_gradients => new_layers.push(Some((k, v))),
                    Some(_) => new_layers.push(Some((k.detach(), v.detach()))),
                    None => {}
                }
                heads.transpose(1, 2)?.contiguous()?.reshape((b * t, d))?
            };
            let mut a = blk.attn_proj.forward(&att)?;
            if let Some(dr) = dropout.as_mut() {
                a = dr.apply(&a, cfg.resid_pdrop)?;
            }
            h = (h + a)?;
            let x = blk.ln_2.forward(&h)?;
            let up = match self.act {
                // The product and the activation as one op (no graph node of the MLP's width).
                ActivationFunction::GeluTanh => {
                    crate::kernels::ops::linear_gelu(&x, &blk.c_fc.weight, &blk.c_fc.bias)?
                }
                act => act.apply(&blk.c_fc.forward(&x)?)?,
            };
            let mut m = blk.mlp_proj.forward(&up)?;
            if let Some(dr) = dropout.as_mut() {
                m = dr.apply(&m, cfg.resid_pdrop)?;
            }
            h = (h + m)?;
        }
        if let Some(c) = cache.as_mut() {
            c.layers = new_layers;
        }
        Ok(self.ln_f.forward(&h)?.reshape((b, t, d))?)
    }

    /// The `[vocab, d]` LM head matrix: the token embedding `wte` (GPT-2 ties them).
    pub fn lm_head_weight(&self) -> &Tensor {
        &self.wte
    }

    /// Logits for a batch without cache or dropout.
    pub fn logits(&self, input: &ForwardInput) -> Result<Tensor, LmError> {
        crate::models::CausalLm::logits(self, input)
    }
}

impl Module for ScalarHead {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        xs.broadcast_matmul(&self.weight.as_tensor().t()?)?
            .broadcast_add(self.bias.as_tensor())?
            .squeeze(D::Minus1)
    }
}

/// A linear map from the final hidden state to one number: the value head of PPO
/// (initialised to zero, as TRL) or the reward head of a reward model (weights
/// `N(0, 1/sqrt(n_embd + 1))`, bias 0, as Stiennon et al. 2020).
pub struct ScalarHead {
    /// `[1, n_embd]`.
    pub weight: Var,
    /// `[1]`.
    pub bias: Var,
}

impl ScalarHead {
    /// A zero-initialised value head.
    pub fn value_head(n_embd: usize) -> Result<Self, LmError> {
        Ok(Self {
            weight: Var::zeros((1, n_embd), DType::F32, &Device::Cpu)?,
            bias: Var::zeros(1, DType::F32, &Device::Cpu)?,
        })
    }

    /// A reward head with weights drawn from `N(0, 1/sqrt(n_embd + 1))`.
    pub fn reward_head(n_embd: usize, rng: &mut ReinRng) -> Result<Self, LmError> {
        let std = 1.0 / ((n_embd + 1) as f64).sqrt();
        let w: Vec<f32> = (0..n_embd)
            .map(|_| {
                let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
                (z * std) as f32
            })
            .collect();
        Ok(Self {
            weight: Var::from_tensor(&Tensor::from_vec(w, (1, n_embd), &Device::Cpu)?)?,
            bias: Var::zeros(1, DType::F32, &Device::Cpu)?,
        })
    }
}
