"""One rank of test_distributed.py's sequence-parallel runs (gloo, CPU), and the cases it runs.

    python dist_worker.py RANK WORLD INIT_FILE OUT_FILE [nccl]

The WORLD processes join one gloo group through INIT_FILE (file://), then form the sub-groups of GROUPS (W = 1, 2,
3, 4 and 8 ranks; some not starting at rank 0, so the rank in the group differs from the global rank, and W = 8 is
the default group). For each group this rank belongs to, and each case of CASES, it builds the case's whole batch
(every rank the same, from the case's seed), takes its group rank's rows of the case's split, runs
darn.distributed.sequence_parallel_norm_fn forward and backward, and keeps its outputs and gradients (or the error
it raised). OUT_FILE gets them all (torch.save). test_distributed.py compares them with the one-process call.
With `nccl`, rank k runs on cuda:k over NCCL (WORLD = the GPUs used; groups of the W <= WORLD ranks 0 … W-1).
"""
import os
import sys

import torch

# (W, global ranks of the group; None = the default group of all 8)
GROUPS = [(1, [6]), (2, [1, 3]), (3, [5, 6, 7]), (4, [0, 1, 2, 3]), (8, None)]  # ranks ascending (new_group sorts them)
WORLD = 8

# Shapes: R = max(1, floor(M N / 2^21)) rows per dweight chunk. 4100 x 1024: R = 2, G = 2050 (256 chunks per rank at
# W = 8); 1601 x 4000: R = 3, G = 534 (a short last chunk). split: "even" (darn.distributed.even_split), "uneven"
# (chunk boundaries with different counts, ranks with none), "given" (even, and passed as rows_per_rank), "bad"
# (rows_per_rank off the chunk boundaries: ChunkSplitError in the forward), "bad-unknown" (the same rows, not
# passed: ChunkSplitError in the backward, after the exchange of row counts, on every rank).
CASES = [
    dict(name="rms_bf16_R2_drop", m=4100, n=1024, rms=True, x=torch.bfloat16, res=torch.float32, w=torch.bfloat16,
         bias=False, p=0.1, prenorm=True, seed=7, split="uneven"),
    dict(name="layer_f16_bias_R3", m=1601, n=4000, rms=False, x=torch.float16, res=torch.float16, w=torch.float16,
         bias=True, p=0.0, prenorm=False, seed=None, split="given"),
    dict(name="layer_bias_drop_rowscale_gen", m=37, n=100, rms=False, x=torch.float32, res=torch.float32,
         w=torch.float32, bias=True, p=0.25, prenorm=True, seed="generator", split="even", rowscale=True),
    dict(name="rms_zc_fp32_nores", m=29, n=72, rms=True, x=torch.bfloat16, res=None, w=torch.float32, bias=False,
         p=0.0, prenorm=True, seed=None, split="uneven", zero_centered=True, residual_in_fp32=True),
    dict(name="rms_tiny", m=5, n=3, rms=True, x=torch.float32, res=torch.float32, w=torch.float32, bias=True,
         p=0.5, prenorm=False, seed=11, split="even"),
    dict(name="empty", m=0, n=16, rms=False, x=torch.float32, res=torch.float32, w=torch.float32, bias=True,
         p=0.0, prenorm=False, seed=None, split="even"),
    dict(name="bad_given", m=4100, n=1024, rms=True, x=torch.float32, res=torch.float32, w=torch.float32,
         bias=False, p=0.0, prenorm=False, seed=None, split="bad"),
    dict(name="bad_unknown", m=4100, n=1024, rms=False, x=torch.float32, res=None, w=torch.float32, bias=True,
         p=0.1, prenorm=False, seed=3, split="bad-unknown"),
]


def chunk_rows(m, n):
    return max(1, (m * n) >> 21)


