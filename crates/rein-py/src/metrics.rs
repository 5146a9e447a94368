//! rein-text's metrics for Python (`rein.metrics`), as JSON text that the Python side turns
//! into sacrebleu's and rouge-score's result objects.

use pyo3::prelude::*;
use rein_text::metrics;

fn streams(refs: &[Vec<String>]) -> Vec<Vec<&str>> {
    refs.iter()
        .map(|s| s.iter().map(String::as_str).collect())
        .collect()
}

/// sacrebleu's `BLEU().corpus_score(hyps, refs)` (`refs`: reference streams) as JSON text of
/// `{score, counts, totals, precisions, bp, sys_len, ref_len}`.
#[pyfunction]
pub fn corpus_bleu(hyps: Vec<String>, refs: Vec<Vec<String>>) -> String {
    let h: Vec<&str> = hyps.iter().map(String::as_str).collect();
    serde_json::to_string(&metrics::corpus_bleu(&h, &streams(&refs))).expect("JSON")
}

/// sacrebleu's `BLEU(effective_order=...).sentence_score(hyp, refs)` as JSON text.
#[pyfunction]
pub fn sentence_bleu(hyp: &str, refs: Vec<String>, effective_order: bool) -> String {
    let r: Vec<&str> = refs.iter().map(String::as_str).collect();
    let s = metrics::bleu_from_stats(&metrics::bleu_stats(hyp, &r), effective_order);
    serde_json::to_string(&s).expect("JSON")
}

/// sacrebleu's `CHRF().corpus_score(hyps, refs).score`.
#[pyfunction]
pub fn corpus_chrf(hyps: Vec<String>, refs: Vec<Vec<String>>) -> f64 {
    let h: Vec<&str> = hyps.iter().map(String::as_str).collect();
    metrics::corpus_chrf(&h, &streams(&refs))
}

/// sacrebleu's `sentence_chrf(hyp, refs).score`.
#[pyfunction]
pub fn sentence_chrf(hyp: &str, refs: Vec<String>) -> f64 {
    let r: Vec<&str> = refs.iter().map(String::as_str).collect();
    metrics::sentence_chrf(hyp, &r)
}

/// rouge-score's `RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"],
/// use_stemmer).score(target, prediction)` as JSON text.
#[pyfunction]
pub fn rouge(target: &str, prediction: &str, use_stemmer: bool) -> String {
    serde_json::to_string(&metrics::rouge_with(target, prediction, use_stemmer)).expect("JSON")
}

/// vaderSentiment's `polarity_scores(text)` (rounded as it returns them) as JSON text.
#[pyfunction]
pub fn vader(text: &str) -> String {
    serde_json::to_string(&rein_text::vader::polarity_scores(text).rounded()).expect("JSON")
}
