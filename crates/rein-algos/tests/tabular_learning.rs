//! Learning tests: the tabular agents must find the policy that value iteration finds.

use rein_algos::{
    evaluate_policy, train_q_learning, train_sarsa, QTable, SarsaTarget, SuccessRule, TabularConfig,
};
use rein_envs::mdp::TabularMdp;

fn optimal(id: &str, gamma: f64) -> (TabularMdp, rein_envs::mdp::Solution) {
    let env = rein_envs::make_discrete(id, &Default::default()).unwrap();
    let mdp = TabularMdp::from_env(&env, gamma).unwrap();
    let sol = mdp.value_iteration(1e-12, 1_000_000).unwrap();
    (mdp, sol)
}

/// Counts the states that the optimal policy reaches from the start distribution, and those
/// among them where the learned greedy action is not optimal (printed).
fn reachable_mismatches(id: &str, q: &QTable, gamma: f64) -> (usize, usize) {
    let (mdp, sol) = optimal(id, gamma);
    let reachable = mdp.reachable(&sol.policy);
    let opt = TabularMdp::optimal_actions(&sol.q, 1e-6);
    let learned = q.policy();
    let (mut n, mut bad) = (0, 0);
    for s in 0..mdp.n_states() {
        if reachable[s] {
            n += 1;
            if !opt[s].contains(&learned[s]) {
                bad += 1;
                eprintln!(
                    "{id}: state {s}: learned {} not in optimal {:?}",
                    learned[s], opt[s]
                );
            }
        }
    }
    (n, bad)
}

fn assert_optimal_on_reachable(id: &str, q: &QTable, gamma: f64) -> usize {
    let (n, bad) = reachable_mismatches(id, q, gamma);
    assert_eq!(
        bad, 0,
        "{id}: {bad} of {n} reachable states have a non-optimal greedy action"
    );
    n
}

#[test]
fn q_learning_solves_taxi() {
    let cfg = TabularConfig {
        seed: 1,
        ..TabularConfig::preset("Taxi-v4")
    };
    let mut env = rein_envs::make("Taxi-v4").unwrap();
    let q = train_q_learning(env.as_mut(), &cfg, &mut |_| {}).unwrap();
    let n = assert_optimal_on_reachable("Taxi-v4", &q, cfg.gamma);
    assert!(n > 300, "{n} reachable states");
}

#[test]
fn q_learning_solves_cliff_walking() {
    let cfg = TabularConfig {
        seed: 2,
        ..TabularConfig::preset("CliffWalking-v1")
    };
    let mut env = rein_envs::make("CliffWalking-v1").unwrap();
    let q = train_q_learning(env.as_mut(), &cfg, &mut |_| {}).unwrap();
    assert_optimal_on_reachable("CliffWalking-v1", &q, cfg.gamma);
    // The optimal path along the cliff edge: 13 steps, return -13.
    let rule = SuccessRule::for_env("CliffWalking-v1");
    let stats = evaluate_policy(env.as_mut(), &q.policy(), 10, 0, rule).unwrap();
    assert_eq!(stats.mean_return, -13.0);
    // Every episode reaches the goal, though every return is negative.
    assert_eq!(stats.success_rate, 1.0);
}

#[test]
fn q_learning_on_slippery_frozen_lake_is_within_two_points_of_optimal() {
    let cfg = TabularConfig {
        seed: 3,
        ..TabularConfig::preset("FrozenLake-v1")
    };
    let mut env = rein_envs::make("FrozenLake-v1").unwrap();
    let q = train_q_learning(env.as_mut(), &cfg, &mut |_| {}).unwrap();
    let (_, sol) = optimal("FrozenLake-v1", cfg.gamma);
    let rule = SuccessRule::for_env("FrozenLake-v1");
    let learned = evaluate_policy(env.as_mut(), &q.policy(), 10_000, 1_000_000, rule).unwrap();
    let best = evaluate_policy(env.as_mut(), &sol.policy, 10_000, 1_000_000, rule).unwrap();
    eprintln!(
        "success: learned {:.4}, optimal {:.4}",
        learned.success_rate, best.success_rate
    );
    assert!(
        learned.success_rate >= best.success_rate - 0.02,
        "learned {} vs optimal {}",
        learned.success_rate,
        best.success_rate
    );
}

