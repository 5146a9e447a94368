//! Arithmetic problems the project generates itself: the training text of the quickstart model
//! and the verifiable-reward task (the answer is checked exactly).

use rand::Rng;
use rein_core::rng_from_seed;
use serde::{Deserialize, Serialize};

/// One problem: the prompt the model continues and the exact answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Text up to and including `"Answer:"`.
    pub prompt: String,
    /// The answer as digits.
    pub answer: String,
}

const NAMES: [&str; 8] = ["Ann", "Ben", "Cat", "Dan", "Eve", "Fay", "Gus", "Hal"];
const THINGS: [&str; 6] = ["apples", "books", "coins", "pens", "cards", "shells"];

/// Problem `i` of the stream with `seed`: sums and differences of numbers below 50 as bare
/// equations or short word problems.
pub fn arithmetic_problems(n: usize, seed: u64) -> Vec<Problem> {
    let mut rng = rng_from_seed(seed);
    (0..n)
        .map(|_| {
            let a = rng.random_range(0..50u32);
            let b = rng.random_range(0..50u32);
            let add = rng.random_bool(0.5);
            let (x, y) = if add { (a, b) } else { (a.max(b), a.min(b)) };
            let ans = if add { x + y } else { x - y };
            let name = NAMES[rng.random_range(0..NAMES.len())];
            let thing = THINGS[rng.random_range(0..THINGS.len())];
            let prompt = match (rng.random_range(0..3u32), add) {
                (0, true) => format!("Q: {x} + {y} = ? Answer:"),
                (0, false) => format!("Q: {x} - {y} = ? Answer:"),
                (1, true) => format!(
                    "Q: {name} has {x} {thing} and gets {y} more. How many {thing} now? Answer:"
                ),
                (1, false) => format!(
                    "Q: {name} has {x} {thing} and gives away {y}. How many {thing} now? Answer:"
                ),
                (_, true) => format!("Q: What is {x} plus {y}? Answer:"),
                (_, false) => format!("Q: What is {x} minus {y}? Answer:"),
            };
            Problem {
                prompt,
                answer: ans.to_string(),
            }
        })
        .collect()
}

