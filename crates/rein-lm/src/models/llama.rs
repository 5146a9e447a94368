//! The Llama family (Touvron et al. 2023; Mistral, Qwen2, Qwen3) as transformers'
//! `LlamaForCausalLM` and its siblings compute it: token embedding, pre-RMSNorm decoder layers
//! with rotary grouped-query attention and a SwiGLU MLP (Shazeer 2020,
//! `down(silu(gate(x)) * up(x))`), a final RMSNorm and an LM head (tied to the embedding or
//! its own). Qwen3 adds an RMSNorm per query and key head before the rotation.
//!
//! Parameters live in one candle `VarMap` under transformers' full names
//! (`model.embed_tokens.weight`, `model.layers.0.self_attn.q_proj.weight`, `lm_head.weight`),
//! linear weights in `nn.Linear`'s `[out, in]` layout, so that checkpoints, gradients and
//! PEFT's adapter names line up without renaming.

use crate::kernels::attention::{attention, packed_rotary_attention, AttentionMask};
use crate::kernels::ops::{linear_t, swiglu};
use crate::kernels::rms_norm::rms_norm;
use crate::kernels::rotary::{apply_rotary, RotaryAngles};
use crate::models::common::{
    checked_varmap, copied_tensors, sorted_vars, Dropout, ForwardInput, KvCache,
};
use crate::models::gpt2::ActivationFunction;
use crate::models::llama_config::{Family, LlamaConfig};
use crate::models::lora::LoraAdapter;
use crate::LmError;
use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use rein_core::ReinRng;
use std::collections::HashMap;

/// A linear layer in `nn.Linear`'s layout, with an optional LoRA adapter.
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    lora: Option<LoraLinear>,
}

/// The adapter of one linear layer: `A` `[r, in]`, `B` `[out, r]`, the factor `alpha / r` and
/// the dropout on the adapter's input.
struct LoraLinear {
    a: Tensor,
    b: Tensor,
    scale: f64,
    dropout: f64,
}

impl Linear {
    /// `x W^T + b` over the last dimension of `x`, plus `scale * (drop(x) A^T) B^T` with an
    /// adapter (LoRA, eq. 3; PEFT applies the dropout to the adapter's input only).
    fn forward(&self, x: &Tensor, dropout: &mut Option<&mut Dropout>) -> Result<Tensor, LmError> {
        let dims = x.dims().to_vec();
        let inp = dims[dims.len() - 1];
        // A 2-D input (the residual stream's layout) needs no reshape: each is a graph node,
        // and every node costs a gradient allocation, zero-fill and add in the backward pass.
        let x2 = if dims.len() == 2 {
            x.clone()
        } else {
            x.reshape((x.elem_count() / inp, inp))?
        };
        let mut y = linear_t(&x2, &self.weight, self.bias.as_ref())?;
        if let Some(l) = &self.lora {
            let xin = match dropout.as_deref_mut() {
                Some(d) => d.apply(&x2, l.dropout)?,
                None => x2,
            };
            let low = (linear_t(&xin, &l.a, None)? * l.scale)?;
            y = (y + linear_t(&low, &l.b, None)?)?;
        }
        if dims.len() == 2 {
            return Ok(y);
        }
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.weight.dims()[0];
        Ok(y.reshape(out)?)
    }
}

struct Layer {
    input_layernorm: Tensor,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    post_attention_layernorm: Tensor,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

/// The parameter names and shapes of a configuration, in transformers' names.
pub fn parameter_shapes(cfg: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
    let (d, f, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
    let (q, kv) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
    let mut out = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, d],
    )];
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}.");
        let mut push = |name: &str, shape: Vec<usize>| out.push((format!("{p}{name}"), shape));
        push("input_layernorm.weight", vec![d]);
        for (name, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            push(&format!("self_attn.{name}.weight"), vec![rows, d]);
            if cfg.qkv_bias {
                push(&format!("self_attn.{name}.bias"), vec![rows]);
            }
        }
        push("self_attn.o_proj.weight", vec![d, q]);
        if cfg.o_bias {
            push("self_attn.o_proj.bias", vec![d]);
        }
        if cfg.family == Family::Qwen3 {
            push("self_attn.q_norm.weight", vec![hd]);
            push("self_attn.k_norm.weight", vec![hd]);
        }
        push("post_attention_layernorm.weight", vec![d]);
        for (name, shape) in [
            ("gate_proj", vec![f, d]),
            ("up_proj", vec![f, d]),
            ("down_proj", vec![d, f]),
        ] {
            let rows = shape[0];
            push(&format!("mlp.{name}.weight"), shape);
            if cfg.mlp_bias {
                push(&format!("mlp.{name}.bias"), vec![rows]);
            }
        }
    }
    out.push(("model.norm.weight".into(), vec![d]));
    if !cfg.tie_word_embeddings && !cfg.sequence_classification {
        out.push(("lm_head.weight".into(), vec![cfg.vocab_size, d]));
    }
    out
}

