//! PPO for language models, detail for detail as TRL's `PPOTrainer` and "The N Implementation
//! Details of RLHF with PPO" (Huang et al. 2024), plus the guards of TRL's older trainer:
//!
//! 1. sample one response per prompt (`samples_per_prompt` to sample more) at `temperature`
//!    and score it with the [`Reward`]; subtract `missing_eos_penalty` from responses that hit
//!    the length limit; optionally scale (`/ std`) or normalise (`(s - mean) / std`) scores by
//!    their running moments and clip them to `+-score_clip`;
//! 2. without gradients: log-probs of the policy and the frozen reference (logits divided by
//!    the temperature), values `V(s_t)` of the value model on the states before each response
//!    token; per-token reward `r_t = -beta kl_t` (`kl_t` from the k1/k2/k3 estimator) with the
//!    score added at the last response token; optional reward whitening (mean kept);
//! 3. GAE (`gamma = 1`, `lambda = 0.95`; the episode ends after the last response token, whose
//!    next value is 0) through `rein_core::returns::compute_gae`; returns = advantages + values;
//!    advantages whitened over the response tokens with the population variance;
//! 4. `num_ppo_epochs` passes over shuffled minibatches (`num_mini_batches` per pass, each
//!    split into `gradient_accumulation_steps` micro-batches whose gradients add up):
//!    `pg = mean(max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps)))`,
//!    `vf = 0.5 mean(max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2))`,
//!    loss `pg + vf_coef vf`, gradient-norm clipping, one AdamW step per minibatch. A
//!    minibatch whose mean ratio exceeds `ratio_threshold` is skipped; with `early_stop_kl`
//!    the update stops once a minibatch's approximate KL exceeds 1.5 times it;
//! 5. the adaptive KL controller (Ziegler et al.) moves beta toward `target_kl` when set.
//!
//! The value model is a zero-initialised scalar head, either on the policy's own last hidden
//! state (`value_model = "head"`, TRL's `AutoModelForCausalLMWithValueHead`) or on a separate
//! copy of the starting model (`"separate"`, as TRL's PPOTrainer with its own value model).
//! One decision differs from TRL on purpose: TRL keeps the value of the first padding position
//! (`padding_mask_p1`) and bootstraps the last real token from it; here the episode ends at the
//! last response token (EOS or the length limit), so its next value is 0, as the MDP says.

use std::collections::HashMap;
use std::path::Path;

use crate::models::gpt2::ScalarHead;
use crate::models::{CausalLm, Model};
use crate::optim::{clip_grad_norm, reduce_grads_over_ranks, AdamW, RankReduction};
use crate::rl::advantages::{whiten, RunningMoments};
use crate::rl::batch::ResponseBatch;
use crate::rl::kl::{KlController, KlEstimator};
use crate::rl::reward::{PromptRecord, Reward};
use crate::rl::rollout::{PromptLoader, RlState, Rollout, SamplingSpec, ScoredSample};
use crate::tokenizer::Tokenizer;
use crate::LmError;
use candle_core::{Device, Module, Tensor, Var};
use rand::seq::SliceRandom;
use rein_core::ReinRng;
use serde::{Deserialize, Serialize};

/// Where the value function lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueModel {
    /// A scalar head on the policy's last hidden state (shared backbone).
    Head,
    /// A scalar head on a separate copy of the starting model.
    Separate,
}

/// Optional scaling of the task scores by their running moments (TRL's `use_score_scaling`
/// and `use_score_norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreScaling {
    /// Scores as the reward gives them.
    None,
    /// `score / (std + eps)`.
    Scale,
    /// `(score - mean) / (std + eps)`.
    Norm,
}

