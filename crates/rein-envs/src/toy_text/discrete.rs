//! The shared machinery of the table-driven toy-text environments.

use crate::util::discrete_action;
use rand::Rng;
use rein_core::env::snapshot_field;
use rein_core::{Env, EnvError, EnvRng, EnvSpec, Info, Render, Space, Step, Value};
use std::collections::VecDeque;

/// One possible outcome of taking action a in state s: Gymnasium's
/// `(probability, next_state, reward, terminated)` tuple of `env.unwrapped.P[s][a]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// P(s' | s, a) of this outcome.
    pub prob: f64,
    /// s'.
    pub next_state: usize,
    /// Reward of this outcome.
    pub reward: f64,
    /// Whether s' is terminal.
    pub terminated: bool,
}

/// `P[s][a]` = the list of outcomes, in Gymnasium's order (the order matters for sampling).
pub type TransitionTable = Vec<Vec<Vec<Transition>>>;

/// Which toy-text game a [`DiscreteEnv`] is (for rendering and the extra `info` entries).
#[derive(Debug, Clone, PartialEq)]
pub enum ToyKind {
    /// FrozenLake with its map rows.
    FrozenLake {
        /// Map rows (`S`, `F`, `H`, `G`).
        desc: Vec<String>,
    },
    /// Taxi with its map rows.
    Taxi {
        /// The ASCII map.
        desc: Vec<String>,
    },
    /// CliffWalking (4 x 12).
    CliffWalking,
}

impl ToyKind {
    /// Rows and columns of the grid of FrozenLake and CliffWalking (states numbered row by
    /// row); `None` for the other games.
    pub fn grid_shape(&self) -> Option<(usize, usize)> {
        match self {
            ToyKind::FrozenLake { desc } => Some((desc.len(), desc[0].len())),
            ToyKind::CliffWalking => Some((4, 12)),
            _ => None,
        }
    }

    /// A text picture of `policy` (an action per state) on the grid: an arrow per cell in the
    /// env's action order, `H` for holes, `C` for the cliff and `G` for the goal; rows as
    /// lines of ` x` cells. `None` for games without a grid.
    pub fn policy_picture(&self, policy: &[usize]) -> Option<Vec<String>> {
        let (rows, cols) = self.grid_shape()?;
        let cell = |s: usize, r: usize, c: usize| -> char {
            match self {
                ToyKind::FrozenLake { desc } => match desc[r].as_bytes()[c] {
                    b'H' => 'H',
                    b'G' => 'G',
                    _ => ['\u{2190}', '\u{2193}', '\u{2192}', '\u{2191}'][policy[s]],
                },
                _ if r == 3 && c == 11 => 'G',
                _ if r == 3 && c > 0 => 'C',
                _ => ['\u{2191}', '\u{2192}', '\u{2193}', '\u{2190}'][policy[s]],
            }
        };
        Some(
            (0..rows)
                .map(|r| {
                    (0..cols)
                        .map(|c| format!(" {}", cell(r * cols + c, r, c)))
                        .collect()
                })
                .collect(),
        )
    }
}

/// A finite MDP given by its transition table, stepped by sampling as numpy's
/// `categorical_sample`: outcome `argmax(cumsum(probs) > u)` for `u ~ U[0, 1)`.
pub struct DiscreteEnv {
    p: TransitionTable,
    initial: Vec<f64>,
    s: Option<usize>,
    last_action: Option<usize>,
    kind: ToyKind,
    rng: EnvRng,
    forced_uniforms: VecDeque<f64>,
    obs_space: Space,
    act_space: Space,
    name: String,
    spec: Option<EnvSpec>,
}

impl DiscreteEnv {
    /// Builds the environment from a table and a start distribution.
    pub fn new(name: &str, kind: ToyKind, p: TransitionTable, initial: Vec<f64>) -> Self {
        let n_s = p.len() as u64;
        let n_a = p.first().map_or(0, |r| r.len()) as u64;
        Self {
            p,
            initial,
            s: None,
            last_action: None,
            kind,
            rng: EnvRng::new(),
            forced_uniforms: VecDeque::new(),
            obs_space: Space::discrete(n_s),
            act_space: Space::discrete(n_a),
            name: name.into(),
            spec: None,
        }
    }

