//! `rein lm grpo` (GRPO, Dr. GRPO, RLOO, REINFORCE on a prompt file) and `rein lm demo` (the
//! verifiable-arithmetic pipeline: evaluate, RL-train, evaluate again).

use crate::cmd_lm::{answer_accuracy, quickstart, QuickstartArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use rein_lm::grpo::{GrpoConfig, GrpoLog, GrpoTrainer};
use rein_lm::rl::{ExactAnswer, PromptRecord, ResponseBatch, Reward};
use rein_lm::{Gpt2, Tokenizer};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm grpo --model models/quickstart --prompts train.jsonl --set max_steps=200 --set max_new_tokens=6 --set 'stop_strings=[\"\\n\"]'\n  rein lm grpo --model models/quickstart --prompts train.jsonl --set baseline=leave_one_out   # RLOO\n  rein lm grpo --resume runs/lm/<run directory>\n\nPrompts: JSON lines {\"prompt\": ..., \"answer\": ...} (or \"reference\"/\"references\").\nReward: exact_answer (the first number of the response equals the answer).\nSettings (--set key=value): max_steps, prompts_per_step, group_size, max_new_tokens,\ntemperature, top_k, learning_rate, warmup_steps, weight_decay, max_grad_norm, clip_eps, epochs,\nbeta, kl_estimator = k1|k2|k3, baseline = group_normalized (GRPO) | group_mean (Dr. GRPO) |\nleave_one_out (RLOO) | batch_mean (REINFORCE), stop_strings, seed."
)]
pub struct GrpoArgs {
    /// Starting model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long, required_unless_present = "resume")]
    model: Option<PathBuf>,
    /// JSONL prompts.
    #[arg(long, required_unless_present = "resume")]
    prompts: Option<PathBuf>,
    /// Setting `key=value`; repeatable.
    #[arg(long = "set")]
    set: Vec<String>,
    /// Where run directories go.
    #[arg(long, default_value = "runs/lm")]
    runs_dir: PathBuf,
    /// Steps between checkpoints (0: only at the end).
    #[arg(long, default_value_t = 50)]
    checkpoint_every: u64,
    /// Steps between sample dumps to samples.jsonl.
    #[arg(long, default_value_t = 20)]
    sample_every: u64,
    /// Continue a run directory from its checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Stop after this many steps in this invocation (with a checkpoint).
    #[arg(long)]
    max_updates: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn grpo_config(set: &[String]) -> Result<GrpoConfig> {
    let mut v = serde_json::to_value(GrpoConfig::default())?;
    for (k, val) in crate::options::kv_map(set)? {
        crate::options::set_path(&mut v, &k, val)?;
    }
    let c: GrpoConfig = serde_json::from_value(v).context("invalid --set value")?;
    c.validate()?;
    Ok(c)
}

fn load_model_and_tokenizer(dir: &Path) -> Result<(Gpt2, Tokenizer)> {
    let model = rein_lm::checkpoint::load_model(dir)?;
    let tk = Tokenizer::from_dir(dir)?.with_context(|| {
        format!(
            "{}: no tokenizer.json (or vocab.json + merges.txt)",
            dir.display()
        )
    })?;
    Ok((model, tk))
}

/// `rein lm grpo`.
pub fn grpo(a: &GrpoArgs) -> Result<()> {
    let (run, trainer, tk, resumed) = if let Some(run) = &a.resume {
        let tk = Tokenizer::from_file(&run.join("tokenizer.json"))?;
        let t = GrpoTrainer::load_checkpoint(&run.join("checkpoint.safetensors"), &tk)?;
        (run.clone(), t, tk, true)
    } else {
        let (Some(model_dir), Some(prompts)) = (&a.model, &a.prompts) else {
            bail!("--model and --prompts are required without --resume");
        };
        let cfg = grpo_config(&a.set)?;
        let (model, tk) = load_model_and_tokenizer(model_dir)?;
        let records = rein_lm::rl::read_prompts(prompts)?;
        let run = crate::run_dir::create(&a.runs_dir, "lm", "grpo", cfg.seed)?;
        tk.save(&run.join("tokenizer.json"))?;
        rein_core::metrics::write_atomic(
            &run.join("config.toml"),
            toml::to_string(&cfg)?.as_bytes(),
        )?;
        (run, GrpoTrainer::new(cfg, model, records, &tk)?, tk, false)
    };
    println!("run directory: {}", run.display());
    let t = run_grpo(
        trainer,
        &mut ExactAnswer,
        &tk,
        &run,
        &RunOptions {
            checkpoint_every: a.checkpoint_every,
            sample_every: a.sample_every,
            max_updates: a.max_updates,
            quiet: a.quiet,
            resumed,
        },
    )?;
    println!(
        "{} steps done; model in {}",
        t.step,
        run.join("model").display()
    );
    Ok(())
}

struct RunOptions {
    checkpoint_every: u64,
    sample_every: u64,
    max_updates: Option<u64>,
    quiet: bool,
    resumed: bool,
}

/// The training loop: progress bar, metrics.csv, samples.jsonl, reward_curve.png, periodic
/// atomic checkpoints, the final model in `run/model/`.
fn run_grpo(
    mut t: GrpoTrainer,
    reward: &mut dyn Reward,
    tk: &Tokenizer,
    run: &Path,
    o: &RunOptions,
) -> Result<GrpoTrainer> {
    let csv = run.join("metrics.csv");
    let mut logger = if o.resumed {
        rein_core::metrics::CsvLogger::resume(&csv, &GrpoLog::COLUMNS, t.step as usize)?
    } else {
        rein_core::metrics::CsvLogger::create(&csv, &GrpoLog::COLUMNS)?
    };
    let mut samples = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.join("samples.jsonl"))?;
    let total = t.config.max_steps;
    let bar = crate::cmd_lm::step_bar(total, t.step, o.quiet);
    let ckpt = run.join("checkpoint.safetensors");
    let mut done_here = 0u64;
    while t.step < total {
        let log = t.train_step(reward, tk)?;
        logger.log(&log.row())?;
        bar.set_position(t.step);
        bar.set_message(format!(
            "score {:.3} kl {:.3} len {:.1}",
            log.scores, log.kl, log.response_length
        ));
        if o.sample_every > 0 && t.step.is_multiple_of(o.sample_every) {
            for s in t.last_samples.iter().take(8) {
                let line = serde_json::json!({"step": t.step, "prompt": s.prompt, "response": s.response, "reward": s.reward});
                writeln!(samples, "{line}")?;
            }
        }
        done_here += 1;
        let stop_here = o.max_updates.is_some_and(|m| done_here >= m);
        if (o.checkpoint_every > 0 && t.step.is_multiple_of(o.checkpoint_every)) || stop_here {
            t.save_checkpoint(&ckpt)?;
        }
        if stop_here {
            break;
        }
    }
    bar.finish_and_clear();
    t.save_checkpoint(&ckpt)?;
    let dir = run.join("model");
    rein_lm::checkpoint::save_model(&t.policy, &dir, &[])?;
    tk.save(&dir.join("tokenizer.json"))?;
    crate::plot::csv_curve(
        run,
        "reward_curve.png",
        ("step", "objective/scores"),
        ("step", "mean task score"),
    )?;
    Ok(t)
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  rein lm demo                  # builds models/quickstart first when it is missing\n  rein lm demo --steps 100 --quiet\n\nPrints `accuracy before: N%` and `accuracy after: N%` (greedy answers to the model's 500\nheld-out problems) and the KL to the starting model; the run directory holds metrics.csv,\nreward_curve.png (objective/scores per step), samples.jsonl and the trained model."
)]
pub struct DemoArgs {
    /// The supervised starting model (built by `rein lm quickstart` when missing).
    #[arg(long, default_value = "models/quickstart")]
    model: PathBuf,
    /// GRPO steps.
    #[arg(long, default_value_t = 300)]
    steps: u64,
    /// Extra GRPO setting `key=value`; repeatable.
    #[arg(long = "set")]
    set: Vec<String>,
    /// Where the run directory goes.
    #[arg(long, default_value = "runs/lm")]
    runs_dir: PathBuf,
    /// Training problems (generated, none of them a held-out prompt); each comes back every
    /// `pool / prompts_per_step` steps.
    #[arg(long, default_value_t = 1000)]
    pool: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// The demo's GRPO settings (overridable with --set).
fn demo_config(a: &DemoArgs) -> Result<GrpoConfig> {
    let mut set = vec![
        format!("max_steps={}", a.steps),
        "prompts_per_step=8".into(),
        "group_size=16".into(),
        "max_new_tokens=6".into(),
        "learning_rate=0.00003".into(),
        "warmup_steps=10".into(),
        "beta=0".into(),
        "stop_strings=[\"\\n\"]".into(),
        format!("seed={}", a.seed),
    ];
    set.extend(a.set.iter().cloned());
    grpo_config(&set)
}

/// `rein lm demo`.
pub fn demo(a: &DemoArgs) -> Result<()> {
    let start = std::time::Instant::now();
    if !a.model.join("model.safetensors").exists() {
        println!(
            "{} not found: building it with `rein lm quickstart`",
            a.model.display()
        );
        quickstart(&QuickstartArgs::new(a.model.clone(), a.quiet))?;
    }
    let cfg = demo_config(a)?;
    let (model, tk) = load_model_and_tokenizer(&a.model)?;
    let held_path = a.model.join("heldout.jsonl");
    let held: Vec<rein_lm::tasks::Problem> = std::fs::read_to_string(&held_path)
        .with_context(|| format!("{}: held-out problems", held_path.display()))?
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a problem record", held_path.display(), i + 1))
        })
        .collect::<Result<_>>()?;
    let before = answer_accuracy(&model, &tk, &held)?;
    println!("accuracy before: {:.1}%", 100.0 * before);
    let held_prompts: std::collections::HashSet<&str> =
        held.iter().map(|p| p.prompt.as_str()).collect();
    let train: Vec<PromptRecord> = rein_lm::tasks::arithmetic_problems(20_000, 1_000 + a.seed)
        .into_iter()
        .filter(|p| !held_prompts.contains(p.prompt.as_str()))
        .take(a.pool)
        .map(|p| PromptRecord {
            prompt: p.prompt,
            references: vec![p.answer],
        })
        .collect();
    let run = crate::run_dir::create(&a.runs_dir, "lm", "demo", a.seed)?;
    tk.save(&run.join("tokenizer.json"))?;
    rein_core::metrics::write_atomic(&run.join("config.toml"), toml::to_string(&cfg)?.as_bytes())?;
    let t = GrpoTrainer::new(cfg, model, train, &tk)?;
    let t = run_grpo(
        t,
        &mut ExactAnswer,
        &tk,
        &run,
        &RunOptions {
            checkpoint_every: 50,
            sample_every: 20,
            max_updates: None,
            quiet: a.quiet,
            resumed: false,
        },
    )?;
    let after = answer_accuracy(&t.policy, &tk, &held)?;
    let kl = heldout_kl(&t, &tk, &held)?;
    println!("accuracy after: {:.1}%", 100.0 * after);
    println!(
        "KL(policy || start) on held-out prompts: {kl:.4} nats per response (k1, one sample each); run directory {}; {:.0} s in all",
        run.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Mean summed-token KL estimate (k1) of one sampled response per held-out prompt.
fn heldout_kl(t: &GrpoTrainer, tk: &Tokenizer, held: &[rein_lm::tasks::Problem]) -> Result<f64> {
    let gcfg = rein_lm::GenerationConfig {
        max_new_tokens: t.config.max_new_tokens,
        do_sample: true,
        temperature: 1.0,
        eos_token_id: t.policy.config.eos_token_id,
        seed: 12_345,
        ..Default::default()
    };
    let mut total = 0.0;
    for chunk in held.chunks(64) {
        let prompts = chunk
            .iter()
            .map(|p| tk.encode(&p.prompt))
            .collect::<Result<Vec<_>, _>>()?;
        let gens = rein_lm::generate(&t.policy, &prompts, &gcfg, None, None)?;
        let responses: Vec<Vec<u32>> = gens.into_iter().map(|g| g.ids).collect();
        let b = ResponseBatch::new(&prompts, &responses, t.policy.config.n_positions)?;
        let (lp, _) = b.logprobs(&t.policy, 1.0, None)?;
        let (lr, _) = b.logprobs(&t.reference, 1.0, None)?;
        total += rein_lm::grpo::sequence_kl(&lp, &lr, &b.token_mask, rein_lm::rl::KlEstimator::K1)?
            * chunk.len() as f64;
    }
    Ok(total / held.len().max(1) as f64)
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm metric bleu --hyps out.txt --refs ref.txt --json\n  rein lm metric chrf --hyps out.jsonl --refs ref.jsonl --jsonl --json\n\nBLEU and chrF as sacrebleu 2.x computes them by default (13a tokenizer, case-sensitive, exp\nsmoothing; chrF: 6 character orders, beta 2). `corpus` is the corpus-level score; each entry\nof `sentences` is sacrebleu's sentence_bleu (effective order) or sentence_chrf.\nROUGE: rouge-score's rouge1/rouge2/rougeL/rougeLsum (precision, recall, fmeasure) of each pair,
`corpus` their mean; without the stemmer (--stem is not implemented yet). VADER: not yet."
)]
pub struct MetricArgs {
    /// bleu, chrf or rouge.
    metric: String,
    /// Hypotheses: one per line (or one JSON string per line with --jsonl).
    #[arg(long)]
    hyps: PathBuf,
    /// References, aligned with the hypotheses.
    #[arg(long)]
    refs: PathBuf,
    /// Read one JSON string per line (texts with newlines).
    #[arg(long)]
    jsonl: bool,
    /// ROUGE with the Porter stemmer (not implemented yet: an error).
    #[arg(long)]
    stem: bool,
    /// Print JSON: {"corpus": {...}, "sentences": [...]}.
    #[arg(long)]
    json: bool,
}

