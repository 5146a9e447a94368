//! VADER sentiment (Hutto and Gilbert 2014) as vaderSentiment 3.3.2's
//! `SentimentIntensityAnalyzer.polarity_scores` computes it, rule for rule, including its
//! quirks (the "but" rule rescales the first sentiment equal in value, not the one at the
//! position; ALL-CAPS emphasis needs a mix of caps and non-caps words). The lexicons are the
//! package's own files (MIT licence), vendored under `crates/rein-lm/data/vader`.
//! Written here rather than taken from a crate: the `vader_sentiment` crate is unmaintained and
//! differs from 3.3.2 (no emoji lexicon, older rules), and parity is what the fixtures check.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::Serialize;

const LEXICON: &str = include_str!("../data/vader/vader_lexicon.txt");
const EMOJI_LEXICON: &str = include_str!("../data/vader/emoji_utf8_lexicon.txt");

const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

const BOOST_UP: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];

const BOOST_DOWN: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "just enough",
    "kind of",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sort of",
    "sorta",
    "sortof",
    "sort-of",
];

const SPECIAL_CASES: [(&str, f64); 9] = [
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("badass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.5),
];

struct Tables {
    lexicon: HashMap<String, f64>,
    emojis: HashMap<char, String>,
    boosters: HashMap<&'static str, f64>,
    negate: HashSet<&'static str>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut lexicon = HashMap::new();
        for line in LEXICON.trim_end_matches('\n').split('\n') {
            if line.is_empty() {
                continue;
            }
            let mut f = line.trim().split('\t');
            if let (Some(w), Some(m)) = (f.next(), f.next()) {
                if let Ok(v) = m.parse::<f64>() {
                    lexicon.insert(w.to_string(), v);
                }
            }
        }
        let mut emojis = HashMap::new();
        for line in EMOJI_LEXICON.trim_end_matches('\n').split('\n') {
            let mut f = line.trim().split('\t');
            if let (Some(e), Some(d)) = (f.next(), f.next()) {
                // Only one-character keys can match: the Python code looks characters up.
                let mut cs = e.chars();
                if let (Some(c), None) = (cs.next(), cs.next()) {
                    emojis.insert(c, d.to_string());
                }
            }
        }
        let mut boosters = HashMap::new();
        for w in BOOST_UP {
            boosters.insert(*w, B_INCR);
        }
        for w in BOOST_DOWN {
            boosters.insert(*w, B_DECR);
        }
        Tables {
            lexicon,
            emojis,
            boosters,
            negate: NEGATE.iter().copied().collect(),
        }
    })
}

/// Python's `str.isupper`: at least one cased character and no lowercase one.
fn is_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() {
            return false;
        }
        if c.is_uppercase() {
            cased = true;
        }
    }
    cased
}

/// `token.strip(string.punctuation)`, keeping the token when at most two characters remain
/// (emoticons such as ":)").
fn strip_punctuation(token: &str) -> &str {
    let s = token.trim_matches(|c: char| c.is_ascii_punctuation());
    if s.chars().count() <= 2 {
        token
    } else {
        s
    }
}

fn negated(word: &str) -> bool {
    tables().negate.contains(word) || word.contains("n't")
}

fn special_case(s: &str) -> Option<f64> {
    SPECIAL_CASES.iter().find(|(k, _)| *k == s).map(|(_, v)| *v)
}

/// VADER's four scores of a text (0-1 shares and the -1..1 compound).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Polarity {
    /// Share of negative sentiment.
    pub neg: f64,
    /// Share of neutral words.
    pub neu: f64,
    /// Share of positive sentiment.
    pub pos: f64,
    /// Normalised sum, `x / sqrt(x^2 + 15)`.
    pub compound: f64,
}

impl Polarity {
    /// Rounded as vaderSentiment returns them (Python's `round`: 3 decimals, 4 for compound;
    /// Rust's formatting rounds the exact binary value half-to-even, as Python does).
    pub fn rounded(&self) -> Polarity {
        let r = |x: f64, d: usize| format!("{x:.d$}").parse::<f64>().unwrap_or(x);
        Polarity {
            neg: r(self.neg, 3),
            neu: r(self.neu, 3),
            pos: r(self.pos, 3),
            compound: r(self.compound, 4),
        }
    }
}

