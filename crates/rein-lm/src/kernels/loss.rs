//! Token log-probabilities and the causal language-modelling loss.

use crate::kernels::attention::fast_exp_nonpos;
use crate::kernels::ops::{contiguous_slice, tied_head_product, KeptForBackward};
use crate::models::common::ForwardInput;
use crate::models::{CausalLm, Model};
use crate::LmError;
use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;
use rein_nn::kernels::with_widest_simd;

type Result<T> = candle_core::Result<T>;

/// Label value that excludes a position from the loss (PyTorch's `ignore_index`).
pub const IGNORE: i64 = -100;

/// Per-token log-probabilities under a language-model head, and (when asked) the entropies of
/// the same distributions: what [`head_logprobs`] returns.
#[derive(Debug, Clone)]
pub struct HeadLogProbs {
    /// `log softmax(h W^T / T)[target]`, `[batch, seq]`, differentiable in `h` and `W`.
    pub logprobs: Tensor,
    /// `H = -sum_v p_v log p_v` of each position's distribution (`[batch * seq]`, row-major),
    /// a statistic (no gradient); `None` unless asked for.
    pub entropy: Option<Vec<f32>>,
}

/// `log_softmax(hidden W^T / temperature)` gathered at `targets`, the LM head and the
/// log-probability of each target token as one op: `hidden` `[batch, seq, d]`, `head` the
/// `[vocab, d]` head matrix (GPT-2's tied `wte`, a Llama-family `lm_head`), `targets`
/// `[batch, seq]` (u32) in; `[batch, seq]` out, differentiable in `hidden` and `head`.
///
/// Why one op: the `[rows, vocab]` logits are the largest tensor of a language-model step.
/// As a graph node they cost, backward, a gradient buffer of that size that candle zero-fills
/// and then adds into a second one, besides the pass that recomputes each row's log-sum-exp.
/// Here the logits stay inside the op: the forward pass keeps them (only when a gradient can
/// flow) with each row's `max + log sum exp`, and the backward pass turns them in place into
/// `dL/dz = g (onehot(target) - softmax(z / T)) / T` before the two products
/// `dh = dz W` and `dW = dz^T h`. A second backward pass over the same graph recomputes them.
///
/// The row passes (most of the op's time outside the products is the exponentials) run
/// compiled for the widest vector unit; the results are the same bits on every path (see
/// `rein_nn::kernels::with_widest_simd`).
///
/// With `entropy`, each position's entropy `H = m + log Z - sum_v p_v x_v` (`x = z / T`,
/// `m = max x`, `Z = sum exp(x - m)`) comes back too, from the same pass.
pub fn head_logprobs(
    hidden: &Tensor,
    head: &Tensor,
    targets: &Tensor,
    temperature: f64,
    entropy: bool,
) -> std::result::Result<HeadLogProbs, LmError> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(LmError::Input(format!(
            "temperature must be a positive number, got {temperature}"
        )));
    }
    let (b, t, d) = hidden.dims3()?;
    let (_, hd) = head.dims2()?;
    if targets.dims() != [b, t] || hd != d {
        return Err(LmError::Input(format!(
            "hidden states {:?}, head {:?} and targets {:?} do not agree",
            hidden.dims(),
            head.dims(),
            targets.dims()
        )));
    }
    let entropies = entropy.then(|| std::sync::Arc::new(std::sync::Mutex::new(Vec::new())));
    let op = HeadLogProbsOp {
        inv_t: (1.0 / temperature) as f32,
        entropy: entropies.clone(),
        kept: KeptForBackward::new(hidden.track_op() || head.track_op()),
    };
    let lp = hidden.reshape((b * t, d))?.contiguous()?.apply_op3(
        &head.contiguous()?,
        &targets.to_dtype(DType::U32)?.flatten_all()?.contiguous()?,
        op,
    )?;
    let entropy = match entropies {
        Some(e) => {
            Some(std::mem::take(&mut *e.lock().map_err(|_| {
                LmError::Input("entropy buffer poisoned".into())
            })?))
        }
        None => None,
    };
    Ok(HeadLogProbs {
        logprobs: lp.reshape((b, t))?,
        entropy,
    })
}

/// Rows per rayon task: enough work to pay for the hand-off at GPT-2's vocabulary sizes.
const ROWS_PER_TASK: usize = 8;

/// The logits a forward pass of [`HeadLogProbsOp`] keeps for its backward pass.
struct SavedLogits {
    /// `[rows, vocab]` logits `h W^T` (before the temperature).
    logits: Vec<f32>,
    /// Each row's `m + log Z` of `x = z / T` (see [`row_lse`]).
    shift: Vec<f32>,
}

struct HeadLogProbsOp {
    inv_t: f32,
    /// Where the forward pass puts per-row entropies, when asked for.
    entropy: Option<std::sync::Arc<std::sync::Mutex<Vec<f32>>>>,
    /// The logits, kept when a gradient can flow.
    kept: KeptForBackward<SavedLogits>,
}

