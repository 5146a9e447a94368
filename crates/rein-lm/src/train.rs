//! Supervised training of a GPT-2: pretraining on plain text and fine-tuning (SFT) on
//! prompt/completion or text records, as Hugging Face's `Trainer` does it: AdamW, linear warmup
//! then cosine or linear decay, gradient accumulation (each micro-batch's mean loss divided by
//! the number of micro-batches), global gradient-norm clipping, periodic evaluation (loss and
//! perplexity on a held-out split), and one-file atomic checkpoints from which `resume`
//! continues bit for bit (weights, AdamW moments, step, data order and position, generator).

use crate::kernels::loss::{causal_lm_loss, LmBatch, IGNORE};
use crate::models::common::Dropout;
use crate::models::{CausalLm, Model};
use crate::optim::{clip_grad_norm, reduce_grads_over_ranks, AdamW, RankReduction};
use crate::tokenizer::Tokenizer;
use crate::LmError;
use candle_core::Tensor;
use rand::seq::SliceRandom;
use rein_core::{rng_from_seed, ReinRng};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Learning-rate decay after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// Half-cosine from the peak to 0 at `max_steps`.
    Cosine,
    /// Straight line from the peak to 0 at `max_steps`.
    Linear,
    /// The peak throughout.
    Constant,
}

/// Supervised-training hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmTrainConfig {
    /// Optimizer steps.
    pub max_steps: u64,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// Decay after warmup.
    pub schedule: LrSchedule,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm bound (0: no clipping).
    pub max_grad_norm: f64,
    /// Tokens per training block when pretraining on plain text.
    pub block_size: usize,
    /// Fraction of the examples held out for evaluation.
    pub eval_fraction: f64,
    /// Optimizer steps between evaluations (0: only at the end).
    pub eval_every: u64,
    /// Seed of the data order and dropout.
    pub seed: u64,
    /// Train a LoRA adapter instead of every weight (`lora.enabled = true`, `lora.r`, ...).
    pub lora: crate::models::lora::LoraSettings,
}

impl Default for LmTrainConfig {
    fn default() -> Self {
        Self {
            max_steps: 1000,
            batch_size: 16,
            grad_accum: 1,
            learning_rate: 5e-4,
            warmup_steps: 50,
            schedule: LrSchedule::Cosine,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            block_size: 128,
            eval_fraction: 0.05,
            eval_every: 100,
            seed: 0,
            lora: crate::models::lora::LoraSettings::default(),
        }
    }
}

