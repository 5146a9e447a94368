//! Learned reward models: a GPT-2 backbone with a scalar head on the last token's final
//! hidden state, trained on preference pairs with the Bradley-Terry loss
//! `-log sigmoid(r(x, y_chosen) - r(x, y_rejected))` (Ouyang et al. 2022, eq. 1; TRL's
//! `RewardTrainer`), reporting accuracy (`r_chosen > r_rejected`) and mean margin on a
//! held-out split, then normalised so that the rewards of reference-policy samples have mean 0
//! and standard deviation 1 (Stiennon et al. 2020; the gain and offset are folded into the
//! head). Saved as a model directory: `config.json`, `model.safetensors` (`transformer.*` and
//! `score.weight` `[1, n_embd]` as Hugging Face's `GPT2ForSequenceClassification`, plus
//! `score.bias` `[1]` holding the normalisation offset), `tokenizer.json`.

use std::collections::HashMap;
use std::path::Path;

use crate::generate::left_pad;
use crate::models::common::ForwardInput;
use crate::models::gpt2::ScalarHead;
use crate::models::{CausalLm, Model};
use crate::optim::{clip_grad_norm, AdamW};
use crate::rl::reward::{Reward, Sample};
use crate::tokenizer::Tokenizer;
use crate::LmError;
use candle_core::{Device, Module, Tensor, Var};
use rand::seq::SliceRandom;
use rein_core::ReinRng;
use serde::{Deserialize, Serialize};

/// One preference record: the same prompt with a preferred and a dispreferred response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreferencePair {
    /// Prompt (context) text.
    #[serde(default)]
    pub prompt: String,
    /// Preferred response.
    pub chosen: String,
    /// Dispreferred response.
    pub rejected: String,
}

/// Reads JSONL preference pairs in TRL's formats: standard `{"prompt", "chosen", "rejected"}`
/// texts (the prompt may be absent: implicit), and, rendered with the model's chat `template`,
/// conversational `{"prompt": [messages], "chosen": [messages], "rejected": [messages]}` or the
/// implicit-prompt form where `chosen` and `rejected` are whole conversations whose common
/// leading messages are the prompt. A conversational pair becomes the rendered prompt (with the
/// generation prompt) and each reply's rendered rest. Errors name the file and line.
pub fn read_preferences(
    path: &Path,
    template: Option<&crate::chat::ChatTemplate>,
) -> Result<Vec<PreferencePair>, LmError> {
    let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| LmError::Format(format!("{}: not JSON: {e}", at())))?;
        let p = if v.get("chosen").is_some_and(|c| c.is_array()) {
            conversational_pair(&v, template)
                .map_err(|e| LmError::Format(format!("{}: {e}", at())))?
        } else {
            serde_json::from_value(v).map_err(|e| {
                LmError::Format(format!(
                    "{}: expected {{\"prompt\", \"chosen\", \"rejected\"}}: {e}",
                    at()
                ))
            })?
        };
        out.push(p);
    }
    if out.len() < 2 {
        return Err(LmError::Input(format!(
            "{}: {} preference pairs; at least 2 are needed (one to train, one to evaluate)",
            path.display(),
            out.len()
        )));
    }
    Ok(out)
}

/// A conversational preference row as a text pair (see [`read_preferences`]).
fn conversational_pair(
    v: &serde_json::Value,
    template: Option<&crate::chat::ChatTemplate>,
) -> Result<PreferencePair, String> {
    use crate::chat::{parse_conversation, Message};
    let t = template.ok_or("a conversation, but the model has no chat template")?;
    let list = |key: &str| -> Result<Vec<Message>, String> {
        parse_conversation(&v[key], false).map_err(|e| format!("\"{key}\": {e}"))
    };
    let (prompt, chosen, rejected) = match v.get("prompt") {
        Some(_) => {
            let prompt = list("prompt")?;
            let join = |reply: Vec<Message>| [prompt.clone(), reply].concat();
            (
                prompt.clone(),
                join(list("chosen")?),
                join(list("rejected")?),
            )
        }
        None => {
            let (c, r) = (list("chosen")?, list("rejected")?);
            let shared = c.iter().zip(&r).take_while(|(a, b)| a == b).count();
            (c[..shared].to_vec(), c, r)
        }
    };
    if !prompt.iter().any(|m| m.role == "user") {
        return Err("the prompt (the messages before the replies) has no user turn".into());
    }
    if chosen.len() == prompt.len() || rejected.len() == prompt.len() {
        return Err("\"chosen\" and \"rejected\" need a reply after the prompt".into());
    }
    let head = t.render(&prompt, true).map_err(|e| e.to_string())?;
    let rest = |conv: &[Message], key: &str| -> Result<String, String> {
        let full = t.render(conv, false).map_err(|e| e.to_string())?;
        full.strip_prefix(&head).map(str::to_string).ok_or(format!(
            "the chat template does not render \"{key}\" as a continuation of the prompt"
        ))
    };
    Ok(PreferencePair {
        chosen: rest(&chosen, "chosen")?,
        rejected: rest(&rejected, "rejected")?,
        prompt: head,
    })
}

