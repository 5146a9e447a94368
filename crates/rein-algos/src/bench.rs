//! What `rein bench ppo|dqn|ddpg|td3|sac` and `rein bench learn` measure: training throughput
//! with the shipped presets and the FLOP count of a gradient step (a forward pass costs 2 FLOP
//! per weight and sample, forward + backward 6), and the learning table's rows. The binary
//! prints.

use crate::agent::{Agent, Algo};
use crate::dqn::{Dqn, DqnConfig, DqnLog};
use crate::onpolicy::EnvFactory;
use crate::ppo::{Ppo, PpoConfig};
use crate::sac::{Sac, SacConfig};
use crate::td3::{Td3, Td3Config};
use crate::AlgoError;
use rein_train::Trainer;
use std::sync::Arc;
use std::time::Instant;

/// One benchmark run's figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TrainingBench {
    /// Environment steps trained.
    pub steps: u64,
    /// Wall-clock seconds of training.
    pub seconds: f64,
    /// Gradient steps taken.
    pub grad_steps: u64,
    /// FLOPs of one gradient step.
    pub flops_per_grad_step: f64,
    /// Seconds collecting rollouts and optimising (PPO only).
    pub rollout_seconds: f64,
    /// See `rollout_seconds`.
    pub update_seconds: f64,
    /// Mean return of 10 deterministic episodes after training (PPO only).
    pub eval_return: f64,
}

impl TrainingBench {
    /// Environment steps per second.
    pub fn steps_per_second(&self) -> f64 {
        self.steps as f64 / self.seconds.max(1e-9)
    }
    /// Achieved GFLOP/s of the gradient steps over the whole training time.
    pub fn gflops(&self) -> f64 {
        self.flops_per_grad_step * self.grad_steps as f64 / self.seconds.max(1e-9) / 1e9
    }
}

fn settings<C: serde::de::DeserializeOwned>(
    algo: Algo,
    env: &str,
    total: u64,
    extra: &[(&str, serde_json::Value)],
) -> Result<C, AlgoError> {
    let mut cfg = algo.settings(env)?;
    cfg["total_timesteps"] = total.into();
    for (k, v) in extra {
        cfg[*k] = v.clone();
    }
    serde_json::from_value(cfg).map_err(|e| AlgoError::Config(e.to_string()))
}