/// Hyperparameters (TRL's names and defaults where TRL has them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PpoLmConfig {
    /// PPO iterations (each: one rollout, then `num_ppo_epochs` passes over it).
    pub max_steps: u64,
    /// Prompts per rollout.
    pub prompts_per_step: usize,
    /// Responses sampled per prompt.
    pub samples_per_prompt: usize,
    /// Response length limit in tokens.
    pub max_new_tokens: usize,
    /// Sampling temperature (log-probs are computed at the same temperature).
    pub temperature: f64,
    /// Top-k sampling (0: off).
    pub top_k: usize,
    /// Strings that end a response, besides EOS.
    pub stop_strings: Vec<String>,
    /// AdamW learning rate (policy and value model).
    pub learning_rate: f64,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Gradient-norm clip (0: off).
    pub max_grad_norm: f64,
    /// Passes over each rollout.
    pub num_ppo_epochs: usize,
    /// Minibatches per pass (one optimiser step each).
    pub num_mini_batches: usize,
    /// Micro-batches per minibatch whose gradients are summed before the step.
    pub gradient_accumulation_steps: usize,
    /// Policy ratio clip epsilon.
    pub cliprange: f64,
    /// Value clip range around the rollout's values.
    pub cliprange_value: f64,
    /// Weight of the value loss.
    pub vf_coef: f64,
    /// Discount.
    pub gamma: f64,
    /// GAE lambda.
    pub lam: f64,
    /// Initial (or fixed) KL coefficient beta.
    pub kl_coef: f64,
    /// Per-token KL estimator in the reward.
    pub kl_estimator: KlEstimator,
    /// Target KL of the adaptive controller (None: fixed beta).
    pub target_kl: Option<f64>,
    /// Horizon of the adaptive controller, in episodes.
    pub kl_horizon: f64,
    /// Whiten the per-token rewards (mean kept) before GAE.
    pub whiten_rewards: bool,
    /// Running-moment scaling of the scores.
    pub score_scaling: ScoreScaling,
    /// Clip scores to `[-score_clip, score_clip]` after scaling.
    pub score_clip: Option<f64>,
    /// Subtracted from the score of a response without EOS (None: no penalty).
    pub missing_eos_penalty: Option<f64>,
    /// Skip a minibatch whose mean ratio exceeds this.
    pub ratio_threshold: f64,
    /// Stop the update once a minibatch's approximate KL exceeds 1.5 times this.
    pub early_stop_kl: Option<f64>,
    /// Value head on the policy or a separate value model.
    pub value_model: ValueModel,
    /// Seed of sampling and minibatch order.
    pub seed: u64,
    /// Train a LoRA adapter (and the value head) instead of every weight.
    pub lora: crate::models::lora::LoraSettings,
}

impl Default for PpoLmConfig {
    fn default() -> Self {
        Self {
            max_steps: 200,
            prompts_per_step: 16,
            samples_per_prompt: 1,
            max_new_tokens: 32,
            temperature: 0.7,
            top_k: 0,
            stop_strings: Vec::new(),
            learning_rate: 3e-6,
            warmup_steps: 0,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            num_ppo_epochs: 4,
            num_mini_batches: 1,
            gradient_accumulation_steps: 1,
            cliprange: 0.2,
            cliprange_value: 0.2,
            vf_coef: 0.1,
            gamma: 1.0,
            lam: 0.95,
            kl_coef: 0.05,
            kl_estimator: KlEstimator::K1,
            target_kl: None,
            kl_horizon: 10_000.0,
            whiten_rewards: false,
            score_scaling: ScoreScaling::None,
            score_clip: None,
            missing_eos_penalty: None,
            ratio_threshold: 10.0,
            early_stop_kl: None,
            value_model: ValueModel::Head,
            seed: 0,
            lora: crate::models::lora::LoraSettings::default(),
        }
    }
}

impl PpoLmConfig {
    /// Checks ranges; names the field at fault.
    pub fn validate(&self) -> Result<(), LmError> {
        self.lora.validate()?;
        let bad = |f: &str, why: &str| Err(LmError::Input(format!("{f}: {why}")));
        let rows = self.prompts_per_step * self.samples_per_prompt;
        if rows == 0 {
            return bad(
                "prompts_per_step",
                "prompts_per_step and samples_per_prompt must be at least 1",
            );
        }
        if self.num_mini_batches == 0 || !rows.is_multiple_of(self.num_mini_batches) {
            return bad(
                "num_mini_batches",
                "must be at least 1 and divide prompts_per_step x samples_per_prompt",
            );
        }
        let mb = rows / self.num_mini_batches;
        if self.gradient_accumulation_steps == 0
            || !mb.is_multiple_of(self.gradient_accumulation_steps)
        {
            return bad(
                "gradient_accumulation_steps",
                "must be at least 1 and divide the minibatch size",
            );
        }
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens", "must be at least 1");
        }
        if self.num_ppo_epochs == 0 {
            return bad("num_ppo_epochs", "must be at least 1");
        }
        for (f, v) in [
            ("temperature", self.temperature),
            ("learning_rate", self.learning_rate),
            ("cliprange", self.cliprange),
            ("cliprange_value", self.cliprange_value),
            ("ratio_threshold", self.ratio_threshold),
            ("kl_horizon", self.kl_horizon),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(f, "must be a positive number");
            }
        }
        for (f, v) in [
            ("vf_coef", self.vf_coef),
            ("kl_coef", self.kl_coef),
            ("max_grad_norm", self.max_grad_norm),
            ("weight_decay", self.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(f, "must be >= 0");
            }
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.lam) {
            return bad("gamma", "gamma and lam must lie in [0, 1]");
        }
        for (f, v) in [
            ("target_kl", self.target_kl),
            ("score_clip", self.score_clip),
            ("early_stop_kl", self.early_stop_kl),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return bad(f, "must be a positive number when set");
                }
            }
        }
        if let Some(p) = self.missing_eos_penalty {
            if !p.is_finite() {
                return bad("missing_eos_penalty", "must be a finite number when set");
            }
        }
        Ok(())
    }
}

