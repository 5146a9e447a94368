//! GRPO and its critic-free relatives (Dr. GRPO, RLOO, REINFORCE with a baseline) for language
//! models, step for step as TRL's `GRPOTrainer` with `loss_type = "dapo"` (token-level
//! aggregation):
//!
//! 1. take `prompts_per_step` prompts from the (seeded, reshuffled each epoch) dataset and
//!    sample `group_size` responses for each at `temperature`;
//! 2. score them with the [`Reward`]; turn the scores into advantages with the configured
//!    [`Baseline`] (GRPO: `(r - mean_group) / (std_group + 1e-4)`);
//! 3. for `epochs` passes (TRL's `num_iterations`): per token
//!    `ratio = exp(logp - logp_old)`, loss `-min(ratio A, clip(ratio, 1 - eps, 1 + eps) A)`
//!    plus `beta * k3` toward the frozen reference when `beta > 0`; the loss is the sum over
//!    all response tokens of the batch divided by their number; one AdamW step per pass with
//!    gradient-norm clipping. With one pass `logp_old = logp.detach()` (ratio 1, as TRL).
//!
//! The methods differ only in the baseline, hence one file. Log-probabilities come from
//! logits divided by the sampling temperature, as at generation time.

use std::collections::HashMap;
use std::path::Path;

use crate::models::lora::LoraSettings;
use crate::models::{CausalLm, Model};
use crate::optim::{clip_grad_norm, reduce_grads_over_ranks, AdamW, RankReduction};
use crate::rl::advantages::{group_advantages, Baseline};
use crate::rl::kl::KlEstimator;
use crate::rl::reward::{PromptRecord, Reward};
use crate::rl::rollout::{PromptLoader, RlState, Rollout, SamplingSpec, ScoredSample, StepTimes};
use crate::tokenizer::Tokenizer;
use crate::LmError;
use candle_core::Tensor;
use rein_core::ReinRng;
use serde::{Deserialize, Serialize};

/// Hyperparameters (TRL's names where TRL has one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// Optimizer steps in all (each on a fresh batch of samples, times `epochs`).
    pub max_steps: u64,
    /// Prompts per step.
    pub prompts_per_step: usize,
    /// Samples per prompt (TRL `num_generations`).
    pub group_size: usize,
    /// Longest response.
    pub max_new_tokens: usize,
    /// Sampling temperature (also divides the logits of the log-probs).
    pub temperature: f64,
    /// Top-k of the sampler (0: off).
    pub top_k: usize,
    /// Learning rate (constant after `warmup_steps`).
    pub learning_rate: f64,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Gradient-norm clip (0: off).
    pub max_grad_norm: f64,
    /// PPO-style clip range `epsilon`.
    pub clip_eps: f64,
    /// Passes over each batch of samples (TRL `num_iterations`).
    pub epochs: usize,
    /// Weight of the KL term to the reference (0: none, TRL's default).
    pub beta: f64,
    /// Estimator of the KL term and of the logged KL.
    pub kl_estimator: KlEstimator,
    /// How scores become advantages.
    pub baseline: Baseline,
    /// Response text ends at the first of these (e.g. "\n").
    pub stop_strings: Vec<String>,
    /// Seed of the data order and the samples.
    pub seed: u64,
    /// Train a LoRA adapter instead of every weight (`lora.enabled = true`, `lora.r`, ...).
    pub lora: LoraSettings,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            max_steps: 200,
            prompts_per_step: 16,
            group_size: 8,
            max_new_tokens: 32,
            temperature: 1.0,
            top_k: 0,
            learning_rate: 1e-5,
            warmup_steps: 0,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            clip_eps: 0.2,
            epochs: 1,
            beta: 0.0,
            kl_estimator: KlEstimator::K3,
            baseline: Baseline::GroupNormalized,
            stop_strings: Vec::new(),
            seed: 0,
            lora: LoraSettings::default(),
        }
    }
}

