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

    /// log pi(action | row) and the entropy, for one row of actor output; `lp` is scratch
    /// space of length `actor_out` (it keeps the log-probabilities for [`Self::head_backward`]).
    pub fn log_prob_entropy(&self, row: &[f32], action: &[f32], lp: &mut [f32]) -> (f32, f32) {
        match &self.kind {
            ActionKind::Discrete(_) => {
                categorical::log_softmax(row, lp);
                (lp[action[0] as usize], categorical::entropy(lp))
            }
            ActionKind::Continuous { .. } => (
                diag_gaussian::log_prob(row, &self.log_std, action),
                diag_gaussian::entropy(&self.log_std),
            ),
        }
    }

    /// Writes d loss / d row (the actor output) into `grad_row`, and accumulates
    /// d loss / d log_std, given d loss / d log pi(action) and d loss / d entropy.
    pub fn head_backward(
        &mut self,
        row: &[f32],
        action: &[f32],
        lp: &[f32],
        g_logp: f32,
        g_entropy: f32,
        grad_row: &mut [f32],
    ) {
        match &self.kind {
            ActionKind::Discrete(_) => {
                categorical::backward(lp, action[0] as usize, g_logp, g_entropy, grad_row)
            }
            ActionKind::Continuous { .. } => {
                grad_row.fill(0.0);
                diag_gaussian::backward(
                    row,
                    &self.log_std,
                    action,
                    g_logp,
                    g_entropy,
                    grad_row,
                    &mut self.log_std_grad,
                );
            }
        }
    }

    /// Floating-point operations of one gradient step of both networks on `batch` samples:
    /// forward (2 B i o per layer), weight gradients (2 B i o) and input gradients (2 B i o,
    /// not for the first layer).
    pub fn flops_per_grad_step(&self, batch: usize) -> f64 {
        let b = batch as f64;
        [&self.actor, &self.critic]
            .iter()
            .map(|net| {
                net.sizes()
                    .windows(2)
                    .enumerate()
                    .map(|(l, w)| 2.0 * b * (w[0] * w[1]) as f64 * if l == 0 { 2.0 } else { 3.0 })
                    .sum::<f64>()
            })
            .sum()
    }

    /// Mean and standard deviation of the return over `episodes` episodes of `env` (episode k
    /// reset with `seed + k`), observations normalised by `norm` when given.
    pub fn evaluate(
        &mut self,
        env: &mut dyn rein_core::Env,
        norm: Option<&rein_core::wrappers::VecNormalize>,
        episodes: u64,
        deterministic: bool,
        seed: u64,
    ) -> Result<(f64, f64), EnvError> {
        let space = env.observation_space().clone();
        let mut rng = rein_core::rng_from_seed(seed ^ 0x5eed);
        let ad = self.kind.action_dim();
        let mut returns = Vec::new();
        for k in 0..episodes {
            let (mut obs, _) = env.reset(Some(seed.wrapping_add(k)));
            let mut ret = 0.0;
            loop {
                let mut x = space.flatten(&obs)?;
                if let Some(norm) = norm {
                    norm.apply_obs(&mut x);
                }
                let (mut a, mut lp) = (vec![0.0; ad], [0.0f32]);
                self.act(&x, 1, deterministic, &mut rng, &mut a, &mut lp);
                let step = env.step(&self.env_action(&a))?;
                ret += step.reward;
                obs = step.obs;
                if step.terminated || step.truncated {
                    break;
                }
            }
            returns.push(ret);
        }
        let n = returns.len().max(1) as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
        Ok((mean, var.sqrt()))
    }

    /// The networks as named tensors (PyTorch layout) for a checkpoint.
    pub fn to_tensors(&self) -> Vec<rein_nn::io::NamedTensor> {
        let mut t = self.actor.to_tensors("actor");
        t.extend(self.critic.to_tensors("critic"));
        if !self.log_std.is_empty() {
            t.push(rein_nn::io::NamedTensor {
                name: "log_std".into(),
                shape: vec![self.log_std.len()],
                data: self.log_std.clone(),
            });
        }
        t
    }

    /// Loads [`Self::to_tensors`], checking every name and shape.
    pub fn load_tensors(
        &mut self,
        tensors: &std::collections::HashMap<String, rein_nn::io::NamedTensor>,
    ) -> Result<(), String> {
        self.actor.load_tensors("actor", tensors)?;
        self.critic.load_tensors("critic", tensors)?;
        if !self.log_std.is_empty() {
            let t = tensors.get("log_std").ok_or("missing tensor log_std")?;
            if t.data.len() != self.log_std.len() {
                return Err(format!(
                    "log_std has {} values, expected {}",
                    t.data.len(),
                    self.log_std.len()
                ));
            }
            self.log_std.copy_from_slice(&t.data);
        }
        Ok(())
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
