//! The tabular MDP toolkit: finite MDPs with explicit P(s'|s,a), rewards and a discount, the
//! Bellman equations, and dynamic programming (Sutton & Barto, chapter 4).
//!
//! Transitions carry Gymnasium's `terminated` flag: after a terminal transition nothing is
//! bootstrapped, so every backup is
//! `Q(s,a) = sum_{s'} p(s'|s,a) [r(s,a,s') + gamma (1 - done) V(s')]`.

use crate::toy_text::{DiscreteEnv, Transition, TransitionTable};
use serde_json::Value as Json;
use thiserror::Error;

/// Errors of the MDP toolkit: every message names the offending state, action or field.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum MdpError {
    /// The model is malformed (probabilities, indices, gamma).
    #[error("invalid MDP: {0}")]
    Invalid(String),
    /// A JSON file that does not follow the schema.
    #[error("invalid MDP JSON {location}: {message}")]
    Json {
        /// Where (file and field).
        location: String,
        /// What was wrong and what is expected.
        message: String,
    },
    /// Value iteration did not converge (values growing without bound, or the sweep limit).
    #[error("{0}")]
    Diverged(String),
    /// The Bellman linear system has no unique solution (gamma = 1 with a policy that never
    /// terminates).
    #[error("the Bellman equations have no unique solution: {0}")]
    Singular(String),
}

/// A finite MDP: `P[s][a]` lists the outcomes of action a in state s, and `gamma` discounts.
#[derive(Debug, Clone, PartialEq)]
pub struct TabularMdp {
    p: TransitionTable,
    n_actions: usize,
    /// Discount factor in [0, 1].
    pub gamma: f64,
    /// Start-state distribution (uniform when not given).
    pub initial: Vec<f64>,
}

/// A policy `pi[s][a]` = probability of action a in state s.
pub type StochasticPolicy = Vec<Vec<f64>>;

/// Result of value or policy iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// Optimal state values V*.
    pub v: Vec<f64>,
    /// Optimal action values Q*.
    pub q: Vec<Vec<f64>>,
    /// A greedy (optimal) deterministic policy: the lowest-index maximiser of Q* in each state.
    pub policy: Vec<usize>,
    /// Sweeps (value iteration) or improvement steps (policy iteration) taken.
    pub iterations: usize,
}

impl TabularMdp {
    /// Builds and validates an MDP from a transition table (the layout of Gymnasium's
    /// `env.unwrapped.P`).
    pub fn new(
        p: TransitionTable,
        gamma: f64,
        initial: Option<Vec<f64>>,
    ) -> Result<Self, MdpError> {
        let n_s = p.len();
        if n_s == 0 {
            return Err(MdpError::Invalid("the MDP has no states".into()));
        }
        let n_a = p[0].len();
        if n_a == 0 {
            return Err(MdpError::Invalid("state 0 has no actions".into()));
        }
        if !(0.0..=1.0).contains(&gamma) {
            return Err(MdpError::Invalid(format!(
                "gamma must be in [0, 1], got {gamma}"
            )));
        }
        for (s, row) in p.iter().enumerate() {
            if row.len() != n_a {
                return Err(MdpError::Invalid(format!(
                    "state {s} has {} actions, state 0 has {n_a}: every state needs the same actions",
                    row.len()
                )));
            }
            for (a, outs) in row.iter().enumerate() {
                if outs.is_empty() {
                    return Err(MdpError::Invalid(format!("P[{s}][{a}] has no outcomes")));
                }
                let mut total = 0.0;
                for t in outs {
                    if !(t.prob >= 0.0 && t.prob <= 1.0) {
                        return Err(MdpError::Invalid(format!(
                            "P[{s}][{a}] has probability {} outside [0, 1]",
                            t.prob
                        )));
                    }
                    if t.next_state >= n_s {
                        return Err(MdpError::Invalid(format!(
                            "P[{s}][{a}] leads to state {}, but states are 0..{}",
                            t.next_state,
                            n_s - 1
                        )));
                    }
                    if !t.reward.is_finite() {
                        return Err(MdpError::Invalid(format!(
                            "P[{s}][{a}] has a non-finite reward {}",
                            t.reward
                        )));
                    }
                    total += t.prob;
                }
                if (total - 1.0).abs() > 1e-9 {
                    return Err(MdpError::Invalid(format!(
                        "the probabilities of P[{s}][{a}] sum to {total}, not 1"
                    )));
                }
            }
        }
        let initial = match initial {
            Some(d) => {
                if d.len() != n_s {
                    return Err(MdpError::Invalid(format!(
                        "the initial distribution has {} entries for {n_s} states",
                        d.len()
                    )));
                }
                let total: f64 = d.iter().sum();
                if d.iter().any(|&x| x.is_nan() || x < 0.0) || (total - 1.0).abs() > 1e-9 {
                    return Err(MdpError::Invalid(format!(
                        "the initial distribution must be non-negative and sum to 1, sums to {total}"
                    )));
                }
                d
            }
            None => vec![1.0 / n_s as f64; n_s],
        };
        Ok(Self {
            p,
            n_actions: n_a,
            gamma,
            initial,
        })
    }

