#!/usr/bin/env bash
# Speed and learning of this checkout against an earlier revision, in one invocation: builds
# REV in a temporary worktree (release), then runs `rein bench ppo|dqn|lm-rl` alternately with
# the old and the new binary, and trains PPO, DQN and A2C on CartPole-v1 with both, comparing
# their metrics.csv value for value (all columns but the wall-clock `sps`).
#   bench/compare_builds.sh REV        e.g. bench/compare_builds.sh 6e3e07b
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/compare_builds.sh REV}
work=$(mktemp -d)
trap 'git worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add -q "$work/old" "$rev"
(cd "$work/old" && cargo build --release -q -p rein-cli)
cargo build --release -q -p rein-cli
old="$work/old/target/release/rein"
new="target/release/rein"
for i in 1 2; do
    echo "old: $($old bench ppo)"
    echo "new: $($new bench ppo)"
done
echo "old: $($old bench dqn)"
echo "new: $($new bench dqn)"
echo "old: $($old bench lm-rl --steps 5)"
echo "new: $($new bench lm-rl --steps 5)"
for run in "ppo --seed 1" "dqn --seed 0 --total-timesteps 30000" "a2c --seed 0 --total-timesteps 50000"; do
    algo=${run%% *}
    for side in old new; do
        bin=$old
        [ "$side" = new ] && bin=$new
        # shellcheck disable=SC2086
        $bin train $run --env CartPole-v1 --quiet --runs-dir "$work/runs/$side/$algo" >/dev/null
    done
    python3 - "$work/runs/old/$algo" "$work/runs/new/$algo" "$algo" <<'PY'
import csv, glob, sys
old, new, algo = sys.argv[1:]
rows = [list(csv.DictReader(open(glob.glob(d + "/*/metrics.csv")[0]))) for d in (old, new)]
cols = [c for c in rows[0][0] if c in rows[1][0] and c != "sps"]
same = len(rows[0]) == len(rows[1]) and all(
    a[c] == b[c] for a, b in zip(*rows) for c in cols)
print(f"{algo}: {len(rows[0])} metrics rows, {len(cols)} shared columns, identical: {same}")
PY
done
