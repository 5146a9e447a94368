//! The RL trainers for language models: log-probabilities of sampled responses agree with
//! generation, and a GRPO run resumes exactly.

mod common;

use common::tensor_diff;
use rein_lm::generate::generate;
use rein_lm::models::{CausalLm, Model};
use rein_lm::rl::batch::ResponseBatch;
use rein_lm::{GenerationConfig, Gpt2, Gpt2Config};

fn tiny_model(seed: u64) -> Model {
    let cfg = Gpt2Config {
        vocab_size: 50,
        n_positions: 32,
        n_embd: 16,
        n_layer: 2,
        n_head: 2,
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        resid_pdrop: 0.0,
        ..Default::default()
    };
    Gpt2::new_random(cfg, &mut rein_core::rng_from_seed(seed))
        .unwrap()
        .into()
}

/// The trainer's log-probs of a response (prompt left-padded, response right-padded, one
/// forward pass) equal the ones generation reported token by token with the KV cache, at the
/// sampling temperature.
#[test]
fn response_logprobs_match_generation() {
    let model = tiny_model(3);
    let prompts = vec![vec![1, 2, 3, 4, 5], vec![7, 8], vec![9, 10, 11]];
    for temperature in [1.0f32, 0.7] {
        let cfg = GenerationConfig {
            max_new_tokens: 6,
            do_sample: true,
            temperature,
            eos_token_id: Some(49),
            ..Default::default()
        };
        let gens = generate(&model, &prompts, &cfg, None, None).unwrap();
        let responses: Vec<Vec<u32>> = gens.iter().map(|g| g.ids.clone()).collect();
        let b = ResponseBatch::new(&prompts, &responses, 32).unwrap();
        let (lp, _) = b
            .logprobs(&model, f64::from(temperature), None, false)
            .unwrap();
        let lp = lp.to_vec2::<f32>().unwrap();
        for (i, g) in gens.iter().enumerate() {
            for (j, &want) in g.logprobs.iter().enumerate() {
                assert!(
                    (lp[i][j] - want).abs() < 1e-4,
                    "row {i} token {j}: {} vs {want}",
                    lp[i][j]
                );
            }
        }
    }
}

/// GRPO's groups repeat a prompt: such rows share one forward and backward pass of it. The
/// hidden states at every response position and the parameter gradients equal those of each
/// row on its own (a batch of one shares nothing). Prompts `[0, 8]` and `[8]` pad to the same
/// ids with different masks and must not be shared.
#[test]
fn rows_that_repeat_a_prompt_share_its_pass_exactly() {
    use candle_core::{Device, Tensor};
    let model = tiny_model(3);
    let prompts: Vec<Vec<u32>> = vec![
        vec![5, 6, 7],
        vec![5, 6, 7],
        vec![8],
        vec![0, 8],
        vec![8],
        vec![5, 6, 7],
    ];
    let responses: Vec<Vec<u32>> = vec![
        vec![1, 2, 3, 4],
        vec![9],
        vec![4, 4, 4],
        vec![7, 1],
        vec![2, 3, 4, 5],
        vec![11, 12, 13],
    ];
    let d = model.hidden_size();
    // A fixed weighting of each row's real positions (zero on padding), so that the loss is
    // the same function of the parameters in both layouts.
    let weights = |rows: &[usize], width: usize| -> Tensor {
        let mut w = Vec::new();
        for &i in rows {
            for t in 0..width {
                for k in 0..d {
                    let real = t < responses[i].len();
                    w.push(if real {
                        ((i * 31 + t * 7 + k) % 13) as f32 / 13.0 - 0.5
                    } else {
                        0.0
                    });
                }
            }
        }
        Tensor::from_vec(w, (rows.len(), width, d), &Device::Cpu).unwrap()
    };
    let all: Vec<usize> = (0..prompts.len()).collect();
    let batch = ResponseBatch::new(&prompts, &responses, 32).unwrap();
    let shared = batch.hidden(&model, None).unwrap();
    let shared_loss = (&shared * weights(&all, batch.response_len))
        .unwrap()
        .sum_all()
        .unwrap();
    let mut alone_loss = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu).unwrap();
    for i in all {
        let one = ResponseBatch::new(&prompts[i..=i], &responses[i..=i], 32).unwrap();
        let h = one.hidden(&model, None).unwrap();
        let r = responses[i].len();
        let diff = tensor_diff(
            &shared.narrow(0, i, 1).unwrap().narrow(1, 0, r).unwrap(),
            &h,
        );
        assert!(diff < 1e-5, "row {i}: hidden states differ by {diff}");
        let l = (&h * weights(&[i], r)).unwrap().sum_all().unwrap();
        alone_loss = (alone_loss + l).unwrap();
    }
    let (g1, g2) = (
        shared_loss.backward().unwrap(),
        alone_loss.backward().unwrap(),
    );
    for (name, var) in model.named_vars() {
        let (a, b) = (
            g1.get(var.as_tensor()).unwrap(),
            g2.get(var.as_tensor()).unwrap(),
        );
        let scale = tensor_diff(b, &b.zeros_like().unwrap());
        let diff = tensor_diff(a, b);
        assert!(
            diff <= 1e-4 * (1.0 + scale),
            "{name}: gradients differ by {diff}"
        );
    }
}

