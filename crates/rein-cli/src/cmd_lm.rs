//! `rein lm generate|logits|train-tokenizer|pretrain|sft|quickstart`: generation and
//! supervised training of language models.

use anyhow::{bail, Context, Result};
use clap::Args;
use rein_lm::checkpoint::load_model;
use rein_lm::generate::{generate, GenerationConfig};
use rein_lm::{Gpt2, Tokenizer};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

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

fn parse_ids(s: &str, what: &str) -> Result<Vec<u32>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<u32>()
                .with_context(|| format!("{what}: {x:?} is not a token id"))
        })
        .collect()
}

pub fn cmd_generate(a: &GenerateArgs) -> Result<()> {
    let (model, tk) = (load_model(&a.model)?, Tokenizer::from_dir(&a.model)?);
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
            model.eos_token_id()
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
    // One request (--prompt-ids, --prompt) or a file of them, generated in batches.
    let single = a.prompt_ids.is_some() || a.prompt.is_some();
    let (requests, tk) = match (&a.prompt_ids, &a.prompt, &a.prompts) {
        (Some(ids), _, _) => (
            vec![(None, parse_ids(ids, "--prompt-ids")?, a.seed)],
            tk.as_ref(),
        ),
        (None, Some(text), _) => {
            let tk = need_tk()?;
            (
                vec![(Some(text.clone()), tk.encode(text)?, a.seed)],
                Some(tk),
            )
        }
        (None, None, Some(path)) => {
            let tk = need_tk()?;
            let mut out = Vec::new();
            for (p, seed) in rein_lm::generate::read_requests(path, a.seed)? {
                out.push((Some(p.clone()), tk.encode(&p)?, seed));
            }
            (out, Some(tk))
        }
        _ => bail!("give --prompt, --prompts or --prompt-ids"),
    };
    let stdout = std::io::stdout();
    for chunk in requests.chunks(a.batch_size.max(1)) {
        let prompts: Vec<Vec<u32>> = chunk.iter().map(|r| r.1.clone()).collect();
        let seeds: Vec<u64> = chunk.iter().map(|r| r.2).collect();
        let out = generate(&model, &prompts, &cfg, Some(&seeds), tk)?;
        let mut lock = stdout.lock();
        for ((prompt, _, _), g) in chunk.iter().zip(out) {
            let line = match (single && !a.json, prompt) {
                (true, Some(p)) => format!("{p}{}", g.text.unwrap_or_default()),
                (true, None) => g.text.unwrap_or_else(|| {
                    let ids: Vec<String> = g.ids.iter().map(u32::to_string).collect();
                    ids.join(",")
                }),
                (false, Some(p)) => json!({"prompt": p, "text": g.text, "ids": g.ids,
                    "logprobs": g.logprobs, "finished": g.finished})
                .to_string(),
                (false, None) => json!({"ids": g.ids, "logprobs": g.logprobs,
                    "finished": g.finished, "text": g.text})
                .to_string(),
            };
            writeln!(lock, "{line}")?;
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

pub fn cmd_logits(a: &LogitsArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    let seqs = a
        .ids
        .split(';')
        .enumerate()
        .map(|(i, s)| parse_ids(s, &format!("--ids sequence {i}")))
        .collect::<Result<Vec<_>>>()?;
    let per_seq = rein_lm::generate::sequence_logits(&model, &seqs)?;
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

// ---------------------------------------------------------------------------------------------
// Supervised training: train-tokenizer, pretrain, sft, quickstart.

use rein_lm::evaluation::answer_stats;
use rein_lm::train::{Example, LmTrainConfig, LmTrainer};

/// Name of the trainer checkpoint inside an LM run directory.

#[derive(Args)]
#[command(
    after_help = "Example:\n  rein lm train-tokenizer --corpus data.txt --vocab-size 2000 --out my_tokenizer/"
)]
pub struct TrainTokenizerArgs {
    /// Text files to learn the merges from.
    #[arg(long, required = true, num_args = 1..)]
    corpus: Vec<PathBuf>,
    /// Vocabulary size (256 bytes + <|endoftext|> + merges).
    #[arg(long, default_value_t = 8192)]
    vocab_size: usize,
    /// One token per digit (numbers are read digit by digit, as arithmetic tasks want).
    #[arg(long)]
    split_digits: bool,
    /// Output directory (tokenizer.json is written there).
    #[arg(long)]
    out: PathBuf,
}

/// Settings shared by pretrain and sft.
#[derive(Args, Clone)]
pub struct TrainCommon {
    /// Training setting `key=value` (max_steps, batch_size, grad_accum, learning_rate,
    /// warmup_steps, schedule = cosine|linear|constant, weight_decay, max_grad_norm, block_size,
    /// eval_fraction, eval_every, seed); repeatable.
    #[arg(long = "set")]
    set: Vec<String>,
    /// Where run directories go.
    #[arg(long, default_value = "runs/lm")]
    runs_dir: PathBuf,
    /// Optimizer steps between checkpoints (0: only at the end).
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    /// Stop after this many steps in this invocation (with a checkpoint; resume later).
    #[arg(long)]
    max_updates: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// How a stopped run continues (set by the command).
    #[arg(skip)]
    resume_command: String,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm pretrain --tokenizer tok/ --data corpus.txt --n-layer 4 --n-embd 128 --n-head 4 --set max_steps=500\n  rein lm pretrain --resume runs/lm/<run directory>\n\nThe text is split into documents at blank lines; each gets <|endoftext|> and the stream is cut\ninto blocks of block_size tokens (run_clm's grouping)."
)]
pub struct PretrainArgs {
    /// Directory with tokenizer.json (or vocab.json + merges.txt).
    #[arg(long, required_unless_present = "resume")]
    tokenizer: Option<PathBuf>,
    /// Plain-text training file.
    #[arg(long, required_unless_present = "resume")]
    data: Option<PathBuf>,
    /// A GPT-2 config.json to start from (else the sizes below, GPT-2 defaults elsewhere).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Blocks.
    #[arg(long, default_value_t = 4)]
    n_layer: usize,
    /// Width.
    #[arg(long, default_value_t = 256)]
    n_embd: usize,
    /// Heads.
    #[arg(long, default_value_t = 4)]
    n_head: usize,
    /// Context length.
    #[arg(long, default_value_t = 256)]
    n_positions: usize,
    /// Continue the run in this directory exactly where its checkpoint stopped.
    #[arg(long)]
    resume: Option<PathBuf>,
    #[command(flatten)]
    common: TrainCommon,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm sft --model runs/lm/quickstart/model --data train.jsonl --set max_steps=200\n  rein lm sft --resume runs/lm/<run directory>\n\nRecords: {\"prompt\": ..., \"completion\": ...} (loss on the completion and EOS only) or\n{\"text\": ...} (loss on every token), one JSON object per line."
)]
pub struct SftArgs {
    /// Model directory to fine-tune (with a tokenizer).
    #[arg(long, required_unless_present = "resume")]
    model: Option<PathBuf>,
    /// JSONL records.
    #[arg(long, required_unless_present = "resume")]
    data: Option<PathBuf>,
    /// Continue the run in this directory exactly where its checkpoint stopped.
    #[arg(long)]
    resume: Option<PathBuf>,
    #[command(flatten)]
    common: TrainCommon,
}

pub fn train_tokenizer(a: &TrainTokenizerArgs) -> Result<()> {
    let tk = Tokenizer::train_bpe(&a.corpus, a.vocab_size, a.split_digits)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    tk.save(&a.out.join("tokenizer.json"))?;
    println!(
        "tokenizer with {} entries written to {}",
        tk.vocab_size(),
        a.out.join("tokenizer.json").display()
    );
    Ok(())
}

fn train_config(set: &[String]) -> Result<LmTrainConfig> {
    let overrides: Vec<_> = rein_train::settings::parse_overrides(set)?
        .into_iter()
        .collect();
    let c: LmTrainConfig = rein_train::settings::with_overrides(&overrides)?;
    c.validate()?;
    Ok(c)
}

/// Runs the trainer to `max_steps` through the library run loop: progress bar, metrics.csv,
/// loss_curve.png, periodic one-file checkpoints and a Hugging Face export in `run/model/`
/// (with the tokenizer of `tk_dir`); `command` is how to resume it.
fn run_trainer(
    t: LmTrainer,
    run: &Path,
    tk_dir: &Path,
    common: &TrainCommon,
    resumed: bool,
) -> Result<LmTrainer> {
    let tokenizer = Tokenizer::from_dir(tk_dir)?
        .with_context(|| format!("{}: no tokenizer", tk_dir.display()))?;
    let mut s = rein_lm::train::SupervisedTrainer {
        trainer: t,
        tokenizer,
    };
    let options = rein_train::RunOptions {
        checkpoint_every: common.checkpoint_every,
        max_updates: common.max_updates,
        sample_every: 0,
        resumed,
    };
    crate::session::run(&mut s, run, &options, common.quiet, &common.resume_command)?;
    Ok(s.trainer)
}

fn resume_lm(dir: &Path, common: &TrainCommon) -> Result<()> {
    let ckpt = dir.join(rein_train::files::CHECKPOINT);
    if !ckpt.exists() {
        bail!("{}: no checkpoint to resume from", ckpt.display());
    }
    let t = LmTrainer::load_checkpoint(&ckpt)?;
    eprintln!("resuming {} at step {}", dir.display(), t.step);
    let tk_dir = dir.join("model");
    let t = run_trainer(t, dir, &tk_dir, common, true)?;
    println!("step {}; model in {}", t.step, dir.join("model").display());
    Ok(())
}

pub fn pretrain(a: &PretrainArgs) -> Result<()> {
    let mut common = a.common.clone();
    common.resume_command = "rein lm pretrain --resume".into();
    if let Some(dir) = &a.resume {
        return resume_lm(dir, &common);
    }
    let (tk_dir, data) = (
        a.tokenizer.clone().unwrap_or_default(),
        a.data.clone().unwrap_or_default(),
    );
    let tk = Tokenizer::from_dir(&tk_dir)?.with_context(|| {
        format!(
            "{}: no tokenizer.json (or vocab.json + merges.txt)",
            tk_dir.display()
        )
    })?;
    let cfg = train_config(&common.set)?;
    let mc = match &a.config {
        Some(p) => rein_lm::Gpt2Config::load(p)?,
        None => rein_lm::Gpt2Config {
            n_layer: a.n_layer,
            n_embd: a.n_embd,
            n_head: a.n_head,
            n_positions: a.n_positions,
            ..Default::default()
        },
    };
    let (model, examples) = rein_lm::train::pretraining_setup(&tk, &data, &cfg, mc)?;
    let what = format!(
        "{} blocks of {} tokens, {:.2}M parameters",
        examples.len(),
        cfg.block_size,
        model.config.num_parameters() as f64 / 1e6
    );
    start_supervised(&common, "pretrain", cfg, model, tk, examples, &what)
}

/// A new supervised run of `kind` in `common.runs_dir`: config.toml, the tokenizer in
/// `model/`, the run loop, and the held-out loss at the end.
fn start_supervised(
    common: &TrainCommon,
    kind: &str,
    cfg: LmTrainConfig,
    model: Model,
    tk: Tokenizer,
    examples: Vec<Example>,
    what: &str,
) -> Result<()> {
    let run = rein_train::create_run_dir(&common.runs_dir, "lm", kind, cfg.seed)?;
    write_train_config(&run, &cfg)?;
    std::fs::create_dir_all(run.join("model"))?;
    tk.save(&run.join("model/tokenizer.json"))?;
    println!("run directory: {} ({what})", run.display());
    let t = LmTrainer::new(cfg, model, examples)?;
    let t = run_trainer(t, &run, &run.join("model"), common, false)?;
    report_end(&t)
}

fn write_train_config(run: &Path, cfg: &LmTrainConfig) -> Result<()> {
    let text = toml::to_string(cfg)?;
    rein_core::metrics::write_atomic(&run.join("config.toml"), text.as_bytes())?;
    Ok(())
}

fn report_end(t: &LmTrainer) -> Result<()> {
    if t.eval_len() > 0 {
        let l = t.evaluate()?;
        println!(
            "eval loss {l:.4}, perplexity {:.3} ({} held-out examples)",
            l.exp(),
            t.eval_len()
        );
    }
    Ok(())
}

pub fn sft(a: &SftArgs) -> Result<()> {
    let mut common = a.common.clone();
    common.resume_command = "rein lm sft --resume".into();
    if let Some(dir) = &a.resume {
        return resume_lm(dir, &common);
    }
    let (mdir, data) = (
        a.model.clone().unwrap_or_default(),
        a.data.clone().unwrap_or_default(),
    );
    let (model, tk) = rein_lm::checkpoint::load_model_and_tokenizer(&mdir)?;
    let cfg = train_config(&common.set)?;
    let examples = rein_lm::train::sft_examples(&tk, &model, &data)
        .with_context(|| format!("fine-tuning {} on {}", mdir.display(), data.display()))?;
    let what = format!("{} records", examples.len());
    start_supervised(&common, "sft", cfg, model, tk, examples, &what)
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  rein lm quickstart                      # writes models/quickstart\n  rein lm generate --model models/quickstart --prompt \"Q: 23 + 5 - 7 = ? Work:\" --max-new-tokens 30 --stop $'\\n'"
)]
pub struct QuickstartArgs {
    /// Where the model directory goes.
    #[arg(long, default_value = "models/quickstart")]
    out: PathBuf,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1800)]
    steps: u64,
    /// Seed of the data and the model.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share of the training problems written with a worked solution (the rest are answered
    /// directly).
    #[arg(long, default_value_t = 0.3)]
    worked_fraction: f64,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

