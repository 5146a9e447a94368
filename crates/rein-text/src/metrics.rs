//! Text metrics as the reference Python packages compute them, for rewards and evaluation:
//! BLEU and chrF as sacrebleu 2.x (defaults: 13a tokenizer, case-sensitive, `exp` smoothing,
//! max order 4; chrF with character order 6, word order 0, beta 2, whitespace removed), and
//! ROUGE-1/2/L/Lsum as rouge-score 0.1.2 without its stemmer.
//! Parity with sacrebleu is tested on `tests/fixtures/metrics` (scores within 1e-6, counts
//! exact).

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

/// sacrebleu's `13a` tokenizer (mteval-v13a): unescapes a few entities, splits punctuation
/// and symbols off words but keeps `.`/`,` inside numbers and `-` after a letter.
pub fn tokenize_13a(line: &str) -> String {
    static RULES: OnceLock<[(Regex, &'static str); 4]> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            // The symbol ranges of the Western-language rule: { | } ~, [ \ ] ^ _ `, space ! " # $ % &,
            // ( ) * +, : ; < = > ? @, and /.
            (
                Regex::new(r"([\{-~\[-` -&\(-\+:-@/])").expect("static regex"),
                " $1 ",
            ),
            (
                Regex::new(r"([^0-9])([\.,])").expect("static regex"),
                "$1 $2 ",
            ),
            (
                Regex::new(r"([\.,])([^0-9])").expect("static regex"),
                " $1 $2",
            ),
            (Regex::new(r"([0-9])(-)").expect("static regex"), "$1 $2 "),
        ]
    });
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut s = format!(" {line} ");
    for (re, rep) in rules.iter() {
        s = re.replace_all(&s, *rep).into_owned();
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// BLEU's sufficient statistics of one segment or a corpus (sums over segments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct BleuStats {
    /// Hypothesis tokens.
    pub sys_len: usize,
    /// Reference tokens (closest reference length per segment).
    pub ref_len: usize,
    /// Clipped n-gram matches, n = 1..4.
    pub correct: [usize; 4],
    /// Hypothesis n-grams, n = 1..4.
    pub total: [usize; 4],
}

impl std::ops::AddAssign for BleuStats {
    fn add_assign(&mut self, o: Self) {
        self.sys_len += o.sys_len;
        self.ref_len += o.ref_len;
        for n in 0..4 {
            self.correct[n] += o.correct[n];
            self.total[n] += o.total[n];
        }
    }
}

/// A BLEU result in sacrebleu's fields (score and precisions on the 0-100 scale).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BleuScore {
    /// BLEU.
    pub score: f64,
    /// Clipped matches per order.
    pub counts: [usize; 4],
    /// Hypothesis n-grams per order.
    pub totals: [usize; 4],
    /// Precisions per order after smoothing.
    pub precisions: [f64; 4],
    /// Brevity penalty.
    pub bp: f64,
    /// Hypothesis length.
    pub sys_len: usize,
    /// Reference length.
    pub ref_len: usize,
}

fn word_ngrams(tokens: &[&str], max_order: usize) -> HashMap<Vec<String>, usize> {
    let mut m = HashMap::new();
    for n in 1..=max_order {
        for w in tokens.windows(n) {
            *m.entry(w.iter().map(|s| s.to_string()).collect())
                .or_insert(0) += 1;
        }
    }
    m
}

/// Statistics of one hypothesis against its references (sacrebleu: `rstrip`, 13a, n-gram
/// counts clipped by the maximum count over references, closest reference length with ties
/// to the shorter).
pub fn bleu_stats(hyp: &str, refs: &[&str]) -> BleuStats {
    let hyp_t = tokenize_13a(hyp.trim_end());
    let hyp_tokens: Vec<&str> = hyp_t.split_whitespace().collect();
    let mut ref_ngrams: HashMap<Vec<String>, usize> = HashMap::new();
    let mut ref_lens = Vec::new();
    for r in refs {
        let t = tokenize_13a(r.trim_end());
        let toks: Vec<&str> = t.split_whitespace().collect();
        ref_lens.push(toks.len());
        for (g, c) in word_ngrams(&toks, 4) {
            let e = ref_ngrams.entry(g).or_insert(0);
            *e = (*e).max(c);
        }
    }
    let hyp_len = hyp_tokens.len();
    let mut ref_len = 0;
    let mut best: Option<usize> = None;
    for &l in &ref_lens {
        let d = hyp_len.abs_diff(l);
        match best {
            None => {
                best = Some(d);
                ref_len = l;
            }
            Some(b) if d < b || (d == b && l < ref_len) => {
                best = Some(d);
                ref_len = l;
            }
            _ => {}
        }
    }
    let mut s = BleuStats {
        sys_len: hyp_len,
        ref_len,
        ..Default::default()
    };
    for (g, c) in word_ngrams(&hyp_tokens, 4) {
        let n = g.len() - 1;
        s.total[n] += c;
        if let Some(&rc) = ref_ngrams.get(&g) {
            s.correct[n] += c.min(rc);
        }
    }
    s
}