use rein_lm::rl::grpo::{GrpoConfig, GrpoTrainer};
use rein_lm::rl::reward::{PromptRecord, Reward, Sample};
use rein_lm::{LmError, Tokenizer};

/// A tokenizer trained here on a few sentences of digits and words.
fn tokenizer(tag: &str) -> Tokenizer {
    let dir = std::env::temp_dir().join(format!("rein_rl_tok_{tag}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = dir.join("c.txt");
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(&format!(
            "Q: {} + {} = ? Answer: {}\n",
            i % 17,
            i % 5,
            i % 17 + i % 5
        ));
    }
    std::fs::write(&corpus, text).unwrap();
    let tk = Tokenizer::train_bpe(&[corpus], 300, false).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    tk
}

fn model_for(tk: &Tokenizer, seed: u64) -> Model {
    let cfg = Gpt2Config {
        vocab_size: tk.vocab_size(),
        n_positions: 32,
        n_embd: 16,
        n_layer: 2,
        n_head: 2,
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        resid_pdrop: 0.0,
        ..Default::default()
    };
    Gpt2::new_random(cfg, &mut rein_core::rng_from_seed(seed))
        .unwrap()
        .into()
}

struct Constant;
impl Reward for Constant {
    fn name(&self) -> String {
        "constant".into()
    }
    fn score(&mut self, s: &[Sample]) -> Result<Vec<f64>, LmError> {
        Ok(vec![0.5; s.len()])
    }
}

/// Rewards responses by how many of their characters are the digit 7.
struct Sevens;
impl Reward for Sevens {
    fn name(&self) -> String {
        "sevens".into()
    }
    fn score(&mut self, s: &[Sample]) -> Result<Vec<f64>, LmError> {
        Ok(s.iter()
            .map(|x| x.response.chars().filter(|&c| c == '7').count() as f64)
            .collect())
    }
}

fn prompts() -> Vec<PromptRecord> {
    (0..8)
        .map(|i| PromptRecord {
            prompt: format!("Q: {i} + 3 = ? Answer:"),
            references: vec![(i + 3).to_string()],
            ..Default::default()
        })
        .collect()
}

/// Equal scores give zero advantages: the policy must not move.
#[test]
fn grpo_with_equal_scores_leaves_the_policy_unchanged() {
    let tk = tokenizer("eq");
    let cfg = GrpoConfig {
        max_steps: 3,
        prompts_per_step: 2,
        group_size: 4,
        max_new_tokens: 4,
        learning_rate: 1e-2,
        ..Default::default()
    };
    let mut t = GrpoTrainer::new(cfg, model_for(&tk, 1), prompts(), &tk).unwrap();
    for _ in 0..3 {
        let log = t.update(&mut Constant, &tk).unwrap();
        assert!(log.kl.abs() < 1e-6, "kl {}", log.kl);
    }
    let start = model_for(&tk, 1);
    for ((_, a), (_, b)) in t.policy.named_vars().iter().zip(start.named_vars().iter()) {
        assert_eq!(tensor_diff(a.as_tensor(), b.as_tensor()), 0.0);
    }
}

/// GRPO raises a reward the random model can reach by chance.
#[test]
fn grpo_learns_to_emit_sevens() {
    let tk = tokenizer("sevens");
    let cfg = GrpoConfig {
        max_steps: 40,
        prompts_per_step: 4,
        group_size: 8,
        max_new_tokens: 6,
        learning_rate: 3e-3,
        ..Default::default()
    };
    let mut t = GrpoTrainer::new(cfg, model_for(&tk, 2), prompts(), &tk).unwrap();
    let mut scores = Vec::new();
    for _ in 0..40 {
        scores.push(t.update(&mut Sevens, &tk).unwrap().scores);
    }
    let first: f64 = scores[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = scores[35..].iter().sum::<f64>() / 5.0;
    assert!(last > 2.0 * first + 0.05, "first {first}, last {last}");
}

/// Four steps in one go equal two steps, a checkpoint, a reload and two more: policy,
/// optimiser, data order and sampling RNG all come back.
#[test]
fn grpo_resume_is_exact() {
    let tk = tokenizer("resume");
    let cfg = GrpoConfig {
        max_steps: 4,
        prompts_per_step: 2,
        group_size: 4,
        max_new_tokens: 4,
        learning_rate: 1e-3,
        beta: 0.1,
        ..Default::default()
    };
    let mut full = GrpoTrainer::new(cfg.clone(), model_for(&tk, 5), prompts(), &tk).unwrap();
    let mut logs_full = Vec::new();
    for _ in 0..4 {
        logs_full.push(full.update(&mut Sevens, &tk).unwrap());
    }
    let mut first = GrpoTrainer::new(cfg, model_for(&tk, 5), prompts(), &tk).unwrap();
    for _ in 0..2 {
        first.update(&mut Sevens, &tk).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("rein_grpo_resume_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ckpt.safetensors");
    first.save_checkpoint(&path).unwrap();
    let mut second = GrpoTrainer::load_checkpoint(&path, &tk).unwrap();
    for want in &logs_full[2..] {
        let log = second.update(&mut Sevens, &tk).unwrap();
        assert_eq!(log.scores, want.scores);
        assert_eq!(log.kl, want.kl);
    }
    let a = dir.join("a.safetensors");
    let b = dir.join("b.safetensors");
    full.save_checkpoint(&a).unwrap();
    second.save_checkpoint(&b).unwrap();
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

use rein_lm::rl::ppo_lm::{PpoLmConfig, PpoLmTrainer, ScoreScaling, ValueModel};

fn max_abs_diff(a: &Model, b: &Model) -> f32 {
    a.named_vars()
        .iter()
        .zip(b.named_vars().iter())
        .map(|((_, x), (_, y))| tensor_diff(x.as_tensor(), y.as_tensor()))
        .fold(0.0, f32::max)
}

/// PPO with a value head on the policy raises a reward the random model reaches by chance,
/// through minibatches and gradient accumulation.
#[test]
fn ppo_learns_to_emit_sevens() {
    let tk = tokenizer("ppo_sevens");
    let cfg = PpoLmConfig {
        prompts_per_step: 16,
        max_new_tokens: 6,
        temperature: 1.0,
        learning_rate: 3e-3,
        num_mini_batches: 2,
        gradient_accumulation_steps: 2,
        kl_coef: 0.01,
        ..Default::default()
    };
    let mut t = PpoLmTrainer::new(cfg, model_for(&tk, 2), prompts(), &tk).unwrap();
    let mut scores = Vec::new();
    for _ in 0..30 {
        let log = t.update(&mut Sevens, &tk).unwrap();
        assert!(log.value_loss.is_finite() && log.approxkl >= 0.0);
        scores.push(log.scores);
    }
    let first: f64 = scores[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = scores[25..].iter().sum::<f64>() / 5.0;
    assert!(last > 2.0 * first + 0.05, "first {first}, last {last}");
}

/// Rewards responses by their length in characters (never constant across samples).
struct Chars;
impl Reward for Chars {
    fn name(&self) -> String {
        "chars".into()
    }
    fn score(&mut self, s: &[Sample]) -> Result<Vec<f64>, LmError> {
        Ok(s.iter().map(|x| x.response.len() as f64).collect())
    }
}

/// A ratio threshold below 1 skips every minibatch: nothing moves; an early-stop KL of
/// (almost) zero lets exactly the first minibatch through (its ratio is exactly 1).
#[test]
fn ppo_guards_skip_and_stop() {
    let tk = tokenizer("ppo_guards");
    let base = PpoLmConfig {
        prompts_per_step: 8,
        max_new_tokens: 4,
        learning_rate: 1e-2,
        num_mini_batches: 2,
        ..Default::default()
    };
    let cfg = PpoLmConfig {
        ratio_threshold: 0.5,
        ..base.clone()
    };
    let mut t = PpoLmTrainer::new(cfg, model_for(&tk, 3), prompts(), &tk).unwrap();
    let log = t.update(&mut Chars, &tk).unwrap();
    assert_eq!(log.skipped_minibatches, 8.0);
    assert_eq!(max_abs_diff(&t.policy, &t.reference), 0.0);
    let cfg = PpoLmConfig {
        early_stop_kl: Some(1e-12),
        ..base
    };
    let mut t = PpoLmTrainer::new(cfg, model_for(&tk, 3), prompts(), &tk).unwrap();
    let log = t.update(&mut Chars, &tk).unwrap();
    assert_eq!(log.early_stopped, 1.0);
    assert!(max_abs_diff(&t.policy, &t.reference) > 0.0);
}

/// Four iterations in one go equal two, a checkpoint, a reload and two more, with every piece
/// of state in play: a separate value model, the adaptive KL controller, running score
/// normalisation, the missing-EOS penalty, data order and RNG.
#[test]
fn ppo_resume_is_exact() {
    let tk = tokenizer("ppo_resume");
    let cfg = PpoLmConfig {
        prompts_per_step: 4,
        samples_per_prompt: 2,
        max_new_tokens: 4,
        learning_rate: 1e-3,
        target_kl: Some(0.01),
        kl_horizon: 100.0,
        score_scaling: ScoreScaling::Norm,
        missing_eos_penalty: Some(1.0),
        value_model: ValueModel::Separate,
        num_ppo_epochs: 2,
        ..Default::default()
    };
    let mut full = PpoLmTrainer::new(cfg.clone(), model_for(&tk, 5), prompts(), &tk).unwrap();
    let logs_full: Vec<_> = (0..4)
        .map(|_| full.update(&mut Sevens, &tk).unwrap())
        .collect();
    assert_ne!(logs_full[3].kl_coef, 0.05, "the adaptive controller moved");
    let mut first = PpoLmTrainer::new(cfg, model_for(&tk, 5), prompts(), &tk).unwrap();
    for _ in 0..2 {
        first.update(&mut Sevens, &tk).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("rein_ppo_resume_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ckpt.safetensors");
    first.save_checkpoint(&path).unwrap();
    let mut second = PpoLmTrainer::load_checkpoint(&path, &tk).unwrap();
    for want in &logs_full[2..] {
        let log = second.update(&mut Sevens, &tk).unwrap();
        assert_eq!(log.scores, want.scores);
        assert_eq!(log.kl, want.kl);
        assert_eq!(log.value_loss, want.value_loss);
        assert_eq!(log.kl_coef, want.kl_coef);
    }
    let a = dir.join("a.safetensors");
    let b = dir.join("b.safetensors");
    full.save_checkpoint(&a).unwrap();
    second.save_checkpoint(&b).unwrap();
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

use rein_lm::rl::reward_model::{
    evaluate_preferences, train_reward_model, PreferencePair, RewardModel, RewardModelConfig,
    RewardModelTrainer,
};

/// A reward model learns a preference the backbone knows nothing about (responses with 7s
/// over responses with 1s), reaches high held-out accuracy, normalises to mean 0 / std 1 and
/// scores the same after a save and a reload.
#[test]
fn reward_model_learns_a_preference_and_round_trips() {
    let tk = tokenizer("rm");
    let pairs: Vec<PreferencePair> = (0..80)
        .map(|i| PreferencePair {
            prompt: format!("Q: {} + 3 = ? Answer:", i % 9),
            chosen: format!(" {}7", i % 5),
            rejected: format!(" {}1", i % 5),
        })
        .collect();
    let rm = RewardModel::new(
        model_for(&tk, 7),
        tk.clone(),
        &mut rein_core::rng_from_seed(1),
    )
    .unwrap();
    let before = evaluate_preferences(&rm, &pairs).unwrap();
    let cfg = RewardModelConfig {
        epochs: 6,
        batch_size: 8,
        learning_rate: 3e-3,
        eval_fraction: 0.25,
        ..Default::default()
    };
    let mut steps = 0;
    let (mut rm, eval, held) = train_reward_model(rm, pairs, &cfg, |_, _| {
        steps += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(held.len(), 20);
    assert_eq!(steps, 6 * 60usize.div_ceil(8));
    assert!(eval.accuracy >= 0.95, "before {before:?}, after {eval:?}");
    assert!(eval.margin > 1.0, "{eval:?}");
    let texts: Vec<(String, String)> = held
        .iter()
        .flat_map(|p| {
            [
                (p.prompt.clone(), p.chosen.clone()),
                (p.prompt.clone(), p.rejected.clone()),
            ]
        })
        .collect();
    let r = rm.score_texts(&texts).unwrap();
    let mean = r.iter().sum::<f64>() / r.len() as f64;
    let std = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / r.len() as f64).sqrt();
    rm.normalize(mean, std).unwrap();
    let r = rm.score_texts(&texts).unwrap();
    let m2 = r.iter().sum::<f64>() / r.len() as f64;
    let s2 = (r.iter().map(|x| (x - m2).powi(2)).sum::<f64>() / r.len() as f64).sqrt();
    assert!(
        m2.abs() < 1e-4 && (s2 - 1.0).abs() < 1e-3,
        "mean {m2} std {s2}"
    );
    let dir = std::env::temp_dir().join(format!("rein_rm_{}", std::process::id()));
    rm.save(&dir).unwrap();
    let back = RewardModel::load(&dir).unwrap();
    assert_eq!(back.score_texts(&texts).unwrap(), r);
    std::fs::remove_dir_all(&dir).ok();
}

/// A reward that returns NaN.
struct NanReward;
impl Reward for NanReward {
    fn name(&self) -> String {
        "nan".into()
    }
    fn score(&mut self, s: &[Sample]) -> Result<Vec<f64>, LmError> {
        Ok(vec![f64::NAN; s.len()])
    }
}

/// A non-finite reward is an error naming the reward; a model whose weights went NaN makes
/// both trainers stop with `NonFinite` (the caller's last checkpoint stays the last good
/// state) instead of training on garbage.
#[test]
fn non_finite_rewards_and_losses_stop_with_a_clear_error() {
    let tk = tokenizer("nan");
    let grpo_cfg = GrpoConfig {
        prompts_per_step: 2,
        group_size: 2,
        max_new_tokens: 3,
        ..Default::default()
    };
    let mut g = GrpoTrainer::new(grpo_cfg.clone(), model_for(&tk, 1), prompts(), &tk).unwrap();
    let e = g.update(&mut NanReward, &tk).unwrap_err().to_string();
    assert!(e.contains("nan") && e.contains("non-finite"), "{e}");
    let poisoned = || {
        let m = model_for(&tk, 1);
        let (_, v) = m
            .named_vars()
            .into_iter()
            .find(|(n, _)| n.ends_with("ln_f.weight"))
            .unwrap();
        v.set(&(v.as_tensor() * f64::NAN).unwrap()).unwrap();
        m
    };
    let mut g = GrpoTrainer::new(grpo_cfg, poisoned(), prompts(), &tk).unwrap();
    let e = g.update(&mut Chars, &tk);
    assert!(matches!(e, Err(LmError::NonFinite(_))), "{:?}", e.err());
    let cfg = PpoLmConfig {
        prompts_per_step: 4,
        max_new_tokens: 3,
        ..Default::default()
    };
    let mut p = PpoLmTrainer::new(cfg, poisoned(), prompts(), &tk).unwrap();
    let e = p.update(&mut Chars, &tk);
    assert!(matches!(e, Err(LmError::NonFinite(_))), "{:?}", e.err());
}

/// Every language-model trainer through the shared exact-resume harness of `rein-train`: a run
/// stopped twice and resumed from its checkpoints ends byte-identical to an uninterrupted one
/// (GRPO and PPO through `RlTrainer`, supervised training, reward-model training).
#[test]
fn every_lm_trainer_resumes_exactly_through_the_run_loop() {
    use rein_lm::rl::trainer::{RlMethod, RlTrainer};
    use rein_lm::train::{blocks_from_text, LmTrainConfig, LmTrainer, SupervisedTrainer};
    use rein_train::resume_check::check_exact_resume;
    use rein_train::{Trainer, TrainerError};
    use std::path::Path;
    type Built = Result<Box<dyn Trainer>, TrainerError>;
    let tk = tokenizer("harness");
    let root = std::env::temp_dir().join(format!("rein_lm_harness_{}", std::process::id()));
    let rl = |grpo: bool| -> Built {
        let method = if grpo {
            let cfg = GrpoConfig {
                max_steps: 5,
                prompts_per_step: 2,
                group_size: 3,
                max_new_tokens: 4,
                beta: 0.1,
                ..Default::default()
            };
            RlMethod::Grpo(GrpoTrainer::new(cfg, model_for(&tk, 5), prompts(), &tk)?)
        } else {
            let cfg = PpoLmConfig {
                max_steps: 5,
                prompts_per_step: 3,
                max_new_tokens: 4,
                ..Default::default()
            };
            RlMethod::Ppo(PpoLmTrainer::new(cfg, model_for(&tk, 5), prompts(), &tk)?)
        };
        Ok(Box::new(RlTrainer {
            method,
            reward: Box::new(Sevens),
            tokenizer: tk.clone(),
            chat_template: None,
        }))
    };
    let load_rl = |p: &Path| -> Built {
        Ok(Box::new(RlTrainer::load(
            p,
            Box::new(Sevens),
            tk.clone(),
            None,
        )?))
    };
    for grpo in [true, false] {
        check_exact_resume(&|| rl(grpo), &load_rl, 2, 1, &root.join("rl"))
            .unwrap_or_else(|e| panic!("grpo={grpo}: {e}"));
    }

    let text: String = (0..40)
        .map(|i| format!("Q: {i} + 1 = ? Answer: {}\n\n", i + 1))
        .collect();
    let eos = tk.token_id(rein_lm::tokenizer::END_OF_TEXT).unwrap();
    let sft = || -> Built {
        let cfg = LmTrainConfig {
            max_steps: 5,
            batch_size: 2,
            block_size: 16,
            eval_fraction: 0.2,
            eval_every: 2,
            ..Default::default()
        };
        let examples = blocks_from_text(&tk, &text, eos, 16)?;
        let trainer = LmTrainer::new(cfg, model_for(&tk, 6), examples)?;
        Ok(Box::new(SupervisedTrainer {
            trainer,
            tokenizer: tk.clone(),
        }))
    };
    let load_sft = |p: &Path| -> Built {
        Ok(Box::new(SupervisedTrainer {
            trainer: LmTrainer::load_checkpoint(p)?,
            tokenizer: tk.clone(),
        }))
    };
    check_exact_resume(&sft, &load_sft, 2, 1, &root.join("sft")).unwrap();

    let pairs: Vec<PreferencePair> = (0..20)
        .map(|i| PreferencePair {
            prompt: format!("Q: {} + 3 = ? Answer:", i % 9),
            chosen: format!(" {}7", i % 5),
            rejected: format!(" {}1", i % 5),
        })
        .collect();
    let rm = || -> Built {
        let cfg = RewardModelConfig {
            epochs: 2,
            batch_size: 4,
            eval_fraction: 0.2,
            ..Default::default()
        };
        let model = RewardModel::new(
            model_for(&tk, 7),
            tk.clone(),
            &mut rein_core::rng_from_seed(1),
        )?;
        Ok(Box::new(RewardModelTrainer::new(
            model,
            pairs.clone(),
            cfg,
        )?))
    };
    let load_rm = |p: &Path| -> Built {
        Ok(Box::new(RewardModelTrainer::load_checkpoint(
            p,
            tk.clone(),
        )?))
    };
    check_exact_resume(&rm, &load_rm, 3, 2, &root.join("rm")).unwrap();
    std::fs::remove_dir_all(&root).ok();
}

/// The same trainers (one copy each) on a Llama-family model: GRPO, PPO with a value head and
/// SFT on the tiny GGUF Llama with its own tokenizer continue exactly from a checkpoint.
#[test]
fn llama_family_trainers_resume_exactly_through_the_run_loop() {
    use rein_lm::rl::trainer::{RlMethod, RlTrainer};
    use rein_lm::train::{blocks_from_text, LmTrainConfig, LmTrainer, SupervisedTrainer};
    use rein_train::resume_check::check_exact_resume;
    use rein_train::{Trainer, TrainerError};
    use std::path::Path;
    type Built = Result<Box<dyn Trainer>, TrainerError>;
    let gguf = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/decoders/gguf/tiny-llama-F32.gguf");
    let load = || rein_lm::pretrained::Pretrained::load(&gguf).unwrap();
    let tk = load().tokenizer.unwrap();
    assert!(matches!(load().model, Model::Llama(_)));
    let root = std::env::temp_dir().join(format!("rein_llama_harness_{}", std::process::id()));
    let rl = |grpo: bool| -> Built {
        let method = if grpo {
            let cfg = GrpoConfig {
                max_steps: 5,
                prompts_per_step: 2,
                group_size: 3,
                max_new_tokens: 4,
                beta: 0.1,
                ..Default::default()
            };
            RlMethod::Grpo(GrpoTrainer::new(cfg, load().model, prompts(), &tk)?)
        } else {
            let cfg = PpoLmConfig {
                max_steps: 5,
                prompts_per_step: 3,
                max_new_tokens: 4,
                ..Default::default()
            };
            RlMethod::Ppo(PpoLmTrainer::new(cfg, load().model, prompts(), &tk)?)
        };
        Ok(Box::new(RlTrainer {
            method,
            reward: Box::new(Sevens),
            tokenizer: tk.clone(),
            chat_template: None,
        }))
    };
    let load_rl = |p: &Path| -> Built {
        Ok(Box::new(RlTrainer::load(
            p,
            Box::new(Sevens),
            tk.clone(),
            None,
        )?))
    };
    for grpo in [true, false] {
        check_exact_resume(&|| rl(grpo), &load_rl, 2, 1, &root.join("rl"))
            .unwrap_or_else(|e| panic!("llama grpo={grpo}: {e}"));
    }
    let text: String = (0..40)
        .map(|i| format!("is the answer {i} on three\n\n"))
        .collect();
    let eos = tk.token_id(rein_lm::tokenizer::END_OF_TEXT).unwrap();
    let sft = || -> Built {
        let cfg = LmTrainConfig {
            max_steps: 5,
            batch_size: 2,
            block_size: 16,
            eval_fraction: 0.2,
            eval_every: 2,
            ..Default::default()
        };
        let examples = blocks_from_text(&tk, &text, eos, 16)?;
        let trainer = LmTrainer::new(cfg, load().model, examples)?;
        Ok(Box::new(SupervisedTrainer {
            trainer,
            tokenizer: tk.clone(),
        }))
    };
    let load_sft = |p: &Path| -> Built {
        Ok(Box::new(SupervisedTrainer {
            trainer: LmTrainer::load_checkpoint(p)?,
            tokenizer: tk.clone(),
        }))
    };
    check_exact_resume(&sft, &load_sft, 2, 1, &root.join("sft")).unwrap();
    // SFT with a LoRA adapter resumes exactly too (the checkpoint names the base GGUF).
    let lora_sft = || -> Built {
        let cfg = LmTrainConfig {
            max_steps: 5,
            batch_size: 2,
            block_size: 16,
            eval_fraction: 0.2,
            eval_every: 2,
            lora: rein_lm::models::lora::LoraSettings {
                enabled: true,
                r: 2,
                ..Default::default()
            },
            ..Default::default()
        };
        let examples = blocks_from_text(&tk, &text, eos, 16)?;
        let model = load().model.with_new_adapter(&cfg.lora, Some(&gguf), 0)?;
        let trainer = LmTrainer::new(cfg, model, examples)?;
        Ok(Box::new(SupervisedTrainer {
            trainer,
            tokenizer: tk.clone(),
        }))
    };
    check_exact_resume(&lora_sft, &load_sft, 2, 1, &root.join("lora_sft")).unwrap();
    std::fs::remove_dir_all(&root).ok();
}

/// LoRA in the RL trainers on the tiny GGUF Llama: GRPO (with a KL term, whose reference is the
/// base with the adapter off) and PPO (value head) train only the adapter (and the head), keep
/// the base weights bit for bit, write checkpoints without the base weights, and resume exactly.
#[test]
fn lora_rl_trainers_train_only_the_adapter_and_resume_exactly() {
    use rein_lm::models::lora::LoraSettings;
    use rein_lm::rl::trainer::{RlMethod, RlTrainer};
    use rein_train::resume_check::check_exact_resume;
    use rein_train::{Trainer, TrainerError};
    use std::path::Path;
    type Built = Result<Box<dyn Trainer>, TrainerError>;
    let gguf = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/decoders/gguf/tiny-llama-F32.gguf");
    let load = || rein_lm::pretrained::Pretrained::load(&gguf).unwrap();
    let tk = load().tokenizer.unwrap();
    let lora = LoraSettings {
        enabled: true,
        r: 4,
        alpha: 8.0,
        target_modules: vec!["all-linear".into()],
        learning_rate: Some(1e-2),
        ..Default::default()
    };
    let adapted = || {
        load()
            .model
            .with_new_adapter(&lora, Some(&gguf), 0)
            .unwrap()
    };
    let root = std::env::temp_dir().join(format!("rein_lora_harness_{}", std::process::id()));
    let grpo_cfg = GrpoConfig {
        max_steps: 5,
        prompts_per_step: 2,
        group_size: 3,
        max_new_tokens: 4,
        beta: 0.1,
        lora: lora.clone(),
        ..Default::default()
    };
    let ppo_cfg = PpoLmConfig {
        max_steps: 5,
        prompts_per_step: 3,
        max_new_tokens: 4,
        lora: lora.clone(),
        ..Default::default()
    };
    let rl = |grpo: bool| -> Built {
        let method = if grpo {
            RlMethod::Grpo(GrpoTrainer::new(
                grpo_cfg.clone(),
                adapted(),
                prompts(),
                &tk,
            )?)
        } else {
            RlMethod::Ppo(PpoLmTrainer::new(
                ppo_cfg.clone(),
                adapted(),
                prompts(),
                &tk,
            )?)
        };
        Ok(Box::new(RlTrainer {
            method,
            reward: Box::new(Sevens),
            tokenizer: tk.clone(),
            chat_template: None,
        }))
    };
    let load_rl = |p: &Path| -> Built {
        Ok(Box::new(RlTrainer::load(
            p,
            Box::new(Sevens),
            tk.clone(),
            None,
        )?))
    };
    for grpo in [true, false] {
        check_exact_resume(&|| rl(grpo), &load_rl, 2, 1, &root.join("rl"))
            .unwrap_or_else(|e| panic!("lora grpo={grpo}: {e}"));
    }

    // Three GRPO steps: the adapter moves, the base does not, the reference is the base.
    let base = load().model;
    let mut t = GrpoTrainer::new(grpo_cfg, adapted(), prompts(), &tk).unwrap();
    let start: Vec<_> = t
        .policy
        .tensors()
        .into_iter()
        .map(|(n, x)| (n, x.copy().unwrap()))
        .collect();
    for _ in 0..3 {
        t.update(&mut Chars, &tk).unwrap();
    }
    let moved: f32 = t
        .policy
        .tensors()
        .iter()
        .zip(&start)
        .map(|((n, a), (m, b))| {
            assert_eq!(n, m);
            assert!(n.contains(".lora_"), "{n} is not an adapter matrix");
            tensor_diff(a, b)
        })
        .sum();
    assert!(moved > 0.0, "the adapter did not train");
    for ((n, a), (_, b)) in t
        .policy
        .base_tensors()
        .iter()
        .zip(base.base_tensors().iter())
    {
        assert_eq!(tensor_diff(a, b), 0.0, "{n} changed");
    }
    let reference = t.reference.as_ref().unwrap();
    assert!(reference.adapter().is_none());
    assert_eq!(max_abs_diff(reference, &base), 0.0);
    // The checkpoint holds the adapter and its moments, not the base weights.
    let ck = root.join("lora.ckpt");
    t.save_checkpoint(&ck).unwrap();
    let (raw, _): (_, serde_json::Value) = rein_lm::checkpoint::load_state(&ck, "lm-grpo").unwrap();
    assert!(
        raw.keys().all(|k| k.contains(".lora_")),
        "{:?}",
        raw.keys().collect::<Vec<_>>()
    );
    let merged = t.policy.merged().unwrap();
    assert!(max_abs_diff(&merged, &base) > 0.0);

    // A reward model with a LoRA backbone resumes exactly, and its checkpoint names the base.
    let pairs: Vec<PreferencePair> = (0..20)
        .map(|i| PreferencePair {
            prompt: format!("sat on {}", i % 3),
            chosen: " three".into(),
            rejected: " is".into(),
        })
        .collect();
    let rm_cfg = RewardModelConfig {
        epochs: 2,
        batch_size: 4,
        eval_fraction: 0.2,
        lora: lora.clone(),
        ..Default::default()
    };
    let rm = || -> Built {
        let model = RewardModel::new(adapted(), tk.clone(), &mut rein_core::rng_from_seed(1))?;
        Ok(Box::new(RewardModelTrainer::new(
            model,
            pairs.clone(),
            rm_cfg.clone(),
        )?))
    };
    let load_rm = |p: &Path| -> Built {
        Ok(Box::new(RewardModelTrainer::load_checkpoint(
            p,
            tk.clone(),
        )?))
    };
    check_exact_resume(&rm, &load_rm, 3, 2, &root.join("rm")).unwrap();
    std::fs::remove_dir_all(&root).ok();
}