impl GrpoConfig {
    /// Checks ranges; names the field at fault.
    pub fn validate(&self) -> Result<(), LmError> {
        self.lora.validate()?;
        let bad = |f: &str, why: &str| Err(LmError::Input(format!("{f}: {why}")));
        if self.prompts_per_step == 0 {
            return bad("prompts_per_step", "must be at least 1");
        }
        if self.group_size == 0 {
            return bad("group_size", "must be at least 1");
        }
        if !matches!(self.baseline, Baseline::BatchMean | Baseline::None) && self.group_size < 2 {
            return bad(
                "group_size",
                "group baselines need at least 2 samples per prompt",
            );
        }
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens", "must be at least 1");
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad("temperature", "must be a positive number");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", "must be positive");
        }
        if !(self.clip_eps.is_finite() && self.clip_eps > 0.0) {
            return bad("clip_eps", "must be positive");
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return bad("beta", "must be >= 0");
        }
        Ok(())
    }
}

/// What one step logged (TRL's names in [`GrpoLog::COLUMNS`]).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct GrpoLog {
    /// Step just finished.
    pub step: u64,
    /// Mean task score.
    pub scores: f64,
    /// Mean over samples of the summed per-token KL estimate to the reference (0 when
    /// `beta = 0`: then, as in TRL, there is no reference pass).
    pub kl: f64,
    /// Mean per-token entropy of the policy on its samples.
    pub entropy: f64,
    /// Policy loss of the last pass.
    pub loss: f64,
    /// Fraction of tokens whose ratio was clipped (last pass).
    pub clipfrac: f64,
    /// Mean response length in tokens.
    pub response_length: f64,
    /// Fraction of responses that ended (EOS or stop string) before the length limit.
    pub eos_fraction: f64,
    /// Samples per second of the step.
    pub episodes_per_second: f64,
    /// Learning rate used.
    pub learning_rate: f64,
}

impl GrpoLog {
    /// CSV header.
    pub const COLUMNS: [&'static str; 10] = [
        "step",
        "objective/scores",
        "objective/kl",
        "objective/entropy",
        "loss/policy",
        "policy/clipfrac",
        "response_length",
        "eos_fraction",
        "episodes_per_second",
        "learning_rate",
    ];

    /// CSV row.
    pub fn row(&self) -> [f64; 10] {
        [
            self.step as f64,
            self.scores,
            self.kl,
            self.entropy,
            self.loss,
            self.clipfrac,
            self.response_length,
            self.eos_fraction,
            self.episodes_per_second,
            self.learning_rate,
        ]
    }
}

/// The trainer: policy, frozen reference, optimiser, data position and RNG.
pub struct GrpoTrainer {
    /// Hyperparameters.
    pub config: GrpoConfig,
    /// The model being trained.
    pub policy: Model,
    /// The frozen starting model (KL reference): only when the loss has a KL term (`beta > 0`)
    /// or the policy trains a LoRA adapter (then it is the base with the adapter off, sharing
    /// its weights); at `beta = 0` full fine-tuning keeps no second copy, as TRL.
    pub reference: Option<Model>,
    opt: AdamW,
    loader: PromptLoader,
    rng: ReinRng,
    /// Steps done.
    pub step: u64,
    /// Samples of the last step.
    pub last_samples: Vec<ScoredSample>,
    /// Where the last step's time went.
    pub last_times: StepTimes,
}

