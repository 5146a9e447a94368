//! Shared pieces of the tabular agents: the Q-table, epsilon-greedy action selection, the
//! hyperparameters, progress reports and greedy evaluation.

use rand::Rng;
use rein_core::schedule::Schedule;
use rein_core::{Env, EnvError, ReinRng, Space, Value};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Hyperparameters of the tabular TD-control agents (Q-learning, SARSA, expected SARSA).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabularConfig {
    /// Number of training episodes.
    pub episodes: u64,
    /// Step size alpha of the TD update.
    pub learning_rate: f64,
    /// Discount factor gamma.
    pub gamma: f64,
    /// Exploration rate of the epsilon-greedy behaviour policy, as a function of progress.
    pub epsilon: Schedule,
    /// Seed of the environment and of the agent's generator.
    pub seed: u64,
    /// Episodes of greedy evaluation after training.
    pub eval_episodes: u64,
    /// A progress report (and metrics row) every this many episodes.
    pub log_interval: u64,
}

impl Default for TabularConfig {
    fn default() -> Self {
        Self {
            episodes: 10_000,
            learning_rate: 0.1,
            gamma: 0.99,
            epsilon: Schedule::Linear {
                start: 1.0,
                end: 0.05,
                fraction: 0.5,
            },
            seed: 0,
            eval_episodes: 1000,
            log_interval: 100,
        }
    }
}

impl TabularConfig {
    /// Hyperparameters tuned for a built-in environment (the defaults for any other).
    pub fn preset(env_id: &str) -> Self {
        let base = Self::default();
        match env_id {
            "FrozenLake-v1" => Self {
                episodes: 60_000,
                learning_rate: 0.02,
                epsilon: Schedule::Linear {
                    start: 1.0,
                    end: 0.05,
                    fraction: 0.6,
                },
                eval_episodes: 10_000,
                ..base
            },
            "FrozenLake8x8-v1" => Self {
                episodes: 150_000,
                learning_rate: 0.02,
                epsilon: Schedule::Linear {
                    start: 1.0,
                    end: 0.05,
                    fraction: 0.6,
                },
                eval_episodes: 10_000,
                ..base
            },
            "Taxi-v4" => Self {
                episodes: 10_000,
                learning_rate: 0.5,
                ..base
            },
            "CliffWalking-v1" => Self {
                episodes: 2_000,
                learning_rate: 0.5,
                eval_episodes: 10,
                ..base
            },
            "Blackjack-v1" => Self {
                episodes: 200_000,
                learning_rate: 0.01,
                gamma: 1.0,
                eval_episodes: 100_000,
                log_interval: 1000,
                ..base
            },
            _ => base,
        }
    }

    /// Checks the values, naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.episodes == 0 {
            return Err("episodes must be at least 1".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(format!(
                "learning_rate must be in (0, 1], got {}",
                self.learning_rate
            ));
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(format!("gamma must be in [0, 1], got {}", self.gamma));
        }
        if self.log_interval == 0 {
            return Err("log_interval must be at least 1".into());
        }
        Ok(())
    }
}

