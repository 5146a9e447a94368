//! Chat templates rendered as transformers' `apply_chat_template` does: the model's Jinja
//! template (`chat_template.jinja`, `tokenizer_config.json`'s `chat_template`, or a GGUF file's
//! `tokenizer.chat_template`) in a sandbox with `trim_blocks` and `lstrip_blocks`, the loop
//! controls extension, `raise_exception`, `tojson` (Python's `json.dumps`, not Jinja's
//! HTML-escaping one), `strftime_now`, Python's string and dict methods, and the special tokens
//! (`bos_token`, `eos_token`, ...) as variables. The template engine is the `minijinja` crate
//! (Jinja2's semantics, the sandboxed subset); `minijinja-contrib`'s `pycompat` supplies
//! `.strip()`, `.startswith()`, `.items()` and the like.

use crate::LmError;
use minijinja::value::Value as JValue;
use minijinja::{Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One chat message (`{"role", "content"}`; other keys, such as tool calls, are passed to the
/// template as they are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// Any other keys of the message.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Message {
    /// A message of `role` with `content`.
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.to_string(),
            content: content.to_string(),
            extra: Default::default(),
        }
    }
}

/// The messages of a JSON list in TRL's conversational form (`[{"role", "content"}, ...]`).
/// With `needs_user`, a conversation without a `user` turn is an error (a prompt must ask
/// something). Errors say which message is wrong.
pub fn parse_conversation(v: &serde_json::Value, needs_user: bool) -> Result<Vec<Message>, String> {
    let list = v
        .as_array()
        .ok_or("must be a list of {\"role\", \"content\"} messages")?;
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let msg: Message = serde_json::from_value(m.clone()).map_err(|e| {
            format!("message {i} is not a {{\"role\": string, \"content\": string}} object: {e}")
        })?;
        out.push(msg);
    }
    if out.is_empty() {
        return Err("the conversation is empty".into());
    }
    if needs_user && !out.iter().any(|m| m.role == "user") {
        return Err("the conversation has no user turn".into());
    }
    Ok(out)
}

/// A model's chat template with the special tokens it may refer to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    /// The Jinja source.
    pub source: String,
    /// Where it came from (a file name), for errors.
    pub origin: String,
    /// Special tokens by name (`bos_token`, `eos_token`, `pad_token`, `unk_token`), those
    /// the tokenizer sets.
    pub special_tokens: BTreeMap<String, String>,
}

/// The content of a special-token entry of `tokenizer_config.json`: a string or an
/// `AddedToken` object with `content`.
fn token_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o
            .get("content")
            .and_then(|c| c.as_str())
            .map(str::to_string),
        _ => None,
    }
}

/// The most template instructions one render may run (minijinja's fuel). Real templates
/// spend a few hundred per message (SmolLM2's ChatML: ~40), so this allows conversations of
/// tens of thousands of messages while a damaged template that loops ends in about a second
/// with an error instead of hanging the run.
const TEMPLATE_FUEL: u64 = 20_000_000;

const SPECIAL_NAMES: [&str; 4] = ["bos_token", "eos_token", "pad_token", "unk_token"];

