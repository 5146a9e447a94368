#!/usr/bin/env bash
# Environment throughput: rein against gymnasium's CartPole-v1 on this machine, in one run.
# Needs `pip install gymnasium==1.4.0` for the reference; prints the ratio.
#   bench/bench_envs.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20000000}
cargo build --release -q -p rein-cli
bench/machine.sh
rein=target/release/rein
gym=$(python3 bench/gymnasium_cartpole_bench.py 500000)
single=$($rein env bench --env CartPole-v1 --steps "$steps" --json)
vec1=$($rein env bench --env CartPole-v1 --steps "$steps" --num-envs 8 --threads 1 --json)
vec2=$($rein env bench --env CartPole-v1 --steps "$steps" --num-envs 8 --threads 2 --json)
lock2=$($rein env bench --env CartPole-v1 --steps "$steps" --num-envs 8 --threads 2 --lockstep --json)
python3 - "$gym" "$single" "$vec1" "$vec2" "$lock2" <<'PY'
import json, sys
gym, single, vec1, vec2, lock2 = (json.loads(a) for a in sys.argv[1:])
g = gym["steps_per_second"]
print(f"gymnasium {gym['impl']} CartPole-v1, 1 env:        {g:>14,.0f} steps/s")
for name, r in [("rein, 1 env", single), ("rein, 8 envs, 1 thread", vec1),
                ("rein, 8 envs, 2 threads", vec2), ("rein, 8 envs, 2 threads, lock-step", lock2)]:
    sps = r["steps_per_second"]
    print(f"{name:<38} {sps:>14,.0f} steps/s  {sps / g:6.1f}x gymnasium")
PY