impl LmTrainConfig {
    /// Checks the values, naming the first bad one.
    pub fn validate(&self) -> Result<(), LmError> {
        self.lora.validate()?;
        if self.batch_size == 0 || self.grad_accum == 0 || self.block_size < 2 {
            return Err(LmError::Input(
                "batch_size and grad_accum must be at least 1 and block_size at least 2".into(),
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(LmError::Input(format!(
                "learning_rate must be positive, got {}",
                self.learning_rate
            )));
        }
        if !(0.0..1.0).contains(&self.eval_fraction) {
            return Err(LmError::Input(format!(
                "eval_fraction must be in [0, 1), got {}",
                self.eval_fraction
            )));
        }
        Ok(())
    }

    /// The learning rate of optimizer step `step` (0-based): linear warmup to the peak over
    /// `warmup_steps`, then the schedule's decay to 0 at `max_steps` (transformers'
    /// `get_cosine_schedule_with_warmup` / `get_linear_schedule_with_warmup`).
    pub fn lr_at(&self, step: u64) -> f64 {
        let peak = self.lora.learning_rate_or(self.learning_rate);
        if step < self.warmup_steps {
            return peak * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let span = self.max_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        match self.schedule {
            LrSchedule::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            LrSchedule::Linear => peak * (1.0 - progress),
            LrSchedule::Constant => peak,
        }
    }
}

/// One training example: token ids and which of them are learned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Number of leading tokens not learned (the prompt).
    pub prompt_len: usize,
    /// When not empty, only the tokens in these `[start, end)` ranges are learned (the
    /// assistant turns of a conversation, TRL's `assistant_only_loss`), and `prompt_len` is 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learned: Vec<(usize, usize)>,
}

/// Plain text to fixed blocks: the text's documents (separated by blank lines) are tokenised,
/// each followed by `eos`, concatenated and cut into blocks of `block_size` (the last partial
/// block dropped), as transformers' `run_clm` groups texts.
pub fn blocks_from_text(
    tk: &Tokenizer,
    text: &str,
    eos: u32,
    block_size: usize,
) -> Result<Vec<Example>, LmError> {
    let mut stream = Vec::new();
    for doc in text.split("\n\n").filter(|d| !d.trim().is_empty()) {
        stream.extend(tk.encode(doc)?);
        stream.push(eos);
    }
    Ok(stream
        .chunks_exact(block_size)
        .map(|c| Example {
            ids: c.to_vec(),
            ..Default::default()
        })
        .collect())
}

/// A conversation as one SFT example, rendered with `template`, the loss on the assistant turns
/// from message `first_learned` on (each turn's text and its end-of-turn token, TRL's
/// `assistant_only_loss`). The turns are found by rendering growing prefixes of the
/// conversation (with the generation prompt before each assistant turn); a template whose
/// renderings are not prefixes of each other, or a tokenization that does not split at the
/// turn boundaries, is refused rather than guessed.
pub fn conversation_example(
    tk: &Tokenizer,
    template: &crate::chat::ChatTemplate,
    messages: &[crate::chat::Message],
    first_learned: usize,
) -> Result<Example, LmError> {
    let full = template.render(messages, false)?;
    let mut ids = Vec::new();
    let mut learned = Vec::new();
    let mut done = 0usize; // characters of `full` tokenised so far
    for k in first_learned..messages.len() {
        if messages[k].role != "assistant" {
            continue;
        }
        let before = template.render(&messages[..k], true)?;
        let upto = template.render(&messages[..=k], false)?;
        if !full.starts_with(&before) || !full.starts_with(&upto) || before.len() < done {
            return Err(LmError::Input(format!(
                "the chat template does not render message {k} as a continuation of the ones before it; cannot find the assistant turn"
            )));
        }
        ids.extend(tk.encode(&full[done..before.len()])?);
        // The turn ends after its end-of-turn token when the template writes one.
        let turn = &upto[before.len()..];
        let end = crate::pretrained::END_OF_TURN_TOKENS
            .iter()
            .filter_map(|t| turn.find(t).map(|i| i + t.len()))
            .min()
            .unwrap_or(turn.len());
        let start = ids.len();
        ids.extend(tk.encode(&turn[..end])?);
        learned.push((start, ids.len()));
        done = before.len() + end;
    }
    ids.extend(tk.encode(&full[done..])?);
    if learned.is_empty() {
        return Err(LmError::Input(
            "the conversation has no assistant turn to learn".into(),
        ));
    }
    if ids != tk.encode(&full)? {
        return Err(LmError::Input(
            "the tokenizer does not split the rendered conversation at its turn boundaries; cannot mark the assistant tokens".into(),
        ));
    }
    Ok(Example {
        ids,
        prompt_len: 0,
        learned,
    })
}

/// SFT records from JSONL in TRL's formats: `{"prompt", "completion"}` (loss on the completion
/// and the final EOS only), `{"text"}` (loss on every token), and, rendered with the model's
/// chat `template`, conversational `{"messages": [...]}` (loss on the assistant turns only) and
/// `{"prompt": [...], "completion": [...]}` (loss on the completion's assistant turns). Errors
/// name the line.
pub fn examples_from_jsonl(
    tk: &Tokenizer,
    path: &Path,
    eos: u32,
    n_positions: usize,
    template: Option<&crate::chat::ChatTemplate>,
) -> Result<Vec<Example>, LmError> {
    let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| LmError::Format(format!("{}: not JSON ({e})", at())))?;
        let conversational =
            v.get("messages").is_some() || v.get("prompt").is_some_and(|p| p.is_array());
        if conversational {
            let t = template.ok_or_else(|| {
                LmError::Input(format!(
                    "{}: a conversation, but the model has no chat template",
                    at()
                ))
            })?;
            let conv = |key: &str, needs_user: bool| {
                crate::chat::parse_conversation(&v[key], needs_user)
                    .map_err(|e| LmError::Format(format!("{}: \"{key}\": {e}", at())))
            };
            let (messages, first) = if v.get("messages").is_some() {
                (conv("messages", true)?, 0)
            } else {
                let mut m = conv("prompt", true)?;
                let first = m.len();
                m.extend(conv("completion", false)?);
                (m, first)
            };
            let ex = conversation_example(tk, t, &messages, first)
                .map_err(|e| LmError::Input(format!("{}: {e}", at())))?;
            if ex.ids.len() > n_positions {
                return Err(LmError::Input(format!(
                    "{}: {} tokens, longer than the model's n_positions = {n_positions}",
                    at(),
                    ex.ids.len()
                )));
            }
            out.push(ex);
            continue;
        }
        let ex = match (v.get("prompt"), v.get("completion"), v.get("text")) {
            (Some(p), Some(c), _) => {
                let (p, c) = (p.as_str(), c.as_str());
                let (Some(p), Some(c)) = (p, c) else {
                    return Err(LmError::Format(format!(
                        "{}: \"prompt\" and \"completion\" must be strings",
                        at()
                    )));
                };
                let mut ids = tk.encode(p)?;
                let prompt_len = ids.len();
                ids.extend(tk.encode(c)?);
                ids.push(eos);
                Example {
                    ids,
                    prompt_len,
                    ..Default::default()
                }
            }
            (_, _, Some(t)) => {
                let t = t.as_str().ok_or_else(|| {
                    LmError::Format(format!("{}: \"text\" must be a string", at()))
                })?;
                let mut ids = tk.encode(t)?;
                ids.push(eos);
                Example {
                    ids,
                    ..Default::default()
                }
            }
            _ => {
                return Err(LmError::Format(format!(
                    "{}: expected {{\"prompt\", \"completion\"}}, {{\"text\"}} or {{\"messages\"}}",
                    at()
                )))
            }
        };
        if ex.ids.len() > n_positions {
            return Err(LmError::Input(format!(
                "{}: {} tokens, longer than the model's n_positions = {n_positions}",
                at(),
                ex.ids.len()
            )));
        }
        if ex.ids.len() < 2 || ex.prompt_len >= ex.ids.len() {
            return Err(LmError::Input(format!("{}: nothing to learn", at())));
        }
        out.push(ex);
    }
    if out.is_empty() {
        return Err(LmError::Input(format!("{}: no records", path.display())));
    }
    Ok(out)
}

