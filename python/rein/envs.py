"""rein's built-in environments as `gymnasium.Env` subclasses (`rein.make`), registered with
Gymnasium as `rein/<id>`."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym

from . import _rein
from .spaces import space_from_json

# Gymnasium 1.4's render_fps of each built-in env.
_RENDER_FPS = {
    "CartPole-v1": 50,
    "MountainCar-v0": 30,
    "MountainCarContinuous-v0": 30,
    "Pendulum-v1": 30,
    "Acrobot-v1": 15,
}


def registry() -> list[dict]:
    """Every built-in id with its registration data (`id`, `max_episode_steps`,
    `reward_threshold`, `kwargs`)."""
    return json.loads(_rein.registry_json())


def _spec(env_id: str) -> dict:
    """The registration data of `env_id`; `gymnasium.error.NameNotFound` naming every id when
    rein has no such environment."""
    specs = registry()
    for spec in specs:
        if spec["id"] == env_id:
            return spec
    ids = ", ".join(s["id"] for s in specs)
    raise gym.error.NameNotFound(f"rein has no environment {env_id!r}; its environments are: {ids}")


class ReinEnv(gym.Env):
    """One of rein's environments (Gymnasium-exact dynamics, compiled) as a `gymnasium.Env`.

    Observations are numpy float32 arrays for Box spaces and ints for Discrete ones; actions
    are checked against the action space (`ValueError` naming it). `get_state`/`set_state`
    are `rein env rollout --state`'s hooks; `push_uniforms` and `push_cards` replay recorded
    randomness of the slippery toy-text envs and Blackjack.
    """

    def __init__(self, env_id: str, render_mode: str | None = None, **options: Any):
        self._registration = _spec(env_id)
        self._env = _rein.RustEnv(env_id, options)
        self.env_id = env_id
        self.observation_space = space_from_json(self._env.observation_space_json())
        self.action_space = space_from_json(self._env.action_space_json())
        text = self._env.renders_text()
        cannot_render = self._env.render_error()
        self.metadata = {
            # The MuJoCo envs declare no render mode (rein does not link OpenGL).
            "render_modes": [] if cannot_render else ["ansi"] if text else ["rgb_array"],
            "render_fps": 4 if text else _RENDER_FPS.get(env_id, 30),
        }
        if render_mode is not None and cannot_render:
            raise ValueError(cannot_render)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"{env_id} renders {self.metadata['render_modes'][0]!r}, not {render_mode!r}"
            )
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Resets the env; `seed` seeds rein's generator (and `np_random`, as Gymnasium)."""
        super().reset(seed=seed)
        if options:
            raise ValueError(
                f"{self.env_id}: reset options are not supported (got {sorted(options)})"
            )
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        return self._env.reset(seed)

    def step(self, action):
        """One step: `(obs, reward, terminated, truncated, info)`."""
        return self._env.step(action)

    def render(self):
        """An `(H, W, 3)` uint8 frame (`rgb_array`) or a string (`ansi`); None without a
        render mode, as Gymnasium."""
        if self.render_mode is None:
            gym.logger.warn(
                f"{self.env_id}: render() without a render_mode; pass render_mode="
                f"{self.metadata['render_modes'][0]!r} to rein.make"
            )
            return None
        return self._env.render()

    def get_state(self):
        """The state `rein env rollout --state` takes (e.g. CartPole's 4 floats)."""
        return json.loads(self._env.get_state())

    def set_state(self, state) -> Any:
        """Sets the state (as `get_state` gives it); returns the observation."""
        from ._json import default

        return self._env.set_state(json.dumps(state, default=default))

    def _edit_snapshot(self, key: str, values: list) -> None:
        snap = json.loads(self._env.snapshot())
        node = snap
        while key not in node:
            if "env" not in node:
                raise ValueError(f"{self.env_id} has no {key!r} replay queue")
            node = node["env"]
        node[key] = list(node[key] or []) + list(values)
        self._env.restore(json.dumps(snap))

    def push_uniforms(self, draws) -> None:
        """Queues uniform draws in [0, 1) for the next slippery steps (FrozenLake,
        CliffWalking), replacing the env's generator for them: replays Gymnasium's draws."""
        self._edit_snapshot("forced_uniforms", [float(x) for x in draws])

    def push_cards(self, cards) -> None:
        """Queues the next cards Blackjack draws (1-10)."""
        self._edit_snapshot("forced_cards", [int(c) for c in cards])


def gymnasium_id(rein_id: str) -> str:
    """The id rein's `rein_id` is registered under with Gymnasium: `rein/<id>`, or for the
    namespaced DeepMind Control Suite ids `rein-dm_control/<task>` (a Gymnasium id has at most
    one namespace)."""
    if "/" in rein_id:
        return f"rein-{rein_id}"
    return f"rein/{rein_id}"


def _registered(rein_id: str, render_mode: str | None = None, **options: Any) -> ReinEnv:
    """Entry point of `gymnasium.make("rein/<id>")`: Gymnasium's own TimeLimit applies the
    registered limit, so rein's is off here."""
    options.setdefault("max_episode_steps", 0)
    return ReinEnv(rein_id, render_mode=render_mode, **options)


def register_all() -> None:
    """Registers every built-in id with Gymnasium as `rein/<id>` (`rein-dm_control/<task>` for
    the suite tasks), once."""
    for spec in registry():
        name = gymnasium_id(spec["id"])
        if name in gym.registry:
            continue
        gym.register(
            id=name,
            entry_point="rein.envs:_registered",
            kwargs={"rein_id": spec["id"]},
            max_episode_steps=spec["max_episode_steps"],
            reward_threshold=spec["reward_threshold"],
        )


def make(env_id: str, **options: Any) -> ReinEnv:
    """rein's `env_id` as a `gymnasium.Env`, with its registered time limit and options
    (Gymnasium's make kwargs, e.g. `map_name="8x8"`, `render_mode="rgb_array"`,
    `max_episode_steps`). A `rein/` or `rein-` prefix (as registered) is accepted."""
    for prefix in ("rein/", "rein-"):
        if env_id.startswith(prefix):
            env_id = env_id[len(prefix) :]
    render_mode = options.pop("render_mode", None)
    env = ReinEnv(env_id, render_mode=render_mode, **options)
    spec = env._registration
    env.spec = gym.envs.registration.EnvSpec(
        id=gymnasium_id(env_id),
        entry_point="rein.envs:_registered",
        reward_threshold=spec["reward_threshold"],
        max_episode_steps=options.get("max_episode_steps", spec["max_episode_steps"]) or None,
        kwargs={"rein_id": env_id, **options},
    )
    return env


__all__ = ["ReinEnv", "gymnasium_id", "make", "register_all", "registry"]
