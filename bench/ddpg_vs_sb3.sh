#!/usr/bin/env bash
# DDPG training throughput on Pendulum-v1, rein (`rein train ddpg`, 1 thread) against
# Stable-Baselines3 (PyTorch, 1 thread), same settings, in one run.
#   bench/ddpg_vs_sb3.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20000}
cargo build --release -q -p rein-cli
bench/machine.sh
runs=$(mktemp -d)
start=$(date +%s.%N)
target/release/rein train ddpg --env Pendulum-v1 --total-timesteps "$steps" --checkpoint-every 0 --checkpoint-seconds 0 --quiet --runs-dir "$runs" > "$runs/out.txt"
end=$(date +%s.%N)
rein_eval=$(python3 -c "import json,glob; print(json.load(open(glob.glob('$runs/*/eval.json')[0]))['mean_return'])")
rein_sps=$(python3 -c "print($steps / ($end - $start))")
echo "rein DDPG Pendulum-v1: $(printf '%.0f' "$rein_sps") steps/s (1 thread, incl. start-up and evaluation), final deterministic return $rein_eval"
if python3 -c "import stable_baselines3" 2>/dev/null; then
    sb3=$(python3 bench/ddpg_sb3.py "$steps")
    python3 - "$sb3" "$rein_sps" <<'PY'
import json, sys
sb3, rein = json.loads(sys.argv[1]), float(sys.argv[2])
print(f"SB3 DDPG Pendulum-v1:  {sb3['steps_per_second']:,.0f} steps/s (1 thread), final deterministic return {sb3['eval_return']:.1f}")
print(f"ratio: {rein / sb3['steps_per_second']:.2f}x")
PY
fi
rm -rf "$runs"
