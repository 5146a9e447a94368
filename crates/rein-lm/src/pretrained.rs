//! A pretrained model with everything that comes with it: the decoder, its tokenizer, its chat
//! template and its generation defaults, from a Hugging Face directory or a GGUF file, and
//! written back as a `save_pretrained`-style directory that transformers loads.

use crate::chat::{ChatTemplate, Message};
use crate::models::{CausalLm, Model};
use crate::{LmError, Tokenizer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// End-of-turn tokens of the common chat formats: a chat reply stops at any of them that the
/// vocabulary has (ChatML's, Llama 3's, Phi's, Gemma's).
pub const END_OF_TURN_TOKENS: [&str; 4] = ["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"];

/// The ids of the [`END_OF_TURN_TOKENS`] that `tk`'s vocabulary has.
pub fn end_of_turn_token_ids(tk: &Tokenizer) -> Vec<u32> {
    END_OF_TURN_TOKENS
        .iter()
        .filter_map(|t| tk.token_id(t))
        .collect()
}

/// What a caller of generation asks for (`rein lm generate`'s flags, Python's keyword
/// arguments); `None` leaves a value to `generation_config.json` or the default.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingRequest {
    /// Most new tokens.
    pub max_new_tokens: usize,
    /// Fewest new tokens before EOS is allowed.
    pub min_new_tokens: usize,
    /// Sample rather than decode greedily.
    pub sample: bool,
    /// Sampling temperature (implies sampling).
    pub temperature: Option<f32>,
    /// Top-k filter (implies sampling).
    pub top_k: Option<usize>,
    /// Nucleus filter (implies sampling).
    pub top_p: Option<f32>,
    /// CTRL's repetition penalty.
    pub repetition_penalty: Option<f32>,
    /// Stop strings.
    pub stop_strings: Vec<String>,
    /// Do not stop at EOS or end-of-turn tokens.
    pub ignore_eos: bool,
}

impl Default for SamplingRequest {
    fn default() -> Self {
        Self {
            max_new_tokens: 32,
            min_new_tokens: 0,
            sample: false,
            temperature: None,
            top_k: None,
            top_p: None,
            repetition_penalty: None,
            stop_strings: Vec::new(),
            ignore_eos: false,
        }
    }
}

/// `generation_config.json`: the stop ids and the default sampling settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationDefaults {
    /// `eos_token_id` (one id or a list).
    pub eos_token_ids: Vec<u32>,
    /// `do_sample`.
    pub do_sample: Option<bool>,
    /// `temperature`.
    pub temperature: Option<f32>,
    /// `top_p`.
    pub top_p: Option<f32>,
    /// `top_k`.
    pub top_k: Option<usize>,
    /// `repetition_penalty`.
    pub repetition_penalty: Option<f32>,
    /// The file's object, written back on save.
    pub raw: serde_json::Map<String, Value>,
}

impl GenerationDefaults {
    /// Reads `generation_config.json` (absent: no defaults); bad values name the key.
    pub fn load(path: &Path) -> Result<Self, LmError> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| LmError::Format(format!("{}: not JSON: {e}", path.display())))?;
        let bad = |key: &str| LmError::Format(format!("{}: {key} has a bad value", path.display()));
        let eos_token_ids = match &v["eos_token_id"] {
            Value::Null => Vec::new(),
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_u64()
                        .map(|n| n as u32)
                        .ok_or_else(|| bad("eos_token_id"))
                })
                .collect::<Result<_, _>>()?,
            x => vec![x.as_u64().ok_or_else(|| bad("eos_token_id"))? as u32],
        };
        let f = |key: &str| -> Result<Option<f32>, LmError> {
            match &v[key] {
                Value::Null => Ok(None),
                x => x.as_f64().map(|f| Some(f as f32)).ok_or_else(|| bad(key)),
            }
        };
        Ok(Self {
            eos_token_ids,
            do_sample: v["do_sample"].as_bool(),
            temperature: f("temperature")?,
            top_p: f("top_p")?,
            top_k: v["top_k"].as_u64().map(|k| k as usize),
            repetition_penalty: f("repetition_penalty")?,
            raw: v.as_object().cloned().unwrap_or_default(),
        })
    }
}

