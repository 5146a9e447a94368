//! Vector environments: N copies of an environment stepped in lock step, with observations in
//! one contiguous `f32` buffer (`num_envs * obs_dim`, row `i` is env `i`'s flat observation).
//!
//! # Autoreset
//! Gymnasium 1.x's default mode, [`AutoresetMode::NextStep`], is the default here: when sub-env
//! `i` ends (terminated or truncated) at step t, step t returns its final observation as usual,
//! and the *next* call to `step` ignores action `i`, resets env `i`, and returns the reset
//! observation with reward 0 and both flags false. [`AutoresetMode::SameStep`] (SB3's
//! convention) resets within step t: the returned observation is the reset one and the final
//! observation is kept in [`VectorEnv::final_obs`] (and `info["final_obs"]`).
//!
//! # Threads
//! With `threads > 1`, the envs are split into contiguous chunks, one per thread; the calling
//! thread steps chunk 0 and persistent worker threads step the others. Every env owns its
//! generator, so results are identical to `threads = 1` for the same seeds. Workers spin
//! briefly between steps (a rayon `join` costs microseconds, far more than a CartPole step)
//! and park when idle, so they do not steal the CPU from training between rollouts.

use crate::env::{Env, Info};
use crate::error::EnvError;
use crate::space::{Space, Value};
use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// When a finished sub-environment is reset; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoresetMode {
    /// Gymnasium 1.x default: reset on the step after the episode ended.
    #[default]
    NextStep,
    /// Reset in the same step; the final observation goes to `final_obs`.
    SameStep,
}

#[derive(Clone, Copy)]
enum Command {
    Step,
    Reset(Option<u64>),
    Exit,
}

/// The envs of one thread and their per-step outputs.
struct Chunk {
    /// Index of the first env of this chunk.
    first: usize,
    envs: Vec<Box<dyn Env>>,
    actions: Vec<Value>,
    obs: Vec<f32>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    needs_reset: Vec<bool>,
    infos: Vec<Info>,
    final_obs: Vec<Option<Vec<f32>>>,
    command: Command,
    mode: AutoresetMode,
    obs_space: Space,
    obs_dim: usize,
    error: Option<EnvError>,
}

impl Chunk {
    fn run(&mut self) {
        self.error = None;
        match self.command {
            Command::Step => {
                for i in 0..self.envs.len() {
                    if let Err(e) = self.step_one(i) {
                        self.error.get_or_insert(e);
                    }
                }
            }
            Command::Reset(seed) => {
                for i in 0..self.envs.len() {
                    let s = seed.map(|s| s.wrapping_add((self.first + i) as u64));
                    let (obs, info) = self.envs[i].reset(s);
                    self.rewards[i] = 0.0;
                    self.terminated[i] = false;
                    self.truncated[i] = false;
                    self.needs_reset[i] = false;
                    self.final_obs[i] = None;
                    self.infos[i] = info;
                    if let Err(e) = self.write_obs(i, &obs) {
                        self.error.get_or_insert(e);
                    }
                }
            }
            Command::Exit => {}
        }
    }

    fn write_obs(&mut self, i: usize, obs: &Value) -> Result<(), EnvError> {
        let d = self.obs_dim;
        self.obs_space
            .flatten_into(obs, &mut self.obs[i * d..(i + 1) * d])
    }

    fn step_one(&mut self, i: usize) -> Result<(), EnvError> {
        self.final_obs[i] = None;
        if self.mode == AutoresetMode::NextStep && self.needs_reset[i] {
            let (obs, info) = self.envs[i].reset(None);
            self.rewards[i] = 0.0;
            self.terminated[i] = false;
            self.truncated[i] = false;
            self.needs_reset[i] = false;
            self.infos[i] = info;
            return self.write_obs(i, &obs);
        }
        let step = self.envs[i].step(&self.actions[i])?;
        self.rewards[i] = step.reward;
        self.terminated[i] = step.terminated;
        self.truncated[i] = step.truncated;
        self.infos[i] = step.info;
        let done = step.terminated || step.truncated;
        match self.mode {
            AutoresetMode::NextStep => {
                self.needs_reset[i] = done;
                self.write_obs(i, &step.obs)
            }
            AutoresetMode::SameStep if done => {
                let final_flat = self.obs_space.flatten(&step.obs)?;
                self.infos[i].insert("final_obs".into(), step.obs.to_json());
                let (obs, reset_info) = self.envs[i].reset(None);
                self.infos[i]
                    .insert("reset_info".into(), serde_json::Value::Object(reset_info));
                self.final_obs[i] = Some(final_flat);
                self.write_obs(i, &obs)
            }
            AutoresetMode::SameStep => self.write_obs(i, &step.obs),
        }
    }
}

struct Shared {
    chunks: Vec<CachePadded<UnsafeCell<Chunk>>>,
    epoch: CachePadded<AtomicU64>,
    done: Vec<CachePadded<AtomicU64>>,
    sleeping: Vec<CachePadded<AtomicBool>>,
}

