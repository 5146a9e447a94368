//! The data, tokenizer and model of `rein lm quickstart`: 30,000 generated multi-step
//! arithmetic problems (29,000 for training, most answered directly and `worked_fraction` with a
//! worked solution; 500 of the rest held out), a 512-entry byte-level BPE trained on them and a
//! 4-layer, 128-wide GPT-2 with its training settings. The binary runs the training.

use crate::models::Model;
use crate::tasks::Problem;
use crate::train::{blocks_from_text, Example, LmTrainConfig};
use crate::{LmError, Tokenizer};
use rand::Rng;
use std::path::{Path, PathBuf};

/// What [`prepare`] builds.
pub struct QuickstartData {
    /// Training problems.
    pub train_problems: usize,
    /// The 500 held-out problems (`heldout.jsonl` of the model directory).
    pub held_out: Vec<Problem>,
    /// The trained tokenizer.
    pub tokenizer: Tokenizer,
    /// The folder its `tokenizer.json` was written to.
    pub tokenizer_dir: PathBuf,
    /// The untrained model.
    pub model: Model,
    /// Its training settings.
    pub config: LmTrainConfig,
    /// The training blocks.
    pub examples: Vec<Example>,
}

/// Generates the corpus (written to `work/arithmetic.txt`), trains the tokenizer (in
/// `work/tokenizer/`) and builds the model for `steps` optimizer steps, all from `seed`.
pub fn prepare(
    work: &Path,
    seed: u64,
    worked_fraction: f64,
    steps: u64,
) -> Result<QuickstartData, LmError> {
    let problems = crate::tasks::arithmetic_problems(30_000, seed);
    let (train, held) = problems.split_at(29_000);
    // Most problems are answered directly, some with a worked solution (see `crate::tasks`).
    let mut pick = rein_core::rng_from_seed(seed.wrapping_add(1));
    let mut text = String::new();
    for p in train {
        let completion = if pick.random_bool(worked_fraction) {
            p.worked_completion()
        } else {
            p.direct_completion()
        };
        text.push_str(&format!("{}{completion}\n\n", p.prompt));
    }
    let corpus = work.join("arithmetic.txt");
    rein_core::metrics::write_atomic(&corpus, text.as_bytes())
        .map_err(|e| LmError::io(&corpus, e))?;
    let tk = Tokenizer::train_bpe(std::slice::from_ref(&corpus), 512, false)?;
    let tk_dir = work.join("tokenizer");
    std::fs::create_dir_all(&tk_dir).map_err(|e| LmError::io(&tk_dir, e))?;
    tk.save(&tk_dir.join("tokenizer.json"))?;
    let eos = tk
        .token_id(crate::tokenizer::END_OF_TEXT)
        .ok_or_else(|| LmError::Format("trained tokenizer lacks <|endoftext|>".into()))?;
    let mc = crate::Gpt2Config {
        vocab_size: tk.vocab_size(),
        n_positions: 128,
        n_embd: 128,
        n_layer: 4,
        n_head: 4,
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        resid_pdrop: 0.0,
        bos_token_id: Some(eos),
        eos_token_id: Some(eos),
        ..Default::default()
    };
    let cfg = LmTrainConfig {
        max_steps: steps,
        batch_size: 16,
        learning_rate: 3e-3,
        warmup_steps: 30,
        block_size: 128,
        eval_fraction: 0.02,
        eval_every: 300,
        seed,
        ..Default::default()
    };
    let examples = blocks_from_text(&tk, &text, eos, cfg.block_size)?;
    let mut rng = rein_core::rng_from_seed(seed);
    let model = crate::Gpt2::new_random(mc, &mut rng)?.into();
    Ok(QuickstartData {
        train_problems: train.len(),
        held_out: held[..500].to_vec(),
        tokenizer: tk,
        tokenizer_dir: tk_dir,
        model,
        config: cfg,
        examples,
    })
}

/// Writes the trained model, its tokenizer and the held-out problems (`heldout.jsonl`) to `dir`.
pub fn write_model(
    dir: &Path,
    model: &Model,
    tk: &Tokenizer,
    held_out: &[Problem],
) -> Result<(), LmError> {
    crate::checkpoint::save_model(model, dir, &[])?;
    tk.save(&dir.join("tokenizer.json"))?;
    let lines: String = held_out
        .iter()
        .map(|p| serde_json::to_string(p).unwrap_or_default() + "\n")
        .collect();
    let path = dir.join("heldout.jsonl");
    rein_core::metrics::write_atomic(&path, lines.as_bytes()).map_err(|e| LmError::io(&path, e))
}
