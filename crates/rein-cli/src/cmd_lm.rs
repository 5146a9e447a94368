//! `rein lm generate|chat|logits|score|chat-template|convert|train-tokenizer|pretrain|sft|quickstart`:
//! generation, chat, inspection and supervised training of language models.

use anyhow::{bail, Context, Result};
use clap::Args;
use rein_lm::chat::Message;
use rein_lm::checkpoint::load_model;
use rein_lm::generate::PromptText;
use rein_lm::generate::{generate, GenerationConfig};
use rein_lm::models::{CausalLm, Model};
use rein_lm::pretrained::{Pretrained, SamplingRequest};
use rein_lm::Tokenizer;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm generate --model models/quickstart --prompt \"12 + 7 =\"\n  rein lm generate --model SmolLM2-135M-Instruct.Q4_1.gguf --chat \"What is 12 + 30?\"\n  rein lm generate --model DIR --prompt \"Once\" --temperature 0.8 --top-p 0.95 --max-new-tokens 40 --seed 1\n  rein lm generate --model DIR --prompts prompts.jsonl > out.jsonl\n  rein lm generate --model DIR --prompt-ids 15496,11 --json\n\nDecoding is greedy unless --sample, --temperature, --top-k or --top-p is given (--sample alone\ntakes generation_config.json's temperature, top_k and top_p). --chat renders the message with\nthe model's chat template and prints the assistant's reply, stopped at the end-of-turn token.\nA --prompts file holds one JSON object per line: {\"prompt\": \"...\"} or {\"prompt\": [{\"role\":\n\"user\", \"content\": \"...\"}]} (chat form) with optional \"seed\"; results stream out as JSON lines\n{\"prompt\", \"text\", \"ids\", \"logprobs\", \"finished\"}."
)]
pub struct GenerateArgs {
    /// Model: a directory (config.json, model.safetensors, tokenizer.json for text) or a .gguf
    /// file.
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) applied
    /// to the model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// One text prompt.
    #[arg(long, conflicts_with_all = ["prompts", "prompt_ids", "chat"])]
    prompt: Option<String>,
    /// One user message, rendered with the model's chat template; prints the reply.
    #[arg(long, conflicts_with_all = ["prompts", "prompt_ids"])]
    chat: Option<String>,
    /// A system message before the --chat message.
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// JSONL file of prompts (batch mode, streams JSON lines).
    #[arg(long, conflicts_with = "prompt_ids")]
    prompts: Option<PathBuf>,
    /// Prompt as comma-separated token ids (no tokenizer needed).
    #[arg(long)]
    prompt_ids: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
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

/// How to decode (shared by `generate` and `chat`).
#[derive(Args, Clone)]
pub struct SamplingArgs {
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
    #[arg(long, allow_negative_numbers = true)]
    temperature: Option<f32>,
    /// Top-k filter (implies --sample).
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus (top-p) filter (implies --sample).
    #[arg(long, allow_negative_numbers = true)]
    top_p: Option<f32>,
    /// Repetition penalty (1 = off; generation_config.json's with --sample).
    #[arg(long)]
    repetition_penalty: Option<f32>,
    /// Stop string (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Do not stop at the config's EOS token.
    #[arg(long)]
    ignore_eos: bool,
}

