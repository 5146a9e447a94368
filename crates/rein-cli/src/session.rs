//! The terminal side of `rein_train::run`: an indicatif progress bar as the observer, Ctrl-C
//! (SIGINT, SIGTERM) as its stop request, and the lines that say how a stopped run continues.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use rein_train::{Observer, Progress, RunEnd, RunOptions, Trainer};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first Ctrl-C: the run finishes its update, writes a checkpoint and exits 130.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C/SIGTERM handler (once): the first signal asks the run to stop after
/// the current update; a second one exits at once.
fn install_interrupt_handler() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: finishing this update and writing a checkpoint (Ctrl-C again to quit at once)");
        });
    });
}

/// A progress bar over the trainer's progress unit, and what checkpoints cost.
struct Bar {
    bar: ProgressBar,
    checkpoints: u64,
    checkpoint_seconds: f64,
}

impl Observer for Bar {
    fn on_start(&mut self, p: Progress) {
        self.bar.set_length(p.total);
        self.bar.set_position(p.done);
        let template = format!(
            "{{spinner}} [{{elapsed_precise}}<{{eta_precise}}] {{bar:30}} {{pos}}/{{len}} {} {{msg}}",
            p.unit
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            self.bar.set_style(style);
        }
    }
    fn on_update(&mut self, p: Progress, _row: &[f64], status: &str) {
        self.bar.set_position(p.done);
        self.bar.set_message(status.to_string());
    }
    fn on_checkpoint(&mut self, _: &Path, seconds: f64) {
        self.checkpoints += 1;
        self.checkpoint_seconds += seconds;
    }
    fn should_stop(&mut self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

/// Runs `trainer` in `dir` with a progress bar (hidden with `quiet`). A run stopped by
/// `max_updates` prints how to continue (`resume_command DIR`); one stopped by Ctrl-C says the
/// same and exits with status 130.
pub fn run(
    trainer: &mut dyn Trainer,
    dir: &Path,
    options: &RunOptions,
    quiet: bool,
    resume_command: &str,
) -> Result<RunEnd> {
    install_interrupt_handler();
    // Under MPI rank 0 speaks for the run; the other ranks train silently.
    let root = rein_core::collective::is_root();
    let bar = if quiet || !root {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    let mut observer = Bar {
        bar,
        checkpoints: 0,
        checkpoint_seconds: 0.0,
    };
    let clock = std::time::Instant::now();
    let end = rein_train::run(trainer, dir, options, &mut observer);
    observer.bar.finish_and_clear();
    let end = match end {
        Ok(end) => end,
        Err(e) => return Err(discard_failed_start(dir, options, e.into())),
    };
    let p = trainer.progress();
    let stopped = format!(
        "after update {} at {} of {} {}; continue with: {resume_command} {}",
        trainer.updates(),
        p.done,
        p.total,
        p.unit,
        dir.display()
    );
    // What the run's wall time went to, so a cadence that costs more than it should shows.
    let total = clock.elapsed().as_secs_f64();
    if !root {
        if end == RunEnd::Interrupted {
            std::process::exit(130);
        }
        return Ok(end);
    }
    // On stderr, with the progress bar: stdout stays the results (some commands print JSON).
    eprintln!(
        "ran {:.2} s, of which {:.3} s writing {} checkpoints ({:.1}%)",
        total,
        observer.checkpoint_seconds,
        observer.checkpoints,
        100.0 * observer.checkpoint_seconds / total.max(1e-9)
    );
    match end {
        RunEnd::MaxUpdates => println!("stopped {stopped}"),
        RunEnd::Interrupted => {
            println!("interrupted {stopped}");
            std::process::exit(130);
        }
        RunEnd::Finished(_) => {}
    }
    Ok(end)
}

/// A new run that failed before its first checkpoint leaves nothing to resume: its half-made
/// run directory is removed ([`rein_train::discard_failed_start`]), and the error says so.
fn discard_failed_start(dir: &Path, options: &RunOptions, e: anyhow::Error) -> anyhow::Error {
    if rein_train::discard_failed_start(dir, options.resumed) {
        anyhow::anyhow!(
            "{e:#}\n(the run failed before its first checkpoint, so its directory {} was removed)",
            dir.display()
        )
    } else {
        e
    }
}

/// The command that resumes runs whose checkpoints are of `kind`.
fn command_of_kind(kind: &str) -> String {
    match kind {
        "lm-sft" => "rein lm sft (or pretrain)".into(),
        "lm-reward-model" => "rein lm train-reward-model".into(),
        k if k.starts_with("lm-") => format!("rein lm {}", &k[3..]),
        _ => "rein train".into(),
    }
}

/// Checks that the run in `dir` has a checkpoint of one of `kinds` before anything else of
/// it is read, so resuming a run with the wrong command says which command it needs
/// instead of naming a file that kind of run does not have.
pub fn check_run_kind(dir: &Path, kinds: &[&str]) -> Result<()> {
    let ckpt = dir.join(rein_train::files::CHECKPOINT);
    if !dir.is_dir() {
        anyhow::bail!("{}: no such run directory", dir.display());
    }
    if !ckpt.exists() {
        anyhow::bail!(
            "{}: no checkpoint to resume from (the run stopped before its first checkpoint)",
            ckpt.display()
        );
    }
    let kind = rein_train::Checkpoint::peek_kind(&ckpt)?;
    rein_train::Checkpoint::check_resume_ranks(&ckpt)?;
    if !kinds.contains(&kind.as_str()) {
        let wanted: Vec<String> = kinds.iter().map(|k| command_of_kind(k)).collect();
        anyhow::bail!(
            "{} is a run of `{}` (a {kind} checkpoint), not of `{}`; resume it with `{} --resume {}`",
            dir.display(),
            command_of_kind(&kind),
            wanted.join("` or `"),
            command_of_kind(&kind),
            dir.display()
        );
    }
    Ok(())
}
