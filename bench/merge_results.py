#!/usr/bin/env python3
"""merge_results.py — one results file (bench/results/h100-latest.json) from a darn-bench JSON (rows,
latency: every config) and compare_torch.py JSONs (their peers, and their darn rows kept as "darn_rows_same_run"
so each peer can be compared with darn measured in the same process).

  python3 bench/merge_results.py darn-bench.json compare.json [more-compare.json ...] -o h100-latest.json

The copy bandwidth of every input run is kept ("copy_GBps" of the darn-bench run at the top, each peer
row carries the "copy_GBps" of the run it came from, so its "pct" stays a same-run number).
"""
import argparse
import json
import sys


def main(argv=None):
    ap = argparse.ArgumentParser(description="merge darn-bench and compare_torch.py results")
    ap.add_argument("bench_json")
    ap.add_argument("compare_json", nargs="*")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args(argv)
    with open(a.bench_json) as f:
        out = json.load(f)
    out.setdefault("peers", [])
    out["darn_rows_same_run"] = []
    out["compare_runs"] = []
    for path in a.compare_json:
        with open(path) as f:
            doc = json.load(f)
        meta = {k: doc.get(k) for k in ("date", "gpu", "commit", "copy_GBps", "torch", "triton")}
        out["compare_runs"].append(dict(meta, file=path))
        for r in doc.get("peers", []):
            out["peers"].append(dict(r, copy_GBps=doc.get("copy_GBps")))
        for r in doc.get("rows", []):
            out["darn_rows_same_run"].append(dict(r, copy_GBps=doc.get("copy_GBps")))
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote %s: %d rows, %d latency rows, %d peer rows" % (
        a.out, len(out.get("rows", [])), len(out.get("latency", [])), len(out["peers"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
