#!/usr/bin/env python3
"""plot.py — draws darn-bench / compare_torch.py / merge_results.py JSON as a PNG: % of the same-run copy bandwidth
vs N, one panel per config; color and marker per implementation, line style per direction (fwd solid, fwd_grad
dash-dot, bwd dashed, bwd_mask dotted); darn thick. Gray lines: the targets of issue 11.

  python3 bench/plot.py results.json [more.json ...] -o plot.png [--config train,infer] [--dir fwd,bwd]
                        [--timing device|sync|all] [--darn-bench]

--timing picks the column: device (default: do_bench-median and the other device-time methods), sync
(sync-per-call), or all (both, sync rows drawn thin). darn's rows are those measured in the same process as the
peers (compare_torch.py); darn-bench's rows of a merged file are drawn only with --darn-bench, or for configs that
have no same-process darn rows. Files without "timing" fields (older runs) are drawn whatever --timing says.

Needs matplotlib (Debian/Ubuntu: apt-get install python3-matplotlib), imported only when drawing. Rows with an
"error" are skipped and listed on stderr.
"""
import argparse
import json
import sys
from collections import defaultdict

SYNC = "sync-per-call"
CONFIG_ORDER = ["train", "infer", "f32", "layernorm", "mask"]
DIR_STYLE = {"fwd": "-", "fwd_grad": "-.", "bwd": "--", "bwd_mask": ":"}
IMPL_ORDER = ["darn", "darn-bench", "torch_compile", "flash_triton", "liger_fused_add_rms_norm", "liger_rms_norm",
              "torch_rms_norm", "torch_eager"]
# (y, label, N range) per config: issue 11's targets (H200, % of copy).
TARGETS = {
    "train": [(95, "fwd 95 %", (0, 16384)), (92, "bwd 92 %", (0, 16384)),
              (93, "fwd 93 %", (32768, 1 << 30)), (90, "bwd 90 %", (32768, 1 << 30))],
    "infer": [(95, "fwd 95 %", (0, 1 << 30))],
}


def timing_class(t):
    if t is None:
        return None  # older files: one method, drawn in every mode
    return "sync" if t == SYNC else "device"


def series(docs, configs=(), dirs=(), timing="device", darn_bench=False):
    """{(config, impl, dir, tclass, source): [(N, pct)]} over every file, and {impl: work}. impl "darn" for darn's rows
    of compare_torch.py (same process as the peers), "darn-bench" for darn-bench's rows in a merged file."""
    out, work = defaultdict(list), {}
    multi = len(docs) > 1
    skipped = []
    same_run = {r["config"] for _, d in docs for r in d.get("darn_rows_same_run", []) + (
        d.get("rows", []) if d.get("tool") == "compare_torch.py" else [])}
    for path, doc in docs:
        src = path if multi else ""
        merged = "darn_rows_same_run" in doc
        lists = [("rows", "darn-bench" if merged else "darn"), ("darn_rows_same_run", "darn"), ("peers", None)]
        for key, impl_default in lists:
            for r in doc.get(key, []):
                impl = r.get("impl", impl_default) or "peer"
                if (configs and r["config"] not in configs) or (dirs and r["dir"] not in dirs):
                    continue
                if impl == "darn-bench" and not darn_bench and r["config"] in same_run:
                    continue
                tc = timing_class(r.get("timing"))
                if timing != "all" and tc is not None and tc != timing:
                    continue
                if "error" in r or r.get("pct") is None:
                    skipped.append("%s %s M=%s N=%s %s: %s" % (impl, r["config"], r.get("M"), r.get("N"), r["dir"],
                                                               r.get("error", "no pct")))
                    continue
                work[impl] = r.get("work", "full")
                out[(r["config"], impl, r["dir"], tc or "", src)].append((r["N"], r["pct"]))
    for s in sorted(set(skipped)):
        print("skipped (error): " + s, file=sys.stderr)
    return out, work


