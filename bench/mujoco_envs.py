"""MuJoCo env stepping, rein against the Python references in one invocation.

Single env: `rein env bench --env ID` (one env, one thread, random actions) against
Gymnasium's `gym.make(ID)` for the v5 robots and dm-control's `suite.load(domain, task)` for
the suite tasks, with pre-drawn random actions. Vector: `rein env bench --num-envs N --threads
T` (worker rollouts) against EnvPool 1.2.5 (`envpool.make(ID, "gymnasium", num_envs=N,
num_threads=T)`, synchronous) at the same batch. Steps per second; the ratio column is rein
over the reference.

    python bench/mujoco_envs.py [--rein target/release/rein] [--steps 100000] [--num-envs 8] [--threads 2]

Needs gymnasium 1.4 with mujoco 3.17.0, dm-control 1.0.50, and envpool 1.2.5 for the vector
rows (skipped when not importable).
"""

import argparse
import json
import subprocess
import time

import numpy as np

GYM = ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5"]
DM = [("cheetah", "run"), ("walker", "walk"), ("hopper", "hop"), ("cartpole", "swingup")]
ENVPOOL = [("HalfCheetah-v5", "HalfCheetah-v5"), ("dm_control/cheetah-run-v0", "CheetahRun-v1"),
           ("Hopper-v5", "Hopper-v5"), ("dm_control/walker-walk-v0", "WalkerWalk-v1")]


def rein_rate(binary, env, steps, n=1, threads=1):
    out = subprocess.run([binary, "env", "bench", "--env", env, "--steps", str(steps),
                          "--num-envs", str(n), "--threads", str(threads), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["steps_per_second"]


def gym_rate(env_id, steps):
    import gymnasium as gym
    env = gym.make(env_id)
    env.reset(seed=0)
    low, high = env.action_space.low, env.action_space.high
    actions = np.random.default_rng(0).uniform(low, high, size=(steps, low.size)).astype(np.float32)
    t = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t)


def dm_rate(domain, task, steps):
    from dm_control import suite
    env = suite.load(domain, task, task_kwargs={"random": 0})
    spec = env.action_spec()
    actions = np.random.default_rng(0).uniform(spec.minimum, spec.maximum, size=(steps, spec.shape[0]))
    env.reset()
    t = time.perf_counter()
    for a in actions:
        ts = env.step(a)
        if ts.last():
            env.reset()
    return steps / (time.perf_counter() - t)


def envpool_rate(env_id, n, threads, steps):
    import envpool
    env = envpool.make(env_id, env_type="gymnasium", num_envs=n, batch_size=n, num_threads=threads, seed=0)
    env.reset()
    space = env.action_space
    iters = max(1, steps // n)
    actions = np.random.default_rng(0).uniform(space.low, space.high, size=(iters, n, space.shape[0]))
    t = time.perf_counter()
    for a in actions:
        env.step(a.astype(space.dtype))
    return iters * n / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rein", default="target/release/rein")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    print(f"single env, random actions, {a.steps} steps per row (steps/s)")
    print(f"{'env':34} {'rein':>10} {'reference':>10} {'ratio':>6}  reference")
    for env in GYM:
        r, g = rein_rate(a.rein, env, a.steps), gym_rate(env, a.steps // 4)
        print(f"{env:34} {r:10.0f} {g:10.0f} {r / g:6.2f}  gymnasium.make")
    for domain, task in DM:
        env = f"dm_control/{domain}-{task}-v0"
        r, d = rein_rate(a.rein, env, a.steps), dm_rate(domain, task, a.steps // 4)
        print(f"{env:34} {r:10.0f} {d:10.0f} {r / d:6.2f}  dm_control suite.load")
    try:
        import envpool  # noqa: F401
    except ImportError:
        print("envpool not importable: vector rows skipped")
        return
    n, t = a.num_envs, a.threads
    print(f"\nvector env, {n} envs on {t} threads, {a.steps * 2} steps per row (total steps/s)")
    for rein_id, pool_id in ENVPOOL:
        r = rein_rate(a.rein, rein_id, a.steps * 2, n, t)
        e = envpool_rate(pool_id, n, t, a.steps * 2)
        print(f"{rein_id:34} {r:10.0f} {e:10.0f} {r / e:6.2f}  envpool {pool_id}")


if __name__ == "__main__":
    main()
