//! Every deep agent through the shared exact-resume harness: a run interrupted twice and
//! resumed from its checkpoints ends byte-identical to an uninterrupted one (checkpoint and
//! metrics.csv).

use rein_algos::agent::{Agent, Algo};
use rein_algos::onpolicy::EnvFactory;
use rein_train::resume_check::check_exact_resume;
use rein_train::Trainer;
use std::sync::Arc;

fn factory(id: &'static str) -> EnvFactory {
    Arc::new(move |_| rein_envs::make(id))
}

/// The shipped settings of `algo` on `env` with `overrides` (small runs).
fn settings(algo: Algo, env: &str, overrides: serde_json::Value) -> serde_json::Value {
    let mut s = algo.settings(env).unwrap();
    for (k, v) in overrides.as_object().unwrap() {
        rein_train::settings::set_path(&mut s, k, v.clone()).unwrap();
    }
    s
}

fn check(algo: Algo, env: &'static str, overrides: serde_json::Value, first: u64, second: u64) {
    let s = settings(algo, env, overrides);
    let build = || -> Result<Box<dyn Trainer>, _> {
        Ok(Box::new(Agent::new(algo, s.clone(), factory(env))?) as Box<dyn Trainer>)
    };
    let load = |p: &std::path::Path| -> Result<Box<dyn Trainer>, _> {
        Ok(Box::new(Agent::load(p, factory(env))?) as Box<dyn Trainer>)
    };
    let dir = std::env::temp_dir().join(format!("rein-exact-{}-{algo}", std::process::id()));
    check_exact_resume(&build, &load, first, second, &dir)
        .unwrap_or_else(|e| panic!("{algo}: {e}"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn on_policy_agents_resume_exactly() {
    let small = serde_json::json!({"total_timesteps": 3000, "num_envs": 4, "seed": 2});
    check(Algo::A2c, "CartPole-v1", small.clone(), 3, 4);
    check(
        Algo::Reinforce,
        "CartPole-v1",
        serde_json::json!({"total_timesteps": 3000, "num_envs": 4, "batch_episodes": 4, "seed": 2}),
        2,
        2,
    );
    check(
        Algo::Ppo,
        "Pendulum-v1",
        serde_json::json!({"total_timesteps": 2048, "num_envs": 4, "n_steps": 64, "batch_size": 64,
                           "n_epochs": 2, "normalize_obs": true, "normalize_reward": true, "seed": 5}),
        2,
        3,
    );
}

#[test]
fn off_policy_agents_resume_exactly() {
    check(
        Algo::Dqn,
        "CartPole-v1",
        serde_json::json!({"total_timesteps": 3000, "learning_starts": 500, "train_freq": 64,
                           "gradient_steps": 8, "net_arch": [32, 32], "eval_freq": 700,
                           "eval_episodes": 2, "seed": 3}),
        10,
        7,
    );
    let continuous = serde_json::json!({"total_timesteps": 700, "learning_starts": 200,
                                        "net_arch": [32, 32], "batch_size": 32, "seed": 4});
    check(Algo::Td3, "Pendulum-v1", continuous.clone(), 250, 200);
    check(Algo::Ddpg, "Pendulum-v1", continuous.clone(), 250, 200);
    check(Algo::Sac, "Pendulum-v1", continuous, 250, 200);
}

/// With `eval_freq`, DQN delivers its best evaluated network: the final evaluation is that
/// network's, and it survives a checkpoint round trip.
#[test]
fn dqn_delivers_its_best_evaluated_network() {
    let s = settings(
        Algo::Dqn,
        "CartPole-v1",
        serde_json::json!({"total_timesteps": 4000, "learning_starts": 500, "train_freq": 64,
                           "gradient_steps": 8, "net_arch": [32, 32], "eval_freq": 1000,
                           "eval_episodes": 3, "seed": 1}),
    );
    let mut agent = Agent::new(Algo::Dqn, s, factory("CartPole-v1")).unwrap();
    while agent.global_step() < 4000 {
        Trainer::update(&mut agent).unwrap();
    }
    let rein_algos::agent::AgentImpl::Dqn(dqn) = &mut agent.inner else {
        unreachable!()
    };
    assert!(
        !std::ptr::eq(dqn.policy_network(), &dqn.q),
        "evaluations every 1000 steps keep a best network"
    );
    let best = dqn.policy_network().clone();
    let delivered = agent.evaluate_returns(3, true, 2_000_001).unwrap();
    let dir = std::env::temp_dir().join(format!("rein-dqn-best-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.safetensors");
    Trainer::save_checkpoint(&agent, &path).unwrap();
    let mut loaded = Agent::load(&path, factory("CartPole-v1")).unwrap();
    assert_eq!(
        loaded.evaluate_returns(3, true, 2_000_001).unwrap(),
        delivered
    );
    let rein_algos::agent::AgentImpl::Dqn(l) = &loaded.inner else {
        unreachable!()
    };
    assert_eq!(l.policy_network().params, best.params);
    std::fs::remove_dir_all(&dir).ok();
}