impl ChatTemplate {
    /// The template of a model directory: `chat_template.jinja`, else the `chat_template` of
    /// `tokenizer_config.json` (a string, or a list of `{name, template}` of which `default` is
    /// used); `Ok(None)` when it has none. Special tokens come from `tokenizer_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>, LmError> {
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = if cfg_path.exists() {
            let text = std::fs::read_to_string(&cfg_path).map_err(|e| LmError::io(&cfg_path, e))?;
            serde_json::from_str(&text)
                .map_err(|e| LmError::Format(format!("{}: not JSON: {e}", cfg_path.display())))?
        } else {
            serde_json::Value::Null
        };
        let special_tokens: BTreeMap<String, String> = SPECIAL_NAMES
            .iter()
            .filter_map(|n| token_text(&cfg[*n]).map(|t| (n.to_string(), t)))
            .collect();
        let jinja = dir.join("chat_template.jinja");
        if jinja.exists() {
            let source = std::fs::read_to_string(&jinja).map_err(|e| LmError::io(&jinja, e))?;
            return Ok(Some(Self {
                source,
                origin: jinja.display().to_string(),
                special_tokens,
            }));
        }
        let origin = format!("{} (chat_template)", cfg_path.display());
        let source = match &cfg["chat_template"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(list) => {
                let default = list
                    .iter()
                    .find(|t| t["name"] == "default")
                    .ok_or_else(|| {
                        LmError::Format(format!(
                            "{origin}: a list of templates without one named \"default\""
                        ))
                    })?;
                default["template"]
                    .as_str()
                    .ok_or_else(|| {
                        LmError::Format(format!("{origin}: the default template is not a string"))
                    })?
                    .to_string()
            }
            serde_json::Value::Null => return Ok(None),
            other => {
                return Err(LmError::Format(format!(
                    "{origin}: expected a string or a list of {{name, template}}, got {other}"
                )))
            }
        };
        Ok(Some(Self {
            source,
            origin,
            special_tokens,
        }))
    }

    /// Writes `chat_template.jinja` and a `tokenizer_config.json` with the template and its
    /// special tokens (what [`ChatTemplate::from_dir`] and transformers read), atomically.
    pub fn save(&self, dir: &Path) -> Result<(), LmError> {
        let write = |name: &str, text: &str| -> Result<(), LmError> {
            let p = dir.join(name);
            rein_core::metrics::write_atomic(&p, text.as_bytes()).map_err(|e| LmError::io(&p, e))
        };
        let mut cfg = serde_json::Map::new();
        cfg.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
        for (k, v) in &self.special_tokens {
            cfg.insert(k.clone(), v.clone().into());
        }
        cfg.insert("chat_template".into(), self.source.clone().into());
        write("chat_template.jinja", &self.source)?;
        write(
            "tokenizer_config.json",
            &serde_json::to_string_pretty(&serde_json::Value::Object(cfg)).expect("JSON"),
        )
    }

    /// Renders `messages` (`add_generation_prompt` opens the assistant's turn). Template errors
    /// (syntax, `raise_exception`, a bad value) name the template and line.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, LmError> {
        let mut env = Environment::new();
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<JValue, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |fmt: String| -> Result<String, Error> {
            Ok(strftime(&fmt, unix_now()))
        });
        env.add_filter("tojson", tojson);
        let at = |e: Error| {
            let line = e.line().map(|l| format!(" line {l}")).unwrap_or_default();
            if e.kind() == ErrorKind::OutOfFuel {
                return LmError::Format(format!(
                    "{}{line}: chat template error: the template ran more than {TEMPLATE_FUEL} \
                     instructions for {} messages (a loop that never ends?)",
                    self.origin,
                    messages.len()
                ));
            }
            LmError::Format(format!("{}{line}: chat template error: {e}", self.origin))
        };
        let tmpl = env.template_from_str(&self.source).map_err(at)?;
        let mut ctx: BTreeMap<String, JValue> = self
            .special_tokens
            .iter()
            .map(|(k, v)| (k.clone(), JValue::from(v.clone())))
            .collect();
        ctx.insert("messages".into(), JValue::from_serialize(messages));
        ctx.insert(
            "add_generation_prompt".into(),
            JValue::from(add_generation_prompt),
        );
        tmpl.render(ctx).map_err(at)
    }
}

/// Python's `json.dumps(x, ensure_ascii=False, indent=indent)`: `", "` and `": "` separators
/// (`","` and `": "` with an indent), non-ASCII kept, keys in insertion order.
fn tojson(value: &JValue, kwargs: minijinja::value::Kwargs) -> Result<JValue, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let v: serde_json::Value = serde_json::to_value(value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    write_python_json(&v, indent, 0, &mut out);
    Ok(JValue::from_safe_string(out))
}

