"""One rank of test_tensor_parallel.py's runs (gloo, CPU), and the cases it runs.

    python tp_worker.py RANK WORLD INIT_FILE OUT_FILE

As dist_worker.py (the same groups of W = 1, 2, 3, 4 and 8 ranks), but the columns are split: each group rank takes
its slice of the columns of x, residual, weight and bias of the case's whole batch, runs
darn.distributed.tensor_parallel_norm_fn forward and backward, and keeps its outputs and gradients (or the error
it raised).
"""
import sys

import torch

import dist_worker as D

# split: "even" (darn.distributed.even_col_split), "pow2" (power-of-two slices of groups where they fit, the rest on
# the last rank: one node per row), "uneven" (slices of 3, 1, 5, 2, ... groups, the rest on the last rank), "given"
# (even, passed as cols_per_rank), "bad" (cols_per_rank with a slice of 12 columns: ColSplitError on every rank).
CASES = [
    dict(name="tp_rms_bf16_drop", m=64, n=4096, rms=True, x=torch.bfloat16, res=torch.float32, w=torch.bfloat16,
         bias=False, p=0.1, prenorm=True, seed=7, split="pow2"),
    dict(name="tp_layer_f16_bias", m=40, n=1000, rms=False, x=torch.float16, res=torch.float16, w=torch.float16,
         bias=True, p=0.0, prenorm=False, seed=None, split="uneven"),
    dict(name="tp_layer_drop_rowscale_gen", m=37, n=100, rms=False, x=torch.float32, res=torch.float32,
         w=torch.float32, bias=True, p=0.25, prenorm=True, seed="generator", split="even", rowscale=True),
    dict(name="tp_rms_zc_fp32_nores", m=29, n=72, rms=True, x=torch.bfloat16, res=None, w=torch.float32, bias=False,
         p=0.0, prenorm=True, seed=None, split="given", zero_centered=True, residual_in_fp32=True),
    dict(name="tp_bad_given", m=8, n=200, rms=True, x=torch.float32, res=torch.float32, w=torch.float32,
         bias=False, p=0.0, prenorm=False, seed=None, split="bad"),
]


def split_of(case, w):
    """Columns per rank of the case's split over w ranks."""
    import darn.distributed as dd
    n, kind = case["n"], case["split"]
    g = (n + 7) // 8
    if w == 1:
        return [n]
    if kind in ("even", "given"):
        return dd.even_col_split(n, w)
    if kind == "pow2":
        q = 1
        while 2 * q * w <= g:
            q *= 2
        return [8 * q] * (w - 1) + [n - 8 * q * (w - 1)]
    if kind == "uneven":
        sizes = [8 * [3, 1, 5, 2, 7, 1, 4][k % 7] for k in range(w - 1)]
        return sizes + [n - sum(sizes)]
    return [12] + [8] * (w - 2) + [n - 12 - 8 * (w - 2)]  # bad


def run(case, inp, cols, group, cols_per_rank=None):
    import darn.distributed as dd
    c0, c1 = cols
    sl = dict(inp)
    for k in ("x", "res", "gy", "gh"):
        if sl[k] is not None:
            sl[k] = sl[k][:, c0:c1].contiguous()
    for k in ("w", "b"):
        if sl[k] is not None:
            sl[k] = sl[k][c0:c1].contiguous()
    kw = dict(group=group)
    if cols_per_rank is not None:
        kw["cols_per_rank"] = cols_per_rank
    return D.run(dd.tensor_parallel_norm_fn, case, sl, (0, case["m"]), **kw)


def main():
    rank, world, init_file, out_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    import torch.distributed as dist
    import darn.distributed as dd
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=world)
    groups = [(w, ranks, dist.new_group(ranks) if ranks is not None else None) for w, ranks in D.groups_for(world)]
    results = {}
    for case in CASES:
        inp = None
        for w, ranks, group in groups:
            members = ranks if ranks is not None else list(range(world))
            if rank not in members or (case["split"] == "bad" and w == 1):
                continue
            grank = members.index(rank)
            if inp is None:
                inp = D.inputs_of(case)
            split = split_of(case, w)
            c0 = sum(split[:grank])
            given = split if case["split"] in ("given", "bad") else None
            try:
                got = run(case, inp, (c0, c0 + split[grank]), group, cols_per_rank=given)
            except dd.ColSplitError as e:
                got = dict(error=str(e))
            results[(w, case["name"])] = dict(got, group_rank=grank, split=split)
    torch.save(results, out_file)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