    /// Attaches registration data.
    pub fn with_spec(mut self, spec: EnvSpec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// The transition table `P[s][a]`.
    pub fn transitions(&self) -> &TransitionTable {
        &self.p
    }

    /// The start-state distribution.
    pub fn initial_distribution(&self) -> &[f64] {
        &self.initial
    }

    /// Which game this is.
    pub fn kind(&self) -> &ToyKind {
        &self.kind
    }

    /// The current state `s`.
    pub fn state(&self) -> Option<usize> {
        self.s
    }

    /// Makes the next steps use these uniform draws instead of the generator's, one per step
    /// (for replaying a trajectory recorded elsewhere, e.g. by Gymnasium).
    pub fn push_uniforms(&mut self, draws: &[f64]) {
        self.forced_uniforms.extend(draws);
    }

    fn draw(&mut self) -> f64 {
        match self.forced_uniforms.pop_front() {
            Some(u) => u,
            None => self.rng.get().random::<f64>(),
        }
    }

    /// numpy's `categorical_sample`: the first index whose cumulative probability exceeds `u`.
    pub fn categorical_sample(probs: impl Iterator<Item = f64>, u: f64) -> usize {
        let mut cum = 0.0;
        let mut last = 0;
        for (i, p) in probs.enumerate() {
            cum += p;
            last = i;
            if cum > u {
                return i;
            }
        }
        // Rounding left the total below u: numpy's argmax of an all-false array gives 0.
        let _ = last;
        0
    }

    fn info(&self, prob: f64, s: usize) -> Info {
        let mut info = Info::new();
        info.insert("prob".into(), serde_json::json!(prob));
        if let ToyKind::Taxi { desc } = &self.kind {
            info.insert(
                "action_mask".into(),
                serde_json::json!(super::taxi::action_mask(desc, s)),
            );
        }
        info
    }

    fn render_text(&self) -> String {
        let s = self.s.unwrap_or(0);
        let mut out = String::new();
        let names = match self.kind {
            ToyKind::Taxi { .. } => &["South", "North", "East", "West", "Pickup", "Dropoff"][..],
            _ => &["Left", "Down", "Right", "Up"][..],
        };
        match &self.kind {
            ToyKind::FrozenLake { desc } => {
                if let Some(a) = self.last_action {
                    out.push_str(&format!("  ({})\n", names[a]));
                }
                let ncol = desc[0].len();
                for (r, row) in desc.iter().enumerate() {
                    for (c, ch) in row.chars().enumerate() {
                        if r * ncol + c == s {
                            out.push_str(&format!("\x1b[41m{ch}\x1b[0m"));
                        } else {
                            out.push(ch);
                        }
                    }
                    out.push('\n');
                }
            }
            ToyKind::CliffWalking => {
                for r in 0..4 {
                    for c in 0..12 {
                        let idx = r * 12 + c;
                        let cell = if idx == s {
                            " x "
                        } else if idx == 47 {
                            " T "
                        } else if r == 3 && c > 0 && c < 11 {
                            " C "
                        } else {
                            " o "
                        };
                        out.push_str(cell);
                    }
                    out.push('\n');
                }
                out.push('\n');
            }
            ToyKind::Taxi { desc } => {
                let (row, col, pass, dest) = super::taxi::taxi_decode(s);
                let mut grid: Vec<Vec<String>> = desc
                    .iter()
                    .map(|l| l.chars().map(|c| c.to_string()).collect())
                    .collect();
                let locs = super::taxi::LOCS;
                let cell = |g: &mut Vec<Vec<String>>, r: usize, c: usize, code: &str| {
                    let ch = g[1 + r][2 * c + 1].clone();
                    let ch = if ch == " " && code == "42" {
                        "_".to_string()
                    } else {
                        ch
                    };
                    g[1 + r][2 * c + 1] = format!("\x1b[{code}m{ch}\x1b[0m");
                };
                if pass < 4 {
                    cell(&mut grid, row, col, "43");
                    let (pr, pc) = locs[pass];
                    cell(&mut grid, pr, pc, "1;34");
                } else {
                    cell(&mut grid, row, col, "42");
                }
                let (dr, dc) = locs[dest];
                cell(&mut grid, dr, dc, "35");
                for r in grid {
                    out.push_str(&r.concat());
                    out.push('\n');
                }
                match self.last_action {
                    Some(a) => out.push_str(&format!("  ({})\n", names[a])),
                    None => out.push('\n'),
                }
            }
        }
        out
    }
}

impl Env for DiscreteEnv {
    crate::util::builtin_env_accessors!();
    fn name(&self) -> String {
        self.name.clone()
    }

    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.rng.reseed(seed);
        let u = self.rng.get().random::<f64>();
        let s = Self::categorical_sample(self.initial.iter().copied(), u);
        self.s = Some(s);
        self.last_action = None;
        (Value::Discrete(s as i64), self.info(1.0, s))
    }

    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        let a = discrete_action(action, &self.act_space)?;
        let s = self.s.ok_or(EnvError::ResetNeeded)?;
        let u = self.draw();
        let outcomes = &self.p[s][a];
        let i = Self::categorical_sample(outcomes.iter().map(|t| t.prob), u);
        let t = outcomes[i];
        self.s = Some(t.next_state);
        self.last_action = Some(a);
        Ok(Step {
            obs: Value::Discrete(t.next_state as i64),
            reward: t.reward,
            terminated: t.terminated,
            truncated: false,
            info: self.info(t.prob, t.next_state),
        })
    }

    fn get_state(&self) -> Result<serde_json::Value, EnvError> {
        Ok(serde_json::json!(self.s.ok_or(EnvError::ResetNeeded)?))
    }

    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        let n = self.p.len();
        let s = state
            .as_u64()
            .filter(|&s| (s as usize) < n)
            .ok_or_else(|| EnvError::InvalidState {
                env: self.name.clone(),
                message: format!("expected the integer state s in 0..{n}, got {state}"),
            })? as usize;
        self.s = Some(s);
        self.last_action = None;
        Ok(Value::Discrete(s as i64))
    }

    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        Ok(
            serde_json::json!({"s": self.s, "last_action": self.last_action, "rng": self.rng, "forced_uniforms": self.forced_uniforms}),
        )
    }

    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        let name = self.name();
        self.s = snapshot_field(&name, snap, "s")?;
        self.last_action = snapshot_field(&name, snap, "last_action")?;
        self.rng = snapshot_field(&name, snap, "rng")?;
        self.forced_uniforms = snapshot_field(&name, snap, "forced_uniforms")?;
        Ok(())
    }
    fn render(&self) -> Result<Render, EnvError> {
        self.s.ok_or(EnvError::ResetNeeded)?;
        Ok(Render::Text(self.render_text()))
    }
}
