//! Action distributions with the gradients the policy-gradient losses need.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rein_core::ReinRng;

/// Categorical distribution over `n` actions, parameterised by unnormalised logits.
pub mod categorical {
    use super::*;

    /// `out = log softmax(logits)`, computed stably (max subtracted first).
    pub fn log_softmax(logits: &[f32], out: &mut [f32]) {
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = logits.iter().map(|&z| (z - max).exp()).sum();
        let log_z = max + sum.ln();
        for (o, &z) in out.iter_mut().zip(logits) {
            *o = z - log_z;
        }
    }

    /// Draws an action from the log-probabilities by inverting the CDF.
    pub fn sample(log_probs: &[f32], rng: &mut ReinRng) -> usize {
        let u: f32 = rng.random();
        let mut cum = 0.0;
        for (a, &lp) in log_probs.iter().enumerate() {
            cum += lp.exp();
            if u < cum {
                return a;
            }
        }
        log_probs.len() - 1
    }

    /// The most likely action (lowest index on ties).
    pub fn mode(log_probs: &[f32]) -> usize {
        let best = log_probs.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        log_probs.iter().position(|&x| x == best).unwrap_or(0)
    }

    /// Entropy `-sum p log p`.
    pub fn entropy(log_probs: &[f32]) -> f32 {
        -log_probs.iter().map(|&lp| lp.exp() * lp).sum::<f32>()
    }

    /// Writes d loss / d logits given d loss / d log p(action) and d loss / d entropy:
    /// `d log p(a) / d z_j = [j = a] - p_j`, `d H / d z_j = -p_j (log p_j + H)`.
    pub fn backward(
        log_probs: &[f32],
        action: usize,
        g_logp: f32,
        g_entropy: f32,
        grad: &mut [f32],
    ) {
        let h = entropy(log_probs);
        for (j, (g, &lp)) in grad.iter_mut().zip(log_probs).enumerate() {
            let p = lp.exp();
            let onehot = if j == action { 1.0 } else { 0.0 };
            *g = g_logp * (onehot - p) - g_entropy * p * (lp + h);
        }
    }
}

/// Diagonal Gaussian with a state-independent log standard deviation (SB3's
/// `DiagGaussianDistribution`): the network outputs the mean, `log_std` is a free parameter.
pub mod diag_gaussian {
    use super::*;

    const HALF_LOG_2PI: f32 = 0.918_938_5;

    /// `log N(action; mean, exp(log_std)^2)`, summed over dimensions.
    pub fn log_prob(mean: &[f32], log_std: &[f32], action: &[f32]) -> f32 {
        mean.iter()
            .zip(log_std)
            .zip(action)
            .map(|((&m, &ls), &a)| {
                let z = (a - m) * (-ls).exp();
                -0.5 * z * z - ls - HALF_LOG_2PI
            })
            .sum()
    }

    /// Entropy `sum (0.5 + 0.5 log 2 pi + log_std)`.
    pub fn entropy(log_std: &[f32]) -> f32 {
        log_std.iter().map(|&ls| 0.5 + HALF_LOG_2PI + ls).sum()
    }

    /// Draws `mean + std * N(0, 1)` into `out`.
    pub fn sample(mean: &[f32], log_std: &[f32], rng: &mut ReinRng, out: &mut [f32]) {
        for ((o, &m), &ls) in out.iter_mut().zip(mean).zip(log_std) {
            let e: f32 = StandardNormal.sample(rng);
            *o = m + ls.exp() * e;
        }
    }

    /// Accumulates d loss / d mean into `grad_mean` and d loss / d log_std into `grad_log_std`
    /// given d loss / d log p and d loss / d entropy:
    /// `d log p / d mean = (a - m) / s^2`, `d log p / d log s = (a - m)^2 / s^2 - 1`,
    /// `d H / d log s = 1`.
    pub fn backward(
        mean: &[f32],
        log_std: &[f32],
        action: &[f32],
        g_logp: f32,
        g_entropy: f32,
        grad_mean: &mut [f32],
        grad_log_std: &mut [f32],
    ) {
        for i in 0..mean.len() {
            let inv_var = (-2.0 * log_std[i]).exp();
            let d = action[i] - mean[i];
            grad_mean[i] += g_logp * d * inv_var;
            grad_log_std[i] += g_logp * (d * d * inv_var - 1.0) + g_entropy;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rein_core::rng_from_seed;

    #[test]
    fn categorical_gradients_match_finite_differences() {
        let z = [0.3f32, -1.2, 0.8, 0.0];
        let f = |z: &[f32]| {
            let mut lp = [0.0; 4];
            categorical::log_softmax(z, &mut lp);
            // loss = 2 log p(2) + 0.5 H
            2.0 * lp[2] as f64 + 0.5 * categorical::entropy(&lp) as f64
        };
        let mut lp = [0.0; 4];
        categorical::log_softmax(&z, &mut lp);
        let mut g = [0.0; 4];
        categorical::backward(&lp, 2, 2.0, 0.5, &mut g);
        for j in 0..4 {
            let (mut zp, mut zm) = (z, z);
            zp[j] += 1e-3;
            zm[j] -= 1e-3;
            let num = (f(&zp) - f(&zm)) / 2e-3;
            assert!((g[j] as f64 - num).abs() < 1e-3, "{j}: {} vs {num}", g[j]);
        }
        assert!((lp.iter().map(|x| x.exp()).sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn categorical_sampling_follows_probabilities() {
        let mut lp = [0.0; 3];
        categorical::log_softmax(&[0.0, (2.0f32).ln(), (7.0f32).ln()], &mut lp);
        let mut rng = rng_from_seed(0);
        let mut counts = [0usize; 3];
        for _ in 0..100_000 {
            counts[categorical::sample(&lp, &mut rng)] += 1;
        }
        for (c, p) in counts.iter().zip([0.1, 0.2, 0.7]) {
            assert!((*c as f64 / 1e5 - p).abs() < 0.01, "{counts:?}");
        }
        assert_eq!(categorical::mode(&lp), 2);
    }

    #[test]
    fn gaussian_log_prob_entropy_and_gradients() {
        let (m, ls, a) = ([0.5f32, -1.0], [0.1f32, -0.3], [1.0f32, -2.0]);
        let want: f64 = (0..2)
            .map(|i| {
                let s = (ls[i] as f64).exp();
                let z = (a[i] - m[i]) as f64 / s;
                -0.5 * z * z - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
            })
            .sum();
        assert!((diag_gaussian::log_prob(&m, &ls, &a) as f64 - want).abs() < 1e-5);
        let (mut gm, mut gs) = ([0.0; 2], [0.0; 2]);
        diag_gaussian::backward(&m, &ls, &a, 1.0, 0.3, &mut gm, &mut gs);
        for i in 0..2 {
            let f = |m: &[f32], ls: &[f32]| {
                diag_gaussian::log_prob(m, ls, &a) as f64 + 0.3 * diag_gaussian::entropy(ls) as f64
            };
            let (mut mp, mut mm) = (m, m);
            mp[i] += 1e-3;
            mm[i] -= 1e-3;
            assert!((gm[i] as f64 - (f(&mp, &ls) - f(&mm, &ls)) / 2e-3).abs() < 1e-2);
            let (mut sp, mut sm) = (ls, ls);
            sp[i] += 1e-3;
            sm[i] -= 1e-3;
            assert!((gs[i] as f64 - (f(&m, &sp) - f(&m, &sm)) / 2e-3).abs() < 1e-2);
        }
    }
}
