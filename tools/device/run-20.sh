#!/usr/bin/env bash
# Device run 20 (2026-12-05, session 12): the tree of fc1519d (inference kernels + K cap) as one build: darn-bench
# infer / train against lib-old (4d709b2), then bench/compare_torch.py infer against the peers, as time allows.
# Bundle: run 19's (test_gpu, test_golden, darn-bench of build/nv90, lib-old/); .peers carried.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out/gpu"
trap 'tar czf "$out/gpu-run20.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"' EXIT
SECONDS=0
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/build/inductor TRITON_CACHE_DIR=$PWD/build/triton
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for lib in lib-old lib; do
  LD_LIBRARY_PATH=$PWD/.devbundle/$lib:$PWD/.devbundle/lib timeout 40 .devbundle/bin/darn-bench --config infer,train \
    --n 768,1024,4096,8192,16384 --reps 20 --latency-m none --json "$out/gpu/bench-$lib.json" > "$out/gpu/bench-$lib.txt" 2>&1
  echo "== darn-bench ($lib) rc=$?"; grep -a -E "^(copy|infer|train) " "$out/gpu/bench-$lib.txt"
done
left=$((230 - SECONDS))
timeout $left python3 bench/compare_torch.py --lib .devbundle/lib/libdarn.so.0 --peers-dir .peers --commit fc1519d \
  --time-budget $((left - 30)) --config infer --n 1024,4096,8192 --json "$out/gpu/peers.json" > "$out/gpu/peers.txt" 2>&1
echo "compare_torch rc=$?"; grep -a "do_bench" "$out/gpu/peers.txt" | cut -c1-110
echo "total: ${SECONDS}s"
