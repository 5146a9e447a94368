//! LoRA against PEFT 0.21 on the fixture adapter `tests/fixtures/decoders/llama_lora` (on the
//! `llama` fixture model, B set nonzero): the adapted and the merged model's logits within 1e-4
//! of PEFT's (`peft_logits.json`, written by `bench/peft_lora_logits.py` with PEFT 0.21.2 from
//! these very files: the shared fixture's own `cases.json` logits are not reproduced by PEFT
//! from its shipped base and adapter, 8.7 apart, so they are not the reference), an adapter saved here reading back exactly under PEFT's names, the adapter-off
//! view equal to the base model, gradients reaching only the adapter, and bad adapters refused
//! by name.

use candle_core::Tensor;
use rein_lm::checkpoint::load_model;
use rein_lm::generate::sequence_logits;
use rein_lm::kernels::loss::{causal_lm_loss, LmBatch};
use rein_lm::models::lora::{LoraAdapter, LoraSettings};
use rein_lm::models::{CausalLm, Model};
use serde_json::Value;
use std::path::PathBuf;

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/decoders")
        .join(name)
}

/// A fresh scratch directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rein-lora-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cases() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir("llama_lora").join("cases.json")).unwrap())
        .unwrap()
}

fn seqs(c: &Value) -> Vec<Vec<u32>> {
    c["sequences"]
        .as_array()
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

/// The largest distance of `model`'s logits to PEFT's `key` logits in `peft_logits.json`.
fn max_diff_to_peft(model: &Model, key: &str) -> f64 {
    let c: Value = serde_json::from_str(
        &std::fs::read_to_string(dir("llama_lora").join("peft_logits.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(c["peft"], "0.21.2");
    let got = sequence_logits(model, &seqs(&c)).unwrap();
    let mut worst = 0f64;
    for (i, rows) in got.iter().enumerate() {
        let want = c[key][i].as_array().unwrap();
        assert_eq!(rows.len(), want.len());
        for (g, w) in rows.iter().zip(want) {
            for (a, b) in g.iter().zip(w.as_array().unwrap()) {
                worst = worst.max((f64::from(*a) - b.as_f64().unwrap()).abs());
            }
        }
    }
    worst
}

fn adapted() -> Model {
    load_model(&dir("llama"))
        .unwrap()
        .with_adapter_dir(&dir("llama_lora"))
        .unwrap()
}

/// Where a CPU f32 tensor's data lives.
fn data_ptr(t: &Tensor) -> usize {
    let (s, _) = t.storage_and_layout();
    match &*s {
        candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)) => v.as_ptr() as usize,
        _ => panic!("not a CPU f32 tensor"),
    }
}

fn max_abs(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>]) -> f64 {
    a.iter()
        .flatten()
        .flatten()
        .zip(b.iter().flatten().flatten())
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn adapted_and_merged_logits_match_peft() {
    let model = adapted();
    let d = max_diff_to_peft(&model, "logits_at_real_positions");
    assert!(d < 1e-4, "adapted: max |diff| {d}");
    let merged = model.merged().unwrap();
    assert!(merged.adapter().is_none());
    let d = max_diff_to_peft(&merged, "merged_logits_at_real_positions");
    assert!(d < 1e-4, "merged: max |diff| {d}");
    // The adapter matters: the base model is far from PEFT's adapted logits.
    let base = load_model(&dir("llama")).unwrap();
    assert!(max_diff_to_peft(&base, "logits_at_real_positions") > 1e-2);
}

#[test]
fn adapter_off_is_the_base_model_and_shares_its_weights() {
    let base = load_model(&dir("llama")).unwrap();
    let model = adapted();
    let off = model.reference_model().unwrap();
    assert!(off.adapter().is_none());
    let s = seqs(&cases());
    let a = sequence_logits(&base, &s).unwrap();
    let b = sequence_logits(&off, &s).unwrap();
    assert_eq!(max_abs(&a, &b), 0.0);
    // No second copy: the reference reads the adapted model's own storage.
    let (wa, wb) = (model.base_tensors(), off.base_tensors());
    assert_eq!(wa.len(), wb.len());
    for ((na, ta), (nb, tb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        assert_eq!(data_ptr(ta), data_ptr(tb), "{na} was copied");
    }
}

#[test]
fn saved_adapter_reads_back_under_peft_names() {
    let model = adapted();
    let out = scratch("saved");
    model.adapter().unwrap().save(&out).unwrap();
    let raw =
        rein_lm::checkpoint::read_safetensors(&out.join("adapter_model.safetensors")).unwrap();
    let want =
        rein_lm::checkpoint::read_safetensors(&dir("llama_lora").join("adapter_model.safetensors"))
            .unwrap();
    let mut a: Vec<_> = raw.keys().cloned().collect();
    let mut b: Vec<_> = want.keys().cloned().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "tensor names as PEFT writes them");
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["r"], 4);
    let again = load_model(&dir("llama"))
        .unwrap()
        .with_adapter_dir(&out)
        .unwrap();
    let s = seqs(&cases());
    let d = max_abs(
        &sequence_logits(&model, &s).unwrap(),
        &sequence_logits(&again, &s).unwrap(),
    );
    assert_eq!(d, 0.0);
}

#[test]
fn gradients_reach_only_the_adapter() {
    let model = adapted();
    let vars = model.named_vars();
    assert_eq!(vars.len(), 2 * 4 * 2, "A and B of 4 modules in 2 layers");
    assert!(vars.iter().all(|(n, _)| n.contains(".lora_")));
    let batch = LmBatch {
        ids: vec![291, 448, 213, 17, 206, 447],
        positions: (0..6).collect(),
        mask: vec![vec![1; 6]],
        labels: vec![-100, 448, 213, 17, 206, 447],
        batch: 1,
        seq: 6,
    };
    let (loss, _) = causal_lm_loss(&model, &batch, None).unwrap();
    let grads = loss.backward().unwrap();
    for (n, v) in &vars {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{n}: no gradient"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "{n}: zero gradient");
    }
    for (n, t) in model.base_tensors() {
        assert!(
            grads.get(&t).is_none(),
            "{n}: a frozen weight took a gradient"
        );
    }
}

#[test]
fn fresh_adapter_starts_at_the_base_model() {
    let base = load_model(&dir("llama")).unwrap();
    let settings = LoraSettings {
        enabled: true,
        target_modules: vec!["all-linear".into()],
        ..Default::default()
    };
    let model = base.with_new_adapter(&settings, None, 3).unwrap();
    assert_eq!(model.named_vars().len(), 2 * 7 * 2);
    let s = seqs(&cases());
    let d = max_abs(
        &sequence_logits(&base, &s).unwrap(),
        &sequence_logits(&model, &s).unwrap(),
    );
    assert_eq!(d, 0.0, "B starts at zero");
}

fn write_adapter(dir: &std::path::Path, config: &Value, tensors: &[(&str, Tensor)]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("adapter_config.json"), config.to_string()).unwrap();
    let owned: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    std::fs::write(
        dir.join("adapter_model.safetensors"),
        rein_lm::checkpoint::safetensors_bytes(&owned).unwrap(),
    )
    .unwrap();
}

