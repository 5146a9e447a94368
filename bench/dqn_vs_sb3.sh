#!/usr/bin/env bash
# DQN training throughput, rein against Stable-Baselines3 (PyTorch, 1 thread), CartPole-v1 with the
# zoo hyperparameters (256-256 network, train_freq 256, gradient_steps 128, batch 64), in one run.
#   bench/dqn_vs_sb3.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20000}
cargo build --release -q -p rein-cli
bench/machine.sh
rein_json=$(target/release/rein bench dqn --env CartPole-v1 --total-timesteps "$steps" --json)
if python3 -c "import stable_baselines3" 2>/dev/null; then
    sb3_json=$(python3 bench/dqn_sb3.py "$steps")
else
    sb3_json='null'
    echo "stable-baselines3 is not installed: reporting rein only" >&2
fi
python3 - "$rein_json" "$sb3_json" <<'PY'
import json, sys
rein, sb3 = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"rein DQN CartPole-v1: {rein['steps_per_second']:,.0f} steps/s (1 thread), {rein['gflops']:.1f} GFLOP/s "
      f"= {100 * rein['fraction_of_peak']:.0f}% of the 1-thread sgemm peak ({rein['sgemm_peak_gflops']:.1f} GFLOP/s)")
if sb3:
    print(f"SB3 DQN CartPole-v1:  {sb3['steps_per_second']:,.0f} steps/s (1 thread)")
    print(f"ratio: {rein['steps_per_second'] / sb3['steps_per_second']:.1f}x")
PY
