//! The log-probabilities, hidden states and minibatches of sampled responses under a model
//! ([`ResponseBatch`]), and their mean entropy.

use crate::models::common::{Dropout, ForwardInput};
use crate::models::{CausalLm, Model};
use crate::LmError;
use candle_core::{Device, Tensor};

/// A batch of prompt + response sequences laid out for scoring the responses: prompts
/// left-padded to a common length `p`, responses right-padded to `r`, so that response token
/// `j` of every row sits at column `p + j` and is predicted by the logits at `p + j - 1`.
#[derive(Debug, Clone)]
pub struct ResponseBatch {
    /// `[n, p + r]` token ids (pads are 0 under a zero mask).
    pub ids: Vec<u32>,
    /// Position ids (0 on left pads, then counting; right pads keep counting, capped).
    pub positions: Vec<u32>,
    /// Attention mask rows.
    pub mask: Vec<Vec<u8>>,
    /// `[n, r]` response tokens (0 past the end).
    pub targets: Vec<u32>,
    /// `[n, r]` 1 on response tokens, 0 past the end.
    pub token_mask: Vec<f32>,
    /// Rows.
    pub n: usize,
    /// Common prompt length.
    pub prompt_len: usize,
    /// Common (padded) response length.
    pub response_len: usize,
}

impl ResponseBatch {
    /// Lays out `prompts[i] ++ responses[i]`; `n_positions` caps the position ids.
    pub fn new(
        prompts: &[Vec<u32>],
        responses: &[Vec<u32>],
        n_positions: usize,
    ) -> Result<Self, LmError> {
        if prompts.len() != responses.len() || prompts.is_empty() {
            return Err(LmError::Input(format!(
                "{} prompts for {} responses",
                prompts.len(),
                responses.len()
            )));
        }
        let n = prompts.len();
        let p = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let r = responses.iter().map(Vec::len).max().unwrap_or(0).max(1);
        if p == 0 {
            return Err(LmError::Input("a prompt has no tokens".into()));
        }
        if p + r > n_positions {
            return Err(LmError::Input(format!(
                "prompt ({p} tokens) plus response ({r}) exceed n_positions = {n_positions}"
            )));
        }
        let width = p + r;
        let mut b = ResponseBatch {
            ids: Vec::with_capacity(n * width),
            positions: Vec::with_capacity(n * width),
            mask: Vec::with_capacity(n),
            targets: Vec::with_capacity(n * r),
            token_mask: Vec::with_capacity(n * r),
            n,
            prompt_len: p,
            response_len: r,
        };
        for (pr, re) in prompts.iter().zip(responses) {
            let pad = p - pr.len();
            let mut m = vec![0u8; width];
            m[pad..pad + pr.len() + re.len()].fill(1);
            b.mask.push(m);
            b.ids.extend(std::iter::repeat_n(0, pad));
            b.ids.extend_from_slice(pr);
            b.ids.extend_from_slice(re);
            b.ids.extend(std::iter::repeat_n(0, r - re.len()));
            b.positions.extend(std::iter::repeat_n(0, pad));
            b.positions
                .extend((0..(pr.len() + r) as u32).map(|x| x.min(n_positions as u32 - 1)));
            b.targets.extend_from_slice(re);
            b.targets.extend(std::iter::repeat_n(0, r - re.len()));
            b.token_mask.extend(std::iter::repeat_n(1.0, re.len()));
            b.token_mask.extend(std::iter::repeat_n(0.0, r - re.len()));
        }
        Ok(b)
    }

    /// `[n, r]` log-probabilities of the response tokens under `model` at `temperature`
    /// (differentiable when the model's variables are tracked), and with `entropy` the mean
    /// entropy of the policy over the response tokens.
    pub fn logprobs(
        &self,
        model: &Model,
        temperature: f64,
        dropout: Option<&mut Dropout>,
        entropy: bool,
    ) -> Result<(Tensor, Option<f64>), LmError> {
        let h = self.hidden(model, dropout)?;
        self.logprobs_from_hidden(model, &h, temperature, entropy)
    }

    /// `[n, r, d]` final hidden states of the states that predict each response token (the
    /// prompt's last position, then each response token but the last): a value head on them
    /// gives `V(s_t)` for response step `t`, as TRL's `values[:, context_length - 1 : -1]`.
    ///
    /// Rows with the same (padded) prompt, as GRPO's groups, share one forward and backward
    /// pass of the prompt: its keys and values, kept in the graph, feed each row's response
    /// (without dropout, whose masks would differ per row; the same values as one pass per
    /// row, tested).
    pub fn hidden(&self, model: &Model, dropout: Option<&mut Dropout>) -> Result<Tensor, LmError> {
        if dropout.is_none() && self.response_len > 0 {
            if let Some(h) = self.hidden_shared_prompts(model)? {
                return Ok(h);
            }
        }
        self.hidden_per_row(model, dropout)
    }

