//! `rein envs` and `rein env ...`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rein_core::{Env, Value};
use rein_train::settings::parse_overrides;
use serde_json::json;

#[derive(Args)]
pub struct EnvsArgs {
    /// Print JSON (one object per environment) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Step an environment through given actions and print each transition as a JSON line
    /// with the keys obs, reward, terminated, truncated.
    #[command(
        after_help = "Examples:\n  rein env rollout --env CartPole-v1 --seed 0 --actions '[0,1,1,0]'\n  rein env rollout --env CartPole-v1 --state '[0.01,0,0.02,0]' --actions '[1,1]'\n  rein env rollout --env Pendulum-v1 --state '[3.14,0]' --actions '[[2.0],[-5]]'\n  rein env rollout --env FrozenLake-v1 --option is_slippery=false --state 5 --actions '[2,1]'\n  rein env rollout --env Blackjack-v1 --state '{\"player\":[10,6],\"dealer\":[9,7]}' --actions '[0]'\n  rein env rollout --env HalfCheetah-v5 --actions '[[0.5,0,0,0,0,-0.5]]'\n  rein env rollout --env Hopper-v5 --state '{\"qpos\":[0,1.25,0,0,0,0],\"qvel\":[0,0,0,0,0,0]}' --actions '[[1,0,-1]]'\n  rein env rollout --env dm_control/cheetah-run-v0 --actions '[[0,0,0,0,0,0]]'"
    )]
    Rollout(RolloutArgs),
    /// Measure environment steps per second with random actions and auto-reset.
    #[command(
        after_help = "Examples:\n  rein env bench --env CartPole-v1 --steps 10000000\n  rein env bench --env CartPole-v1 --steps 10000000 --num-envs 8 --threads 2\n  rein env bench --env HalfCheetah-v5 --steps 200000"
    )]
    Bench(BenchArgs),
    /// Run the environment checker (API contract, determinism under seeding) on an env.
    #[command(
        after_help = "Examples:\n  rein env check --env CartPole-v1\n  rein env check --env FrozenLake-v1 --option map_name=8x8"
    )]
    Check(CheckArgs),
}

#[derive(Args)]
pub struct RolloutArgs {
    /// Gymnasium id, e.g. CartPole-v1 (see `rein envs`).
    #[arg(long)]
    env: String,
    /// Seed passed to reset.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Internal state to start from, as Gymnasium keeps it in env.unwrapped: a JSON array for
    /// classic control, the integer s for toy text, {"player": [...], "dealer": [...]} for
    /// Blackjack. The time-limit step counter starts at 0.
    #[arg(long)]
    state: Option<String>,
    /// JSON array of actions (integers, or arrays of numbers for Box actions); @FILE reads it
    /// from a file.
    #[arg(long)]
    actions: String,
    /// Environment option key=value (Gymnasium's make kwargs), repeatable.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// Also print the reset observation first, as {"reset_obs": ...}.
    #[arg(long)]
    print_reset: bool,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Gymnasium id.
    #[arg(long)]
    env: String,
    /// Total environment steps (over all sub-envs).
    #[arg(long, default_value_t = 1_000_000)]
    steps: u64,
    /// Number of environments; more than 1 uses the vector env.
    #[arg(long, default_value_t = 1)]
    num_envs: usize,
    /// Threads stepping the vector env.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// With --num-envs > 1: step the vector env in lock step from this thread (one `step`
    /// call per transition of every env) instead of letting each worker thread sample its
    /// envs' random actions itself (`VectorEnv::rollout`).
    #[arg(long)]
    lockstep: bool,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Gymnasium id.
    #[arg(long)]
    env: String,
    /// Steps per checked trajectory.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Environment option key=value, repeatable.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
}

pub fn list(args: &EnvsArgs) -> Result<()> {
    let rows: Vec<_> = rein_envs::registry()
        .into_iter()
        .map(|spec| {
            let env = rein_envs::make(&spec.id).expect("registered envs build");
            (
                spec,
                env.observation_space().to_string(),
                env.action_space().to_string(),
            )
        })
        .collect();
    if args.json {
        for (spec, obs, act) in rows {
            println!(
                "{}",
                json!({"id": spec.id, "observation_space": obs, "action_space": act,
                       "reward_threshold": spec.reward_threshold,
                       "max_episode_steps": spec.max_episode_steps, "kwargs": spec.kwargs})
            );
        }
        return Ok(());
    }
    // Columns as wide as their widest entry; the observation space, the longest, goes last.
    let table: Vec<[String; 5]> = rows
        .into_iter()
        .map(|(spec, obs, act)| {
            [
                spec.id.clone(),
                spec.reward_threshold.map_or("-".into(), |t| t.to_string()),
                spec.max_episode_steps.map_or("-".into(), |t| t.to_string()),
                act,
                obs,
            ]
        })
        .collect();
    let header = ["ID", "THRESHOLD", "MAX STEPS", "ACTIONS", "OBSERVATIONS"].map(String::from);
    let mut width = [0usize; 4];
    for row in std::iter::once(&header).chain(&table) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&table) {
        let mut line = String::new();
        for (w, cell) in width.iter().zip(row) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        line.push_str(&row[4]);
        println!("{line}");
    }
    Ok(())
}

