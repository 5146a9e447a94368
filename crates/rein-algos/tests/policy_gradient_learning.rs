//! Learning tests of PPO, A2C and REINFORCE with fixed seeds (their exact resume is in
//! `exact_resume.rs`).

use rein_algos::agent::{Agent, Algo};
use rein_algos::onpolicy::EnvFactory;
use rein_algos::ppo::{Ppo, PpoConfig, PpoLog};
use rein_train::Trainer;
use std::sync::Arc;

fn factory(id: &'static str) -> EnvFactory {
    Arc::new(move |_| rein_envs::make(id))
}

/// Trains `ppo` to its total, calling `on_log` after every update.
fn train(ppo: &mut Ppo, on_log: &mut dyn FnMut(&PpoLog)) {
    while ppo.global_step() < ppo.config.total_timesteps {
        on_log(&ppo.update().unwrap());
    }
}

/// Trains any agent to its total and returns its mean deterministic return over 10 episodes.
fn train_and_evaluate(algo: Algo, config: impl serde::Serialize) -> f64 {
    let settings = serde_json::to_value(config).unwrap();
    let mut agent = Agent::new(algo, settings, factory("CartPole-v1")).unwrap();
    while !agent.progress().finished() {
        agent.update().unwrap();
    }
    agent.evaluate_returns(10, true, 1000).unwrap().0
}

fn preset(id: &str) -> PpoConfig {
    toml::from_str(PpoConfig::preset_toml(id).unwrap()).unwrap()
}

#[test]
fn ppo_learns_cartpole_quickly() {
    let cfg = PpoConfig {
        total_timesteps: 30_000,
        seed: 1,
        ..preset("CartPole-v1")
    };
    let mut ppo = Ppo::new(cfg.clone(), factory("CartPole-v1")).unwrap();
    train(&mut ppo, &mut |l| {
        eprintln!(
            "{} ret {:.1} kl {:.4} clip {:.3} ev {:.3} ent {:.3} sps {:.0}",
            l.global_step,
            l.ep_return_mean,
            l.approx_kl,
            l.clip_fraction,
            l.explained_variance,
            l.entropy,
            l.sps
        );
    });
    let mut env = rein_envs::make("CartPole-v1").unwrap();
    let (mean, _) = ppo
        .policy
        .evaluate(env.as_mut(), None, 10, true, 1000)
        .unwrap();
    assert_eq!(
        mean,
        train_and_evaluate(Algo::Ppo, cfg),
        "Agent trains the same PPO"
    );
    eprintln!("eval {mean}");
    assert!(mean >= 200.0, "eval return {mean}");
}

#[test]
fn interrupted_and_resumed_run_equals_uninterrupted_run() {
    for id in ["CartPole-v1", "Pendulum-v1"] {
        let cfg = PpoConfig {
            total_timesteps: 2048,
            num_envs: 4,
            n_steps: 64,
            batch_size: 64,
            n_epochs: 2,
            learning_rate: rein_core::schedule::Schedule::LinearToZero { start: 3e-4 },
            normalize_obs: true,
            normalize_reward: true,
            env_threads: 2,
            seed: 5,
            // The discrete case also covers a shared trunk in checkpoints.
            shared_trunk: id == "CartPole-v1",
            ..PpoConfig::default()
        };
        let mut full = Ppo::new(cfg.clone(), factory(id)).unwrap();
        let mut full_logs = Vec::new();
        train(&mut full, &mut |l| full_logs.push(l.row()[..13].to_vec()));

        let dir = std::env::temp_dir().join(format!("rein-resume-{}-{id}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ckpt = dir.join("checkpoint.safetensors");
        let mut part = Ppo::new(cfg, factory(id)).unwrap();
        let mut logs = Vec::new();
        for _ in 0..3 {
            logs.push(part.update().unwrap().row()[..13].to_vec());
        }
        part.save_checkpoint(&ckpt).unwrap();
        drop(part);
        let mut resumed = Ppo::load_checkpoint(&ckpt, factory(id)).unwrap();
        train(&mut resumed, &mut |l| logs.push(l.row()[..13].to_vec()));
        assert_eq!(
            resumed.policy.actor.params, full.policy.actor.params,
            "{id}"
        );
        assert_eq!(
            resumed.policy.critic.params, full.policy.critic.params,
            "{id}"
        );
        assert_eq!(resumed.policy.log_std, full.policy.log_std, "{id}");
        // Metrics (all but SPS) are bit-identical too; NaN-safe comparison through bits.
        let bits = |v: &Vec<Vec<f64>>| -> Vec<Vec<u64>> {
            v.iter()
                .map(|r| r.iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        assert_eq!(bits(&logs), bits(&full_logs), "{id}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a2c_learns_cartpole_quickly() {
    use rein_algos::a2c::A2cConfig;
    let base: A2cConfig = toml::from_str(A2cConfig::preset_toml("CartPole-v1").unwrap()).unwrap();
    let cfg = A2cConfig {
        total_timesteps: 160_000,
        seed: 0,
        ..base
    };
    let mean = train_and_evaluate(Algo::A2c, cfg);
    assert!(mean >= 300.0, "A2C eval return {mean}");
}

#[test]
fn reinforce_with_baseline_learns_cartpole_quickly() {
    use rein_algos::reinforce::ReinforceConfig;
    let base: ReinforceConfig =
        toml::from_str(ReinforceConfig::preset_toml("CartPole-v1").unwrap()).unwrap();
    let cfg = ReinforceConfig {
        total_timesteps: 100_000,
        seed: 0,
        ..base
    };
    let mean = train_and_evaluate(Algo::Reinforce, cfg);
    assert!(mean >= 150.0, "REINFORCE eval return {mean}");
}

#[test]
fn ppo_with_a_shared_trunk_learns_cartpole() {
    let cfg = PpoConfig {
        total_timesteps: 30_000,
        seed: 1,
        shared_trunk: true,
        ..preset("CartPole-v1")
    };
    assert!(Ppo::new(cfg.clone(), factory("CartPole-v1"))
        .unwrap()
        .policy
        .trunk
        .is_some());
    let mean = train_and_evaluate(Algo::Ppo, cfg);
    eprintln!("shared trunk eval {mean}");
    assert!(mean >= 150.0, "eval return {mean}");
}