fn write_python_json(v: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    use serde_json::Value as V;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        V::Array(a) if !a.is_empty() => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                write_python_json(x, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        V::Object(o) if !o.is_empty() => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                out.push_str(&serde_json::to_string(k).expect("a string serialises"));
                out.push_str(": ");
                write_python_json(x, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        V::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            // Python writes floats with a fractional part or exponent (1.0, not 1).
            if f.fract() == 0.0 && f.abs() < 1e16 {
                out.push_str(&format!("{f:.1}"));
            } else {
                out.push_str(&format!("{f}"));
            }
        }
        other => out.push_str(&serde_json::to_string(other).expect("JSON serialises")),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `(year, month, day)` of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days from 1970-01-01 to January 1st of `year` (Hinnant's `days_from_civil`).
fn days_to_january_first(year: i64) -> i64 {
    let y = year - 1;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + 306;
    era * 146_097 + doe - 719_468
}

/// Python's `datetime.now().strftime(fmt)` in UTC for the directives chat templates use
/// (`%d %m %Y %y %b %B %a %A %H %M %S %j %%`); others are kept as written. (Written here: the
/// only need is the date line of Llama 3.x templates, not worth a date-time crate.)
fn strftime(fmt: &str, unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[((days + 3).rem_euclid(7)) as usize];
    let yday = days - days_to_january_first(y) + 1;
    let month = MONTHS[(m - 1) as usize];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('b') => out.push_str(&month[..3]),
            Some('B') => out.push_str(month),
            Some('a') => out.push_str(&weekday[..3]),
            Some('A') => out.push_str(weekday),
            Some('H') => out.push_str(&format!("{:02}", secs / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", secs % 60)),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(source: &str) -> ChatTemplate {
        ChatTemplate {
            source: source.into(),
            origin: "test.jinja".into(),
            special_tokens: [("bos_token".to_string(), "<s>".to_string())].into(),
        }
    }

    /// A template that would loop for ever runs out of fuel with an error naming it, while a
    /// long real conversation (ChatML, 20,000 messages) renders well within the fuel.
    #[test]
    fn a_template_that_never_ends_runs_out_of_fuel_and_long_conversations_do_not() {
        let t = template(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        );
        let e = t.render(&[], false).unwrap_err().to_string();
        assert!(
            e.contains("test.jinja") && e.contains("ran more than 20000000 instructions"),
            "{e}"
        );
        let chatml = template(
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + \
             message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}\
             {% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        );
        let long: Vec<Message> = (0..20_000)
            .map(|i| Message::new(if i % 2 == 0 { "user" } else { "assistant" }, "hi"))
            .collect();
        let text = chatml.render(&long, true).unwrap();
        assert_eq!(text.matches("<|im_end|>").count(), 20_000);
    }

    #[test]
    fn dates_tojson_and_errors_behave_as_in_transformers() {
        // 2024-07-23 12:34:56 UTC was a Tuesday, day 205 of the year.
        assert_eq!(
            strftime("%d %b %Y %A %H:%M:%S %j", 1_721_738_096),
            "23 Jul 2024 Tuesday 12:34:56 205"
        );
        let t = template("{{ bos_token }}{{ {'a': [1, 2.0, 'é<'], 'b': {}} | tojson }}");
        assert_eq!(
            t.render(&[], false).unwrap(),
            "<s>{\"a\": [1, 2.0, \"é<\"], \"b\": {}}"
        );
        let t = template("{{ messages[0].content.strip().upper() }}\n{% if messages|length > 1 %}{{ raise_exception('one message only') }}{% endif %}");
        assert_eq!(
            t.render(&[Message::new("user", " hi ")], false).unwrap(),
            "HI\n"
        );
        let e = t
            .render(
                &[Message::new("user", "a"), Message::new("user", "b")],
                false,
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("one message only") && e.contains("test.jinja line 2"),
            "{e}"
        );
        let e = template("{% for m in messages %}\n{{ m.content }\n{% endfor %}")
            .render(&[], false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("test.jinja line 2") && e.contains("syntax"),
            "{e}"
        );
    }
}
