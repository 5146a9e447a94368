//! Replays every episode recorded from Gymnasium 1.4 (`tests/fixtures/gymnasium`, copied from
//! `shared/fixtures/gymnasium`; format and tolerances in its README) and compares every
//! observation, reward, flag and final state; compares the toy-text transition tables.

use rein_core::wrappers::TimeLimit;
use rein_core::{Env, Space, Value};
use rein_envs::classic::Pendulum;
use rein_envs::toy_text::Blackjack;
use serde_json::{Map, Value as Json};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gymnasium")
        .join(name)
}

fn episodes(file: &str) -> Vec<Json> {
    let text = std::fs::read_to_string(fixture(file)).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Counts of how exactly a file was reproduced.
#[derive(Default, Debug)]
struct Agreement {
    values: usize,
    bit_exact: usize,
    max_rel_err: f64,
}

impl Agreement {
    fn check(&mut self, what: &str, got: f64, want: f64, tol: f64) {
        self.values += 1;
        if got.to_bits() == want.to_bits() || got == want {
            self.bit_exact += 1;
            return;
        }
        let err = (got - want).abs() / (1.0 + want.abs());
        if self.values - self.bit_exact <= 3 {
            eprintln!("not bit exact: {what}: got {got:e}, want {want:e}");
        }
        self.max_rel_err = self.max_rel_err.max(err);
        assert!(
            err <= tol,
            "{what}: got {got:e}, want {want:e} (err {err:e} > tol {tol:e})"
        );
    }
}

fn obs_values(v: &Value) -> Vec<f64> {
    match v {
        Value::Box(b) => b.iter().map(|&x| x as f64).collect(),
        Value::Discrete(i) => vec![*i as f64],
        Value::Tuple(t) => t.iter().flat_map(obs_values).collect(),
        other => panic!("unexpected observation {other}"),
    }
}

fn json_values(j: &Json) -> Vec<f64> {
    match j {
        Json::Array(a) => a.iter().flat_map(json_values).collect(),
        Json::Number(n) => vec![n.as_f64().unwrap()],
        Json::Bool(b) => vec![f64::from(u8::from(*b))],
        other => panic!("unexpected json {other}"),
    }
}

fn action_value(space: &Space, a: &Json) -> Value {
    space.parse_json(a).unwrap()
}

fn replay_classic(file: &str) -> Agreement {
    let mut agree = Agreement::default();
    for ep in episodes(file) {
        let id = ep["env_id"].as_str().unwrap();
        let tag = format!("{file} episode {}", ep["episode"]);
        let mut env = rein_envs::make(id).unwrap();
        env.reset(Some(ep["reset_seed"].as_u64().unwrap()));
        let obs0 = env.set_state(&ep["state"]).unwrap();
        for (g, w) in obs_values(&obs0).iter().zip(json_values(&ep["reset_obs"])) {
            agree.check(&format!("{tag} reset obs"), *g, w as f32 as f64, 1e-5);
        }
        let actions = ep["actions"].as_array().unwrap();
        let n = ep["length"].as_u64().unwrap() as usize;
        assert_eq!(actions.len(), n, "{tag}");
        for (i, a) in actions.iter().enumerate() {
            let step = env.step(&action_value(env.action_space(), a)).unwrap();
            let t = format!("{tag} step {i}");
            let want_obs = json_values(&ep["obs"][i]);
            let got_obs = obs_values(&step.obs);
            assert_eq!(got_obs.len(), want_obs.len(), "{t}");
            for (g, w) in got_obs.iter().zip(&want_obs) {
                // Observations are float32, written as their shortest f32 decimal.
                agree.check(&format!("{t} obs"), *g, *w as f32 as f64, 1e-5);
            }
            agree.check(
                &format!("{t} reward"),
                step.reward,
                ep["rewards"][i].as_f64().unwrap(),
                1e-5,
            );
            assert_eq!(
                step.terminated,
                ep["terminated"][i].as_bool().unwrap(),
                "{t} terminated"
            );
            assert_eq!(
                step.truncated,
                ep["truncated"][i].as_bool().unwrap(),
                "{t} truncated"
            );
        }
        let tol = if id == "Acrobot-v1" || id == "Pendulum-v1" {
            1e-4
        } else {
            1e-6
        };
        let got = json_values(&env.get_state().unwrap());
        for (g, w) in got.iter().zip(json_values(&ep["final_state"])) {
            agree.check(&format!("{tag} final_state"), *g, w, tol);
        }
    }
    eprintln!("{file}: {agree:?}");
    agree
}

#[test]
fn cartpole_matches_gymnasium() {
    let a = replay_classic("CartPole-v1.jsonl");
    assert_eq!(a.bit_exact, a.values, "CartPole should be bit exact: {a:?}");
}

#[test]
fn mountain_car_matches_gymnasium() {
    let a = replay_classic("MountainCar-v0.jsonl");
    assert_eq!(
        a.bit_exact, a.values,
        "MountainCar should be bit exact: {a:?}"
    );
}

#[test]
fn mountain_car_continuous_matches_gymnasium() {
    let a = replay_classic("MountainCarContinuous-v0.jsonl");
    assert_eq!(
        a.bit_exact, a.values,
        "MountainCarContinuous should be bit exact: {a:?}"
    );
}

#[test]
fn pendulum_matches_gymnasium() {
    let a = replay_classic("Pendulum-v1.jsonl");
    assert_eq!(a.bit_exact, a.values, "Pendulum should be bit exact: {a:?}");
}

#[test]
fn pendulum_clips_actions_like_gymnasium() {
    for ep in episodes("Pendulum-v1.jsonl").iter().take(5) {
        let mut env = TimeLimit::new(Pendulum::new(10.0), 200);
        env.reset(Some(0));
        env.set_state(&ep["state"]).unwrap();
        for (a, applied) in ep["actions"]
            .as_array()
            .unwrap()
            .iter()
            .zip(ep["applied_actions"].as_array().unwrap())
        {
            env.step(&action_value(env.action_space(), a)).unwrap();
            assert_eq!(
                env.inner().last_u().unwrap(),
                applied.as_f64().unwrap() as f32
            );
        }
    }
}

#[test]
fn acrobot_matches_gymnasium() {
    let a = replay_classic("Acrobot-v1.jsonl");
    assert_eq!(a.bit_exact, a.values, "Acrobot should be bit exact: {a:?}");
}

fn replay_toy(file: &str, kwargs: Json) {
    for ep in episodes(file) {
        let id = ep["env_id"].as_str().unwrap();
        let tag = format!("{file} episode {}", ep["episode"]);
        let kw: Map<String, Json> = kwargs.as_object().cloned().unwrap();
        let inner = rein_envs::make_discrete(id, &kw).unwrap();
        let limit = ep["max_episode_steps"].as_u64();
        let mut env = TimeLimit::new(inner, limit.unwrap_or(u64::MAX));
        env.reset(Some(ep["reset_seed"].as_u64().unwrap()));
        let obs0 = env.set_state(&ep["state"]).unwrap();
        assert_eq!(obs0, Value::Discrete(ep["state"].as_i64().unwrap()));
        if let Some(u) = ep.get("uniform") {
            let draws: Vec<f64> = u
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            env.inner_mut().push_uniforms(&draws);
        }
        for (i, a) in ep["actions"].as_array().unwrap().iter().enumerate() {
            let t = format!("{tag} step {i}");
            let step = env.step(&Value::Discrete(a.as_i64().unwrap())).unwrap();
            assert_eq!(
                step.obs,
                Value::Discrete(ep["obs"][i].as_i64().unwrap()),
                "{t} obs"
            );
            assert_eq!(
                step.reward,
                ep["rewards"][i].as_f64().unwrap(),
                "{t} reward"
            );
            assert_eq!(
                step.terminated,
                ep["terminated"][i].as_bool().unwrap(),
                "{t} terminated"
            );
            assert_eq!(
                step.truncated,
                ep["truncated"][i].as_bool().unwrap(),
                "{t} truncated"
            );
            assert_eq!(
                step.info["prob"].as_f64(),
                ep["info_prob"][i].as_f64(),
                "{t} prob"
            );
            if let Some(mask) = ep.get("action_mask") {
                assert_eq!(step.info["action_mask"], mask[i], "{t} action_mask");
            }
        }
        assert_eq!(
            env.get_state().unwrap(),
            ep["final_state"],
            "{tag} final_state"
        );
    }
}

#[test]
fn frozen_lake_slippery_matches_gymnasium() {
    replay_toy(
        "FrozenLake-v1_map_name-4x4_is_slippery-True.jsonl",
        serde_json::json!({"map_name": "4x4", "is_slippery": true}),
    );
}

#[test]
fn frozen_lake_8x8_matches_gymnasium() {
    replay_toy(
        "FrozenLake-v1_map_name-8x8_is_slippery-False.jsonl",
        serde_json::json!({"map_name": "8x8", "is_slippery": false}),
    );
}

#[test]
fn taxi_matches_gymnasium() {
    replay_toy("Taxi-v4.jsonl", serde_json::json!({}));
}

#[test]
fn cliff_walking_matches_gymnasium() {
    replay_toy("CliffWalking-v1.jsonl", serde_json::json!({}));
}

#[test]
fn blackjack_matches_gymnasium() {
    for ep in episodes("Blackjack-v1.jsonl") {
        let tag = format!("Blackjack episode {}", ep["episode"]);
        let mut env = Blackjack::new(false, true);
        env.reset(Some(0));
        let obs0 = env.set_state(&ep["state"]).unwrap();
        let reset_obs: Vec<f64> = json_values(&ep["reset_obs"]);
        assert_eq!(obs_values(&obs0), reset_obs, "{tag} reset obs");
        let hand = |j: &Json| -> Vec<u8> {
            j.as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap() as u8)
                .collect()
        };
        let mut prev_player = hand(&ep["state"]["player"]);
        let mut prev_dealer = hand(&ep["state"]["dealer"]);
        for (i, a) in ep["actions"].as_array().unwrap().iter().enumerate() {
            let t = format!("{tag} step {i}");
            let player = hand(&ep["player_hands"][i]);
            let dealer = hand(&ep["dealer_hands"][i]);
            env.push_cards(&player[prev_player.len()..]);
            env.push_cards(&dealer[prev_dealer.len()..]);
            let step = env.step(&Value::Discrete(a.as_i64().unwrap())).unwrap();
            assert_eq!(obs_values(&step.obs), json_values(&ep["obs"][i]), "{t} obs");
            assert_eq!(
                step.reward,
                ep["rewards"][i].as_f64().unwrap(),
                "{t} reward"
            );
            assert_eq!(
                step.terminated,
                ep["terminated"][i].as_bool().unwrap(),
                "{t} terminated"
            );
            assert_eq!(step.truncated, ep["truncated"][i].as_bool().unwrap(), "{t}");
            assert_eq!(env.hands(), (&player[..], &dealer[..]), "{t} hands");
            prev_player = player;
            prev_dealer = dealer;
        }
    }
}

