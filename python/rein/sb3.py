"""`rein.sb3.VecEnv`: rein's vector env as a Stable-Baselines3 `VecEnv` (needs the optional
`stable-baselines3`; `pip install ./python[sb3]`)."""

from __future__ import annotations


def __getattr__(name: str):
    if name == "VecEnv":
        return _vec_env_class()
    raise AttributeError(name)


_CLASS = None


def _vec_env_class():
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    try:
        from stable_baselines3.common.vec_env.base_vec_env import VecEnv as Sb3VecEnv
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("rein.sb3.VecEnv needs stable-baselines3: pip install stable-baselines3") from e
    import numpy as np
    from gymnasium.vector import AutoresetMode

    from .vector import ReinVectorEnv

    class VecEnv(Sb3VecEnv):
        """rein's vector env with SB3's conventions: same-step autoreset, the final
        observation in `infos[i]["terminal_observation"]`, `TimeLimit.truncated` set."""

        def __init__(self, env_id: str, num_envs: int = 1, threads: int = 1, seed: int | None = None, **options):
            self._venv = ReinVectorEnv(env_id, num_envs, threads=threads, autoreset_mode=AutoresetMode.SAME_STEP, **options)
            super().__init__(num_envs, self._venv.single_observation_space, self._venv.single_action_space)
            self._seed = seed
            self._actions = None

        def reset(self):
            obs, _ = self._venv.reset(seed=self._seed)
            self._seed = None
            return obs

        def step_async(self, actions):
            self._actions = actions

        def step_wait(self):
            obs, rewards, terminated, truncated, infos = self._venv.step(self._actions)
            dones = terminated | truncated
            out = [{} for _ in range(self.num_envs)]
            for i in np.flatnonzero(dones):
                out[i]["terminal_observation"] = infos["final_obs"][i]
                out[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            return obs, rewards.astype(np.float32), dones, out

        def seed(self, seed=None):
            self._seed = seed
            return [None if seed is None else seed + i for i in range(self.num_envs)]

        def close(self):
            self._venv.close()

        def get_attr(self, attr_name, indices=None):
            return [getattr(self._venv, attr_name, None) for _ in self._indices(indices)]

        def set_attr(self, attr_name, value, indices=None):
            setattr(self._venv, attr_name, value)

        def env_method(self, method_name, *args, indices=None, **kwargs):
            raise NotImplementedError("rein's envs run in Rust; env_method is not available")

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False for _ in self._indices(indices)]

        def _indices(self, indices):
            if indices is None:
                return range(self.num_envs)
            if isinstance(indices, int):
                return [indices]
            return indices

    _CLASS = VecEnv
    return VecEnv
