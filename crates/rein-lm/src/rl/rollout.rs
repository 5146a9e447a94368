//! What every RL trainer for language models shares: the prompt loader (a seeded order,
//! reshuffled each epoch, with a cursor that checkpoints save) and one rollout (sample
//! responses, decode them, score them with the [`Reward`]). GRPO, RLOO, REINFORCE and PPO all
//! call these, so sampling, scoring and the samples log are one copy.

use crate::generate::{generate, GenerationConfig};
use crate::models::{CausalLm, Model};
use crate::rl::reward::{PromptRecord, Reward, Sample};
use crate::tokenizer::Tokenizer;
use crate::LmError;
use rand::seq::SliceRandom;
use rand::Rng;
use rein_core::ReinRng;
use serde::{Deserialize, Serialize};

/// Prompts, their token ids and the position in a seeded, per-epoch shuffled order.
#[derive(Debug, Clone)]
pub struct PromptLoader {
    /// The prompt records.
    pub prompts: Vec<PromptRecord>,
    /// Token ids of each prompt.
    pub ids: Vec<Vec<u32>>,
    order: Vec<usize>,
    cursor: usize,
    epoch: u64,
    /// Tokens that end a reply besides the model's EOS: the end-of-turn tokens of the
    /// vocabulary when the prompts are conversations.
    pub end_of_turn_ids: Vec<u32>,
}

/// The loader's resumable position (saved in trainer checkpoints).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoaderState {
    prompts: Vec<PromptRecord>,
    order: Vec<usize>,
    cursor: usize,
    epoch: u64,
    #[serde(default)]
    end_of_turn_ids: Vec<u32>,
}

/// The end-of-turn tokens of `tk` ([`crate::pretrained::END_OF_TURN_TOKENS`]) when any record
/// is a conversation, else none.
fn end_of_turn_ids(prompts: &[PromptRecord], tk: &Tokenizer) -> Vec<u32> {
    if !crate::rl::reward::any_conversation(prompts) {
        return Vec::new();
    }
    crate::pretrained::end_of_turn_token_ids(tk)
}

impl PromptLoader {
    /// Tokenises `prompts` and shuffles their order with `rng`. Fails when a prompt is empty
    /// or when the longest prompt plus `max_new_tokens` exceeds `n_positions`.
    pub fn new(
        prompts: Vec<PromptRecord>,
        tk: &Tokenizer,
        max_new_tokens: usize,
        n_positions: usize,
        rng: &mut ReinRng,
    ) -> Result<Self, LmError> {
        if prompts.is_empty() {
            return Err(LmError::Input("no prompts to train on".into()));
        }
        let ids = tokenize_prompts(tk, &prompts)?;
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
        if longest + max_new_tokens > n_positions {
            return Err(LmError::Input(format!(
                "the longest prompt has {longest} tokens; with max_new_tokens = {max_new_tokens} it exceeds n_positions = {n_positions}"
            )));
        }
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.shuffle(rng);
        Ok(Self {
            end_of_turn_ids: end_of_turn_ids(&prompts, tk),
            prompts,
            ids,
            order,
            cursor: 0,
            epoch: 0,
        })
    }

    /// The next `n` prompt indices; at the end of an epoch the order is reshuffled with `rng`.
    pub fn next(&mut self, n: usize, rng: &mut ReinRng) -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.cursor == self.order.len() {
                self.order.shuffle(rng);
                self.cursor = 0;
                self.epoch += 1;
            }
            out.push(self.order[self.cursor]);
            self.cursor += 1;
        }
        out
    }

    /// Completed passes over the prompts.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The state a checkpoint saves.
    pub fn state(&self) -> LoaderState {
        LoaderState {
            prompts: self.prompts.clone(),
            order: self.order.clone(),
            cursor: self.cursor,
            epoch: self.epoch,
            end_of_turn_ids: self.end_of_turn_ids.clone(),
        }
    }

    /// Rebuilds a loader from [`PromptLoader::state`]; `tk` re-tokenises the prompts.
    pub fn from_state(s: LoaderState, tk: &Tokenizer) -> Result<Self, LmError> {
        if s.order.len() != s.prompts.len()
            || s.cursor > s.order.len()
            || s.order.iter().any(|&i| i >= s.prompts.len())
        {
            return Err(LmError::Format(format!(
                "loader state: order of {} entries, cursor {} for {} prompts",
                s.order.len(),
                s.cursor,
                s.prompts.len()
            )));
        }
        Ok(Self {
            ids: tokenize_prompts(tk, &s.prompts)?,
            prompts: s.prompts,
            order: s.order,
            cursor: s.cursor,
            epoch: s.epoch,
            end_of_turn_ids: s.end_of_turn_ids,
        })
    }
}