/// A Llama-family language model.
pub struct Llama {
    /// Architecture.
    pub config: LlamaConfig,
    /// All parameters (trainable `Var`s), by transformers' name.
    pub varmap: VarMap,
    embed_tokens: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    /// `None` for a sequence-classification backbone.
    lm_head: Option<Tensor>,
    inv_freq: Vec<f32>,
    act: ActivationFunction,
    /// The LoRA adapter, if any (the base weights are then frozen).
    adapter: Option<LoraAdapter>,
    /// Whether the base weights take no gradient (with an adapter, and for the adapter-off
    /// view that serves as the KL reference).
    frozen: bool,
}

impl Llama {
    /// A model from named tensors (transformers' names), checking every name and shape; f16 and
    /// bf16 tensors are converted to f32.
    pub fn from_tensors(
        config: LlamaConfig,
        tensors: HashMap<String, Tensor>,
        source: &str,
    ) -> Result<Self, LmError> {
        config
            .validate()
            .map_err(|e| LmError::Format(format!("{source}: {e}")))?;
        let varmap = checked_varmap(parameter_shapes(&config), tensors, source)?;
        Self::from_varmap(config, varmap, None, false)
    }

    /// A new model initialised as transformers' `_init_weights`: normal(0, initializer_range)
    /// matrices and embedding, zero biases, unit norms.
    pub fn new_random(config: LlamaConfig, rng: &mut ReinRng) -> Result<Self, LmError> {
        config
            .validate()
            .map_err(|e| LmError::Format(format!("config: {e}")))?;
        let std = config.initializer_range;
        let mut tensors = HashMap::new();
        for (name, shape) in parameter_shapes(&config) {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = if name.contains("norm") {
                vec![1.0; n]
            } else if name.ends_with("bias") {
                vec![0.0; n]
            } else {
                (0..n)
                    .map(|_| {
                        let z: f64 =
                            rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
                        (z * std) as f32
                    })
                    .collect()
            };
            tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
        }
        Self::from_tensors(config, tensors, "new model")
    }

    /// The model over `varmap`'s base weights; with `adapter`, its matrices are added to the
    /// linear layers it targets. `frozen` (always, with an adapter) takes the base weights out
    /// of the autograd graph: they are shared, not copied, and the backward pass computes no
    /// gradient for them.
    fn from_varmap(
        config: LlamaConfig,
        varmap: VarMap,
        adapter: Option<LoraAdapter>,
        frozen: bool,
    ) -> Result<Self, LmError> {
        let frozen = frozen || adapter.is_some();
        let get = |name: &str| -> Option<Tensor> {
            varmap
                .data()
                .lock()
                .expect("varmap lock")
                .get(name)
                .map(|v| {
                    if frozen {
                        v.as_tensor().detach()
                    } else {
                        v.as_tensor().clone()
                    }
                })
        };
        let must = |name: &str| -> Result<Tensor, LmError> {
            get(name).ok_or_else(|| LmError::Format(format!("tensor {name} is missing")))
        };
        let linear = |p: &str| -> Result<Linear, LmError> {
            let lora = adapter.as_ref().and_then(|ad| {
                ad.pair(p).map(|(a, b)| LoraLinear {
                    a,
                    b,
                    scale: ad.config.scale(),
                    dropout: ad.config.lora_dropout,
                })
            });
            Ok(Linear {
                weight: must(&format!("{p}.weight"))?,
                bias: get(&format!("{p}.bias")),
                lora,
            })
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("model.layers.{i}");
            layers.push(Layer {
                input_layernorm: must(&format!("{p}.input_layernorm.weight"))?,
                q_proj: linear(&format!("{p}.self_attn.q_proj"))?,
                k_proj: linear(&format!("{p}.self_attn.k_proj"))?,
                v_proj: linear(&format!("{p}.self_attn.v_proj"))?,
                o_proj: linear(&format!("{p}.self_attn.o_proj"))?,
                q_norm: get(&format!("{p}.self_attn.q_norm.weight")),
                k_norm: get(&format!("{p}.self_attn.k_norm.weight")),
                post_attention_layernorm: must(&format!("{p}.post_attention_layernorm.weight"))?,
                gate_proj: linear(&format!("{p}.mlp.gate_proj"))?,
                up_proj: linear(&format!("{p}.mlp.up_proj"))?,
                down_proj: linear(&format!("{p}.mlp.down_proj"))?,
            });
        }
        let embed_tokens = must("model.embed_tokens.weight")?;
        let lm_head = if config.tie_word_embeddings {
            Some(embed_tokens.clone())
        } else if config.sequence_classification {
            None
        } else {
            Some(must("lm_head.weight")?)
        };
        let act = ActivationFunction::parse(&config.hidden_act).map_err(LmError::Format)?;
        Ok(Self {
            inv_freq: config.inv_freq(),
            norm: must("model.norm.weight")?,
            embed_tokens,
            lm_head,
            layers,
            act,
            config,
            varmap,
            adapter,
            frozen,
        })
    }

