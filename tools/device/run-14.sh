#!/usr/bin/env bash
# Device run 14 (2026-12-03, session 9): the parallel-residual kernels (PAR bodies, DARN_PAR_CONFIGS), contract 4.
# One device call, short (the session had ~500 device-seconds left): every test binary (test_gpu's walk now
# reaches the parallel entries and gpu/parallel_residual compares them with the CPU; test_golden runs the
# contract-4 parallel jobs on the GPU), compute-sanitizer memcheck over the small walk, darn-demo, the
# wave64-emulation library under gpu/parallel_residual and test_golden, the Python GPU tests (log kept),
# gpu_overhead.py (3 repeats), darn-bench train and parallel.
# Bundle: build/nv90 (sm_90) as usual; lib-w64/libdarn.so.0 from build/nv-w64 packed into .devbundle/variants.tar.xz.
# Usage: tools/device/run-14.sh   (logs in $OUT/gpu-run14.tar.gz)
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out/gpu"
trap 'tar czf "$out/gpu-run14.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"' EXIT
SECONDS=0
[ -f .devbundle/variants.tar.xz ] && tar xJf .devbundle/variants.tar.xz -C .devbundle
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt PYTHONUNBUFFERED=1
run=.devbundle/run
mkdir -p "$out/gpu/suite"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu/suite/gpu.txt"
for t in .devbundle/bin/test_*; do
  name=$(basename "$t")
  timeout 120 $run "$name" --ascii -j4 >"$out/gpu/suite/$name.log" 2>&1
  echo "$name rc=$? $(grep -a 'Synthesis' "$out/gpu/suite/$name.log" | tail -n1)"
done
echo "suite: ${SECONDS}s"
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 99 "$run" test_gpu --ascii -j1 \
  --filter 'gpu/every_dispatch_entry_small' > "$out/gpu/suite/sanitizer-memcheck.log" 2>&1
echo "memcheck rc=$? $(grep -a -E 'ERROR SUMMARY' "$out/gpu/suite/sanitizer-memcheck.log" | tail -n1)"
$run darn-demo > "$out/gpu/suite/darn-demo.log" 2>&1; echo "darn-demo rc=$?"; tail -n 4 "$out/gpu/suite/darn-demo.log"
echo "sanitizer+demo: ${SECONDS}s"
for t in test_gpu test_golden; do
  f=; [ $t = test_gpu ] && f="--filter gpu/parallel_residual"
  LD_LIBRARY_PATH=$PWD/.devbundle/lib-w64:$PWD/.devbundle/lib timeout 90 .devbundle/bin/$t --ascii -j4 $f \
    > "$out/gpu/w64-$t.log" 2>&1; echo "lib-w64 $t rc=$? $(grep -a Synthesis "$out/gpu/w64-$t.log" | tail -n1)"
done
echo "w64: ${SECONDS}s"
export DARN_LIBRARY=$PWD/.devbundle/lib/libdarn.so.0 PYTHONPATH=$PWD/python
timeout 100 python3 -m pytest python/tests/test_gpu.py -q -p no:cacheprovider > "$out/gpu/pytest-gpu.log" 2>&1
echo "pytest rc=$?"; tail -n 6 "$out/gpu/pytest-gpu.log"
timeout 60 python3 python/tools/gpu_overhead.py --repeats 3 --budget 40 --out "$out/gpu/gpu-overhead.json" \
  > "$out/gpu/gpu-overhead.log" 2>&1
echo "gpu_overhead rc=$?"; tail -n 24 "$out/gpu/gpu-overhead.log"
echo "python: ${SECONDS}s"
timeout 100 .devbundle/run darn-bench --config train,parallel --reps 20 --latency-m 1,16 --json "$out/gpu/bench.json" \
  > "$out/gpu/bench.txt" 2>&1
echo "darn-bench rc=$?"; grep -a -v '^#' "$out/gpu/bench.txt" | head -n 80
echo "total: ${SECONDS}s"
