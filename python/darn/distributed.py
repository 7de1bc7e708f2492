"""darn.distributed: sequence-parallel norms over torch.distributed whose outputs and gradients do not depend on
the number of ranks.

Sequence parallelism (Megatron-LM's and torchtitan's layout): the rows of a batch (the flattened leading dims of
x, M in all) are split over the ranks of a process group in rank order, rank k holding a block of consecutive
rows; the norm's weight (and bias) is replicated. The forward is row-local: each rank runs darn's forward on its
rows, with dropout drawn at the rows' global element indices, and nothing is exchanged. The backward gives each
rank dx / dresidual of its rows and, instead of its own share of dweight / dbias, the fp32 per-chunk partials of
darn's dweight/dbias reduction (docs/numerics.md §6) for the chunks its rows cover. The ranks exchange them with
one torch.distributed.all_gather and every rank reduces the full set with the contract's pairwise tree
(darn_wgrad_reduce), so that on every rank

    y, residual_out, dx, dresidual  = the rank's rows of the one-process call (darn.layer_norm_fn on all M rows),
    dweight, dbias                  = the one-process call's, bit for bit,

for every world size, on every backend (gloo with CPU tensors, NCCL/RCCL with CUDA/ROCm tensors), provided the
split falls on the chunk boundaries of the whole batch: each rank's first row is a multiple of
R = chunk_rows(M, N) = max(1, floor(M * N / 2**21)), and its row count is one too, except on the rank that
holds the last row. even_split() gives such a split for any world size; ranks may hold no rows. A split off the
boundaries raises ChunkSplitError on every rank (the chunk that straddles two ranks would need one rank's partial
sum before the other's rows; no exchange of partials can reproduce it).

The weight's gradient is already the whole batch's on every rank: do not all-reduce it over the sequence-parallel
group again (in Megatron-LM, leave such a weight's `sequence_parallel` attribute unset).

    import darn.distributed as dd
    y = dd.sequence_parallel_norm_fn(x_local, weight, None, residual_local, is_rms_norm=True, group=sp_group)
    norm = dd.SequenceParallelRMSNorm(4096, group=sp_group)       # or SequenceParallelLayerNorm

Exchanges: the backward's all_gather of the partials (padded to the largest rank's chunk count), preceded by an
all_gather of every rank's row count unless rows_per_rank= gives the split (then no host synchronisation either).
With dropout the forward needs its rows' global offset: from rows_per_rank=, else one all_gather of the row
counts in the forward. Dropout's (seed, offset): seed= / offset=, or drawn from the default generator of x's
device as darn.layer_norm_fn draws them, which is the same pair on every rank when all ranks seeded torch alike
(torch.manual_seed); on a GPU the generator's Philox offset advances by the whole batch's M * N.

Tensor parallelism over N (tensor_parallel_norm_fn, TensorParallelRMSNorm / TensorParallelLayerNorm): each rank of
`group` holds a slice of the columns of every row (x[..., n_k], residual likewise, and the weight / bias slice
[n_k]), the slices of the ranks in rank order; every slice but the last a multiple of 8 columns (a row-sum group of
docs/numerics.md §5), else ColSplitError. The ranks exchange each row's partial sums as the subtrees of the row-sum
tree that their slice covers (one all_gather per statistic: one in the RMSNorm forward, two in LayerNorm's, one in
either backward; `slots` fp32 values per row, 1 for an equal split of a power-of-two N over a power-of-two W), so

    y, residual_out, dx, dresidual = the rank's columns of the one-process call's,
    dweight, dbias                 = the rank's slice of the one-process call's (nothing to all-reduce),

bit for bit for every world size and split. Dropout draws the whole batch's element indices (the same seed and
offset on every rank, as above). The column-slice phases run on the CPU backend only in this version: CUDA tensors
raise DarnUnsupportedError (DARN_ERR_UNSUPPORTED_ON_GPU).

    y = dd.tensor_parallel_norm_fn(x_cols, w_cols, None, res_cols, is_rms_norm=True, group=tp_group)
"""
import ctypes
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from . import _lib as L

__all__ = ["ChunkSplitError", "chunk_rows", "num_chunks", "wgrad_split", "even_split", "check_split",
           "sequence_parallel_norm_fn", "sequence_parallel_rms_norm_fn", "SequenceParallelRMSNorm",
           "SequenceParallelLayerNorm", "ColSplitError", "even_col_split", "col_split_slots",
           "tensor_parallel_norm_fn", "TensorParallelRMSNorm", "TensorParallelLayerNorm"]

_CODE = {torch.float32: L.F32, torch.float16: L.F16, torch.bfloat16: L.BF16}
_DTYPE = {v: k for k, v in _CODE.items()}
_I64_HIGH = (1 << 63) - 1
_U64 = (1 << 64) - 1
_CHUNK_SPLIT = 16  # DARN_ERR_CHUNK_SPLIT
_COL_SPLIT = 17  # DARN_ERR_COL_SPLIT


class ChunkSplitError(L.DarnArgumentError):
    """A row split that is not on darn's dweight chunk boundaries of the whole batch (DARN_ERR_CHUNK_SPLIT)."""