def split_of(case, w):
    """Rows per rank of the case's split over w ranks."""
    m, n = case["m"], case["n"]
    r = chunk_rows(m, n)
    g = (m + r - 1) // r if m > 0 else 0
    kind = case["split"]
    if w == 1:
        return [m]
    if kind in ("even", "given"):
        cuts = [k * g // w for k in range(w + 1)]
    elif kind == "uneven":  # chunk counts in proportion to (3, 0, 1, 4, 0, 2, 5, 1)[:w], the rest on the last rank
        wts = [3, 0, 1, 4, 0, 2, 5, 1][:w]
        cuts, acc = [0], 0
        for k in range(w - 1):
            acc += wts[k] * g // (2 * sum(wts))
            cuts.append(acc)
        cuts.append(g)
    else:  # bad: rank 0 gets one row, off the boundaries whenever R > 1; else R + 1 rows off for R = 1 too
        rows = [1 if r > 1 else 0] + [0] * (w - 1)
        rows[-1] = m - rows[0]
        if r == 1:  # any split is on the boundaries when R = 1: the case needs R > 1
            raise ValueError("a bad split needs R > 1")
        return rows
    ends = [min(m, c * r) for c in cuts]
    return [ends[k + 1] - ends[k] for k in range(w)]


def inputs_of(case):
    """The whole batch of a case: x, residual, rowscale, weight, bias, gy (gradient of y), gh (of residual_out)."""
    g = torch.Generator().manual_seed(sum(map(ord, case["name"])))
    m, n = case["m"], case["n"]

    def rnd(*shape, dtype=torch.float32, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dtype)
    return dict(
        x=rnd(m, n, dtype=case["x"], scale=2.0),
        res=rnd(m, n, dtype=case["res"]) if case["res"] is not None else None,
        rowscale=(torch.rand(m, generator=g) + 0.5) if case.get("rowscale") else None,
        w=rnd(n, dtype=case["w"]),
        b=rnd(n, dtype=case["w"], scale=0.5) if case["bias"] else None,
        gy=rnd(m, n),
        gh=rnd(m, n, scale=0.25),
    )


def groups_for(world):
    """GROUPS for the 8-process gloo run, else the W <= world first ranks."""
    if world == WORLD:
        return GROUPS
    return [(w, list(range(w)) if w < world else None) for w, _ in GROUPS if w <= world]


def run(fn, case, inp, rows, rows_per_rank=None, device="cpu", **kw):
    """Forward + backward of fn on rows [r0, r1) of the case's batch on `device`; returns the outputs and gradients
    (on the CPU)."""
    r0, r1 = rows

    def leaf(t):  # a fresh leaf on device (to() alone returns t itself on its own device)
        return t.to(device).clone().requires_grad_(True) if t is not None else None
    x, res, w, b = leaf(inp["x"][r0:r1]), leaf(inp["res"][r0:r1] if inp["res"] is not None else None), leaf(inp["w"]), \
        leaf(inp["b"])
    rs = inp["rowscale"][r0:r1].to(device) if inp["rowscale"] is not None else None
    if case["seed"] == "generator":
        torch.manual_seed(1234)
        seed = {}
    else:
        seed = {} if case["seed"] is None else dict(seed=case["seed"], offset=5)
    if rows_per_rank is not None:
        kw["rows_per_rank"] = rows_per_rank
    out = fn(x, w, b, res, eps=1e-5, dropout_p=case["p"], rowscale=rs, prenorm=case["prenorm"],
             residual_in_fp32=case.get("residual_in_fp32", False), zero_centered_weight=case.get("zero_centered", False),
             is_rms_norm=case["rms"], **seed, **kw)
    y, h = out if case["prenorm"] else (out, None)
    loss = (y.float() * inp["gy"][r0:r1].to(device)).sum()
    if h is not None:
        loss = loss + (h.float() * inp["gh"][r0:r1].to(device)).sum()
    loss.backward()
    got = dict(y=y.detach(), h=h.detach() if h is not None else None, dx=x.grad, dres=res.grad if res is not None else None,
               dw=w.grad, db=b.grad if b is not None else None)
    return {k: v.cpu() if v is not None else None for k, v in got.items()}


def main():
    rank, world, init_file, out_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    nccl = len(sys.argv) > 5 and sys.argv[5] == "nccl"
    import torch.distributed as dist
    import darn.distributed as dd
    device = "cpu"
    if nccl:
        torch.cuda.set_device(rank)
        device = "cuda:%d" % rank
    dist.init_process_group("nccl" if nccl else "gloo", init_method="file://" + init_file, rank=rank,
                            world_size=world)
    groups = [(w, ranks, dist.new_group(ranks) if ranks is not None else None) for w, ranks in groups_for(world)]
    results = {}
    for case in CASES:  # every rank walks the same (case, group) sequence; a group's members run it
        inp = None
        for w, ranks, group in groups:
            members = ranks if ranks is not None else list(range(world))
            if rank not in members or (case["split"].startswith("bad") and w == 1):
                continue
            grank = members.index(rank)
            assert dist.get_rank(group) == grank
            if inp is None:
                inp = inputs_of(case)
            split = split_of(case, w)
            r0 = sum(split[:grank])
            given = split if case["split"] in ("given", "bad") else None
            try:
                got = run(dd.sequence_parallel_norm_fn, case, inp, (r0, r0 + split[grank]), rows_per_rank=given,
                          device=device, group=group)
            except dd.ChunkSplitError as e:
                got = dict(error=str(e))
            results[(w, case["name"])] = dict(got, group_rank=grank, split=split)
    torch.save(results, out_file)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
