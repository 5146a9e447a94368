//! TD3 and DDPG learning tests on Pendulum-v1 (small networks, 10k steps; a random policy
//! scores about -1200).

use rein_algos::onpolicy::EnvFactory;
use rein_algos::td3::{Td3, Td3Config};
use std::sync::Arc;

fn run(base: Td3Config) -> f64 {
    let cfg = Td3Config {
        seed: 0,
        total_timesteps: 10_000,
        learning_starts: 1000,
        gamma: 0.98,
        net_arch: vec![64, 64],
        ..base
    };
    let f: EnvFactory = Arc::new(|_| rein_envs::make("Pendulum-v1"));
    let mut agent = Td3::new(cfg, f.clone()).unwrap();
    agent.train(&mut |_| {}).unwrap();
    agent.evaluate(&f, 10, 1000).unwrap().0
}

#[test]
fn td3_learns_pendulum() {
    let mean = run(Td3Config::default());
    assert!(mean >= -300.0, "TD3 eval return {mean}");
}

#[test]
fn ddpg_learns_pendulum() {
    let mean = run(Td3Config::ddpg());
    assert!(mean >= -300.0, "DDPG eval return {mean}");
}

#[test]
fn td3_rejects_discrete_actions() {
    let f: EnvFactory = Arc::new(|_| rein_envs::make("CartPole-v1"));
    let e = Td3::new(Td3Config::default(), f).err().unwrap().to_string();
    assert!(e.contains("Box action space"), "{e}");
}

#[test]
fn td3_resumes_exactly_with_its_replay_buffer() {
    let cfg = Td3Config {
        seed: 3,
        total_timesteps: 600,
        learning_starts: 200,
        net_arch: vec![16, 16],
        buffer_size: 1000,
        ..Td3Config::default()
    };
    let f: EnvFactory = Arc::new(|_| rein_envs::make("Pendulum-v1"));
    let dir = std::env::temp_dir().join(format!("rein-td3-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut full = Td3::new(cfg.clone(), f.clone()).unwrap();
    full.train(&mut |_| {}).unwrap();
    full.save_checkpoint(&dir.join("full.safetensors")).unwrap();
    let mut part = Td3::new(cfg, f.clone()).unwrap();
    for _ in 0..333 {
        part.update().unwrap();
    }
    part.save_checkpoint(&dir.join("part.safetensors")).unwrap();
    drop(part);
    let mut resumed = Td3::load_checkpoint(&dir.join("part.safetensors"), f).unwrap();
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
