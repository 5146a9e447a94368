"""rein.train drives rein's run loop (run directory, checkpoints, metrics, evaluation),
calls back per metrics row, stops and resumes exactly; rein.load serves the policy."""

import json
from pathlib import Path

import numpy as np
import pytest

import rein


def test_train_callback_resume_and_policy(runs_dir):
    rows = []
    run = rein.train(
        "ppo", env="CartPole-v1", seed=3, total_timesteps=2048, runs_dir=runs_dir,
        callback=rows.append, n_steps=256, num_envs=2,
    )
    d = Path(run.run_dir)
    assert run.ended == "finished"
    assert (d / "checkpoint.safetensors").exists() and (d / "metrics.csv").exists()
    assert (d / "learning_curve.png").exists() and (d / "eval.json").exists()
    assert len(rows) == len(run.rows) == 4 and rows[0]["global_step"] == 512
    assert run.evaluation == json.loads((d / "eval.json").read_text())
    assert "n_steps = 256" in (d / "config.toml").read_text()

    # Stopping from the callback leaves a checkpoint; resume ends where the full run ends.
    part = rein.train(
        "ppo", env="CartPole-v1", seed=3, total_timesteps=2048, runs_dir=runs_dir / "part",
        callback=lambda row: row["global_step"] < 1024, n_steps=256, num_envs=2,
    )
    assert part.ended == "stopped" and len(part.rows) == 2
    done = rein.train(resume=part.run_dir)
    assert done.ended == "finished" and len(done.rows) == 4
    read = lambda r: (Path(r) / "checkpoint.safetensors").read_bytes()
    assert read(done.run_dir) == read(run.run_dir)

    policy = rein.load(run.run_dir)
    env = rein.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    action, state = policy.predict(obs, deterministic=True)
    assert state is None and action in (0, 1)
    batch, _ = policy.predict(np.stack([obs, obs, obs]), deterministic=True)
    assert batch.shape == (3,) and batch.dtype == np.int64 and set(batch) == {action}
    mean, std = policy.evaluate(n_episodes=3)
    assert mean > 0 and std >= 0


def test_off_policy_continuous_policy_predicts_in_the_box(runs_dir):
    run = rein.train(
        "td3", env="Pendulum-v1", seed=1, total_timesteps=300, runs_dir=runs_dir,
        learning_starts=100, net_arch=[16, 16],
    )
    policy = rein.load(run.run_dir)
    obs = np.zeros((4, 3), np.float32)
    actions, _ = policy.predict(obs)
    assert actions.shape == (4, 1) and actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 2.0)


def test_bad_settings_name_the_key(runs_dir):
    with pytest.raises(ValueError, match="n_stepz"):
        rein.train("ppo", env="CartPole-v1", runs_dir=runs_dir, n_stepz=3)
    with pytest.raises(ValueError, match="learning_rate"):
        rein.train("ppo", env="CartPole-v1", runs_dir=runs_dir, learning_rate="fast")
    with pytest.raises(ValueError, match="unknown algorithm"):
        rein.train("ppp", env="CartPole-v1", runs_dir=runs_dir)
    with pytest.raises(ValueError, match="CartPole-v9"):
        rein.train("ppo", env="CartPole-v9", runs_dir=runs_dir)


def test_a_raising_callback_stops_with_a_checkpoint_and_reraises(runs_dir):
    def boom(row):
        raise RuntimeError("my logger failed")

    with pytest.raises(RuntimeError, match="my logger failed"):
        rein.train("a2c", env="CartPole-v1", total_timesteps=2000, runs_dir=runs_dir, callback=boom)
    (run,) = list(Path(runs_dir).iterdir())
    assert (run / "checkpoint.safetensors").exists()
    assert rein.train(resume=run).ended == "finished"


def test_sb3_vec_env_trains_ppo_to_475():
    sb3 = pytest.importorskip("stable_baselines3")
    env = rein.sb3.VecEnv("CartPole-v1", num_envs=8, seed=0)
    model = sb3.PPO("MlpPolicy", env, n_steps=256, batch_size=256, n_epochs=10, learning_rate=1e-3, seed=0, verbose=0)
    model.learn(100_000)
    policy_env = rein.make("CartPole-v1")
    returns = []
    for k in range(10):
        obs, _ = policy_env.reset(seed=100 + k)
        done, total = False, 0.0
        while not done:
            a, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = policy_env.step(int(a))
            total += r
            done = term or trunc
        returns.append(total)
    assert np.mean(returns) >= 475, returns


def test_ctrl_c_stops_with_a_checkpoint_and_resume_continues(runs_dir):
    import signal

    def interrupt(row):
        if row["global_step"] >= 1024:
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C in the terminal

    # Python installs its KeyboardInterrupt handler only when SIGINT is not ignored at start-up,
    # and a shell ignores SIGINT in the jobs it starts in the background (`pytest ... &`).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt, match="resume="):
            rein.train("ppo", env="CartPole-v1", seed=5, total_timesteps=4096, runs_dir=runs_dir,
                       callback=interrupt, n_steps=256, num_envs=2)
    finally:
        signal.signal(signal.SIGINT, previous)
    (run,) = list(Path(runs_dir).iterdir())
    assert (run / "checkpoint.safetensors").exists()
    done = rein.train(resume=run)
    assert done.ended == "finished" and done.rows[-1]["global_step"] == 4096


def test_tabular_agents_train_and_act_greedily(runs_dir):
    rows = []
    run = rein.train("qlearning", env="Taxi-v4", seed=0, episodes=3000, runs_dir=runs_dir, callback=rows.append)
    d = Path(run.run_dir)
    assert (d / "q_table.json").exists() and (d / "learning_curve.png").exists() and (d / "metrics.csv").exists()
    assert rows and rows[-1]["episode"] == 3000 and len(run.rows) == len(rows)
    assert run.evaluation["success_rate"] == 1.0
    policy = rein.load(run.run_dir)
    mean, _ = policy.evaluate(n_episodes=20)
    assert mean > 5.0
    actions, _ = policy.predict(np.array([0, 1, 2]))
    assert actions.shape == (3,)
    bj = rein.train("sarsa", env="Blackjack-v1", episodes=200, runs_dir=runs_dir)
    assert rein.load(bj.run_dir).predict((14, 10, 0))[0] in (0, 1)
    with pytest.raises(ValueError, match="episodes"):
        rein.train("qlearning", env="Taxi-v4", total_timesteps=10, runs_dir=runs_dir)
    with pytest.raises(ValueError, match="Discrete observations"):
        rein.train("qlearning", env="CartPole-v1", runs_dir=runs_dir)
