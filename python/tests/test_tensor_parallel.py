"""darn.distributed: tensor parallelism over N (columns split over ranks) over torch.distributed (gloo, CPU),
bit-identical to the one-process call.

8 processes (tp_worker.py) join one gloo group and run every case of tp_worker.CASES in the sub-groups of W = 1, 2,
3, 4 and 8 ranks (even, power-of-two, uneven and given column splits on row-sum groups, a short last group); the
ranks' y, residual_out, dx, dresidual, dweight and dbias, laid side by side in rank order, must equal
darn.layer_norm_fn on the whole rows in this process, bit for bit. A split with a slice off the groups of 8 columns
must raise ColSplitError on every rank.
"""
import pytest
import torch

import darn.distributed as dd
import tp_worker as T
from test_distributed import launch, reference, same_bits, WORLDS

GOOD = [c for c in T.CASES if c["split"] != "bad"]
BAD = [c for c in T.CASES if c["split"] == "bad"]

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return launch(tmp_path_factory.mktemp("tensor_parallel"), T.D.WORLD, worker="tp_worker.py")


def group_results(ranks, w, name):
    got = [res[(w, name)] for res in ranks.values() if (w, name) in res]
    got.sort(key=lambda g: g["group_rank"])
    assert [g["group_rank"] for g in got] == list(range(w))
    return got


@pytest.mark.parametrize("case", GOOD, ids=[c["name"] for c in GOOD])
@pytest.mark.parametrize("w", WORLDS)
def test_bit_identical_to_one_process(ranks, case, w):
    ref = reference(case)
    got = group_results(ranks, w, case["name"])
    split = got[0]["split"]
    assert sum(split) == case["n"]
    for g in got:
        assert "error" not in g, g.get("error")
    for key in ("y", "h", "dx", "dres", "dw", "db"):
        if ref[key] is None:
            assert all(g[key] is None for g in got), key
            continue
        cat = torch.cat([g[key] for g in got], dim=-1)
        assert same_bits(cat, ref[key]), "%s differs (split %s)" % (key, split)


@pytest.mark.parametrize("w", [w for w in WORLDS if w > 1])
def test_bad_split_raises_on_every_rank(ranks, w):
    for case in BAD:
        got = group_results(ranks, w, case["name"])
        assert all("DARN_ERR_COL_SPLIT" in g.get("error", "") and "multiple of 8" in g["error"] for g in got), got


def test_split_helpers():
    assert dd.even_col_split(4096, 8) == [512] * 8
    assert dd.even_col_split(100, 3) == [32, 32, 36]
    assert dd.col_split_slots([512] * 8) == 1
    assert dd.col_split_slots([100]) == 3  # 13 groups: 8 + 4 + 1
    with pytest.raises(dd.ColSplitError, match="multiple of 8"):
        dd.col_split_slots([12, 88])
    with pytest.raises(ValueError):
        dd.even_col_split(16, 3)
