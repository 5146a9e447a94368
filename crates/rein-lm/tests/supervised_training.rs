//! Supervised training: the loss falls on learnable data, the schedule has its shape, SFT masks
//! prompts, bad records are named, and resume continues bit for bit (dropout included).

use rein_lm::train::{collate, examples_from_jsonl, Example, LmTrainConfig, LmTrainer, LrSchedule};
use rein_lm::{Gpt2, Gpt2Config};

fn tiny_config(vocab: usize) -> Gpt2Config {
    Gpt2Config {
        vocab_size: vocab,
        n_positions: 64,
        n_embd: 32,
        n_layer: 2,
        n_head: 2,
        embd_pdrop: 0.1,
        attn_pdrop: 0.1,
        resid_pdrop: 0.1,
        ..Default::default()
    }
}

/// Sequences `k, k+1, ..., k+15` (mod 50): perfectly predictable after the first token.
fn counting_examples() -> Vec<Example> {
    (0..64)
        .map(|k| Example {
            ids: (0..16).map(|i| ((k + i) % 50) as u32).collect(),
            ..Default::default()
        })
        .collect()
}

fn trainer(max_steps: u64) -> LmTrainer {
    let cfg = LmTrainConfig {
        max_steps,
        batch_size: 8,
        grad_accum: 2,
        learning_rate: 3e-3,
        warmup_steps: 5,
        eval_every: 10,
        eval_fraction: 0.1,
        ..Default::default()
    };
    let mut rng = rein_core::rng_from_seed(1);
    let model = Gpt2::new_random(tiny_config(50), &mut rng).unwrap();
    LmTrainer::new(cfg, model.into(), counting_examples()).unwrap()
}

#[test]
fn loss_falls_on_predictable_sequences() {
    let mut t = trainer(60);
    let first = t.evaluate().unwrap();
    let mut last = None;
    while t.step < 60 {
        last = Some(t.update().unwrap());
    }
    let last = last.unwrap();
    assert!(
        first > 3.0,
        "untrained loss {first} should be near ln(50) = 3.9"
    );
    assert!(
        last.eval_loss < 0.5 * first,
        "eval loss {first} before, {} after training",
        last.eval_loss
    );
    assert!((last.eval_perplexity - last.eval_loss.exp()).abs() < 1e-9);
}

#[test]
fn resume_continues_bit_for_bit() {
    let dir = std::env::temp_dir().join(format!("rein_lm_resume_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut full = trainer(12);
    while full.step < 12 {
        full.update().unwrap();
    }
    full.save_checkpoint(&dir.join("full.safetensors")).unwrap();
    let mut part = trainer(12);
    for _ in 0..7 {
        part.update().unwrap();
    }
    part.save_checkpoint(&dir.join("part.safetensors")).unwrap();
    drop(part);
    let mut resumed = LmTrainer::load_checkpoint(&dir.join("part.safetensors")).unwrap();
    assert_eq!(resumed.step, 7);
    while resumed.step < 12 {
        resumed.update().unwrap();
    }
    resumed
        .save_checkpoint(&dir.join("resumed.safetensors"))
        .unwrap();
    assert!(
        std::fs::read(dir.join("full.safetensors")).unwrap()
            == std::fs::read(dir.join("resumed.safetensors")).unwrap(),
        "resumed checkpoint differs from the uninterrupted one"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn warmup_then_cosine_or_linear_decay() {
    let cfg = LmTrainConfig {
        max_steps: 110,
        warmup_steps: 10,
        learning_rate: 1.0,
        ..Default::default()
    };
    assert_eq!(cfg.lr_at(0), 0.0);
    assert!((cfg.lr_at(5) - 0.5).abs() < 1e-12);
    assert!((cfg.lr_at(10) - 1.0).abs() < 1e-12);
    assert!((cfg.lr_at(60) - 0.5).abs() < 1e-12, "cosine midpoint");
    assert!(cfg.lr_at(110).abs() < 1e-12);
    let lin = LmTrainConfig {
        schedule: LrSchedule::Linear,
        ..cfg
    };
    assert!((lin.lr_at(35) - 0.75).abs() < 1e-12);
}

#[test]
fn sft_learns_only_completions_and_names_bad_lines() {
    let dir = std::env::temp_dir().join(format!("rein_lm_sft_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = dir.join("c.txt");
    std::fs::write(&corpus, "what is one plus two? three\n".repeat(50)).unwrap();
    let tk = rein_lm::Tokenizer::train_bpe(&[corpus], 300, false).unwrap();
    let eos = tk.token_id("<|endoftext|>").unwrap();
    let data = dir.join("sft.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"what is one plus two?\", \"completion\": \" three\"}\n{\"text\": \"one two\"}\n",
    )
    .unwrap();
    let ex = examples_from_jsonl(&tk, &data, eos, 64, None).unwrap();
    let batch = collate(&[&ex[0], &ex[1]]);
    let p = ex[0].prompt_len;
    assert!(p > 0);
    assert!(
        batch.labels[..p].iter().all(|&l| l == -100),
        "prompt masked"
    );
    assert_eq!(batch.labels[p], i64::from(ex[0].ids[p]));
    assert_eq!(*ex[0].ids.last().unwrap(), eos);
    assert_eq!(ex[1].prompt_len, 0);
    std::fs::write(&data, "{\"prompt\": \"x\"}\n").unwrap();
    let err = examples_from_jsonl(&tk, &data, eos, 64, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("line 1") && err.contains("completion"),
        "{err}"
    );
    std::fs::write(
        &data,
        format!("{{\"text\": \"{}\"}}\n", "one two three ".repeat(40)),
    )
    .unwrap();
    let err = examples_from_jsonl(&tk, &data, eos, 64, None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("n_positions = 64"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
