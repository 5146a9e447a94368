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
