//! The environment API: registry, options, wrappers, vector envs, the checker, rendering.

use rein_core::wrappers::{
    NormalizeObservation, NormalizeReward, RecordEpisodeStatistics, RescaleAction, TimeLimit,
};
use rein_core::{check_env, rng_from_seed, AutoresetMode, Env, EnvError, Render, Value, VectorEnv};
use rein_envs::classic::Pendulum;
use serde_json::json;

fn kw(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn unknown_ids_and_options_are_clear_errors() {
    let e = rein_envs::make("CartPole-v0").err().unwrap().to_string();
    assert!(
        e.contains("CartPole-v0") && e.contains("CartPole-v1") && e.contains("Taxi-v4"),
        "{e}"
    );
    let e = rein_envs::make_with("Taxi-v4", &kw(json!({"rainy": true})))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("\"rainy\"") && e.contains("is_rainy"), "{e}");
    let e = rein_envs::make_with("FrozenLake-v1", &kw(json!({"map_name": "5x5"})))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("map_name") && e.contains("4x4"), "{e}");
    let e = rein_envs::make_with("FrozenLake-v1", &kw(json!({"desc": ["SFF", "FG"]})))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("row 1"), "{e}");
    let e = rein_envs::make_with("Blackjack-v1", &kw(json!({"sab": "yes"})))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("sab") && e.contains("true or false"), "{e}");
}

