//! Batched autoregressive generation with a KV cache.
//!
//! Prompts are left-padded into one batch (attention mask 0 on pads; position ids count real
//! tokens only, so each prompt sees exactly what it would see alone). Each step applies, in
//! Hugging Face's order, the repetition penalty, temperature, top-k and top-p, then picks the
//! argmax (greedy) or samples with the request's own generator, so a request's output does not
//! depend on what else is in the batch. The returned log-probability of each token is
//! `log_softmax(logits / temperature)` of the raw logits (no penalty, top-k or top-p), which is
//! what RLHF trainers compare against the policy's training forward pass. Rows leave the batch
//! (and the cache) as soon as they finish.

use crate::models::common::{ForwardInput, KvCache};
use crate::models::{CausalLm, Model};
use crate::tokenizer::Tokenizer;
use crate::LmError;
use candle_core::{Device, Tensor};
use rand::Rng;
use rein_core::{rng_from_seed, ReinRng};
use serde::{Deserialize, Serialize};

/// How to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// Most tokens to add.
    pub max_new_tokens: usize,
    /// EOS is forbidden until this many tokens were added.
    pub min_new_tokens: usize,
    /// Sample (true) or take the argmax (false).
    pub do_sample: bool,
    /// Softmax temperature (sampling and log-probs).
    pub temperature: f32,
    /// Keep only the k most likely tokens (0: off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1: off).
    pub top_p: f32,
    /// CTRL's repetition penalty (Keskar et al. 2019): logits of tokens already in the
    /// sequence are divided by it when positive, multiplied when negative (1: off).
    pub repetition_penalty: f32,
    /// Stop a sequence at this token (it is kept in the output).
    pub eos_token_id: Option<u32>,
    /// Further tokens that stop a sequence (kept in the output): a chat model's end-of-turn
    /// tokens, the other ids of a list-valued `eos_token_id`.
    pub stop_token_ids: Vec<u32>,
    /// Stop a sequence once its decoded text contains one of these (needs a tokenizer; the
    /// text is cut before the stop string).
    pub stop_strings: Vec<String>,
    /// Base seed: request i uses `seed + i` unless given its own.
    pub seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 32,
            min_new_tokens: 0,
            do_sample: false,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            eos_token_id: None,
            stop_token_ids: Vec::new(),
            stop_strings: Vec::new(),
            seed: 0,
        }
    }
}

impl GenerationConfig {
    /// Checks the values, naming the first bad one.
    pub fn validate(&self) -> Result<(), LmError> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(LmError::Input(format!(
                "temperature must be positive, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(LmError::Input(format!(
                "top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(LmError::Input(format!(
                "repetition_penalty must be positive, got {}",
                self.repetition_penalty
            )));
        }
        if self.min_new_tokens > self.max_new_tokens {
            return Err(LmError::Input(format!(
                "min_new_tokens ({}) exceeds max_new_tokens ({})",
                self.min_new_tokens, self.max_new_tokens
            )));
        }
        Ok(())
    }
}

/// One request's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generated {
    /// The prompt's token ids.
    pub prompt_ids: Vec<u32>,
    /// The new token ids (including a final EOS).
    pub ids: Vec<u32>,
    /// `log_softmax(logits / temperature)` of each new token.
    pub logprobs: Vec<f32>,
    /// Whether it stopped at EOS (or a stop string) rather than the length limit.
    pub finished: bool,
    /// Decoded new text (with a tokenizer; cut before a stop string).
    pub text: Option<String>,
}

/// Left-pads `seqs` with `pad` into one batch: ids, positions (0 on pads, then 0, 1, ...) and
/// the mask rows.
pub fn left_pad(seqs: &[Vec<u32>], pad: u32) -> (Vec<u32>, Vec<u32>, Vec<Vec<u8>>, usize) {
    let len = seqs.iter().map(Vec::len).max().unwrap_or(0);
    let (mut ids, mut pos, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    for s in seqs {
        let p = len - s.len();
        ids.extend(std::iter::repeat_n(pad, p).chain(s.iter().copied()));
        pos.extend(std::iter::repeat_n(0, p).chain(0..s.len() as u32));
        mask.push(
            std::iter::repeat_n(0u8, p)
                .chain(std::iter::repeat_n(1u8, s.len()))
                .collect(),
        );
    }
    (ids, pos, mask, len)
}

/// `log_softmax(x)` of one row.
pub fn log_softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = m + x.iter().map(|&v| (v - m).exp()).sum::<f32>().ln();
    x.iter().map(|&v| v - lse).collect()
}

