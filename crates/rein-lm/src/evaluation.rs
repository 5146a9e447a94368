//! Evaluating a trained language model: the task metric of greedy responses with the KL to the
//! reference and the reference's perplexity of them (`rein lm eval`), and the greedy answers to
//! held-out arithmetic problems (`rein lm demo`, `rein lm quickstart`).

use crate::generate::{generate, GenerationConfig};
use crate::models::{CausalLm, Model};
use crate::rl::batch::ResponseBatch;
use crate::rl::kl::KlEstimator;
use crate::rl::reward::{PromptRecord, Reward, Sample};
use crate::{LmError, Tokenizer};

/// What [`evaluate_task`] measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskEvaluation {
    /// Prompts evaluated.
    pub prompts: usize,
    /// The reward's name.
    pub reward_name: String,
    /// Mean reward of the greedy responses (the task metric).
    pub reward: f64,
    /// KL to the reference ([`kl_to_reference`]).
    pub kl: f64,
    /// Perplexity of the greedy responses under the reference model.
    pub reference_perplexity: f64,
    /// Mean response length in tokens.
    pub response_length: f64,
}

/// How an evaluation decodes: the length limit, stop strings, and stop tokens besides the
/// model's EOS (a conversation's end-of-turn tokens).
#[derive(Debug, Clone, Default)]
pub struct EvalDecoding {
    /// Most new tokens.
    pub max_new_tokens: usize,
    /// A reply ends at the first of these.
    pub stop_strings: Vec<String>,
    /// Tokens that end a reply besides the model's EOS ids.
    pub stop_token_ids: Vec<u32>,
}

impl EvalDecoding {
    /// Greedy (or, with `sample`, temperature-1 sampling from `seed`) settings for `model`.
    fn config(&self, model: &Model, sample: bool, seed: u64) -> GenerationConfig {
        let mut stops = model.eos_token_ids();
        stops.extend(&self.stop_token_ids);
        GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            do_sample: sample,
            eos_token_id: stops.first().copied(),
            stop_token_ids: stops,
            stop_strings: self.stop_strings.clone(),
            seed,
            ..Default::default()
        }
    }
}

/// Greedy replies of `policy` to `records` (rendered prompts) with their scores under
/// `reward`, in order.
pub fn greedy_scored(
    policy: &Model,
    tk: &Tokenizer,
    records: &[PromptRecord],
    reward: &mut dyn Reward,
    decoding: &EvalDecoding,
) -> Result<Vec<(String, f64)>, LmError> {
    let cfg = decoding.config(policy, false, 0);
    let mut out = Vec::with_capacity(records.len());
    for chunk in records.chunks(32) {
        let ids = chunk
            .iter()
            .map(|r| tk.encode(&r.prompt))
            .collect::<Result<Vec<_>, _>>()?;
        let g = generate(policy, &ids, &cfg, None, Some(tk))?;
        let texts: Vec<String> = g.into_iter().map(|x| x.text.unwrap_or_default()).collect();
        let samples: Vec<Sample> = chunk.iter().zip(&texts).map(|(r, t)| r.sample(t)).collect();
        let scores = reward.score(&samples)?;
        out.extend(texts.into_iter().zip(scores));
    }
    Ok(out)
}

/// Mean over `prompts` of the summed per-token k3 estimate `exp(r_t) - r_t - 1`, `r_t = log
/// pi_ref(y_t) - log pi(y_t)` (Schulman, "Approximating KL divergence", 2020: unbiased for
/// KL(pi || pi_ref) and never negative, unlike k1's `-r_t`, whose one-sample estimates printed
/// negative KLs) of one response sampled from `policy` at temperature 1 (seed 12345), decoded
/// as `decoding` says: the KL to the reference that `rein lm eval` and `rein lm demo` report.
pub fn kl_to_reference(
    policy: &Model,
    reference: &Model,
    tk: &Tokenizer,
    prompts: &[String],
    decoding: &EvalDecoding,
) -> Result<f64, LmError> {
    let cfg = decoding.config(policy, true, 12_345);
    let mut total = 0.0;
    for chunk in prompts.chunks(32) {
        let ids = chunk
            .iter()
            .map(|p| tk.encode(p))
            .collect::<Result<Vec<_>, _>>()?;
        let s = generate(policy, &ids, &cfg, None, Some(tk))?;
        let responses: Vec<Vec<u32>> = s.into_iter().map(|x| x.ids).collect();
        let b = ResponseBatch::new(&ids, &responses, policy.max_positions())?;
        let (lp, _) = b.logprobs(policy, 1.0, None, false)?;
        let (lr, _) = b.logprobs(reference, 1.0, None, false)?;
        total += crate::rl::grpo::sequence_kl(&lp, &lr, &b.token_mask, KlEstimator::K3)?
            * chunk.len() as f64;
    }
    Ok(total / prompts.len().max(1) as f64)
}

