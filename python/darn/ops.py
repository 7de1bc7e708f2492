"""darn's PyTorch functions: flash-attn's layer_norm_fn / rms_norm_fn over libdarn, with autograd.

Layers:
- `_fwd_impl` / `_bwd_impl`: one darn_fwd / darn_bwd call on row tensors [..., N] (CPU backend for CPU
  tensors, GPU backend for CUDA/ROCm tensors, on the tensor's device and the current stream). The forward is
  `_fwd_plan` (what the call takes from the arguments' metadata: darn_desc fields, output dtypes, workspace
  size, the packed darn_desc) then `_fwd_run` (outputs, pointers, the call). The arguments go into an argument
  block taken from a free list (`_blocks`): the plan's darn_desc bytes copied in, the RNG fields packed with
  dropout, the tensors struct packed with one struct.pack_into; workspace sizes are cached per descriptor; a CPU
  workspace is taken from a free list too (the CPU call is synchronous: `_cpu_call`), a GPU workspace is one
  tensor per (device, stream) outside graph capture (`_workspace`).
- `torch.ops.darn.fwd` / `torch.ops.darn.bwd`: the same as `torch.library.custom_op`s with fake
  implementations and `register_autograd` (torch >= 2.4), so torch.compile(fullgraph=True) traces them. A
  custom op returns tensors only: the outputs it does not produce are empty tensors, mapped back to None by
  `_op_outputs` (the one contract of all paths: absent = None).
- `_DarnFn`: a torch.autograd.Function over the same implementations. Eager calls that need gradients use it
  (lower per-call overhead than the custom-op dispatcher; torch < 2.4 has nothing else), through the C
  `apply` (`_fn_apply`: torch 2.x's Python wrapper only runs under functorch transforms). It returns only
  (out, residual_out with prenorm, mask) and keeps rstd / mean / the RNG pair for its backward. Eager calls
  that need no gradient call `_fwd_run` directly and skip rstd / mean.
- `layer_norm_fn` / `rms_norm_fn` (`_norm_fn`): flash-attn's checks and conventions (`_norm_plan`). Eager
  calls cache the checks' outcome and the forward's plan per argument metadata (shapes, dtypes, devices,
  options: `_plans`), so a repeated call reads that metadata, looks it up and goes straight to the darn call.
  Preallocated outputs (out= / residual_out=) are checked per call (`_out_args`) and written with their row
  strides; an overlap is darn_fwd's DARN_ERR_ALIASING, re-raised with the Python names (`_fwd_failed`).
- Parallel residual (x1 / weight1 / bias1 given: `_par_norm_fn`): flash-attn's second input and second output.
  Non-parallel calls never reach it (one `is None` test each), so their path is unchanged; the darn calls get the
  parallel fields as zeros. Parallel calls run the same checks (plus `_par_check`) and plan cache, then
  `_fwd_run` / `_bwd_run` with their `par` argument (x1 / out1 / mask1, dy1 / dx1 / dweight1 / dbias1), through
  `_DarnParFn` (an autograd.Function like `_DarnFn`) when they need gradients. They have no custom op yet: under
  torch.compile they are excluded from tracing (torch.compiler.disable: a graph break, eager darn calls with
  autograd), so torch.compile(fullgraph=True) refuses a parallel call.
All paths run the same darn calls, so they give the same bits for the same (seed, offset).

Dropout RNG (seed, offset):
- `seed=` given (a darn extension): that seed and `offset=`, on every backend.
- CUDA/ROCm tensor, eager, not capturing: seed = initial_seed() of the device's default generator and
  offset = its Philox offset, which is then advanced by M*N rounded up to a multiple of 4 (PyTorch's own
  convention), so torch.manual_seed makes runs repeatable and successive calls draw fresh masks
  (Generator.get_offset / set_offset, torch >= 2.1; before that the same pair through get_state / set_state).
  darn's stream for a given offset is Philox subsequence `offset` (docs/numerics.md §3), so two calls at
  different offsets never share words.
- CUDA/ROCm tensor under CUDA graph capture, or inside torch.compile (the custom op): a 2-element int64
  device tensor (seed, offset) is drawn with torch.randint from the default generator (graph-safe: capture
  records it, every replay draws new values), and darn reads it through desc.rng_seed_ptr / rng_offset_ptr
  when the kernel runs. The backward reads the same tensor. (A generator value read on the host during
  capture would be frozen into the graph: every replay would reuse one mask.)
- CPU tensor: (seed, offset) drawn with torch.randint from the default CPU generator.
The mask is not stored for the backward: darn regenerates it from (seed, offset), bit-identical. With
return_dropout_mask=True it is stored (bit-packed, darn's layout) and handed to the backward. With x1, x1's mask
comes from the same (seed, offset) at Philox element index i + 2^63 (independent of x's, never the same word):
one pair, one offset advance of M*N, both masks.
"""

from operator import index as _index
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from . import _lib as L

_CODE = {torch.float32: L.F32, torch.float16: L.F16, torch.bfloat16: L.BF16}
_DTYPE = {v: k for k, v in _CODE.items()}
# fp8 outputs (out_dtype only; docs/numerics.md §9), where this torch has the dtypes (torch >= 2.1; the FNUZ
# ones later). Forward only: darn_fwd stores fp8(y * 1) (the default scale); no autograd through them yet.
_FP8_CODE = {getattr(torch, name): code for name, code in (
    ("float8_e4m3fn", L.FP8_E4M3FN), ("float8_e5m2", L.FP8_E5M2), ("float8_e4m3fnuz", L.FP8_E4M3FNUZ),
    ("float8_e5m2fnuz", L.FP8_E5M2FNUZ)) if hasattr(torch, name)}
_OUT_CODE = dict(_CODE)
_OUT_CODE.update(_FP8_CODE)
_DTYPE.update({v: k for k, v in _FP8_CODE.items()})
_U64 = (1 << 64) - 1
_I64_HIGH = (1 << 63) - 1
_FLT_MAX = L.FLT_MAX
_INF = float("inf")
(_FLAG_ZERO_CENTERED_WEIGHT, _FLAG_RESIDUAL_IN_FP32, _FLAG_HAS_RESIDUAL, _FLAG_HAS_BIAS, _FLAG_HAS_ROWSCALE,
 _RMSNORM, _LAYERNORM, _BACKEND_GPU, _BACKEND_CPU) = (
    L.FLAG_ZERO_CENTERED_WEIGHT, L.FLAG_RESIDUAL_IN_FP32, L.FLAG_HAS_RESIDUAL, L.FLAG_HAS_BIAS, L.FLAG_HAS_ROWSCALE,
    L.RMSNORM, L.LAYERNORM, L.BACKEND_GPU, L.BACKEND_CPU)
_FLAG_HAS_X1, _FLAG_HAS_WEIGHT1, _FLAG_HAS_BIAS1 = L.FLAG_HAS_X1, L.FLAG_HAS_WEIGHT1, L.FLAG_HAS_BIAS1

# bound once: the per-call path looks nothing up in modules or dicts it does not need
_empty_like = torch.empty_like
_contiguous_format = torch.contiguous_format
_preserve_format = torch.preserve_format
_uint8 = torch.uint8
_float32 = torch.float32
_DESC_TAIL = L.DESC_TAIL
_DESC_BYTES, _RNG_OFFSET = L.DESC_BYTES, L.RNG_OFFSET
_desc_bytes, _pack_rng = L.desc_bytes, L.pack_rng
_pack_fwd_t, _pack_bwd_t = L.pack_fwd_tensors, L.pack_bwd_tensors
_fwd_c, _bwd_c = L._fwd, L._bwd
_Tensor = torch.Tensor
_grad_enabled = torch.is_grad_enabled


# The cheapest current-device / current-stream queries: torch._C's raw functions (an int handle, no Stream
# object; present in CUDA and ROCm builds of torch 1.x and 2.x), else the public API (CPU-only builds never
# call them).
def _raw_stream_fallback(idx):
    return torch.cuda.current_stream(idx).cuda_stream


def _is_capturing_fallback():
    return torch.cuda.is_current_stream_capturing()


_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None) or _raw_stream_fallback
_cuda_get_device = getattr(torch._C, "_cuda_getDevice", None) or torch.cuda.current_device
_is_capturing = getattr(torch._C, "_cuda_isCurrentStreamCapturing", None) or _is_capturing_fallback
_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
if _is_compiling is None:
    try:
        from torch._dynamo import is_compiling as _is_compiling  # type: ignore[no-redef]
    except Exception:  # torch < 2.0: nothing compiles
        def _is_compiling():  # type: ignore[misc]
            return False

HAS_CUSTOM_OP: bool = hasattr(torch, "library") and hasattr(torch.library, "custom_op") and hasattr(
    torch.library, "register_fake")


def _code(dtype, what):
    c = _CODE.get(dtype)
    if c is None:
        raise TypeError("darn: %s has dtype %s; darn supports torch.float32, torch.float16 and torch.bfloat16"
                        % (what, dtype))
    return c


def _row_stride(t):
    """The row stride darn takes for t [..., N] (0: contiguous), or -1 when its strides cannot be expressed as rows
    of N contiguous elements at one stride >= N (last dim strided, leading dims that do not collapse, broadcast or
    overlapping rows)."""
    if t.is_contiguous():
        return 0
    shape, stride = t.shape, t.stride()
    n = shape[-1]
    if n > 1 and stride[-1] != 1:
        return -1
    if len(shape) == 2:  # the common case, without the loop
        if shape[0] <= 1 or n == 0:
            return 0
        s = stride[0]
        return s if s >= n else -1
    # the leading dims must collapse into one dim of rows with a single stride (size-1 dims do not count)
    s = span = None
    for d in range(len(shape) - 2, -1, -1):
        size = shape[d]
        if size == 1:
            continue
        if s is None:
            s, span = stride[d], stride[d] * size
        elif stride[d] != span:
            return -1
        else:
            span *= size
    if s is None or t.numel() == 0:  # at most one row (or none)
        return 0
    if s < n:  # broadcast (stride 0) or overlapping rows
        return -1
    return s


def _rows(t):
    """t [..., N] as darn reads it: rows of N with the last dim contiguous and one row stride that is 0
    (contiguous) or >= N. Returns (tensor, row stride); copies only when the strides cannot be expressed."""
    s = _row_stride(t)
    if s < 0:
        return t.contiguous(), 0
    return t, s


_gpu_ok = False


