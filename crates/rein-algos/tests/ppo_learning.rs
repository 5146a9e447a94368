//! PPO learning tests with fixed seeds.

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