/// `polarity_scores(text)` before the final rounding (see [`Polarity::rounded`]).
pub fn polarity_scores(text: &str) -> Polarity {
    let t = tables();
    let mut replaced = String::with_capacity(text.len());
    let mut prev_space = true;
    for c in text.chars() {
        if let Some(d) = t.emojis.get(&c) {
            if !prev_space {
                replaced.push(' ');
            }
            replaced.push_str(d);
            prev_space = false;
        } else {
            replaced.push(c);
            prev_space = c == ' ';
        }
    }
    let text = replaced.trim();
    let words: Vec<&str> = text.split_whitespace().map(strip_punctuation).collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let caps = words.iter().filter(|w| is_upper(w)).count();
    let cap_diff = caps > 0 && caps < words.len();
    let in_lex = |w: &str| t.lexicon.contains_key(w);

    let mut sentiments: Vec<f64> = Vec::with_capacity(words.len());
    for (i, item) in words.iter().enumerate() {
        let il = lower[i].as_str();
        if t.boosters.contains_key(il)
            || (i + 1 < words.len() && il == "kind" && lower[i + 1] == "of")
        {
            sentiments.push(0.0);
            continue;
        }
        let Some(&lex) = t.lexicon.get(il) else {
            sentiments.push(0.0);
            continue;
        };
        let mut valence = lex;
        if il == "no" && i + 1 < words.len() && in_lex(&lower[i + 1]) {
            valence = 0.0;
        }
        if (i > 0 && lower[i - 1] == "no")
            || (i > 1 && lower[i - 2] == "no")
            || (i > 2 && lower[i - 3] == "no" && (lower[i - 1] == "or" || lower[i - 1] == "nor"))
        {
            valence = lex * N_SCALAR;
        }
        if is_upper(item) && cap_diff {
            valence += if valence > 0.0 { C_INCR } else { -C_INCR };
        }
        for start in 0..3usize {
            if i <= start || in_lex(&lower[i - (start + 1)]) {
                continue;
            }
            let prev = words[i - (start + 1)];
            let mut s = 0.0;
            if let Some(&b) = t.boosters.get(lower[i - (start + 1)].as_str()) {
                s = if valence < 0.0 { -b } else { b };
                if is_upper(prev) && cap_diff {
                    s += if valence > 0.0 { C_INCR } else { -C_INCR };
                }
            }
            if start == 1 && s != 0.0 {
                s *= 0.95;
            }
            if start == 2 && s != 0.0 {
                s *= 0.9;
            }
            valence += s;
            valence = negation_check(valence, &lower, start, i);
            if start == 2 {
                valence = special_idioms_check(valence, &lower, i, &t.boosters);
            }
        }
        // "least" as a negation, unless "at least" / "very least"
        if i > 1 && !in_lex(&lower[i - 1]) && lower[i - 1] == "least" {
            if lower[i - 2] != "at" && lower[i - 2] != "very" {
                valence *= N_SCALAR;
            }
        } else if i > 0 && !in_lex(&lower[i - 1]) && lower[i - 1] == "least" {
            valence *= N_SCALAR;
        }
        sentiments.push(valence);
    }
    but_check(&lower, &mut sentiments);
    score_valence(&sentiments, text)
}

