//! Replays every episode recorded from Gymnasium 1.4's MuJoCo v5 environments and from
//! dm-control 1.0.50's suite, both on MuJoCo 3.17.0 (`tests/fixtures/mujoco` and
//! `tests/fixtures/dm_control`, copied from `shared/fixtures`; formats and tolerances in their
//! READMEs): from each recorded reset state, every action is stepped through the registry's
//! environment and every observation, reward, flag and `info` reward term must agree within
//! 1e-9 (relative for Gymnasium, absolute for dm-control).
#![cfg(feature = "mujoco")]

use rein_core::{Env, Value};
use serde_json::{Map, Value as Json};
use std::path::PathBuf;

fn episodes(dir: &str, name: &str) -> Vec<Json> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(format!("{name}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn numbers(v: &Json) -> Vec<f64> {
    match v {
        Json::Array(a) => a.iter().flat_map(numbers).collect(),
        Json::Number(n) => vec![n.as_f64().unwrap()],
        Json::Bool(b) => vec![if *b { 1.0 } else { 0.0 }],
        other => panic!("not a number: {other}"),
    }
}

fn obs_values(v: &Value) -> Vec<f64> {
    match v {
        Value::BoxF64(b) => b.clone(),
        other => panic!("MuJoCo observations are float64 boxes, got {other}"),
    }
}

/// The largest error seen, for the report line.
#[derive(Default)]
struct Worst(f64);

impl Worst {
    fn check(&mut self, what: &str, got: f64, want: f64, relative: bool) {
        let err = (got - want).abs() / if relative { 1.0 + want.abs() } else { 1.0 };
        assert!(
            err <= 1e-9,
            "{what}: got {got:e}, want {want:e} (error {err:e} > 1e-9)"
        );
        self.0 = self.0.max(err);
    }
    fn vec(&mut self, what: &str, got: &[f64], want: &[f64], relative: bool) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            self.check(&format!("{what}[{i}]"), *g, *w, relative);
        }
    }
}

const GYM: &[&str] = &[
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v5",
    "Reacher-v5",
    "Pusher-v5",
    "Swimmer-v5",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "Ant-v5",
    "Humanoid-v5",
    "HumanoidStandup-v5",
];

#[test]
fn gymnasium_v5_episodes_replay_within_1e_9() {
    for id in GYM {
        let mut worst = Worst::default();
        let mut steps = 0;
        for (e, ep) in episodes("mujoco", id).iter().enumerate() {
            let mut env = rein_envs::make(id).unwrap();
            env.reset(Some(0));
            let state = serde_json::json!({"qpos": ep["qpos"], "qvel": ep["qvel"]});
            let obs = env.set_state(&state).unwrap();
            worst.vec(
                &format!("{id} episode {e} reset obs"),
                &obs_values(&obs),
                &numbers(&ep["reset_obs"]),
                true,
            );
            for (t, s) in ep["steps"].as_array().unwrap().iter().enumerate() {
                let action: Vec<f32> = numbers(&s["action"]).iter().map(|&a| a as f32).collect();
                let step = env.step(&Value::Box(action.into_iter().collect())).unwrap();
                let at = format!("{id} episode {e} step {t}");
                worst.vec(
                    &format!("{at} obs"),
                    &obs_values(&step.obs),
                    &numbers(&s["obs"]),
                    true,
                );
                worst.check(
                    &format!("{at} reward"),
                    step.reward,
                    s["reward"].as_f64().unwrap(),
                    true,
                );
                assert_eq!(
                    step.terminated,
                    s["terminated"].as_bool().unwrap(),
                    "{at} terminated"
                );
                assert_eq!(
                    step.truncated,
                    s["truncated"].as_bool().unwrap(),
                    "{at} truncated"
                );
                let info: &Map<String, Json> = s["info"].as_object().unwrap();
                for (k, want) in info {
                    let got = step
                        .info
                        .get(k)
                        .unwrap_or_else(|| panic!("{at}: info has no {k:?}"));
                    worst.vec(
                        &format!("{at} info {k}"),
                        &numbers(got),
                        &numbers(want),
                        true,
                    );
                }
                steps += 1;
            }
        }
        eprintln!("{id}: {steps} steps, largest relative error {:e}", worst.0);
    }
}

const DM: &[&str] = &[
    "cartpole-balance",
    "cartpole-swingup",
    "pendulum-swingup",
    "acrobot-swingup",
    "cheetah-run",
    "walker-stand",
    "walker-walk",
    "walker-run",
    "hopper-stand",
    "hopper-hop",
    "reacher-easy",
    "reacher-hard",
    "finger-spin",
    "ball_in_cup-catch",
    "point_mass-easy",
];

#[test]
fn dm_control_episodes_replay_within_1e_9() {
    let summary: Json = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/dm_control/summary.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for task in DM {
        let id = format!("dm_control/{task}-v0");
        // dm-control's key order is rein's (the summary's JSON object is read sorted), with the
        // summary's sizes.
        let spec = rein_mujoco::dm_control::DM_IDS
            .iter()
            .find(|t| t.id == id)
            .unwrap();
        let sizes = summary["tasks"][task]["observation_keys"]
            .as_object()
            .unwrap();
        assert_eq!(
            sizes.len(),
            spec.observation_keys.len(),
            "{id}: observation keys"
        );
        for (k, n) in spec.observation_keys {
            assert_eq!(sizes[*k].as_u64(), Some(*n as u64), "{id}: size of {k}");
        }
        let keys: Vec<&str> = spec.observation_keys.iter().map(|k| k.0).collect();
        let flat = |o: &Json| -> Vec<f64> { keys.iter().flat_map(|k| numbers(&o[*k])).collect() };
        let mut worst = Worst::default();
        let mut steps = 0;
        for (e, ep) in episodes("dm_control", task).iter().enumerate() {
            let mut env = rein_envs::make(&id).unwrap();
            env.reset(Some(0));
            let mut state = serde_json::json!({
                "qpos": ep["qpos"], "qvel": ep["qvel"], "act": ep["act"], "time": ep["time"],
                "qacc_warmstart": ep["qacc_warmstart"],
            });
            if let Some(m) = ep.get("model") {
                state["model"] = m.clone();
            }
            let obs = env.set_state(&state).unwrap();
            worst.vec(
                &format!("{id} episode {e} reset obs"),
                &obs_values(&obs),
                &flat(&ep["reset_observation"]),
                false,
            );
            for (t, s) in ep["steps"].as_array().unwrap().iter().enumerate() {
                let step = env.step(&Value::BoxF64(numbers(&s["action"]))).unwrap();
                let at = format!("{id} episode {e} step {t}");
                worst.vec(
                    &format!("{at} obs"),
                    &obs_values(&step.obs),
                    &flat(&s["observation"]),
                    false,
                );
                worst.check(
                    &format!("{at} reward"),
                    step.reward,
                    s["reward"].as_f64().unwrap(),
                    false,
                );
                assert_eq!(step.truncated, s["last"].as_bool().unwrap(), "{at} last");
                assert!(!step.terminated, "{at}: suite tasks never terminate");
                steps += 1;
            }
        }
        eprintln!("{id}: {steps} steps, largest absolute error {:e}", worst.0);
    }
}
