//! The reward interface of the RL trainers for language models and their prompt data: a
//! batch of samples in, one score per sample out; prompts as JSONL records.
//!
//! Language generation as an MDP: the state is the prompt plus the tokens so far, the action
//! the next token, the episode ends at EOS or the length limit, and the reward (a task score)
//! arrives at the end.

use crate::chat::{ChatTemplate, Message};
use crate::LmError;
use serde::{Deserialize, Serialize};

/// One scored sample: the prompt, the model's response, the task's references and the prompt
/// row's other columns.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Prompt text (for a conversation, as the chat template rendered it).
    pub prompt: &'a str,
    /// Response text (for a conversation, the assistant's reply).
    pub response: &'a str,
    /// References (answers, summaries, translations); may be empty.
    pub references: &'a [String],
    /// The prompt's conversation, when the dataset is conversational.
    pub messages: Option<&'a [Message]>,
    /// The prompt row's columns besides `prompt` (`answer`, ...), as TRL passes them to reward
    /// functions.
    pub columns: &'a serde_json::Map<String, serde_json::Value>,
}

/// No columns (a sample built from text alone).
static NO_COLUMNS: std::sync::LazyLock<serde_json::Map<String, serde_json::Value>> =
    std::sync::LazyLock::new(serde_json::Map::new);

impl<'a> Sample<'a> {
    /// A sample of a plain-text prompt without other columns.
    pub fn new(prompt: &'a str, response: &'a str, references: &'a [String]) -> Self {
        Self {
            prompt,
            response,
            references,
            messages: None,
            columns: &NO_COLUMNS,
        }
    }
}

/// A reward: a batch of samples in, one score per sample out.
pub trait Reward {
    /// Short name for logs.
    fn name(&self) -> String;
    /// Scores of `samples`, in order.
    fn score(&mut self, samples: &[Sample]) -> Result<Vec<f64>, LmError>;
}

/// A prompt of an RL dataset with its references.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptRecord {
    /// Prompt text: the row's text, or its conversation rendered with the chat template and the
    /// generation prompt ([`render_conversations`]).
    pub prompt: String,
    /// References (empty when the reward needs none).
    pub references: Vec<String>,
    /// The conversation of a conversational row (TRL's `{"prompt": [{"role", "content"}]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Message>>,
    /// The row's columns besides `prompt`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub columns: serde_json::Map<String, serde_json::Value>,
}

impl PromptRecord {
    /// A plain-text prompt with its references.
    pub fn new(prompt: impl Into<String>, references: Vec<String>) -> Self {
        Self {
            prompt: prompt.into(),
            references,
            ..Default::default()
        }
    }

    /// The record as a reward sees it with `response`.
    pub fn sample<'a>(&'a self, response: &'a str) -> Sample<'a> {
        Sample {
            prompt: &self.prompt,
            response,
            references: &self.references,
            messages: self.messages.as_deref(),
            columns: &self.columns,
        }
    }
}

impl PromptRecord {
    /// One row of an RL dataset (a JSON object, as a JSONL line or a Python dict): `prompt`
    /// (text or messages), optional `answer`/`reference`/`references`, other columns kept.
    /// `at` names the row in errors (`file:line`, `prompts[3]`).
    pub fn from_row(v: &serde_json::Value, at: &str) -> Result<Self, LmError> {
        let Some(obj) = v.as_object() else {
            return Err(LmError::Format(format!("{at}: not a JSON object")));
        };
        let (prompt, messages) = match obj.get("prompt") {
            Some(serde_json::Value::String(s)) => (s.clone(), None),
            Some(list @ serde_json::Value::Array(_)) => {
                let m = crate::chat::parse_conversation(list, true)
                    .map_err(|e| LmError::Format(format!("{}: \"prompt\": {e}", at)))?;
                (String::new(), Some(m))
            }
            Some(_) => {
                return Err(LmError::Format(format!(
                    "{}: \"prompt\" must be a string or a list of {{\"role\", \"content\"}} messages",
                    at
                )))
            }
            None if obj.contains_key("messages") => {
                return Err(LmError::Format(format!(
                    "{}: a \"messages\" row is an SFT example; RL prompts need \"prompt\" (text or messages)",
                    at
                )))
            }
            None => {
                return Err(LmError::Format(format!(
                    "{}: the row has neither \"prompt\" nor \"messages\"",
                    at
                )))
            }
        };
        let mut references = Vec::new();
        for key in ["answer", "reference"] {
            if let Some(r) = v.get(key) {
                let r = r.as_str().ok_or_else(|| {
                    LmError::Format(format!("{}: \"{key}\" must be a string", at))
                })?;
                references.push(r.to_string());
            }
        }
        if let Some(rs) = v.get("references") {
            let list = rs.as_array().ok_or_else(|| {
                LmError::Format(format!("{}: \"references\" must be a list of strings", at))
            })?;
            for r in list {
                references.push(
                    r.as_str()
                        .ok_or_else(|| {
                            LmError::Format(format!(
                                "{}: \"references\" must be a list of strings",
                                at
                            ))
                        })?
                        .to_string(),
                );
            }
        }
        let mut columns = obj.clone();
        columns.remove("prompt");
        Ok(PromptRecord {
            prompt,
            references,
            messages,
            columns,
        })
    }
}

/// Reads JSONL prompts in TRL's two forms: standard `{"prompt": "text"}` and conversational
/// `{"prompt": [{"role": "user", "content": ...}, ...]}` (rendered later, with the model's chat
/// template, by [`render_conversations`]), with optional `"answer"`, `"reference"` (string) or
/// `"references"` (list of strings); every other column is kept for the rewards. Errors name the
/// file and line: a row without `prompt`, a conversation without a user turn.
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
        out.push(PromptRecord::from_row(&v, &at())?);
    }
    if out.is_empty() {
        return Err(LmError::Format(format!(
            "{}: no prompts (expected JSON lines with a \"prompt\" field)",
            path.display()
        )));
    }
    Ok(out)
}

/// Renders the conversational records' prompts with `template` and the generation prompt
/// (transformers' `apply_chat_template(..., add_generation_prompt=True)`); plain records stay
/// as they are. A conversational record without a template is an error naming `source`.
pub fn render_conversations(
    records: &mut [PromptRecord],
    template: Option<&ChatTemplate>,
    source: &str,
) -> Result<(), LmError> {
    for (i, r) in records.iter_mut().enumerate() {
        let Some(m) = &r.messages else { continue };
        let t = template.ok_or_else(|| {
            LmError::Input(format!(
                "prompt {} is a conversation, but {source} has no chat template",
                i + 1
            ))
        })?;
        r.prompt = t.render(m, true)?;
    }
    Ok(())
}

/// Whether any record is a conversation (its replies then end at the end-of-turn tokens).
pub fn any_conversation(records: &[PromptRecord]) -> bool {
    records.iter().any(|r| r.messages.is_some())
}
