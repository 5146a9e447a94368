//! An environment checker, like `gymnasium.utils.env_checker.check_env`: run it on your own
//! [`Env`] implementation before training on it.

use crate::env::Env;
use crate::error::EnvError;
use crate::rng::rng_from_seed;

/// What [`check_env`] found: hard failures are returned as `Err`, soft issues listed here.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    /// Things that are allowed but probably unintended.
    pub warnings: Vec<String>,
    /// Number of steps that were taken.
    pub steps_checked: usize,
}

fn fail(msg: String) -> EnvError {
    EnvError::Invalid(format!("env check failed: {msg}"))
}

/// Checks an environment against the API contract:
/// - the spaces are well formed;
/// - `reset` returns an observation in the observation space, and `reset(Some(seed))` is
///   deterministic (same seed, same observation, same trajectory for the same actions);
/// - `step` with sampled actions returns observations in the space and finite rewards;
/// - actions outside a discrete action space are rejected with an error, not a panic;
/// - `render` either works or reports that it is unsupported.
pub fn check_env(env: &mut dyn Env, steps: usize) -> Result<CheckReport, EnvError> {
    let mut report = CheckReport::default();
    env.observation_space()
        .validate()
        .map_err(|e| fail(format!("observation space: {e}")))?;
    env.action_space()
        .validate()
        .map_err(|e| fail(format!("action space: {e}")))?;
    let obs_space = env.observation_space().clone();
    let act_space = env.action_space().clone();

    let run = |env: &mut dyn Env, seed: u64| -> Result<Vec<(String, f64, bool, bool)>, EnvError> {
        let (obs, _) = env.reset(Some(seed));
        if !obs_space.contains(&obs) {
            return Err(fail(format!(
                "reset observation {obs} is not in the observation space {obs_space}"
            )));
        }
        let mut rng = rng_from_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
        let mut trace = vec![(obs.to_string(), 0.0, false, false)];
        for _ in 0..steps {
            let action = act_space.sample(&mut rng);
            let step = env
                .step(&action)
                .map_err(|e| fail(format!("step({action}) with a sampled action failed: {e}")))?;
            if !obs_space.contains(&step.obs) {
                return Err(fail(format!(
                    "step observation {} is not in the observation space {obs_space}",
                    step.obs
                )));
            }
            if !step.reward.is_finite() {
                return Err(fail(format!(
                    "step returned a non-finite reward {}",
                    step.reward
                )));
            }
            trace.push((
                step.obs.to_string(),
                step.reward,
                step.terminated,
                step.truncated,
            ));
            if step.done() {
                let (obs, _) = env.reset(None);
                if !obs_space.contains(&obs) {
                    return Err(fail(format!(
                        "reset observation {obs} is not in the observation space"
                    )));
                }
                trace.push((obs.to_string(), 0.0, false, false));
            }
        }
        Ok(trace)
    };

    let a = run(env, 123)?;
    let b = run(env, 123)?;
    if a != b {
        return Err(fail(
            "two runs from reset(seed=123) with the same actions differ: the environment is \
             not deterministic given its seed (draw all randomness from a generator that reset \
             reseeds)"
                .into(),
        ));
    }
    let c = run(env, 124)?;
    if a == c && steps > 0 {
        report
            .warnings
            .push("reset(seed=123) and reset(seed=124) gave identical trajectories".into());
    }
    report.steps_checked = 3 * steps;

    if let crate::space::Space::Discrete { n, start } = act_space {
        env.reset(Some(0));
        let bad = crate::space::Value::Discrete(start + n as i64);
        if env.step(&bad).is_ok() {
            report.warnings.push(format!(
                "step accepted the action {bad}, which is outside the action space {act_space}"
            ));
        }
    }
    match env.render() {
        Ok(_) | Err(EnvError::Unsupported { .. }) => {}
        Err(e) => return Err(fail(format!("render failed: {e}"))),
    }
    Ok(report)
}
