//! `rein lm ...`: language-model commands (generation, logits, benchmarks).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rein_lm::checkpoint::load_model;
use rein_lm::generate::{generate, left_pad, GenerationConfig};
use rein_lm::{ForwardInput, Gpt2, Tokenizer};
use serde_json::json;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum LmCommand {
    /// Generate continuations of prompts (text, a JSONL file of prompts, or token ids).
    Generate(GenerateArgs),
    /// Logits of token sequences run as one left-padded batch (cross-checking checkpoints).
    Logits(LogitsArgs),
}

pub fn run(c: LmCommand) -> Result<()> {
    match c {
        LmCommand::Generate(a) => cmd_generate(&a),
        LmCommand::Logits(a) => cmd_logits(&a),
    }
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm generate --model runs/lm/quickstart --prompt \"12 + 7 =\"\n  rein lm generate --model DIR --prompt \"Once\" --temperature 0.8 --top-p 0.95 --max-new-tokens 40 --seed 1\n  rein lm generate --model DIR --prompts prompts.jsonl > out.jsonl\n  rein lm generate --model DIR --prompt-ids 15496,11 --json\n\nDecoding is greedy unless --sample, --temperature, --top-k or --top-p is given.\nA --prompts file holds one JSON object per line: {\"prompt\": \"...\"} with optional \"seed\";\nresults stream out as JSON lines {\"prompt\", \"text\", \"ids\", \"logprobs\", \"finished\"}."
)]
pub struct GenerateArgs {
    /// Model directory (config.json, model.safetensors, and tokenizer.json or
    /// vocab.json + merges.txt for text prompts).
    #[arg(long)]
    model: PathBuf,
    /// One text prompt.
    #[arg(long, conflicts_with_all = ["prompts", "prompt_ids"])]
    prompt: Option<String>,
    /// JSONL file of prompts (batch mode, streams JSON lines).
    #[arg(long, conflicts_with = "prompt_ids")]
    prompts: Option<PathBuf>,
    /// Prompt as comma-separated token ids (no tokenizer needed).
    #[arg(long)]
    prompt_ids: Option<String>,
    /// Most new tokens.
    #[arg(long, default_value_t = 32)]
    max_new_tokens: usize,
    /// Fewest new tokens before EOS is allowed.
    #[arg(long, default_value_t = 0)]
    min_new_tokens: usize,
    /// Sample instead of greedy decoding.
    #[arg(long)]
    sample: bool,
    /// Sampling temperature (implies --sample).
    #[arg(long)]
    temperature: Option<f32>,
    /// Top-k filter (implies --sample).
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus (top-p) filter (implies --sample).
    #[arg(long)]
    top_p: Option<f32>,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Stop string (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Do not stop at the config's EOS token.
    #[arg(long)]
    ignore_eos: bool,
    /// Seed (request i of a batch uses seed + i unless its JSON line has "seed").
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Prompts per batch in --prompts mode.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Print JSON (ids and log-probs) instead of text.
    #[arg(long)]
    json: bool,
}

fn load(dir: &Path) -> Result<(Gpt2, Option<Tokenizer>)> {
    let model = load_model(dir)?;
    let tk = Tokenizer::from_dir(dir)?;
    Ok((model, tk))
}

fn parse_ids(s: &str, what: &str) -> Result<Vec<u32>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<u32>()
                .with_context(|| format!("{what}: {x:?} is not a token id"))
        })
        .collect()
}

