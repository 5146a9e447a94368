//! `rein lm eval` (task metric and cost against the reference on held-out prompts),
//! `rein lm train-reward-model` (Bradley-Terry reward models) and `rein lm example-data`
//! (the example datasets of the task presets).

use anyhow::{bail, Context, Result};
use clap::Args;
use rein_lm::rl::reward_model::{
    read_preferences, RewardModel, RewardModelConfig, RewardModelTrainer,
};
use rein_lm::rl::rewards::build_reward;
use rein_lm::rl::trainer::{reward_specs, TaskPreset};
use std::path::PathBuf;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm eval --model runs/lm/<run>/model --reference models/quickstart --preset presets/lm/arithmetic.toml --prompts models/quickstart/heldout.jsonl\n  rein lm eval --model runs/lm/<run>/model --reference START --preset presets/lm/summarization.toml --json\n\nFor each held-out prompt: one greedy response (the task metric, `reward`), and one sampled\nresponse at temperature 1 for the cost: `kl` = mean summed log(pi/pi_ref) over its tokens (k1),\n`reference_perplexity` = perplexity of the greedy responses under the reference model (fluency\nas the starting model judges it). Reward hacking shows up as reward up with KL and reference\nperplexity far up: both are printed."
)]
pub struct EvalArgs {
    /// The trained model (a directory or .gguf file).
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter directory applied to --model (the reference defaults to the model
    /// without it).
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// The starting (reference) model directory; default: --model itself.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Held-out JSONL prompts (default: the preset's `eval_prompts`).
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Task preset for the reward and the generation settings.
    #[arg(long)]
    preset: Option<PathBuf>,
    /// Reward `kind[:key=value,...][@weight]`; repeatable; replaces the preset's.
    #[arg(long)]
    reward: Vec<String>,
    /// Response length limit (default: the preset's max_new_tokens, else 32).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Evaluate the first N prompts only.
    #[arg(long)]
    limit: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

use rein_lm::checkpoint::load_model_and_tokenizer as load_pair;
use rein_lm::models::CausalLm;

/// `rein lm eval`.
pub fn eval(a: &EvalArgs) -> Result<()> {
    let preset = a.preset.as_deref().map(TaskPreset::read).transpose()?;
    let prompts_path = a
        .prompts
        .clone()
        .or_else(|| preset.as_ref().and_then(|p| p.eval_prompts.clone()))
        .context("--prompts is required (or a --preset with `eval_prompts`)")?;
    let mut records = rein_lm::rl::reward::read_prompts(&prompts_path)?;
    if let Some(n) = a.limit {
        records.truncate(n);
    }
    if records.is_empty() {
        bail!("{}: no prompts", prompts_path.display());
    }
    let specs = reward_specs(&a.reward, preset.as_ref())?;
    let mut reward = build_reward(&specs)?;
    let p = rein_lm::pretrained::Pretrained::load_with_adapter(&a.model, a.adapter.as_deref())?;
    let tk = p.need_tokenizer()?.clone();
    rein_lm::rl::reward::render_conversations(
        &mut records,
        p.chat_template.as_ref(),
        &a.model.display().to_string(),
    )?;
    let stop_token_ids = if rein_lm::rl::reward::any_conversation(&records) {
        p.end_of_turn_ids()
    } else {
        Vec::new()
    };
    let policy = p.model;
    let reference = match &a.reference {
        Some(r) => rein_lm::checkpoint::load_model(r)?,
        None => policy.reference_model()?,
    };
    if reference.vocab_size() != policy.vocab_size() {
        bail!(
            "--reference has a vocabulary of {} tokens but --model has {}: they must share a tokenizer",
            reference.vocab_size(),
            policy.vocab_size()
        );
    }
    let (preset_max_new, stops) = preset
        .as_ref()
        .map(TaskPreset::generation_limits)
        .unwrap_or_default();
    let decoding = rein_lm::evaluation::EvalDecoding {
        max_new_tokens: a.max_new_tokens.or(preset_max_new).unwrap_or(32),
        stop_strings: stops,
        stop_token_ids,
    };
    let e = rein_lm::evaluation::evaluate_task(
        &policy,
        &reference,
        &tk,
        &records,
        reward.as_mut(),
        &decoding,
    )?;
    let out = serde_json::to_value(&e)?;
    if a.json {
        println!("{out}");
    } else {
        println!(
            "{} prompts; task metric ({}) {:.4}; KL to the reference {:.4} nats per response; reference perplexity of the responses {:.3}; mean length {:.1} tokens",
            e.prompts, e.reward_name, e.reward, e.kl, e.reference_perplexity, e.response_length
        );
    }
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm train-reward-model --model models/quickstart --data examples/lm/dialogue/preferences.jsonl --out models/dialogue-rm\n  rein lm train-reward-model --model BASE --data prefs.jsonl --out RM --policy BASE --prompts prompts.jsonl --set epochs=2\n\nData: JSON lines {\"prompt\", \"chosen\", \"rejected\"} (texts), or TRL's conversational form with\nmessage lists (an explicit \"prompt\", or \"chosen\"/\"rejected\" conversations sharing their first\nmessages), rendered with the model's chat template. --set lora.enabled=true trains a LoRA\nadapter and the head. Loss: -log sigmoid(r_chosen - r_rejected).\nPrints held-out accuracy and margin. The rewards are then normalised to mean 0 / std 1 over\nsamples of the reference policy (--policy and --prompts: one response per prompt, at most 256),\nor over the training responses when no policy is given.\nSettings (--set key=value): epochs, batch_size, learning_rate, warmup_steps, weight_decay,\nmax_grad_norm, eval_fraction, seed."
)]
pub struct TrainRewardModelArgs {
    /// Backbone model directory (its tokenizer goes with it).
    #[arg(long)]
    model: PathBuf,
    /// Preference pairs (JSONL).
    #[arg(long)]
    data: PathBuf,
    /// Where the reward model goes.
    #[arg(long)]
    out: PathBuf,
    /// Reference policy whose samples set the normalisation.
    #[arg(long, requires = "prompts")]
    policy: Option<PathBuf>,
    /// Prompts for the normalisation samples.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Response length of the normalisation samples.
    #[arg(long, default_value_t = 32)]
    max_new_tokens: usize,
    /// Setting `key=value`; repeatable.
    #[arg(long = "set")]
    set: Vec<String>,
    /// Continue the interrupted training in --out from its checkpoint (the other arguments
    /// as before).
    #[arg(long)]
    resume: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// `rein lm train-reward-model`.
pub fn train_rm(a: &TrainRewardModelArgs) -> Result<()> {
    let overrides: Vec<_> = rein_train::settings::parse_overrides(&a.set)?
        .into_iter()
        .collect();
    let cfg: RewardModelConfig = rein_train::settings::with_overrides(&overrides)?;
    let pre = rein_lm::pretrained::Pretrained::load(&a.model)?;
    let tk = pre.need_tokenizer()?.clone();
    let pairs = read_preferences(&a.data, pre.chat_template.as_ref())?;
    let backbone = pre.model.with_lora(&cfg.lora, &a.model, cfg.seed)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("{}", a.out.display()))?;
    let ckpt = a.out.join(rein_train::files::CHECKPOINT);
    let mut t = if a.resume {
        RewardModelTrainer::load_checkpoint(&ckpt, tk)?
    } else {
        let mut rng = rein_core::rng_from_seed(cfg.seed);
        let rm = RewardModel::new(backbone, tk, &mut rng)?;
        rein_train::write_config(&a.out, &toml::to_string(&cfg)?)?;
        RewardModelTrainer::new(rm, pairs, cfg.clone())?
    };
    let options = rein_train::RunOptions {
        resumed: a.resume,
        ..Default::default()
    };
    let end = crate::session::run(
        &mut t,
        &a.out,
        &options,
        a.quiet,
        "rein lm train-reward-model --resume --out",
    )?;
    let rein_train::RunEnd::Finished(Some(eval)) = end else {
        unreachable!("runs without max_updates finish or exit")
    };
    let t_pairs: Vec<_> = t
        .training_pairs()
        .iter()
        .chain(t.held_out())
        .cloned()
        .collect();
    let mut rm = t.model;
    let texts = match (&a.policy, &a.prompts) {
        (Some(p), Some(prompts)) => {
            let (policy, ptk) = load_pair(p)?;
            let records = rein_lm::rl::reward::read_prompts(prompts)?;
            let n = records.len().min(256);
            rein_lm::rl::reward_model::policy_samples(
                &policy,
                &ptk,
                &records[..n],
                a.max_new_tokens,
                cfg.seed,
            )?
        }
        _ => rein_lm::rl::reward_model::pair_texts(&t_pairs),
    };
    let (mean, std) = rm.normalize_over(&texts)?;
    rm.save(&a.out)?;
    let summary = serde_json::json!({
        "eval": eval.json,
        "normalization": {"mean": mean, "std": std, "samples": texts.len(),
            "over": if a.policy.is_some() { "reference-policy samples" } else { "training responses" }},
        "out": a.out,
    });
    println!("{summary}");
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  rein lm example-data --out examples/lm\n\nWrites the example JSONL files of the task presets (sentiment, summarization, translation,\ndialogue with preference pairs, arithmetic); the same seeds give the same bytes."
)]
pub struct ExampleDataArgs {
    /// Output folder.
    #[arg(long, default_value = "examples/lm")]
    out: PathBuf,
}

/// `rein lm example-data`.
pub fn example_data(a: &ExampleDataArgs) -> Result<()> {
    for (rel, text) in rein_lm::tasks::examples::all_files() {
        let path = a.out.join(&rel);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("{}", d.display()))?;
        }
        rein_core::metrics::write_atomic(&path, text.as_bytes())?;
        println!("{}", path.display());
    }
    Ok(())
}