/// The backbone and scalar head of a reward-model directory: transformers'
/// `*ForSequenceClassification` with `num_labels` 1 (`score.weight` `[1, hidden]`, no bias) or
/// rein's own (`score.bias` `[1]` holding the normalisation offset).
pub fn load_backbone_and_head(dir: &Path) -> Result<(Model, ScalarHead), LmError> {
    let (backbone, mut extra) = crate::checkpoint::load_model_with_extras(dir)?;
    let n = backbone.hidden_size();
    let w = extra.remove("score.weight").ok_or_else(|| {
        LmError::Format(format!(
            "{}: the weights have no score.weight: not a reward model (train one with `rein lm train-reward-model`)",
            dir.display()
        ))
    })?;
    if w.dims() != [1, n] {
        return Err(LmError::Format(format!(
            "{}: score.weight has shape {:?}, expected [1, {n}] (one label)",
            dir.display(),
            w.dims()
        )));
    }
    let b = match extra.remove("score.bias") {
        Some(b) => b.reshape(1)?,
        None => Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu)?,
    };
    let head = ScalarHead {
        weight: Var::from_tensor(&w)?,
        bias: Var::from_tensor(&b)?,
    };
    Ok((backbone, head))
}

/// `[n]` rewards of token sequences (differentiable in the backbone and head): one
/// left-padded forward pass, the head on each row's last token, which is transformers' score at
/// the last non-pad token of a right-padded row. Empty sequences and ids outside the vocabulary
/// are errors naming the sequence.
pub fn sequence_rewards(
    backbone: &Model,
    head: &ScalarHead,
    seqs: &[Vec<u32>],
) -> Result<Tensor, LmError> {
    if seqs.is_empty() {
        return Ok(Tensor::zeros(0, candle_core::DType::F32, &Device::Cpu)?);
    }
    let vocab = backbone.vocab_size();
    for (i, s) in seqs.iter().enumerate() {
        if s.is_empty() {
            return Err(LmError::Input(format!("sequence {i} is empty")));
        }
        if let Some(t) = s.iter().find(|&&t| t as usize >= vocab) {
            return Err(LmError::Input(format!(
                "sequence {i}: token id {t} is outside the vocabulary (size {vocab})"
            )));
        }
    }
    let (ids, pos, mask, len) = left_pad(seqs, 0);
    let n = seqs.len();
    let dev = Device::Cpu;
    let ids = Tensor::from_vec(ids, (n, len), &dev)?;
    let pos = Tensor::from_vec(pos, (n, len), &dev)?;
    let h = backbone.hidden(
        &ForwardInput {
            ids: &ids,
            positions: &pos,
            mask: Some(&mask),
        },
        None,
        None,
    )?;
    let last = h.narrow(1, len - 1, 1)?.squeeze(1)?.contiguous()?;
    Ok(head.forward(&last)?)
}

/// A reward model: backbone, head and the tokenizer its text goes through.
pub struct RewardModel {
    /// The transformer.
    pub backbone: Model,
    /// The scalar head.
    pub head: ScalarHead,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
}