/// Picks the next token of one row from its raw logits; returns (token, log-prob).
fn pick(
    raw: &[f32],
    history: &[u32],
    n_new: usize,
    cfg: &GenerationConfig,
    rng: &mut ReinRng,
) -> (u32, f32) {
    let mut x = raw.to_vec();
    // Whether x is still the raw row (then the sampler's normaliser gives the log-prob).
    let raw_row = cfg.repetition_penalty == 1.0
        && !(cfg.eos_token_id.is_some() && n_new < cfg.min_new_tokens);
    if cfg.repetition_penalty != 1.0 {
        let mut seen = std::collections::HashSet::new();
        for &t in history {
            if seen.insert(t) {
                let v = &mut x[t as usize];
                *v = if *v > 0.0 {
                    *v / cfg.repetition_penalty
                } else {
                    *v * cfg.repetition_penalty
                };
            }
        }
    }
    if let Some(eos) = cfg.eos_token_id {
        if n_new < cfg.min_new_tokens {
            x[eos as usize] = f32::NEG_INFINITY;
        }
    }
    let token = if !cfg.do_sample {
        let best = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        x.iter().position(|&v| v == best).unwrap_or(0)
    } else {
        for v in x.iter_mut() {
            *v /= cfg.temperature;
        }
        if cfg.top_k == 0 && cfg.top_p >= 1.0 {
            let (token, m, total) = sample_full(&x, rng);
            if raw_row {
                // x = raw / temperature element by element: the same operations, in the same
                // order, as token_logprob's.
                return (token as u32, x[token] - m - total.ln());
            }
            token
        } else {
            sample_truncated(&x, cfg, rng)
        }
    };
    (token as u32, token_logprob(raw, token, cfg.temperature))
}

/// `log_softmax(raw / temperature)[token]` without materialising the whole row.
fn token_logprob(raw: &[f32], token: usize, temperature: f32) -> f32 {
    let m = raw
        .iter()
        .fold(f32::NEG_INFINITY, |a, &v| a.max(v / temperature));
    let sum: f32 = raw.iter().map(|&v| (v / temperature - m).exp()).sum();
    raw[token] / temperature - m - sum.ln()
}

/// Draws from `softmax(x)` over the whole vocabulary: one pass for the maximum, one for the
/// weights, one to find the token (no sort: a sort of the vocabulary per token was most of
/// the sampling time). Returns the token, `max(x)` and `sum exp(x - max)`, so that the
/// token's log-probability costs no second pass of exponentials.
fn sample_full(x: &[f32], rng: &mut ReinRng) -> (usize, f32, f32) {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let probs: Vec<f32> = x.iter().map(|&v| (v - m).exp()).collect();
    let total: f32 = probs.iter().sum();
    let u = rng.random::<f32>() * total;
    let mut acc = 0.0;
    let mut last = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            last = i;
        }
        acc += p;
        if u < acc {
            return (i, m, total);
        }
    }
    (last, m, total)
}