/// Right-pads examples into a loss batch (pads: id 0, mask 0, label ignored).
pub fn collate(examples: &[&Example]) -> LmBatch {
    let seq = examples.iter().map(|e| e.ids.len()).max().unwrap_or(0);
    let b = examples.len();
    let mut batch = LmBatch {
        ids: vec![0; b * seq],
        positions: vec![0; b * seq],
        mask: vec![vec![0; seq]; b],
        labels: vec![IGNORE; b * seq],
        batch: b,
        seq,
    };
    for (r, e) in examples.iter().enumerate() {
        for (c, &t) in e.ids.iter().enumerate() {
            batch.ids[r * seq + c] = t;
            batch.positions[r * seq + c] = c as u32;
            batch.mask[r][c] = 1;
            let learned = if e.learned.is_empty() {
                c >= e.prompt_len
            } else {
                e.learned.iter().any(|&(a, b)| (a..b).contains(&c))
            };
            if learned {
                batch.labels[r * seq + c] = i64::from(t);
            }
        }
    }
    batch
}

/// One row of training metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LmLog {
    /// Optimizer steps done.
    pub step: u64,
    /// Mean training loss of this step.
    pub loss: f64,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Held-out loss (NaN when not evaluated this step).
    pub eval_loss: f64,
    /// `exp(eval_loss)`.
    pub eval_perplexity: f64,
    /// Training tokens per second in this invocation.
    pub tokens_per_second: f64,
}

