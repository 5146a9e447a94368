//! Sampling semantics of `generate` and the BPE tokenizer trained here.

use rein_lm::checkpoint::load_model;
use rein_lm::generate::{generate, GenerationConfig};
use rein_lm::models::CausalLm;
use rein_lm::Tokenizer;
use std::path::PathBuf;

fn model() -> rein_lm::Model {
    load_model(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2/model"))
        .unwrap()
}

#[test]
fn a_requests_sample_depends_on_its_seed_not_on_the_batch() {
    let m = model();
    let cfg = GenerationConfig {
        max_new_tokens: 12,
        do_sample: true,
        temperature: 0.9,
        top_k: 50,
        top_p: 0.9,
        ..Default::default()
    };
    let a = vec![5u32, 6, 7];
    let b = vec![100u32, 200, 300, 400, 500, 600];
    let alone = generate(&m, std::slice::from_ref(&a), &cfg, Some(&[42]), None).unwrap();
    let batched = generate(&m, &[b, a.clone()], &cfg, Some(&[7, 42]), None).unwrap();
    assert_eq!(alone[0].ids, batched[1].ids);
    for (x, y) in alone[0].logprobs.iter().zip(&batched[1].logprobs) {
        assert!((x - y).abs() < 1e-4);
    }
    let other = generate(&m, &[a], &cfg, Some(&[43]), None).unwrap();
    assert_ne!(
        alone[0].ids, other[0].ids,
        "another seed gives another sample"
    );
}

/// GRPO's groups repeat a prompt: the repeats share one prefill (the distinct prompts run
/// once), and each row still samples from its own seed exactly as it would alone, with the
/// log-probabilities (full-vocabulary sampling: the sampler's own normaliser) of a
/// teacher-forced pass.
#[test]
fn repeated_prompts_share_a_prefill_and_sample_as_alone() {
    let m = model();
    let cfg = GenerationConfig {
        max_new_tokens: 10,
        do_sample: true,
        temperature: 0.7,
        ..Default::default()
    };
    let a = vec![5u32, 6, 7];
    let b = vec![100u32, 200, 300, 400, 500];
    let batch = [a.clone(), b.clone(), a.clone(), a.clone(), b.clone()];
    let seeds = [1u64, 2, 3, 4, 5];
    let together = generate(&m, &batch, &cfg, Some(&seeds), None).unwrap();
    for (i, p) in batch.iter().enumerate() {
        let alone = generate(&m, std::slice::from_ref(p), &cfg, Some(&seeds[i..=i]), None).unwrap();
        assert_eq!(alone[0].ids, together[i].ids, "row {i}");
        for (x, y) in alone[0].logprobs.iter().zip(&together[i].logprobs) {
            assert!((x - y).abs() < 1e-4, "row {i}: {x} vs {y}");
        }
    }
    assert_ne!(
        together[0].ids, together[2].ids,
        "repeats draw their own samples"
    );
    // Teacher forcing: log_softmax(logits / T) of each sampled token.
    let g = &together[3];
    let ids: Vec<u32> = a.iter().chain(&g.ids).copied().collect();
    let n = ids.len();
    let input =
        candle_core::Tensor::from_vec(ids.clone(), (1, n), &candle_core::Device::Cpu).unwrap();
    let pos = candle_core::Tensor::from_vec(
        (0..n as u32).collect::<Vec<_>>(),
        (1, n),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let logits: Vec<Vec<f32>> = m
        .logits(&rein_lm::ForwardInput {
            ids: &input,
            positions: &pos,
            mask: None,
        })
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2()
        .unwrap();
    for (t, (&tok, &lp)) in g.ids.iter().zip(&g.logprobs).enumerate() {
        let row: Vec<f32> = logits[a.len() - 1 + t].iter().map(|v| v / 0.7).collect();
        let want = rein_lm::generate::log_softmax(&row)[tok as usize];
        assert!((want - lp).abs() < 1e-4, "token {t}: {lp} vs {want}");
    }
}

#[test]
fn top_k_one_is_greedy_and_eos_stops_early_unless_min_tokens() {
    let m = model();
    let prompt = vec![533u32, 266, 63, 824, 940];
    let greedy = GenerationConfig {
        max_new_tokens: 10,
        ..Default::default()
    };
    let g = generate(&m, std::slice::from_ref(&prompt), &greedy, None, None).unwrap();
    let k1 = GenerationConfig {
        do_sample: true,
        top_k: 1,
        ..greedy.clone()
    };
    let s = generate(&m, std::slice::from_ref(&prompt), &k1, None, None).unwrap();
    assert_eq!(g[0].ids, s[0].ids);
    // Declare the 3rd greedy token EOS: generation stops there (EOS kept).
    let eos = g[0].ids[2];
    let stop = GenerationConfig {
        eos_token_id: Some(eos),
        ..greedy.clone()
    };
    let out = generate(&m, std::slice::from_ref(&prompt), &stop, None, None).unwrap();
    assert_eq!(out[0].ids, g[0].ids[..3].to_vec());
    assert!(out[0].finished);
    let min = GenerationConfig {
        min_new_tokens: 5,
        ..stop
    };
    let out = generate(&m, &[prompt], &min, None, None).unwrap();
    assert!(out[0].ids.len() >= 5 && !out[0].ids[..5].contains(&eos));
}

#[test]
fn prompts_longer_than_the_context_are_rejected_with_their_length() {
    let m = model();
    let cfg = GenerationConfig {
        max_new_tokens: 10,
        ..Default::default()
    };
    let err = generate(&m, &[vec![1; 60]], &cfg, None, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("60 tokens") && err.contains("n_positions = 64"),
        "{err}"
    );
}

#[test]
fn trained_bpe_round_trips_text_and_saves_as_tokenizer_json() {
    let dir = std::env::temp_dir().join(format!("rein_bpe_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = dir.join("corpus.txt");
    let mut text = String::new();
    for a in 0..40 {
        for b in 0..10 {
            text.push_str(&format!("Q: what is {a} plus {b}? A: {}\n", a + b));
        }
    }
    std::fs::write(&corpus, &text).unwrap();
    let tk = Tokenizer::train_bpe(&[corpus], 400, false).unwrap();
    assert!(tk.vocab_size() <= 400 && tk.vocab_size() > 257);
    let s = "Q: what is 12 plus 7? A: 19 ünïcødé";
    let ids = tk.encode(s).unwrap();
    assert!(ids.len() < s.len(), "merges compress the text");
    assert_eq!(tk.decode(&ids, false).unwrap(), s);
    let eot = tk.token_id("<|endoftext|>").unwrap();
    tk.save(&dir.join("tokenizer.json")).unwrap();
    let again = Tokenizer::from_dir(&dir).unwrap().unwrap();
    assert_eq!(again.encode(s).unwrap(), ids);
    assert_eq!(again.token_id("<|endoftext|>"), Some(eot));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn split_digits_gives_every_digit_its_own_token_and_survives_saving() {
    let dir = std::env::temp_dir().join(format!("rein_bpe_digits_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = dir.join("corpus.txt");
    let mut text = String::new();
    for a in 0..60 {
        text.push_str(&format!("Q: {a} + 17 = ? Answer: {}\n", a + 17));
    }
    std::fs::write(&corpus, &text).unwrap();
    let merged = Tokenizer::train_bpe(std::slice::from_ref(&corpus), 400, false).unwrap();
    let split = Tokenizer::train_bpe(&[corpus], 400, true).unwrap();
    let s = "Q: 42 + 17 = ? Answer: 59";
    let digit_pieces = |tk: &Tokenizer| {
        tk.encode(s)
            .unwrap()
            .iter()
            .map(|&i| tk.decode(&[i], false).unwrap())
            .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
            .collect::<Vec<_>>()
    };
    assert_eq!(digit_pieces(&split), ["4", "2", "1", "7", "5", "9"]);
    assert!(
        digit_pieces(&merged).len() < 6,
        "{:?}",
        digit_pieces(&merged)
    );
    assert_eq!(split.decode(&split.encode(s).unwrap(), false).unwrap(), s);
    split.save(&dir.join("tokenizer.json")).unwrap();
    let again = Tokenizer::from_dir(&dir).unwrap().unwrap();
    assert_eq!(again.encode(s).unwrap(), split.encode(s).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn value_head_starts_at_zero_and_reward_head_has_the_rlhf_scale() {
    use candle_core::Module;
    let d = 400;
    let v = rein_lm::ScalarHead::value_head(d).unwrap();
    let h = candle_core::Tensor::ones(
        (2, 3, d),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let out = v.forward(&h).unwrap();
    assert_eq!(out.dims(), &[2, 3]);
    assert!(out
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .all(|&x| x == 0.0));
    let mut rng = rein_core::rng_from_seed(0);
    let r = rein_lm::ScalarHead::reward_head(d, &mut rng).unwrap();
    let w = r
        .weight
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let var = w.iter().map(|x| f64::from(x * x)).sum::<f64>() / d as f64;
    let want = 1.0 / (d as f64 + 1.0);
    assert!(
        (var - want).abs() < 0.2 * want,
        "weight variance {var}, want {want}"
    );
}
