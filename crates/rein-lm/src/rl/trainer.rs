//! The RL trainers for language models as one `rein_train::Trainer`: GRPO (and its
//! critic-free relatives) or PPO, with the reward and tokenizer they score and decode with,
//! so that the one run loop drives `rein lm grpo`, `rein lm ppo` and `rein lm demo` (and the
//! Python package) alike. Also the task presets: settings, rewards and data paths in TOML.

use crate::chat::ChatTemplate;
use crate::rl::grpo::{GrpoLog, GrpoTrainer};
use crate::rl::ppo_lm::{PpoLmLog, PpoLmTrainer};
use crate::rl::reward::Reward;
use crate::rl::rewards::RewardSpec;
use crate::{LmError, Tokenizer};
use rein_train::{files, Curve, Progress, Trainer, TrainerError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The method of an [`RlTrainer`].
// One trainer lives per run; the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum RlMethod {
    /// GRPO, Dr. GRPO, RLOO or REINFORCE (`rein lm grpo`).
    Grpo(GrpoTrainer),
    /// PPO with a value head or value model (`rein lm ppo`).
    Ppo(PpoLmTrainer),
}

/// An RL trainer for a language model with its reward and tokenizer.
pub struct RlTrainer {
    /// The method and its state.
    pub method: RlMethod,
    /// The reward the samples are scored with.
    pub reward: Box<dyn Reward>,
    /// The policy's tokenizer (exported next to the model).
    pub tokenizer: Tokenizer,
    /// The policy's chat template, if it has one (exported next to the model, and kept in the
    /// run directory for `--resume`).
    pub chat_template: Option<ChatTemplate>,
}

/// Settings as TOML (for `config.toml`).
fn to_toml<C: Serialize>(c: &C) -> Result<String, LmError> {
    toml::to_string(c).map_err(|e| LmError::Format(e.to_string()))
}

/// Where a LoRA run's adapter goes in its run directory (PEFT's layout).
pub const ADAPTER_DIR: &str = "adapter";

/// Checkpoint kinds of the two methods.
pub const GRPO_KIND: &str = "lm-grpo";
/// See [`GRPO_KIND`].
pub const PPO_KIND: &str = "lm-ppo";

impl RlTrainer {
    /// Loads the trainer in the checkpoint at `path`, whichever method wrote it.
    pub fn load(
        path: &Path,
        reward: Box<dyn Reward>,
        tokenizer: Tokenizer,
        chat_template: Option<ChatTemplate>,
    ) -> Result<Self, LmError> {
        let kind =
            rein_train::Checkpoint::peek_kind(path).map_err(|e| LmError::Format(e.to_string()))?;
        let method = match kind.as_str() {
            GRPO_KIND => RlMethod::Grpo(GrpoTrainer::load_checkpoint(path, &tokenizer)?),
            PPO_KIND => RlMethod::Ppo(PpoLmTrainer::load_checkpoint(path, &tokenizer)?),
            other => {
                return Err(LmError::Format(format!(
                    "{}: a checkpoint of a {other} trainer, expected {GRPO_KIND} or {PPO_KIND}",
                    path.display()
                )))
            }
        };
        Ok(Self {
            method,
            reward,
            tokenizer,
            chat_template,
        })
    }

    /// A new trainer of checkpoint kind `kind` ([`GRPO_KIND`] or [`PPO_KIND`]) on the model
    /// `model_dir` (a directory or `.gguf` file, with its tokenizer) and `prompts`
    /// (conversations rendered with the model's chat template), its settings from
    /// [`settings`], its reward the sum of `specs`; with `lora.enabled` a fresh adapter is
    /// trained on the frozen model. Returns the trainer, its settings as TOML and its seed.
    pub fn build(
        kind: &str,
        preset: Option<&TaskPreset>,
        overrides: &[(String, serde_json::Value)],
        model_dir: &Path,
        prompts: Vec<crate::rl::reward::PromptRecord>,
        specs: &[RewardSpec],
    ) -> Result<(Self, String, u64), LmError> {
        let reward = crate::rl::rewards::build_reward(specs)?;
        Self::build_with_reward(kind, preset, overrides, model_dir, prompts, reward)
    }

