//! Element-wise kernels candle lacks in fast form. candle's `gelu` calls libm `tanh` per
//! element on one thread (~20 ns each), which took a quarter of a GPT-2 forward pass here; this
//! one uses the vectorisable rational tanh of `rein_nn::kernels` and splits large tensors over
//! rayon's pool.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rein_nn::kernels::fast_tanh;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const COEF: f32 = 0.044_715;

/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
#[inline]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + fast_tanh(SQRT_2_OVER_PI * x * (1.0 + COEF * x * x)))
}

/// d gelu / dx.
#[inline]
fn gelu_grad(x: f32) -> f32 {
    let t = fast_tanh(SQRT_2_OVER_PI * x * (1.0 + COEF * x * x));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * COEF * x * x)
}

fn map_parallel(src: &[f32], f: fn(f32) -> f32) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0f32; src.len()];
    // rayon's pool is the one candle already runs its kernels on: no thread start-up per call.
    const CHUNK: usize = 1 << 15;
    if src.len() < 2 * CHUNK {
        for (o, &x) in out.iter_mut().zip(src) {
            *o = f(x);
        }
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(o, i)| {
                for (o, &x) in o.iter_mut().zip(i) {
                    *o = f(x);
                }
            });
    }
    out
}

fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, name: &str) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{name} needs a contiguous input"),
    }
}

struct GeluTanh;
struct GeluTanhGrad;

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "gelu-tanh-fast"
    }
    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        Ok((
            CpuStorage::F32(map_parallel(x, gelu)),
            layout.shape().clone(),
        ))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let d = arg.apply_op1_no_bwd(&GeluTanhGrad)?;
        Ok(Some((grad_res * d)?))
    }
}

impl CustomOp1 for GeluTanhGrad {
    fn name(&self) -> &'static str {
        "gelu-tanh-fast-grad"
    }
    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        Ok((
            CpuStorage::F32(map_parallel(x, gelu_grad)),
            layout.shape().clone(),
        ))
    }
}

/// GPT-2's `gelu_new` on an f32 tensor, differentiable.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluTanh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_gelu_matches_the_formula_and_its_gradient() {
        let xs: Vec<f32> = (-400..400).map(|i| i as f32 * 0.025).collect();
        for &x in &xs {
            let exact = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF * x * x)).tanh());
            assert!((gelu(x) - exact).abs() < 1e-6, "x = {x}");
            let h = 1e-3f64;
            let f =
                |x: f64| 0.5 * x * (1.0 + (0.797_884_560_8 * x * (1.0 + 0.044_715 * x * x)).tanh());
            let num = (f(f64::from(x) + h) - f(f64::from(x) - h)) / (2.0 * h);
            assert!((f64::from(gelu_grad(x)) - num).abs() < 1e-4, "x = {x}");
        }
        let t = Tensor::from_vec(xs.clone(), xs.len(), &candle_core::Device::Cpu).unwrap();
        let candle = t.gelu().unwrap().to_vec1::<f32>().unwrap();
        let ours = gelu_tanh(&t).unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in candle.iter().zip(&ours) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
