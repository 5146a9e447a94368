//! `rein train ALGO --env ID`: trains an agent, writing a run directory with the effective
//! configuration (`config.toml`), one metrics row per log interval (`metrics.csv`), the learned
//! model and the final evaluation (`eval.json`).

use crate::options::{kv_map, parse_kv, set_path};
use crate::run_dir;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rein_algos::tabular::StateIndexer;
use rein_algos::{
    evaluate_policy, train_q_learning, train_sarsa, QTable, SarsaTarget, TabularConfig, TabularLog,
};
use rein_core::metrics::{write_atomic, CsvLogger};
use rein_envs::mdp::TabularMdp;
use serde_json::json;
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Algo {
    /// Tabular Q-learning (off-policy TD control).
    Qlearning,
    /// Tabular SARSA (on-policy TD control).
    Sarsa,
    /// Tabular expected SARSA.
    ExpectedSarsa,
}

impl Algo {
    fn name(self) -> &'static str {
        match self {
            Algo::Qlearning => "qlearning",
            Algo::Sarsa => "sarsa",
            Algo::ExpectedSarsa => "expected_sarsa",
        }
    }
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein train qlearning --env Taxi-v4\n  rein train qlearning --env FrozenLake-v1 --seed 3 --set learning_rate=0.05 --set epsilon.end=0.01\n  rein train sarsa --env CliffWalking-v1 --episodes 500\n  rein train qlearning --env FrozenLake-v1 --option map_name=8x8 --config my.toml\n\nSettings (see config.toml in any run directory): episodes, learning_rate, gamma, epsilon\n(a schedule: {kind = \"linear\", start, end, fraction}, {kind = \"constant\", value} or\n{kind = \"exponential_per_episode\", start, end, decay}), seed, eval_episodes, log_interval."
)]
pub struct TrainArgs {
    /// Algorithm.
    #[arg(value_enum)]
    algo: Algo,
    /// Gymnasium id of the environment.
    #[arg(long)]
    env: String,
    /// Seed (environment and agent).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of training episodes (same as --set episodes=N).
    #[arg(long)]
    episodes: Option<u64>,
    /// A TOML file of settings, applied over the preset for the env.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one setting, e.g. --set learning_rate=0.2 or --set epsilon.end=0.01; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Environment option key=value (Gymnasium's make kwargs), repeatable.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// Directory that holds the run directories.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// The preset for the env, then the config file, then --set, then --seed/--episodes.
fn effective_config(a: &TrainArgs) -> Result<TabularConfig> {
    let mut cfg = serde_json::to_value(TabularConfig::preset(&a.env))?;
    if let Some(path) = &a.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        let file = serde_json::to_value(table)?;
        for (k, v) in file.as_object().into_iter().flatten() {
            set_path(&mut cfg, k, v.clone()).with_context(|| format!("in {}", path.display()))?;
        }
    }
    for item in &a.set {
        let (k, v) = parse_kv(item)?;
        set_path(&mut cfg, &k, v).with_context(|| format!("--set {item}"))?;
    }
    if let Some(seed) = a.seed {
        cfg["seed"] = json!(seed);
    }
    if let Some(n) = a.episodes {
        cfg["episodes"] = json!(n);
    }
    let cfg: TabularConfig = serde_json::from_value(cfg).context("invalid settings")?;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    Ok(cfg)
}

pub fn run(a: TrainArgs) -> Result<()> {
    let kwargs = kv_map(&a.options)?;
    let mut env = rein_envs::make_with(&a.env, &kwargs)?;
    let cfg = effective_config(&a)?;
    if StateIndexer::new(env.observation_space()).is_none() {
        bail!(
            "{} is a tabular algorithm: it needs Discrete observations, and {} has {}",
            a.algo.name(),
            a.env,
            env.observation_space()
        );
    }
    let dir = run_dir::create(&a.runs_dir, &a.env, a.algo.name(), cfg.seed)?;
    let effective =
        json!({"algo": a.algo.name(), "env": a.env, "env_options": kwargs, "config": cfg});
    let toml_text = toml::to_string_pretty(&effective).context("serialising config.toml")?;
    write_atomic(&dir.join("config.toml"), toml_text.as_bytes())?;

    let mut csv = CsvLogger::create(&dir.join("metrics.csv"), &TabularLog::COLUMNS)?;
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(cfg.episodes)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} episodes ({per_sec}) {msg}",
        )
        .expect("valid template"),
    );
    let mut io_error = None;
    let mut on_log = |log: &TabularLog| {
        if let Err(e) = csv.log(&log.row()) {
            io_error.get_or_insert(e);
        }
        bar.set_position(log.episode);
        bar.set_message(format!(
            "return(100) {:.3}  eps {:.3}",
            log.return_mean, log.epsilon
        ));
    };
    let q: QTable = match a.algo {
        Algo::Qlearning => train_q_learning(env.as_mut(), &cfg, &mut on_log)?,
        Algo::Sarsa => train_sarsa(env.as_mut(), &cfg, SarsaTarget::Sarsa, &mut on_log)?,
        Algo::ExpectedSarsa => train_sarsa(env.as_mut(), &cfg, SarsaTarget::Expected, &mut on_log)?,
    };
    bar.finish_and_clear();
    if let Some(e) = io_error {
        return Err(e).context("writing metrics.csv");
    }
    write_atomic(
        &dir.join("q_table.json"),
        serde_json::to_string(&q)?.as_bytes(),
    )?;

    let policy = q.policy();
    let eval_seed = 1_000_000 + cfg.seed;
    let stats = evaluate_policy(env.as_mut(), &policy, cfg.eval_episodes, eval_seed)?;
    println!("run directory: {}", dir.display());
    println!(
        "greedy policy over {} episodes: return {:.4} +/- {:.4}, success rate {:.4}, length {:.1}",
        stats.episodes, stats.mean_return, stats.std_return, stats.success_rate, stats.mean_length
    );
    let mut eval = json!({
        "episodes": stats.episodes, "mean_return": stats.mean_return, "std_return": stats.std_return,
        "success_rate": stats.success_rate, "mean_length": stats.mean_length,
    });
    // For table-driven envs, compare with the optimal policy of value iteration.
    if let Ok(denv) = rein_envs::make_discrete(&a.env, &kwargs) {
        let mdp = TabularMdp::from_env(&denv, cfg.gamma)?;
        let sol = mdp.value_iteration(1e-10, 10_000_000);
        let opt = TabularMdp::optimal_actions(&sol.q, 1e-6);
        let reachable = mdp.reachable(&sol.policy);
        let n = reachable.iter().filter(|&&r| r).count();
        let agree = (0..mdp.n_states())
            .filter(|&s| reachable[s] && opt[s].contains(&policy[s]))
            .count();
        let best = evaluate_policy(env.as_mut(), &sol.policy, cfg.eval_episodes, eval_seed)?;
        println!(
            "value iteration (gamma {}): optimal policy return {:.4}, success rate {:.4}; \
             learned greedy action is optimal in {agree} of {n} states the optimal policy reaches",
            cfg.gamma, best.mean_return, best.success_rate
        );
        eval["optimal_mean_return"] = json!(best.mean_return);
        eval["optimal_success_rate"] = json!(best.success_rate);
        eval["optimal_action_states"] = json!(agree);
        eval["reachable_states"] = json!(n);
    }
    write_atomic(
        &dir.join("eval.json"),
        serde_json::to_string_pretty(&eval)?.as_bytes(),
    )?;
    Ok(())
}
