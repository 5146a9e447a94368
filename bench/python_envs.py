"""Env stepping from Python, rein against Gymnasium (and EnvPool when installed), in one
invocation: CartPole-v1 vector envs of 8 and 64 envs with random actions (total env steps per
second), and a single env (`rein.make` against `gymnasium.make`).

    python bench/python_envs.py [--steps 200000] [--threads 2]

Needs rein's Python package (`python -m pip install ./python`) and gymnasium; envpool 1.2.5
is used when importable. Actions are drawn up front so that sampling is not measured."""

import argparse
import time

import gymnasium as gym
import numpy as np

import rein


def vector_rate(make, n, steps, discrete=True):
    env = make(n)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    iters = max(1, steps // n)
    actions = rng.integers(0, 2, size=(iters, n))
    t = time.perf_counter()
    for a in actions:
        env.step(a)
    dt = time.perf_counter() - t
    env.close()
    return iters * n / dt


def single_rate(env, steps):
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, size=steps)
    t = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=200_000)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    try:
        import envpool
    except ImportError:
        envpool = None
    print(f"CartPole-v1, random actions, {a.steps} env steps per row; rein threads={a.threads}")
    for n in (8, 64):
        rows = {
            f"rein.make_vec(threads={a.threads})": vector_rate(
                lambda n: rein.make_vec("CartPole-v1", n, threads=a.threads), n, a.steps),
            "rein.make_vec(threads=1)": vector_rate(lambda n: rein.make_vec("CartPole-v1", n), n, a.steps),
            "gymnasium SyncVectorEnv": vector_rate(
                lambda n: gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * n), n, a.steps // 10),
        }
        if envpool is not None:
            rows[f"envpool (num_threads={a.threads})"] = vector_rate(
                lambda n: envpool.make_gymnasium("CartPole-v1", num_envs=n, num_threads=a.threads, seed=0), n, a.steps)
        sync = rows["gymnasium SyncVectorEnv"]
        for name, r in rows.items():
            print(f"{n:>3} envs  {name:<32} {r:>12,.0f} steps/s  {r / sync:6.1f}x SyncVectorEnv")
    g = single_rate(gym.make("CartPole-v1"), a.steps // 10)
    r = single_rate(rein.make("CartPole-v1"), a.steps // 10)
    print(f"single env  gymnasium.make {g:>12,.0f} steps/s")
    print(f"single env  rein.make      {r:>12,.0f} steps/s  {r / g:6.1f}x")


if __name__ == "__main__":
    main()
