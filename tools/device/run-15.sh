#!/usr/bin/env bash
# Device run 15 (prepared 2026-12-03, session 9; not run yet): the OCP fp8 hardware stores (hip/compat.h
# darn_hw_fp8x2, cvt.rn.satfinite on sm_89+), checked and measured before the kernels may use them (numerics.md §9):
#   1. test_gpu gpu/conversions_exhaustive on the default library: checks 5 / 6 compare the hardware stores with
#      src/fp8.h for all 2^32 inputs (the log says "fp8 hardware stores checked: yes").
#   2. lib-fp8hw (a build with -DCMAKE_CUDA_FLAGS=-DDARN_FP8_HW_CVT=1, lib only: build/nv-fp8hw): test_fp8,
#      test_golden and gpu/every_dispatch_entry with it, bit for bit against the CPU.
#   3. darn-bench fp8 and train with both libraries (prediction: fp8 fwd from 41-51 % to within 5 points of train's
#      forward if the integer encode is what bounds it, run 13).
#   0. first, tests/device/run-on-gpu: every test binary and compute-sanitizer memcheck / racecheck / initcheck over
#      the small walk on the default library. Kernel and launcher code changed after run 14 (3925f5b): the fp8
#      check kernel, the DARN_PAR_BWD_PREFETCH knob, bwd_group_bits shared by x and x1, the partial-set layout
#      (darn_wgrad_sets); none of it has run on a GPU yet, and run 14 ran memcheck only.
#   4. (in step 0's test_gpu) gpu/forward_without_residual_out, new in session 9 and never run on a device: the
#      re-read forward that recomputes h, parallel and not.
#   5. lib-parpf (-DDARN_PAR_BWD_PREFETCH=1, build/nv-parpf: the parallel backward with the others' prefetch; 0 spills
#      on sm_90 / gfx90a / gfx942 by ptxas -v and the AMD remarks, 2026-12-03): gpu/parallel_residual with it, and
#      darn-bench parallel with both libraries (prediction: parallel bwd at N <= 4096 from 53-57 % to 63-70 %).
# If 1 and 2 pass and 3 gains: make DARN_FP8_HW_CVT default 1, record the run, update numerics.md §9's last lines;
# if 5 passes and gains: make DARN_PAR_BWD_PREFETCH default 1 (and regenerate docs/amd-resources.md).
# Bundle: build/nv90 as usual, plus lib-fp8hw/ (build/nv-fp8hw) and lib-parpf/ (build/nv-parpf), each libdarn.so.0,
# packed into .devbundle/variants.tar.xz.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out/gpu"
trap 'tar czf "$out/gpu-run15.tar.gz" -C "$out" gpu && rm -rf "$out/gpu"' EXIT
SECONDS=0
[ -f .devbundle/variants.tar.xz ] && tar xJf .devbundle/variants.tar.xz -C .devbundle
export DARN_GOLDEN_FILE=$PWD/tests/golden/digests.txt
run=.devbundle/run
tests/device/run-on-gpu "$out/gpu/suite" 2>&1 | tail -n 30
echo "suite: ${SECONDS}s"
$run test_gpu --ascii --verbose=1 --filter 'gpu/conversions_exhaustive' > "$out/gpu/cvt.log" 2>&1
echo "conversions rc=$?"; grep -a -E "hardware|differ|Synthesis" "$out/gpu/cvt.log" | tail -n 5
for t in test_fp8 test_golden; do
  LD_LIBRARY_PATH=$PWD/.devbundle/lib-fp8hw:$PWD/.devbundle/lib timeout 150 .devbundle/bin/$t --ascii -j4 \
    > "$out/gpu/fp8hw-$t.log" 2>&1; echo "lib-fp8hw $t rc=$? $(grep -a Synthesis "$out/gpu/fp8hw-$t.log" | tail -n1)"
