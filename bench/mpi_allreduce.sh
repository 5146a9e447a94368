#!/usr/bin/env bash
# rein's gradient allreduce (rein_core::collective::average_f32: one flattened f32 buffer per
# optimiser step) at the presets' sizes under N ranks (default 2) on this machine.
#   cargo build --release --features mpi && bash bench/mpi_allreduce.sh
# Open MPI's algorithm choice made no measurable difference here once large buffers are not
# mmap'd afresh (rein's binary keeps freed memory: keep_freed_memory in main.rs); pass
# `--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm K` through MPIRUN_ARGS
# to compare algorithms.
set -euo pipefail
cd "$(dirname "$0")/.."
REIN=${REIN:-target/release/rein}
# shellcheck disable=SC2086
mpirun --allow-run-as-root --oversubscribe -np "${NP:-2}" ${MPIRUN_ARGS:-} "$REIN" bench allreduce
