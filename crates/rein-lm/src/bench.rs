//! The language-model benchmarks behind `rein bench lm` (forward pass, greedy generation and a
//! training step of GPT-2 small and a tiny GPT-2) and `rein bench lm-rl` (seconds per GRPO and
//! PPO step on the tiny GPT-2: 2 prompts of 16 tokens x 4 completions of 32 for GRPO, as the TRL
//! comparison in `bench/lm_rl_vs_trl.sh`; 8 prompts x 1 completion, 4 PPO epochs, a value head
//! for PPO; EOS disabled so every completion has 32 tokens; reward distinct-1, the same function
//! on the TRL side). They measure; the binary prints.

use crate::generate::{generate, left_pad, GenerationConfig};
use crate::models::{CausalLm, Model};
use crate::rl::grpo::{GrpoConfig, GrpoTrainer};
use crate::rl::ppo_lm::{PpoLmConfig, PpoLmTrainer};
use crate::rl::reward::PromptRecord;
use crate::rl::rewards::RuleReward;
use crate::{ForwardInput, Gpt2, Gpt2Config, LmError, Tokenizer};
use rand::Rng;
use std::path::Path;

/// One size's figures of [`bench_lm`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct LmBench {
    /// `tiny` or `small`.
    pub size: String,
    /// Parameters of the model.
    pub parameters: usize,
    /// Median seconds of a forward pass of 8 x 128 tokens.
    pub forward_8x128_seconds: f64,
    /// Greedy generation, batch 1, 16-token prompt, 64 new tokens.
    pub generate_tokens_per_second: f64,
    /// Median seconds of forward + backward + AdamW on 8 x 128 tokens (10 timed steps of tiny,
    /// 3 of small, after one untimed).
    pub train_step_8x128_seconds: f64,
}

/// Median seconds per step of [`bench_rl`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct RlBench {
    /// GRPO: 2 prompts x 4 completions x 32 tokens, one optimizer step.
    pub grpo_seconds_per_step: f64,
    /// PPO: 8 prompts x 1 completion x 32 tokens, 4 epochs of 1 minibatch, value head.
    pub ppo_seconds_per_step: f64,
    /// Measured steps per trainer.
    pub steps: usize,
}

/// Threads of the rayon pool the products run on.
pub fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The benchmark architectures.
pub fn bench_config(size: &str) -> Result<Gpt2Config, LmError> {
    let mut c = Gpt2Config {
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        resid_pdrop: 0.0,
        ..Default::default()
    };
    match size {
        "small" => {}
        "tiny" => {
            c.n_layer = 4;
            c.n_embd = 256;
            c.n_head = 4;
            c.vocab_size = 8192;
            c.bos_token_id = Some(8191);
            c.eos_token_id = Some(8191);
        }
        other => {
            return Err(LmError::Input(format!(
                "unknown size {other:?} (expected tiny or small)"
            )))
        }
    }
    Ok(c)
}

/// `rein bench lm` for one size: forward 8 x 128, greedy generation (batch 1, 16-token prompt,
/// 64 new tokens) and a training step (forward + backward + AdamW on 8 x 128).
pub fn bench_lm(size: &str) -> Result<LmBench, LmError> {
    {
        let cfg = bench_config(size)?;
        let mut rng = rein_core::rng_from_seed(0);
        let model: Model = Gpt2::new_random(cfg.clone(), &mut rng)?.into();
        let (b, t) = (8usize, 128usize);
        let ids: Vec<u32> = (0..b * t)
            .map(|_| rng.random_range(0..cfg.vocab_size as u32 - 1))
            .collect();
        let seqs: Vec<Vec<u32>> = ids.chunks(t).map(<[u32]>::to_vec).collect();
        let (flat, pos, mask, _) = left_pad(&seqs, 0);
        let dev = candle_core::Device::Cpu;
        let ids_t = candle_core::Tensor::from_vec(flat.clone(), (b, t), &dev)?;
        let pos_t = candle_core::Tensor::from_vec(pos.clone(), (b, t), &dev)?;
        let reps = if size == "small" { 3 } else { 10 };
        let mut fwd = Vec::new();
        for r in 0..=reps {
            let start = std::time::Instant::now();
            let l = model.logits(&ForwardInput {
                ids: &ids_t,
                positions: &pos_t,
                mask: Some(&mask),
            })?;
            l.sum_all()?.to_scalar::<f32>()?;
            if r > 0 {
                fwd.push(start.elapsed().as_secs_f64());
            }
        }
        let prompt: Vec<u32> = ids[..16].to_vec();
        let gcfg = GenerationConfig {
            max_new_tokens: 64,
            eos_token_id: None,
            ..Default::default()
        };
        let mut gen = Vec::new();
        for r in 0..=2 {
            let start = std::time::Instant::now();
            generate(&model, std::slice::from_ref(&prompt), &gcfg, None, None)?;
            if r > 0 {
                gen.push(start.elapsed().as_secs_f64());
            }
        }
        let batch = crate::kernels::loss::LmBatch {
            labels: flat.iter().map(|&x| i64::from(x)).collect(),
            ids: flat,
            positions: pos,
            mask,
            batch: b,
            seq: t,
        };
        let mut opt = crate::optim::AdamW::new(model.named_vars(), 1e-4, 0.0)?;
        let mut train = Vec::new();
        for r in 0..=reps {
            let start = std::time::Instant::now();
            let (loss, _) = crate::kernels::loss::causal_lm_loss(&model, &batch, None)?;
            let grads = loss.backward()?;
            opt.step(&grads)?;
            if r > 0 {
                train.push(start.elapsed().as_secs_f64());
            }
        }
        Ok(LmBench {
            size: size.to_string(),
            parameters: cfg.num_parameters(),
            forward_8x128_seconds: median(fwd),
            generate_tokens_per_second: 64.0 / median(gen),
            train_step_8x128_seconds: median(train),
        })
    }
}

