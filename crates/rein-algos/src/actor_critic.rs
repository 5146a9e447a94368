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

/// Actor and critic networks with their caches: separate networks (SB3's default for PPO and
/// A2C), or a shared trunk feeding two linear heads.
#[derive(Debug, Clone)]
pub struct ActorCritic {
    /// Shared feature extractor (observation -> features), when the trunks are shared.
    pub trunk: Option<Mlp>,
    /// Policy network (or head on the trunk's features): -> logits or Gaussian mean.
    pub actor: Mlp,
    /// Value network (or head): -> V(s).
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
    /// Trunk activations of the last forward pass.
    pub trunk_cache: MlpCache,
    feat_grad: Vec<f32>,
    feat_grad_v: Vec<f32>,
}

impl ActorCritic {
    /// Builds and initialises the networks as SB3 does: orthogonal weights, gain sqrt(2) in the
    /// hidden layers, 0.01 for the policy head, 1 for the value head, zero biases. With
    /// `shared`, the hidden layers form one trunk and the heads are single linear layers.
    pub fn new(
        obs_dim: usize,
        kind: ActionKind,
        hidden: &[usize],
        activation: Activation,
        log_std_init: f32,
        shared: bool,
        rng: &mut ReinRng,
    ) -> Self {
        let hidden_gain = 2f32.sqrt();
        let (trunk, head_in, head_hidden): (Option<Mlp>, usize, &[usize]) =
            if shared && !hidden.is_empty() {
                let sizes: Vec<usize> = std::iter::once(obs_dim)
                    .chain(hidden.iter().copied())
                    .collect();
                let mut t = Mlp::new_trunk(&sizes, activation);
                t.init_orthogonal(&vec![hidden_gain; hidden.len()], rng);
                (Some(t), *hidden.last().unwrap_or(&obs_dim), &[])
            } else {
                (None, obs_dim, hidden)
            };
        let sizes = |out: usize| -> Vec<usize> {
            std::iter::once(head_in)
                .chain(head_hidden.iter().copied())
                .chain(std::iter::once(out))
                .collect()
        };
        let mut actor = Mlp::new(&sizes(kind.actor_out()), activation);
        let mut critic = Mlp::new(&sizes(1), activation);
        let gains = |head: f32| -> Vec<f32> {
            std::iter::repeat_n(hidden_gain, head_hidden.len())
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
            trunk,
            actor,
            critic,
            log_std: vec![log_std_init; n_log_std],
            log_std_grad: vec![0.0; n_log_std],
            kind,
            obs_dim,
            actor_cache: MlpCache::default(),
            critic_cache: MlpCache::default(),
            trunk_cache: MlpCache::default(),
            feat_grad: Vec::new(),
            feat_grad_v: Vec::new(),
        }
    }

    /// Runs the actor (through the trunk) on `n` observations; the output is
    /// `self.actor_cache.output()`.
    pub fn forward_actor(&mut self, obs: &[f32], n: usize) {
        match &self.trunk {
            Some(t) => {
                t.forward(obs, n, &mut self.trunk_cache);
                self.actor
                    .forward(self.trunk_cache.output(), n, &mut self.actor_cache);
            }
            None => self.actor.forward(obs, n, &mut self.actor_cache),
        }
    }

    /// Runs the critic (through the trunk); the output is `self.critic_cache.output()`.
    pub fn forward_critic(&mut self, obs: &[f32], n: usize) {
        match &self.trunk {
            Some(t) => {
                t.forward(obs, n, &mut self.trunk_cache);
                self.critic
                    .forward(self.trunk_cache.output(), n, &mut self.critic_cache);
            }
            None => self.critic.forward(obs, n, &mut self.critic_cache),
        }
    }

    /// Runs both networks on the same `n` observations (the trunk once).
    pub fn forward(&mut self, obs: &[f32], n: usize) {
        match &self.trunk {
            Some(t) => {
                t.forward(obs, n, &mut self.trunk_cache);
                self.actor
                    .forward(self.trunk_cache.output(), n, &mut self.actor_cache);
                self.critic
                    .forward(self.trunk_cache.output(), n, &mut self.critic_cache);
            }
            None => {
                self.actor.forward(obs, n, &mut self.actor_cache);
                self.critic.forward(obs, n, &mut self.critic_cache);
            }
        }
    }

