//! The interface every trainer implements (PPO, A2C, REINFORCE, DQN, TD3/DDPG, SAC,
//! language-model pretraining/SFT, the GRPO family, PPO for language models, reward models),
//! so that one run loop ([`crate::run`]) drives them all, from the command line or from Python.

use std::path::Path;

/// A trainer's error, boxed: each crate keeps its own error type (`AlgoError`, `LmError`) and
/// the run loop only reports it.
pub type TrainerError = Box<dyn std::error::Error + Send + Sync>;

/// How far a run is: `done` of `total` in `unit` (environment steps, optimizer steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Units done so far (over all invocations of a resumed run).
    pub done: u64,
    /// Units the run trains for.
    pub total: u64,
    /// What is counted: `"steps"` (environment steps) or `"optimizer steps"`.
    pub unit: &'static str,
}

impl Progress {
    /// True once the run has done all its units.
    pub fn finished(&self) -> bool {
        self.done >= self.total
    }
}

/// What to plot at the end of a run: one `metrics.csv` column against another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Curve {
    /// File name in the run directory (`learning_curve.png`, `loss_curve.png`, ...).
    pub file: &'static str,
    /// Column on the x axis and its title.
    pub x: (&'static str, &'static str),
    /// Column on the y axis and its title.
    pub y: (&'static str, &'static str),
}

/// The result of a trainer's final evaluation: `eval.json` and a line for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Written to `eval.json`.
    pub json: serde_json::Value,
    /// A one-line summary.
    pub summary: String,
}

/// One trainer, as the run loop sees it. One iteration is an *update* (`update`): it collects
/// what it needs (rollouts, env steps, a batch of prompts) and takes its optimisation step(s),
/// then returns one metrics row whose columns the trainer declares.
pub trait Trainer {
    /// The trainer's kind, written into checkpoints and run-directory names (`ppo`, `sac`,
    /// `lm-grpo`).
    fn kind(&self) -> &'static str;
    /// The `metrics.csv` columns, in row order; only columns the method has.
    fn columns(&self) -> &'static [&'static str];
    /// Runs one iteration and returns its metrics row (one value per column).
    fn update(&mut self) -> Result<Vec<f64>, TrainerError>;
    /// Iterations done so far (over all invocations): the rows `metrics.csv` keeps on resume.
    fn updates(&self) -> u64;
    /// Progress in the trainer's unit.
    fn progress(&self) -> Progress;
    /// A short status line from the last row, for progress displays.
    fn status(&self, row: &[f64]) -> String;
    /// Writes a checkpoint (through [`crate::Checkpoint::write`]) from which the trainer's
    /// own loader continues exactly.
    fn save_checkpoint(&self, path: &Path) -> Result<(), TrainerError>;
    /// What `learning_curve.png` (or the trainer's curve) plots.
    fn curve(&self) -> Curve;
    /// Writes what users take away besides the checkpoint into `run_dir` (a language model's
    /// Hugging Face directory); called with every checkpoint. Nothing by default.
    fn export(&self, run_dir: &Path) -> Result<(), TrainerError> {
        let _ = run_dir;
        Ok(())
    }
    /// JSON lines to append to `samples.jsonl` after this update (language-model trainers'
    /// sampled responses). None by default.
    fn samples(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }
    /// A hash of the trained parameters (`rein_core::collective::checksum_f32`), which the
    /// run loop compares across MPI ranks: data-parallel ranks must hold equal weights. `None`
    /// (the default): not checked.
    fn parameter_checksum(&self) -> Option<u64> {
        None
    }
    /// The final evaluation, when the trainer has one.
    fn evaluate(&mut self) -> Result<Option<Evaluation>, TrainerError> {
        Ok(None)
    }
}
