//! `rein lm grpo` and `rein lm ppo` (RL fine-tuning of a model on a prompt file with any
//! reward or task preset), `rein lm demo` (the verifiable-arithmetic pipeline: evaluate,
//! RL-train, evaluate again) and `rein lm metric` (text metrics from the command line).

use crate::cmd_lm::{quickstart, QuickstartArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use rein_lm::evaluation::{answer_stats, greedy_scored, kl_to_reference, EvalDecoding};
use rein_lm::rl::grpo::{GrpoConfig, GrpoTrainer};
use rein_lm::rl::trainer::{reward_specs, RlMethod, RlTrainer, TaskPreset, GRPO_KIND, PPO_KIND};
use rein_train::{files, RunOptions};
use std::path::{Path, PathBuf};

/// Options shared by `rein lm grpo` and `rein lm ppo`.
#[derive(Args)]
pub struct RlArgs {
    /// Starting model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long, required_unless_present = "resume")]
    model: Option<PathBuf>,
    /// JSONL prompts (default: the preset's `prompts`).
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Task preset (TOML: trainer settings, rewards, data paths); see presets/lm/.
    #[arg(long)]
    preset: Option<PathBuf>,
    /// Reward `kind[:key=value,...][@weight]`; repeatable (a weighted sum). Replaces the
    /// preset's rewards. Default: exact_answer.
    #[arg(long)]
    reward: Vec<String>,
    /// Setting `key=value` (over the preset's); repeatable.
    #[arg(long = "set")]
    set: Vec<String>,
    /// Where run directories go.
    #[arg(long, default_value = "runs/lm")]
    runs_dir: PathBuf,
    /// Steps between checkpoints (0: not by steps; always at the end).
    #[arg(long, default_value_t = 50)]
    checkpoint_every: u64,
    /// Also a checkpoint after the first step that ends this many seconds after the last
    /// one (0, the default: not by time).
    #[arg(long, default_value_t = 0.0)]
    checkpoint_seconds: f64,
    /// Steps between sample dumps to samples.jsonl.
    #[arg(long, default_value_t = 20)]
    sample_every: u64,
    /// Continue a run directory from its checkpoint (with --set max_steps=N: train on to
    /// step N; no other setting changes a resumed run).
    #[arg(long, conflicts_with_all = ["model", "prompts", "preset", "reward", "runs_dir"])]
    resume: Option<PathBuf>,
    /// Stop after this many steps in this invocation (with a checkpoint).
    #[arg(long)]
    max_updates: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Under `mpirun` (a build with the `mpi` feature): compare the ranks' weights every this
    /// many steps and stop every rank with an error if they differ (0: never).
    #[arg(long, default_value_t = 100)]
    check_weights_every: u64,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm grpo --model models/quickstart --prompts train.jsonl --set max_steps=200 --set max_new_tokens=6 --set 'stop_strings=[\"\\n\"]'\n  rein lm grpo --model models/quickstart --prompts train.jsonl --set baseline=leave_one_out   # RLOO\n  rein lm grpo --model DIR --preset presets/lm/translation.toml --reward metric:metric=chrf\n  rein lm grpo --resume runs/lm/<run directory>\n\nSettings (--set key=value): max_steps, prompts_per_step, group_size, max_new_tokens,\ntemperature, top_k, learning_rate, warmup_steps, weight_decay, max_grad_norm, clip_eps, epochs,\nbeta, kl_estimator = k1|k2|k3, baseline = group_normalized (GRPO) | group_mean (Dr. GRPO) |\nleave_one_out (RLOO) | batch_mean (REINFORCE) | none (REINFORCE without baseline),\nstop_strings, seed.\n\nRewards (--reward, repeatable; weights after @): exact_answer | metric:metric=bleu|chrf|rouge1|rouge2|rougeL|rougeLsum[,stem=true] |\nvader | length:target=N | distinct_n:n=N | repetition:n=N | regex:pattern=RE |\ncommand:command=PROGRAM ARGS[,timeout_s=S] | reward_model:path=DIR. Default exact_answer."
)]
pub struct GrpoArgs {
    #[command(flatten)]
    rl: RlArgs,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm ppo --model DIR --preset presets/lm/sentiment.toml\n  rein lm ppo --model DIR --prompts docs.jsonl --reward metric:metric=rougeL --reward length:target=30@0.1\n  rein lm ppo --model DIR --prompts p.jsonl --reward 'command:command=python3 score.py,timeout_s=30'\n  rein lm ppo --resume runs/lm/<run directory>\n\nSettings (--set key=value, TRL's names): max_steps, prompts_per_step, samples_per_prompt,\nmax_new_tokens, temperature, top_k, stop_strings, learning_rate, warmup_steps, weight_decay,\nmax_grad_norm, num_ppo_epochs, num_mini_batches, gradient_accumulation_steps, cliprange,\ncliprange_value, vf_coef, gamma, lam, kl_coef, kl_estimator = k1|k2|k3, target_kl (adaptive KL),\nkl_horizon, whiten_rewards, score_scaling = none|scale|norm, score_clip, missing_eos_penalty,\nratio_threshold, early_stop_kl, value_model = head|separate, seed.\n\nRewards (--reward, repeatable; weights after @): exact_answer | metric:metric=bleu|chrf|rouge1|rouge2|rougeL|rougeLsum[,stem=true] |\nvader | length:target=N | distinct_n:n=N | repetition:n=N | regex:pattern=RE |\ncommand:command=PROGRAM ARGS[,timeout_s=S] | reward_model:path=DIR. Default exact_answer.\nAn external command reads JSON lines {\"prompt\", \"response\", \"references\"} on stdin and\nwrites one number per line."
)]
pub struct PpoArgs {
    #[command(flatten)]
    rl: RlArgs,
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  rein lm check-preset presets/lm/summarization.toml\n\nParses the preset, checks its settings against its trainer's (grpo or ppo), reads its\nprompt files and builds its rewards (a reward model that is not trained yet is reported,\nnot an error)."
)]
pub struct CheckPresetArgs {
    /// The preset file.
    preset: PathBuf,
}

