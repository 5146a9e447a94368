//! Token log-probabilities and the causal language-modelling loss.

use crate::kernels::attention::fast_exp_nonpos;
use crate::kernels::ops::contiguous_slice;
use crate::models::common::ForwardInput;
use crate::models::{CausalLm, Model};
use crate::LmError;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

type Result<T> = candle_core::Result<T>;

/// Label value that excludes a position from the loss (PyTorch's `ignore_index`).
pub const IGNORE: i64 = -100;

/// `log_softmax(logits / temperature)` gathered at `targets`: `[batch, seq, vocab]` and
/// `[batch, seq]` (u32) in, `[batch, seq]` out, differentiable in the logits.
///
/// One fused pass per row (max, log-sum-exp, gather) on rayon's threads, and one for the
/// gradient `g * (onehot(target) - softmax(x / T)) / T`: candle's composition (`log_softmax`
/// then `gather`) made eight passes over the `[rows, vocab]` logits, the largest tensor of a
/// language-model step, in each direction.
pub fn gather_logprobs(
    logits: &Tensor,
    targets: &Tensor,
    temperature: f64,
) -> std::result::Result<Tensor, LmError> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(LmError::Input(format!(
            "temperature must be a positive number, got {temperature}"
        )));
    }
    let (b, t, _) = logits.dims3()?;
    if targets.dims() != [b, t] {
        return Err(LmError::Input(format!(
            "targets {:?} do not match logits {:?}",
            targets.dims(),
            logits.dims()
        )));
    }
    let op = GatherLogProbs {
        inv_t: (1.0 / temperature) as f32,
    };
    Ok(logits
        .contiguous()?
        .apply_op2(&targets.to_dtype(DType::U32)?.contiguous()?, op)?)
}

/// Rows per rayon task: enough work to pay for the hand-off at GPT-2's vocabulary sizes.
const ROWS_PER_TASK: usize = 8;

struct GatherLogProbs {
    inv_t: f32,
}

/// `(max, log sum exp)` of `x * inv_t` (eight lanes so that the loops vectorise).
fn row_lse(x: &[f32], inv_t: f32) -> (f32, f32) {
    let mut m8 = [f32::NEG_INFINITY; 8];
    for c in x.chunks(8) {
        for (v, m) in c.iter().zip(m8.iter_mut()) {
            let v = v * inv_t;
            *m = if v > *m { v } else { *m };
        }
    }
    let m = m8
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let mut s8 = [0f32; 8];
    for c in x.chunks(8) {
        for (v, s) in c.iter().zip(s8.iter_mut()) {
            *s += fast_exp_nonpos(v * inv_t - m);
        }
    }
    (m, s8.iter().sum::<f32>().ln())
}

fn check_targets(targets: &[u32], vocab: usize) -> Result<()> {
    if let Some(&bad) = targets.iter().find(|&&x| x as usize >= vocab) {
        candle_core::bail!("target token {bad} is outside the vocabulary of {vocab}");
    }
    Ok(())
}

impl CustomOp2 for GatherLogProbs {
    fn name(&self) -> &'static str {
        "rein-gather-logprobs"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x: &[f32] = contiguous_slice(s1, l1, self.name())?;
        let targets: &[u32] = contiguous_slice(s2, l2, self.name())?;
        let vocab = l1.dims()[l1.dims().len() - 1];
        check_targets(targets, vocab)?;
        let mut out = vec![0f32; targets.len()];
        out.par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(c, o)| {
                for (j, o) in o.iter_mut().enumerate() {
                    let r = c * ROWS_PER_TASK + j;
                    let row = &x[r * vocab..(r + 1) * vocab];
                    let (m, lse) = row_lse(row, self.inv_t);
                    *o = row[targets[r] as usize] * self.inv_t - m - lse;
                }
            });
        Ok((CpuStorage::F32(out), l2.shape().clone()))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = logits.apply_op3_no_bwd(
            targets,
            &grad.contiguous()?,
            &GatherLogProbsGrad { inv_t: self.inv_t },
        )?;
        Ok((Some(g), None))
    }
}

/// The gradient pass of [`GatherLogProbs`].
struct GatherLogProbsGrad {
    inv_t: f32,
}

