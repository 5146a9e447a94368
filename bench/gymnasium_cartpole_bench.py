"""Steps per second of gymnasium's CartPole-v1, the same loop as `rein env bench`:
one env from gymnasium.make (with its TimeLimit and checkers), random actions from
action_space.sample(), reset when an episode ends. Prints one JSON line."""
import json
import sys
import time

import gymnasium as gym

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
env = gym.make("CartPole-v1")
env.reset(seed=0)
env.action_space.seed(0)
episodes = 0
start = time.perf_counter()
for _ in range(steps):
    _, _, terminated, truncated, _ = env.step(env.action_space.sample())
    if terminated or truncated:
        env.reset()
        episodes += 1
secs = time.perf_counter() - start
print(json.dumps({"env": "CartPole-v1", "impl": "gymnasium " + gym.__version__, "steps": steps,
                  "episodes": episodes, "seconds": secs, "steps_per_second": steps / secs}))
