"""rein's threaded vector env as a `gymnasium.vector.VectorEnv` (`rein.make_vec`): the envs
step in Rust without the GIL, on `threads` threads, writing into numpy buffers."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from . import _rein
from .envs import _spec
from .spaces import flat_dim, space_from_json, unflatten_batch, unflatten_one


def _mode(mode) -> AutoresetMode:
    if isinstance(mode, AutoresetMode):
        return mode
    for m in AutoresetMode:
        if str(mode).lower() in (m.value.lower(), m.name.lower()):
            return m
    raise ValueError(f"autoreset_mode must be NEXT_STEP or SAME_STEP, got {mode!r}")


class ReinVectorEnv(VectorEnv):
    """`num_envs` copies of a rein env, as Gymnasium 1.x's `SyncVectorEnv` over them would
    behave: the same autoreset modes (NEXT_STEP, SAME_STEP with `final_obs`/`final_info`),
    infos with `_key` masks, `reset(seed=s)` seeding env i with `s + i`, and copies of the
    outputs unless `copy=False` (then the observations are a view of the buffer the next
    step overwrites)."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        threads: int = 1,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        copy: bool = True,
        **options: Any,
    ):
        for prefix in ("rein/", "rein-"):
            if env_id.startswith(prefix):
                env_id = env_id[len(prefix) :]
        _spec(env_id)
        mode = _mode(autoreset_mode)
        if mode == AutoresetMode.DISABLED:
            raise ValueError("autoreset_mode DISABLED is not supported; use NEXT_STEP or SAME_STEP")
        self._venv = _rein.RustVecEnv(env_id, options, num_envs, threads, mode == AutoresetMode.SAME_STEP)
        obs_json, act_json = self._venv.spaces_json()
        self.env_id = env_id
        self.num_envs = num_envs
        self.copy = copy
        self.single_observation_space = space_from_json(obs_json)
        self.single_action_space = space_from_json(act_json)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {"autoreset_mode": mode, "render_modes": []}
        self.render_mode = None
        self._mode = mode
        self._flat = np.zeros((num_envs, flat_dim(self.single_observation_space)), np.float32)
        self._rewards = np.zeros(num_envs, np.float64)
        self._terminated = np.zeros(num_envs, np.bool_)
        self._truncated = np.zeros(num_envs, np.bool_)
        self._venv.set_buffers(self._flat, self._rewards, self._terminated, self._truncated)
        self._discrete = isinstance(self.single_action_space, spaces.Discrete)
        self._box_obs = isinstance(self.single_observation_space, spaces.Box)
        self._obs_view = self._flat.reshape((num_envs, *self.single_observation_space.shape)) if self._box_obs else None

    def _obs(self):
        if self._box_obs:
            return self._obs_view.copy() if self.copy else self._obs_view
        return unflatten_batch(self.single_observation_space, self._flat, self.copy)

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        """Resets every env; `seed` (an int) seeds env i with `seed + i`."""
        if isinstance(seed, (list, tuple)):
            if any(s != seed[0] + i for i, s in enumerate(seed)) or len(seed) != self.num_envs:
                raise ValueError("a list of seeds must be consecutive: [s, s + 1, ...] for the envs")
            seed = seed[0]
        if options:
            raise ValueError(f"reset options are not supported (got {sorted(options)})")
        super().reset(seed=seed)
        infos: dict = {}
        for i, info in enumerate(self._venv.reset(seed)):
            infos = self._add_info(infos, info, i)
        return self._obs(), infos

    def _actions(self, actions):
        space = self.single_action_space
        a = np.asarray(actions)
        n = self.num_envs
        if self._discrete:
            if a.shape != (n,) or a.dtype.kind not in "iu":
                raise ValueError(
                    f"actions must be {n} integers (shape ({n},)) for the action space "
                    f"{self.action_space}, got shape {a.shape} of {a.dtype}"
                )
            return np.ascontiguousarray(a, dtype=np.int64), True
        if isinstance(space, spaces.Box):
            if a.shape != (n, *space.shape) or a.dtype.kind not in "fiu":
                raise ValueError(
                    f"actions must be real numbers of shape {(n, *space.shape)} for the action "
                    f"space {self.action_space}, got shape {a.shape} of {a.dtype}"
                )
            return np.ascontiguousarray(a.reshape(n, -1), dtype=np.float32), False
        raise ValueError(f"vector steps of {space} actions are not supported")

    def step(self, actions):
        """One step of every env: `(obs, rewards, terminated, truncated, infos)`."""
        if (
            self._discrete
            and type(actions) is np.ndarray
            and actions.dtype == np.int64
            and actions.shape == (self.num_envs,)
            and actions.flags.c_contiguous
        ):
            env_infos, finals = self._venv.step_discrete(actions)  # the fast path
        else:
            a, discrete = self._actions(actions)
            try:
                env_infos, finals = self._venv.step_discrete(a) if discrete else self._venv.step_box(a)
            except ValueError as e:
                raise ValueError(f"{e} (the vector action space is {self.action_space})") from None

        infos: dict = {}
        if self._mode == AutoresetMode.SAME_STEP and finals:
            final_obs = {i: unflatten_one(self.single_observation_space, f) for i, f in finals}
            by_env = dict(env_infos)
            for i in range(self.num_envs):
                info = by_env.get(i, {})
                if i in final_obs:
                    reset_info = info.pop("reset_info", {})
                    info.pop("final_obs", None)
                    infos = self._add_info(infos, {"final_obs": final_obs[i], "final_info": info}, i)
                    info = reset_info
                infos = self._add_info(infos, info, i)
        else:
            for i, info in env_infos:
                infos = self._add_info(infos, info, i)
        return (
            self._obs(),
            np.copy(self._rewards),
            np.copy(self._terminated),
            np.copy(self._truncated),
            infos,
        )

    def close_extras(self, **kwargs):
        """Stops the worker threads."""
        self._venv = None


def make_vec(
    env_id: str,
    num_envs: int = 1,
    threads: int = 1,
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    copy: bool = True,
    **options: Any,
) -> ReinVectorEnv:
    """`num_envs` copies of rein's `env_id` stepped on `threads` threads, as a Gymnasium
    vector env (see `ReinVectorEnv`)."""
    return ReinVectorEnv(env_id, num_envs, threads=threads, autoreset_mode=autoreset_mode, copy=copy, **options)