fn tokenize_prompts(tk: &Tokenizer, prompts: &[PromptRecord]) -> Result<Vec<Vec<u32>>, LmError> {
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if p.messages.is_some() && p.prompt.is_empty() {
                return Err(LmError::Input(format!(
                    "prompt {} is a conversation not rendered with a chat template (rl::reward::render_conversations)",
                    i + 1
                )));
            }
            let ids = tk.encode(&p.prompt)?;
            if ids.is_empty() {
                return Err(LmError::Input(format!("prompt {} is empty", i + 1)));
            }
            Ok(ids)
        })
        .collect()
}

/// Where one RL step's time went, in seconds (the benchmark's breakdown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StepTimes {
    /// Sampling the responses (with decoding and scoring them).
    pub generation: f64,
    /// Log-probabilities of the responses under the frozen reference (0 without a KL term).
    pub reference_logprobs: f64,
    /// The policy's forward pass over the responses and the loss (every pass).
    pub logprobs: f64,
    /// The backward pass (every pass).
    pub backward: f64,
    /// Gradient clipping and the optimizer step (every pass).
    pub optimizer: f64,
}

/// One generation (prompt, response, score) as the samples JSONL records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredSample {
    /// Prompt text.
    pub prompt: String,
    /// Response text.
    pub response: String,
    /// The reward's score.
    pub reward: f64,
}

/// How a trainer samples its rollouts (each trainer fills it from its own config).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingSpec {
    /// Responses per prompt.
    pub per_prompt: usize,
    /// Response length limit in tokens.
    pub max_new_tokens: usize,
    /// Sampling temperature.
    pub temperature: f64,
    /// Top-k (0: off).
    pub top_k: usize,
    /// Strings that end a response besides EOS.
    pub stop_strings: Vec<String>,
}

/// Sampled responses of one step and their scores; row `k` answers prompt `picked[k]`.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Prompt index (into the loader) of each row.
    pub picked: Vec<usize>,
    /// Prompt token ids of each row.
    pub prompt_ids: Vec<Vec<u32>>,
    /// Response token ids of each row (a final EOS included).
    pub responses: Vec<Vec<u32>>,
    /// Decoded responses (cut before a stop string).
    pub texts: Vec<String>,
    /// Whether each response ended with EOS or a stop string (not the length limit).
    pub finished: Vec<bool>,
    /// The reward's scores.
    pub scores: Vec<f64>,
}

impl Rollout {
    /// The opening of every RL step: the loader's next `n_prompts` prompts, `spec.per_prompt`
    /// scored samples of each ([`Rollout::sample`]), and the batch of their responses.
    ///
    /// Under MPI with `N` ranks, every rank draws the next `N * n_prompts` prompts and one
    /// seed per row of all of them, exactly as one process with `N * n_prompts` prompts per
    /// step would, and samples its own `n_prompts` of them (rank `r` the `r`-th share): the
    /// loader and generator stay equal on every rank, each group stays on one rank, and the
    /// rows are those of the single-process run.
    #[allow(clippy::too_many_arguments)]
    pub fn next_batch(
        policy: &Model,
        loader: &mut PromptLoader,
        n_prompts: usize,
        spec: &SamplingSpec,
        rng: &mut ReinRng,
        tk: &Tokenizer,
        reward: &mut dyn Reward,
    ) -> Result<(Self, crate::rl::batch::ResponseBatch), LmError> {
        let world = rein_core::collective::world();
        let picked = loader.next(n_prompts * world.size(), rng);
        let share = (world.rank(), world.size());
        let ro = Self::sample_share(policy, loader, &picked, share, spec, rng, tk, reward)?;
        let batch = crate::rl::batch::ResponseBatch::new(
            &ro.prompt_ids,
            &ro.responses,
            policy.max_positions(),
        )?;
        Ok((ro, batch))
    }

    /// Samples `spec.per_prompt` responses to each of `prompts` (loader indices) from
    /// `policy` (EOS from its config), one seed per row drawn from `rng`, and scores them with
    /// `reward`. A reward that returns the wrong number of scores or a non-finite score is an
    /// error naming the reward.
    pub fn sample(
        policy: &Model,
        loader: &PromptLoader,
        prompts: &[usize],
        spec: &SamplingSpec,
        rng: &mut ReinRng,
        tk: &Tokenizer,
        reward: &mut dyn Reward,
    ) -> Result<Self, LmError> {
        Self::sample_share(policy, loader, prompts, (0, 1), spec, rng, tk, reward)
    }

