//! PPO learning tests with fixed seeds.

use rein_algos::onpolicy::OnPolicyAgent;
use rein_algos::ppo::{EnvFactory, Ppo, PpoConfig};
use std::sync::Arc;

fn factory(id: &'static str) -> EnvFactory {
    Arc::new(move |_| rein_envs::make(id))
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
    let mut ppo = Ppo::new(cfg, factory("CartPole-v1")).unwrap();
    let mut last = Default::default();
    ppo.train(&mut |l| {
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
        last = *l;
    })
    .unwrap();
    let (mean, _) = ppo
        .evaluate(&factory("CartPole-v1"), 10, true, 1000)
        .unwrap();
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
            anneal_lr: true,
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
        full.train(&mut |l| full_logs.push(l.row()[..13].to_vec()))
            .unwrap();

        let dir = std::env::temp_dir().join(format!("rein-resume-{}-{id}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ckpt = dir.join("checkpoint.safetensors");
        let mut part = Ppo::new(cfg, factory(id)).unwrap();
        let mut logs = Vec::new();
        for _ in 0..3 {
            logs.push(part.train_update().unwrap().row()[..13].to_vec());
        }
        part.save_checkpoint(&ckpt).unwrap();
        drop(part);
        let mut resumed = Ppo::load_checkpoint(&ckpt, factory(id)).unwrap();
        resumed
            .train(&mut |l| logs.push(l.row()[..13].to_vec()))
            .unwrap();
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
    use rein_algos::a2c::{A2c, A2cConfig};
    let base: A2cConfig = toml::from_str(A2cConfig::preset_toml("CartPole-v1").unwrap()).unwrap();
    let cfg = A2cConfig {
        total_timesteps: 160_000,
        seed: 0,
        ..base
    };
    let mut agent = A2c::new(cfg, factory("CartPole-v1")).unwrap();
    agent.train(&mut |_| {}).unwrap();
    let (mean, _) = agent
        .evaluate(&factory("CartPole-v1"), 10, true, 1000)
        .unwrap();
    assert!(mean >= 300.0, "A2C eval return {mean}");
}

#[test]
fn reinforce_with_baseline_learns_cartpole_quickly() {
    use rein_algos::reinforce::{Reinforce, ReinforceConfig};
    let base: ReinforceConfig =
        toml::from_str(ReinforceConfig::preset_toml("CartPole-v1").unwrap()).unwrap();
    let cfg = ReinforceConfig {
        total_timesteps: 100_000,
        seed: 0,
        ..base
    };
    let mut agent = Reinforce::new(cfg, factory("CartPole-v1")).unwrap();
    agent.train(&mut |_| {}).unwrap();
    let (mean, _) = agent
        .evaluate(&factory("CartPole-v1"), 10, true, 1000)
        .unwrap();
    assert!(mean >= 150.0, "REINFORCE eval return {mean}");
}

#[test]
fn a2c_and_reinforce_resume_exactly() {
    use rein_algos::a2c::{A2c, A2cConfig};

    use rein_algos::reinforce::{Reinforce, ReinforceConfig};
    let dir = std::env::temp_dir().join(format!("rein-resume2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("c.safetensors");
    type Build = Box<dyn Fn() -> Box<dyn OnPolicyAgent>>;
    type Load = Box<dyn Fn(&std::path::Path) -> Box<dyn OnPolicyAgent>>;
    let cases: Vec<(&str, Build, Load)> = vec![
        (
            "a2c",
            Box::new(|| {
                Box::new(
                    A2c::new(
                        A2cConfig {
                            total_timesteps: 2000,
                            num_envs: 4,
                            seed: 2,
                            ..Default::default()
                        },
                        factory("CartPole-v1"),
                    )
                    .unwrap(),
                )
            }),
            Box::new(|p| Box::new(A2c::load_checkpoint(p, factory("CartPole-v1")).unwrap())),
        ),
        (
            "reinforce",
            Box::new(|| {
                Box::new(
                    Reinforce::new(
                        ReinforceConfig {
                            total_timesteps: 3000,
                            num_envs: 4,
                            batch_episodes: 4,
                            seed: 2,
                            ..Default::default()
                        },
                        factory("CartPole-v1"),
                    )
                    .unwrap(),
                )
            }),
            Box::new(|p| Box::new(Reinforce::load_checkpoint(p, factory("CartPole-v1")).unwrap())),
        ),
    ];
    for (name, build, load) in cases {
        let mut full = build();
        while full.global_step() < full.total_timesteps() {
            full.train_update().unwrap();
        }
        full.save_checkpoint(&dir.join("full.safetensors")).unwrap();
        let mut part = build();
        for _ in 0..5 {
            part.train_update().unwrap();
        }
        part.save_checkpoint(&ckpt).unwrap();
        drop(part);
        let mut resumed = load(&ckpt);
        while resumed.global_step() < resumed.total_timesteps() {
            resumed.train_update().unwrap();
        }
        resumed.save_checkpoint(&ckpt).unwrap();
        assert_eq!(
            std::fs::read(&ckpt).unwrap(),
            std::fs::read(dir.join("full.safetensors")).unwrap(),
            "{name}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ppo_with_a_shared_trunk_learns_cartpole() {
    let cfg = PpoConfig {
        total_timesteps: 30_000,
        seed: 1,
        shared_trunk: true,
        ..preset("CartPole-v1")
    };
    let mut ppo = Ppo::new(cfg, factory("CartPole-v1")).unwrap();
    assert!(ppo.policy.trunk.is_some());
    ppo.train(&mut |_| {}).unwrap();
    let (mean, _) = ppo
        .evaluate(&factory("CartPole-v1"), 10, true, 1000)
        .unwrap();
    eprintln!("shared trunk eval {mean}");
    assert!(mean >= 150.0, "eval return {mean}");
}