    /// [`RlTrainer::build`] with a reward of the caller's own (Python's reward functions).
    pub fn build_with_reward(
        kind: &str,
        preset: Option<&TaskPreset>,
        overrides: &[(String, serde_json::Value)],
        model_dir: &Path,
        mut prompts: Vec<crate::rl::reward::PromptRecord>,
        reward: Box<dyn Reward>,
    ) -> Result<(Self, String, u64), LmError> {
        let p = crate::pretrained::Pretrained::load(model_dir)?;
        p.need_tokenizer()?;
        crate::rl::reward::render_conversations(
            &mut prompts,
            p.chat_template.as_ref(),
            &model_dir.display().to_string(),
        )?;
        let (model, tk, chat_template) = (p.model, p.tokenizer.expect("checked"), p.chat_template);
        let (method, text, seed) = if kind == GRPO_KIND {
            let c: crate::rl::grpo::GrpoConfig = settings(preset, overrides)?;
            let (text, seed) = (to_toml(&c)?, c.seed);
            let model = model.with_lora(&c.lora, model_dir, c.seed)?;
            (
                RlMethod::Grpo(GrpoTrainer::new(c, model, prompts, &tk)?),
                text,
                seed,
            )
        } else {
            let c: crate::rl::ppo_lm::PpoLmConfig = settings(preset, overrides)?;
            let (text, seed) = (to_toml(&c)?, c.seed);
            let model = model.with_lora(&c.lora, model_dir, c.seed)?;
            (
                RlMethod::Ppo(PpoLmTrainer::new(c, model, prompts, &tk)?),
                text,
                seed,
            )
        };
        let trainer = Self {
            method,
            reward,
            tokenizer: tk,
            chat_template,
        };
        Ok((trainer, text, seed))
    }

    /// Writes what `--resume` reads besides the checkpoint into a new run directory: the
    /// tokenizer (and chat template), `config.toml` and the reward list `reward.json`.
    pub fn write_run_files(
        &self,
        run: &Path,
        config_toml: &str,
        specs: &[RewardSpec],
    ) -> Result<(), LmError> {
        // Under MPI the run directory is rank 0's.
        if !rein_core::collective::is_root() {
            return Ok(());
        }
        self.tokenizer.save(&run.join("tokenizer.json"))?;
        if let Some(t) = &self.chat_template {
            t.save(run)?;
        }
        rein_train::write_config(run, config_toml).map_err(|e| LmError::Format(e.to_string()))?;
        let path = run.join("reward.json");
        let json =
            serde_json::to_string_pretty(specs).map_err(|e| LmError::Format(e.to_string()))?;
        rein_core::metrics::write_atomic(&path, json.as_bytes()).map_err(|e| LmError::io(&path, e))
    }

    /// The trainer of a run directory written by [`RlTrainer::write_run_files`] and the run
    /// loop: its tokenizer, rewards and checkpoint.
    pub fn resume(run: &Path) -> Result<Self, LmError> {
        let path = run.join("reward.json");
        let text = std::fs::read_to_string(&path).map_err(|e| LmError::io(&path, e))?;
        let specs: Vec<RewardSpec> = serde_json::from_str(&text)
            .map_err(|e| LmError::Format(format!("{}: not a reward list: {e}", path.display())))?;
        if specs.is_empty() {
            return Err(LmError::Input(format!(
                "{}: the run's rewards are Python functions; resume it from Python with \
                 rein.lm.grpo/ppo(resume=..., reward_funcs=[...])",
                run.display()
            )));
        }
        Self::resume_with_reward(run, crate::rl::rewards::build_reward(&specs)?)
    }

