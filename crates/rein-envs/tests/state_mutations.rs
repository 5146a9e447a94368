//! Seeded mutations of what `rein env rollout --state` and `--actions` read: every built-in
//! env's own state JSON (as `get_state` writes it) and a valid action list, mutated thousands
//! of times. Each mutation is refused with an error or restores a state the env then steps
//! from; none panics, none hangs, none allocates `ALLOCATION_BOUND` bytes.

use rein_core::fuzz::{peak_allocation, CountingAllocator, ALLOCATION_BOUND};
use rein_core::{Env, Space, Value};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Steps `env` with `actions`, stopping at the first error or episode end; never panics.
fn step_all(env: &mut dyn Env, actions: &[Value]) {
    for a in actions {
        match env.step(a) {
            Ok(s) if s.terminated || s.truncated => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

/// Parses a mutated `--actions` text as the CLI does: a JSON array, each element through
/// `Space::parse_json`.
fn parse_actions(space: &Space, text: &[u8]) -> Option<Vec<Value>> {
    let json: serde_json::Value = serde_json::from_slice(text).ok()?;
    json.as_array()?
        .iter()
        .map(|j| space.parse_json(j).ok())
        .collect()
}

#[test]
fn env_states_and_action_lists_survive_mutations() {
    let mut rng = rein_core::rng_from_seed(0x57a7e);
    let per_env = 1500;
    for spec in rein_envs::registry() {
        let id = spec.id.as_str();
        let mut env = rein_envs::make(id).unwrap();
        env.reset(Some(3));
        let space = env.action_space().clone();
        // A few steps in, so that the state is not the reset one.
        let valid_actions: Vec<Value> = (0..6).map(|_| space.sample(&mut rng)).collect();
        step_all(env.as_mut(), &valid_actions[..2]);
        let state = env.get_state().unwrap().to_string();
        let actions_text = serde_json::to_string(
            &valid_actions
                .iter()
                .map(|a| serde_json::from_str::<serde_json::Value>(&a.to_json_string()).unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(
            parse_actions(&space, actions_text.as_bytes()).is_some(),
            "{id}: the valid action list must parse: {actions_text}"
        );
        let mut restored = 0;
        for k in 0..per_env {
            let state_bytes = rein_core::fuzz::mutate(state.as_bytes(), &mut rng);
            let action_bytes = rein_core::fuzz::mutate(actions_text.as_bytes(), &mut rng);
            let t = Instant::now();
            let (r, grew) = peak_allocation(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    env.reset(Some(k));
                    let mut ok = false;
                    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&state_bytes) {
                        if env.set_state(&json).is_ok() {
                            ok = true;
                            step_all(env.as_mut(), &valid_actions);
                        }
                    }
                    // A mutated action list, stepped from a fresh reset.
                    env.reset(Some(k));
                    if let Some(actions) = parse_actions(&space, &action_bytes) {
                        step_all(env.as_mut(), &actions);
                    }
                    ok
                }))
            });
            assert!(
                grew < ALLOCATION_BOUND,
                "{id}: mutation {k} allocated {grew} bytes"
            );
            match r {
                Ok(ok) => restored += u32::from(ok),
                Err(_) => panic!(
                    "{id}: mutation {k} panicked: state {:?}, actions {:?}",
                    String::from_utf8_lossy(&state_bytes),
                    String::from_utf8_lossy(&action_bytes)
                ),
            }
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "{id}: mutation {k} took {:?}",
                t.elapsed()
            );
        }
        assert!(
            restored < per_env as u32,
            "{id}: every mutated state was accepted; the checks see nothing"
        );
    }
}
