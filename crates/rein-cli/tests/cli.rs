//! End-to-end tests of the `rein` binary.

use serde_json::Value as Json;
use std::path::PathBuf;
use std::process::{Command, Output};

fn rein(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rein"))
        .args(args)
        .output()
        .expect("rein runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../rein-envs/tests/fixtures/gymnasium")
        .join(name)
}

fn first_episode(file: &str) -> Json {
    let text = std::fs::read_to_string(fixture(file)).unwrap();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

#[test]
fn rollout_reproduces_gymnasium_episodes() {
    for (file, options) in [
        ("CartPole-v1.jsonl", vec![]),
        ("MountainCar-v0.jsonl", vec![]),
        ("MountainCarContinuous-v0.jsonl", vec![]),
        ("Pendulum-v1.jsonl", vec![]),
        ("Acrobot-v1.jsonl", vec![]),
        ("Taxi-v4.jsonl", vec![]),
        ("CliffWalking-v1.jsonl", vec![]),
        (
            "FrozenLake-v1_map_name-8x8_is_slippery-False.jsonl",
            vec!["--option", "map_name=8x8", "--option", "is_slippery=false"],
        ),
    ] {
        let ep = first_episode(file);
        let state = ep["state"].to_string();
        let actions = ep["actions"].to_string();
        let mut args = vec![
            "env",
            "rollout",
            "--env",
            ep["env_id"].as_str().unwrap(),
            "--state",
            &state,
            "--actions",
            &actions,
        ];
        args.extend(options);
        let out = rein(&args);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        let lines: Vec<Json> = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines.len(),
            ep["length"].as_u64().unwrap() as usize,
            "{file}"
        );
        for (i, line) in lines.iter().enumerate() {
            // `info` follows when the env gives one (toy text's transition probability).
            let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
            let keys: Vec<&String> = keys.into_iter().filter(|k| *k != "info").collect();
            assert_eq!(keys, ["obs", "reward", "terminated", "truncated"], "{file}");
            // Compare float32 observations as float32 (both sides are shortest f32 text).
            let as_f32 = |j: &Json| -> Vec<f32> {
                match j {
                    Json::Array(a) => a.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
                    x => vec![x.as_f64().unwrap() as f32],
                }
            };
            assert_eq!(
                as_f32(&line["obs"]),
                as_f32(&ep["obs"][i]),
                "{file} step {i} obs"
            );
            assert_eq!(
                line["reward"].as_f64(),
                ep["rewards"][i].as_f64(),
                "{file} step {i} reward"
            );
            assert_eq!(line["terminated"], ep["terminated"][i], "{file} step {i}");
            assert_eq!(line["truncated"], ep["truncated"][i], "{file} step {i}");
        }
    }
}