    /// [`ResponseBatch::hidden`] with one pass per distinct prompt, or `None` when every
    /// prompt is distinct.
    fn hidden_shared_prompts(&self, model: &Model) -> Result<Option<Tensor>, LmError> {
        let dev = Device::Cpu;
        let (p, r) = (self.prompt_len, self.response_len);
        let width = p + r;
        // Ids and mask (a pad's id 0 is also a token) fix the prompt part and, with left
        // padding, its positions.
        let (distinct, slots) = crate::generate::group_repeats(
            (0..self.n).map(|i| (&self.ids[i * width..i * width + p], &self.mask[i][..p])),
        );
        if distinct.len() == self.n {
            return Ok(None);
        }
        let u = distinct.len();
        let take = |v: &[u32], i: usize, from: usize, len: usize| -> Vec<u32> {
            v[i * width + from..i * width + from + len].to_vec()
        };
        let prompt_ids: Vec<u32> = distinct
            .iter()
            .flat_map(|&i| take(&self.ids, i, 0, p))
            .collect();
        let prompt_pos: Vec<u32> = distinct
            .iter()
            .flat_map(|&i| take(&self.positions, i, 0, p))
            .collect();
        let prompt_mask: Vec<Vec<u8>> = distinct
            .iter()
            .map(|&i| self.mask[i][..p].to_vec())
            .collect();
        let mut cache = crate::models::common::KvCache::with_gradients();
        let hp = model.hidden(
            &ForwardInput {
                ids: &Tensor::from_vec(prompt_ids, (u, p), &dev)?,
                positions: &Tensor::from_vec(prompt_pos, (u, p), &dev)?,
                mask: Some(&prompt_mask),
            },
            Some(&mut cache),
            None,
        )?;
        let rows = Tensor::from_vec(slots, self.n, &dev)?;
        cache.select_rows(&rows)?;
        let resp_ids: Vec<u32> = (0..self.n).flat_map(|i| take(&self.ids, i, p, r)).collect();
        let resp_pos: Vec<u32> = (0..self.n)
            .flat_map(|i| take(&self.positions, i, p, r))
            .collect();
        let hr = model.hidden(
            &ForwardInput {
                ids: &Tensor::from_vec(resp_ids, (self.n, r), &dev)?,
                positions: &Tensor::from_vec(resp_pos, (self.n, r), &dev)?,
                mask: Some(&self.mask),
            },
            Some(&mut cache),
            None,
        )?;
        let last_prompt = hp
            .narrow(1, p - 1, 1)?
            .contiguous()?
            .index_select(&rows, 0)?;
        let h = if r > 1 {
            Tensor::cat(&[&last_prompt, &hr.narrow(1, 0, r - 1)?], 1)?
        } else {
            last_prompt
        };
        Ok(Some(h.contiguous()?))
    }

    /// [`ResponseBatch::hidden`] as one forward pass over every row's prompt and response.
    fn hidden_per_row(
        &self,
        model: &Model,
        dropout: Option<&mut Dropout>,
    ) -> Result<Tensor, LmError> {
        let dev = Device::Cpu;
        let width = self.prompt_len + self.response_len;
        let ids = Tensor::from_vec(self.ids.clone(), (self.n, width), &dev)?;
        let pos = Tensor::from_vec(self.positions.clone(), (self.n, width), &dev)?;
        let h = model.hidden(
            &ForwardInput {
                ids: &ids,
                positions: &pos,
                mask: Some(&self.mask),
            },
            None,
            dropout,
        )?;
        Ok(h.narrow(1, self.prompt_len - 1, self.response_len)?
            .contiguous()?)
    }

    /// Log-probabilities (and with `entropy` the mean entropy over the response tokens) from
    /// the states of [`ResponseBatch::hidden`], as [`ResponseBatch::logprobs`].
    pub fn logprobs_from_hidden(
        &self,
        model: &Model,
        hidden: &Tensor,
        temperature: f64,
        entropy: bool,
    ) -> Result<(Tensor, Option<f64>), LmError> {
        let targets = Tensor::from_vec(
            self.targets.clone(),
            (self.n, self.response_len),
            &Device::Cpu,
        )?;
        let out = model.target_logprobs(hidden, &targets, temperature, entropy)?;
        let mean = out.entropy.map(|e| masked_mean(&e, &self.token_mask));
        Ok((out.logprobs, mean))
    }

