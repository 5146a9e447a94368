"""Stable-Baselines3 SAC on HalfCheetah-v5 with rein's preset (256-256 networks, batch 256,
one gradient step per env step after LEARNING_STARTS random steps, automatic temperature), one
PyTorch thread. Times the gradient phase only (the steps after the warm-up) and prints one JSON
line: gradient steps per second and the GFLOP/s of the same FLOP count rein's `bench sac` uses.

    python bench/sac_mujoco_sb3.py [GRADIENT_STEPS] [LEARNING_STARTS]
"""
import json
import sys
import time

import torch

torch.set_num_threads(1)
import gymnasium as gym  # noqa: E402
from stable_baselines3 import SAC  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402

grad_steps = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
warmup = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000


class Clock(BaseCallback):
    """Notes the time when the warm-up ends."""

    start = None

    def _on_step(self):
        if self.num_timesteps == warmup + 1 and self.start is None:
            Clock.start = time.perf_counter()
        return True


env = gym.make("HalfCheetah-v5")
model = SAC("MlpPolicy", env, learning_rate=3e-4, buffer_size=1_000_000, batch_size=256, learning_starts=warmup,
            tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, policy_kwargs=dict(net_arch=[256, 256]),
            seed=0, device="cpu", verbose=0)
model.learn(total_timesteps=warmup + grad_steps, callback=Clock())
secs = time.perf_counter() - Clock.start
obs, act = env.observation_space.shape[0], env.action_space.shape[0]
wa = obs * 256 + 256 * 256 + 256 * 2 * act  # actor: trunk, mean and log-std heads
wc = (obs + act) * 256 + 256 * 256 + 256  # one critic
flops = 256 * (8.0 * wa + 24.0 * wc)
sps = grad_steps / secs
print(json.dumps({"impl": "stable-baselines3", "grad_steps": grad_steps, "seconds": secs,
                  "grad_steps_per_second": sps, "gflops": sps * flops / 1e9, "threads": 1}))