/// A model with its tokenizer, chat template and generation defaults.
pub struct Pretrained {
    /// The decoder.
    pub model: Model,
    /// Its tokenizer, if the source has one.
    pub tokenizer: Option<Tokenizer>,
    /// Its chat template, if the source has one.
    pub chat_template: Option<ChatTemplate>,
    /// `generation_config.json`'s settings.
    pub generation: GenerationDefaults,
    /// Where it was loaded from.
    pub source: PathBuf,
}

impl Pretrained {
    /// Loads a model directory (config, weights, `tokenizer.json`, `tokenizer_config.json`,
    /// `chat_template.jinja`, `generation_config.json`) or a `.gguf` file (model, tokenizer and
    /// chat template from its metadata).
    pub fn load(path: &Path) -> Result<Self, LmError> {
        if crate::gguf::is_gguf(path) {
            let file = crate::gguf::GgufFile::open(path)?;
            let model: Model = file.model()?.into();
            let tokenizer = file.tokenizer()?;
            let chat_template = file.chat_template_with_tokens(&tokenizer)?;
            let generation = GenerationDefaults {
                eos_token_ids: file.special_id("eos").into_iter().collect(),
                ..Default::default()
            };
            return Ok(Self {
                model,
                tokenizer: Some(tokenizer),
                chat_template,
                generation,
                source: path.to_path_buf(),
            });
        }
        if path.is_file() {
            return Err(LmError::Format(format!(
                "{}: not a GGUF file (a model is a directory with config.json and model.safetensors, or a .gguf file)",
                path.display()
            )));
        }
        let model = crate::checkpoint::load_model(path)?;
        Ok(Self {
            model,
            tokenizer: Tokenizer::from_dir(path)?,
            chat_template: ChatTemplate::from_dir(path)?,
            generation: GenerationDefaults::load(&path.join("generation_config.json"))?,
            source: path.to_path_buf(),
        })
    }

    /// [`Pretrained::load`], then the PEFT LoRA adapter in the directory `adapter` (when given)
    /// on the model.
    pub fn load_with_adapter(path: &Path, adapter: Option<&Path>) -> Result<Self, LmError> {
        let mut p = Self::load(path)?;
        if let Some(dir) = adapter {
            p.model = p.model.with_adapter_dir(dir)?;
        }
        Ok(p)
    }

    /// Only the tokenizer and chat template of a directory or GGUF file (no weights read, or
    /// for GGUF no tensor data).
    pub fn load_tokenizer_and_template(
        path: &Path,
    ) -> Result<(Option<Tokenizer>, Option<ChatTemplate>), LmError> {
        if crate::gguf::is_gguf(path) {
            let file = crate::gguf::GgufFile::open(path)?;
            let tk = file.tokenizer()?;
            let t = file.chat_template_with_tokens(&tk)?;
            return Ok((Some(tk), t));
        }
        Ok((Tokenizer::from_dir(path)?, ChatTemplate::from_dir(path)?))
    }

    /// The tokenizer, or an error naming the source.
    pub fn need_tokenizer(&self) -> Result<&Tokenizer, LmError> {
        self.tokenizer.as_ref().ok_or_else(|| {
            LmError::Format(format!(
                "{}: no tokenizer.json (or vocab.json + merges.txt)",
                self.source.display()
            ))
        })
    }

    /// Ids that end a chat reply: `generation_config.json`'s and the config's EOS ids and the
    /// end-of-turn tokens of [`END_OF_TURN_TOKENS`] the vocabulary has, without repeats.
    pub fn end_of_turn_ids(&self) -> Vec<u32> {
        let mut ids = self.generation.eos_token_ids.clone();
        ids.extend(self.model.eos_token_ids());
        if let Some(tk) = &self.tokenizer {
            ids.extend(end_of_turn_token_ids(tk));
        }
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        ids
    }

