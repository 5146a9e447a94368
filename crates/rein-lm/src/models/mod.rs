//! The language models: GPT-2 ([`gpt2`]) and its Hugging Face configuration ([`config`]).

pub mod config;
pub mod gpt2;
