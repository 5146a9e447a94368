#!/usr/bin/env bash
# The book's Applications table (issue 21): summarisation, translation and dialogue on
# SmolLM2-135M-Instruct with the shipped presets, trained briefly with a LoRA adapter, and the
# task metric, KL to the start and the start's perplexity of the responses before and after
# (`rein lm eval` on the preset's held-out prompts).
#   bash bench/applications.sh SmolLM2-135M-Instruct.Q4_1.gguf    # STEPS, LIMIT, TASKS, OUT to change
# (2026-12-02: 12-40 s per GRPO step of 8 prompts x 8 here, by how busy the two cores were)
set -euo pipefail
cd "$(dirname "$0")/.."
gguf=${1:?the SmolLM2-135M-Instruct GGUF file}
rein=${REIN:-target/release/rein}
out=${OUT:-runs/applications}
steps=${STEPS:-20}
limit=${LIMIT:-32}
tasks=${TASKS:-summarization translation dialogue}
mkdir -p "$out"
# The dialogue preset also needs its reward model (`models/dialogue-rm`, the path the preset
# names): trained here with a LoRA backbone when missing (~100 s on SmolLM2), as
# `rein lm train-reward-model --model M --data examples/lm/dialogue/preferences.jsonl --out
# models/dialogue-rm --set lora.enabled=true`.
case " $tasks " in
*" dialogue "*)
    if [ ! -f models/dialogue-rm/config.toml ]; then
        "$rein" lm train-reward-model --model "$gguf" --data examples/lm/dialogue/preferences.jsonl \
            --out models/dialogue-rm --set lora.enabled=true --quiet
    fi
    ;;
esac
for task in $tasks; do
    preset=presets/lm/$task.toml
    trainer=$(sed -n 's/^trainer = "\(.*\)"/\1/p' "$preset")
    echo "$task before: $("$rein" lm eval --model "$gguf" --preset "$preset" --limit "$limit" --json)"
    "$rein" lm "$trainer" --model "$gguf" --preset "$preset" --set max_steps="$steps" \
        --set prompts_per_step=8 --set lora.enabled=true --set lora.r=16 \
        --set lora.learning_rate=1e-3 --quiet --runs-dir "$out/$task" > /dev/null
    run=$(ls -d "$out/$task"/*/ | head -1)
    echo "$task after ($trainer, $steps steps): $("$rein" lm eval --model "$gguf" --adapter "$run/adapter" \
        --preset "$preset" --limit "$limit" --json)"
done
