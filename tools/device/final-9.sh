#!/usr/bin/env bash
# Device run 9 (2026-12-02, session 2): the merged tree (kernels of runs 6-8, fp8 on the CPU, sequence-parallel
# partials) — tests/device/run-on-gpu (every test binary, compute-sanitizer over every kernel family, darn-demo),
# the wave64-emulation build's GPU tests, and darn-bench (every config, all N, small-M latency).
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt
( time tests/device/run-on-gpu "$out/gpu" ) 2>&1 | tail -n 45
echo "== wave64 emulation: GPU test binaries on lib-w64"
for t in test_gpu test_gpu_large test_golden test_gpu_rng test_partials; do
  LD_LIBRARY_PATH=$PWD/.devbundle/lib-w64:$PWD/.devbundle/lib .devbundle/bin/$t --ascii -j8 > "$out/gpu/w64-$t.log" 2>&1
  echo "$t: $(grep -a Synthesis "$out/gpu/w64-$t.log" | tail -n1)"
done
echo "== darn-bench"
.devbundle/run darn-bench --json "$out/bench-darn.json" --csv "$out/bench-darn.csv" > "$out/gpu/bench-darn.txt" 2>&1
grep -a -E "^(train|infer|f32|layernorm|mask) " "$out/gpu/bench-darn.txt" | awk '{printf "%s %s %s %s | ", $1,$3,$4,$7} NR%6==0 {print ""}'
grep -a -A12 -i "small M\|latency" "$out/gpu/bench-darn.txt" | head -n 16
tar czf "$out/gpu-logs.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"