    /// The sub-batch of `rows` (same widths), for minibatches.
    pub fn select(&self, rows: &[usize]) -> ResponseBatch {
        let w = self.prompt_len + self.response_len;
        let r = self.response_len;
        let mut b = ResponseBatch {
            ids: Vec::with_capacity(rows.len() * w),
            positions: Vec::with_capacity(rows.len() * w),
            mask: Vec::with_capacity(rows.len()),
            targets: Vec::with_capacity(rows.len() * r),
            token_mask: Vec::with_capacity(rows.len() * r),
            n: rows.len(),
            prompt_len: self.prompt_len,
            response_len: r,
        };
        for &i in rows {
            b.ids.extend_from_slice(&self.ids[i * w..(i + 1) * w]);
            b.positions
                .extend_from_slice(&self.positions[i * w..(i + 1) * w]);
            b.mask.push(self.mask[i].clone());
            b.targets
                .extend_from_slice(&self.targets[i * r..(i + 1) * r]);
            b.token_mask
                .extend_from_slice(&self.token_mask[i * r..(i + 1) * r]);
        }
        b
    }

    /// The token mask as a `[n, r]` tensor.
    pub fn mask_tensor(&self) -> Result<Tensor, LmError> {
        Ok(Tensor::from_vec(
            self.token_mask.clone(),
            (self.n, self.response_len),
            &Device::Cpu,
        )?)
    }
}

