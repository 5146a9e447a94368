//! From scores to advantages: whitening, running score moments, the critic-free trainers'
//! group baselines, and the warmup of the RL learning rates.

use crate::LmError;
use serde::{Deserialize, Serialize};

/// Whitening as TRL's `masked_whiten`: `(x - mean) / sqrt(var + 1e-8)` with the population
/// variance; with `shift_mean = false` the mean is added back (TRL does this for rewards).
pub fn whiten(x: &mut [f64], shift_mean: bool) {
    if x.is_empty() {
        return;
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let inv = 1.0 / (var + 1e-8).sqrt();
    for v in x.iter_mut() {
        *v = (*v - mean) * inv + if shift_mean { 0.0 } else { mean };
    }
}

/// The learning rate at optimiser step `step` (0-based) under linear warmup over
/// `warmup_steps` steps to `lr`, then constant (the RL trainers' schedule).
pub fn warmup_lr(lr: f64, warmup_steps: u64, step: u64) -> f64 {
    if step < warmup_steps {
        lr * (step + 1) as f64 / warmup_steps as f64
    } else {
        lr
    }
}

/// Running mean and standard deviation of scores, merged batch by batch with Chan et al.'s
/// parallel-variance formula, as TRL's `RunningMoments` (starting at mean 0, std 1, a count of
/// 1e-24). PPO's optional score scaling divides by `std`, and with normalisation first
/// subtracts `mean`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunningMoments {
    /// Running mean.
    pub mean: f64,
    /// Running standard deviation (Bessel-corrected over all scores seen).
    pub std: f64,
    /// Running population variance.
    pub var: f64,
    /// Scores seen.
    pub count: f64,
}

impl Default for RunningMoments {
    fn default() -> Self {
        Self {
            mean: 0.0,
            std: 1.0,
            var: 1.0,
            count: 1e-24,
        }
    }
}

impl RunningMoments {
    /// Merges a batch (at least one score) into the running moments.
    pub fn update(&mut self, xs: &[f64]) {
        if xs.is_empty() {
            return;
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        let delta = mean - self.mean;
        let total = self.count + n;
        let m2 = self.var * self.count + delta * delta * self.count * n / total + var * n;
        self.mean += delta * n / total;
        self.var = m2 / total;
        self.std = (self.var * total / (total - 1.0)).max(0.0).sqrt();
        self.count = total;
    }
}

/// How the critic-free trainers turn the scores of a group (the samples of one prompt) into
/// advantages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// GRPO (Shao et al. 2024): `(r - mean) / (std + 1e-4)` within the group, `std` with
    /// Bessel's correction as `torch.std` (TRL's default).
    GroupNormalized,
    /// Dr. GRPO (Liu et al. 2025): `r - mean` within the group, no std scaling.
    GroupMean,
    /// RLOO (Ahmadian et al. 2024): `r - mean of the other k - 1 samples`.
    LeaveOneOut,
    /// REINFORCE with the batch-mean baseline: `r - mean` over the whole batch.
    BatchMean,
    /// REINFORCE without a baseline (Williams 1992): `A = r`. With a 0/1 reward only the
    /// rewarded samples move the policy, which makes it rejection-sampling fine-tuning (RAFT,
    /// ReST): no push-down of the unrewarded ones, so it tolerates larger learning rates.
    None,
}

impl Baseline {
    /// Parses `grpo`, `dr_grpo`, `rloo` or `reinforce`.
    pub fn parse(s: &str) -> Result<Self, LmError> {
        match s {
            "grpo" | "group_normalized" => Ok(Self::GroupNormalized),
            "dr_grpo" | "group_mean" => Ok(Self::GroupMean),
            "rloo" | "leave_one_out" => Ok(Self::LeaveOneOut),
            "reinforce" | "batch_mean" => Ok(Self::BatchMean),
            "none" => Ok(Self::None),
            other => Err(LmError::Input(format!(
                "unknown method {other:?} (expected grpo, dr_grpo, rloo, reinforce or none)"
            ))),
        }
    }
}

/// Advantages of `rewards`, laid out as consecutive groups of `group` samples per prompt.
pub fn group_advantages(
    rewards: &[f64],
    group: usize,
    baseline: Baseline,
) -> Result<Vec<f64>, LmError> {
    if group == 0 || !rewards.len().is_multiple_of(group) {
        return Err(LmError::Input(format!(
            "{} rewards do not split into groups of {group}",
            rewards.len()
        )));
    }
    if baseline == Baseline::LeaveOneOut && group < 2 {
        return Err(LmError::Input(
            "RLOO needs at least 2 samples per prompt".into(),
        ));
    }
    if baseline == Baseline::BatchMean {
        let mean = rewards.iter().sum::<f64>() / rewards.len().max(1) as f64;
        return Ok(rewards.iter().map(|r| r - mean).collect());
    }

    let mut out = Vec::with_capacity(rewards.len());
    for g in rewards.chunks(group) {
        let k = g.len() as f64;
        let sum: f64 = g.iter().sum();
        let mean = sum / k;
        match baseline {
            Baseline::GroupNormalized => {
                let std = if g.len() > 1 {
                    (g.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / (k - 1.0)).sqrt()
                } else {
                    0.0
                };
                out.extend(g.iter().map(|r| (r - mean) / (std + 1e-4)));
            }
            Baseline::GroupMean => out.extend(g.iter().map(|r| r - mean)),
            Baseline::LeaveOneOut => out.extend(g.iter().map(|r| r - (sum - r) / (k - 1.0))),
            Baseline::None => out.extend_from_slice(g),
            Baseline::BatchMean => unreachable!("handled above"),
        }
    }
    Ok(out)
}