/// sacrebleu's `my_log`: log with log(0) := -9999999999.
fn floored_log(x: f64) -> f64 {
    if x == 0.0 {
        -9_999_999_999.0
    } else {
        x.ln()
    }
}

/// BLEU from statistics with `exp` smoothing (Chen & Cherry 2014, method 3): the k-th order
/// without matches gets precision `100 / (2^k total)`. With `effective_order`, orders past the
/// last one with hypothesis n-grams leave the geometric mean.
pub fn bleu_from_stats(s: &BleuStats, effective_order: bool) -> BleuScore {
    let bp = if s.sys_len < s.ref_len {
        if s.sys_len > 0 {
            (1.0 - s.ref_len as f64 / s.sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = [0.0f64; 4];
    let out = |score: f64, precisions: [f64; 4]| BleuScore {
        score,
        counts: s.correct,
        totals: s.total,
        precisions,
        bp,
        sys_len: s.sys_len,
        ref_len: s.ref_len,
    };
    if s.correct.iter().all(|&c| c == 0) {
        return out(0.0, precisions);
    }
    let mut smooth = 1.0f64;
    let mut eff = 4;
    for (n, (p, (&correct, &total))) in precisions
        .iter_mut()
        .zip(s.correct.iter().zip(&s.total))
        .enumerate()
    {
        if total == 0 {
            break;
        }
        if effective_order {
            eff = n + 1;
        }
        if correct == 0 {
            smooth *= 2.0;
            *p = 100.0 / (smooth * total as f64);
        } else {
            *p = 100.0 * correct as f64 / total as f64;
        }
    }
    let mean = precisions[..eff]
        .iter()
        .map(|&p| floored_log(p))
        .sum::<f64>()
        / eff as f64;
    out(bp * mean.exp(), precisions)
}

/// Corpus BLEU (`sacrebleu.corpus_bleu`, one reference stream per entry of `refs`).
pub fn corpus_bleu(hyps: &[&str], refs: &[Vec<&str>]) -> BleuScore {
    let mut s = BleuStats::default();
    for (i, h) in hyps.iter().enumerate() {
        let r: Vec<&str> = refs
            .iter()
            .filter_map(|stream| stream.get(i).copied())
            .collect();
        s += bleu_stats(h, &r);
    }
    bleu_from_stats(&s, false)
}

/// Sentence BLEU as `sacrebleu.sentence_bleu` (effective order on).
pub fn sentence_bleu(hyp: &str, refs: &[&str]) -> BleuScore {
    bleu_from_stats(&bleu_stats(hyp, refs), true)
}

const CHRF_ORDER: usize = 6;
const CHRF_BETA: f64 = 2.0;

/// chrF statistics: per character order 1..6, `[hyp n-grams, ref n-grams, matches]`.
pub type ChrfStats = [[usize; 3]; CHRF_ORDER];

fn char_ngrams(text: &str) -> Vec<HashMap<String, usize>> {
    // Whitespace removed (Python's str.split() then join), n-grams by code point.
    let chars: Vec<char> = text.split_whitespace().flat_map(str::chars).collect();
    (1..=CHRF_ORDER)
        .map(|n| {
            let mut m = HashMap::new();
            for w in chars.windows(n) {
                *m.entry(w.iter().collect::<String>()).or_insert(0) += 1;
            }
            m
        })
        .collect()
}

fn chrf_stats_one(hyp: &[HashMap<String, usize>], r: &[HashMap<String, usize>]) -> ChrfStats {
    let mut out = [[0usize; 3]; CHRF_ORDER];
    for n in 0..CHRF_ORDER {
        let (mut hyp_count, mut matches) = (0, 0);
        for (g, &c) in &hyp[n] {
            hyp_count += c;
            if let Some(&rc) = r[n].get(g) {
                matches += c.min(rc);
            }
        }
        let ref_count: usize = r[n].values().sum();
        out[n] = [
            if r[n].is_empty() { 0 } else { hyp_count },
            ref_count,
            matches,
        ];
    }
    out
}

/// chrF (0-100) of statistics: precision and recall averaged over the orders where both
/// texts have n-grams, then F-beta of the averages (sacrebleu's default, no eps smoothing).
pub fn chrf_from_stats(s: &ChrfStats) -> f64 {
    let factor = CHRF_BETA * CHRF_BETA;
    let (mut p, mut r, mut k) = (0.0f64, 0.0f64, 0usize);
    for &[h, rf, m] in s {
        if h > 0 && rf > 0 {
            p += m as f64 / h as f64;
            r += m as f64 / rf as f64;
            k += 1;
        }
    }
    if k == 0 {
        return 0.0;
    }
    p /= k as f64;
    r /= k as f64;
    if p + r == 0.0 {
        return 0.0;
    }
    100.0 * (1.0 + factor) * p * r / (factor * p + r)
}

/// chrF statistics of one hypothesis: those of the reference with the best F score.
pub fn chrf_stats(hyp: &str, refs: &[&str]) -> ChrfStats {
    let h = char_ngrams(hyp);
    let mut best = [[0usize; 3]; CHRF_ORDER];
    let mut best_f = -1.0;
    for r in refs {
        let s = chrf_stats_one(&h, &char_ngrams(r));
        let f = chrf_from_stats(&s);
        if f > best_f {
            best_f = f;
            best = s;
        }
    }
    best
}

/// Sentence chrF (`sacrebleu.sentence_chrf`).
pub fn sentence_chrf(hyp: &str, refs: &[&str]) -> f64 {
    chrf_from_stats(&chrf_stats(hyp, refs))
}

/// Corpus chrF: statistics summed over segments first.
pub fn corpus_chrf(hyps: &[&str], refs: &[Vec<&str>]) -> f64 {
    let mut total = [[0usize; 3]; CHRF_ORDER];
    for (i, h) in hyps.iter().enumerate() {
        let r: Vec<&str> = refs
            .iter()
            .filter_map(|stream| stream.get(i).copied())
            .collect();
        let s = chrf_stats(h, &r);
        for n in 0..CHRF_ORDER {
            for j in 0..3 {
                total[n][j] += s[n][j];
            }
        }
    }
    chrf_from_stats(&total)
}

/// Precision, recall and F1 of one ROUGE variant (0-1), rouge-score's `Score`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct RougeScore {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub fmeasure: f64,
}

impl RougeScore {
    fn new(precision: f64, recall: f64) -> Self {
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            fmeasure,
        }
    }
}

/// ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum of one prediction against one target.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Rouge {
    /// Unigram overlap.
    pub rouge1: RougeScore,
    /// Bigram overlap.
    pub rouge2: RougeScore,
    /// Longest common subsequence.
    #[serde(rename = "rougeL")]
    pub rouge_l: RougeScore,
    /// Summary-level (union) LCS over newline-separated sentences.
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: RougeScore,
}