    /// The MDP of a table-driven toy-text environment (FrozenLake, Taxi, CliffWalking).
    pub fn from_env(env: &DiscreteEnv, gamma: f64) -> Result<Self, MdpError> {
        Self::new(
            env.transitions().clone(),
            gamma,
            Some(env.initial_distribution().to_vec()),
        )
    }

    /// Reads an MDP from JSON. Two layouts are accepted (see the README's "MDP JSON schema"):
    /// - `{"gamma": g, "P": [[[[p, next_state, reward, terminated], ...] per action] per state]}`
    ///   (Gymnasium's `env.unwrapped.P`);
    /// - `{"gamma": g, "transition": T, "reward": R, "terminal": [bool per state]}` with
    ///   `T[s][a][s']` = P(s'|s,a) and `R[s][a]` the expected reward; transitions into a
    ///   terminal state end the episode.
    ///
    /// Optional in both: `"initial": [probability per state]`.
    pub fn from_json(json: &Json, source: &str) -> Result<Self, MdpError> {
        Self::from_json_value(json, source)
    }

    /// Reads an MDP JSON file (see [`TabularMdp::from_json`]); errors name the file.
    pub fn read(path: &std::path::Path) -> Result<Self, MdpError> {
        let source = path.display().to_string();
        let bad = |message: String| MdpError::Json {
            location: source.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("reading it: {e}")))?;
        let json: Json =
            serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        Self::from_json(&json, &source)
    }

    fn from_json_value(json: &Json, source: &str) -> Result<Self, MdpError> {
        let err = |field: &str, message: String| MdpError::Json {
            location: format!("{source}, field {field:?}"),
            message,
        };
        let obj = json.as_object().ok_or_else(|| MdpError::Json {
            location: source.into(),
            message:
                "expected a JSON object with \"gamma\" and \"P\" (or \"transition\" and \"reward\")"
                    .into(),
        })?;
        // Unknown keys (`terminals` for `terminal`) and two layouts at once would silently drop
        // part of the model: refuse them by name.
        const KEYS: [&str; 6] = ["gamma", "P", "transition", "reward", "terminal", "initial"];
        if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(err(
                k,
                format!("unknown key; the keys of an MDP file are {KEYS:?}"),
            ));
        }
        if obj.contains_key("P") {
            if let Some(k) = ["transition", "reward", "terminal"]
                .into_iter()
                .find(|k| obj.contains_key(*k))
            {
                return Err(err(
                    k,
                    "given together with \"P\": use either P[s][a] or the transition/reward/terminal matrices, not both".into(),
                ));
            }
        }
        let gamma = obj
            .get("gamma")
            .ok_or_else(|| err("gamma", "missing; expected a number in [0, 1]".into()))?
            .as_f64()
            .ok_or_else(|| err("gamma", "expected a number in [0, 1]".into()))?;
        if !(0.0..=1.0).contains(&gamma) {
            return Err(err("gamma", format!("must be in [0, 1], got {gamma}")));
        }
        let nums = |field: &str, v: &Json| -> Result<Vec<f64>, MdpError> {
            v.as_array()
                .and_then(|a| a.iter().map(Json::as_f64).collect())
                .ok_or_else(|| err(field, format!("expected an array of numbers, got {v}")))
        };
        let initial = obj.get("initial").map(|v| nums("initial", v)).transpose()?;
        let p: TransitionTable = if let Some(p) = obj.get("P") {
            let states = p
                .as_array()
                .ok_or_else(|| err("P", "expected an array (one entry per state)".into()))?;
            let mut table = Vec::with_capacity(states.len());
            for (s, row) in states.iter().enumerate() {
                let actions = row.as_array().ok_or_else(|| {
                    err(
                        &format!("P[{s}]"),
                        "expected an array (one entry per action)".into(),
                    )
                })?;
                let mut r = Vec::with_capacity(actions.len());
                for (a, outs) in actions.iter().enumerate() {
                    let f = format!("P[{s}][{a}]");
                    let outs = outs.as_array().ok_or_else(|| {
                        err(
                            &f,
                            "expected an array of [p, next_state, reward, terminated]".into(),
                        )
                    })?;
                    let mut list = Vec::with_capacity(outs.len());
                    for (k, o) in outs.iter().enumerate() {
                        let f = format!("P[{s}][{a}][{k}]");
                        let bad = || {
                            err(
                                &f,
                                format!("expected [p, next_state, reward, terminated], got {o}"),
                            )
                        };
                        let o = o
                            .as_array()
                            .filter(|o| o.len() == 4 || o.len() == 3)
                            .ok_or_else(bad)?;
                        let next = o[1].as_u64().ok_or_else(bad)? as usize;
                        list.push(Transition {
                            prob: o[0].as_f64().ok_or_else(bad)?,
                            next_state: next,
                            reward: o[2].as_f64().ok_or_else(bad)?,
                            terminated: match o.get(3) {
                                None => false,
                                Some(Json::Bool(b)) => *b,
                                Some(_) => return Err(bad()),
                            },
                        });
                    }
                    r.push(list);
                }
                table.push(r);
            }
            table
        } else if let Some(t) = obj.get("transition") {
            let reward = obj.get("reward").ok_or_else(|| {
                err(
                    "reward",
                    "missing; \"transition\" needs \"reward\" R[s][a]".into(),
                )
            })?;
            let t = t
                .as_array()
                .ok_or_else(|| err("transition", "expected T[s][a][s']".into()))?;
            let n_s = t.len();
            let terminal: Vec<bool> = match obj.get("terminal") {
                None => vec![false; n_s],
                Some(v) => v
                    .as_array()
                    .and_then(|a| a.iter().map(Json::as_bool).collect::<Option<Vec<_>>>())
                    .filter(|a| a.len() == n_s)
                    .ok_or_else(|| err("terminal", format!("expected {n_s} booleans")))?,
            };
            let rewards = reward
                .as_array()
                .filter(|r| r.len() == n_s)
                .ok_or_else(|| err("reward", format!("expected R[s][a] for {n_s} states")))?;
            let mut table = Vec::with_capacity(n_s);
            for (s, row) in t.iter().enumerate() {
                let row = row.as_array().ok_or_else(|| {
                    err(
                        &format!("transition[{s}]"),
                        "expected one row per action".into(),
                    )
                })?;
                let rs = nums(&format!("reward[{s}]"), &rewards[s])?;
                if rs.len() != row.len() {
                    return Err(err(
                        &format!("reward[{s}]"),
                        format!(
                            "has {} entries, transition[{s}] has {} actions",
                            rs.len(),
                            row.len()
                        ),
                    ));
                }
                let mut r = Vec::with_capacity(row.len());
                for (a, probs) in row.iter().enumerate() {
                    let f = format!("transition[{s}][{a}]");
                    let probs = nums(&f, probs)?;
                    if probs.len() != n_s {
                        return Err(err(
                            &f,
                            format!(
                                "has {} entries, expected one per state ({n_s})",
                                probs.len()
                            ),
                        ));
                    }
                    if terminal[s] {
                        // Terminal states absorb with no reward.
                        r.push(vec![Transition {
                            prob: 1.0,
                            next_state: s,
                            reward: 0.0,
                            terminated: true,
                        }]);
                        continue;
                    }
                    r.push(
                        probs
                            .iter()
                            .enumerate()
                            .filter(|(_, &p)| p != 0.0)
                            .map(|(s2, &p)| Transition {
                                prob: p,
                                next_state: s2,
                                reward: rs[a],
                                terminated: terminal[s2],
                            })
                            .collect(),
                    );
                }
                table.push(r);
            }
            table
        } else {
            return Err(MdpError::Json {
                location: source.into(),
                message: "missing \"P\" (Gymnasium layout) or \"transition\" + \"reward\" (matrix layout)".into(),
            });
        };
        Self::new(p, gamma, initial).map_err(|e| match e {
            MdpError::Invalid(m) => MdpError::Json {
                location: source.into(),
                message: m,
            },
            other => other,
        })
    }

    /// Number of states.
    pub fn n_states(&self) -> usize {
        self.p.len()
    }

    /// Number of actions.
    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// The transition table.
    pub fn transitions(&self) -> &TransitionTable {
        &self.p
    }

    /// Expected immediate reward R(s, a) = sum p r.
    pub fn expected_reward(&self, s: usize, a: usize) -> f64 {
        self.p[s][a].iter().map(|t| t.prob * t.reward).sum()
    }

    /// One-step lookahead (Bellman backup) of action a in s under values `v`:
    /// `sum p (r + gamma (1 - done) V(s'))`.
    pub fn backup(&self, v: &[f64], s: usize, a: usize) -> f64 {
        self.p[s][a]
            .iter()
            .map(|t| {
                let cont = if t.terminated {
                    0.0
                } else {
                    self.gamma * v[t.next_state]
                };
                t.prob * (t.reward + cont)
            })
            .sum()
    }

    /// Q from V by one backup per (s, a) (the Bellman equation for q in terms of v).
    pub fn q_from_v(&self, v: &[f64]) -> Vec<Vec<f64>> {
        (0..self.n_states())
            .map(|s| (0..self.n_actions).map(|a| self.backup(v, s, a)).collect())
            .collect()
    }

    /// How far `v` and `q` are from satisfying the Bellman optimality equations (Sutton &
    /// Barto, eqs. 3.19 and 3.20): `(max_s |V(s) - max_a sum p (r + gamma V(s'))|,
    /// max_{s,a} |Q(s,a) - sum p (r + gamma max_a' Q(s',a'))|)`, terminal transitions not
    /// bootstrapping. Both are 0 for V* and Q*; value iteration stops within its tolerance.
    pub fn bellman_residuals(&self, v: &[f64], q: &[Vec<f64>]) -> (f64, f64) {
        let v_res = (0..self.n_states())
            .map(|s| {
                let best = (0..self.n_actions)
                    .map(|a| self.backup(v, s, a))
                    .fold(f64::NEG_INFINITY, f64::max);
                (v[s] - best).abs()
            })
            .fold(0.0, f64::max);
        let q_max: Vec<f64> = q
            .iter()
            .map(|row| row.iter().copied().fold(f64::NEG_INFINITY, f64::max))
            .collect();
        let q_res = (0..self.n_states())
            .flat_map(|s| (0..self.n_actions).map(move |a| (s, a)))
            .map(|(s, a)| (q[s][a] - self.backup(&q_max, s, a)).abs())
            .fold(0.0, f64::max);
        (v_res, q_res)
    }

    /// The deterministic policy `policy[s]` as a stochastic one.
    pub fn deterministic(&self, policy: &[usize]) -> StochasticPolicy {
        policy
            .iter()
            .map(|&a| {
                let mut row = vec![0.0; self.n_actions];
                row[a] = 1.0;
                row
            })
            .collect()
    }

    /// The uniformly random policy.
    pub fn uniform_policy(&self) -> StochasticPolicy {
        vec![vec![1.0 / self.n_actions as f64; self.n_actions]; self.n_states()]
    }

    fn check_policy(&self, pi: &StochasticPolicy) -> Result<(), MdpError> {
        if pi.len() != self.n_states() {
            return Err(MdpError::Invalid(format!(
                "the policy has {} states, the MDP {}",
                pi.len(),
                self.n_states()
            )));
        }
        for (s, row) in pi.iter().enumerate() {
            let total: f64 = row.iter().sum();
            if row.len() != self.n_actions
                || (total - 1.0).abs() > 1e-9
                || row.iter().any(|&x| x < 0.0)
            {
                return Err(MdpError::Invalid(format!(
                    "policy row {s} must hold {} non-negative probabilities summing to 1",
                    self.n_actions
                )));
            }
        }
        Ok(())
    }

    /// Iterative policy evaluation: sweeps of the Bellman expectation equation
    /// `V(s) <- sum_a pi(a|s) sum p (r + gamma (1 - done) V(s'))` (synchronous), until the
    /// largest change is below `tol` or `max_sweeps` is reached. Returns V and the sweep count.
    pub fn evaluate_iterative(
        &self,
        pi: &StochasticPolicy,
        tol: f64,
        max_sweeps: usize,
    ) -> Result<(Vec<f64>, usize), MdpError> {
        self.check_policy(pi)?;
        let mut v = vec![0.0; self.n_states()];
        for sweep in 1..=max_sweeps {
            let mut delta: f64 = 0.0;
            let new: Vec<f64> = (0..self.n_states())
                .map(|s| {
                    (0..self.n_actions)
                        .filter(|&a| pi[s][a] != 0.0)
                        .map(|a| pi[s][a] * self.backup(&v, s, a))
                        .sum()
                })
                .collect();
            for (o, n) in v.iter().zip(&new) {
                delta = delta.max((o - n).abs());
            }
            v = new;
            if delta < tol {
                return Ok((v, sweep));
            }
        }
        Ok((v, max_sweeps))
    }

    /// Exact policy evaluation: solves the linear system `(I - gamma P_pi) V = R_pi` of the
    /// Bellman expectation equation (P_pi excludes terminal transitions).
    pub fn evaluate_exact(&self, pi: &StochasticPolicy) -> Result<Vec<f64>, MdpError> {
        self.check_policy(pi)?;
        let n = self.n_states();
        let mut a = vec![0.0; n * n];
        let mut b = vec![0.0; n];
        for s in 0..n {
            a[s * n + s] += 1.0;
            for act in 0..self.n_actions {
                let w = pi[s][act];
                if w == 0.0 {
                    continue;
                }
                for t in &self.p[s][act] {
                    b[s] += w * t.prob * t.reward;
                    if !t.terminated {
                        a[s * n + t.next_state] -= self.gamma * w * t.prob;
                    }
                }
            }
        }
        solve_linear(&mut a, &mut b, n)?;
        Ok(b)
    }

    /// Q^pi from the exact V^pi.
    pub fn evaluate_q(&self, pi: &StochasticPolicy) -> Result<Vec<Vec<f64>>, MdpError> {
        Ok(self.q_from_v(&self.evaluate_exact(pi)?))
    }

    /// The greedy policy of `q`: the lowest-index action whose value is within `1e-12`
    /// (relative) of the maximum, so ties break deterministically.
    pub fn greedy(q: &[Vec<f64>]) -> Vec<usize> {
        q.iter()
            .map(|row| {
                let best = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let tol = 1e-12 * (1.0 + best.abs());
                row.iter().position(|&x| x >= best - tol).unwrap_or(0)
            })
            .collect()
    }

    /// The set of optimal actions in each state: those within `tol` of the best Q value.
    pub fn optimal_actions(q: &[Vec<f64>], tol: f64) -> Vec<Vec<usize>> {
        q.iter()
            .map(|row| {
                let best = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                (0..row.len()).filter(|&a| row[a] >= best - tol).collect()
            })
            .collect()
    }

    /// Value iteration: `V(s) <- max_a sum p (r + gamma (1 - done) V(s'))` until the largest
    /// change is below `tol` (or `max_sweeps`), then the greedy policy.
    pub fn value_iteration(&self, tol: f64, max_sweeps: usize) -> Result<Solution, MdpError> {
        let mut v = vec![0.0; self.n_states()];
        let mut sweeps = 0;
        // Divergence (gamma = 1 with a policy that collects reward forever): the change per
        // sweep stops shrinking while the values outgrow anything a terminating policy earns.
        let r_max = self
            .p
            .iter()
            .flatten()
            .flatten()
            .map(|o| o.reward.abs())
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
        let (mut last_delta, mut flat_sweeps) = (f64::INFINITY, 0usize);
        let mut converged = false;
        for sweep in 1..=max_sweeps {
            sweeps = sweep;
            let new: Vec<f64> = (0..self.n_states())
                .map(|s| {
                    (0..self.n_actions)
                        .map(|a| self.backup(&v, s, a))
                        .fold(f64::NEG_INFINITY, f64::max)
                })
                .collect();
            let delta = v
                .iter()
                .zip(&new)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            v = new;
            if delta < tol {
                converged = true;
                break;
            }
            flat_sweeps = if delta >= last_delta {
                flat_sweeps + 1
            } else {
                0
            };
            last_delta = delta;
            let v_max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            if self.gamma >= 1.0 && flat_sweeps >= 1000 && v_max > 1e3 * r_max {
                return Err(MdpError::Diverged(format!(
                    "value iteration diverges: after {sweep} sweeps the values still change by \
                     {delta:.3e} per sweep and reach {v_max:.3e}; with gamma = 1 some policy \
                     collects reward forever without terminating (use gamma < 1 or make every \
                     loop end in a terminal state)"
                )));
            }
        }
        if !converged {
            return Err(MdpError::Diverged(format!(
                "value iteration did not converge within {max_sweeps} sweeps (last change \
                 {last_delta:.3e}, tolerance {tol:e})"
            )));
        }
        let q = self.q_from_v(&v);
        let policy = Self::greedy(&q);
        Ok(Solution {
            v,
            q,
            policy,
            iterations: sweeps,
        })
    }

    /// Policy iteration (Howard): exact evaluation, then greedy improvement, until the policy
    /// is stable. An action changes only if it improves on the current one by more than
    /// `1e-12` (relative), which rules out cycling between equally good policies.
    pub fn policy_iteration(&self, max_iterations: usize) -> Result<Solution, MdpError> {
        let mut policy = vec![0usize; self.n_states()];
        let mut iterations = 0;
        loop {
            iterations += 1;
            let v = self.evaluate_exact(&self.deterministic(&policy))?;
            let q = self.q_from_v(&v);
            let mut stable = true;
            for s in 0..self.n_states() {
                let best = Self::greedy(&q[s..s + 1])[0];
                let cur = q[s][policy[s]];
                if q[s][best] > cur + 1e-12 * (1.0 + cur.abs()) {
                    policy[s] = best;
                    stable = false;
                }
            }
            if stable || iterations >= max_iterations {
                return Ok(Solution {
                    v,
                    q,
                    policy,
                    iterations,
                });
            }
        }
    }

    /// States reachable from the start distribution with positive probability under `policy`.
    pub fn reachable(&self, policy: &[usize]) -> Vec<bool> {
        let mut seen = vec![false; self.n_states()];
        let mut stack: Vec<usize> = (0..self.n_states())
            .filter(|&s| self.initial[s] > 0.0)
            .collect();
        while let Some(s) = stack.pop() {
            if seen[s] {
                continue;
            }
            seen[s] = true;
            for t in &self.p[s][policy[s]] {
                if t.prob > 0.0 && !t.terminated && !seen[t.next_state] {
                    stack.push(t.next_state);
                }
            }
        }
        seen
    }
}

