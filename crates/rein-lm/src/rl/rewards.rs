//! Rewards for the RL trainers: verifiable answers, text metrics against references (BLEU,
//! chrF, ROUGE), rule rewards (length target, distinct-n, repetition, regex format), weighted
//! sums, a user's external command, and a spec language that builds any of them from a
//! preset or the command line (`rouge:variant=rougeL@0.8`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::rl::reward::{Reward, Sample};
use crate::LmError;
use rein_text::metrics;
use serde::{Deserialize, Serialize};

/// Which number of a response is its answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerTake {
    /// The number after `Answer:`, else the first integer ([`crate::tasks::extract_answer`]).
    #[default]
    First,
    /// The last integer ([`crate::tasks::extract_last_number`]): the result of a reply that
    /// works the problem out (`12 + 30 = 42`), as chat models answer.
    Last,
}

/// 1 when the response's answer (see [`AnswerTake`]) equals the first reference (verifiable
/// tasks).
pub struct ExactAnswer {
    /// Which number is the answer.
    pub take: AnswerTake,
}

impl Reward for ExactAnswer {
    fn name(&self) -> String {
        match self.take {
            AnswerTake::First => "exact_answer".into(),
            AnswerTake::Last => "exact_answer (last number)".into(),
        }
    }
    fn score(&mut self, samples: &[Sample]) -> Result<Vec<f64>, LmError> {
        samples
            .iter()
            .map(|s| {
                let want = need_reference(s)?.first().map(|w| w.trim()).unwrap_or("");
                let got = match self.take {
                    AnswerTake::First => crate::tasks::extract_answer(s.response),
                    AnswerTake::Last => crate::tasks::extract_last_number(s.response),
                };
                Ok(f64::from(u8::from(got.as_deref() == Some(want))))
            })
            .collect()
    }
}

fn need_reference<'a>(s: &Sample<'a>) -> Result<&'a [String], LmError> {
    if s.references.is_empty() {
        return Err(LmError::Input(format!(
            "prompt {:?} has no reference (\"answer\", \"reference\" or \"references\" in the prompt file)",
            s.prompt
        )));
    }
    Ok(s.references)
}

/// Which text metric a [`MetricReward`] computes (all scaled to 0-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextMetric {
    /// sacrebleu's `sentence_bleu` (effective order) / 100.
    Bleu,
    /// sacrebleu's sentence chrF / 100.
    Chrf,
    /// ROUGE-1 F1 (best reference).
    Rouge1,
    /// ROUGE-2 F1 (best reference).
    Rouge2,
    /// ROUGE-L F1 (best reference).
    #[serde(rename = "rougeL", alias = "rouge_l")]
    RougeL,
    /// ROUGE-Lsum F1 (best reference).
    #[serde(rename = "rougeLsum", alias = "rouge_lsum")]
    RougeLsum,
}

/// A text metric of the response against the prompt's references.
pub struct MetricReward {
    /// The metric.
    pub metric: TextMetric,
    /// Porter-stem tokens before ROUGE (rouge-score's `use_stemmer`).
    pub stem: bool,
}

impl Reward for MetricReward {
    fn name(&self) -> String {
        format!("{:?}", self.metric).to_lowercase()
    }
    fn score(&mut self, samples: &[Sample]) -> Result<Vec<f64>, LmError> {
        samples
            .iter()
            .map(|s| {
                let refs: Vec<&str> = need_reference(s)?.iter().map(String::as_str).collect();
                let best = |f: &dyn Fn(&metrics::Rouge) -> f64| {
                    refs.iter()
                        .map(|r| f(&metrics::rouge_with(r, s.response, self.stem)))
                        .fold(0.0, f64::max)
                };
                Ok(match self.metric {
                    TextMetric::Bleu => metrics::sentence_bleu(s.response, &refs).score / 100.0,
                    TextMetric::Chrf => metrics::sentence_chrf(s.response, &refs) / 100.0,
                    TextMetric::Rouge1 => best(&|x| x.rouge1.fmeasure),
                    TextMetric::Rouge2 => best(&|x| x.rouge2.fmeasure),
                    TextMetric::RougeL => best(&|x| x.rouge_l.fmeasure),
                    TextMetric::RougeLsum => best(&|x| x.rouge_lsum.fmeasure),
                })
            })
            .collect()
    }
}

fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

