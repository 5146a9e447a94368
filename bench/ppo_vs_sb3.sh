#!/usr/bin/env bash
# PPO training throughput, rein against Stable-Baselines3 (PyTorch, 1 thread), CartPole-v1 with
# the zoo hyperparameters (8 envs, n_steps 32, batch 256, 20 epochs, [64, 64] tanh), in one run.
#   bench/ppo_vs_sb3.sh [STEPS]
# Needs `pip install stable-baselines3` for the reference; without it, prints rein's figure only.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-100000}
cargo build --release -q -p rein-cli
bench/machine.sh
rein_json=$(target/release/rein bench ppo --env CartPole-v1 --total-timesteps "$steps" --json)
if python3 -c "import stable_baselines3" 2>/dev/null; then
    sb3_json=$(python3 bench/ppo_sb3.py "$steps")
else
    sb3_json='null'
    echo "stable-baselines3 is not installed: reporting rein only" >&2
fi
python3 - "$rein_json" "$sb3_json" <<'PY'
import json, sys
rein, sb3 = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"rein PPO CartPole-v1: {rein['steps_per_second']:,.0f} steps/s (1 thread), "
      f"{rein['ms_per_grad_step']:.3f} ms per gradient step, {rein['gflops']:.1f} GFLOP/s, "
      f"final deterministic return {rein['eval_return']:.1f}")
if sb3:
    print(f"SB3 PPO CartPole-v1:  {sb3['steps_per_second']:,.0f} steps/s (1 thread), "
          f"final deterministic return {sb3['eval_return']:.1f}")
    print(f"ratio: {rein['steps_per_second'] / sb3['steps_per_second']:.1f}x")
PY