impl SamplingArgs {
    /// The generation settings: flags first, then (when sampling) generation_config.json's
    /// defaults ([`Pretrained::generation_config`]).
    fn config(&self, p: &Pretrained, seed: u64, chat: bool) -> GenerationConfig {
        p.generation_config(
            &SamplingRequest {
                max_new_tokens: self.max_new_tokens,
                min_new_tokens: self.min_new_tokens,
                sample: self.sample,
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                repetition_penalty: self.repetition_penalty,
                stop_strings: self.stop.clone(),
                ignore_eos: self.ignore_eos,
            },
            seed,
            chat,
        )
    }
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
    let p = Pretrained::load_with_adapter(&a.model, a.adapter.as_deref())?;
    // One request (--prompt-ids, --prompt, --chat) or a file of them, generated in batches.
    let single = a.prompt_ids.is_some() || a.prompt.is_some() || a.chat.is_some();
    let encode = |prompt: &PromptText| -> Result<Vec<u32>> {
        Ok(match prompt {
            PromptText::Plain(t) => p.need_tokenizer()?.encode(t)?,
            PromptText::Chat(m) => p.apply_chat_template(m, true)?.1,
        })
    };
    let requests: Vec<(Option<PromptText>, Vec<u32>, u64)> =
        match (&a.prompt_ids, &a.prompt, &a.chat, &a.prompts) {
            (Some(ids), _, _, _) => vec![(None, parse_ids(ids, "--prompt-ids")?, a.seed)],
            (None, Some(text), _, _) => {
                let pt = PromptText::Plain(text.clone());
                vec![(Some(pt.clone()), encode(&pt)?, a.seed)]
            }
            (None, None, Some(text), _) => {
                let mut m = Vec::new();
                if let Some(sys) = &a.system {
                    m.push(Message::new("system", sys));
                }
                m.push(Message::new("user", text));
                let pt = PromptText::Chat(m);
                vec![(Some(pt.clone()), encode(&pt)?, a.seed)]
            }
            (None, None, None, Some(path)) => {
                let mut out = Vec::new();
                for (pt, seed) in rein_lm::generate::read_requests(path, a.seed)? {
                    let ids = encode(&pt)?;
                    out.push((Some(pt), ids, seed));
                }
                out
            }
            _ => bail!("give --prompt, --chat, --prompts or --prompt-ids"),
        };
    // Chat prompts stop at the end-of-turn tokens too.
    let chat_mode = requests
        .iter()
        .any(|r| matches!(r.0, Some(PromptText::Chat(_))));
    let cfg = a.sampling.config(&p, a.seed, chat_mode);
    let tk = p.tokenizer.as_ref();
    let stdout = std::io::stdout();
    for chunk in requests.chunks(a.batch_size.max(1)) {
        let prompts: Vec<Vec<u32>> = chunk.iter().map(|r| r.1.clone()).collect();
        let seeds: Vec<u64> = chunk.iter().map(|r| r.2).collect();
        let out = generate(&p.model, &prompts, &cfg, Some(&seeds), tk)?;
        let mut lock = stdout.lock();
        for ((prompt, _, _), g) in chunk.iter().zip(out) {
            let prompt_json = |pt: &PromptText| match pt {
                PromptText::Plain(t) => json!(t),
                PromptText::Chat(m) => json!(m),
            };
            let line = match (single && !a.json, prompt) {
                (true, Some(PromptText::Plain(p))) => format!("{p}{}", g.text.unwrap_or_default()),
                (true, Some(PromptText::Chat(_))) => g.text.unwrap_or_default(),
                (true, None) => g.text.unwrap_or_else(|| {
                    let ids: Vec<String> = g.ids.iter().map(u32::to_string).collect();
                    ids.join(",")
                }),
                (false, Some(pt)) => {
                    json!({"prompt": prompt_json(pt), "text": g.text, "ids": g.ids,
                    "logprobs": g.logprobs, "finished": g.finished})
                    .to_string()
                }
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
#[command(
    after_help = "Examples:\n  rein lm chat --model SmolLM2-135M-Instruct.Q4_1.gguf\n  rein lm chat --model DIR --system \"You are terse.\" --max-new-tokens 200 --sample\n\nType a message and press Enter; the reply streams as it is generated. /reset clears the\nconversation, /exit (or end of input) quits."
)]
pub struct ChatArgs {
    /// Model directory or .gguf file with a chat template.
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) applied
    /// to the model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// A system message at the start of the conversation.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Seed of sampling (turn i uses seed + i).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// `rein lm chat`: a multi-turn conversation on stdin/stdout, the reply streamed token by token.
pub fn cmd_chat(a: &ChatArgs) -> Result<()> {
    let p = Pretrained::load_with_adapter(&a.model, a.adapter.as_deref())?;
    let tk = p.need_tokenizer()?;
    if p.chat_template.is_none() {
        bail!("{}: the model has no chat template", a.model.display());
    }
    let fresh = || -> Vec<Message> { a.system.iter().map(|s| Message::new("system", s)).collect() };
    let mut history = fresh();
    let stdin = std::io::stdin();
    let mut turn = 0u64;
    eprintln!("chatting with {} (/reset, /exit)", a.model.display());
    loop {
        eprint!("> ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        if stdin.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history = fresh();
                eprintln!("(conversation cleared)");
                continue;
            }
            _ => {}
        }
        history.push(Message::new("user", line));
        let (_, ids) = p.apply_chat_template(&history, true)?;
        let mut cfg = a.sampling.config(&p, a.seed + turn, true);
        let room = p.model.max_positions().saturating_sub(ids.len());
        if room == 0 {
            history.pop();
            eprintln!("(the conversation fills the model's context; /reset to start over)");
            continue;
        }
        cfg.max_new_tokens = cfg.max_new_tokens.min(room);
        let stops = cfg.stop_token_ids.clone();
        let mut reply_ids: Vec<u32> = Vec::new();
        let mut printed = 0usize;
        let mut out = std::io::stdout();
        let mut on_token = |_: usize, tok: u32| {
            if stops.contains(&tok) {
                return;
            }
            reply_ids.push(tok);
            // Print the decoded text's new part once it is whole UTF-8 (a character may span
            // tokens).
            if let Ok(text) = tk.decode(&reply_ids, true) {
                if !text.ends_with('\u{fffd}') && text.len() > printed {
                    let _ = write!(out, "{}", &text[printed..]);
                    let _ = out.flush();
                    printed = text.len();
                }
            }
        };
        let g = rein_lm::generate::generate_streaming(
            &p.model,
            &[ids],
            &cfg,
            None,
            Some(tk),
            Some(&mut on_token),
        )?;
        println!();
        let reply = g[0].text.clone().unwrap_or_default();
        history.push(Message::new("assistant", reply.trim()));
        turn += 1;
    }
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm logits --model DIR --ids '1,2,3;4,5' --json\n  rein lm logits --model model.gguf --ids '1,2,3' --json\n  rein lm logits --model DIR --adapter LORA_DIR --ids '1,2,3;4,5' --json"
)]
pub struct LogitsArgs {
    /// Model directory or .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) applied
    /// to the model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Sequences of token ids: comma-separated ids, sequences separated by ';'.
    #[arg(long)]
    ids: String,
    /// Print JSON `{"logits": [...]}` (per sequence, per real position, per vocabulary entry).
    #[arg(long)]
    json: bool,
}

