#!/usr/bin/env bash
# Second device run of kernels v2 (2026-12-02): the v2a tuning step; wave64 emulation; grid and prefetch A/B.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out/logs"; L=$out/logs
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt
b=.devbundle
runv() { local lib=$1; shift; LD_LIBRARY_PATH="$PWD/$b/$lib:$PWD/$b/lib" "$b/bin/$1" "${@:2}"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$L/gpu.txt"
echo "== correctness, default build"
runv lib test_gpu --ascii -j8 --filter 'gpu/every_dispatch_entry*' > "$L/entries.log" 2>&1; grep -a Synthesis "$L/entries.log"
runv lib test_golden --ascii > "$L/golden.log" 2>&1; grep -a Synthesis "$L/golden.log"
echo "== correctness, wave64 emulation build"
runv lib-w64 test_gpu --ascii -j8 --filter 'gpu/every_dispatch_entry*' > "$L/w64-entries.log" 2>&1; grep -a Synthesis "$L/w64-entries.log"
runv lib-w64 test_golden --ascii > "$L/w64-golden.log" 2>&1; grep -a Synthesis "$L/w64-golden.log"
grep -a -A5 "Assertion Failed" "$L/entries.log" "$L/w64-entries.log" | head -20
B="--reps 20 --latency-m 1,16 --latency-n 4096"
echo "== bench default"; runv lib darn-bench --config train,infer,f32,layernorm $B --json "$out/b-default.json" > "$L/b-default.txt" 2>&1
grep -a -E "^(train|infer|f32|layernorm) " "$L/b-default.txt" | awk '{printf "%s %s %s %s | ", $1,$3,$4,$7} NR%4==0 {print ""}'
echo; echo "== bench full grid"; DARN_GPU_GRID=full runv lib darn-bench --config train,infer --latency-m none --reps 20 --json "$out/b-full.json" > "$L/b-full.txt" 2>&1
grep -a -E "^(train|infer) " "$L/b-full.txt" | awk '{printf "%s %s %s %s | ", $1,$3,$4,$7} NR%4==0 {print ""}'
echo; echo "== bench prefetch build"; runv lib-pf darn-bench --config train,infer --latency-m none --reps 20 --json "$out/b-pf.json" > "$L/b-pf.txt" 2>&1
grep -a -E "^(train|infer) " "$L/b-pf.txt" | awk '{printf "%s %s %s %s | ", $1,$3,$4,$7} NR%4==0 {print ""}'
echo; echo "== bench prefetch build, full grid"; DARN_GPU_GRID=full runv lib-pf darn-bench --config train --latency-m none --reps 20 --json "$out/b-pf-full.json" > "$L/b-pf-full.txt" 2>&1
grep -a -E "^(train) " "$L/b-pf-full.txt" | awk '{printf "%s %s %s %s | ", $1,$3,$4,$7} NR%4==0 {print ""}'
for k in 2 4; do echo; echo "== K=$k"; DARN_GPU_FORCE_K=$k runv lib darn-bench --config train,infer --n 1024,2048,4096,8192 --latency-m none --reps 15 > "$L/b-k$k.txt" 2>&1
  grep -a -E "^(train|infer) " "$L/b-k$k.txt" | awk '{printf "%s %s %s %s | ", $1,$3,$4,$7} NR%4==0 {print ""}'; done
echo
timeout 100 ncu --clock-control none --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section InstructionStats \
  -k regex:darn_fwd --launch-skip 2 --launch-count 1 $b/run darn-bench --config train --n 4096 --reps 2 --warmup 1 --latency-m none > "$L/ncu-fwd-4096.txt" 2>&1
grep -a -E "Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Executed Ipc|Compute \(SM\)" "$L/ncu-fwd-4096.txt"
tar czf "$out/logs.tar.gz" -C "$out" logs && rm -rf "$out/logs"
