#!/usr/bin/env bash
# rein and transformers on the same model, in one invocation (the machine's speed drifts
# 20-30% between runs, so only these side-by-side ratios mean anything).
#
#   bench/lm_model_vs_transformers.sh MODEL [THREADS]
#
# MODEL is a .gguf file or a Hugging Face directory. A GGUF is first written as a plain f32
# directory with `rein lm convert` (transformers' Trainer refuses to fine-tune a model it loaded
# from GGUF), and both sides then run that directory. Needs python with torch and transformers
# (PYTHON=... to choose the interpreter) and a release build (cargo build --release).
set -euo pipefail
model=${1:?usage: bench/lm_model_vs_transformers.sh MODEL [THREADS]}
threads=${2:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
rein=${REIN:-$here/target/release/rein}
python=${PYTHON:-python3}
dir=$model
if [ -f "$model" ]; then
    dir=$(mktemp -d)/model
    "$rein" lm convert --model "$model" --out "$dir" >&2
fi
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
"$here/bench/machine.sh"
echo "== rein ($threads threads)"
"$rein" bench lm --model "$dir" --json > /tmp/rein_lm_bench.$$.json
echo "== transformers ($threads threads)"
"$python" "$here/bench/lm_model_transformers.py" "$dir" --threads "$threads" --json > /tmp/tf_lm_bench.$$.json
"$python" - /tmp/rein_lm_bench.$$.json /tmp/tf_lm_bench.$$.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["result"]
t = json.load(open(sys.argv[2]))
rows = [("forward 4x128 (s)", "forward_4x128_seconds", False),
        ("generation batch 1 (tokens/s)", "generation_batch1_tokens_per_second", True),
        ("generation batch 8 (tokens/s)", "generation_batch8_tokens_per_second", True),
        ("train step 4x128 (s)", "train_step_4x128_seconds", False)]
print(f"| workload | rein | transformers {t['torch']} | rein speed-up |")
print("|---|---|---|---|")
for name, key, higher in rows:
    a, b = r[key], t[key]
    ratio = a / b if higher else b / a
    print(f"| {name} | {a:.3f} | {b:.3f} | {ratio:.2f}x |")
PY
rm -f /tmp/rein_lm_bench.$$.json /tmp/tf_lm_bench.$$.json