pub fn run(cmd: EnvCommand) -> Result<()> {
    match cmd {
        EnvCommand::Rollout(a) => rollout(&a),
        EnvCommand::Bench(a) => bench(&a),
        EnvCommand::Check(a) => check(&a),
    }
}

fn read_arg(s: &str, what: &str) -> Result<serde_json::Value> {
    let text = match s.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {what} file {path}"))?
        }
        None => s.to_string(),
    };
    serde_json::from_str(&text).with_context(|| format!("{what} is not valid JSON: {text:?}"))
}

fn rollout(a: &RolloutArgs) -> Result<()> {
    let kwargs = parse_overrides(&a.options)?;
    let mut env = rein_envs::make_with(&a.env, &kwargs)?;
    let actions_json = read_arg(&a.actions, "--actions")?;
    let Some(actions) = actions_json.as_array() else {
        bail!("--actions must be a JSON array of actions, got {actions_json}");
    };
    let space = env.action_space().clone();
    // Parse every action before stepping, so a bad one is reported before any output.
    let actions: Vec<Value> = actions
        .iter()
        .enumerate()
        .map(|(i, j)| {
            space
                .parse_json(j)
                .with_context(|| format!("action {i} of --actions"))
        })
        .collect::<Result<_>>()?;
    // Discrete actions must lie in the space (Gymnasium asserts it); Box actions may be out
    // of bounds because the continuous envs clip them, as Gymnasium's do.
    if !matches!(space, rein_core::Space::Box { .. }) {
        if let Some((i, bad)) = actions.iter().enumerate().find(|(_, x)| !space.contains(x)) {
            bail!("action {i} of --actions is {bad}, which is not in the action space {space}");
        }
    }
    let (mut obs, _) = env.reset(Some(a.seed));
    if let Some(state) = &a.state {
        let state = read_arg(state, "--state")?;
        obs = env.set_state(&state)?;
    }
    if a.print_reset {
        println!("{{\"reset_obs\":{}}}", obs.to_json_string());
    }
    for (i, action) in actions.iter().enumerate() {
        let step = env.step(action).with_context(|| format!("step {i}"))?;
        // Written by hand so that float32 observations keep their float32 text. `info` (the
        // reward terms of the MuJoCo envs, `prob` of toy text) when the env gives one.
        let info = if step.info.is_empty() {
            String::new()
        } else {
            format!(",\"info\":{}", serde_json::Value::Object(step.info))
        };
        println!(
            "{{\"obs\":{},\"reward\":{},\"terminated\":{},\"truncated\":{}{info}}}",
            step.obs.to_json_string(),
            rein_core::space::f64_to_json(step.reward),
            step.terminated,
            step.truncated,
        );
    }
    Ok(())
}

fn bench(a: &BenchArgs) -> Result<()> {
    if a.num_envs == 0 || a.threads == 0 || a.steps == 0 {
        bail!("--steps, --num-envs and --threads must be at least 1");
    }
    let t =
        rein_envs::bench::throughput(&a.env, a.steps, a.num_envs, a.threads, a.lockstep, a.seed)?;
    let (steps, episodes, secs) = (t.steps, t.episodes, t.seconds);
    let sps = steps as f64 / secs;
    if a.json {
        println!(
            "{}",
            json!({"env": a.env, "steps": steps, "num_envs": a.num_envs, "threads": a.threads,
                   "lockstep": a.lockstep,
                   "seconds": secs, "steps_per_second": sps, "episodes": episodes})
        );
    } else {
        println!(
            "{}: {} env(s) on {} thread(s){}: {steps} steps ({episodes} episodes) in {secs:.3} s = {:.0} steps/s",
            a.env,
            a.num_envs,
            a.threads,
            match (a.num_envs > 1 || a.threads > 1, a.lockstep) {
                (false, _) => "",
                (true, true) => ", lock-step",
                (true, false) => ", worker rollouts",
            },
            sps
        );
    }
    Ok(())
}

fn check(a: &CheckArgs) -> Result<()> {
    let kwargs = parse_overrides(&a.options)?;
    let mut env: Box<dyn Env> = rein_envs::make_with(&a.env, &kwargs)?;
    let report = rein_core::check_env(env.as_mut(), a.steps)?;
    println!("{}: passed ({} steps checked)", a.env, report.steps_checked);
    for w in &report.warnings {
        println!("warning: {w}");
    }
    Ok(())
}