fn parse_sequences(ids: &str) -> Result<Vec<Vec<u32>>> {
    ids.split(';')
        .enumerate()
        .map(|(i, s)| parse_ids(s, &format!("--ids sequence {i}")))
        .collect()
}

pub fn cmd_logits(a: &LogitsArgs) -> Result<()> {
    let mut model = load_model(&a.model)?;
    if let Some(dir) = &a.adapter {
        model = model.with_adapter_dir(dir)?;
    }
    let seqs = parse_sequences(&a.ids)?;
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

#[derive(Args)]
#[command(
    after_help = "Example:\n  rein lm score --model reward_model/ --ids '1,2;3,4,5' --json\n\nThe model is a sequence-classification checkpoint (transformers' *ForSequenceClassification with\none label: score.weight, or a reward model trained by `rein lm train-reward-model`); each row is\nscored at its last real token."
)]
pub struct ScoreArgs {
    /// Reward-model directory.
    #[arg(long)]
    model: PathBuf,
    /// Sequences of token ids: comma-separated ids, sequences separated by ';'.
    #[arg(long)]
    ids: String,
    /// Print JSON `{"scores": [...]}`.
    #[arg(long)]
    json: bool,
}

pub fn cmd_score(a: &ScoreArgs) -> Result<()> {
    let (model, head) = rein_lm::rl::reward_model::load_backbone_and_head(&a.model)?;
    let seqs = parse_sequences(&a.ids)?;
    let scores: Vec<f32> =
        rein_lm::rl::reward_model::sequence_rewards(&model, &head, &seqs)?.to_vec1()?;
    if a.json {
        println!("{}", json!({ "scores": scores }));
    } else {
        for (i, s) in scores.iter().enumerate() {
            println!("sequence {i}: {s:.6}");
        }
    }
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  rein lm chat-template --model DIR --messages chat.json --add-generation-prompt --json\n\nchat.json holds a JSON list of {\"role\", \"content\"} messages."
)]
pub struct ChatTemplateArgs {
    /// Model directory or .gguf file with a chat template.
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) applied
    /// to the model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// JSON file with a list of messages.
    #[arg(long)]
    messages: PathBuf,
    /// Open the assistant's turn at the end.
    #[arg(long)]
    add_generation_prompt: bool,
    /// Print JSON `{"text": ..., "input_ids": [...]}` instead of the text.
    #[arg(long)]
    json: bool,
}

