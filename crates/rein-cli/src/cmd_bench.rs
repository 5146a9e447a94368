//! `rein bench ...`: training-speed benchmarks of the small-network agents (`ppo`, `dqn`,
//! `ddpg`, `td3`, `sac`, `gemm`), the learning table (`learn`) and the language models (`lm`,
//! `lm-rl`); the measuring lives in the libraries (`rein_lm::bench`), printing here.

use crate::cmd_train::env_factory;
use anyhow::{bail, Context, Result};
use clap::Args;
use rein_algos::{agent, bench};
use rein_core::metrics::write_atomic;
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
    let factory = env_factory(&a.env, &Map::new())?;
    let b = bench::bench_ppo(&a.env, a.total_timesteps, a.seed, factory)?;
    let (secs, sps, flops) = (b.seconds, b.steps_per_second(), b.flops_per_grad_step);
    let ms_per_step = 1e3 * b.update_seconds / b.grad_steps.max(1) as f64;
    let gflops = flops * b.grad_steps as f64 / b.update_seconds.max(1e-9) / 1e9;
    // Under mpirun: steps of all ranks, gradient steps of each (every one an allreduce).
    let world = rein_core::collective::world();
    let ranks = world.size();
    if world.rank() != 0 {
        return Ok(());
    }
    let grad_per_second = b.grad_steps as f64 / secs.max(1e-9);
    if a.json {
        println!(
            "{}",
            json!({"env": a.env, "steps": b.steps, "seconds": secs, "steps_per_second": sps,
                   "grad_steps": b.grad_steps, "grad_steps_per_second": grad_per_second,
                   "ms_per_grad_step": ms_per_step, "mflop_per_grad_step": flops / 1e6,
                   "gflops": gflops, "rollout_seconds": b.rollout_seconds, "update_seconds": b.update_seconds,
                   "eval_return": b.eval_return, "threads": 1, "ranks": ranks})
        );
    } else {
        println!(
            "ppo {}: {} steps in {secs:.2} s = {sps:.0} steps/s ({ranks} rank(s), 1 thread each); {} gradient steps \
             ({grad_per_second:.1}/s) at {ms_per_step:.3} ms ({:.1} MFLOP each, {gflops:.1} GFLOP/s); rollouts {:.2} s, \
             updates {:.2} s; final deterministic return {:.1}",
            a.env, b.steps, b.grad_steps, flops / 1e6, b.rollout_seconds, b.update_seconds, b.eval_return
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

pub fn bench_learn(a: &BenchLearnArgs) -> Result<()> {
    let mut md = String::from(
        "| algorithm | env | threshold (mean of 10 eval episodes) | within | seeds reaching it | eval returns per seed | wall time |\n|---|---|---|---|---|---|---|\n",
    );
    let mut all_pass = true;
    for row in bench::LEARN_ROWS {
        if let Some(f) = &a.only {
            if !format!("{}/{}", row.algo.name(), row.env).contains(f.as_str()) {
                continue;
            }
        }
        let factory = env_factory(row.env, &Map::new())?;
        let mut returns = Vec::new();
        let start = std::time::Instant::now();
        for seed in 0..a.seeds {
            let mean = bench::learn_run(row, seed, Arc::clone(&factory))?;
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
#[command(
    after_help = "Examples:\n  rein bench dqn --total-timesteps 20000\n  rein bench ddpg\n  rein bench td3 --total-timesteps 5000 --json\n  rein bench sac --env MountainCarContinuous-v0"
)]
pub struct BenchOffPolicyArgs {
    /// Environment (its shipped preset is used); default CartPole-v1 for dqn, Pendulum-v1
    /// for ddpg, td3 and sac.
    #[arg(long)]
    env: Option<String>,
    /// Steps to train.
    #[arg(long, default_value_t = 20_000)]
    total_timesteps: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Prints a benchmark of an off-policy agent against the sgemm peak.
fn print_off_policy(algo: agent::Algo, env: &str, b: &bench::TrainingBench, json_out: bool) {
    let (secs, sps, gflops) = (b.seconds, b.steps_per_second(), b.gflops());
    let peak = rein_nn::kernels::sgemm_peak_gflops();
    let mflop = b.flops_per_grad_step / 1e6;
    if json_out {
        println!(
            "{}",
            json!({"algo": algo.name(), "env": env, "steps": b.steps, "seconds": secs, "steps_per_second": sps,
                   "grad_steps": b.grad_steps, "mflop_per_grad_step": mflop, "gflops": gflops,
                   "sgemm_peak_gflops": peak, "fraction_of_peak": gflops / peak, "threads": 1})
        );
    } else {
        println!(
            "{algo} {env}: {} steps in {secs:.2} s = {sps:.0} steps/s (1 thread); {} gradient steps of {mflop:.1} MFLOP = \
             {gflops:.1} GFLOP/s, {:.0}% of this machine's 1-thread sgemm peak ({peak:.1} GFLOP/s)",
            b.steps, b.grad_steps, 100.0 * gflops / peak
        );
    }
}

/// `rein bench dqn|ddpg|td3|sac`: training throughput with the shipped preset (for DQN as SB3
/// runs it: no Double DQN, dueling head, n-step returns or annealing) and the achieved GFLOP/s.
pub fn bench_off_policy(algo: agent::Algo, a: &BenchOffPolicyArgs) -> Result<()> {
    let default_env = if algo == agent::Algo::Dqn {
        "CartPole-v1"
    } else {
        "Pendulum-v1"
    };
    let env = a.env.as_deref().unwrap_or(default_env);
    let factory = env_factory(env, &Map::new())?;
    let b = match algo {
        agent::Algo::Dqn => bench::bench_dqn(env, a.total_timesteps, factory)?,
        _ => bench::bench_continuous(algo, env, a.total_timesteps, factory)?,
    };
    // Under mpirun rank 0 reports: steps of all ranks, gradient steps of each.
    if rein_core::collective::is_root() {
        print_off_policy(algo, env, &b, a.json);
    }
    Ok(())
}

pub fn bench_gemm() -> Result<()> {
    println!(
        "sgemm 1024^3, 1 thread (gemm crate kernels): {:.1} GFLOP/s",
        rein_nn::kernels::sgemm_peak_gflops()
    );
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein bench lm\n  rein bench lm --sizes tiny --json\n  rein bench lm --model SmolLM2-135M-Instruct.Q4_1.gguf\n  rein bench lm --model DIR --reps 5 --json\n\nSizes: small = GPT-2 small (124M, random weights), tiny = 4 layers, 256 wide, vocab 8192."
)]
pub struct BenchLmArgs {
    /// Comma-separated model sizes: tiny, small (random GPT-2s).
    #[arg(long, default_value = "tiny,small")]
    sizes: String,
    /// Benchmark this model (a directory or .gguf file) on the transformers comparison's
    /// workloads instead: forward 4x128, greedy generation at batch 1 and 8, a training step.
    #[arg(long, conflicts_with = "sizes")]
    model: Option<PathBuf>,
    /// Timed repetitions per workload with --model (median reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `rein bench lm`.
pub fn bench_lm(a: &BenchLmArgs) -> Result<()> {
    if let Some(path) = &a.model {
        return bench_lm_model(path, a);
    }
    let mut results = Vec::new();
    for size in a.sizes.split(',').map(str::trim) {
        let r = rein_lm::bench::bench_lm(size)?;
        if !a.json {
            println!(
                "{size} ({:.1}M parameters): forward 8x128 {:.3} s; greedy generation (batch 1, 16-token prompt, 64 new) {:.1} tokens/s; train step 8x128 (fwd + bwd + AdamW) {:.3} s",
                r.parameters as f64 / 1e6,
                r.forward_8x128_seconds,
                r.generate_tokens_per_second,
                r.train_step_8x128_seconds
            );
        }
        results.push(r);
    }
    if a.json {
        let threads = rein_lm::bench::rayon_threads();
        println!("{}", json!({"threads": threads, "results": results}));
    }
    Ok(())
}

/// `rein bench lm --model PATH`: one line per workload, with the memory-bandwidth bound of
/// batch-1 decoding and the training step's arithmetic rate.
fn bench_lm_model(path: &std::path::Path, a: &BenchLmArgs) -> Result<()> {
    let model = rein_lm::checkpoint::load_model(path)?;
    let r = rein_lm::bench::bench_model_workloads(&model, a.reps)?;
    let threads = rein_lm::bench::rayon_threads();
    if a.json {
        println!(
            "{}",
            json!({"model": path.display().to_string(), "threads": threads, "result": r})
        );
        return Ok(());
    }
    let gflops = r.train_step_flops / r.train_step_4x128_seconds / 1e9;
    println!(
        "{} ({:.1}M parameters, {:.0} MB of f32 weights, {threads} threads)",
        path.display(),
        r.parameters as f64 / 1e6,
        r.weight_bytes as f64 / 1e6
    );
    println!("forward 4x128 {:.3} s", r.forward_4x128_seconds);
    println!(
        "generation batch 1: {:.1} tokens/s (each token reads the {:.0} MB of weights: {:.1} GB/s)",
        r.generation_batch1_tokens_per_second,
        r.weight_bytes as f64 / 1e6,
        r.generation_batch1_tokens_per_second * r.weight_bytes as f64 / 1e9
    );
    println!(
        "generation batch 8: {:.1} tokens/s",
        r.generation_batch8_tokens_per_second
    );
    println!(
        "train step 4x128 {:.3} s ({:.1} GFLOP at {gflops:.1} GFLOP/s; compare `rein bench gemm`)",
        r.train_step_4x128_seconds,
        r.train_step_flops / 1e9
    );
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein bench lm-rl\n  rein bench lm-rl --steps 10 --json\n  rein bench lm-rl --save-model /tmp/tiny   # also writes the model for bench/grpo_trl.py\n  rein bench lm-rl --model SmolLM2-135M-Instruct.Q4_1.gguf --steps 3\n  rein bench lm-rl --model models/smollm2 --lora\n\nWithout --model: GRPO and PPO steps on a tiny random GPT-2. With --model: GRPO steps on that\nmodel as TRL's GRPOTrainer benchmark runs them (2 chat prompts x 4 completions x exactly 32\ntokens, beta 0, one iteration; --lora: an adapter r 16, alpha 32 on q/k/v/o_proj), printing\n`GRPO step S s`, where the time goes and the peak resident memory.\nbench/lm_rl_vs_trl.sh and bench/lm_rl_model_vs_trl.sh run these and TRL in one invocation\nand print the ratio."
)]
pub struct BenchLmRlArgs {
    /// A real model (directory or .gguf) to time GRPO steps on instead of the tiny GPT-2.
    #[arg(long)]
    model: Option<PathBuf>,
    /// With --model: train a LoRA adapter (r 16, alpha 32, q/k/v/o_proj) instead of every
    /// weight.
    #[arg(long, requires = "model")]
    lora: bool,
    /// Measured steps per trainer (after one warm-up step).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Also write the benchmark model and tokenizer to this directory.
    #[arg(long)]
    save_model: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), if known.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// `rein bench lm-rl --model`: GRPO steps on a real model.
fn bench_lm_rl_model(path: &std::path::Path, a: &BenchLmRlArgs) -> Result<()> {
    use rein_lm::models::lora::LoraSettings;
    let p = rein_lm::pretrained::Pretrained::load(path)?;
    let tk = p.need_tokenizer()?.clone();
    let template = p
        .chat_template
        .clone()
        .with_context(|| format!("{}: the model has no chat template", path.display()))?;
    let mut model = p.model;
    if a.lora {
        let lora = LoraSettings {
            enabled: true,
            ..Default::default()
        };
        model = model.with_new_adapter(&lora, Some(path), 0)?;
    }
    let r = rein_lm::bench::bench_grpo_on_model(model, &template, &tk, a.steps)?;
    let peak = peak_rss_mib();
    let out = json!({
        "model": path,
        "lora": a.lora,
        "threads": rein_lm::bench::rayon_threads(),
        "grpo_seconds_per_step": r.seconds_per_step,
        "phases": r.phases,
        "trainable_parameters": r.trainable_parameters,
        "peak_rss_mib": peak,
        "steps": r.steps,
        "shape": "2 chat prompts x 4 completions x 32 tokens, beta 0, 1 iteration",
    });
    if a.json {
        println!("{out}");
    } else {
        let ph = &r.phases;
        println!("GRPO step {:.3} s", r.seconds_per_step);
        println!(
            "  generation {:.3} s, log-probs {:.3} s, backward {:.3} s, optimizer {:.3} s (medians of {} steps, {} threads, {} trainable parameters{})",
            ph.generation,
            ph.logprobs,
            ph.backward,
            ph.optimizer,
            r.steps,
            rein_lm::bench::rayon_threads(),
            r.trainable_parameters,
            if a.lora { ", LoRA r 16" } else { "" }
        );
        if let Some(m) = peak {
            println!("  peak resident memory {m:.0} MiB");
        }
    }
    Ok(())
}

/// `rein bench lm-rl`.
pub fn bench_lm_rl(a: &BenchLmRlArgs) -> Result<()> {
    if let Some(path) = &a.model {
        return bench_lm_rl_model(path, a);
    }
    use rein_lm::bench::{bench_model, bench_prompts, bench_rl, bench_tokenizer, rayon_threads};
    let dir = a.save_model.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("rein_bench_lm_rl_{}", std::process::id()))
    });
    let tk = bench_tokenizer(&dir)?;
    let model = bench_model()?;
    if a.save_model.is_some() {
        rein_lm::checkpoint::save_model(&model, &dir, &[])?;
        let prompts: Vec<String> = bench_prompts(2).into_iter().map(|p| p.prompt).collect();
        write_atomic(
            &dir.join("prompts.json"),
            serde_json::to_string(&prompts)?.as_bytes(),
        )?;
    }
    let r = bench_rl(model, &tk, a.steps)?;
    if a.save_model.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    // Under mpirun every rank takes its share: 2 prompts x 4 completions per rank and step.
    let world = rein_core::collective::world();
    let ranks = world.size();
    if world.rank() != 0 {
        return Ok(());
    }
    let completions_per_second = (8 * ranks) as f64 / r.grpo_seconds_per_step;
    let out = json!({
        "model": "GPT-2 4 layers, 256 wide, 4 heads, vocab 8192 (random weights)",
        "threads": rayon_threads(),
        "ranks": ranks,
        "grpo_completions_per_second": completions_per_second,
        "grpo_seconds_per_step": r.grpo_seconds_per_step,
        "grpo_shape": "2 prompts x 4 completions x 32 tokens, 1 optimizer step",
        "ppo_seconds_per_step": r.ppo_seconds_per_step,
        "ppo_shape": "8 prompts x 1 completion x 32 tokens, 4 PPO epochs of 1 minibatch, value head",
        "steps": r.steps,
    });
    if a.json {
        println!("{out}");
    } else {
        println!(
            "GRPO step (8 completions of 32 tokens per rank): {:.4} s = {completions_per_second:.1} completions/s; \
             PPO step (8 completions, 4 epochs): {:.4} s (median of {}, {} threads, {ranks} rank(s))",
            r.grpo_seconds_per_step, r.ppo_seconds_per_step, r.steps, rayon_threads()
        );
    }
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  mpirun -np 2 rein bench allreduce\n  mpirun -np 2 rein bench allreduce --floats 1000000 --repeats 50\n\nWithout --floats: the gradient sizes of PPO CartPole-v1 (9,155), PPO HalfCheetah-v5 (142,605),\nSAC HalfCheetah-v5 (217,871) and the benchmark GPT-2 of `rein bench lm-rl` (5,289,472)."
)]
pub struct BenchAllreduceArgs {
    /// Buffer sizes in f32 values (repeat the flag for several).
    #[arg(long)]
    floats: Vec<usize>,
    /// Allreduces per size (the time is their mean).
    #[arg(long, default_value_t = 200)]
    repeats: usize,
}

