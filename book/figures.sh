#!/usr/bin/env bash
# Makes the book's figures (book/src/img/*.png) from rein commands: each algorithm page's
# learning curve is the `learning_curve.png` (or `reward_curve.png`) of the run its page names,
# copied here. Run before a release and commit the PNGs (issue 21: nothing in the book rots).
#   cargo build --release && bash book/figures.sh            # ~5 minutes
#   bash book/figures.sh --mujoco                            # also the MuJoCo pages' (~20 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
rein=${REIN:-$root/target/release/rein}
img=$root/book/src/img
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$img"

# figure NAME CURVE COMMAND...: runs COMMAND with --runs-dir in a fresh directory and copies the
# run's CURVE file to img/NAME.png.
figure() {
    local name=$1 curve=$2
    shift 2
    local runs=$work/$name
    echo "$name: rein ${*}" >&2
    (cd "$root" && "$rein" "$@" --quiet --runs-dir "$runs" > "$work/$name.log")
    cp "$(ls -d "$runs"/*/ | head -1)/$curve" "$img/$name.png"
}

figure qlearning-CliffWalking-v1 learning_curve.png train qlearning --env CliffWalking-v1 --seed 0
figure sarsa-CliffWalking-v1 learning_curve.png train sarsa --env CliffWalking-v1 --seed 0
figure reinforce-CartPole-v1 learning_curve.png train reinforce --env CartPole-v1 --seed 0
figure a2c-CartPole-v1 learning_curve.png train a2c --env CartPole-v1 --seed 0
figure ppo-CartPole-v1 learning_curve.png train ppo --env CartPole-v1 --seed 0
figure dqn-CartPole-v1 learning_curve.png train dqn --env CartPole-v1 --seed 0
figure td3-Pendulum-v1 learning_curve.png train td3 --env Pendulum-v1 --seed 0
figure sac-Pendulum-v1 learning_curve.png train sac --env Pendulum-v1 --seed 0
# GRPO on the arithmetic task (rein lm demo builds models/quickstart first when it is missing).
figure grpo-arithmetic reward_curve.png lm demo
# PPO for language models on the same task and model.
figure ppo-lm-arithmetic reward_curve.png lm ppo --model models/quickstart \
    --prompts examples/lm/arithmetic/train.jsonl --reward exact_answer \
    --set max_steps=60 --set prompts_per_step=16 --set max_new_tokens=40 --set temperature=0.5 \
    --set learning_rate=5e-5

if [ "${1:-}" = "--mujoco" ]; then
    figure ppo-Walker2d-v5 learning_curve.png train ppo --env Walker2d-v5 --seed 0
    figure ppo-Hopper-v5 learning_curve.png train ppo --env Hopper-v5 --seed 0
    figure ppo-HalfCheetah-v5 learning_curve.png train ppo --env HalfCheetah-v5 --seed 0
fi
ls -la "$img"