/// What one PPO iteration logged (TRL's names in [`PpoLmLog::COLUMNS`]).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct PpoLmLog {
    /// Iterations done.
    pub step: u64,
    /// Mean task score (after penalty, scaling and clipping).
    pub scores: f64,
    /// Mean over responses of the summed `-beta kl_t`.
    pub non_score_reward: f64,
    /// `scores + non_score_reward`.
    pub rlhf_reward: f64,
    /// Mean over responses of the summed per-token KL estimate to the reference.
    pub kl: f64,
    /// Mean over responses of the summed `-logp` (TRL's sequence entropy estimate).
    pub entropy: f64,
    /// Mean per-token entropy of the policy on its samples.
    pub token_entropy: f64,
    /// `0.5 mean((logp - logp_old)^2)`, averaged over minibatches.
    pub approxkl: f64,
    /// Fraction of tokens whose ratio was clipped.
    pub clipfrac: f64,
    /// Policy loss, averaged over minibatches.
    pub policy_loss: f64,
    /// Value loss, averaged over minibatches.
    pub value_loss: f64,
    /// Fraction of tokens whose value was clipped.
    pub value_clipfrac: f64,
    /// Mean ratio over minibatches.
    pub ratio: f64,
    /// Beta used for this rollout.
    pub kl_coef: f64,
    /// Minibatches skipped by the ratio threshold.
    pub skipped_minibatches: f64,
    /// 1 when the update stopped early on the approximate KL.
    pub early_stopped: f64,
    /// Mean response length in tokens.
    pub response_length: f64,
    /// Fraction of responses that ended before the length limit.
    pub eos_fraction: f64,
    /// Responses per second of the whole iteration.
    pub episodes_per_second: f64,
    /// Learning rate used.
    pub learning_rate: f64,
}

impl PpoLmLog {
    /// CSV header.
    pub const COLUMNS: [&'static str; 20] = [
        "step",
        "objective/scores",
        "objective/non_score_reward",
        "objective/rlhf_reward",
        "objective/kl",
        "objective/entropy",
        "policy/entropy_avg",
        "policy/approxkl_avg",
        "policy/clipfrac_avg",
        "loss/policy_avg",
        "loss/value_avg",
        "val/clipfrac_avg",
        "val/ratio",
        "kl_coef",
        "skipped_minibatches",
        "early_stopped",
        "response_length",
        "eos_fraction",
        "episodes_per_second",
        "learning_rate",
    ];

    /// CSV row.
    pub fn row(&self) -> [f64; 20] {
        [
            self.step as f64,
            self.scores,
            self.non_score_reward,
            self.rlhf_reward,
            self.kl,
            self.entropy,
            self.token_entropy,
            self.approxkl,
            self.clipfrac,
            self.policy_loss,
            self.value_loss,
            self.value_clipfrac,
            self.ratio,
            self.kl_coef,
            self.skipped_minibatches,
            self.early_stopped,
            self.response_length,
            self.eos_fraction,
            self.episodes_per_second,
            self.learning_rate,
        ]
    }
}

/// The PPO trainer: policy, frozen reference, value model, optimiser, KL controller, score
/// moments, data position and RNG (all saved by [`PpoLmTrainer::save_checkpoint`]).
pub struct PpoLmTrainer {
    /// Hyperparameters.
    pub config: PpoLmConfig,
    /// The model being trained.
    pub policy: Model,
    /// The frozen starting model (KL reference).
    pub reference: Model,
    /// The value head.
    pub value_head: ScalarHead,
    /// The value model's own backbone (`value_model = "separate"`).
    pub value_backbone: Option<Model>,
    /// The KL coefficient.
    pub kl_ctl: KlController,
    /// Running moments of the scores.
    pub score_moments: RunningMoments,
    opt: AdamW,
    loader: PromptLoader,
    rng: ReinRng,
    /// Iterations done.
    pub step: u64,
    /// Samples of the last iteration.
    pub last_samples: Vec<ScoredSample>,
}

/// Per-row rollout quantities, flattened `[n, r]` (0 past each response's end).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutTargets {
    /// Log-probs of the rollout policy.
    pub old_logprobs: Vec<f32>,
    /// Values of the rollout value model.
    pub old_values: Vec<f32>,
    /// Whitened GAE advantages.
    pub advantages: Vec<f32>,
    /// Returns (advantages before whitening + values).
    pub returns: Vec<f32>,
}

