#!/usr/bin/env bash
# Device run 12 (prepared 2026-12-02, session 6; not run yet: the session's device time ran out). First the merged
# tree's checks: tests/device/run-on-gpu (every test binary — test_golden now runs the fp8 jobs on the GPU, test_api
# the GPU workspace sizes — compute-sanitizer, darn-demo) and the Python GPU tests (the fp8 out test is new). Then
# runs 10 and 11's A/B again, this time with the alternative library first on the search path (.devbundle/run puts
# the bundle's lib/ first, so those runs timed the bundle's library twice): the re-read backward's rows in flight
# (DARN_BWD_COLS_AHEAD 2 = lib, 1 = lib-d1) and the forward of fp32-h rows at N = 12288 / 16384 (K <= 4 = lib,
# K <= 3 = lib-k3, K <= 2 = lib-k2), and the backward at N = 768 / 5120, whose rows in registers leave 25 / 38 % of
# the group slots idle, against the two-kernel re-read backward (lib-u8: DARN_BWD_MIN_UTIL = 0.8), alternating;
# and the cluster kernels (lib-cl: rows split over a thread block cluster of 2 / 4 / 8 blocks — the backward's re-read
# rows, the forward's re-read rows and its fp32-h / fp32-weight rows at K = 3, 4, which spill; hip/bwd.hip
# darn_bwd_cluster, hip/fwd.hip darn_fwd_cluster) — first their bits (the dispatch-table walk, test_forward,
# test_backward, test_partials, test_golden with lib-cl first on the path), then their speed at N = 12288 ... 65536;
# gpu_overhead.py's breakdown.
# Bundle: build/nvidia (sm_90) as usual, then the variants' libdarn.so.0 into .devbundle/lib-{d1,k3,k2}/ from builds
# configured with -DCMAKE_CUDA_ARCHITECTURES=90 -DDARN_BUILD_TESTS=OFF and -DCMAKE_CUDA_FLAGS=-DDARN_BWD_COLS_AHEAD=1
# (d1), -DCMAKE_C_FLAGS=-DDARN_FWD_F32H_MAX_K=3 (k3) or =2 (k2), -DCMAKE_C_FLAGS=-DDARN_BWD_MIN_UTIL=0.8 (u8),
# -DCMAKE_CUDA_FLAGS=-DDARN_CLUSTER=1 (cl), -DDARN_EMULATE_WAVE64=ON (w64); strip them and pack lib-*/ into
# .devbundle/variants.tar.xz.
# Usage: tools/device/run-12.sh checks|bench   (two device calls, each under the 600 s limit; logs in $OUT/gpu-STAGE.tar.gz)
set -uo pipefail
stage=${1:?checks or bench}
out=${OUT:-out}; mkdir -p "$out/gpu"
trap 'tar czf "$out/gpu-$stage.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"' EXIT
SECONDS=0
# The variant libraries travel xz-compressed (the carry limit is 64 MiB): .devbundle/variants.tar.xz holds lib-*/.
[ -f .devbundle/variants.tar.xz ] && tar xJf .devbundle/variants.tar.xz -C .devbundle
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt
if [ "$stage" = checks ]; then
tests/device/run-on-gpu "$out/gpu/suite" 2>&1 | tail -n 30
echo "suite: ${SECONDS}s"
echo "== wave64 emulation (lib-w64): the GPU test binaries"
for t in test_gpu test_gpu_large test_golden test_gpu_rng test_fp8; do
  LD_LIBRARY_PATH=$PWD/.devbundle/lib-w64:$PWD/.devbundle/lib timeout 200 .devbundle/bin/$t --ascii -j4 \
    > "$out/gpu/w64-$t.log" 2>&1; echo "lib-w64 $t rc=$? $(grep -a Synthesis "$out/gpu/w64-$t.log" | tail -n1)"
done
for t in "test_gpu --filter gpu/every_dispatch_entry*" test_forward test_backward test_partials test_golden; do
  LD_LIBRARY_PATH=$PWD/.devbundle/lib-cl:$PWD/.devbundle/lib timeout 200 .devbundle/bin/$t --ascii -j4 \
    > "$out/gpu/cl-${t%% *}.log" 2>&1; echo "lib-cl $t rc=$? $(grep -a Synthesis "$out/gpu/cl-${t%% *}.log" | tail -n1)"
done
export DARN_LIBRARY=$PWD/.devbundle/lib/libdarn.so.0 PYTHONPATH=$PWD/python
timeout 150 python3 -m pytest python/tests/test_gpu.py -q -p no:cacheprovider 2>&1 | tail -n 6
timeout 60 python3 python/tools/gpu_overhead.py --repeats 1 --out "$out/gpu/gpu-overhead.json" > "$out/gpu/gpu-overhead.log" 2>&1
echo "gpu_overhead rc=$?"; python3 - "$out/gpu/gpu-overhead.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); us = r.get("us", {})
for k in sorted(us):
    if k.startswith("part."): print("%-50s %8.2f" % (k, us[k]))
print("errors:", r.get("errors"))
PY
echo "checks: ${SECONDS}s"; exit 0
fi
b() { # b LIBDIR TAG DIR NS
  LD_LIBRARY_PATH=$PWD/.devbundle/$1:$PWD/.devbundle/lib .devbundle/bin/darn-bench --config train,f32,layernorm,mask \
    --n "$4" --reps 20 --latency-m none --json "$out/gpu/bench-$2.json" > "$out/gpu/bench-$2.txt" 2>&1
  echo "== $2"; grep -a -E "^(copy|train|f32|layernorm|mask) " "$out/gpu/bench-$2.txt" | grep -a -E "$3 |copy" | head -n 60
}
for r in a b; do
  b lib k4$r fwd 12288,16384; b lib-k3 k3$r fwd 12288,16384; b lib-k2 k2$r fwd 12288,16384
  b lib d2$r bwd 16384,65536; b lib-d1 d1$r bwd 16384,65536
  b lib u0$r bwd 768,5120; b lib-u8 u8$r bwd 768,5120
  b lib c0$r "fwd|bwd" 12288,16384,32768,65536; b lib-cl cl$r "fwd|bwd" 12288,16384,32768,65536
done
.devbundle/run darn-bench --config fp8,train --n 1024,4096,8192,16384,65536 --reps 20 --latency-m none \
  --json "$out/gpu/bench-fp8.json" > "$out/gpu/bench-fp8.txt" 2>&1
echo "== fp8 vs train"; grep -a -E "^(copy|train|fp8) " "$out/gpu/bench-fp8.txt"
echo "bench: ${SECONDS}s"
