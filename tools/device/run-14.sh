#!/usr/bin/env bash
# Device run 14 (2026-12-03, session 9): the parallel-residual kernels (PAR bodies, DARN_PAR_CONFIGS), contract 4.
# One device call under the per-call limit (the session had ~720 device-seconds):
#   tests/device/run-on-gpu (every test binary: test_gpu's walk now reaches the parallel entries and
#   gpu/parallel_residual compares them with the CPU; test_golden runs the contract-4 parallel jobs on the GPU;
#   compute-sanitizer over the small walk), the wave64-emulation library under test_gpu / test_golden, the Python
#   GPU tests (log kept), gpu_overhead.py (3 repeats), darn-bench train / parallel / infer / f32 (fwd and bwd).
# Bundle: build/nv90 (sm_90) as usual; lib-w64/libdarn.so.0 from build/nv-w64 packed into .devbundle/variants.tar.xz.
# Usage: tools/device/run-14.sh   (logs in $OUT/gpu-run14.tar.gz)
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out/gpu"
trap 'tar czf "$out/gpu-run14.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"' EXIT
SECONDS=0
[ -f .devbundle/variants.tar.xz ] && tar xJf .devbundle/variants.tar.xz -C .devbundle
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt PYTHONUNBUFFERED=1
tests/device/run-on-gpu "$out/gpu/suite" 2>&1 | tail -n 40
echo "suite: ${SECONDS}s"
echo "== wave64 emulation (lib-w64)"
for t in test_gpu test_golden; do
  LD_LIBRARY_PATH=$PWD/.devbundle/lib-w64:$PWD/.devbundle/lib timeout 150 .devbundle/bin/$t --ascii -j4 \
    > "$out/gpu/w64-$t.log" 2>&1; echo "lib-w64 $t rc=$? $(grep -a Synthesis "$out/gpu/w64-$t.log" | tail -n1)"
done
echo "w64: ${SECONDS}s"
export DARN_LIBRARY=$PWD/.devbundle/lib/libdarn.so.0 PYTHONPATH=$PWD/python
timeout 120 python3 -m pytest python/tests/test_gpu.py -q -p no:cacheprovider > "$out/gpu/pytest-gpu.log" 2>&1
echo "pytest rc=$?"; tail -n 8 "$out/gpu/pytest-gpu.log"
timeout 90 python3 python/tools/gpu_overhead.py --repeats 3 --budget 60 --out "$out/gpu/gpu-overhead.json" \
  > "$out/gpu/gpu-overhead.log" 2>&1
echo "gpu_overhead rc=$?"; tail -n 30 "$out/gpu/gpu-overhead.log"
echo "python: ${SECONDS}s"
.devbundle/run darn-bench --config train,parallel,infer,f32 --reps 20 --json "$out/gpu/bench.json" > "$out/gpu/bench.txt" 2>&1
echo "darn-bench rc=$?"; grep -a -v '^#' "$out/gpu/bench.txt" | head -n 120
echo "total: ${SECONDS}s"