    /// The generation settings of a request: its own values first, then (when it samples)
    /// `generation_config.json`'s defaults, as transformers' `generate` merges them; stops at
    /// the EOS ids of the config and `generation_config.json`, or for `chat` at the
    /// end-of-turn tokens too, unless `ignore_eos`. A request samples when it says so or sets
    /// a temperature, top-k or top-p.
    pub fn generation_config(
        &self,
        r: &SamplingRequest,
        seed: u64,
        chat: bool,
    ) -> crate::generate::GenerationConfig {
        let g = &self.generation;
        let sample = r.sample || r.temperature.is_some() || r.top_k.is_some() || r.top_p.is_some();
        let stops = if r.ignore_eos {
            Vec::new()
        } else if chat {
            self.end_of_turn_ids()
        } else {
            let mut ids = g.eos_token_ids.clone();
            ids.extend(self.model.eos_token_ids());
            ids
        };
        crate::generate::GenerationConfig {
            max_new_tokens: r.max_new_tokens,
            min_new_tokens: r.min_new_tokens,
            do_sample: sample,
            temperature: r
                .temperature
                .or(g.temperature.filter(|_| sample))
                .unwrap_or(1.0),
            top_k: r.top_k.or(g.top_k.filter(|_| sample)).unwrap_or(0),
            top_p: r.top_p.or(g.top_p.filter(|_| sample)).unwrap_or(1.0),
            repetition_penalty: r
                .repetition_penalty
                .or(g.repetition_penalty.filter(|_| sample))
                .unwrap_or(1.0),
            eos_token_id: stops.first().copied(),
            stop_token_ids: stops,
            stop_strings: r.stop_strings.clone(),
            seed,
        }
    }

    /// The chat template's text of `messages` and its token ids (transformers'
    /// `apply_chat_template` with `tokenize=False` and `tokenize=True`).
    pub fn apply_chat_template(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<(String, Vec<u32>), LmError> {
        let template = self.chat_template.as_ref().ok_or_else(|| {
            LmError::Format(format!(
                "{}: no chat template (chat_template.jinja, tokenizer_config.json's chat_template or a GGUF tokenizer.chat_template)",
                self.source.display()
            ))
        })?;
        let text = template.render(messages, add_generation_prompt)?;
        let ids = self.need_tokenizer()?.encode(&text)?;
        Ok((text, ids))
    }

    /// Writes a `save_pretrained`-style directory: `config.json`, `model.safetensors` (f32),
    /// `tokenizer.json`, `tokenizer_config.json` (special tokens, chat template),
    /// `chat_template.jinja` and `generation_config.json`, each atomically.
    pub fn save_pretrained(&self, dir: &Path) -> Result<(), LmError> {
        crate::checkpoint::save_model(&self.model, dir, &[])?;
        let write = |name: &str, text: &str| -> Result<(), LmError> {
            let p = dir.join(name);
            rein_core::metrics::write_atomic(&p, text.as_bytes()).map_err(|e| LmError::io(&p, e))
        };
        if let Some(tk) = &self.tokenizer {
            tk.save(&dir.join("tokenizer.json"))?;
        }
        match &self.chat_template {
            Some(t) => t.save(dir)?,
            None => write(
                "tokenizer_config.json",
                &serde_json::to_string_pretty(
                    &json!({"tokenizer_class": "PreTrainedTokenizerFast"}),
                )
                .expect("JSON"),
            )?,
        }
        let mut gen = self.generation.raw.clone();
        if !self.generation.eos_token_ids.is_empty() {
            let ids = &self.generation.eos_token_ids;
            gen.insert(
                "eos_token_id".into(),
                if ids.len() == 1 {
                    json!(ids[0])
                } else {
                    json!(ids)
                },
            );
        }
        write(
            "generation_config.json",
            &serde_json::to_string_pretty(&Value::Object(gen)).expect("JSON"),
        )
    }
}