#[test]
fn rollout_blackjack_from_hands() {
    // Dealer already stands on 17: sticking with 20 wins, deterministically.
    let out = rein(&[
        "env",
        "rollout",
        "--env",
        "Blackjack-v1",
        "--state",
        r#"{"player":[10,10],"dealer":[10,7]}"#,
        "--actions",
        "[0]",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line: Json = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(
        line,
        serde_json::json!({"obs": [20, 10, 0], "reward": 1.0, "terminated": true, "truncated": false})
    );
}

#[test]
fn bad_input_is_a_clear_error_with_nonzero_status() {
    for (args, needle) in [
        (
            vec!["env", "rollout", "--env", "CartPol-v1", "--actions", "[0]"],
            "unknown environment id \"CartPol-v1\"",
        ),
        (
            vec!["env", "rollout", "--env", "CartPole-v1", "--actions", "[0,"],
            "--actions is not valid JSON",
        ),
        (
            vec![
                "env",
                "rollout",
                "--env",
                "CartPole-v1",
                "--actions",
                "[0, 3]",
            ],
            "action 1 of --actions is 3",
        ),
        (
            vec!["env", "rollout", "--env", "CartPole-v1", "--actions", "{}"],
            "must be a JSON array",
        ),
        (
            vec![
                "env",
                "rollout",
                "--env",
                "CartPole-v1",
                "--state",
                "[1,2]",
                "--actions",
                "[0]",
            ],
            "4 numbers",
        ),
        (
            vec![
                "env",
                "rollout",
                "--env",
                "Pendulum-v1",
                "--actions",
                "[[1, 2]]",
            ],
            "an array of 1 numbers",
        ),
        (
            vec![
                "env",
                "rollout",
                "--env",
                "Taxi-v4",
                "--option",
                "colour=red",
                "--actions",
                "[0]",
            ],
            "unknown option \"colour\"",
        ),
        (
            vec!["mdp", "solve", "--env", "CartPole-v1"],
            "not a table-driven",
        ),
        (
            vec!["mdp", "solve", "--env", "FrozenLake-v1", "--gamma", "-0.5"],
            "--gamma must be in [0, 1]",
        ),
        (
            vec![
                "train",
                "qlearning",
                "--env",
                "CartPole-v1",
                "--runs-dir",
                "/tmp/rein-cli-test-runs",
            ],
            "needs Discrete observations",
        ),
        (
            vec![
                "train",
                "qlearning",
                "--env",
                "Taxi-v4",
                "--set",
                "alpha=0.1",
                "--runs-dir",
                "/tmp/rein-cli-test-runs",
            ],
            "unknown setting \"alpha\"",
        ),
    ] {
        let out = rein(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = stderr(&out);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn envs_lists_every_id() {
    let out = rein(&["envs", "--json"]);
    assert!(out.status.success());
    let rows: Vec<Json> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    // 11 classic-control and toy-text envs, 11 Gymnasium MuJoCo robots, 15 suite tasks.
    assert_eq!(ids.len(), 37);
    for id in [
        "HalfCheetah-v5",
        "Humanoid-v5",
        "dm_control/cheetah-run-v0",
        "CartPole-v1",
        "FrozenLake8x8-v1",
        "Taxi-v4",
        "CliffWalkingSlippery-v1",
        "Blackjack-v1",
    ] {
        assert!(ids.contains(&id), "{id}");
    }
    let cart = rows.iter().find(|r| r["id"] == "CartPole-v1").unwrap();
    assert_eq!(cart["max_episode_steps"], 500);
    assert_eq!(cart["reward_threshold"], 475.0);
}

#[test]
fn mdp_solve_json_and_user_files() {
    let out = rein(&["mdp", "solve", "--env", "FrozenLake-v1", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sol: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        sol.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "Q",
            "V",
            "bellman_residual_q",
            "bellman_residual_v",
            "policy"
        ]
    );
    assert!(sol["bellman_residual_v"].as_f64().unwrap() < 1e-9);
    assert!(sol["bellman_residual_q"].as_f64().unwrap() < 1e-9);
    assert_eq!(sol["V"].as_array().unwrap().len(), 16);
    assert_eq!(sol["Q"][0].as_array().unwrap().len(), 4);
    let pi = rein(&[
        "mdp",
        "solve",
        "--env",
        "FrozenLake-v1",
        "--json",
        "--method",
        "policy-iteration",
    ]);
    let sol_pi: Json = serde_json::from_str(&stdout(&pi)).unwrap();
    for s in 0..16 {
        let (a, b) = (
            sol["V"][s].as_f64().unwrap(),
            sol_pi["V"][s].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-8, "V[{s}] {a} vs {b}");
    }
    let grid = rein(&[
        "mdp",
        "solve",
        "--env",
        "FrozenLake-v1",
        "--map",
        "8x8",
        "--slippery",
        "false",
    ]);
    assert!(stdout(&grid).contains("greedy policy"), "{}", stdout(&grid));

    let dir = std::env::temp_dir().join(format!("rein-mdp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    std::fs::write(&good, r#"{"gamma": 0.9, "P": [[[[1.0, 0, 0.0, false]], [[1.0, 1, 0.0, false]]], [[[1.0, 1, 1.0, false]], [[1.0, 1, 1.0, false]]]]}"#).unwrap();
    let out = rein(&["mdp", "solve", "--mdp", good.to_str().unwrap(), "--json"]);
    let sol: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert!((sol["V"][0].as_f64().unwrap() - 9.0).abs() < 1e-8);
    assert_eq!(sol["policy"], serde_json::json!([1, 0]));
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"gamma": 0.9, "P": [[[[0.5, 0, 0.0, false]]]]}"#).unwrap();
    let out = rein(&["mdp", "solve", "--mdp", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bad.json") && stderr(&out).contains("P[0][0]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn train_qlearning_writes_a_run_directory() {
    let runs = std::env::temp_dir().join(format!("rein-runs-{}", std::process::id()));
    let out = rein(&[
        "train",
        "qlearning",
        "--env",
        "Taxi-v4",
        "--seed",
        "1",
        "--episodes",
        "3000",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dirs: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1);
    let dir = &dirs[0];
    assert!(dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("Taxi-v4__qlearning__1__"));
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(
        config.contains("episodes = 3000") && config.contains("learning_rate = 0.5"),
        "{config}"
    );
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert!(metrics.starts_with("episode,global_step,epsilon,return_mean_100"));
    assert_eq!(metrics.lines().count(), 1 + 30);
    let eval: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval.json")).unwrap()).unwrap();
    assert!(eval["mean_return"].as_f64().unwrap() > 7.0, "{eval}");
    let q: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("q_table.json")).unwrap()).unwrap();
    assert_eq!(q["q"].as_array().unwrap().len(), 500 * 6);
    assert!(stdout(&out).contains("value iteration"));
    assert!(dir.join("learning_curve.png").exists());
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn env_bench_and_check_run() {
    let out = rein(&[
        "env",
        "bench",
        "--env",
        "CartPole-v1",
        "--steps",
        "20000",
        "--json",
    ]);
    assert!(out.status.success());
    let r: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(r["steps"], 20000);
    assert!(r["steps_per_second"].as_f64().unwrap() > 0.0);
    let out = rein(&[
        "env",
        "bench",
        "--env",
        "Taxi-v4",
        "--steps",
        "20000",
        "--num-envs",
        "4",
        "--threads",
        "2",
        "--json",
    ]);
    let r: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(r["steps"], 20000);
    let out = rein(&["env", "check", "--env", "Acrobot-v1", "--steps", "200"]);
    assert!(out.status.success() && stdout(&out).contains("passed"));
}

fn only_run_dir(root: &std::path::Path) -> PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

#[test]
fn ppo_run_interrupted_and_resumed_matches_uninterrupted() {
    let base = std::env::temp_dir().join(format!("rein-ppo-cli-{}", std::process::id()));
    let (full_root, part_root) = (base.join("full"), base.join("part"));
    let common = [
        "train",
        "ppo",
        "--env",
        "CartPole-v1",
        "--seed",
        "3",
        "--total-timesteps",
        "3072",
        "--quiet",
        "--checkpoint-every",
        "4",
    ];
    let mut args: Vec<&str> = common.to_vec();
    args.extend(["--runs-dir", full_root.to_str().unwrap()]);
    let out = rein(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("deterministic policy over 10 episodes"));
    let full = only_run_dir(&full_root);

    let mut args: Vec<&str> = common.to_vec();
    args.extend([
        "--runs-dir",
        part_root.to_str().unwrap(),
        "--max-updates",
        "5",
    ]);
    let out = rein(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("continue with: rein train --resume"),
        "{}",
        stdout(&out)
    );
    let part = only_run_dir(&part_root);
    let out = rein(&["train", "--resume", part.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));

    assert_eq!(
        metrics_without_wall_clock(&full),
        metrics_without_wall_clock(&part)
    );
    assert_eq!(metrics_without_wall_clock(&full).len(), 1 + 12);
    let read = |d: &PathBuf| std::fs::read(d.join("checkpoint.safetensors")).unwrap();
    // Same weights, optimiser state, generator and env states: the files are identical.
    assert_eq!(read(&full), read(&part));

    let out = rein(&[
        "eval",
        full.to_str().unwrap(),
        "--episodes",
        "3",
        "--deterministic",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(e["episodes"], 3);
    let out = rein(&["train", "--resume", base.join("nowhere").to_str().unwrap()]);
    assert!(
        !out.status.success() && stderr(&out).contains("config.toml"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn train_dqn_writes_a_run_directory_and_resumes_exactly() {
    let runs = std::env::temp_dir().join(format!("rein-dqn-runs-{}", std::process::id()));
    let (full_root, part_root) = (runs.join("full"), runs.join("part"));
    let train = |root: &PathBuf, extra: &[&str]| {
        let mut args = vec![
            "train",
            "dqn",
            "--env",
            "CartPole-v1",
            "--total-timesteps",
            "2048",
            "--set",
            "net_arch=[32,32]",
            "--quiet",
            "--runs-dir",
        ];
        args.push(root.to_str().unwrap());
        args.extend_from_slice(extra);
        let out = rein(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        out
    };
    train(&full_root, &[]);
    let dir = only_run_dir(&full_root);
    for f in [
        "config.toml",
        "metrics.csv",
        "learning_curve.png",
        "checkpoint.safetensors",
        "eval.json",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let out = rein(&["eval", dir.to_str().unwrap(), "--episodes", "2", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Interrupted after 3 training phases and resumed: same checkpoint (replay buffer included)
    // and the same metrics.
    let out = train(&part_root, &["--max-updates", "3"]);
    assert!(stdout(&out).contains("continue with"), "{}", stdout(&out));
    let part = only_run_dir(&part_root);
    let out = rein(&["train", "--resume", part.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |d: &PathBuf| std::fs::read(d.join("checkpoint.safetensors")).unwrap();
    assert_eq!(read(&dir), read(&part));
    assert_eq!(
        metrics_without_wall_clock(&dir),
        metrics_without_wall_clock(&part)
    );

    let out = rein(&[
        "train",
        "dqn",
        "--env",
        "Pendulum-v1",
        "--runs-dir",
        runs.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success() && stderr(&out).contains("Discrete action space"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn train_td3_and_ddpg_resume_exactly() {
    let runs = std::env::temp_dir().join(format!("rein-td3-runs-{}", std::process::id()));
    for algo in ["td3", "ddpg"] {
        let (full_root, part_root) = (runs.join(algo).join("full"), runs.join(algo).join("part"));
        let train = |root: &PathBuf, extra: &[&str]| {
            let mut args = vec![
                "train",
                algo,
                "--env",
                "Pendulum-v1",
                "--total-timesteps",
                "400",
                "--set",
                "net_arch=[16,16]",
                "--set",
                "learning_starts=100",
                "--checkpoint-every",
                "0",
                "--quiet",
                "--runs-dir",
            ];
            args.push(root.to_str().unwrap());
            args.extend_from_slice(extra);
            let out = rein(&args);
            assert!(out.status.success(), "{algo}: {}", stderr(&out));
        };
        train(&full_root, &[]);
        train(&part_root, &["--max-updates", "250"]);
        let (full, part) = (only_run_dir(&full_root), only_run_dir(&part_root));
        let out = rein(&["train", "--resume", part.to_str().unwrap(), "--quiet"]);
        assert!(out.status.success(), "{algo}: {}", stderr(&out));
        let read = |d: &PathBuf| std::fs::read(d.join("checkpoint.safetensors")).unwrap();
        assert_eq!(read(&full), read(&part), "{algo}");
        assert_eq!(
            metrics_without_wall_clock(&full),
            metrics_without_wall_clock(&part),
            "{algo}"
        );
        assert_eq!(
            metrics_without_wall_clock(&full).len(),
            1 + 400,
            "{algo}: one row per env step"
        );
        let out = rein(&["eval", full.to_str().unwrap(), "--episodes", "1", "--json"]);
        assert!(out.status.success(), "{algo}: {}", stderr(&out));
    }
    std::fs::remove_dir_all(&runs).unwrap();
}

const GPT2_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../rein-lm/tests/fixtures/gpt2"
);

#[test]
fn lm_logits_prints_each_sequences_real_positions_like_transformers() {
    let cases: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{GPT2_FIXTURE}/cases.json")).unwrap(),
    )
    .unwrap();
    let seqs = cases["left_padded"]["sequences"].as_array().unwrap();
    let arg: Vec<String> = seqs
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let model = format!("{GPT2_FIXTURE}/model");
    let o = rein(&[
        "lm",
        "logits",
        "--model",
        &model,
        "--ids",
        &arg.join(";"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let want = &cases["left_padded"]["logits_at_real_positions"];
    for (i, s) in seqs.iter().enumerate() {
        let n = s.as_array().unwrap().len();
        assert_eq!(got["logits"][i].as_array().unwrap().len(), n);
        for t in 0..n {
            for v in 0..1000 {
                let (g, w) = (
                    got["logits"][i][t][v].as_f64().unwrap(),
                    want[i][t][v].as_f64().unwrap(),
                );
                assert!((g - w).abs() < 1e-4, "sequence {i} position {t} entry {v}");
            }
        }
    }
}

#[test]
fn lm_generate_with_prompt_ids_returns_the_greedy_tokens_and_logprobs() {
    let cases: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{GPT2_FIXTURE}/cases.json")).unwrap(),
    )
    .unwrap();
    let prompt: Vec<String> = cases["greedy"]["prompt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.to_string())
        .collect();
    let model = format!("{GPT2_FIXTURE}/model");
    let o = rein(&[
        "lm",
        "generate",
        "--model",
        &model,
        "--prompt-ids",
        &prompt.join(","),
        "--max-new-tokens",
        "10",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(got["ids"], cases["greedy"]["new_tokens"]);
    let lps = got["logprobs"].as_array().unwrap();
    assert_eq!(lps.len(), 10);
    assert!(lps.iter().all(|x| x.as_f64().unwrap() < 0.0));
    // Without a tokenizer, a text prompt is a clear error.
    let o = rein(&["lm", "generate", "--model", &model, "--prompt", "hi"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no tokenizer.json"));
    // Out-of-vocabulary ids are named.
    let o = rein(&["lm", "logits", "--model", &model, "--ids", "1,5000"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("token id 5000"));
}

#[test]
fn lm_pretrain_resumes_to_the_same_checkpoint_and_exports_a_loadable_model() {
    let root = std::env::temp_dir().join(format!("rein_cli_lm_{}", std::process::id()));
    let (corpus, tok) = corpus_and_tokenizer(&root);
    let pretrain = |runs: &str, extra: &[&str]| {
        let runs = root.join(runs);
        let mut args = vec![
            "lm",
            "pretrain",
            "--tokenizer",
            tok.to_str().unwrap(),
            "--data",
            corpus.to_str().unwrap(),
            "--n-layer",
            "1",
            "--n-embd",
            "16",
            "--n-head",
            "2",
            "--n-positions",
            "32",
            "--set",
            "max_steps=6",
            "--set",
            "batch_size=4",
            "--set",
            "block_size=16",
            "--set",
            "eval_every=3",
            "--quiet",
            "--runs-dir",
            runs.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = rein(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_dir(&runs)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    };
    let full = pretrain("full", &[]);
    let part = pretrain("part", &["--max-updates", "4"]);
    let o = rein(&[
        "lm",
        "pretrain",
        "--resume",
        part.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read(full.join("checkpoint.safetensors")).unwrap()
            == std::fs::read(part.join("checkpoint.safetensors")).unwrap(),
        "resumed run differs from the uninterrupted one"
    );
    // Every column but the wall-clock tokens_per_second is identical.
    assert_eq!(
        metrics_without_wall_clock(&full),
        metrics_without_wall_clock(&part)
    );
    assert_eq!(metrics_without_wall_clock(&full).len(), 7);
    assert!(full.join("loss_curve.png").exists());
    // A finished run trains on with a larger max_steps; other settings and flags are refused.
    let full_s = full.to_str().unwrap();
    let resume = |extra: &[&str]| {
        let mut args = vec!["lm", "pretrain", "--resume", full_s, "--quiet"];
        args.extend_from_slice(extra);
        rein(&args)
    };
    let o = resume(&["--set", "max_steps=8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(metrics_without_wall_clock(&full).len(), 9);
    let config = std::fs::read_to_string(full.join("config.toml")).unwrap();
    assert!(config.contains("max_steps = 8"), "{config}");
    for (extra, says) in [
        (&["--set", "learning_rate=1"][..], "only max_steps"),
        (&["--set", "max_steps=3"][..], "less than the 8 steps"),
        (&["--data", "other.txt"][..], "cannot be used with"),
    ] {
        let o = resume(extra);
        assert!(!o.status.success(), "{extra:?}");
        assert!(stderr(&o).contains(says), "{extra:?}: {}", stderr(&o));
    }
    // The exported model directory works with generate (tokenizer included).
    let model = full.join("model");
    let o = rein(&[
        "lm",
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "Q: 3 + 1",
        "--max-new-tokens",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).starts_with("Q: 3 + 1"));
    std::fs::remove_dir_all(&root).ok();
}

/// `rein lm metric bleu|chrf --jsonl --json` on the first 50 fixture pairs gives sacrebleu's
/// corpus scores and one sentence entry per pair; misaligned files are a clear error.
#[test]
fn lm_metric_matches_sacrebleu_corpus_scores() {
    let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rein-text/tests/fixtures/metrics");
    let pairs: Vec<serde_json::Value> = std::fs::read_to_string(fx.join("pairs.jsonl"))
        .unwrap()
        .lines()
        .take(50)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let corpus: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("corpus.json")).unwrap()).unwrap();
    let block = &corpus["corpora"][1];
    assert_eq!(block["end"], 50);
    let dir = std::env::temp_dir().join(format!("rein_cli_metric_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, key: &str| {
        let p = dir.join(name);
        let text: String = pairs.iter().map(|x| format!("{}\n", x[key])).collect();
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (h, r) = (write("h.jsonl", "hyp"), write("r.jsonl", "ref"));
    let out = rein(&[
        "lm", "metric", "bleu", "--hyps", &h, "--refs", &r, "--jsonl", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = block["corpus_bleu"]["score"].as_f64().unwrap();
    assert!((v["corpus"]["score"].as_f64().unwrap() - want).abs() < 1e-6);
    assert_eq!(v["sentences"].as_array().unwrap().len(), 50);
    let want0 = pairs[0]["sentence_bleu_effective_order"]["score"]
        .as_f64()
        .unwrap();
    assert!((v["sentences"][0]["score"].as_f64().unwrap() - want0).abs() < 1e-6);
    let out = rein(&[
        "lm", "metric", "chrf", "--hyps", &h, "--refs", &r, "--jsonl", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = block["corpus_chrf"].as_f64().unwrap();
    assert!((v["corpus"]["score"].as_f64().unwrap() - want).abs() < 1e-6);
    let out = rein(&[
        "lm", "metric", "rouge", "--hyps", &h, "--refs", &r, "--jsonl", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = pairs[0]["rouge_nostem"]["rougeL"][2].as_f64().unwrap();
    assert!((v["sentences"][0]["rougeL"]["fmeasure"].as_f64().unwrap() - want).abs() < 1e-9);
    let mean: f64 = pairs
        .iter()
        .map(|p| p["rouge_nostem"]["rouge1"][2].as_f64().unwrap())
        .sum::<f64>()
        / 50.0;
    assert!((v["corpus"]["rouge1"]["fmeasure"].as_f64().unwrap() - mean).abs() < 1e-9);
    std::fs::write(dir.join("short.jsonl"), "\"one\"\n").unwrap();
    let short = dir.join("short.jsonl").display().to_string();
    let out = rein(&[
        "lm", "metric", "bleu", "--hyps", &h, "--refs", &short, "--jsonl",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("aligned"));
    let out = rein(&[
        "lm", "metric", "rouge", "--hyps", &h, "--refs", &r, "--jsonl", "--stem", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, p) in pairs.iter().enumerate() {
        let want = p["rouge_stem"]["rougeLsum"][2].as_f64().unwrap();
        let got = v["sentences"][i]["rougeLsum"]["fmeasure"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "pair {i}: {got} vs {want}");
    }
    let out = rein(&["lm", "metric", "vader", "--hyps", &h, "--jsonl", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, p) in pairs.iter().enumerate() {
        for key in ["neg", "neu", "pos", "compound"] {
            assert_eq!(
                v["sentences"][i][key], p["vader_hyp"][key],
                "pair {i} {key}"
            );
        }
    }
    let out = rein(&["lm", "metric", "bleu", "--hyps", &h, "--jsonl"]);
    assert!(!out.status.success() && stderr(&out).contains("needs --refs"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A corpus of 60 arithmetic lines and a 300-entry BPE trained on it, under `root`.
fn corpus_and_tokenizer(root: &std::path::Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(root).unwrap();
    let corpus = root.join("corpus.txt");
    let mut text = String::new();
    for a in 0..60 {
        text.push_str(&format!("Q: {a} + 1 = ? Answer: {}\n\n", a + 1));
    }
    std::fs::write(&corpus, text).unwrap();
    let tok = root.join("tok");
    let o = rein(&[
        "lm",
        "train-tokenizer",
        "--corpus",
        corpus.to_str().unwrap(),
        "--vocab-size",
        "300",
        "--out",
        tok.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    (corpus, tok)
}

/// A tiny model made here (tokenizer + two pretraining steps) for the RL commands.
fn tiny_lm(root: &std::path::Path) -> PathBuf {
    let (corpus, tok) = corpus_and_tokenizer(root);
    let runs = root.join("pre");
    let o = rein(&[
        "lm",
        "pretrain",
        "--tokenizer",
        tok.to_str().unwrap(),
        "--data",
        corpus.to_str().unwrap(),
        "--n-layer",
        "1",
        "--n-embd",
        "16",
        "--n-head",
        "2",
        "--n-positions",
        "48",
        "--set",
        "max_steps=2",
        "--set",
        "batch_size=4",
        "--set",
        "block_size=16",
        "--quiet",
        "--runs-dir",
        runs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    run.join("model")
}

/// `rein lm ppo` with a weighted reward of an external command and a rule, interrupted and
/// resumed, ends with the same checkpoint as an uninterrupted run; `rein lm eval` reports the
/// task metric, KL and reference perplexity; `rein lm train-reward-model` trains a model that
/// `--reward reward_model:path=...` then uses; bad presets and rewards are clear errors.
#[test]
fn lm_ppo_resumes_exactly_and_eval_and_reward_models_work() {
    let root = std::env::temp_dir().join(format!("rein_cli_ppo_{}", std::process::id()));
    let model = tiny_lm(&root);
    let prompts = root.join("prompts.jsonl");
    let text: String = (0..6)
        .map(|i| {
            format!(
                "{{\"prompt\": \"Q: {i} + 1 = ? Answer:\", \"answer\": \"{}\"}}\n",
                i + 1
            )
        })
        .collect();
    std::fs::write(&prompts, text).unwrap();
    let script = root.join("score.sh");
    std::fs::write(&script, "while read -r l; do echo ${#l}; done\n").unwrap();
    let command = format!("command:command=sh {},timeout_s=20@0.01", script.display());
    let ppo = |runs: &str, extra: &[&str]| {
        let runs = root.join(runs);
        let mut args = vec![
            "lm",
            "ppo",
            "--model",
            model.to_str().unwrap(),
            "--prompts",
            prompts.to_str().unwrap(),
            "--reward",
            &command,
            "--reward",
            "exact_answer",
            "--set",
            "max_steps=4",
            "--set",
            "prompts_per_step=3",
            "--set",
            "max_new_tokens=4",
            "--set",
            "learning_rate=0.001",
            "--set",
            "target_kl=0.5",
            "--set",
            "score_scaling=norm",
            "--quiet",
            "--runs-dir",
            runs.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = rein(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_dir(&runs)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    };
    let full = ppo("full", &[]);
    let part = ppo("part", &["--max-updates", "2"]);
    let o = rein(&["lm", "ppo", "--resume", part.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read(full.join("checkpoint.safetensors")).unwrap()
            == std::fs::read(part.join("checkpoint.safetensors")).unwrap(),
        "resumed PPO run differs from the uninterrupted one"
    );
    let csv = std::fs::read_to_string(full.join("metrics.csv")).unwrap();
    assert!(csv.starts_with(
        "step,objective/scores,objective/non_score_reward,objective/rlhf_reward,objective/kl"
    ));
    assert_eq!(csv.lines().count(), 5);
    assert!(full.join("reward_curve.png").exists());
    let o = rein(&[
        "lm",
        "eval",
        "--model",
        full.join("model").to_str().unwrap(),
        "--reference",
        model.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--max-new-tokens",
        "4",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["prompts"], 6);
    assert!(
        v["kl"].as_f64().unwrap().is_finite() && v["reference_perplexity"].as_f64().unwrap() >= 1.0
    );
    let o = rein(&[
        "lm",
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--max-new-tokens",
        "4",
        "--json",
    ]);
    let v: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["kl"].as_f64().unwrap().abs() < 1e-9,
        "a model against itself has KL 0"
    );
    // reward model
    let prefs = root.join("prefs.jsonl");
    let text: String = (0..12)
        .map(|i| format!("{{\"prompt\": \"Q: {i} + 1 = ? Answer:\", \"chosen\": \" {}\", \"rejected\": \" no\"}}\n", i + 1))
        .collect();
    std::fs::write(&prefs, text).unwrap();
    let rm = root.join("rm");
    let o = rein(&[
        "lm",
        "train-reward-model",
        "--model",
        model.to_str().unwrap(),
        "--data",
        prefs.to_str().unwrap(),
        "--out",
        rm.to_str().unwrap(),
        "--set",
        "epochs=2",
        "--set",
        "eval_fraction=0.25",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["eval"]["pairs"], 3);
    assert!(rm.join("model.safetensors").exists() && rm.join("loss_curve.png").exists());
    let rm_arg = format!("reward_model:path={}", rm.display());
    let o = rein(&[
        "lm",
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--reward",
        &rm_arg,
        "--max-new-tokens",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // errors
    let o = rein(&[
        "lm",
        "ppo",
        "--model",
        model.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--reward",
        "lenght:target=3",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("lenght"));
    let preset =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../presets/lm/translation.toml");
    let o = rein(&[
        "lm",
        "ppo",
        "--model",
        model.to_str().unwrap(),
        "--preset",
        preset.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("rein lm grpo"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&root).ok();
}

/// Every shipped task preset passes `rein lm check-preset` (it parses, names its trainer, that
/// trainer accepts its settings, its prompt files read), and runs end to end for two steps on a
/// tiny model whose tokenizer is trained on the example data, followed by `rein lm eval` on its
/// held-out prompts (the dialogue preset with a reward model trained here on its preference
/// pairs, since its own path points to a model the user trains).
#[test]
fn task_presets_check_and_run_end_to_end() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = repo.join("presets/lm");
    let root = std::env::temp_dir().join(format!("rein_cli_presets_{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let corpus = root.join("corpus.txt");
    let mut text = String::new();
    for task in [
        "sentiment",
        "summarization",
        "translation",
        "dialogue",
        "arithmetic",
    ] {
        for l in std::fs::read_to_string(repo.join(format!("examples/lm/{task}/train.jsonl")))
            .unwrap()
            .lines()
        {
            let v: Json = serde_json::from_str(l).unwrap();
            text.push_str(v["prompt"].as_str().unwrap());
            if let Some(r) = v["references"][0].as_str() {
                text.push_str(r);
            }
            text.push_str("\n\n");
        }
    }
    std::fs::write(&corpus, text).unwrap();
    let tok = root.join("tok");
    let o = rein(&[
        "lm",
        "train-tokenizer",
        "--corpus",
        corpus.to_str().unwrap(),
        "--vocab-size",
        "600",
        "--out",
        tok.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = rein(&[
        "lm",
        "pretrain",
        "--tokenizer",
        tok.to_str().unwrap(),
        "--data",
        corpus.to_str().unwrap(),
        "--n-layer",
        "1",
        "--n-embd",
        "16",
        "--n-head",
        "2",
        "--n-positions",
        "128",
        "--set",
        "max_steps=1",
        "--set",
        "batch_size=2",
        "--set",
        "block_size=32",
        "--quiet",
        "--runs-dir",
        root.join("pre").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = std::fs::read_dir(root.join("pre"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("model");
    let rm = root.join("rm");
    let o = rein(&[
        "lm",
        "train-reward-model",
        "--model",
        model.to_str().unwrap(),
        "--data",
        repo.join("examples/lm/dialogue/preferences.jsonl")
            .to_str()
            .unwrap(),
        "--out",
        rm.to_str().unwrap(),
        "--set",
        "batch_size=32",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rm_reward = format!("reward_model:path={}", rm.display());
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let o = rein(&["lm", "check-preset", p.to_str().unwrap()]);
        assert!(o.status.success(), "{}: {}", p.display(), stderr(&o));
        let text = std::fs::read_to_string(&p).unwrap();
        let trainer = if text.contains("trainer = \"ppo\"") {
            "ppo"
        } else {
            "grpo"
        };
        // A preset of chat prompts needs a model with a chat template: the tiny GGUF Llama.
        let chat_model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../rein-lm/tests/fixtures/decoders/gguf/tiny-llama-F32.gguf");
        let model = if text.contains("chat-arithmetic") {
            chat_model
        } else {
            model.clone()
        };
        let mut args = vec![
            "lm",
            trainer,
            "--model",
            model.to_str().unwrap(),
            "--preset",
            p.to_str().unwrap(),
            "--set",
            "max_steps=2",
            "--set",
            "prompts_per_step=2",
            "--set",
            "max_new_tokens=4",
            "--quiet",
            "--runs-dir",
            root.to_str().unwrap(),
        ];
        let mut eval_reward = Vec::new();
        if p.ends_with("dialogue.toml") {
            args.extend([
                "--reward",
                rm_reward.as_str(),
                "--reward",
                "repetition:n=1@0.5",
            ]);
            eval_reward = vec!["--reward", rm_reward.as_str()];
        }
        let o = rein(&args);
        assert!(o.status.success(), "{}: {}", p.display(), stderr(&o));
        if text.contains("eval_prompts") {
            let mut eval = vec![
                "lm",
                "eval",
                "--model",
                model.to_str().unwrap(),
                "--preset",
                p.to_str().unwrap(),
                "--limit",
                "4",
                "--max-new-tokens",
                "4",
                "--json",
            ];
            eval.extend(eval_reward);
            let o = rein(&eval);
            assert!(o.status.success(), "{}: {}", p.display(), stderr(&o));
            let v: Json = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["prompts"], 4);
            assert!(v["reward"].as_f64().unwrap().is_finite());
        }
        n += 1;
    }
    assert_eq!(n, 6, "every preset of presets/lm ran");
    std::fs::remove_dir_all(&root).ok();
}

/// Runs `rein <args> --runs-dir <root>/whole` to the end, then the same in `<root>/part`
/// interrupted with SIGINT (as Ctrl-C) once its metrics.csv has `rows` rows: it must exit
/// with 130 saying how to continue, and `<resume...> DIR` must end it byte-identical to the
/// uninterrupted run (checkpoint and metrics but the wall-clock columns).
fn ctrl_c_then_resume_matches_uninterrupted(
    root: &std::path::Path,
    args: &[&str],
    rows: usize,
    resume: &[&str],
) {
    let (whole_root, part_root) = (root.join("whole"), root.join("part"));
    let with_dir = |dir: &PathBuf| {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--runs-dir".into(), dir.display().to_string()]);
        v
    };
    let out = Command::new(env!("CARGO_BIN_EXE_rein"))
        .args(with_dir(&whole_root))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let child = Command::new(env!("CARGO_BIN_EXE_rein"))
        .args(with_dir(&part_root))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rows_written = || -> usize {
        let Some(Ok(run)) = std::fs::read_dir(&part_root)
            .ok()
            .and_then(|mut d| d.next())
        else {
            return 0;
        };
        let csv = std::fs::read_to_string(run.path().join("metrics.csv")).unwrap_or_default();
        csv.lines().count().saturating_sub(1)
    };
    let start = std::time::Instant::now();
    while rows_written() < rows {
        assert!(start.elapsed().as_secs() < 300, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: sends a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("interrupted after update") && stdout(&out).contains("continue with"),
        "{}",
        stdout(&out)
    );
    let (whole, part) = (only_run_dir(&whole_root), only_run_dir(&part_root));
    let mut resume_args = resume.to_vec();
    resume_args.extend([part.to_str().unwrap(), "--quiet"]);
    let out = rein(&resume_args);
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |d: &PathBuf| std::fs::read(d.join("checkpoint.safetensors")).unwrap();
    assert!(read(&whole) == read(&part), "{args:?}: checkpoints differ");
    assert_eq!(
        metrics_without_wall_clock(&whole),
        metrics_without_wall_clock(&part),
        "{args:?}: metrics differ"
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn ctrl_c_during_ppo_and_sac_training_leaves_an_exact_checkpoint() {
    let root = std::env::temp_dir().join(format!("rein-sigint-{}", std::process::id()));
    ctrl_c_then_resume_matches_uninterrupted(
        &root.join("ppo"),
        &[
            "train",
            "ppo",
            "--env",
            "CartPole-v1",
            "--seed",
            "2",
            "--total-timesteps",
            "40000",
            "--checkpoint-every",
            "0",
            "--quiet",
        ],
        3,
        &["train", "--resume"],
    );
    ctrl_c_then_resume_matches_uninterrupted(
        &root.join("sac"),
        &[
            "train",
            "sac",
            "--env",
            "Pendulum-v1",
            "--total-timesteps",
            "1500",
            "--set",
            "net_arch=[16,16]",
            "--set",
            "learning_starts=100",
            "--checkpoint-every",
            "0",
            "--quiet",
        ],
        300,
        &["train", "--resume"],
    );
}

#[test]
fn ctrl_c_during_lm_grpo_leaves_an_exact_checkpoint() {
    let root = std::env::temp_dir().join(format!("rein-sigint-grpo-{}", std::process::id()));
    let model = tiny_lm(&root.join("model"));
    let prompts = root.join("prompts.jsonl");
    let text: String = (0..6)
        .map(|i| {
            format!(
                "{{\"prompt\": \"Q: {i} + 1 = ? Answer:\", \"answer\": \"{}\"}}\n",
                i + 1
            )
        })
        .collect();
    std::fs::write(&prompts, text).unwrap();
    let (m, p) = (model.display().to_string(), prompts.display().to_string());
    ctrl_c_then_resume_matches_uninterrupted(
        &root.join("runs"),
        &[
            "lm",
            "grpo",
            "--model",
            &m,
            "--prompts",
            &p,
            "--set",
            "max_steps=40",
            "--set",
            "prompts_per_step=2",
            "--set",
            "group_size=3",
            "--set",
            "max_new_tokens=4",
            "--checkpoint-every",
            "0",
            "--quiet",
        ],
        2,
        &["lm", "grpo", "--resume"],
    );
    std::fs::remove_dir_all(&root).ok();
}

/// A run's config.toml fed back with `--config` gives a run with the same settings (issue 17,
/// item 1), for a deep and a tabular agent.
#[test]
fn a_runs_config_toml_feeds_back_with_config() {
    let root = std::env::temp_dir().join(format!("rein-config-rt-{}", std::process::id()));
    for (algo, env, budget) in [
        ("ppo", "CartPole-v1", ["--total-timesteps", "1024"]),
        ("qlearning", "Taxi-v4", ["--episodes", "50"]),
    ] {
        let run = |dir: &str, extra: &[&str]| -> PathBuf {
            let runs = root.join(algo).join(dir);
            let mut args = vec!["train", algo, "--env", env, "--quiet", "--runs-dir"];
            args.push(runs.to_str().unwrap());
            args.extend_from_slice(extra);
            let out = rein(&args);
            assert!(out.status.success(), "{algo}: {}", stderr(&out));
            only_run_dir(&runs)
        };
        let first = run(
            "first",
            &[&budget[..], &["--seed", "4", "--set", "gamma=0.95"]].concat(),
        );
        let cfg = first.join("config.toml");
        let second = run("second", &["--config", cfg.to_str().unwrap()]);
        let read = |d: &PathBuf| std::fs::read_to_string(d.join("config.toml")).unwrap();
        assert_eq!(read(&first), read(&second), "{algo}");
        assert!(read(&second).contains("gamma = 0.95"), "{algo}");
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_closed_stdout_pipe_ends_the_process_without_a_panic() {
    // `rein envs | head -1`: the reader is gone before rein writes its first line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_rein"))
        .args(["envs"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    // The shell's status for a process ended by SIGPIPE.
    assert_eq!(out.status.code(), Some(141), "{:?}", out.status);
}

#[test]
fn resume_with_a_larger_budget_trains_on_as_one_longer_run() {
    let base = std::env::temp_dir().join(format!("rein-extend-cli-{}", std::process::id()));
    let (full_root, part_root) = (base.join("full"), base.join("part"));
    // Constant schedules: then a run extended from 1024 to 3072 steps is the 3072-step run.
    let common = [
        "train",
        "ppo",
        "--env",
        "CartPole-v1",
        "--seed",
        "5",
        "--quiet",
        "--set",
        "learning_rate=0.0003",
        "--set",
        "clip_range=0.2",
    ];
    let mut args: Vec<&str> = common.to_vec();
    args.extend(["--total-timesteps", "3072"]);
    args.extend(["--runs-dir", full_root.to_str().unwrap()]);
    let out = rein(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let full = only_run_dir(&full_root);

    let mut args: Vec<&str> = common.to_vec();
    args.extend(["--total-timesteps", "1024"]);
    args.extend(["--runs-dir", part_root.to_str().unwrap()]);
    let out = rein(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("trained 1024 steps"),
        "{}",
        stdout(&out)
    );
    let part = only_run_dir(&part_root);
    let part_s = part.to_str().unwrap();
    let out = rein(&[
        "train",
        "--resume",
        part_s,
        "--total-timesteps",
        "3072",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("trained 3072 steps"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        metrics_without_wall_clock(&full),
        metrics_without_wall_clock(&part)
    );
    let read = |d: &PathBuf, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(
        read(&full, "checkpoint.safetensors"),
        read(&part, "checkpoint.safetensors")
    );
    // config.toml records the new budget, so it feeds back with --config.
    assert_eq!(read(&full, "config.toml"), read(&part, "config.toml"));

    // Less than already trained, and flags a resumed run cannot honour, are refused.
    let out = rein(&["train", "--resume", part_s, "--total-timesteps", "2000"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("less than the 3072 steps"),
        "{}",
        stderr(&out)
    );
    for flag in [["--episodes", "10"], ["--runs-dir", "elsewhere"]] {
        let out = rein(&["train", "--resume", part_s, flag[0], flag[1]]);
        assert!(!out.status.success(), "{flag:?}");
        assert!(
            stderr(&out).contains("cannot be used with"),
            "{}",
            stderr(&out)
        );
    }
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_setting_of_the_wrong_type_names_the_key_and_where_it_was_set() {
    let dir = std::env::temp_dir().join(format!("rein-types-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("my.toml");
    std::fs::write(&file, "# mine\ngamma = 0.9\nn_steps = \"many\"\n").unwrap();
    let file_s = file.to_str().unwrap();
    for (args, says) in [
        (
            &["train", "ppo", "--env", "CartPole-v1", "--set", "total_timesteps=abc"][..],
            "setting total_timesteps: invalid type: string \"abc\", expected u64 (set by --set total_timesteps=abc)",
        ),
        (
            &["train", "ppo", "--env", "CartPole-v1", "--config", file_s][..],
            "setting n_steps: invalid type: string \"many\", expected usize (set by ",
        ),
        (
            &["train", "qlearning", "--env", "Taxi-v4", "--set", "gamma=[1]"][..],
            "setting gamma: invalid type: sequence, expected f64 (set by --set gamma=[1])",
        ),
    ] {
        let out = rein(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let out = rein(&["train", "ppo", "--env", "CartPole-v1", "--config", file_s]);
    assert!(
        stderr(&out).contains("my.toml, line 3)"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn usage_errors_say_what_was_expected() {
    let out = rein(&["mdp", "solve"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("--env") && e.contains("--mdp"), "{e}");
    let out = rein(&["eval", "runs/x", "--episodes", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("0 is not in 1.."), "{}", stderr(&out));

    let root = std::env::temp_dir().join(format!("rein-usage-cli-{}", std::process::id()));
    let model = tiny_lm(&root);
    let model_s = model.to_str().unwrap();
    let gen = |t: &str| {
        rein(&[
            "lm",
            "generate",
            "--model",
            model_s,
            "--prompt",
            "Q",
            "--temperature",
            t,
        ])
    };
    let out = gen("-1");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("temperature must be positive, got -1"),
        "{}",
        stderr(&out)
    );
    assert!(gen("0.7").status.success());
    // The pretraining run behind the model, resumed with the RL and classic commands.
    let run = model.parent().unwrap().to_str().unwrap().to_string();
    for cmd in [&["lm", "grpo"][..], &["lm", "ppo"], &["train"]] {
        let mut args = cmd.to_vec();
        args.extend(["--resume", &run]);
        let out = rein(&args);
        assert!(!out.status.success(), "{cmd:?}");
        let e = stderr(&out);
        assert!(
            e.contains("is a run of `rein lm sft (or pretrain)` (a lm-sft checkpoint)")
                && e.contains("resume it with `rein lm sft (or pretrain) --resume"),
            "{cmd:?}: {e}"
        );
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_run_that_fails_before_its_first_checkpoint_leaves_no_run_directory() {
    let root = std::env::temp_dir().join(format!("rein-failstart-cli-{}", std::process::id()));
    let model = tiny_lm(&root);
    let prompts = root.join("p.jsonl");
    std::fs::write(&prompts, "{\"prompt\": \"Q: 1 + 1\", \"answer\": \"2\"}\n").unwrap();
    let runs = root.join("runs");
    let out = rein(&[
        "lm",
        "grpo",
        "--model",
        model.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--reward",
        "command:command=false",
        "--set",
        "max_steps=2",
        "--set",
        "prompts_per_step=1",
        "--set",
        "group_size=2",
        "--set",
        "max_new_tokens=2",
        "--quiet",
        "--runs-dir",
        runs.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("reward command `false`: exited with"), "{e}");
    assert!(e.contains("so its directory"), "{e}");
    let left: Vec<_> = std::fs::read_dir(&runs).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn eval_gif_renders_off_policy_agents() {
    let root = std::env::temp_dir().join(format!("rein-gif-cli-{}", std::process::id()));
    for (algo, env, steps) in [("dqn", "CartPole-v1", "600"), ("sac", "Pendulum-v1", "300")] {
        let runs = root.join(algo);
        let out = rein(&[
            "train",
            algo,
            "--env",
            env,
            "--total-timesteps",
            steps,
            "--set",
            "learning_starts=100",
            "--quiet",
            "--runs-dir",
            runs.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{algo}: {}", stderr(&out));
        let run = only_run_dir(&runs);
        let gif = root.join(format!("{algo}.gif"));
        let out = rein(&[
            "eval",
            run.to_str().unwrap(),
            "--episodes",
            "1",
            "--gif",
            gif.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{algo}: {}", stderr(&out));
        assert!(stdout(&out).contains("frames to"), "{}", stdout(&out));
        let bytes = std::fs::read(&gif).unwrap();
        assert_eq!(&bytes[..6], b"GIF89a", "{algo}");
    }
    std::fs::remove_dir_all(&root).ok();
}

/// Seeded delays in milliseconds (a small LCG: the test must not depend on a clock's luck).
fn delays(seed: u64, n: usize, lo: u64, hi: u64) -> Vec<u64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (s >> 33) % (hi - lo)
        })
        .collect()
}

fn temporaries(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            found.extend(temporaries(&e.path()));
        } else if name.starts_with('.') && name.contains(".tmp") {
            found.push(name);
        }
    }
    found
}

/// metrics.csv without its wall-clock columns (`sps`, `*_per_second`).
fn metrics_without_wall_clock(d: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(d.join("metrics.csv")).unwrap();
    let header: Vec<String> = text
        .lines()
        .next()
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    text.lines()
        .map(|l| {
            l.split(',')
                .zip(&header)
                .filter(|(_, h)| !(*h == "sps" || h.ends_with("_per_second")))
                .map(|(v, _)| v)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// Runs `rein <args> --runs-dir <root>/full` to the end, then the same in `<root>/soak`
/// killed with SIGKILL at `kills` seeded moments (20-400 ms after a first checkpoint exists,
/// so many kills land inside a checkpoint write) and resumed each time with
/// `rein <resume> RUN <resume_extra>`: the final checkpoint and metrics must equal the
/// uninterrupted run's and no temporary file may remain.
fn kill_9_soak(
    name: &str,
    root: &std::path::Path,
    args: &[&str],
    resume: &[&str],
    resume_extra: &[&str],
    seed: u64,
    kills: usize,
) {
    let (full_root, soak_root) = (root.join("full"), root.join("soak"));
    let with_dir = |dir: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--runs-dir".into(), dir.display().to_string()]);
        v
    };
    let out = Command::new(env!("CARGO_BIN_EXE_rein"))
        .args(with_dir(&full_root))
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    let full = only_run_dir(&full_root);

    let mut child = Command::new(env!("CARGO_BIN_EXE_rein"))
        .args(with_dir(&soak_root))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut done_kills = 0;
    let mut finished = false;
    for ms in delays(seed, kills, 20, 400) {
        // Wait for the first checkpoint, so that there is something to resume.
        let t = std::time::Instant::now();
        while !soak_root.exists()
            || std::fs::read_dir(&soak_root).unwrap().next().is_none()
            || !only_run_dir(&soak_root)
                .join("checkpoint.safetensors")
                .exists()
        {
            assert!(t.elapsed().as_secs() < 60, "{name}: no checkpoint");
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::thread::sleep(std::time::Duration::from_millis(ms));
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{name}: {status:?}");
            finished = true;
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        done_kills += 1;
        let run = only_run_dir(&soak_root);
        let mut resume_args: Vec<String> = resume.iter().map(|s| s.to_string()).collect();
        resume_args.push(run.display().to_string());
        resume_args.extend(resume_extra.iter().map(|s| s.to_string()));
        child = Command::new(env!("CARGO_BIN_EXE_rein"))
            .args(resume_args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    }
    if !finished {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
    }
    assert!(
        done_kills >= 3,
        "{name}: only {done_kills} kills; the run is too short for the test"
    );
    let soak = only_run_dir(&soak_root);
    assert_eq!(
        metrics_without_wall_clock(&full),
        metrics_without_wall_clock(&soak),
        "{name}"
    );
    let read = |d: &PathBuf| std::fs::read(d.join("checkpoint.safetensors")).unwrap();
    assert!(
        read(&full) == read(&soak),
        "{name}: checkpoints differ after {done_kills} kills"
    );
    assert_eq!(temporaries(&soak), Vec::<String>::new(), "{name}");
}

/// kill -9 at seeded random moments, `--resume` after each, for every kind of trainer: the
/// on-policy agents (PPO, A2C), the off-policy ones (DQN; SAC on a continuous env) and the
/// language-model trainers (pretraining, whose trainer SFT shares, GRPO and PPO). Tabular runs
/// train in seconds and keep no checkpoint, so there is nothing of theirs to resume.
#[test]
fn kill_9_at_random_points_then_resume_ends_byte_identical() {
    let base = std::env::temp_dir().join(format!("rein-soak-cli-{}", std::process::id()));
    let every = ["--checkpoint-every", "64", "--quiet"];
    for (algo, env, steps, seed) in [
        ("ppo", "CartPole-v1", "8192", 11u64),
        ("dqn", "CartPole-v1", "6000", 12),
        ("a2c", "CartPole-v1", "200000", 13),
    ] {
        let mut args = vec![
            "train",
            algo,
            "--env",
            env,
            "--seed",
            "2",
            "--total-timesteps",
            steps,
        ];
        args.extend(every);
        kill_9_soak(
            algo,
            &base.join(algo),
            &args,
            &["train", "--resume"],
            &every,
            seed,
            30,
        );
    }
    let mut sac = vec![
        "train",
        "sac",
        "--env",
        "Pendulum-v1",
        "--total-timesteps",
        "12000",
        "--set",
        "net_arch=[16,16]",
        "--set",
        "learning_starts=100",
    ];
    sac.extend(every);
    kill_9_soak(
        "sac",
        &base.join("sac"),
        &sac,
        &["train", "--resume"],
        &every,
        14,
        12,
    );
    // Language models: the tiny GPT-2 pretrained on the test corpus, then GRPO on it.
    let (corpus, tok) = corpus_and_tokenizer(&base.join("lm-data"));
    let (corpus, tok) = (corpus.display().to_string(), tok.display().to_string());
    let lm_every = ["--checkpoint-every", "1", "--quiet"];
    let mut pretrain = vec![
        "lm",
        "pretrain",
        "--tokenizer",
        &tok,
        "--data",
        &corpus,
        "--n-layer",
        "1",
        "--n-embd",
        "16",
        "--n-head",
        "2",
        "--n-positions",
        "32",
        "--set",
        "max_steps=2000",
        "--set",
        "batch_size=4",
        "--set",
        "block_size=16",
    ];
    pretrain.extend(lm_every);
    kill_9_soak(
        "lm pretrain",
        &base.join("lm-pretrain"),
        &pretrain,
        &["lm", "pretrain", "--resume"],
        &lm_every,
        16,
        12,
    );
    let model = tiny_lm(&base.join("lm-model")).display().to_string();
    let prompts = base.join("prompts.jsonl");
    let text: String = (0..6)
        .map(|i| {
            format!(
                "{{\"prompt\": \"Q: {i} + 1 = ? Answer:\", \"answer\": \"{}\"}}\n",
                i + 1
            )
        })
        .collect();
    std::fs::write(&prompts, text).unwrap();
    let prompts = prompts.display().to_string();
    let mut grpo = vec![
        "lm",
        "grpo",
        "--model",
        &model,
        "--prompts",
        &prompts,
        "--set",
        "max_steps=1000",
        "--set",
        "prompts_per_step=2",
        "--set",
        "group_size=3",
        "--set",
        "max_new_tokens=4",
    ];
    grpo.extend(lm_every);
    kill_9_soak(
        "lm grpo",
        &base.join("lm-grpo"),
        &grpo,
        &["lm", "grpo", "--resume"],
        &lm_every,
        17,
        12,
    );
    let mut ppo = vec![
        "lm",
        "ppo",
        "--model",
        &model,
        "--prompts",
        &prompts,
        "--set",
        "max_steps=200",
        "--set",
        "prompts_per_step=2",
        "--set",
        "max_new_tokens=4",
    ];
    ppo.extend(lm_every);
    kill_9_soak(
        "lm ppo",
        &base.join("lm-ppo"),
        &ppo,
        &["lm", "ppo", "--resume"],
        &lm_every,
        18,
        12,
    );
    std::fs::remove_dir_all(&base).ok();
}

/// A PPO CartPole run of two updates in `root`, for the failure tests: its directory, its
/// checkpoint's path and bytes.
fn two_update_ppo_run(root: &std::path::Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let out = rein(&[
        "train",
        "ppo",
        "--env",
        "CartPole-v1",
        "--total-timesteps",
        "4096",
        "--max-updates",
        "2",
        "--quiet",
        "--runs-dir",
        root.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = only_run_dir(root);
    let ckpt = run.join("checkpoint.safetensors");
    let before = std::fs::read(&ckpt).unwrap();
    (run, ckpt, before)
}

/// `rein train --resume RUN --max-updates 1 --quiet`, to run as the failure tests need.
fn resume_one_update_command(run: &std::path::Path) -> Command {
    resume_one_update_command_of(std::path::Path::new(env!("CARGO_BIN_EXE_rein")), run)
}

/// [`resume_one_update_command`] running the binary `exe`.
fn resume_one_update_command_of(exe: &std::path::Path, run: &std::path::Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args([
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--max-updates",
        "1",
        "--quiet",
    ]);
    cmd
}

/// `rein train --resume RUN --max-updates 1` succeeds: the run still resumes.
fn resume_one_update(run: &std::path::Path) {
    let out = resume_one_update_command(run).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A run directory that cannot be written (read-only for the user resuming it; as root, which
/// ignores permissions, the resume runs as the user `nobody` over root's files): a clear error
/// naming the file and the reason, no panic, the last checkpoint intact and still resumable.
#[test]
fn a_read_only_run_directory_is_a_clear_error_and_keeps_the_last_checkpoint() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let root = std::env::temp_dir().join(format!("rein-readonly-cli-{}", std::process::id()));
    let (run, ckpt, before) = two_update_ppo_run(&root);
    let set_mode = |dir_mode: u32, file_mode: u32| {
        for e in std::fs::read_dir(&run).unwrap() {
            let p = e.unwrap().path();
            let mode = if p.is_dir() { dir_mode } else { file_mode };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(dir_mode)).unwrap();
    };
    set_mode(0o555, 0o444);
    // SAFETY: geteuid has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if as_root {
        // `nobody` may not reach the build's binary (a checkout under a 0700 directory), so it
        // runs a copy in the test's own directory, which any user can read.
        let exe = root.join("rein");
        std::fs::copy(env!("CARGO_BIN_EXE_rein"), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        // MuJoCo's library beside the copy (the binary's rpath includes $ORIGIN).
        if let Some(dir) = option_env!("MUJOCO_DYNAMIC_LINK_DIR") {
            let lib = std::path::Path::new(dir).join("libmujoco.so.3.17.0");
            let copy = root.join("libmujoco.so.3.17.0");
            std::fs::copy(&lib, &copy).unwrap();
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut cmd = resume_one_update_command_of(&exe, &run);
        cmd.uid(65534).gid(65534);
        cmd
    } else {
        resume_one_update_command(&run)
    };
    let out = cmd.output().unwrap();
    set_mode(0o755, 0o644);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains(run.to_str().unwrap()) && e.contains("Permission denied"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    assert_eq!(
        std::fs::read(&ckpt).unwrap(),
        before,
        "the checkpoint changed"
    );
    assert_eq!(temporaries(&run), Vec::<String>::new());
    resume_one_update(&run);
    std::fs::remove_dir_all(&root).ok();
}

/// A full disk (simulated with a file-size limit, RLIMIT_FSIZE, which binds root too) while
/// writing a checkpoint: a clear error naming the file, the previous checkpoint intact, no
/// temporary left.
#[test]
fn a_full_disk_during_a_checkpoint_is_a_clear_error_and_keeps_the_last_one() {
    use std::os::unix::process::CommandExt;
    let root = std::env::temp_dir().join(format!("rein-diskfull-cli-{}", std::process::id()));
    let (run, ckpt, before) = two_update_ppo_run(&root);
    let limit = before.len() as u64 / 2;
    let mut cmd = resume_one_update_command(&run);
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            // Without this the kernel ends the process (SIGXFSZ) instead of failing the write.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("checkpoint.safetensors") && e.contains("File too large"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    assert_eq!(
        std::fs::read(&ckpt).unwrap(),
        before,
        "the last checkpoint changed"
    );
    assert_eq!(temporaries(&run), Vec::<String>::new());
    // And the run still resumes from it.
    resume_one_update(&run);
    std::fs::remove_dir_all(&root).ok();
}

/// Issue 19's interface: `rein env rollout --env ID --state JSON --actions JSON` replays the
/// first Gymnasium and dm-control episode of a few MuJoCo envs from their recorded states, with
/// every observation, reward, flag and `info` reward term within 1e-9.
#[test]
fn rollout_replays_mujoco_episodes_from_their_states() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rein-envs/tests/fixtures");
    let close = |a: f64, b: f64, what: &str| {
        assert!(
            (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
            "{what}: {a} vs {b}"
        );
    };
    let nums = |j: &Json| -> Vec<f64> {
        match j {
            Json::Array(a) => a.iter().map(|x| x.as_f64().unwrap()).collect(),
            x => vec![x.as_f64().unwrap()],
        }
    };
    for (dir, name, id) in [
        ("mujoco", "Hopper-v5", "Hopper-v5"),
        ("mujoco", "Ant-v5", "Ant-v5"),
        ("dm_control", "walker-walk", "dm_control/walker-walk-v0"),
        ("dm_control", "reacher-easy", "dm_control/reacher-easy-v0"),
    ] {
        let text = std::fs::read_to_string(root.join(dir).join(format!("{name}.jsonl"))).unwrap();
        let ep: Json = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let mut state = serde_json::Map::new();
        for k in ["qpos", "qvel", "act", "time", "qacc_warmstart", "model"] {
            if let Some(v) = ep.get(k) {
                state.insert(k.into(), v.clone());
            }
        }
        let steps = ep["steps"].as_array().unwrap();
        let actions: Vec<&Json> = steps.iter().map(|s| &s["action"]).collect();
        let (state, actions) = (
            Json::Object(state).to_string(),
            serde_json::to_string(&actions).unwrap(),
        );
        let out = rein(&[
            "env",
            "rollout",
            "--env",
            id,
            "--state",
            &state,
            "--actions",
            &actions,
        ]);
        assert!(out.status.success(), "{id}: {}", stderr(&out));
        let lines: Vec<Json> = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), steps.len(), "{id}");
        let keys = rein_mujoco_keys(id);
        for (t, (line, want)) in lines.iter().zip(steps).enumerate() {
            let want_obs: Vec<f64> = match want.get("obs") {
                Some(o) => nums(o),
                None => keys
                    .iter()
                    .flat_map(|k| nums(&want["observation"][*k]))
                    .collect(),
            };
            for (g, w) in nums(&line["obs"]).iter().zip(&want_obs) {
                close(*g, *w, &format!("{id} step {t} obs"));
            }
            close(
                line["reward"].as_f64().unwrap(),
                want["reward"].as_f64().unwrap(),
                id,
            );
            let last = want.get("last").or(want.get("truncated")).unwrap();
            assert_eq!(line["truncated"], *last, "{id} step {t}");
            if let Some(info) = want.get("info").and_then(Json::as_object) {
                for (k, v) in info {
                    close(
                        line["info"][k].as_f64().unwrap(),
                        v.as_f64().unwrap(),
                        &format!("{id} info {k}"),
                    );
                }
            }
        }
    }
}

/// dm-control's observation keys in its order, for the tasks the rollout test replays.
fn rein_mujoco_keys(id: &str) -> Vec<&'static str> {
    match id {
        "dm_control/walker-walk-v0" => vec!["orientations", "height", "velocity"],
        "dm_control/reacher-easy-v0" => vec!["position", "to_target", "velocity"],
        _ => vec![],
    }
}
