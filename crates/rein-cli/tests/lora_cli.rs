//! The command-line interfaces of LoRA and conversational RL (issue: LoRA adapters and
//! conversational RL): `rein lm logits --adapter` against PEFT's logits, `rein lm merge-lora`,
//! `rein bench lm-rl --model [--lora]`, `rein lm demo --preset [--lora]` and `rein lm grpo` on
//! chat prompts with LoRA (run directory with `adapter/`, exact resume), on the tiny fixtures.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn rein(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rein"))
        .args(args)
        .output()
        .expect("rein runs")
}

fn decoders(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../rein-lm/tests/fixtures/decoders")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rein-lora-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn peft() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(decoders("llama_lora").join("peft_logits.json")).unwrap(),
    )
    .unwrap()
}

fn ids_arg(seqs: &Value) -> String {
    seqs.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let ids: Vec<String> = s
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.to_string())
                .collect();
            ids.join(",")
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn max_diff(got: &Value, want: &Value) -> f64 {
    let mut worst = 0f64;
    for (g, w) in got.as_array().unwrap().iter().zip(want.as_array().unwrap()) {
        for (gr, wr) in g.as_array().unwrap().iter().zip(w.as_array().unwrap()) {
            for (a, b) in gr.as_array().unwrap().iter().zip(wr.as_array().unwrap()) {
                worst = worst.max((a.as_f64().unwrap() - b.as_f64().unwrap()).abs());
            }
        }
    }
    worst
}