impl GrpoTrainer {
    /// A trainer starting from `policy` (the reference is a copy of it, or with a LoRA adapter
    /// the base with the adapter off). `config.lora` is applied by the caller that knows the
    /// base model's path ([`Model::with_new_adapter`]); the trainer trains whatever is trainable.
    pub fn new(
        config: GrpoConfig,
        policy: Model,
        prompts: Vec<PromptRecord>,
        tk: &Tokenizer,
    ) -> Result<Self, LmError> {
        config.validate()?;
        let reference = if config.beta > 0.0 || policy.adapter().is_some() {
            Some(policy.reference_model()?)
        } else {
            None
        };
        let opt = AdamW::new(
            policy.named_vars(),
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
        Ok(Self {
            config,
            policy,
            reference,
            opt,
            loader,
            rng,
            step: 0,
            last_samples: Vec::new(),
            last_times: StepTimes::default(),
        })
    }

    /// The prompt loader (data order, position, end-of-turn tokens).
    pub fn loader(&self) -> &PromptLoader {
        &self.loader
    }

    /// One step: sample, score, update. `reward` scores the samples; `tk` decodes them.
    pub fn update(&mut self, reward: &mut dyn Reward, tk: &Tokenizer) -> Result<GrpoLog, LmError> {
        let start = std::time::Instant::now();
        let c = self.config.clone();
        let g = c.group_size;
        let spec = SamplingSpec {
            per_prompt: g,
            max_new_tokens: c.max_new_tokens,
            temperature: c.temperature,
            top_k: c.top_k,
            stop_strings: c.stop_strings.clone(),
        };
        let mut times = StepTimes::default();
        let clock = std::time::Instant::now();
        let (ro, batch) = Rollout::next_batch(
            &self.policy,
            &mut self.loader,
            c.prompts_per_step,
            &spec,
            &mut self.rng,
            tk,
            reward,
        )?;
        times.generation = clock.elapsed().as_secs_f64();
        let scores = &ro.scores;
        let adv = group_advantages(scores, g, c.baseline)?;
        let mask = batch.mask_tensor()?;
        // The loss is normalised by the response tokens of every rank (one allreduce), so that
        // summed gradients of N ranks are those of one process with all their rows.
        let local_tokens = f64::from(batch.token_mask.iter().sum::<f32>());
        let n_tokens = rein_core::collective::sum_f64(&[local_tokens])[0].max(1.0) as f32;
        // The reference pass only when the loss has a KL term (TRL skips it at beta = 0 too);
        // objective/kl is then logged as 0.
        let clock = std::time::Instant::now();
        let ref_lp = match (&self.reference, c.beta > 0.0) {
            (Some(r), true) => Some(batch.logprobs(r, c.temperature, None, false)?.0.detach()),
            _ => None,
        };
        times.reference_logprobs = clock.elapsed().as_secs_f64();
        let adv_t = Tensor::from_vec(
            adv.iter().map(|&a| a as f32).collect::<Vec<_>>(),
            (batch.n, 1),
            &candle_core::Device::Cpu,
        )?;
        let lr = crate::rl::advantages::warmup_lr(
            c.lora.learning_rate_or(c.learning_rate),
            c.warmup_steps,
            self.step,
        );
        self.opt.lr = lr;
        let mut old: Option<Tensor> = None;
        let (mut loss_v, mut clipfrac, mut kl, mut entropy) = (0.0, 0.0, 0.0, 0.0);
        for pass in 0..c.epochs {
            let clock = std::time::Instant::now();
            let (lp, pass_entropy) =
                batch.logprobs(&self.policy, c.temperature, None, pass == 0)?;
            if let Some(e) = pass_entropy {
                entropy = e;
                if let Some(r) = &ref_lp {
                    kl = sequence_kl(&lp, r, &batch.token_mask, c.kl_estimator)?;
                }
            }
            let old_lp = match &old {
                Some(o) => o.clone(),
                None => {
                    let d = lp.detach();
                    old = Some(d.clone());
                    d
                }
            };
            let ratio = (&lp - &old_lp)?.exp()?;
            let pg1 = ratio.broadcast_mul(&adv_t)?;
            let clipped = ratio.clamp(1.0 - c.clip_eps, 1.0 + c.clip_eps)?;
            let pg2 = clipped.broadcast_mul(&adv_t)?;
            let mut per_token = pg1.minimum(&pg2)?.neg()?;
            if let Some(ref_lp) = &ref_lp {
                let r = (ref_lp - &lp)?;
                let k = match c.kl_estimator {
                    KlEstimator::K1 => r.neg()?,
                    KlEstimator::K2 => (r.sqr()? * 0.5)?,
                    KlEstimator::K3 => ((r.exp()? - &r)? - 1.0)?,
                };
                per_token = (per_token + (k * c.beta)?)?;
            }
            let loss = ((per_token * &mask)?.sum_all()? / f64::from(n_tokens))?;
            loss_v = f64::from(loss.to_scalar::<f32>()?);
            if !loss_v.is_finite() {
                return Err(LmError::NonFinite(format!(
                    "GRPO loss is {loss_v} at step {}; the last checkpoint is the last good state",
                    self.step + 1
                )));
            }
            let was_clipped = (((&ratio - &clipped)?.abs()?.gt(1e-6)?)
                .to_dtype(candle_core::DType::F32)?
                * &mask)?
                .sum_all()?
                .to_scalar::<f32>()?;
            clipfrac = f64::from(was_clipped) / local_tokens.max(1.0);
            times.logprobs += clock.elapsed().as_secs_f64();
            let clock = std::time::Instant::now();
            let grads = loss.backward()?;
            times.backward += clock.elapsed().as_secs_f64();
            let clock = std::time::Instant::now();
            let mut by_name: HashMap<String, Tensor> = HashMap::new();
            self.opt.accumulate(&mut by_name, &grads)?;
            drop(grads);
            reduce_grads_over_ranks(&mut by_name, RankReduction::Sum)?;
            if c.max_grad_norm > 0.0 {
                clip_grad_norm(&mut by_name, c.max_grad_norm)?;
            }
            self.opt.step_named(&by_name)?;
            times.optimizer += clock.elapsed().as_secs_f64();
        }
        self.last_times = times;
        self.step += 1;
        self.last_samples = ro.scored_samples(&self.loader);
        let means = ro.means_over_ranks();
        // Entropy and KL as means over every rank's rows (equal numbers per rank).
        let ranks = rein_core::collective::world().size() as f64;
        let [entropy, kl] = rein_core::collective::sum_f64(&[entropy, kl])[..] else {
            unreachable!("two sums")
        };
        let (entropy, kl) = (entropy / ranks, kl / ranks);
        Ok(GrpoLog {
            step: self.step,
            scores: means.0,
            kl,
            entropy,
            loss: loss_v,
            clipfrac,
            response_length: means.1,
            eos_fraction: means.2,
            episodes_per_second: ro.len() as f64 / start.elapsed().as_secs_f64().max(1e-9),
            learning_rate: lr,
        })
    }

    /// Writes policy, reference, optimiser moments, data position and RNG to one file
    /// (atomically: write then rename).
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), LmError> {
        use crate::checkpoint::with_prefix;
        let adapter = crate::checkpoint::AdapterRecord::of(&self.policy)?;
        let mut tensors = with_prefix("policy", self.policy.tensors());
        if let (None, Some(r)) = (&adapter, &self.reference) {
            tensors.extend(with_prefix("ref", r.tensors()));
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
            algo: (),
        };
        crate::checkpoint::save_state(path, "lm-grpo", &tensors, &state)
    }

