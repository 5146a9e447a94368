"""The MuJoCo robots and DeepMind Control Suite tasks through Python: reference episodes of
Gymnasium 1.4 and dm-control 1.0.50 replay through `rein.make` (from their recorded states)
within 1e-9, registration under Gymnasium ids, vector envs, and the rendering error."""

import json

import gymnasium as gym
import numpy as np
import pytest

import rein
from conftest import DM_CONTROL_FIXTURES, MUJOCO_FIXTURES


def _first_episode(path):
    with open(path) as f:
        return json.loads(f.readline())


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Hopper-v5", "Ant-v5", "Humanoid-v5"])
def test_gymnasium_mujoco_episode_replays(env_id):
    ep = _first_episode(MUJOCO_FIXTURES / f"{env_id}.jsonl")
    env = rein.make(env_id)
    env.reset(seed=0)
    obs = env.set_state({"qpos": ep["qpos"], "qvel": ep["qvel"]})
    assert obs.dtype == np.float64
    np.testing.assert_allclose(obs, ep["reset_obs"], rtol=1e-9, atol=1e-12)
    for step in ep["steps"]:
        obs, reward, term, trunc, info = env.step(np.asarray(step["action"], np.float32))
        np.testing.assert_allclose(obs, step["obs"], rtol=1e-9, atol=1e-12)
        assert reward == pytest.approx(step["reward"], rel=1e-9, abs=1e-12)
        assert (term, trunc) == (step["terminated"], step["truncated"])
        for k, v in step["info"].items():
            assert info[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k


def test_dm_control_episode_replays_and_registers():
    ep = _first_episode(DM_CONTROL_FIXTURES / "cheetah-run.jsonl")
    env = gym.make(rein.gymnasium_id("dm_control/cheetah-run-v0"))
    assert env.spec.id == "rein-dm_control/cheetah-run-v0"
    env.reset(seed=0)
    state = {k: ep[k] for k in ("qpos", "qvel", "act", "time", "qacc_warmstart")}
    obs = env.unwrapped.set_state(state)
    flat = lambda o: np.concatenate([np.ravel(o[k]) for k in ("position", "velocity")])
    np.testing.assert_allclose(obs, flat(ep["reset_observation"]), atol=1e-9)
    for step in ep["steps"]:
        obs, reward, term, trunc, _ = env.step(np.asarray(step["action"]))
        np.testing.assert_allclose(obs, flat(step["observation"]), atol=1e-9)
        assert reward == pytest.approx(step["reward"], abs=1e-9)
        assert not term and trunc == step["last"]


def test_mujoco_vector_env_steps_and_rendering_is_a_clear_error():
    venv = rein.make_vec("Hopper-v5", 4, threads=2)
    obs, _ = venv.reset(seed=1)
    assert obs.shape == (4, 11)
    for _ in range(50):
        obs, reward, term, trunc, info = venv.step(venv.action_space.sample())
    assert np.isfinite(obs).all() and reward.shape == (4,)
    venv.close()
    assert rein.make("HalfCheetah-v5").metadata["render_modes"] == []
    with pytest.raises(ValueError, match="OpenGL"):
        rein.make("HalfCheetah-v5", render_mode="rgb_array")
