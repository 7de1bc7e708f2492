#!/usr/bin/env bash
# First device run of kernels v2 (2026-12-02): correctness of every dispatch entry, golden digests, and
# darn-bench with K variants (DARN_GPU_FORCE_K), prefetch on/off builds. Writes under $OUT.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out/logs"
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/logs/gpu.txt"
run=.devbundle/run
( time $run test_gpu --ascii -j8 --filter 'gpu/every_dispatch_entry*' ) > "$out/logs/test_gpu_entries.log" 2>&1
tail -n 3 "$out/logs/test_gpu_entries.log"
for t in test_golden test_gpu_rng; do $run $t --ascii -j4 > "$out/logs/$t.log" 2>&1; grep -a Synthesis "$out/logs/$t.log" | tail -n1; done
grep -a -B2 -A6 "Assertion Failed" "$out/logs/test_gpu_entries.log" | head -n 40
# speed: default choice, then each K forced
$run darn-bench --config train,infer,f32,layernorm --reps 20 --latency-m 1,16 --latency-n 4096 --json "$out/bench-default.json" > "$out/logs/bench-default.txt" 2>&1
grep -a -E "^(train|infer|f32|layernorm)" "$out/logs/bench-default.txt" | head -n 120
for k in 1 2 3 4; do
  DARN_GPU_FORCE_K=$k $run darn-bench --config train,infer --n 1024,2048,4096,5120,8192,12288,16384 --reps 15 --latency-m none --json "$out/bench-k$k.json" > "$out/logs/bench-k$k.txt" 2>&1
  echo "== K=$k"; grep -a -E "^(train|infer)" "$out/logs/bench-k$k.txt" | head -n 40
done
mkdir -p "$out/logs"
for spec in "train 4096 darn_bwd" "train 16384 darn_bwd" "train 4096 darn_fwd"; do
  set -- $spec
  timeout 120 ncu --clock-control none --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis \
    -k regex:$3 --launch-skip 2 --launch-count 1 $run darn-bench --config $1 --n $2 --reps 2 --warmup 1 --latency-m none > "$out/logs/ncu-$1-$2-$3.txt" 2>&1
  grep -a -E "Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Block Size|Grid Size|Memory Throughput" "$out/logs/ncu-$1-$2-$3.txt" | head -n 12
done
tar czf "$out/logs.tar.gz" -C "$out" logs && rm -rf "$out/logs"