fn read_texts(path: &Path, jsonl: bool) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let l = l.strip_suffix('\r').unwrap_or(l);
            if jsonl {
                serde_json::from_str::<String>(l).with_context(|| {
                    format!(
                        "{}:{}: expected one JSON string per line",
                        path.display(),
                        i + 1
                    )
                })
            } else {
                Ok(l.to_string())
            }
        })
        .collect()
}

/// `rein lm metric`.
pub fn metric(a: &MetricArgs) -> Result<()> {
    use rein_lm::metrics as m;
    let hyps = read_texts(&a.hyps, a.jsonl)?;
    let refs = read_texts(&a.refs, a.jsonl)?;
    if hyps.len() != refs.len() {
        bail!(
            "{} has {} texts but {} has {}: they must be aligned line by line",
            a.hyps.display(),
            hyps.len(),
            a.refs.display(),
            refs.len()
        );
    }
    let h: Vec<&str> = hyps.iter().map(String::as_str).collect();
    let r: Vec<&str> = refs.iter().map(String::as_str).collect();
    let (corpus, sentences) = match a.metric.as_str() {
        "bleu" => (
            serde_json::to_value(m::corpus_bleu(&h, std::slice::from_ref(&r)))?,
            h.iter()
                .zip(&r)
                .map(|(x, y)| serde_json::to_value(m::sentence_bleu(x, &[y])))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        "chrf" => (
            serde_json::json!({"score": m::corpus_chrf(&h, std::slice::from_ref(&r))}),
            h.iter()
                .zip(&r)
                .map(|(x, y)| serde_json::json!({"score": m::sentence_chrf(x, &[y])}))
                .collect(),
        ),
        "rouge" => {
            if a.stem {
                bail!("--stem (ROUGE with nltk's Porter stemmer) is not implemented yet; run without it");
            }
            let each: Vec<m::Rouge> = h.iter().zip(&r).map(|(x, y)| m::rouge(y, x)).collect();
            (
                serde_json::to_value(m::Rouge::mean(&each))?,
                each.iter()
                    .map(serde_json::to_value)
                    .collect::<Result<Vec<_>, _>>()?,
            )
        }
        "vader" => bail!("metric \"vader\" is not implemented yet (bleu, chrf and rouge are)"),
        other => bail!("unknown metric {other:?} (expected bleu, chrf or rouge)"),
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({"corpus": corpus, "sentences": sentences})
        );
    } else {
        // BLEU and chrF have one score; ROUGE's headline is the mean rougeL F1.
        let headline = corpus["score"]
            .as_f64()
            .or_else(|| corpus["rougeL"]["fmeasure"].as_f64())
            .unwrap_or(0.0);
        println!(
            "{} = {headline:.4} ({} segments)",
            a.metric.to_uppercase(),
            h.len()
        );
    }
    Ok(())
}
