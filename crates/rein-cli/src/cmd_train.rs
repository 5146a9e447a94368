//! `rein train ALGO --env ID`: trains an agent, writing a run directory with the effective
//! configuration (`config.toml`), one metrics row per log interval (`metrics.csv`), the learned
//! model and the final evaluation (`eval.json`).

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rein_algos::agent::{self, Agent, RunConfig};
use rein_algos::onpolicy::EnvFactory;
use rein_algos::tabular::StateIndexer;
use rein_algos::tabular::{run_tabular, TabularAlgo};
use rein_algos::{evaluate_policy, TabularConfig};
use rein_core::metrics::write_atomic;
use rein_envs::mdp::TabularMdp;
use rein_train::settings::set_path;
use rein_train::settings::{parse_override, parse_overrides, Sources};
use rein_train::{files, RunEnd, RunOptions};
use serde_json::{json, Map, Value as Json};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Algo {
    /// Tabular Q-learning (off-policy TD control).
    Qlearning,
    /// Tabular SARSA (on-policy TD control).
    Sarsa,
    /// Tabular expected SARSA.
    ExpectedSarsa,
    /// Proximal Policy Optimization (discrete or Box actions).
    Ppo,
    /// Advantage Actor-Critic.
    A2c,
    /// REINFORCE with a learned value baseline.
    Reinforce,
    /// Deep Q-Network (discrete actions).
    Dqn,
    /// Twin Delayed DDPG (Box actions).
    Td3,
    /// Deep Deterministic Policy Gradient (Box actions).
    Ddpg,
    /// Soft Actor-Critic (Box actions).
    Sac,
}

