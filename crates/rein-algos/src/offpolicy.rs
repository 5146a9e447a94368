//! What the off-policy agents (DQN, TD3, DDPG, SAC) share: the one env loop with its replay
//! buffer and episode statistics (`OffPolicyEnv`), their checkpoint state, evaluation and
//! action scaling.

use crate::onpolicy::EnvFactory;
use crate::AlgoError;
use rein_core::collective;

/// The checkpoint state of an off-policy agent: its settings, generator and env loop, and
/// `algo`, what only that algorithm keeps (optimiser moments, noise, counters).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OffPolicyState<C, A> {
    /// The agent's settings.
    pub config: C,
    /// The agent's generator.
    #[serde(with = "rein_core::rng::as_string")]
    pub rng: rein_core::ReinRng,
    /// The env loop (the replay arrays are tensors of the checkpoint).
    pub env: OffPolicyEnvState,
    /// The algorithm's own state.
    pub algo: A,
}

/// What a checkpoint keeps of an `OffPolicyEnv` besides the replay arrays.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OffPolicyEnvState {
    global_step: u64,
    venv: serde_json::Value,
    obs: Vec<f32>,
    ep_return: f64,
    recent: std::collections::VecDeque<f64>,
    episodes: u64,
    replay_pos: usize,
    replay_len: usize,
}

/// Replay-buffer arrays as checkpoint tensors (`replay.*`; flags as 0/1 floats). Only the
/// filled part is written: until the ring wraps, entries `len..capacity` are unused.
pub(crate) fn replay_tensors(
    buffer: &rein_core::replay::ReplayBuffer,
) -> Vec<rein_nn::io::NamedTensor> {
    let r = buffer.arrays();
    let n = buffer.len();
    let cap = r.rewards.len();
    let (od, ad) = (r.obs.len() / cap, r.actions.len() / cap);
    let flags = |v: &[bool]| {
        v[..n]
            .iter()
            .map(|&b| f32::from(u8::from(b)))
            .collect::<Vec<f32>>()
    };
    [
        ("replay.obs", r.obs[..n * od].to_vec()),
        ("replay.next_obs", r.next_obs[..n * od].to_vec()),
        ("replay.actions", r.actions[..n * ad].to_vec()),
        ("replay.rewards", r.rewards[..n].to_vec()),
        ("replay.terminated", flags(r.terminated)),
        ("replay.truncated", flags(r.truncated)),
    ]
    .into_iter()
    .map(|(name, data)| rein_nn::io::NamedTensor {
        name: name.into(),
        shape: vec![data.len()],
        data,
    })
    .collect()
}

/// Restores [`replay_tensors`] into `buffer` with the saved position and length.
pub(crate) fn restore_replay(
    buffer: &mut rein_core::replay::ReplayBuffer,
    tensors: &std::collections::HashMap<String, rein_nn::io::NamedTensor>,
    pos: usize,
    len: usize,
) -> Result<(), String> {
    let r = buffer.arrays();
    let cap = r.rewards.len();
    let (od, ad) = (r.obs.len() / cap, r.actions.len() / cap);
    // Saved tensors hold the filled part; pad back to the capacity.
    let t = |name: &str, per: usize| -> Result<Vec<f32>, String> {
        let mut v = tensors
            .get(name)
            .map(|t| t.data.clone())
            .ok_or_else(|| format!("missing tensor {name}"))?;
        if v.len() > cap * per {
            return Err(format!(
                "tensor {name} holds more than the buffer's capacity"
            ));
        }
        v.resize(cap * per, 0.0);
        Ok(v)
    };
    let flags = |v: Vec<f32>| v.into_iter().map(|x| x != 0.0).collect::<Vec<bool>>();
    buffer.restore(
        t("replay.obs", od)?,
        t("replay.next_obs", od)?,
        t("replay.actions", ad)?,
        t("replay.rewards", 1)?,
        flags(t("replay.terminated", 1)?),
        flags(t("replay.truncated", 1)?),
        pos,
        len,
    )
}

