//! `rein bench lm-rl`: seconds per GRPO and PPO step on the tiny GPT-2 (4 layers, 256 wide,
//! vocab 8192, random weights), 2 prompts of 16 tokens, 4 completions of 32 tokens each per
//! prompt for GRPO (8 per step, as the TRL comparison in `bench/lm_rl_vs_trl.sh`) and 8
//! prompts with one completion each for PPO (4 PPO epochs, one minibatch, a value head).
//! EOS is disabled so every completion has exactly 32 tokens; the reward is distinct-1 of the
//! decoded completion (cheap, and the same function on the TRL side).

use anyhow::Result;
use clap::Args;
use rein_lm::grpo::{GrpoConfig, GrpoTrainer};
use rein_lm::ppo_lm::{PpoLmConfig, PpoLmTrainer};
use rein_lm::rewards::RuleReward;
use rein_lm::rl::PromptRecord;
use rein_lm::{Gpt2, Gpt2Config, Tokenizer};
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein bench lm-rl\n  rein bench lm-rl --steps 10 --json\n  rein bench lm-rl --save-model /tmp/tiny   # also writes the model for bench/grpo_trl.py\n\nbench/lm_rl_vs_trl.sh runs this and TRL's GRPOTrainer on the same model in one invocation\nand prints the ratio."
)]
pub struct BenchLmRlArgs {
    /// Measured steps per trainer (after one warm-up step).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Also write the benchmark model and tokenizer to this directory.
    #[arg(long)]
    save_model: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

const VOCAB: usize = 8192;

/// A word-level tokenizer of exactly 8192 entries (`<|endoftext|>`, then `w1` ... `w8191`),
/// so that every id the random model samples decodes, here and in the TRL script.
fn bench_tokenizer(dir: &Path) -> Result<Tokenizer> {
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
    std::fs::create_dir_all(dir)?;
    let path = dir.join("tokenizer.json");
    rein_core::metrics::write_atomic(&path, json.to_string().as_bytes())?;
    Ok(Tokenizer::from_file(&path)?)
}

fn bench_model() -> Result<Gpt2> {
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
    Ok(Gpt2::new_random(c, &mut rein_core::rng_from_seed(0))?)
}

fn prompts(n: usize) -> Vec<PromptRecord> {
    (0..n)
        .map(|i| PromptRecord {
            prompt: (0..16)
                .map(|j| format!("w{}", 1 + (i * 131 + j * 17) % (VOCAB - 1)))
                .collect::<Vec<_>>()
                .join(" "),
            references: Vec::new(),
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `rein bench lm-rl`.
pub fn bench(a: &BenchLmRlArgs) -> Result<()> {
    let dir = a.save_model.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("rein_bench_lm_rl_{}", std::process::id()))
    });
    let tk = bench_tokenizer(&dir)?;
    let model = bench_model()?;
    if a.save_model.is_some() {
        rein_lm::checkpoint::save_model(&model, &dir, &[])?;
        rein_core::metrics::write_atomic(
            &dir.join("prompts.json"),
            serde_json::to_string(&prompts(2).iter().map(|p| &p.prompt).collect::<Vec<_>>())?
                .as_bytes(),
        )?;
    }
    let steps = a.steps.max(1);
    let mut reward = RuleReward::DistinctN { n: 1 };
    let gcfg = GrpoConfig {
        max_steps: (steps + 1) as u64,
        prompts_per_step: 2,
        group_size: 4,
        max_new_tokens: 32,
        temperature: 1.0,
        learning_rate: 1e-6,
        beta: 0.0,
        ..Default::default()
    };
    let mut g = GrpoTrainer::new(gcfg, model.deep_copy()?, prompts(2), &tk)?;
    let mut grpo = Vec::new();
    for i in 0..=steps {
        let t = std::time::Instant::now();
        let log = g.train_step(&mut reward, &tk)?;
        anyhow::ensure!(
            log.response_length == 32.0,
            "benchmark completions must have 32 tokens, got {}",
            log.response_length
        );
        if i > 0 {
            grpo.push(t.elapsed().as_secs_f64());
        }
    }
    let pcfg = PpoLmConfig {
        max_steps: (steps + 1) as u64,
        prompts_per_step: 8,
        max_new_tokens: 32,
        temperature: 1.0,
        learning_rate: 1e-6,
        ..Default::default()
    };
    let mut p = PpoLmTrainer::new(pcfg, model, prompts(8), &tk)?;
    let mut ppo = Vec::new();
    for i in 0..=steps {
        let t = std::time::Instant::now();
        p.train_step(&mut reward, &tk)?;
        if i > 0 {
            ppo.push(t.elapsed().as_secs_f64());
        }
    }
    if a.save_model.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    let out = serde_json::json!({
        "model": "GPT-2 4 layers, 256 wide, 4 heads, vocab 8192 (random weights)",
        "threads": crate::cmd_lm::rayon_threads(),
        "grpo_seconds_per_step": median(grpo),
        "grpo_shape": "2 prompts x 4 completions x 32 tokens, 1 optimizer step",
        "ppo_seconds_per_step": median(ppo),
        "ppo_shape": "8 prompts x 1 completion x 32 tokens, 4 PPO epochs of 1 minibatch, value head",
        "steps": steps,
    });
    if a.json {
        println!("{out}");
    } else {
        println!(
            "GRPO step (8 completions of 32 tokens): {:.4} s; PPO step (8 completions, 4 epochs): {:.4} s (median of {steps}, {} threads)",
            out["grpo_seconds_per_step"].as_f64().unwrap_or(0.0),
            out["ppo_seconds_per_step"].as_f64().unwrap_or(0.0),
            crate::cmd_lm::rayon_threads()
        );
    }
    Ok(())
}
