//! Parity with Hugging Face transformers on the Llama-family fixtures of
//! `tests/fixtures/decoders` (transformers 5.24; see its README): for every model (Llama with
//! GQA, Llama 3 rope, Qwen2 with q/k/v biases in bf16, Qwen3 with q/k norms, Mistral in f16) the
//! logits of a plain and a left-padded batch, the real-only loss and every gradient norm, and
//! greedy decoding with the KV cache; the reward head's scores; every GGUF file's logits.
//! Tolerances are the fixture README's.

use candle_core::{Device, Tensor};
use rein_lm::checkpoint::{load_model, save_model};
use rein_lm::generate::{generate, left_pad, sequence_logits, GenerationConfig};
use rein_lm::kernels::loss::{causal_lm_loss, LmBatch};
use rein_lm::models::{CausalLm, Model};
use rein_lm::ForwardInput;
use serde_json::Value;
use std::path::PathBuf;

const MODELS: [&str; 5] = ["llama", "llama3_rope", "qwen2", "qwen3", "mistral"];

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/decoders")
        .join(name)
}

fn cases(name: &str) -> Value {
    let text = std::fs::read_to_string(dir(name).join("cases.json")).unwrap();
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

fn max_diff(got: &[Vec<f32>], want: &Value) -> f64 {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "positions");
    let mut worst = 0f64;
    for (g, w) in got.iter().zip(want) {
        let w = w.as_array().unwrap();
        assert_eq!(g.len(), w.len(), "vocabulary");
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((f64::from(*a) - b.as_f64().unwrap()).abs());
        }
    }
    worst
}

fn check_padded_logits(model: &Model, c: &Value, what: &str) {
    let seqs = ids(&c["sequences"]);
    let got = sequence_logits(model, &seqs).unwrap();
    for (i, g) in got.iter().enumerate() {
        let d = max_diff(g, &c["logits_at_real_positions"][i]);
        assert!(d < 1e-4, "{what}: left-padded sequence {i}: max |diff| {d}");
    }
}

#[test]
fn plain_and_left_padded_logits_match_transformers() {
    for name in MODELS {
        let model = load_model(&dir(name)).unwrap();
        let c = cases(name);
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
        let rows: Vec<Vec<f32>> = logits.reshape((b * len, ())).unwrap().to_vec2().unwrap();
        let d = max_diff(&rows, &c["plain"]["logits"]);
        assert!(d < 1e-4, "{name}: plain logits max |diff| {d}");
        // The fixture's padded batch is exactly the one rein builds.
        let lp = &c["left_padded"];
        let (flat, pos, _, _) = left_pad(&ids(&lp["sequences"]), 0);
        assert_eq!(flat, ids(&lp["input_ids"]).concat(), "{name}: padded ids");
        assert_eq!(pos, ids(&lp["position_ids"]).concat(), "{name}: positions");
        check_padded_logits(&model, lp, name);
    }
}

#[test]
fn real_only_loss_and_every_gradient_norm_match_transformers() {
    for name in MODELS {
        let model = load_model(&dir(name)).unwrap();
        let c = cases(name);
        let lp = &c["left_padded"];
        let rows = ids(&lp["input_ids"]);
        let (b, t) = (rows.len(), rows[0].len());
        let batch = LmBatch {
            ids: rows.concat(),
            positions: ids(&lp["position_ids"]).concat(),
            mask: ids(&lp["attention_mask"])
                .into_iter()
                .map(|r| r.into_iter().map(|x| x as u8).collect())
                .collect(),
            labels: lp["labels_real_only"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()))
                .collect(),
            batch: b,
            seq: t,
        };
        let (loss, _) = causal_lm_loss(&model, &batch, None).unwrap();
        let got = f64::from(loss.to_scalar::<f32>().unwrap());
        let want = lp["loss_real_only"].as_f64().unwrap();
        assert!(
            ((got - want) / want).abs() < 1e-5,
            "{name}: loss {got} vs {want}"
        );
        let grads = loss.backward().unwrap();
        let per = lp["grad_l2_norm_per_tensor_real_only"].as_object().unwrap();
        let mut total = 0f64;
        let vars = model.named_vars();
        assert_eq!(vars.len(), per.len(), "{name}: one gradient per parameter");
        for (pname, var) in vars {
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
            let want = per[&pname]
                .as_f64()
                .unwrap_or_else(|| panic!("{name}: {pname}"));
            assert!(
                (sq.sqrt() - want).abs() <= 1e-4 * want.max(1e-3),
                "{name} {pname}: gradient norm {} vs {want}",
                sq.sqrt()
            );
        }
        let want = lp["grad_global_l2_norm_real_only"].as_f64().unwrap();
        assert!(
            ((total.sqrt() - want) / want).abs() < 1e-4,
            "{name}: global norm"
        );
    }
}

