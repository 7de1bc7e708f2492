#!/usr/bin/env bash
# Device run 7 (2026-12-02, session 2): register budget A/B. Libraries in .devbundle/lib-*:
#   lib-ref  run 6's library (bec101a);  lib-a  + row-reduction masks (reduce.h), infer case only for 16-bit h;
#   lib-mb2  lib-a with __launch_bounds__(512, 2) (64 registers, spills);  lib-s3  lib-a with kernels of at most
#   256 threads and __launch_bounds__(256, 3) (85 registers): only rows of P <= 256 may run on it.
set -uo pipefail
out=${OUT:-out}; L=$out/logs; mkdir -p "$L"
B=$PWD/.devbundle
runv() { local v=$1; shift; local p=$1; shift; LD_LIBRARY_PATH=$B/$v:$B/lib "$B/bin/$p" "$@"; }
for round in 1 2; do for v in lib-ref lib-a lib-mb2 lib-s3; do
  { runv $v darn-bench --config train,f32,layernorm --n 1024,4096 --reps 15 --latency-m none --json "$L/b-$v-$round-t.json"
    runv $v darn-bench --config infer --n 1024,4096,8192 --reps 15 --latency-m none --json "$L/b-$v-$round-i.json"; } > "$L/bench-$v-$round.txt" 2>&1
  echo "== $v round $round"; grep -a -E "^(train|infer|f32|layernorm) " "$L/bench-$v-$round.txt" | awk '{printf "%s %s %s %s | ", $1,$3,$4,$7} NR%4==0 {print ""}'; echo
done; done
runv lib-a test_gpu --ascii -j8 --filter 'gpu/every_dispatch_entry*' > "$L/entries-a.log" 2>&1; grep -a Synthesis "$L/entries-a.log"
tar czf "$out/logs.tar.gz" -C "$out" logs && rm -rf "$L"
