#!/usr/bin/env bash
# SAC's gradient-bound training speed on HalfCheetah-v5, rein (`rein bench sac`, 1 thread)
# against Stable-Baselines3 (PyTorch, 1 thread), same network and batch, in one invocation:
# gradient steps per second and GFLOP/s (the same FLOP count for both).
#   bench/sac_mujoco_vs_sb3.sh [GRADIENT_STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
grad=${1:-2000}
warmup=10000  # the preset's learning_starts (random steps; about 0.2 s of MuJoCo for rein)
cargo build --release -q -p rein-cli
bench/machine.sh
PY=${PYTHON:-python3}
target/release/rein bench sac --env HalfCheetah-v5 --total-timesteps $((warmup + grad)) \
    --json > /tmp/rein-sac-bench.json
if ! "$PY" -c "import stable_baselines3" 2>/dev/null; then
    cat /tmp/rein-sac-bench.json
    echo "stable-baselines3 is not importable by $PY: SB3 row skipped" >&2
    exit 0
fi
"$PY" bench/sac_mujoco_sb3.py "$grad" "$warmup" > /tmp/sb3-sac-bench.json
"$PY" - <<'PY'
import json
r = json.load(open("/tmp/rein-sac-bench.json"))
s = json.load(open("/tmp/sb3-sac-bench.json"))
r["grad_steps_per_second"] = r["grad_steps"] / r["seconds"]
print(f"rein SAC HalfCheetah-v5: {r['grad_steps_per_second']:.0f} gradient steps/s, {r['gflops']:.1f} GFLOP/s (1 thread, {r['mflop_per_grad_step']:.0f} MFLOP each)")
print(f"SB3  SAC HalfCheetah-v5: {s['grad_steps_per_second']:.0f} gradient steps/s, {s['gflops']:.1f} GFLOP/s (1 thread)")
print(f"ratio: {r['grad_steps_per_second'] / s['grad_steps_per_second']:.2f}x")
PY
