//! `rein eval RUN_DIR`: the return of a run's policy over fresh episodes, optionally with a GIF
//! of one episode.

use crate::cmd_train::env_factory;
use anyhow::{bail, Result};
use clap::Args;
use rein_algos::agent::{self, Agent};
use rein_train::files;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rein eval runs/CartPole-v1__ppo__1__20261128-230000 --episodes 20 --deterministic\n  rein eval runs/Taxi-v4__qlearning__0__20261128-230000"
)]
pub struct EvalArgs {
    /// A run directory written by `rein train`.
    run_dir: PathBuf,
    /// Episodes to run (at least 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
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
    agent: &mut Agent,
    env_id: &str,
    deterministic: bool,
    seed: u64,
    path: &Path,
) -> Result<()> {
    let Some(frames) = agent.render_episode(deterministic, seed)? else {
        bail!("{env_id} renders text, not frames: --gif needs a classic-control env")
    };
    crate::gif::write_gif(path, &frames, 2)?;
    println!("wrote {} frames to {}", frames.len(), path.display());
    Ok(())
}

pub fn eval(a: &EvalArgs) -> Result<()> {
    let rc = agent::RunConfig::read(&a.run_dir)?;
    let (mean, std) = if agent::Algo::from_name(&rc.algo).is_some() {
        let ckpt = a.run_dir.join(files::CHECKPOINT);
        let mut agent = Agent::load(&ckpt, env_factory(&rc.env, &rc.env_options)?)?;
        if let Some(path) = &a.gif {
            record_gif(&mut agent, &rc.env, a.deterministic, a.seed, path)?;
        }
        agent.evaluate_returns(a.episodes, a.deterministic, a.seed)?
    } else {
        if a.gif.is_some() {
            bail!(
                "--gif needs frames: {} renders text, and tabular agents train only on the \
                 toy-text envs",
                rc.env
            );
        }
        let q = rein_algos::QTable::read(&a.run_dir.join("q_table.json"))?;
        let mut env = rein_envs::make_with(&rc.env, &rc.env_options)?;
        let s = rein_algos::evaluate_policy(
            env.as_mut(),
            &q.policy(),
            a.episodes,
            a.seed,
            rein_algos::SuccessRule::for_env(&rc.env),
        )?;
        (s.mean_return, s.std_return)
    };
    let (env_id, algo) = (&rc.env, &rc.algo);
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