/// Per-token rewards `-beta kl_t` with `score` added at the last token, then GAE, returns
/// and whitened advantages (step 2-3 of the module doc). Inputs are flat `[n, r]` (row `i`
/// has `lens[i]` tokens); returns the targets and each row's summed KL estimate.
#[allow(clippy::too_many_arguments)]
pub fn ppo_targets(
    c: &PpoLmConfig,
    beta: f64,
    lens: &[usize],
    r: usize,
    lp: &[f32],
    ref_lp: &[f32],
    values: &[f32],
    scores: &[f64],
) -> (RolloutTargets, Vec<f64>) {
    let n = lens.len();
    let mut kl_rows = vec![0.0; n];
    let mut rewards: Vec<Vec<f64>> = Vec::with_capacity(n);
    for i in 0..n {
        let row: Vec<f64> = (0..lens[i])
            .map(|t| {
                let k = c
                    .kl_estimator
                    .per_token(f64::from(lp[i * r + t]), f64::from(ref_lp[i * r + t]));
                kl_rows[i] += k;
                -beta * k
            })
            .collect();
        rewards.push(row);
    }
    for (row, &s) in rewards.iter_mut().zip(scores) {
        if let Some(last) = row.last_mut() {
            *last += s;
        }
    }
    if c.whiten_rewards {
        let mut flat: Vec<f64> = rewards.iter().flatten().copied().collect();
        whiten(&mut flat, false);
        let mut it = flat.into_iter();
        for row in &mut rewards {
            for x in row.iter_mut() {
                *x = it.next().unwrap_or(0.0);
            }
        }
    }
    let mut adv_rows = Vec::with_capacity(n);
    let mut ret_rows = Vec::with_capacity(n);
    for (i, rew) in rewards.iter().enumerate() {
        let len = lens[i];
        let v: Vec<f64> = (0..len).map(|t| f64::from(values[i * r + t])).collect();
        let next: Vec<f64> = (0..len)
            .map(|t| if t + 1 < len { v[t + 1] } else { 0.0 })
            .collect();
        let term: Vec<bool> = (0..len).map(|t| t + 1 == len).collect();
        let (a, ret) = rein_core::returns::compute_gae(
            rew,
            &v,
            &next,
            &term,
            &vec![false; len],
            1,
            c.gamma,
            c.lam,
        );
        adv_rows.push(a);
        ret_rows.push(ret);
    }
    let mut flat_adv: Vec<f64> = adv_rows.iter().flatten().copied().collect();
    whiten(&mut flat_adv, true);
    let mut t = RolloutTargets {
        old_logprobs: vec![0.0; n * r],
        old_values: vec![0.0; n * r],
        advantages: vec![0.0; n * r],
        returns: vec![0.0; n * r],
    };
    let mut k = 0;
    for i in 0..n {
        for j in 0..lens[i] {
            t.old_logprobs[i * r + j] = lp[i * r + j];
            t.old_values[i * r + j] = values[i * r + j];
            t.advantages[i * r + j] = flat_adv[k] as f32;
            t.returns[i * r + j] = ret_rows[i][j] as f32;
            k += 1;
        }
    }
    (t, kl_rows)
}

/// The task scores after the missing-EOS penalty, running-moment scaling (`moments` absorb
/// the penalised scores first, as TRL's `RunningMoments.update`) and clipping.
pub fn shape_scores(
    c: &PpoLmConfig,
    moments: &mut RunningMoments,
    raw: &[f64],
    finished: &[bool],
) -> Vec<f64> {
    let mut s: Vec<f64> = raw
        .iter()
        .zip(finished)
        .map(|(&x, &f)| match c.missing_eos_penalty {
            Some(p) if !f => x - p,
            _ => x,
        })
        .collect();
    if c.score_scaling != ScoreScaling::None {
        moments.update(&s);
        let m = *moments;
        let scale = m.std + f64::from(f32::EPSILON);
        for x in &mut s {
            *x = if c.score_scaling == ScoreScaling::Norm {
                (*x - m.mean) / scale
            } else {
                *x / scale
            };
        }
    }
    if let Some(clip) = c.score_clip {
        for x in &mut s {
            *x = x.clamp(-clip, clip);
        }
    }
    s
}

fn optimised_vars(
    policy: &Model,
    head: &ScalarHead,
    backbone: Option<&Model>,
) -> Vec<(String, Var)> {
    let mut v: Vec<(String, Var)> = policy
        .named_vars()
        .into_iter()
        .map(|(n, v)| (format!("policy.{n}"), v))
        .collect();
    v.push(("value.head.weight".into(), head.weight.clone()));
    v.push(("value.head.bias".into(), head.bias.clone()));
    if let Some(b) = backbone {
        v.extend(
            b.named_vars()
                .into_iter()
                .map(|(n, v)| (format!("value.backbone.{n}"), v)),
        );
    }
    v
}

