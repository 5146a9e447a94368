//! The language models: GPT-2 ([`gpt2`], configured by [`config`]) and the Llama family
//! ([`llama`], configured by [`llama_config`], adapted by the LoRA adapters of [`lora`]), both behind the causal-LM interface of
//! [`model`] that generation, training and the RL trainers use; what they share
//! ([`common`]).

pub mod common;
pub mod config;
pub mod gpt2;
pub mod llama;
pub mod llama_config;
pub mod lora;
pub mod model;

pub use model::{CausalLm, Model, ModelConfig};