/// `rein lm check-preset`.
pub fn check_preset(a: &CheckPresetArgs) -> Result<()> {
    for line in TaskPreset::read(&a.preset)?.check(&a.preset)? {
        println!("{line}");
    }
    Ok(())
}

/// `rein lm grpo`.
pub fn grpo(a: &GrpoArgs) -> Result<()> {
    rl_command(&a.rl, GRPO_KIND)
}

/// `rein lm ppo`.
pub fn ppo(a: &PpoArgs) -> Result<()> {
    rl_command(&a.rl, PPO_KIND)
}

/// `rein lm grpo|ppo` (`kind` is the trainer's checkpoint kind): a new run or a resumed one.
fn rl_command(a: &RlArgs, kind: &str) -> Result<()> {
    let name = kind.trim_start_matches("lm-");
    let (run, trainer, resumed) = if let Some(run) = &a.resume {
        crate::session::check_run_kind(run, &[kind])?;
        let max_steps = crate::cmd_lm::resumed_max_steps(&a.set, run)?;
        let mut t = RlTrainer::resume(run)?;
        if let Some(n) = max_steps {
            t.set_max_steps(n)?;
            rein_train::write_config(run, &t.settings_toml()?)?;
        }
        (run.clone(), t, true)
    } else {
        let preset = a.preset.as_deref().map(TaskPreset::read).transpose()?;
        if let Some(p) = &preset {
            if let Some(tr) = p.trainer.as_deref().filter(|t| *t != name) {
                bail!(
                    "{} is a preset for `rein lm {tr}`, not `rein lm {name}` (their settings differ)",
                    a.preset.as_deref().unwrap_or(Path::new("")).display(),
                );
            }
            if !p.description.is_empty() && rein_core::collective::is_root() {
                println!("task: {}", p.description);
            }
        }
        let Some(model_dir) = &a.model else {
            bail!("--model is required without --resume");
        };
        let prompts = a
            .prompts
            .clone()
            .or_else(|| preset.as_ref().and_then(|p| p.prompts.clone()))
            .context("--prompts is required (or a --preset with `prompts`)")?;
        let specs = reward_specs(&a.reward, preset.as_ref())?;
        let overrides: Vec<_> = rein_train::settings::parse_overrides(&a.set)?
            .into_iter()
            .collect();
        let records = rein_lm::rl::reward::read_prompts(&prompts)?;
        let (t, config_toml, seed) = RlTrainer::build(
            kind,
            preset.as_ref(),
            &overrides,
            model_dir,
            records,
            &specs,
        )?;
        let run = rein_train::create_run_dir(&a.runs_dir, "lm", name, seed)?;
        t.write_run_files(&run, &config_toml, &specs)?;
        (run, t, false)
    };
    // Under MPI rank 0 speaks for the run.
    let root = rein_core::collective::is_root();
    if root {
        println!(
            "run directory: {}; reward: {}",
            run.display(),
            trainer.reward.name()
        );
    }
    let mut trainer = trainer;
    let options = RunOptions {
        checkpoint_every: a.checkpoint_every,
        checkpoint_seconds: a.checkpoint_seconds,
        max_updates: a.max_updates,
        sample_every: a.sample_every,
        resumed,
        check_weights_every: a.check_weights_every,
    };
    let resume_command = format!("rein lm {name} --resume");
    crate::session::run(&mut trainer, &run, &options, a.quiet, &resume_command)?;
    if !root {
        return Ok(());
    }
    println!(
        "{} steps done; model in {}",
        rein_train::Trainer::updates(&trainer),
        run.join(files::MODEL).display()
    );
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm demo                  # builds models/quickstart first when it is missing\n  rein lm demo --steps 60 --quiet\n  rein lm demo --reward exact_answer          # correctness only (does not switch to worked answers)\n  rein lm demo --model SmolLM2-135M-Instruct.Q4_1.gguf --preset presets/lm/smollm2-arithmetic.toml\n  rein lm demo --model SmolLM2-135M-Instruct.Q4_1.gguf --preset presets/lm/smollm2-arithmetic.toml --lora\n\nWithout --preset: the quickstart model answers most problems directly and knows worked solutions\n(` Work: 23 + 5 = 28, 28 - 7 = 21. Answer: 21`), which are right more often when decoded greedily.\nGRPO with the reward `correct answer + 0.2 for starting with a worked solution` (sampling\ntemperature 0.5) teaches it to work problems out.\nWith --preset: GRPO on the preset's (chat) prompts with its rewards and settings, accuracy\nmeasured by its exact_answer reward on its eval_prompts; --lora trains a LoRA adapter (the\npreset's [settings.lora]) instead of every weight.\nPrints `accuracy before: N%` and `accuracy after: N%` (greedy answers to the held-out problems),\nexamples before and after, and the KL to the starting model; the run directory holds metrics.csv,\nreward_curve.png (objective/scores per step), samples.jsonl and the trained model (and adapter/)."
)]
pub struct DemoArgs {
    /// The starting model: a directory or .gguf file (default: the supervised quickstart model,
    /// built by `rein lm quickstart` when missing).
    #[arg(long, default_value = "models/quickstart")]
    model: PathBuf,
    /// A task preset (TOML) with chat prompts, eval_prompts, an exact_answer reward and GRPO
    /// settings, e.g. presets/lm/smollm2-arithmetic.toml.
    #[arg(long)]
    preset: Option<PathBuf>,
    /// Train a LoRA adapter instead of every weight.
    #[arg(long)]
    lora: bool,
    /// GRPO steps (default: the preset's max_steps, else 100).
    #[arg(long)]
    steps: Option<u64>,
    /// Extra GRPO setting `key=value`; repeatable.
    #[arg(long = "set")]
    set: Vec<String>,
    /// Reward terms as for `rein lm grpo --reward`; repeatable. Default: the preset's, else the
    /// correct answer plus 0.2 for a response that starts with a worked solution (a format
    /// reward, as DeepSeek-R1-Zero's).
    #[arg(long = "reward")]
    reward: Vec<String>,
    /// Where the run directory goes.
    #[arg(long, default_value = "runs/lm")]
    runs_dir: PathBuf,
    /// Training problems of the quickstart demo (generated, none of them a held-out prompt);
    /// each comes back every `pool / prompts_per_step` steps.
    #[arg(long, default_value_t = 1000)]
    pool: usize,
    /// Held-out examples printed before and after.
    #[arg(long, default_value_t = 4)]
    examples: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// The demo's GRPO settings (`rein_lm::demo::settings`), then --set.
fn demo_config(a: &DemoArgs) -> Result<GrpoConfig> {
    let mut set = rein_lm::demo::settings(a.steps.unwrap_or(100), a.seed);
    if a.lora {
        set.push(("lora.enabled".into(), true.into()));
    }
    set.extend(rein_train::settings::parse_overrides(&a.set)?);
    let c: GrpoConfig = rein_lm::rl::trainer::settings(None, &set)?;
    c.validate()?;
    Ok(c)
}

/// `rein lm demo`.
pub fn demo(a: &DemoArgs) -> Result<()> {
    if let Some(p) = &a.preset {
        return demo_preset(a, p);
    }
    let start = std::time::Instant::now();
    if !a.model.join("model.safetensors").exists() {
        println!(
            "{} not found: building it with `rein lm quickstart`",
            a.model.display()
        );
        quickstart(&QuickstartArgs::new(a.model.clone(), a.quiet))?;
    }
    let cfg = demo_config(a)?;
    let (model, tk) = rein_lm::checkpoint::load_model_and_tokenizer(&a.model)?;
    let held = rein_lm::demo::read_problems(&a.model.join("heldout.jsonl"))?;
    let before = answer_stats(&model, &tk, &held, "")?;
    println!(
        "accuracy before: {:.1}% ({:.1}% of answers worked)",
        100.0 * before.accuracy,
        100.0 * before.worked
    );
    let train = rein_lm::demo::training_pool(&held, a.pool, a.seed);
    let run = rein_train::create_run_dir(&a.runs_dir, "lm", "demo", a.seed)?;
    let rewards = if a.reward.is_empty() {
        vec![
            "exact_answer".to_string(),
            "regex:pattern=^ Work:@0.2".to_string(),
        ]
    } else {
        a.reward.clone()
    };
    let specs = reward_specs(&rewards, None)?;
    let model = model.with_lora(&cfg.lora, &a.model, cfg.seed)?;
    let trainer = RlTrainer {
        method: RlMethod::Grpo(GrpoTrainer::new(cfg.clone(), model, train, &tk)?),
        reward: rein_lm::rl::rewards::build_reward(&specs)?,
        tokenizer: tk.clone(),
        chat_template: None,
    };
    let t = train_demo(trainer, &run, &cfg, &specs, 50, a.quiet)?;
    let after = answer_stats(&t.policy, &tk, &held, "")?;
    let decoding = EvalDecoding {
        max_new_tokens: t.config.max_new_tokens,
        ..Default::default()
    };
    let prompts: Vec<String> = held.iter().map(|p| p.prompt.clone()).collect();
    let kl = kl_to_start(&t, &a.model, &tk, &prompts, &decoding)?;
    println!(
        "accuracy after: {:.1}% ({:.1}% of answers worked)",
        100.0 * after.accuracy,
        100.0 * after.worked
    );
    println!(
        "KL(policy || start) on held-out prompts: {kl:.4} nats per response (k1, one sample each); run directory {}; {:.0} s in all",
        run.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The demo's GRPO run in `run` (files that `rein lm grpo --resume RUN` reads, so an
/// interrupted demo continues with that command; a checkpoint every `checkpoint_every` steps),
/// returning the trained GRPO trainer.
fn train_demo(
    mut trainer: RlTrainer,
    run: &Path,
    cfg: &GrpoConfig,
    specs: &[rein_lm::rl::rewards::RewardSpec],
    checkpoint_every: u64,
    quiet: bool,
) -> Result<GrpoTrainer> {
    trainer.write_run_files(run, &toml::to_string(cfg)?, specs)?;
    let options = RunOptions {
        checkpoint_every,
        sample_every: checkpoint_every / 2,
        ..RunOptions::default()
    };
    crate::session::run(&mut trainer, run, &options, quiet, "rein lm grpo --resume")?;
    let RlMethod::Grpo(t) = trainer.method else {
        unreachable!("the demo trains GRPO")
    };
    Ok(t)
}

/// [`kl_to_reference`] of the trained policy to the model the run started from: its reference
/// when it keeps one (a LoRA run's base with the adapter off, or a KL run's copy), else the
/// start read again from `path`.
fn kl_to_start(
    t: &GrpoTrainer,
    path: &Path,
    tk: &rein_lm::Tokenizer,
    prompts: &[String],
    decoding: &EvalDecoding,
) -> Result<f64> {
    let loaded;
    let start = match &t.reference {
        Some(r) => r,
        None => {
            loaded = rein_lm::checkpoint::load_model(path)?;
            &loaded
        }
    };
    Ok(kl_to_reference(&t.policy, start, tk, prompts, decoding)?)
}

/// Share of `scored` replies with score 1, in percent.
fn accuracy_percent(scored: &[(String, f64)]) -> f64 {
    100.0 * scored.iter().filter(|(_, s)| *s >= 1.0).count() as f64 / scored.len().max(1) as f64
}

/// `rein lm demo --preset`: GRPO on a preset's task with any model, accuracy by the preset's
/// exact_answer reward on its eval prompts before and after.
fn demo_preset(a: &DemoArgs, preset_path: &Path) -> Result<()> {
    use rein_lm::rl::reward::{read_prompts, render_conversations};
    use rein_lm::rl::rewards::RewardSpec;
    let start = std::time::Instant::now();
    let preset = TaskPreset::read(preset_path)?;
    if preset.trainer.as_deref().is_some_and(|t| t != "grpo") {
        bail!(
            "{}: the demo trains GRPO; this preset is for `rein lm {}`",
            preset_path.display(),
            preset.trainer.as_deref().unwrap_or("")
        );
    }
    if !preset.description.is_empty() {
        println!("task: {}", preset.description);
    }
    let need = |p: &Option<PathBuf>, key: &str| {
        p.clone()
            .with_context(|| format!("{}: the demo needs `{key}`", preset_path.display()))
    };
    let pre = rein_lm::pretrained::Pretrained::load(&a.model)?;
    let tk = pre.need_tokenizer()?.clone();
    let source = a.model.display().to_string();
    let mut train = read_prompts(&need(&preset.prompts, "prompts")?)?;
    let mut held = read_prompts(&need(&preset.eval_prompts, "eval_prompts")?)?;
    render_conversations(&mut train, pre.chat_template.as_ref(), &source)?;
    render_conversations(&mut held, pre.chat_template.as_ref(), &source)?;
    let specs = reward_specs(&a.reward, Some(&preset))?;
    let accuracy_spec = specs
        .iter()
        .find(|s| matches!(s, RewardSpec::ExactAnswer { .. }))
        .cloned()
        .with_context(|| {
            format!(
                "{}: the demo measures accuracy with an exact_answer reward, and the rewards have none",
                preset_path.display()
            )
        })?;
    let mut accuracy_reward = accuracy_spec.build()?;
    let mut set: Vec<(String, serde_json::Value)> = Vec::new();
    if let Some(n) = a.steps {
        set.push(("max_steps".into(), n.into()));
    }
    if a.lora {
        set.push(("lora.enabled".into(), true.into()));
    }
    set.extend(rein_train::settings::parse_overrides(&a.set)?);
    let cfg: GrpoConfig = rein_lm::rl::trainer::settings(Some(&preset), &set)?;
    cfg.validate()?;
    let decoding = EvalDecoding {
        max_new_tokens: cfg.max_new_tokens,
        stop_strings: cfg.stop_strings.clone(),
        stop_token_ids: pre.end_of_turn_ids(),
    };
    let before = greedy_scored(&pre.model, &tk, &held, accuracy_reward.as_mut(), &decoding)?;
    println!(
        "accuracy before: {:.1}% ({} held-out problems, greedy)",
        accuracy_percent(&before),
        held.len()
    );
    let chat_template = pre.chat_template.clone();
    let model = pre.model.with_lora(&cfg.lora, &a.model, cfg.seed)?;
    if let Some(ad) = model.adapter() {
        println!(
            "LoRA: r {}, alpha {}, {} adapter parameters on {:?}",
            ad.config.r,
            ad.config.lora_alpha,
            ad.num_parameters(),
            cfg.lora.target_modules
        );
    }
    let run = rein_train::create_run_dir(&a.runs_dir, "lm", "demo", cfg.seed)?;
    let trainer = RlTrainer {
        method: RlMethod::Grpo(GrpoTrainer::new(cfg.clone(), model, train, &tk)?),
        reward: rein_lm::rl::rewards::build_reward(&specs)?,
        tokenizer: tk.clone(),
        chat_template,
    };
    let t = train_demo(trainer, &run, &cfg, &specs, 25, a.quiet)?;
    let after = greedy_scored(&t.policy, &tk, &held, accuracy_reward.as_mut(), &decoding)?;
    for (i, r) in held.iter().take(a.examples).enumerate() {
        let q = r
            .messages
            .as_ref()
            .and_then(|m| m.iter().rev().find(|m| m.role == "user"))
            .map_or(r.prompt.as_str(), |m| m.content.as_str());
        let mark = |s: f64| if s >= 1.0 { "right" } else { "wrong" };
        println!(
            "example {}: {q:?} (answer {})",
            i + 1,
            r.references.first().map_or("?", |s| s.as_str())
        );
        println!("  before: {:?} ({})", before[i].0.trim(), mark(before[i].1));
        println!("  after:  {:?} ({})", after[i].0.trim(), mark(after[i].1));
    }
    println!(
        "accuracy after: {:.1}% ({} held-out problems, greedy)",
        accuracy_percent(&after),
        held.len()
    );
    let prompts: Vec<String> = held.iter().map(|p| p.prompt.clone()).collect();
    let kl = kl_to_start(&t, &a.model, &tk, &prompts, &decoding)?;
    println!(
        "KL(policy || start) on held-out prompts: {kl:.4} nats per response (k1, one sample each); run directory {}; {:.0} s in all",
        run.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm metric bleu --hyps out.txt --refs ref.txt --json\n  rein lm metric chrf --hyps out.jsonl --refs ref.jsonl --jsonl --json\n  rein lm metric rouge --hyps out.txt --refs ref.txt --stem --json\n  rein lm metric vader --hyps out.txt --json\n\nBLEU and chrF as sacrebleu 2.x computes them by default (13a tokenizer, case-sensitive, exp\nsmoothing; chrF: 6 character orders, beta 2). `corpus` is the corpus-level score; each entry\nof `sentences` is sacrebleu's sentence_bleu (effective order) or sentence_chrf.\nROUGE: rouge-score's rouge1/rouge2/rougeL/rougeLsum (precision, recall, fmeasure) of each pair,\n`corpus` their mean; --stem applies NLTK's Porter stemmer as use_stemmer=True.\nVADER: vaderSentiment 3.3.2's neg/neu/pos/compound of each hypothesis (no references),\n`corpus` their mean."
)]
pub struct MetricArgs {
    /// bleu, chrf, rouge or vader.
    metric: String,
    /// Hypotheses: one per line (or one JSON string per line with --jsonl).
    #[arg(long)]
    hyps: PathBuf,
    /// References, aligned with the hypotheses (not for vader).
    #[arg(long)]
    refs: Option<PathBuf>,
    /// Read one JSON string per line (texts with newlines).
    #[arg(long)]
    jsonl: bool,
    /// ROUGE with NLTK's Porter stemmer (rouge-score's use_stemmer=True).
    #[arg(long)]
    stem: bool,
    /// Print JSON: {"corpus": {...}, "sentences": [...]}.
    #[arg(long)]
    json: bool,
}

/// `rein lm metric`.
pub fn metric(a: &MetricArgs) -> Result<()> {
    let metric: rein_text::report::Metric = a.metric.parse().map_err(anyhow::Error::msg)?;
    let (corpus, sentences) =
        rein_text::report::score_files(metric, &a.hyps, a.refs.as_deref(), a.jsonl, a.stem)
            .map_err(anyhow::Error::msg)?;
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
            sentences.len()
        );
    }
    Ok(())
}
