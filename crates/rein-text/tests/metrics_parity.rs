//! BLEU and chrF against sacrebleu 2.6.0 on the 150 pairs of `tests/fixtures/metrics`
//! (copied from `shared/fixtures/metrics`; tolerance from its README: scores within 1e-6 on
//! the 0-100 scale, counts and lengths exact, brevity penalty within 1e-9).

use rein_text::metrics::{
    bleu_from_stats, bleu_stats, corpus_bleu, corpus_chrf, sentence_bleu, sentence_chrf, BleuScore,
};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metrics")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn pairs() -> Vec<Value> {
    fixture("pairs.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn check_bleu(got: &BleuScore, want: &Value, what: &str) {
    let f = |k: &str| want[k].as_f64().unwrap();
    let ints = |k: &str| -> Vec<usize> {
        want[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    };
    assert!(
        (got.score - f("score")).abs() < 1e-6,
        "{what}: score {} vs {}",
        got.score,
        f("score")
    );
    assert_eq!(got.counts.to_vec(), ints("counts"), "{what}: counts");
    assert_eq!(got.totals.to_vec(), ints("totals"), "{what}: totals");
    assert_eq!(
        got.sys_len,
        want["sys_len"].as_u64().unwrap() as usize,
        "{what}: sys_len"
    );
    assert_eq!(
        got.ref_len,
        want["ref_len"].as_u64().unwrap() as usize,
        "{what}: ref_len"
    );
    assert!(
        (got.bp - f("bp")).abs() < 1e-9,
        "{what}: bp {} vs {}",
        got.bp,
        f("bp")
    );
    for (i, p) in want["precisions"].as_array().unwrap().iter().enumerate() {
        let p = p.as_f64().unwrap();
        assert!(
            (got.precisions[i] - p).abs() < 1e-6,
            "{what}: precision {i}: {} vs {p}",
            got.precisions[i]
        );
    }
}

#[test]
fn sentence_bleu_and_chrf_match_sacrebleu() {
    for p in pairs() {
        let (h, r) = (p["hyp"].as_str().unwrap(), p["ref"].as_str().unwrap());
        let what = format!("pair {} ({})", p["id"], p["kind"]);
        let plain = bleu_from_stats(&bleu_stats(h, &[r]), false);
        check_bleu(
            &plain,
            &p["sentence_bleu"],
            &format!("{what} sentence_bleu"),
        );
        check_bleu(
            &sentence_bleu(h, &[r]),
            &p["sentence_bleu_effective_order"],
            &format!("{what} effective order"),
        );
        let want = p["sentence_chrf"].as_f64().unwrap();
        let got = sentence_chrf(h, &[r]);
        assert!((got - want).abs() < 1e-6, "{what}: chrF {got} vs {want}");
    }
}

#[test]
fn corpus_bleu_and_chrf_match_sacrebleu() {
    let all = pairs();
    let corpus: Value = serde_json::from_str(&fixture("corpus.json")).unwrap();
    for c in corpus["corpora"].as_array().unwrap() {
        let (a, b) = (
            c["first"].as_u64().unwrap() as usize,
            c["end"].as_u64().unwrap() as usize,
        );
        let hyps: Vec<&str> = all[a..b]
            .iter()
            .map(|p| p["hyp"].as_str().unwrap())
            .collect();
        let refs: Vec<&str> = all[a..b]
            .iter()
            .map(|p| p["ref"].as_str().unwrap())
            .collect();
        let name = c["name"].as_str().unwrap();
        check_bleu(
            &corpus_bleu(&hyps, std::slice::from_ref(&refs)),
            &c["corpus_bleu"],
            name,
        );
        let want = c["corpus_chrf"].as_f64().unwrap();
        let got = corpus_chrf(&hyps, &[refs]);
        assert!(
            (got - want).abs() < 1e-6,
            "{name}: corpus chrF {got} vs {want}"
        );
    }
}

/// ROUGE-1/2/L/Lsum with and without the Porter stemmer against rouge-score 0.1.2 (within
/// 1e-9).
#[test]
fn rouge_matches_rouge_score_with_and_without_stemmer() {
    for (stem, field) in [(false, "rouge_nostem"), (true, "rouge_stem")] {
        for p in pairs() {
            let (h, r) = (p["hyp"].as_str().unwrap(), p["ref"].as_str().unwrap());
            let got = rein_text::metrics::rouge_with(r, h, stem);
            let want = &p[field];
            for (key, s) in [
                ("rouge1", got.rouge1),
                ("rouge2", got.rouge2),
                ("rougeL", got.rouge_l),
                ("rougeLsum", got.rouge_lsum),
            ] {
                let w: Vec<f64> = want[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                for (g, w, name) in [
                    (s.precision, w[0], "precision"),
                    (s.recall, w[1], "recall"),
                    (s.fmeasure, w[2], "fmeasure"),
                ] {
                    assert!(
                        (g - w).abs() < 1e-9,
                        "{field} pair {} ({}): {key} {name} {g} vs {w}",
                        p["id"],
                        p["kind"]
                    );
                }
            }
        }
    }
}

/// VADER's neg/neu/pos/compound against vaderSentiment 3.3.2: unrounded within 1e-12,
/// rounded exactly.
#[test]
fn vader_matches_vader_sentiment() {
    let mut n = 0;
    for p in pairs() {
        for side in ["hyp", "ref"] {
            let text = p[side].as_str().unwrap();
            let got = rein_text::vader::polarity_scores(text);
            let rounded = got.rounded();
            for (want, g, exact) in [
                (&p[format!("vader_{side}_unrounded")], got, false),
                (&p[format!("vader_{side}")], rounded, true),
            ] {
                for (key, v) in [
                    ("neg", g.neg),
                    ("neu", g.neu),
                    ("pos", g.pos),
                    ("compound", g.compound),
                ] {
                    let w = want[key].as_f64().unwrap();
                    let ok = if exact { v == w } else { (v - w).abs() < 1e-12 };
                    assert!(
                        ok,
                        "pair {} ({}) {side} {text:?}: {key} {v} vs {w}",
                        p["id"], p["kind"]
                    );
                }
            }
            n += 1;
        }
    }
    assert_eq!(n, 300);
}