impl Algo {
    pub fn name(self) -> &'static str {
        match self {
            Algo::Qlearning => "qlearning",
            Algo::Sarsa => "sarsa",
            Algo::ExpectedSarsa => "expected_sarsa",
            Algo::Ppo => "ppo",
            Algo::A2c => "a2c",
            Algo::Reinforce => "reinforce",
            Algo::Dqn => "dqn",
            Algo::Td3 => "td3",
            Algo::Ddpg => "ddpg",
            Algo::Sac => "sac",
        }
    }

    /// The deep agent this is, `None` for the tabular ones.
    pub fn deep(self) -> Option<agent::Algo> {
        agent::Algo::from_name(self.name())
    }
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein train qlearning --env Taxi-v4\n  rein train qlearning --env FrozenLake-v1 --seed 3 --set learning_rate=0.05 --set epsilon.end=0.01\n  rein train sarsa --env CliffWalking-v1 --episodes 500\n  rein train ppo --env CartPole-v1 --seed 1\n  rein train ppo --env Pendulum-v1 --total-timesteps 50000 --config my.toml\n  rein train --resume runs/CartPole-v1__ppo__1__20261128-230000\n\nSettings (see config.toml in any run directory). Tabular: episodes, learning_rate, gamma,\nepsilon (a schedule), seed, eval_episodes, log_interval.\nppo: total_timesteps, num_envs, n_steps, batch_size, n_epochs, learning_rate (a schedule),\ngamma, gae_lambda, clip_range (a schedule), clip_range_vf, normalize_advantage,\nent_coef, vf_coef, max_grad_norm, target_kl, net_arch, activation, log_std_init,\nnormalize_obs, normalize_reward, adam_eps, seed, env_threads.\na2c: total_timesteps, num_envs, n_steps, learning_rate, gamma, gae_lambda, ent_coef, vf_coef,\nmax_grad_norm, use_rms_prop, rms_prop_eps, normalize_advantage, net_arch, shared_trunk,\nactivation, log_std_init, normalize_obs, normalize_reward, seed, env_threads.\nreinforce: total_timesteps, num_envs, batch_episodes, learning_rate, value_learning_rate, gamma,\nuse_baseline, normalize_advantage, ent_coef, max_grad_norm, net_arch, activation, log_std_init,\nseed, env_threads.\ndqn: total_timesteps, learning_rate, buffer_size, learning_starts, batch_size, tau, gamma,\ntrain_freq, gradient_steps, target_update_interval, exploration_fraction,\nexploration_initial_eps, exploration_final_eps, max_grad_norm, net_arch, activation, double_q,\ndueling, n_steps, seed.\ntd3, ddpg: total_timesteps, learning_rate, buffer_size, learning_starts, batch_size, tau, gamma,\ntrain_freq, gradient_steps, action_noise_std, action_noise, ou_theta, ou_dt, n_steps, n_critics,\npolicy_delay, target_policy_noise, target_noise_clip, net_arch, seed.\nsac: total_timesteps, learning_rate, buffer_size, learning_starts, batch_size, tau, gamma,\ntrain_freq, gradient_steps, target_update_interval, auto_ent_coef, ent_coef, target_entropy,\naction_noise_std, action_noise, ou_theta, ou_dt, n_steps, net_arch, seed. Presets with the\nrl-baselines3-zoo hyperparameters apply first where rein ships one (crates/rein-algos/presets).\nA schedule is a number, \"lin_X\" (X linearly to 0 over training, the zoo's form), or a table:\n{kind = \"linear\", start, end, fraction} or {kind = \"exponential_per_episode\", start, end, decay}.\nExample: --set 'learning_rate=\"lin_0.0003\"'."
)]
pub struct TrainArgs {
    /// Algorithm (not needed with --resume).
    #[arg(value_enum, required_unless_present = "resume")]
    pub algo: Option<Algo>,
    /// Gymnasium id of the environment (not needed with --resume).
    #[arg(long, required_unless_present = "resume")]
    pub env: Option<String>,
    /// Seed (environment, agent and initialisation).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of training episodes (tabular agents; same as --set episodes=N).
    #[arg(long)]
    pub episodes: Option<u64>,
    /// Environment steps to train for (every deep agent: ppo, a2c, reinforce, dqn, td3, ddpg,
    /// sac; same as --set total_timesteps=N). With --resume: the run's new budget.
    #[arg(long)]
    pub total_timesteps: Option<u64>,
    /// A TOML file of settings, applied over the preset for the env.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one setting, e.g. --set learning_rate=0.2 or --set epsilon.end=0.01; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Environment option key=value (Gymnasium's make kwargs), repeatable.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Directory that holds the run directories.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Continue the run in this directory from its last checkpoint, exactly where it stopped.
    /// With --resume, --total-timesteps sets a new budget (a longer run, as SB3's
    /// `learn(reset_num_timesteps=False)`; schedules stretch to the new total) and
    /// --checkpoint-every, --checkpoint-seconds, --max-updates and --quiet apply; the run's
    /// settings are its own.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["algo", "env", "config", "set", "seed", "options", "episodes", "runs_dir"])]
    pub resume: Option<PathBuf>,
    /// Also write a checkpoint each time training passes a multiple of this many environment
    /// steps (every algorithm; 0, the default: by time only). Checkpoints are always written
    /// at the end and when the run stops.
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: u64,
    /// Write a checkpoint after the first update that ends this many seconds after the last
    /// one (0: not by time). By time rather than steps so that a fast run (A2C on CartPole
    /// does thousands of steps a second) does not spend its time writing checkpoints.
    #[arg(long, default_value_t = 30.0)]
    pub checkpoint_seconds: f64,
    /// Stop after this many updates in this invocation (an update is a rollout and its
    /// optimisation for ppo/a2c/reinforce, a training phase of train_freq env steps for
    /// dqn/td3/ddpg/sac), with a checkpoint: for time-sliced training; continue later with
    /// --resume. Ctrl-C stops the same way (exit status 130).
    #[arg(long)]
    pub max_updates: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Under `mpirun` (a build with the `mpi` feature): compare the ranks' weights every this
    /// many updates and stop every rank with an error if they differ (0: never).
    #[arg(long, default_value_t = 100)]
    pub check_weights_every: u64,
}

