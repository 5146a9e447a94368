//! The CPU kernels the models run on, each with its backward pass where training needs one:
//! fused causal attention with grouped-query heads ([`attention`]), GELU, linear layers in
//! both weight layouts, the LM head and layer norm ([`ops`]), RMS norm ([`rms_norm`]), rotary
//! position embedding ([`rotary`]), token log-probs and the causal-LM loss ([`loss`]), and
//! AVX2/FMA products of a few rows for decoding (`skinny`).

pub mod attention;
pub mod loss;
pub mod ops;
pub mod rms_norm;
pub mod rotary;
pub(crate) mod skinny;