/// Top-k and/or top-p sampling: the candidates sorted by logit (ties by id), the first `k`
/// kept, then the smallest prefix whose probability reaches `top_p`.
fn sample_truncated(x: &[f32], cfg: &GenerationConfig, rng: &mut ReinRng) -> usize {
    let by_logit = |&a: &usize, &b: &usize| x[b].total_cmp(&x[a]).then(a.cmp(&b));
    let mut order: Vec<usize> = (0..x.len()).collect();
    if cfg.top_k > 0 && cfg.top_k < order.len() {
        order.select_nth_unstable_by(cfg.top_k - 1, by_logit);
        order.truncate(cfg.top_k);
    }
    order.sort_by(by_logit);
    let mut keep = order.len();
    let m = x[order[0]];
    let probs: Vec<f32> = order.iter().map(|&i| (x[i] - m).exp()).collect();
    let total: f32 = probs.iter().sum();
    if cfg.top_p < 1.0 {
        // Smallest prefix whose probability reaches top_p (at least one token).
        let mut cum = 0.0;
        for (n, p) in probs.iter().enumerate() {
            cum += p / total;
            if cum >= cfg.top_p {
                keep = n + 1;
                break;
            }
        }
    }
    let total: f32 = probs[..keep].iter().sum();
    let u = rng.random::<f32>() * total;
    let mut acc = 0.0;
    for (n, p) in probs[..keep].iter().enumerate() {
        acc += p;
        if u < acc {
            return order[n];
        }
    }
    order[keep - 1]
}

/// Groups equal keys: the index of each distinct key's first row, in order of appearance, and
/// for every row the number of its group. Repeated prompts (GRPO's groups) then run one pass
/// each, in generation and in training.
pub(crate) fn group_repeats<K: std::hash::Hash + Eq>(
    keys: impl IntoIterator<Item = K>,
) -> (Vec<usize>, Vec<u32>) {
    let mut slot_of = std::collections::HashMap::new();
    let mut first_rows = Vec::new();
    let slots = keys
        .into_iter()
        .enumerate()
        .map(|(i, key)| {
            *slot_of.entry(key).or_insert_with(|| {
                first_rows.push(i);
                first_rows.len() as u32 - 1
            })
        })
        .collect();
    (first_rows, slots)
}

/// Generates continuations of `prompts` (token ids, each non-empty) as one batch.
/// `seeds` gives each request its own seed (default `cfg.seed + i`); `tokenizer` decodes text
/// and enables stop strings. Padding uses id 0 under a zero attention mask, so its value never
/// matters.
pub fn generate(
    model: &Model,
    prompts: &[Vec<u32>],
    cfg: &GenerationConfig,
    seeds: Option<&[u64]>,
    tokenizer: Option<&Tokenizer>,
) -> Result<Vec<Generated>, LmError> {
    generate_streaming(model, prompts, cfg, seeds, tokenizer, None)
}

