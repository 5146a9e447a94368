"""`rein.train` and `rein.load`: rein's deep agents trained through the same run loop as
`rein train` (run directory, checkpoints, metrics.csv, learning curve, eval.json), and
trained policies with Stable-Baselines3's `predict`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import _rein
from .spaces import space_from_json

ALGORITHMS = ("ppo", "a2c", "reinforce", "dqn", "td3", "ddpg", "sac")
TABULAR = ("qlearning", "sarsa", "expected_sarsa")


@dataclass
class Run:
    """A training run: its directory, its metrics rows (dicts by column, every row of the run
    including those before a resume), the final evaluation (`eval.json`, when it finished) and
    how it ended (`finished`, `max_updates` or `stopped` by the callback)."""

    run_dir: str
    rows: list = field(default_factory=list)
    evaluation: dict | None = None
    ended: str = "finished"


def train(
    algo: str | None = None,
    env: str | None = None,
    seed: int | None = None,
    total_timesteps: int | None = None,
    callback: Callable[[dict], Any] | None = None,
    resume: str | os.PathLike | None = None,
    runs_dir: str | os.PathLike = "runs",
    env_options: dict | None = None,
    checkpoint_seconds: float = 30.0,
    max_updates: int | None = None,
    **settings: Any,
) -> Run:
    """Trains `algo` (ppo, a2c, reinforce, dqn, td3, ddpg, sac; or the tabular qlearning,
    sarsa, expected_sarsa with `episodes=`) on rein's `env` as `rein train ALGO --env ENV`
    does: the env's preset first, then `settings` (the `--set` keys; nested ones as dotted
    names or dicts), `seed`, `total_timesteps`. Tabular runs train in seconds and keep no
    checkpoint: their callback only observes, and they cannot be resumed. `callback(row)` is
    called with each metrics row as a dict; returning False stops the run with a checkpoint.
    Ctrl-C (KeyboardInterrupt) stops it with a checkpoint too, then raises. `resume=run_dir`
    continues a run exactly (a larger `total_timesteps` trains it on). Training releases the
    GIL between callbacks."""
    if algo in TABULAR:
        if resume is not None or total_timesteps is not None:
            raise ValueError(f"{algo} runs count episodes= and keep no checkpoint (no resume=, no total_timesteps=)")
        return _finish(_rein.train_tabular(
            algo, env, seed, _flatten_settings(settings), env_options or {}, str(runs_dir),
            None if callback is None else _row_callback(callback),
        ))
    if resume is None and algo not in ALGORITHMS:
        raise ValueError(
            f"unknown algorithm {algo!r}: expected one of {', '.join(ALGORITHMS + TABULAR)}"
        )
    if resume is not None and (algo is not None or env is not None or settings or seed is not None):
        raise ValueError("resume= continues a run with its own settings: pass no algo, env, seed or settings")
    flat = _flatten_settings(settings)
    return _finish(_rein.train(
        algo,
        env,
        seed,
        total_timesteps,
        flat,
        env_options or {},
        str(runs_dir),
        None if resume is None else str(resume),
        None if callback is None else _row_callback(callback),
        float(checkpoint_seconds),
        max_updates,
    ))


def _flatten_settings(settings: dict) -> dict:
    """Keyword settings as the `--set` keys: nested dicts become dotted names
    (`lora={"r": 8}` is `lora.r`)."""
    flat: dict = {}

    def put(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                put(f"{prefix}.{k}", v)
        else:
            flat[prefix] = value

    for k, v in settings.items():
        put(k, v)
    return flat


def _finish(outcome) -> Run:
    """The Run of what the Rust run loop returned."""
    run_dir, columns, rows, evaluation, ended = outcome
    return Run(
        run_dir=run_dir,
        rows=[dict(zip(columns, r)) for r in rows],
        evaluation=None if evaluation is None else json.loads(evaluation),
        ended=ended,
    )


def _row_callback(callback):
    def call(row: dict):
        return callback(row)

    return call


class Policy:
    """A trained deep agent loaded from its run directory, acting as SB3's `predict` does."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = str(run_dir)
        self._policy = _rein.RustPolicy(self.run_dir)
        obs_json, act_json = self._policy.spaces_json()
        self.observation_space = space_from_json(obs_json)
        self.action_space = space_from_json(act_json)
        env_id, options = _rein.RustPolicy.run_env(self.run_dir)
        self.env_id = env_id
        self.env_options = json.loads(options)
        self.tabular = os.path.exists(os.path.join(self.run_dir, "q_table.json"))

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """`(action, None)` for one observation, or `(actions, None)` for a batch (a leading
        axis), as Stable-Baselines3's `predict`. On-policy agents sample unless
        `deterministic`; DQN, TD3/DDPG and SAC act with their greedy/deterministic policy, a
        tabular run greedily on its Q-table."""
        shape = self.observation_space.shape  # None for Tuple spaces: one observation at a time
        batch = shape is not None and np.ndim(observation) == len(shape) + 1
        if batch and self.tabular:
            return np.array([self._policy.act_one(o, deterministic) for o in observation], np.int64), None
        if batch:
            from .spaces import flat_dim

            obs = np.asarray(observation)
            if hasattr(self.observation_space, "n"):
                flat = np.zeros((len(obs), flat_dim(self.observation_space)), np.float32)
                flat[np.arange(len(obs)), obs.astype(np.int64) - int(self.observation_space.start)] = 1.0
            else:
                flat = np.ascontiguousarray(obs.reshape(len(obs), -1), dtype=np.float32)
            return self._policy.act_flat_batch(flat, deterministic), None
        return self._policy.act_one(observation, deterministic), None

    def evaluate(self, env=None, n_episodes: int = 10, deterministic: bool = True, seed: int = 0):
        """Mean and standard deviation of the return over `n_episodes` episodes (episode k
        reset with `seed + k`) in `env` (a Gymnasium env; rein's env of the run by default)."""
        if env is None:
            from .envs import make

            env = make(self.env_id, **self.env_options)
        returns = []
        for k in range(n_episodes):
            obs, _ = env.reset(seed=seed + k)
            total, done = 0.0, False
            while not done:
                action, _ = self.predict(obs, deterministic=deterministic)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns)), float(np.std(returns))


def load(run_dir: str | os.PathLike) -> Policy:
    """The policy of a `rein train` (or `rein.train`) run directory."""
    return Policy(run_dir)
