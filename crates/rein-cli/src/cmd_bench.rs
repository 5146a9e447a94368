//! Training-speed benchmarks of the small-network agents (`rein bench ppo|dqn|ddpg|td3|sac|gemm`)
//! and the learning table (`rein bench learn`).

use crate::cmd_train::env_factory;
use anyhow::{bail, Result};
use clap::Args;
use rein_algos::agent::{self, Agent};
use rein_algos::dqn::{Dqn, DqnConfig, DqnLog};
use rein_algos::onpolicy::EnvFactory;
use rein_algos::ppo::{Ppo, PpoConfig};
use rein_algos::sac::{Sac, SacConfig};
use rein_algos::td3::{Td3, Td3Config};
use rein_core::metrics::write_atomic;
use rein_train::Trainer;
use serde_json::{json, Map};
use std::path::PathBuf;
use std::sync::Arc;

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
    let mut cfg = agent::Algo::Ppo.settings(&a.env)?;
    cfg["total_timesteps"] = json!(a.total_timesteps);
    cfg["seed"] = json!(a.seed);
    let cfg: PpoConfig = serde_json::from_value(cfg)?;
    let mut agent = Ppo::new(cfg, env_factory(&a.env, &Map::new())?)?;
    let start = std::time::Instant::now();
    while agent.global_step() < agent.config.total_timesteps {
        agent.train_update()?;
    }
    let secs = start.elapsed().as_secs_f64();
    let mut env = rein_envs::make(&a.env)?;
    let norm = agent.collector.norm.clone();
    let (mean, _) = agent
        .policy
        .evaluate(env.as_mut(), norm.as_ref(), 10, true, 1_000_000)?;
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
    algo: agent::Algo,
    label: &'static str,
    env: &'static str,
    threshold: f64,
    steps: u64,
    needed: u64,
}

const LEARN_ROWS: &[LearnRow] = &[
    row(agent::Algo::Ppo, "PPO", "CartPole-v1", 475.0, 100_000, 3),
    row(agent::Algo::Ppo, "PPO", "Acrobot-v1", -100.0, 200_000, 3),
    row(agent::Algo::Ppo, "PPO", "Pendulum-v1", -300.0, 300_000, 2),
    row(agent::Algo::A2c, "A2C", "CartPole-v1", 475.0, 500_000, 2),
    row(
        agent::Algo::Reinforce,
        "REINFORCE + baseline",
        "CartPole-v1",
        475.0,
        500_000,
        2,
    ),
    row(agent::Algo::Dqn, "DQN", "CartPole-v1", 475.0, 100_000, 2),
    row(
        agent::Algo::Dqn,
        "DQN",
        "MountainCar-v0",
        -120.0,
        300_000,
        2,
    ),
    row(agent::Algo::Ddpg, "DDPG", "Pendulum-v1", -200.0, 20_000, 2),
    row(agent::Algo::Td3, "TD3", "Pendulum-v1", -200.0, 20_000, 2),
    row(agent::Algo::Sac, "SAC", "Pendulum-v1", -200.0, 20_000, 2),
    row(
        agent::Algo::Sac,
        "SAC",
        "MountainCarContinuous-v0",
        90.0,
        50_000,
        2,
    ),
];

const fn row(
    algo: agent::Algo,
    label: &'static str,
    env: &'static str,
    threshold: f64,
    steps: u64,
    needed: u64,
) -> LearnRow {
    LearnRow {
        algo,
        label,
        env,
        threshold,
        steps,
        needed,
    }
}

/// Trains one learning-table run and returns its mean deterministic evaluation return.
fn learn_run(row: &LearnRow, seed: u64, factory: &EnvFactory) -> Result<f64> {
    let mut cfg = row.algo.settings(row.env)?;
    cfg["total_timesteps"] = json!(row.steps);
    cfg["seed"] = json!(seed);
    let mut agent = Agent::new(row.algo, cfg, Arc::clone(factory))?;
    while !agent.progress().finished() {
        agent.update().map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(agent.evaluate_returns(10, true, 1_000_000 + seed)?.0)
}

pub fn bench_learn(a: &BenchLearnArgs) -> Result<()> {
    let mut md = String::from(
        "| algorithm | env | threshold (mean of 10 eval episodes) | within | seeds reaching it | eval returns per seed | wall time |\n|---|---|---|---|---|---|---|\n",
    );
    let mut all_pass = true;
    for row in LEARN_ROWS {
        if let Some(f) = &a.only {
            if !format!("{}/{}", row.algo.name(), row.env).contains(f.as_str()) {
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
    let mut cfg = agent::Algo::Dqn.settings(&a.env)?;
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
pub fn bench_continuous(algo: agent::Algo, a: &BenchContinuousArgs) -> Result<()> {
    let mut cfg = algo.settings(&a.env)?;
    cfg["total_timesteps"] = json!(a.total_timesteps);
    let factory = env_factory(&a.env, &Map::new())?;
    let (learning_starts, train_freq, gradient_steps, batch) = (
        cfg["learning_starts"].as_u64().unwrap_or(0),
        cfg["train_freq"].as_u64().unwrap_or(1).max(1),
        cfg["gradient_steps"].as_u64().unwrap_or(1),
        cfg["batch_size"].as_u64().unwrap_or(1) as f64,
    );
    let (start, flops_per_step, steps) = if algo == agent::Algo::Sac {
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
            json!({"algo": algo.name(), "env": a.env, "steps": steps, "seconds": secs, "steps_per_second": sps,
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