    /// Backpropagates d loss / d actor output and d loss / d V through the last [`Self::forward`],
    /// accumulating gradients of every network (the trunk gets both heads' gradients).
    pub fn backward(&mut self, grad_actor_out: &[f32], grad_values: &[f32]) {
        match self.trunk.as_mut() {
            Some(t) => {
                let len = self.trunk_cache.output().len();
                self.feat_grad.resize(len, 0.0);
                self.feat_grad_v.resize(len, 0.0);
                self.actor.backward_with_input_grad(
                    &mut self.actor_cache,
                    grad_actor_out,
                    &mut self.feat_grad,
                );
                self.critic.backward_with_input_grad(
                    &mut self.critic_cache,
                    grad_values,
                    &mut self.feat_grad_v,
                );
                for (a, b) in self.feat_grad.iter_mut().zip(&self.feat_grad_v) {
                    *a += b;
                }
                t.backward(&mut self.trunk_cache, &self.feat_grad);
            }
            None => {
                self.actor.backward(&mut self.actor_cache, grad_actor_out);
                self.critic.backward(&mut self.critic_cache, grad_values);
            }
        }
    }

    /// (parameters, gradients) of every network, in a fixed order: trunk (if any), actor,
    /// critic, log-std. Optimisers hold one state per group, in this order.
    pub fn param_groups(&mut self) -> Vec<(&mut [f32], &mut [f32])> {
        let mut out: Vec<(&mut [f32], &mut [f32])> = Vec::new();
        if let Some(t) = self.trunk.as_mut() {
            out.push((&mut t.params, &mut t.grads));
        }
        out.push((&mut self.actor.params, &mut self.actor.grads));
        out.push((&mut self.critic.params, &mut self.critic.grads));
        out.push((&mut self.log_std, &mut self.log_std_grad));
        out
    }

    /// Averages the gradients of every parameter group over the MPI ranks, in one allreduce
    /// (nothing without MPI): data-parallel ranks then take the same optimiser step.
    pub fn average_grads_over_ranks(&mut self) {
        let mut groups = self.param_groups();
        let mut grads: Vec<&mut [f32]> = groups.iter_mut().map(|(_, g)| &mut **g).collect();
        rein_core::collective::average_f32_groups(&mut grads);
    }

    /// Sizes of [`Self::param_groups`].
    pub fn param_group_sizes(&self) -> Vec<usize> {
        let mut out = Vec::new();
        if let Some(t) = &self.trunk {
            out.push(t.params.len());
        }
        out.extend([
            self.actor.params.len(),
            self.critic.params.len(),
            self.log_std.len(),
        ]);
        out
    }

    /// Index of the critic's group in [`Self::param_groups`].
    pub fn critic_group(&self) -> usize {
        usize::from(self.trunk.is_some()) + 1
    }

