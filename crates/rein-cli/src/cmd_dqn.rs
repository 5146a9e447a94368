//! Off-policy runs (`rein train dqn|td3|ddpg|sac`, their resume and eval), `rein bench dqn` and
//! `rein bench gemm`.

use crate::cmd_pg::{env_factory, CHECKPOINT};
use crate::cmd_train::{merge_settings, TrainArgs};
use crate::options::kv_map;
use crate::run_dir;
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rein_algos::dqn::{Dqn, DqnConfig, DqnLog};
use rein_algos::offpolicy::OffPolicyAgent;
use rein_algos::onpolicy::EnvFactory;
use rein_algos::sac::{Sac, SacConfig};
use rein_algos::td3::{Td3, Td3Config};
use rein_core::metrics::{write_atomic, CsvLogger};
use serde_json::{json, Map};

/// The algorithm's default settings, then its shipped preset for `env_id`.
pub(crate) fn base_config(algo: &str, env_id: &str) -> Result<serde_json::Value> {
    let (mut base, preset) = match algo {
        "dqn" => (
            serde_json::to_value(DqnConfig::default())?,
            DqnConfig::preset_toml(env_id),
        ),
        "td3" => (
            serde_json::to_value(Td3Config::default())?,
            Td3Config::preset_toml("td3", env_id),
        ),
        "ddpg" => (
            serde_json::to_value(Td3Config::ddpg())?,
            Td3Config::preset_toml("ddpg", env_id),
        ),
        "sac" => (
            serde_json::to_value(SacConfig::default())?,
            SacConfig::preset_toml(env_id),
        ),
        other => bail!("{other} is not an off-policy algorithm"),
    };
    crate::cmd_pg::apply_preset(&mut base, preset)?;
    Ok(base)
}

pub(crate) fn build(
    algo: &str,
    cfg: serde_json::Value,
    factory: &EnvFactory,
) -> Result<Box<dyn OffPolicyAgent>> {
    let f = std::sync::Arc::clone(factory);
    Ok(match algo {
        "dqn" => {
            let c: DqnConfig = serde_json::from_value(cfg).context("invalid settings")?;
            c.validate()
                .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
            Box::new(Dqn::new(c, f)?)
        }
        "sac" => {
            let c: SacConfig = serde_json::from_value(cfg).context("invalid settings")?;
            c.validate()
                .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
            Box::new(Sac::new(c, f)?)
        }
        _ => {
            let c: Td3Config = serde_json::from_value(cfg).context("invalid settings")?;
            c.validate()
                .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
            Box::new(Td3::new(c, f)?)
        }
    })
}

fn load(
    algo: &str,
    dir: &std::path::Path,
    factory: &EnvFactory,
) -> Result<Box<dyn OffPolicyAgent>> {
    let ckpt = dir.join(CHECKPOINT);
    if !ckpt.exists() {
        bail!("{}: no checkpoint to resume from", ckpt.display());
    }
    let f = std::sync::Arc::clone(factory);
    Ok(match algo {
        "dqn" => Box::new(Dqn::load_checkpoint(&ckpt, f)?),
        "sac" => Box::new(Sac::load_checkpoint(&ckpt, f)?),
        _ => Box::new(Td3::load_checkpoint(&ckpt, f)?),
    })
}