/// Share of distinct word n-grams among all of the response's word n-grams (1 when it has
/// none): Li et al. (2016)'s distinct-n, per response.
pub fn distinct_n(text: &str, n: usize) -> f64 {
    let w = words(text);
    if n == 0 || w.len() < n {
        return 1.0;
    }
    let grams: Vec<&[&str]> = w.windows(n).collect();
    let unique: std::collections::HashSet<&[&str]> = grams.iter().copied().collect();
    unique.len() as f64 / grams.len() as f64
}

/// A rule reward computed from the response text alone.
pub enum RuleReward {
    /// `-|words - target| / target`: 0 at the target length, lower either side.
    Length {
        /// Target length in words.
        target: f64,
    },
    /// [`distinct_n`] of the response (0-1, higher is more diverse).
    DistinctN {
        /// n-gram order.
        n: usize,
    },
    /// `distinct_n - 1`: 0 without repeated n-grams, down to nearly -1 for one n-gram
    /// repeated.
    Repetition {
        /// n-gram order.
        n: usize,
    },
    /// 1 when the regex matches the response, else 0 (format checks).
    Regex(regex::Regex),
}

impl Reward for RuleReward {
    fn name(&self) -> String {
        match self {
            RuleReward::Length { .. } => "length".into(),
            RuleReward::DistinctN { n } => format!("distinct_{n}"),
            RuleReward::Repetition { n } => format!("repetition_{n}"),
            RuleReward::Regex(r) => format!("regex {r}"),
        }
    }
    fn score(&mut self, samples: &[Sample]) -> Result<Vec<f64>, LmError> {
        Ok(samples
            .iter()
            .map(|s| match self {
                RuleReward::Length { target } => {
                    -((words(s.response).len() as f64 - *target).abs() / *target)
                }
                RuleReward::DistinctN { n } => distinct_n(s.response, *n),
                RuleReward::Repetition { n } => distinct_n(s.response, *n) - 1.0,
                RuleReward::Regex(r) => f64::from(u8::from(r.is_match(s.response))),
            })
            .collect())
    }
}

/// `sum_i w_i r_i(x)`: several rewards mixed with weights.
pub struct WeightedSum {
    /// (weight, reward) pairs.
    pub parts: Vec<(f64, Box<dyn Reward>)>,
}

impl Reward for WeightedSum {
    fn name(&self) -> String {
        self.parts
            .iter()
            .map(|(w, r)| format!("{w}*{}", r.name()))
            .collect::<Vec<_>>()
            .join(" + ")
    }
    fn score(&mut self, samples: &[Sample]) -> Result<Vec<f64>, LmError> {
        let mut total = vec![0.0; samples.len()];
        for (w, r) in &mut self.parts {
            let s = r.score(samples)?;
            if s.len() != samples.len() {
                return Err(LmError::Input(format!(
                    "reward {} returned {} scores for {} samples",
                    r.name(),
                    s.len(),
                    samples.len()
                )));
            }
            for (t, x) in total.iter_mut().zip(s) {
                *t += *w * x;
            }
        }
        Ok(total)
    }
}

/// The process group a reward program runs in (its id is the program's pid), killed with
/// everything in it when dropped.
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Ok(id) = i32::try_from(self.0) {
            // SAFETY: kill(2) with a negative id signals that process group and nothing else;
            // an empty group only makes it return ESRCH.
            unsafe {
                libc::kill(-id, libc::SIGKILL);
            }
        }
    }
}

/// A user's reward program: each batch starts `program args...`, writes one JSON object per
/// sample to its stdin (`{"prompt": ..., "response": ..., "references": [...]}`, plus the prompt
/// row's other columns such as `answer`, and `messages` for a conversation), closes
/// stdin and reads one number per line from its stdout. The program runs in its own process
/// group; one that runs past `timeout` is killed with every process it started, and what it
/// leaves running when it exits is ended too. A non-zero exit, a missing line or a line that is not a number is an error that
/// quotes the line.
pub struct ExternalCommand {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Time limit per batch.
    pub timeout: Duration,
}