/// `rein bench allreduce`: times `rein_core::collective::average_f32`, what every optimiser
/// step of a data-parallel run calls once.
pub fn bench_allreduce(a: &BenchAllreduceArgs) -> Result<()> {
    let world = rein_core::collective::world();
    if world.size() == 1 {
        bail!("rein bench allreduce measures MPI ranks: run it under mpirun -np N (a build with --features mpi)");
    }
    let sizes = if a.floats.is_empty() {
        vec![9_155, 142_605, 217_871, 5_289_472]
    } else {
        a.floats.clone()
    };
    for n in sizes {
        let mut buf = vec![1.0f32; n];
        // Fewer repeats of the large buffers: about the same time per size.
        let repeats = (a.repeats * 100_000 / n.max(100_000)).max(3);
        rein_core::collective::any(false);
        let clock = std::time::Instant::now();
        for _ in 0..repeats {
            rein_core::collective::average_f32(&mut buf);
        }
        let ms = 1e3 * clock.elapsed().as_secs_f64() / repeats as f64;
        if world.rank() == 0 {
            println!(
                "allreduce of {n} f32 ({:.2} MB) over {} ranks: {ms:.3} ms ({:.2} GB/s of buffer)",
                4.0 * n as f64 / 1e6,
                world.size(),
                4.0 * n as f64 / (ms * 1e6)
            );
        }
    }
    Ok(())
}