/// [`generate`], calling `on_token(request, token)` as each token is chosen (streaming output).
pub fn generate_streaming(
    model: &Model,
    prompts: &[Vec<u32>],
    cfg: &GenerationConfig,
    seeds: Option<&[u64]>,
    tokenizer: Option<&Tokenizer>,
    mut on_token: Option<&mut dyn FnMut(usize, u32)>,
) -> Result<Vec<Generated>, LmError> {
    cfg.validate()?;
    let n_pos = model.max_positions();
    let vocab = model.vocab_size();
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(LmError::Input(format!("prompt {i} has no tokens")));
        }
        if let Some(&bad) = p.iter().find(|&&t| t as usize >= vocab) {
            return Err(LmError::Input(format!(
                "prompt {i}: token id {bad} is outside the vocabulary (size {vocab})"
            )));
        }
        if p.len() + cfg.max_new_tokens > n_pos {
            return Err(LmError::Input(format!(
                "prompt {i} has {} tokens; with max_new_tokens = {} it exceeds the model's n_positions = {n_pos}",
                p.len(),
                cfg.max_new_tokens
            )));
        }
    }
    if !cfg.stop_strings.is_empty() && tokenizer.is_none() {
        return Err(LmError::Input(
            "stop strings need a tokenizer (tokenizer.json in the model directory)".into(),
        ));
    }
    let mut out: Vec<Generated> = prompts
        .iter()
        .map(|p| Generated {
            prompt_ids: p.clone(),
            ids: Vec::new(),
            logprobs: Vec::new(),
            finished: false,
            text: None,
        })
        .collect();
    let mut rngs: Vec<ReinRng> = (0..prompts.len())
        .map(|i| rng_from_seed(seeds.map_or(cfg.seed.wrapping_add(i as u64), |s| s[i])))
        .collect();
    if prompts.is_empty() || cfg.max_new_tokens == 0 {
        return finish_text(out, tokenizer, &cfg.stop_strings);
    }
    let dev = Device::Cpu;
    // Identical prompts (GRPO's groups) share one prefill: each distinct prompt runs once and
    // its cached keys and values and last logits are copied to the rows that repeat it.
    let (first_rows, row_slot) = group_repeats(prompts.iter().map(Vec::as_slice));
    let distinct: Vec<Vec<u32>> = first_rows.iter().map(|&i| prompts[i].clone()).collect();
    let (ids, pos, distinct_mask, len) = left_pad(&distinct, 0);
    let mut mask: Vec<Vec<u8>> = row_slot
        .iter()
        .map(|&s| distinct_mask[s as usize].clone())
        .collect();
    let expand = (distinct.len() < prompts.len())
        .then(|| Tensor::from_vec(row_slot, prompts.len(), &dev))
        .transpose()?;
    let b = prompts.len();
    let mut active: Vec<usize> = (0..b).collect();
    let mut next_pos: Vec<u32> = prompts.iter().map(|p| p.len() as u32).collect();
    let mut cache = KvCache::default();
    let mut input_ids = Tensor::from_vec(ids, (distinct.len(), len), &dev)?;
    let mut input_pos = Tensor::from_vec(pos, (distinct.len(), len), &dev)?;
    for step in 0..cfg.max_new_tokens {
        let h = model.hidden(
            &ForwardInput {
                ids: &input_ids,
                positions: &input_pos,
                mask: Some(if step == 0 { &distinct_mask } else { &mask }),
            },
            Some(&mut cache),
            None,
        )?;
        let t = h.dims()[1];
        let mut logits = model.lm_head(&h.narrow(1, t - 1, 1)?.contiguous()?)?;
        if let (0, Some(rows)) = (step, &expand) {
            cache.select_rows(rows)?;
            logits = logits.index_select(rows, 0)?;
        }
        let rows: Vec<Vec<f32>> = logits.squeeze(1)?.to_vec2()?;
        let mut keep = Vec::new();
        let mut next_tokens = Vec::new();
        for (r, &req) in active.iter().enumerate() {
            let g = &mut out[req];
            let history: Vec<u32> = if cfg.repetition_penalty != 1.0 {
                g.prompt_ids.iter().chain(&g.ids).copied().collect()
            } else {
                Vec::new()
            };
            let (tok, lp) = pick(&rows[r], &history, step, cfg, &mut rngs[req]);
            g.ids.push(tok);
            g.logprobs.push(lp);
            if let Some(f) = on_token.as_mut() {
                f(req, tok);
            }
            let mut done = cfg.eos_token_id == Some(tok) || cfg.stop_token_ids.contains(&tok);
            if !done && !cfg.stop_strings.is_empty() {
                if let Some(tk) = tokenizer {
                    let text = tk.decode(&g.ids, false)?;
                    done = cfg.stop_strings.iter().any(|s| text.contains(s.as_str()));
                }
            }
            if done {
                g.finished = true;
            } else {
                keep.push(r);
                next_tokens.push(tok);
            }
        }
        if keep.is_empty() || step + 1 == cfg.max_new_tokens {
            break;
        }
        if keep.len() < active.len() {
            let idx = Tensor::from_vec(
                keep.iter().map(|&r| r as u32).collect::<Vec<u32>>(),
                keep.len(),
                &dev,
            )?;
            cache.select_rows(&idx)?;
            mask = keep.iter().map(|&r| mask[r].clone()).collect();
            active = keep.iter().map(|&r| active[r]).collect();
        }
        for m in mask.iter_mut() {
            m.push(1);
        }
        let positions: Vec<u32> = active
            .iter()
            .map(|&req| {
                let p = next_pos[req];
                next_pos[req] += 1;
                p
            })
            .collect();
        let n = active.len();
        input_ids = Tensor::from_vec(next_tokens, (n, 1), &dev)?;
        input_pos = Tensor::from_vec(positions, (n, 1), &dev)?;
    }
    finish_text(out, tokenizer, &cfg.stop_strings)
}