    /// The trainer of a run directory with a reward of the caller's own (a run trained with
    /// Python reward functions, whose `reward.json` is an empty list).
    pub fn resume_with_reward(run: &Path, reward: Box<dyn Reward>) -> Result<Self, LmError> {
        let tk = Tokenizer::from_file(&run.join("tokenizer.json"))?;
        let template = ChatTemplate::from_dir(run)?;
        Self::load(&run.join(files::CHECKPOINT), reward, tk, template)
    }

    /// The policy being trained.
    pub fn policy(&self) -> &crate::Model {
        match &self.method {
            RlMethod::Grpo(t) => &t.policy,
            RlMethod::Ppo(t) => &t.policy,
        }
    }

    /// Sets the run's length to `max_steps`, for a resumed run trained longer (or shorter):
    /// warm-up and the end move with it; fewer steps than already done are refused.
    pub fn set_max_steps(&mut self, max_steps: u64) -> Result<(), LmError> {
        let done = self.steps().0;
        crate::train::check_budget(max_steps, done)?;
        match &mut self.method {
            RlMethod::Grpo(t) => t.config.max_steps = max_steps,
            RlMethod::Ppo(t) => t.config.max_steps = max_steps,
        }
        Ok(())
    }

    /// The trainer's settings as `config.toml` holds them (what `--config`/presets take).
    pub fn settings_toml(&self) -> Result<String, LmError> {
        match &self.method {
            RlMethod::Grpo(t) => to_toml(&t.config),
            RlMethod::Ppo(t) => to_toml(&t.config),
        }
    }

    fn steps(&self) -> (u64, u64) {
        match &self.method {
            RlMethod::Grpo(t) => (t.step, t.config.max_steps),
            RlMethod::Ppo(t) => (t.step, t.config.max_steps),
        }
    }
}

impl Trainer for RlTrainer {
    fn kind(&self) -> &'static str {
        match self.method {
            RlMethod::Grpo(_) => GRPO_KIND,
            RlMethod::Ppo(_) => PPO_KIND,
        }
    }
    fn columns(&self) -> &'static [&'static str] {
        match self.method {
            RlMethod::Grpo(_) => &GrpoLog::COLUMNS,
            RlMethod::Ppo(_) => &PpoLmLog::COLUMNS,
        }
    }
    fn update(&mut self) -> Result<Vec<f64>, TrainerError> {
        let (r, tk) = (self.reward.as_mut(), &self.tokenizer);
        Ok(match &mut self.method {
            RlMethod::Grpo(t) => t.update(r, tk)?.row().to_vec(),
            RlMethod::Ppo(t) => t.update(r, tk)?.row().to_vec(),
        })
    }
    fn updates(&self) -> u64 {
        self.steps().0
    }
    fn parameter_checksum(&self) -> Option<u64> {
        crate::models::model::parameter_checksum(self.policy())
    }
    fn progress(&self) -> Progress {
        let (done, total) = self.steps();
        Progress {
            done,
            total,
            unit: "steps",
        }
    }
    fn status(&self, row: &[f64]) -> String {
        let col = |name: &str| {
            let i = self.columns().iter().position(|c| *c == name);
            i.map_or(f64::NAN, |i| row[i])
        };
        let head = format!(
            "score {:.3} kl {:.3}",
            col("objective/scores"),
            col("objective/kl")
        );
        match self.method {
            RlMethod::Grpo(_) => format!("{head} len {:.1}", col("response_length")),
            RlMethod::Ppo(_) => format!(
                "{head} beta {:.3} vloss {:.3}",
                col("kl_coef"),
                col("loss/value_avg")
            ),
        }
    }
    fn save_checkpoint(&self, path: &Path) -> Result<(), TrainerError> {
        match &self.method {
            RlMethod::Grpo(t) => t.save_checkpoint(path)?,
            RlMethod::Ppo(t) => t.save_checkpoint(path)?,
        }
        Ok(())
    }
    fn curve(&self) -> Curve {
        Curve {
            file: "reward_curve.png",
            x: ("step", "step"),
            y: ("objective/scores", "mean task score"),
        }
    }
    /// The policy as a Hugging Face directory `model/` with its tokenizer (merged, for a LoRA
    /// run, whose adapter alone also goes to `adapter/` in PEFT's format).
    fn export(&self, run_dir: &Path) -> Result<(), TrainerError> {
        let dir = run_dir.join(files::MODEL);
        crate::checkpoint::save_model(self.policy(), &dir, &[])?;
        self.tokenizer.save(&dir.join("tokenizer.json"))?;
        if let Some(t) = &self.chat_template {
            t.save(&dir)?;
        }
        if let Some(a) = self.policy().adapter() {
            a.save(&run_dir.join(ADAPTER_DIR))?;
        }
        Ok(())
    }
    /// The first 8 samples of the step.
    fn samples(&self) -> Vec<serde_json::Value> {
        let (step, samples) = match &self.method {
            RlMethod::Grpo(t) => (t.step, &t.last_samples),
            RlMethod::Ppo(t) => (t.step, &t.last_samples),
        };
        samples
            .iter()
            .take(8)
            .map(|s| serde_json::json!({"step": step, "prompt": s.prompt, "response": s.response, "reward": s.reward}))
            .collect()
    }
}