fn cmd_generate(a: &GenerateArgs) -> Result<()> {
    let (model, tk) = load(&a.model)?;
    let sample = a.sample || a.temperature.is_some() || a.top_k.is_some() || a.top_p.is_some();
    let cfg = GenerationConfig {
        max_new_tokens: a.max_new_tokens,
        min_new_tokens: a.min_new_tokens,
        do_sample: sample,
        temperature: a.temperature.unwrap_or(1.0),
        top_k: a.top_k.unwrap_or(0),
        top_p: a.top_p.unwrap_or(1.0),
        repetition_penalty: a.repetition_penalty,
        eos_token_id: if a.ignore_eos {
            None
        } else {
            model.config.eos_token_id
        },
        stop_strings: a.stop.clone(),
        seed: a.seed,
    };
    let need_tk = || -> Result<&Tokenizer> {
        tk.as_ref().with_context(|| {
            format!(
                "{}: no tokenizer.json (or vocab.json + merges.txt); use --prompt-ids",
                a.model.display()
            )
        })
    };
    if let Some(ids) = &a.prompt_ids {
        let prompt = parse_ids(ids, "--prompt-ids")?;
        let out = generate(&model, &[prompt], &cfg, None, tk.as_ref())?;
        let g = &out[0];
        if a.json {
            println!(
                "{}",
                json!({"ids": g.ids, "logprobs": g.logprobs, "finished": g.finished, "text": g.text})
            );
        } else {
            match &g.text {
                Some(t) => println!("{t}"),
                None => println!(
                    "{}",
                    g.ids
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            }
        }
        return Ok(());
    }
    if let Some(text) = &a.prompt {
        let tk = need_tk()?;
        let prompt = tk.encode(text)?;
        let out = generate(&model, &[prompt], &cfg, None, Some(tk))?;
        let g = &out[0];
        if a.json {
            println!(
                "{}",
                json!({"prompt": text, "text": g.text, "ids": g.ids, "logprobs": g.logprobs, "finished": g.finished})
            );
        } else {
            println!("{text}{}", g.text.clone().unwrap_or_default());
        }
        return Ok(());
    }
    let Some(path) = &a.prompts else {
        bail!("give --prompt, --prompts or --prompt-ids");
    };
    let tk = need_tk()?;
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut records = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), n + 1))?;
        let prompt = v["prompt"].as_str().with_context(|| {
            format!(
                "{} line {}: expected {{\"prompt\": \"...\"}}",
                path.display(),
                n + 1
            )
        })?;
        let seed = v["seed"].as_u64().unwrap_or(a.seed + records.len() as u64);
        records.push((prompt.to_string(), seed));
    }
    let stdout = std::io::stdout();
    for chunk in records.chunks(a.batch_size.max(1)) {
        let prompts = chunk
            .iter()
            .map(|(p, _)| tk.encode(p))
            .collect::<Result<Vec<_>, _>>()?;
        let seeds: Vec<u64> = chunk.iter().map(|(_, s)| *s).collect();
        let out = generate(&model, &prompts, &cfg, Some(&seeds), Some(tk))?;
        let mut lock = stdout.lock();
        for ((p, _), g) in chunk.iter().zip(out) {
            writeln!(
                lock,
                "{}",
                json!({"prompt": p, "text": g.text, "ids": g.ids, "logprobs": g.logprobs, "finished": g.finished})
            )?;
        }
        lock.flush()?;
    }
    Ok(())
}

#[derive(Args)]
#[command(after_help = "Example:\n  rein lm logits --model DIR --ids '1,2,3;4,5' --json")]
pub struct LogitsArgs {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// Sequences of token ids: comma-separated ids, sequences separated by ';'.
    #[arg(long)]
    ids: String,
    /// Print JSON `{"logits": [...]}` (per sequence, per real position, per vocabulary entry).
    #[arg(long)]
    json: bool,
}