/// PPO with the shipped preset for `env`: `total` steps from `seed`, the time split into
/// rollouts and updates, and the final deterministic return.
pub fn bench_ppo(
    env: &str,
    total: u64,
    seed: u64,
    make_env: EnvFactory,
) -> Result<TrainingBench, AlgoError> {
    let cfg: PpoConfig = settings(Algo::Ppo, env, total, &[("seed", seed.into())])?;
    let mut agent = Ppo::new(cfg, Arc::clone(&make_env))?;
    let start = Instant::now();
    while agent.global_step() < agent.config.total_timesteps {
        agent.update()?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut eval_env = make_env(0)?;
    let norm = agent.collector.norm.clone();
    let (eval_return, _) =
        agent
            .policy
            .evaluate(eval_env.as_mut(), norm.as_ref(), 10, true, 1_000_000)?;
    let t = agent.timing;
    Ok(TrainingBench {
        steps: agent.global_step(),
        seconds,
        grad_steps: t.grad_steps,
        flops_per_grad_step: agent.flops_per_grad_step(),
        rollout_seconds: t.rollout_secs,
        update_seconds: t.optimize_secs,
        eval_return,
    })
}

/// DQN as SB3 runs it (no Double DQN, dueling head, n-step returns, annealing or periodic
/// evaluation) with the
/// shipped preset's sizes: FLOPs of the online forward and backward on the batch and the
/// target forward on the next observations (6 + 2 per weight and sample).
pub fn bench_dqn(env: &str, total: u64, make_env: EnvFactory) -> Result<TrainingBench, AlgoError> {
    let off = serde_json::Value::Bool(false);
    let mut config: DqnConfig = settings(
        Algo::Dqn,
        env,
        total,
        &[
            ("double_q", off.clone()),
            ("dueling", off),
            ("n_steps", 1.into()),
            ("eval_freq", 0.into()),
        ],
    )?;
    let lr = config.learning_rate.initial();
    config.learning_rate = rein_core::schedule::Schedule::Constant { value: lr };
    let mut agent = Dqn::new(config.clone(), make_env)?;
    let start = Instant::now();
    let mut last = DqnLog::default();
    agent.train(&mut |l| last = *l)?;
    let b = config.batch_size as f64;
    Ok(TrainingBench {
        steps: last.global_step,
        seconds: start.elapsed().as_secs_f64(),
        grad_steps: last.grad_steps,
        flops_per_grad_step: 8.0 * b * weights(&agent.q),
        ..Default::default()
    })
}

/// Weights (sum of fan-in x fan-out over layers) of an MLP.
fn weights(m: &rein_nn::Mlp) -> f64 {
    m.sizes().windows(2).map(|w| (w[0] * w[1]) as f64).sum()
}

/// DDPG, TD3 or SAC with the shipped preset for `env` (the steps include the uniformly random
/// warm-up steps).
pub fn bench_continuous(
    algo: Algo,
    env: &str,
    total: u64,
    make_env: EnvFactory,
) -> Result<TrainingBench, AlgoError> {
    let start;
    let (steps, flops, warmup, train_freq, gradient_steps) = if algo == Algo::Sac {
        let c: SacConfig = settings(algo, env, total, &[])?;
        let b = c.batch_size as f64;
        let mut agent = Sac::new(c.clone(), make_env)?;
        let (wa, wc) = (weights(&agent.actor), weights(&agent.critics[0]));
        start = Instant::now();
        agent.train(&mut |_| {})?;
        // pi(s) fwd+bwd, pi(s') fwd, 2 target critics fwd, 2 critics fwd+bwd, and for the
        // actor loss 2 critics fwd + input gradient (4 per weight).
        let flops = b * (8.0 * wa + 24.0 * wc);
        let g = (c.learning_starts, c.train_freq, c.gradient_steps);
        (agent.global_step(), flops, g.0, g.1, g.2)
    } else {
        let c: Td3Config = settings(algo, env, total, &[])?;
        let (b, n, delay) = (
            c.batch_size as f64,
            c.n_critics as f64,
            c.policy_delay as f64,
        );
        let mut agent = Td3::new(c.clone(), make_env)?;
        let (wa, wc) = (weights(&agent.actor), weights(&agent.critics[0]));
        start = Instant::now();
        agent.train(&mut |_| {})?;
        // Critic step: target actor fwd, n x (target critic fwd + critic fwd+bwd); every
        // `delay` steps the actor step: actor fwd+bwd, critic fwd + input gradient.
        let flops = b * (2.0 * wa + 8.0 * n * wc + (6.0 * wa + 4.0 * wc) / delay);
        let g = (c.learning_starts, c.train_freq, c.gradient_steps);
        (agent.global_step(), flops, g.0, g.1, g.2)
    };
    Ok(TrainingBench {
        steps,
        seconds: start.elapsed().as_secs_f64(),
        // Under MPI `steps` counts every rank's; each rank took its share of gradient steps.
        grad_steps: steps.saturating_sub(warmup)
            / (train_freq.max(1) * rein_core::collective::world().size() as u64)
            * gradient_steps,
        flops_per_grad_step: flops,
        ..Default::default()
    })
}

/// One row of the learning table: train `algo` on `env` for `steps` with seeds 0..n and
/// require `needed` seeds to reach `threshold` (mean of 10 deterministic evaluation episodes).
#[derive(Debug, Clone, Copy)]
pub struct LearnRow {
    /// The algorithm.
    pub algo: Algo,
    /// Its name in the table.
    pub label: &'static str,
    /// The env id.
    pub env: &'static str,
    /// The published return to reach.
    pub threshold: f64,
    /// Environment steps to train.
    pub steps: u64,
    /// Seeds (of 3) that must reach the threshold.
    pub needed: u64,
}

const fn row(
    algo: Algo,
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

/// The rows of `rein bench learn` (README's learning table).
pub const LEARN_ROWS: &[LearnRow] = &[
    row(Algo::Ppo, "PPO", "CartPole-v1", 475.0, 100_000, 3),
    row(Algo::Ppo, "PPO", "Acrobot-v1", -100.0, 200_000, 3),
    row(Algo::Ppo, "PPO", "Pendulum-v1", -300.0, 300_000, 2),
    row(Algo::A2c, "A2C", "CartPole-v1", 475.0, 500_000, 2),
    row(
        Algo::Reinforce,
        "REINFORCE + baseline",
        "CartPole-v1",
        475.0,
        500_000,
        2,
    ),
    row(Algo::Dqn, "DQN", "CartPole-v1", 475.0, 100_000, 2),
    row(Algo::Dqn, "DQN", "MountainCar-v0", -120.0, 300_000, 2),
    row(Algo::Ddpg, "DDPG", "Pendulum-v1", -200.0, 20_000, 2),
    row(Algo::Td3, "TD3", "Pendulum-v1", -200.0, 20_000, 2),
    row(Algo::Sac, "SAC", "Pendulum-v1", -200.0, 20_000, 2),
    row(
        Algo::Sac,
        "SAC",
        "MountainCarContinuous-v0",
        90.0,
        50_000,
        2,
    ),
    // MuJoCo (issue 19): thresholds below the published returns of CleanRL and the zoo.
    row(Algo::Ppo, "PPO", "HalfCheetah-v5", 1500.0, 1_000_000, 2),
    row(Algo::Ppo, "PPO", "Hopper-v5", 2000.0, 1_000_000, 2),
    row(Algo::Ppo, "PPO", "Walker2d-v5", 2000.0, 1_000_000, 2),
    row(Algo::Sac, "SAC", "HalfCheetah-v5", 5000.0, 300_000, 2),
    row(Algo::Td3, "TD3", "Hopper-v5", 2500.0, 300_000, 2),
    row(
        Algo::Sac,
        "SAC",
        "dm_control/cheetah-run-v0",
        400.0,
        300_000,
        2,
    ),
];

/// Trains one learning-table run and returns its mean deterministic evaluation return (10
/// episodes seeded `1_000_000 + seed + k`).
pub fn learn_run(row: &LearnRow, seed: u64, make_env: EnvFactory) -> Result<f64, AlgoError> {
    let mut cfg = row.algo.settings(row.env)?;
    cfg["total_timesteps"] = row.steps.into();
    cfg["seed"] = seed.into();
    let mut agent = Agent::new(row.algo, cfg, make_env)?;
    while !agent.progress().finished() {
        agent
            .update()
            .map_err(|e| AlgoError::NonFinite(e.to_string()))?;
    }
    Ok(agent.evaluate_returns(10, true, 1_000_000 + seed)?.0)
}
