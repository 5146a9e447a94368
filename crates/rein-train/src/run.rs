//! The one run loop: drives any [`Trainer`] in a run directory, writing `metrics.csv` (flushed
//! per row), checkpoints on a cadence in the trainer's progress unit, the learning curve,
//! `eval.json` and `samples.jsonl`; stops after `max_updates` iterations of this invocation,
//! on an observer's request (Ctrl-C) with a checkpoint, and on a trainer error (NaN/inf
//! included) with the last good checkpoint left in place. Output goes through [`Observer`]:
//! libraries never print.

use crate::trainer::{Evaluation, Progress, Trainer, TrainerError};
use rein_core::collective;
use rein_core::metrics::{write_atomic, CsvLogger};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The file names of a run directory, in one place.
pub mod files {
    /// Every effective setting, TOML (feed it back with `--config`).
    pub const CONFIG: &str = "config.toml";
    /// One row per update.
    pub const METRICS: &str = "metrics.csv";
    /// The checkpoint `--resume` continues from.
    pub const CHECKPOINT: &str = "checkpoint.safetensors";
    /// The final evaluation.
    pub const EVAL: &str = "eval.json";
    /// Sampled responses of language-model RL trainers.
    pub const SAMPLES: &str = "samples.jsonl";
    /// A language model's Hugging Face directory.
    pub const MODEL: &str = "model";
}

/// Errors of the run loop; each names the file or the checkpoint to resume from.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A run-directory file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The trainer failed (diverged, env error, ...); the last good checkpoint stays.
    #[error(
        "training stopped at update {update}: {source}; the last good checkpoint is {checkpoint}"
    )]
    Trainer {
        /// Updates done before the failure.
        update: u64,
        /// The last checkpoint written (it is intact).
        checkpoint: PathBuf,
        /// The cause.
        source: TrainerError,
    },
    /// Under MPI, the ranks' parameters differ (they must stay equal: gradients are averaged).
    #[error(
        "the ranks' weights differ after update {update} (checksums {min:016x} to {max:016x}); \
         data-parallel training lost its synchronisation"
    )]
    Diverged {
        /// Updates done.
        update: u64,
        /// The smallest and largest checksum over the ranks.
        min: u64,
        /// See `min`.
        max: u64,
    },
    /// Writing a checkpoint or export failed.
    #[error("{path}: {source}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: TrainerError,
    },
}

/// Why [`run`] returned.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// The trainer reached its total; the final evaluation if it has one.
    Finished(Option<Evaluation>),
    /// `max_updates` iterations were done in this invocation (checkpoint written).
    MaxUpdates,
    /// The observer asked to stop (Ctrl-C); the current update finished and a checkpoint was
    /// written.
    Interrupted,
}

/// What the loop reports; the command line draws progress bars, Python calls back.
pub trait Observer {
    /// Before the first update of this invocation.
    fn on_start(&mut self, progress: Progress) {
        let _ = progress;
    }
    /// After every update, with its row and the trainer's status line.
    fn on_update(&mut self, progress: Progress, row: &[f64], status: &str) {
        let _ = (progress, row, status);
    }
    /// After a checkpoint is written (with the model export, if any), with the seconds the
    /// writing took.
    fn on_checkpoint(&mut self, path: &Path, seconds: f64) {
        let _ = (path, seconds);
    }
    /// Polled after every update: `true` ends the run with a checkpoint ([`RunEnd::Interrupted`]).
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// An observer that reports nothing and never stops a run.
pub struct Silent;

impl Observer for Silent {}

/// How [`run`] runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunOptions {
    /// A checkpoint each time progress crosses a multiple of this many units (the trainer's
    /// unit: environment steps, optimizer steps); 0: not by progress.
    pub checkpoint_every: u64,
    /// A checkpoint after the first update that ends at least this many seconds after the
    /// last checkpoint (or the start); 0: not by time. Both cadences may be on; with both 0,
    /// only when the run stops. Where a checkpoint falls never changes training: resuming
    /// from any of them continues exactly.
    pub checkpoint_seconds: f64,
    /// Stop after this many updates in this invocation (with a checkpoint).
    pub max_updates: Option<u64>,
    /// Append the trainer's samples to `samples.jsonl` every this many updates (0: never).
    pub sample_every: u64,
    /// The run directory already holds this run's `metrics.csv` (a resumed run): rows after
    /// the checkpoint's update count are dropped and rewritten.
    pub resumed: bool,
    /// Under MPI with more than one rank: compare every rank's parameter checksum
    /// ([`Trainer::parameter_checksum`]) every this many updates and stop every rank with
    /// [`RunError::Diverged`] when they differ (0: never).
    pub check_weights_every: u64,
}

