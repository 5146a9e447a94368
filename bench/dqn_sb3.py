"""Stable-Baselines3 DQN on CartPole-v1 with the rl-baselines3-zoo hyperparameters (rein's
preset), one PyTorch thread. Prints one JSON line with steps/s."""
import json
import sys
import time

import torch

torch.set_num_threads(1)
from stable_baselines3 import DQN  # noqa: E402

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
model = DQN("MlpPolicy", "CartPole-v1", learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
            learning_starts=1000, gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
            exploration_fraction=0.16, exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]),
            seed=0, device="cpu", verbose=0)
start = time.perf_counter()
model.learn(total_timesteps=steps)
secs = time.perf_counter() - start
print(json.dumps({"impl": "stable-baselines3", "steps": steps, "seconds": secs, "steps_per_second": steps / secs,
                  "threads": 1}))