    /// [`Rollout::sample`] of share `rank` of `ranks` equal shares of `prompts`: the seeds of
    /// every row are drawn from `rng`, the rows of the other shares are left to their ranks.
    #[allow(clippy::too_many_arguments)]
    fn sample_share(
        policy: &Model,
        loader: &PromptLoader,
        prompts: &[usize],
        (rank, ranks): (usize, usize),
        spec: &SamplingSpec,
        rng: &mut ReinRng,
        tk: &Tokenizer,
        reward: &mut dyn Reward,
    ) -> Result<Self, LmError> {
        let per_prompt = spec.per_prompt;
        let gcfg = GenerationConfig {
            max_new_tokens: spec.max_new_tokens,
            do_sample: true,
            temperature: spec.temperature as f32,
            top_k: spec.top_k,
            eos_token_id: policy.eos_token_id(),
            stop_token_ids: policy
                .eos_token_ids()
                .into_iter()
                .chain(loader.end_of_turn_ids.iter().copied())
                .collect(),
            stop_strings: spec.stop_strings.clone(),
            ..Default::default()
        };
        let rows = prompts.len() * per_prompt;
        let all_seeds: Vec<u64> = (0..rows).map(|_| rng.random()).collect();
        let (share, mine) = (rows / ranks, prompts.len() / ranks);
        let seeds = all_seeds[rank * share..(rank + 1) * share].to_vec();
        let picked: Vec<usize> = prompts[rank * mine..(rank + 1) * mine]
            .iter()
            .flat_map(|&i| std::iter::repeat_n(i, per_prompt))
            .collect();
        let prompt_ids: Vec<Vec<u32>> = picked.iter().map(|&i| loader.ids[i].clone()).collect();
        let gens = generate(policy, &prompt_ids, &gcfg, Some(&seeds), Some(tk))?;
        let texts: Vec<String> = gens
            .iter()
            .map(|x| x.text.clone().unwrap_or_default())
            .collect();
        let samples: Vec<Sample> = texts
            .iter()
            .zip(&picked)
            .map(|(t, &i)| loader.prompts[i].sample(t))
            .collect();
        let scores = reward.score(&samples)?;
        if scores.len() != samples.len() {
            return Err(LmError::Input(format!(
                "reward {} returned {} scores for {} samples",
                reward.name(),
                scores.len(),
                samples.len()
            )));
        }
        if let Some(bad) = scores.iter().find(|s| !s.is_finite()) {
            return Err(LmError::Input(format!(
                "reward {} returned a non-finite score ({bad})",
                reward.name()
            )));
        }
        Ok(Self {
            finished: gens.iter().map(|g| g.finished).collect(),
            responses: gens.into_iter().map(|g| g.ids).collect(),
            picked,
            prompt_ids,
            texts,
            scores,
        })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.picked.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.picked.is_empty()
    }

    /// Mean response length in tokens.
    pub fn mean_length(&self) -> f64 {
        self.responses.iter().map(|r| r.len() as f64).sum::<f64>() / self.len().max(1) as f64
    }

    /// Fraction of responses that ended with EOS or a stop string.
    pub fn eos_fraction(&self) -> f64 {
        self.finished.iter().filter(|&&f| f).count() as f64 / self.len().max(1) as f64
    }

    /// Mean score, mean response length and EOS fraction over the rows of every MPI rank
    /// (one allreduce; collective), for the metrics row.
    pub fn means_over_ranks(&self) -> (f64, f64, f64) {
        let sums = rein_core::collective::sum_f64(&[
            self.scores.iter().sum::<f64>(),
            self.responses.iter().map(|r| r.len() as f64).sum::<f64>(),
            self.finished.iter().filter(|&&f| f).count() as f64,
            self.len() as f64,
        ]);
        let n = sums[3].max(1.0);
        (sums[0] / n, sums[1] / n, sums[2] / n)
    }

    /// Mean score.
    pub fn mean_score(&self) -> f64 {
        self.scores.iter().sum::<f64>() / self.len().max(1) as f64
    }

    /// The rows as (prompt, response, score) records for the samples log.
    pub fn scored_samples(&self, loader: &PromptLoader) -> Vec<ScoredSample> {
        self.picked
            .iter()
            .zip(&self.texts)
            .zip(&self.scores)
            .map(|((&i, t), &r)| ScoredSample {
                prompt: loader.prompts[i].prompt.clone(),
                response: t.clone(),
                reward: r,
            })
            .collect()
    }
}

/// The checkpoint state of an RL trainer for language models besides its tensors: settings,
/// the policy's architecture, counters, the prompt order and position, the generator, and
/// `algo`, what only that method keeps (PPO's KL controller and score moments).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RlState<C, A> {
    /// The trainer's settings.
    pub config: C,
    /// The policy's (and reference's) architecture.
    pub model_config: crate::models::ModelConfig,
    /// Optimizer steps done.
    pub step: u64,
    /// AdamW's step counter.
    pub opt_step: u64,
    /// The prompt loader.
    pub loader: LoaderState,
    /// The sampling generator.
    #[serde(with = "rein_core::rng::as_string")]
    pub rng: ReinRng,
    /// The method's own state.
    pub algo: A,
    /// With a LoRA adapter: its configuration and base model (the policy tensors are then the
    /// adapter's, and the reference is the base with the adapter off).
    #[serde(default)]
    pub adapter: Option<crate::checkpoint::AdapterRecord>,
}
