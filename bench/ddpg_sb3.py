"""Stable-Baselines3 DDPG on Pendulum-v1 with rein's preset (400-300 networks, batch 256, one
gradient step per env step after 10k warm-up steps, normal action noise 0.1), one PyTorch
thread. Prints one JSON line with steps/s and the final evaluation."""
import json
import sys
import time

import numpy as np
import torch

torch.set_num_threads(1)
import gymnasium as gym  # noqa: E402
from stable_baselines3 import DDPG  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402
from stable_baselines3.common.noise import NormalActionNoise  # noqa: E402

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
env = gym.make("Pendulum-v1")
noise = NormalActionNoise(mean=np.zeros(1), sigma=0.1 * np.ones(1))
model = DDPG("MlpPolicy", env, learning_rate=1e-3, batch_size=256, learning_starts=10_000, gamma=0.98,
             action_noise=noise, policy_kwargs=dict(net_arch=[400, 300]), seed=0, device="cpu", verbose=0)
start = time.perf_counter()
model.learn(total_timesteps=steps)
secs = time.perf_counter() - start
mean, _ = evaluate_policy(model, Monitor(gym.make("Pendulum-v1")), n_eval_episodes=10, deterministic=True)
print(json.dumps({"impl": "stable-baselines3", "steps": steps, "seconds": secs, "steps_per_second": steps / secs,
                  "eval_return": float(mean), "threads": 1}))