done
LD_LIBRARY_PATH=$PWD/.devbundle/lib-fp8hw:$PWD/.devbundle/lib timeout 150 .devbundle/bin/test_gpu --ascii -j4 \
  --filter 'gpu/every_dispatch_entry' > "$out/gpu/fp8hw-walk.log" 2>&1
echo "lib-fp8hw walk rc=$? $(grep -a Synthesis "$out/gpu/fp8hw-walk.log" | tail -n1)"
for lib in lib lib-fp8hw; do
  LD_LIBRARY_PATH=$PWD/.devbundle/$lib:$PWD/.devbundle/lib timeout 100 .devbundle/bin/darn-bench --config fp8,train \
    --reps 20 --latency-m none --json "$out/gpu/bench-$lib.json" > "$out/gpu/bench-$lib.txt" 2>&1
  echo "== darn-bench ($lib) rc=$?"; grep -a -E "^(copy|train|fp8) " "$out/gpu/bench-$lib.txt"
done
LD_LIBRARY_PATH=$PWD/.devbundle/lib-parpf:$PWD/.devbundle/lib timeout 150 .devbundle/bin/test_gpu --ascii -j4 \
  --filter 'gpu/parallel_residual' > "$out/gpu/parpf-walk.log" 2>&1
echo "lib-parpf parallel_residual rc=$? $(grep -a Synthesis "$out/gpu/parpf-walk.log" | tail -n1)"
for lib in lib lib-parpf; do
  LD_LIBRARY_PATH=$PWD/.devbundle/$lib:$PWD/.devbundle/lib timeout 100 .devbundle/bin/darn-bench --config parallel \
    --reps 20 --latency-m none --json "$out/gpu/bench-par-$lib.json" > "$out/gpu/bench-par-$lib.txt" 2>&1
  echo "== darn-bench parallel ($lib) rc=$?"; grep -a -E "^(copy|parallel) " "$out/gpu/bench-par-$lib.txt"
done
echo "total: ${SECONDS}s"
# 6. (if time is left) Python GPU tests and per-call overhead (the per-plan descriptor and free lists of session 9
#    have not run on a GPU), then Nsight Compute on the parallel forward / backward next to train's at N = 4096 and
#    768 (run 14: parallel fwd took 1.59x train's time for 1.33x the bytes; unprofiled).
if [ $SECONDS -lt 400 ]; then
  export DARN_LIBRARY=$PWD/.devbundle/lib/libdarn.so.0 PYTHONPATH=$PWD/python
  timeout 100 python3 -m pytest python/tests/test_gpu.py python/tests/test_parallel.py -q -p no:cacheprovider \
    > "$out/gpu/pytest-gpu.log" 2>&1
  echo "pytest rc=$?"; tail -n 4 "$out/gpu/pytest-gpu.log"
  timeout 60 python3 python/tools/gpu_overhead.py --repeats 3 --budget 40 --out "$out/gpu/gpu-overhead.json" \
    > "$out/gpu/gpu-overhead.log" 2>&1
  echo "gpu_overhead rc=$?"; tail -n 24 "$out/gpu/gpu-overhead.log"
  echo "python: ${SECONDS}s"
fi
S="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis --section InstructionStats"
for spec in "parallel 4096 ^darn_fwd$" "train 4096 ^darn_fwd$" "parallel 768 ^darn_fwd$" "parallel 4096 ^darn_bwd$" "train 4096 ^darn_bwd$"; do
  [ $SECONDS -lt 540 ] || break
  set -- $spec
  timeout 60 ncu --clock-control none $S -k regex:$3 --launch-skip 2 --launch-count 1 $run darn-bench --config $1 --n $2 \
    --reps 2 --warmup 1 --latency-m none > "$out/gpu/ncu-$1-$2-${3//[^a-z_]/}.txt" 2>&1
  echo "== ncu $spec"; grep -a -E "Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Block Size|Grid Size|Issue Slots Busy|No Eligible|Compute \(SM\) Th|Local" "$out/gpu/ncu-$1-$2-${3//[^a-z_]/}.txt" | head -n 16
done
echo "total: ${SECONDS}s"