/// Errors of the tabular agents.
#[derive(Debug, thiserror::Error)]
pub enum TabularError {
    /// The environment does not have discrete observations and actions.
    #[error("tabular agents need Discrete observation and action spaces; {env} has observations {obs} and actions {act}")]
    NotTabular {
        /// Environment name.
        env: String,
        /// Its observation space.
        obs: String,
        /// Its action space.
        act: String,
    },
    /// A file could not be read or is not what was expected (the message names it).
    #[error("{0}")]
    File(String),
    /// An invalid hyperparameter.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The environment failed.
    #[error(transparent)]
    Env(#[from] EnvError),
}

/// State indexing for tabular methods: `Discrete` observations, or `Tuple`s of `Discrete`
/// (Blackjack) flattened in row-major order.
#[derive(Debug, Clone)]
pub struct StateIndexer {
    dims: Vec<(i64, u64)>,
}

impl StateIndexer {
    /// The indexer of `space`, if it is tabular.
    pub fn new(space: &Space) -> Option<Self> {
        match space {
            Space::Discrete { n, start } => Some(Self {
                dims: vec![(*start, *n)],
            }),
            Space::Tuple { spaces } => spaces
                .iter()
                .map(|s| match s {
                    Space::Discrete { n, start } => Some((*start, *n)),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(|dims| Self { dims }),
            _ => None,
        }
    }

    /// Number of states.
    pub fn len(&self) -> usize {
        self.dims.iter().map(|d| d.1 as usize).product()
    }

    /// Whether there are no states.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index of an observation.
    pub fn index(&self, obs: &Value) -> Result<usize, EnvError> {
        let parts: Vec<i64> = match obs {
            Value::Discrete(i) => vec![*i],
            Value::Tuple(v) => v
                .iter()
                .map(|x| x.as_discrete().unwrap_or(i64::MIN))
                .collect(),
            _ => vec![],
        };
        if parts.len() != self.dims.len() {
            return Err(EnvError::Invalid(format!(
                "observation {obs} is not a tabular state"
            )));
        }
        let mut idx = 0usize;
        for (&x, &(start, n)) in parts.iter().zip(&self.dims) {
            let k = x - start;
            if k < 0 || k as u64 >= n {
                return Err(EnvError::Invalid(format!(
                    "observation {obs} is outside the state space"
                )));
            }
            idx = idx * n as usize + k as usize;
        }
        Ok(idx)
    }
}

/// Action values Q(s, a) in a dense row-major table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QTable {
    /// Number of states.
    pub n_states: usize,
    /// Number of actions.
    pub n_actions: usize,
    /// `q[s * n_actions + a]`.
    pub q: Vec<f64>,
}

impl QTable {
    /// Reads a Q-table written as JSON (a tabular run's `q_table.json`); errors name the file.
    pub fn read(path: &std::path::Path) -> Result<Self, TabularError> {
        let bad = |m: String| TabularError::File(format!("{}: {m}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| bad(format!("not a Q-table: {e}")))
    }

    /// A zero-initialised table.
    pub fn zeros(n_states: usize, n_actions: usize) -> Self {
        Self {
            n_states,
            n_actions,
            q: vec![0.0; n_states * n_actions],
        }
    }

    /// The action values of state `s`.
    pub fn row(&self, s: usize) -> &[f64] {
        &self.q[s * self.n_actions..(s + 1) * self.n_actions]
    }

    /// Mutable Q(s, a).
    pub fn at(&mut self, s: usize, a: usize) -> &mut f64 {
        &mut self.q[s * self.n_actions + a]
    }

    /// max_a Q(s, a).
    pub fn max(&self, s: usize) -> f64 {
        self.row(s)
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// The lowest-index greedy action (deterministic, for evaluation).
    pub fn greedy(&self, s: usize) -> usize {
        let row = self.row(s);
        let best = self.max(s);
        row.iter().position(|&x| x == best).unwrap_or(0)
    }

    /// A greedy action with ties broken uniformly at random (for learning, so that a
    /// zero-initialised table does not always try action 0 first).
    pub fn greedy_random_tie(&self, s: usize, rng: &mut ReinRng) -> usize {
        let row = self.row(s);
        let best = self.max(s);
        let ties = row.iter().filter(|&&x| x == best).count();
        let mut k = rng.random_range(0..ties);
        for (a, &x) in row.iter().enumerate() {
            if x == best {
                if k == 0 {
                    return a;
                }
                k -= 1;
            }
        }
        0
    }

    /// Epsilon-greedy: a uniformly random action with probability epsilon, else greedy.
    pub fn epsilon_greedy(&self, s: usize, epsilon: f64, rng: &mut ReinRng) -> usize {
        if rng.random::<f64>() < epsilon {
            rng.random_range(0..self.n_actions)
        } else {
            self.greedy_random_tie(s, rng)
        }
    }

    /// The greedy policy of the whole table.
    pub fn policy(&self) -> Vec<usize> {
        (0..self.n_states).map(|s| self.greedy(s)).collect()
    }
}

/// Progress of a tabular training run, reported every `log_interval` episodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TabularLog {
    /// Episodes finished.
    pub episode: u64,
    /// Environment steps taken.
    pub global_step: u64,
    /// Current exploration rate.
    pub epsilon: f64,
    /// Mean return of the last (up to) 100 episodes.
    pub return_mean: f64,
    /// Mean length of the last (up to) 100 episodes.
    pub length_mean: f64,
    /// Mean absolute TD error over the last interval.
    pub td_error_abs_mean: f64,
}

impl TabularLog {
    /// Column names of the metrics CSV.
    pub const COLUMNS: [&'static str; 6] = [
        "episode",
        "global_step",
        "epsilon",
        "return_mean_100",
        "length_mean_100",
        "td_error_abs_mean",
    ];

    /// The values in the order of [`TabularLog::COLUMNS`].
    pub fn row(&self) -> [f64; 6] {
        [
            self.episode as f64,
            self.global_step as f64,
            self.epsilon,
            self.return_mean,
            self.length_mean,
            self.td_error_abs_mean,
        ]
    }
}

/// Bookkeeping of returns, lengths and TD errors for the progress reports.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    recent: VecDeque<(f64, u64)>,
    td_sum: f64,
    td_count: u64,
    pub(crate) global_step: u64,
}

impl Tracker {
    pub(crate) fn td(&mut self, err: f64) {
        self.td_sum += err.abs();
        self.td_count += 1;
        self.global_step += 1;
    }

