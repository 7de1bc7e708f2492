#!/usr/bin/env bash
# Device run 16 (2026-12-04, session 10): the committed tree with DARN_FP8_HW_CVT = 1 and DARN_PAR_BWD_PREFETCH = 1
# as defaults (both checked in run 15 as variants), in one call:
#   1. the GPU test binaries (test_gpu, test_gpu_large, test_gpu_rng, test_fp8, test_golden, test_parallel,
#      test_partials) on the default library
#   2. darn-bench, every config (median of 20)
#   3. bench/compare_torch.py, train and infer at N = 1024, 4096, 16384: darn against every peer, do_bench timing
# Bundle: build/nv90 as usual; .peers (flash-attn's Triton layer norm, Liger-Kernel's ops) carried.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out/gpu"
trap 'tar czf "$out/gpu-run16.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"' EXIT
SECONDS=0
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=$PWD/build/inductor TRITON_CACHE_DIR=$PWD/build/triton
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for t in test_gpu test_gpu_large test_gpu_rng test_fp8 test_golden test_parallel test_partials; do
  timeout 150 .devbundle/run $t --ascii -j4 > "$out/gpu/$t.log" 2>&1
  echo "$t rc=$? $(grep -a Synthesis "$out/gpu/$t.log" | tail -n1)"
done
grep -a "hardware stores checked" "$out/gpu/test_gpu.log" | head -n 2
echo "tests: ${SECONDS}s"
timeout 150 .devbundle/run darn-bench --reps 20 --json "$out/gpu/bench.json" > "$out/gpu/bench.txt" 2>&1
echo "darn-bench rc=$?"; grep -a -v '^#' "$out/gpu/bench.txt" | head -n 160
echo "bench: ${SECONDS}s"
left=$((570 - SECONDS))
timeout $left python3 bench/compare_torch.py --lib .devbundle/lib/libdarn.so.0 --peers-dir .peers \
  --commit "${DARN_COMMIT:-unknown}" --time-budget $((left - 40)) --config train,infer --n 1024,4096,16384 \
  --json "$out/gpu/peers.json" > "$out/gpu/peers.txt" 2>&1
echo "compare_torch rc=$?"; tail -n 40 "$out/gpu/peers.txt"
echo "total: ${SECONDS}s"