fn negation_check(valence: f64, w: &[String], start: usize, i: usize) -> f64 {
    match start {
        0 if negated(&w[i - 1]) => valence * N_SCALAR,
        1 => {
            if w[i - 2] == "never" && (w[i - 1] == "so" || w[i - 1] == "this") {
                valence * 1.25
            } else if w[i - 2] == "without" && w[i - 1] == "doubt" {
                valence
            } else if negated(&w[i - 2]) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        2 => {
            // Python precedence: (never and (so or this)) or (so or this)
            if (w[i - 3] == "never" && (w[i - 2] == "so" || w[i - 2] == "this"))
                || (w[i - 1] == "so" || w[i - 1] == "this")
            {
                valence * 1.25
            } else if w[i - 3] == "without" && (w[i - 2] == "doubt" || w[i - 1] == "doubt") {
                valence
            } else if negated(&w[i - 3]) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        _ => valence,
    }
}

fn special_idioms_check(
    mut valence: f64,
    w: &[String],
    i: usize,
    boosters: &HashMap<&'static str, f64>,
) -> f64 {
    let onezero = format!("{} {}", w[i - 1], w[i]);
    let twoonezero = format!("{} {} {}", w[i - 2], w[i - 1], w[i]);
    let twoone = format!("{} {}", w[i - 2], w[i - 1]);
    let threetwoone = format!("{} {} {}", w[i - 3], w[i - 2], w[i - 1]);
    let threetwo = format!("{} {}", w[i - 3], w[i - 2]);
    for seq in [&onezero, &twoonezero, &twoone, &threetwoone, &threetwo] {
        if let Some(v) = special_case(seq) {
            valence = v;
            break;
        }
    }
    if w.len() - 1 > i {
        if let Some(v) = special_case(&format!("{} {}", w[i], w[i + 1])) {
            valence = v;
        }
    }
    if w.len() - 1 > i + 1 {
        if let Some(v) = special_case(&format!("{} {} {}", w[i], w[i + 1], w[i + 2])) {
            valence = v;
        }
    }
    for g in [&threetwoone, &threetwo, &twoone] {
        if let Some(b) = boosters.get(g.as_str()) {
            valence += b;
        }
    }
    valence
}

/// vaderSentiment's `_but_check`, quirk included: each value is looked up with
/// `list.index`, so of equal values only the first one is rescaled (possibly again).
fn but_check(w: &[String], s: &mut [f64]) {
    let Some(bi) = w.iter().position(|x| x == "but") else {
        return;
    };
    for k in 0..s.len() {
        let v = s[k];
        let si = s.iter().position(|&x| x == v).unwrap_or(k);
        if si < bi {
            s[si] = v * 0.5;
        } else if si > bi {
            s[si] = v * 1.5;
        }
    }
}

fn score_valence(sentiments: &[f64], text: &str) -> Polarity {
    if sentiments.is_empty() {
        return Polarity::default();
    }
    let ep = text.matches('!').count().min(4) as f64 * 0.292;
    let qm_count = text.matches('?').count();
    let qm = if qm_count > 1 {
        if qm_count <= 3 {
            qm_count as f64 * 0.18
        } else {
            0.96
        }
    } else {
        0.0
    };
    let amp = ep + qm;
    let mut sum: f64 = sentiments.iter().sum();
    if sum > 0.0 {
        sum += amp;
    } else if sum < 0.0 {
        sum -= amp;
    }
    let compound = (sum / (sum * sum + 15.0).sqrt()).clamp(-1.0, 1.0);
    let (mut pos, mut neg, mut neu) = (0.0, 0.0, 0usize);
    for &x in sentiments {
        if x > 0.0 {
            pos += x + 1.0;
        }
        if x < 0.0 {
            neg += x - 1.0;
        }
        if x == 0.0 {
            neu += 1;
        }
    }
    if pos > neg.abs() {
        pos += amp;
    } else if pos < neg.abs() {
        neg -= amp;
    }
    let total = pos + neg.abs() + neu as f64;
    Polarity {
        neg: (neg / total).abs(),
        neu: (neu as f64 / total).abs(),
        pos: (pos / total).abs(),
        compound,
    }
}

#[cfg(test)]
mod tests {
    use super::polarity_scores;

    /// vaderSentiment 3.3.2's own demo sentences and a few rule corners (emoji, "but" with
    /// repeated values, "no" before a lexicon word, "never so"), values from the Python
    /// package (rounded as it returns them).
    #[test]
    fn demo_sentences_match_vader_sentiment() {
        for (text, compound, pos, neg, neu) in [
            ("VADER is smart, handsome, and funny.", 0.8316, 0.746, 0.0, 0.254),
            (
                "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
                0.9469,
                0.706,
                0.0,
                0.294,
            ),
            ("VADER is not smart, handsome, nor funny.", -0.7424, 0.0, 0.646, 0.354),
            ("At least it isn't a horrible book.", 0.431, 0.322, 0.0, 0.678),
            ("The book was only kind of good.", 0.3832, 0.303, 0.0, 0.697),
            (
                "The plot was good, but the characters are uncompelling and the dialog is not great.",
                -0.7042,
                0.094,
                0.327,
                0.579,
            ),
            ("Today only kinda sux! But I'll get by, lol", 0.5249, 0.317, 0.127, 0.556),
            ("Make sure you :) or :D today!", 0.8633, 0.706, 0.0, 0.294),
            ("Catch utf-8 emoji such as 💘 and 💋 and 😁", 0.875, 0.417, 0.0, 0.583),
            ("Not bad at all", 0.431, 0.487, 0.0, 0.513),
            ("good good but bad bad", -0.8225, 0.271, 0.66, 0.069),
            ("no problem at all", 0.3089, 0.429, 0.0, 0.571),
            ("never so good??", 0.625, 0.672, 0.0, 0.328),
        ] {
            let p = polarity_scores(text).rounded();
            assert_eq!(
                (p.compound, p.pos, p.neg, p.neu),
                (compound, pos, neg, neu),
                "{text}"
            );
        }
    }
}