#[test]
fn sarsa_and_expected_sarsa_learn_taxi() {
    for target in [SarsaTarget::Sarsa, SarsaTarget::Expected] {
        // GLIE: exploration decays to zero, so the on-policy values become the optimal ones.
        let cfg = TabularConfig {
            seed: 4,
            episodes: 20_000,
            epsilon: rein_core::schedule::Schedule::Linear {
                start: 1.0,
                end: 0.0,
                fraction: 0.8,
            },
            ..TabularConfig::preset("Taxi-v4")
        };
        let mut env = rein_envs::make("Taxi-v4").unwrap();
        let q = train_sarsa(env.as_mut(), &cfg, target, &mut |_| {}).unwrap();
        // On-policy methods need not be exact in rarely visited states: 95% of them.
        let (n, bad) = reachable_mismatches("Taxi-v4", &q, cfg.gamma);
        assert!(bad * 20 <= n, "{target:?}: {bad} of {n} states not optimal");
        let rule = SuccessRule::for_env("Taxi-v4");
        let stats = evaluate_policy(env.as_mut(), &q.policy(), 1000, 0, rule).unwrap();
        // Taxi-v4's reward threshold is 8.
        assert!(stats.mean_return > 7.5, "{target:?}: {}", stats.mean_return);
        assert!(
            stats.success_rate > 0.99,
            "{target:?}: {}",
            stats.success_rate
        );
    }
}

#[test]
fn sarsa_takes_the_safe_path_on_the_cliff() {
    // Sutton & Barto, example 6.6: with constant epsilon = 0.1, SARSA learns the longer path
    // away from the cliff, Q-learning the optimal one along it.
    let cfg = TabularConfig {
        seed: 5,
        episodes: 3000,
        epsilon: rein_core::schedule::Schedule::Constant { value: 0.1 },
        ..TabularConfig::preset("CliffWalking-v1")
    };
    let mut env = rein_envs::make("CliffWalking-v1").unwrap();
    let q = train_sarsa(env.as_mut(), &cfg, SarsaTarget::Sarsa, &mut |_| {}).unwrap();
    let rule = SuccessRule::for_env("CliffWalking-v1");
    let stats = evaluate_policy(env.as_mut(), &q.policy(), 1, 0, rule).unwrap();
    assert!(
        stats.mean_return < -13.0 && stats.mean_return >= -17.0,
        "{}",
        stats.mean_return
    );
}

#[test]
fn training_is_deterministic_and_logs() {
    let cfg = TabularConfig {
        episodes: 500,
        log_interval: 100,
        ..TabularConfig::preset("Taxi-v4")
    };
    let mut logs = Vec::new();
    let q1 = train_q_learning(
        rein_envs::make("Taxi-v4").unwrap().as_mut(),
        &cfg,
        &mut |l| logs.push(*l),
    )
    .unwrap();
    let q2 = train_q_learning(
        rein_envs::make("Taxi-v4").unwrap().as_mut(),
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(q1, q2);
    assert_eq!(logs.len(), 5);
    assert_eq!(logs[4].episode, 500);
    assert!(logs[4].return_mean > logs[0].return_mean);
}

#[test]
fn non_tabular_envs_are_rejected() {
    let cfg = TabularConfig::default();
    let e = train_q_learning(
        rein_envs::make("CartPole-v1").unwrap().as_mut(),
        &cfg,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("Discrete") && e.contains("CartPole-v1"), "{e}");
    let bad = TabularConfig {
        learning_rate: 0.0,
        ..cfg
    };
    let e = train_q_learning(
        rein_envs::make("Taxi-v4").unwrap().as_mut(),
        &bad,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("learning_rate"), "{e}");
}
