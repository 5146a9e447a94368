//! SARSA (Rummery & Niranjan 1994; Sutton & Barto, section 6.4) and expected SARSA
//! (section 6.6): on-policy TD control with an epsilon-greedy policy.
//!
//! SARSA: `Q(s,a) <- Q(s,a) + alpha [r + gamma Q(s',a') - Q(s,a)]` with a' the action
//! actually taken next. Expected SARSA replaces Q(s',a') by its expectation under the
//! epsilon-greedy policy, `sum_a' pi(a'|s') Q(s',a')`, which removes the variance of a'.
//! Terminated steps do not bootstrap; truncated ones do.

use crate::tabular::{tabular_spaces, QTable, TabularConfig, TabularError, TabularLog, Tracker};
use rein_core::{rng_from_seed, Env, Value};

/// Which on-policy target to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SarsaTarget {
    /// Sample target Q(s', a').
    Sarsa,
    /// Expected target under the epsilon-greedy policy.
    Expected,
}

/// Expected value of Q(s', .) under the epsilon-greedy policy (greedy ties share the
/// `1 - epsilon` mass, matching [`QTable::epsilon_greedy`]).
pub fn expected_q(q: &QTable, s: usize, epsilon: f64) -> f64 {
    let row = q.row(s);
    let best = q.max(s);
    let ties = row.iter().filter(|&&x| x == best).count() as f64;
    let n = q.n_actions as f64;
    row.iter()
        .map(|&x| {
            let greedy = if x == best {
                (1.0 - epsilon) / ties
            } else {
                0.0
            };
            (epsilon / n + greedy) * x
        })
        .sum()
}

/// Trains a Q-table with SARSA or expected SARSA; `on_log` is called every
/// `config.log_interval` episodes.
pub fn train_sarsa(
    env: &mut dyn Env,
    config: &TabularConfig,
    target: SarsaTarget,
    on_log: &mut dyn FnMut(&TabularLog),
) -> Result<QTable, TabularError> {
    config.validate().map_err(TabularError::Config)?;
    let (states, n_actions) = tabular_spaces(env)?;
    let mut q = QTable::zeros(states.len(), n_actions);
    let mut rng = rng_from_seed(config.seed);
    let mut tracker = Tracker::default();

    for episode in 0..config.episodes {
        let epsilon = config.epsilon.value(episode, config.episodes, episode);
        let seed = (episode == 0).then_some(config.seed);
        let (obs, _) = env.reset(seed);
        let mut s = states.index(&obs)?;
        let mut a = q.epsilon_greedy(s, epsilon, &mut rng);
        let (mut ret, mut len) = (0.0, 0u64);
        loop {
            let step = env.step(&Value::Discrete(a as i64))?;
            let s2 = states.index(&step.obs)?;
            let a2 = q.epsilon_greedy(s2, epsilon, &mut rng);
            let bootstrap = match (step.terminated, target) {
                (true, _) => 0.0,
                (false, SarsaTarget::Sarsa) => q.row(s2)[a2],
                (false, SarsaTarget::Expected) => expected_q(&q, s2, epsilon),
            };
            let td = step.reward + config.gamma * bootstrap - q.row(s)[a];
            *q.at(s, a) += config.learning_rate * td;
            tracker.td(td);
            ret += step.reward;
            len += 1;
            if step.terminated || step.truncated {
                break;
            }
            s = s2;
            a = a2;
        }
        tracker.episode(ret, len);
        if (episode + 1) % config.log_interval == 0 || episode + 1 == config.episodes {
            on_log(&tracker.report(episode + 1, epsilon));
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_q_weights_greedy_and_random_actions() {
        let mut q = QTable::zeros(1, 4);
        q.q = vec![1.0, 3.0, 2.0, 0.0];
        // eps = 0.2: every action 0.05, greedy action 1 gets +0.8.
        let want = 0.05 * (1.0 + 3.0 + 2.0 + 0.0) + 0.8 * 3.0;
        assert!((expected_q(&q, 0, 0.2) - want).abs() < 1e-12);
        assert_eq!(expected_q(&q, 0, 0.0), 3.0);
    }
}
