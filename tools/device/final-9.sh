#!/usr/bin/env bash
# Device run 9 (2026-12-02, session 5): the merged tree (kernels of runs 6-8, fp8 on the CPU, sequence-parallel
# partials, the Python package's out= and overhead work), bundled from the CI clone's build/nvidia:
# tests/device/run-on-gpu (every test binary, compute-sanitizer over every kernel family, darn-demo), darn-bench,
# and the Python package's GPU session.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt
( time tests/device/run-on-gpu "$out/gpu" ) 2>&1 | tail -n 45
echo "== darn-bench"
.devbundle/run darn-bench --json "$out/bench-darn.json" --csv "$out/bench-darn.csv" > "$out/gpu/bench-darn.txt" 2>&1
grep -a -E "^(train|infer|f32|layernorm|mask) " "$out/gpu/bench-darn.txt" | awk '{printf "%s %s %s %s | ", $1,$3,$4,$7} NR%6==0 {print ""}'
grep -a -i -A10 "small" "$out/gpu/bench-darn.txt" | head -n 14
echo "== python"
timeout 200 python/tools/gpu-session "$out/py" 2>&1 | tail -n 25
tar czf "$out/gpu-logs.tar.gz" -C "$out" gpu py && rm -rf "$out/gpu" "$out/py"
