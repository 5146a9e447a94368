//! The verifiable-arithmetic pipeline of `rein lm demo`: GRPO on the quickstart model with the
//! demo's settings, on a pool of generated problems none of which is held out, evaluated on the
//! model's held-out problems before and after.

use crate::rl::reward::PromptRecord;
use crate::tasks::{arithmetic_problems, Problem};
use crate::LmError;
use std::path::Path;

/// The demo's GRPO settings as overrides: `steps` steps of 8 prompts x 16 samples, up to 40 new
/// tokens ending at a newline, temperature 0.5, lr 5e-5 with 10 warmup steps, beta 0.
pub fn settings(steps: u64, seed: u64) -> Vec<(String, serde_json::Value)> {
    [
        ("max_steps", steps.into()),
        ("prompts_per_step", 8.into()),
        ("group_size", 16.into()),
        ("max_new_tokens", 40.into()),
        ("learning_rate", 0.00005.into()),
        ("temperature", 0.5.into()),
        ("warmup_steps", 10.into()),
        ("beta", 0.0.into()),
        ("stop_strings", serde_json::json!(["\n"])),
        ("seed", seed.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Problems of a JSONL file (the `heldout.jsonl` of a quickstart model); errors name the line.
pub fn read_problems(path: &Path) -> Result<Vec<Problem>, LmError> {
    let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                LmError::Format(format!(
                    "{}:{}: not a problem record: {e}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// `pool` generated problems (seed `1000 + seed`) that are not among `held_out`, as prompts
/// with their answers as references.
pub fn training_pool(held_out: &[Problem], pool: usize, seed: u64) -> Vec<PromptRecord> {
    let held: std::collections::HashSet<&str> =
        held_out.iter().map(|p| p.prompt.as_str()).collect();
    arithmetic_problems(20_000, 1_000 + seed)
        .into_iter()
        .filter(|p| !held.contains(p.prompt.as_str()))
        .take(pool)
        .map(|p| PromptRecord {
            prompt: p.prompt,
            references: vec![p.answer],
            ..Default::default()
        })
        .collect()
}
