//! Scores of a whole file of hypotheses, as `rein lm metric` prints them: the corpus-level
//! score and each sentence's, as JSON.

use crate::metrics as m;

/// A metric of `rein lm metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// sacrebleu's BLEU.
    Bleu,
    /// sacrebleu's chrF.
    Chrf,
    /// rouge-score's ROUGE-1/2/L/Lsum.
    Rouge,
    /// vaderSentiment's polarity scores (no references).
    Vader,
}

impl Metric {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Bleu => "bleu",
            Metric::Chrf => "chrf",
            Metric::Rouge => "rouge",
            Metric::Vader => "vader",
        }
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bleu" => Ok(Metric::Bleu),
            "chrf" => Ok(Metric::Chrf),
            "rouge" => Ok(Metric::Rouge),
            "vader" => Ok(Metric::Vader),
            other => Err(format!(
                "unknown metric {other:?} (expected bleu, chrf, rouge or vader)"
            )),
        }
    }
}

fn json<T: serde::Serialize>(x: &T) -> serde_json::Value {
    serde_json::to_value(x).unwrap_or(serde_json::Value::Null)
}

/// The corpus score (BLEU, chrF: sacrebleu's corpus statistics; ROUGE, VADER: the mean of the
/// sentences') and each sentence's score of `hyps` against the aligned `refs` (unused by
/// VADER); `stem` applies the Porter stemmer to ROUGE.
pub fn score(
    metric: Metric,
    h: &[&str],
    r: &[&str],
    stem: bool,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    match metric {
        Metric::Bleu => (
            json(&m::corpus_bleu(h, std::slice::from_ref(&r.to_vec()))),
            h.iter()
                .zip(r)
                .map(|(x, y)| json(&m::sentence_bleu(x, &[y])))
                .collect(),
        ),
        Metric::Chrf => (
            serde_json::json!({"score": m::corpus_chrf(h, std::slice::from_ref(&r.to_vec()))}),
            h.iter()
                .zip(r)
                .map(|(x, y)| serde_json::json!({"score": m::sentence_chrf(x, &[y])}))
                .collect(),
        ),
        Metric::Rouge => {
            let each: Vec<m::Rouge> = h
                .iter()
                .zip(r)
                .map(|(x, y)| m::rouge_with(y, x, stem))
                .collect();
            (
                json(&m::Rouge::mean(&each)),
                each.iter().map(json).collect(),
            )
        }
        Metric::Vader => {
            let each: Vec<crate::vader::Polarity> = h
                .iter()
                .map(|x| crate::vader::polarity_scores(x).rounded())
                .collect();
            let k = each.len().max(1) as f64;
            let mean = |f: fn(&crate::vader::Polarity) -> f64| each.iter().map(f).sum::<f64>() / k;
            (
                serde_json::json!({"neg": mean(|p| p.neg), "neu": mean(|p| p.neu), "pos": mean(|p| p.pos), "compound": mean(|p| p.compound)}),
                each.iter().map(json).collect(),
            )
        }
    }
}

/// The texts of a file, one per line (a final newline ends the last line, `\r\n` counts as a
/// line end), or with `jsonl` one JSON string per line (texts with newlines); errors name the
/// file and line.
pub fn read_texts(path: &std::path::Path, jsonl: bool) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let l = l.strip_suffix('\r').unwrap_or(l);
            if !jsonl {
                return Ok(l.to_string());
            }
            serde_json::from_str::<String>(l).map_err(|e| {
                format!(
                    "{}:{}: expected one JSON string per line ({e})",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

/// [`score`] of the texts of the file `hyps` against the aligned file `refs` (not needed for
/// VADER), read with [`read_texts`]; misaligned files are an error naming both.
pub fn score_files(
    metric: Metric,
    hyps: &std::path::Path,
    refs: Option<&std::path::Path>,
    jsonl: bool,
    stem: bool,
) -> Result<(serde_json::Value, Vec<serde_json::Value>), String> {
    let h = read_texts(hyps, jsonl)?;
    let r = match refs {
        Some(path) => {
            let r = read_texts(path, jsonl)?;
            if h.len() != r.len() {
                return Err(format!(
                    "{} has {} texts but {} has {}: they must be aligned line by line",
                    hyps.display(),
                    h.len(),
                    path.display(),
                    r.len()
                ));
            }
            r
        }
        None if metric == Metric::Vader => Vec::new(),
        None => return Err(format!("metric {} needs --refs", metric.name())),
    };
    let h: Vec<&str> = h.iter().map(String::as_str).collect();
    let r: Vec<&str> = r.iter().map(String::as_str).collect();
    Ok(score(metric, &h, &r, stem))
}
