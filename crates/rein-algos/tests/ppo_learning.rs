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