/// The figures of `rein bench lm --model PATH`, the workloads of the transformers comparison
/// (`bench/lm_model_transformers.py`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelBench {
    /// Parameters of the model.
    pub parameters: usize,
    /// Bytes of f32 weights (what decoding at batch 1 reads per token).
    pub weight_bytes: usize,
    /// Median seconds of an eval forward pass (no gradients) of 4 x 128 tokens.
    pub forward_4x128_seconds: f64,
    /// Greedy generation, batch 1, 16-token prompt, 64 new tokens (EOS ignored).
    pub generation_batch1_tokens_per_second: f64,
    /// The same at batch 8 (tokens of all rows per second).
    pub generation_batch8_tokens_per_second: f64,
    /// Median seconds of forward + backward + AdamW on 4 x 128 tokens.
    pub train_step_4x128_seconds: f64,
    /// Floating-point operations of one training step (6 x parameters x tokens plus the
    /// attention products, Kaplan et al. 2020's estimate).
    pub train_step_flops: f64,
}

/// Measures `model` on the transformers comparison's workloads: `reps` timed repetitions of
/// each after one warm-up (median reported). Token ids are drawn with seed 0 below the
/// vocabulary size.
pub fn bench_model_workloads(model: &Model, reps: usize) -> Result<ModelBench, LmError> {
    let reps = reps.max(1);
    let vocab = model.vocab_size() as u32;
    let mut rng = rein_core::rng_from_seed(0);
    let (b, t) = (4usize, 128usize);
    if t > model.max_positions() {
        return Err(LmError::Input(format!(
            "the benchmark needs 128 positions; the model has {}",
            model.max_positions()
        )));
    }
    let ids: Vec<u32> = (0..b * t).map(|_| rng.random_range(1..vocab)).collect();
    let seqs: Vec<Vec<u32>> = ids.chunks(t).map(<[u32]>::to_vec).collect();
    let (flat, pos, mask, _) = left_pad(&seqs, 0);
    let dev = candle_core::Device::Cpu;
    let ids_t = candle_core::Tensor::from_vec(flat.clone(), (b, t), &dev)?;
    let pos_t = candle_core::Tensor::from_vec(pos.clone(), (b, t), &dev)?;
    let timed = |f: &mut dyn FnMut() -> Result<(), LmError>| -> Result<f64, LmError> {
        let mut v = Vec::new();
        for r in 0..=reps {
            let start = std::time::Instant::now();
            f()?;
            if r > 0 {
                v.push(start.elapsed().as_secs_f64());
            }
        }
        Ok(median(v))
    };
    let forward = timed(&mut || {
        let l = model.logits(&ForwardInput {
            ids: &ids_t,
            positions: &pos_t,
            mask: Some(&mask),
        })?;
        l.sum_all()?.to_scalar::<f32>()?;
        Ok(())
    })?;
    let gcfg = GenerationConfig {
        max_new_tokens: 64,
        ..Default::default()
    };
    let prompts: Vec<Vec<u32>> = (0..8).map(|i| ids[i * 16..(i + 1) * 16].to_vec()).collect();
    let gen1 = timed(&mut || generate(model, &prompts[..1], &gcfg, None, None).map(|_| ()))?;
    let gen8 = timed(&mut || generate(model, &prompts, &gcfg, None, None).map(|_| ()))?;
    let batch = crate::kernels::loss::LmBatch {
        labels: flat.iter().map(|&x| i64::from(x)).collect(),
        ids: flat,
        positions: pos,
        mask,
        batch: b,
        seq: t,
    };
    let mut opt = crate::optim::AdamW::new(model.named_vars(), 1e-6, 0.0)?;
    let train = timed(&mut || {
        let (loss, _) = crate::kernels::loss::causal_lm_loss(model, &batch, None)?;
        let grads = loss.backward()?;
        opt.step(&grads)?;
        Ok(())
    })?;
    let parameters = model.num_parameters();
    let tokens = (b * t) as f64;
    let (layers, width) = match model {
        Model::Gpt2(m) => (m.config.n_layer, m.config.n_embd),
        Model::Llama(m) => (
            m.config.num_hidden_layers,
            m.config.num_attention_heads * m.config.head_dim,
        ),
    };
    // Q K^T and P V: 2 products of t x t x width per layer and row, x3 for forward + backward.
    let attention = 3.0 * 2.0 * 2.0 * (b * t * t * width * layers) as f64;
    Ok(ModelBench {
        parameters,
        weight_bytes: 4 * parameters,
        forward_4x128_seconds: forward,
        generation_batch1_tokens_per_second: 64.0 / gen1,
        generation_batch8_tokens_per_second: 8.0 * 64.0 / gen8,
        train_step_4x128_seconds: train,
        train_step_flops: 6.0 * parameters as f64 * tokens + attention,
    })
}

