//! The run loop over a small deterministic trainer: interrupted (by `max_updates` or by the
//! observer, as Ctrl-C does) and resumed ends byte-identical to uninterrupted; a failing
//! update keeps the last good checkpoint; checkpoints come on the progress cadence.

use rein_train::{
    files, run, Checkpoint, Curve, F32View, Observer, Progress, RunEnd, RunError, RunOptions,
    Silent, Trainer, TrainerError,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Counts to `total` in steps of 3, with a weight that follows a recurrence.
#[derive(Serialize, Deserialize)]
struct Counter {
    steps: u64,
    total: u64,
    updates: u64,
    weight: Vec<f32>,
    fail_at: Option<u64>,
}

impl Counter {
    fn new(total: u64) -> Self {
        Self {
            steps: 0,
            total,
            updates: 0,
            weight: vec![1.0, 0.5],
            fail_at: None,
        }
    }
    fn load(path: &Path) -> Self {
        let c = Checkpoint::read_kind(path, &["counter"]).unwrap();
        let mut t: Counter = c.state().unwrap();
        t.weight = c.f32_tensors().unwrap()["w"].1.clone();
        t
    }
}

impl Trainer for Counter {
    fn kind(&self) -> &'static str {
        "counter"
    }
    fn columns(&self) -> &'static [&'static str] {
        &["step", "value"]
    }
    fn update(&mut self) -> Result<Vec<f64>, TrainerError> {
        if self.fail_at == Some(self.updates) {
            return Err("value is NaN".into());
        }
        self.steps = (self.steps + 3).min(self.total);
        self.updates += 1;
        for w in &mut self.weight {
            *w = (*w * 1.7 + 0.1).fract();
        }
        Ok(vec![self.steps as f64, self.weight[0] as f64])
    }
    fn updates(&self) -> u64 {
        self.updates
    }
    fn progress(&self) -> Progress {
        Progress {
            done: self.steps,
            total: self.total,
            unit: "steps",
        }
    }
    fn status(&self, row: &[f64]) -> String {
        format!("value {:.3}", row[1])
    }
    fn save_checkpoint(&self, path: &Path) -> Result<(), TrainerError> {
        let w = self.weight.clone();
        Ok(Checkpoint::write(
            path,
            "counter",
            self,
            vec![("w".to_string(), F32View::new(vec![2], &w))],
        )?)
    }
    fn curve(&self) -> Curve {
        Curve {
            file: "learning_curve.png",
            x: ("step", "steps"),
            y: ("value", "value"),
        }
    }
}

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rein-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Stops once progress reaches `at`, as a Ctrl-C handler's flag does.
struct StopAt {
    at: u64,
    seen: u64,
    checkpoints: Vec<u64>,
}

impl Observer for StopAt {
    fn on_update(&mut self, p: Progress, _: &[f64], _: &str) {
        self.seen = p.done;
    }
    fn on_checkpoint(&mut self, _: &Path, _: f64) {
        self.checkpoints.push(self.seen);
    }
    fn should_stop(&mut self) -> bool {
        self.seen >= self.at
    }
}

#[test]
fn interrupted_and_resumed_runs_end_byte_identical_to_uninterrupted() {
    let whole = fresh_dir("whole");
    let end = run(
        &mut Counter::new(50),
        &whole,
        &RunOptions::default(),
        &mut Silent,
    )
    .unwrap();
    assert_eq!(end, RunEnd::Finished(None));
    assert!(whole.join("learning_curve.png").exists());

    // Stopped by max_updates, then by the observer, then run to the end.
    let part = fresh_dir("part");
    let opts = RunOptions {
        checkpoint_every: 10,
        max_updates: Some(4),
        ..RunOptions::default()
    };
    let end = run(&mut Counter::new(50), &part, &opts, &mut Silent).unwrap();
    assert_eq!(end, RunEnd::MaxUpdates);
    let mut t = Counter::load(&part.join(files::CHECKPOINT));
    assert_eq!(t.updates, 4);
    let resumed = RunOptions {
        checkpoint_every: 10,
        resumed: true,
        ..RunOptions::default()
    };
    let mut stop = StopAt {
        at: 27,
        seen: 0,
        checkpoints: vec![],
    };
    assert_eq!(
        run(&mut t, &part, &resumed, &mut stop).unwrap(),
        RunEnd::Interrupted
    );
    // Checkpoints when progress crossed 20 (at 21) and at the interruption (27).
    assert_eq!(stop.checkpoints, vec![21, 27]);
    let mut t = Counter::load(&part.join(files::CHECKPOINT));
    assert_eq!(t.updates, 9);
    // What a kill -9 during a checkpoint write leaves: removed at resume, nothing else is.
    std::fs::create_dir_all(part.join("model")).unwrap();
    let debris = [
        part.join(".checkpoint.safetensors.tmp4242"),
        part.join("model/.model.safetensors.tmp17"),
    ];
    for d in &debris {
        std::fs::write(d, b"half").unwrap();
    }
    std::fs::write(part.join("model/.keep.tmpx"), b"not ours").unwrap();
    assert_eq!(
        run(&mut t, &part, &resumed, &mut Silent).unwrap(),
        RunEnd::Finished(None)
    );
    for d in &debris {
        assert!(!d.exists(), "{} left", d.display());
    }
    assert!(part.join("model/.keep.tmpx").exists());
    for f in [files::CHECKPOINT, files::METRICS] {
        assert_eq!(
            std::fs::read(whole.join(f)).unwrap(),
            std::fs::read(part.join(f)).unwrap(),
            "{f} differs"
        );
    }
}

#[test]
fn a_failing_update_keeps_the_last_good_checkpoint() {
    let dir = fresh_dir("fail");
    let mut t = Counter::new(60);
    t.fail_at = Some(7);
    let opts = RunOptions {
        checkpoint_every: 9,
        ..RunOptions::default()
    };
    let e = run(&mut t, &dir, &opts, &mut Silent).unwrap_err();
    assert!(matches!(e, RunError::Trainer { update: 7, .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("value is NaN") && msg.contains("checkpoint.safetensors"),
        "{msg}"
    );
    // The last checkpoint is the one written when progress crossed 18 (update 6).
    assert_eq!(Counter::load(&dir.join(files::CHECKPOINT)).updates, 6);
}
