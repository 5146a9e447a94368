//! Root-mean-square layer normalisation (Zhang & Sennrich 2019, eq. 4) over the last
//! dimension, forward and backward in one pass each over the rows, in f32 as transformers'
//! `LlamaRMSNorm` computes it: `y = x * rsqrt(mean(x^2) + eps) * w`.
//!
//! Why a kernel: candle's `rms_norm` has no backward pass, and the differentiable composition
//! (square, mean, add, sqrt, divide, multiply) makes six passes over the activations.
//!
//! Backward with `r = rsqrt(mean(x^2) + eps)`, `xh = x r`, `g = dy * w`:
//! `dx = r (g - xh mean(g xh))`, `dw = sum_rows(dy xh)`.

use crate::kernels::ops::{contiguous_slice, lane_dot, with_f32_slice};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use rein_nn::kernels::with_widest_simd;

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 16;

struct RmsNorm {
    eps: f32,
}

/// `rsqrt(mean(x^2) + eps)` of a row.
#[inline(always)]
fn inverse_rms(x: &[f32], eps: f32) -> f32 {
    let ms = lane_dot(x, x) / x.len() as f32;
    1.0 / (ms + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rein-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<f32>(s1, l1, self.name())?;
        let w = contiguous_slice::<f32>(s2, l2, self.name())?;
        let d = w.len();
        if d == 0 || x.len() % d != 0 || l1.shape().dims().last() != Some(&d) {
            candle_core::bail!(
                "rms norm: x {:?} and weight {:?} do not agree",
                l1.shape(),
                l2.shape()
            );
        }
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(x.par_chunks(d * ROWS_PER_TASK))
            .for_each(|(yc, xc)| {
                with_widest_simd(
                    #[inline(always)]
                    || {
                        for (yr, xr) in yc.chunks_exact_mut(d).zip(xc.chunks_exact(d)) {
                            let r = inverse_rms(xr, self.eps);
                            for ((o, &v), &wv) in yr.iter_mut().zip(xr).zip(w) {
                                *o = v * r * wv;
                            }
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let wv = w.to_vec1::<f32>()?;
        let d = wv.len();
        let (x, grad) = (x.contiguous()?, grad.contiguous()?);
        let (dx, partial) = with_f32_slice(&x, |xv| {
            with_f32_slice(&grad, |gv| {
                let mut dx = vec![0f32; xv.len()];
                let partial: Vec<Vec<f32>> = dx
                    .par_chunks_mut(d * ROWS_PER_TASK)
                    .zip(xv.par_chunks(d * ROWS_PER_TASK))
                    .zip(gv.par_chunks(d * ROWS_PER_TASK))
                    .map(|((dxc, xc), gc)| {
                        with_widest_simd(
                            #[inline(always)]
                            || {
                                let mut dw = vec![0f32; d];
                                let (mut xh, mut gw) = (vec![0f32; d], vec![0f32; d]);
                                for ((dxr, xr), gr) in dxc
                                    .chunks_exact_mut(d)
                                    .zip(xc.chunks_exact(d))
                                    .zip(gc.chunks_exact(d))
                                {
                                    let r = inverse_rms(xr, self.eps);
                                    for j in 0..d {
                                        xh[j] = xr[j] * r;
                                        gw[j] = gr[j] * wv[j];
                                        dw[j] += gr[j] * xh[j];
                                    }
                                    let mgx = lane_dot(&gw, &xh) / d as f32;
                                    for j in 0..d {
                                        dxr[j] = r * (gw[j] - xh[j] * mgx);
                                    }
                                }
                                dw
                            },
                        )
                    })
                    .collect();
                Ok::<_, candle_core::Error>((dx, partial))
            })
        })?;
        let mut dw = vec![0f32; d];
        for p in partial {
            for (a, b) in dw.iter_mut().zip(p) {
                *a += b;
            }
        }
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, d, dev)?),
        ))
    }
}

/// RMS norm of `x` over its last dimension with `weight` `[d]`; differentiable in both.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNorm { eps: eps as f32 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    /// Values and gradients against the composition of candle ops.
    #[test]
    fn matches_the_composed_norm_and_its_gradients() {
        let dev = Device::Cpu;
        let (rows, d) = (37, 24);
        let gen = |n: usize, s: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * 0.37 + s).sin() * 2.0).collect()
        };
        let x = Var::from_vec(gen(rows * d, 0.1), (rows, d), &dev).unwrap();
        let w = Var::from_vec(gen(d, 0.9), d, &dev).unwrap();
        let probe = Tensor::from_vec(gen(rows * d, 2.3), (rows, d), &dev).unwrap();
        let fused = rms_norm(&x, &w, 1e-5).unwrap();
        let ms = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let composed = x
            .broadcast_div(&(ms + 1e-5).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&w)
            .unwrap();
        let (a, b) = (
            fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            composed.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
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
        for var in [&x, &w] {
            let a = gf
                .get(var)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let b = gc
                .get(var)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
            }
        }
    }
}