    /// The trainable parameters with their names, in a fixed (sorted) order: the adapter's `A`
    /// and `B` matrices when the model has one, else every weight.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        match &self.adapter {
            Some(a) => a.named_vars(),
            None => sorted_vars(&self.varmap),
        }
    }

    /// The base weights with their names, sorted (with or without an adapter).
    pub fn base_vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.varmap)
    }

    /// An independent copy (fresh variables with the same values, the adapter's too).
    pub fn deep_copy(&self) -> Result<Self, LmError> {
        let base = checked_varmap(
            parameter_shapes(&self.config),
            copied_tensors(self.base_vars())?,
            "copy",
        )?;
        let adapter = self.adapter.as_ref().map(|a| a.deep_copy()).transpose()?;
        Self::from_varmap(self.config.clone(), base, adapter, self.frozen)
    }

    /// The LoRA adapter, if the model has one.
    pub fn adapter(&self) -> Option<&LoraAdapter> {
        self.adapter.as_ref()
    }

    /// This model with `adapter` on its linear layers (replacing any other); the base weights
    /// are shared and frozen. An adapter made for another architecture is an error.
    pub fn with_adapter(&self, adapter: LoraAdapter) -> Result<Self, LmError> {
        let targets = adapter
            .config
            .targeted_modules(&self.config)
            .map_err(|e| LmError::Format(format!("adapter: {e}")))?;
        for (module, inp, out) in targets {
            let (a, b) = adapter.pair(&module).ok_or_else(|| {
                LmError::Format(format!("adapter: no matrices for the targeted {module}"))
            })?;
            if a.dims() != [adapter.config.r, inp] || b.dims() != [out, adapter.config.r] {
                return Err(LmError::Format(format!(
                    "adapter: {module} has A {:?} and B {:?}; the model needs [{}, {inp}] and [{out}, {}]",
                    a.dims(),
                    b.dims(),
                    adapter.config.r,
                    adapter.config.r
                )));
            }
        }
        Self::from_varmap(
            self.config.clone(),
            self.varmap.clone(),
            Some(adapter),
            true,
        )
    }

    /// The base model with the adapter switched off: the same (shared, frozen) weights, no copy
    /// — the KL reference of a LoRA run.
    pub fn without_adapter(&self) -> Result<Self, LmError> {
        Self::from_varmap(self.config.clone(), self.varmap.clone(), None, true)
    }

    /// The model with its adapter merged into the weights (`W + (alpha / r) B A`), as PEFT's
    /// `merge_and_unload`: a plain model of fresh, trainable weights.
    pub fn merged(&self) -> Result<Self, LmError> {
        let mut tensors = copied_tensors(self.base_vars())?;
        if let Some(ad) = &self.adapter {
            let scale = ad.config.scale();
            for (name, w) in tensors.iter_mut() {
                let Some(module) = name.strip_suffix(".weight") else {
                    continue;
                };
                if let Some((a, b)) = ad.pair(module) {
                    let delta = (crate::kernels::ops::matmul(&b, &a)? * scale)?;
                    *w = (&*w + delta)?;
                }
            }
        }
        Self::from_tensors(self.config.clone(), tensors, "merged model")
    }

    /// Final hidden states `[batch, seq, hidden_size]` (after the last RMSNorm). With `cache`,
    /// keys and values of earlier calls are attended to and this call's (rotated, one per
    /// key/value head) appended. With `dropout`, a LoRA adapter's `lora_dropout` applies
    /// (the family itself runs without dropout: a nonzero `attention_dropout` is refused when
    /// the config is read).
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
        let positions: Vec<u32> = input.positions.flatten_all()?.to_vec1()?;
        if let Some(&p) = positions.iter().max() {
            if p as usize >= cfg.max_position_embeddings {
                return Err(LmError::Input(format!(
                    "position {p} is beyond the model's max_position_embeddings = {}",
                    cfg.max_position_embeddings
                )));
            }
        }
        let d = cfg.hidden_size;
        let (nh, nkv, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        // The residual stream stays `[b * t, d]` (no reshape nodes around each projection).
        let mut h = self
            .embed_tokens
            .index_select(&input.ids.flatten_all()?, 0)?;
        // A window at least as long as the sequence changes nothing.
        let window = cfg.sliding_window.filter(|&w| w < total);
        let mask = AttentionMask::causal(b, t, past, input.mask, window);
        let angles = RotaryAngles::new(&positions, b, t, &self.inv_freq);
        let scale = 1.0 / (hd as f64).sqrt();
        let heads = |x: Tensor, n: usize| -> candle_core::Result<Tensor> {
            x.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()
        };
        let mut new_layers = Vec::with_capacity(self.layers.len());
        for (li, layer) in self.layers.iter().enumerate() {
            let x = rms_norm(&h, &layer.input_layernorm, cfg.rms_norm_eps)?;
            let q = layer.q_proj.forward(&x, &mut dropout)?;
            let k = layer.k_proj.forward(&x, &mut dropout)?;
            let v = layer.v_proj.forward(&x, &mut dropout)?;
            let o = if cache.is_none() && layer.q_norm.is_none() {
                // Training and scoring: one op from the projections to the merged heads.
                packed_rotary_attention((&q, &k, &v), (nh, nkv), &angles, &mask, scale)?
            } else {
                let (mut q, mut k, mut v) = (heads(q, nh)?, heads(k, nkv)?, heads(v, nkv)?);
                if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                    q = rms_norm(&q, qn, cfg.rms_norm_eps)?;
                    k = rms_norm(&k, kn, cfg.rms_norm_eps)?;
                }
                q = apply_rotary(&q, &angles)?;
                k = apply_rotary(&k, &angles)?;
                if let Some(c) = cache.as_ref() {
                    if let Some(Some((pk, pv))) = c.layers.get(li) {
                        k = Tensor::cat(&[pk, &k], 2)?;
                        v = Tensor::cat(&[pv, &v], 2)?;
                    }
                }
                let o = attention(&q, &k, &v, &mask, scale)?;
                match cache.as_ref() {
                    Some(c) if c.with_gradients => new_layers.push(Some((k, v))),
                    Some(_) => new_layers.push(Some((k.detach(), v.detach()))),
                    None => {}
                }
                o.transpose(1, 2)?.contiguous()?.reshape((b * t, nh * hd))?
            };
            h = (h + layer.o_proj.forward(&o, &mut dropout)?)?;
            let x = rms_norm(&h, &layer.post_attention_layernorm, cfg.rms_norm_eps)?;
            let gate = layer.gate_proj.forward(&x, &mut dropout)?;
            let up = layer.up_proj.forward(&x, &mut dropout)?;
            let gated = match self.act {
                ActivationFunction::Silu => swiglu(&gate, &up)?,
                other => (other.apply(&gate)? * up)?,
            };
            let m = layer.down_proj.forward(&gated, &mut dropout)?;
            h = (h + m)?;
        }
        if let Some(c) = cache.as_mut() {
            c.layers = new_layers;
        }
        Ok(rms_norm(&h, &self.norm, cfg.rms_norm_eps)?.reshape((b, t, d))?)
    }

    /// The `[vocab, hidden]` LM head matrix (`lm_head.weight`, or the token embedding when
    /// tied); an error for a sequence-classification backbone, which has no LM head.
    pub fn lm_head_weight(&self) -> Result<&Tensor, LmError> {
        self.lm_head.as_ref().ok_or_else(|| {
            LmError::Input(
                "this is a sequence-classification (reward) checkpoint: it has no LM head to give logits".into(),
            )
        })
    }

    /// Logits for a batch without cache.
    pub fn logits(&self, input: &ForwardInput) -> Result<Tensor, LmError> {
        crate::models::CausalLm::logits(self, input)
    }
}