#[test]
fn bad_adapters_are_refused_by_name() {
    let base = load_model(&dir("llama")).unwrap();
    let tmp = scratch("bad");
    let fixture_cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(dir("llama_lora").join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    let err = |cfg: Value, tensors: &[(&str, Tensor)], name: &str| -> String {
        let d = tmp.join(name);
        write_adapter(&d, &cfg, tensors);
        match base.with_adapter_dir(&d) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e.to_string(),
        }
    };
    let cpu = &candle_core::Device::Cpu;
    let mut cfg = fixture_cfg.clone();
    cfg["target_modules"] = serde_json::json!(["c_attn"]);
    let e = err(cfg, &[], "unknown_target");
    assert!(e.contains("\"c_attn\" matches no linear layer"), "{e}");

    let mut cfg = fixture_cfg.clone();
    cfg["use_dora"] = true.into();
    let e = err(cfg, &[], "dora");
    assert!(
        e.contains("use_dora") && e.contains("adapter_config.json"),
        "{e}"
    );

    let mut cfg = fixture_cfg.clone();
    cfg["target_modules"] = serde_json::json!(["q_proj"]);
    let a = Tensor::zeros((4, 7), candle_core::DType::F32, cpu).unwrap();
    let e = err(
        cfg.clone(),
        &[(
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
            a,
        )],
        "bad_shape",
    );
    assert!(e.contains("q_proj.lora_A.weight has shape [4, 7]"), "{e}");

    let e = err(cfg, &[], "missing");
    assert!(e.contains("is missing for the targeted module"), "{e}");

    let mut cfg = fixture_cfg;
    cfg["target_modules"] = serde_json::json!(["lm_head"]);
    let e = err(cfg, &[], "head");
    assert!(e.contains("not a linear layer of the decoder"), "{e}");

    let gpt2 = rein_lm::Model::new_random(
        rein_lm::ModelConfig::Gpt2(rein_lm::Gpt2Config::default()),
        &mut rein_core::rng_from_seed(0),
    )
    .unwrap();
    let e = gpt2
        .with_adapter_dir(&dir("llama_lora"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("Llama family"), "{e}");
}

#[test]
fn adapter_of_the_fixture_is_read_with_its_settings() {
    let m = adapted();
    let a: &LoraAdapter = m.adapter().unwrap();
    assert_eq!(a.config.r, 4);
    assert_eq!(a.config.scale(), 2.0);
    // Per layer, A [4, in] and B [out, 4] of q (64 -> 64), v (64 -> 32), o (64 -> 64), gate (64 -> 176).
    assert_eq!(a.num_parameters(), 2 * (512 + 384 + 512 + 960));
}
