//! Mutation tests of every language-model loader: thousands of seeded mutations of a valid
//! file (bit flips, truncations, splices, random bytes, huge numbers, NaN, deep nesting) per
//! run, each of which must load or fail with an error, never panic, finish quickly and
//! allocate no more than `rein_core::fuzz::ALLOCATION_BOUND` bytes beyond what was live
//! before it.

use rand::SeedableRng;
use rand_pcg::Pcg64;
use rein_core::fuzz::mutate;
use rein_core::fuzz::{peak_allocation, ALLOCATION_BOUND};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: rein_core::fuzz::CountingAllocator = rein_core::fuzz::CountingAllocator;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decoders")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rein-mutations-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `count` mutations of the file `name` of `valid_dir` (copied into a scratch
/// directory with the rest of its files) and runs `load` on the directory or file each time:
/// no panic, and each within `limit`. Returns how many loaded.
fn hammer(
    what: &str,
    valid_dir: &Path,
    name: &str,
    count: u64,
    limit: Duration,
    load: impl Fn(&Path) -> bool,
) -> u64 {
    let dir = scratch(what);
    for e in std::fs::read_dir(valid_dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let valid = std::fs::read(valid_dir.join(name)).unwrap();
    assert!(load(&dir.join(name)), "{what}: the valid file must load");
    let mut rng = Pcg64::seed_from_u64(0x5eed ^ count);
    let mut loaded = 0;
    for k in 0..count {
        let bytes = mutate(&valid, &mut rng);
        std::fs::write(dir.join(name), &bytes).unwrap();
        let t = Instant::now();
        let (r, grew) = peak_allocation(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(&dir.join(name))))
        });
        let elapsed = t.elapsed();
        assert!(
            grew < ALLOCATION_BOUND,
            "{what}: mutation {k} allocated {grew} bytes at its peak"
        );
        match r {
            Ok(ok) => loaded += u64::from(ok),
            Err(_) => {
                let keep = std::env::temp_dir().join(format!("rein-panic-{what}-{k}"));
                std::fs::write(&keep, &bytes).unwrap();
                panic!("{what}: mutation {k} panicked (kept in {})", keep.display());
            }
        }
        assert!(elapsed < limit, "{what}: mutation {k} took {elapsed:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
    loaded
}

#[test]
fn model_directories_survive_mutated_config_and_weights() {
    let llama = fixtures().join("llama");
    let load = |p: &Path| rein_lm::pretrained::Pretrained::load(p.parent().unwrap()).is_ok();
    hammer(
        "config",
        &llama,
        "config.json",
        2000,
        Duration::from_secs(5),
        load,
    );
    hammer(
        "safetensors",
        &llama,
        "model.safetensors",
        1000,
        Duration::from_secs(5),
        load,
    );
    hammer(
        "generation",
        &llama,
        "generation_config.json",
        1000,
        Duration::from_secs(5),
        load,
    );
}

#[test]
fn gguf_files_survive_mutations() {
    let gguf = fixtures().join("gguf");
    let load = |p: &Path| rein_lm::gguf::load_model(p).is_ok();
    hammer(
        "gguf",
        &gguf,
        "tiny-llama-Q8_0.gguf",
        1000,
        Duration::from_secs(5),
        load,
    );
}

#[test]
fn tokenizers_survive_mutations() {
    let chat = fixtures().join("chat_chatml");
    let tk = |p: &Path| rein_lm::Tokenizer::from_file(p).is_ok();
    hammer(
        "tokenizer",
        &chat,
        "tokenizer.json",
        1000,
        Duration::from_secs(5),
        tk,
    );
}

#[test]
fn peft_adapters_survive_mutations() {
    let lora = fixtures().join("llama_lora");
    let base = rein_lm::LlamaConfig::load(&fixtures().join("llama/config.json")).unwrap();
    let load =
        |p: &Path| rein_lm::models::lora::LoraAdapter::load(p.parent().unwrap(), &base).is_ok();
    let adapter = lora.join("adapter");
    let dir = if adapter.is_dir() { adapter } else { lora };
    hammer(
        "adapter_config",
        &dir,
        "adapter_config.json",
        2000,
        Duration::from_secs(5),
        load,
    );
    hammer(
        "adapter_model",
        &dir,
        "adapter_model.safetensors",
        1000,
        Duration::from_secs(5),
        load,
    );
}

