//! Policy-gradient runs (`rein train ppo`, `rein train --resume`), `rein eval` and
//! `rein bench ppo`.

use crate::cmd_train::{merge_settings, TrainArgs};
use crate::options::kv_map;
use crate::run_dir;
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rein_algos::a2c::{A2c, A2cConfig};
use rein_algos::onpolicy::OnPolicyAgent;
use rein_algos::ppo::{EnvFactory, Ppo, PpoConfig, PpoLog};
use rein_algos::reinforce::{Reinforce, ReinforceConfig};
use rein_core::metrics::{write_atomic, CsvLogger};
use serde_json::{json, Map, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The checkpoint file of a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// Makes the env of a run (with its options) for every sub-env.
pub fn env_factory(env_id: &str, kwargs: &Map<String, Json>) -> Result<EnvFactory> {
    rein_envs::make_with(env_id, kwargs)?; // fail early, with the registry's message
    let (id, kw) = (env_id.to_string(), kwargs.clone());
    Ok(Arc::new(move |_| rein_envs::make_with(&id, &kw)))
}

/// The algorithm's default settings, then its shipped preset for `env_id`.
pub fn base_config(algo: &str, env_id: &str) -> Result<Json> {
    let (mut base, preset) = match algo {
        "ppo" => (
            serde_json::to_value(PpoConfig::default())?,
            PpoConfig::preset_toml(env_id),
        ),
        "a2c" => (
            serde_json::to_value(A2cConfig::default())?,
            A2cConfig::preset_toml(env_id),
        ),
        "reinforce" => (
            serde_json::to_value(ReinforceConfig::default())?,
            ReinforceConfig::preset_toml(env_id),
        ),
        other => bail!("{other} is not an on-policy algorithm"),
    };
    apply_preset(&mut base, preset)?;
    Ok(base)
}

/// Applies a shipped preset (TOML text) over default settings.
pub fn apply_preset(base: &mut Json, preset: Option<&str>) -> Result<()> {
    if let Some(text) = preset {
        let table: toml::Table = toml::from_str(text).context("shipped preset")?;
        for (k, v) in table {
            crate::options::set_path(base, &k, serde_json::to_value(v)?)?;
        }
    }
    Ok(())
}

fn parse_config<T: serde::de::DeserializeOwned>(cfg: Json) -> Result<T> {
    serde_json::from_value(cfg).context("invalid settings")
}

/// Builds a new agent from effective settings.
pub fn build_agent(algo: &str, cfg: Json, factory: &EnvFactory) -> Result<Box<dyn OnPolicyAgent>> {
    let invalid = |e: String| anyhow::anyhow!("invalid settings: {e}");
    let f = Arc::clone(factory);
    Ok(match algo {
        "ppo" => {
            let c: PpoConfig = parse_config(cfg)?;
            c.validate().map_err(invalid)?;
            Box::new(Ppo::new(c, f)?)
        }
        "a2c" => {
            let c: A2cConfig = parse_config(cfg)?;
            c.validate().map_err(invalid)?;
            Box::new(A2c::new(c, f)?)
        }
        "reinforce" => {
            let c: ReinforceConfig = parse_config(cfg)?;
            c.validate().map_err(invalid)?;
            Box::new(Reinforce::new(c, f)?)
        }
        other => bail!("{other} is not an on-policy algorithm"),
    })
}

/// Loads an agent from its checkpoint.
pub fn load_agent(algo: &str, path: &Path, factory: &EnvFactory) -> Result<Box<dyn OnPolicyAgent>> {
    if !path.exists() {
        bail!(
            "{}: no checkpoint to resume from (the run stopped before its first checkpoint)",
            path.display()
        );
    }
    let f = Arc::clone(factory);
    Ok(match algo {
        "ppo" => Box::new(Ppo::load_checkpoint(path, f)?),
        "a2c" => Box::new(A2c::load_checkpoint(path, f)?),
        "reinforce" => Box::new(Reinforce::load_checkpoint(path, f)?),
        other => bail!("{other} runs train in seconds and keep no checkpoints; start a new run"),
    })
}

pub fn train_new(a: &TrainArgs, algo: &str, env_id: &str) -> Result<()> {
    if a.episodes.is_some() {
        bail!("--episodes is for tabular agents; {algo} counts --total-timesteps");
    }
    let kwargs = kv_map(&a.options)?;
    let mut cfg = merge_settings(base_config(algo, env_id)?, a.config.as_ref(), &a.set)?;
    if let Some(seed) = a.seed {
        cfg["seed"] = json!(seed);
    }
    if let Some(n) = a.total_timesteps {
        cfg["total_timesteps"] = json!(n);
    }
    let factory = env_factory(env_id, &kwargs)?;
    let agent = build_agent(algo, cfg.clone(), &factory)?;
    let dir = run_dir::create(&a.runs_dir, env_id, algo, agent.seed())?;
    let effective = json!({"algo": algo, "env": env_id, "env_options": kwargs, "config": cfg});
    let text = toml::to_string_pretty(&effective).context("serialising config.toml")?;
    write_atomic(&dir.join("config.toml"), text.as_bytes())?;
    let csv = CsvLogger::create(&dir.join("metrics.csv"), &PpoLog::COLUMNS)?;
    run_loop(
        agent,
        &dir,
        csv,
        a.checkpoint_every,
        a.max_updates,
        a.quiet,
        &factory,
    )
}

/// The run's config.toml as (algo, env id, env options).
pub fn read_run_config(dir: &Path) -> Result<(String, String, Map<String, Json>, Json)> {
    let path = dir.join("config.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let v = serde_json::to_value(table)?;
    let algo = v["algo"]
        .as_str()
        .with_context(|| format!("{}: no \"algo\"", path.display()))?;
    let env = v["env"]
        .as_str()
        .with_context(|| format!("{}: no \"env\"", path.display()))?;
    let opts = v["env_options"].as_object().cloned().unwrap_or_default();
    Ok((algo.to_string(), env.to_string(), opts, v["config"].clone()))
}

pub fn resume(
    dir: &Path,
    checkpoint_every: u64,
    max_updates: Option<u64>,
    quiet: bool,
) -> Result<()> {
    let (algo, env_id, kwargs, _) = read_run_config(dir)?;
    if matches!(algo.as_str(), "dqn" | "td3" | "ddpg" | "sac") {
        return crate::cmd_dqn::resume(
            dir,
            &algo,
            &env_id,
            &kwargs,
            checkpoint_every,
            max_updates,
            quiet,
        );
    }
    let factory = env_factory(&env_id, &kwargs)?;
    let agent = load_agent(&algo, &dir.join(CHECKPOINT), &factory)?;
    let csv = CsvLogger::resume(
        &dir.join("metrics.csv"),
        &PpoLog::COLUMNS,
        agent.updates() as usize,
    )?;
    eprintln!(
        "resuming {} at step {} (update {})",
        dir.display(),
        agent.global_step(),
        agent.updates()
    );
    run_loop(
        agent,
        dir,
        csv,
        checkpoint_every,
        max_updates,
        quiet,
        &factory,
    )
}

fn run_loop(
    mut agent: Box<dyn OnPolicyAgent>,
    dir: &Path,
    mut csv: CsvLogger,
    checkpoint_every: u64,
    max_updates: Option<u64>,
    quiet: bool,
    factory: &EnvFactory,
) -> Result<()> {
    let stop_at = max_updates.map(|n| agent.updates() + n);
    let total = agent.total_timesteps();
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps {msg}",
        )
        .expect("valid template"),
    );
    bar.set_position(agent.global_step());
    let ckpt = dir.join(CHECKPOINT);
    while agent.global_step() < total {
        let log = agent.train_update().with_context(|| {
            format!(
                "training stopped; the last good checkpoint is {}",
                ckpt.display()
            )
        })?;
        csv.log(&log.row()).context("writing metrics.csv")?;
        bar.set_position(log.global_step);
        bar.set_message(format!(
            "return(100) {:.1}  {:.0} steps/s",
            log.ep_return_mean, log.sps
        ));
        if checkpoint_every > 0 && log.update % checkpoint_every == 0 {
            agent.save_checkpoint(&ckpt)?;
        }
        if stop_at == Some(log.update) && agent.global_step() < total {
            agent.save_checkpoint(&ckpt)?;
            bar.finish_and_clear();
            println!(
                "stopped after update {} at step {} of {total}; continue with: rein train --resume {}",
                log.update,
                agent.global_step(),
                dir.display()
            );
            return Ok(());
        }
    }
    agent.save_checkpoint(&ckpt)?;
    bar.finish_and_clear();
    crate::plot::learning_curve(dir, "global_step", "episodic_return_mean", "steps")?;
    let (mean, std) = agent.evaluate(factory, 10, true, 1_000_000 + agent.seed())?;
    println!("run directory: {}", dir.display());
    println!(
        "trained {} steps in {:.1} s of rollouts and {:.1} s of updates; deterministic policy over 10 episodes: return {mean:.2} +/- {std:.2}",
        agent.global_step(), agent.timing().rollout_secs, agent.timing().optimize_secs
    );
    let eval = json!({"episodes": 10, "deterministic": true, "mean_return": mean, "std_return": std,
                      "global_step": agent.global_step()});
    write_atomic(
        &dir.join("eval.json"),
        serde_json::to_string_pretty(&eval)?.as_bytes(),
    )?;
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein eval runs/CartPole-v1__ppo__1__20261128-230000 --episodes 20 --deterministic\n  rein eval runs/Taxi-v4__qlearning__0__20261128-230000"
)]
pub struct EvalArgs {
    /// A run directory written by `rein train`.
    run_dir: PathBuf,
    /// Episodes to run.
    #[arg(long, default_value_t = 10)]
    episodes: u64,
    /// Act with the most likely action (the mean for Box actions) instead of sampling.
    #[arg(long)]
    deterministic: bool,
    /// Seed of the first episode (episode k uses seed + k).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Render one episode (seed --seed) of a classic-control env to this animated GIF.
    #[arg(long, value_name = "FILE")]
    gif: Option<PathBuf>,
}

