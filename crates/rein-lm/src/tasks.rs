//! Arithmetic problems the project generates itself: the training text of the quickstart model
//! and the verifiable-reward task (the answer is checked exactly).
//!
//! A problem can be answered two ways: directly (` Answer: 21`) or with a worked solution that
//! applies one change at a time (` Work: 23 + 5 = 28, 28 - 7 = 21. Answer: 21`).
//! The quickstart corpus writes most problems the direct way and some the worked way, so the
//! supervised model knows both and answers directly by default; the worked way is the more
//! reliable one for a small model, which is what RL with a correctness reward finds out
//! (`rein lm demo`).

use rand::Rng;
use rein_core::rng_from_seed;
use serde::{Deserialize, Serialize};

/// One problem: the prompt the model continues, the exact answer and a worked solution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The question, ending in `?` (the model continues with ` Answer:` or ` Work:`).
    pub prompt: String,
    /// The answer as digits.
    pub answer: String,
    /// The worked solution without its label: `23 + 5 = 28, 28 - 7 = 21`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub work: String,
}

impl Problem {
    /// The direct completion: ` Answer: 21`.
    pub fn direct_completion(&self) -> String {
        format!(" {ANSWER_MARK} {}", self.answer)
    }

    /// The worked completion: ` Work: 23 + 5 = 28, 28 - 7 = 21. Answer: 21`.
    pub fn worked_completion(&self) -> String {
        format!(" {WORK_MARK} {}. {ANSWER_MARK} {}", self.work, self.answer)
    }
}

/// The label in front of a final answer; [`extract_answer`] reads the number after it.
pub const ANSWER_MARK: &str = "Answer:";

/// The label in front of a worked solution.
pub const WORK_MARK: &str = "Work:";

const NAMES: [&str; 8] = ["Ann", "Ben", "Cat", "Dan", "Eve", "Fay", "Gus", "Hal"];
const THINGS: [&str; 6] = ["apples", "books", "coins", "pens", "cards", "shells"];

/// `n` problems of the stream with `seed`: a start between 10 and 39 changed two or three
/// times by adding or taking away 1 to 9 (never below 0 or above 59), as a bare expression
/// or a short word problem. Answering in one go means combining all the numbers at once; the
/// worked solution takes one change at a time.
pub fn arithmetic_problems(n: usize, seed: u64) -> Vec<Problem> {
    let mut rng = rng_from_seed(seed);
    (0..n)
        .map(|_| {
            let start = rng.random_range(10..40u32);
            let n_ops = rng.random_range(2..=3usize);
            let mut total = start;
            let mut changes = Vec::with_capacity(n_ops);
            let mut steps = Vec::with_capacity(n_ops);
            for _ in 0..n_ops {
                let d = rng.random_range(1..10u32);
                let add = if d > total {
                    true
                } else if total + d > 59 {
                    false
                } else {
                    rng.random_bool(0.5)
                };
                let next = if add { total + d } else { total - d };
                steps.push(format!(
                    "{total} {} {d} = {next}",
                    if add { "+" } else { "-" }
                ));
                changes.push((add, d));
                total = next;
            }
            let name = NAMES[rng.random_range(0..NAMES.len())];
            let thing = THINGS[rng.random_range(0..THINGS.len())];
            // The changes as ` + 5 - 7` or ` plus 5 minus 7`.
            let spell = |plus: &str, minus: &str| -> String {
                changes
                    .iter()
                    .map(|&(add, d)| format!(" {} {d}", if add { plus } else { minus }))
                    .collect()
            };
            let prompt = match rng.random_range(0..3u32) {
                0 => format!("Q: {start}{} = ?", spell("+", "-")),
                1 => format!("Q: What is {start}{}?", spell("plus", "minus")),
                _ => {
                    let acts: Vec<String> = changes
                        .iter()
                        .map(|&(add, d)| {
                            if add {
                                format!("gets {d} more")
                            } else {
                                format!("gives away {d}")
                            }
                        })
                        .collect();
                    let (last, first) = acts.split_last().expect("two or three changes");
                    format!(
                        "Q: {name} has {start} {thing}, {} and {last}. How many {thing} now?",
                        first.join(", ")
                    )
                }
            };
            Problem {
                prompt,
                answer: total.to_string(),
                work: steps.join(", "),
            }
        })
        .collect()
}