impl LmLog {
    /// `metrics.csv` columns (transformers' names).
    pub const COLUMNS: [&'static str; 7] = [
        "step",
        "loss",
        "learning_rate",
        "grad_norm",
        "eval_loss",
        "eval_perplexity",
        "tokens_per_second",
    ];

    /// Values in the order of [`LmLog::COLUMNS`].
    pub fn row(&self) -> [f64; 7] {
        [
            self.step as f64,
            self.loss,
            self.learning_rate,
            self.grad_norm,
            self.eval_loss,
            self.eval_perplexity,
            self.tokens_per_second,
        ]
    }
}

/// Refuses a new run length below the steps already done (a resumed run cannot un-train).
pub fn check_budget(max_steps: u64, done: u64) -> Result<(), LmError> {
    if max_steps < done {
        return Err(LmError::Input(format!(
            "max_steps {max_steps} is less than the {done} steps this run has already trained"
        )));
    }
    Ok(())
}

/// A supervised trainer: model, optimizer, data and position.
pub struct LmTrainer {
    /// Hyperparameters.
    pub config: LmTrainConfig,
    /// The model being trained.
    pub model: Model,
    opt: AdamW,
    train: Vec<Example>,
    eval: Vec<Example>,
    order: Vec<usize>,
    cursor: usize,
    epoch: u64,
    /// Optimizer steps done.
    pub step: u64,
    rng: ReinRng,
    tokens: u64,
    started: std::time::Instant,
}

impl LmTrainer {
    /// Sets the run's length to `max_steps`, for a resumed run trained longer (or shorter):
    /// the learning-rate schedule stretches to the new end (transformers' `get_*_schedule`
    /// read with the new `num_training_steps`); fewer steps than already done are refused.
    pub fn set_max_steps(&mut self, max_steps: u64) -> Result<(), LmError> {
        check_budget(max_steps, self.step)?;
        self.config.max_steps = max_steps;
        Ok(())
    }

    /// A trainer on `examples` (the last `eval_fraction` of them, after a seeded shuffle, held
    /// out).
    pub fn new(
        config: LmTrainConfig,
        model: Model,
        mut examples: Vec<Example>,
    ) -> Result<Self, LmError> {
        config.validate()?;
        let mut rng = rng_from_seed(config.seed);
        examples.shuffle(&mut rng);
        let n_eval = ((examples.len() as f64) * config.eval_fraction).round() as usize;
        if examples.len() <= n_eval {
            return Err(LmError::Input(format!(
                "{} examples leave nothing to train on after holding out {n_eval}",
                examples.len()
            )));
        }
        let eval = examples.split_off(examples.len() - n_eval);
        let opt = AdamW::new(
            model.named_vars(),
            config.lora.learning_rate_or(config.learning_rate),
            config.weight_decay,
        )?;
        let mut t = Self {
            order: Vec::new(),
            cursor: 0,
            epoch: 0,
            step: 0,
            train: examples,
            eval,
            opt,
            model,
            // Each rank its own dropout masks (the data order is rank 0's: `new_epoch`).
            rng: rein_core::collective::rank_rng(rng, config.seed),
            tokens: 0,
            started: std::time::Instant::now(),
            config,
        };
        t.new_epoch();
        Ok(t)
    }

