#!/usr/bin/env bash
# Seconds per GRPO step, rein (`rein bench lm-rl`, 2 threads) against TRL's GRPOTrainer
# (PyTorch, 2 threads) on the same tiny GPT-2 (4 layers, 256 wide, vocab 8192), 2 prompts x 4
# completions x 32 tokens, in one run; prints the ratio (TRL time / rein time) and rein's PPO
# step on the same model.
#   bench/lm_rl_vs_trl.sh [STEPS]       (default 10 measured steps after one warm-up)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10}
cargo build --release -q -p rein-cli
bench/machine.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
rein=$(RAYON_NUM_THREADS=2 target/release/rein bench lm-rl --steps "$steps" --save-model "$dir" --json)
echo "rein: $rein"
if python3 -c "import trl, torch, datasets" 2>/dev/null; then
    trl=$(python3 bench/grpo_trl.py "$dir" 2 "$steps" 2>/dev/null | tail -1)
    echo "trl: $trl"
    python3 - "$rein" "$trl" <<'PY'
import json, sys
r, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"GRPO step: rein {r['grpo_seconds_per_step']:.4f} s vs TRL {t['trl']} {t['grpo_seconds_per_step']:.4f} s "
      f"(rein {t['grpo_seconds_per_step'] / r['grpo_seconds_per_step']:.1f}x faster); "
      f"rein PPO step {r['ppo_seconds_per_step']:.4f} s")
PY
else
    echo "trl/torch/datasets not installed: only rein's figures above"
fi