/// The first integer in `text` (an optional minus sign and digits), as the verifiable tasks
/// read a model's answer.
pub fn extract_number(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let start = bytes.iter().position(|b| b.is_ascii_digit())?;
    let neg = start > 0 && bytes[start - 1] == b'-';
    let end = bytes[start..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(bytes.len(), |e| start + e);
    Some(format!(
        "{}{}",
        if neg { "-" } else { "" },
        &text[start..end]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_reproducible_and_correct() {
        let p = arithmetic_problems(200, 3);
        assert_eq!(p, arithmetic_problems(200, 3));
        for q in &p {
            let nums: Vec<i64> = q
                .prompt
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            let want =
                if q.prompt.contains('+') || q.prompt.contains("plus") || q.prompt.contains("more")
                {
                    nums[0] + nums[1]
                } else {
                    nums[0] - nums[1]
                };
            assert_eq!(q.answer, want.to_string(), "{}", q.prompt);
        }
    }

    #[test]
    fn numbers_are_extracted_from_free_text() {
        assert_eq!(extract_number(" 42\nQ: 7"), Some("42".into()));
        assert_eq!(extract_number("it is -5."), Some("-5".into()));
        assert_eq!(extract_number("none"), None);
    }
}

/// The example datasets of the task presets (`presets/lm/*.toml`), generated here from
/// templates with a seeded RNG so that they ship with the repository and can be rebuilt
/// bit for bit (`rein lm example-data`). Small on purpose: they show the file formats and
/// let the presets run end to end; real use brings its own JSONL.
pub mod examples {
    use super::*;
    use crate::reward_model::PreferencePair;
    use crate::rl::PromptRecord;

    const SUBJECTS: [&str; 8] = [
        "The movie",
        "This book",
        "The new phone",
        "Our hotel room",
        "The concert",
        "That restaurant",
        "The video game",
        "My flight",
    ];
    const OPENERS: [&str; 6] = [
        "was",
        "turned out to be",
        "felt",
        "made me think that it was",
        "in my honest opinion was",
        "compared to last year was",
    ];

    fn pick<'a, T>(rng: &mut ReinRng, xs: &'a [T]) -> &'a T {
        &xs[rng.random_range(0..xs.len())]
    }

    use rein_core::ReinRng;

    /// Review openings to continue (the TRL gpt2-sentiment task; reward VADER compound).
    pub fn sentiment(n: usize, seed: u64) -> Vec<PromptRecord> {
        let mut rng = rng_from_seed(seed);
        (0..n)
            .map(|_| PromptRecord {
                prompt: format!("{} {}", pick(&mut rng, &SUBJECTS), pick(&mut rng, &OPENERS)),
                references: Vec::new(),
            })
            .collect()
    }

    const PEOPLE: [&str; 8] = [
        "Ann", "Ben", "Cara", "Dev", "Eli", "Fatima", "Goran", "Hana",
    ];
    const PLACES: [&str; 8] = [
        "Paris",
        "the market",
        "the library",
        "Lisbon",
        "the museum",
        "the park",
        "Oslo",
        "the harbour",
    ];
    const DAYS: [&str; 5] = ["Monday", "Tuesday", "Friday", "Saturday", "Sunday"];
    const ACTS: [(&str, &str); 6] = [
        ("bought fresh bread", "bought bread"),
        ("met an old friend", "met a friend"),
        ("lost a blue umbrella", "lost an umbrella"),
        ("found a rare coin", "found a coin"),
        ("gave a short talk", "gave a talk"),
        ("painted the old gate", "painted a gate"),
    ];
    const FILLER: [&str; 6] = [
        "The weather was mild.",
        "It had rained the night before.",
        "The streets were busy.",
        "A band was playing nearby.",
        "Prices had gone up again.",
        "Most shops opened late.",
    ];

    /// Short news-like documents with a one-line reference summary (reward ROUGE-L).
    pub fn summarization(n: usize, seed: u64) -> Vec<PromptRecord> {
        let mut rng = rng_from_seed(seed);
        (0..n)
            .map(|_| {
                let who = pick(&mut rng, &PEOPLE);
                let place = pick(&mut rng, &PLACES);
                let day = pick(&mut rng, &DAYS);
                let (act, short) = pick(&mut rng, &ACTS);
                let f1 = pick(&mut rng, &FILLER);
                let f2 = pick(&mut rng, &FILLER);
                PromptRecord {
                    prompt: format!(
                        "Article: On {day}, {who} went to {place}. {f1} There {who} {act}. {f2}\nSummary:"
                    ),
                    references: vec![format!(" {who} {short} at {place} on {day}.")],
                }
            })
            .collect()
    }

    const NOUNS: [(&str, &str, &str); 8] = [
        ("cat", "chat", "le"),
        ("dog", "chien", "le"),
        ("bird", "oiseau", "le"),
        ("child", "enfant", "le"),
        ("woman", "femme", "la"),
        ("house", "maison", "la"),
        ("car", "voiture", "la"),
        ("apple", "pomme", "la"),
    ];
    const ADJS: [(&str, &str, &str); 6] = [
        ("red", "rouge", "rouge"),
        ("small", "petit", "petite"),
        ("green", "vert", "verte"),
        ("black", "noir", "noire"),
        ("happy", "content", "contente"),
        ("old", "vieux", "vieille"),
    ];
    const VERBS: [(&str, &str); 6] = [
        ("sees", "voit"),
        ("likes", "aime"),
        ("finds", "trouve"),
        ("follows", "suit"),
        ("wants", "veut"),
        ("watches", "regarde"),
    ];

    fn noun_phrase(rng: &mut ReinRng) -> (String, String) {
        let (en, fr, art) = *pick(rng, &NOUNS);
        let (aen, am, af) = *pick(rng, &ADJS);
        let adj = if art == "la" { af } else { am };
        let (en_np, fr_np) = if rng.random_bool(0.5) {
            (format!("the {aen} {en}"), format!("{art} {fr} {adj}"))
        } else {
            (format!("the {en}"), format!("{art} {fr}"))
        };
        (en_np, fr_np)
    }

    /// English sentences of a small grammar with their French translations (reward BLEU or
    /// chrF): article and adjective agreement, adjectives after the noun.
    pub fn translation(n: usize, seed: u64) -> Vec<PromptRecord> {
        let mut rng = rng_from_seed(seed);
        (0..n)
            .map(|_| {
                let (s_en, s_fr) = noun_phrase(&mut rng);
                let (o_en, o_fr) = noun_phrase(&mut rng);
                let (v_en, v_fr) = *pick(&mut rng, &VERBS);
                let cap = |s: &str| {
                    let mut c = s.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                };
                PromptRecord {
                    prompt: format!("English: {} {v_en} {o_en}.\nFrench:", cap(&s_en)),
                    references: vec![format!(" {} {v_fr} {o_fr}.", cap(&s_fr))],
                }
            })
            .collect()
    }

    const REQUESTS: [(&str, &str); 6] = [
        ("Can you help me reset my password?", "Of course. Open the settings page, choose Security, then Reset password, and follow the link we email you."),
        ("My order has not arrived yet.", "I am sorry about the delay. Please share your order number and I will check where the parcel is."),
        ("How do I cancel my subscription?", "You can cancel any time under Account, Subscription, Cancel. Your access stays until the end of the period."),
        ("Is the shop open on Sunday?", "Yes, we are open on Sunday from ten to four. Is there anything else I can help with?"),
        ("The app crashes when I log in.", "Thanks for telling us. Please update to the latest version; if it still crashes, send us the error message."),
        ("Can I change my delivery address?", "Yes, until the order ships. Go to Orders, pick the order and choose Change address."),
    ];
    const BAD: [&str; 4] = [
        "I don't know. I don't know. I don't know.",
        "Figure it out yourself.",
        "Whatever. whatever. whatever.",
        "That is not my problem.",
    ];
    const GREETINGS: [&str; 4] = ["Hi.", "Hello there.", "Good morning.", "Hey."];

    /// Customer-support contexts (`User: ...\nAssistant:`) for the dialogue task.
    pub fn dialogue(n: usize, seed: u64) -> Vec<PromptRecord> {
        let mut rng = rng_from_seed(seed);
        (0..n)
            .map(|_| {
                let (q, a) = *pick(&mut rng, &REQUESTS);
                PromptRecord {
                    prompt: format!("User: {} {q}\nAssistant:", pick(&mut rng, &GREETINGS)),
                    references: vec![format!(" {a}")],
                }
            })
            .collect()
    }

    /// Preference pairs for the dialogue reward model: a helpful answer over a dismissive or
    /// repetitive one.
    pub fn dialogue_preferences(n: usize, seed: u64) -> Vec<PreferencePair> {
        let mut rng = rng_from_seed(seed);
        (0..n)
            .map(|_| {
                let (q, a) = *pick(&mut rng, &REQUESTS);
                PreferencePair {
                    prompt: format!("User: {} {q}\nAssistant:", pick(&mut rng, &GREETINGS)),
                    chosen: format!(" {a}"),
                    rejected: format!(" {}", pick(&mut rng, &BAD)),
                }
            })
            .collect()
    }

    /// Every example file: (relative path, JSONL text).
    pub fn all_files() -> Vec<(String, String)> {
        fn jsonl<T: serde::Serialize>(xs: &[T]) -> String {
            xs.iter()
                .map(|x| serde_json::to_string(x).unwrap_or_default() + "\n")
                .collect()
        }
        let mut out = Vec::new();
        for (task, f) in [
            (
                "sentiment",
                sentiment as fn(usize, u64) -> Vec<PromptRecord>,
            ),
            ("summarization", summarization),
            ("translation", translation),
            ("dialogue", dialogue),
        ] {
            out.push((format!("{task}/train.jsonl"), jsonl(&f(256, 1))));
            out.push((format!("{task}/eval.jsonl"), jsonl(&f(64, 2))));
        }
        out.push((
            "dialogue/preferences.jsonl".into(),
            jsonl(&dialogue_preferences(256, 3)),
        ));
        let arith: Vec<PromptRecord> = arithmetic_problems(256, 4)
            .into_iter()
            .map(|p| PromptRecord {
                prompt: p.prompt,
                references: vec![p.answer],
            })
            .collect();
        out.push(("arithmetic/train.jsonl".into(), jsonl(&arith)));
        out
    }
}
