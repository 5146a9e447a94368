//! Optimisers: Adam exactly as `torch.optim.Adam`, and global gradient-norm clipping as
//! `torch.nn.utils.clip_grad_norm_`.

use serde::{Deserialize, Serialize};

/// Adam (Kingma & Ba 2015) with PyTorch's arithmetic:
/// `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
/// `p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
/// State (moments and step count) serialises for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adam {
    /// Learning rate (set it before each step to anneal).
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the denominator (SB3's PPO/A2C use 1e-5, PyTorch's default is 1e-8).
    pub eps: f64,
    /// Steps taken.
    pub t: u64,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    /// Adam for `n` parameters.
    pub fn new(n: usize, lr: f64, eps: f64) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps,
            t: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// One update of `params` with `grads` (same length as at construction).
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        assert_eq!(
            params.len(),
            self.m.len(),
            "Adam built for another parameter count"
        );
        assert_eq!(
            grads.len(),
            self.m.len(),
            "gradient length differs from the parameters"
        );
        self.t += 1;
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        let bc1 = 1.0 - self.beta1.powi(self.t as i32);
        let bc2 = 1.0 - self.beta2.powi(self.t as i32);
        let step_size = (self.lr / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let eps = self.eps as f32;
        crate::kernels::with_widest_simd(
            #[inline(always)]
            || {
                for (((p, &g), m), v) in params
                    .iter_mut()
                    .zip(grads)
                    .zip(&mut self.m)
                    .zip(&mut self.v)
                {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    let denom = v.sqrt() / bc2_sqrt + eps;
                    *p -= step_size * *m / denom;
                }
            },
        )
    }
}

/// Scales all gradients together so that their global L2 norm is at most `max_norm`
/// (`clip_coef = max_norm / (norm + 1e-6)`, applied when below 1). Returns the norm before
/// clipping.
pub fn clip_grad_norm(grads: &mut [&mut [f32]], max_norm: f64) -> f64 {
    let norm = grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for g in grads.iter_mut() {
            for x in g.iter_mut() {
                *x *= coef as f32;
            }
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_first_steps_by_hand() {
        // With bias correction the first step moves each parameter by lr * sign(g) (up to eps).
        let mut adam = Adam::new(2, 0.1, 1e-8);
        let mut p = [1.0f32, -1.0];
        adam.step(&mut p, &[0.5, -2.0]);
        assert!(
            (p[0] - 0.9).abs() < 1e-6 && (p[1] + 0.9).abs() < 1e-6,
            "{p:?}"
        );
        // Second step with the same gradient: m_hat = g, v_hat = g^2 again.
        adam.step(&mut p, &[0.5, -2.0]);
        assert!((p[0] - 0.8).abs() < 1e-5, "{p:?}");
    }

    /// The vectorised step (AVX-512 on machines that have it) against the same formula in a
    /// plain loop: bit for bit, so that runs reproduce across CPU vector widths.
    #[test]
    fn adam_step_is_bit_identical_to_the_scalar_formula() {
        let n = 1037;
        let mut params: Vec<f32> = (0..n)
            .map(|k| ((k * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let mut want = params.clone();
        let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
        let mut adam = Adam::new(n, 3e-4, 1e-8);
        for t in 1..=3 {
            let grads: Vec<f32> = (0..n)
                .map(|k| ((k * 53 % 97) as f32 - 48.0) * 1e-3 * t as f32)
                .collect();
            adam.step(&mut params, &grads);
            let bc1 = 1.0 - 0.9f64.powi(t);
            let bc2_sqrt = (1.0 - 0.999f64.powi(t)).sqrt() as f32;
            let step_size = (3e-4 / bc1) as f32;
            for k in 0..n {
                m[k] = 0.9 * m[k] + (1.0 - 0.9) * grads[k];
                v[k] = 0.999 * v[k] + (1.0 - 0.999) * grads[k] * grads[k];
                want[k] -= step_size * m[k] / (v[k].sqrt() / bc2_sqrt + 1e-8);
            }
        }
        for (k, (a, b)) in params.iter().zip(&want).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "parameter {k}: {a} vs {b}");
        }
    }

    #[test]
    fn adam_minimises_a_quadratic() {
        let mut adam = Adam::new(1, 0.05, 1e-8);
        let mut p = [3.0f32];
        for _ in 0..2000 {
            let g = [2.0 * (p[0] - 1.0)];
            adam.step(&mut p, &g);
        }
        assert!((p[0] - 1.0).abs() < 1e-3);
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        let mut a = [3.0f32];
        let mut b = [4.0f32];
        let n = clip_grad_norm(&mut [&mut a, &mut b], 1.0);
        assert_eq!(n, 5.0);
        assert!((a[0] - 0.6).abs() < 1e-5 && (b[0] - 0.8).abs() < 1e-5);
        let mut c = [0.1f32];
        clip_grad_norm(&mut [&mut c], 1.0);
        assert_eq!(c[0], 0.1);
    }
}

/// RMSprop as `torch.optim.RMSprop` (not centred, no momentum), the optimiser of SB3's A2C:
/// `v = alpha v + (1 - alpha) g^2`, `p -= lr g / (sqrt(v) + eps)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmsProp {
    /// Learning rate.
    pub lr: f64,
    /// Smoothing constant.
    pub alpha: f64,
    /// Added to the denominator.
    pub eps: f64,
    v: Vec<f32>,
}

impl RmsProp {
    /// RMSprop for `n` parameters.
    pub fn new(n: usize, lr: f64, alpha: f64, eps: f64) -> Self {
        Self {
            lr,
            alpha,
            eps,
            v: vec![0.0; n],
        }
    }

    /// One update.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        assert_eq!(
            params.len(),
            self.v.len(),
            "RMSprop built for another parameter count"
        );
        let (a, lr, eps) = (self.alpha as f32, self.lr as f32, self.eps as f32);
        for ((p, &g), v) in params.iter_mut().zip(grads).zip(&mut self.v) {
            *v = a * *v + (1.0 - a) * g * g;
            *p -= lr * g / (v.sqrt() + eps);
        }
    }
}

#[cfg(test)]
mod rmsprop_tests {
    use super::*;

    #[test]
    fn rmsprop_first_step_by_hand() {
        let mut opt = RmsProp::new(1, 0.01, 0.99, 1e-8);
        let mut p = [1.0f32];
        opt.step(&mut p, &[2.0]);
        // v = 0.01 * 4 = 0.04, step = 0.01 * 2 / 0.2 = 0.1
        assert!((p[0] - 0.9).abs() < 1e-6, "{p:?}");
    }
}