impl Reward for ExternalCommand {
    fn name(&self) -> String {
        format!("command {}", self.command.join(" "))
    }
    fn score(&mut self, samples: &[Sample]) -> Result<Vec<f64>, LmError> {
        let what = self.command.join(" ");
        let fail = |why: String| LmError::Input(format!("reward command `{what}`: {why}"));
        let (program, args) = self
            .command
            .split_first()
            .ok_or_else(|| fail("no program given".into()))?;
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .map_err(|e| fail(format!("cannot start: {e}")))?;
        // Whatever the program started (a `sleep` in a script, a server it forgot) ends with
        // it: on time-out, on exit and on every early return.
        let group = ProcessGroup(child.id());
        let mut input = String::new();
        for s in samples {
            let mut row = s.columns.clone();
            row.insert("prompt".into(), s.prompt.into());
            row.insert("response".into(), s.response.into());
            row.insert("references".into(), serde_json::json!(s.references));
            if let Some(m) = s.messages {
                row.insert("messages".into(), serde_json::json!(m));
            }
            input.push_str(&serde_json::Value::Object(row).to_string());
            input.push('\n');
        }
        let mut stdin = child.stdin.take().ok_or_else(|| fail("no stdin".into()))?;
        // Writer and readers on their own threads: a program that answers before reading all
        // of its input must not deadlock against a full pipe.
        let writer = std::thread::spawn(move || {
            let r = stdin.write_all(input.as_bytes());
            drop(stdin);
            r
        });
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("no stdout".into()))?;
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            stdout.read_to_string(&mut s).map(|_| s)
        });
        let mut stderr = child
            .stderr
            .take()
            .ok_or_else(|| fail("no stderr".into()))?;
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            stderr.read_to_string(&mut s).ok();
            s
        });
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() >= deadline => {
                    child.kill().ok();
                    child.wait().ok();
                    return Err(fail(format!(
                        "no answer within {:.1} s (killed); raise the timeout or speed it up",
                        self.timeout.as_secs_f64()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(fail(format!("wait failed: {e}"))),
            }
        };
        // The program is done: end what it left running, which may hold its stdout open.
        drop(group);
        let _ = writer.join();
        let out = reader
            .join()
            .map_err(|_| fail("stdout reader panicked".into()))?
            .map_err(|e| fail(format!("reading stdout: {e}")))?;
        let err = err_reader.join().unwrap_or_default();
        if !status.success() {
            return Err(fail(format!(
                "exited with {status}; stderr: {}",
                err.trim()
            )));
        }
        let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() != samples.len() {
            return Err(fail(format!(
                "wrote {} score lines for {} samples",
                lines.len(),
                samples.len()
            )));
        }
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                l.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| {
                        fail(format!(
                            "line {} is {l:?}, expected one finite number",
                            i + 1
                        ))
                    })
            })
            .collect()
    }
}

fn default_weight() -> f64 {
    1.0
}

fn default_timeout() -> f64 {
    60.0
}

fn default_variant() -> TextMetric {
    TextMetric::RougeL
}

/// One reward of a preset or `--reward` flag, with its weight in the sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RewardSpec {
    /// [`ExactAnswer`].
    ExactAnswer {
        /// Which number is the answer (`first`, the default, or `last`).
        #[serde(default)]
        take: AnswerTake,
        /// Weight.
        #[serde(default = "default_weight")]
        weight: f64,
    },
    /// BLEU, chrF or a ROUGE variant against the references ([`MetricReward`]).
    Metric {
        /// `bleu`, `chrf`, `rouge1`, `rouge2`, `rougeL` or `rougeLsum`.
        #[serde(default = "default_variant")]
        metric: TextMetric,
        /// Porter stemmer for ROUGE.
        #[serde(default)]
        stem: bool,
        /// Weight.
        #[serde(default = "default_weight")]
        weight: f64,
    },
    /// VADER compound sentiment of the response.
    Vader {
        /// Weight.
        #[serde(default = "default_weight")]
        weight: f64,
    },
    /// [`RuleReward::Length`].
    Length {
        /// Target length in words.
        target: f64,
        /// Weight.
        #[serde(default = "default_weight")]
        weight: f64,
    },
    /// [`RuleReward::DistinctN`].
    DistinctN {
        /// n-gram order.
        n: usize,
        /// Weight.
        #[serde(default = "default_weight")]
        weight: f64,
    },
    /// [`RuleReward::Repetition`].
    Repetition {
        /// n-gram order.
        n: usize,
        /// Weight.
        #[serde(default = "default_weight")]
        weight: f64,
    },
    /// [`RuleReward::Regex`].
    Regex {
        /// The pattern (Rust `regex` syntax).
        pattern: String,
        /// Weight.
        #[serde(default = "default_weight")]
        weight: f64,
    },
    /// [`ExternalCommand`].
    Command {
        /// Program and arguments.
        command: Vec<String>,
        /// Seconds per batch before the program is killed.
        #[serde(default = "default_timeout")]
        timeout_s: f64,
        /// Weight.
        #[serde(default = "default_weight")]
        weight: f64,
    },
    /// A trained reward model directory (`rein lm train-reward-model`).
    RewardModel {
        /// The model directory.
        path: PathBuf,
        /// Weight.
        #[serde(default = "default_weight")]
        weight: f64,
    },
}