impl RewardModel {
    /// A fresh head (`N(0, 1/sqrt(n_embd + 1))`) on `backbone`.
    pub fn new(backbone: Model, tokenizer: Tokenizer, rng: &mut ReinRng) -> Result<Self, LmError> {
        let head = ScalarHead::reward_head(backbone.hidden_size(), rng)?;
        Ok(Self {
            backbone,
            head,
            tokenizer,
        })
    }

    /// Loads a reward-model directory (see [`load_backbone_and_head`]) with its tokenizer.
    pub fn load(dir: &Path) -> Result<Self, LmError> {
        let (backbone, head) = load_backbone_and_head(dir)?;
        let tokenizer = Tokenizer::from_dir(dir)?
            .ok_or_else(|| LmError::Format(format!("{}: no tokenizer.json", dir.display())))?;
        Ok(Self {
            backbone,
            head,
            tokenizer,
        })
    }

    /// Writes `config.json`, `model.safetensors` and `tokenizer.json` to `dir` (atomically
    /// per file).
    pub fn save(&self, dir: &Path) -> Result<(), LmError> {
        crate::checkpoint::save_model(
            &self.backbone,
            dir,
            &[
                ("score.weight".into(), self.head.weight.as_tensor().clone()),
                ("score.bias".into(), self.head.bias.as_tensor().clone()),
            ],
        )?;
        self.tokenizer.save(&dir.join("tokenizer.json"))
    }

    /// Token ids of `prompt + response`, keeping the last `n_positions` tokens.
    fn encode(&self, prompt: &str, response: &str) -> Result<Vec<u32>, LmError> {
        let mut ids = self.tokenizer.encode(&format!("{prompt}{response}"))?;
        if ids.is_empty() {
            ids.push(self.backbone.eos_token_id().unwrap_or(0));
        }
        let cap = self.backbone.max_positions();
        if ids.len() > cap {
            ids.drain(..ids.len() - cap);
        }
        Ok(ids)
    }

    /// `[n]` rewards of the texts (differentiable in the backbone and head): see
    /// [`sequence_rewards`].
    pub fn rewards(&self, texts: &[(String, String)]) -> Result<Tensor, LmError> {
        let seqs = texts
            .iter()
            .map(|(p, r)| self.encode(p, r))
            .collect::<Result<Vec<_>, _>>()?;
        sequence_rewards(&self.backbone, &self.head, &seqs)
    }

    /// Rewards as numbers, in chunks of 32.
    pub fn score_texts(&self, texts: &[(String, String)]) -> Result<Vec<f64>, LmError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(32) {
            let r = self.rewards(chunk)?.detach().to_vec1::<f32>()?;
            out.extend(r.into_iter().map(f64::from));
        }
        Ok(out)
    }

    /// Folds `(r - mean) / std` into the head, so that the rewards of the texts whose scores
    /// had this mean and standard deviation get mean 0 and standard deviation 1.
    pub fn normalize(&mut self, mean: f64, std: f64) -> Result<(), LmError> {
        if !(std.is_finite() && std > 0.0 && mean.is_finite()) {
            return Err(LmError::Input(format!(
                "reward normalisation needs a finite mean and a positive std, got mean {mean}, std {std}"
            )));
        }
        let w = (self.head.weight.as_tensor() / std)?;
        let b = ((self.head.bias.as_tensor() - mean)? / std)?;
        self.head.weight.set(&w)?;
        self.head.bias.set(&b)?;
        Ok(())
    }

    /// Normalises over `texts`: their rewards get mean 0 and standard deviation 1 (a std under
    /// 1e-6 counts as 1e-6). Returns the mean and std before.
    pub fn normalize_over(&mut self, texts: &[(String, String)]) -> Result<(f64, f64), LmError> {
        let r = self.score_texts(texts)?;
        let n = r.len().max(1) as f64;
        let mean = r.iter().sum::<f64>() / n;
        let std = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        self.normalize(mean, std.max(1e-6))?;
        Ok((mean, std))
    }

    /// The backbone's and head's tensors under their saved names.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect()
    }

    fn vars(&self) -> Vec<(String, Var)> {
        let mut v = self.backbone.named_vars();
        v.push(("score.weight".into(), self.head.weight.clone()));
        v.push(("score.bias".into(), self.head.bias.clone()));
        v
    }
}

