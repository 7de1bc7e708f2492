#!/usr/bin/env bash
# Device run 17 (2026-12-05, session 11): Philox's 32 x 32 -> 64 multiplies as __umulhi + a * b on NVIDIA
# (hip/compat.h, DARN_PHILOX_MULHILO; 27 fewer SASS instructions per Philox block), in one call:
#   1. the GPU test binaries on the new library (bits must not move: golden digests, every dispatch entry)
#   2. darn-bench train / parallel / infer, new (lib) against the previous commit's library (lib-old, 8cd4a8d),
#      and against lib-l2-2 / lib-l2-4 (this tree built with -DDARN_L2_AHEAD=2 / 4: the L2 hints of the rows
#      ahead), each library in its own process, round-robin over two rounds so drift shows
#   3. bench/compare_torch.py, train and infer at N = 1024, 4096, 16384: darn (new) against every peer, do_bench
# Bundle: build/nv90 as usual, plus lib-old/libdarn.so.0 (build of 8cd4a8d), lib-l2-2/ and lib-l2-4/ (their
# libdarn.so.0); .peers carried.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out/gpu"
trap 'tar czf "$out/gpu-run17.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"' EXIT
SECONDS=0
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=$PWD/build/inductor TRITON_CACHE_DIR=$PWD/build/triton
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for t in test_gpu test_gpu_large test_gpu_rng test_fp8 test_golden test_parallel test_partials test_backward; do
  timeout 150 .devbundle/run $t --ascii -j4 > "$out/gpu/$t.log" 2>&1
  echo "$t rc=$? $(grep -a Synthesis "$out/gpu/$t.log" | tail -n1)"
done
echo "tests: ${SECONDS}s"
N=768,1024,4096,8192,16384,65536
for r in 1 2; do
  for lib in lib-old lib lib-l2-2 lib-l2-4; do
    LD_LIBRARY_PATH=$PWD/.devbundle/$lib:$PWD/.devbundle/lib timeout 60 .devbundle/bin/darn-bench \
      --config train,parallel,infer --n $N --reps 20 --latency-m none \
      --json "$out/gpu/bench-$lib-$r.json" > "$out/gpu/bench-$lib-$r.txt" 2>&1
    echo "== darn-bench ($lib, round $r) rc=$?"; grep -a -E "^(copy|train|parallel|infer) " "$out/gpu/bench-$lib-$r.txt"
  done
done
echo "bench: ${SECONDS}s"
left=$((570 - SECONDS))
timeout $left python3 bench/compare_torch.py --lib .devbundle/lib/libdarn.so.0 --peers-dir .peers \
  --commit "${DARN_COMMIT:-unknown}" --time-budget $((left - 40)) --config train,infer --n 1024,4096,16384 \
  --json "$out/gpu/peers.json" > "$out/gpu/peers.txt" 2>&1
echo "compare_torch rc=$?"; tail -n 40 "$out/gpu/peers.txt"
echo "total: ${SECONDS}s"