/// `(max, log sum exp)` of `x * inv_t` (eight lanes so that the loops vectorise).
#[inline(always)]
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

/// `H = shift - sum_v p_v x_v` of one row (`x = z * inv_t`, `p = exp(x - shift)`), summed in
/// f64 lanes: the entropy is a small difference of two large numbers at big vocabularies.
#[inline(always)]
fn row_entropy(z: &[f32], inv_t: f32, shift: f32) -> f32 {
    let mut acc = [0f64; 4];
    for c in z.chunks(4) {
        for (v, a) in c.iter().zip(acc.iter_mut()) {
            let x = v * inv_t;
            *a += f64::from(fast_exp_nonpos(x - shift) * x);
        }
    }
    (f64::from(shift) - acc.iter().sum::<f64>()) as f32
}

fn check_targets(targets: &[u32], vocab: usize) -> Result<()> {
    if let Some(&bad) = targets.iter().find(|&&x| x as usize >= vocab) {
        candle_core::bail!("target token {bad} is outside the vocabulary of {vocab}");
    }
    Ok(())
}

impl CustomOp3 for HeadLogProbsOp {
    fn name(&self) -> &'static str {
        "rein-head-logprobs"
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
        let h: &[f32] = contiguous_slice(s1, l1, self.name())?;
        let w: &[f32] = contiguous_slice(s2, l2, self.name())?;
        let targets: &[u32] = contiguous_slice(s3, l3, self.name())?;
        let (rows, d) = l1.shape().dims2()?;
        let (vocab, wd) = l2.shape().dims2()?;
        if wd != d || targets.len() != rows {
            candle_core::bail!(
                "lm head: h {:?}, W {:?} and targets {:?} do not agree",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        check_targets(targets, vocab)?;
        let z = tied_head_product(h, w, (rows, vocab, d));
        let mut out = vec![0f32; rows];
        let mut shift = vec![0f32; rows];
        out.par_chunks_mut(ROWS_PER_TASK)
            .zip(shift.par_chunks_mut(ROWS_PER_TASK))
            .enumerate()
            .for_each(|(c, (o, sh))| {
                with_widest_simd(
                    #[inline(always)]
                    || {
                        for (j, (o, sh)) in o.iter_mut().zip(sh.iter_mut()).enumerate() {
                            let r = c * ROWS_PER_TASK + j;
                            let row = &z[r * vocab..(r + 1) * vocab];
                            let (m, lse) = row_lse(row, self.inv_t);
                            *sh = m + lse;
                            *o = row[targets[r] as usize] * self.inv_t - *sh;
                        }
                    },
                )
            });
        if let Some(slot) = &self.entropy {
            let mut ent = vec![0f32; rows];
            ent.par_chunks_mut(ROWS_PER_TASK)
                .enumerate()
                .for_each(|(c, e)| {
                    with_widest_simd(
                        #[inline(always)]
                        || {
                            for (j, e) in e.iter_mut().enumerate() {
                                let r = c * ROWS_PER_TASK + j;
                                *e = row_entropy(
                                    &z[r * vocab..(r + 1) * vocab],
                                    self.inv_t,
                                    shift[r],
                                );
                            }
                        },
                    )
                });
            *slot
                .lock()
                .map_err(|_| candle_core::Error::Msg("entropy buffer poisoned".into()))? = ent;
        }
        self.kept.keep(SavedLogits { logits: z, shift });
        Ok((CpuStorage::F32(out), l3.shape().clone()))
    }

    fn bwd(
        &self,
        h: &Tensor,
        w: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (rows, d) = h.dims2()?;
        let vocab = w.dim(0)?;
        let tg = targets.to_vec1::<u32>()?;
        let SavedLogits {
            logits: mut z,
            shift,
        } = match self.kept.take() {
            Some(s) => s,
            // A second backward pass over the same graph: the first consumed the logits.
            None => {
                let hv = h.flatten_all()?.to_vec1::<f32>()?;
                let wv = w.flatten_all()?.to_vec1::<f32>()?;
                let z = tied_head_product(&hv, &wv, (rows, vocab, d));
                let shift = z
                    .par_chunks(vocab)
                    .map(|row| {
                        let (m, lse) = row_lse(row, self.inv_t);
                        m + lse
                    })
                    .collect();
                SavedLogits { logits: z, shift }
            }
        };
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        // dL/dz in place: g (onehot - softmax(z / T)) / T, row by row.
        z.par_chunks_mut(ROWS_PER_TASK * vocab)
            .enumerate()
            .for_each(|(c, block)| {
                with_widest_simd(
                    #[inline(always)]
                    || {
                        for (j, row) in block.chunks_exact_mut(vocab).enumerate() {
                            let r = c * ROWS_PER_TASK + j;
                            if g[r] == 0.0 {
                                row.fill(0.0);
                                continue;
                            }
                            // Locals, so that the loop neither reloads them nor fears aliasing.
                            let (inv_t, sh, k) = (self.inv_t, shift[r], -g[r] * self.inv_t);
                            for v in row.iter_mut() {
                                *v = k * fast_exp_nonpos(*v * inv_t - sh);
                            }
                            row[tg[r] as usize] += g[r] * self.inv_t;
                        }
                    },
                )
            });
        let dz = Tensor::from_vec(z, (rows, vocab), h.device())?;
        // A frozen head (under a LoRA adapter) takes no gradient: `[vocab, d]` is the largest
        // product of the backward pass.
        let dh = h
            .track_op()
            .then(|| crate::kernels::ops::matmul(&dz, w))
            .transpose()?;
        let dw = w
            .track_op()
            .then(|| crate::kernels::ops::matmul(&dz.t()?, h))
            .transpose()?;
        Ok((dh, dw, None))
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
    let lp = model
        .target_logprobs(&h.narrow(1, 0, t - 1)?, &targets, 1.0, false)?
        .logprobs;
    let loss = ((lp * weights)?.sum_all()? * (-1.0 / n as f64))?;
    Ok((loss, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Var, D};

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// The fused head + log-prob op against candle's composition (`matmul`, `log_softmax`,
    /// `gather`): values, entropies and the gradients of `h` and `W`, at temperature 1 and 0.7,
    /// over a vocabulary that is not a multiple of the lane count and rows with a zero weight;
    /// then a frozen head, a second backward pass over the same graph (recomputed logits), and
    /// a target outside the vocabulary.
    #[test]
    fn head_logprobs_match_the_composition() {
        let dev = Device::Cpu;
        let (b, t, d, v) = (3, 11, 13, 37);
        let hv: Vec<f32> = (0..b * t * d)
            .map(|i| ((i as f32) * 0.731).sin() * 1.5)
            .collect();
        let wv: Vec<f32> = (0..v * d)
            .map(|i| ((i as f32) * 0.377).cos() * 1.2)
            .collect();
        let h = Var::from_vec(hv, (b, t, d), &dev).unwrap();
        let w = Var::from_vec(wv, (v, d), &dev).unwrap();
        let tg: Vec<u32> = (0..b * t).map(|i| (i * 7 % v) as u32).collect();
        let targets = Tensor::from_vec(tg, (b, t), &dev).unwrap();
        let weights = Tensor::from_vec(
            (0..b * t).map(|i| (i % 5) as f32 - 2.0).collect::<Vec<_>>(),
            (b, t),
            &dev,
        )
        .unwrap();
        for temp in [1.0, 0.7] {
            let fused = head_logprobs(&h, &w, &targets, temp, true).unwrap();
            let logits = (h
                .as_tensor()
                .reshape((b * t, d))
                .unwrap()
                .matmul(&w.as_tensor().t().unwrap())
                .unwrap()
                / temp)
                .unwrap();
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
            let composed = logp
                .gather(&targets.reshape((b * t, 1)).unwrap(), 1)
                .unwrap()
                .reshape((b, t))
                .unwrap();
            assert_close(&flat(&fused.logprobs), &flat(&composed), 2e-5, "log-prob");
            let want_entropy = flat(
                &(logp.exp().unwrap() * &logp)
                    .unwrap()
                    .sum(1)
                    .unwrap()
                    .neg()
                    .unwrap(),
            );
            assert_close(
                fused.entropy.as_ref().unwrap(),
                &want_entropy,
                2e-5,
                "entropy",
            );
            let gf = (fused.logprobs * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gc = (composed * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (var, what) in [(&h, "dh"), (&w, "dW")] {
                assert_close(
                    &flat(gf.get(var).unwrap()),
                    &flat(gc.get(var).unwrap()),
                    2e-5,
                    what,
                );
            }
        }
        // A frozen head takes no gradient; h's is unchanged.
        let frozen = w.as_tensor().detach();
        let lp = head_logprobs(&h, &frozen, &targets, 1.0, false).unwrap();
        assert!(lp.entropy.is_none());
        let loss = (lp.logprobs * &weights).unwrap().sum_all().unwrap();
        let g1 = loss.backward().unwrap();
        assert!(g1.get(&frozen).is_none());
        // A second backward pass over the same graph recomputes the consumed logits.
        let g2 = loss.backward().unwrap();
        assert_eq!(flat(g1.get(&h).unwrap()), flat(g2.get(&h).unwrap()));
        let bad = Tensor::from_vec(vec![v as u32; b * t], (b, t), &dev).unwrap();
        let err = head_logprobs(&h, &w, &bad, 1.0, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the vocabulary"), "{err}");
        let err = head_logprobs(&h, &w, &targets, 0.0, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("temperature"), "{err}");
    }
}