/// The single-environment interaction every off-policy agent shares: step, store the
/// transition (with the true final observation when an episode ends, so that truncated
/// transitions bootstrap from it), keep episode statistics, and save/restore all of it.
pub(crate) struct OffPolicyEnv {
    pub venv: rein_core::VectorEnv,
    /// Current observation.
    pub obs: Vec<f32>,
    pub buffer: rein_core::replay::ReplayBuffer,
    /// Environment steps so far, of all ranks under MPI (each rank steps its own env once per
    /// step, so `learning_starts`, `total_timesteps` and schedules count steps of the whole
    /// run).
    pub global_step: u64,
    /// MPI ranks (1 without MPI): what one step adds to `global_step`.
    ranks: u64,
    ep_return: f64,
    recent: std::collections::VecDeque<f64>,
    episodes: u64,
}

impl OffPolicyEnv {
    /// One env from `make_env`, reset with `seed`, and an empty buffer.
    pub fn new(
        make_env: EnvFactory,
        seed: u64,
        buffer_size: usize,
        stored_action_dim: usize,
    ) -> Result<Self, AlgoError> {
        let mut venv =
            rein_core::VectorEnv::from_fn(1, rein_core::AutoresetMode::SameStep, 1, move |i| {
                make_env(i)
            })?;
        // Each rank its own env (seeded `seed + rank`), replay buffer and episodes.
        let obs = venv.reset(Some(collective::env_seed(seed, 1)))?.to_vec();
        let obs_dim = venv.obs_dim();
        Ok(Self {
            venv,
            obs,
            buffer: rein_core::replay::ReplayBuffer::new(buffer_size, obs_dim, stored_action_dim),
            global_step: 0,
            ranks: collective::world().size() as u64,
            ep_return: 0.0,
            recent: Default::default(),
            episodes: 0,
        })
    }

    /// Steps with `action`, stores `(obs, stored_action, r, s', terminated, truncated)`;
    /// returns whether the episode ended.
    pub fn step(
        &mut self,
        action: rein_core::Value,
        stored_action: &[f32],
    ) -> Result<bool, AlgoError> {
        let step = self.venv.step(&[action])?;
        let (reward, terminated, truncated) =
            (step.rewards[0], step.terminated[0], step.truncated[0]);
        let next = step.obs.to_vec();
        let real_next = if terminated || truncated {
            self.venv
                .final_obs(0)
                .map(|f| f.to_vec())
                .unwrap_or_else(|| next.clone())
        } else {
            next.clone()
        };
        self.buffer.push(
            &self.obs,
            stored_action,
            reward as f32,
            &real_next,
            terminated,
            truncated,
        );
        self.ep_return += reward;
        let done = terminated || truncated;
        if done {
            if self.recent.len() == 100 {
                self.recent.pop_front();
            }
            self.recent.push_back(self.ep_return);
            self.ep_return = 0.0;
            self.episodes += 1;
        }
        self.obs = next;
        self.global_step += self.ranks;
        Ok(done)
    }

    /// Mean return of the last 100 episodes (NaN before the first one ends) and the episodes
    /// finished so far; under MPI over every rank's last 100 and all ranks' episodes (one
    /// allreduce; collective).
    pub fn episode_stats(&self) -> (f64, u64) {
        let local = [
            self.recent.iter().sum::<f64>(),
            self.recent.len() as f64,
            self.episodes as f64,
        ];
        let [ret, n, episodes] = collective::sum_f64(&local)[..] else {
            unreachable!("three sums")
        };
        let mean = if n == 0.0 { f64::NAN } else { ret / n };
        (mean, episodes as u64)
    }

    /// Checkpoint state (the replay arrays go in [`OffPolicyEnv::tensors`]).
    pub fn state(&self) -> Result<OffPolicyEnvState, AlgoError> {
        Ok(OffPolicyEnvState {
            global_step: self.global_step,
            venv: self.venv.snapshot()?,
            obs: self.obs.clone(),
            ep_return: self.ep_return,
            recent: self.recent.clone(),
            episodes: self.episodes,
            replay_pos: self.buffer.position(),
            replay_len: self.buffer.len(),
        })
    }

    /// The replay buffer as checkpoint tensors.
    pub fn tensors(&self) -> Vec<rein_nn::io::NamedTensor> {
        replay_tensors(&self.buffer)
    }

