//! llama.cpp's GGUF files: the model (every tensor dequantised to f32 by candle's reader), its
//! configuration from the `{arch}.*` metadata, its tokenizer (`tokenizer.ggml.*`: a gpt2-style
//! byte-level BPE from tokens, merges and token types) and its chat template.
//!
//! Names follow llama.cpp's converter (`token_embd`, `blk.{i}.attn_q`, ...). For the `llama`
//! architecture that converter permutes the rows of `attn_q` and `attn_k`
//! (`w.reshape(n_head, 2, rows / n_head / 2, cols).swapaxes(1, 2)`, for its interleaved rotary
//! layout); loading undoes it, so that the model is transformers' `from_pretrained(dir,
//! gguf_file=...)` exactly.

use crate::models::llama::Llama;
use crate::models::llama_config::{Family, LlamaConfig, RopeScaling};
use crate::models::Model;
use crate::LmError;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Whether `path` is a file that starts with GGUF's magic.
pub fn is_gguf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    path.is_file()
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && &magic == b"GGUF"
}

/// An open GGUF file: its header and metadata.
pub struct GgufFile {
    content: Content,
    path: std::path::PathBuf,
}

fn err(path: &Path, e: impl std::fmt::Display) -> LmError {
    // candle's errors may carry a backtrace after the first line: keep the message only.
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    LmError::Format(format!("{}: {first}", path.display()))
}

impl GgufFile {
    /// Reads the header, metadata and tensor directory (not the tensor data); a damaged or
    /// truncated file, or an unknown tensor type, is an error naming the file.
    pub fn open(path: &Path) -> Result<Self, LmError> {
        let mut f = std::fs::File::open(path).map_err(|e| LmError::io(path, e))?;
        let content = Content::read(&mut f).map_err(|e| {
            err(
                path,
                format!(
                    "not a readable GGUF file ({}); supported tensor types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K",
                    e.to_string().lines().next().unwrap_or_default()
                ),
            )
        })?;
        Ok(Self {
            content,
            path: path.to_path_buf(),
        })
    }

