//! The KL penalty of RL fine-tuning: per-token estimators of `KL(pi || ref)` and the
//! coefficient beta, fixed or adapted toward a target.

use crate::LmError;
use serde::{Deserialize, Serialize};

/// Per-token estimators of `KL(pi || ref)` from the sampled token's log-probabilities
/// (Schulman 2020, "Approximating KL divergence"): with `r = logp_ref - logp`,
/// k1 = `-r`, k2 = `r^2 / 2`, k3 = `exp(r) - 1 - r`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlEstimator {
    /// `logp - logp_ref` (unbiased, can be negative).
    K1,
    /// `(logp - logp_ref)^2 / 2`.
    K2,
    /// `exp(logp_ref - logp) - 1 - (logp_ref - logp)` (unbiased, non-negative).
    K3,
}

impl KlEstimator {
    /// Parses `k1`, `k2` or `k3`.
    pub fn parse(s: &str) -> Result<Self, LmError> {
        match s {
            "k1" => Ok(Self::K1),
            "k2" => Ok(Self::K2),
            "k3" => Ok(Self::K3),
            other => Err(LmError::Input(format!(
                "unknown KL estimator {other:?} (expected k1, k2 or k3)"
            ))),
        }
    }

    /// The estimate for one token.
    pub fn per_token(self, logp: f64, logp_ref: f64) -> f64 {
        let r = logp_ref - logp;
        match self {
            Self::K1 => -r,
            Self::K2 => 0.5 * r * r,
            Self::K3 => r.exp() - 1.0 - r,
        }
    }
}

/// The KL coefficient beta: fixed, or adapted toward a target KL as Ziegler et al. (2019)
/// do: `e = clip(KL / target - 1, -0.2, 0.2)`, `beta <- beta (1 + e n / horizon)` after `n`
/// episodes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KlController {
    /// Current beta.
    pub value: f64,
    /// Target KL (None: fixed beta).
    pub target: Option<f64>,
    /// Horizon of the adaptation, in episodes.
    pub horizon: f64,
}

impl KlController {
    /// A constant beta.
    pub fn fixed(beta: f64) -> Self {
        Self {
            value: beta,
            target: None,
            horizon: 1.0,
        }
    }

    /// An adaptive beta starting at `init`.
    pub fn adaptive(init: f64, target: f64, horizon: f64) -> Self {
        Self {
            value: init,
            target: Some(target),
            horizon,
        }
    }

    /// Updates beta after `n_episodes` episodes whose mean KL was `current_kl`.
    pub fn update(&mut self, current_kl: f64, n_episodes: usize) {
        if let Some(target) = self.target {
            let e = (current_kl / target - 1.0).clamp(-0.2, 0.2);
            self.value *= 1.0 + e * n_episodes as f64 / self.horizon;
        }
    }
}