/// Plays one episode with the policy, rendering every state, and writes a GIF at 50 fps.
fn record_gif(
    agent: &mut dyn OnPolicyAgent,
    env_id: &str,
    kwargs: &Map<String, Json>,
    deterministic: bool,
    seed: u64,
    path: &Path,
) -> Result<()> {
    let mut env = rein_envs::make_with(env_id, kwargs)?;
    let norm = agent.obs_normalizer();
    let policy = agent.policy_mut();
    let space = env.observation_space().clone();
    let mut rng = rein_core::rng_from_seed(seed);
    let (mut obs, _) = env.reset(Some(seed));
    let mut frames = Vec::new();
    let ad = policy.kind.action_dim();
    loop {
        match env.render()? {
            rein_core::Render::Rgb(f) => frames.push(f),
            rein_core::Render::Text(_) => {
                bail!("{env_id} renders text, not frames: --gif needs a classic-control env")
            }
        }
        let mut x = space.flatten(&obs)?;
        if let Some(n) = &norm {
            n.apply_obs(&mut x);
        }
        let (mut act, mut lp) = (vec![0.0; ad], [0.0f32]);
        policy.act(&x, 1, deterministic, &mut rng, &mut act, &mut lp);
        let step = env.step(&policy.env_action(&act))?;
        obs = step.obs;
        if step.terminated || step.truncated {
            break;
        }
    }
    crate::plot::write_gif(path, &frames, 2)?;
    println!("wrote {} frames to {}", frames.len(), path.display());
    Ok(())
}