#[test]
fn greedy_decoding_with_the_kv_cache_matches_transformers() {
    for name in MODELS {
        let model = load_model(&dir(name)).unwrap();
        let c = cases(name);
        let prompt: Vec<u32> = ids(&Value::Array(vec![c["greedy"]["prompt"].clone()])).remove(0);
        let want: Vec<u32> = ids(&Value::Array(vec![c["greedy"]["new_tokens"].clone()])).remove(0);
        let cfg = GenerationConfig {
            max_new_tokens: want.len(),
            ..Default::default()
        };
        let out = generate(&model, &[prompt.clone(), prompt], &cfg, None, None).unwrap();
        assert_eq!(out[0].ids, want, "{name}: greedy tokens");
        assert_eq!(out[1].ids, want, "{name}: greedy tokens, second row");
    }
}

/// A saved directory (transformers' names and config keys) loads back to the same logits.
#[test]
fn saved_directories_load_back_to_the_same_logits() {
    let scratch = std::env::temp_dir().join(format!("rein-decoder-save-{}", std::process::id()));
    for name in MODELS {
        let model = load_model(&dir(name)).unwrap();
        let out = scratch.join(name);
        save_model(&model, &out, &[]).unwrap();
        let back = load_model(&out).unwrap();
        let c = cases(name);
        check_padded_logits(&back, &c["left_padded"], &format!("{name} saved"));
        let cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        let orig: Value =
            serde_json::from_str(&std::fs::read_to_string(dir(name).join("config.json")).unwrap())
                .unwrap();
        for key in [
            "model_type",
            "rope_parameters",
            "num_key_value_heads",
            "tie_word_embeddings",
        ] {
            assert_eq!(cfg[key], orig[key], "{name}: {key}");
        }
    }
    std::fs::remove_dir_all(&scratch).ok();
}

#[test]
fn the_reward_head_scores_rows_at_their_last_real_token() {
    use rein_lm::rl::reward_model::{load_backbone_and_head, sequence_rewards};
    let (model, head) = load_backbone_and_head(&dir("llama_reward")).unwrap();
    let c = cases("llama_reward");
    let scores: Vec<f32> = sequence_rewards(&model, &head, &ids(&c["sequences"]))
        .unwrap()
        .to_vec1()
        .unwrap();
    let want = c["scores"].as_array().unwrap();
    assert_eq!(scores.len(), want.len());
    for (g, w) in scores.iter().zip(want) {
        let w = w.as_f64().unwrap();
        assert!((f64::from(*g) - w).abs() < 1e-4, "score {g} vs {w}");
    }
}

#[test]
fn every_gguf_file_gives_transformers_logits() {
    let c = cases("gguf");
    let files = c["files"].as_object().unwrap();
    assert_eq!(files.len(), 7);
    for (file, case) in files {
        let model = load_model(&dir("gguf").join(file)).unwrap();
        let seqs = ids(&c["sequences"]);
        let got = sequence_logits(&model, &seqs).unwrap();
        for (i, g) in got.iter().enumerate() {
            let d = max_diff(g, &case["logits_at_real_positions"][i]);
            assert!(d < 1e-4, "{file}: sequence {i}: max |diff| {d}");
        }
    }
}

/// Every chat-template case: the text of `apply_chat_template(tokenize=False)` exactly, and its
/// token ids.
#[test]
fn chat_templates_render_and_tokenize_as_transformers() {
    use rein_lm::chat::{ChatTemplate, Message};
    for name in ["chat_chatml", "chat_llama3"] {
        let template = ChatTemplate::from_dir(&dir(name))
            .unwrap()
            .expect("a template");
        let tk = rein_lm::Tokenizer::from_dir(&dir(name)).unwrap().unwrap();
        let c = cases(name);
        for (i, case) in c.as_array().unwrap().iter().enumerate() {
            let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
            let add = case["add_generation_prompt"].as_bool().unwrap();
            let text = template.render(&messages, add).unwrap();
            assert_eq!(text, case["text"].as_str().unwrap(), "{name} case {i}");
            let want: Vec<u32> = ids(&Value::Array(vec![case["input_ids"].clone()])).remove(0);
            assert_eq!(tk.encode(&text).unwrap(), want, "{name} case {i}: ids");
        }
    }
}

/// The GGUF's own tokenizer and chat template are the chatml fixture's.
#[test]
fn gguf_files_carry_their_tokenizer_and_chat_template() {
    use rein_lm::chat::{ChatTemplate, Message};
    let file = rein_lm::gguf::GgufFile::open(&dir("gguf").join("tiny-llama-Q8_0.gguf")).unwrap();
    let tk = file.tokenizer().unwrap();
    let template = file
        .chat_template_with_tokens(&tk)
        .unwrap()
        .expect("a template");
    let reference = ChatTemplate::from_dir(&dir("chat_chatml"))
        .unwrap()
        .unwrap();
    assert_eq!(template.source, reference.source);
    let c = cases("chat_chatml");
    for case in c.as_array().unwrap() {
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
        let text = template
            .render(&messages, case["add_generation_prompt"].as_bool().unwrap())
            .unwrap();
        assert_eq!(text, case["text"].as_str().unwrap());
        let want: Vec<u32> = ids(&Value::Array(vec![case["input_ids"].clone()])).remove(0);
        assert_eq!(tk.encode(&text).unwrap(), want);
    }
}