/// A task preset: trainer settings, rewards and data paths (relative to the preset file).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskPreset {
    /// What the task is.
    #[serde(default)]
    pub description: String,
    /// `grpo` or `ppo` (the command checks that it fits).
    #[serde(default)]
    pub trainer: Option<String>,
    /// Training prompts.
    #[serde(default)]
    pub prompts: Option<PathBuf>,
    /// Held-out prompts for `rein lm eval`.
    #[serde(default)]
    pub eval_prompts: Option<PathBuf>,
    /// Rewards (summed with their weights).
    #[serde(default)]
    pub reward: Vec<RewardSpec>,
    /// Trainer settings.
    #[serde(default)]
    pub settings: toml::Table,
    /// The file it was read from and its text, so errors can name a setting's line.
    #[serde(skip)]
    pub source: Option<(PathBuf, String)>,
}

impl TaskPreset {
    /// Reads a preset; relative data and reward-model paths are taken from the preset's folder
    /// (a reward model's made absolute when it exists, so a resumed run finds it anywhere).
    pub fn read(path: &Path) -> Result<Self, LmError> {
        let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
        let mut p: TaskPreset = toml::from_str(&text)
            .map_err(|e| LmError::Format(format!("{}: not a task preset: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |x: &mut PathBuf| {
            if x.is_relative() {
                *x = base.join(&*x);
            }
        };
        if let Some(x) = p.prompts.as_mut() {
            fix(x);
        }
        if let Some(x) = p.eval_prompts.as_mut() {
            fix(x);
        }
        for r in &mut p.reward {
            if let RewardSpec::RewardModel { path, .. } = r {
                fix(path);
                if let Ok(abs) = std::fs::canonicalize(&*path) {
                    *path = abs;
                }
            }
        }
        p.source = Some((path.to_path_buf(), text));
        Ok(p)
    }
}

impl TaskPreset {
    /// The preset's `max_new_tokens` and `stop_strings` settings, for evaluating on its task.
    pub fn generation_limits(&self) -> (Option<usize>, Vec<String>) {
        let max_new = self
            .settings
            .get("max_new_tokens")
            .and_then(|v| v.as_integer())
            .map(|v| v as usize);
        let stops = self
            .settings
            .get("stop_strings")
            .and_then(|v| v.clone().try_into().ok())
            .unwrap_or_default();
        (max_new, stops)
    }

    /// Checks the preset read from `path`: its settings against its trainer's (`grpo` or
    /// `ppo`), its prompt files, its rewards (a reward model not trained yet is reported, not
    /// an error). Returns the lines of the report.
    pub fn check(&self, path: &Path) -> Result<Vec<String>, LmError> {
        match self.trainer.as_deref() {
            Some("grpo") => settings::<crate::rl::grpo::GrpoConfig>(Some(self), &[])?.validate()?,
            Some("ppo") => {
                settings::<crate::rl::ppo_lm::PpoLmConfig>(Some(self), &[])?.validate()?
            }
            other => {
                return Err(LmError::Input(format!(
                    "{}: trainer must be \"grpo\" or \"ppo\", got {other:?}",
                    path.display()
                )))
            }
        }
        let mut lines = Vec::new();
        for f in [&self.prompts, &self.eval_prompts].into_iter().flatten() {
            let n = crate::rl::reward::read_prompts(f)?.len();
            lines.push(format!("{}: {n} prompts", f.display()));
        }
        for spec in &self.reward {
            match spec {
                RewardSpec::RewardModel { path, .. }
                    if !path.join("model.safetensors").exists() =>
                {
                    lines.push(format!(
                        "reward model {} is not trained yet (rein lm train-reward-model --out {})",
                        path.display(),
                        path.display()
                    ));
                }
                _ => {
                    spec.build()?;
                }
            }
        }
        lines.push(format!(
            "{}: ok ({} trainer, {} rewards)",
            path.display(),
            self.trainer.as_deref().unwrap_or(""),
            self.reward.len()
        ));
        Ok(lines)
    }
}

/// A trainer's settings: its defaults, then the preset's `[settings]`, then `overrides`
/// (`key`, JSON value) in order; unknown keys are errors naming the key.
pub fn settings<C: Serialize + DeserializeOwned + Default>(
    preset: Option<&TaskPreset>,
    overrides: &[(String, serde_json::Value)],
) -> Result<C, LmError> {
    use rein_train::settings::{flag_text, set_path, toml_line, Sources};
    let bad = |e: rein_train::settings::SettingsError| LmError::Input(e.message);
    let mut v = serde_json::to_value(C::default()).map_err(|e| LmError::Input(e.to_string()))?;
    let mut sources = Sources::default();
    if let Some(p) = preset {
        // A sub-table (`[settings.lora]`) sets its keys one by one, keeping the defaults of
        // the keys it does not name.
        fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
            for (k, val) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match val {
                    toml::Value::Table(t) => flatten(&key, t, out),
                    other => out.push((key, other.clone())),
                }
            }
        }
        let mut flat = Vec::new();
        flatten("", &p.settings, &mut flat);
        for (k, val) in flat {
            let at = match &p.source {
                Some((path, text)) => match toml_line(text, &format!("settings.{k}")) {
                    Some(line) => format!("{}, line {line}", path.display()),
                    None => path.display().to_string(),
                },
                None => "the preset's [settings]".to_string(),
            };
            let val = serde_json::to_value(val).map_err(|e| LmError::Input(e.to_string()))?;
            set_path(&mut v, &k, val)
                .map_err(|e| LmError::Input(format!("{at}: {}", e.message)))?;
            sources.record(&k, at);
        }
    }
    for (k, val) in overrides {
        set_path(&mut v, k, val.clone()).map_err(bad)?;
        sources.record(k, flag_text(k, val));
    }
    rein_train::settings::deserialize(v, &sources).map_err(bad)
}

/// Rewards from `--reward` flags, else the preset's, else the exact answer.
pub fn reward_specs(
    flags: &[String],
    preset: Option<&TaskPreset>,
) -> Result<Vec<RewardSpec>, LmError> {
    if !flags.is_empty() {
        return flags.iter().map(|f| RewardSpec::parse(f)).collect();
    }
    match preset {
        Some(p) if !p.reward.is_empty() => Ok(p.reward.clone()),
        _ => Ok(vec![RewardSpec::ExactAnswer {
            take: Default::default(),
            weight: 1.0,
        }]),
    }
}
