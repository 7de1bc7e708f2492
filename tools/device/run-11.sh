#!/usr/bin/env bash
# Device run 11 (2026-12-02, session 6): the forward of rows with fp32 h at N = 12288 / 16384 — K = 4 (the bundle's
# lib, which spills) against the re-read forward (lib-k3: K <= 3 for fp32 h; lib-k2: K <= 2), alternating; the
# Python package's GPU tests (the fixed out= test) and gpu_overhead.py's breakdown.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out/gpu"
run=.devbundle/run
SECONDS=0
b() { # b LIBDIR TAG
  LD_LIBRARY_PATH=$PWD/.devbundle/$1 $run darn-bench --config train,f32,layernorm,mask --n 8192,12288,16384,32768 \
    --reps 20 --latency-m none --json "$out/bench-$2.json" > "$out/gpu/bench-$2.txt" 2>&1
  echo "== $2"; grep -a -E "^(copy|train|f32|layernorm|mask) " "$out/gpu/bench-$2.txt" | grep -a -E "fwd|copy" | head -n 30
}
b lib k4a; b lib-k3 k3a; b lib-k2 k2a; b lib k4b; b lib-k3 k3b; b lib-k2 k2b
echo "bench: ${SECONDS}s"
export DARN_LIBRARY=$PWD/.devbundle/lib/libdarn.so.0 PYTHONPATH=$PWD/python
timeout 120 python3 -m pytest python/tests/test_gpu.py python/tests/test_distributed.py -q -p no:cacheprovider 2>&1 | tail -n 6
timeout 90 python3 python/tools/gpu_overhead.py --repeats 3 --out "$out/gpu-overhead.json" > "$out/gpu/gpu-overhead.log" 2>&1
echo "gpu_overhead rc=$?"; python3 - "$out/gpu-overhead.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); us = r.get("us", {})
for k in sorted(us):
    if k.startswith(("darn.", "part.", "torch.", "eager")): print("%-50s %8.2f" % (k, us[k]))
print("errors:", r.get("errors"))
PY
echo "total: ${SECONDS}s"
tar czf "$out/gpu-logs.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"