    /// Rebuilds a trainer from [`GrpoTrainer::save_checkpoint`]; `tk` re-tokenises the prompts.
    pub fn load_checkpoint(path: &Path, tk: &Tokenizer) -> Result<Self, LmError> {
        use crate::checkpoint::split_prefixes;
        let (raw, st): (_, RlState<GrpoConfig, ()>) =
            crate::checkpoint::load_state(path, "lm-grpo")?;
        let (config, model_config) = (st.config, st.model_config);
        let mut parts = split_prefixes(raw);
        let mut part = |p: &str| parts.remove(p).unwrap_or_default();
        let name = path.display().to_string();
        let policy = crate::checkpoint::checkpoint_model(
            model_config.clone(),
            part("policy"),
            st.adapter.as_ref(),
            &name,
        )?;
        let reference = match (&st.adapter, config.beta > 0.0) {
            (Some(_), _) => Some(policy.reference_model()?),
            (None, true) => Some(Model::from_tensors(model_config, part("ref"), &name)?),
            (None, false) => None,
        };
        let mut opt = AdamW::new(
            policy.named_vars(),
            config.lora.learning_rate_or(config.learning_rate),
            config.weight_decay,
        )?;
        crate::checkpoint::restore_adamw(&mut opt, &part("opt"), st.opt_step, path)?;
        let loader = PromptLoader::from_state(st.loader, tk)?;
        let rng = st.rng;
        Ok(Self {
            config,
            policy,
            reference,
            opt,
            loader,
            rng,
            step: st.step,
            last_samples: Vec::new(),
            last_times: StepTimes::default(),
        })
    }
}

/// Mean over samples of the summed per-token KL estimate (`[n, r]` log-probs, flat mask).
pub fn sequence_kl(
    lp: &Tensor,
    ref_lp: &Tensor,
    token_mask: &[f32],
    est: KlEstimator,
) -> Result<f64, LmError> {
    let a = lp.detach().flatten_all()?.to_vec1::<f32>()?;
    let b = ref_lp.flatten_all()?.to_vec1::<f32>()?;
    let (n, _) = lp.dims2()?;
    let total: f64 = a
        .iter()
        .zip(&b)
        .zip(token_mask)
        .filter(|(_, &m)| m > 0.0)
        .map(|((&x, &y), _)| est.per_token(f64::from(x), f64::from(y)))
        .sum();
    Ok(total / n.max(1) as f64)
}