pub fn train(a: &TrainArgs, algo: &str, env_id: &str) -> Result<()> {
    if a.episodes.is_some() {
        bail!("{algo} counts --total-timesteps, not --episodes");
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
    let agent = build(algo, cfg.clone(), &factory)?;
    let dir = run_dir::create(&a.runs_dir, env_id, algo, agent.seed())?;
    let effective = json!({"algo": algo, "env": env_id, "env_options": kwargs, "config": cfg});
    write_atomic(
        &dir.join("config.toml"),
        toml::to_string_pretty(&effective)?.as_bytes(),
    )?;
    let csv = CsvLogger::create(&dir.join("metrics.csv"), agent.columns())?;
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

/// Continues an off-policy run from its checkpoint (replay buffer included), exactly.
pub fn resume(
    dir: &std::path::Path,
    algo: &str,
    env_id: &str,
    kwargs: &Map<String, serde_json::Value>,
    checkpoint_every: u64,
    max_updates: Option<u64>,
    quiet: bool,
) -> Result<()> {
    let factory = env_factory(env_id, kwargs)?;
    let agent = load(algo, dir, &factory)?;
    // One metrics row per training phase of train_freq steps.
    let rows = agent.global_step().div_ceil(agent.train_freq().max(1)) as usize;
    let csv = CsvLogger::resume(&dir.join("metrics.csv"), agent.columns(), rows)?;
    eprintln!("resuming {} at step {}", dir.display(), agent.global_step());
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
    mut agent: Box<dyn OffPolicyAgent>,
    dir: &std::path::Path,
    mut csv: CsvLogger,
    checkpoint_every: u64,
    max_updates: Option<u64>,
    quiet: bool,
    factory: &EnvFactory,
) -> Result<()> {
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
    let mut phases = 0u64;
    // Checkpoints every `checkpoint_every` thousand env steps (the replay buffer makes them
    // larger than on-policy ones).
    let interval = checkpoint_every.saturating_mul(1000);
    let mut next_ckpt = agent.global_step() + interval;
    let ret_col = agent
        .columns()
        .iter()
        .position(|c| *c == "episodic_return_mean")
        .unwrap_or(0);
    while agent.global_step() < total {
        let row = agent.train_phase_row().with_context(|| {
            format!(
                "training stopped; the last good checkpoint is {}",
                ckpt.display()
            )
        })?;
        phases += 1;
        csv.log(&row).context("writing metrics.csv")?;
        bar.set_position(agent.global_step());
        bar.set_message(format!("return(100) {:.1}", row[ret_col]));
        if interval > 0 && agent.global_step() >= next_ckpt {
            agent.save_checkpoint(&ckpt)?;
            next_ckpt = agent.global_step() + interval;
        }
        if max_updates == Some(phases) && agent.global_step() < total {
            agent.save_checkpoint(&ckpt)?;
            bar.finish_and_clear();
            println!(
                "stopped after {phases} training phases at step {} of {total}; continue with: rein train --resume {}",
                agent.global_step(),
                dir.display()
            );
            return Ok(());
        }
    }
    agent.save_checkpoint(&ckpt)?;
    bar.finish_and_clear();
    drop(csv);
    crate::plot::learning_curve(dir, "global_step", "episodic_return_mean", "steps")?;
    let seed = agent.seed();
    let (mean, std) = agent.evaluate(factory, 10, 1_000_000 + seed)?;
    println!("run directory: {}", dir.display());
    println!("greedy policy over 10 episodes: return {mean:.2} +/- {std:.2}");
    let eval =
        json!({"episodes": 10, "deterministic": true, "mean_return": mean, "std_return": std});
    write_atomic(
        &dir.join("eval.json"),
        serde_json::to_string_pretty(&eval)?.as_bytes(),
    )?;
    Ok(())
}

/// Greedy evaluation of an off-policy run from its checkpoint.
pub fn eval(
    dir: &std::path::Path,
    algo: &str,
    env_id: &str,
    kwargs: &Map<String, serde_json::Value>,
    episodes: u64,
    seed: u64,
) -> Result<(f64, f64)> {
    let factory = env_factory(env_id, kwargs)?;
    let mut agent = load(algo, dir, &factory)?;
    Ok(agent.evaluate(&factory, episodes, seed)?)
}

#[derive(Args)]
#[command(after_help = "Example:\n  rein bench dqn --total-timesteps 20000")]
pub struct BenchDqnArgs {
    /// Environment (its shipped preset is used).
    #[arg(long, default_value = "CartPole-v1")]
    env: String,
    /// Steps to train.
    #[arg(long, default_value_t = 20_000)]
    total_timesteps: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// FLOPs of one DQN gradient step: online forward and backward on the batch, target forward
/// on the next observations (6 B i o per layer for the online net, 2 B i o for the target).
fn dqn_flops(q: &rein_nn::Mlp, batch: usize) -> f64 {
    let b = batch as f64;
    q.sizes()
        .windows(2)
        .map(|w| (6.0 + 2.0) * b * (w[0] * w[1]) as f64)
        .sum()
}

pub fn bench_dqn(a: &BenchDqnArgs) -> Result<()> {
    let mut cfg = base_config("dqn", &a.env)?;
    cfg["total_timesteps"] = json!(a.total_timesteps);
    // SB3's DQN has none of these; the comparison runs the same algorithm.
    for (k, v) in [
        ("double_q", false),
        ("dueling", false),
        ("anneal_lr", false),
    ] {
        cfg[k] = json!(v);
    }
    cfg["n_steps"] = json!(1);
    let config: DqnConfig = serde_json::from_value(cfg)?;
    let factory = env_factory(&a.env, &Map::new())?;
    let mut agent = Dqn::new(config.clone(), factory)?;
    let start = std::time::Instant::now();
    let mut last = DqnLog::default();
    agent.train(&mut |l| last = *l)?;
    let secs = start.elapsed().as_secs_f64();
    let sps = last.global_step as f64 / secs;
    let flops = dqn_flops(&agent.q, config.batch_size);
    let gflops = flops * last.grad_steps as f64 / secs / 1e9;
    let peak = sgemm_peak_gflops();
    if a.json {
        println!(
            "{}",
            json!({"env": a.env, "steps": last.global_step, "seconds": secs, "steps_per_second": sps,
                   "grad_steps": last.grad_steps, "mflop_per_grad_step": flops / 1e6, "gflops": gflops,
                   "sgemm_peak_gflops": peak, "fraction_of_peak": gflops / peak, "threads": 1})
        );
    } else {
        println!(
            "dqn {}: {} steps in {secs:.2} s = {sps:.0} steps/s (1 thread); {} gradient steps of {:.1} MFLOP = \
             {gflops:.1} GFLOP/s, {:.0}% of this machine's 1-thread sgemm peak ({peak:.1} GFLOP/s)",
            a.env,
            last.global_step,
            last.grad_steps,
            flops / 1e6,
            100.0 * gflops / peak
        );
    }
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein bench ddpg\n  rein bench td3 --total-timesteps 5000 --json\n  rein bench sac --env MountainCarContinuous-v0"
)]
pub struct BenchContinuousArgs {
    /// Environment (its shipped preset is used).
    #[arg(long, default_value = "Pendulum-v1")]
    env: String,
    /// Steps to train.
    #[arg(long, default_value_t = 20_000)]
    total_timesteps: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Weights (sum of fan-in x fan-out over layers) of an MLP.
fn weights(m: &rein_nn::Mlp) -> f64 {
    m.sizes().windows(2).map(|w| (w[0] * w[1]) as f64).sum()
}

/// `rein bench ddpg|td3|sac`: training throughput with the shipped preset and the achieved
/// GFLOP/s (a forward costs 2 FLOP per weight and sample, forward + backward 6).
pub fn bench_continuous(algo: &str, a: &BenchContinuousArgs) -> Result<()> {
    let mut cfg = base_config(algo, &a.env)?;
    cfg["total_timesteps"] = json!(a.total_timesteps);
    let factory = env_factory(&a.env, &Map::new())?;
    let (learning_starts, train_freq, gradient_steps, batch) = (
        cfg["learning_starts"].as_u64().unwrap_or(0),
        cfg["train_freq"].as_u64().unwrap_or(1).max(1),
        cfg["gradient_steps"].as_u64().unwrap_or(1),
        cfg["batch_size"].as_u64().unwrap_or(1) as f64,
    );
    let (start, flops_per_step, steps) = if algo == "sac" {
        let c: SacConfig = serde_json::from_value(cfg)?;
        let mut agent = Sac::new(c, factory)?;
        let (wa, wc) = (weights(&agent.actor), weights(&agent.critics[0]));
        let start = std::time::Instant::now();
        agent.train(&mut |_| {})?;
        // pi(s) fwd+bwd, pi(s') fwd, 2 target critics fwd, 2 critics fwd+bwd, and for the
        // actor loss 2 critics fwd + input gradient (4 per weight).
        (start, batch * (8.0 * wa + 24.0 * wc), agent.global_step())
    } else {
        let c: Td3Config = serde_json::from_value(cfg)?;
        let (n, delay) = (c.n_critics as f64, c.policy_delay as f64);
        let mut agent = Td3::new(c, factory)?;
        let (wa, wc) = (weights(&agent.actor), weights(&agent.critics[0]));
        let start = std::time::Instant::now();
        agent.train(&mut |_| {})?;
        // Critic step: target actor fwd, n x (target critic fwd + critic fwd+bwd); every
        // `delay` steps the actor step: actor fwd+bwd, critic fwd + input gradient.
        (
            start,
            batch * (2.0 * wa + 8.0 * n * wc + (6.0 * wa + 4.0 * wc) / delay),
            agent.global_step(),
        )
    };
    let secs = start.elapsed().as_secs_f64();
    let grad_steps = steps.saturating_sub(learning_starts) / train_freq * gradient_steps;
    let sps = steps as f64 / secs;
    let gflops = flops_per_step * grad_steps as f64 / secs / 1e9;
    let peak = sgemm_peak_gflops();
    if a.json {
        println!(
            "{}",
            json!({"algo": algo, "env": a.env, "steps": steps, "seconds": secs, "steps_per_second": sps,
                   "grad_steps": grad_steps, "mflop_per_grad_step": flops_per_step / 1e6, "gflops": gflops,
                   "sgemm_peak_gflops": peak, "fraction_of_peak": gflops / peak, "threads": 1})
        );
    } else {
        println!(
            "{algo} {}: {steps} steps in {secs:.2} s = {sps:.0} steps/s (1 thread); {grad_steps} gradient steps of \
             {:.1} MFLOP = {gflops:.1} GFLOP/s, {:.0}% of this machine's 1-thread sgemm peak ({peak:.1} GFLOP/s)",
            a.env,
            flops_per_step / 1e6,
            100.0 * gflops / peak
        );
    }
    Ok(())
}

/// One-thread sgemm throughput on 1024^3 products through the same `gemm` kernels.
pub fn sgemm_peak_gflops() -> f64 {
    use rein_nn::kernels::{matmul, Mat};
    let n = 1024;
    let a: Vec<f32> = (0..n * n).map(|k| (k % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|k| (k % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; n * n];
    matmul(Mat::new(&a, n, n), Mat::new(&b, n, n), &mut c, false); // warm-up
    let reps = 5;
    let start = std::time::Instant::now();
    for _ in 0..reps {
        matmul(Mat::new(&a, n, n), Mat::new(&b, n, n), &mut c, false);
    }
    2.0 * (n * n * n) as f64 * reps as f64 / start.elapsed().as_secs_f64() / 1e9
}

pub fn bench_gemm() -> Result<()> {
    println!(
        "sgemm 1024^3, 1 thread (gemm crate kernels): {:.1} GFLOP/s",
        sgemm_peak_gflops()
    );
    Ok(())
}
