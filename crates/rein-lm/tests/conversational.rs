//! TRL's conversational prompt format in the RL trainers: `{"prompt": [messages]}` rows render
//! exactly as transformers' `apply_chat_template(add_generation_prompt=True)` (the chat-template
//! fixtures), keep their other columns for the rewards, end replies at the end-of-turn token,
//! and bad rows are refused naming the file and line.

use rein_lm::chat::ChatTemplate;
use rein_lm::rl::reward::{read_prompts, render_conversations, PromptRecord};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/decoders")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rein-conv-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn conversational_prompts_render_as_transformers() {
    for name in ["chat_chatml", "chat_llama3"] {
        let dir = fixture(name);
        let template = ChatTemplate::from_dir(&dir).unwrap().unwrap();
        let cases: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap())
                .unwrap();
        let file = scratch(name).join("prompts.jsonl");
        let rows: Vec<&Value> = cases
            .iter()
            .filter(|c| {
                c["add_generation_prompt"] == true
                    && c["messages"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|m| m["role"] == "user")
            })
            .collect();
        assert!(rows.len() >= 3, "{name}: too few cases");
        let text: String = rows
            .iter()
            .enumerate()
            .map(|(i, c)| {
                serde_json::json!({"prompt": c["messages"], "answer": i.to_string(), "level": i})
                    .to_string()
                    + "\n"
            })
            .collect();
        std::fs::write(&file, text).unwrap();
        let mut records = read_prompts(&file).unwrap();
        assert!(
            records.iter().all(|r| r.prompt.is_empty()),
            "not rendered yet"
        );
        render_conversations(&mut records, Some(&template), name).unwrap();
        for (i, (r, c)) in records.iter().zip(&rows).enumerate() {
            assert_eq!(r.prompt, c["text"].as_str().unwrap(), "{name} case {i}");
            assert_eq!(r.references, vec![i.to_string()]);
            assert_eq!(r.columns["level"], i);
            assert_eq!(
                r.messages.as_ref().unwrap().len(),
                c["messages"].as_array().unwrap().len()
            );
            let s = r.sample("reply");
            assert_eq!(s.columns["answer"], i.to_string());
            assert!(s.messages.is_some());
        }
        // Without a template a conversation cannot be rendered.
        let e = render_conversations(&mut records, None, "MODEL")
            .unwrap_err()
            .to_string();
        assert!(e.contains("MODEL has no chat template"), "{e}");
    }
}

#[test]
fn bad_prompt_rows_are_refused_by_line() {
    let dir = scratch("bad");
    let check = |text: &str, want: &str| {
        let f = dir.join("p.jsonl");
        std::fs::write(&f, text).unwrap();
        let e = read_prompts(&f).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains("p.jsonl:"), "{e}");
    };
    check(
        "{\"prompt\": \"ok\"}\n{\"question\": \"x\"}\n",
        ":2: the row has neither \"prompt\" nor \"messages\"",
    );
    check(
        "{\"prompt\": [{\"role\": \"system\", \"content\": \"be brief\"}]}\n",
        ":1: \"prompt\": the conversation has no user turn",
    );
    check(
        "{\"prompt\": [{\"role\": \"user\"}]}\n",
        "message 0 is not a {\"role\": string, \"content\": string} object",
    );
    check(
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
        "a \"messages\" row is an SFT example",
    );
    check("{\"prompt\": 3}\n", "\"prompt\" must be a string or a list");
}

#[test]
fn plain_prompts_keep_working() {
    let f = scratch("plain").join("p.jsonl");
    std::fs::write(&f, "{\"prompt\": \"2 + 2 =\", \"answer\": \"4\"}\n").unwrap();
    let r = read_prompts(&f).unwrap();
    assert_eq!(
        r,
        vec![PromptRecord {
            prompt: "2 + 2 =".into(),
            references: vec!["4".into()],
            messages: None,
            columns: serde_json::from_str("{\"answer\": \"4\"}").unwrap(),
        }]
    );
}

/// A GRPO trainer on chat prompts stops replies at the vocabulary's end-of-turn token (the
/// tiny GGUF Llama has the ChatML tokens), and the loader keeps those ids across a checkpoint.
#[test]
fn chat_prompts_end_replies_at_the_end_of_turn_token() {
    use rein_lm::rl::grpo::{GrpoConfig, GrpoTrainer};
    let gguf = fixture("gguf/tiny-llama-F32.gguf");
    let p = rein_lm::pretrained::Pretrained::load(&gguf).unwrap();
    let tk = p.tokenizer.clone().unwrap();
    let end = tk.token_id("<|im_end|>").unwrap();
    let f = scratch("eot").join("p.jsonl");
    std::fs::write(
        &f,
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"sat on the\"}], \"answer\": \"3\"}\n",
    )
    .unwrap();
    let mut records = read_prompts(&f).unwrap();
    render_conversations(&mut records, p.chat_template.as_ref(), "gguf").unwrap();
    assert!(records[0].prompt.ends_with("<|im_start|>assistant\n"));
    let cfg = GrpoConfig {
        max_steps: 1,
        prompts_per_step: 1,
        group_size: 2,
        max_new_tokens: 3,
        ..Default::default()
    };
    let t = GrpoTrainer::new(cfg, p.model, records, &tk).unwrap();
    let dir = scratch("eot_ck");
    let ck = dir.join("ck");
    t.save_checkpoint(&ck).unwrap();
    let back = GrpoTrainer::load_checkpoint(&ck, &tk).unwrap();
    for tr in [&t, &back] {
        assert!(tr.loader().end_of_turn_ids.contains(&end));
    }
}

