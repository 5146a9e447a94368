"""rein.make: every built-in id passes Gymnasium's env checker, replays Gymnasium's reference
episodes exactly through the Python API, and refuses bad input with Gymnasium's errors."""

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rein
from conftest import GYM_FIXTURES

IDS = [s["id"] for s in rein.registry()]

# Warnings the checker gives for the spaces themselves, which are Gymnasium's own (CartPole's
# observation bounds are np.inf in Gymnasium 1.4, Pendulum's torque range is [-2, 2]): the
# reference envs get them too. Any other warning fails.
SPACE_WARNINGS = (
    "A Box observation space minimum value is -infinity",
    "A Box observation space maximum value is infinity",
    "For Box action spaces, we recommend using a symmetric and normalized space",
)


@pytest.mark.parametrize("env_id", IDS)
def test_every_env_passes_the_checker(env_id):
    for make in (lambda: rein.make(env_id), lambda: gym.make(rein.gymnasium_id(env_id)).unwrapped):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(make())
        other = [str(w.message) for w in caught if not any(s in str(w.message) for s in SPACE_WARNINGS)]
        assert other == [], other


SPACES = json.loads((GYM_FIXTURES / "spaces.json").read_text())


@pytest.mark.parametrize("env_id", [i for i in IDS if i in SPACES])
def test_spaces_are_gymnasiums(env_id):
    ref = SPACES[env_id]
    env = rein.make(env_id)
    for name, space in (("observation_space", env.observation_space), ("action_space", env.action_space)):
        r = ref[name]
        assert type(space).__name__ == r["type"], (name, r)
        if r["type"] == "Discrete":
            assert (space.n, space.start) == (r["n"], r.get("start", 0))
        if r["type"] == "Box":
            f = lambda xs: np.array([float(x) for x in xs], np.float32)
            assert list(space.shape) == r["shape"]
            assert np.array_equal(space.low.ravel(), f(r["low"]))
            assert np.array_equal(space.high.ravel(), f(r["high"]))


def _episodes(name):
    with open(GYM_FIXTURES / f"{name}.jsonl") as f:
        for line in f:
            yield json.loads(line)


@pytest.mark.parametrize(
    "name",
    [
        "CartPole-v1",
        "MountainCar-v0",
        "MountainCarContinuous-v0",
        "Pendulum-v1",
        "Acrobot-v1",
        "FrozenLake-v1_map_name-4x4_is_slippery-True",
        "FrozenLake-v1_map_name-8x8_is_slippery-False",
        "Taxi-v4",
        "CliffWalking-v1",
        "Blackjack-v1",
    ],
)
def test_gymnasium_episodes_replay_exactly(name):
    replayed = 0
    for ep in _episodes(name):
        kwargs = dict(ep.get("make_kwargs") or {})
        env = rein.make(ep["env_id"], **kwargs)
        env.reset(seed=ep["reset_seed"])
        env.set_state(ep["state"])
        if "uniform" in ep:
            env.push_uniforms(ep["uniform"])
        if ep["env_id"] == "Blackjack-v1":
            player, dealer = ep["state"]["player"], ep["state"]["dealer"]
        steps = 0
        for i, action in enumerate(ep["actions"]):
            steps += 1
            if ep["env_id"] == "Blackjack-v1":
                new_p, new_d = ep["player_hands"][i], ep["dealer_hands"][i]
                env.push_cards(new_p[len(player) :] + new_d[len(dealer) :])
                player, dealer = new_p, new_d
            if isinstance(env.action_space, gym.spaces.Box):
                action = np.array(action, dtype=np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            want = ep["obs"][i]
            if isinstance(env.observation_space, gym.spaces.Box):
                assert np.array_equal(obs, np.array(want, dtype=np.float32)), (name, ep["episode"], i)
            elif isinstance(obs, tuple):
                assert list(obs) == list(want), (name, ep["episode"], i)
            else:
                assert obs == want, (name, ep["episode"], i)
            assert reward == ep["rewards"][i], (name, ep["episode"], i)
            assert (terminated, truncated) == (ep["terminated"][i], ep["truncated"][i]), (name, ep["episode"], i)
            if "info_prob" in ep:
                assert info["prob"] == ep["info_prob"][i]
            if "action_mask" in ep:
                assert list(info["action_mask"]) == ep["action_mask"][i]
        assert steps == ep["length"] > 0
        replayed += 1
    assert replayed >= 20, replayed


def test_bad_input_names_what_was_expected():
    env = rein.make("CartPole-v1")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"Discrete\(2\)"):
        env.step(2)
    with pytest.raises(ValueError, match=r"Discrete\(2\)"):
        env.step(0.5)
    pend = rein.make("Pendulum-v1")
    pend.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \[1\]"):
        pend.step(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match=r"real numbers"):
        pend.step(np.array(["a"]))
    assert pend.step(np.array([0.5], np.float64))[0].dtype == np.float32
    with pytest.raises(gym.error.Error, match="CartPole-v1"):
        rein.make("CartPole-v9")
    with pytest.raises(ValueError, match="is_slippery"):
        rein.make("FrozenLake-v1", is_slippery="maybe")
    with pytest.raises(ValueError, match="renders"):
        rein.make("Taxi-v4", render_mode="rgb_array")


def test_render_modes_and_state_hooks():
    env = rein.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=1)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape[2] == 3 and frame.shape[0] > 100
    text = rein.make("FrozenLake-v1", render_mode="ansi")
    text.reset(seed=1)
    assert "S" in text.render()
    obs = env.set_state([0.01, 0.0, 0.02, 0.0])
    assert np.array_equal(obs, np.array([0.01, 0.0, 0.02, 0.0], np.float32))
    assert env.get_state() == pytest.approx([0.01, 0.0, 0.02, 0.0])
    # gymnasium.make's env uses Gymnasium's own TimeLimit at the registered 500 steps.
    g = gym.make("rein/CartPole-v1")
    assert g.spec.max_episode_steps == 500