/// Applies, in order, a config file (TOML, or a run's config.toml) and the --set overrides to
/// `cfg`, rejecting unknown settings by name; returns where each setting was given.
pub fn merge_settings(
    mut cfg: serde_json::Value,
    config: Option<&PathBuf>,
    sets: &[String],
) -> Result<(serde_json::Value, Sources)> {
    let mut sources = Sources::default();
    if let Some(path) = config {
        rein_train::settings::apply_file(&mut cfg, path, &mut sources)?;
    }
    for item in sets {
        let (k, v) = parse_override(item)?;
        set_path(&mut cfg, &k, v).with_context(|| format!("--set {item}"))?;
    }
    sources.record_flags(sets);
    Ok((cfg, sources))
}

/// `e` saying which flag or file line set the setting it names, when it names one.
fn explain(e: rein_algos::AlgoError, sources: &Sources) -> anyhow::Error {
    match e {
        rein_algos::AlgoError::Settings(s) => {
            anyhow::anyhow!("invalid settings: {}", sources.explain(s))
        }
        e => e.into(),
    }
}

/// The preset for the env, then the config file, then --set, then --seed/--episodes.
fn effective_config(a: &TrainArgs, env: &str) -> Result<TabularConfig> {
    let base = serde_json::to_value(TabularConfig::preset(env))?;
    let (mut cfg, mut sources) = merge_settings(base, a.config.as_ref(), &a.set)?;
    if let Some(seed) = a.seed {
        cfg["seed"] = json!(seed);
        sources.record("seed", "--seed".into());
    }
    if let Some(n) = a.episodes {
        cfg["episodes"] = json!(n);
        sources.record("episodes", "--episodes".into());
    }
    let cfg: TabularConfig = rein_train::settings::deserialize(cfg, &sources)
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    Ok(cfg)
}

/// Makes the env of a run (with its options) for every sub-env.
pub fn env_factory(env_id: &str, kwargs: &Map<String, Json>) -> Result<EnvFactory> {
    Ok(rein_envs::factory(env_id, kwargs)?)
}

/// `rein train ppo|a2c|reinforce|dqn|td3|ddpg|sac`: a new run of a deep agent.
fn train_deep(a: &TrainArgs, algo: agent::Algo, env_id: &str) -> Result<()> {
    if a.episodes.is_some() {
        bail!("--episodes is for tabular agents; {algo} counts --total-timesteps");
    }
    let kwargs = parse_overrides(&a.options)?;
    let (mut cfg, sources) = merge_settings(algo.settings(env_id)?, a.config.as_ref(), &a.set)?;
    if let Some(seed) = a.seed {
        cfg["seed"] = json!(seed);
    }
    if let Some(n) = a.total_timesteps {
        cfg["total_timesteps"] = json!(n);
    }
    let agent = Agent::new(algo, cfg.clone(), env_factory(env_id, &kwargs)?)
        .map_err(|e| explain(e, &sources))?;
    let dir = rein_train::create_run_dir(&a.runs_dir, env_id, algo.name(), agent.seed())?;
    let rc = RunConfig {
        algo: algo.name().into(),
        env: env_id.into(),
        env_options: kwargs,
        config: cfg,
    };
    rc.write(&dir)?;
    run_agent(agent, &dir, a, false)
}

/// `rein train --resume RUN_DIR`: continues a deep agent's run from its checkpoint, exactly.
fn resume(a: &TrainArgs, dir: &Path) -> Result<()> {
    let ckpt = dir.join(files::CHECKPOINT);
    if let Ok(kind) = rein_train::Checkpoint::peek_kind(&ckpt) {
        if kind.starts_with("lm-") {
            // A language-model run: say which command resumes it.
            crate::session::check_run_kind(dir, &["ppo"])?;
        }
    }
    let rc = RunConfig::read(dir)?;
    if agent::Algo::from_name(&rc.algo).is_none() {
        bail!(
            "{} runs train in seconds and keep no checkpoints; start a new run",
            rc.algo
        );
    }
    if !ckpt.exists() {
        bail!(
            "{}: no checkpoint to resume from (the run stopped before its first checkpoint)",
            ckpt.display()
        );
    }
    rein_train::Checkpoint::check_resume_ranks(&ckpt)?;
    let mut agent = Agent::load(&ckpt, env_factory(&rc.env, &rc.env_options)?)?;
    if let Some(total) = a.total_timesteps {
        agent
            .extend_run(dir, total)
            .with_context(|| format!("--total-timesteps {total} for {}", dir.display()))?;
    }
    if rein_core::collective::is_root() {
        eprintln!(
            "resuming {} at step {} of {}",
            dir.display(),
            agent.global_step(),
            agent.total_timesteps()
        );
    }
    run_agent(agent, dir, a, true)
}

