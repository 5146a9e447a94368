#!/usr/bin/env bash
# Seconds per GRPO step and peak resident memory on a real model, rein (`rein bench lm-rl
# --model`) against TRL's GRPOTrainer (bench/grpo_trl_model.py), full fine-tuning and LoRA
# (r 16, alpha 32, q/k/v/o_proj), in one invocation: 2 chat prompts x 4 completions x exactly
# 32 tokens, beta 0, one iteration, float32, 2 threads on both sides.
#   bench/lm_rl_model_vs_trl.sh MODEL [STEPS]
# MODEL is a .gguf file or a Hugging Face directory; a .gguf is first converted to a directory
# (`rein lm convert`, f32) that both sides load. Needs torch, transformers, trl and peft for the
# TRL side (PYTHON=... to choose the interpreter).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/lm_rl_model_vs_trl.sh MODEL [STEPS]}
steps=${2:-3}
py=${PYTHON:-python3}
cargo build --release -q -p rein-cli
bench/machine.sh
rein=target/release/rein
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ -f "$model" ]; then
    "$rein" lm convert --model "$model" --out "$dir/model" > /dev/null
    model="$dir/model"
fi
have_trl=1
"$py" -c "import trl, peft, torch, datasets" 2>/dev/null || have_trl=0
for mode in full lora; do
    flag=(); [ "$mode" = lora ] && flag=(--lora)
    r=$(RAYON_NUM_THREADS=2 "$rein" bench lm-rl --model "$model" --steps "$steps" "${flag[@]}" --json)
    echo "rein $mode: $r"
    if [ "$have_trl" = 1 ]; then
        t=$("$py" bench/grpo_trl_model.py "$model" --threads 2 --steps "$steps" "${flag[@]}" 2>/dev/null | tail -1)
        echo "trl  $mode: $t"
        "$py" - "$mode" "$r" "$t" <<'PY'
import json, sys
mode, r, t = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
ph = r["phases"]
print(f"{mode}: GRPO step rein {r['grpo_seconds_per_step']:.2f} s vs TRL {t['trl']} {t['grpo_seconds_per_step']:.2f} s "
      f"= {t['grpo_seconds_per_step'] / r['grpo_seconds_per_step']:.2f}x; peak RSS rein {r['peak_rss_mib']:.0f} MiB vs TRL {t['peak_rss_mib']:.0f} MiB; "
      f"rein's step: generation {ph['generation']:.2f} s, log-probs {ph['logprobs']:.2f} s, backward {ph['backward']:.2f} s, optimizer {ph['optimizer']:.2f} s")
PY
    fi
done
[ "$have_trl" = 1 ] || echo "trl/peft/torch/datasets not installed: only rein's figures above"
