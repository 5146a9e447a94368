//! The CPU kernels the models run on, each with its backward pass where training needs one:
//! fused causal attention ([`attention`]), GELU, linear layers, the tied LM head and layer norm
//! ([`ops`]), token log-probs and the causal-LM loss ([`loss`]), and AVX2/FMA products of a
//! few rows for decoding (`skinny`).

pub mod attention;
pub mod loss;
pub mod ops;
pub(crate) mod skinny;
