#!/usr/bin/env python3
"""A written model of rein's data-parallel training on N machines (issue 20).

For each preset: the bytes one optimiser step allreduces (rein averages every gradient in one
flattened f32 buffer per optimiser), the number of small latency-bound allreduces per update
(normalisation statistics, episode statistics, decisions), the time of those at 10 and
100 Gbit/s, and the predicted scaling efficiency at 8, 64 and 512 ranks:

    t_allreduce(n bytes, N ranks) = 2 log2(N) alpha + 2 (N - 1) / N * n / beta

(latency of recursive doubling, which MPI libraries use for small messages, plus the
bandwidth term of a ring, which they use for large ones; alpha the per-message latency,
beta the link bandwidth), and

    efficiency(N) = t_compute / (t_compute + t_communication(N))

with t_compute the seconds one rank spends per update, measured by `rein bench` on this
machine (pass your own with --compute). The parameter counts follow from the presets'
networks (printed so they can be checked against a checkpoint's tensors).

    python3 bench/mpi_scaling_model.py --measured-2-rank-efficiency ppo-cartpole=0.90 \
        --measured-2-rank-efficiency ppo-halfcheetah=0.79 --measured-2-rank-efficiency sac-halfcheetah=1.00 \
        --measured-2-rank-efficiency grpo-gpt2-tiny=0.65
"""

import argparse
import math

# alpha (seconds per message) and beta (bytes per second) of the two networks modelled:
# 10 Gbit/s Ethernet with TCP (tens of microseconds per message) and a 100 Gbit/s
# RDMA-capable fabric (a few microseconds).
NETWORKS = {
    "10 Gbit/s": (25e-6, 10e9 / 8),
    "100 Gbit/s": (3e-6, 100e9 / 8),
}


def mlp(sizes):
    """Weights and biases of a fully connected network with these layer widths."""
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def presets():
    """(name, floats per optimiser step, optimiser steps per update, allreduce buffers per
    optimiser step, small allreduces per update, what an update is)."""
    out = []
    # PPO CartPole-v1 (presets/ppo/CartPole-v1.toml): actor 4-64-64-2, critic 4-64-64-1,
    # 8 envs x 32 steps, 20 epochs of one 256-row minibatch; per update: the episode
    # statistics (1) and the stop/checkpoint decision (1).
    out.append(("ppo-cartpole", mlp([4, 64, 64, 2]) + mlp([4, 64, 64, 1]), 20, 1, 2,
                "8 envs x 32 steps per rank"))
    # PPO HalfCheetah-v5 (presets/ppo/HalfCheetah-v5.toml): actor 17-256-256-6 + log std 6,
    # critic 17-256-256-1; 512 steps, 20 epochs of 8 minibatches; observation and reward
    # normalisation merge their batch moments every env step (4 small allreduces a step).
    out.append(("ppo-halfcheetah", mlp([17, 256, 256, 6]) + 6 + mlp([17, 256, 256, 1]), 160, 1,
                4 * 512 + 2, "512 steps per rank"))
    # SAC HalfCheetah-v5 (presets/sac/HalfCheetah-v5.toml): actor 17-256-256-12, two critics
    # 23-256-256-1, temperature; one gradient step per env step: four allreduces (each
    # critic, the temperature, the actor); per update (one env step) the episode statistics.
    out.append(("sac-halfcheetah", mlp([17, 256, 256, 12]) + 2 * mlp([23, 256, 256, 1]) + 1, 1, 4,
                3, "1 env step + 1 gradient step per rank"))
    # GRPO on the benchmark GPT-2 (rein bench lm-rl): 4 layers, 256 wide, vocabulary 8192,
    # 128 positions; one optimiser step per update; token count, scores, KL (3 small).
    d, layers, vocab, positions = 256, 4, 8192, 128
    per_layer = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d)
    gpt2 = vocab * d + positions * d + layers * per_layer + 2 * d
    out.append(("grpo-gpt2-tiny", gpt2, 1, 1, 4, "2 prompts x 4 completions x 32 tokens per rank"))
    return out


def allreduce_seconds(nbytes, ranks, alpha, beta):
    if ranks == 1:
        return 0.0
    return 2 * math.log2(ranks) * alpha + 2 * (ranks - 1) / ranks * nbytes / beta


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--compute", action="append", default=[], metavar="PRESET=SECONDS",
                   help="seconds one rank spends per update (default: this machine's, below)")
    p.add_argument("--measured-2-rank-efficiency", action="append", default=[], metavar="PRESET=E",
                   help="measured 2-rank speed-up / 2 on one machine, printed next to the model")
    a = p.parse_args()
    # Seconds per update on one rank of this machine, from `bash bench/mpi_scaling.sh` and
    # `rein bench sac --env HalfCheetah-v5 --total-timesteps 14000` on 2026-12-02: PPO CartPole
    # 2.11 s for 391 updates, PPO HalfCheetah 14.72 s for 80 updates, SAC ~9.5 ms per env step
    # with its gradient step, GRPO 0.2625 s per step.
    compute = {"ppo-cartpole": 0.0054, "ppo-halfcheetah": 0.184, "sac-halfcheetah": 0.0095,
               "grpo-gpt2-tiny": 0.2625}
    for kv in a.compute:
        k, v = kv.split("=")
        compute[k] = float(v)
    measured = dict((kv.split("=")[0], float(kv.split("=")[1])) for kv in a.measured_2_rank_efficiency)
    print("| preset | an update | parameters | bytes allreduced per update | small allreduces per update "
          "| network | allreduce time per update at 8 / 64 / 512 ranks | predicted efficiency at 2 / 8 / 64 / 512 ranks "
          "| measured at 2 ranks (one machine) |")
    print("|---|---|---:|---:|---:|---|---|---|---|")
    for name, floats, steps, buffers, small, what in presets():
        nbytes = 4 * floats
        per_update = nbytes * steps
        for net, (alpha, beta) in NETWORKS.items():
            def comm(n):
                big = steps * (buffers * allreduce_seconds(nbytes / buffers, n, alpha, beta))
                return big + small * allreduce_seconds(8, n, alpha, beta)
            t = compute[name]
            eff = [t / (t + comm(n)) for n in (2, 8, 64, 512)]
            times = " / ".join(f"{1e3 * comm(n):.2f} ms" for n in (8, 64, 512))
            m = measured.get(name)
            efficiencies = " / ".join(f"{e:.2f}" for e in eff)
            shown = f"{m:.2f}" if m is not None else ""
            print(f"| {name} | {what} | {floats:,} | {per_update / 1e6:.2f} MB | {small} | {net} "
                  f"| {times} | {efficiencies} | {shown} |")

if __name__ == "__main__":
    main()
