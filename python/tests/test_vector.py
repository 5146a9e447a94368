"""rein.make_vec behaves step for step as gymnasium.vector.SyncVectorEnv over the same envs
(rein.make), in both autoreset modes, with infos, final observations and seeding."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import rein


def same(a, b, where):
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), (where, sorted(a), sorted(b))
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert b.dtype == object and a.shape == b.shape, where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, (where, a.dtype, b.dtype, a.shape, b.shape)
        assert np.array_equal(a, b), (where, a, b)
    else:
        assert type(a) is type(b) and a == b, (where, a, b)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize(
    "env_id,options",
    [
        ("CartPole-v1", {}),
        ("Pendulum-v1", {"max_episode_steps": 30}),
        ("FrozenLake-v1", {}),
        ("Taxi-v4", {"max_episode_steps": 25}),
        ("Blackjack-v1", {}),
        ("MountainCarContinuous-v0", {"max_episode_steps": 40}),
    ],
)
@pytest.mark.parametrize("threads", [1, 3])
def test_vector_env_matches_sync_vector_env(env_id, options, mode, threads):
    n = 5
    ours = rein.make_vec(env_id, n, threads=threads, autoreset_mode=mode, **options)
    ref = SyncVectorEnv([lambda: rein.make(env_id, **options) for _ in range(n)], autoreset_mode=mode)
    assert ours.metadata["autoreset_mode"] == mode
    assert ours.observation_space == ref.observation_space
    assert ours.action_space == ref.action_space
    same(ours.reset(seed=7), ref.reset(seed=7), "reset")
    ref.action_space.seed(3)
    ends = 0
    for t in range(300):
        actions = ref.action_space.sample()
        a, b = ours.step(actions), ref.step(actions)
        same(a, b, f"step {t}")
        ends += int(np.sum(b[2] | b[3]))
    assert ends > 0
    # A reset in the middle re-seeds as SyncVectorEnv does.
    same(ours.reset(seed=11), ref.reset(seed=11), "second reset")
    ours.close()


def test_vector_env_refuses_bad_actions():
    v = rein.make_vec("CartPole-v1", 3)
    v.reset(seed=0)
    with pytest.raises(ValueError, match=r"MultiDiscrete\(\[2 2 2\]\)"):
        v.step(np.array([0, 1]))
    with pytest.raises(ValueError, match="integers"):
        v.step(np.array([0.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"action 2 of env 2 is not in the action space Discrete\(2\)"):
        v.step(np.array([0, 1, 2]))
    p = rein.make_vec("Pendulum-v1", 2)
    p.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 1\)"):
        p.step(np.zeros((2, 2), np.float32))
    with pytest.raises(gym.error.Error):
        rein.make_vec("Nope-v0", 2)


def test_copy_false_returns_the_buffer_the_next_step_fills():
    v = rein.make_vec("CartPole-v1", 4, copy=False)
    o1, _ = v.reset(seed=0)
    o2 = v.step(np.zeros(4, np.int64))[0]
    assert np.shares_memory(o1, o2)
    w = rein.make_vec("CartPole-v1", 4)
    p1, _ = w.reset(seed=0)
    p2 = w.step(np.zeros(4, np.int64))[0]
    assert not np.shares_memory(p1, p2) and not np.array_equal(p1, p2)
