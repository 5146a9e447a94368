//! The exact-resume harness every trainer's tests run: a run interrupted after some updates
//! and resumed from its checkpoint must end byte-identical to an uninterrupted run (the final
//! checkpoint, and every `metrics.csv` value but the wall-clock ones).

use crate::run::{files, run, RunOptions, Silent};
use crate::trainer::{Trainer, TrainerError};
use std::path::Path;

/// Builds a fresh trainer.
pub type Build<'a> = &'a dyn Fn() -> Result<Box<dyn Trainer>, TrainerError>;
/// Loads a trainer from a checkpoint file.
pub type Load<'a> = &'a dyn Fn(&Path) -> Result<Box<dyn Trainer>, TrainerError>;

/// Columns measured by the clock, which no two runs share.
fn is_wall_clock(column: &str) -> bool {
    column == "sps"
        || column.ends_with("_per_second")
        || column.contains("seconds")
        || column.starts_with("time")
}

/// Trains `build()` to the end in `scratch/whole`, and in `scratch/part` for `first` updates,
/// then (loaded with `load`) for `second` more, then to the end; returns an error naming what
/// differs. `scratch` is emptied first.
pub fn check_exact_resume(
    build: Build,
    load: Load,
    first: u64,
    second: u64,
    scratch: &Path,
) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let _ = std::fs::remove_dir_all(scratch);
    let (whole, part) = (scratch.join("whole"), scratch.join("part"));
    for d in [&whole, &part] {
        std::fs::create_dir_all(d).map_err(|x| e(&x))?;
    }
    let mut t = build().map_err(|x| e(&x))?;
    run(t.as_mut(), &whole, &RunOptions::default(), &mut Silent).map_err(|x| e(&x))?;
    let total_updates = t.updates();
    let mut t = build().map_err(|x| e(&x))?;
    let stop_after = |n: u64, resumed: bool| RunOptions {
        max_updates: Some(n),
        resumed,
        ..RunOptions::default()
    };
    run(t.as_mut(), &part, &stop_after(first, false), &mut Silent).map_err(|x| e(&x))?;
    drop(t);
    let ckpt = part.join(files::CHECKPOINT);
    for n in [Some(second), None] {
        let mut t = load(&ckpt).map_err(|x| e(&x))?;
        let options = match n {
            Some(n) => stop_after(n, true),
            None => RunOptions {
                resumed: true,
                ..RunOptions::default()
            },
        };
        run(t.as_mut(), &part, &options, &mut Silent).map_err(|x| e(&x))?;
        if n.is_none() && t.updates() != total_updates {
            return Err(format!(
                "resumed run ended after {} updates, the uninterrupted one after {total_updates}",
                t.updates()
            ));
        }
    }
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).map_err(|x| e(&x));
    if read(&whole, files::CHECKPOINT)? != read(&part, files::CHECKPOINT)? {
        return Err("final checkpoints differ".into());
    }
    let rows = |d: &Path| -> Result<Vec<Vec<String>>, String> {
        let text = String::from_utf8(read(d, files::METRICS)?).map_err(|x| e(&x))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        Ok(lines
            .map(|l| {
                l.split(',')
                    .zip(&header)
                    .filter(|(_, h)| !is_wall_clock(h))
                    .map(|(v, _)| v.to_string())
                    .collect()
            })
            .collect())
    };
    let (a, b) = (rows(&whole)?, rows(&part)?);
    if a.len() != b.len() {
        return Err(format!(
            "metrics.csv has {} rows, resumed {}",
            a.len(),
            b.len()
        ));
    }
    if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
        return Err(format!(
            "metrics.csv row {} differs: {:?} vs resumed {:?}",
            i + 1,
            a[i],
            b[i]
        ));
    }
    Ok(())
}