    /// A new shuffled order of the training examples. Under MPI rank 0's order is every
    /// rank's (the ranks' generators part ways at their dropout masks).
    fn new_epoch(&mut self) {
        self.order = (0..self.train.len()).collect();
        self.order.shuffle(&mut self.rng);
        self.cursor = 0;
        if rein_core::collective::is_distributed() {
            let mut bytes: Vec<u8> = self
                .order
                .iter()
                .flat_map(|&i| (i as u64).to_le_bytes())
                .collect();
            rein_core::collective::world().broadcast_bytes(&mut bytes);
            self.order = bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
                .collect();
        }
    }

    /// The next micro-batch. Under MPI with `N` ranks every rank walks the order by
    /// `N * batch_size` examples, as one process with that batch size, and collates its own
    /// share (rank `r` the `r`-th `batch_size`).
    fn next_batch(&mut self) -> LmBatch {
        let world = rein_core::collective::world();
        let (rank, ranks) = (world.rank(), world.size());
        let b = self.config.batch_size;
        let mut picked = Vec::with_capacity(b * ranks);
        while picked.len() < b * ranks {
            if self.cursor == self.order.len() {
                self.epoch += 1;
                self.new_epoch();
            }
            picked.push(self.order[self.cursor]);
            self.cursor += 1;
        }
        let refs: Vec<&Example> = picked[rank * b..(rank + 1) * b]
            .iter()
            .map(|&i| &self.train[i])
            .collect();
        collate(&refs)
    }

    /// Number of held-out examples.
    pub fn eval_len(&self) -> usize {
        self.eval.len()
    }

    /// Mean loss over the held-out examples (token-weighted).
    pub fn evaluate(&self) -> Result<f64, LmError> {
        let (mut sum, mut n) = (0f64, 0usize);
        for chunk in self.eval.chunks(self.config.batch_size) {
            let refs: Vec<&Example> = chunk.iter().collect();
            let (loss, terms) = causal_lm_loss(&self.model, &collate(&refs), None)?;
            sum += f64::from(loss.to_scalar::<f32>()?) * terms as f64;
            n += terms;
        }
        Ok(if n == 0 { f64::NAN } else { sum / n as f64 })
    }