def title_of(doc, timing):
    runs = doc.get("compare_runs") or []
    copy = doc.get("copy_GBps", 0.0)
    if doc.get("copy_GBps_by_timing"):
        copy = doc["copy_GBps_by_timing"].get(doc.get("timing", {}).get("device"), copy)
    contract = doc.get("contract")
    version = doc.get("darn") or (runs[0].get("darn") if runs else None)
    return "darn%s: %s, copy %.0f GB/s, commit %s, %s%s; timing: %s" % (
        (" " + version) if version else "", doc.get("gpu", "?"), copy or 0.0,
        doc.get("commit", "?"), doc.get("date", "?"), (", contract %s" % contract) if contract is not None else "",
        timing)


def main(argv=None):
    ap = argparse.ArgumentParser(description="plot darn-bench / compare_torch.py JSON")
    ap.add_argument("json", nargs="+", help="result files")
    ap.add_argument("-o", "--out", default="bench.png", help="PNG to write (default bench.png)")
    ap.add_argument("--config", default="", help="only these configs (comma-separated)")
    ap.add_argument("--dir", default="", help="only these directions (fwd, fwd_grad, bwd, bwd_mask)")
    ap.add_argument("--timing", default="device", choices=("device", "sync", "all"))
    ap.add_argument("--darn-bench", action="store_true", help="also draw darn-bench's rows where same-process ones exist")
    ap.add_argument("--title", default=None)
    a = ap.parse_args(argv)
    docs = []
    for p in a.json:
        with open(p) as f:
            docs.append((p, json.load(f)))
    lines, work = series(docs, set(filter(None, a.config.split(","))), set(filter(None, a.dir.split(","))),
                         a.timing, a.darn_bench)
    if not lines:
        print("plot.py: nothing to plot", file=sys.stderr)
        return 1
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = sorted({k[0] for k in lines}, key=lambda c: (CONFIG_ORDER.index(c) if c in CONFIG_ORDER else 99, c))
    impls = sorted({k[1] for k in lines}, key=lambda i: (IMPL_ORDER.index(i) if i in IMPL_ORDER else 99, i))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color = {i: colors[k % len(colors)] for k, i in enumerate(impls)}
    marker = {i: "osdv^<>ph*"[k % 10] for k, i in enumerate(impls)}
    cols = 1 if len(configs) == 1 else 2
    rows = (len(configs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(9.5 * cols, 6.0 * rows), squeeze=False)
    for ax in axes.flat[len(configs):]:
        ax.set_visible(False)
    for ax, config in zip(axes.flat, configs):
        keys = sorted((k for k in lines if k[0] == config),
                      key=lambda k: (IMPL_ORDER.index(k[1]) if k[1] in IMPL_ORDER else 99, k[1], k[2], k[3], k[4]))
        for _, impl, direction, tc, src in keys:
            pts = sorted(lines[(config, impl, direction, tc, src)])
            darn = impl in ("darn", "darn-bench")
            label = "%s %s%s%s%s" % (impl, direction, " (less work)" if work.get(impl, "full") != "full" else "",
                                     " [sync]" if (a.timing == "all" and tc == "sync") else "",
                                     (" (%s)" % src) if src else "")
            ax.plot([n for n, _ in pts], [p for _, p in pts], linestyle=DIR_STYLE.get(direction, "-"),
                    marker=marker[impl], markersize=4, color=color[impl], label=label,
                    linewidth=(2.2 if darn else 1.2) * (0.5 if tc == "sync" and a.timing == "all" else 1.0))
        ns = sorted({n for k in keys for n, _ in lines[k]})
        for y, text, (lo, hi) in TARGETS.get(config, []):
            xs = [n for n in ns if lo <= n <= hi]
            if xs:
                ax.hlines(y, xs[0], xs[-1], color="gray", linewidth=0.8, linestyles=":")
                ax.text(xs[-1], y, " " + text, fontsize=7, va="center", color="gray")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns)
        ax.set_xticklabels([str(n) for n in ns], rotation=45)
        ax.set_xlabel("N (row length); M * N fixed")
        ax.set_ylabel("% of device-to-device copy bandwidth (minimal bytes / time)")
        ax.set_title(config, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.suptitle(a.title or title_of(docs[0][1], a.timing), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(a.out, dpi=110)
    print("wrote " + a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
