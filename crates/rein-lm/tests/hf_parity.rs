//! Parity with Hugging Face transformers on the tiny GPT-2 of `tests/fixtures/gpt2` (produced
//! by transformers 5.24; see its README): logits of a plain and a left-padded batch, the LM
//! loss, gradient norms and greedy decoding. Tolerances are the fixture README's.

mod common;

use candle_core::{Device, Tensor};
use common::tensor_diff;
use rein_lm::checkpoint::{load_model, save_model};
use rein_lm::generate::{generate, left_pad, GenerationConfig};
use rein_lm::kernels::loss::{causal_lm_loss, LmBatch, IGNORE};
use rein_lm::models::CausalLm;
use rein_lm::ForwardInput;
use serde_json::Value;
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2")
}

fn cases() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

fn assert_close_logits(got: &[Vec<f32>], want: &Value, what: &str) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: positions");
    let mut worst = 0f64;
    for (g, w) in got.iter().zip(want) {
        let w = w.as_array().unwrap();
        assert_eq!(g.len(), w.len());
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((f64::from(*a) - b.as_f64().unwrap()).abs());
        }
    }
    assert!(worst < 1e-4, "{what}: max |logit diff| {worst}");
}

#[test]
fn logits_of_a_plain_batch_match_transformers() {
    let model = load_model(&fixture_dir().join("model")).unwrap();
    let c = cases();
    let seqs = ids(&c["plain"]["input_ids"]);
    let (flat, pos, mask, len) = left_pad(&seqs, 0);
    let b = seqs.len();
    let logits = model
        .logits(&ForwardInput {
            ids: &Tensor::from_vec(flat, (b, len), &Device::Cpu).unwrap(),
            positions: &Tensor::from_vec(pos, (b, len), &Device::Cpu).unwrap(),
            mask: Some(&mask),
        })
        .unwrap();
    let got: Vec<Vec<Vec<f32>>> = logits.to_vec3().unwrap();
    for (i, g) in got.iter().enumerate() {
        assert_close_logits(g, &c["plain"]["logits"][i], &format!("plain row {i}"));
    }
}

#[test]
fn left_padded_logits_equal_the_unpadded_ones() {
    let model = load_model(&fixture_dir().join("model")).unwrap();
    let c = cases();
    let seqs = ids(&c["left_padded"]["sequences"]);
    let (flat, pos, mask, len) = left_pad(&seqs, 0);
    // The batch is exactly the fixture's.
    assert_eq!(
        flat,
        ids(&c["left_padded"]["input_ids"]).concat(),
        "padded ids"
    );
    assert_eq!(pos, ids(&c["left_padded"]["position_ids"]).concat());
    let b = seqs.len();
    let logits = model
        .logits(&ForwardInput {
            ids: &Tensor::from_vec(flat, (b, len), &Device::Cpu).unwrap(),
            positions: &Tensor::from_vec(pos, (b, len), &Device::Cpu).unwrap(),
            mask: Some(&mask),
        })
        .unwrap();
    let got: Vec<Vec<Vec<f32>>> = logits.to_vec3().unwrap();
    for (i, s) in seqs.iter().enumerate() {
        let real = got[i][len - s.len()..].to_vec();
        assert_close_logits(
            &real,
            &c["left_padded"]["logits_at_real_positions"][i],
            &format!("padded sequence {i}"),
        );
    }
}

fn padded_batch(c: &Value, labels_key: &str) -> LmBatch {
    let lp = &c["left_padded"];
    let rows = ids(&lp["input_ids"]);
    let (b, t) = (rows.len(), rows[0].len());
    LmBatch {
        ids: rows.concat(),
        positions: ids(&lp["position_ids"]).concat(),
        mask: ids(&lp["attention_mask"])
            .into_iter()
            .map(|r| r.into_iter().map(|x| x as u8).collect())
            .collect(),
        labels: lp[labels_key]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()))
            .collect(),
        batch: b,
        seq: t,
    }
}

fn check_loss_and_grads(labels_key: &str, loss_key: &str, norm_key: &str, per_key: &str) {
    let model = load_model(&fixture_dir().join("model")).unwrap();
    let c = cases();
    let batch = padded_batch(&c, labels_key);
    assert!(batch.labels.contains(&IGNORE));
    let (loss, _) = causal_lm_loss(&model, &batch, None).unwrap();
    let got = f64::from(loss.to_scalar::<f32>().unwrap());
    let want = c["left_padded"][loss_key].as_f64().unwrap();
    assert!(
        ((got - want) / want).abs() < 1e-5,
        "{loss_key}: {got} vs {want}"
    );
    let grads = loss.backward().unwrap();
    let mut total = 0f64;
    for (name, var) in model.named_vars() {
        let g = grads
            .get(var.as_tensor())
            .expect("every parameter has a gradient");
        let sq = f64::from(
            g.sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        );
        total += sq;
        let want = c["left_padded"][per_key][format!("transformer.{name}")]
            .as_f64()
            .unwrap();
        assert!(
            (sq.sqrt() - want).abs() <= 1e-4 * want.max(1e-3),
            "{per_key} {name}: {} vs {want}",
            sq.sqrt()
        );
    }
    let want = c["left_padded"][norm_key].as_f64().unwrap();
    assert!(
        ((total.sqrt() - want) / want).abs() < 1e-4,
        "{norm_key}: {} vs {want}",
        total.sqrt()
    );
}

