#!/usr/bin/env bash
# Prints the machine a benchmark ran on: CPU model, vendor id, family/model numbers, cores and
# the widest vector unit. Ratios against PyTorch depend on it (MKL's sgemm runs at a different
# fraction of peak on Intel and AMD), so every comparison script prints this line first.
set -euo pipefail
field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //'; }
simd=AVX2
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    simd=AVX-512
elif ! grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    simd="no AVX2"
fi
echo "machine: $(field 'model name') ($(field vendor_id), family $(field 'cpu family') model $(field model)), $(nproc) cores, $simd"