fn rows_tensor(v: &[f32], rows: &[usize], r: usize) -> Result<Tensor, LmError> {
    let mut out = Vec::with_capacity(rows.len() * r);
    for &i in rows {
        out.extend_from_slice(&v[i * r..(i + 1) * r]);
    }
    Ok(Tensor::from_vec(out, (rows.len(), r), &Device::Cpu)?)
}

fn masked_mean(x: &Tensor, mask: &Tensor, count: f64) -> Result<Tensor, LmError> {
    Ok(((x * mask)?.sum_all()? / count.max(1.0))?)
}

fn scalar(t: &Tensor) -> Result<f64, LmError> {
    Ok(f64::from(t.to_scalar::<f32>()?))
}

impl PpoLmTrainer {
    /// A trainer starting from `policy`; the reference (and a separate value backbone) are
    /// copies of it, the value head starts at zero.
    pub fn new(
        config: PpoLmConfig,
        policy: Model,
        prompts: Vec<PromptRecord>,
        tk: &Tokenizer,
    ) -> Result<Self, LmError> {
        config.validate()?;
        if policy.adapter().is_some() && config.value_model == ValueModel::Separate {
            return Err(LmError::Input(
                "value_model = separate with a LoRA adapter would copy the whole base model as the value model; use value_model = head (trained with the adapter)".into(),
            ));
        }
        let reference = policy.reference_model()?;
        let value_backbone = match config.value_model {
            ValueModel::Head => None,
            ValueModel::Separate => Some(policy.deep_copy()?),
        };
        let value_head = ScalarHead::value_head(policy.hidden_size())?;
        let opt = AdamW::new(
            optimised_vars(&policy, &value_head, value_backbone.as_ref()),
            config.lora.learning_rate_or(config.learning_rate),
            config.weight_decay,
        )?;
        let mut rng = rein_core::rng_from_seed(config.seed);
        let loader = PromptLoader::new(
            prompts,
            tk,
            config.max_new_tokens,
            policy.max_positions(),
            &mut rng,
        )?;
        let kl_ctl = match config.target_kl {
            Some(t) => KlController::adaptive(config.kl_coef, t, config.kl_horizon),
            None => KlController::fixed(config.kl_coef),
        };
        Ok(Self {
            config,
            policy,
            reference,
            value_head,
            value_backbone,
            kl_ctl,
            score_moments: RunningMoments::default(),
            opt,
            loader,
            rng,
            step: 0,
            last_samples: Vec::new(),
        })
    }

    /// `[n, r]` values of `batch` from the value model; `policy_hidden` is reused when the
    /// value head sits on the policy.
    fn values(&self, batch: &ResponseBatch, policy_hidden: &Tensor) -> Result<Tensor, LmError> {
        let h = match &self.value_backbone {
            Some(b) => batch.hidden(b, None)?,
            None => policy_hidden.clone(),
        };
        Ok(self.value_head.forward(&h)?)
    }

