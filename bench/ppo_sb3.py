"""Stable-Baselines3 PPO on CartPole-v1 with the rl-baselines3-zoo hyperparameters (the same
settings as rein's preset), on one PyTorch thread. Prints one JSON line with steps/s."""
import json
import sys
import time

import torch

torch.set_num_threads(1)
import gymnasium as gym  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
lin = lambda v: (lambda progress: progress * v)  # noqa: E731  zoo's lin_ schedules
env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
            ent_coef=0.0, learning_rate=lin(0.001), clip_range=lin(0.2), seed=0, device="cpu", verbose=0)
start = time.perf_counter()
model.learn(total_timesteps=steps)
secs = time.perf_counter() - start
mean, _ = evaluate_policy(model, Monitor(gym.make("CartPole-v1")), n_eval_episodes=10, deterministic=True)
print(json.dumps({"impl": "stable-baselines3", "steps": steps, "seconds": secs, "steps_per_second": steps / secs,
                  "eval_return": float(mean), "threads": 1}))
