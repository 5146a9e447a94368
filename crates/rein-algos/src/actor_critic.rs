//! The actor-critic policy shared by the policy-gradient agents (PPO, A2C, REINFORCE with a
//! baseline): separate actor and critic MLPs (SB3's default for on-policy agents), a
//! categorical head for `Discrete` actions and a diagonal Gaussian with a state-independent
//! log-std for `Box` actions.

use rein_core::{EnvError, ReinRng, Space, Value};
use rein_nn::distributions::{categorical, diag_gaussian};
use rein_nn::{Activation, Mlp, MlpCache};

/// The action space as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// `n` discrete actions.
    Discrete(usize),
    /// A float32 box; actions are sampled unbounded and clipped at the env boundary.
    Continuous {
        /// Lower bounds.
        low: Vec<f32>,
        /// Upper bounds.
        high: Vec<f32>,
    },
}

impl ActionKind {
    /// The policy's view of an env's action space.
    pub fn from_space(space: &Space) -> Result<Self, EnvError> {
        match space {
            Space::Discrete { n, start: 0 } => Ok(ActionKind::Discrete(*n as usize)),
            Space::Box { low, high, .. } => Ok(ActionKind::Continuous {
                low: low.iter().map(|&x| x as f32).collect(),
                high: high.iter().map(|&x| x as f32).collect(),
            }),
            other => Err(EnvError::Invalid(format!(
                "policy-gradient agents support Discrete and Box action spaces, not {other}"
            ))),
        }
    }

    /// Numbers stored per action (1 for discrete: the index).
    pub fn action_dim(&self) -> usize {
        match self {
            ActionKind::Discrete(_) => 1,
            ActionKind::Continuous { low, .. } => low.len(),
        }
    }

    /// Outputs of the actor network (logits or means).
    pub fn actor_out(&self) -> usize {
        match self {
            ActionKind::Discrete(n) => *n,
            ActionKind::Continuous { low, .. } => low.len(),
        }
    }
}

/// Actor and critic networks with their caches.
#[derive(Debug, Clone)]
pub struct ActorCritic {
    /// Policy network: observation -> logits or Gaussian mean.
    pub actor: Mlp,
    /// Value network: observation -> V(s).
    pub critic: Mlp,
    /// Log standard deviation of the Gaussian (continuous actions only).
    pub log_std: Vec<f32>,
    /// Gradient of `log_std`.
    pub log_std_grad: Vec<f32>,
    /// Action space.
    pub kind: ActionKind,
    /// Observation size.
    pub obs_dim: usize,
    /// Actor activations of the last forward pass.
    pub actor_cache: MlpCache,
    /// Critic activations of the last forward pass.
    pub critic_cache: MlpCache,
}

impl ActorCritic {
    /// Builds and initialises the networks as SB3 does: orthogonal weights, gain sqrt(2) in the
    /// hidden layers, 0.01 for the policy head, 1 for the value head, zero biases.
    pub fn new(
        obs_dim: usize,
        kind: ActionKind,
        hidden: &[usize],
        activation: Activation,
        log_std_init: f32,
        rng: &mut ReinRng,
    ) -> Self {
        let sizes = |out: usize| -> Vec<usize> {
            std::iter::once(obs_dim)
                .chain(hidden.iter().copied())
                .chain(std::iter::once(out))
                .collect()
        };
        let mut actor = Mlp::new(&sizes(kind.actor_out()), activation);
        let mut critic = Mlp::new(&sizes(1), activation);
        let hidden_gain = 2f32.sqrt();
        let gains = |head: f32| -> Vec<f32> {
            std::iter::repeat_n(hidden_gain, hidden.len())
                .chain(std::iter::once(head))
                .collect()
        };
        actor.init_orthogonal(&gains(0.01), rng);
        critic.init_orthogonal(&gains(1.0), rng);
        let n_log_std = match &kind {
            ActionKind::Discrete(_) => 0,
            ActionKind::Continuous { low, .. } => low.len(),
        };
        Self {
            actor,
            critic,
            log_std: vec![log_std_init; n_log_std],
            log_std_grad: vec![0.0; n_log_std],
            kind,
            obs_dim,
            actor_cache: MlpCache::default(),
            critic_cache: MlpCache::default(),
        }
    }

    /// V(s) for `n` observations.
    pub fn values(&mut self, obs: &[f32], n: usize) -> Vec<f32> {
        self.critic.forward(obs, n, &mut self.critic_cache);
        self.critic_cache.output().to_vec()
    }

    /// Samples (or, with `deterministic`, picks the mode of) an action for each of `n`
    /// observations. Writes the raw actions (`n x action_dim`; discrete indices as f32) and
    /// their log-probabilities.
    pub fn act(
        &mut self,
        obs: &[f32],
        n: usize,
        deterministic: bool,
        rng: &mut ReinRng,
        actions: &mut [f32],
        log_probs: &mut [f32],
    ) {
        self.actor.forward(obs, n, &mut self.actor_cache);
        let out = self.actor_cache.output();
        match &self.kind {
            ActionKind::Discrete(k) => {
                let mut lp = vec![0.0; *k];
                for i in 0..n {
                    categorical::log_softmax(&out[i * k..(i + 1) * k], &mut lp);
                    let a = if deterministic {
                        categorical::mode(&lp)
                    } else {
                        categorical::sample(&lp, rng)
                    };
                    actions[i] = a as f32;
                    log_probs[i] = lp[a];
                }
            }
            ActionKind::Continuous { low, .. } => {
                let d = low.len();
                for i in 0..n {
                    let mean = &out[i * d..(i + 1) * d];
                    let a = &mut actions[i * d..(i + 1) * d];
                    if deterministic {
                        a.copy_from_slice(mean);
                    } else {
                        diag_gaussian::sample(mean, &self.log_std, rng, a);
                    }
                    log_probs[i] = diag_gaussian::log_prob(mean, &self.log_std, a);
                }
            }
        }
    }

    /// The env action for a raw action: the index, or the vector clipped to the bounds.
    pub fn env_action(&self, raw: &[f32]) -> Value {
        match &self.kind {
            ActionKind::Discrete(_) => Value::Discrete(raw[0] as i64),
            ActionKind::Continuous { low, high } => Value::Box(
                raw.iter()
                    .zip(low.iter().zip(high))
                    .map(|(&a, (&l, &h))| a.clamp(l, h))
                    .collect(),
            ),
        }
    }

    /// Zeroes every gradient.
    pub fn zero_grad(&mut self) {
        self.actor.zero_grad();
        self.critic.zero_grad();
        self.log_std_grad.fill(0.0);
    }

    /// Number of parameters (actor, critic, log-std).
    pub fn n_params(&self) -> usize {
        self.actor.params.len() + self.critic.params.len() + self.log_std.len()
    }
}