fn run_agent(mut agent: Agent, dir: &Path, a: &TrainArgs, resumed: bool) -> Result<()> {
    let options = RunOptions {
        checkpoint_every: a.checkpoint_every,
        checkpoint_seconds: a.checkpoint_seconds,
        max_updates: a.max_updates,
        sample_every: 0,
        resumed,
        check_weights_every: a.check_weights_every,
    };
    if let RunEnd::Finished(Some(e)) =
        crate::session::run(&mut agent, dir, &options, a.quiet, "rein train --resume")?
    {
        println!("run directory: {}", dir.display());
        println!("{}", e.summary);
    }
    Ok(())
}

pub fn run(a: TrainArgs) -> Result<()> {
    if let Some(dir) = &a.resume {
        return resume(&a, dir);
    }
    let algo = a.algo.context("an algorithm is required")?;
    let env_id = a.env.clone().context("--env is required")?;
    if let Some(deep) = algo.deep() {
        return train_deep(&a, deep, &env_id);
    }
    if a.total_timesteps.is_some() {
        bail!("--total-timesteps is for ppo; tabular agents count --episodes");
    }
    if rein_core::collective::is_distributed() {
        bail!(
            "{} is a tabular agent and trains in one process: run it without mpirun",
            algo.name()
        );
    }
    let kwargs = parse_overrides(&a.options)?;
    let mut env = rein_envs::make_with(&env_id, &kwargs)?;
    let cfg = effective_config(&a, &env_id)?;
    if StateIndexer::new(env.observation_space()).is_none() {
        bail!(
            "{} is a tabular algorithm: it needs Discrete observations, and {} has {}",
            algo.name(),
            env_id,
            env.observation_space()
        );
    }
    let dir = rein_train::create_run_dir(&a.runs_dir, &env_id, algo.name(), cfg.seed)?;
    let rc = RunConfig {
        algo: algo.name().into(),
        env: env_id.clone(),
        env_options: kwargs.clone(),
        config: serde_json::to_value(&cfg)?,
    };
    rc.write(&dir)?;

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
    let tabular = TabularAlgo::from_name(algo.name()).expect("a tabular algorithm");
    let (q, stats) = run_tabular(tabular, &env_id, env.as_mut(), &cfg, &dir, &mut |log| {
        bar.set_position(log.episode);
        bar.set_message(format!(
            "return(100) {:.3}  eps {:.3}",
            log.return_mean, log.epsilon
        ));
    })?;
    bar.finish_and_clear();
    let policy = q.policy();
    let eval_seed = 1_000_000 + cfg.seed;
    let success = rein_algos::SuccessRule::for_env(&env_id);
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
    if let Ok(denv) = rein_envs::make_discrete(&env_id, &kwargs) {
        let mdp = TabularMdp::from_env(&denv, cfg.gamma)?;
        let sol = mdp.value_iteration(1e-10, 10_000_000)?;
        let opt = TabularMdp::optimal_actions(&sol.q, 1e-6);
        let reachable = mdp.reachable(&sol.policy);
        let n = reachable.iter().filter(|&&r| r).count();
        let agree = (0..mdp.n_states())
            .filter(|&s| reachable[s] && opt[s].contains(&policy[s]))
            .count();
        let best = evaluate_policy(
            env.as_mut(),
            &sol.policy,
            cfg.eval_episodes,
            eval_seed,
            success,
        )?;
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