class ColSplitError(L.DarnArgumentError):
    """A column split whose slices do not start on darn's row-sum groups of 8 columns (DARN_ERR_COL_SPLIT)."""


class _ColSplit(ctypes.Structure):
    _fields_ = [("bounds", ctypes.c_void_p), ("ranks", ctypes.c_int64), ("rank", ctypes.c_int64)]


# ---- the C entries (darn.h, "Sequence parallelism") ----------------------------------------------------------
_F = None


def _fns():
    global _F
    if _F is None:
        p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
        sig = {
            "darn_wgrad_chunk_rows": (i64, i64, i64),
            "darn_wgrad_chunks": (i64, i64, i64),
            "darn_wgrad_split": (i32, i64, i64, i64, i64, p, p),
            "darn_fwd_rows": (i32, p, i64, i64, p, p, ctypes.c_size_t, i32, p),
            "darn_bwd_partials_workspace_size": (i32, p, i64, i64, i32, p),
            "darn_bwd_partials": (i32, p, i64, i64, p, p, p, p, ctypes.c_size_t, i32, p),
            "darn_wgrad_reduce": (i32, p, p, p, p, p, i32, p),
            "darn_col_split_slots": (i32, i64, p, p),
            "darn_fwd_cols_sums": (i32, p, p, i32, p, p, p, i32, p),
            "darn_fwd_cols": (i32, p, p, p, p, p, i32, p),
            "darn_bwd_cols_sums": (i32, p, p, p, p, i32, p),
            "darn_bwd_cols_workspace_size": (i32, p, p, i32, p),
            "darn_bwd_cols": (i32, p, p, p, p, p, ctypes.c_size_t, i32, p),
        }
        f = {}
        for name, (res, *args) in sig.items():
            fn = getattr(L.LIB, name, None)
            if fn is None:
                raise RuntimeError("darn.distributed: %s has no %s (a libdarn older than this package)" % (L.PATH, name))
            fn.restype, fn.argtypes = res, list(args)
            f[name] = fn
        _F = f
    return _F


def _raise(status, function):
    if status == _CHUNK_SPLIT:
        raise ChunkSplitError(status, L._last_error().decode(errors="replace"), function)
    if status == _COL_SPLIT:
        raise ColSplitError(status, L._last_error().decode(errors="replace"), function)
    L.raise_status(status, function)


def chunk_rows(total_rows: int, cols: int) -> int:
    """R(M, N) = max(1, floor(M * N / 2**21)): rows per dweight chunk of a batch of M rows of N (0 for M <= 0)."""
    return int(_fns()["darn_wgrad_chunk_rows"](total_rows, cols))


def num_chunks(total_rows: int, cols: int) -> int:
    """G(M, N) = ceil(M / R(M, N)): the dweight chunks of a batch of M rows of N."""
    return int(_fns()["darn_wgrad_chunks"](total_rows, cols))


def wgrad_split(total_rows: int, cols: int, row0: int, rows: int) -> Tuple[int, int]:
    """(first chunk, chunk count) of the block of rows [row0, row0 + rows) of a batch of total_rows rows of cols;
    ChunkSplitError when the block is not on the chunk boundaries, DarnArgumentError when it is no block."""
    g0, cnt = ctypes.c_int64(0), ctypes.c_int64(0)
    st = _fns()["darn_wgrad_split"](total_rows, cols, row0, rows, ctypes.addressof(g0), ctypes.addressof(cnt))
    if st:
        _raise(st, "darn_wgrad_split")
    return g0.value, cnt.value


