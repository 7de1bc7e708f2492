#!/usr/bin/env bash
# Device run 6 (2026-12-02, session 2): vendor 16-bit conversions (NVIDIA cvt, compat.h) and the inference
# specialization of h. Correctness of the new library (exhaustive conversion check, the dispatch-table walk,
# goldens), darn-bench A/B against the previous kernels (.devbundle/lib-base, alternating), and Nsight Compute
# profiles (occupancy, issue, stalls, instruction mix) of infer 1024 / train fwd 4096 / train bwd 4096.
set -uo pipefail
out=${OUT:-out}; L=$out/logs; mkdir -p "$L"
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt
B=$PWD/.devbundle
runv() { local v=$1; shift; local p=$1; shift; LD_LIBRARY_PATH=$B/$v:$B/lib "$B/bin/$p" "$@"; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$L/gpu.txt"
runv lib test_gpu --ascii -j8 --filter 'gpu/conversions_exhaustive' > "$L/cvt.log" 2>&1; grep -a -E "Synthesis|differ" "$L/cvt.log"
runv lib test_gpu --ascii -j8 --filter 'gpu/every_dispatch_entry*' > "$L/entries.log" 2>&1; grep -a Synthesis "$L/entries.log"
grep -a -A4 "Assertion Failed" "$L/entries.log" | head -12
runv lib test_golden --ascii > "$L/golden.log" 2>&1; grep -a Synthesis "$L/golden.log"
ns=1024,4096,8192,16384
for round in 1 2; do for v in lib-base lib; do
  runv $v darn-bench --config train,infer,f32,layernorm --n $ns --reps 15 --latency-m none --json "$out/bench-$v-$round.json" > "$L/bench-$v-$round.txt" 2>&1
  echo "== $v round $round"; grep -a -E "^(train|infer|f32|layernorm) " "$L/bench-$v-$round.txt" | awk '{printf "%s %s %s %s | ", $1,$3,$4,$7} NR%4==0 {print ""}'
done; done
S="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section InstructionStats --section MemoryWorkloadAnalysis"
for spec in "infer 1024 darn_fwd 0" "infer 1024 darn_fwd 1" "train 4096 darn_fwd 0" "train 4096 darn_fwd 1" "train 4096 darn_bwd 0"; do
  set -- $spec
  DARN_GPU_FORCE_K=$4 timeout 120 ncu --clock-control none $S -k regex:$3 --launch-skip 2 --launch-count 1 $B/run darn-bench --config $1 --n $2 --reps 2 --warmup 1 --latency-m none > "$L/ncu-$1-$2-$3-k$4.txt" 2>&1
  echo "== ncu $spec"; grep -a -E "Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Block Size|Grid Size|Issue Slots Busy|Executed Ipc A|No Eligible|Compute \(SM\) Th" "$L/ncu-$1-$2-$3-k$4.txt" | head -n 16
done
# per-instruction counts of the two forward kernels (source page, SASS)
for spec in "infer 1024 darn_fwd" "train 4096 darn_fwd"; do
  set -- $spec
  timeout 150 ncu --clock-control none --section SourceCounters --section InstructionStats --page source --print-source sass --csv -k regex:$3 --launch-skip 2 --launch-count 1 $B/run darn-bench --config $1 --n $2 --reps 2 --warmup 1 --latency-m none > "$L/src-$1-$2-$3.csv" 2>&1
  echo "src $spec: $(wc -l < "$L/src-$1-$2-$3.csv") lines"
done
tar czf "$out/logs.tar.gz" -C "$out" logs && rm -rf "$L"