    /// One optimizer step over `grad_accum` micro-batches.
    pub fn update(&mut self) -> Result<LmLog, LmError> {
        let cfg = self.config.clone();
        let lr = cfg.lr_at(self.step);
        let mut acc: HashMap<String, Tensor> = HashMap::new();
        let mut loss_sum = 0f64;
        for _ in 0..cfg.grad_accum {
            let batch = self.next_batch();
            let tokens = batch.mask.iter().flatten().filter(|&&m| m == 1).count() as f64;
            let mut dropout = Dropout { rng: &mut self.rng };
            let (loss, terms) = causal_lm_loss(&self.model, &batch, Some(&mut dropout))?;
            // Under MPI the mean is over every rank's target tokens (one allreduce), and the
            // gradients are summed below: the update of one process with all ranks' examples.
            let counts = rein_core::collective::sum_f64(&[terms as f64, tokens]);
            self.tokens += counts[1] as u64;
            let loss = if rein_core::collective::is_distributed() {
                (loss * (terms as f64 / counts[0].max(1.0)))?
            } else {
                loss
            };
            let loss = (loss / cfg.grad_accum as f64)?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?);
            self.opt.accumulate(&mut acc, &loss.backward()?)?;
        }
        let loss_sum = rein_core::collective::sum_f64(&[loss_sum])[0];
        reduce_grads_over_ranks(&mut acc, RankReduction::Sum)?;
        if !loss_sum.is_finite() {
            return Err(LmError::Input(format!(
                "training loss became {loss_sum} at step {}; the last checkpoint is intact",
                self.step
            )));
        }
        let bound = if cfg.max_grad_norm > 0.0 {
            cfg.max_grad_norm
        } else {
            f64::INFINITY
        };
        let grad_norm = clip_grad_norm(&mut acc, bound)?;
        self.opt.lr = lr;
        self.opt.step_named(&acc)?;
        self.step += 1;
        let (eval_loss, eval_ppl) = if (cfg.eval_every > 0
            && self.step.is_multiple_of(cfg.eval_every))
            || self.step == cfg.max_steps
        {
            let l = self.evaluate()?;
            (l, l.exp())
        } else {
            (f64::NAN, f64::NAN)
        };
        Ok(LmLog {
            step: self.step,
            loss: loss_sum,
            learning_rate: lr,
            grad_norm,
            eval_loss,
            eval_perplexity: eval_ppl,
            tokens_per_second: self.tokens as f64 / self.started.elapsed().as_secs_f64().max(1e-9),
        })
    }

    /// Writes weights, AdamW moments and the trainer state (step, data order and position,
    /// generator, examples) to one safetensors file, atomically.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), LmError> {
        use crate::checkpoint::with_prefix;
        let mut tensors = with_prefix("model", self.model.tensors());
        tensors.extend(with_prefix("opt", self.opt.state_tensors()));
        let state = SupervisedState {
            adapter: crate::checkpoint::AdapterRecord::of(&self.model)?,
            config: self.config.clone(),
            model_config: self.model.config(),
            step: self.step,
            opt_step: self.opt.step,
            epoch: self.epoch,
            cursor: self.cursor,
            order: self.order.clone(),
            rng: self.rng.clone(),
            train: self.train.clone(),
            eval: self.eval.clone(),
        };
        crate::checkpoint::save_state(path, "lm-sft", &tensors, &state)
    }

    /// Rebuilds a trainer from [`LmTrainer::save_checkpoint`].
    pub fn load_checkpoint(path: &Path) -> Result<Self, LmError> {
        use crate::checkpoint::split_prefixes;
        let (raw, st): (_, SupervisedState) = crate::checkpoint::load_state(path, "lm-sft")?;
        let (config, model_config) = (st.config, st.model_config);
        let mut parts = split_prefixes(raw);
        let model = crate::checkpoint::checkpoint_model(
            model_config,
            parts.remove("model").unwrap_or_default(),
            st.adapter.as_ref(),
            &path.display().to_string(),
        )?;
        let opt_t = parts.remove("opt").unwrap_or_default();
        let mut t = Self {
            opt: AdamW::new(
                model.named_vars(),
                config.learning_rate,
                config.weight_decay,
            )?,
            model,
            train: st.train,
            eval: st.eval,
            order: st.order,
            cursor: st.cursor,
            epoch: st.epoch,
            step: st.step,
            rng: st.rng,
            tokens: 0,
            started: std::time::Instant::now(),
            config,
        };
        crate::checkpoint::restore_adamw(&mut t.opt, &opt_t, st.opt_step, path)?;
        Ok(t)
    }
}

/// What a supervised-training checkpoint keeps besides the model and AdamW tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SupervisedState {
    config: LmTrainConfig,
    model_config: crate::models::ModelConfig,
    step: u64,
    opt_step: u64,
    epoch: u64,
    cursor: usize,
    order: Vec<usize>,
    #[serde(with = "rein_core::rng::as_string")]
    rng: ReinRng,
    train: Vec<Example>,
    eval: Vec<Example>,
    #[serde(default)]
    adapter: Option<crate::checkpoint::AdapterRecord>,
}

/// An [`LmTrainer`] with the tokenizer its model is exported with: the `rein_train::Trainer`
/// of `rein lm pretrain`, `rein lm sft` and `rein lm quickstart`.
pub struct SupervisedTrainer {
    /// The trainer.
    pub trainer: LmTrainer,
    /// The model's tokenizer.
    pub tokenizer: crate::Tokenizer,
}

/// Checkpoint kind of supervised language-model training.
pub const SUPERVISED_KIND: &str = "lm-sft";