// SAFETY: chunk `t` is accessed by exactly one thread at a time. The owning thread (the
// caller for chunk 0, worker `t` otherwise) touches it only between seeing a new `epoch`
// (Acquire) and publishing `done[t] = epoch` (Release); the caller touches worker chunks only
// while no command is in flight, i.e. after it observed `done[t] == epoch` (Acquire) for every
// worker and before it publishes the next epoch (Release).
unsafe impl Sync for Shared {}

/// N environments stepped in lock step; see the module documentation.
pub struct VectorEnv {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    num_envs: usize,
    obs_dim: usize,
    obs_space: Space,
    action_space: Space,
    mode: AutoresetMode,
    epoch: u64,
    obs: Vec<f32>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    infos: Vec<Info>,
    has_reset: bool,
}

/// The outputs of one vector step, borrowed from the vector env.
#[derive(Debug)]
pub struct VecStep<'a> {
    /// `num_envs * obs_dim` flat observations.
    pub obs: &'a [f32],
    /// One reward per env.
    pub rewards: &'a [f64],
    /// Terminated flags.
    pub terminated: &'a [bool],
    /// Truncated flags.
    pub truncated: &'a [bool],
    /// Info of each env.
    pub infos: &'a [Info],
}

impl VectorEnv {
    /// Builds a vector env over `envs` (all with the same spaces), stepping them on `threads`
    /// threads (1: synchronous, in the calling thread).
    pub fn new(
        envs: Vec<Box<dyn Env>>,
        mode: AutoresetMode,
        threads: usize,
    ) -> Result<Self, EnvError> {
        let num_envs = envs.len();
        if num_envs == 0 {
            return Err(EnvError::Invalid("a vector env needs at least one env".into()));
        }
        let obs_space = envs[0].observation_space().clone();
        let action_space = envs[0].action_space().clone();
        for (i, e) in envs.iter().enumerate() {
            if e.observation_space() != &obs_space || e.action_space() != &action_space {
                return Err(EnvError::Invalid(format!(
                    "sub-env {i} has spaces {} / {}, sub-env 0 has {obs_space} / {action_space}",
                    e.observation_space(),
                    e.action_space()
                )));
            }
        }
        let obs_dim = obs_space.flat_dim();
        let threads = threads.clamp(1, num_envs);
        // Contiguous, balanced chunks.
        let mut chunks = Vec::with_capacity(threads);
        let mut envs = envs.into_iter();
        let mut first = 0;
        for t in 0..threads {
            let n = num_envs / threads + usize::from(t < num_envs % threads);
            let chunk_envs: Vec<Box<dyn Env>> = envs.by_ref().take(n).collect();
            chunks.push(CachePadded::new(UnsafeCell::new(Chunk {
                first,
                envs: chunk_envs,
                actions: vec![Value::Discrete(0); n],
                obs: vec![0.0; n * obs_dim],
                rewards: vec![0.0; n],
                terminated: vec![false; n],
                truncated: vec![false; n],
                needs_reset: vec![false; n],
                infos: vec![Info::new(); n],
                final_obs: vec![None; n],
                command: Command::Step,
                mode,
                obs_space: obs_space.clone(),
                obs_dim,
                error: None,
            })));
            first += n;
        }
        let shared = Arc::new(Shared {
            chunks,
            epoch: CachePadded::new(AtomicU64::new(0)),
            done: (0..threads).map(|_| CachePadded::new(AtomicU64::new(0))).collect(),
            sleeping: (0..threads)
                .map(|_| CachePadded::new(AtomicBool::new(false)))
                .collect(),
        });
        let workers = (1..threads)
            .map(|t| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("rein-vecenv-{t}"))
                    .spawn(move || worker_loop(&shared, t))
                    .map_err(|e| EnvError::Invalid(format!("cannot start worker thread: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            shared,
            workers,
            num_envs,
            obs_dim,
            obs_space,
            action_space,
            mode,
            epoch: 0,
            obs: vec![0.0; num_envs * obs_dim],
            rewards: vec![0.0; num_envs],
            terminated: vec![false; num_envs],
            truncated: vec![false; num_envs],
            infos: vec![Info::new(); num_envs],
            has_reset: false,
        })
    }

    /// Number of sub-environments.
    pub fn num_envs(&self) -> usize {
        self.num_envs
    }

    /// Length of one flat observation.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Observation space of one sub-env.
    pub fn single_observation_space(&self) -> &Space {
        &self.obs_space
    }

    /// Action space of one sub-env.
    pub fn single_action_space(&self) -> &Space {
        &self.action_space
    }

    /// The autoreset mode.
    pub fn mode(&self) -> AutoresetMode {
        self.mode
    }

    /// Number of threads stepping the envs (including the caller's).
    pub fn threads(&self) -> usize {
        self.shared.chunks.len()
    }

    /// Resets every env (env `i` with `seed + i` when a seed is given, as Gymnasium) and returns
    /// the flat observations.
    pub fn reset(&mut self, seed: Option<u64>) -> Result<&[f32], EnvError> {
        self.run(Command::Reset(seed), None)?;
        self.has_reset = true;
        Ok(&self.obs)
    }

    /// Steps every env with its action (`actions.len() == num_envs`).
    pub fn step(&mut self, actions: &[Value]) -> Result<VecStep<'_>, EnvError> {
        if !self.has_reset {
            return Err(EnvError::ResetNeeded);
        }
        if actions.len() != self.num_envs {
            return Err(EnvError::Invalid(format!(
                "vector step got {} actions for {} envs",
                actions.len(),
                self.num_envs
            )));
        }
        self.run(Command::Step, Some(actions))?;
        Ok(VecStep {
            obs: &self.obs,
            rewards: &self.rewards,
            terminated: &self.terminated,
            truncated: &self.truncated,
            infos: &self.infos,
        })
    }