    pub(crate) fn episode(&mut self, ret: f64, len: u64) {
        if self.recent.len() == 100 {
            self.recent.pop_front();
        }
        self.recent.push_back((ret, len));
    }

    pub(crate) fn report(&mut self, episode: u64, epsilon: f64) -> TabularLog {
        let n = self.recent.len().max(1) as f64;
        let log = TabularLog {
            episode,
            global_step: self.global_step,
            epsilon,
            return_mean: self.recent.iter().map(|r| r.0).sum::<f64>() / n,
            length_mean: self.recent.iter().map(|r| r.1 as f64).sum::<f64>() / n,
            td_error_abs_mean: self.td_sum / self.td_count.max(1) as f64,
        };
        self.td_sum = 0.0;
        self.td_count = 0;
        log
    }
}

/// Checks that `env` is tabular and returns its state indexer and action count.
pub(crate) fn tabular_spaces(env: &dyn Env) -> Result<(StateIndexer, usize), TabularError> {
    let not = || TabularError::NotTabular {
        env: env.name(),
        obs: env.observation_space().to_string(),
        act: env.action_space().to_string(),
    };
    let idx = StateIndexer::new(env.observation_space()).ok_or_else(not)?;
    let n_a = match env.action_space() {
        Space::Discrete { n, start: 0 } => *n as usize,
        _ => return Err(not()),
    };
    Ok((idx, n_a))
}

/// Result of a greedy evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalStats {
    /// Episodes run.
    pub episodes: u64,
    /// Mean undiscounted return.
    pub mean_return: f64,
    /// Standard deviation of the return.
    pub std_return: f64,
    /// Fraction of episodes that reached the goal, as [`SuccessRule`] tells it.
    pub success_rate: f64,
    /// Mean episode length.
    pub mean_length: f64,
}

/// What counts as reaching the goal in a toy-text episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuccessRule {
    /// The episode terminated on a positive reward: FrozenLake's goal (its holes terminate
    /// with 0), a won Blackjack hand.
    PositiveFinalReward,
    /// The episode terminated at all (not truncated): CliffWalking, whose only terminal state
    /// is the goal (every step, the last included, costs -1), and Taxi, which terminates only
    /// on a correct drop-off.
    Terminated,
}

impl SuccessRule {
    /// The rule for a registered env id.
    pub fn for_env(id: &str) -> Self {
        if id.starts_with("CliffWalking") || id.starts_with("Taxi") {
            SuccessRule::Terminated
        } else {
            SuccessRule::PositiveFinalReward
        }
    }
}

/// Runs `episodes` episodes of the deterministic policy `policy[s]` (episode k reset with
/// `seed + k`) and summarises the returns; `success` says which episodes reached the goal.
/// Episodes that never end are cut at 100,000 steps.
pub fn evaluate_policy(
    env: &mut dyn Env,
    policy: &[usize],
    episodes: u64,
    seed: u64,
    success: SuccessRule,
) -> Result<EvalStats, TabularError> {
    let (idx, _) = tabular_spaces(env)?;
    let mut returns = Vec::with_capacity(episodes as usize);
    let mut lengths = 0u64;
    let mut successes = 0u64;
    for k in 0..episodes {
        let (mut obs, _) = env.reset(Some(seed.wrapping_add(k)));
        let mut ret = 0.0;
        for _ in 0..100_000 {
            let s = idx.index(&obs)?;
            let step = env.step(&Value::Discrete(policy[s] as i64))?;
            ret += step.reward;
            lengths += 1;
            obs = step.obs;
            if step.terminated {
                let reached = match success {
                    SuccessRule::PositiveFinalReward => step.reward > 0.0,
                    SuccessRule::Terminated => true,
                };
                successes += u64::from(reached);
            }
            if step.terminated || step.truncated {
                break;
            }
        }
        returns.push(ret);
    }
    let n = episodes.max(1) as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
    Ok(EvalStats {
        episodes,
        mean_return: mean,
        std_return: var.sqrt(),
        success_rate: successes as f64 / n,
        mean_length: lengths as f64 / n,
    })
}

/// The tabular algorithms of `rein train` (and Python's `rein.train`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TabularAlgo {
    /// Q-learning (off-policy TD control).
    QLearning,
    /// SARSA (on-policy TD control).
    Sarsa,
    /// Expected SARSA.
    ExpectedSarsa,
}

