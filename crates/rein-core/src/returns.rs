//! Returns and advantages: discounted returns, GAE(lambda) with the distinction between
//! terminated and truncated episodes, and advantage normalisation.

/// Discounted returns of one episode: `G_t = r_t + gamma G_{t+1}`, `G_T = 0`
/// (Sutton & Barto, eq. 3.9), as REINFORCE uses them.
pub fn discounted_returns(rewards: &[f64], gamma: f64) -> Vec<f64> {
    let mut out = vec![0.0; rewards.len()];
    let mut g = 0.0;
    for t in (0..rewards.len()).rev() {
        g = rewards[t] + gamma * g;
        out[t] = g;
    }
    out
}

/// Generalised advantage estimation (Schulman et al. 2016, eq. 16) over a rollout of `steps`
/// time steps of `num_envs` envs, stored time-major (index `t * num_envs + e`).
///
/// `next_values[i]` is the value of the state that transition i led to: V(s_{t+1}) within an
/// episode, V(final observation) when the episode was truncated, anything when it terminated
/// (ignored). Then
/// `delta_t = r_t + gamma (1 - terminated_t) next_value_t - V(s_t)` and
/// `A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}` with `done = terminated or truncated`:
/// a truncated episode still bootstraps its last step but its advantage does not flow into the
/// next episode. Returns `(advantages, returns = advantages + values)`.
#[allow(clippy::too_many_arguments)]
pub fn compute_gae(
    rewards: &[f64],
    values: &[f64],
    next_values: &[f64],
    terminated: &[bool],
    truncated: &[bool],
    num_envs: usize,
    gamma: f64,
    lambda: f64,
) -> (Vec<f64>, Vec<f64>) {
    let n = rewards.len();
    assert!(
        num_envs > 0 && n.is_multiple_of(num_envs),
        "rollout length must be a multiple of num_envs"
    );
    for len in [
        values.len(),
        next_values.len(),
        terminated.len(),
        truncated.len(),
    ] {
        assert_eq!(len, n, "GAE inputs must have the same length");
    }
    let steps = n / num_envs;
    let mut adv = vec![0.0; n];
    for e in 0..num_envs {
        let mut last = 0.0;
        for t in (0..steps).rev() {
            let i = t * num_envs + e;
            let boot = if terminated[i] { 0.0 } else { next_values[i] };
            let delta = rewards[i] + gamma * boot - values[i];
            let carry = if terminated[i] || truncated[i] {
                0.0
            } else {
                last
            };
            last = delta + gamma * lambda * carry;
            adv[i] = last;
        }
    }
    let returns = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, returns)
}

/// Normalises in place to mean 0 and standard deviation 1: `(x - mean) / (std + eps)` with the
/// unbiased (n - 1) standard deviation, as PyTorch's `Tensor.std()` in SB3 and CleanRL.
pub fn normalize(x: &mut [f64], eps: f64) {
    let n = x.len();
    if n < 2 {
        return;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    for v in x.iter_mut() {
        *v = (*v - mean) / (std + eps);
    }
}

/// Fraction of the variance of `returns` that `values` explain: `1 - Var(R - V) / Var(R)`
/// (NaN when the returns have no variance), as SB3's `explained_variance`.
pub fn explained_variance(values: &[f64], returns: &[f64]) -> f64 {
    let var = |x: &mut dyn Iterator<Item = f64>, n: usize| -> f64 {
        let v: Vec<f64> = x.collect();
        let mean = v.iter().sum::<f64>() / n as f64;
        v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / n as f64
    };
    let n = returns.len();
    let var_r = var(&mut returns.iter().copied(), n);
    if var_r == 0.0 {
        return f64::NAN;
    }
    1.0 - var(&mut returns.iter().zip(values).map(|(r, v)| r - v), n) / var_r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discounted_returns_by_hand() {
        let g = discounted_returns(&[1.0, 0.0, 2.0], 0.5);
        assert_eq!(g, vec![1.0 + 0.5 * (0.0 + 0.5 * 2.0), 0.5 * 2.0, 2.0]);
    }

    #[test]
    fn gae_by_hand_single_env() {
        // Three steps, no episode end: next value of step t is V(s_{t+1}), last one 4.0.
        let (r, v) = ([1.0, 2.0, 3.0], [0.5, 1.0, 1.5]);
        let next = [1.0, 1.5, 4.0];
        let (g, l) = (0.9, 0.8);
        let (adv, ret) = compute_gae(&r, &v, &next, &[false; 3], &[false; 3], 1, g, l);
        let d2 = 3.0 + g * 4.0 - 1.5;
        let d1 = 2.0 + g * 1.5 - 1.0;
        let d0 = 1.0 + g * 1.0 - 0.5;
        let a2 = d2;
        let a1 = d1 + g * l * a2;
        let a0 = d0 + g * l * a1;
        for (x, y) in adv.iter().zip([a0, a1, a2]) {
            assert!((x - y).abs() < 1e-12);
        }
        assert!((ret[0] - (a0 + 0.5)).abs() < 1e-12);
    }

    #[test]
    fn gae_terminated_and_truncated_differ() {
        // Step 1 ends the episode. Terminated: no bootstrap. Truncated: bootstrap from the
        // final observation's value (7.0). Either way step 0's advantage stops at step 1.
        let r = [1.0, 1.0, 1.0];
        let v = [0.0, 0.0, 0.0];
        let next = [0.0, 7.0, 0.0];
        let (g, l) = (0.5, 1.0);
        let (a_term, _) = compute_gae(&r, &v, &next, &[false, true, false], &[false; 3], 1, g, l);
        let (a_trunc, _) = compute_gae(&r, &v, &next, &[false; 3], &[false, true, false], 1, g, l);
        assert_eq!(a_term[1], 1.0);
        assert_eq!(a_trunc[1], 1.0 + 0.5 * 7.0);
        assert_eq!(a_term[2], 1.0);
        assert_eq!(a_trunc[2], 1.0);
        assert_eq!(a_term[0], 1.0 + g * 0.0 + g * l * a_term[1]);
        assert_eq!(a_trunc[0], 1.0 + g * l * a_trunc[1]);
    }

    #[test]
    fn gae_envs_are_independent() {
        // Two envs interleaved time-major; env 1 terminates at t = 0.
        let r = [1.0, 2.0, 1.0, 2.0];
        let v = [0.0; 4];
        let next = [0.0; 4];
        let (adv, _) = compute_gae(
            &r,
            &v,
            &next,
            &[false, true, false, false],
            &[false; 4],
            2,
            1.0,
            1.0,
        );
        assert_eq!(adv, vec![2.0, 2.0, 1.0, 2.0]);
    }

    #[test]
    fn normalisation_uses_unbiased_std() {
        let mut x = vec![1.0, 2.0, 3.0];
        normalize(&mut x, 0.0);
        assert!((x[0] + 1.0).abs() < 1e-12 && x[1].abs() < 1e-12 && (x[2] - 1.0).abs() < 1e-12);
        assert!((explained_variance(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
    }
}