impl rein_train::Trainer for SupervisedTrainer {
    fn kind(&self) -> &'static str {
        SUPERVISED_KIND
    }
    fn columns(&self) -> &'static [&'static str] {
        &LmLog::COLUMNS
    }
    fn update(&mut self) -> Result<Vec<f64>, rein_train::TrainerError> {
        Ok(self.trainer.update()?.row().to_vec())
    }
    fn updates(&self) -> u64 {
        self.trainer.step
    }
    fn parameter_checksum(&self) -> Option<u64> {
        crate::models::model::parameter_checksum(&self.trainer.model)
    }
    fn progress(&self) -> rein_train::Progress {
        rein_train::Progress {
            done: self.trainer.step,
            total: self.trainer.config.max_steps,
            unit: "steps",
        }
    }
    fn status(&self, row: &[f64]) -> String {
        let (loss, eval) = (row[1], row[4]);
        match eval.is_finite() {
            true => format!("loss {loss:.3}, eval {eval:.3}"),
            false => format!("loss {loss:.3}"),
        }
    }
    fn save_checkpoint(&self, path: &Path) -> Result<(), rein_train::TrainerError> {
        Ok(self.trainer.save_checkpoint(path)?)
    }
    fn curve(&self) -> rein_train::Curve {
        rein_train::Curve {
            file: "loss_curve.png",
            x: ("step", "steps"),
            y: ("loss", "training loss"),
        }
    }
    /// The model as a Hugging Face directory `model/` with its tokenizer.
    fn export(&self, run_dir: &Path) -> Result<(), rein_train::TrainerError> {
        let dir = run_dir.join(rein_train::files::MODEL);
        crate::checkpoint::save_model(&self.trainer.model, &dir, &[])?;
        self.tokenizer.save(&dir.join("tokenizer.json"))?;
        if let Some(a) = self.trainer.model.adapter() {
            a.save(&run_dir.join(crate::rl::trainer::ADAPTER_DIR))?;
        }
        Ok(())
    }
}

/// The model and training blocks of a pretraining run on the text file `data`: `model_config`
/// gets the tokenizer's vocabulary and its `<|endoftext|>` as BOS and EOS; the text is cut into
/// blocks of `config.block_size` tokens (at least two, no longer than the context).
pub fn pretraining_setup(
    tk: &crate::Tokenizer,
    data: &Path,
    config: &LmTrainConfig,
    mut model_config: crate::models::ModelConfig,
) -> Result<(Model, Vec<Example>), LmError> {
    let eos = tk
        .token_id(crate::tokenizer::END_OF_TEXT)
        .ok_or_else(|| LmError::Input("the tokenizer has no <|endoftext|>".into()))?;
    model_config.set_vocabulary(tk.vocab_size(), eos);
    if config.block_size > model_config.max_positions() {
        return Err(LmError::Input(format!(
            "block_size {} exceeds the model's context of {} positions",
            config.block_size,
            model_config.max_positions()
        )));
    }
    let text = std::fs::read_to_string(data).map_err(|e| LmError::io(data, e))?;
    let examples = blocks_from_text(tk, &text, eos, config.block_size)?;
    if examples.len() < 2 {
        return Err(LmError::Input(format!(
            "{}: too little text for blocks of {} tokens",
            data.display(),
            config.block_size
        )));
    }
    let mut rng = rein_core::rng_from_seed(config.seed);
    let model = Model::new_random(model_config, &mut rng)?;
    Ok((model, examples))
}

/// The records of the JSONL file `data` for fine-tuning `model` (see [`examples_from_jsonl`]),
/// plain ones ended with the model's `eos_token_id` or the tokenizer's `<|endoftext|>`,
/// conversations rendered with `template`.
pub fn sft_examples(
    tk: &crate::Tokenizer,
    model: &Model,
    data: &Path,
    template: Option<&crate::chat::ChatTemplate>,
) -> Result<Vec<Example>, LmError> {
    let eos = tk
        .token_id(crate::tokenizer::END_OF_TEXT)
        .or(model.eos_token_id())
        .ok_or_else(|| LmError::Input("no <|endoftext|> token and no eos_token_id".into()))?;
    examples_from_jsonl(tk, data, eos, model.max_positions(), template)
}