pub fn eval(a: &EvalArgs) -> Result<()> {
    let (algo, env_id, kwargs, config) = read_run_config(&a.run_dir)?;
    let (mean, std) = if matches!(algo.as_str(), "ppo" | "a2c" | "reinforce") {
        let factory = env_factory(&env_id, &kwargs)?;
        let mut agent = load_agent(&algo, &a.run_dir.join(CHECKPOINT), &factory)?;
        if let Some(path) = &a.gif {
            record_gif(
                agent.as_mut(),
                &env_id,
                &kwargs,
                a.deterministic,
                a.seed,
                path,
            )?;
        }
        agent.evaluate(&factory, a.episodes, a.deterministic, a.seed)?
    } else if matches!(algo.as_str(), "dqn" | "td3" | "ddpg" | "sac") {
        if a.gif.is_some() {
            bail!("--gif is available for ppo, a2c and reinforce runs");
        }
        crate::cmd_dqn::eval(&a.run_dir, &algo, &env_id, &kwargs, a.episodes, a.seed)?
    } else {
        if a.gif.is_some() {
            bail!("--gif needs a run of a classic-control env (ppo, a2c or reinforce)");
        }
        let path = a.run_dir.join("q_table.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let q: rein_algos::QTable = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a Q-table", path.display()))?;
        let mut env = rein_envs::make_with(&env_id, &kwargs)?;
        let _ = config;
        let s = rein_algos::evaluate_policy(env.as_mut(), &q.policy(), a.episodes, a.seed)?;
        (s.mean_return, s.std_return)
    };
    if a.json {
        println!(
            "{}",
            json!({"env": env_id, "algo": algo, "episodes": a.episodes, "mean_return": mean, "std_return": std})
        );
    } else {
        println!(
            "{env_id} ({algo}): return over {} episodes {mean:.3} +/- {std:.3}",
            a.episodes
        );
    }
    Ok(())
}

