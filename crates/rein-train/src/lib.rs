//! The training session every rein trainer runs in, from the command line or from Python:
//!
//! - [`Trainer`]: the interface PPO, A2C, REINFORCE, DQN, TD3/DDPG, SAC and the
//!   language-model trainers implement (one iteration is an *update*, returning one metrics
//!   row of the columns the trainer declares);
//! - [`run`]: the one run loop (metrics.csv, checkpoint cadence, `max_updates`, resume, the
//!   stop on a trainer error that keeps the last good checkpoint, Ctrl-C through
//!   [`Observer::should_stop`], the learning curve and eval.json), reporting through an
//!   [`Observer`] instead of printing;
//! - [`Checkpoint`]: the one checkpoint container (safetensors tensors plus a typed state,
//!   the trainer kind, a format version and the rein version, written atomically);
//! - [`resume_check`]: the harness that checks a trainer's exact resume;
//! - [`plot`]: the learning-curve PNGs; [`settings`]: presets and overrides on config trees.

mod checkpoint;
pub mod plot;
pub mod resume_check;
mod run;
pub mod settings;
mod trainer;

pub use checkpoint::{Checkpoint, CheckpointError, F32View, ShapedF32, FORMAT_VERSION};
pub use run::{
    create_run_dir, discard_failed_start, files, remove_stale_temporaries, run, utc_timestamp,
    write_config, Observer, RunEnd, RunError, RunOptions, Silent,
};
pub use trainer::{Curve, Evaluation, Progress, Trainer, TrainerError};
