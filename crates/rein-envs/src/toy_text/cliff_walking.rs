//! CliffWalking-v1 and CliffWalkingSlippery-v1 (Sutton & Barto, example 6.6), as Gymnasium's
//! `toy_text.cliffwalking`.

use super::discrete::{DiscreteEnv, ToyKind, Transition, TransitionTable};

const NROW: usize = 4;
const NCOL: usize = 12;
const START: usize = 36;

/// Builds the 4 x 12 cliff world: actions up, right, down, left; -1 per step; stepping into
/// the cliff gives -100 and returns to the start (not terminal); reaching the bottom-right
/// corner terminates. Slippery: the intended move and the two perpendicular ones, 1/3 each.
pub fn cliff_walking(name: &str, is_slippery: bool) -> DiscreteEnv {
    let cliff = |r: usize, c: usize| r == 3 && (1..NCOL - 1).contains(&c);
    let deltas: [(i64, i64); 4] = [(-1, 0), (0, 1), (1, 0), (0, -1)];
    let outcome = |s: usize, a: usize, prob: f64| -> Transition {
        let (r, c) = (s / NCOL, s % NCOL);
        let nr = (r as i64 + deltas[a].0).clamp(0, NROW as i64 - 1) as usize;
        let nc = (c as i64 + deltas[a].1).clamp(0, NCOL as i64 - 1) as usize;
        if cliff(nr, nc) {
            return Transition {
                prob,
                next_state: START,
                reward: -100.0,
                terminated: false,
            };
        }
        Transition {
            prob,
            next_state: nr * NCOL + nc,
            reward: -1.0,
            terminated: (nr, nc) == (NROW - 1, NCOL - 1),
        }
    };
    let mut p: TransitionTable = vec![vec![Vec::new(); 4]; NROW * NCOL];
    for (s, row) in p.iter_mut().enumerate() {
        for (a, li) in row.iter_mut().enumerate() {
            if is_slippery {
                for b in [(a + 3) % 4, a, (a + 1) % 4] {
                    li.push(outcome(s, b, 1.0 / 3.0));
                }
            } else {
                li.push(outcome(s, a, 1.0));
            }
        }
    }
    let mut initial = vec![0.0; NROW * NCOL];
    initial[START] = 1.0;
    DiscreteEnv::new(name, ToyKind::CliffWalking, p, initial)
}
