//! The command-line interfaces of the Llama family (issue: Llama-family models): `rein lm
//! logits` on a directory and a GGUF file, `rein lm score`, `rein lm chat-template`,
//! `rein lm generate --chat`, `rein lm chat`, `rein lm convert`, and clear errors on bad models.

use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

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

fn cases(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(decoders(name).join("cases.json")).unwrap())
        .unwrap()
}

fn ids_arg(seqs: &Value) -> String {
    seqs.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn ok_json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn max_diff(got: &Value, want: &Value) -> f64 {
    let mut worst = 0f64;
    for (g, w) in got.as_array().unwrap().iter().zip(want.as_array().unwrap()) {
        for (a, b) in g.as_array().unwrap().iter().zip(w.as_array().unwrap()) {
            worst = worst.max((a.as_f64().unwrap() - b.as_f64().unwrap()).abs());
        }
    }
    worst
}

#[test]
fn logits_of_a_directory_and_of_a_gguf_file_match_transformers() {
    let c = cases("qwen3");
    let lp = &c["left_padded"];
    let dir = decoders("qwen3");
    let got = ok_json(&rein(&[
        "lm",
        "logits",
        "--model",
        dir.to_str().unwrap(),
        "--ids",
        &ids_arg(&lp["sequences"]),
        "--json",
    ]));
    for (i, want) in lp["logits_at_real_positions"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert!(
            max_diff(&got["logits"][i], want) < 1e-4,
            "qwen3 sequence {i}"
        );
    }
    let g = cases("gguf");
    let file = decoders("gguf").join("tiny-llama-Q4_0.gguf");
    let got = ok_json(&rein(&[
        "lm",
        "logits",
        "--model",
        file.to_str().unwrap(),
        "--ids",
        &ids_arg(&g["sequences"]),
        "--json",
    ]));
    let want = &g["files"]["tiny-llama-Q4_0.gguf"]["logits_at_real_positions"];
    for (i, w) in want.as_array().unwrap().iter().enumerate() {
        assert!(max_diff(&got["logits"][i], w) < 1e-4, "gguf sequence {i}");
    }
}

#[test]
fn score_gives_the_reward_heads_scores() {
    let c = cases("llama_reward");
    let dir = decoders("llama_reward");
    let got = ok_json(&rein(&[
        "lm",
        "score",
        "--model",
        dir.to_str().unwrap(),
        "--ids",
        &ids_arg(&c["sequences"]),
        "--json",
    ]));
    for (g, w) in got["scores"]
        .as_array()
        .unwrap()
        .iter()
        .zip(c["scores"].as_array().unwrap())
    {
        assert!((g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-4);
    }
    // A causal LM is not a reward model.
    let o = rein(&[
        "lm",
        "score",
        "--model",
        decoders("llama").to_str().unwrap(),
        "--ids",
        "1,2",
        "--json",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("score.weight"));
}

#[test]
fn chat_template_prints_transformers_text_and_ids() {
    let scratch = std::env::temp_dir().join(format!("rein-chat-template-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    for (model, fixture) in [
        (decoders("chat_llama3"), "chat_llama3"),
        (decoders("gguf").join("tiny-llama-F16.gguf"), "chat_chatml"),
    ] {
        for (i, case) in cases(fixture).as_array().unwrap().iter().enumerate() {
            let msgs = scratch.join(format!("{fixture}-{i}.json"));
            std::fs::write(&msgs, case["messages"].to_string()).unwrap();
            let mut args = vec![
                "lm",
                "chat-template",
                "--model",
                model.to_str().unwrap(),
                "--messages",
                msgs.to_str().unwrap(),
                "--json",
            ];
            if case["add_generation_prompt"].as_bool().unwrap() {
                args.push("--add-generation-prompt");
            }
            let got = ok_json(&rein(&args));
            assert_eq!(got["text"], case["text"], "{fixture} case {i}");
            assert_eq!(got["input_ids"], case["input_ids"], "{fixture} case {i}");
        }
    }
    std::fs::remove_dir_all(&scratch).ok();
}

/// `generate --chat` renders the template, decodes greedily and prints the reply; the same
/// tokens as rendering by hand and generating from ids.
#[test]
fn generate_chat_and_the_interactive_chat_reply_on_a_gguf_model() {
    let file = decoders("gguf").join("tiny-llama-F32.gguf");
    let f = file.to_str().unwrap();
    let o = rein(&[
        "lm",
        "generate",
        "--model",
        f,
        "--chat",
        "what is the answer",
        "--max-new-tokens",
        "6",
        "--json",
    ]);
    let line = ok_json(&o);
    assert_eq!(line["ids"].as_array().unwrap().len(), 6);
    let scratch = std::env::temp_dir().join(format!("rein-chat-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let msgs = scratch.join("m.json");
    std::fs::write(
        &msgs,
        r#"[{"role": "user", "content": "what is the answer"}]"#,
    )
    .unwrap();
    let rendered = ok_json(&rein(&[
        "lm",
        "chat-template",
        "--model",
        f,
        "--messages",
        msgs.to_str().unwrap(),
        "--add-generation-prompt",
        "--json",
    ]));
    let prompt_ids: Vec<String> = rendered["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.to_string())
        .collect();
    let by_ids = ok_json(&rein(&[
        "lm",
        "generate",
        "--model",
        f,
        "--prompt-ids",
        &prompt_ids.join(","),
        "--max-new-tokens",
        "6",
        "--json",
    ]));
    assert_eq!(by_ids["ids"], line["ids"]);
    // The interactive chat streams the same reply, then /reset and /exit.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rein"))
        .args(["lm", "chat", "--model", f, "--max-new-tokens", "6"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"what is the answer\n/reset\nwhat is the answer\n/exit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let replies: Vec<&str> = text.lines().collect();
    let plain = rein(&[
        "lm",
        "generate",
        "--model",
        f,
        "--chat",
        "what is the answer",
        "--max-new-tokens",
        "6",
    ]);
    let want = String::from_utf8_lossy(&plain.stdout)
        .trim_end()
        .to_string();
    assert_eq!(replies, vec![want.as_str(), want.as_str()], "{text}");
    std::fs::remove_dir_all(&scratch).ok();
}

/// A GGUF written as a directory gives the same logits and tokenizer.
#[test]
fn convert_writes_a_directory_with_the_same_logits() {
    let out = std::env::temp_dir().join(format!("rein-convert-{}", std::process::id()));
    let file = decoders("gguf").join("tiny-llama-Q8_0.gguf");
    let o = rein(&[
        "lm",
        "convert",
        "--model",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "generation_config.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let g = cases("gguf");
    let got = ok_json(&rein(&[
        "lm",
        "logits",
        "--model",
        out.to_str().unwrap(),
        "--ids",
        &ids_arg(&g["sequences"]),
        "--json",
    ]));
    let want = &g["files"]["tiny-llama-Q8_0.gguf"]["logits_at_real_positions"];
    for (i, w) in want.as_array().unwrap().iter().enumerate() {
        assert!(max_diff(&got["logits"][i], w) < 1e-4, "sequence {i}");
    }
    std::fs::remove_dir_all(&out).ok();
}

/// Bad models get clear errors naming the file and what is wrong, never a panic.
#[test]
fn bad_models_are_clear_errors() {
    let scratch = std::env::temp_dir().join(format!("rein-bad-models-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let err = |model: &std::path::Path| -> String {
        let o = rein(&[
            "lm",
            "logits",
            "--model",
            model.to_str().unwrap(),
            "--ids",
            "1,2",
        ]);
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!e.contains("panicked"), "{e}");
        e
    };
    // An unknown model_type.
    let d = scratch.join("unknown");
    std::fs::create_dir_all(&d).unwrap();
    let mut cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(decoders("llama").join("config.json")).unwrap(),
    )
    .unwrap();
    cfg["model_type"] = "falcon".into();
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(
        decoders("llama").join("model.safetensors"),
        d.join("model.safetensors"),
    )
    .unwrap();
    let e = err(&d);
    assert!(
        e.contains("falcon") && e.contains("llama, mistral, qwen2, qwen3"),
        "{e}"
    );
    // A misshapen tensor: the config says more layers' width than the weights have.
    cfg["model_type"] = "llama".into();
    cfg["intermediate_size"] = 100.into();
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    let e = err(&d);
    assert!(e.contains("gate_proj.weight") && e.contains("shape"), "{e}");
    // A missing tensor.
    cfg["intermediate_size"] = 176.into();
    cfg["num_hidden_layers"] = 3.into();
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    let e = err(&d);
    assert!(e.contains("model.layers.2") && e.contains("missing"), "{e}");
    // An unsupported rope_type.
    cfg["num_hidden_layers"] = 2.into();
    cfg["rope_parameters"]["rope_type"] = "yarn".into();
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    let e = err(&d);
    assert!(e.contains("yarn") && e.contains("llama3"), "{e}");
    // A truncated GGUF.
    let bytes = std::fs::read(decoders("gguf").join("tiny-llama-Q4_1.gguf")).unwrap();
    let cut = scratch.join("cut.gguf");
    for len in [bytes.len() / 2, 2000, 10] {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let e = err(&cut);
        assert!(e.contains("cut.gguf"), "{e}");
    }
    // An unsupported quantisation type (the first tensor's type code patched to 99).
    let mut patched = bytes.clone();
    let name = b"token_embd.weight";
    let at = patched.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    // After the name: n_dims (u32), dims (u64 each), then the type (u32).
    let n_dims = u32::from_le_bytes(patched[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * n_dims;
    patched[ty..ty + 4].copy_from_slice(&99u32.to_le_bytes());
    let bad = scratch.join("badtype.gguf");
    std::fs::write(&bad, &patched).unwrap();
    let e = err(&bad);
    assert!(e.contains("badtype.gguf") && e.contains("Q4_K"), "{e}");
    // A broken chat template names the line.
    let t = scratch.join("tpl");
    std::fs::create_dir_all(&t).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(decoders("chat_chatml").join(f), t.join(f)).unwrap();
    }
    std::fs::write(
        t.join("chat_template.jinja"),
        "{% for m in messages %}\n{{ m.content }\n{% endfor %}",
    )
    .unwrap();
    let msgs = scratch.join("m.json");
    std::fs::write(&msgs, r#"[{"role": "user", "content": "hi"}]"#).unwrap();
    let o = rein(&[
        "lm",
        "chat-template",
        "--model",
        t.to_str().unwrap(),
        "--messages",
        msgs.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("chat_template.jinja line 2"), "{e}");
    std::fs::remove_dir_all(&scratch).ok();
}