/// rouge-score's tokenizer: lowercase, every character outside `[a-z0-9]` a separator
/// ("café" gives "caf"); with `stem`, NLTK's Porter stemmer on tokens longer than 3
/// characters, as `use_stemmer=True`.
pub fn rouge_tokens(text: &str, stem: bool) -> Vec<String> {
    let lower = text.to_lowercase();
    lower
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(|t| {
            if stem && t.len() > 3 {
                crate::porter::stem(t)
            } else {
                t.to_string()
            }
        })
        .filter(|t| !t.is_empty())
        .collect()
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    for w in tokens.windows(n) {
        *m.entry(w).or_insert(0) += 1;
    }
    m
}

fn rouge_n(target: &[String], pred: &[String], n: usize) -> RougeScore {
    let (t, p) = (ngram_counts(target, n), ngram_counts(pred, n));
    let overlap: usize = t
        .iter()
        .map(|(g, &c)| c.min(p.get(g).copied().unwrap_or(0)))
        .sum();
    let (tc, pc): (usize, usize) = (t.values().sum(), p.values().sum());
    RougeScore::new(
        overlap as f64 / pc.max(1) as f64,
        overlap as f64 / tc.max(1) as f64,
    )
}

/// The LCS dynamic-programming table of `a` (rows) and `b` (columns).
fn lcs_table(a: &[String], b: &[String]) -> Vec<Vec<usize>> {
    let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i][j] = if a[i - 1] == b[j - 1] {
                t[i - 1][j - 1] + 1
            } else {
                t[i - 1][j].max(t[i][j - 1])
            };
        }
    }
    t
}

