#!/usr/bin/env python3
"""plot.py — draws darn-bench / compare_torch.py JSON as a PNG: % of the same-run copy bandwidth vs N.

One line per config and direction (darn solid; peers from a "peers" list dashed, one line per
impl, config and direction), log2 x axis, horizontal lines at the targets of issue 5.

  python3 bench/plot.py results.json [more.json ...] -o plot.png [--config train,infer] [--dir fwd,bwd]

Needs matplotlib (Debian/Ubuntu: apt-get install python3-matplotlib). Rows with an "error" are skipped
and listed on stderr.
"""
import argparse
import json
import sys
from collections import defaultdict

TARGETS = [(95, "95 % (fwd target)"), (92, "92 % (bwd target)"), (93, "93 % (fwd, N >= 32768)"),
           (90, "90 % (bwd, N >= 32768)")]


def series(docs, configs, dirs):
    """{(impl, config, dir, source): [(N, pct)]} over every file; darn rows have impl "darn"."""
    out = defaultdict(list)
    multi = len(docs) > 1
    for path, doc in docs:
        src = path if multi else ""
        for key, impl_default in (("rows", "darn"), ("peers", None)):
            for r in doc.get(key, []):
                impl = r.get("impl", impl_default) or "peer"
                if (configs and r["config"] not in configs) or (dirs and r["dir"] not in dirs):
                    continue
                if "error" in r or r.get("pct") is None:
                    print("skipped (error): %s %s M=%s N=%s %s: %s" % (impl, r["config"], r["M"], r["N"], r["dir"],
                                                                        r.get("error", "no pct")), file=sys.stderr)
                    continue
                out[(impl, r["config"], r["dir"], src if impl == "darn" else "")].append((r["N"], r["pct"]))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="plot darn-bench / compare_torch.py JSON")
    ap.add_argument("json", nargs="+", help="result files")
    ap.add_argument("-o", "--out", default="bench.png", help="PNG to write (default bench.png)")
    ap.add_argument("--config", default="", help="only these configs (comma-separated)")
    ap.add_argument("--dir", default="", help="only these directions (fwd, bwd, bwd_mask)")
    ap.add_argument("--title", default=None)
    a = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = []
    for p in a.json:
        with open(p) as f:
            docs.append((p, json.load(f)))
    lines = series(docs, set(filter(None, a.config.split(","))), set(filter(None, a.dir.split(","))))
    if not lines:
        print("plot.py: nothing to plot", file=sys.stderr)
        return 1
    fig, ax = plt.subplots(figsize=(11, 6.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    keys = sorted(lines, key=lambda k: (k[0] != "darn", k))
    color_of = {}
    for impl, config, direction, src in keys:
        ck = (config, direction)  # one color per config + direction; the line style tells darn from peers
        color_of.setdefault(ck, colors[len(color_of) % len(colors)])
    peer_markers = {}
    for key in keys:
        impl, config, direction, src = key
        pts = sorted(lines[key])
        darn = impl == "darn"
        marker = "o" if darn else peer_markers.setdefault(impl, "sdv^<>ph"[len(peer_markers) % 8])
        label = "%s %s %s%s" % (impl, config, direction, (" (%s)" % src) if src else "")
        ax.plot([n for n, _ in pts], [p for _, p in pts], linestyle="-" if darn else "--", marker=marker,
                markersize=4, linewidth=2.0 if darn else 1.2, color=color_of[(config, direction)], label=label)
    for y, text in TARGETS:
        ax.axhline(y, color="gray", linewidth=0.8, linestyle=":" if y in (93, 90) else "-.")
        ax.text(1.0, y, " " + text, transform=ax.get_yaxis_transform(), fontsize=7, va="center", color="gray")
    ax.set_xscale("log", base=2)
    ns = sorted({n for pts in lines.values() for n, _ in pts})
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns], rotation=45)
    ax.set_xlabel("N (row length); M * N fixed")
    ax.set_ylabel("% of device-to-device copy bandwidth (minimal bytes / time)")
    first = docs[0][1]
    ax.set_title(a.title or "darn: %s, copy %.0f GB/s, commit %s, %s" % (
        first.get("gpu", "?"), first.get("copy_GBps", 0.0), first.get("commit", "?"), first.get("date", "?")))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout(rect=(0, 0, 0.86, 1))  # room for the target labels on the right
    fig.savefig(a.out, dpi=120)
    print("wrote " + a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