#[test]
fn invalid_actions_and_missing_reset_are_errors_not_panics() {
    let mut env = rein_envs::make("CartPole-v1").unwrap();
    assert_eq!(
        env.step(&Value::Discrete(0)).unwrap_err(),
        EnvError::ResetNeeded
    );
    env.reset(Some(0));
    let e = env.step(&Value::Discrete(2)).unwrap_err().to_string();
    assert!(
        e.contains("invalid action 2") && e.contains("Discrete(2)"),
        "{e}"
    );
    let e = env
        .step(&Value::Box([0.5].into_iter().collect()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[0.5]"), "{e}");
    let mut pend = rein_envs::make("Pendulum-v1").unwrap();
    pend.reset(Some(0));
    assert!(pend.step(&Value::Discrete(1)).is_err());
    // Out-of-bound continuous actions are clipped, as in Gymnasium.
    assert!(pend.step(&Value::Box([7.0].into_iter().collect())).is_ok());
}

#[test]
fn custom_frozen_lake_map_works() {
    let mut env = rein_envs::make_with(
        "FrozenLake-v1",
        &kw(json!({"desc": ["SH", "FG"], "is_slippery": false})),
    )
    .unwrap();
    assert_eq!(env.observation_space().n(), Some(4));
    env.reset(Some(0));
    let s1 = env.step(&Value::Discrete(1)).unwrap(); // down
    assert_eq!(
        (s1.obs.clone(), s1.reward, s1.terminated),
        (Value::Discrete(2), 0.0, false)
    );
    let s2 = env.step(&Value::Discrete(2)).unwrap(); // right -> goal
    assert_eq!(
        (s2.obs, s2.reward, s2.terminated),
        (Value::Discrete(3), 1.0, true)
    );
}

#[test]
fn time_limit_truncates_and_can_coincide_with_termination() {
    let mut env = rein_envs::make("MountainCar-v0").unwrap();
    env.reset(Some(3));
    for i in 1..=200 {
        let s = env.step(&Value::Discrete(1)).unwrap();
        assert_eq!(s.truncated, i == 200, "step {i}");
        assert!(!s.terminated);
    }
    // Six moves reach the goal of the non-slippery 4x4 lake; with a limit of 6 both flags are set.
    let mut lake = rein_envs::make_with(
        "FrozenLake-v1",
        &kw(json!({"is_slippery": false, "max_episode_steps": 6})),
    )
    .unwrap();
    lake.reset(Some(0));
    let mut last = None;
    for a in [1, 1, 2, 2, 1, 2] {
        last = Some(lake.step(&Value::Discrete(a)).unwrap());
    }
    let last = last.unwrap();
    assert!(last.terminated && last.truncated && last.reward == 1.0);
}

#[test]
fn seeding_is_deterministic() {
    for spec in rein_envs::registry() {
        let mut a = rein_envs::make(&spec.id).unwrap();
        let mut b = rein_envs::make(&spec.id).unwrap();
        assert_eq!(a.reset(Some(42)).0, b.reset(Some(42)).0, "{}", spec.id);
        let mut rng = rng_from_seed(1);
        for _ in 0..50 {
            let act = a.action_space().sample(&mut rng);
            let (sa, sb) = (a.step(&act).unwrap(), b.step(&act).unwrap());
            assert_eq!(sa, sb, "{}", spec.id);
            if sa.done() {
                assert_eq!(a.reset(None).0, b.reset(None).0);
            }
        }
    }
}

#[test]
fn every_builtin_env_passes_the_checker() {
    for spec in rein_envs::registry() {
        let mut env = rein_envs::make(&spec.id).unwrap();
        let report = check_env(env.as_mut(), 300).unwrap_or_else(|e| panic!("{}: {e}", spec.id));
        assert!(
            report.warnings.is_empty(),
            "{}: {:?}",
            spec.id,
            report.warnings
        );
    }
}

/// A broken user env: its reset ignores the seed.
struct Unseeded(u64, rein_core::Space, rein_core::Space);
impl Env for Unseeded {
    fn observation_space(&self) -> &rein_core::Space {
        &self.1
    }
    fn action_space(&self) -> &rein_core::Space {
        &self.2
    }
    fn reset(&mut self, _seed: Option<u64>) -> (Value, rein_core::Info) {
        self.0 = (self.0 + 1) % 5;
        (Value::Discrete(self.0 as i64), Default::default())
    }
    fn step(&mut self, _a: &Value) -> Result<rein_core::Step, EnvError> {
        Ok(rein_core::Step {
            obs: Value::Discrete(0),
            reward: 0.0,
            terminated: true,
            truncated: false,
            info: Default::default(),
        })
    }
}

#[test]
fn checker_catches_nondeterministic_reset() {
    let mut env = Unseeded(
        0,
        rein_core::Space::discrete(5),
        rein_core::Space::discrete(2),
    );
    let e = check_env(&mut env, 5).unwrap_err().to_string();
    assert!(e.contains("not deterministic"), "{e}");
}

#[test]
fn rendering() {
    for id in [
        "CartPole-v1",
        "MountainCar-v0",
        "MountainCarContinuous-v0",
        "Pendulum-v1",
        "Acrobot-v1",
    ] {
        let mut env = rein_envs::make(id).unwrap();
        env.reset(Some(0));
        match env.render().unwrap() {
            Render::Rgb(f) => {
                assert_eq!(f.data.len(), f.width * f.height * 3);
                assert!(f.data.iter().any(|&b| b != 255), "{id} frame is blank");
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    for id in [
        "FrozenLake-v1",
        "Taxi-v4",
        "CliffWalking-v1",
        "Blackjack-v1",
    ] {
        let mut env = rein_envs::make(id).unwrap();
        env.reset(Some(0));
        match env.render().unwrap() {
            Render::Text(t) => assert!(!t.is_empty()),
            other => panic!("{id}: {other:?}"),
        }
    }
}

fn rollout(env: &mut VectorEnv, steps: usize) -> (Vec<f32>, Vec<f64>, Vec<bool>) {
    let mut rng = rng_from_seed(9);
    let (mut obs, mut rew, mut done) = (Vec::new(), Vec::new(), Vec::new());
    obs.extend_from_slice(env.reset(Some(100)).unwrap());
    let space = env.single_action_space().clone();
    for _ in 0..steps {
        let actions: Vec<Value> = (0..env.num_envs())
            .map(|_| space.sample(&mut rng))
            .collect();
        let s = env.step(&actions).unwrap();
        obs.extend_from_slice(s.obs);
        rew.extend_from_slice(s.rewards);
        done.extend(s.terminated.iter().zip(s.truncated).map(|(a, b)| *a || *b));
    }
    (obs, rew, done)
}

fn vec_env(id: &str, n: usize, mode: AutoresetMode, threads: usize) -> VectorEnv {
    VectorEnv::new(
        (0..n).map(|_| rein_envs::make(id).unwrap()).collect(),
        mode,
        threads,
    )
    .unwrap()
}

#[test]
fn threaded_vector_env_equals_synchronous() {
    for id in [
        "CartPole-v1",
        "Pendulum-v1",
        "FrozenLake-v1",
        "Blackjack-v1",
    ] {
        for mode in [AutoresetMode::NextStep, AutoresetMode::SameStep] {
            let a = rollout(&mut vec_env(id, 8, mode, 1), 600);
            let b = rollout(&mut vec_env(id, 8, mode, 2), 600);
            let c = rollout(&mut vec_env(id, 7, mode, 3), 600);
            assert!(a == b, "{id} {mode:?}: 1 vs 2 threads differ");
            assert_eq!(
                c.0.len(),
                7 * (601) * rein_envs::make(id).unwrap().observation_space().flat_dim()
            );
        }
    }
}

#[test]
fn vector_env_seeds_env_i_with_seed_plus_i() {
    let mut v = vec_env("CartPole-v1", 4, AutoresetMode::NextStep, 2);
    let obs = v.reset(Some(100)).unwrap().to_vec();
    for i in 0..4 {
        let mut e = rein_envs::make("CartPole-v1").unwrap();
        let o = e.reset(Some(100 + i as u64)).0;
        assert_eq!(&obs[i * 4..(i + 1) * 4], o.as_box().unwrap());
    }
}

#[test]
fn next_step_autoreset_semantics() {
    // CartPole pushed right always falls within a few dozen steps.
    let mut v = vec_env("CartPole-v1", 2, AutoresetMode::NextStep, 1);
    v.reset(Some(0)).unwrap();
    let push = vec![Value::Discrete(1); 2];
    let mut ended_at = None;
    for t in 0..200 {
        let s = v.step(&push).unwrap();
        if s.terminated[0] {
            ended_at = Some(t);
            break;
        }
    }
    assert!(ended_at.is_some());
    // The next step resets env 0: reward 0, flags false, a fresh start observation.
    let s = v.step(&push).unwrap();
    assert_eq!(s.rewards[0], 0.0);
    assert!(!s.terminated[0] && !s.truncated[0]);
    assert!(s.obs[..4].iter().all(|x| x.abs() <= 0.05));
}

#[test]
fn same_step_autoreset_keeps_final_obs() {
    let mut v = vec_env("CartPole-v1", 2, AutoresetMode::SameStep, 2);
    v.reset(Some(0)).unwrap();
    let push = vec![Value::Discrete(1); 2];
    for _ in 0..200 {
        let s = v.step(&push).unwrap();
        if s.terminated[1] {
            let reset_obs = s.obs[4..8].to_vec();
            assert!(s.infos[1].contains_key("final_obs"));
            let fin = v.final_obs(1).unwrap();
            assert!(
                fin[2].abs() > 0.2,
                "final obs should have the fallen pole: {fin:?}"
            );
            assert!(reset_obs.iter().all(|x| x.abs() <= 0.05));
            return;
        }
        assert!(v.final_obs(1).is_none());
    }
    panic!("episode did not end");
}

#[test]
fn vector_env_reports_bad_actions() {
    let mut v = vec_env("CartPole-v1", 3, AutoresetMode::NextStep, 2);
    assert!(matches!(
        v.step(&[Value::Discrete(0)]),
        Err(EnvError::ResetNeeded)
    ));
    v.reset(Some(0)).unwrap();
    assert!(v.step(&[Value::Discrete(0)]).is_err());
    let e = v
        .step(&[Value::Discrete(0), Value::Discrete(0), Value::Discrete(5)])
        .unwrap_err();
    assert!(e.to_string().contains("invalid action 5"));
}

#[test]
fn normalisation_wrappers_save_and_restore() {
    let make = || {
        NormalizeReward::new(
            NormalizeObservation::new(rein_envs::make("Pendulum-v1").unwrap()).unwrap(),
            0.99,
        )
    };
    let mut a = make();
    a.reset(Some(0));
    let mut rng = rng_from_seed(0);
    let act_space = a.action_space().clone();
    for _ in 0..300 {
        a.step(&act_space.sample(&mut rng)).unwrap();
    }
    let state = a.state();
    let mut b = make();
    b.load_state(state.clone());
    assert_eq!(b.state(), state);
    let json = serde_json::to_string(&state).unwrap();
    let back: rein_core::wrappers::NormalizeRewardState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
    // Normalised observations stay in the clip range.
    let s = a.step(&act_space.sample(&mut rng)).unwrap();
    assert!(s.obs.as_box().unwrap().iter().all(|x| x.abs() <= 10.0));
}

#[test]
fn rescale_action_maps_unit_box_to_env_bounds() {
    let mut env = RescaleAction::new(TimeLimit::new(Pendulum::new(10.0), 200), -1.0, 1.0).unwrap();
    env.reset(Some(0));
    env.step(&Value::Box([1.0].into_iter().collect())).unwrap();
    assert!(env.step(&Value::Box([1.5].into_iter().collect())).is_err());
}

#[test]
fn episode_statistics_are_recorded() {
    let mut env = RecordEpisodeStatistics::new(rein_envs::make("CartPole-v1").unwrap());
    env.reset(Some(0));
    let mut total = 0.0;
    loop {
        let s = env.step(&Value::Discrete(0)).unwrap();
        total += s.reward;
        if s.done() {
            assert_eq!(s.info["episode"]["r"].as_f64(), Some(total));
            break;
        }
    }
    assert_eq!(env.recent.len(), 1);
    assert_eq!(env.recent[0].r, total);
}

#[test]
fn snapshots_restore_exactly() {
    for spec in rein_envs::registry() {
        let mut env = rein_envs::make(&spec.id).unwrap();
        env.reset(Some(3));
        let mut rng = rng_from_seed(4);
        let space = env.action_space().clone();
        for _ in 0..20 {
            let s = env.step(&space.sample(&mut rng)).unwrap();
            if s.done() {
                env.reset(None);
            }
        }
        let snap = env.snapshot().unwrap();
        let actions: Vec<Value> = (0..300).map(|_| space.sample(&mut rng)).collect();
        let run = |env: &mut Box<dyn Env>| -> Vec<String> {
            actions
                .iter()
                .map(|a| {
                    let s = env.step(a).unwrap();
                    let mut out =
                        format!("{} {} {} {}", s.obs, s.reward, s.terminated, s.truncated);
                    if s.done() {
                        out += &env.reset(None).0.to_string();
                    }
                    out
                })
                .collect()
        };
        let a = run(&mut env);
        let mut fresh = rein_envs::make(&spec.id).unwrap();
        fresh
            .restore(&serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap())
            .unwrap();
        assert_eq!(a, run(&mut fresh), "{}", spec.id);
    }
}

#[test]
fn vector_env_snapshot_restores_exactly() {
    let mut a = vec_env("Pendulum-v1", 4, AutoresetMode::SameStep, 2);
    a.reset(Some(1)).unwrap();
    let mut rng = rng_from_seed(2);
    let space = a.single_action_space().clone();
    for _ in 0..250 {
        let acts: Vec<Value> = (0..4).map(|_| space.sample(&mut rng)).collect();
        a.step(&acts).unwrap();
    }
    let snap = a.snapshot().unwrap();
    let mut b = vec_env("Pendulum-v1", 4, AutoresetMode::SameStep, 1);
    b.restore(&snap).unwrap();
    assert_eq!(a.obs(), b.obs());
    for _ in 0..300 {
        let acts: Vec<Value> = (0..4).map(|_| space.sample(&mut rng)).collect();
        let sa = a.step(&acts).unwrap();
        let (oa, ra) = (sa.obs.to_vec(), sa.rewards.to_vec());
        let sb = b.step(&acts).unwrap();
        assert_eq!(oa, sb.obs);
        assert_eq!(ra, sb.rewards);
    }
}
