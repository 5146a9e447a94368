//! Language models for rein: GPT-2 compatible with Hugging Face checkpoints (config.json,
//! model.safetensors, tokenizer.json), batched generation with a KV cache, supervised training
//! and the RL trainers for language models. Its parts: [`models`] (architectures), [`kernels`]
//! (the CPU ops they run on), [`tokenizer`], [`generate`](mod@generate), [`train`] (pretraining/SFT), [`rl`]
//! (rewards, GRPO, PPO), [`checkpoint`] (Hugging Face directories and trainer checkpoints),
//! [`evaluation`], and the task data of [`tasks`], [`quickstart`] and [`demo`].
//!
//! Tensors are candle's (CPU, f32); tokenisation is the `tokenizers` crate's.

pub mod bench;
pub mod chat;
pub mod checkpoint;
pub mod demo;
pub mod evaluation;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod models;
pub mod optim;
pub mod pretrained;
pub mod quickstart;
pub mod rl;
pub mod tasks;
pub mod tokenizer;
pub mod train;

pub use generate::{generate, Generated, GenerationConfig};
pub use models::common::{ForwardInput, KvCache};
pub use models::config::Gpt2Config;
pub use models::gpt2::{Gpt2, ScalarHead};
pub use models::llama::Llama;
pub use models::llama_config::LlamaConfig;
pub use models::{CausalLm, Model, ModelConfig};
pub use tokenizer::Tokenizer;

/// Errors of the language-model code; each names the file, tensor, line or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum LmError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's content is not what was expected.
    #[error("{0}")]
    Format(String),
    /// Bad input values (ids, prompts, options).
    #[error("{0}")]
    Input(String),
    /// Training produced NaN or infinity (the message says where; the last checkpoint stays).
    #[error("{0}")]
    NonFinite(String),
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl LmError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
