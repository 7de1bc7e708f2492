#!/usr/bin/env bash
# Device run 8 (2026-12-02, session 2): one barrier per row reduction (two shared-memory halves, reduce.h)
# A/B against run 7's lib-a (here lib-ref), and source-level profiles of the backward (N = 4096) and of the
# forward at N = 16384 for the next steps.
set -uo pipefail
out=${OUT:-out}; L=$out/logs; mkdir -p "$L"
B=$PWD/.devbundle
runv() { local v=$1; shift; local p=$1; shift; LD_LIBRARY_PATH=$B/$v:$B/lib "$B/bin/$p" "$@"; }
runv lib-1b test_gpu --ascii -j8 --filter 'gpu/every_dispatch_entry*' > "$L/entries-1b.log" 2>&1; grep -a Synthesis "$L/entries-1b.log"
for round in 1 2; do for v in lib-ref lib-1b; do
  runv $v darn-bench --config train,infer,f32,layernorm --n 1024,4096,8192,16384,32768 --reps 15 --latency-m none --json "$L/b-$v-$round.json" > "$L/bench-$v-$round.txt" 2>&1
  echo "== $v round $round"; grep -a -E "^(train|infer|f32|layernorm) " "$L/bench-$v-$round.txt" | awk '{printf "%s %s %s %s | ", $1,$3,$4,$7} NR%5==0 {print ""}'; echo
done; done
for spec in "train 4096 darn_bwd" "train 16384 darn_fwd" "train 16384 darn_bwd"; do
  set -- $spec
  LD_LIBRARY_PATH=$B/lib-1b:$B/lib timeout 150 ncu --clock-control none --section SpeedOfLight --section Occupancy --section SourceCounters --section InstructionStats --page source --print-source sass --csv -k regex:$3 --launch-skip 2 --launch-count 1 $B/bin/darn-bench --config $1 --n $2 --reps 2 --warmup 1 --latency-m none > "$L/src-$1-$2-$3.csv" 2>&1
  echo "src $spec: $(wc -l < "$L/src-$1-$2-$3.csv") lines"
done
tar czf "$out/logs.tar.gz" -C "$out" logs && rm -rf "$L"