def even_split(total_rows: int, cols: int, world_size: int) -> List[int]:
    """Rows per rank of a split on the chunk boundaries: rank k gets chunks [k G / W, (k + 1) G / W), G the batch's
    chunk count (ranks may get none when G < W). Row counts differ by at most one chunk (R rows)."""
    if world_size < 1:
        raise ValueError("darn.distributed: world_size = %d, must be >= 1" % world_size)
    g, r = num_chunks(total_rows, cols), chunk_rows(total_rows, cols)
    ends = [min(total_rows, (k * g // world_size) * r) for k in range(world_size + 1)]
    ends[-1] = max(total_rows, 0)
    return [ends[k + 1] - ends[k] for k in range(world_size)]


def check_split(rows_per_rank: Sequence[int], cols: int) -> None:
    """Raises ChunkSplitError (naming the rank) unless every rank's block of the split is on the chunk boundaries
    of the whole batch (sum(rows_per_rank) rows of cols)."""
    total = sum(rows_per_rank)
    row0 = 0
    for k, rows in enumerate(rows_per_rank):
        try:
            wgrad_split(total, cols, row0, rows)
        except ChunkSplitError as e:
            raise ChunkSplitError(e.status, "rank %d of the split %s: %s (darn.distributed.even_split(%d, %d, %d) "
                                  "is a split on the boundaries)" % (k, list(rows_per_rank), e.darn_message, total,
                                                                      cols, len(rows_per_rank)),
                                  "darn.distributed") from None
        row0 += rows


# ---- process group ---------------------------------------------------------------------------------------------
def _world(group):
    """(world size, rank) of group; (1, 0) without an initialised torch.distributed and group=None."""
    dist = torch.distributed
    if group is None and not (dist.is_available() and dist.is_initialized()):
        return 1, 0
    return dist.get_world_size(group), dist.get_rank(group)


def _gather_rows(group, m, device):
    """Every rank's row count, in rank order (one all_gather)."""
    w, _ = _world(group)
    if w == 1:
        return [m]
    t = torch.tensor([m], dtype=torch.int64, device=device)
    out = [torch.empty_like(t) for _ in range(w)]
    torch.distributed.all_gather(out, t, group=group)
    return [int(v) for v in torch.cat(out).tolist()]


def _known_split(group, m, n, rows_per_rank):
    """rows_per_rank checked against the group and this rank's rows (and the chunk boundaries), or None."""
    if rows_per_rank is None:
        return None
    w, rank = _world(group)
    split = [int(v) for v in rows_per_rank]
    if len(split) != w or any(v < 0 for v in split):
        raise ValueError("darn.distributed: rows_per_rank = %s, expected %d row counts >= 0 (one per rank of the "
                         "group)" % (split, w))
    if split[rank] != m:
        raise ValueError("darn.distributed: rows_per_rank[%d] = %d but this rank's x has %d rows" % (rank, split[rank],
                                                                                                     m))
    check_split(split, n)
    return split


# ---- backend ---------------------------------------------------------------------------------------------------
def _backend(t):
    """(backend, stream, device context) for a darn call on tensor t."""
    if t.is_cuda:
        if not L.gpu_available():
            raise RuntimeError("darn: %s has no usable GPU backend; CUDA tensors need libdarn built with DARN_GPU="
                               "nvidia or amd" % L.PATH)
        return L.BACKEND_GPU, torch.cuda.current_stream(t.device).cuda_stream, torch.cuda.device(t.device)
    if not t.is_cpu:
        raise TypeError("darn: tensors on %s are not supported (CPU and CUDA/ROCm tensors are)" % t.device)
    return L.BACKEND_CPU, None, _NoContext()


class _NoContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _ptr(t):
    return t.data_ptr() if t is not None and t.numel() > 0 else None


def _philox_take(gen, increment):
    """(seed, offset) of a CUDA generator, whose Philox offset then advances by `increment` (darn.ops' rule)."""
    if hasattr(gen, "get_offset") and hasattr(gen, "set_offset"):
        o = gen.get_offset()
        gen.set_offset(o + increment)
        return gen.initial_seed() & _U64, o
    state = gen.get_state()
    v = state.view(torch.int64)
    s, o = int(v[0]) & _U64, int(v[1])
    v[1] += increment
    gen.set_state(state)
    return s, o


def _draw_rng(x, total_rows, n):
    """darn.ops' (seed, offset) draw for a dropout call on the whole batch of total_rows rows."""
    if x.is_cuda:
        if torch.cuda.is_current_stream_capturing():
            raise NotImplementedError("darn.distributed: dropout under CUDA graph capture needs seed= / offset=")
        return _philox_take(torch.cuda.default_generators[x.get_device()], max(4, (total_rows * n + 3) // 4 * 4))
    s, o = torch.randint(0, _I64_HIGH, (2,), dtype=torch.int64).tolist()
    return s, o


# ---- the autograd function -------------------------------------------------------------------------------------
def _desc(dv, rows, seed, offset):
    """A darn_desc from dv = (norm, N, x, residual, weight, bias, out dtype codes, flags, eps, p)."""
    norm, n, xc, rc, wc, bc, oc, flags, eps, p = dv
    d = L.Desc()
    L.F["desc_init"](ctypes.addressof(d), norm, rows, n, xc)
    d.residual_dtype, d.weight_dtype, d.bias_dtype, d.out_dtype = rc, wc, bc, oc
    d.flags, d.eps, d.dropout_p, d.seed, d.offset = flags, eps, p, seed & _U64, offset & _U64
    return d


class _SequenceParallelNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, residual, rowscale, cfg):  # type: ignore[override]
        eps, p, is_rms, zc, rfp32, out_dtype, group, rows_per_rank, seed, offset = cfg
        shape = x.shape
        n = shape[-1]
        m = x.numel() // n
        x2 = x.reshape(m, n).contiguous()
        r2 = residual.reshape(m, n).contiguous() if residual is not None else None
        rs = rowscale.reshape(-1).to(torch.float32).contiguous() if rowscale is not None else None
        weight = weight.contiguous()
        bias = bias.contiguous() if bias is not None else None
        flags = L.FLAG_ZERO_CENTERED_WEIGHT if zc else 0
        xc, wc = _CODE[x.dtype], _CODE[weight.dtype]
        rc = xc
        if r2 is not None:
            flags |= L.FLAG_HAS_RESIDUAL
            rc = _CODE[r2.dtype]
        if rfp32:
            flags |= L.FLAG_RESIDUAL_IN_FP32
        bc = wc
        if bias is not None:
            flags |= L.FLAG_HAS_BIAS
            bc = _CODE[bias.dtype]
        if rs is not None:
            flags |= L.FLAG_HAS_ROWSCALE
        dv = (L.RMSNORM if is_rms else L.LAYERNORM, n, xc, rc, wc, bc, _CODE[out_dtype], flags, eps, p)
        split = _known_split(group, m, n, rows_per_rank)
        if p > 0.0 and split is None:  # dropout needs the rows' global offset: the forward's one exchange
            split = _gather_rows(group, m, x.device)
        _, rank = _world(group)
        total, row0 = (sum(split), sum(split[:rank])) if split is not None else (m, 0)
        if p > 0.0 and seed is None:
            seed, offset = _draw_rng(x, total, n)
        elif seed is None:
            seed, offset = 0, 0
        hc = L.F32 if rfp32 else rc
        out = torch.empty((m, n), dtype=out_dtype, device=x.device)
        h = torch.empty((m, n), dtype=_DTYPE[hc], device=x.device)
        rstd = torch.empty((m,), dtype=torch.float32, device=x.device)
        mean = torch.empty((m,), dtype=torch.float32, device=x.device) if not is_rms else None
        t = L.FwdTensors(x=_ptr(x2), residual=_ptr(r2), rowscale=_ptr(rs), weight=_ptr(weight), bias=_ptr(bias),
                         out=_ptr(out), residual_out=_ptr(h), rstd=_ptr(rstd), mean=_ptr(mean))
        d = _desc(dv, total, seed, offset)
        backend, stream, dev = _backend(x)
        with dev:
            st = _fns()["darn_fwd_rows"](ctypes.addressof(d), row0, m, ctypes.addressof(t), None, 0, backend, stream)
        if st:
            _raise(st, "darn_fwd_rows")
        ctx.save_for_backward(h, weight, rstd, mean, rs)
        ctx.cfg = (dv, m, seed, offset, split, group, r2 is not None, bias is not None)
        ctx.set_materialize_grads(False)
        return out.view(shape), h.view(shape)

    @staticmethod
    def backward(ctx, dout, dresout):  # type: ignore[override]
        h, weight, rstd, mean, rs = ctx.saved_tensors
        dv, m, seed, offset, split, group, has_res, has_bias = ctx.cfg
        n = dv[1]
        dev = h.device
        dy = (dout.reshape(m, n).contiguous() if dout is not None
              else torch.zeros((m, n), dtype=_DTYPE[dv[6]], device=dev))
        dro = dresout.reshape(m, n).contiguous() if dresout is not None else None
        if split is None:
            split = _gather_rows(group, m, dev)
        check_split(split, n)  # the same split on every rank: all raise, or none
        w, rank = _world(group)
        total, row0 = sum(split), sum(split[:rank])
        r = max(1, chunk_rows(total, n))  # (0 for an empty batch)
        counts = [(v + r - 1) // r for v in split]
        cnt, maxc = counts[rank], max(counts)
        # the rank's send buffer: dweight partials [maxc, N], then (16-byte aligned) dbias partials [maxc, N]
        off_b = (maxc * n + 3) // 4 * 4
        buf = torch.empty((off_b + maxc * n if has_bias else maxc * n,), dtype=torch.float32, device=dev)
        pw = buf[:cnt * n]
        pb = buf[off_b:off_b + cnt * n] if has_bias else None
        dx = torch.empty((m, n), dtype=_DTYPE[dv[2]], device=dev)
        dres = torch.empty((m, n), dtype=_DTYPE[dv[3]], device=dev) if has_res and ctx.needs_input_grad[3] else None
        t = L.BwdTensors(dy=_ptr(dy), h=_ptr(h), weight=_ptr(weight), rstd=_ptr(rstd), mean=_ptr(mean),
                         rowscale=_ptr(rs), dresidual_out=_ptr(dro), dx=_ptr(dx), dresidual=_ptr(dres))
        d = _desc(dv, total, seed, offset)
        backend, stream, devctx = _backend(h)
        ws_bytes = ctypes.c_size_t(0)
        st = _fns()["darn_bwd_partials_workspace_size"](ctypes.addressof(d), row0, m, backend, ctypes.byref(ws_bytes))
        if st:
            _raise(st, "darn_bwd_partials_workspace_size")
        # (the GPU's re-read rows keep 8 bytes per row there; 16-byte aligned like every fresh allocation)
        ws = torch.empty((ws_bytes.value,), dtype=torch.uint8, device=dev) if ws_bytes.value else None
        with devctx:
            st = _fns()["darn_bwd_partials"](ctypes.addressof(d), row0, m, ctypes.addressof(t), _ptr(pw), _ptr(pb),
                                             _ptr(ws), ws_bytes.value, backend, stream)
        if st:
            _raise(st, "darn_bwd_partials")
        if w > 1 and maxc > 0:
            got = [torch.empty_like(buf) for _ in range(w)]
            torch.distributed.all_gather(got, buf, group=group)
        else:
            got = [buf]
        qw = torch.cat([g[:c * n] for g, c in zip(got, counts)]) if maxc > 0 else None
        qb = torch.cat([g[off_b:off_b + c * n] for g, c in zip(got, counts)]) if maxc > 0 and has_bias else None
        dw = torch.empty((n,), dtype=_DTYPE[dv[4]], device=dev)
        db = torch.empty((n,), dtype=_DTYPE[dv[5]], device=dev) if has_bias else None
        with devctx:
            st = _fns()["darn_wgrad_reduce"](ctypes.addressof(d), _ptr(qw), _ptr(qb), _ptr(dw), _ptr(db), backend,
                                             stream)
        if st:
            _raise(st, "darn_wgrad_reduce")
        shape = dout.shape if dout is not None else dresout.shape
        return (dx.view(shape), dw, db, dres.view(shape) if dres is not None else None, None, None)


def sequence_parallel_norm_fn(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                              residual: Optional[Tensor] = None, eps: float = 1e-6, dropout_p: float = 0.0,
                              rowscale: Optional[Tensor] = None, prenorm: bool = False,
                              residual_in_fp32: bool = False, zero_centered_weight: bool = False,
                              is_rms_norm: bool = False, out_dtype: Optional[torch.dtype] = None, *,
                              group=None, rows_per_rank: Optional[Sequence[int]] = None,
                              seed: Optional[int] = None, offset: int = 0) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """darn.layer_norm_fn on this rank's rows of a sequence-parallel batch (see the module docstring): x [..., N]
    (and residual, rowscale) hold this rank's block of rows, the blocks of the ranks of `group` (default: the
    world) in rank order. Returns y, or (y, residual_out) with prenorm, this rank's rows of the one-process call's;
    the backward gives weight / bias the whole batch's gradient on every rank, bit-identical to the one-process
    call. rows_per_rank: every rank's row count (saves the exchange of row counts; checked against this rank's x
    and the chunk boundaries). Arguments as in darn.layer_norm_fn (residual_in_fp32 applies without a residual,
    as there); no rowscale gradient, no mask output."""
    if not isinstance(x, Tensor) or not isinstance(weight, Tensor):
        raise TypeError("darn.distributed: x and weight must be tensors")
    n = x.shape[-1] if x.dim() else 0
    if n < 1:
        raise ValueError("darn.distributed: x has shape %s; it needs a last dim N >= 1" % (tuple(x.shape),))
    for t, what in ((x, "x"), (weight, "weight"), (bias, "bias"), (residual, "residual")):
        if t is not None and t.dtype not in _CODE:
            raise TypeError("darn.distributed: %s has dtype %s; darn supports float32, float16 and bfloat16"
                            % (what, t.dtype))
    if weight.shape != (n,) or (bias is not None and bias.shape != (n,)):
        raise ValueError("darn.distributed: weight / bias must have shape (%d,)" % n)
    if residual is not None and residual.shape != x.shape:
        raise ValueError("darn.distributed: residual has shape %s, x has %s" % (tuple(residual.shape),
                                                                               tuple(x.shape)))
    out_dtype = x.dtype if out_dtype is None else out_dtype
    if out_dtype not in _CODE:
        raise TypeError("darn.distributed: out_dtype %s is not supported" % out_dtype)
    if seed is None and offset != 0:
        raise ValueError("darn.distributed: offset= needs seed=")
    if seed is not None and not (0 <= seed <= _U64 and 0 <= offset <= _U64):
        raise ValueError("darn.distributed: seed / offset must be in [0, 2**64)")
    rfp32 = residual is None and bool(residual_in_fp32)  # flash-attn: with a residual, h has its dtype
    cfg = (float(eps), float(dropout_p), bool(is_rms_norm), bool(zero_centered_weight), rfp32, out_dtype, group,
           rows_per_rank, seed, offset)
    y, h = _SequenceParallelNorm.apply(x, weight, bias, residual, rowscale, cfg)
    return (y, h) if prenorm else y


def sequence_parallel_rms_norm_fn(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                                  residual: Optional[Tensor] = None, eps: float = 1e-6, dropout_p: float = 0.0,
                                  rowscale: Optional[Tensor] = None, prenorm: bool = False,
                                  residual_in_fp32: bool = False, zero_centered_weight: bool = False,
                                  out_dtype: Optional[torch.dtype] = None, *, group=None,
                                  rows_per_rank: Optional[Sequence[int]] = None, seed: Optional[int] = None,
                                  offset: int = 0) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """sequence_parallel_norm_fn with is_rms_norm=True."""
    return sequence_parallel_norm_fn(x, weight, bias, residual, eps, dropout_p, rowscale, prenorm, residual_in_fp32,
                                     zero_centered_weight, True, out_dtype, group=group, rows_per_rank=rows_per_rank,
                                     seed=seed, offset=offset)


class SequenceParallelRMSNorm(torch.nn.Module):
    """darn.RMSNorm for sequence parallelism over `group`: forward(x, residual=None, prenorm=False,
    residual_in_fp32=False, rows_per_rank=None) on this rank's rows; the weight's gradient is the whole batch's on
    every rank (do not all-reduce it again)."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, dropout_p: float = 0.0, zero_centered_weight: bool = False,
                 group=None, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.eps, self.dropout_p, self.zero_centered_weight, self.group = eps, dropout_p, zero_centered_weight, group
        self.weight = torch.nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        (torch.nn.init.zeros_ if self.zero_centered_weight else torch.nn.init.ones_)(self.weight)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None, prenorm: bool = False,
                residual_in_fp32: bool = False, rows_per_rank: Optional[Sequence[int]] = None):
        return sequence_parallel_norm_fn(x, self.weight, None, residual, self.eps,
                                         self.dropout_p if self.training else 0.0, None, prenorm, residual_in_fp32,
                                         self.zero_centered_weight, True, group=self.group,
                                         rows_per_rank=rows_per_rank)


class SequenceParallelLayerNorm(torch.nn.Module):
    """darn.LayerNorm for sequence parallelism over `group` (bias=False: no bias); forward as
    SequenceParallelRMSNorm's."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, dropout_p: float = 0.0, zero_centered_weight: bool = False,
                 bias: bool = True, group=None, device: Optional[torch.device] = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.eps, self.dropout_p, self.zero_centered_weight, self.group = eps, dropout_p, zero_centered_weight, group
        self.weight = torch.nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        (torch.nn.init.zeros_ if self.zero_centered_weight else torch.nn.init.ones_)(self.weight)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None, prenorm: bool = False,
                residual_in_fp32: bool = False, rows_per_rank: Optional[Sequence[int]] = None):
        return sequence_parallel_norm_fn(x, self.weight, self.bias, residual, self.eps,
                                         self.dropout_p if self.training else 0.0, None, prenorm, residual_in_fp32,
                                         self.zero_centered_weight, False, group=self.group,
                                         rows_per_rank=rows_per_rank)


# ---- tensor parallelism over N ----------------------------------------------------------------------------------
def even_col_split(cols: int, world_size: int) -> List[int]:
    """Columns per rank of an even split on row-sum groups: rank k gets groups [k G / W, (k + 1) G / W) of the
    G = ceil(N / 8) groups (the last rank the short last group). Needs world_size <= G."""
    g = (cols + 7) // 8
    if world_size < 1 or world_size > g:
        raise ValueError("darn.distributed: world_size = %d, must be in [1, ceil(N / 8) = %d]" % (world_size, g))
    ends = [min(cols, 8 * (k * g // world_size)) for k in range(world_size + 1)]
    ends[-1] = cols
    return [ends[k + 1] - ends[k] for k in range(world_size)]


class _Split:
    """A checked column split: its bounds as a C array, the C struct for one rank, and the node slots."""

    def __init__(self, cols_per_rank, rank):
        self.counts = [int(v) for v in cols_per_rank]
        b = [0]
        for v in self.counts:
            b.append(b[-1] + v)
        self.bounds = (ctypes.c_int64 * len(b))(*b)
        self.n = b[-1]
        self.c = _ColSplit(ctypes.addressof(self.bounds), len(self.counts), rank)
        slots = ctypes.c_int64(0)
        st = _fns()["darn_col_split_slots"](self.n, ctypes.addressof(self.c), ctypes.addressof(slots))
        if st:
            _raise(st, "darn_col_split_slots")
        self.slots = slots.value

    def ptr(self):
        return ctypes.addressof(self.c)


def col_split_slots(cols_per_rank: Sequence[int]) -> int:
    """The fp32 values per row and statistic that the split's exchange carries (ColSplitError for a bad split)."""
    return _Split(cols_per_rank, 0).slots


def _gather_nodes(group, nodes, w):
    """All ranks' nodes [m, stats, slots] in rank order, [W, m, stats, slots] contiguous (one all_gather)."""
    if w == 1:
        return nodes.unsqueeze(0)
    got = [torch.empty_like(nodes) for _ in range(w)]
    torch.distributed.all_gather(got, nodes, group=group)
    return torch.stack(got)


class _TensorParallelNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, residual, rowscale, cfg):  # type: ignore[override]
        eps, p, is_rms, zc, rfp32, out_dtype, group, cols_per_rank, seed, offset = cfg
        shape = x.shape
        nk = shape[-1]
        m = x.numel() // nk
        x2 = x.reshape(m, nk).contiguous()
        r2 = residual.reshape(m, nk).contiguous() if residual is not None else None
        rs = rowscale.reshape(-1).to(torch.float32).contiguous() if rowscale is not None else None
        weight = weight.contiguous()
        bias = bias.contiguous() if bias is not None else None
        w, rank = _world(group)
        if cols_per_rank is None:  # the column counts: one exchange
            cols_per_rank = _gather_rows(group, nk, x.device)
        split = _Split(cols_per_rank, rank)
        if len(split.counts) != w or split.counts[rank] != nk:
            raise ValueError("darn.distributed: cols_per_rank = %s: expected %d counts with this rank's (%d) = %d"
                             % (split.counts, w, rank, nk))
        n = split.n
        flags = L.FLAG_ZERO_CENTERED_WEIGHT if zc else 0
        xc, wc = _CODE[x.dtype], _CODE[weight.dtype]
        rc = xc
        if r2 is not None:
            flags |= L.FLAG_HAS_RESIDUAL
            rc = _CODE[r2.dtype]
        if rfp32:
            flags |= L.FLAG_RESIDUAL_IN_FP32
        bc = wc
        if bias is not None:
            flags |= L.FLAG_HAS_BIAS
            bc = _CODE[bias.dtype]
        if rs is not None:
            flags |= L.FLAG_HAS_ROWSCALE
        dv = (L.RMSNORM if is_rms else L.LAYERNORM, n, xc, rc, wc, bc, _CODE[out_dtype], flags, eps, p)
        if p > 0.0 and seed is None:
            seed, offset = _draw_rng(x, m, n)
        elif seed is None:
            seed, offset = 0, 0
        hc = L.F32 if rfp32 else rc
        dev = x.device
        out = torch.empty((m, nk), dtype=out_dtype, device=dev)
        h = torch.empty((m, nk), dtype=_DTYPE[hc], device=dev)
        rstd = torch.empty((m,), dtype=torch.float32, device=dev)
        mean = torch.empty((m,), dtype=torch.float32, device=dev) if not is_rms else None
        t = L.FwdTensors(x=_ptr(x2), residual=_ptr(r2), rowscale=_ptr(rs), weight=_ptr(weight), bias=_ptr(bias),
                         out=_ptr(out), residual_out=_ptr(h), rstd=_ptr(rstd), mean=_ptr(mean))
        d = _desc(dv, m, seed, offset)
        backend, stream, devctx = _backend(x)
        f = _fns()
        nodes0 = torch.empty((m, 1, split.slots), dtype=torch.float32, device=dev)
        with devctx:
            st = f["darn_fwd_cols_sums"](ctypes.addressof(d), split.ptr(), 0, None, ctypes.addressof(t),
                                         _ptr(nodes0), backend, stream)
        if st:
            _raise(st, "darn_fwd_cols_sums")
        g0 = _gather_nodes(group, nodes0, w)
        g1 = None
        if not is_rms:
            nodes1 = torch.empty_like(nodes0)
            with devctx:
                st = f["darn_fwd_cols_sums"](ctypes.addressof(d), split.ptr(), 1, _ptr(g0), ctypes.addressof(t),
                                             _ptr(nodes1), backend, stream)
            if st:
                _raise(st, "darn_fwd_cols_sums")
            g1 = _gather_nodes(group, nodes1, w)
        with devctx:
            st = f["darn_fwd_cols"](ctypes.addressof(d), split.ptr(), _ptr(g0), _ptr(g1), ctypes.addressof(t),
                                    backend, stream)
        if st:
            _raise(st, "darn_fwd_cols")
        ctx.save_for_backward(h, weight, rstd, mean, rs)
        ctx.cfg = (dv, m, nk, seed, offset, split, group, r2 is not None, bias is not None)
        ctx.set_materialize_grads(False)
        return out.view(shape), h.view(shape)

    @staticmethod
    def backward(ctx, dout, dresout):  # type: ignore[override]
        h, weight, rstd, mean, rs = ctx.saved_tensors
        dv, m, nk, seed, offset, split, group, has_res, has_bias = ctx.cfg
        dev = h.device
        dy = (dout.reshape(m, nk).contiguous() if dout is not None
              else torch.zeros((m, nk), dtype=_DTYPE[dv[6]], device=dev))
        dro = dresout.reshape(m, nk).contiguous() if dresout is not None else None
        w, _ = _world(group)
        dx = torch.empty((m, nk), dtype=_DTYPE[dv[2]], device=dev)
        dres = torch.empty((m, nk), dtype=_DTYPE[dv[3]], device=dev) if has_res and ctx.needs_input_grad[3] else None
        dw = torch.empty((nk,), dtype=_DTYPE[dv[4]], device=dev)
        db = torch.empty((nk,), dtype=_DTYPE[dv[5]], device=dev) if has_bias else None
        t = L.BwdTensors(dy=_ptr(dy), h=_ptr(h), weight=_ptr(weight), rstd=_ptr(rstd), mean=_ptr(mean),
                         rowscale=_ptr(rs), dresidual_out=_ptr(dro), dx=_ptr(dx), dresidual=_ptr(dres),
                         dweight=_ptr(dw), dbias=_ptr(db))
        d = _desc(dv, m, seed, offset)
        backend, stream, devctx = _backend(h)
        f = _fns()
        stats = 1 if dv[0] == L.RMSNORM else 2
        nodes = torch.empty((m, stats, split.slots), dtype=torch.float32, device=dev)
        with devctx:
            st = f["darn_bwd_cols_sums"](ctypes.addressof(d), split.ptr(), ctypes.addressof(t), _ptr(nodes), backend,
                                         stream)
        if st:
            _raise(st, "darn_bwd_cols_sums")
        g = _gather_nodes(group, nodes, w)
        ws_bytes = ctypes.c_size_t(0)
        st = f["darn_bwd_cols_workspace_size"](ctypes.addressof(d), split.ptr(), backend, ctypes.byref(ws_bytes))
        if st:
            _raise(st, "darn_bwd_cols_workspace_size")
        ws = torch.empty((ws_bytes.value,), dtype=torch.uint8, device=dev) if ws_bytes.value else None
        with devctx:
            st = f["darn_bwd_cols"](ctypes.addressof(d), split.ptr(), _ptr(g), ctypes.addressof(t), _ptr(ws),
                                    ws_bytes.value, backend, stream)
        if st:
            _raise(st, "darn_bwd_cols")
        shape = dout.shape if dout is not None else dresout.shape
        return (dx.view(shape), dw, db, dres.view(shape) if dres is not None else None, None, None)


def tensor_parallel_norm_fn(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                            residual: Optional[Tensor] = None, eps: float = 1e-6, dropout_p: float = 0.0,
                            rowscale: Optional[Tensor] = None, prenorm: bool = False,
                            residual_in_fp32: bool = False, zero_centered_weight: bool = False,
                            is_rms_norm: bool = False, out_dtype: Optional[torch.dtype] = None, *,
                            group=None, cols_per_rank: Optional[Sequence[int]] = None,
                            seed: Optional[int] = None, offset: int = 0) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """darn.layer_norm_fn on this rank's columns of a tensor-parallel batch (see the module docstring): x [..., n_k]
    (and residual) hold this rank's slice of the columns, weight / bias [n_k] its slice, the slices of the ranks of
    `group` in rank order (every one but the last a multiple of 8 columns). Returns y, or (y, residual_out) with
    prenorm: this rank's columns of the one-process call's, and its gradients are those columns of the one-process
    call's, bit for bit. rowscale [...] is every row's (the same on every rank). cols_per_rank: every rank's column
    count (saves one exchange; checked). Arguments as in darn.layer_norm_fn; no rowscale gradient."""
    if not isinstance(x, Tensor) or not isinstance(weight, Tensor):
        raise TypeError("darn.distributed: x and weight must be tensors")
    nk = x.shape[-1] if x.dim() else 0
    if nk < 1:
        raise ValueError("darn.distributed: x has shape %s; it needs a last dim >= 1" % (tuple(x.shape),))
    for t, what in ((x, "x"), (weight, "weight"), (bias, "bias"), (residual, "residual")):
        if t is not None and t.dtype not in _CODE:
            raise TypeError("darn.distributed: %s has dtype %s; darn supports float32, float16 and bfloat16"
                            % (what, t.dtype))
    if weight.shape != (nk,) or (bias is not None and bias.shape != (nk,)):
        raise ValueError("darn.distributed: weight / bias must have this rank's %d columns" % nk)
    if residual is not None and residual.shape != x.shape:
        raise ValueError("darn.distributed: residual has shape %s, x has %s" % (tuple(residual.shape),
                                                                               tuple(x.shape)))
    out_dtype = x.dtype if out_dtype is None else out_dtype
    if out_dtype not in _CODE:
        raise TypeError("darn.distributed: out_dtype %s is not supported" % out_dtype)
    if seed is None and offset != 0:
        raise ValueError("darn.distributed: offset= needs seed=")
    if seed is not None and not (0 <= seed <= _U64 and 0 <= offset <= _U64):
        raise ValueError("darn.distributed: seed / offset must be in [0, 2**64)")
    rfp32 = residual is None and bool(residual_in_fp32)
    cfg = (float(eps), float(dropout_p), bool(is_rms_norm), bool(zero_centered_weight), rfp32, out_dtype, group,
           cols_per_rank, seed, offset)
    y, h = _TensorParallelNorm.apply(x, weight, bias, residual, rowscale, cfg)
    return (y, h) if prenorm else y


class TensorParallelRMSNorm(torch.nn.Module):
    """darn.RMSNorm over columns split across `group`: hidden_size is this rank's column count (its weight slice);
    forward(x, residual=None, prenorm=False, residual_in_fp32=False) on this rank's columns. cols_per_rank: every
    rank's count (optional; else exchanged per call)."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, dropout_p: float = 0.0, zero_centered_weight: bool = False,
                 group=None, cols_per_rank: Optional[Sequence[int]] = None, device: Optional[torch.device] = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.eps, self.dropout_p, self.zero_centered_weight, self.group = eps, dropout_p, zero_centered_weight, group
        self.cols_per_rank = list(cols_per_rank) if cols_per_rank is not None else None
        self.weight = torch.nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        (torch.nn.init.zeros_ if self.zero_centered_weight else torch.nn.init.ones_)(self.weight)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None, prenorm: bool = False,
                residual_in_fp32: bool = False):
        return tensor_parallel_norm_fn(x, self.weight, None, residual, self.eps,
                                       self.dropout_p if self.training else 0.0, None, prenorm, residual_in_fp32,
                                       self.zero_centered_weight, True, group=self.group,
                                       cols_per_rank=self.cols_per_rank)


class TensorParallelLayerNorm(TensorParallelRMSNorm):
    """darn.LayerNorm over columns split across `group` (bias=False: no bias); otherwise as TensorParallelRMSNorm."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, dropout_p: float = 0.0, zero_centered_weight: bool = False,
                 bias: bool = True, group=None, cols_per_rank: Optional[Sequence[int]] = None,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__(hidden_size, eps, dropout_p, zero_centered_weight, group, cols_per_rank, device, dtype)
        if bias:
            self.bias = torch.nn.Parameter(torch.zeros(hidden_size, device=device, dtype=dtype))

    def forward(self, x: Tensor, residual: Optional[Tensor] = None, prenorm: bool = False,
                residual_in_fp32: bool = False):
        return tensor_parallel_norm_fn(x, self.weight, self.bias, residual, self.eps,
                                       self.dropout_p if self.training else 0.0, None, prenorm, residual_in_fp32,
                                       self.zero_centered_weight, False, group=self.group,
                                       cols_per_rank=self.cols_per_rank)
