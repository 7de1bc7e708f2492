#!/usr/bin/env bash
# Device run 13 (2026-12-03, session 8): the tree with the cluster experiment removed, forward rows of fp32 h at
# K <= 3 (their K = 4 kernels spilled), DARN_BWD_COLS_AHEAD = 1 and the compile-time fp8 forward configurations
# (DARN_FP8_CONFIGS). Two device calls, each under the per-call limit:
#   checks  tests/device/run-on-gpu (every test binary, compute-sanitizer memcheck / racecheck / initcheck over the
#           dispatch-table walk, darn-demo), the wave64-emulation library (lib-w64) under the GPU test binaries,
#           the Python GPU tests, gpu_overhead.py (3 repeats), darn-bench (every config, and fp8 against train)
#   peers   bench/compare_torch.py, train and infer, darn against every peer, do_bench timing
# Bundle: build/nv90 (sm_90) as usual; lib-w64/libdarn.so.0 from a build with -DDARN_EMULATE_WAVE64=ON
# -DDARN_BUILD_TESTS=OFF -DDARN_BUILD_BENCH=OFF, stripped and packed into .devbundle/variants.tar.xz; .peers carried.
# Usage: tools/device/run-13.sh checks|peers   (logs in $OUT/gpu-STAGE.tar.gz)
set -uo pipefail
stage=${1:?checks or peers}
out=${OUT:-out}; mkdir -p "$out/gpu"
trap 'tar czf "$out/gpu-$stage.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"' EXIT
SECONDS=0
[ -f .devbundle/variants.tar.xz ] && tar xJf .devbundle/variants.tar.xz -C .devbundle
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=$PWD/build/inductor TRITON_CACHE_DIR=$PWD/build/triton
if [ "$stage" = checks ]; then
  tests/device/run-on-gpu "$out/gpu/suite" 2>&1 | tail -n 40
  echo "suite: ${SECONDS}s"
  echo "== wave64 emulation (lib-w64): the GPU test binaries"
  for t in test_gpu test_gpu_large test_golden test_gpu_rng test_fp8; do
    LD_LIBRARY_PATH=$PWD/.devbundle/lib-w64:$PWD/.devbundle/lib timeout 200 .devbundle/bin/$t --ascii -j4 \
      > "$out/gpu/w64-$t.log" 2>&1; echo "lib-w64 $t rc=$? $(grep -a Synthesis "$out/gpu/w64-$t.log" | tail -n1)"
  done
  echo "w64: ${SECONDS}s"
  export DARN_LIBRARY=$PWD/.devbundle/lib/libdarn.so.0 PYTHONPATH=$PWD/python
  timeout 150 python3 -m pytest python/tests/test_gpu.py -q -p no:cacheprovider 2>&1 | tail -n 6
  timeout 120 python3 python/tools/gpu_overhead.py --repeats 3 --budget 90 --out "$out/gpu/gpu-overhead.json" \
    > "$out/gpu/gpu-overhead.log" 2>&1
  echo "gpu_overhead rc=$?"; tail -n 40 "$out/gpu/gpu-overhead.log"
  .devbundle/run darn-bench --reps 20 --json "$out/gpu/bench.json" > "$out/gpu/bench.txt" 2>&1
  echo "darn-bench rc=$?"; grep -a -v '^#' "$out/gpu/bench.txt" | head -n 140
  .devbundle/run darn-bench --config fp8,train --n 1024,4096,8192,16384,65536 --reps 20 --latency-m none \
    --json "$out/gpu/bench-fp8.json" > "$out/gpu/bench-fp8.txt" 2>&1
  echo "== fp8 vs train"; grep -a -E "^(copy|train|fp8) " "$out/gpu/bench-fp8.txt"
  echo "checks: ${SECONDS}s"; exit 0
fi
timeout 540 python3 bench/compare_torch.py --lib .devbundle/lib/libdarn.so.0 --peers-dir .peers --commit "${DARN_COMMIT:-unknown}" \
  --time-budget 400 --config train,infer --n 1024,4096,16384,65536 --json "$out/gpu/peers.json" > "$out/gpu/peers.txt" 2>&1
echo "compare_torch rc=$?"; tail -n 80 "$out/gpu/peers.txt"
echo "peers: ${SECONDS}s"