fn cmd_logits(a: &LogitsArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    let seqs = a
        .ids
        .split(';')
        .enumerate()
        .map(|(i, s)| parse_ids(s, &format!("--ids sequence {i}")))
        .collect::<Result<Vec<_>>>()?;
    let vocab = model.config.vocab_size;
    for (i, s) in seqs.iter().enumerate() {
        if s.is_empty() {
            bail!("--ids sequence {i} is empty");
        }
        if let Some(bad) = s.iter().find(|&&t| t as usize >= vocab) {
            bail!("--ids sequence {i}: token id {bad} is outside the vocabulary (size {vocab})");
        }
        if s.len() > model.config.n_positions {
            bail!(
                "--ids sequence {i} has {} tokens; the model's n_positions is {}",
                s.len(),
                model.config.n_positions
            );
        }
    }
    let (flat, pos, mask, len) = left_pad(&seqs, 0);
    let b = seqs.len();
    let dev = candle_core::Device::Cpu;
    let logits = model.logits(&ForwardInput {
        ids: &candle_core::Tensor::from_vec(flat, (b, len), &dev)?,
        positions: &candle_core::Tensor::from_vec(pos, (b, len), &dev)?,
        mask: Some(&mask),
    })?;
    let all: Vec<Vec<Vec<f32>>> = logits.to_vec3()?;
    let per_seq: Vec<Vec<Vec<f32>>> = seqs
        .iter()
        .zip(all)
        .map(|(s, rows)| rows[len - s.len()..].to_vec())
        .collect();
    if a.json {
        println!("{}", json!({ "logits": per_seq }));
    } else {
        for (i, rows) in per_seq.iter().enumerate() {
            for (t, row) in rows.iter().enumerate() {
                let best = row
                    .iter()
                    .enumerate()
                    .max_by(|x, y| x.1.total_cmp(y.1))
                    .map_or(0, |(k, _)| k);
                println!(
                    "sequence {i} position {t}: argmax {best} ({:.4})",
                    row[best]
                );
            }
        }
    }
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein bench lm\n  rein bench lm --sizes tiny --json\n\nSizes: small = GPT-2 small (124M, random weights), tiny = 4 layers, 256 wide, vocab 8192."
)]
pub struct BenchLmArgs {
    /// Comma-separated model sizes: tiny, small.
    #[arg(long, default_value = "tiny,small")]
    sizes: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The benchmark architectures.
fn bench_config(size: &str) -> Result<rein_lm::Gpt2Config> {
    let mut c = rein_lm::Gpt2Config {
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
        other => bail!("unknown size {other:?} (expected tiny or small)"),
    }
    Ok(c)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `rein bench lm`: forward 8 x 128, greedy generation (batch 1, 16-token prompt, 64 new
/// tokens) and a training step (forward + backward + AdamW on 8 x 128), per size.
pub fn bench_lm(a: &BenchLmArgs) -> Result<()> {
    use rand::Rng;
    let mut results = Vec::new();
    for size in a.sizes.split(',').map(str::trim) {
        let cfg = bench_config(size)?;
        let mut rng = rein_core::rng_from_seed(0);
        let model = Gpt2::new_random(cfg.clone(), &mut rng)?;
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
        let batch = rein_lm::loss::LmBatch {
            labels: flat.iter().map(|&x| i64::from(x)).collect(),
            ids: flat,
            positions: pos,
            mask,
            batch: b,
            seq: t,
        };
        let mut opt = rein_lm::optim::AdamW::new(model.named_vars(), 1e-4, 0.0)?;
        let mut train = Vec::new();
        for r in 0..=2 {
            let start = std::time::Instant::now();
            let (loss, _) = rein_lm::loss::causal_lm_loss(&model, &batch, None)?;
            let grads = loss.backward()?;
            opt.step(&grads)?;
            if r > 0 {
                train.push(start.elapsed().as_secs_f64());
            }
        }
        let (f, g, tr) = (median(fwd), median(gen), median(train));
        results.push(json!({"size": size, "parameters": cfg.num_parameters(),
            "forward_8x128_seconds": f, "generate_tokens_per_second": 64.0 / g,
            "train_step_8x128_seconds": tr}));
        if !a.json {
            println!(
                "{size} ({:.1}M parameters): forward 8x128 {f:.3} s; greedy generation (batch 1, 16-token prompt, 64 new) {:.1} tokens/s; train step 8x128 (fwd + bwd + AdamW) {tr:.3} s",
                cfg.num_parameters() as f64 / 1e6,
                64.0 / g
            );
        }
    }
    if a.json {
        println!(
            "{}",
            json!({"threads": rayon_threads(), "results": results})
        );
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