impl TabularAlgo {
    /// The algorithm named `name` (`qlearning`, `sarsa`, `expected_sarsa`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "qlearning" => Some(Self::QLearning),
            "sarsa" => Some(Self::Sarsa),
            "expected_sarsa" => Some(Self::ExpectedSarsa),
            _ => None,
        }
    }

    /// Its name in run directories and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::QLearning => "qlearning",
            Self::Sarsa => "sarsa",
            Self::ExpectedSarsa => "expected_sarsa",
        }
    }
}

/// Trains `algo` on `env` (registered as `env_id`) into the run directory `dir`, the part of
/// a tabular run that `rein train` and Python's `rein.train` share: `metrics.csv` (one row
/// per log interval, each also given to `on_log`), `learning_curve.png` and `q_table.json`;
/// then the greedy policy's evaluation over `eval_episodes` episodes seeded
/// `1_000_000 + seed`. Tabular runs train in seconds and keep no checkpoint.
pub fn run_tabular(
    algo: TabularAlgo,
    env_id: &str,
    env: &mut dyn Env,
    config: &TabularConfig,
    dir: &std::path::Path,
    on_log: &mut dyn FnMut(&TabularLog),
) -> Result<(QTable, EvalStats), TabularError> {
    let io = |what: &str, e: std::io::Error| {
        TabularError::File(format!("{}: {e}", dir.join(what).display()))
    };
    let mut csv =
        rein_core::metrics::CsvLogger::create(&dir.join("metrics.csv"), &TabularLog::COLUMNS)
            .map_err(|e| io("metrics.csv", e))?;
    let mut io_error = None;
    let mut log = |l: &TabularLog| {
        if let Err(e) = csv.log(&l.row()) {
            io_error.get_or_insert(e);
        }
        on_log(l);
    };
    let q = match algo {
        TabularAlgo::QLearning => crate::train_q_learning(env, config, &mut log)?,
        TabularAlgo::Sarsa => crate::train_sarsa(env, config, crate::SarsaTarget::Sarsa, &mut log)?,
        TabularAlgo::ExpectedSarsa => {
            crate::train_sarsa(env, config, crate::SarsaTarget::Expected, &mut log)?
        }
    };
    if let Some(e) = io_error {
        return Err(io("metrics.csv", e));
    }
    drop(csv);
    rein_train::plot::csv_curve(
        dir,
        "learning_curve.png",
        ("episode", "return_mean_100"),
        ("episodes", "episodic return"),
    )
    .map_err(|e| io("learning_curve.png", e))?;
    let json = serde_json::to_string(&q).map_err(|e| TabularError::File(e.to_string()))?;
    rein_core::metrics::write_atomic(&dir.join("q_table.json"), json.as_bytes())
        .map_err(|e| io("q_table.json", e))?;
    let stats = evaluate_policy(
        env,
        &q.policy(),
        config.eval_episodes,
        1_000_000 + config.seed,
        SuccessRule::for_env(env_id),
    )?;
    Ok((q, stats))
}