#[test]
fn prompt_files_and_presets_survive_mutations() {
    let dir = scratch("valid-jsonl");
    std::fs::write(
        dir.join("prompts.jsonl"),
        concat!(
            "{\"prompt\": \"What is 2 + 3?\", \"answer\": \"5\"}\n",
            "{\"prompt\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"answer\": \"7\"}\n",
            "{\"prompt\": \"x\", \"reference\": \"a b\"}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("preset.toml"),
        concat!(
            "description = \"d\"\ntrainer = \"grpo\"\nprompts = \"prompts.jsonl\"\n",
            "[[reward]]\nkind = \"exact_answer\"\nweight = 1.0\n",
            "[settings]\nmax_steps = 3\nlearning_rate = 1e-5\n[settings.lora]\nr = 8\n"
        ),
    )
    .unwrap();
    let prompts = |p: &Path| rein_lm::rl::reward::read_prompts(p).is_ok();
    hammer(
        "prompts",
        &dir,
        "prompts.jsonl",
        3000,
        Duration::from_secs(5),
        prompts,
    );
    let preset = |p: &Path| {
        rein_lm::rl::trainer::TaskPreset::read(p).is_ok_and(|t| {
            rein_lm::rl::trainer::settings::<rein_lm::rl::grpo::GrpoConfig>(Some(&t), &[]).is_ok()
        })
    };
    hammer(
        "preset",
        &dir,
        "preset.toml",
        3000,
        Duration::from_secs(5),
        preset,
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn checkpoints_survive_mutations_and_none_loads_silently_changed() {
    let dir = scratch("valid-ckpt");
    let w: Vec<f32> = (0..64).map(|i| i as f32 * 0.5).collect();
    let state = serde_json::json!({"update": 3, "rng": [1, 2, 3], "name": "x"});
    let path = dir.join("checkpoint.safetensors");
    rein_train::Checkpoint::write(
        &path,
        "ppo",
        &state,
        vec![("w".to_string(), rein_train::F32View::new(vec![8, 8], &w))],
    )
    .unwrap();
    let valid = std::fs::read(&path).unwrap();
    // A mutation that still loads must be the same checkpoint (the checksum sees the rest).
    let load = |p: &Path| match rein_train::Checkpoint::read(p) {
        Ok(c) => {
            let same = c.state::<serde_json::Value>().ok() == Some(state.clone())
                && c.f32_tensors().ok().and_then(|t| t.get("w").cloned())
                    == Some((vec![8, 8], w.clone()));
            assert!(same, "a damaged checkpoint loaded with other content");
            true
        }
        Err(_) => false,
    };
    let loaded = hammer(
        "checkpoint",
        &dir,
        "checkpoint.safetensors",
        3000,
        Duration::from_secs(2),
        load,
    );
    assert!(loaded < 3000, "some mutations must be refused");
    assert!(std::fs::read(&path).is_ok_and(|b| b != valid) || loaded > 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// A chat template with tools, dates and loops (the Llama 3 fixture's) and a ChatML one, each
/// mutated and rendered: a template that loops for ever runs out of minijinja's fuel with an
/// error naming the template; none panics.
#[test]
fn chat_templates_survive_mutations() {
    let messages = vec![
        rein_lm::chat::Message::new("system", "Be brief."),
        rein_lm::chat::Message::new("user", "What is 12 + 30?"),
        rein_lm::chat::Message::new("assistant", "42"),
        rein_lm::chat::Message::new("user", "And 1 + 1?"),
    ];
    for case in ["chat_llama3", "chat_chatml"] {
        let render = |p: &Path| {
            rein_lm::chat::ChatTemplate::from_dir(p.parent().unwrap())
                .ok()
                .flatten()
                .is_some_and(|t| t.render(&messages, true).is_ok())
        };
        hammer(
            case,
            &fixtures().join(case),
            "chat_template.jinja",
            1500,
            Duration::from_secs(5),
            render,
        );
    }
}

/// SFT files in every TRL layout (text, prompt/completion, messages, conversational
/// prompt/completion) and preference files (explicit and implicit prompts, text and
/// conversations), mutated and read with the GGUF fixture's tokenizer and ChatML template.
#[test]
fn sft_and_preference_files_survive_mutations() {
    let p = rein_lm::pretrained::Pretrained::load(&fixtures().join("gguf/tiny-llama-F32.gguf"))
        .unwrap();
    let (tk, template) = (p.tokenizer.unwrap(), p.chat_template.unwrap());
    let dir = scratch("valid-sft");
    let user = r#"{"role": "user", "content": "sat on the"}"#;
    let good = r#"{"role": "assistant", "content": "three"}"#;
    let bad = r#"{"role": "assistant", "content": "is is"}"#;
    std::fs::write(
        dir.join("sft.jsonl"),
        format!(
            "{{\"text\": \"the cat sat on the mat\"}}\n\
             {{\"prompt\": \"sat on\", \"completion\": \" the three\"}}\n\
             {{\"messages\": [{user}, {good}, {user}, {bad}]}}\n\
             {{\"prompt\": [{user}], \"completion\": [{good}]}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("prefs.jsonl"),
        format!(
            "{{\"prompt\": \"sat\", \"chosen\": \" on\", \"rejected\": \" is\"}}\n\
             {{\"chosen\": \"the three\", \"rejected\": \"is is\"}}\n\
             {{\"prompt\": [{user}], \"chosen\": [{good}], \"rejected\": [{bad}]}}\n\
             {{\"chosen\": [{user}, {good}], \"rejected\": [{user}, {bad}]}}\n"
        ),
    )
    .unwrap();
    let sft =
        |p: &Path| rein_lm::train::examples_from_jsonl(&tk, p, 0, 512, Some(&template)).is_ok();
    hammer("sft", &dir, "sft.jsonl", 3000, Duration::from_secs(5), sft);
    let prefs = |p: &Path| rein_lm::rl::reward_model::read_preferences(p, Some(&template)).is_ok();
    hammer(
        "preferences",
        &dir,
        "prefs.jsonl",
        3000,
        Duration::from_secs(5),
        prefs,
    );
    std::fs::remove_dir_all(&dir).ok();
}
