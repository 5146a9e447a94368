//! SAC learning and resume tests on Pendulum-v1 (a random policy scores about -1200).

use rein_algos::onpolicy::EnvFactory;
use rein_algos::sac::{Sac, SacConfig};
use rein_algos::td3::NoiseKind;
use std::sync::Arc;

fn pendulum() -> EnvFactory {
    Arc::new(|_| rein_envs::make("Pendulum-v1"))
}

#[test]
fn sac_learns_pendulum_with_a_learned_temperature() {
    let cfg = SacConfig {
        seed: 0,
        total_timesteps: 6_000,
        learning_starts: 500,
        learning_rate: 1e-3,
        net_arch: vec![64, 64],
        ..SacConfig::default()
    };
    let f = pendulum();
    let mut agent = Sac::new(cfg, f.clone()).unwrap();
    let mut last = None;
    agent.train(&mut |l| last = Some(*l)).unwrap();
    let last = last.unwrap();
    // The temperature moved away from its initial 1.0 towards the entropy target.
    assert!(last.ent_coef < 0.5, "alpha {}", last.ent_coef);
    let mean = agent.evaluate(&f, 10, 1000).unwrap().0;
    assert!(mean >= -400.0, "SAC eval return {mean}");
}

#[test]
fn sac_resumes_exactly_with_noise_and_temperature() {
    let cfg = SacConfig {
        seed: 3,
        total_timesteps: 600,
        learning_starts: 200,
        net_arch: vec![16, 16],
        buffer_size: 1000,
        action_noise: NoiseKind::OrnsteinUhlenbeck,
        action_noise_std: 0.3,
        n_steps: 3,
        ..SacConfig::default()
    };
    let f = pendulum();
    let dir = std::env::temp_dir().join(format!("rein-sac-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut full = Sac::new(cfg.clone(), f.clone()).unwrap();
    full.train(&mut |_| {}).unwrap();
    full.save_checkpoint(&dir.join("full.safetensors")).unwrap();
    let mut part = Sac::new(cfg, f.clone()).unwrap();
    for _ in 0..333 {
        part.update().unwrap();
    }
    part.save_checkpoint(&dir.join("part.safetensors")).unwrap();
    drop(part);
    let mut resumed = Sac::load_checkpoint(&dir.join("part.safetensors"), f).unwrap();
    resumed.train(&mut |_| {}).unwrap();
    resumed
        .save_checkpoint(&dir.join("resumed.safetensors"))
        .unwrap();
    assert_eq!(
        std::fs::read(dir.join("full.safetensors")).unwrap(),
        std::fs::read(dir.join("resumed.safetensors")).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sac_rejects_discrete_actions_and_bad_settings() {
    let f: EnvFactory = Arc::new(|_| rein_envs::make("CartPole-v1"));
    let e = Sac::new(SacConfig::default(), f).err().unwrap().to_string();
    assert!(e.contains("Box action space"), "{e}");
    let bad = SacConfig {
        ent_coef: 0.0,
        ..SacConfig::default()
    };
    let e = Sac::new(bad, pendulum()).err().unwrap().to_string();
    assert!(e.contains("ent_coef"), "{e}");
}