    /// Restores [`OffPolicyEnv::state`] and the replay tensors of `saved`.
    pub fn restore<S>(
        &mut self,
        state: OffPolicyEnvState,
        saved: &crate::checkpoint::Loaded<S>,
    ) -> Result<(), AlgoError> {
        restore_replay(
            &mut self.buffer,
            &saved.tensors,
            state.replay_pos,
            state.replay_len,
        )
        .map_err(|e| saved.error(e))?;
        self.global_step = state.global_step;
        self.venv.restore(&state.venv)?;
        self.obs = state.obs;
        self.ep_return = state.ep_return;
        self.recent = state.recent;
        self.episodes = state.episodes;
        Ok(())
    }
}

/// Mean and population standard deviation of the return of `policy` (flat observation in,
/// env action out) over `episodes` fresh episodes seeded `seed, seed + 1, ...`.
pub(crate) fn evaluate_policy(
    make_env: &EnvFactory,
    episodes: u64,
    seed: u64,
    policy: &mut dyn FnMut(&[f32]) -> rein_core::Value,
) -> Result<(f64, f64), AlgoError> {
    let mut env = make_env(0)?;
    let space = env.observation_space().clone();
    let mut returns = Vec::new();
    for k in 0..episodes {
        let (mut obs, _) = env.reset(Some(seed.wrapping_add(k)));
        let mut ret = 0.0;
        loop {
            let x = space.flatten(&obs)?;
            let step = env.step(&policy(&x))?;
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
    Ok((
        mean,
        (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt(),
    ))
}

/// One episode of `policy` on `env` (reset with `seed`), every state rendered, for GIFs;
/// `None` when the env renders text rather than frames.
pub(crate) fn render_policy_episode(
    env: &mut dyn rein_core::Env,
    seed: u64,
    policy: &mut dyn FnMut(&[f32]) -> rein_core::Value,
) -> Result<Option<Vec<rein_core::RgbFrame>>, AlgoError> {
    let space = env.observation_space().clone();
    let (mut obs, _) = env.reset(Some(seed));
    let mut frames = Vec::new();
    loop {
        match env.render()? {
            rein_core::Render::Rgb(f) => frames.push(f),
            rein_core::Render::Text(_) => return Ok(None),
        }
        let x = space.flatten(&obs)?;
        let step = env.step(&policy(&x))?;
        obs = step.obs;
        if step.terminated || step.truncated {
            return Ok(Some(frames));
        }
    }
}

/// Bounds of a bounded Box action space, for agents whose policy acts in [-1, 1].
pub(crate) fn box_bounds(
    space: &rein_core::Space,
    algo: &str,
) -> Result<(Vec<f32>, Vec<f32>), AlgoError> {
    match space {
        rein_core::Space::Box { low, high, .. }
            if low.iter().chain(high).all(|x| x.is_finite()) =>
        {
            Ok((
                low.iter().map(|&x| x as f32).collect(),
                high.iter().map(|&x| x as f32).collect(),
            ))
        }
        other => Err(AlgoError::Config(format!(
            "{algo} needs a bounded Box action space, got {other}"
        ))),
    }
}

/// The env action for a policy action in [-1, 1]: `low + (a + 1) (high - low) / 2`.
pub(crate) fn unscale_action(a: &[f32], low: &[f32], high: &[f32]) -> rein_core::Value {
    rein_core::Value::Box(
        a.iter()
            .zip(low.iter().zip(high))
            .map(|(&x, (&l, &h))| l + (x + 1.0) * 0.5 * (h - l))
            .collect(),
    )
}

/// Batch rows `[obs | action]` (`batch x (obs_dim + action_dim)`), the input of a Q critic.
pub(crate) fn critic_input(obs: &[f32], actions: &[f32], b: usize) -> Vec<f32> {
    let (od, ad) = (obs.len() / b, actions.len() / b);
    let mut out = Vec::with_capacity(b * (od + ad));
    for k in 0..b {
        out.extend_from_slice(&obs[k * od..(k + 1) * od]);
        out.extend_from_slice(&actions[k * ad..(k + 1) * ad]);
    }
    out
}
