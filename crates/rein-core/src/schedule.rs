//! Schedules: values that change with training progress (exploration rates, learning rates,
//! clip ranges). Every annealed hyperparameter of rein is a [`Schedule`].
//!
//! In settings files a schedule is a number (constant), rl-baselines3-zoo's string `"lin_X"`
//! (from X linearly to 0 over training), or a table with a `kind`:
//! `{kind = "linear", start, end, fraction}`, `{kind = "exponential_per_episode", start, end,
//! decay}`, `{kind = "constant", value}`, `{kind = "linear_to_zero", start}`.

use serde::{Deserialize, Serialize};

/// A value as a function of the training step.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "ScheduleRepr")]
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
    /// `start * progress_remaining`, `progress_remaining = 1 - min(step / total, 1)`: SB3's
    /// linear schedule of learning rates and clip ranges (rl-baselines3-zoo's `lin_<start>`).
    LinearToZero {
        /// Value at step 0.
        start: f64,
    },
}

/// The tagged (table) form of a schedule.
#[derive(Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Tagged {
    Constant { value: f64 },
    Linear { start: f64, end: f64, fraction: f64 },
    ExponentialPerEpisode { start: f64, end: f64, decay: f64 },
    LinearToZero { start: f64 },
}

/// Every form a schedule may take in a settings file.
#[derive(Deserialize)]
#[serde(untagged)]
enum ScheduleRepr {
    Number(f64),
    Text(String),
    Table(Tagged),
}

impl TryFrom<ScheduleRepr> for Schedule {
    type Error = String;
    fn try_from(r: ScheduleRepr) -> Result<Self, String> {
        Ok(match r {
            ScheduleRepr::Number(value) => Schedule::Constant { value },
            ScheduleRepr::Text(t) => match t.strip_prefix("lin_").map(str::parse::<f64>) {
                Some(Ok(start)) => Schedule::LinearToZero { start },
                _ => {
                    return Err(format!(
                        "{t:?} is not a schedule: give a number, \"lin_<start>\" or a table with a kind"
                    ))
                }
            },
            ScheduleRepr::Table(Tagged::Constant { value }) => Schedule::Constant { value },
            ScheduleRepr::Table(Tagged::Linear {
                start,
                end,
                fraction,
            }) => Schedule::Linear {
                start,
                end,
                fraction,
            },
            ScheduleRepr::Table(Tagged::ExponentialPerEpisode { start, end, decay }) => {
                Schedule::ExponentialPerEpisode { start, end, decay }
            }
            ScheduleRepr::Table(Tagged::LinearToZero { start }) => {
                Schedule::LinearToZero { start }
            }
        })
    }
}

/// Constants are written as numbers and linear-to-zero schedules as `"lin_<start>"`, so that a
/// run's `config.toml` reads like the presets; the rest as tables.
impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Schedule::Constant { value } => s.serialize_f64(value),
            Schedule::LinearToZero { start } => s.serialize_str(&format!("lin_{start}")),
            Schedule::Linear {
                start,
                end,
                fraction,
            } => Tagged::Linear {
                start,
                end,
                fraction,
            }
            .serialize(s),
            Schedule::ExponentialPerEpisode { start, end, decay } => {
                Tagged::ExponentialPerEpisode { start, end, decay }.serialize(s)
            }
        }
    }
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
            Schedule::LinearToZero { start } => {
                start * (1.0 - (step as f64 / total.max(1) as f64).min(1.0))
            }
        }
    }

    /// The value at the start of training.
    pub fn initial(&self) -> f64 {
        self.value(0, 1, 0)
    }

    /// `Err` naming `name` unless every value the schedule takes is finite and positive
    /// (learning rates, clip ranges).
    pub fn check_positive(&self, name: &str) -> Result<(), String> {
        let ok = |x: f64| x.is_finite() && x > 0.0;
        let fine = match *self {
            Schedule::Constant { value } => ok(value),
            Schedule::LinearToZero { start } => ok(start),
            Schedule::Linear { start, end, .. } => ok(start) && (ok(end) || end == 0.0),
            Schedule::ExponentialPerEpisode { start, end, .. } => ok(start) && ok(end),
        };
        match fine {
            true => Ok(()),
            false => Err(format!("{name} must be positive, got {self:?}")),
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
    fn schedules_read_numbers_zoo_strings_and_tables_and_write_them_back() {
        let read = |t: &str| -> Schedule { serde_json::from_str(t).unwrap() };
        assert_eq!(read("0.5"), Schedule::Constant { value: 0.5 });
        assert_eq!(
            read("\"lin_0.001\""),
            Schedule::LinearToZero { start: 0.001 }
        );
        assert_eq!(
            read(r#"{"kind": "linear", "start": 1, "end": 0.1, "fraction": 0.5}"#),
            Schedule::Linear {
                start: 1.0,
                end: 0.1,
                fraction: 0.5
            }
        );
        assert!(serde_json::from_str::<Schedule>("\"fast\"").is_err());
        assert!(serde_json::from_str::<Schedule>(r#"{"kind": "linear", "start": 1}"#).is_err());
        for s in [
            Schedule::Constant { value: 0.25 },
            Schedule::LinearToZero { start: 3e-4 },
            Schedule::ExponentialPerEpisode {
                start: 1.0,
                end: 0.01,
                decay: 0.99,
            },
        ] {
            assert_eq!(read(&serde_json::to_string(&s).unwrap()), s);
        }
        // SB3's lin_ schedule: start * progress_remaining, 0 from the end of training on.
        let lin = Schedule::LinearToZero { start: 0.001 };
        assert_eq!(lin.value(0, 100, 0), 0.001);
        assert_eq!(lin.value(25, 100, 0), 0.001 * (1.0 - 0.25));
        assert_eq!(lin.value(150, 100, 0), 0.0);
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
