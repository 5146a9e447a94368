//! Dynamic programming on the toy-text MDPs.
#![allow(clippy::needless_range_loop)]

use rein_envs::mdp::TabularMdp;
use serde_json::json;

fn mdp(id: &str, kwargs: serde_json::Value, gamma: f64) -> TabularMdp {
    let env = rein_envs::make_discrete(id, kwargs.as_object().unwrap()).unwrap();
    TabularMdp::from_env(&env, gamma).unwrap()
}

#[test]
fn value_and_policy_iteration_agree_on_frozen_lake_8x8() {
    let m = mdp("FrozenLake8x8-v1", json!({}), 0.99);
    let vi = m.value_iteration(1e-13, 1_000_000);
    let pi = m.policy_iteration(1000).unwrap();
    for s in 0..m.n_states() {
        assert!(
            (vi.v[s] - pi.v[s]).abs() < 1e-8,
            "V[{s}]: {} vs {}",
            vi.v[s],
            pi.v[s]
        );
        for a in 0..m.n_actions() {
            assert!((vi.q[s][a] - pi.q[s][a]).abs() < 1e-8);
        }
    }
    // The greedy policies may differ only between actions of equal value.
    let opt = TabularMdp::optimal_actions(&pi.q, 1e-8);
    for s in 0..m.n_states() {
        assert!(opt[s].contains(&vi.policy[s]) && opt[s].contains(&pi.policy[s]));
    }
    // The start state's optimal success probability (gamma 0.99) is a known figure.
    assert!(vi.v[0] > 0.4 && vi.v[0] < 0.45, "V*(0) = {}", vi.v[0]);
}

#[test]
fn iterative_and_exact_evaluation_agree() {
    for (id, kw) in [
        ("FrozenLake-v1", json!({})),
        ("FrozenLake8x8-v1", json!({})),
        ("Taxi-v4", json!({})),
        ("CliffWalkingSlippery-v1", json!({})),
    ] {
        let m = mdp(id, kw, 0.95);
        let pi = m.uniform_policy();
        let exact = m.evaluate_exact(&pi).unwrap();
        let (iter, _) = m.evaluate_iterative(&pi, 1e-12, 1_000_000).unwrap();
        for s in 0..m.n_states() {
            assert!(
                (exact[s] - iter[s]).abs() < 1e-8,
                "{id} V[{s}]: {} vs {}",
                exact[s],
                iter[s]
            );
        }
        // V* dominates V^pi for the random policy.
        let vi = m.value_iteration(1e-12, 1_000_000);
        assert!(vi.v.iter().zip(&exact).all(|(a, b)| a + 1e-9 >= *b), "{id}");
    }
}

#[test]
fn cliff_walking_optimal_path_is_the_cliff_edge() {
    // Undiscounted, the optimal return from the start is -13 (up, 11 x right, down).
    let m = mdp("CliffWalking-v1", json!({}), 1.0);
    let sol = m.value_iteration(1e-12, 10_000);
    assert!((sol.v[36] + 13.0).abs() < 1e-9, "V*(start) = {}", sol.v[36]);
    assert_eq!(sol.policy[36], 0, "first move is up");
    // Policy iteration starts from "always up", which never terminates: with gamma = 1 its
    // value is unbounded and the solver says so instead of returning garbage.
    let err = m.policy_iteration(1000).unwrap_err().to_string();
    assert!(err.contains("gamma < 1"), "{err}");
}

#[test]
fn taxi_optimal_values_are_consistent() {
    let m = mdp("Taxi-v4", json!({}), 0.99);
    let vi = m.value_iteration(1e-12, 1_000_000);
    let pi = m.policy_iteration(1000).unwrap();
    let max_diff =
        vi.v.iter()
            .zip(&pi.v)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
    assert!(max_diff < 1e-8, "{max_diff}");
}
