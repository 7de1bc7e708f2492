"""darn.distributed: sequence parallelism over torch.distributed (gloo, CPU) bit-identical to the one-process call.

8 processes (dist_worker.py) join one gloo group and run every case of dist_worker.CASES in sub-groups of W = 1, 2,
3, 4 and 8 ranks (even, uneven and given splits on the dweight chunk boundaries, ranks without rows, shapes with
R = 2 and 3 rows per chunk and hundreds of chunks per rank); each rank's outputs, and dweight / dbias on every rank,
must equal darn.layer_norm_fn on the whole batch in this process, bit for bit. Splits off the boundaries must raise
ChunkSplitError on every rank (in the forward when rows_per_rank is given, else in the backward).
"""
import os
import subprocess
import sys

import pytest
import torch

import darn
import darn.distributed as dd
import dist_worker as W
from conftest import subprocess_env

HERE = os.path.dirname(os.path.abspath(__file__))
GOOD = [c for c in W.CASES if not c["split"].startswith("bad")]
BAD = [c for c in W.CASES if c["split"].startswith("bad")]
WORLDS = [w for w, _ in W.GROUPS]

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")


def bits(t):
    """The tensor's bits as integers (NaNs and signed zeros compare exactly)."""
    t = t.detach().contiguous().view(-1)
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(bits(a), bits(b))


def launch(d, world, nccl=False, worker="dist_worker.py"):
    """{global rank: the worker's results} of one run of `world` worker processes."""
    env, cwd = subprocess_env(OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", NCCL_NVLS_ENABLE="0")
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, worker), str(r), str(world),
                               str(d / "rendezvous"), str(d / ("rank%d.pt" % r))] + (["nccl"] if nccl else []),
                              env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for r in range(world)]
    logs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=600)
            logs.append(out.decode(errors="replace"))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    failed = [(r, p.returncode) for r, p in enumerate(procs) if p.returncode != 0]
    assert not failed, "worker(s) failed: %s\n%s" % (failed, "\n".join("--- rank %d\n%s" % (r, log[-3000:])
                                                                       for r, log in enumerate(logs)))
    return {r: torch.load(d / ("rank%d.pt" % r)) for r in range(world)}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """The 8-process gloo run."""
    return launch(tmp_path_factory.mktemp("sequence_parallel"), W.WORLD)


_refs: dict = {}


def reference(case, device="cpu"):
    """darn.layer_norm_fn forward + backward on the case's whole batch, in this process."""
    key = (case["name"], device)
    ref = _refs.get(key)
    if ref is None:
        ref = _refs[key] = W.run(darn.layer_norm_fn, case, W.inputs_of(case), (0, case["m"]), device=device)
    return ref


def group_results(ranks, w, name):
    """The results of the W-rank group's members for a case, in group-rank order."""
    got = [res[(w, name)] for res in ranks.values() if (w, name) in res]
    got.sort(key=lambda g: g["group_rank"])
    assert [g["group_rank"] for g in got] == list(range(w))
    return got


@pytest.mark.parametrize("case", GOOD, ids=[c["name"] for c in GOOD])
@pytest.mark.parametrize("w", WORLDS)
def test_bit_identical_to_one_process(ranks, case, w):
    check_case(ranks, case, w, reference(case))


def check_case(ranks, case, w, ref):
    """The W-rank group's results for a case against the one-process call's ref."""
    got = group_results(ranks, w, case["name"])
    split = got[0]["split"]
    assert sum(split) == case["m"] and all(g["split"] == split for g in got)
    for g in got:
        assert "error" not in g, g.get("error")
    for key in ("y", "h", "dx", "dres"):  # row outputs: the ranks' blocks in order are the one call's rows
        if ref[key] is None:
            assert all(g[key] is None for g in got), key
            continue
        cat = torch.cat([g[key].reshape(-1, case["n"]) for g in got])
        assert same_bits(cat, ref[key].reshape(-1, case["n"])), "%s differs (split %s)" % (key, split)
    for key in ("dw", "db"):  # the whole batch's gradient on every rank
        for g in got:
            if ref[key] is None:
                assert g[key] is None
            else:
                assert same_bits(g[key], ref[key]), "%s differs on group rank %d (split %s)" % (key, g["group_rank"],
                                                                                              split)


GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.skipif(GPUS < 2 or not torch.distributed.is_nccl_available() or not darn.gpu_available(),
                    reason="needs 2 GPUs, NCCL and a libdarn with a GPU backend")
def test_nccl_bit_identical_to_one_gpu(tmp_path):
    """The same cases over NCCL on min(8, GPUs) GPUs (groups of W = 1, 2, 4, 8 <= GPUs), against darn.layer_norm_fn
    on cuda:0 (the generator-drawn dropout pair comes from the CUDA generator there, as on the ranks)."""
    world = min(8, GPUS)
    got = launch(tmp_path, world, nccl=True)
    for case in GOOD:
        ref = reference(case, "cuda:0")
        for w, _ in W.groups_for(world):
            check_case(got, case, w, ref)
    for case in BAD:
        for w, _ in W.groups_for(world):
            if w > 1:
                assert all("DARN_ERR_CHUNK_SPLIT" in g.get("error", "") for g in group_results(got, w, case["name"]))