impl RewardSpec {
    /// The weight in the sum.
    pub fn weight(&self) -> f64 {
        match self {
            RewardSpec::ExactAnswer { weight, .. }
            | RewardSpec::Metric { weight, .. }
            | RewardSpec::Vader { weight }
            | RewardSpec::Length { weight, .. }
            | RewardSpec::DistinctN { weight, .. }
            | RewardSpec::Repetition { weight, .. }
            | RewardSpec::Regex { weight, .. }
            | RewardSpec::Command { weight, .. }
            | RewardSpec::RewardModel { weight, .. } => *weight,
        }
    }

    /// Parses the command-line form `kind[:key=value,...][@weight]`, e.g. `exact_answer`,
    /// `metric:metric=rougeL,stem=true@0.8`, `length:target=40@0.2`,
    /// `command:command=python3 score.py,timeout_s=10` (the command split at spaces). Values
    /// are read as JSON when they parse, else as strings. Use a preset file for values that
    /// contain commas.
    pub fn parse(s: &str) -> Result<Self, LmError> {
        let bad = |why: String| LmError::Input(format!("reward {s:?}: {why}"));
        let (body, weight) = match s.rsplit_once('@') {
            Some((b, w)) if w.trim().parse::<f64>().is_ok() => (b, Some(w.trim())),
            // After a bare kind (`exact_answer@abc`), or when it starts like a number
            // (`@0.5x`), what follows `@` can only be a weight; elsewhere an `@` may belong
            // to a value (`regex:pattern=\w+@\w+`).
            Some((b, w))
                if !b.contains(':')
                    || w.trim()
                        .starts_with(|c: char| c.is_ascii_digit() || "+-.".contains(c)) =>
            {
                return Err(bad(format!(
                    "the weight after @ must be a number, got {:?}",
                    w.trim()
                )));
            }
            _ => (s, None),
        };
        let (kind, rest) = body.split_once(':').unwrap_or((body, ""));
        let mut obj = serde_json::Map::new();
        obj.insert("kind".into(), serde_json::Value::String(kind.trim().into()));
        for kv in rest.split(',').filter(|x| !x.trim().is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(format!("{kv:?} is not key=value")))?;
            let k = k.trim();
            let value = if k == "command" {
                serde_json::Value::Array(
                    v.split_whitespace()
                        .map(|x| serde_json::Value::String(x.into()))
                        .collect(),
                )
            } else {
                serde_json::from_str(v.trim())
                    .unwrap_or_else(|_| serde_json::Value::String(v.trim().into()))
            };
            obj.insert(k.into(), value);
        }
        if let Some(w) = weight {
            obj.insert(
                "weight".into(),
                serde_json::from_str(w).map_err(|e| bad(e.to_string()))?,
            );
        }
        serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| {
            bad(format!(
                "{e} (kinds: exact_answer, metric, vader, length, distinct_n, repetition, regex, command, reward_model)"
            ))
        })
    }

    /// Builds the reward (unweighted).
    pub fn build(&self) -> Result<Box<dyn Reward>, LmError> {
        Ok(match self {
            RewardSpec::ExactAnswer { take, .. } => Box::new(ExactAnswer { take: *take }),
            RewardSpec::Metric { metric, stem, .. } => Box::new(MetricReward {
                metric: *metric,
                stem: *stem,
            }),
            RewardSpec::Vader { .. } => Box::new(VaderReward::new()),
            RewardSpec::Length { target, .. } => {
                if !(target.is_finite() && *target > 0.0) {
                    return Err(LmError::Input(format!(
                        "length reward: target must be a positive number of words, got {target}"
                    )));
                }
                Box::new(RuleReward::Length { target: *target })
            }
            RewardSpec::DistinctN { n, .. } | RewardSpec::Repetition { n, .. } if *n == 0 => {
                return Err(LmError::Input(
                    "distinct_n/repetition: n must be at least 1".into(),
                ))
            }
            RewardSpec::DistinctN { n, .. } => Box::new(RuleReward::DistinctN { n: *n }),
            RewardSpec::Repetition { n, .. } => Box::new(RuleReward::Repetition { n: *n }),
            RewardSpec::Regex { pattern, .. } => {
                Box::new(RuleReward::Regex(regex::Regex::new(pattern).map_err(
                    |e| LmError::Input(format!("regex reward: pattern {pattern:?}: {e}")),
                )?))
            }
            RewardSpec::Command {
                command, timeout_s, ..
            } => {
                if command.is_empty() {
                    return Err(LmError::Input("command reward: empty command".into()));
                }
                if !(timeout_s.is_finite() && *timeout_s > 0.0) {
                    return Err(LmError::Input(format!(
                        "command reward: timeout_s must be positive, got {timeout_s}"
                    )));
                }
                Box::new(ExternalCommand {
                    command: command.clone(),
                    timeout: Duration::from_secs_f64(*timeout_s),
                })
            }
            RewardSpec::RewardModel { path, .. } => {
                Box::new(crate::rl::reward_model::RewardModel::load(path)?)
            }
        })
    }
}