def _check_gpu():
    global _gpu_ok
    if not L.gpu_available():
        raise RuntimeError("darn: %s has no usable GPU backend (built with DARN_GPU=none, or no device "
                           "visible to it); CUDA tensors need libdarn built with DARN_GPU=nvidia (CUDA "
                           "PyTorch) or DARN_GPU=amd (ROCm PyTorch)" % L.PATH)
    _gpu_ok = True


def _backend(t):
    """(backend, stream, device index to switch to or -1) for a darn call on tensor t: the CPU backend for CPU
    tensors; the GPU backend for CUDA/ROCm tensors, on the current stream of t's device, switching to that
    device for the call when it is not the current one."""
    if t.is_cuda:
        if not _gpu_ok:
            _check_gpu()
        idx = t.get_device()
        return _BACKEND_GPU, _raw_stream(idx), (idx if idx != _cuda_get_device() else -1)
    if not t.is_cpu:
        raise TypeError("darn: tensors on %s are not supported (CPU and CUDA/ROCm tensors are)" % t.device)
    return _BACKEND_CPU, None, -1


_ws_cache: dict = {}
_CPU = _BACKEND_CPU
_ERR_ALIASING = 9  # DARN_ERR_ALIASING
_CPU_WS_CACHED = 16 << 20  # larger CPU workspaces are allocated per call
# Free argument blocks and CPU workspaces. A call takes one with list.pop (atomic: no other thread, and no call
# made while this one is being prepared, e.g. from a finalizer or a torch dispatch mode running during an
# allocation, gets the same one) and puts it back after the C call; an empty list makes a new one. So there are
# as many as calls were ever in preparation at once (one per thread, normally), without a threading.local lookup.
# (One lost to an exception is only garbage.) A block is (buffer, address of the darn_desc, address of the
# tensors struct, the buffer as bytes): the call copies its plan's packed darn_desc in (one slice assignment),
# writes the RNG fields when there is dropout, and packs the tensors struct after it.
_blocks: list = []
_take_block, _give_block = _blocks.pop, _blocks.append


def _new_block():
    buf, addr, taddr = L._new_block()
    return buf, addr, taddr, memoryview(buf).cast("B")


def _desc_of(dv):
    """The packed darn_desc of a call with darn_desc fields dv, RNG fields zero (a plan's, or derived per call)."""
    return _desc_bytes(*dv, 0, 0, 0, 0, *_DESC_TAIL)


_cpu_ws: list = []  # free CPU workspaces (address, size, buffer), taken and put back like _blocks
_take_cpu_ws, _give_cpu_ws = _cpu_ws.pop, _cpu_ws.append
_NO_WS = (0, -1, None)


def _new_cpu_ws(nbytes, old):
    """A CPU workspace of at least nbytes (twice the one it replaces, up to _CPU_WS_CACHED), 64-byte aligned
    (darn needs 16)."""
    size = max(nbytes, min(2 * old[1], _CPU_WS_CACHED))
    buf = L.ctypes.create_string_buffer(size + 64)
    addr = L.ctypes.addressof(buf)
    addr += -addr % 64
    return addr, size, buf


def _cpu_call(fn, block, ws_bytes):
    """darn_fwd / darn_bwd (fn) on the CPU backend with a workspace of ws_bytes <= _CPU_WS_CACHED (the CPU call is
    synchronous: the workspace goes back to the free list when it returns); the status."""
    try:
        ws = _take_cpu_ws()
    except IndexError:
        ws = _NO_WS
    if ws[1] < ws_bytes:
        ws = _new_cpu_ws(ws_bytes, ws)
    st = fn(block[1], block[2], ws[0], ws_bytes, _CPU, None)
    _give_cpu_ws(ws)
    return st


def _workspace_bytes(is_fwd, backend, dv):
    """darn's workspace size for a call with darn_desc fields dv on backend; cached (it does not depend on the
    RNG state or the pointers)."""
    key = (is_fwd, backend, dv)
    ws_bytes = _ws_cache.get(key)
    if ws_bytes is None:
        ws_bytes = L.workspace_size_of(is_fwd, dv, backend)
        if len(_ws_cache) > 4096:
            _ws_cache.clear()
        _ws_cache[key] = ws_bytes
    return ws_bytes


_gpu_ws: dict = {}  # (device index, raw stream) -> uint8 tensor: the workspace of the calls ordered on that stream
_GPU_WS_CACHED = 64 << 20  # larger GPU workspaces come from the caching allocator per call


def _workspace(ws_bytes, backend, like, stream):
    """(address, owner) of a workspace of ws_bytes for a call on backend: on a GPU, one tensor per (device, stream),
    reused by every call on that stream (stream order makes that safe), except under graph capture (a captured
    graph keeps the address: the caching allocator's, which gives the graph's pool), for very large sizes, or with
    stream None (a call on another device than the current one, whose capture state the check below does not
    see). (A CPU workspace up to _CPU_WS_CACHED is a free one of _cpu_call's, the CPU call being synchronous; a
    larger one is allocated here.)"""
    if backend != _CPU and stream is not None and ws_bytes <= _GPU_WS_CACHED and not _is_capturing():
        key = (like.get_device(), stream)
        ws = _gpu_ws.get(key)
        if ws is None or ws.numel() < ws_bytes:
            if len(_gpu_ws) >= 64:
                _gpu_ws.clear()
            _gpu_ws[key] = ws = like.new_empty((ws_bytes,), dtype=_uint8)
        return ws.data_ptr(), ws
    ws = like.new_empty((ws_bytes,), dtype=_uint8)  # alive until the call returns
    return ws.data_ptr(), ws


def _call(fn, block, ws_bytes, backend, stream, switch, like):
    """darn_fwd / darn_bwd (fn) on the packed argument block with a workspace of ws_bytes (or none) on backend,
    switching to device `switch` for the call when >= 0; the status. (The callers make the common calls, CPU and
    GPU without a workspace or a switch, themselves; the block goes back to the free list in the caller.)"""
    if ws_bytes:
        if backend == _CPU and ws_bytes <= _CPU_WS_CACHED:
            return _cpu_call(fn, block, ws_bytes)
        wp, keep = _workspace(ws_bytes, backend, like, stream if switch < 0 else None)
    else:
        wp = None
    if switch < 0:
        return fn(block[1], block[2], wp, ws_bytes, backend, stream)
    with torch.cuda.device(switch):
        return fn(block[1], block[2], wp, ws_bytes, backend, stream)


