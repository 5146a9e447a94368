//! The MuJoCo environments' options, states and errors: v5 keyword options change what they
//! say they change, unknown or mistyped ones are refused by name, states of the wrong shape or
//! beyond MuJoCo's bound are refused, NaN actions are refused, and rendering is a clear error.
#![cfg(feature = "mujoco")]

use rein_core::{Env, Value};
use serde_json::{json, Map, Value as Json};

fn kw(v: Json) -> Map<String, Json> {
    v.as_object().unwrap().clone()
}

fn err(id: &str, options: Json) -> String {
    match rein_envs::make_with(id, &kw(options)) {
        Ok(_) => panic!("{id}: expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn observation_options_change_the_observation_size() {
    let dim = |id: &str, o: Json| {
        rein_envs::make_with(id, &kw(o))
            .unwrap()
            .observation_space()
            .flat_dim()
    };
    assert_eq!(dim("Ant-v5", json!({})), 105);
    assert_eq!(
        dim("Ant-v5", json!({"include_cfrc_ext_in_observation": false})),
        27
    );
    assert_eq!(
        dim(
            "Ant-v5",
            json!({"exclude_current_positions_from_observation": false})
        ),
        107
    );
    assert_eq!(dim("Humanoid-v5", json!({})), 348);
    assert_eq!(
        dim(
            "Humanoid-v5",
            json!({"include_cinert_in_observation": false, "include_cvel_in_observation": false,
                                   "include_qfrc_actuator_in_observation": false, "include_cfrc_ext_in_observation": false})
        ),
        45
    );
    assert_eq!(
        dim(
            "HalfCheetah-v5",
            json!({"exclude_current_positions_from_observation": false})
        ),
        18
    );
    assert_eq!(dim("Swimmer-v5", json!({})), 8);
}

#[test]
fn reward_options_scale_their_terms() {
    let step = |o: Json| {
        let mut env = rein_envs::make_with("Hopper-v5", &kw(o)).unwrap();
        env.reset(Some(0));
        env.set_state(&json!({"qpos": [0, 1.25, 0, 0, 0, 0], "qvel": [0, 0, 0, 0, 0, 0]}))
            .unwrap();
        env.step(&Value::Box([1.0, 0.0, -1.0].into_iter().collect()))
            .unwrap()
    };
    let base = step(json!({}));
    let doubled = step(json!({"ctrl_cost_weight": 0.002, "healthy_reward": 2.0}));
    let ctrl = |s: &rein_core::Step| s.info["reward_ctrl"].as_f64().unwrap();
    assert!((ctrl(&doubled) - 2.0 * ctrl(&base)).abs() < 1e-9);
    assert_eq!(doubled.info["reward_survive"], json!(2.0));
    // A healthy range that excludes the state terminates at once; so does not when told not to.
    let strict = step(json!({"healthy_z_range": [1.3, null]}));
    assert!(strict.terminated);
    assert_eq!(strict.info["reward_survive"], json!(0.0));
    assert!(
        !step(json!({"healthy_z_range": [1.3, null], "terminate_when_unhealthy": false}))
            .terminated
    );
}

#[test]
fn bad_options_are_refused_by_name() {
    let e = err("Ant-v5", json!({"foo": 1}));
    assert!(
        e.contains("unknown option \"foo\"") && e.contains("contact_force_range"),
        "{e}"
    );
    let e = err("Hopper-v5", json!({"healthy_z_range": [2.0, 1.0]}));
    assert!(
        e.contains("healthy_z_range") && e.contains("[low, high]"),
        "{e}"
    );
    let e = err("HalfCheetah-v5", json!({"ctrl_cost_weight": "high"}));
    assert!(
        e.contains("ctrl_cost_weight") && e.contains("a number"),
        "{e}"
    );
    let e = err("Walker2d-v5", json!({"frame_skip": 0}));
    assert!(e.contains("frame_skip"), "{e}");
    let e = err("Ant-v5", json!({"main_body": "no_such_body"}));
    assert!(e.contains("no_such_body"), "{e}");
    let e = err(
        "Reacher-v5",
        json!({"xml_file": "/nonexistent/reacher.xml"}),
    );
    assert!(
        e.contains("/nonexistent/reacher.xml") && e.contains("does not exist"),
        "{e}"
    );
    let e = err("dm_control/cheetah-run-v0", json!({"time_limit": -1}));
    assert!(e.contains("time_limit"), "{e}");
    // Hopper's healthy_state_range is Hopper's alone.
    let e = err("Walker2d-v5", json!({"healthy_state_range": [-1, 1]}));
    assert!(e.contains("healthy_state_range"), "{e}");
}

#[test]
fn bad_states_and_actions_are_errors() {
    let mut env = rein_envs::make("HalfCheetah-v5").unwrap();
    env.reset(Some(0));
    let (z3, z9) = (vec![0.0; 3], vec![0.0; 9]);
    let huge = [1e11, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    for (state, want) in [
        (json!({"qpos": z3, "qvel": z9}), "expected 9 numbers, got 3"),
        (json!({"qpos": z9}), "\"qvel\": missing"),
        (json!({"qpos": huge, "qvel": z9}), "within"),
        (
            json!({"qpos": z9, "qvel": z9, "act": []}),
            "unknown state field \"act\"",
        ),
    ] {
        let e = env.set_state(&state).unwrap_err().to_string();
        assert!(e.contains(want), "{state}: {e}");
    }
    let e = env
        .step(&Value::Box([f32::NAN; 6].into_iter().collect()))
        .unwrap_err();
    assert!(e.to_string().contains("action"), "{e}");
    assert!(env
        .step(&Value::Box([0.0; 5].into_iter().collect()))
        .is_err());
    // Out-of-range actions pass: MuJoCo clamps the controls, the cost uses the raw action.
    let s = env
        .step(&Value::Box([3.0; 6].into_iter().collect()))
        .unwrap();
    let cost = -s.info["reward_ctrl"].as_f64().unwrap();
    assert!((cost - 0.1 * 54.0).abs() < 1e-5, "{cost}");
    let mut dm = rein_envs::make("dm_control/reacher-easy-v0").unwrap();
    dm.reset(Some(0));
    let e = dm
        .set_state(&json!({"qpos": [0, 0], "qvel": [0, 0], "model": {"x": 1}}))
        .unwrap_err();
    assert!(e.to_string().contains("geom_pos.target.xy"), "{e}");
}

#[test]
fn dm_control_tasks_truncate_at_their_time_limit() {
    let mut env = rein_envs::make_with(
        "dm_control/pendulum-swingup-v0",
        &kw(json!({"time_limit": 0.1})),
    )
    .unwrap();
    env.reset(Some(1));
    let a = Value::BoxF64(vec![0.0]);
    // 0.1 s of 0.02 s control steps: the fifth step is the last.
    for t in 0..5 {
        let s = env.step(&a).unwrap();
        assert_eq!(s.truncated, t == 4, "step {t}");
        assert!(!s.terminated);
    }
    assert!(env.step(&a).is_err(), "stepping past the end needs a reset");
}

#[test]
fn rendering_is_a_clear_error() {
    for id in ["HalfCheetah-v5", "dm_control/cheetah-run-v0"] {
        let mut env = rein_envs::make(id).unwrap();
        env.reset(Some(0));
        let e = env.render().unwrap_err().to_string();
        assert!(e.contains("OpenGL"), "{id}: {e}");
    }
}
