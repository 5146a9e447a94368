//! Taxi-v4 (Dietterich 2000): pick up a passenger and drop them at their destination, as
//! Gymnasium's `toy_text.taxi`.

use super::discrete::{DiscreteEnv, ToyKind, Transition, TransitionTable};

/// The map: `|` are walls, `:` open passages.
pub const MAP: [&str; 7] = [
    "+---------+",
    "|R: | : :G|",
    "| : | : : |",
    "| : : : : |",
    "| | : | : |",
    "|Y| : |B: |",
    "+---------+",
];

/// The four pick-up/drop-off locations R, G, Y, B as (row, col).
pub const LOCS: [(usize, usize); 4] = [(0, 0), (0, 4), (4, 0), (4, 3)];

/// State index of (taxi row, taxi col, passenger location (4 = in taxi), destination).
pub fn taxi_encode(row: usize, col: usize, pass: usize, dest: usize) -> usize {
    ((row * 5 + col) * 5 + pass) * 4 + dest
}

/// Inverse of [`taxi_encode`].
pub fn taxi_decode(s: usize) -> (usize, usize, usize, usize) {
    let dest = s % 4;
    let pass = (s / 4) % 5;
    let col = (s / 20) % 5;
    let row = s / 100;
    (row, col, pass, dest)
}

fn open(desc: &[String], row: usize, col_char: usize) -> bool {
    desc[1 + row].as_bytes()[col_char] == b':'
}

/// Gymnasium's `action_mask`: which actions change the state (1) or not (0).
pub fn action_mask(desc: &[String], s: usize) -> [u8; 6] {
    let (row, col, pass, dest) = taxi_decode(s);
    let mut m = [0u8; 6];
    m[0] = u8::from(row < 4);
    m[1] = u8::from(row > 0);
    m[2] = u8::from(col < 4 && open(desc, row, 2 * col + 2));
    m[3] = u8::from(col > 0 && open(desc, row, 2 * col));
    m[4] = u8::from(pass < 4 && (row, col) == LOCS[pass]);
    m[5] = u8::from(pass == 4 && ((row, col) == LOCS[dest] || LOCS.contains(&(row, col))));
    m
}

/// Builds Taxi's transition table and environment: actions south, north, east, west, pickup,
/// dropoff; -1 per step, +20 for a correct drop-off (terminal), -10 for illegal pickup/dropoff.
pub fn taxi(name: &str) -> DiscreteEnv {
    let desc: Vec<String> = MAP.iter().map(|s| s.to_string()).collect();
    let mut p: TransitionTable = vec![vec![Vec::new(); 6]; 500];
    let mut initial = vec![0.0; 500];
    for row in 0..5 {
        for col in 0..5 {
            for pass in 0..5 {
                for dest in 0..4 {
                    let s = taxi_encode(row, col, pass, dest);
                    if pass < 4 && pass != dest {
                        initial[s] += 1.0;
                    }
                    for a in 0..6 {
                        let (mut nr, mut nc, mut np) = (row, col, pass);
                        let mut reward = -1.0;
                        let mut terminated = false;
                        let loc = (row, col);
                        match a {
                            0 => nr = (row + 1).min(4),
                            1 => nr = row.saturating_sub(1),
                            2 if open(&desc, row, 2 * col + 2) => nc = (col + 1).min(4),
                            3 if open(&desc, row, 2 * col) => nc = col.saturating_sub(1),
                            4 => {
                                if pass < 4 && loc == LOCS[pass] {
                                    np = 4;
                                } else {
                                    reward = -10.0;
                                }
                            }
                            5 => {
                                if loc == LOCS[dest] && pass == 4 {
                                    np = dest;
                                    terminated = true;
                                    reward = 20.0;
                                } else if let (Some(i), 4) =
                                    (LOCS.iter().position(|&l| l == loc), pass)
                                {
                                    np = i;
                                } else {
                                    reward = -10.0;
                                }
                            }
                            _ => {}
                        }
                        p[s][a].push(Transition {
                            prob: 1.0,
                            next_state: taxi_encode(nr, nc, np, dest),
                            reward,
                            terminated,
                        });
                    }
                }
            }
        }
    }
    let total: f64 = initial.iter().sum();
    for x in &mut initial {
        *x /= total;
    }
    DiscreteEnv::new(name, ToyKind::Taxi { desc }, p, initial)
}
