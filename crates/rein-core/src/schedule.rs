//! Schedules: values that change with training progress (exploration rates, learning rates).

use serde::{Deserialize, Serialize};

/// A value as a function of the training step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Always `value`.
    Constant {
        /// The value.
        value: f64,
    },
    /// From `start` to `end` linearly over the first `fraction` of `total` steps, then `end`
    /// (SB3's `LinearSchedule` for epsilon-greedy exploration).
    Linear {
        /// Value at step 0.
        start: f64,
        /// Value after the decay.
        end: f64,
        /// Fraction of training over which the value decays.
        fraction: f64,
    },
    /// `max(end, start * decay^episode)`, per episode (the tabular-RL textbook schedule).
    ExponentialPerEpisode {
        /// Value at episode 0.
        start: f64,
        /// Floor.
        end: f64,
        /// Multiplicative decay per episode.
        decay: f64,
    },
}

impl Schedule {
    /// The value at `step` of `total` steps, in episode `episode`.
    pub fn value(&self, step: u64, total: u64, episode: u64) -> f64 {
        match *self {
            Schedule::Constant { value } => value,
            Schedule::Linear {
                start,
                end,
                fraction,
            } => {
                let progress = if total == 0 || fraction <= 0.0 {
                    1.0
                } else {
                    (step as f64 / (fraction * total as f64)).min(1.0)
                };
                start + progress * (end - start)
            }
            Schedule::ExponentialPerEpisode { start, end, decay } => {
                (start * decay.powf(episode as f64)).max(end)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_schedule_reaches_end_at_fraction() {
        let s = Schedule::Linear {
            start: 1.0,
            end: 0.1,
            fraction: 0.5,
        };
        assert_eq!(s.value(0, 100, 0), 1.0);
        assert!((s.value(25, 100, 0) - 0.55).abs() < 1e-12);
        assert!((s.value(50, 100, 0) - 0.1).abs() < 1e-12);
        assert!((s.value(99, 100, 0) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn exponential_schedule_has_a_floor() {
        let s = Schedule::ExponentialPerEpisode {
            start: 1.0,
            end: 0.05,
            decay: 0.5,
        };
        assert_eq!(s.value(0, 0, 1), 0.5);
        assert_eq!(s.value(0, 0, 10), 0.05);
    }
}
