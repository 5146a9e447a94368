//! DQN learning tests with fixed seeds (small network, short run: a broken algorithm stays
//! near the random policy's ~20).

use rein_algos::dqn::{Dqn, DqnConfig};
use rein_algos::onpolicy::EnvFactory;
use rein_core::schedule::Schedule;
use std::sync::Arc;

/// `extras`: the preset's Double DQN, dueling head, 3-step returns and lr annealing; without
/// them this is SB3's plain DQN.
fn run(extras: bool, seed: u64) -> f64 {
    let preset: DqnConfig = toml::from_str(DqnConfig::preset_toml("CartPole-v1").unwrap()).unwrap();
    let cfg = DqnConfig {
        seed,
        total_timesteps: 30_000,
        net_arch: vec![64, 64],
        double_q: extras,
        dueling: extras,
        n_steps: if extras { 3 } else { 1 },
        learning_rate: if extras {
            preset.learning_rate
        } else {
            Schedule::Constant {
                value: preset.learning_rate.initial(),
            }
        },
        ..preset
    };
    let f: EnvFactory = Arc::new(|_| rein_envs::make("CartPole-v1"));
    let mut agent = Dqn::new(cfg, f.clone()).unwrap();
    agent.train(&mut |_| {}).unwrap();
    agent.evaluate(&f, 10, 1000).unwrap().0
}

#[test]
fn dqn_learns_cartpole() {
    let mean = run(false, 2);
    assert!(mean >= 100.0, "DQN eval return {mean}");
}

#[test]
fn double_dueling_n_step_dqn_learns_cartpole() {
    let mean = run(true, 2);
    assert!(
        mean >= 100.0,
        "Double/dueling/3-step DQN eval return {mean}"
    );
}

#[test]
fn dqn_rejects_continuous_actions() {
    let f: EnvFactory = Arc::new(|_| rein_envs::make("Pendulum-v1"));
    let e = Dqn::new(DqnConfig::default(), f).err().unwrap().to_string();
    assert!(e.contains("Discrete action space"), "{e}");
}

#[test]
fn dqn_resumes_exactly_with_its_replay_buffer() {
    let cfg = DqnConfig {
        total_timesteps: 3000,
        learning_starts: 500,
        train_freq: 64,
        gradient_steps: 16,
        net_arch: vec![16, 16],
        buffer_size: 2000,
        seed: 4,
        ..DqnConfig::default()
    };
    let f: EnvFactory = Arc::new(|_| rein_envs::make("CartPole-v1"));
    let dir = std::env::temp_dir().join(format!("rein-dqn-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut full = Dqn::new(cfg.clone(), f.clone()).unwrap();
    full.train(&mut |_| {}).unwrap();
    full.save_checkpoint(&dir.join("full.safetensors")).unwrap();
    let mut part = Dqn::new(cfg, f.clone()).unwrap();
    for _ in 0..20 {
        part.update().unwrap();
    }
    part.save_checkpoint(&dir.join("part.safetensors")).unwrap();
    drop(part);
    let mut resumed = Dqn::load_checkpoint(&dir.join("part.safetensors"), f).unwrap();
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
