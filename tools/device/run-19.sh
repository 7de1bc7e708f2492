#!/usr/bin/env bash
# Device run 19 (2026-12-05, session 12): the inference rows' K cap of 1 (src/dispatch.c fwd_cap) after run 18:
# test_gpu (every dispatch entry) and test_golden, then darn-bench infer, lib (this tree) against lib-old (4d709b2),
# two rounds. Bundle: test_gpu, test_golden, darn-bench of build/nv90, plus lib-old/libdarn.so.0.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out/gpu"
trap 'tar czf "$out/gpu-run19.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"' EXIT
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for t in test_gpu test_golden; do
  timeout 150 .devbundle/run $t -j4 > "$out/gpu/$t.log" 2>&1
  echo "$t rc=$? $(grep -a Synthesis "$out/gpu/$t.log" | tail -n1)"
done
for r in 1 2; do
  for lib in lib-old lib; do
    LD_LIBRARY_PATH=$PWD/.devbundle/$lib:$PWD/.devbundle/lib timeout 40 .devbundle/bin/darn-bench --config infer,train \
      --n 768,1024,4096,8192,16384 --reps 20 --latency-m none --json "$out/gpu/bench-$lib-$r.json" > "$out/gpu/bench-$lib-$r.txt" 2>&1
    echo "== darn-bench ($lib, round $r) rc=$?"; grep -a -E "^(copy|infer|train) " "$out/gpu/bench-$lib-$r.txt"
  done
done