pub fn cmd_chat_template(a: &ChatTemplateArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.messages)
        .with_context(|| format!("{}: cannot read", a.messages.display()))?;
    let messages: Vec<Message> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected a JSON list of {{\"role\", \"content\"}} messages",
            a.messages.display()
        )
    })?;
    let (tokenizer, template) =
        rein_lm::pretrained::Pretrained::load_tokenizer_and_template(&a.model)?;
    let template = template.with_context(|| format!("{}: no chat template", a.model.display()))?;
    let rendered = template.render(&messages, a.add_generation_prompt)?;
    if a.json {
        let tk = tokenizer.with_context(|| format!("{}: no tokenizer", a.model.display()))?;
        println!(
            "{}",
            json!({"text": rendered, "input_ids": tk.encode(&rendered)?})
        );
    } else {
        print!("{rendered}");
    }
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  rein lm convert --model SmolLM2-135M-Instruct.Q4_1.gguf --out models/smollm2\n\nWrites a save_pretrained-style directory (config.json, model.safetensors in f32, tokenizer.json,\ntokenizer_config.json, chat_template.jinja, generation_config.json) that transformers'\nfrom_pretrained loads."
)]
pub struct ConvertArgs {
    /// Model directory or .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

pub fn cmd_convert(a: &ConvertArgs) -> Result<()> {
    let p = Pretrained::load(&a.model)?;
    p.save_pretrained(&a.out)?;
    println!(
        "{} ({}, {:.1}M parameters) -> {}",
        a.model.display(),
        p.model.config().model_type(),
        p.model.num_parameters() as f64 / 1e6,
        a.out.display()
    );
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  rein lm merge-lora --model models/smollm2 --adapter runs/lm/<run>/adapter --out models/smollm2-arith\n\nWrites W + (lora_alpha / r) B A into every adapted linear layer (PEFT's merge_and_unload) and\nsaves the result as a Hugging Face directory (config.json, model.safetensors in f32, tokenizer\nand chat template of the base), which needs no adapter to run."
)]
pub struct MergeLoraArgs {
    /// The base model: a directory or a .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// The PEFT adapter directory.
    #[arg(long)]
    adapter: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

/// `rein lm merge-lora`.
pub fn cmd_merge_lora(a: &MergeLoraArgs) -> Result<()> {
    let p = Pretrained::load_with_adapter(&a.model, Some(&a.adapter))?;
    let ad = p.model.adapter().expect("an adapter was applied");
    println!(
        "{} + {} (r {}, alpha {}, {} adapter parameters) -> {}",
        a.model.display(),
        a.adapter.display(),
        ad.config.r,
        ad.config.lora_alpha,
        ad.num_parameters(),
        a.out.display()
    );
    p.save_pretrained(&a.out)?;
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
    /// Optimizer steps between checkpoints (0: not by steps; always at the end).
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    /// Also a checkpoint after the first step that ends this many seconds after the last
    /// one (0, the default: not by time).
    #[arg(long, default_value_t = 0.0)]
    checkpoint_seconds: f64,
    /// Stop after this many steps in this invocation (with a checkpoint; resume later).
    #[arg(long)]
    max_updates: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Under `mpirun` (a build with the `mpi` feature): compare the ranks' weights every this
    /// many steps and stop every rank with an error if they differ (0: never).
    #[arg(long, default_value_t = 100)]
    check_weights_every: u64,
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
    /// A config.json to start from: GPT-2 or a Llama-family model_type (else the GPT-2 sizes below).
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
    /// Continue the run in this directory exactly where its checkpoint stopped (with
    /// --set max_steps=N: train on to step N).
    #[arg(long, conflicts_with_all = ["tokenizer", "data", "config", "n_layer", "n_embd", "n_head", "n_positions", "runs_dir"])]
    resume: Option<PathBuf>,
    #[command(flatten)]
    common: TrainCommon,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein lm sft --model models/quickstart --data train.jsonl --set max_steps=200\n  rein lm sft --resume runs/lm/<run directory>\n\nRecords: {\"prompt\": ..., \"completion\": ...} (loss on the completion and EOS only) or\n{\"text\": ...} (loss on every token), one JSON object per line."
)]
pub struct SftArgs {
    /// Model directory to fine-tune (with a tokenizer).
    #[arg(long, required_unless_present = "resume")]
    model: Option<PathBuf>,
    /// JSONL records.
    #[arg(long, required_unless_present = "resume")]
    data: Option<PathBuf>,
    /// Continue the run in this directory exactly where its checkpoint stopped (with
    /// --set max_steps=N: train on to step N).
    #[arg(long, conflicts_with_all = ["model", "data", "runs_dir"])]
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
        checkpoint_seconds: common.checkpoint_seconds,
        max_updates: common.max_updates,
        sample_every: 0,
        resumed,
        check_weights_every: common.check_weights_every,
    };
    crate::session::run(&mut s, run, &options, common.quiet, &common.resume_command)?;
    Ok(s.trainer)
}

/// The new `max_steps` of a resumed language-model run, from its `--set` flags: a resumed
/// run keeps its settings (its config.toml and checkpoint hold them), so `max_steps`, to
/// train longer, is the only one it takes; any other is refused by name.
pub fn resumed_max_steps(sets: &[String], dir: &Path) -> Result<Option<u64>> {
    let mut max_steps = None;
    for (key, value) in rein_train::settings::parse_overrides(sets)? {
        if key != "max_steps" {
            bail!(
                "--set {key}: a resumed run keeps the settings in {}; only max_steps (to train \
                 longer) can be set",
                dir.join(rein_train::files::CONFIG).display()
            );
        }
        max_steps = Some(value.as_u64().with_context(|| {
            format!("--set max_steps={value}: expected a whole number of steps")
        })?);
    }
    Ok(max_steps)
}

fn resume_lm(dir: &Path, common: &TrainCommon) -> Result<()> {
    crate::session::check_run_kind(dir, &[rein_lm::train::SUPERVISED_KIND])?;
    let ckpt = dir.join(rein_train::files::CHECKPOINT);
    let max_steps = resumed_max_steps(&common.set, dir)?;
    let mut t = LmTrainer::load_checkpoint(&ckpt)?;
    let root = rein_core::collective::is_root();
    if let Some(n) = max_steps {
        t.set_max_steps(n)?;
        if root {
            write_train_config(dir, &t.config)?;
        }
    }
    if root {
        eprintln!(
            "resuming {} at step {} of {}",
            dir.display(),
            t.step,
            t.config.max_steps
        );
    }
    let tk_dir = dir.join("model");
    let t = run_trainer(t, dir, &tk_dir, common, true)?;
    if root {
        println!("step {}; model in {}", t.step, dir.join("model").display());
    }
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
        Some(p) => rein_lm::ModelConfig::load(p)?,
        None => rein_lm::ModelConfig::Gpt2(rein_lm::Gpt2Config {
            n_layer: a.n_layer,
            n_embd: a.n_embd,
            n_head: a.n_head,
            n_positions: a.n_positions,
            ..Default::default()
        }),
    };
    let (model, examples) = rein_lm::train::pretraining_setup(&tk, &data, &cfg, mc)?;
    let what = format!(
        "{} blocks of {} tokens, {:.2}M parameters",
        examples.len(),
        cfg.block_size,
        model.num_parameters() as f64 / 1e6
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
    // Under MPI the run directory is rank 0's.
    if rein_core::collective::is_root() {
        write_train_config(&run, &cfg)?;
        std::fs::create_dir_all(run.join("model"))?;
        tk.save(&run.join("model/tokenizer.json"))?;
        println!("run directory: {} ({what})", run.display());
    }
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
    if t.eval_len() > 0 && rein_core::collective::is_root() {
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
    let p = Pretrained::load(&mdir)?;
    let tk = p.need_tokenizer()?.clone();
    let cfg = train_config(&common.set)?;
    let examples = rein_lm::train::sft_examples(&tk, &p.model, &data, p.chat_template.as_ref())
        .with_context(|| format!("fine-tuning {} on {}", mdir.display(), data.display()))?;
    let model = p.model.with_lora(&cfg.lora, &mdir, cfg.seed)?;
    let what = match model.adapter() {
        Some(ad) => format!(
            "{} records, LoRA r {} on {} adapter parameters",
            examples.len(),
            ad.config.r,
            ad.num_parameters()
        ),
        None => format!("{} records", examples.len()),
    };
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
        q.model.num_parameters() as f64 / 1e6
    );
    let (tk, tk_dir, eval) = (q.tokenizer, q.tokenizer_dir, q.held_out);
    let common = TrainCommon {
        set: Vec::new(),
        runs_dir: work.clone(),
        checkpoint_every: 100,
        checkpoint_seconds: 0.0,
        max_updates: None,
        quiet: a.quiet,
        check_weights_every: 100,
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