    /// The current flat observations.
    pub fn obs(&self) -> &[f32] {
        &self.obs
    }

    /// In [`AutoresetMode::SameStep`], the final flat observation of env `i` if it ended on the
    /// last step (for bootstrapping on truncation).
    pub fn final_obs(&self, i: usize) -> Option<&[f32]> {
        let (t, k) = self.locate(i);
        // SAFETY: no command is in flight outside `run`, so the caller may read every chunk.
        let chunk = unsafe { &*self.shared.chunks[t].get() };
        chunk.final_obs[k].as_deref()
    }

    fn locate(&self, i: usize) -> (usize, usize) {
        for (t, c) in self.shared.chunks.iter().enumerate() {
            // SAFETY: as in `final_obs`.
            let chunk = unsafe { &*c.get() };
            if i < chunk.first + chunk.envs.len() {
                return (t, i - chunk.first);
            }
        }
        (self.shared.chunks.len() - 1, 0)
    }

    fn run(&mut self, command: Command, actions: Option<&[Value]>) -> Result<(), EnvError> {
        let shared = &*self.shared;
        // Hand out the command and actions while no worker runs.
        for c in shared.chunks.iter() {
            // SAFETY: no command in flight (see `Shared`).
            let chunk = unsafe { &mut *c.get() };
            chunk.command = command;
            if let Some(a) = actions {
                let range = chunk.first..chunk.first + chunk.envs.len();
                chunk.actions.clone_from_slice(&a[range]);
            }
        }
        self.epoch += 1;
        let epoch = self.epoch;
        shared.epoch.store(epoch, Ordering::SeqCst);
        for t in 1..shared.chunks.len() {
            if shared.sleeping[t].load(Ordering::SeqCst) {
                self.workers[t - 1].thread().unpark();
            }
        }
        // SAFETY: chunk 0 belongs to the calling thread.
        unsafe { (*shared.chunks[0].get()).run() };
        for t in 1..shared.chunks.len() {
            let mut spins = 0u32;
            while shared.done[t].load(Ordering::Acquire) != epoch {
                spins = spins.saturating_add(1);
                if spins < 1 << 16 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        // Gather outputs into the contiguous buffers.
        let mut first_error = None;
        for c in shared.chunks.iter() {
            // SAFETY: every worker published `done == epoch`; nothing is in flight.
            let chunk = unsafe { &mut *c.get() };
            let (a, n) = (chunk.first, chunk.envs.len());
            let d = self.obs_dim;
            self.obs[a * d..(a + n) * d].copy_from_slice(&chunk.obs);
            self.rewards[a..a + n].copy_from_slice(&chunk.rewards);
            self.terminated[a..a + n].copy_from_slice(&chunk.terminated);
            self.truncated[a..a + n].copy_from_slice(&chunk.truncated);
            for k in 0..n {
                self.infos[a + k] = std::mem::take(&mut chunk.infos[k]);
            }
            if let Some(e) = chunk.error.take() {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn worker_loop(shared: &Shared, t: usize) {
    let mut seen = 0u64;
    loop {
        let mut spins = 0u32;
        let epoch = loop {
            let e = shared.epoch.load(Ordering::Acquire);
            if e != seen {
                break e;
            }
            spins += 1;
            if spins < 1 << 14 {
                std::hint::spin_loop();
            } else {
                // Idle for a while: sleep until the caller publishes the next command.
                shared.sleeping[t].store(true, Ordering::SeqCst);
                if shared.epoch.load(Ordering::SeqCst) == seen {
                    std::thread::park_timeout(std::time::Duration::from_millis(10));
                }
                shared.sleeping[t].store(false, Ordering::SeqCst);
                spins = 0;
            }
        };
        seen = epoch;
        // SAFETY: chunk `t` is ours until we publish `done[t] = epoch` (see `Shared`).
        let chunk = unsafe { &mut *shared.chunks[t].get() };
        let exit = matches!(chunk.command, Command::Exit);
        chunk.run();
        shared.done[t].store(epoch, Ordering::Release);
        if exit {
            return;
        }
    }
}

impl Drop for VectorEnv {
    fn drop(&mut self) {
        if !self.workers.is_empty() {
            let _ = self.run(Command::Exit, None);
            for w in self.workers.drain(..) {
                let _ = w.join();
            }
        }
    }
}