#[test]
fn transition_tables_match_gymnasium() {
    let text = std::fs::read_to_string(fixture("transition_tables.json")).unwrap();
    let tables: Map<String, Json> = serde_json::from_str(&text).unwrap();
    assert_eq!(tables.len(), 7);
    for (name, t) in &tables {
        let id = t["env_id"].as_str().unwrap();
        let kw = t["make_kwargs"].as_object().cloned().unwrap();
        let env = rein_envs::make_discrete(id, &kw).unwrap();
        let p = env.transitions();
        assert_eq!(p.len() as u64, t["nS"].as_u64().unwrap(), "{name}");
        for (s, row) in t["P"].as_array().unwrap().iter().enumerate() {
            let row = row.as_array().unwrap();
            assert_eq!(p[s].len(), row.len(), "{name} s={s}");
            for (a, outcomes) in row.iter().enumerate() {
                let outcomes = outcomes.as_array().unwrap();
                assert_eq!(p[s][a].len(), outcomes.len(), "{name} P[{s}][{a}]");
                for (k, o) in outcomes.iter().enumerate() {
                    let got = p[s][a][k];
                    let ctx = format!("{name} P[{s}][{a}][{k}]: got {got:?}, want {o}");
                    assert!((got.prob - o[0].as_f64().unwrap()).abs() <= 1e-15, "{ctx}");
                    assert_eq!(got.next_state as u64, o[1].as_u64().unwrap(), "{ctx}");
                    assert_eq!(got.reward, o[2].as_f64().unwrap(), "{ctx}");
                    assert_eq!(got.terminated, o[3].as_bool().unwrap(), "{ctx}");
                }
            }
        }
        let isd: Vec<f64> = json_values(&t["initial_state_distrib"]);
        for (g, w) in env.initial_distribution().iter().zip(&isd) {
            assert!((g - w).abs() <= 1e-15, "{name} initial distribution");
        }
    }
}