/// Solves `A x = b` in place (x is left in `b`) by Gaussian elimination with partial pivoting.
/// Written here because the toolkit needs only this one dense solve, and a linear-algebra
/// crate would add far more build time than these thirty lines.
fn solve_linear(a: &mut [f64], b: &mut [f64], n: usize) -> Result<(), MdpError> {
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap_or(col);
        if a[pivot * n + col].abs() < 1e-12 {
            return Err(MdpError::Singular(format!(
                "state {col} is in a set of states that the policy never leaves and that \
                 never terminates, so with gamma = 1 its value is unbounded; use gamma < 1"
            )));
        }
        if pivot != col {
            for k in 0..n {
                a.swap(col * n + k, pivot * n + k);
            }
            b.swap(col, pivot);
        }
        let d = a[col * n + col];
        for row in col + 1..n {
            let f = a[row * n + col] / d;
            if f == 0.0 {
                continue;
            }
            for k in col..n {
                a[row * n + k] -= f * a[col * n + k];
            }
            b[row] -= f * b[col];
        }
    }
    for row in (0..n).rev() {
        let mut s = b[row];
        for k in row + 1..n {
            s -= a[row * n + k] * b[k];
        }
        b[row] = s / a[row * n + row];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(prob: f64, next_state: usize, reward: f64, terminated: bool) -> Transition {
        Transition {
            prob,
            next_state,
            reward,
            terminated,
        }
    }

    /// V* and Q* of value iteration on FrozenLake satisfy the Bellman optimality equations to
    /// 1e-12 with a tight tolerance; a perturbed V does not.
    #[test]
    fn value_iteration_satisfies_the_bellman_equations() {
        let env = crate::make_discrete("FrozenLake-v1", &serde_json::Map::new()).unwrap();
        let mdp = TabularMdp::from_env(&env, 0.99).unwrap();
        let sol = mdp.value_iteration(1e-14, 10_000_000).unwrap();
        let (rv, rq) = mdp.bellman_residuals(&sol.v, &sol.q);
        assert!(rv < 1e-12 && rq < 1e-12, "{rv} {rq}");
        let mut v = sol.v.clone();
        v[0] += 1e-3;
        assert!(mdp.bellman_residuals(&v, &sol.q).0 > 1e-4);
    }

    #[test]
    fn self_loop_value_is_geometric_series() {
        // V = 1 + 0.9 V  =>  V = 10.
        let mdp = TabularMdp::new(vec![vec![vec![t(1.0, 0, 1.0, false)]]], 0.9, None).unwrap();
        let pi = mdp.uniform_policy();
        assert!((mdp.evaluate_exact(&pi).unwrap()[0] - 10.0).abs() < 1e-12);
        let (v, _) = mdp.evaluate_iterative(&pi, 1e-12, 10_000).unwrap();
        assert!((v[0] - 10.0).abs() < 1e-9);
    }

    #[test]
    fn two_state_choice_solved_by_hand() {
        // s0: a0 stays (r 0), a1 moves to s1 (r 0); s1: both actions stay with r 1.
        // V*(s1) = 1 / (1 - 0.9) = 10, V*(s0) = 0.9 * 10 = 9, pi*(s0) = a1.
        let p = vec![
            vec![vec![t(1.0, 0, 0.0, false)], vec![t(1.0, 1, 0.0, false)]],
            vec![vec![t(1.0, 1, 1.0, false)], vec![t(1.0, 1, 1.0, false)]],
        ];
        let mdp = TabularMdp::new(p, 0.9, None).unwrap();
        let vi = mdp.value_iteration(1e-13, 100_000).unwrap();
        let pi = mdp.policy_iteration(100).unwrap();
        for sol in [&vi, &pi] {
            assert!((sol.v[0] - 9.0).abs() < 1e-9, "{:?}", sol.v);
            assert!((sol.v[1] - 10.0).abs() < 1e-9);
            assert_eq!(sol.policy[0], 1);
            assert!((sol.q[0][0] - 8.1).abs() < 1e-9);
        }
    }

    #[test]
    fn stochastic_policy_evaluation_matches_closed_form() {
        // Two states, one action. s0 -> s0 w.p. 0.5 (r 2), -> s1 w.p. 0.5 (r 0);
        // s1 -> terminal w.p. 1 with r 4. V(s1) = 4; V(s0) = 1 + 0.5 g V(s0) + 0.5 g V(s1)
        // => V(s0) = (1 + 2 g) / (1 - 0.5 g).
        let g = 0.8;
        let p = vec![
            vec![vec![t(0.5, 0, 2.0, false), t(0.5, 1, 0.0, false)]],
            vec![vec![t(1.0, 1, 4.0, true)]],
        ];
        let mdp = TabularMdp::new(p, g, None).unwrap();
        let v = mdp.evaluate_exact(&mdp.uniform_policy()).unwrap();
        assert!((v[1] - 4.0).abs() < 1e-12);
        assert!((v[0] - (1.0 + 2.0 * g) / (1.0 - 0.5 * g)).abs() < 1e-12);
    }

    #[test]
    fn malformed_models_are_rejected_with_names() {
        let bad_sum = TabularMdp::new(vec![vec![vec![t(0.5, 0, 0.0, false)]]], 0.9, None);
        assert!(bad_sum.unwrap_err().to_string().contains("P[0][0]"));
        let bad_state = TabularMdp::new(vec![vec![vec![t(1.0, 3, 0.0, false)]]], 0.9, None);
        assert!(bad_state
            .unwrap_err()
            .to_string()
            .contains("leads to state 3"));
        let bad_gamma = TabularMdp::new(vec![vec![vec![t(1.0, 0, 0.0, false)]]], -0.1, None);
        assert!(bad_gamma.unwrap_err().to_string().contains("gamma"));
        let loop1 = TabularMdp::new(vec![vec![vec![t(1.0, 0, 1.0, false)]]], 1.0, None).unwrap();
        assert!(matches!(
            loop1.evaluate_exact(&loop1.uniform_policy()),
            Err(MdpError::Singular(_))
        ));
    }

    #[test]
    fn json_layouts_agree() {
        let gym = serde_json::json!({"gamma": 0.9, "P": [
            [[[1.0, 0, 0.0, false]], [[1.0, 1, 0.0, false]]],
            [[[1.0, 1, 1.0, false]], [[1.0, 1, 1.0, false]]]
        ]});
        let matrix = serde_json::json!({"gamma": 0.9,
            "transition": [[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]],
            "reward": [[0.0, 0.0], [1.0, 1.0]]});
        let a = TabularMdp::from_json(&gym, "a.json")
            .unwrap()
            .value_iteration(1e-12, 100000)
            .unwrap();
        let b = TabularMdp::from_json(&matrix, "b.json")
            .unwrap()
            .value_iteration(1e-12, 100000)
            .unwrap();
        assert!((a.v[0] - b.v[0]).abs() < 1e-9 && (a.v[0] - 9.0).abs() < 1e-9);
        let e = TabularMdp::from_json(
            &serde_json::json!({"gamma": 0.9, "P": [[[[0.7, 0, 0.0, false]]]]}),
            "c.json",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("c.json") && e.contains("sum to 0.7"), "{e}");
        let e = TabularMdp::from_json(&serde_json::json!({"P": []}), "d.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gamma"), "{e}");
    }
}
