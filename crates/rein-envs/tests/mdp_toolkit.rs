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
    let vi = m.value_iteration(1e-13, 1_000_000).unwrap();
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
        let vi = m.value_iteration(1e-12, 1_000_000).unwrap();
        assert!(vi.v.iter().zip(&exact).all(|(a, b)| a + 1e-9 >= *b), "{id}");
    }
}

#[test]
fn cliff_walking_optimal_path_is_the_cliff_edge() {
    // Undiscounted, the optimal return from the start is -13 (up, 11 x right, down).
    let m = mdp("CliffWalking-v1", json!({}), 1.0);
    let sol = m.value_iteration(1e-12, 10_000).unwrap();
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
    let vi = m.value_iteration(1e-12, 1_000_000).unwrap();
    let pi = m.policy_iteration(1000).unwrap();
    let max_diff =
        vi.v.iter()
            .zip(&pi.v)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
    assert!(max_diff < 1e-8, "{max_diff}");
}

/// Value iteration on an undiscounted MDP whose best policy collects reward forever (a state
/// that loops on itself with reward 1) fails with an error saying why, instead of returning
/// values that only stopped at the sweep limit; an unreachable tolerance is reported too.
#[test]
fn value_iteration_refuses_to_diverge() {
    let looping = json!({"gamma": 1.0,
        "P": [[[[1.0, 0, 1.0, false]], [[1.0, 1, 0.0, true]]], [[[1.0, 1, 0.0, false]], [[1.0, 1, 0.0, false]]]]});
    let m = TabularMdp::from_json(&looping, "loop.json").unwrap();
    let start = std::time::Instant::now();
    let e = m
        .value_iteration(1e-10, 10_000_000)
        .unwrap_err()
        .to_string();
    assert!(e.contains("diverges") && e.contains("gamma = 1"), "{e}");
    assert!(start.elapsed().as_secs() < 5, "detected late");
    let slow = TabularMdp::from_json(
        &json!({"gamma": 0.999,
        "P": [[[[1.0, 0, 1.0, false]]]]}),
        "slow.json",
    )
    .unwrap();
    let e = slow.value_iteration(1e-12, 50).unwrap_err().to_string();
    assert!(e.contains("did not converge within 50 sweeps"), "{e}");
}

/// Unknown keys and two layouts in one file are refused by name (they used to drop part of
/// the model silently).
#[test]
fn mdp_files_with_unknown_keys_or_two_layouts_are_refused() {
    let e = TabularMdp::from_json(
        &json!({"gamma": 0.9, "transition": [[[1.0]]], "reward": [[0.0]], "terminals": [true]}),
        "t.json",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("t.json") && e.contains("\"terminals\"") && e.contains("unknown key"),
        "{e}"
    );
    let e = TabularMdp::from_json(
        &json!({"gamma": 0.9, "P": [[[[1.0, 0, 0.0, false]]]], "transition": [[[1.0]]], "reward": [[0.0]]}),
        "both.json",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("\"transition\"") && e.contains("not both"),
        "{e}"
    );
}