def _draw_rng(x, seed, offset, graph_safe):
    """(rng, seed, offset, device pointer or 0) for dropout_p > 0: see the module docstring. rng is the pair
    the backward needs: a (seed, offset) tuple of Python ints when the values are known on the host, else the
    int64 [2] device tensor darn reads them from (two's-complement bits)."""
    if seed is not None:
        s, o = seed & _U64, offset & _U64
        return (s, o), s, o, 0
    if x.is_cuda:
        if not graph_safe and not _is_capturing():
            so = _philox_take(torch.cuda.default_generators[x.get_device()], max(4, (x.numel() + 3) // 4 * 4))
            if so is not None:
                return so, so[0], so[1], 0
        rng = torch.randint(0, _I64_HIGH, (2,), dtype=torch.int64, device=x.device)
        return rng, 0, 0, rng.data_ptr()
    s, o = torch.randint(0, _I64_HIGH, (2,), dtype=torch.int64).tolist()
    return (s, o), s, o, 0


_HAS_GET_OFFSET = hasattr(torch.Generator, "get_offset") and hasattr(torch.Generator, "set_offset")


def _philox_take(gen, increment):
    """(seed, offset) of a Philox generator, whose offset then advances by `increment` (what PyTorch's
    philox_cuda_state does for its own kernels); None when the generator does not expose them."""
    if _HAS_GET_OFFSET:  # torch >= 2.1
        try:
            o = gen.get_offset()
            gen.set_offset(o + increment)
            return gen.initial_seed() & _U64, o
        except RuntimeError:
            pass
    state = gen.get_state()  # older torch: the CUDA state is the int64 pair (seed, offset)
    if state.numel() != 16:
        return None
    v = state.view(torch.int64)
    s, o = int(v[0]) & _U64, int(v[1])
    v[1] += increment
    gen.set_state(state)
    return s, o


def _signed(v):
    return v - (1 << 64) if v >= (1 << 63) else v


def _u64_arg(v, what):
    """seed= / offset= as darn's uint64 (in int64 two's complement, as the custom op's schema carries it): an
    integer in [0, 2**64), else TypeError / ValueError (no silent wrapping or truncation)."""
    i = v
    if type(i) is not int:  # a plain int (the common case) skips the try: dynamo traces this function
        try:
            i = _index(v)
        except TypeError:
            raise TypeError("darn: %s must be an integer, got %s" % (what, type(v).__name__)) from None
    if not 0 <= i <= _U64:
        raise ValueError("darn: %s = %d is outside [0, 2**64) (darn's seed and offset are uint64)" % (what, i))
    return i - (1 << 64) if i >= (1 << 63) else i


def _rng_tensor(rng):
    """The rng of _fwd_impl as a tensor (the custom op's output): a host pair becomes a CPU int64 [2]."""
    if rng is None:
        return torch.empty(0, dtype=torch.int64)
    if isinstance(rng, tuple):
        return torch.tensor([_signed(rng[0]), _signed(rng[1])], dtype=torch.int64)
    return rng


def _rng_of(rng):
    """(seed, offset, device pointer or 0) back from an rng of _fwd_impl (None, a host pair or a tensor)."""
    if rng is None:
        return 0, 0, 0
    if isinstance(rng, tuple):
        return rng[0], rng[1], 0
    if rng.numel() == 0:
        return 0, 0, 0
    if rng.is_cuda:
        return 0, 0, rng.data_ptr()
    s, o = rng.tolist()
    return s & _U64, o & _U64, 0


# ---- the two calls ------------------------------------------------------------------------------------------
def _fwd_plan(x, weight, bias, residual, has_rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight,
              residual_in_fp32, out_dtype, store_residual_out, store_mask, stats, par=None):
    """What a darn_fwd call takes from its arguments' metadata (dtypes, shape, device, options), not their data:
    (dv, workspace bytes, out dtype, residual_out dtype or None, mask row bytes or 0, rstd?, mean?, backend,
    darn_bwd's workspace bytes or None, x's CUDA device index or -1, x's dtype, the packed darn_desc of dv with zero
    RNG fields (_desc_of)), dv the darn_desc fields up to dropout_p, which are also the backward's
    (darn_bwd takes the forward's desc; dy has out's dtype). With stats (rstd / mean: a call the backward will
    follow) the plan has the backward's workspace size. The eager entry points cache it (see _norm_fn); _fwd_impl
    derives it per call. par: None, or a parallel-residual call's (x1?, weight1?, bias1's dtype or None), which
    set DARN_FLAG_HAS_X1 / _WEIGHT1 / _BIAS1 (and bias_dtype from bias1 when there is no bias); store_mask then
    stores x1's mask too."""
    shape = x.shape
    n = shape[-1]
    m = shape[0] if len(shape) == 2 else (x.numel() // n if n else 0)
    xc = _CODE.get(x.dtype)
    wc = _CODE.get(weight.dtype)
    if xc is None or wc is None or out_dtype not in _DTYPE:
        _code(x.dtype, "x"), _code(weight.dtype, "weight"), _code(_DTYPE.get(out_dtype), "out_dtype")
    flags = _FLAG_ZERO_CENTERED_WEIGHT if zero_centered_weight else 0
    if residual is not None:
        flags |= _FLAG_HAS_RESIDUAL
        rc = _CODE.get(residual.dtype)
        if rc is None:
            _code(residual.dtype, "residual")
    else:
        rc = xc
    if residual_in_fp32:
        flags |= _FLAG_RESIDUAL_IN_FP32
        rd = L.F32
    else:
        rd = rc
    if bias is not None:
        flags |= _FLAG_HAS_BIAS
        bc = _CODE.get(bias.dtype)
        if bc is None:
            _code(bias.dtype, "bias")
    else:
        bc = wc
    if has_rowscale:
        flags |= _FLAG_HAS_ROWSCALE
    if par is not None:
        if par[0]:
            flags |= _FLAG_HAS_X1
        if par[1]:
            flags |= _FLAG_HAS_WEIGHT1
        if par[2] is not None:
            flags |= _FLAG_HAS_BIAS1
            if bias is None:
                bc = _code(par[2], "bias1")
    if eps > _FLT_MAX:  # as a C float: rounds like ctypes (inf beyond FLT_MAX, which darn rejects)
        eps = L._f32(eps).value
    dv = (_RMSNORM if is_rms_norm else _LAYERNORM, m, n, xc, rc, wc, bc, out_dtype, flags, eps, dropout_p)
    backend = _backend(x)[0]
    return (dv, _workspace_bytes(True, backend, dv), _DTYPE[out_dtype],
            _DTYPE[rd] if store_residual_out else None, L.mask_row_bytes(n) if store_mask else 0, bool(stats),
            bool(stats) and not is_rms_norm, backend, _workspace_bytes(False, backend, dv) if stats else None,
            x.get_device() if backend != _CPU else -1, x.dtype, _desc_of(dv))


def _fwd_run(plan, x, weight, bias, residual, rowscale, seed, offset, graph_safe=False, outs=None, par=None):
    """darn_fwd on x [..., N] (rows: the leading dims; residual has x's shape) with a plan of _fwd_plan for these
    arguments. Returns (out, resout, mask, rstd, mean, rng): out / resout have x's shape; resout / mask / rstd /
    mean / rng are None when not produced; mask is darn's packed layout [M, mask_row_bytes(N)] uint8; rng what
    the backward needs for the (seed, offset) pair (see _draw_rng). outs: None, or the checked preallocated
    outputs (out or None, its row stride, residual_out or None, its row stride) of _out_args, written instead of
    allocating (residual_out only when the plan stores it). par: None, or a parallel-residual call's (x1, weight1,
    bias1), each a tensor or None, as the plan's flags say (weight1 / bias1 contiguous); then the result has two
    more entries, (..., out1, mask1): out1 [x's shape, out dtype] with weight1, mask1 (packed like mask) with x1
    and a stored mask, else None."""
    dv, ws_bytes, out_dt, resout_dt, mask_bytes, want_rstd, want_mean, backend, _, dev, x_dt, desc = plan
    m = dv[1]
    if backend == _CPU:
        stream, switch = None, -1
    else:
        stream = _raw_stream(dev)
        switch = dev if dev != _cuda_get_device() else -1
    if x.is_contiguous():  # the common case, without _rows' call
        sx = 0
        fmt = _preserve_format  # = contiguous for a contiguous x, and cheaper to parse than memory_format=
    else:
        x, sx = _rows(x)
        fmt = _contiguous_format
    if residual is None:
        rptr = sr = 0
    else:
        if residual.is_contiguous():
            sr = 0
        else:
            residual, sr = _rows(residual)
        rptr = residual.data_ptr()
    # outputs: x's shape, contiguous (empty_like / new_empty: no shape or device parsing), or the given ones
    if outs is None or outs[0] is None:
        if fmt is not _preserve_format:
            out = _empty_like(x, dtype=out_dt, memory_format=fmt)
        else:  # without keywords where they change nothing: less argument parsing
            out = _empty_like(x) if out_dt is x_dt else _empty_like(x, dtype=out_dt)
        so = 0
    else:
        out, so = outs[0], outs[1]
    if resout_dt is None:
        resout, roptr, sro = None, 0, 0
    else:
        if outs is None or outs[2] is None:
            if fmt is not _preserve_format:
                resout = _empty_like(x, dtype=resout_dt, memory_format=fmt)
            else:
                resout = _empty_like(x) if resout_dt is x_dt else _empty_like(x, dtype=resout_dt)
            sro = 0
        else:
            resout, sro = outs[2], outs[3]
        roptr = resout.data_ptr()
    if mask_bytes:
        mask = x.new_empty((m, mask_bytes), dtype=_uint8)
        mptr = mask.data_ptr()
    else:
        mask, mptr = None, 0
    rstd = mean = None
    rstdptr = meanptr = 0
    if want_rstd:  # rstd / mean: only the backward needs them
        rstd = x.new_empty((m,), dtype=_float32)
        rstdptr = rstd.data_ptr()
        if want_mean:
            mean = x.new_empty((m,), dtype=_float32)
            meanptr = mean.data_ptr()
    rng = None if dv[10] == 0.0 else _draw_rng(x, seed, offset, graph_safe)
    try:
        block = _take_block()
    except IndexError:
        block = _new_block()
    buf = block[0]
    block[3][:_DESC_BYTES] = desc  # the plan's darn_desc, RNG fields zero
    if rng is not None:
        rng, s, o, dptr = rng
        # darn reads seed = *dptr and offset = *(dptr + 1) + desc.offset (here 0) when the kernel runs
        _pack_rng(buf, _RNG_OFFSET, s, o, dptr, dptr + 8 if dptr else 0)
    if par is None:
        _pack_fwd_t(buf, _DESC_BYTES, x.data_ptr(), sx, rptr, sr, rowscale.data_ptr() if rowscale is not None else 0,
                    weight.data_ptr(), bias.data_ptr() if bias is not None else 0, out.data_ptr(), so, roptr, sro, mptr,
                    rstdptr, meanptr, 0, 0, 0, 0, 0, 0, 0, 0)
    else:  # the parallel residual: x1's rows, out1, mask1
        x1, weight1, bias1 = par
        if x1 is None:
            x1p = sx1 = m1ptr = 0
            mask1 = None
        else:
            x1, sx1 = _rows(x1)
            x1p = x1.data_ptr()
            if mask_bytes:
                mask1 = x.new_empty((m, mask_bytes), dtype=_uint8)
                m1ptr = mask1.data_ptr()
            else:
                mask1, m1ptr = None, 0
        if weight1 is None:
            out1, o1ptr = None, 0
        else:
            out1 = _empty_like(x, dtype=out_dt, memory_format=_contiguous_format)
            o1ptr = out1.data_ptr()
        _pack_fwd_t(buf, _DESC_BYTES, x.data_ptr(), sx, rptr, sr, rowscale.data_ptr() if rowscale is not None else 0,
                    weight.data_ptr(), bias.data_ptr() if bias is not None else 0, out.data_ptr(), so, roptr, sro, mptr,
                    rstdptr, meanptr, 0, x1p, sx1, weight1.data_ptr() if weight1 is not None else 0,
                    bias1.data_ptr() if bias1 is not None else 0, o1ptr, 0, m1ptr)
    if not ws_bytes and switch < 0:
        st = _fwd_c(block[1], block[2], None, 0, backend, stream)
    elif backend == _CPU and ws_bytes <= _CPU_WS_CACHED:
        st = _cpu_call(_fwd_c, block, ws_bytes)
    else:
        st = _call(_fwd_c, block, ws_bytes, backend, stream, switch, x)
    _give_block(block)
    if st:
        _fwd_failed(st, outs)
    if outs is not None:  # written in place, as a torch op with out= would: saved copies elsewhere see it
        _bump_versions(outs[0], resout if outs[2] is not None else None)
    if par is not None:
        return out, resout, mask, rstd, mean, rng, out1, mask1
    return out, resout, mask, rstd, mean, rng


def _fwd_failed(st, outs):
    """Raises darn_fwd's error; an overlap of preallocated outputs says so in the Python argument names."""
    if outs is not None and st == _ERR_ALIASING:
        msg = L._last_error()
        msg = msg.decode(errors="replace") if msg else ""
        if msg.startswith("darn_fwd: "):
            msg = msg[len("darn_fwd: "):]
        raise L.DarnArgumentError(st, "out= / residual_out= may not overlap an input or each other (in place, "
                                  "out=x and residual_out=residual are allowed with the same dtype and strides): "
                                  + msg.replace("t->", ""), "darn_fwd")
    L.raise_status(st, "darn_fwd")


if hasattr(getattr(torch.autograd, "graph", None), "increment_version"):
    _increment_version = torch.autograd.graph.increment_version  # torch >= 2.1

    def _bump_versions(a, b):
        if a is not None:
            _increment_version(a)
        if b is not None:
            _increment_version(b)
else:  # torch 1.13 has no way to bump a version counter without a kernel: nothing
    def _bump_versions(a, b):
        pass


def _fwd_impl(x, weight, bias, residual, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight,
              residual_in_fp32, out_dtype, store_residual_out, store_mask, prenorm, seed, offset,
              graph_safe=False, stats=True):
    """darn_fwd with every argument given: _fwd_run(_fwd_plan(...), ...); without stats, no rstd / mean.
    `prenorm` is only used by the autograd formulas."""
    plan = _fwd_plan(x, weight, bias, residual, rowscale is not None, eps, dropout_p, is_rms_norm,
                     zero_centered_weight, residual_in_fp32, out_dtype, store_residual_out, store_mask, stats)
    return _fwd_run(plan, x, weight, bias, residual, rowscale, seed, offset, graph_safe)


def _bwd_impl(dy, h, weight, rstd, mean, rowscale, dresidual_out, mask, rng, eps, dropout_p, is_rms_norm,
              zero_centered_weight, residual_in_fp32, x_dtype, residual_dtype, bias_dtype, want_dresidual, par=None):
    """darn_bwd on dy [..., N] (h and dresidual_out have its shape). residual_dtype / bias_dtype are -1 without a
    residual / bias; mask, rng, mean, rowscale and dresidual_out may be None (or empty). Returns (dx, dresidual,
    dweight, dbias), dx / dresidual of dy's shape; dresidual / dbias are None when not produced. par: None, or a
    parallel-residual call's (has_x1, dy1 or None, weight1 or None, mask1 or None, bias1's dtype code or -1), dy1
    in dy's dtype (present with weight1); then also (dx1, dweight1, dbias1) as in _bwd_run."""
    shape = dy.shape
    n = shape[-1]
    m = shape[0] if len(shape) == 2 else (dy.numel() // n if n else 0)
    backend = _backend(dy)[0]
    wc = _CODE.get(weight.dtype)
    oc = _CODE.get(dy.dtype)
    if wc is None or oc is None:
        _code(weight.dtype, "weight"), _code(dy.dtype, "dy")
    flags = _FLAG_ZERO_CENTERED_WEIGHT if zero_centered_weight else 0
    if residual_in_fp32:
        flags |= _FLAG_RESIDUAL_IN_FP32
    if residual_dtype >= 0:
        flags |= _FLAG_HAS_RESIDUAL
        rc = residual_dtype
    else:
        rc = x_dtype
    if bias_dtype >= 0:
        flags |= _FLAG_HAS_BIAS
        bc = bias_dtype
    else:
        bc = wc
    if rowscale is not None:
        flags |= _FLAG_HAS_ROWSCALE
    if par is not None:
        if par[0]:
            flags |= _FLAG_HAS_X1
        if par[2] is not None:
            flags |= _FLAG_HAS_WEIGHT1
        if par[4] >= 0:
            flags |= _FLAG_HAS_BIAS1
            if bias_dtype < 0:
                bc = par[4]
        par = par[1:4]
    if eps > _FLT_MAX:
        eps = L._f32(eps).value
    dv = (_RMSNORM if is_rms_norm else _LAYERNORM, m, n, x_dtype, rc, wc, bc, oc, flags, eps, dropout_p)
    return _bwd_run(dv, _workspace_bytes(False, backend, dv), backend, dy, h, weight, rstd, mean, rowscale,
                    dresidual_out, mask, rng, want_dresidual, par)


def _bwd_run(dv, ws_bytes, backend, dy, h, weight, rstd, mean, rowscale, dresidual_out, mask, rng, want_dresidual,
             par=None, desc=None):
    """darn_bwd with darn_desc fields dv (the forward's, out_dtype = dy's dtype) and its workspace size on backend:
    the body of _bwd_impl, which the eager autograd.Function calls with its forward's cached plan. par: None, or a
    parallel-residual call's (dy1, weight1, mask1) (dy1 / weight1 with DARN_FLAG_HAS_WEIGHT1, dy1 in dy's dtype;
    mask1 optional); then the result is (dx, dresidual, dweight, dbias, dx1, dweight1, dbias1), dx1 with
    DARN_FLAG_HAS_X1, dweight1 with _WEIGHT1, dbias1 with _BIAS1, else None. desc: dv packed (_desc_of), which
    the forward's plan has; derived here when None."""
    n = dv[2]
    flags = dv[8]
    if backend == _CPU:
        stream, switch = None, -1
    else:
        _, stream, switch = _backend(dy)
    if rng is None:
        s = o = dptr = 0
    else:
        s, o, dptr = _rng_of(rng)
    if dy.is_contiguous():
        sdy = 0
        fmt = _preserve_format  # see _fwd_run
    else:
        dy, sdy = _rows(dy)
        fmt = _contiguous_format
    if h.is_contiguous():
        sh = 0
    else:
        h, sh = _rows(h)
    if dresidual_out is not None:
        dresidual_out, sdro = _rows(dresidual_out)
        droptr = dresidual_out.data_ptr()
    else:
        sdro = droptr = 0
    xdt = _DTYPE[dv[3]]
    if fmt is not _preserve_format:
        dx = _empty_like(dy, dtype=xdt, memory_format=fmt)
    else:  # dy has x's dtype unless out_dtype changed it: then without the keyword
        dx = _empty_like(dy) if dy.dtype is xdt else _empty_like(dy, dtype=xdt)
    if want_dresidual and flags & _FLAG_HAS_RESIDUAL:
        rdt = _DTYPE[dv[4]]
        if fmt is not _preserve_format:
            dres = _empty_like(dy, dtype=rdt, memory_format=fmt)
        else:
            dres = _empty_like(dy) if dy.dtype is rdt else _empty_like(dy, dtype=rdt)
        dresptr = dres.data_ptr()
    else:
        dres, dresptr = None, 0
    dw = _empty_like(weight) if weight.is_contiguous() else dy.new_empty((n,), dtype=weight.dtype)
    if flags & _FLAG_HAS_BIAS:
        db = dy.new_empty((n,), dtype=_DTYPE[dv[6]])
        dbptr = db.data_ptr()
    else:
        db, dbptr = None, 0
    if par is None:
        dy1p = sdy1 = w1p = m1p = dx1p = dw1p = db1p = 0
    else:  # the parallel residual: dy1 / weight1 in, dx1 / dweight1 / dbias1 out
        dy1, weight1, mask1 = par
        if flags & _FLAG_HAS_WEIGHT1:
            dy1, sdy1 = _rows(dy1)
            dy1p, w1p = dy1.data_ptr(), weight1.data_ptr()
            dw1 = dy.new_empty((n,), dtype=weight1.dtype)
            dw1p = dw1.data_ptr()
        else:
            dy1p = sdy1 = w1p = dw1p = 0
            dw1 = None
        if flags & _FLAG_HAS_X1:
            dx1 = _empty_like(dy, dtype=xdt, memory_format=_contiguous_format)
            dx1p = dx1.data_ptr()
            m1p = mask1.data_ptr() if mask1 is not None and mask1.numel() > 0 else 0
        else:
            dx1, dx1p, m1p = None, 0, 0
        if flags & _FLAG_HAS_BIAS1:
            db1 = dy.new_empty((n,), dtype=_DTYPE[dv[6]])
            db1p = db1.data_ptr()
        else:
            db1, db1p = None, 0
    try:
        block = _take_block()
    except IndexError:
        block = _new_block()
    buf = block[0]
    block[3][:_DESC_BYTES] = _desc_of(dv) if desc is None else desc
    if rng is not None:
        _pack_rng(buf, _RNG_OFFSET, s, o, dptr, dptr + 8 if dptr else 0)
    _pack_bwd_t(buf, _DESC_BYTES, dy.data_ptr(), sdy, h.data_ptr(), sh, weight.data_ptr(), rstd.data_ptr(),
                mean.data_ptr() if mean is not None and dv[0] == _LAYERNORM else 0,
                rowscale.data_ptr() if rowscale is not None else 0, droptr, sdro,
                mask.data_ptr() if mask is not None and mask.numel() > 0 else 0,
                dx.data_ptr(), 0, dresptr, 0, dw.data_ptr(), dbptr, dy1p, sdy1, w1p, m1p, dx1p, 0, dw1p, db1p)
    if not ws_bytes and switch < 0:
        st = _bwd_c(block[1], block[2], None, 0, backend, stream)
    elif backend == _CPU and ws_bytes <= _CPU_WS_CACHED:
        st = _cpu_call(_bwd_c, block, ws_bytes)
    else:
        st = _call(_bwd_c, block, ws_bytes, backend, stream, switch, dy)
    _give_block(block)
    if st:
        L.raise_status(st, "darn_bwd")
    if par is not None:
        return dx, dres, dw, db, dx1, dw1, db1
    return dx, dres, dw, db


# ---- autograd formulas, shared by the autograd.Function and the custom op ----------------------------------
def _setup_context(ctx, inputs, output):
    """The custom op's setup_context: output is the op's 6 tensors (absent ones empty)."""
    (x, weight, bias, residual, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight, residual_in_fp32,
     out_dtype, store_residual_out, store_mask, prenorm, seed, offset) = inputs[:16]
    out, resout, mask, rstd, mean, rng = output
    h = resout if store_residual_out else x
    ctx.save_for_backward(h, weight, rstd, mean, rowscale, mask if store_mask else None, rng)
    ctx.rng_host = None
    ctx.out_code = out_dtype
    ctx.cfg = (eps, dropout_p, is_rms_norm, zero_centered_weight, residual_in_fp32, _CODE[x.dtype],
               _CODE[residual.dtype] if residual is not None else -1,
               _CODE[bias.dtype] if bias is not None else -1,
               bool(prenorm and store_residual_out))


def _grads(ctx, dout, dresout, bwd):
    h, weight, rstd, mean, rowscale, mask, rng = ctx.saved_tensors
    if ctx.rng_host is not None:
        rng = ctx.rng_host
    eps, p, is_rms, zc, rfp32, x_code, res_code, bias_code, use_dresout = ctx.cfg
    if dout is None:  # only the prenorm output was used
        dout = torch.zeros(h.shape, dtype=_DTYPE[ctx.out_code], device=h.device)
    want_dres = res_code >= 0 and ctx.needs_input_grad[3]
    dx, dres, dw, db = bwd(dout, h, weight, rstd, mean, rowscale, dresout if use_dresout else None, mask, rng,
                           eps, p, is_rms, zc, rfp32, x_code, res_code, bias_code, want_dres)
    return (dx, dw, db if bias_code >= 0 else None, dres if want_dres else None, None)


def _fn_plan(cfg, fwd):
    """_DarnFn's plan for its cfg (without seed, offset) and their _fwd_plan with stats: (fwd, the backward's
    settings (eps, dropout_p, is_rms_norm, zero_centered_weight, residual_in_fp32, x code, residual code or -1,
    bias code or -1, dresidual_out used?))."""
    dv = fwd[0]
    flags = dv[8]
    has_res = bool(flags & _FLAG_HAS_RESIDUAL)
    # dresidual = dh and dx = dh * keep / (1 - p) * rowscale, both rounded from fp32 (numerics.md §6): the same bits
    # when p = 0, there is no rowscale and x and residual have one dtype. The backward then returns dx for both,
    # as torch's own add and flash-attn do: one allocation and one [M, N] store fewer.
    dres_is_dx = has_res and cfg[1] == 0.0 and not flags & _FLAG_HAS_ROWSCALE and dv[3] == dv[4]
    return fwd, (cfg[0], cfg[1], cfg[2], cfg[3], cfg[4], dv[3], dv[4] if has_res else -1,
                 dv[6] if flags & _FLAG_HAS_BIAS else -1, bool(cfg[8] and cfg[6]), dres_is_dx)


def _fn_backward(ctx, dout, dresout):
    h, weight, rowscale = ctx.saved_tensors
    rstd, mean, mask, rng, (fwd, bcfg) = ctx.st
    res_code, bias_code, use_dresout = bcfg[6], bcfg[7], bcfg[8]
    want_dres = res_code >= 0 and ctx.needs_input_grad[3]
    if dout is None:  # only the prenorm output was used
        dout = torch.zeros(h.shape, dtype=fwd[2], device=h.device)
    dresout = dresout if use_dresout else None
    alias = want_dres and bcfg[9]  # dresidual has dx's bits (see _fn_plan): darn writes dx only
    if dout.dtype is fwd[2]:  # always, from autograd (grads arrive in their output's dtype)
        dx, dres, dw, db = _bwd_run(fwd[0], fwd[8], fwd[7], dout, h, weight, rstd, mean, rowscale, dresout, mask,
                                    rng, want_dres and not alias, None, fwd[11])
    else:
        dx, dres, dw, db = _bwd_impl(dout, h, weight, rstd, mean, rowscale, dresout, mask, rng, *bcfg[:8],
                                     want_dres and not alias)
    if alias:
        dres = dx
    # None for rowscale, cfg, plan, out, residual_out (torch takes trailing Nones beyond apply's arguments)
    return dx, dw, (db if bias_code >= 0 else None), (dres if want_dres else None), None, None, None, None, None


_fn_backward_once = torch.autograd.function.once_differentiable(_fn_backward)


class _DarnFn(torch.autograd.Function):
    """Eager autograd path: apply(x, weight, bias, residual, rowscale, cfg, plan=None, out=None, residual_out=None),
    cfg the 11 other arguments of _fwd_impl as one tuple (fewer apply arguments: less per-call work), optionally
    followed by _out_args' checked preallocated outputs, plan their _fn_plan (eager calls pass their cached one)
    or None (derived here); out / residual_out are the preallocated outputs again, as arguments, so that autograd
    knows them: what the Function returns of them is a view of each, with this Function's grad_fn (flash-attn's
    behaviour). Returns (out, residual_out or None, mask or None): residual_out only with prenorm (the backward
    keeps it as h either way), mask only with store_mask (non-differentiable); rstd / mean / the (seed, offset)
    pair are kept for the backward, not returned (fewer outputs: less autograd bookkeeping).
    saved_tensors: (h, weight, rowscale), the tensors a caller may see (version-checked by autograd). ctx.st:
    (rstd, mean, mask, rng, plan), darn's own (no one else holds them: no SavedVariable needed), rng as
    _fwd_run returns it, plan the plan, which the backward reuses (darn_bwd's desc and workspace size).
    _saved(node) gives them all in one tuple."""

    @staticmethod
    def forward(ctx, x, weight, bias, residual, rowscale, cfg, plan=None, out=None, residual_out=None):
        if plan is None:
            plan = _fn_plan(cfg, _fwd_plan(x, weight, bias, residual, rowscale is not None, *cfg[:8], True))
        out, resout, mask, rstd, mean, rng = _fwd_run(plan[0], x, weight, bias, residual, rowscale, cfg[9], cfg[10],
                                                      False, cfg[11] if len(cfg) > 11 else None)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(resout if cfg[6] else x, weight, rowscale)
        ctx.st = (rstd, mean, mask, rng, plan)
        if mask is not None:
            ctx.mark_non_differentiable(mask)
        return out, (resout if cfg[8] else None), mask

    @staticmethod
    def backward(ctx, dout, dresout, _dmask):
        if _grad_enabled():  # create_graph=True: the results must refuse a second backward
            return _fn_backward_once(ctx, dout, dresout)
        return _fn_backward(ctx, dout, dresout)


def _saved(node):
    """What a _DarnFn node keeps for its backward: (h, weight, rstd, mean, rowscale, mask, rng, plan), rng a tuple
    of host ints, a device tensor or None (tests and tools)."""
    h, weight, rowscale = node.saved_tensors
    rstd, mean, mask, rng, plan = node.st
    return h, weight, rstd, mean, rowscale, mask, rng, plan


# _DarnFn.apply without torch 2.x's Python wrapper of Function.apply (default-argument binding for setup_context,
# functorch's dead-wrapper unwrapping): the C entry point it ends in, when no functorch transform is active (then
# the wrapper runs, as it must). torch 1.13's Function.apply is that C function already.
try:
    _fn_apply = torch._C._FunctionBase.__dict__["apply"].__get__(None, _DarnFn)
except (AttributeError, KeyError, TypeError):  # a torch that moved it: the public entry point
    _fn_apply = _DarnFn.apply
_functorch_active = getattr(torch._C, "_are_functorch_transforms_active", None)


def _par_backward(ctx, dout, dout1, dresout):
    h, weight, rowscale, weight1 = ctx.saved_tensors
    rstd, mean, mask, mask1, rng, (fwd, bcfg) = ctx.st
    res_code, use_dresout = bcfg[6], bcfg[8]
    flags = fwd[0][8]
    want_dres = res_code >= 0 and ctx.needs_input_grad[3]
    out_dt = fwd[2]
    # a missing gradient (that output unused) is zero; darn takes dy and dy1 in out's dtype (autograd's always)
    if dout is None:
        dout = torch.zeros(h.shape, dtype=out_dt, device=h.device)
    elif dout.dtype is not out_dt:
        dout = dout.to(out_dt)
    if weight1 is None:
        dout1 = None
    elif dout1 is None:
        dout1 = torch.zeros(h.shape, dtype=out_dt, device=h.device)
    elif dout1.dtype is not out_dt:
        dout1 = dout1.to(out_dt)
    alias = want_dres and bcfg[9]  # dresidual has dx's bits (see _fn_plan): darn writes dx only
    dx, dres, dw, db, dx1, dw1, db1 = _bwd_run(fwd[0], fwd[8], fwd[7], dout, h, weight, rstd, mean, rowscale,
                                               dresout if use_dresout else None, mask, rng,
                                               want_dres and not alias, (dout1, weight1, mask1), fwd[11])
    if alias:
        dres = dx
    # rowscale, then x1, weight1, bias1, then None for cfg, plan, out, residual_out
    return (dx, dw, (db if flags & _FLAG_HAS_BIAS else None), (dres if want_dres else None), None, dx1, dw1, db1,
            None, None, None, None)


_par_backward_once = torch.autograd.function.once_differentiable(_par_backward)


class _DarnParFn(torch.autograd.Function):
    """_DarnFn for flash-attn's parallel residual: apply(x, weight, bias, residual, rowscale, x1, weight1, bias1,
    cfg, plan, out=None, residual_out=None) with _DarnFn's cfg and plan (a _fn_plan whose flags have
    DARN_FLAG_HAS_X1 / _WEIGHT1 / _BIAS1). Returns (out, out1 or None, residual_out or None, mask or None,
    mask1 or None): out1 with weight1; residual_out with prenorm; the masks (non-differentiable) with store_mask,
    mask1 with x1. The backward gives dx, dweight, dbias, dresidual, dx1, dweight1, dbias1 (a gradient of out or
    out1 that autograd does not pass, because that output is unused, counts as zero).
    saved_tensors: (h, weight, rowscale, weight1); ctx.st: (rstd, mean, mask, mask1, rng, plan)."""

    @staticmethod
    def forward(ctx, x, weight, bias, residual, rowscale, x1, weight1, bias1, cfg, plan, out=None,
                residual_out=None):
        out, resout, mask, rstd, mean, rng, out1, mask1 = _fwd_run(
            plan[0], x, weight, bias, residual, rowscale, cfg[9], cfg[10], False, cfg[11] if len(cfg) > 11 else None,
            (x1, weight1, bias1))
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(resout if cfg[6] else x, weight, rowscale, weight1)
        ctx.st = (rstd, mean, mask, mask1, rng, plan)
        if mask is not None:
            ctx.mark_non_differentiable(mask)
        if mask1 is not None:
            ctx.mark_non_differentiable(mask1)
        return out, out1, (resout if cfg[8] else None), mask, mask1

    @staticmethod
    def backward(ctx, dout, dout1, dresout, _dmask, _dmask1):
        if _grad_enabled():  # create_graph=True: the results must refuse a second backward
            return _par_backward_once(ctx, dout, dout1, dresout)
        return _par_backward(ctx, dout, dout1, dresout)


try:
    _par_fn_apply = torch._C._FunctionBase.__dict__["apply"].__get__(None, _DarnParFn)
except (AttributeError, KeyError, TypeError):
    _par_fn_apply = _DarnParFn.apply


# ---- the custom ops (registered with torch >= 2.4; the bodies and fakes exist on every torch, for tests) ------
def _fwd_op_body(x, weight, bias, residual, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight,
                 residual_in_fp32, out_dtype, store_residual_out, store_mask, prenorm, seed, offset):
    out, resout, mask, rstd, mean, rng = _fwd_impl(
        x, weight, bias, residual, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight, residual_in_fp32,
        out_dtype, store_residual_out, store_mask, prenorm, seed, offset, graph_safe=True)
    # custom ops return tensors only: what _fwd_impl did not produce becomes an empty tensor
    if resout is None:
        rd = torch.float32 if residual_in_fp32 else (residual.dtype if residual is not None else x.dtype)
        resout = torch.empty(0, dtype=rd, device=x.device)
    if mask is None:
        mask = torch.empty(0, dtype=torch.uint8, device=x.device)
    if mean is None:
        mean = torch.empty(0, dtype=torch.float32, device=x.device)
    return out, resout, mask, rstd, mean, _rng_tensor(rng)


def _op_outputs(outputs, store_residual_out, store_mask, is_rms_norm, dropout_p):
    """darn::fwd's 6 tensors with the absent ones (empty tensors: a custom op returns tensors only) mapped back
    to None, as _fwd_impl returns them: residual_out without store_residual_out, mask without store_mask, mean
    with RMSNorm, rng with dropout_p = 0. (An empty tensor alone cannot tell: with M = 0 a present output is
    empty too.)"""
    out, resout, mask, rstd, mean, rng = outputs
    return (out, resout if store_residual_out else None, mask if store_mask else None, rstd,
            None if is_rms_norm else mean, rng if dropout_p > 0.0 else None)


def _fwd_fake(x, weight, bias, residual, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight,
              residual_in_fp32, out_dtype, store_residual_out, store_mask, prenorm, seed, offset):
    m, n = x.shape
    rd = torch.float32 if residual_in_fp32 else (residual.dtype if residual is not None else x.dtype)
    out = x.new_empty((m, n), dtype=_DTYPE[out_dtype])
    resout = x.new_empty((m, n) if store_residual_out else (0,), dtype=rd)
    mask = x.new_empty((m, L.mask_row_bytes(n)) if store_mask else (0,), dtype=torch.uint8)
    rstd = x.new_empty((m,), dtype=torch.float32)
    mean = x.new_empty((0,) if is_rms_norm else (m,), dtype=torch.float32)
    # rng: on the device when drawn there (CUDA tensor, no seed), else a CPU pair; empty without dropout
    rng_dev = x.device if (dropout_p > 0.0 and x.is_cuda and seed is None) else torch.device("cpu")
    rng = torch.empty((2,) if dropout_p > 0.0 else (0,), dtype=torch.int64, device=rng_dev)
    return out, resout, mask, rstd, mean, rng


def _bwd_op_body(dy, h, weight, rstd, mean, rowscale, dresidual_out, mask, rng, eps, dropout_p, is_rms_norm,
                 zero_centered_weight, residual_in_fp32, x_dtype, residual_dtype, bias_dtype, want_dresidual):
    dx, dres, dw, db = _bwd_impl(dy, h, weight, rstd, mean, rowscale, dresidual_out, mask, rng, eps, dropout_p,
                                 is_rms_norm, zero_centered_weight, residual_in_fp32, x_dtype, residual_dtype,
                                 bias_dtype, want_dresidual)
    if dres is None:
        dres = torch.empty(0, dtype=dy.dtype, device=dy.device)
    if db is None:
        db = torch.empty(0, dtype=weight.dtype, device=dy.device)
    return dx, dres, dw, db


def _bwd_fake(dy, h, weight, rstd, mean, rowscale, dresidual_out, mask, rng, eps, dropout_p, is_rms_norm,
              zero_centered_weight, residual_in_fp32, x_dtype, residual_dtype, bias_dtype, want_dresidual):
    m, n = dy.shape
    dx = dy.new_empty((m, n), dtype=_DTYPE[x_dtype])
    if want_dresidual and residual_dtype >= 0:
        dres = dy.new_empty((m, n), dtype=_DTYPE[residual_dtype])
    else:
        dres = dy.new_empty((0,))
    dw = weight.new_empty((n,))
    db = dy.new_empty((n,), dtype=_DTYPE[bias_dtype]) if bias_dtype >= 0 else weight.new_empty((0,))
    return dx, dres, dw, db


def _op_setup_context(ctx, inputs, output):
    _setup_context(ctx, inputs, output)


def _op_backward_with(bwd):
    def backward(ctx, dout, dresout, *unused):
        return _grads(ctx, dout, dresout, bwd) + (None,) * 11
    return backward


if HAS_CUSTOM_OP:
    @torch.library.custom_op("darn::fwd", mutates_args=())  # type: ignore[attr-defined]
    def _fwd_op(x: Tensor, weight: Tensor, bias: Optional[Tensor], residual: Optional[Tensor],
                rowscale: Optional[Tensor], eps: float, dropout_p: float, is_rms_norm: bool,
                zero_centered_weight: bool, residual_in_fp32: bool, out_dtype: int, store_residual_out: bool,
                store_mask: bool, prenorm: bool, seed: Optional[int],
                offset: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        return _fwd_op_body(x, weight, bias, residual, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight,
                            residual_in_fp32, out_dtype, store_residual_out, store_mask, prenorm, seed, offset)

    _fwd_op.register_fake(_fwd_fake)

    @torch.library.custom_op("darn::bwd", mutates_args=())  # type: ignore[attr-defined]
    def _bwd_op(dy: Tensor, h: Tensor, weight: Tensor, rstd: Tensor, mean: Tensor, rowscale: Optional[Tensor],
                dresidual_out: Optional[Tensor], mask: Optional[Tensor], rng: Tensor, eps: float, dropout_p: float,
                is_rms_norm: bool, zero_centered_weight: bool, residual_in_fp32: bool, x_dtype: int,
                residual_dtype: int, bias_dtype: int,
                want_dresidual: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        return _bwd_op_body(dy, h, weight, rstd, mean, rowscale, dresidual_out, mask, rng, eps, dropout_p,
                            is_rms_norm, zero_centered_weight, residual_in_fp32, x_dtype, residual_dtype, bias_dtype,
                            want_dresidual)

    _bwd_op.register_fake(_bwd_fake)
    torch.library.register_autograd(  # type: ignore[attr-defined]
        "darn::fwd", _op_backward_with(lambda *a: torch.ops.darn.bwd(*a)), setup_context=_op_setup_context)


# ---- flash-attn's functions ---------------------------------------------------------------------------------
# The eager custom-op entry point, or None (torch < 2.4). A module global so that the wrapper's op path is
# testable eagerly (tests substitute an emulation of the op on older torch).
_op_fwd = torch.ops.darn.fwd if HAS_CUSTOM_OP else None


def _unpack_mask(packed, m, n, shape):
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    return bits.flatten(1)[:, :n].bool().reshape(shape)  # flatten, not reshape(m, -1): M may be 0


def _type_error(x, weight, bias, residual, rowscale):
    """The TypeError for the first of x, weight (tensors) and bias, residual, rowscale (tensors or None) that is
    neither."""
    for t, what, optional in ((x, "x", False), (weight, "weight", False), (bias, "bias", True),
                              (residual, "residual", True), (rowscale, "rowscale", True)):
        if not (isinstance(t, _Tensor) or (optional and t is None)):
            return TypeError("darn: %s must be a torch.Tensor, got %s" % (what, type(t).__name__))
    return None


def _check_vector(t, n, what, dev):
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError("darn: %s has shape %s, expected (%d,) (the last dim of x)" % (what, tuple(t.shape), n))
    if t.device != dev:
        raise ValueError("darn: %s is on %s but x is on %s" % (what, t.device, dev))
    if t.dtype not in _CODE:
        _code(t.dtype, what)


def _norm_plan(x, weight, bias, residual, rowscale, eps, dropout_p, prenorm, residual_in_fp32, zero_centered_weight,
               is_rms_norm, return_dropout_mask, out_dtype, needs_grad, want_resout=False, has_x1=False):
    """Checks the arguments of a call whose tensors have the right types (shapes, devices, dtypes, values; raises
    on the first bad one) and returns what the call does with them, a function of their metadata alone:
    (eps, dropout_p, is_rms_norm, zero_centered_weight, residual_in_fp32, out dtype code, store_residual_out,
    store_mask, prenorm), _DarnFn's cfg without (seed, offset). want_resout: a residual_out= was given, which
    darn writes whenever h is not x (flash-attn), with prenorm or not. has_x1: a parallel-residual x1 (h is then
    never x; _par_check checks x1 / weight1 / bias1)."""
    shape = x.shape
    if len(shape) < 1 or shape[-1] < 1:
        raise ValueError("darn: x has shape %s; it needs a last dim N >= 1" % (tuple(shape),))
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError("darn: dropout_p = %r, must be in [0, 1]" % dropout_p)
    if not 0.0 < eps < _INF:
        raise ValueError("darn: eps = %r, must be finite and > 0" % eps)
    n = shape[-1]
    dev = x.device
    xdt = x.dtype
    if xdt not in _CODE:
        _code(xdt, "x")
    _check_vector(weight, n, "weight", dev)
    if bias is not None:
        _check_vector(bias, n, "bias", dev)
    if residual is not None:
        if residual.shape != shape:
            raise ValueError("darn: residual has shape %s, x has %s" % (tuple(residual.shape), tuple(shape)))
        if residual.device != dev:
            raise ValueError("darn: residual is on %s but x is on %s" % (residual.device, dev))
        if residual.dtype not in _CODE:
            _code(residual.dtype, "residual")
    if rowscale is not None:
        m = x.numel() // n
        if rowscale.numel() != m:
            raise ValueError("darn: rowscale has %d elements, expected %d (one per row of x)" % (rowscale.numel(), m))
        if rowscale.device != dev:
            raise ValueError("darn: rowscale is on %s but x is on %s" % (rowscale.device, dev))
        if not rowscale.is_floating_point():
            raise TypeError("darn: rowscale has dtype %s; it must be a floating-point tensor (darn reads it as "
                            "float32)" % rowscale.dtype)
    out_code = _OUT_CODE.get(xdt if out_dtype is None else out_dtype)
    if out_code is None:
        _code(out_dtype, "out_dtype")
    if out_code not in _CODE.values() and needs_grad:
        raise NotImplementedError("darn: out_dtype=%s (fp8) is forward-only for now: no autograd through an fp8 "
                                  "output; call it under torch.no_grad() or on tensors that do not require grad"
                                  % out_dtype)
    rfp32 = residual is None and bool(residual_in_fp32)  # flash-attn: with a residual, h has its dtype
    h_is_x = (not has_x1 and residual is None and rowscale is None and dropout_p == 0.0
              and not (rfp32 and xdt != torch.float32))
    store_resout = not h_is_x and bool(prenorm or needs_grad or want_resout)
    store_mask = dropout_p > 0.0 and bool(return_dropout_mask)
    return (eps, dropout_p, bool(is_rms_norm), bool(zero_centered_weight), rfp32, out_code, store_resout, store_mask,
            bool(prenorm))


# Eager calls: the argument metadata -> (_norm_plan's cfg, the call's _fwd_plan without gradients, or _DarnFn's
# _fn_plan with them: rstd / mean and the backward's settings). A call whose metadata is known skips the checks
# and the darn_desc derivation: everything they read is in the key.
_plans: dict = {}
_PLANS_MAX = 4096


def _out_check(t, what, x, dtype):
    """A preallocated output of x's shape, device and the given dtype, not requiring grad in grad mode, whose rows
    darn can write (N contiguous elements each, one row stride): its row stride, else ValueError / TypeError."""
    if t.shape != x.shape:
        raise ValueError("darn: %s has shape %s, x has %s" % (what, tuple(t.shape), tuple(x.shape)))
    if t.device != x.device:
        raise ValueError("darn: %s is on %s but x is on %s" % (what, t.device, x.device))
    if t.dtype != dtype:
        raise TypeError("darn: %s has dtype %s, the call's %s is %s%s" % (
            what, t.dtype, what, dtype, " (out_dtype)" if what == "out" else
            " (residual's dtype; float32 with residual_in_fp32 and no residual; else x's)"))
    if t.requires_grad and _grad_enabled():
        raise RuntimeError("darn: %s= requires grad; darn writes into it, which autograd cannot differentiate "
                           "(pass a tensor that does not require grad, or call under torch.no_grad())" % what)
    s = _row_stride(t)
    if s < 0:
        raise ValueError("darn: %s (shape %s, strides %s) is not rows of N contiguous elements at one row stride "
                         ">= N, which darn writes: its last dim must be contiguous, its leading dims must flatten "
                         "into rows without a copy, and rows may not overlap" % (what, tuple(t.shape), t.stride()))
    return s


def _out_args(x, residual, out, residual_out, cfg, needs_grad, compiling=False):
    """The checked preallocated outputs (out or None, its row stride, residual_out or None, its row stride) of a
    call with _norm_plan's cfg: out has the output dtype, residual_out the residual-out dtype (h's). residual_out
    is None here when the call does not produce h (h is x: as in flash-attn it is then neither written nor
    returned). Overlaps between them and the inputs are darn_fwd's check (DARN_ERR_ALIASING), except one it cannot
    see: with autograd, when the backward keeps x as h, out may not be x (in place). (Inside torch.compile the
    outputs are filled with copy_ after the op, and autograd's version check covers that case.)"""
    so = sro = 0
    if out is not None:
        so = _out_check(out, "out", x, _DTYPE[cfg[5]])
    if residual_out is not None:
        rd = residual.dtype if residual is not None else (_float32 if cfg[4] else x.dtype)
        sro = _out_check(residual_out, "residual_out", x, rd)
        if not cfg[6]:
            residual_out = None
    if needs_grad and out is not None and not cfg[6] and not compiling and x.numel() and \
            out.data_ptr() == x.data_ptr():
        raise ValueError("darn: out=x in place with autograd would overwrite x, which the backward needs (here h "
                         "is x: no residual, dropout or rowscale)")
    return out, so, residual_out, sro


def _out_type_error(out, residual_out):
    for t, what in ((out, "out"), (residual_out, "residual_out")):
        if t is not None and not isinstance(t, _Tensor):
            return TypeError("darn: %s must be a torch.Tensor or None, got %s" % (what, type(t).__name__))
    return None


def _norm_fn(x, weight, bias, residual, x1, weight1, bias1, eps, dropout_p, rowscale, prenorm, residual_in_fp32,
             zero_centered_weight, is_rms_norm, return_dropout_mask, out_dtype, out, residual_out, seed, offset):
    """layer_norm_fn's body, positional (rms_norm_fn calls it without a second keyword-argument pass)."""
    if not (isinstance(x, _Tensor) and isinstance(weight, _Tensor) and (bias is None or isinstance(bias, _Tensor))
            and (residual is None or isinstance(residual, _Tensor))
            and (rowscale is None or isinstance(rowscale, _Tensor))):
        raise _type_error(x, weight, bias, residual, rowscale)
    given = out is not None or residual_out is not None
    if given:
        e = _out_type_error(out, residual_out)
        if e is not None:
            raise e
        if out is not None and out_dtype is None:
            out_dtype = out.dtype  # flash-attn writes y in out's dtype
    if type(dropout_p) is not float:  # (a plain float, the common case, skips the call)
        dropout_p = float(dropout_p)
    if type(eps) is not float:
        eps = float(eps)
    if seed is not None:
        seed, offset = _u64_arg(seed, "seed"), _u64_arg(offset, "offset")
    elif offset != 0:
        raise ValueError("darn: offset= needs seed=; without seed the (seed, offset) pair comes from the generator")
    else:
        offset = 0
    if x1 is not None or weight1 is not None or bias1 is not None:  # flash-attn's parallel residual
        return _par_norm_fn(x, weight, bias, residual, x1, weight1, bias1, eps, dropout_p, rowscale, prenorm,
                            residual_in_fp32, zero_centered_weight, is_rms_norm, return_dropout_mask, out_dtype, out,
                            residual_out, seed, offset, given)
    needs_grad = _grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
        or (residual is not None and residual.requires_grad))
    want_resout = residual_out is not None
    compiling = _op_fwd is not None and _is_compiling()
    if compiling:  # dynamo traces this: no cache lookups in the graph
        cfg = _norm_plan(x, weight, bias, residual, rowscale, eps, dropout_p, prenorm, residual_in_fp32,
                         zero_centered_weight, is_rms_norm, return_dropout_mask, out_dtype, needs_grad, want_resout)
    else:
        key = (x.shape, x.dtype, x.device, weight.shape, weight.dtype, weight.device,
               bias if bias is None else (bias.shape, bias.dtype, bias.device),
               residual if residual is None else (residual.shape, residual.dtype, residual.device),
               rowscale if rowscale is None else (rowscale.shape, rowscale.dtype, rowscale.device),
               eps, dropout_p, prenorm, residual_in_fp32, zero_centered_weight, is_rms_norm, return_dropout_mask,
               out_dtype, needs_grad, want_resout)
        plan = _plans.get(key)
        if plan is None:
            cfg = _norm_plan(x, weight, bias, residual, rowscale, eps, dropout_p, prenorm, residual_in_fp32,
                             zero_centered_weight, is_rms_norm, return_dropout_mask, out_dtype, needs_grad,
                             want_resout)
            fwd = _fwd_plan(x, weight, bias, residual, rowscale is not None, *cfg[:8], needs_grad)
            if needs_grad:
                fwd = _fn_plan(cfg, fwd)
            if len(_plans) >= _PLANS_MAX:
                _plans.clear()
            # + _DarnFn's cfg of the common call (no seed=, no preallocated outputs): no tuple built per call
            _plans[key] = plan = (cfg, fwd, cfg + (None, 0, None))
        cfg, fwd, acfg = plan
    if not weight.is_contiguous():
        weight = weight.contiguous()
    if bias is not None and not bias.is_contiguous():
        bias = bias.contiguous()
    if rowscale is not None:
        rowscale = rowscale.reshape(-1).to(_float32).contiguous()
    eps, dropout_p, is_rms_norm, zero_centered_weight, rfp32, out_code, store_resout, store_mask, prenorm = cfg
    outs = _out_args(x, residual, out, residual_out, cfg, needs_grad, compiling) if given else None
    if compiling:
        # the custom op (2-D rows); what it does not produce comes back as empty tensors: None here, as on the
        # eager paths. Preallocated outputs are filled with copy_ (traceable; the same bits).
        shape = x.shape
        n = shape[-1]
        x2 = x if len(shape) == 2 else x.reshape(-1, n)
        r2 = residual if residual is None or len(shape) == 2 else residual.reshape(-1, n)
        y, resout, mask, _, _, _ = _op_outputs(
            _op_fwd(x2, weight, bias, r2, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight, rfp32,
                    out_code, store_resout, store_mask, prenorm, seed, offset),
            store_resout, store_mask, is_rms_norm, dropout_p)
        if len(shape) != 2:
            y = y.reshape(shape)
            if store_resout:
                resout = resout.reshape(shape)
        if outs is not None:
            if outs[0] is not None:
                y = outs[0].copy_(y)
            if outs[2] is not None:
                resout = outs[2].copy_(resout)
    elif needs_grad:
        if seed is not None or outs is not None:
            acfg = cfg + (seed, offset, outs)
        if _functorch_active is None or not _functorch_active():
            y, resout, mask = _fn_apply(x, weight, bias, residual, rowscale, acfg, fwd, out, residual_out)
        else:
            y, resout, mask = _DarnFn.apply(x, weight, bias, residual, rowscale, acfg, fwd, out, residual_out)
    else:  # nothing to differentiate: skip autograd's bookkeeping and rstd / mean
        y, resout, mask, _, _, _ = _fwd_run(fwd, x, weight, bias, residual, rowscale, seed, offset, False, outs)
    if not prenorm and not return_dropout_mask:
        return y
    res = [y]
    if prenorm:
        res.append(resout if store_resout else x)
    if return_dropout_mask:
        n = x.shape[-1]
        res += [_unpack_mask(mask, x.numel() // n, n, x.shape) if store_mask else None, None]
    return tuple(res)


def _par_check(x, weight, bias, x1, weight1, bias1, out_dtype):
    """Checks a parallel-residual call's x1 / weight1 / bias1 (tensors or None, at least one given) against x, weight
    and bias (already checked; x1 / weight1 / bias1 are tensors or None): x1 of x's shape, device and dtype;
    weight1 [N] with weight's dtype; bias1 [N] only with weight1, with bias's dtype when there is a bias; no fp8
    out_dtype with a second output."""
    dev = x.device
    n = x.shape[-1]
    if x1 is not None:
        if x1.shape != x.shape:
            raise ValueError("darn: x1 has shape %s, x has %s (the parallel residual adds dropout(x1) to x's rows)"
                             % (tuple(x1.shape), tuple(x.shape)))
        if x1.device != dev:
            raise ValueError("darn: x1 is on %s but x is on %s" % (x1.device, dev))
        if x1.dtype != x.dtype:
            raise TypeError("darn: x1 has dtype %s but x has %s; darn reads x1 in x's dtype (convert one of them)"
                            % (x1.dtype, x.dtype))
    if bias1 is not None and weight1 is None:
        raise ValueError("darn: bias1 needs weight1: bias1 is the bias of the second output "
                         "y1 = norm(h) * weight1 + bias1, which only weight1 asks for")
    if weight1 is not None:
        _check_vector(weight1, n, "weight1", dev)
        if weight1.dtype != weight.dtype:
            raise TypeError("darn: weight1 has dtype %s but weight has %s; darn reads both weights in one dtype"
                            % (weight1.dtype, weight.dtype))
        if _OUT_CODE.get(x.dtype if out_dtype is None else out_dtype) not in _CODE.values():
            raise NotImplementedError("darn: an fp8 out_dtype with a second output (weight1) is not supported "
                                      "(darn_fwd: DARN_ERR_UNSUPPORTED)")
    if bias1 is not None:
        _check_vector(bias1, n, "bias1", dev)
        if bias is not None and bias1.dtype != bias.dtype:
            raise TypeError("darn: bias1 has dtype %s but bias has %s; darn reads both biases in one dtype"
                            % (bias1.dtype, bias.dtype))


def _par_norm_fn(x, weight, bias, residual, x1, weight1, bias1, eps, dropout_p, rowscale, prenorm, residual_in_fp32,
                 zero_centered_weight, is_rms_norm, return_dropout_mask, out_dtype, out, residual_out, seed, offset,
                 given):
    """layer_norm_fn's body for flash-attn's parallel residual (any of x1 / weight1 / bias1 given): _norm_fn's steps
    with the second input and output, through _DarnParFn (autograd) or _fwd_run (no gradients). _norm_fn has checked
    and normalised the arguments the two share (types, out= / residual_out=, eps, dropout_p, seed, offset; `given`:
    a preallocated output was passed). Inside torch.compile it runs the same way, not as a custom op: dynamo does not
    trace it (see layer_norm_fn)."""
    for t, what in ((x1, "x1"), (weight1, "weight1"), (bias1, "bias1")):
        if t is not None and not isinstance(t, _Tensor):
            raise TypeError("darn: %s must be a torch.Tensor or None, got %s" % (what, type(t).__name__))
    needs_grad = _grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
        or (residual is not None and residual.requires_grad) or (x1 is not None and x1.requires_grad)
        or (weight1 is not None and weight1.requires_grad) or (bias1 is not None and bias1.requires_grad))
    want_resout = residual_out is not None
    key = ("par", x.shape, x.dtype, x.device, weight.shape, weight.dtype, weight.device,
           bias if bias is None else (bias.shape, bias.dtype, bias.device),
           residual if residual is None else (residual.shape, residual.dtype, residual.device),
           rowscale if rowscale is None else (rowscale.shape, rowscale.dtype, rowscale.device),
           x1 if x1 is None else (x1.shape, x1.dtype, x1.device),
           weight1 if weight1 is None else (weight1.shape, weight1.dtype, weight1.device),
           bias1 if bias1 is None else (bias1.shape, bias1.dtype, bias1.device),
           eps, dropout_p, prenorm, residual_in_fp32, zero_centered_weight, is_rms_norm, return_dropout_mask,
           out_dtype, needs_grad, want_resout)
    plan = _plans.get(key)
    if plan is None:
        cfg = _norm_plan(x, weight, bias, residual, rowscale, eps, dropout_p, prenorm, residual_in_fp32,
                         zero_centered_weight, is_rms_norm, return_dropout_mask, out_dtype, needs_grad, want_resout,
                         x1 is not None)
        _par_check(x, weight, bias, x1, weight1, bias1, out_dtype)
        fwd = _fwd_plan(x, weight, bias, residual, rowscale is not None, *cfg[:8], needs_grad,
                        (x1 is not None, weight1 is not None, bias1.dtype if bias1 is not None else None))
        if needs_grad:
            fwd = _fn_plan(cfg, fwd)
        if len(_plans) >= _PLANS_MAX:
            _plans.clear()
        _plans[key] = plan = (cfg, fwd)
    cfg, fwd = plan
    if not weight.is_contiguous():
        weight = weight.contiguous()
    if bias is not None and not bias.is_contiguous():
        bias = bias.contiguous()
    if weight1 is not None and not weight1.is_contiguous():
        weight1 = weight1.contiguous()
    if bias1 is not None and not bias1.is_contiguous():
        bias1 = bias1.contiguous()
    if rowscale is not None:
        rowscale = rowscale.reshape(-1).to(_float32).contiguous()
    store_resout, store_mask, prenorm = cfg[6], cfg[7], cfg[8]
    outs = _out_args(x, residual, out, residual_out, cfg, needs_grad) if given else None
    if needs_grad:
        if _functorch_active is None or not _functorch_active():
            y, y1, resout, mask, mask1 = _par_fn_apply(x, weight, bias, residual, rowscale, x1, weight1, bias1,
                                                       cfg + (seed, offset, outs), fwd, out, residual_out)
        else:
            y, y1, resout, mask, mask1 = _DarnParFn.apply(x, weight, bias, residual, rowscale, x1, weight1, bias1,
                                                          cfg + (seed, offset, outs), fwd, out, residual_out)
    else:
        y, resout, mask, _, _, _, y1, mask1 = _fwd_run(fwd, x, weight, bias, residual, rowscale, seed, offset, False,
                                                       outs, (x1, weight1, bias1))
    # flash-attn's LayerNormFn.forward: y [, y1 with weight1] [, residual_out with prenorm]
    # [, dropout_mask, dropout_mask1 with return_dropout_mask]
    res = [y]
    if weight1 is not None:
        res.append(y1)
    if prenorm:
        res.append(resout if store_resout else x)
    if return_dropout_mask:
        n = x.shape[-1]
        m = x.numel() // n
        res.append(_unpack_mask(mask, m, n, x.shape) if store_mask else None)
        res.append(_unpack_mask(mask1, m, n, x.shape) if store_mask and x1 is not None else None)
    return res[0] if len(res) == 1 else tuple(res)


# Parallel calls are no custom op yet: under torch.compile dynamo does not trace them (a graph break; they run
# eagerly, through _DarnParFn, autograd included), so torch.compile(fullgraph=True) refuses a parallel call.
_compiler_disable = getattr(getattr(torch, "compiler", None), "disable", None)
if _compiler_disable is None:
    try:
        from torch._dynamo import disable as _compiler_disable  # type: ignore[no-redef]  (torch 2.0)
    except Exception:  # torch < 2.0: nothing compiles
        _compiler_disable = None
if _compiler_disable is not None:
    _par_norm_fn = _compiler_disable(_par_norm_fn)


# What layer_norm_fn / rms_norm_fn return: y, (y, residual_out), (y, mask, None) or (y, residual_out, mask, None);
# with weight1, y1 after y; with x1, mask1 in the last place (see layer_norm_fn).
NormResult = Union[Tensor, Tuple[Tensor, Tensor], Tuple[Tensor, Optional[Tensor], None],
                   Tuple[Tensor, Tensor, Optional[Tensor], None], Tuple[Optional[Tensor], ...]]


def layer_norm_fn(x: Tensor, weight: Tensor, bias: Optional[Tensor], residual: Optional[Tensor] = None,
                  x1: Optional[Tensor] = None, weight1: Optional[Tensor] = None, bias1: Optional[Tensor] = None,
                  eps: float = 1e-6, dropout_p: float = 0.0, rowscale: Optional[Tensor] = None,
                  prenorm: bool = False, residual_in_fp32: bool = False, zero_centered_weight: bool = False,
                  is_rms_norm: bool = False, return_dropout_mask: bool = False,
                  out_dtype: Optional[torch.dtype] = None, out: Optional[Tensor] = None,
                  residual_out: Optional[Tensor] = None, *, seed: Optional[int] = None,
                  offset: int = 0) -> NormResult:
    """flash_attn.ops.triton.layer_norm.layer_norm_fn on libdarn:
    h = dropout(x * rowscale) [+ dropout1(x1)] + residual; y = norm(h) * w' + b (LayerNorm, or RMSNorm with
    is_rms_norm); with weight1 also y1 = norm(h) * weight1' [+ bias1] (w' = 1 + w with zero_centered_weight, for
    both weights).

    Returns y, or (y, residual_out) with prenorm; with return_dropout_mask, (y, mask, None) or
    (y, residual_out, mask, None), mask a bool tensor of x's shape (None with dropout_p = 0).
    Parallel residual (flash-attn's x1 / weight1 / bias1, e.g. its GPT ParallelBlock): x1 (x's shape and dtype) is
    added with its own dropout mask (same p, independent bits from the same seed / offset: Philox element index
    + 2^63); weight1 ([N], weight's dtype) asks for the second output y1 (out's dtype) and bias1 ([N], bias's
    dtype; only with weight1) for its bias. The results are flash-attn's: y1 follows y, then residual_out with
    prenorm, then with return_dropout_mask (mask, mask1), mask1 x1's bool mask (None without x1 or with
    dropout_p = 0): y | (y, y1) | (y, residual_out) | (y, y1, residual_out), each followed by (mask, mask1) with
    return_dropout_mask. Autograd gives dx1, dweight1 and dbias1 too (an unused y or y1 counts as a zero gradient).
    Unlike flash-attn, rowscale may come with x1 (it scales x only). No fp8 out_dtype with weight1. Parallel calls
    are no custom op yet: torch.compile runs them eagerly (a graph break), so fullgraph=True refuses them.
    residual_out has residual's dtype, float32 with residual_in_fp32 and no residual, else x's dtype; it is
    x itself when there is no residual, dropout or rowscale and no dtype change (as in flash-attn).
    darn extensions (keyword-only): seed / offset (integers in [0, 2**64)) fix the dropout stream instead of
    drawing it from the default generator (see darn.ops). out= / residual_out= (flash-attn's): y and h are
    written into them (shape, device and dtype as the call's; rows of N contiguous elements at one row stride,
    e.g. the halves of one [M, 2N] buffer; no overlap with the inputs except exactly in place) and returned;
    residual_out is unused when h is x (y1 has no preallocated output).
    """
    return _norm_fn(x, weight, bias, residual, x1, weight1, bias1, eps, dropout_p, rowscale, prenorm,
                    residual_in_fp32, zero_centered_weight, is_rms_norm, return_dropout_mask, out_dtype, out,
                    residual_out, seed, offset)


def rms_norm_fn(x: Tensor, weight: Tensor, bias: Optional[Tensor], residual: Optional[Tensor] = None,
                x1: Optional[Tensor] = None, weight1: Optional[Tensor] = None, bias1: Optional[Tensor] = None,
                eps: float = 1e-6, dropout_p: float = 0.0, rowscale: Optional[Tensor] = None, prenorm: bool = False,
                residual_in_fp32: bool = False, zero_centered_weight: bool = False,
                return_dropout_mask: bool = False, out_dtype: Optional[torch.dtype] = None,
                out: Optional[Tensor] = None, residual_out: Optional[Tensor] = None, *, seed: Optional[int] = None,
                offset: int = 0) -> NormResult:
    """flash_attn.ops.triton.layer_norm.rms_norm_fn on libdarn: layer_norm_fn with is_rms_norm=True."""
    return _norm_fn(x, weight, bias, residual, x1, weight1, bias1, eps, dropout_p, rowscale, prenorm,
                    residual_in_fp32, zero_centered_weight, True, return_dropout_mask, out_dtype, out,
                    residual_out, seed, offset)
