#!/usr/bin/env bash
# Device run 18 (2026-12-05, session 12): the inference kernels (DARN_INFER_CONFIGS, darn_fwd<..., NODROP = true>:
# forward calls without dropout and rowscale of 16-bit h, built without the Philox path), in one call:
#   1. the GPU test binaries (every dispatch entry bit for bit against the CPU, the new inference entries among them)
#   2. darn-bench infer / train, new (lib) against the previous commit's library (lib-old, 4d709b2), each in its own
#      process, with the row geometry's K as chosen and forced to K = 1 / 2 (DARN_GPU_FORCE_K), two rounds
#   3. compute-sanitizer memcheck over gpu/every_dispatch_entry_small, if time is left
# Bundle: build/nv90 as usual, plus lib-old/libdarn.so.0 (build of 4d709b2).
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out/gpu"
trap 'tar czf "$out/gpu-run18.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"' EXIT
SECONDS=0
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for t in test_gpu test_golden test_dispatch test_forward test_fp8 test_parallel; do
  timeout 150 .devbundle/run $t -j4 > "$out/gpu/$t.log" 2>&1
  echo "$t rc=$? $(grep -a Synthesis "$out/gpu/$t.log" | tail -n1)"
done
echo "tests: ${SECONDS}s"
for r in 1 2; do
  for k in 0 1 2; do
    for lib in lib-old lib; do
      DARN_GPU_FORCE_K=$k LD_LIBRARY_PATH=$PWD/.devbundle/$lib:$PWD/.devbundle/lib timeout 40 .devbundle/bin/darn-bench \
        --config infer --n 768,1024,4096,8192,16384 --reps 20 --latency-m none \
        --json "$out/gpu/bench-$lib-k$k-$r.json" > "$out/gpu/bench-$lib-k$k-$r.txt" 2>&1
      echo "== darn-bench infer ($lib, K forced $k, round $r) rc=$?"; grep -a -E "^(copy|infer) " "$out/gpu/bench-$lib-k$k-$r.txt"
    done
  done
done
for lib in lib-old lib; do
  LD_LIBRARY_PATH=$PWD/.devbundle/$lib:$PWD/.devbundle/lib timeout 40 .devbundle/bin/darn-bench --config train \
    --n 1024,4096 --reps 20 --latency-m none --json "$out/gpu/bench-train-$lib.json" > "$out/gpu/bench-train-$lib.txt" 2>&1
  echo "== darn-bench train ($lib) rc=$?"; grep -a -E "^(copy|train) " "$out/gpu/bench-train-$lib.txt"
done
echo "bench: ${SECONDS}s"
left=$((420 - SECONDS))
if [ $left -gt 60 ]; then
  timeout $left compute-sanitizer --tool memcheck --target-processes all --error-exitcode 9 .devbundle/run test_gpu -j1 \
    --filter 'gpu/every_dispatch_entry_small' \
    > "$out/gpu/memcheck.log" 2>&1
  echo "memcheck rc=$? $(grep -a -E 'ERROR SUMMARY|Synthesis' "$out/gpu/memcheck.log" | tail -n2 | tr '\n' ' ')"
fi
echo "total: ${SECONDS}s"
