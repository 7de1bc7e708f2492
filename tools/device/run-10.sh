#!/usr/bin/env bash
# Device run 10 (2026-12-02, session 6): the re-read backward as two kernels (darn_bwd_rowsums, then darn_bwd_cols:
# a thread per (chunk, group)); the Python out= fix. Every test binary, compute-sanitizer memcheck / racecheck over
# every kernel family (small calls), darn-demo; darn-bench at the re-read N with DARN_BWD_COLS_AHEAD = 2 (the
# bundle's lib) and = 1 (lib-d1), alternating; the Python package's GPU session.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out/gpu"
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt
run=.devbundle/run
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
SECONDS=0
for t in .devbundle/bin/test_*; do
  name=$(basename "$t")
  timeout 150 $run "$name" --ascii -j4 >"$out/gpu/$name.log" 2>&1; rc=$?
  echo "$name rc=$rc $(grep -a 'Synthesis' "$out/gpu/$name.log" | tail -n1)"
  [ $rc = 0 ] || grep -a -E "FAIL|fail|error" "$out/gpu/$name.log" | head -n 8
done
echo "tests: ${SECONDS}s"
for tool in memcheck racecheck; do
  timeout 100 compute-sanitizer --tool $tool --error-exitcode 99 $run test_gpu --ascii -j1 \
    --filter 'gpu/every_dispatch_entry_small' >"$out/gpu/sanitizer-$tool.log" 2>&1
  echo "$tool rc=$? $(grep -a -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/gpu/sanitizer-$tool.log" | tail -n1)"
done
echo "sanitizers: ${SECONDS}s"
$run darn-demo 2>&1 | tail -n 3
b() { # b LIBDIR TAG
  LD_LIBRARY_PATH=$PWD/.devbundle/$1 $run darn-bench --config train,f32,layernorm,mask --n 4096,8192,12288,16384,32768,65536 \
    --reps 20 --latency-m none --json "$out/bench-$2.json" > "$out/gpu/bench-$2.txt" 2>&1
  echo "== $2"; grep -a -E "^(copy|train|f32|layernorm|mask) " "$out/gpu/bench-$2.txt" | grep -a -E "bwd|copy" | head -n 30
}
b lib d2a; b lib-d1 d1a; b lib d2b; b lib-d1 d1b
echo "bench: ${SECONDS}s"
export DARN_LIBRARY=$PWD/.devbundle/lib/libdarn.so.0 PYTHONPATH=$PWD/python
timeout 120 python3 -m pytest python/tests/test_gpu.py -q -x -p no:cacheprovider 2>&1 | tail -n 15
timeout 60 python3 python/tools/gpu_overhead.py --repeats 3 --out "$out/gpu-overhead.json" > "$out/gpu/gpu-overhead.log" 2>&1
echo "gpu_overhead rc=$?"; tail -n 12 "$out/gpu/gpu-overhead.log"
echo "total: ${SECONDS}s"
tar czf "$out/gpu-logs.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"
