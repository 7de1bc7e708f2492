#!/usr/bin/env python3
"""merge_results.py — one results file (bench/results/h200-latest.json) from a darn-bench JSON (rows, latency:
every config) and compare_torch.py JSONs (their peers, and their darn rows kept as "darn_rows_same_run" so each
peer can be compared with darn measured in the same process, with the same timing).

  python3 bench/merge_results.py darn-bench.json compare.json [more-compare.json ...] -o h200-latest.json

Every row gets a "timing" label: compare_torch.py's rows carry theirs ("do_bench-median", "sync-per-call", ...);
darn-bench's rows get "darn-bench-events" (HIP events around each single call, bench/README.md). The copy
bandwidth of every input run is kept: "copy_GBps" of the darn-bench run at the top; each compare row carries the
"copy_GBps" of the run and timing it came from, so its "pct" stays a same-run, same-timing number. "contract" is
the darn contract version the compare runs report (a list if they differ).
"""
import argparse
import json
import sys

DARN_BENCH_TIMING = "darn-bench-events"
DARN_BENCH_DESCRIPTION = ("darn-bench (C): a HIP event before and after each single call, the previous call "
                          "finished (flush first when the working set is < 3x the last-level cache), median of reps")


def main(argv=None):
    ap = argparse.ArgumentParser(description="merge darn-bench and compare_torch.py results")
    ap.add_argument("bench_json")
    ap.add_argument("compare_json", nargs="*")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args(argv)
    with open(a.bench_json) as f:
        out = json.load(f)
    for key in ("rows", "latency"):
        for r in out.get(key, []):
            r.setdefault("timing", DARN_BENCH_TIMING)
    out.setdefault("peers", [])
    out["darn_rows_same_run"] = []
    out["compare_runs"] = []
    descriptions = {DARN_BENCH_TIMING: DARN_BENCH_DESCRIPTION}
    peer_info, contracts = {}, []
    for path in a.compare_json:
        with open(path) as f:
            doc = json.load(f)
        meta = {k: doc.get(k) for k in ("date", "gpu", "commit", "copy_GBps", "copy_GBps_by_timing", "torch", "triton",
                                        "darn", "contract", "peers_dir", "peer_commits", "liger_casting_mode",
                                        "stand_ins", "compile", "check", "check_peers", "complete", "skipped",
                                        "wall_s", "reps")}
        out["compare_runs"].append(dict(meta, file=path))
        timing = doc.get("timing") or {}
        descriptions.update(timing.get("descriptions", {}))
        peer_info.update(doc.get("peer_info", {}))
        if doc.get("contract") is not None and doc["contract"] not in contracts:
            contracts.append(doc["contract"])
        for key, dest in (("peers", "peers"), ("rows", "darn_rows_same_run")):
            for r in doc.get(key, []):
                r = dict(r)
                r.setdefault("copy_GBps", doc.get("copy_GBps"))  # older compare files: one copy per run
                r.setdefault("timing", "events-per-call (compare_torch.py before the do_bench method)")
                out[dest].append(r)
    out["contract"] = contracts[0] if len(contracts) == 1 else (contracts or None)
    out["timing_descriptions"] = descriptions
    if peer_info:
        out["peer_info"] = peer_info
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote %s: %d rows, %d latency rows, %d peer rows, %d darn rows from compare runs" % (
        a.out, len(out.get("rows", [])), len(out.get("latency", [])), len(out["peers"]), len(out["darn_rows_same_run"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
