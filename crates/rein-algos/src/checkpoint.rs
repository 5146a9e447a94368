//! The agents' side of `rein_train::Checkpoint`: their networks and replay buffers are
//! `rein_nn::io::NamedTensor`s, their state a typed struct per agent.

use crate::AlgoError;
use rein_nn::io::NamedTensor;
use rein_train::{Checkpoint, F32View};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// Writes `tensors` and `state` of an agent of `kind` to `path`, atomically. Under MPI the
/// replay arrays (`replay.*`) are each rank's own ([`Checkpoint::write_ranked`]'s local
/// tensors); the networks are shared.
pub(crate) fn save<S: Serialize>(
    path: &Path,
    kind: &str,
    state: &S,
    tensors: &[NamedTensor],
) -> Result<(), AlgoError> {
    let (local, shared): (Vec<_>, Vec<_>) = tensors
        .iter()
        .map(|t| (t.name.clone(), F32View::new(t.shape.clone(), &t.data)))
        .partition(|(name, _)| name.starts_with("replay."));
    Ok(Checkpoint::write_ranked(path, kind, state, shared, local)?)
}

/// A checkpoint read back: the agent's state and its tensors by name.
pub(crate) struct Loaded<S> {
    /// The typed state.
    pub state: S,
    /// Weights and replay arrays by name.
    pub tensors: HashMap<String, NamedTensor>,
    ckpt: Checkpoint,
}

/// Reads a checkpoint that must have been written by an agent of one of `kinds`.
pub(crate) fn load<S: DeserializeOwned>(
    path: &Path,
    kinds: &[&str],
) -> Result<Loaded<S>, AlgoError> {
    let ckpt = Checkpoint::read_kind(path, kinds)?;
    let state = ckpt.state()?;
    let tensors = ckpt
        .f32_tensors()?
        .into_iter()
        .map(|(name, (shape, data))| (name.clone(), NamedTensor { name, shape, data }))
        .collect();
    Ok(Loaded {
        state,
        tensors,
        ckpt,
    })
}

impl<S> Loaded<S> {
    /// An error naming the checkpoint file.
    pub fn error(&self, message: String) -> AlgoError {
        AlgoError::Checkpoint(self.ckpt.invalid(message))
    }

    /// Loads the policy's weights, checking names and shapes.
    pub fn load_policy(
        &self,
        policy: &mut crate::actor_critic::ActorCritic,
    ) -> Result<(), AlgoError> {
        policy
            .load_tensors(&self.tensors)
            .map_err(|e| self.error(e))
    }

    /// Loads the network saved under `prefix` into `mlp`, checking names and shapes.
    pub fn load_mlp(&self, mlp: &mut rein_nn::Mlp, prefix: &str) -> Result<(), AlgoError> {
        mlp.load_tensors(prefix, &self.tensors)
            .map_err(|e| self.error(e))
    }
}
