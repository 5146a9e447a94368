//! Networks as named tensors in PyTorch's layout (`{prefix}.{layer}.weight` is `[out, in]`),
//! the form checkpoints (`rein_train::Checkpoint`) store them in.

use std::collections::HashMap;

/// A named f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Name, e.g. `actor.layers.0.weight`.
    pub name: String,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Elements.
    pub data: Vec<f32>,
}

impl crate::mlp::Mlp {
    /// The layers as tensors named `{prefix}.{l}.weight` (PyTorch's `[out, in]` layout) and
    /// `{prefix}.{l}.bias`.
    pub fn to_tensors(&self, prefix: &str) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        for l in 0..self.n_layers() {
            let (i, o) = (self.sizes()[l], self.sizes()[l + 1]);
            let (wr, br) = self.layer_ranges(l);
            let w = &self.params[wr];
            let wt: Vec<f32> = (0..o)
                .flat_map(|r| (0..i).map(move |c| (r, c)))
                .map(|(r, c)| w[c * o + r])
                .collect();
            out.push(NamedTensor {
                name: format!("{prefix}.{l}.weight"),
                shape: vec![o, i],
                data: wt,
            });
            out.push(NamedTensor {
                name: format!("{prefix}.{l}.bias"),
                shape: vec![o],
                data: self.params[br].to_vec(),
            });
        }
        out
    }

    /// Loads the tensors written by [`Mlp::to_tensors`](crate::mlp::Mlp::to_tensors), checking every shape.
    pub fn load_tensors(
        &mut self,
        prefix: &str,
        tensors: &HashMap<String, NamedTensor>,
    ) -> Result<(), String> {
        for l in 0..self.n_layers() {
            let (i, o) = (self.sizes()[l], self.sizes()[l + 1]);
            let get = |name: String, shape: Vec<usize>| -> Result<&NamedTensor, String> {
                let t = tensors
                    .get(&name)
                    .ok_or_else(|| format!("missing tensor {name}"))?;
                if t.shape != shape {
                    return Err(format!(
                        "tensor {name} has shape {:?}, expected {shape:?}",
                        t.shape
                    ));
                }
                Ok(t)
            };
            let w = get(format!("{prefix}.{l}.weight"), vec![o, i])?;
            let b = get(format!("{prefix}.{l}.bias"), vec![o])?;
            let (wr, br) = self.layer_ranges(l);
            let dst = &mut self.params[wr];
            for r in 0..o {
                for c in 0..i {
                    dst[c * o + r] = w.data[r * i + c];
                }
            }
            self.params[br].copy_from_slice(&b.data);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Mlp};

    #[test]
    fn mlp_round_trips_through_named_tensors() {
        let mut a = Mlp::new(&[3, 4, 2], Activation::Tanh);
        a.init_orthogonal(&[1.0, 1.0], &mut rein_core::rng_from_seed(0));
        let tensors: HashMap<String, NamedTensor> = a
            .to_tensors("actor")
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        assert_eq!(tensors["actor.0.weight"].shape, vec![4, 3]);
        let mut b = Mlp::new(&[3, 4, 2], Activation::Tanh);
        b.load_tensors("actor", &tensors).unwrap();
        assert_eq!(a.params, b.params);
        let mut c = Mlp::new(&[3, 5, 2], Activation::Tanh);
        assert!(c
            .load_tensors("actor", &tensors)
            .unwrap_err()
            .contains("actor.0.weight"));
    }
}