#[test]
fn loss_and_gradient_norms_on_real_tokens_match_transformers() {
    check_loss_and_grads(
        "labels_real_only",
        "loss_real_only",
        "grad_global_l2_norm_real_only",
        "grad_l2_norm_per_tensor_real_only",
    );
}

#[test]
fn loss_with_fully_masked_pad_rows_follows_the_sdpa_convention() {
    check_loss_and_grads(
        "labels",
        "loss",
        "grad_global_l2_norm",
        "grad_l2_norm_per_tensor",
    );
}

#[test]
fn plain_loss_matches_transformers() {
    let model = load_model(&fixture_dir().join("model")).unwrap();
    let c = cases();
    let rows = ids(&c["plain"]["input_ids"]);
    let (b, t) = (rows.len(), rows[0].len());
    let batch = LmBatch {
        ids: rows.concat(),
        positions: (0..b).flat_map(|_| 0..t as u32).collect(),
        mask: vec![vec![1; t]; b],
        labels: rows.concat().into_iter().map(i64::from).collect(),
        batch: b,
        seq: t,
    };
    let (loss, n) = causal_lm_loss(&model, &batch, None).unwrap();
    assert_eq!(n, b * (t - 1));
    let got = f64::from(loss.to_scalar::<f32>().unwrap());
    let want = c["plain"]["loss"].as_f64().unwrap();
    assert!(((got - want) / want).abs() < 1e-5, "{got} vs {want}");
}

#[test]
fn greedy_generation_with_cache_matches_transformers() {
    let model = load_model(&fixture_dir().join("model")).unwrap();
    let c = cases();
    let prompt: Vec<u32> = ids(&Value::Array(vec![c["greedy"]["prompt"].clone()])).remove(0);
    let want: Vec<u32> = ids(&Value::Array(vec![c["greedy"]["new_tokens"].clone()])).remove(0);
    let cfg = GenerationConfig {
        max_new_tokens: want.len(),
        ..Default::default()
    };
    let out = generate(&model, std::slice::from_ref(&prompt), &cfg, None, None).unwrap();
    assert_eq!(out[0].ids, want);
    // In a batch with a longer prompt (so this one is left-padded) the result is the same.
    let longer: Vec<u32> = (1..12).collect();
    let out = generate(&model, &[longer, prompt], &cfg, None, None).unwrap();
    assert_eq!(out[1].ids, want);
}

#[test]
fn saved_models_reload_identically_and_use_hf_names() {
    let model = load_model(&fixture_dir().join("model")).unwrap();
    let dir = std::env::temp_dir().join(format!("rein_lm_save_{}", std::process::id()));
    save_model(&model, &dir, &[]).unwrap();
    let raw = rein_lm::checkpoint::read_safetensors(&dir.join("model.safetensors")).unwrap();
    assert!(raw.contains_key("transformer.h.1.attn.c_attn.weight"));
    assert!(!raw.contains_key("lm_head.weight"));
    let again = load_model(&dir).unwrap();
    for ((n1, v1), (n2, v2)) in model.named_vars().iter().zip(again.named_vars()) {
        assert_eq!(n1, &n2);
        assert_eq!(tensor_diff(v1.as_tensor(), v2.as_tensor()), 0.0, "{n1}");
    }
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_type"], "gpt2");
    assert_eq!(cfg["n_layer"], 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_model_directories_give_errors_that_name_the_file() {
    let dir = std::env::temp_dir().join(format!("rein_lm_bad_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = load_model(&dir).err().unwrap().to_string();
    assert!(
        err.contains("config.json") && err.contains("missing"),
        "{err}"
    );
    std::fs::write(dir.join("config.json"), "{\"n_embd\": 65, \"n_head\": 4}").unwrap();
    let err = load_model(&dir).err().unwrap().to_string();
    assert!(
        err.contains("config.json") && err.contains("n_head"),
        "{err}"
    );
    // Right config, weights with a wrong shape.
    std::fs::copy(
        fixture_dir().join("model/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let model = load_model(&fixture_dir().join("model")).unwrap();
    let mut tensors: Vec<(String, Tensor)> = model
        .named_vars()
        .into_iter()
        .map(|(n, v)| (format!("transformer.{n}"), v.as_tensor().clone()))
        .collect();
    for (n, t) in tensors.iter_mut() {
        if n == "transformer.wpe.weight" {
            *t = t.narrow(0, 0, 10).unwrap();
        }
    }
    std::fs::write(
        dir.join("model.safetensors"),
        rein_lm::checkpoint::safetensors_bytes(&tensors).unwrap(),
    )
    .unwrap();
    let err = load_model(&dir).err().unwrap().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("wpe.weight") && err.contains("[64, 64]"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