/// For each of `records`: one greedy response (decoded as `decoding` says) scored by
/// `reward`, its perplexity under `reference`, and the KL of one sampled response.
pub fn evaluate_task(
    policy: &Model,
    reference: &Model,
    tk: &Tokenizer,
    records: &[PromptRecord],
    reward: &mut dyn Reward,
    decoding: &EvalDecoding,
) -> Result<TaskEvaluation, LmError> {
    let greedy = decoding.config(policy, false, 0);
    let (mut score_sum, mut nll_sum, mut tokens, mut len_sum) = (0.0, 0.0, 0usize, 0usize);
    let n_pos = policy.max_positions();
    for chunk in records.chunks(32) {
        let ids = chunk
            .iter()
            .map(|r| tk.encode(&r.prompt))
            .collect::<Result<Vec<_>, _>>()?;
        let g = generate(policy, &ids, &greedy, None, Some(tk))?;
        let texts: Vec<String> = g
            .iter()
            .map(|x| x.text.clone().unwrap_or_default())
            .collect();
        let samples: Vec<Sample> = chunk.iter().zip(&texts).map(|(r, t)| r.sample(t)).collect();
        score_sum += reward.score(&samples)?.iter().sum::<f64>();
        let responses: Vec<Vec<u32>> = g.iter().map(|x| x.ids.clone()).collect();
        len_sum += responses.iter().map(Vec::len).sum::<usize>();
        if responses.iter().any(|r| !r.is_empty()) {
            let b = ResponseBatch::new(&ids, &responses, n_pos)?;
            let (lr, _) = b.logprobs(reference, 1.0, None, false)?;
            let lr = lr.flatten_all()?.to_vec1::<f32>()?;
            for (x, m) in lr.iter().zip(&b.token_mask) {
                if *m > 0.0 {
                    nll_sum -= f64::from(*x);
                    tokens += 1;
                }
            }
        }
    }
    let prompts: Vec<String> = records.iter().map(|r| r.prompt.clone()).collect();
    let kl = kl_to_reference(policy, reference, tk, &prompts, decoding)?;
    let n = records.len() as f64;
    Ok(TaskEvaluation {
        prompts: records.len(),
        reward_name: reward.name(),
        reward: score_sum / n,
        kl,
        reference_perplexity: if tokens > 0 {
            (nll_sum / tokens as f64).exp()
        } else {
            f64::NAN
        },
        response_length: len_sum as f64 / n,
    })
}

/// How a model answers held-out problems greedily.
#[derive(Debug, Clone, Copy)]
pub struct AnswerStats {
    /// Share of problems answered correctly ([`crate::tasks::extract_answer`]).
    pub accuracy: f64,
    /// Share of answers that start with a worked solution (` Work:`).
    pub worked: f64,
}

/// Greedy answers to `problems`, each prompt followed by `cue` (`""`, or `" Work:"` /
/// `" Answer:"` to force one way of answering), up to a newline or 40 tokens.
pub fn answer_stats(
    model: &Model,
    tk: &Tokenizer,
    problems: &[crate::tasks::Problem],
    cue: &str,
) -> Result<AnswerStats, LmError> {
    let cfg = GenerationConfig {
        max_new_tokens: 40,
        eos_token_id: model.eos_token_id(),
        stop_token_ids: model.eos_token_ids(),
        stop_strings: vec!["\n".into()],
        ..Default::default()
    };
    let (mut right, mut worked) = (0usize, 0usize);
    for chunk in problems.chunks(32) {
        let prompts = chunk
            .iter()
            .map(|p| tk.encode(&format!("{}{cue}", p.prompt)))
            .collect::<Result<Vec<_>, _>>()?;
        let out = generate(model, &prompts, &cfg, None, Some(tk))?;
        for (p, g) in chunk.iter().zip(out) {
            let text = format!("{cue}{}", g.text.unwrap_or_default());
            if crate::tasks::extract_answer(&text).as_deref() == Some(p.answer.as_str()) {
                right += 1;
            }
            worked += usize::from(text.trim_start().starts_with(crate::tasks::WORK_MARK));
        }
    }
    let n = problems.len().max(1) as f64;
    Ok(AnswerStats {
        accuracy: right as f64 / n,
        worked: worked as f64 / n,
    })
}
