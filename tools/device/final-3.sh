#!/usr/bin/env bash
# Device run 3 (2026-12-02): the committed tree's GPU suite (tests/device/run-on-gpu: every binary, the
# dispatch-table walk, compute-sanitizer memcheck/racecheck/initcheck over every kernel family), the
# wave64-emulation build's GPU suite, darn-bench, and the Python package's GPU session.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt
( time tests/device/run-on-gpu "$out/gpu" ) 2>&1 | tail -n 40
echo "== wave64 emulation: every GPU test binary on lib-w64"
for t in test_gpu test_gpu_large test_golden test_gpu_rng; do
  LD_LIBRARY_PATH=$PWD/.devbundle/lib-w64:$PWD/.devbundle/lib .devbundle/bin/$t --ascii -j8 > "$out/gpu/w64-$t.log" 2>&1
  echo "$t: $(grep -a Synthesis "$out/gpu/w64-$t.log" | tail -n1)"
done
echo "== darn-bench"
.devbundle/run darn-bench --json "$out/bench-darn.json" --csv "$out/bench-darn.csv" > "$out/gpu/bench-darn.txt" 2>&1
grep -a -E "^(train|infer|f32|layernorm|mask) " "$out/gpu/bench-darn.txt" | awk '{printf "%s %s %s %s | ", $1,$3,$4,$7} NR%4==0 {print ""}'
echo "== python"
timeout 240 python/tools/gpu-session "$out/py" 2>&1 | tail -n 25
tar czf "$out/gpu-logs.tar.gz" -C "$out" gpu py && rm -rf "$out/gpu" "$out/py"
