#!/usr/bin/env bash
# Device run 5 (2026-12-02): the final kernels (backward K <= 2, run-time policy K <= 2): the dispatch-table
# walk and goldens, then darn-bench train/infer/layernorm.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt
.devbundle/run test_gpu --ascii -j8 --filter 'gpu/every_dispatch_entry*' > "$out/entries.log" 2>&1; grep -a Synthesis "$out/entries.log"
grep -a -A4 "Assertion Failed" "$out/entries.log" | head -12
.devbundle/run test_gpu --ascii -j8 --filter 'gpu/edge_probabilities_and_empty_batch' 2>&1 | grep -a Synthesis
.devbundle/run test_golden --ascii 2>&1 | grep -a Synthesis
.devbundle/run darn-bench --config train,infer,layernorm --reps 20 --latency-m 16 --latency-n 4096 --json "$out/bench-final.json" > "$out/bench-final.txt" 2>&1
grep -a -E "^(train|infer|layernorm) " "$out/bench-final.txt" | awk '{printf "%s %s %s %s | ", $1,$3,$4,$7} NR%4==0 {print ""}'