fn finish_text(
    mut out: Vec<Generated>,
    tokenizer: Option<&Tokenizer>,
    stops: &[String],
) -> Result<Vec<Generated>, LmError> {
    if let Some(tk) = tokenizer {
        for g in out.iter_mut() {
            g.text = Some(cut_at_stop(&tk.decode(&g.ids, true)?, stops));
        }
    }
    Ok(out)
}

/// Cuts `text` before the first occurrence of any stop string.
pub fn cut_at_stop(text: &str, stops: &[String]) -> String {
    let cut = stops
        .iter()
        .filter_map(|s| text.find(s.as_str()))
        .min()
        .unwrap_or(text.len());
    text[..cut].to_string()
}

/// The logits of each of `seqs` at its own positions, from one left-padded batch (`[len][vocab]`
/// per sequence): `rein lm logits`, for cross-checking checkpoints against transformers.
/// Empty sequences, ids outside the vocabulary and sequences longer than the context are
/// errors naming the sequence.
pub fn sequence_logits(model: &Model, seqs: &[Vec<u32>]) -> Result<Vec<Vec<Vec<f32>>>, LmError> {
    let vocab = model.vocab_size();
    for (i, s) in seqs.iter().enumerate() {
        let bad = |m: String| Err(LmError::Input(format!("--ids sequence {i}{m}")));
        if s.is_empty() {
            return bad(" is empty".into());
        }
        if let Some(t) = s.iter().find(|&&t| t as usize >= vocab) {
            return bad(format!(
                ": token id {t} is outside the vocabulary (size {vocab})"
            ));
        }
        if s.len() > model.max_positions() {
            return bad(format!(
                " has {} tokens; the model's n_positions is {}",
                s.len(),
                model.max_positions()
            ));
        }
    }
    let (flat, pos, mask, len) = left_pad(seqs, 0);
    let b = seqs.len();
    let dev = candle_core::Device::Cpu;
    let logits = model.logits(&crate::ForwardInput {
        ids: &Tensor::from_vec(flat, (b, len), &dev)?,
        positions: &Tensor::from_vec(pos, (b, len), &dev)?,
        mask: Some(&mask),
    })?;
    let all: Vec<Vec<Vec<f32>>> = logits.to_vec3()?;
    Ok(seqs
        .iter()
        .zip(all)
        .map(|(s, rows)| rows[len - s.len()..].to_vec())
        .collect())
}

/// A generation request's prompt: plain text, or chat messages for the model's chat template.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptText {
    /// Text, tokenized as it is.
    Plain(String),
    /// Messages, rendered with the chat template and `add_generation_prompt`.
    Chat(Vec<crate::chat::Message>),
}

/// Generation requests of a JSONL file: `{"prompt": "..."}` or `{"prompt": [{"role",
/// "content"}, ...]}` (TRL's conversational form), with an optional `"seed"` (else `base_seed` +
/// the request's index); errors name the file and line.
pub fn read_requests(
    path: &std::path::Path,
    base_seed: u64,
) -> Result<Vec<(PromptText, u64)>, LmError> {
    let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|_| LmError::Format(format!("{}: not JSON", at())))?;
        let prompt = match &v["prompt"] {
            serde_json::Value::String(s) => PromptText::Plain(s.clone()),
            list @ serde_json::Value::Array(_) => PromptText::Chat(
                crate::chat::parse_conversation(list, true)
                    .map_err(|e| LmError::Format(format!("{}: \"prompt\": {e}", at())))?,
            ),
            _ => {
                return Err(LmError::Format(format!(
                    "{}: expected {{\"prompt\": \"...\"}} or {{\"prompt\": [{{\"role\": ..., \"content\": ...}}]}}",
                    at()
                )))
            }
        };
        let seed = v["seed"]
            .as_u64()
            .unwrap_or(base_seed + records.len() as u64);
        records.push((prompt, seed));
    }
    Ok(records)
}