/// SFT on conversations: `{"messages"}` learns the assistant turns only (each reply and its
/// `<|im_end|>`), `{"prompt": [...], "completion": [...]}` the completion's; the token ids are
/// the whole rendering's, as transformers tokenizes it.
#[test]
fn sft_conversations_learn_the_assistant_turns_only() {
    use rein_lm::train::examples_from_jsonl;
    let gguf = fixture("gguf/tiny-llama-F32.gguf");
    let p = rein_lm::pretrained::Pretrained::load(&gguf).unwrap();
    let (tk, t) = (
        p.tokenizer.clone().unwrap(),
        p.chat_template.clone().unwrap(),
    );
    let f = scratch("sft").join("d.jsonl");
    std::fs::write(
        &f,
        concat!(
            "{\"messages\": [{\"role\": \"user\", \"content\": \"sat on\"}, {\"role\": \"assistant\", \"content\": \"the three\"},",
            " {\"role\": \"user\", \"content\": \"is\"}, {\"role\": \"assistant\", \"content\": \"on the\"}]}\n",
            "{\"prompt\": [{\"role\": \"user\", \"content\": \"sat\"}], \"completion\": [{\"role\": \"assistant\", \"content\": \"three\"}]}\n"
        ),
    )
    .unwrap();
    let ex = examples_from_jsonl(&tk, &f, 0, 512, Some(&t)).unwrap();
    assert_eq!(ex.len(), 2);
    let learned = |e: &rein_lm::train::Example| -> Vec<String> {
        e.learned
            .iter()
            .map(|&(a, b)| tk.decode(&e.ids[a..b], false).unwrap())
            .collect()
    };
    assert_eq!(
        learned(&ex[0]),
        vec!["the three<|im_end|>", "on the<|im_end|>"]
    );
    assert_eq!(learned(&ex[1]), vec!["three<|im_end|>"]);
    let msgs: Vec<rein_lm::chat::Message> = vec![
        rein_lm::chat::Message::new("user", "sat"),
        rein_lm::chat::Message::new("assistant", "three"),
    ];
    assert_eq!(
        ex[1].ids,
        tk.encode(&t.render(&msgs, false).unwrap()).unwrap()
    );
    // The loss covers exactly those tokens.
    let batch = rein_lm::train::collate(&[&ex[0]]);
    let n = batch.labels.iter().filter(|&&l| l >= 0).count();
    assert_eq!(n, ex[0].learned.iter().map(|(a, b)| b - a).sum::<usize>());
    // Without a template, or without an assistant turn, the row is refused.
    let e = examples_from_jsonl(&tk, &f, 0, 512, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("d.jsonl line 1: a conversation, but the model has no chat template"),
        "{e}"
    );
    std::fs::write(
        &f,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"sat\"}]}\n",
    )
    .unwrap();
    let e = examples_from_jsonl(&tk, &f, 0, 512, Some(&t))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no assistant turn to learn"), "{e}");
}

/// Reward-model pairs in TRL's conversational forms: an explicit prompt and the implicit one
/// (whole conversations sharing their first messages) give the same text pair: the prompt
/// rendered with the generation prompt, each reply the rest of its rendering.
#[test]
fn conversational_preferences_render_to_text_pairs() {
    use rein_lm::rl::reward_model::read_preferences;
    let chat = ChatTemplate::from_dir(&fixture("chat_chatml"))
        .unwrap()
        .unwrap();
    let f = scratch("prefs").join("p.jsonl");
    let user = r#"{"role": "user", "content": "sat on the"}"#;
    let good = r#"{"role": "assistant", "content": "three"}"#;
    let bad = r#"{"role": "assistant", "content": "is is"}"#;
    std::fs::write(
        &f,
        format!(
            "{{\"prompt\": [{user}], \"chosen\": [{good}], \"rejected\": [{bad}]}}\n{{\"chosen\": [{user}, {good}], \"rejected\": [{user}, {bad}]}}\n"
        ),
    )
    .unwrap();
    let pairs = read_preferences(&f, Some(&chat)).unwrap();
    assert_eq!(pairs[0], pairs[1]);
    let m = |r: &str, c: &str| rein_lm::chat::Message::new(r, c);
    let head = chat.render(&[m("user", "sat on the")], true).unwrap();
    assert_eq!(pairs[0].prompt, head);
    let full = chat
        .render(&[m("user", "sat on the"), m("assistant", "three")], false)
        .unwrap();
    assert_eq!(format!("{}{}", pairs[0].prompt, pairs[0].chosen), full);
    assert!(pairs[0].rejected.starts_with("is is"));
    let e = read_preferences(&f, None).unwrap_err().to_string();
    assert!(
        e.contains("p.jsonl:1: a conversation, but the model has no chat template"),
        "{e}"
    );
    std::fs::write(
        &f,
        format!("{{\"chosen\": [{good}], \"rejected\": [{bad}]}}\n{{\"chosen\": [{good}], \"rejected\": [{bad}]}}\n"),
    )
    .unwrap();
    let e = read_preferences(&f, Some(&chat)).unwrap_err().to_string();
    assert!(e.contains("has no user turn"), "{e}");
}
