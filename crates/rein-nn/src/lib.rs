//! # rein-nn
//!
//! Neural-network building blocks for rein's agents, specialised for the small networks of
//! classic control: [`mlp::Mlp`] (flat parameters, hand-written backpropagation on
//! preallocated buffers, matrix products by the `gemm` kernels), orthogonal initialisation,
//! [`distributions`] (categorical, diagonal Gaussian) with their gradients, and
//! [`optim`] (Adam with PyTorch's semantics, global gradient-norm clipping).

// Layer loops index sizes, gains and offsets together.
#![allow(clippy::needless_range_loop)]

pub mod distributions;
pub mod io;
pub mod kernels;
pub mod mlp;
pub mod optim;

pub use mlp::{Activation, Mlp, MlpCache};
pub use optim::{clip_grad_norm, Adam, RmsProp};
