#!/usr/bin/env bash
# bench/run-device.sh PART[,PART...] [OUT] [DIR] — the benchmark on the GPU machine, in parts that each fit one
# call of < 9 minutes. Run from the repository root of a tree that has .devbundle/ (darn-bench and libdarn.so.0,
# from ../shared/tools/bundle-for-device .devbundle build/nvidia/darn-bench) and .peers/ (flash-attn and
# Liger-Kernel, see bench/README.md). Logs and JSON land in OUT (default bench-out); parts may share one OUT.
# Times are estimates (H100 runs of the older script: darn-bench ~30 s, 12 train shapes with compile + flash > 7 min).
#
#   darn            darn-bench, every config and the small-M latency table     bench-darn.{json,csv,txt}  ~1-2 min
#   peers-train-a   compare_torch.py, train, N = 256, 512, 768, 1024           peers-train-a.{json,txt}   ~3-5 min
#   peers-train-b   compare_torch.py, train, N = 2048, 4096, 5120, 8192        peers-train-b.{json,txt}   ~3-5 min
#   peers-train-c   compare_torch.py, train, N = 12288, 16384, 32768, 65536    peers-train-c.{json,txt}   ~3-5 min
#   peers-infer-a   compare_torch.py, infer, N = 256 ... 4096 (6 shapes)       peers-infer-a.{json,txt}   ~2-4 min
#   peers-infer-b   compare_torch.py, infer, N = 5120 ... 65536 (6 shapes)     peers-infer-b.{json,txt}   ~2-4 min
#   peers-f32       optional: f32 and layernorm, darn/eager/compile/flash, all N  peers-f32.{json,txt}   ~8 min
#   plot DIR        merge_results.py + plot.py over DIR's bench-darn.json and peers-*.json: OUT/h200-latest.json,
#                   OUT/h200-latest.png (device time) and OUT/h200-latest-sync.png (sync-per-call)    < 1 min
#
# Each compare part stops starting new shapes after DARN_BENCH_BUDGET_S seconds (default 400; the JSON lists what
# it skipped, "complete": false: rerun those N with compare_torch.py --n) and is killed at budget + 120 s. Several
# parts in one call (darn,peers-infer-a) add their times. torch.compile's and Triton's caches go to build/
# (ignored, kept while the machine stays warm), so a part run again on the same machine compiles less. At most
# 8 files come back from the machine: when OUT holds more, the text logs are packed into OUT/logs.tar.gz.
# DARN_COMMIT names the tree in the JSON (the device's copy has no .git; darn-bench records its build commit).
set -uo pipefail
parts=${1:?usage: bench/run-device.sh darn|peers-train-a|-b|-c|peers-infer-a|-b|peers-f32|plot[,...] OUT [DIR]}
out=${2:-bench-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$PWD/build/inductor-cache}
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$PWD/build/triton-cache}
py=${PYTHON:-python3}
budget=${DARN_BENCH_BUDGET_S:-400}
lib=.devbundle/lib/libdarn.so.0
all_n="256,512,768,1024,2048,4096,5120,8192,12288,16384,32768,65536"
commit=${DARN_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}  # the device copy has no .git
status=0

env_header() { # what the logs need to be read later
  echo "== $(date -u +%FT%TZ) bench/run-device.sh $part, commit $commit"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader 2>&1
  $py -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
  $py -c 'import triton; print("triton", triton.__version__)' 2>&1 | tail -n1
  echo "cores $(nproc), budget ${budget} s, TORCHINDUCTOR_CACHE_DIR=$TORCHINDUCTOR_CACHE_DIR"
}

compare() { # compare NAME ARGS... : one compare_torch.py run into OUT/NAME.{json,txt}
  local name=$1; shift
  { env_header; timeout -k 10 $((budget + 120)) "$py" bench/compare_torch.py --lib "$lib" --peers-dir .peers \
      --commit "$commit" --time-budget "$budget" --json "$out/$name.json" "$@"; echo "rc=$?"; } 2>&1 | tee "$out/$name.txt"
  grep -q '^rc=0$' "$out/$name.txt" || status=1
}

for part in ${parts//,/ }; do
  case $part in
    darn)
      { env_header; .devbundle/run darn-bench --json "$out/bench-darn.json" --csv "$out/bench-darn.csv"; echo "rc=$?"; } \
        2>&1 | tee "$out/bench-darn.txt"
      grep -q '^rc=0$' "$out/bench-darn.txt" || status=1 ;;
    peers-train-a) compare "$part" --config train --n 256,512,768,1024 ;;
    peers-train-b) compare "$part" --config train --n 2048,4096,5120,8192 ;;
    peers-train-c) compare "$part" --config train --n 12288,16384,32768,65536 ;;
    peers-infer-a) compare "$part" --config infer --n 256,512,768,1024,2048,4096 ;;
    peers-infer-b) compare "$part" --config infer --n 5120,8192,12288,16384,32768,65536 ;;
    peers-f32) compare "$part" --config f32,layernorm --n "$all_n" --impl darn,torch_eager,torch_compile,flash_triton ;;
    plot)
      dir=${3:?usage: bench/run-device.sh plot OUT DIR (DIR holds bench-darn.json and peers-*.json)}
      "$py" bench/merge_results.py "$dir/bench-darn.json" "$dir"/peers-*.json -o "$out/h200-latest.json" || status=1
      "$py" bench/plot.py "$out/h200-latest.json" --config train,infer -o "$out/h200-latest.png" || status=1
      "$py" bench/plot.py "$out/h200-latest.json" --config train,infer --timing sync \
        -o "$out/h200-latest-sync.png" || status=1 ;;
    *) echo "unknown part '$part'" >&2; exit 2 ;;
  esac
done

if [ "$(find "$out" -maxdepth 1 -type f | wc -l)" -gt 8 ]; then
  (cd "$out" && shopt -s nullglob && logs=(./*.txt ./*.csv) && tar czf logs.tar.gz --remove-files "${logs[@]}")
fi
exit $status
