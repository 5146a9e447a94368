//! Rotary position embedding (Su et al. 2021, eq. 34) as transformers applies it to queries and
//! keys: `x * cos + rotate_half(x) * sin` with `rotate_half([x1, x2]) = [-x2, x1]` on the two
//! halves of each head, `cos`/`sin` of `position * inv_freq` repeated over both halves.
//!
//! Why a kernel: the composition (two narrows, a negation, a concatenation, two products and a
//! sum) makes seven passes and five temporaries per layer for queries and keys each.
//! Backward: the map is linear in `x` with `rotate_half^T([g1, g2]) = [g2, -g1]`, so
//! `dx1 = dy1 cos + dy2 sin`, `dx2 = dy2 cos - dy1 sin` (cos and sin are the same on both halves).

use crate::kernels::ops::contiguous_slice;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// The angles of a batch: `cos` and `sin` of `position * inv_freq`, `[batch, t, head_dim / 2]`.
#[derive(Clone)]
pub struct RotaryAngles {
    /// Cosines.
    pub cos: Arc<Vec<f32>>,
    /// Sines.
    pub sin: Arc<Vec<f32>>,
    /// Rows of the batch.
    pub batch: usize,
    /// Positions per row.
    pub t: usize,
    /// Half the head size.
    pub half: usize,
}

impl RotaryAngles {
    /// Angles for `positions` (`[batch * t]`, row-major) and the inverse frequencies
    /// (`[head_dim / 2]`), in f32 as transformers computes `inv_freq @ position_ids`.
    pub fn new(positions: &[u32], batch: usize, t: usize, inv_freq: &[f32]) -> Self {
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(batch * t * half);
        let mut sin = Vec::with_capacity(batch * t * half);
        for &p in positions {
            for &f in inv_freq {
                let a = f * p as f32;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Self {
            cos: Arc::new(cos),
            sin: Arc::new(sin),
            batch,
            t,
            half,
        }
    }
}

/// Rotates `x` `[batch, heads, t, 2 * half]` by `angles` into `y` (same shape); with
/// `transpose`, the transposed (inverse) rotation, which is the backward pass. The caller
/// checks that the shapes agree with the angles.
pub(crate) fn rotate_heads(
    a: &RotaryAngles,
    heads: usize,
    x: &[f32],
    y: &mut [f32],
    transpose: bool,
) {
    let (t, half) = (a.t, a.half);
    let d = 2 * half;
    let sign = if transpose { -1.0 } else { 1.0 };
    y.par_chunks_mut(t * d)
        .zip(x.par_chunks(t * d))
        .enumerate()
        .for_each(|(i, (yc, xc))| {
            let bi = i / heads;
            for (r, (yr, xr)) in yc.chunks_exact_mut(d).zip(xc.chunks_exact(d)).enumerate() {
                let off = (bi * t + r) * half;
                let (c, s) = (&a.cos[off..off + half], &a.sin[off..off + half]);
                let (x1, x2) = xr.split_at(half);
                let (y1, y2) = yr.split_at_mut(half);
                for j in 0..half {
                    let sj = sign * s[j];
                    y1[j] = x1[j] * c[j] - x2[j] * sj;
                    y2[j] = x2[j] * c[j] + x1[j] * sj;
                }
            }
        });
}

struct Rotary {
    angles: RotaryAngles,
    /// Backward: apply the transposed rotation.
    transpose: bool,
}

impl CustomOp1 for Rotary {
    fn name(&self) -> &'static str {
        "rein-rotary"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<f32>(storage, layout, self.name())?;
        let (b, h, t, d) = layout.shape().dims4()?;
        let a = &self.angles;
        if (b, t, d) != (a.batch, a.t, 2 * a.half) {
            candle_core::bail!(
                "rotary: x {:?} does not match angles of batch {}, length {}, head size {}",
                layout.shape(),
                a.batch,
                a.t,
                2 * a.half
            );
        }
        let mut y = vec![0f32; x.len()];
        rotate_heads(a, h, x, &mut y, self.transpose);
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let back = Rotary {
            angles: self.angles.clone(),
            transpose: !self.transpose,
        };
        Ok(Some(grad.contiguous()?.apply_op1(back)?))
    }
}

/// `x` `[batch, heads, t, head_dim]` rotated by `angles`; differentiable.
pub fn apply_rotary(x: &Tensor, angles: &RotaryAngles) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Rotary {
        angles: angles.clone(),
        transpose: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Against transformers' formula composed from candle ops (values and gradients).
    #[test]
    fn matches_rotate_half_and_its_gradient() {
        let dev = Device::Cpu;
        let (b, h, t, d) = (2, 3, 5, 8);
        let gen = |n: usize, s: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * 0.37 + s).sin()).collect()
        };
        let x = Var::from_vec(gen(b * h * t * d, 0.2), (b, h, t, d), &dev).unwrap();
        let positions: Vec<u32> = (0..(b * t) as u32).map(|i| i * 3 % 11).collect();
        let inv: Vec<f32> = (0..d / 2)
            .map(|i| 10000f32.powf(-(2.0 * i as f32) / d as f32))
            .collect();
        let angles = RotaryAngles::new(&positions, b, t, &inv);
        let fused = apply_rotary(&x, &angles).unwrap();
        let full = |v: &[f32]| -> Tensor {
            let half = Tensor::from_vec(v.to_vec(), (b, 1, t, d / 2), &dev).unwrap();
            Tensor::cat(&[&half, &half], 3).unwrap()
        };
        let (cos, sin) = (full(&angles.cos), full(&angles.sin));
        let x1 = x.narrow(3, 0, d / 2).unwrap();
        let x2 = x.narrow(3, d / 2, d / 2).unwrap();
        let rot = Tensor::cat(&[&x2.neg().unwrap(), &x1], 3).unwrap();
        let composed = (x.broadcast_mul(&cos).unwrap() + rot.broadcast_mul(&sin).unwrap()).unwrap();
        let probe = Tensor::from_vec(gen(b * h * t * d, 1.7), (b, h, t, d), &dev).unwrap();
        let a = fused.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let c = composed.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (p, q) in a.iter().zip(&c) {
            assert!((p - q).abs() < 1e-6);
        }
        let gf = (fused * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gc = (composed * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let a = gf
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let c = gc
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (p, q) in a.iter().zip(&c) {
            assert!((p - q).abs() < 1e-5);
        }
    }
}
