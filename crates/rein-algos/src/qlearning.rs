//! Q-learning (Watkins 1989; Sutton & Barto, section 6.5): off-policy TD control.
//!
//! Behaviour: epsilon-greedy on Q. Update after each step:
//! `Q(s,a) <- Q(s,a) + alpha [r + gamma (1 - terminated) max_a' Q(s',a') - Q(s,a)]`.
//! A truncated (time-limit) step still bootstraps from s'; only termination stops it.

use crate::tabular::{tabular_spaces, QTable, TabularConfig, TabularError, TabularLog, Tracker};
use rein_core::{rng_from_seed, Env, Value};

/// Trains a Q-table on `env` and calls `on_log` every `config.log_interval` episodes.
pub fn train_q_learning(
    env: &mut dyn Env,
    config: &TabularConfig,
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
        let (mut ret, mut len) = (0.0, 0u64);
        loop {
            let a = q.epsilon_greedy(s, epsilon, &mut rng);
            let step = env.step(&Value::Discrete(a as i64))?;
            let s2 = states.index(&step.obs)?;
            let bootstrap = if step.terminated { 0.0 } else { q.max(s2) };
            let td = step.reward + config.gamma * bootstrap - q.row(s)[a];
            *q.at(s, a) += config.learning_rate * td;
            tracker.td(td);
            ret += step.reward;
            len += 1;
            s = s2;
            if step.terminated || step.truncated {
                break;
            }
        }
        tracker.episode(ret, len);
        if (episode + 1) % config.log_interval == 0 || episode + 1 == config.episodes {
            on_log(&tracker.report(episode + 1, epsilon));
        }
    }
    Ok(q)
}
