//! FrozenLake-v1 / FrozenLake8x8-v1: cross a frozen lake from S to G without falling into a
//! hole H, as Gymnasium's `toy_text.frozen_lake`.

use super::discrete::{DiscreteEnv, ToyKind, Transition, TransitionTable};
use rand::Rng;
use rein_core::{rng_from_seed, EnvError};

/// Construction options of FrozenLake (Gymnasium's kwargs).
#[derive(Debug, Clone, PartialEq)]
pub struct FrozenLakeOptions {
    /// The map rows; every row the same length, made of `S`, `F`, `H`, `G`.
    pub desc: Vec<String>,
    /// With probability `1 - success_rate` the agent slips to one of the two perpendicular
    /// directions (equally likely).
    pub is_slippery: bool,
    /// Probability of moving in the intended direction when slippery (default 1/3).
    pub success_rate: f64,
    /// Rewards for reaching the goal, a hole, a frozen tile (default 1, 0, 0).
    pub reward_schedule: [f64; 3],
}

/// The built-in maps `"4x4"` and `"8x8"`.
pub fn map_by_name(name: &str) -> Option<Vec<String>> {
    let rows: &[&str] = match name {
        "4x4" => &["SFFF", "FHFH", "FFFH", "HFFG"],
        "8x8" => &[
            "SFFFFFFF", "FFFFFFFF", "FFFHFFFF", "FFFFFHFF", "FFFHFFFF", "FHHFFFHF", "FHFFHFHF",
            "FFFHFFFG",
        ],
        _ => return None,
    };
    Some(rows.iter().map(|s| s.to_string()).collect())
}

/// A random `size` x `size` map with frozen-tile probability `p` and a path from S to G
/// (Gymnasium's `generate_random_map`, drawn from rein's generator seeded with `seed`).
pub fn generate_random_map(size: usize, p: f64, seed: u64) -> Vec<String> {
    let mut rng = rng_from_seed(seed);
    let p = p.min(1.0);
    loop {
        let mut board: Vec<Vec<u8>> = (0..size)
            .map(|_| {
                (0..size)
                    .map(|_| if rng.random::<f64>() < p { b'F' } else { b'H' })
                    .collect()
            })
            .collect();
        board[0][0] = b'S';
        board[size - 1][size - 1] = b'G';
        if path_exists(&board) {
            return board
                .into_iter()
                .map(|r| String::from_utf8_lossy(&r).into_owned())
                .collect();
        }
    }
}

fn path_exists(board: &[Vec<u8>]) -> bool {
    let n = board.len();
    let mut seen = vec![vec![false; n]; n];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((r, c)) = stack.pop() {
        if seen[r][c] {
            continue;
        }
        seen[r][c] = true;
        for (dr, dc) in [(1i64, 0i64), (0, 1), (-1, 0), (0, -1)] {
            let (nr, nc) = (r as i64 + dr, c as i64 + dc);
            if nr < 0 || nc < 0 || nr >= n as i64 || nc >= n as i64 {
                continue;
            }
            let (nr, nc) = (nr as usize, nc as usize);
            match board[nr][nc] {
                b'G' => return true,
                b'H' => {}
                _ => stack.push((nr, nc)),
            }
        }
    }
    false
}

fn validate(desc: &[String]) -> Result<(), EnvError> {
    let err = |m: String| EnvError::InvalidOption {
        env: "FrozenLake-v1".into(),
        message: m,
    };
    let ncol = desc.first().map_or(0, |r| r.len());
    if desc.is_empty() || ncol == 0 {
        return Err(err(
            "option \"desc\" must be a non-empty list of map rows".into()
        ));
    }
    for (i, row) in desc.iter().enumerate() {
        if row.len() != ncol {
            return Err(err(format!(
                "map row {i} {row:?} has {} tiles, row 0 has {ncol}: rows must have equal length",
                row.len()
            )));
        }
        if let Some(ch) = row.chars().find(|c| !"SFHG".contains(*c)) {
            return Err(err(format!(
                "map row {i} {row:?} has tile {ch:?}; tiles are S, F, H, G"
            )));
        }
    }
    if !desc.iter().any(|r| r.contains('S')) {
        return Err(err("the map has no start tile S".into()));
    }
    Ok(())
}

/// Builds FrozenLake's transition table and environment.
pub fn frozen_lake(name: &str, opts: &FrozenLakeOptions) -> Result<DiscreteEnv, EnvError> {
    validate(&opts.desc)?;
    if !(0.0..=1.0).contains(&opts.success_rate) {
        return Err(EnvError::InvalidOption {
            env: name.into(),
            message: format!("success_rate must be in [0, 1], got {}", opts.success_rate),
        });
    }
    let desc: Vec<&[u8]> = opts.desc.iter().map(|r| r.as_bytes()).collect();
    let (nrow, ncol) = (desc.len(), desc[0].len());
    let n_s = nrow * ncol;
    let to_s = |r: usize, c: usize| r * ncol + c;
    // LEFT = 0, DOWN = 1, RIGHT = 2, UP = 3
    let inc = |r: usize, c: usize, a: usize| -> (usize, usize) {
        match a {
            0 => (r, c.saturating_sub(1)),
            1 => ((r + 1).min(nrow - 1), c),
            2 => (r, (c + 1).min(ncol - 1)),
            _ => (r.saturating_sub(1), c),
        }
    };
    let [r_goal, r_hole, r_frozen] = opts.reward_schedule;
    let outcome = |r: usize, c: usize, a: usize, prob: f64| -> Transition {
        let (nr, nc) = inc(r, c, a);
        let letter = desc[nr][nc];
        Transition {
            prob,
            next_state: to_s(nr, nc),
            reward: match letter {
                b'G' => r_goal,
                b'H' => r_hole,
                _ => r_frozen,
            },
            terminated: letter == b'G' || letter == b'H',
        }
    };
    let mut p: TransitionTable = vec![vec![Vec::new(); 4]; n_s];
    for r in 0..nrow {
        for c in 0..ncol {
            let s = to_s(r, c);
            for a in 0..4 {
                let li = &mut p[s][a];
                let letter = desc[r][c];
                if letter == b'G' || letter == b'H' {
                    li.push(Transition {
                        prob: 1.0,
                        next_state: s,
                        reward: 0.0,
                        terminated: true,
                    });
                } else if opts.is_slippery {
                    for b in [(a + 3) % 4, a, (a + 1) % 4] {
                        let prob = if b == a {
                            opts.success_rate
                        } else {
                            (1.0 - opts.success_rate) / 2.0
                        };
                        li.push(outcome(r, c, b, prob));
                    }
                } else {
                    li.push(outcome(r, c, a, 1.0));
                }
            }
        }
    }
    let starts = desc
        .iter()
        .flat_map(|r| r.iter())
        .filter(|&&b| b == b'S')
        .count() as f64;
    let initial = desc
        .iter()
        .flat_map(|r| r.iter())
        .map(|&b| if b == b'S' { 1.0 / starts } else { 0.0 })
        .collect();
    Ok(DiscreteEnv::new(
        name,
        ToyKind::FrozenLake {
            desc: opts.desc.clone(),
        },
        p,
        initial,
    ))
}