    fn meta(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn meta_u64(&self, key: &str) -> Result<Option<u64>, LmError> {
        self.meta(key)
            .map(|v| {
                v.to_u64()
                    .or_else(|_| v.to_u32().map(u64::from))
                    .or_else(|_| v.to_i32().map(|x| x.max(0) as u64))
            })
            .transpose()
            .map_err(|e| err(&self.path, format!("metadata {key}: {e}")))
    }

    fn need_u64(&self, key: &str) -> Result<u64, LmError> {
        self.meta_u64(key)?
            .ok_or_else(|| err(&self.path, format!("metadata {key} is missing")))
    }

    fn meta_f64(&self, key: &str) -> Result<Option<f64>, LmError> {
        self.meta(key)
            .map(|v| v.to_f32().map(f64::from).or_else(|_| v.to_f64()))
            .transpose()
            .map_err(|e| err(&self.path, format!("metadata {key}: {e}")))
    }

    fn meta_str(&self, key: &str) -> Option<&str> {
        self.meta(key)
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
    }

    fn meta_strings(&self, key: &str) -> Result<Vec<String>, LmError> {
        let v = self
            .meta(key)
            .ok_or_else(|| err(&self.path, format!("metadata {key} is missing")))?;
        v.to_vec()
            .and_then(|a| a.iter().map(|s| s.to_string().cloned()).collect())
            .map_err(|e| err(&self.path, format!("metadata {key}: {e}")))
    }

    /// The chat template of `tokenizer.chat_template`, if the file has one.
    pub fn chat_template(&self) -> Option<String> {
        self.meta_str("tokenizer.chat_template").map(str::to_string)
    }

    /// The chat template with the file's special tokens (`bos_token`, `eos_token`, `pad_token`,
    /// `unk_token` as the tokenizer spells them), if the file has a template.
    pub fn chat_template_with_tokens(
        &self,
        tk: &crate::Tokenizer,
    ) -> Result<Option<crate::chat::ChatTemplate>, LmError> {
        let Some(source) = self.chat_template() else {
            return Ok(None);
        };
        let mut special_tokens = std::collections::BTreeMap::new();
        for (name, key) in [
            ("bos_token", "bos"),
            ("eos_token", "eos"),
            ("pad_token", "padding"),
            ("unk_token", "unknown"),
        ] {
            if let Some(id) = self.special_id(key) {
                special_tokens.insert(name.to_string(), tk.decode(&[id], false)?);
            }
        }
        Ok(Some(crate::chat::ChatTemplate {
            source,
            origin: format!("{} (tokenizer.chat_template)", self.path.display()),
            special_tokens,
        }))
    }

    /// The special token id `tokenizer.ggml.{name}_token_id`.
    pub fn special_id(&self, name: &str) -> Option<u32> {
        self.meta_u64(&format!("tokenizer.ggml.{name}_token_id"))
            .ok()
            .flatten()
            .map(|v| v as u32)
    }

    /// The tokenizer of `tokenizer.ggml.*` (only the `gpt2` byte-level BPE model is supported:
    /// the one of Llama 3, SmolLM2, Qwen2 and Qwen3 files). Tokens of type CONTROL (3) and
    /// USER_DEFINED (4) become added tokens, matched whole in text (special for CONTROL), as
    /// transformers' GGUF converter does.
    pub fn tokenizer(&self) -> Result<crate::Tokenizer, LmError> {
        match self.meta_str("tokenizer.ggml.model") {
            Some("gpt2") => {}
            Some(other) => {
                return Err(err(
                    &self.path,
                    format!("tokenizer.ggml.model {other:?} is not supported (only \"gpt2\", a byte-level BPE)"),
                ))
            }
            None => return Err(err(&self.path, "metadata tokenizer.ggml.model is missing")),
        }
        let tokens = self.meta_strings("tokenizer.ggml.tokens")?;
        let merges = self.meta_strings("tokenizer.ggml.merges")?;
        let types: Vec<i32> = match self.meta("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .and_then(|a| a.iter().map(Value::to_i32).collect())
                .map_err(|e| {
                    err(
                        &self.path,
                        format!("metadata tokenizer.ggml.token_type: {e}"),
                    )
                })?,
            None => vec![1; tokens.len()],
        };
        crate::Tokenizer::from_bpe_parts(&tokens, &merges, &types).map_err(|e| err(&self.path, e))
    }

    /// The model configuration of the `{arch}.*` metadata.
    pub fn config(&self) -> Result<LlamaConfig, LmError> {
        let arch = self
            .meta_str("general.architecture")
            .ok_or_else(|| err(&self.path, "metadata general.architecture is missing"))?;
        let family = match arch {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            "qwen3" => Family::Qwen3,
            other => {
                return Err(err(
                    &self.path,
                    format!("general.architecture {other:?} is not supported (supported: llama, qwen2, qwen3)"),
                ))
            }
        };
        if self.content.tensor_infos.contains_key("rope_freqs.weight") {
            return Err(err(
                &self.path,
                "rope_freqs.weight (Llama 3.1 rope scaling stored as a tensor) is not supported; load the Hugging Face directory instead",
            ));
        }
        let k = |s: &str| format!("{arch}.{s}");
        let hidden = self.need_u64(&k("embedding_length"))? as usize;
        let heads = self.need_u64(&k("attention.head_count"))? as usize;
        let embed = self
            .content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| err(&self.path, "tensor token_embd.weight is missing"))?;
        let vocab = match self.meta_u64(&k("vocab_size"))? {
            Some(v) => v as usize,
            None => embed.shape.dims()[0],
        };
        let head_dim = self
            .meta_u64(&k("attention.key_length"))?
            .map(|v| v as usize)
            .unwrap_or(hidden / heads.max(1));
        let rope_scaling = match self.meta_str(&k("rope.scaling.type")) {
            None | Some("none") => RopeScaling::Default,
            Some("linear") => RopeScaling::Linear {
                factor: self.meta_f64(&k("rope.scaling.factor"))?.unwrap_or(1.0),
            },
            Some(other) => {
                return Err(err(
                    &self.path,
                    format!("{arch}.rope.scaling.type {other:?} is not supported (none, linear)"),
                ))
            }
        };
        let tied = !self.content.tensor_infos.contains_key("output.weight");
        let qkv_bias = self.content.tensor_infos.contains_key("blk.0.attn_q.bias");
        let cfg = LlamaConfig {
            family,
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: self.need_u64(&k("feed_forward_length"))? as usize,
            num_hidden_layers: self.need_u64(&k("block_count"))? as usize,
            num_attention_heads: heads,
            num_key_value_heads: self
                .meta_u64(&k("attention.head_count_kv"))?
                .map_or(heads, |v| v as usize),
            head_dim,
            max_position_embeddings: self.meta_u64(&k("context_length"))?.unwrap_or(2048) as usize,
            rms_norm_eps: self
                .meta_f64(&k("attention.layer_norm_rms_epsilon"))?
                .unwrap_or(1e-6),
            rope_theta: self.meta_f64(&k("rope.freq_base"))?.unwrap_or(10000.0),
            rope_scaling,
            qkv_bias,
            o_bias: self
                .content
                .tensor_infos
                .contains_key("blk.0.attn_output.bias"),
            mlp_bias: self.content.tensor_infos.contains_key("blk.0.ffn_up.bias"),
            tie_word_embeddings: tied,
            sequence_classification: false,
            sliding_window: None,
            hidden_act: "silu".into(),
            initializer_range: 0.02,
            bos_token_id: self.special_id("bos"),
            eos_token_ids: self.special_id("eos").into_iter().collect(),
            pad_token_id: self.special_id("padding"),
            raw: Default::default(),
        };
        cfg.validate().map_err(|e| err(&self.path, e))?;
        Ok(cfg)
    }