impl Reward for RewardModel {
    fn name(&self) -> String {
        "reward_model".into()
    }
    fn score(&mut self, samples: &[Sample]) -> Result<Vec<f64>, LmError> {
        let texts: Vec<(String, String)> = samples
            .iter()
            .map(|s| (s.prompt.to_string(), s.response.to_string()))
            .collect();
        self.score_texts(&texts)
    }
}

/// Reward-model training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardModelConfig {
    /// Passes over the training pairs.
    pub epochs: usize,
    /// Pairs per optimiser step.
    pub batch_size: usize,
    /// AdamW learning rate (linear decay to 0 after warmup).
    pub learning_rate: f64,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Gradient-norm clip (0: off).
    pub max_grad_norm: f64,
    /// Fraction of the pairs held out for accuracy and margin.
    pub eval_fraction: f64,
    /// Seed of the split, the order and the head.
    pub seed: u64,
    /// Train a LoRA adapter on the backbone (and the head) instead of every weight.
    pub lora: crate::models::lora::LoraSettings,
}

impl Default for RewardModelConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 8,
            learning_rate: 1e-4,
            warmup_steps: 0,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            eval_fraction: 0.1,
            seed: 0,
            lora: crate::models::lora::LoraSettings::default(),
        }
    }
}

/// Accuracy and margin of a reward model on preference pairs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct PreferenceEval {
    /// Pairs scored.
    pub pairs: usize,
    /// Share with `r_chosen > r_rejected`.
    pub accuracy: f64,
    /// Mean `r_chosen - r_rejected`.
    pub margin: f64,
    /// Mean Bradley-Terry loss.
    pub loss: f64,
}

/// One logged training step.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct RewardModelLog {
    /// Step.
    pub step: u64,
    /// Bradley-Terry loss of the batch.
    pub loss: f64,
    /// Batch accuracy.
    pub accuracy: f64,
    /// Batch mean margin.
    pub margin: f64,
    /// Learning rate.
    pub learning_rate: f64,
}

