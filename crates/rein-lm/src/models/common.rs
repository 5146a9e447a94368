//! What every decoder of [`crate::models`] shares: the inputs of a forward pass, the KV cache
//! of generation and seeded dropout.

use crate::LmError;
use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;
use rand::Rng;
use rein_core::ReinRng;
use std::collections::HashMap;

/// Inputs of one forward pass.
pub struct ForwardInput<'a> {
    /// Token ids, `[batch, seq]` (u32).
    pub ids: &'a Tensor,
    /// Position ids, `[batch, seq]` (u32).
    pub positions: &'a Tensor,
    /// Attention mask over cached plus new positions, `[batch, past + seq]`, 1 on real tokens
    /// and 0 on padding; `None` means all real.
    pub mask: Option<&'a [Vec<u8>]>,
}

/// Keys and values of earlier positions, per layer (`[batch, heads, past, head_dim]`).
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    pub(crate) layers: Vec<Option<(Tensor, Tensor)>>,
    /// Keep the keys and values in the autograd graph (a prefix computed once and shared by
    /// several continuations in training); decoding detaches them.
    pub(crate) with_gradients: bool,
}

impl KvCache {
    /// An empty cache whose keys and values stay differentiable, so that a loss on the
    /// continuations reaches the parameters through the cached prefix too.
    pub fn with_gradients() -> Self {
        Self {
            layers: Vec::new(),
            with_gradients: true,
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |(k, _)| k.dims()[2])
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the batch rows `rows` (finished sequences leave the batch).
    pub fn select_rows(&mut self, rows: &Tensor) -> candle_core::Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(rows, 0)?;
            *v = v.index_select(rows, 0)?;
        }
        Ok(())
    }
}

/// Dropout with rein's seeded generator (candle's own dropout draws from an unseeded one, which
/// would break bit-exact resume).
pub struct Dropout<'a> {
    /// Generator of the masks.
    pub rng: &'a mut ReinRng,
}

impl Dropout<'_> {
    pub(crate) fn apply(&mut self, x: &Tensor, p: f64) -> candle_core::Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let scale = (1.0 / (1.0 - p)) as f32;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if self.rng.random::<f64>() < p {
                    0.0
                } else {
                    scale
                }
            })
            .collect();
        x * Tensor::from_vec(mask, x.shape(), x.device())?
    }
}

/// A `VarMap` of exactly the parameters `shapes` names, taken from `tensors` (converted to f32),
/// every name and shape checked: a missing or misshapen tensor is an error naming it and
/// `source`.
pub(crate) fn checked_varmap(
    shapes: Vec<(String, Vec<usize>)>,
    mut tensors: HashMap<String, Tensor>,
    source: &str,
) -> Result<VarMap, LmError> {
    let varmap = VarMap::new();
    {
        let mut data = varmap.data().lock().expect("varmap lock");
        for (name, shape) in shapes {
            let t = tensors.remove(&name).ok_or_else(|| {
                LmError::Format(format!(
                    "{source}: tensor {name} (shape {shape:?}) is missing"
                ))
            })?;
            if t.dims() != shape.as_slice() {
                return Err(LmError::Format(format!(
                    "{source}: tensor {name} has shape {:?}, the config needs {shape:?}",
                    t.dims()
                )));
            }
            data.insert(name, Var::from_tensor(&t.to_dtype(DType::F32)?)?);
        }
    }
    Ok(varmap)
}

/// The variables of `varmap` with their names, sorted by name.
pub(crate) fn sorted_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Fresh copies of the variables' values, by name (a model's independent copy).
pub(crate) fn copied_tensors(vars: Vec<(String, Var)>) -> Result<HashMap<String, Tensor>, LmError> {
    vars.into_iter()
        .map(|(n, v)| Ok((n, v.as_tensor().copy()?)))
        .collect()
}