/// Indices into `a` of one LCS of `a` and `b`, backtracked as rouge-score does.
fn lcs_indices(a: &[String], b: &[String]) -> Vec<usize> {
    let t = lcs_table(a, b);
    let (mut i, mut j) = (a.len(), b.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t[i][j - 1] > t[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

fn rouge_l(target: &[String], pred: &[String]) -> RougeScore {
    if target.is_empty() || pred.is_empty() {
        return RougeScore::default();
    }
    let l = lcs_table(target, pred)[target.len()][pred.len()] as f64;
    RougeScore::new(l / pred.len() as f64, l / target.len() as f64)
}

/// Summary-level LCS (Lin 2004, sec. 3.2) with rouge-score's guard against counting a token
/// more often than it occurs.
fn rouge_lsum(target: &str, pred: &str, stem: bool) -> RougeScore {
    let sents = |t: &str| -> Vec<Vec<String>> {
        t.split('\n')
            .filter(|s| !s.is_empty())
            .map(|x| rouge_tokens(x, stem))
            .collect()
    };
    let (r, c) = (sents(target), sents(pred));
    if r.is_empty() || c.is_empty() {
        return RougeScore::default();
    }
    let m: usize = r.iter().map(Vec::len).sum();
    let n: usize = c.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return RougeScore::default();
    }
    let mut cnt_r: HashMap<&str, usize> = HashMap::new();
    let mut cnt_c: HashMap<&str, usize> = HashMap::new();
    for t in r.iter().flatten() {
        *cnt_r.entry(t).or_insert(0) += 1;
    }
    for t in c.iter().flatten() {
        *cnt_c.entry(t).or_insert(0) += 1;
    }
    let mut hits = 0usize;
    for rs in &r {
        let mut union: Vec<usize> = c.iter().flat_map(|cs| lcs_indices(rs, cs)).collect();
        union.sort_unstable();
        union.dedup();
        for i in union {
            let tok = rs[i].as_str();
            let (a, b) = (
                cnt_c.get(tok).copied().unwrap_or(0),
                cnt_r.get(tok).copied().unwrap_or(0),
            );
            if a > 0 && b > 0 {
                hits += 1;
                *cnt_c.get_mut(tok).expect("counted") -= 1;
                *cnt_r.get_mut(tok).expect("counted") -= 1;
            }
        }
    }
    RougeScore::new(hits as f64 / n as f64, hits as f64 / m as f64)
}

impl Rouge {
    /// The mean of several results (the corpus figure of `rein lm metric rouge`).
    pub fn mean(all: &[Rouge]) -> Rouge {
        let k = all.len().max(1) as f64;
        let avg = |f: fn(&Rouge) -> RougeScore| {
            let (mut p, mut r, mut fm) = (0.0, 0.0, 0.0);
            for x in all {
                let s = f(x);
                p += s.precision;
                r += s.recall;
                fm += s.fmeasure;
            }
            RougeScore {
                precision: p / k,
                recall: r / k,
                fmeasure: fm / k,
            }
        };
        Rouge {
            rouge1: avg(|x| x.rouge1),
            rouge2: avg(|x| x.rouge2),
            rouge_l: avg(|x| x.rouge_l),
            rouge_lsum: avg(|x| x.rouge_lsum),
        }
    }
}

/// ROUGE of `prediction` against `target` as `RougeScorer([...], use_stemmer=False)
/// .score(target, prediction)` computes it.
pub fn rouge(target: &str, prediction: &str) -> Rouge {
    rouge_with(target, prediction, false)
}

/// ROUGE as `RougeScorer([...], use_stemmer=stem).score(target, prediction)`.
pub fn rouge_with(target: &str, prediction: &str, stem: bool) -> Rouge {
    let (t, p) = (rouge_tokens(target, stem), rouge_tokens(prediction, stem));
    Rouge {
        rouge1: rouge_n(&t, &p, 1),
        rouge2: rouge_n(&t, &p, 2),
        rouge_l: rouge_l(&t, &p),
        rouge_lsum: rouge_lsum(target, prediction, stem),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_13a_keeps_numbers_and_splits_punctuation() {
        assert_eq!(tokenize_13a("Hello, world!"), "Hello , world !");
        assert_eq!(
            tokenize_13a("It costs $12.99 (1,000 units)."),
            "It costs $ 12.99 ( 1,000 units ) ."
        );
        assert_eq!(
            tokenize_13a("don't 3-4 well-known"),
            "don't 3 - 4 well-known"
        );
    }
}