impl QuickstartArgs {
    /// The defaults with another output directory.
    pub fn new(out: PathBuf, quiet: bool) -> Self {
        Self {
            out,
            steps: 1800,
            seed: 0,
            worked_fraction: 0.3,
            quiet,
        }
    }
}

/// `rein lm quickstart`: the default small model, built from nothing: arithmetic text generated
/// here, a byte-level BPE trained on it, a 4-layer GPT-2 pretrained on it.
pub fn quickstart(a: &QuickstartArgs) -> Result<()> {
    let start = std::time::Instant::now();
    let work = a.out.with_extension("work");
    std::fs::create_dir_all(&work)?;
    let q = rein_lm::quickstart::prepare(&work, a.seed, a.worked_fraction, a.steps)?;
    println!(
        "quickstart: {} problems -> {} blocks of 128 tokens, tokenizer of {} entries, GPT-2 with {:.2}M parameters",
        q.train_problems,
        q.examples.len(),
        q.tokenizer.vocab_size(),
        q.model.config.num_parameters() as f64 / 1e6
    );
    let (tk, tk_dir, eval) = (q.tokenizer, q.tokenizer_dir, q.held_out);
    let common = TrainCommon {
        set: Vec::new(),
        runs_dir: work.clone(),
        checkpoint_every: 100,
        max_updates: None,
        quiet: a.quiet,
        resume_command: String::new(),
    };
    let run = rein_train::create_run_dir(&work, "lm", "quickstart", a.seed)?;
    write_train_config(&run, &q.config)?;
    let t = LmTrainer::new(q.config, q.model, q.examples)?;
    let t = run_trainer(t, &run, &tk_dir, &common, false)?;
    rein_lm::quickstart::write_model(&a.out, &t.model, &tk, &eval)?;
    let free = answer_stats(&t.model, &tk, &eval, "")?;
    let worked = answer_stats(
        &t.model,
        &tk,
        &eval,
        &format!(" {}", rein_lm::tasks::WORK_MARK),
    )?;
    println!(
        "model written to {} in {:.0} s; eval loss {:.4}; greedy accuracy on 500 held-out problems: {:.1}% ({:.1}% of answers worked); told to work it out (prompt + \" Work:\"): {:.1}%",
        a.out.display(),
        start.elapsed().as_secs_f64(),
        t.evaluate()?,
        100.0 * free.accuracy,
        100.0 * free.worked,
        100.0 * worked.accuracy,
    );
    Ok(())
}