impl RewardModelLog {
    /// CSV header.
    pub const COLUMNS: [&'static str; 5] = ["step", "loss", "accuracy", "margin", "learning_rate"];

    /// CSV row.
    pub fn row(&self) -> [f64; 5] {
        [
            self.step as f64,
            self.loss,
            self.accuracy,
            self.margin,
            self.learning_rate,
        ]
    }
}

/// `-log sigmoid(d) = softplus(-d)`, computed stably as `max(-d, 0) + log(1 + exp(-|d|))`.
fn bt_loss(d: &Tensor) -> Result<Tensor, LmError> {
    let neg = d.neg()?;
    Ok((neg.relu()? + (d.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// Scores pairs without gradients.
pub fn evaluate_preferences(
    rm: &RewardModel,
    pairs: &[PreferencePair],
) -> Result<PreferenceEval, LmError> {
    if pairs.is_empty() {
        return Ok(PreferenceEval::default());
    }
    let chosen: Vec<(String, String)> = pairs
        .iter()
        .map(|p| (p.prompt.clone(), p.chosen.clone()))
        .collect();
    let rejected: Vec<(String, String)> = pairs
        .iter()
        .map(|p| (p.prompt.clone(), p.rejected.clone()))
        .collect();
    let c = rm.score_texts(&chosen)?;
    let r = rm.score_texts(&rejected)?;
    let n = pairs.len() as f64;
    let d: Vec<f64> = c.iter().zip(&r).map(|(a, b)| a - b).collect();
    Ok(PreferenceEval {
        pairs: pairs.len(),
        accuracy: d.iter().filter(|&&x| x > 0.0).count() as f64 / n,
        margin: d.iter().sum::<f64>() / n,
        loss: d
            .iter()
            .map(|&x| (-x).max(0.0) + (-x.abs()).exp().ln_1p())
            .sum::<f64>()
            / n,
    })
}

/// Bradley-Terry training of a reward model, one optimizer step per [`update`]: a seeded
/// `eval_fraction` of the pairs held out, epochs of shuffled batches, linear warmup then
/// linear decay to 0, gradient clipping. The `rein_train::Trainer` of `rein lm
/// train-reward-model`; its checkpoint holds the model, the AdamW moments, the data and the
/// order, so a resumed run continues exactly.
///
/// [`update`]: RewardModelTrainer::update
pub struct RewardModelTrainer {
    /// The model being trained.
    pub model: RewardModel,
    /// Settings.
    pub config: RewardModelConfig,
    opt: AdamW,
    state: RewardModelState,
}

/// What a reward-model checkpoint keeps besides the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RewardModelState {
    config: RewardModelConfig,
    model_config: crate::models::ModelConfig,
    train: Vec<PreferencePair>,
    eval: Vec<PreferencePair>,
    order: Vec<usize>,
    cursor: usize,
    epoch: usize,
    step: u64,
    opt_step: u64,
    #[serde(with = "rein_core::rng::as_string")]
    rng: ReinRng,
    /// With a LoRA adapter: its configuration and base model (the backbone tensors are then
    /// the adapter's).
    #[serde(default)]
    adapter: Option<crate::checkpoint::AdapterRecord>,
}

/// Checkpoint kind of reward-model training.
pub const REWARD_MODEL_KIND: &str = "lm-reward-model";

impl RewardModelTrainer {
    /// A trainer of `model` on `pairs`.
    pub fn new(
        model: RewardModel,
        pairs: Vec<PreferencePair>,
        config: RewardModelConfig,
    ) -> Result<Self, LmError> {
        if config.batch_size == 0 || config.epochs == 0 {
            return Err(LmError::Input(
                "batch_size and epochs must be at least 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&config.eval_fraction) {
            return Err(LmError::Input(format!(
                "eval_fraction must lie in [0, 1), got {}",
                config.eval_fraction
            )));
        }
        config.lora.validate()?;
        let mut rng = rein_core::rng_from_seed(config.seed);
        let mut pairs = pairs;
        pairs.shuffle(&mut rng);
        let n_eval = ((pairs.len() as f64 * config.eval_fraction).round() as usize)
            .min(pairs.len().saturating_sub(1));
        let eval = pairs.split_off(pairs.len() - n_eval);
        let opt = AdamW::new(
            model.vars(),
            config.lora.learning_rate_or(config.learning_rate),
            config.weight_decay,
        )?;
        Ok(Self {
            state: RewardModelState {
                config: config.clone(),
                model_config: model.backbone.config(),
                order: (0..pairs.len()).collect(),
                train: pairs,
                eval,
                cursor: 0,
                epoch: 0,
                step: 0,
                opt_step: 0,
                rng,
                adapter: None,
            },
            model,
            config,
            opt,
        })
    }

    /// Optimizer steps in all (`epochs` passes of `ceil(train / batch_size)` steps).
    pub fn total_steps(&self) -> u64 {
        (self.state.train.len().div_ceil(self.config.batch_size) * self.config.epochs) as u64
    }

    /// Optimizer steps done.
    pub fn step(&self) -> u64 {
        self.state.step
    }

    /// The held-out pairs.
    pub fn held_out(&self) -> &[PreferencePair] {
        &self.state.eval
    }

    /// The training pairs.
    pub fn training_pairs(&self) -> &[PreferencePair] {
        &self.state.train
    }

    /// One optimizer step on the next batch (the order is reshuffled at each epoch's start).
    pub fn update(&mut self) -> Result<RewardModelLog, LmError> {
        let (cfg, total) = (self.config.clone(), self.total_steps());
        let st = &mut self.state;
        if st.cursor == 0 {
            st.order.shuffle(&mut st.rng);
        }
        let chunk: Vec<usize> =
            st.order[st.cursor..(st.cursor + cfg.batch_size).min(st.order.len())].to_vec();
        let step = st.step;
        let peak = cfg.lora.learning_rate_or(cfg.learning_rate);
        let lr = if step < cfg.warmup_steps {
            peak * (step + 1) as f64 / cfg.warmup_steps as f64
        } else {
            let rest = (total - cfg.warmup_steps).max(1) as f64;
            peak * (1.0 - (step - cfg.warmup_steps) as f64 / rest)
        };
        self.opt.lr = lr;
        let train = &st.train;
        let mut texts: Vec<(String, String)> = chunk
            .iter()
            .map(|&i| (train[i].prompt.clone(), train[i].chosen.clone()))
            .collect();
        texts.extend(
            chunk
                .iter()
                .map(|&i| (train[i].prompt.clone(), train[i].rejected.clone())),
        );
        let r = self.model.rewards(&texts)?;
        let k = chunk.len();
        let d = (r.narrow(0, 0, k)? - r.narrow(0, k, k)?)?;
        let loss = bt_loss(&d)?.mean_all()?;
        let loss_v = f64::from(loss.to_scalar::<f32>()?);
        if !loss_v.is_finite() {
            return Err(LmError::NonFinite(format!(
                "reward-model loss is {loss_v} at step {}",
                step + 1
            )));
        }
        let grads = loss.backward()?;
        let mut by_name: HashMap<String, Tensor> = HashMap::new();
        self.opt.accumulate(&mut by_name, &grads)?;
        if cfg.max_grad_norm > 0.0 {
            clip_grad_norm(&mut by_name, cfg.max_grad_norm)?;
        }
        self.opt.step_named(&by_name)?;
        st.step += 1;
        st.cursor += k;
        if st.cursor >= st.order.len() {
            st.cursor = 0;
            st.epoch += 1;
        }
        let dv = d.detach().to_vec1::<f32>()?;
        Ok(RewardModelLog {
            step: st.step,
            loss: loss_v,
            accuracy: dv.iter().filter(|&&x| x > 0.0).count() as f64 / k as f64,
            margin: dv.iter().map(|&x| f64::from(x)).sum::<f64>() / k as f64,
            learning_rate: lr,
        })
    }

    /// Writes the model, the optimiser and the data order to one checkpoint, atomically.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), LmError> {
        use crate::checkpoint::with_prefix;
        let mut tensors = with_prefix("model", self.model.tensors());
        tensors.extend(with_prefix("opt", self.opt.state_tensors()));
        let mut state = self.state.clone();
        state.opt_step = self.opt.step;
        state.adapter = crate::checkpoint::AdapterRecord::of(&self.model.backbone)?;
        crate::checkpoint::save_state(path, REWARD_MODEL_KIND, &tensors, &state)
    }

    /// Rebuilds a trainer from [`RewardModelTrainer::save_checkpoint`] with the model's
    /// tokenizer.
    pub fn load_checkpoint(path: &Path, tokenizer: Tokenizer) -> Result<Self, LmError> {
        let (raw, st): (_, RewardModelState) =
            crate::checkpoint::load_state(path, REWARD_MODEL_KIND)?;
        let mut parts = crate::checkpoint::split_prefixes(raw);
        let mut model_tensors = parts.remove("model").unwrap_or_default();
        let name = path.display().to_string();
        let missing = |t: &str| LmError::Format(format!("{name}: no tensor model.{t}"));
        let weight = model_tensors
            .remove("score.weight")
            .ok_or_else(|| missing("score.weight"))?;
        let bias = model_tensors
            .remove("score.bias")
            .ok_or_else(|| missing("score.bias"))?;
        let backbone = crate::checkpoint::checkpoint_model(
            st.model_config.clone(),
            model_tensors,
            st.adapter.as_ref(),
            &name,
        )?;
        let model = RewardModel {
            backbone,
            head: ScalarHead {
                weight: Var::from_tensor(&weight)?,
                bias: Var::from_tensor(&bias)?,
            },
            tokenizer,
        };
        let mut opt = AdamW::new(
            model.vars(),
            st.config.lora.learning_rate_or(st.config.learning_rate),
            st.config.weight_decay,
        )?;
        let opt_t = parts.remove("opt").unwrap_or_default();
        crate::checkpoint::restore_adamw(&mut opt, &opt_t, st.opt_step, path)?;
        Ok(Self {
            model,
            config: st.config.clone(),
            opt,
            state: st,
        })
    }
}

impl rein_train::Trainer for RewardModelTrainer {
    fn kind(&self) -> &'static str {
        REWARD_MODEL_KIND
    }
    fn columns(&self) -> &'static [&'static str] {
        &RewardModelLog::COLUMNS
    }
    fn update(&mut self) -> Result<Vec<f64>, rein_train::TrainerError> {
        Ok(RewardModelTrainer::update(self)?.row().to_vec())
    }
    fn updates(&self) -> u64 {
        self.state.step
    }
    fn progress(&self) -> rein_train::Progress {
        rein_train::Progress {
            done: self.state.step,
            total: self.total_steps(),
            unit: "steps",
        }
    }
    fn status(&self, row: &[f64]) -> String {
        format!("loss {:.3} acc {:.2}", row[1], row[2])
    }
    fn save_checkpoint(&self, path: &Path) -> Result<(), rein_train::TrainerError> {
        Ok(RewardModelTrainer::save_checkpoint(self, path)?)
    }
    fn curve(&self) -> rein_train::Curve {
        rein_train::Curve {
            file: "loss_curve.png",
            x: ("step", "step"),
            y: ("loss", "Bradley-Terry loss"),
        }
    }
    /// Accuracy and margin on the held-out pairs.
    fn evaluate(&mut self) -> Result<Option<rein_train::Evaluation>, rein_train::TrainerError> {
        let e = evaluate_preferences(&self.model, &self.state.eval)?;
        let summary = format!(
            "held-out accuracy {:.3}, margin {:.3} ({} pairs)",
            e.accuracy, e.margin, e.pairs
        );
        Ok(Some(rein_train::Evaluation {
            json: serde_json::to_value(e)?,
            summary,
        }))
    }
}

/// One sampled response of `policy` per prompt (up to `max_new_tokens`, seed `seed`) as
/// `(prompt, response)` texts: the samples a reward model is normalised over.
pub fn policy_samples(
    policy: &Model,
    tk: &Tokenizer,
    records: &[crate::rl::reward::PromptRecord],
    max_new_tokens: usize,
    seed: u64,
) -> Result<Vec<(String, String)>, LmError> {
    let ids = records
        .iter()
        .map(|r| tk.encode(&r.prompt))
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = crate::GenerationConfig {
        max_new_tokens,
        do_sample: true,
        eos_token_id: policy.eos_token_id(),
        stop_token_ids: policy.eos_token_ids(),
        seed,
        ..Default::default()
    };
    let g = crate::generate(policy, &ids, &cfg, None, Some(tk))?;
    Ok(records
        .iter()
        .zip(g)
        .map(|(r, x)| (r.prompt.clone(), x.text.unwrap_or_default()))
        .collect())
}

/// Both responses of every pair as `(prompt, response)` texts.
pub fn pair_texts(pairs: &[PreferencePair]) -> Vec<(String, String)> {
    pairs
        .iter()
        .flat_map(|p| {
            [
                (p.prompt.clone(), p.chosen.clone()),
                (p.prompt.clone(), p.rejected.clone()),
            ]
        })
        .collect()
}

/// Trains `rm` on `pairs` (a seeded `eval_fraction` held out) to the end with
/// [`RewardModelTrainer`]; `on_step` sees every step's log and the total. Returns the held-out
/// evaluation and the held-out pairs.
pub fn train_reward_model(
    rm: RewardModel,
    pairs: Vec<PreferencePair>,
    cfg: &RewardModelConfig,
    mut on_step: impl FnMut(&RewardModelLog, u64) -> Result<(), LmError>,
) -> Result<(RewardModel, PreferenceEval, Vec<PreferencePair>), LmError> {
    let mut t = RewardModelTrainer::new(rm, pairs, cfg.clone())?;
    let total = t.total_steps();
    while t.step() < total {
        let log = t.update()?;
        on_step(&log, total)?;
    }
    let eval = evaluate_preferences(&t.model, t.held_out())?;
    let held = t.held_out().to_vec();
    Ok((t.model, eval, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bradley_terry_loss_is_softplus_of_the_negative_margin() {
        let d = Tensor::new(&[-30.0f32, -1.0, 0.0, 2.0, 40.0], &Device::Cpu).unwrap();
        let got = bt_loss(&d).unwrap().to_vec1::<f32>().unwrap();
        for (g, x) in got.iter().zip([-30.0f64, -1.0, 0.0, 2.0, 40.0]) {
            let want = (1.0 + (-x).exp()).ln();
            assert!((f64::from(*g) - want).abs() < 1e-5, "{x}: {g} vs {want}");
        }
    }
}
