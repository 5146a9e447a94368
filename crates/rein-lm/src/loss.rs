//! Token log-probabilities and the causal language-modelling loss.

use crate::model::{ForwardInput, Gpt2};
use crate::LmError;
use candle_core::{Device, Tensor, D};

/// Label value that excludes a position from the loss (PyTorch's `ignore_index`).
pub const IGNORE: i64 = -100;

/// `log_softmax(logits / temperature)` gathered at `targets`: `[batch, seq, vocab]` and
/// `[batch, seq]` (u32) in, `[batch, seq]` out, differentiable.
pub fn gather_logprobs(
    logits: &Tensor,
    targets: &Tensor,
    temperature: f64,
) -> Result<Tensor, LmError> {
    let scaled = if temperature == 1.0 {
        logits.clone()
    } else {
        (logits / temperature)?
    };
    let lp = candle_nn::ops::log_softmax(&scaled, D::Minus1)?;
    Ok(lp.gather(&targets.unsqueeze(2)?, 2)?.squeeze(2)?)
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
    model: &Gpt2,
    batch: &LmBatch,
    dropout: Option<&mut crate::model::Dropout>,
) -> Result<(Tensor, usize), LmError> {
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
        true,
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