    /// Clips the global norm of all gradients to `max_norm` and returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let mut groups = self.param_groups();
        let mut grads: Vec<&mut [f32]> = groups.iter_mut().map(|(_, g)| &mut **g).collect();
        rein_nn::clip_grad_norm(&mut grads, max_norm)
    }

    /// V(s) for `n` observations.
    pub fn values(&mut self, obs: &[f32], n: usize) -> Vec<f32> {
        self.forward_critic(obs, n);
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
        self.forward_actor(obs, n);
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
            .into_iter()
            .chain(self.trunk.iter())
            .map(|net| {
                net.sizes()
                    .windows(2)
                    .enumerate()
                    .map(|(l, w)| 2.0 * b * (w[0] * w[1]) as f64 * if l == 0 { 2.0 } else { 3.0 })
                    .sum::<f64>()
            })
            .sum()
    }

    /// The RGB frames of one episode of `env` (reset with `seed`) acted on by this policy
    /// (`deterministic`: the most likely action) with the observation normalisation of
    /// training; `None` when the env renders text, not frames.
    pub fn render_episode(
        &mut self,
        env: &mut dyn rein_core::Env,
        norm: Option<&rein_core::wrappers::VecNormalize>,
        deterministic: bool,
        seed: u64,
    ) -> Result<Option<Vec<rein_core::RgbFrame>>, EnvError> {
        let space = env.observation_space().clone();
        let mut rng = rein_core::rng_from_seed(seed);
        let (mut obs, _) = env.reset(Some(seed));
        let mut frames = Vec::new();
        let ad = self.kind.action_dim();
        loop {
            match env.render()? {
                rein_core::Render::Rgb(f) => frames.push(f),
                rein_core::Render::Text(_) => return Ok(None),
            }
            let mut x = space.flatten(&obs)?;
            if let Some(n) = norm {
                n.apply_obs(&mut x);
            }
            let (mut act, mut lp) = (vec![0.0; ad], [0.0f32]);
            self.act(&x, 1, deterministic, &mut rng, &mut act, &mut lp);
            let step = env.step(&self.env_action(&act))?;
            obs = step.obs;
            if step.terminated || step.truncated {
                return Ok(Some(frames));
            }
        }
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
        let mut t = self
            .trunk
            .as_ref()
            .map(|m| m.to_tensors("trunk"))
            .unwrap_or_default();
        t.extend(self.actor.to_tensors("actor"));
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
        if let Some(t) = self.trunk.as_mut() {
            t.load_tensors("trunk", tensors)?;
        }
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
        if let Some(t) = self.trunk.as_mut() {
            t.zero_grad();
        }
        self.actor.zero_grad();
        self.critic.zero_grad();
        self.log_std_grad.fill(0.0);
    }

    /// Number of parameters (actor, critic, log-std).
    pub fn n_params(&self) -> usize {
        self.param_group_sizes().iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// loss = sum(actor_out * wa) + sum(values * wv): its gradient is backward(wa, wv).
    fn loss(p: &mut ActorCritic, obs: &[f32], n: usize, wa: &[f32], wv: &[f32]) -> f64 {
        p.forward(obs, n);
        let a: f64 = p
            .actor_cache
            .output()
            .iter()
            .zip(wa)
            .map(|(x, w)| (x * w) as f64)
            .sum();
        let v: f64 = p
            .critic_cache
            .output()
            .iter()
            .zip(wv)
            .map(|(x, w)| (x * w) as f64)
            .sum();
        a + v
    }

    #[test]
    fn shared_trunk_gradients_match_finite_differences() {
        let mut rng = rein_core::rng_from_seed(0);
        let mut p = ActorCritic::new(
            3,
            ActionKind::Discrete(2),
            &[5, 4],
            Activation::Tanh,
            0.0,
            true,
            &mut rng,
        );
        for x in p.actor.params.iter_mut().chain(p.critic.params.iter_mut()) {
            *x *= 50.0; // make the heads matter
        }
        let (n, obs) = (2, [0.5f32, -0.3, 0.8, -0.1, 0.4, 0.2]);
        let (wa, wv) = ([1.0f32, -2.0, 0.5, 0.3], [0.7f32, -1.1]);
        p.zero_grad();
        p.forward(&obs, n);
        p.backward(&wa, &wv);
        let analytic = p.trunk.as_ref().unwrap().grads.clone();
        for k in (0..analytic.len()).step_by(3) {
            let orig = p.trunk.as_ref().unwrap().params[k];
            p.trunk.as_mut().unwrap().params[k] = orig + 1e-3;
            let lp = loss(&mut p, &obs, n, &wa, &wv);
            p.trunk.as_mut().unwrap().params[k] = orig - 1e-3;
            let lm = loss(&mut p, &obs, n, &wa, &wv);
            p.trunk.as_mut().unwrap().params[k] = orig;
            let num = (lp - lm) / 2e-3;
            assert!(
                (analytic[k] as f64 - num).abs() < 2e-2 * (1.0 + num.abs()),
                "trunk param {k}: {} vs {num}",
                analytic[k]
            );
        }
        assert_eq!(p.param_group_sizes().len(), 4);
        assert_eq!(p.critic_group(), 2);
    }
}