/// The RL benchmark's vocabulary size.
pub const VOCAB: usize = 8192;

/// A word-level tokenizer of exactly 8192 entries (`<|endoftext|>`, then `w1` ... `w8191`),
/// so that every id the random model samples decodes, here and in the TRL script.
pub fn bench_tokenizer(dir: &Path) -> Result<Tokenizer, LmError> {
    let mut vocab = serde_json::Map::new();
    vocab.insert("<|endoftext|>".into(), 0.into());
    for i in 1..VOCAB {
        vocab.insert(format!("w{i}"), i.into());
    }
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<|endoftext|>"}
    });
    std::fs::create_dir_all(dir).map_err(|e| LmError::io(dir, e))?;
    let path = dir.join("tokenizer.json");
    rein_core::metrics::write_atomic(&path, json.to_string().as_bytes())
        .map_err(|e| LmError::io(&path, e))?;
    Tokenizer::from_file(&path)
}

/// The tiny GPT-2 of the RL benchmark (random weights, seed 0, no EOS).
pub fn bench_model() -> Result<Model, LmError> {
    let c = Gpt2Config {
        vocab_size: VOCAB,
        n_positions: 128,
        n_embd: 256,
        n_layer: 4,
        n_head: 4,
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        resid_pdrop: 0.0,
        bos_token_id: None,
        eos_token_id: None,
        ..Default::default()
    };
    Ok(Gpt2::new_random(c, &mut rein_core::rng_from_seed(0))?.into())
}

/// `n` prompts of 16 words of the benchmark vocabulary.
pub fn bench_prompts(n: usize) -> Vec<PromptRecord> {
    (0..n)
        .map(|i| PromptRecord {
            prompt: (0..16)
                .map(|j| format!("w{}", 1 + (i * 131 + j * 17) % (VOCAB - 1)))
                .collect::<Vec<_>>()
                .join(" "),
            references: Vec::new(),
            ..Default::default()
        })
        .collect()
}

/// The GRPO settings of both RL benchmarks (TRL's comparison): 2 prompts x 4 completions x 32
/// tokens, temperature 1, lr 1e-6, beta 0, one pass; one warm-up step plus `steps`.
fn grpo_config(steps: usize) -> GrpoConfig {
    GrpoConfig {
        max_steps: (steps + 1) as u64,
        prompts_per_step: 2,
        group_size: 4,
        max_new_tokens: 32,
        temperature: 1.0,
        learning_rate: 1e-6,
        beta: 0.0,
        ..Default::default()
    }
}