/// The first integer in `text` (an optional minus sign and digits).
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

/// The last integer in `text` (an optional minus sign directly before its digits; digit groups
/// separated by commas, as in `1,234`, read as one number): the final answer of a reply that
/// works the problem out first (`12 + 30 = 42`).
pub fn extract_last_number(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut end = bytes.iter().rposition(|b| b.is_ascii_digit())? + 1;
    let mut start = end;
    let mut digits = String::new();
    loop {
        while start > 0 && bytes[start - 1].is_ascii_digit() {
            start -= 1;
        }
        digits.insert_str(0, &text[start..end]);
        // A thousands separator: a comma between digits, followed by exactly three.
        let grouped = start >= 2
            && bytes[start - 1] == b','
            && bytes[start - 2].is_ascii_digit()
            && end - start == 3;
        if !grouped {
            break;
        }
        end = start - 1;
        start = end;
    }
    let neg = start > 0 && bytes[start - 1] == b'-';
    Some(format!("{}{digits}", if neg { "-" } else { "" }))
}

/// A model's final answer, as the verifiable tasks read it: the first integer after the first
/// `Answer:` when the text has one (so a worked solution's intermediate numbers do not count),
/// otherwise the first integer of the text (a prompt that already ends in `Answer:`).
pub fn extract_answer(text: &str) -> Option<String> {
    match text.find(ANSWER_MARK) {
        Some(i) => extract_number(&text[i + ANSWER_MARK.len()..]),
        None => extract_number(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_number_reads_the_final_result() {
        assert_eq!(extract_last_number("12 + 30 = 42").as_deref(), Some("42"));
        assert_eq!(extract_last_number("43 - 50 = -7.").as_deref(), Some("-7"));
        assert_eq!(
            extract_last_number("It is 1,234,567").as_deref(),
            Some("1234567")
        );
        assert_eq!(extract_last_number("a 12,34").as_deref(), Some("34"));
        assert_eq!(extract_last_number("no digits"), None);
        assert_eq!(extract_last_number("7").as_deref(), Some("7"));
    }

    #[test]
    fn problems_are_reproducible_and_correct() {
        let p = arithmetic_problems(300, 3);
        assert_eq!(p, arithmetic_problems(300, 3));
        for q in &p {
            // Replay the prompt's changes on its first number.
            let words: Vec<&str> = q.prompt.split([' ', ',', '?', '.']).collect();
            let mut total: Option<i64> = None;
            let mut sign = 0i64;
            for w in words {
                match w {
                    "+" | "plus" | "gets" => sign = 1,
                    "-" | "minus" | "away" => sign = -1,
                    _ => {
                        if let Ok(v) = w.parse::<i64>() {
                            total = Some(match total {
                                None => v,
                                Some(t) => {
                                    assert_ne!(sign, 0, "{}", q.prompt);
                                    t + sign * v
                                }
                            });
                            sign = 0;
                        }
                    }
                }
                assert!((0..60).contains(&total.unwrap_or(0)), "{}", q.prompt);
            }
            assert_eq!(q.answer, total.unwrap().to_string(), "{}", q.prompt);
        }
    }

    #[test]
    fn numbers_are_extracted_from_free_text() {
        assert_eq!(extract_number(" 42\nQ: 7"), Some("42".into()));
        assert_eq!(extract_number("it is -5."), Some("-5".into()));
        assert_eq!(extract_number("none"), None);
        assert_eq!(extract_answer(" 42\nQ: 7"), Some("42".into()));
        assert_eq!(
            extract_answer(" Work: 37 + 40 = 77, 77 + 8 = 85. Answer: 85\nQ: 1"),
            Some("85".into())
        );
        assert_eq!(
            extract_answer(" Work: 37 + 40 = 77. Answer: none 3"),
            Some("3".into())
        );
        assert_eq!(extract_answer(" Work: 37 + 40 = 77"), Some("37".into()));
    }

    #[test]
    fn worked_solutions_are_correct_and_end_in_the_answer() {
        for q in arithmetic_problems(500, 5) {
            let steps: Vec<Vec<i64>> = q
                .work
                .split(", ")
                .map(|s| {
                    let t: Vec<&str> = s.split(' ').collect();
                    assert_eq!((t.len(), t[3]), (5, "="), "{}", q.work);
                    let sign = if t[1] == "+" { 1 } else { -1 };
                    vec![
                        t[0].parse().unwrap(),
                        sign * t[2].parse::<i64>().unwrap(),
                        t[4].parse().unwrap(),
                    ]
                })
                .collect();
            assert!((2..=3).contains(&steps.len()), "{}", q.work);
            for (i, s) in steps.iter().enumerate() {
                assert_eq!(s[0] + s[1], s[2], "{}", q.work);
                assert!((1..10).contains(&s[1].abs()), "{}", q.work);
                if i > 0 {
                    assert_eq!(s[0], steps[i - 1][2], "{}", q.work);
                }
            }
            assert_eq!(steps[steps.len() - 1][2].to_string(), q.answer);
            assert_eq!(
                extract_answer(&q.worked_completion()),
                Some(q.answer.clone())
            );
            assert_eq!(
                extract_answer(&q.direct_completion()),
                Some(q.answer.clone())
            );
        }
    }
}

/// The example datasets of the task presets (`presets/lm/*.toml`), generated here from
/// templates with a seeded RNG so that they ship with the repository and can be rebuilt
/// bit for bit (`rein lm example-data`). Small on purpose: they show the file formats and
/// let the presets run end to end; real use brings its own JSONL.
pub mod examples {
    use super::*;
    use crate::rl::reward::PromptRecord;
    use crate::rl::reward_model::PreferencePair;

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
                ..Default::default()
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
                    ..Default::default()
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
                    ..Default::default()
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
                    ..Default::default()
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
                ..Default::default()
            })
            .collect();
        out.push(("arithmetic/train.jsonl".into(), jsonl(&arith)));
        let (train, heldout) = chat_arithmetic_split(1000, 200, 5);
        out.push(("chat-arithmetic/train.jsonl".into(), jsonl(&train)));
        out.push(("chat-arithmetic/heldout.jsonl".into(), jsonl(&heldout)));
        out
    }

    /// One chat arithmetic question in TRL's conversational form with its answer:
    /// `{"prompt": [{"role": "user", "content": "What is 17 + 25? Reply with only the number."}],
    /// "answer": "42"}`: a sum of two numbers from 2 to 30 (seven in ten) or a difference of a
    /// number from 10 to 50 and a smaller one (841 sums and 1,189 differences in all). SmolLM2-135M-Instruct answers about a fifth of
    /// them right when decoding greedily, and sampling gives a group of eight a mix of right and
    /// wrong replies, so GRPO has a signal.
    pub fn chat_arithmetic(rng: &mut ReinRng) -> serde_json::Value {
        let (question, answer) = if rng.random_range(0..10) < 7 {
            let (a, b) = (rng.random_range(2..=30), rng.random_range(2..=30));
            (format!("{a} + {b}"), a + b)
        } else {
            let a: i64 = rng.random_range(10..=50);
            let b = rng.random_range(1..a);
            (format!("{a} - {b}"), a - b)
        };
        serde_json::json!({
            "prompt": [{"role": "user", "content": format!("What is {question}? Reply with only the number.")}],
            "answer": answer.to_string(),
        })
    }

    /// `train` and `heldout` distinct chat arithmetic questions ([`chat_arithmetic`]); no
    /// held-out question is among the training ones.
    pub fn chat_arithmetic_split(
        train: usize,
        heldout: usize,
        seed: u64,
    ) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
        let mut rng = rng_from_seed(seed);
        let mut seen = std::collections::HashSet::new();
        let mut all = Vec::with_capacity(train + heldout);
        // 2,030 distinct questions exist; asking for more would never end.
        assert!(
            train + heldout <= 1500,
            "chat_arithmetic_split: at most 1500 questions"
        );
        while all.len() < train + heldout {
            let q = chat_arithmetic(&mut rng);
            if seen.insert(q["prompt"][0]["content"].to_string()) {
                all.push(q);
            }
        }
        let rest = all.split_off(heldout);
        (rest, all)
    }
}