/// The mean of `values` over the entries where `mask` is positive (0 when there are none): the
/// mean entropy of a batch's response tokens from their per-token entropies.
pub fn masked_mean(values: &[f32], mask: &[f32]) -> f64 {
    let (sum, count) = values
        .iter()
        .zip(mask)
        .filter(|(_, &w)| w > 0.0)
        .fold((0.0f64, 0usize), |(s, c), (&v, _)| {
            (s + f64::from(v), c + 1)
        });
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rl::advantages::*;
    use crate::rl::kl::*;
    use crate::rl::reward::{Reward, Sample};

    #[test]
    fn kl_estimators_match_their_formulas() {
        let (lp, lr) = (-1.2f64, -0.7f64);
        assert!((KlEstimator::K1.per_token(lp, lr) - (-0.5)).abs() < 1e-12);
        assert!((KlEstimator::K2.per_token(lp, lr) - 0.125).abs() < 1e-12);
        assert!((KlEstimator::K3.per_token(lp, lr) - (0.5f64.exp() - 1.5)).abs() < 1e-12);
        assert_eq!(KlEstimator::K3.per_token(-1.0, -1.0), 0.0);
        assert!(KlEstimator::parse("k4").is_err());
    }

    /// "The N Implementation Details of RLHF with PPO": whitening a 3 x 3 batch of advantages
    /// uses the mean and population variance of all nine values.
    #[test]
    fn whitening_uses_the_population_variance() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        whiten(&mut x, true);
        // mean 5, population variance 60 / 9.
        let sd = (60.0f64 / 9.0 + 1e-8).sqrt();
        for (i, v) in x.iter().enumerate() {
            assert!((v - ((i as f64 + 1.0) - 5.0) / sd).abs() < 1e-12);
        }
        assert!((x.iter().sum::<f64>()).abs() < 1e-12);
        let mut y = vec![1.0, 2.0, 3.0];
        whiten(&mut y, false);
        assert!((y.iter().sum::<f64>() / 3.0 - 2.0).abs() < 1e-12);
    }

    #[test]
    fn adaptive_kl_controller_follows_ziegler() {
        let mut c = KlController::adaptive(0.2, 6.0, 10_000.0);
        c.update(12.0, 256); // e = clip(1, .2) = 0.2
        assert!((c.value - 0.2 * (1.0 + 0.2 * 256.0 / 10_000.0)).abs() < 1e-12);
        let v = c.value;
        c.update(5.4, 256); // e = -0.1
        assert!((c.value - v * (1.0 - 0.1 * 256.0 / 10_000.0)).abs() < 1e-12);
        let mut f = KlController::fixed(0.05);
        f.update(100.0, 1000);
        assert_eq!(f.value, 0.05);
    }

    /// RLOO on 3 prompts x 4 samples, as TRL's documentation lays the example out: each
    /// advantage is the reward minus the mean of the other three of its prompt.
    #[test]
    fn rloo_and_grpo_advantages() {
        let r = [
            1.0, 2.0, 3.0, 4.0, // prompt 0
            5.0, 6.0, 7.0, 8.0, // prompt 1
            9.0, 10.0, 11.0, 12.0, // prompt 2
        ];
        let a = group_advantages(&r, 4, Baseline::LeaveOneOut).unwrap();
        let want = [
            1.0 - 3.0,
            2.0 - 8.0 / 3.0,
            3.0 - 7.0 / 3.0,
            4.0 - 2.0,
            5.0 - 7.0,
            6.0 - 20.0 / 3.0,
            7.0 - 19.0 / 3.0,
            8.0 - 6.0,
            9.0 - 11.0,
            10.0 - 32.0 / 3.0,
            11.0 - 31.0 / 3.0,
            12.0 - 10.0,
        ];
        for (x, y) in a.iter().zip(want) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
        let g = group_advantages(&r, 4, Baseline::GroupNormalized).unwrap();
        let sd = (5.0f64 / 3.0).sqrt(); // Bessel: sum of squares 5 over 3
        assert!((g[0] - (-1.5 / (sd + 1e-4))).abs() < 1e-12);
        let d = group_advantages(&r, 4, Baseline::GroupMean).unwrap();
        assert_eq!(d[3], 1.5);
        assert_eq!(group_advantages(&r, 4, Baseline::None).unwrap(), r.to_vec());
        let b = group_advantages(&r, 4, Baseline::BatchMean).unwrap();
        assert_eq!(b[0], 1.0 - 6.5);
        assert!(group_advantages(&r, 5, Baseline::GroupMean).is_err());
        // Equal rewards give zero advantages, not NaN.
        let z = group_advantages(&[1.0; 4], 4, Baseline::GroupNormalized).unwrap();
        assert!(z.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn response_batch_aligns_responses() {
        let b = ResponseBatch::new(&[vec![5, 6, 7], vec![8]], &[vec![1, 2], vec![3]], 64).unwrap();
        assert_eq!((b.prompt_len, b.response_len), (3, 2));
        assert_eq!(b.ids, vec![5, 6, 7, 1, 2, 0, 0, 8, 3, 0]);
        assert_eq!(b.positions, vec![0, 1, 2, 3, 4, 0, 0, 0, 1, 2]);
        assert_eq!(b.mask[1], vec![0, 0, 1, 1, 0]);
        assert_eq!(b.targets, vec![1, 2, 3, 0]);
        assert_eq!(b.token_mask, vec![1.0, 1.0, 1.0, 0.0]);
        assert!(ResponseBatch::new(&[vec![1; 60]], &[vec![1; 8]], 64).is_err());
    }

    #[test]
    fn exact_answer_reads_the_first_number() {
        let refs = vec!["37".to_string()];
        let s = |r: &'static str| Sample::new("Q: 20 + 17 = ? Answer:", r, &refs);
        let got = crate::rl::rewards::ExactAnswer {
            take: Default::default(),
        }
        .score(&[s(" 37\n"), s(" 36"), s(" 370"), s(" no")])
        .unwrap();
        assert_eq!(got, vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn head_entropy_matches_the_definition() {
        // An identity head: the logits are the hidden states.
        let dev = Device::Cpu;
        let hidden = Tensor::new(
            &[
                [[1.0f32, 2.0, 3.0], [0.0, 0.0, 0.0]],
                [[5.0, -1.0, 0.5], [9.0, 9.0, 9.0]],
            ],
            &dev,
        )
        .unwrap();
        let eye = Tensor::eye(3, candle_core::DType::F32, &dev).unwrap();
        let targets = Tensor::zeros((2, 2), candle_core::DType::U32, &dev).unwrap();
        let mask = [1.0f32, 1.0, 1.0, 0.0];
        let h = |row: [f64; 3], t: f64| {
            let z: f64 = row.iter().map(|x| (x / t).exp()).sum();
            -row.iter()
                .map(|x| {
                    let p = (x / t).exp() / z;
                    p * p.ln()
                })
                .sum::<f64>()
        };
        for t in [1.0, 0.7] {
            let want =
                (h([1.0, 2.0, 3.0], t) + h([0.0, 0.0, 0.0], t) + h([5.0, -1.0, 0.5], t)) / 3.0;
            let out =
                crate::kernels::loss::head_logprobs(&hidden, &eye, &targets, t, true).unwrap();
            let got = masked_mean(&out.entropy.unwrap(), &mask);
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn running_moments_equal_the_moments_of_everything_seen() {
        let mut m = RunningMoments::default();
        let a = [1.0, 2.0, 4.0];
        let b = [-3.0, 0.5];
        m.update(&a);
        m.update(&b);
        let all: Vec<f64> = a.iter().chain(&b).copied().collect();
        let n = all.len() as f64;
        let mean = all.iter().sum::<f64>() / n;
        let var = all.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        assert!((m.mean - mean).abs() < 1e-12);
        assert!((m.var - var).abs() < 1e-12);
        assert!((m.std - (var * n / (n - 1.0)).sqrt()).abs() < 1e-12);
    }
}