impl CustomOp3 for GatherLogProbsGrad {
    fn name(&self) -> &'static str {
        "rein-gather-logprobs-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x: &[f32] = contiguous_slice(s1, l1, self.name())?;
        let targets: &[u32] = contiguous_slice(s2, l2, self.name())?;
        let g: &[f32] = contiguous_slice(s3, l3, self.name())?;
        let vocab = l1.dims()[l1.dims().len() - 1];
        check_targets(targets, vocab)?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(ROWS_PER_TASK * vocab)
            .enumerate()
            .for_each(|(c, o)| {
                for (j, orow) in o.chunks_exact_mut(vocab).enumerate() {
                    let r = c * ROWS_PER_TASK + j;
                    let row = &x[r * vocab..(r + 1) * vocab];
                    if g[r] == 0.0 {
                        continue;
                    }
                    let (m, lse) = row_lse(row, self.inv_t);
                    let shift = m + lse;
                    let k = -g[r] * self.inv_t;
                    for (ov, &xv) in orow.iter_mut().zip(row) {
                        *ov = k * fast_exp_nonpos(xv * self.inv_t - shift);
                    }
                    orow[targets[r] as usize] += g[r] * self.inv_t;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// A batch for the causal-LM loss: ids, positions, attention mask and labels (`IGNORE` where
/// no loss is taken), all `batch x seq` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LmBatch {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Position ids.
    pub positions: Vec<u32>,
    /// 1 on real tokens, 0 on padding.
    pub mask: Vec<Vec<u8>>,
    /// Labels (`= ids` where learned, `IGNORE` elsewhere).
    pub labels: Vec<i64>,
    /// Rows.
    pub batch: usize,
    /// Columns.
    pub seq: usize,
}

/// Mean next-token cross-entropy as transformers' `GPT2LMHeadModel` computes it: position t
/// predicts label t+1, averaged over labels that are not `IGNORE`. Returns the differentiable
/// loss and the number of terms. `dropout` makes it a training forward pass.
pub fn causal_lm_loss(
    model: &Model,
    batch: &LmBatch,
    dropout: Option<&mut crate::models::common::Dropout>,
) -> std::result::Result<(Tensor, usize), LmError> {
    let dev = Device::Cpu;
    let (b, t) = (batch.batch, batch.seq);
    if t < 2 {
        return Err(LmError::Input(
            "a training sequence needs at least 2 tokens".into(),
        ));
    }
    let ids = Tensor::from_vec(batch.ids.clone(), (b, t), &dev)?;
    let pos = Tensor::from_vec(batch.positions.clone(), (b, t), &dev)?;
    let h = model.hidden(
        &ForwardInput {
            ids: &ids,
            positions: &pos,
            mask: Some(&batch.mask),
        },
        None,
        dropout,
    )?;
    let logits = model.lm_head(&h.narrow(1, 0, t - 1)?.contiguous()?)?;
    let mut targets = Vec::with_capacity(b * (t - 1));
    let mut weights = Vec::with_capacity(b * (t - 1));
    for r in 0..b {
        for c in 1..t {
            let l = batch.labels[r * t + c];
            targets.push(if l == IGNORE { 0 } else { l as u32 });
            weights.push(if l == IGNORE { 0f32 } else { 1.0 });
        }
    }
    let n = weights.iter().filter(|&&w| w > 0.0).count();
    if n == 0 {
        return Err(LmError::Input(
            "no label to learn from in this batch".into(),
        ));
    }
    let targets = Tensor::from_vec(targets, (b, t - 1), &dev)?;
    let weights = Tensor::from_vec(weights, (b, t - 1), &dev)?;
    let lp = gather_logprobs(&logits, &targets, 1.0)?;
    let loss = ((lp * weights)?.sum_all()? * (-1.0 / n as f64))?;
    Ok((loss, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Var, D};

    /// The fused op against candle's `log_softmax` + `gather`, values and gradients, at
    /// temperature 1 and 0.7, over a vocabulary that is not a multiple of the lane count.
    #[test]
    fn gather_logprobs_matches_the_composition() {
        let dev = Device::Cpu;
        let (b, t, v) = (3, 11, 37);
        let x: Vec<f32> = (0..b * t * v)
            .map(|i| ((i as f32) * 0.731).sin() * 4.0)
            .collect();
        let logits = Var::from_vec(x, (b, t, v), &dev).unwrap();
        let tg: Vec<u32> = (0..b * t).map(|i| (i * 7 % v) as u32).collect();
        let targets = Tensor::from_vec(tg, (b, t), &dev).unwrap();
        let w = Tensor::from_vec(
            (0..b * t).map(|i| (i % 5) as f32 - 2.0).collect::<Vec<_>>(),
            (b, t),
            &dev,
        )
        .unwrap();
        for temp in [1.0, 0.7] {
            let fused = gather_logprobs(&logits, &targets, temp).unwrap();
            let composed =
                candle_nn::ops::log_softmax(&(logits.as_tensor() / temp).unwrap(), D::Minus1)
                    .unwrap()
                    .gather(&targets.unsqueeze(2).unwrap(), 2)
                    .unwrap()
                    .squeeze(2)
                    .unwrap();
            let (a, c) = (
                fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                composed.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            for (x, y) in a.iter().zip(&c) {
                assert!((x - y).abs() < 2e-5, "{x} vs {y}");
            }
            let gf = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gc = (composed * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let (a, c) = (
                gf.get(&logits)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
                gc.get(&logits)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            );
            for (x, y) in a.iter().zip(&c) {
                assert!((x - y).abs() < 2e-5, "{x} vs {y}");
            }
        }
        let bad = Tensor::from_vec(vec![v as u32; b * t], (b, t), &dev).unwrap();
        let err = gather_logprobs(&logits, &bad, 1.0).unwrap_err().to_string();
        assert!(err.contains("outside the vocabulary"), "{err}");
    }
}