    /// One PPO iteration: rollout, score, targets, `num_ppo_epochs` passes of minibatch
    /// updates, KL-controller update. `reward` scores the samples; `tk` decodes them.
    pub fn update(&mut self, reward: &mut dyn Reward, tk: &Tokenizer) -> Result<PpoLmLog, LmError> {
        let start = std::time::Instant::now();
        let c = self.config.clone();
        let spec = SamplingSpec {
            per_prompt: c.samples_per_prompt,
            max_new_tokens: c.max_new_tokens,
            temperature: c.temperature,
            top_k: c.top_k,
            stop_strings: c.stop_strings.clone(),
        };
        let (ro, batch) = Rollout::next_batch(
            &self.policy,
            &mut self.loader,
            c.prompts_per_step,
            &spec,
            &mut self.rng,
            tk,
            reward,
        )?;
        let scores = shape_scores(&c, &mut self.score_moments, &ro.scores, &ro.finished);
        let (n, r) = (batch.n, batch.response_len);
        let h = batch.hidden(&self.policy, None)?;
        let (lp, token_entropy) =
            batch.logprobs_from_hidden(&self.policy, &h, c.temperature, true)?;
        let token_entropy = token_entropy.unwrap_or(0.0);
        let values = self.values(&batch, &h)?.detach();
        let (ref_lp, _) = batch.logprobs(&self.reference, c.temperature, None, false)?;
        let lp_v = lp.detach().flatten_all()?.to_vec1::<f32>()?;
        let ref_v = ref_lp.flatten_all()?.to_vec1::<f32>()?;
        let val_v = values.flatten_all()?.to_vec1::<f32>()?;
        let beta = self.kl_ctl.value;
        let lens: Vec<usize> = ro.responses.iter().map(Vec::len).collect();
        let (tg, kl_rows) = ppo_targets(&c, beta, &lens, r, &lp_v, &ref_v, &val_v, &scores);
        let entropy = (0..n)
            .map(|i| {
                (0..r)
                    .filter(|&j| batch.token_mask[i * r + j] > 0.0)
                    .map(|j| -f64::from(lp_v[i * r + j]))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / n as f64;
        // Under MPI the KL controller sees the mean over every rank's rows, so that beta stays
        // equal on every rank.
        let ranks = rein_core::collective::world().size() as f64;
        let kl =
            rein_core::collective::sum_f64(&[kl_rows.iter().sum::<f64>() / n as f64])[0] / ranks;
        drop((h, lp, values));

        let lr = crate::rl::advantages::warmup_lr(
            c.lora.learning_rate_or(c.learning_rate),
            c.warmup_steps,
            self.step,
        );
        self.opt.lr = lr;
        let mb_size = n / c.num_mini_batches;
        let micro = mb_size / c.gradient_accumulation_steps;
        let mut order: Vec<usize> = (0..n).collect();
        let (mut sums, mut n_mb) = ([0.0f64; 6], 0usize);
        let (mut skipped, mut early) = (0usize, false);
        'epochs: for _ in 0..c.num_ppo_epochs {
            order.shuffle(&mut self.rng);
            for mb in order.chunks(mb_size) {
                let mut acc: HashMap<String, Tensor> = HashMap::new();
                let mut mb_stats = [0.0f64; 6];
                let mut skip = false;
                for rows in mb.chunks(micro) {
                    let sub = batch.select(rows);
                    let mask = sub.mask_tensor()?;
                    let count = f64::from(sub.token_mask.iter().sum::<f32>());
                    let old_lp = rows_tensor(&tg.old_logprobs, rows, r)?;
                    let old_v = rows_tensor(&tg.old_values, rows, r)?;
                    let adv = rows_tensor(&tg.advantages, rows, r)?;
                    let ret = rows_tensor(&tg.returns, rows, r)?;
                    let h = sub.hidden(&self.policy, None)?;
                    let (new_lp, _) =
                        sub.logprobs_from_hidden(&self.policy, &h, c.temperature, false)?;
                    let vpred = self.values(&sub, &h)?;
                    let diff = (&new_lp - &old_lp)?;
                    let ratio = diff.exp()?;
                    let pg1 = (adv.neg()? * &ratio)?;
                    let clipped = ratio.clamp(1.0 - c.cliprange, 1.0 + c.cliprange)?;
                    let pg2 = (adv.neg()? * &clipped)?;
                    let pg_loss = masked_mean(&pg1.maximum(&pg2)?, &mask, count)?;
                    let v_clip = (&old_v
                        + (&vpred - &old_v)?.clamp(-c.cliprange_value, c.cliprange_value)?)?;
                    let vf1 = (&vpred - &ret)?.sqr()?;
                    let vf2 = (&v_clip - &ret)?.sqr()?;
                    let vf_loss = (masked_mean(&vf1.maximum(&vf2)?, &mask, count)? * 0.5)?;
                    let loss = ((&pg_loss + (&vf_loss * c.vf_coef)?)?
                        / c.gradient_accumulation_steps as f64)?;
                    let loss_v = scalar(&loss)?;
                    if !loss_v.is_finite() {
                        return Err(LmError::NonFinite(format!(
                            "PPO loss is {loss_v} at iteration {}; the last checkpoint is the last good state",
                            self.step + 1
                        )));
                    }
                    let f32s = candle_core::DType::F32;
                    let share = rows.len() as f64 / mb.len() as f64;
                    mb_stats[0] += share * scalar(&pg_loss)?;
                    mb_stats[1] += share * scalar(&vf_loss)?;
                    mb_stats[2] +=
                        share * scalar(&(masked_mean(&diff.sqr()?, &mask, count)? * 0.5)?)?;
                    mb_stats[3] += share
                        * scalar(&masked_mean(
                            &(&ratio - &clipped)?.abs()?.gt(1e-6)?.to_dtype(f32s)?,
                            &mask,
                            count,
                        )?)?;
                    mb_stats[4] += share
                        * scalar(&masked_mean(&vf2.gt(&vf1)?.to_dtype(f32s)?, &mask, count)?)?;
                    let mean_ratio = scalar(&masked_mean(&ratio, &mask, count)?)?;
                    mb_stats[5] += share * mean_ratio;
                    // Decided by all ranks together: every rank skips the same minibatches.
                    if rein_core::collective::any(mean_ratio > c.ratio_threshold) {
                        skip = true;
                        break;
                    }
                    self.opt.accumulate(&mut acc, &loss.backward()?)?;
                }
                if skip {
                    skipped += 1;
                    continue;
                }
                if let Some(target) = c.early_stop_kl {
                    if rein_core::collective::any(mb_stats[2] > 1.5 * target) {
                        early = true;
                        break 'epochs;
                    }
                }
                // Each rank's loss is a mean over its own rows (equal numbers on every rank).
                reduce_grads_over_ranks(&mut acc, RankReduction::Mean)?;
                if c.max_grad_norm > 0.0 {
                    clip_grad_norm(&mut acc, c.max_grad_norm)?;
                }
                self.opt.step_named(&acc)?;
                for (s, v) in sums.iter_mut().zip(mb_stats) {
                    *s += v;
                }
                n_mb += 1;
            }
        }
        self.kl_ctl.update(kl, n);
        self.step += 1;
        self.last_samples = ro.scored_samples(&self.loader);
        let means = ro.means_over_ranks();
        let avg = |k: usize| sums[k] / n_mb.max(1) as f64;
        let mean_score = scores.iter().sum::<f64>() / n as f64;
        let non_score = -beta * kl;
        Ok(PpoLmLog {
            step: self.step,
            scores: mean_score,
            non_score_reward: non_score,
            rlhf_reward: mean_score + non_score,
            kl,
            entropy,
            token_entropy,
            approxkl: avg(2),
            clipfrac: avg(3),
            policy_loss: avg(0),
            value_loss: avg(1),
            value_clipfrac: avg(4),
            ratio: avg(5),
            kl_coef: beta,
            skipped_minibatches: skipped as f64,
            early_stopped: f64::from(u8::from(early)),
            response_length: means.1,
            eos_fraction: means.2,
            episodes_per_second: n as f64 / start.elapsed().as_secs_f64().max(1e-9),
            learning_rate: lr,
        })
    }

    /// Writes policy, reference, value model, optimiser moments, KL controller, score moments,
    /// data position and RNG to one file, atomically (write then rename).
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), LmError> {
        use crate::checkpoint::with_prefix;
        let adapter = crate::checkpoint::AdapterRecord::of(&self.policy)?;
        let mut tensors = with_prefix("policy", self.policy.tensors());
        if adapter.is_none() {
            tensors.extend(with_prefix("ref", self.reference.tensors()));
        }
        tensors.push((
            "value.head.weight".into(),
            self.value_head.weight.as_tensor().clone(),
        ));
        tensors.push((
            "value.head.bias".into(),
            self.value_head.bias.as_tensor().clone(),
        ));
        if let Some(b) = &self.value_backbone {
            tensors.extend(with_prefix("value.backbone", b.tensors()));
        }
        tensors.extend(with_prefix("opt", self.opt.state_tensors()));
        let state = RlState {
            adapter,
            config: self.config.clone(),
            model_config: self.policy.config(),
            step: self.step,
            opt_step: self.opt.step,
            loader: self.loader.state(),
            rng: self.rng.clone(),
            algo: PpoLmState {
                kl_ctl: self.kl_ctl,
                score_moments: self.score_moments,
            },
        };
        crate::checkpoint::save_state(path, "lm-ppo", &tensors, &state)
    }