    /// The model, every tensor dequantised to f32 and renamed to transformers' names.
    pub fn model(&self) -> Result<Llama, LmError> {
        let cfg = self.config()?;
        let mut f = std::fs::File::open(&self.path).map_err(|e| LmError::io(&self.path, e))?;
        let mut tensors = HashMap::new();
        let (hd, heads, kv_heads) = (
            cfg.head_dim,
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
        );
        for name in self.content.tensor_infos.keys() {
            let Some(hf) = hf_name(name) else {
                return Err(err(
                    &self.path,
                    format!(
                        "tensor {name} has no counterpart in the {} architecture",
                        cfg.family.model_type()
                    ),
                ));
            };
            let q = self
                .content
                .tensor(&mut f, name, &Device::Cpu)
                .map_err(|e| err(&self.path, format!("tensor {name}: {e}")))?;
            let mut t = q
                .dequantize(&Device::Cpu)
                .map_err(|e| err(&self.path, format!("tensor {name}: {e}")))?;
            if cfg.family == Family::Llama {
                if name.ends_with("attn_q.weight") || name.ends_with("attn_q.bias") {
                    t = unpermute_rows(&t, heads, hd)?;
                } else if name.ends_with("attn_k.weight") || name.ends_with("attn_k.bias") {
                    t = unpermute_rows(&t, kv_heads, hd)?;
                }
            }
            tensors.insert(hf, t);
        }
        Llama::from_tensors(cfg, tensors, &self.path.display().to_string())
    }
}

/// transformers' name of a llama.cpp tensor name.
fn hf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    layer.parse::<usize>().ok()?;
    let (module, kind) = part.rsplit_once('.')?;
    let hf = match module {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Undoes llama.cpp's row permutation of a q/k projection (weights `[heads * hd, in]` or a
/// bias `[heads * hd]`): file row `h*hd + 2j + s` holds transformers' row `h*hd + s*hd/2 + j`.
fn unpermute_rows(t: &Tensor, heads: usize, hd: usize) -> Result<Tensor, LmError> {
    let dims = t.dims().to_vec();
    let cols = if dims.len() == 2 { dims[1] } else { 1 };
    let rows = dims[0];
    if rows != heads * hd {
        return Err(LmError::Format(format!(
            "q/k projection has {rows} rows; the config needs {heads} heads x {hd}"
        )));
    }
    let src: Vec<f32> = t.flatten_all()?.to_vec1()?;
    let mut dst = vec![0f32; src.len()];
    let half = hd / 2;
    for h in 0..heads {
        for j in 0..half {
            for s in 0..2 {
                let from = h * hd + 2 * j + s;
                let to = h * hd + s * half + j;
                dst[to * cols..(to + 1) * cols]
                    .copy_from_slice(&src[from * cols..(from + 1) * cols]);
            }
        }
    }
    Ok(Tensor::from_vec(dst, dims, &Device::Cpu)?)
}

/// Loads the model of a GGUF file.
pub fn load_model(path: &Path) -> Result<Model, LmError> {
    Ok(GgufFile::open(path)?.model()?.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        let (heads, hd, cols) = (2, 4, 3);
        let hf: Vec<f32> = (0..heads * hd * cols).map(|i| i as f32).collect();
        // llama.cpp: reshape(heads, 2, hd/2, cols).swapaxes(1, 2).
        let mut file = vec![0f32; hf.len()];
        for h in 0..heads {
            for s in 0..2 {
                for j in 0..hd / 2 {
                    let src = h * hd + s * (hd / 2) + j;
                    let dst = h * hd + j * 2 + s;
                    file[dst * cols..(dst + 1) * cols]
                        .copy_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        let t = Tensor::from_vec(file, (heads * hd, cols), &Device::Cpu).unwrap();
        let back: Vec<f32> = unpermute_rows(&t, heads, hd)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(back, hf);
        assert_eq!(
            hf_name("blk.3.attn_output.weight").unwrap(),
            "model.layers.3.self_attn.o_proj.weight"
        );
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
    }
}