/// One warm-up step, then `steps` timed ones: each step's seconds and phases. Every completion
/// must have 32 tokens (EOS off), or the comparison would not be like for like.
fn timed_grpo_steps(
    g: &mut GrpoTrainer,
    reward: &mut RuleReward,
    tk: &Tokenizer,
    steps: usize,
) -> Result<(Vec<f64>, Vec<crate::rl::rollout::StepTimes>), LmError> {
    let (mut totals, mut phases) = (Vec::new(), Vec::new());
    for i in 0..=steps {
        let t = std::time::Instant::now();
        let log = g.update(reward, tk)?;
        if log.response_length != 32.0 {
            return Err(LmError::Input(format!(
                "benchmark completions must have 32 tokens, got {}",
                log.response_length
            )));
        }
        if i > 0 {
            totals.push(t.elapsed().as_secs_f64());
            phases.push(g.last_times);
        }
    }
    Ok((totals, phases))
}

/// `rein bench lm-rl`: `steps` measured GRPO and PPO steps (after one warm-up each) of
/// [`bench_model`] with tokenizer `tk` (from [`bench_tokenizer`]).
pub fn bench_rl(model: Model, tk: &Tokenizer, steps: usize) -> Result<RlBench, LmError> {
    let steps = steps.max(1);
    let mut reward = RuleReward::DistinctN { n: 1 };
    let mut g = GrpoTrainer::new(grpo_config(steps), model.deep_copy()?, bench_prompts(2), tk)?;
    let (grpo, _) = timed_grpo_steps(&mut g, &mut reward, tk, steps)?;
    let pcfg = PpoLmConfig {
        max_steps: (steps + 1) as u64,
        prompts_per_step: 8,
        max_new_tokens: 32,
        temperature: 1.0,
        learning_rate: 1e-6,
        ..Default::default()
    };
    let mut p = PpoLmTrainer::new(pcfg, model, bench_prompts(8), tk)?;
    let mut ppo = Vec::new();
    for i in 0..=steps {
        let t = std::time::Instant::now();
        p.update(&mut reward, tk)?;
        if i > 0 {
            ppo.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(RlBench {
        grpo_seconds_per_step: median(grpo),
        ppo_seconds_per_step: median(ppo),
        steps,
    })
}

/// The two chat prompts of `rein bench lm-rl --model` (the TRL script uses the same).
pub const MODEL_RL_PROMPTS: [&str; 2] = ["What is 12 + 30?", "Write one sentence about the sea."];

/// Medians of `rein bench lm-rl --model`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelRlBench {
    /// Seconds per GRPO step.
    pub seconds_per_step: f64,
    /// Median seconds of each phase of a step.
    pub phases: crate::rl::rollout::StepTimes,
    /// Measured steps (after one warm-up step).
    pub steps: usize,
    /// Parameters the optimiser updates (the adapter's with LoRA).
    pub trainable_parameters: usize,
}

/// GRPO steps on a real model as TRL's benchmark runs them: [`MODEL_RL_PROMPTS`] rendered with
/// the model's chat template (`template`), 4 completions each of exactly 32 tokens (EOS off),
/// temperature 1, beta 0, one pass, lr 1e-6, reward distinct-1; `model` as given (with a LoRA
/// adapter when the caller put one on). One warm-up step, then `steps` measured.
pub fn bench_grpo_on_model(
    mut model: Model,
    template: &crate::chat::ChatTemplate,
    tk: &Tokenizer,
    steps: usize,
) -> Result<ModelRlBench, LmError> {
    let steps = steps.max(1);
    match &mut model {
        Model::Gpt2(m) => m.config.eos_token_id = None,
        Model::Llama(m) => m.config.eos_token_ids.clear(),
    }
    let prompts = MODEL_RL_PROMPTS
        .iter()
        .map(|q| {
            Ok(PromptRecord::new(
                template.render(&[crate::chat::Message::new("user", q)], true)?,
                Vec::new(),
            ))
        })
        .collect::<Result<Vec<_>, LmError>>()?;
    let trainable_parameters = model
        .named_vars()
        .iter()
        .map(|(_, v)| v.as_tensor().elem_count())
        .sum();
    let mut g = GrpoTrainer::new(grpo_config(steps), model, prompts, tk)?;
    let mut reward = RuleReward::DistinctN { n: 1 };
    let (totals, phases) = timed_grpo_steps(&mut g, &mut reward, tk, steps)?;
    let med = |f: fn(&crate::rl::rollout::StepTimes) -> f64| median(phases.iter().map(f).collect());
    Ok(ModelRlBench {
        seconds_per_step: median(totals),
        phases: crate::rl::rollout::StepTimes {
            generation: med(|p| p.generation),
            reference_logprobs: med(|p| p.reference_logprobs),
            logprobs: med(|p| p.logprobs),
            backward: med(|p| p.backward),
            optimizer: med(|p| p.optimizer),
        },
        steps,
        trainable_parameters,
    })
}
