//! Environment throughput (`rein env bench`): random actions, reset at episode end, on one env
//! or on a vector env, stepped in lock step or with worker rollouts.

use rein_core::{rng_from_seed, AutoresetMode, EnvError, Value, VectorEnv};
use std::time::Instant;

/// What [`throughput`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Transitions stepped.
    pub steps: u64,
    /// Episodes ended.
    pub episodes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Steps `env_id` with uniformly random actions for about `steps` transitions: one env when
/// `num_envs` and `threads` are 1, else a vector env (next-step autoreset) stepped from the
/// caller (`lockstep`) or with each worker sampling its envs' actions (`VectorEnv::rollout`).
pub fn throughput(
    env_id: &str,
    steps: u64,
    num_envs: usize,
    threads: usize,
    lockstep: bool,
    seed: u64,
) -> Result<Throughput, EnvError> {
    let mut rng = rng_from_seed(seed);
    let (elapsed, steps, episodes) = if num_envs == 1 && threads == 1 {
        let mut env = crate::make(env_id)?;
        let space = env.action_space().clone();
        env.reset(Some(seed));
        let mut episodes = 0u64;
        let start = Instant::now();
        for _ in 0..steps {
            let action = space.sample(&mut rng);
            let step = env.step(&action)?;
            if step.terminated || step.truncated {
                env.reset(None);
                episodes += 1;
            }
        }
        (start.elapsed(), steps, episodes)
    } else {
        let id = env_id.to_string();
        let mut venv = VectorEnv::from_fn(num_envs, AutoresetMode::NextStep, threads, move |_| {
            crate::make(&id)
        })?;
        let space = venv.single_action_space().clone();
        venv.reset(Some(seed))?;
        let iters = steps.div_ceil(num_envs as u64);
        if lockstep {
            let mut actions: Vec<Value> = vec![Value::Discrete(0); num_envs];
            let mut episodes = 0u64;
            let mut transitions = 0u64;
            let start = Instant::now();
            for _ in 0..iters {
                for act in actions.iter_mut() {
                    *act = space.sample(&mut rng);
                }
                let s = venv.step(&actions)?;
                episodes += s
                    .terminated
                    .iter()
                    .zip(s.truncated)
                    .filter(|(t, u)| **t || **u)
                    .count() as u64;
                transitions += num_envs as u64;
            }
            (start.elapsed(), transitions, episodes)
        } else {
            let policy: std::sync::Arc<rein_core::RolloutPolicy> =
                std::sync::Arc::new(move |_, _, rng| space.sample(rng));
            let start = Instant::now();
            let stats = venv.rollout(iters, seed, policy)?;
            (start.elapsed(), stats.steps, stats.episodes)
        }
    };
    Ok(Throughput {
        steps,
        episodes,
        seconds: elapsed.as_secs_f64(),
    })
}