/// `YYYYMMDD-HHMMSS` in UTC (civil-from-days, Howard Hinnant's algorithm), so that run
/// directories sort by time without a date-time dependency.
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Creates a new run directory `root/<env>__<algo>__<seed>__<UTC timestamp>` (a `-k` suffix
/// when that exists; never reusing one). A `/` of a namespaced id (`dm_control/cheetah-run-v0`)
/// becomes `-` in the name, so that every run is one directory under `root`. Under MPI rank 0
/// creates it and every rank gets its path.
pub fn create_run_dir(root: &Path, env: &str, algo: &str, seed: u64) -> std::io::Result<PathBuf> {
    let path = collective::read_on_root(|| {
        create_run_dir_here(root, env, algo, seed)
            .map(|p| p.to_string_lossy().into_owned().into_bytes())
            .map_err(|e| e.to_string())
    })
    .map_err(std::io::Error::other)?;
    Ok(PathBuf::from(String::from_utf8_lossy(&path).into_owned()))
}

/// [`create_run_dir`] in this process.
fn create_run_dir_here(root: &Path, env: &str, algo: &str, seed: u64) -> std::io::Result<PathBuf> {
    let env = env.replace(['/', '\\'], "-");
    let base = format!(
        "{env}__{algo}__{seed}__{}",
        utc_timestamp(SystemTime::now())
    );
    std::fs::create_dir_all(root)?;
    for k in 0.. {
        let name = if k == 0 {
            base.clone()
        } else {
            format!("{base}-{k}")
        };
        let dir = root.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("some suffix is free")
}

/// Writes `config.toml` (every effective setting) into `dir`, atomically (under MPI, rank 0
/// alone: the run directory is its).
pub fn write_config(dir: &Path, text: &str) -> Result<(), RunError> {
    if !collective::is_root() {
        return Ok(());
    }
    let path = dir.join(files::CONFIG);
    write_atomic(&path, text.as_bytes()).map_err(|source| RunError::Io { path, source })
}

/// A new run that failed before its first checkpoint (a reward that fails, a model that does
/// not fit) leaves nothing to resume: removes its half-made run directory. Resumed runs and
/// runs with a checkpoint are kept. Returns whether it was removed, for the caller's message.
pub fn discard_failed_start(dir: &Path, resumed: bool) -> bool {
    if !collective::is_root() || resumed || dir.join(files::CHECKPOINT).exists() {
        return false;
    }
    std::fs::remove_dir_all(dir).is_ok()
}

/// Removes the temporary files a killed writer left in a run directory and the folders it
/// exports (`.checkpoint.safetensors.tmpPID`, [`rein_core::metrics::is_temporary`]): one run
/// directory has one writer, so at resume every such file is debris.
pub fn remove_stale_temporaries(dir: &Path) -> std::io::Result<()> {
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if entry.file_type()?.is_dir() {
                if d == dir {
                    dirs.push(entry.path());
                }
            } else if rein_core::metrics::is_temporary(&name) {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

/// Trains `trainer` in `dir` until it finishes, `max_updates` updates are done, or the
/// observer stops it. Every way out but an error leaves a checkpoint from which the trainer's
/// loader continues exactly; a finished run also gets its curve, export and `eval.json`.
///
/// Under MPI (`rein_core::collective::world` of more than one rank) every rank runs this loop
/// with its own trainer; rank 0 alone writes the run directory (metrics, samples, curve,
/// export, evaluation; checkpoints gather every rank's state there through
/// [`crate::Checkpoint::write`]), and the decisions to checkpoint or stop are taken by all
/// ranks together (a checkpoint falls due on any rank's clock, a stop on any rank's request),
/// so every rank takes the same number of updates.
pub fn run(
    trainer: &mut dyn Trainer,
    dir: &Path,
    options: &RunOptions,
    observer: &mut dyn Observer,
) -> Result<RunEnd, RunError> {
    let io = |path: PathBuf| move |source| RunError::Io { path, source };
    let root = collective::is_root();
    if options.resumed && root {
        remove_stale_temporaries(dir).map_err(io(dir.to_path_buf()))?;
    }
    let csv_path = dir.join(files::METRICS);
    let mut csv = if !root {
        None
    } else if options.resumed {
        Some(CsvLogger::resume(
            &csv_path,
            trainer.columns(),
            trainer.updates() as usize,
        ))
    } else {
        Some(CsvLogger::create(&csv_path, trainer.columns()))
    }
    .transpose()
    .map_err(io(csv_path.clone()))?;
    let ckpt = dir.join(files::CHECKPOINT);
    let samples_path = dir.join(files::SAMPLES);
    let mut last_save = std::time::Instant::now();
    let save = |t: &dyn Trainer, observer: &mut dyn Observer| -> Result<(), RunError> {
        let clock = std::time::Instant::now();
        t.save_checkpoint(&ckpt)
            .map_err(|source| RunError::Checkpoint {
                path: ckpt.clone(),
                source,
            })?;
        if collective::is_root() {
            t.export(dir).map_err(|source| RunError::Checkpoint {
                path: dir.join(files::MODEL),
                source,
            })?;
        }
        observer.on_checkpoint(&ckpt, clock.elapsed().as_secs_f64());
        Ok(())
    };
    observer.on_start(trainer.progress());
    let mut done_here = 0u64;
    while !trainer.progress().finished() {
        let before = trainer.progress().done;
        let row = trainer.update().map_err(|source| RunError::Trainer {
            update: trainer.updates(),
            checkpoint: ckpt.clone(),
            source,
        })?;
        if let Some(csv) = csv.as_mut() {
            csv.log(&row).map_err(io(csv_path.clone()))?;
        }
        done_here += 1;
        let progress = trainer.progress();
        observer.on_update(progress, &row, &trainer.status(&row));
        let check = options.check_weights_every;
        if check > 0 && collective::is_distributed() && trainer.updates().is_multiple_of(check) {
            if let Some(sum) = trainer.parameter_checksum() {
                let (min, max) = collective::world().min_max_u64(sum);
                if min != max {
                    return Err(RunError::Diverged {
                        update: trainer.updates(),
                        min,
                        max,
                    });
                }
            }
        }
        if root
            && options.sample_every > 0
            && trainer.updates().is_multiple_of(options.sample_every)
        {
            let lines = trainer.samples();
            if !lines.is_empty() {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&samples_path)
                    .map_err(io(samples_path.clone()))?;
                for line in lines {
                    writeln!(f, "{line}").map_err(io(samples_path.clone()))?;
                }
            }
        }
        if progress.finished() {
            break;
        }
        let every = options.checkpoint_every;
        let secs = options.checkpoint_seconds;
        // Under MPI both clocks and Ctrl-C are each rank's: one allreduce decides for all.
        let [time_due, interrupted] = collective::any_each([
            secs > 0.0 && last_save.elapsed().as_secs_f64() >= secs,
            observer.should_stop(),
        ]);
        let due = (every > 0 && progress.done / every > before / every) || time_due;
        let stop = if interrupted {
            Some(RunEnd::Interrupted)
        } else if options.max_updates.is_some_and(|m| done_here >= m) {
            Some(RunEnd::MaxUpdates)
        } else {
            None
        };
        if due || stop.is_some() {
            save(trainer, observer)?;
            last_save = std::time::Instant::now();
        }
        if let Some(end) = stop {
            return Ok(end);
        }
    }
    drop(csv);
    save(trainer, observer)?;
    if !root {
        return Ok(RunEnd::Finished(None));
    }
    let curve = trainer.curve();
    crate::plot::csv_curve(
        dir,
        curve.file,
        (curve.x.0, curve.y.0),
        (curve.x.1, curve.y.1),
    )
    .map_err(io(dir.join(curve.file)))?;
    let evaluation = trainer.evaluate().map_err(|source| RunError::Trainer {
        update: trainer.updates(),
        checkpoint: ckpt.clone(),
        source,
    })?;
    if let Some(e) = &evaluation {
        let path = dir.join(files::EVAL);
        let text = serde_json::to_string_pretty(&e.json).unwrap_or_default();
        write_atomic(&path, text.as_bytes()).map_err(io(path.clone()))?;
    }
    Ok(RunEnd::Finished(evaluation))
}
