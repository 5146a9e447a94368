//! `rein train dqn`, `rein bench dqn` and `rein bench gemm`.

use crate::cmd_pg::{env_factory, CHECKPOINT};
use crate::cmd_train::{merge_settings, TrainArgs};
use crate::options::kv_map;
use crate::run_dir;
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rein_algos::dqn::{Dqn, DqnConfig, DqnLog};
use rein_core::metrics::{write_atomic, CsvLogger};
use serde_json::{json, Map};

fn base_config(env_id: &str) -> Result<serde_json::Value> {
    let mut base = serde_json::to_value(DqnConfig::default())?;
    if let Some(text) = DqnConfig::preset_toml(env_id) {
        let table: toml::Table = toml::from_str(text).context("shipped preset")?;
        for (k, v) in table {
            crate::options::set_path(&mut base, &k, serde_json::to_value(v)?)?;
        }
    }
    Ok(base)
}

pub fn train(a: &TrainArgs, env_id: &str) -> Result<()> {
    if a.episodes.is_some() {
        bail!("dqn counts --total-timesteps, not --episodes");
    }
    let kwargs = kv_map(&a.options)?;
    let mut cfg = merge_settings(base_config(env_id)?, a.config.as_ref(), &a.set)?;
    if let Some(seed) = a.seed {
        cfg["seed"] = json!(seed);
    }
    if let Some(n) = a.total_timesteps {
        cfg["total_timesteps"] = json!(n);
    }
    let config: DqnConfig = serde_json::from_value(cfg.clone()).context("invalid settings")?;
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    let factory = env_factory(env_id, &kwargs)?;
    let agent = Dqn::new(config.clone(), std::sync::Arc::clone(&factory))?;
    let dir = run_dir::create(&a.runs_dir, env_id, "dqn", config.seed)?;
    let effective = json!({"algo": "dqn", "env": env_id, "env_options": kwargs, "config": cfg});
    write_atomic(
        &dir.join("config.toml"),
        toml::to_string_pretty(&effective)?.as_bytes(),
    )?;
    let csv = CsvLogger::create(&dir.join("metrics.csv"), &DqnLog::COLUMNS)?;
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

/// Continues a DQN run from its checkpoint (replay buffer included), exactly.
pub fn resume(
    dir: &std::path::Path,
    env_id: &str,
    kwargs: &Map<String, serde_json::Value>,
    checkpoint_every: u64,
    max_updates: Option<u64>,
    quiet: bool,
) -> Result<()> {
    let factory = env_factory(env_id, kwargs)?;
    let ckpt = dir.join(CHECKPOINT);
    if !ckpt.exists() {
        bail!("{}: no checkpoint to resume from", ckpt.display());
    }
    let agent = Dqn::load_checkpoint(&ckpt, std::sync::Arc::clone(&factory))?;
    // One metrics row per training phase of train_freq steps.
    let rows = agent.global_step.div_ceil(agent.config.train_freq.max(1)) as usize;
    let csv = CsvLogger::resume(&dir.join("metrics.csv"), &DqnLog::COLUMNS, rows)?;
    eprintln!("resuming {} at step {}", dir.display(), agent.global_step);
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
    mut agent: Dqn,
    dir: &std::path::Path,
    mut csv: CsvLogger,
    checkpoint_every: u64,
    max_updates: Option<u64>,
    quiet: bool,
    factory: &rein_algos::onpolicy::EnvFactory,
) -> Result<()> {
    let total = agent.config.total_timesteps;
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
    bar.set_position(agent.global_step);
    let ckpt = dir.join(CHECKPOINT);
    let mut phases = 0u64;
    while agent.global_step < total {
        let l = agent.train_phase().with_context(|| {
            format!(
                "training stopped; the last good checkpoint is {}",
                ckpt.display()
            )
        })?;
        phases += 1;
        csv.log(&l.row()).context("writing metrics.csv")?;
        bar.set_position(l.global_step);
        bar.set_message(format!(
            "return(100) {:.1}  eps {:.3}  {:.0} steps/s",
            l.ep_return_mean, l.epsilon, l.sps
        ));
        if checkpoint_every > 0 && phases.is_multiple_of(checkpoint_every) {
            agent.save_checkpoint(&ckpt)?;
        }
        if max_updates == Some(phases) && agent.global_step < total {
            agent.save_checkpoint(&ckpt)?;
            bar.finish_and_clear();
            println!(
                "stopped after {phases} training phases at step {} of {total}; continue with: rein train --resume {}",
                agent.global_step,
                dir.display()
            );
            return Ok(());
        }
    }
    agent.save_checkpoint(&ckpt)?;
    bar.finish_and_clear();
    drop(csv);
    crate::plot::learning_curve(dir, "global_step", "episodic_return_mean", "steps")?;
    let (mean, std) = agent.evaluate(factory, 10, 1_000_000 + agent.config.seed)?;
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

/// Greedy evaluation of a DQN run from its saved Q-network.
pub fn eval(
    dir: &std::path::Path,
    env_id: &str,
    kwargs: &Map<String, serde_json::Value>,
    config: serde_json::Value,
    episodes: u64,
    seed: u64,
) -> Result<(f64, f64)> {
    let config: DqnConfig =
        serde_json::from_value(config).context("config.toml: invalid dqn settings")?;
    let factory = env_factory(env_id, kwargs)?;
    let mut agent = Dqn::new(config, std::sync::Arc::clone(&factory))?;
    let (tensors, _) = rein_nn::io::load(&dir.join(CHECKPOINT))?;
    agent
        .q
        .load_tensors("q", &tensors)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join(CHECKPOINT).display()))?;
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
    let mut cfg = base_config(&a.env)?;
    cfg["total_timesteps"] = json!(a.total_timesteps);
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
