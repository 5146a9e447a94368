#!/usr/bin/env bash
# Data-parallel scaling on this machine: the same workloads at 1 and 2 MPI ranks in one
# invocation (the machine drifts 20-30% between runs), one thread per rank.
#   cargo build --release --features mpi && bash bench/mpi_scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REIN=${REIN:-target/release/rein}
run() { mpirun --allow-run-as-root --oversubscribe -x RAYON_NUM_THREADS=1 -np "$1" "$REIN" "${@:2}"; }
export RAYON_NUM_THREADS=1
for np in 1 2; do
    run "$np" bench ppo --env CartPole-v1
    run "$np" bench ppo --env HalfCheetah-v5 --total-timesteps 40960
    run "$np" bench lm-rl --steps 5
done
