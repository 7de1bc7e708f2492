#!/usr/bin/env bash
# Device run 4 (2026-12-02): darn against the peers, one process per config group, do_bench timing.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/build/inductor TRITON_CACHE_DIR=$PWD/build/triton
.devbundle/run test_hardening --ascii --filter '*/cpu_backend_runs_on_a_32k_stack' 2>&1 | tail -n 1
timeout 420 python3 bench/compare_torch.py --lib .devbundle/lib/libdarn.so.0 --peers-dir .peers --commit 3f504ec65cea \
  --time-budget 300 --config train,infer --n 1024,4096,16384 --json "$out/peers.json" > "$out/peers.txt" 2>&1
echo "rc=$?"; tail -n 60 "$out/peers.txt"