#[test]
fn logits_with_an_adapter_and_merged_match_peft() {
    let p = peft();
    let ids = ids_arg(&p["sequences"]);
    let base = decoders("llama");
    let adapter = decoders("llama_lora");
    let out = ok(&rein(&[
        "lm",
        "logits",
        "--model",
        base.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--ids",
        &ids,
        "--json",
    ]));
    let got: Value = serde_json::from_str(&out).unwrap();
    let d = max_diff(&got["logits"], &p["logits_at_real_positions"]);
    assert!(d < 1e-4, "adapter logits {d}");
    let dir = scratch("merged");
    let merged = dir.join("model");
    ok(&rein(&[
        "lm",
        "merge-lora",
        "--model",
        base.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]));
    assert!(merged.join("config.json").exists() && merged.join("model.safetensors").exists());
    let out = ok(&rein(&[
        "lm",
        "logits",
        "--model",
        merged.to_str().unwrap(),
        "--ids",
        &ids,
        "--json",
    ]));
    let got: Value = serde_json::from_str(&out).unwrap();
    let d = max_diff(&got["logits"], &p["merged_logits_at_real_positions"]);
    assert!(d < 1e-4, "merged logits {d}");
    // An adapter on a model it does not fit.
    let o = rein(&[
        "lm",
        "logits",
        "--model",
        decoders("qwen3").to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--ids",
        "1,2",
        "--json",
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("adapter_model.safetensors") && e.contains("has shape"),
        "{e}"
    );
}

/// Where Python with torch, transformers and PEFT is available: an adapter trained and saved
/// by rein loads in PEFT and gives rein's logits.
#[test]
fn an_adapter_rein_trains_loads_in_peft() {
    let root = scratch("grpo");
    let gguf = decoders("gguf/tiny-llama-F32.gguf");
    let base = root.join("base");
    ok(&rein(&[
        "lm",
        "convert",
        "--model",
        gguf.to_str().unwrap(),
        "--out",
        base.to_str().unwrap(),
    ]));
    let prompts = root.join("p.jsonl");
    std::fs::write(
        &prompts,
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"sat on the\"}], \"answer\": \"3\"}\n{\"prompt\": [{\"role\": \"user\", \"content\": \"is three\"}], \"answer\": \"7\"}\n",
    )
    .unwrap();
    let runs = root.join("runs");
    let out = ok(&rein(&[
        "lm",
        "grpo",
        "--model",
        base.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--reward",
        "length:target=3",
        "--set",
        "max_steps=3",
        "--set",
        "prompts_per_step=2",
        "--set",
        "group_size=2",
        "--set",
        "max_new_tokens=4",
        "--set",
        "lora.enabled=true",
        "--set",
        "lora.r=2",
        "--set",
        "lora.learning_rate=0.01",
        "--set",
        "beta=0.05",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--quiet",
    ]));
    assert!(out.contains("3 steps done"), "{out}");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let adapter = run.join("adapter");
    assert!(adapter.join("adapter_config.json").exists());
    assert!(
        run.join("model/chat_template.jinja").exists(),
        "the chat template goes with the model"
    );
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["r"], 2);
    // Merged export equals the adapter on the base.
    let ids = "1,5,9;3,4";
    let with_adapter: Value = serde_json::from_str(&ok(&rein(&[
        "lm",
        "logits",
        "--model",
        base.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--ids",
        ids,
        "--json",
    ])))
    .unwrap();
    let merged: Value = serde_json::from_str(&ok(&rein(&[
        "lm",
        "logits",
        "--model",
        run.join("model").to_str().unwrap(),
        "--ids",
        ids,
        "--json",
    ])))
    .unwrap();
    assert!(max_diff(&with_adapter["logits"], &merged["logits"]) < 1e-4);
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let have = Command::new(&python)
        .args(["-c", "import torch, transformers, peft"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("torch/transformers/peft not importable with {python}: PEFT check skipped");
        return;
    }
    let rein_json = root.join("rein.json");
    std::fs::write(&rein_json, with_adapter.to_string()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/peft_lora_logits.py");
    let o = Command::new(&python)
        .args([
            script.to_str().unwrap(),
            base.to_str().unwrap(),
            adapter.to_str().unwrap(),
            "--compare",
            rein_json.to_str().unwrap(),
            ids,
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn bench_and_demo_interfaces_print_their_lines() {
    let gguf = decoders("gguf/tiny-llama-F32.gguf");
    for lora in [false, true] {
        let mut args = vec![
            "bench",
            "lm-rl",
            "--model",
            gguf.to_str().unwrap(),
            "--steps",
            "1",
        ];
        if lora {
            args.push("--lora");
        }
        let out = ok(&rein(&args));
        assert!(
            out.lines()
                .any(|l| l.starts_with("GRPO step ") && l.ends_with(" s")),
            "{out}"
        );
    }
    // The demo on a preset of chat arithmetic (the tiny model learns nothing in one step; the
    // interface is what is checked).
    let root = scratch("demo");
    let data = root.join("q.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"What is 2 + 3?\"}], \"answer\": \"5\"}\n{\"prompt\": [{\"role\": \"user\", \"content\": \"What is 4 - 1?\"}], \"answer\": \"3\"}\n",
    )
    .unwrap();
    let preset = root.join("p.toml");
    std::fs::write(
        &preset,
        "trainer = \"grpo\"\nprompts = \"q.jsonl\"\neval_prompts = \"q.jsonl\"\n[[reward]]\nkind = \"exact_answer\"\ntake = \"last\"\n[settings]\nmax_steps = 1\nprompts_per_step = 2\ngroup_size = 2\nmax_new_tokens = 3\n[settings.lora]\nr = 2\nlearning_rate = 1e-3\n",
    )
    .unwrap();
    for lora in [false, true] {
        let mut args = vec![
            "lm",
            "demo",
            "--model",
            gguf.to_str().unwrap(),
            "--preset",
            preset.to_str().unwrap(),
            "--runs-dir",
            root.to_str().unwrap(),
            "--quiet",
        ];
        if lora {
            args.push("--lora");
        }
        let out = ok(&rein(&args));
        for want in [
            "accuracy before: ",
            "accuracy after: ",
            "example 1: ",
            "KL(policy || start)",
        ] {
            assert!(out.contains(want), "{want} missing in\n{out}");
        }
        assert_eq!(out.contains("LoRA: r 2"), lora, "{out}");
    }
}
