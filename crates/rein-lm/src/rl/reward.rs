//! The reward interface of the RL trainers for language models and their prompt data: a
//! batch of samples in, one score per sample out; prompts as JSONL records.
//!
//! Language generation as an MDP: the state is the prompt plus the tokens so far, the action
//! the next token, the episode ends at EOS or the length limit, and the reward (a task score)
//! arrives at the end.

use crate::LmError;
use serde::{Deserialize, Serialize};

/// One scored sample: the prompt, the model's response and the task's references.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Prompt text.
    pub prompt: &'a str,
    /// Response text.
    pub response: &'a str,
    /// References (answers, summaries, translations); may be empty.
    pub references: &'a [String],
}

/// A reward: a batch of samples in, one score per sample out.
pub trait Reward {
    /// Short name for logs.
    fn name(&self) -> String;
    /// Scores of `samples`, in order.
    fn score(&mut self, samples: &[Sample]) -> Result<Vec<f64>, LmError>;
}

/// A prompt of an RL dataset with its references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptRecord {
    /// Prompt text.
    pub prompt: String,
    /// References (empty when the reward needs none).
    pub references: Vec<String>,
}

/// Reads JSONL prompts: `{"prompt": ...}` with optional `"answer"`, `"reference"` (string) or
/// `"references"` (list of strings). Errors name the file and line.
pub fn read_prompts(path: &std::path::Path) -> Result<Vec<PromptRecord>, LmError> {
    let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| LmError::Format(format!("{}: not JSON: {e}", at())))?;
        let prompt = v
            .get("prompt")
            .and_then(|p| p.as_str())
            .ok_or_else(|| LmError::Format(format!("{}: no string field \"prompt\"", at())))?;
        let mut references = Vec::new();
        for key in ["answer", "reference"] {
            if let Some(r) = v.get(key) {
                let r = r.as_str().ok_or_else(|| {
                    LmError::Format(format!("{}: \"{key}\" must be a string", at()))
                })?;
                references.push(r.to_string());
            }
        }
        if let Some(rs) = v.get("references") {
            let list = rs.as_array().ok_or_else(|| {
                LmError::Format(format!(
                    "{}: \"references\" must be a list of strings",
                    at()
                ))
            })?;
            for r in list {
                references.push(
                    r.as_str()
                        .ok_or_else(|| {
                            LmError::Format(format!(
                                "{}: \"references\" must be a list of strings",
                                at()
                            ))
                        })?
                        .to_string(),
                );
            }
        }
        out.push(PromptRecord {
            prompt: prompt.to_string(),
            references,
        });
    }
    if out.is_empty() {
        return Err(LmError::Format(format!(
            "{}: no prompts (expected JSON lines with a \"prompt\" field)",
            path.display()
        )));
    }
    Ok(out)
}