#[derive(Args)]
#[command(after_help = "Example:\n  rein bench ppo --env CartPole-v1 --total-timesteps 100000")]
pub struct BenchPpoArgs {
    /// Environment (its shipped preset is used).
    #[arg(long, default_value = "CartPole-v1")]
    env: String,
    /// Steps to train.
    #[arg(long, default_value_t = 100_000)]
    total_timesteps: u64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn bench_ppo(a: &BenchPpoArgs) -> Result<()> {
    let mut cfg = base_config("ppo", &a.env)?;
    cfg["total_timesteps"] = json!(a.total_timesteps);
    cfg["seed"] = json!(a.seed);
    let cfg: PpoConfig = serde_json::from_value(cfg)?;
    let factory = env_factory(&a.env, &Map::new())?;
    let mut agent = Ppo::new(cfg, Arc::clone(&factory))?;
    let start = std::time::Instant::now();
    agent.train(&mut |_| {})?;
    let secs = start.elapsed().as_secs_f64();
    let (mean, _) = agent.evaluate(&factory, 10, true, 1_000_000)?;
    let t = agent.timing;
    let flops = agent.flops_per_grad_step();
    let ms_per_step = 1e3 * t.optimize_secs / t.grad_steps.max(1) as f64;
    let gflops = flops * t.grad_steps as f64 / t.optimize_secs.max(1e-9) / 1e9;
    let sps = agent.global_step() as f64 / secs;
    if a.json {
        println!(
            "{}",
            json!({"env": a.env, "steps": agent.global_step(), "seconds": secs, "steps_per_second": sps,
                   "grad_steps": t.grad_steps, "ms_per_grad_step": ms_per_step, "mflop_per_grad_step": flops / 1e6,
                   "gflops": gflops, "rollout_seconds": t.rollout_secs, "update_seconds": t.optimize_secs,
                   "eval_return": mean, "threads": 1})
        );
    } else {
        println!(
            "ppo {}: {} steps in {secs:.2} s = {sps:.0} steps/s (1 thread); {} gradient steps at {ms_per_step:.3} ms \
             ({:.1} MFLOP each, {gflops:.1} GFLOP/s); rollouts {:.2} s, updates {:.2} s; final deterministic return {mean:.1}",
            a.env, agent.global_step(), t.grad_steps, flops / 1e6, t.rollout_secs, t.optimize_secs
        );
    }
    Ok(())
}

#[derive(Args)]
#[command(after_help = "Example:\n  rein bench learn --out LEARNING.md")]
pub struct BenchLearnArgs {
    /// Markdown file to write the table to.
    #[arg(long, default_value = "learning_results.md")]
    out: PathBuf,
    /// Seeds per row (0, 1, ...).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Only rows whose `algorithm/env` (e.g. `sac/Pendulum-v1`) contains this text.
    #[arg(long)]
    only: Option<String>,
}

/// One row of the learning table: train `algo` on `env` for `steps` with seeds 0..n and
/// require `needed` seeds to reach `threshold` (mean of 10 deterministic evaluation episodes).
struct LearnRow {
    algo: &'static str,
    label: &'static str,
    env: &'static str,
    threshold: f64,
    steps: u64,
    needed: u64,
}

const LEARN_ROWS: &[LearnRow] = &[
    LearnRow {
        algo: "ppo",
        label: "PPO",
        env: "CartPole-v1",
        threshold: 475.0,
        steps: 100_000,
        needed: 3,
    },
    LearnRow {
        algo: "ppo",
        label: "PPO",
        env: "Acrobot-v1",
        threshold: -100.0,
        steps: 200_000,
        needed: 3,
    },
    LearnRow {
        algo: "ppo",
        label: "PPO",
        env: "Pendulum-v1",
        threshold: -300.0,
        steps: 300_000,
        needed: 2,
    },
    LearnRow {
        algo: "a2c",
        label: "A2C",
        env: "CartPole-v1",
        threshold: 475.0,
        steps: 500_000,
        needed: 2,
    },
    LearnRow {
        algo: "reinforce",
        label: "REINFORCE + baseline",
        env: "CartPole-v1",
        threshold: 475.0,
        steps: 500_000,
        needed: 2,
    },
    LearnRow {
        algo: "dqn",
        label: "DQN",
        env: "CartPole-v1",
        threshold: 475.0,
        steps: 100_000,
        needed: 2,
    },
    LearnRow {
        algo: "dqn",
        label: "DQN",
        env: "MountainCar-v0",
        threshold: -120.0,
        steps: 300_000,
        needed: 2,
    },
    LearnRow {
        algo: "ddpg",
        label: "DDPG",
        env: "Pendulum-v1",
        threshold: -200.0,
        steps: 20_000,
        needed: 2,
    },
    LearnRow {
        algo: "td3",
        label: "TD3",
        env: "Pendulum-v1",
        threshold: -200.0,
        steps: 20_000,
        needed: 2,
    },
    LearnRow {
        algo: "sac",
        label: "SAC",
        env: "Pendulum-v1",
        threshold: -200.0,
        steps: 20_000,
        needed: 2,
    },
    LearnRow {
        algo: "sac",
        label: "SAC",
        env: "MountainCarContinuous-v0",
        threshold: 90.0,
        steps: 50_000,
        needed: 2,
    },
];

/// Trains one learning-table run and returns its mean deterministic evaluation return.
fn learn_run(row: &LearnRow, seed: u64, factory: &EnvFactory) -> Result<f64> {
    let off_policy = matches!(row.algo, "dqn" | "td3" | "ddpg" | "sac");
    let mut cfg = if off_policy {
        crate::cmd_dqn::base_config(row.algo, row.env)?
    } else {
        base_config(row.algo, row.env)?
    };
    cfg["total_timesteps"] = json!(row.steps);
    cfg["seed"] = json!(seed);
    let eval_seed = 1_000_000 + seed;
    let (mean, _) = if off_policy {
        let mut agent = crate::cmd_dqn::build(row.algo, cfg, factory)?;
        while agent.global_step() < agent.total_timesteps() {
            agent.train_phase_row()?;
        }
        agent.evaluate(factory, 10, eval_seed)?
    } else {
        let mut agent = build_agent(row.algo, cfg, factory)?;
        while agent.global_step() < agent.total_timesteps() {
            agent.train_update()?;
        }
        agent.evaluate(factory, 10, true, eval_seed)?
    };
    Ok(mean)
}

pub fn bench_learn(a: &BenchLearnArgs) -> Result<()> {
    let mut md = String::from(
        "| algorithm | env | threshold (mean of 10 eval episodes) | within | seeds reaching it | eval returns per seed | wall time |\n|---|---|---|---|---|---|---|\n",
    );
    let mut all_pass = true;
    for row in LEARN_ROWS {
        if let Some(f) = &a.only {
            if !format!("{}/{}", row.algo, row.env).contains(f.as_str()) {
                continue;
            }
        }
        let factory = env_factory(row.env, &Map::new())?;
        let mut returns = Vec::new();
        let start = std::time::Instant::now();
        for seed in 0..a.seeds {
            let mean = learn_run(row, seed, &factory)?;
            eprintln!("{} {} seed {seed}: {mean:.1}", row.label, row.env);
            returns.push(mean);
        }
        let reached = returns.iter().filter(|&&r| r >= row.threshold).count() as u64;
        let needed = row.needed.min(a.seeds);
        let ok = reached >= needed;
        all_pass &= ok;
        let per_seed: Vec<String> = returns.iter().map(|r| format!("{r:.1}")).collect();
        md.push_str(&format!(
            "| {} | {} | >= {} | {}k steps | {reached} of {} (need {needed}) {} | {} | {:.0} s |\n",
            row.label,
            row.env,
            row.threshold,
            row.steps / 1000,
            a.seeds,
            if ok { "pass" } else { "FAIL" },
            per_seed.join(", "),
            start.elapsed().as_secs_f64()
        ));
    }
    md.push_str("\nWritten by `rein bench learn` (release build, 1 thread per run).\n");
    write_atomic(&a.out, md.as_bytes())?;
    print!("{md}");
    if !all_pass {
        bail!(
            "some rows did not reach their threshold (see {})",
            a.out.display()
        );
    }
    Ok(())
}