def test_splits_cover_the_cases(ranks):
    """The run has what the tests promise: R > 1 with several chunks on every rank, uneven splits, empty ranks."""
    big = [c for c in GOOD if W.chunk_rows(c["m"], c["n"]) > 1]
    assert {W.chunk_rows(c["m"], c["n"]) for c in big} >= {2, 3}
    for c in big:
        r = W.chunk_rows(c["m"], c["n"])
        split = group_results(ranks, 8, c["name"])[0]["split"]
        assert all(v >= 2 * r or c["split"] == "uneven" for v in split), split
    splits = [tuple(group_results(ranks, w, c["name"])[0]["split"]) for c in GOOD for w in WORLDS]
    assert any(len(set(s)) > 2 for s in splits)  # uneven
    assert any(0 in s and sum(s) > 0 for s in splits)  # a rank without rows


@pytest.mark.parametrize("case", BAD, ids=[c["name"] for c in BAD])
@pytest.mark.parametrize("w", [w for w in WORLDS if w > 1])
def test_off_boundary_split_raises_on_every_rank(ranks, case, w):
    for g in group_results(ranks, w, case["name"]):
        assert "error" in g, "group rank %d did not raise" % g["group_rank"]
        assert "DARN_ERR_CHUNK_SPLIT" in g["error"] and "R = 2" in g["error"], g["error"]


# ---- in this process: no process group (W = 1), the helpers ----------------------------------------------------
def test_without_process_group_equals_layer_norm_fn():
    case = dict(W.CASES[2], name="inproc")
    assert not torch.distributed.is_initialized()
    inp = W.inputs_of(case)
    a = W.run(darn.layer_norm_fn, case, inp, (0, case["m"]))
    b = W.run(dd.sequence_parallel_norm_fn, case, inp, (0, case["m"]))
    for key in a:
        assert (a[key] is None and b[key] is None) or same_bits(a[key], b[key]), key


def test_rms_module_equals_darn_rmsnorm():
    torch.manual_seed(0)
    x = torch.randn(3, 50, 64, requires_grad=True)
    a, b = darn.RMSNorm(64), dd.SequenceParallelRMSNorm(64)
    with torch.no_grad():
        a.weight.uniform_(-1, 1)
        b.weight.copy_(a.weight)
    ya = a(x)
    ya.square().sum().backward()
    ga, x.grad = x.grad, None
    yb = b(x)
    yb.square().sum().backward()
    assert same_bits(ya, yb) and same_bits(ga, x.grad) and same_bits(a.weight.grad, b.weight.grad)
    ln = dd.SequenceParallelLayerNorm(64, bias=False)
    assert ln.bias is None and ln(x).shape == x.shape


def test_helpers():
    assert dd.chunk_rows(4100, 1024) == 2 and dd.num_chunks(4100, 1024) == 2050
    assert dd.chunk_rows(0, 8) == 0 and dd.num_chunks(0, 8) == 0
    assert dd.wgrad_split(4100, 1024, 2000, 2100) == (1000, 1050)
    for w in (1, 2, 3, 4, 8):
        for m, n in ((4100, 1024), (1601, 4000), (5, 3), (0, 4)):
            split = dd.even_split(m, n, w)
            assert len(split) == w and sum(split) == m
            dd.check_split(split, n)
    assert dd.even_split(5, 3, 8).count(0) == 3
    with pytest.raises(dd.ChunkSplitError, match=r"row0 = 1 is not on a dweight chunk boundary"):
        dd.wgrad_split(4100, 1024, 1, 2)
    with pytest.raises(dd.ChunkSplitError, match=r"rank 0 of the split \[3, 4097\].*even_split"):
        dd.check_split([3, 4097], 1024)
    with pytest.raises(ValueError):  # ChunkSplitError is a DarnArgumentError, a ValueError
        dd.check_split([4099, 1], 1024)
    with pytest.raises(darn.DarnArgumentError, match="DARN_ERR_BAD_SHAPE"):
        dd.wgrad_split(10, 8, 8, 4)
    with pytest.raises(ValueError, match="world_size"):
        dd.even_split(10, 8, 0)


def test_rows_per_rank_is_checked():
    x = torch.randn(6, 8)
    w = torch.ones(8)
    with pytest.raises(ValueError, match=r"rows_per_rank\[0\] = 7"):
        dd.sequence_parallel_rms_norm_fn(x, w, rows_per_rank=[7])
    with pytest.raises(ValueError, match="expected 1 row counts"):
        dd.sequence_parallel_rms_norm_fn(x, w, rows_per_rank=[3, 3])
    y = dd.sequence_parallel_rms_norm_fn(x, w, rows_per_rank=[6])
    assert same_bits(y, darn.rms_norm_fn(x, w, None))