#[test]
fn spaces_and_specs_match_gymnasium() {
    let text = std::fs::read_to_string(fixture("spaces.json")).unwrap();
    let specs: Map<String, Json> = serde_json::from_str(&text).unwrap();
    for (key, s) in &specs {
        let id = s["env_id"].as_str().unwrap();
        let kw = s["make_kwargs"].as_object().cloned().unwrap();
        let env = rein_envs::make_with(id, &kw).unwrap();
        let reg = rein_envs::spec(id).unwrap();
        assert_eq!(
            reg.max_episode_steps,
            s["max_episode_steps"].as_u64(),
            "{key}"
        );
        assert_eq!(
            reg.reward_threshold,
            s["reward_threshold"].as_f64(),
            "{key}"
        );
        check_space(key, env.observation_space(), &s["observation_space"]);
        check_space(key, env.action_space(), &s["action_space"]);
    }
}

fn check_space(key: &str, got: &Space, want: &Json) {
    match (got, want["type"].as_str().unwrap()) {
        (Space::Discrete { n, start }, "Discrete") => {
            assert_eq!(*n, want["n"].as_u64().unwrap(), "{key}");
            assert_eq!(*start, want["start"].as_i64().unwrap(), "{key}");
        }
        (
            Space::Box {
                shape, low, high, ..
            },
            "Box",
        ) => {
            let ws: Vec<usize> = want["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(shape, &ws, "{key}");
            let num = |j: &Json| match j {
                Json::String(s) if s == "inf" => f64::INFINITY,
                Json::String(s) if s == "-inf" => f64::NEG_INFINITY,
                j => j.as_f64().unwrap() as f32 as f64,
            };
            let wl: Vec<f64> = want["low"].as_array().unwrap().iter().map(num).collect();
            let wh: Vec<f64> = want["high"].as_array().unwrap().iter().map(num).collect();
            assert_eq!(low, &wl, "{key} low");
            assert_eq!(high, &wh, "{key} high");
        }
        (Space::Tuple { spaces }, "Tuple") => {
            let ws = want["spaces"].as_array().unwrap();
            assert_eq!(spaces.len(), ws.len());
            for (g, w) in spaces.iter().zip(ws) {
                check_space(key, g, w);
            }
        }
        (g, w) => panic!("{key}: space {g} is not a {w}"),
    }
}