/// The reward of several specs: the one reward itself when there is one with weight 1, else
/// their [`WeightedSum`].
pub fn build_reward(specs: &[RewardSpec]) -> Result<Box<dyn Reward>, LmError> {
    if specs.is_empty() {
        return Err(LmError::Input("no reward given".into()));
    }
    if specs.len() == 1 && specs[0].weight() == 1.0 {
        return specs[0].build();
    }
    Ok(Box::new(WeightedSum {
        parts: specs
            .iter()
            .map(|s| Ok((s.weight(), s.build()?)))
            .collect::<Result<_, LmError>>()?,
    }))
}

/// The VADER compound score of the response (-1..1): the reward of the sentiment task.
#[derive(Default)]
pub struct VaderReward;

impl VaderReward {
    /// The reward (the lexicons load on first use).
    pub fn new() -> Self {
        Self
    }
}

impl Reward for VaderReward {
    fn name(&self) -> String {
        "vader".into()
    }
    fn score(&mut self, samples: &[Sample]) -> Result<Vec<f64>, LmError> {
        Ok(samples
            .iter()
            .map(|s| rein_text::vader::polarity_scores(s.response).compound)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(response: &'a str, refs: &'a [String]) -> Sample<'a> {
        Sample::new("p", response, refs)
    }

    fn sh(script: &str, timeout_s: f64) -> ExternalCommand {
        ExternalCommand {
            command: vec!["sh".into(), "-c".into(), script.into()],
            timeout: Duration::from_secs_f64(timeout_s),
        }
    }

    #[test]
    fn rule_rewards_follow_their_definitions() {
        let none: Vec<String> = Vec::new();
        let s = [
            sample("a b c d", &none),
            sample("the the the the", &none),
            sample("", &none),
        ];
        let len = RuleReward::Length { target: 2.0 }.score(&s).unwrap();
        assert_eq!(len, vec![-1.0, -1.0, -1.0]);
        let d2 = RuleReward::DistinctN { n: 2 }.score(&s).unwrap();
        assert_eq!(d2, vec![1.0, 1.0 / 3.0, 1.0]);
        let rep = RuleReward::Repetition { n: 1 }.score(&s).unwrap();
        assert_eq!(rep, vec![0.0, -0.75, 0.0]);
        let re = RuleReward::Regex(regex::Regex::new(r"^a \w").unwrap())
            .score(&s)
            .unwrap();
        assert_eq!(re, vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn specs_parse_and_weighted_sums_add_up() {
        let specs = [
            RewardSpec::parse("distinct_n:n=1@0.5").unwrap(),
            RewardSpec::parse("length:target=2@2").unwrap(),
        ];
        assert_eq!(specs[0], RewardSpec::DistinctN { n: 1, weight: 0.5 });
        let mut r = build_reward(&specs).unwrap();
        let none: Vec<String> = Vec::new();
        let got = r.score(&[sample("x x x", &none)]).unwrap();
        // 0.5 * (1/3) + 2 * (-(3 - 2) / 2)
        assert!((got[0] - (0.5 / 3.0 - 1.0)).abs() < 1e-12);
        assert_eq!(
            RewardSpec::parse("metric:metric=rougeL,stem=true").unwrap(),
            RewardSpec::Metric {
                metric: TextMetric::RougeL,
                stem: true,
                weight: 1.0
            }
        );
        let e = RewardSpec::parse("lenght:target=3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lenght") && e.contains("exact_answer"), "{e}");
        let e = RewardSpec::parse("regex:pattern=(")
            .unwrap()
            .build()
            .err()
            .unwrap();
        assert!(e.to_string().contains("pattern"), "{e}");
        for spec in ["exact_answer@abc", "length:target=3@0.5x"] {
            let e = RewardSpec::parse(spec).unwrap_err().to_string();
            assert!(e.contains("the weight after @ must be a number"), "{e}");
        }
        // An `@` inside a value stays part of it.
        assert_eq!(
            RewardSpec::parse("regex:pattern=a@b").unwrap(),
            RewardSpec::parse("regex:pattern=a@b@1").unwrap()
        );
    }

    #[test]
    fn metric_rewards_take_the_best_reference() {
        let refs = vec!["the cat sat".to_string(), "a dog ran".to_string()];
        let mut r = MetricReward {
            metric: TextMetric::Rouge1,
            stem: false,
        };
        assert_eq!(r.score(&[sample("a dog ran", &refs)]).unwrap(), vec![1.0]);
        let mut b = MetricReward {
            metric: TextMetric::Bleu,
            stem: false,
        };
        let got = b.score(&[sample("the cat sat", &refs)]).unwrap()[0];
        assert!((got - 1.0).abs() < 1e-9, "{got}");
        let none: Vec<String> = Vec::new();
        let e = r.score(&[sample("x", &none)]).unwrap_err().to_string();
        assert!(e.contains("no reference"), "{e}");
    }

    #[test]
    fn external_command_scores_and_fails_clearly() {
        let none: Vec<String> = Vec::new();
        let s = [sample("a", &none), sample("b", &none)];
        let mut ok = sh(
            "n=0; while read -r l; do n=$((n+1)); echo \"$n.5\"; done",
            10.0,
        );
        assert_eq!(ok.score(&s).unwrap(), vec![1.5, 2.5]);
        let e = sh("cat > /dev/null; echo 1; echo nope", 10.0)
            .score(&s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2 is \"nope\""), "{e}");
        let e = sh("cat > /dev/null; echo 1", 10.0)
            .score(&s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 score lines for 2 samples"), "{e}");
        let e = sh("cat > /dev/null; echo boom >&2; exit 3", 10.0)
            .score(&s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("boom"), "{e}");
        let t = Instant::now();
        let e = sh("sleep 5", 0.3).score(&s).unwrap_err().to_string();
        assert!(e.contains("no answer within 0.3 s"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    /// The state letter of process `pid` in /proc (None once it is gone).
    fn process_state(pid: &str) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }

    #[test]
    fn a_reward_command_takes_what_it_started_with_it() {
        let none: Vec<String> = Vec::new();
        let s = [sample("a", &none)];
        let dir = std::env::temp_dir().join(format!("rein-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gone = |file: &std::path::Path| {
            let pid = std::fs::read_to_string(file).unwrap();
            let pid = pid.trim();
            let t = Instant::now();
            // Killed processes may stay zombies until their new parent reaps them.
            while !matches!(process_state(pid), None | Some('Z')) {
                assert!(t.elapsed() < Duration::from_secs(5), "{pid} still runs");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        // Timed out: the script's background `sleep` dies with it.
        let file = dir.join("timeout.pid");
        let script = format!("sleep 1000 & echo $! > {}; wait", file.display());
        let t = Instant::now();
        let e = sh(&script, 0.5).score(&s).unwrap_err().to_string();
        assert!(e.contains("no answer within"), "{e}");
        gone(&file);
        // Exited with a child left running (holding stdout open): scored, and the child ends.
        let file = dir.join("exit.pid");
        let script = format!(
            "cat > /dev/null; sleep 1000 & echo $! > {}; echo 2",
            file.display()
        );
        assert_eq!(sh(&script, 30.0).score(&s).unwrap(), vec![2.0]);
        gone(&file);
        assert!(t.elapsed() < Duration::from_secs(10));
        std::fs::remove_dir_all(&dir).ok();
    }
}