    /// Rebuilds a trainer from [`PpoLmTrainer::save_checkpoint`]; `tk` re-tokenises the
    /// prompts.
    pub fn load_checkpoint(path: &Path, tk: &Tokenizer) -> Result<Self, LmError> {
        use crate::checkpoint::split_prefixes;
        let (raw, st): (_, RlState<PpoLmConfig, PpoLmState>) =
            crate::checkpoint::load_state(path, "lm-ppo")?;
        let (config, model_config) = (st.config, st.model_config);
        let name = path.display().to_string();
        let mut parts = split_prefixes(raw);
        let mut part = |p: &str| parts.remove(p).unwrap_or_default();
        let policy = crate::checkpoint::checkpoint_model(
            model_config.clone(),
            part("policy"),
            st.adapter.as_ref(),
            &name,
        )?;
        let reference = match st.adapter {
            Some(_) => policy.reference_model()?,
            None => Model::from_tensors(model_config.clone(), part("ref"), &name)?,
        };
        let opt_t = part("opt");
        let mut value = split_prefixes(part("value"));
        let mut head_t = value.remove("head").unwrap_or_default();
        let mut head_var = |k: &str| -> Result<Var, LmError> {
            let t = head_t
                .remove(k)
                .ok_or_else(|| LmError::Format(format!("{name}: no value.head.{k}")))?;
            Ok(Var::from_tensor(&t)?)
        };
        let value_head = ScalarHead {
            weight: head_var("weight")?,
            bias: head_var("bias")?,
        };
        let value_backbone = match config.value_model {
            ValueModel::Head => None,
            ValueModel::Separate => Some(Model::from_tensors(
                model_config,
                value.remove("backbone").unwrap_or_default(),
                &name,
            )?),
        };
        let mut opt = AdamW::new(
            optimised_vars(&policy, &value_head, value_backbone.as_ref()),
            config.lora.learning_rate_or(config.learning_rate),
            config.weight_decay,
        )?;
        crate::checkpoint::restore_adamw(&mut opt, &opt_t, st.opt_step, path)?;
        let loader = PromptLoader::from_state(st.loader, tk)?;
        let rng = st.rng;
        Ok(Self {
            config,
            policy,
            reference,
            value_head,
            value_backbone,
            kl_ctl: st.algo.kl_ctl,
            score_moments: st.algo.score_moments,
            opt,
            loader,
            rng,
            step: st.step,
            last_samples: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One response of three tokens, k1 KL, beta 0.1, score 1, gamma 1, lambda 0.95, worked
    /// by hand: kl = (0.5, -0.5, 0), rewards = (-0.05, 0.05, 1), values = (0.1, 0.2, 0.3),
    /// A_2 = 1 - 0.3 = 0.7, A_1 = 0.05 + 0.3 - 0.2 + 0.95 A_2 = 0.815,
    /// A_0 = -0.05 + 0.2 - 0.1 + 0.95 A_1 = 0.82425; returns = A + V.
    #[test]
    fn targets_follow_the_worked_example() {
        let c = PpoLmConfig::default();
        let (t, kl) = ppo_targets(
            &c,
            0.1,
            &[3, 1],
            4,
            &[-1.0, -2.0, -0.5, 0.0, -1.0, 0.0, 0.0, 0.0],
            &[-1.5, -1.5, -0.5, 0.0, -1.0, 0.0, 0.0, 0.0],
            &[0.1, 0.2, 0.3, 0.0, 0.5, 0.0, 0.0, 0.0],
            &[1.0, 0.0],
        );
        assert!((kl[0] - 0.0).abs() < 1e-12 && kl[1].abs() < 1e-12);
        let want_ret = [0.92425f32, 1.015, 1.0, 0.0];
        for (a, b) in t.returns[..4].iter().zip(want_ret) {
            assert!((a - b).abs() < 1e-5, "{:?}", t.returns);
        }
        // second row: one token, reward 0, value 0.5: A = -0.5, return 0
        assert!((t.returns[4] - 0.0).abs() < 1e-6);
        let mut raw = vec![0.82425, 0.815, 0.7, -0.5];
        whiten(&mut raw, true);
        let got = [
            t.advantages[0],
            t.advantages[1],
            t.advantages[2],
            t.advantages[4],
        ];
        for (a, b) in got.iter().zip(&raw) {
            assert!((f64::from(*a) - b).abs() < 1e-5);
        }
        assert_eq!(t.advantages[3], 0.0);
        assert_eq!(&t.advantages[5..], &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn missing_eos_penalty_scaling_and_clipping_apply_in_order() {
        let c = PpoLmConfig {
            missing_eos_penalty: Some(1.0),
            score_clip: Some(0.5),
            ..Default::default()
        };
        // no trainer needed: build the pieces shape_scores uses
        let mut m = RunningMoments::default();
        let raw = [2.0, 0.25];
        let pen = [2.0 - 1.0, 0.25];
        m.update(&pen);
        let got = shape_scores(&c, &mut RunningMoments::default(), &raw, &[false, true]);
        assert_eq!(got, vec![0.5, 0.25]);
        let c = PpoLmConfig {
            score_scaling: ScoreScaling::Norm,
            ..c
        };
        let got = shape_scores(&c, &mut RunningMoments::default(), &raw, &[false, true]);
        let scale = m.std + f64::from(f32::EPSILON);
        let want: Vec<f64> = pen
            .iter()
            .map(|x| ((x - m.mean) / scale).clamp(-0.5, 0.5))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bad_settings_name_the_field() {
        let c = PpoLmConfig {
            num_mini_batches: 3,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("num_mini_batches"));
        let c = PpoLmConfig {
            cliprange: 0.0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("cliprange"));
    }
}

/// What only PPO keeps in a checkpoint: the KL controller and the running score moments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PpoLmState {
    kl_ctl: KlController,
    score_moments: RunningMoments,
}
