"""darn's PyTorch functions: flash-attn's layer_norm_fn / rms_norm_fn over libdarn, with autograd.

Layers:
- `_fwd_impl` / `_bwd_impl`: one darn_fwd / darn_bwd call on 2-D row tensors (CPU backend for CPU tensors,
  GPU backend for CUDA/ROCm tensors, on the tensor's device and the current stream).
- `torch.ops.darn.fwd` / `torch.ops.darn.bwd`: the same as `torch.library.custom_op`s with fake
  implementations and `register_autograd` (torch >= 2.4), so torch.compile(fullgraph=True) traces them.
- `_DarnFn`: a torch.autograd.Function over the same implementations. Eager calls that need gradients use it
  (lower per-call overhead than the custom-op dispatcher; torch < 2.4 has nothing else); eager calls that
  need none call `_fwd_impl` directly and skip rstd / mean.
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
return_dropout_mask=True it is stored (bit-packed, darn's layout) and handed to the backward.
"""

import torch

from . import _lib as L

_CODE = {torch.float32: L.F32, torch.float16: L.F16, torch.bfloat16: L.BF16}
_DTYPE = {v: k for k, v in _CODE.items()}
_U64 = (1 << 64) - 1
_I64_HIGH = (1 << 63) - 1

_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
if _is_compiling is None:
    try:
        from torch._dynamo import is_compiling as _is_compiling
    except Exception:  # torch < 2.0: nothing compiles
        def _is_compiling():
            return False

HAS_CUSTOM_OP = hasattr(torch, "library") and hasattr(torch.library, "custom_op") and hasattr(
    torch.library, "register_fake")


def _code(dtype, what):
    c = _CODE.get(dtype)
    if c is None:
        raise TypeError("darn: %s has dtype %s; darn supports torch.float32, torch.float16 and torch.bfloat16"
                        % (what, dtype))
    return c


def _rows(t):
    """A 2-D tensor as darn reads it: last dim contiguous and a row stride that is 0 (contiguous) or >= N.
    Returns (tensor, row stride); copies only when the strides cannot be expressed."""
    m, n = t.shape
    if n > 1 and t.stride(1) != 1:
        t = t.contiguous()
    if m <= 1:
        return t, 0
    s = t.stride(0)
    if s < n:  # broadcast (stride 0) or overlapping rows
        t = t.contiguous()
        s = n
    return t, s


def _device(t):
    """(backend, stream, device guard or None) for a call on tensor t's device."""
    dt = t.device.type
    if dt == "cpu":
        return L.BACKEND_CPU, None, None
    if dt != "cuda":
        raise TypeError("darn: tensors on %s are not supported (CPU and CUDA/ROCm tensors are)" % t.device)
    if not L.gpu_available():
        raise RuntimeError("darn: %s has no usable GPU backend (built with DARN_GPU=none, or no device visible "
                           "to it); CUDA tensors need libdarn built with DARN_GPU=nvidia (CUDA PyTorch) or "
                           "DARN_GPU=amd (ROCm PyTorch)" % L.PATH)
    idx = t.device.index
    guard = torch.cuda.device(idx) if idx != torch.cuda.current_device() else None
    stream = _raw_stream(idx) if _raw_stream is not None else torch.cuda.current_stream(idx).cuda_stream
    return L.BACKEND_GPU, stream, guard


_ws_cache = {}
_WS_KEY_END = L.Desc.seed.offset


def _call(kind, backend, stream, guard, desc, tensors, device):
    """Workspace (a torch tensor from the caching allocator, stream-ordered) plus the darn call."""
    key = (kind, backend, bytes(desc)[:_WS_KEY_END])  # a function of the descriptor (less the RNG state)
    ws_bytes = _ws_cache.get(key)
    if ws_bytes is None:
        ws_bytes = L.workspace_size(kind, desc, backend)
        if len(_ws_cache) > 4096:
            _ws_cache.clear()
        _ws_cache[key] = ws_bytes
    ws = torch.empty(ws_bytes, dtype=torch.uint8, device=device) if ws_bytes else None
    fn = L.fwd if kind == "fwd" else L.bwd
    if guard is None:
        fn(desc, tensors, ws.data_ptr() if ws is not None else None, ws_bytes, backend, stream)
    else:
        with guard:
            fn(desc, tensors, ws.data_ptr() if ws is not None else None, ws_bytes, backend, stream)


def _draw_rng(x, p, seed, offset, graph_safe):
    """(rng tensor or None, seed, offset, device pointer or None): see the module docstring. rng is int64 [2]
    holding (seed, offset) as two's-complement bits; None with p = 0."""
    if p == 0.0:
        return None, 0, 0, None
    if seed is not None:
        s, o = seed & _U64, offset & _U64
        return torch.tensor([_signed(s), _signed(o)], dtype=torch.int64), s, o, None
    if x.is_cuda:
        if not graph_safe and not torch.cuda.is_current_stream_capturing():
            so = _philox_take(torch.cuda.default_generators[x.device.index], max(4, (x.numel() + 3) // 4 * 4))
            if so is not None:
                s, o = so
                return torch.tensor([_signed(s), _signed(o)], dtype=torch.int64), s, o, None
        rng = torch.randint(0, _I64_HIGH, (2,), dtype=torch.int64, device=x.device)
        return rng, 0, 0, rng.data_ptr()
    rng = torch.randint(0, _I64_HIGH, (2,), dtype=torch.int64)
    s, o = rng.tolist()
    return rng, s, o, None


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


def _rng_of(rng):
    """(seed, offset, device pointer or None) back from an rng tensor made by _draw_rng."""
    if rng is None or rng.numel() == 0:
        return 0, 0, None
    if rng.is_cuda:
        return 0, 0, rng.data_ptr()
    s, o = rng.tolist()
    return s & _U64, o & _U64, None


# ---- the two calls ------------------------------------------------------------------------------------------
def _fwd_impl(x, weight, bias, residual, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight,
              residual_in_fp32, out_dtype, store_residual_out, store_mask, prenorm, seed, offset,
              graph_safe=False, stats=True):
    """darn_fwd on 2-D x [M, N]. Returns (out, residual_out, mask, rstd, mean, rng); residual_out / mask /
    mean / rng are None when not produced; mask is darn's packed layout [M, mask_row_bytes(N)] uint8; rng
    the int64 (seed, offset) pair the backward needs. `prenorm` is only used by the autograd formulas."""
    m, n = x.shape
    backend, stream, guard = _device(x)
    dev = x.device
    xc = _CODE.get(x.dtype)
    wc = _CODE.get(weight.dtype)
    if xc is None or wc is None or out_dtype not in _DTYPE:
        _code(x.dtype, "x"), _code(weight.dtype, "weight"), _code(_DTYPE.get(out_dtype), "out_dtype")
    flags = L.FLAG_ZERO_CENTERED_WEIGHT if zero_centered_weight else 0
    x, sx = _rows(x)
    if residual is not None:
        flags |= L.FLAG_HAS_RESIDUAL
        rc = _code(residual.dtype, "residual")
        residual, sr = _rows(residual)
        rptr = residual.data_ptr()
    else:
        rc, sr, rptr = xc, 0, None
    rd = L.F32 if residual_in_fp32 else rc
    if residual_in_fp32:
        flags |= L.FLAG_RESIDUAL_IN_FP32
    if bias is not None:
        flags |= L.FLAG_HAS_BIAS
        bc = _code(bias.dtype, "bias")
        bptr = bias.data_ptr()
    else:
        bc, bptr = wc, None
    if rowscale is not None:
        flags |= L.FLAG_HAS_ROWSCALE
        rsptr = rowscale.data_ptr()
    else:
        rsptr = None
    out = torch.empty((m, n), dtype=_DTYPE[out_dtype], device=dev)
    resout = torch.empty((m, n), dtype=_DTYPE[rd], device=dev) if store_residual_out else None
    mask = torch.empty((m, L.mask_row_bytes(n)), dtype=torch.uint8, device=dev) if store_mask else None
    if stats:  # rstd / mean: only the backward needs them
        rstd = torch.empty(m, dtype=torch.float32, device=dev)
        mean = None if is_rms_norm else torch.empty(m, dtype=torch.float32, device=dev)
    else:
        rstd = mean = None
    rng, s, o, dptr = _draw_rng(x, dropout_p, seed, offset, graph_safe)
    # darn reads seed = *dptr and offset = *(dptr + 1) + desc.offset (here 0) when the kernel runs
    d = L.Desc(L.RMSNORM if is_rms_norm else L.LAYERNORM, m, n, xc, rc, wc, bc, out_dtype, flags, eps, dropout_p,
               s, o, dptr, dptr + 8 if dptr is not None else None)
    t = L.FwdTensors(x.data_ptr(), sx, rptr, sr, rsptr, weight.data_ptr(), bptr, out.data_ptr(), 0,
                     resout.data_ptr() if resout is not None else None, 0,
                     mask.data_ptr() if mask is not None else None, rstd.data_ptr() if rstd is not None else None,
                     mean.data_ptr() if mean is not None else None)
    _call("fwd", backend, stream, guard, d, t, dev)
    return out, resout, mask, rstd, mean, rng


def _bwd_impl(dy, h, weight, rstd, mean, rowscale, dresidual_out, mask, rng, eps, dropout_p, is_rms_norm,
              zero_centered_weight, residual_in_fp32, x_dtype, residual_dtype, bias_dtype, want_dresidual):
    """darn_bwd on 2-D dy [M, N]. residual_dtype / bias_dtype are -1 without a residual / bias; mask, rng,
    mean, rowscale and dresidual_out may be None (or empty). Returns (dx, dresidual, dweight, dbias);
    dresidual / dbias are None when not produced."""
    m, n = dy.shape
    backend, stream, guard = _device(dy)
    dev = dy.device
    wc = _code(weight.dtype, "weight")
    flags = L.FLAG_ZERO_CENTERED_WEIGHT if zero_centered_weight else 0
    if residual_in_fp32:
        flags |= L.FLAG_RESIDUAL_IN_FP32
    if residual_dtype >= 0:
        flags |= L.FLAG_HAS_RESIDUAL
        rc = residual_dtype
    else:
        rc = x_dtype
    if bias_dtype >= 0:
        flags |= L.FLAG_HAS_BIAS
        bc = bias_dtype
    else:
        bc = wc
    if rowscale is not None:
        flags |= L.FLAG_HAS_ROWSCALE
    s, o, dptr = _rng_of(rng)
    d = L.Desc(L.RMSNORM if is_rms_norm else L.LAYERNORM, m, n, x_dtype, rc, wc, bc, _code(dy.dtype, "dy"), flags,
               eps, dropout_p, s, o, dptr, dptr + 8 if dptr is not None else None)
    dy, sdy = _rows(dy)
    h, sh = _rows(h)
    if dresidual_out is not None:
        dresidual_out, sdro = _rows(dresidual_out)
    else:
        sdro = 0
    dx = torch.empty((m, n), dtype=_DTYPE[x_dtype], device=dev)
    dres = torch.empty((m, n), dtype=_DTYPE[residual_dtype], device=dev) if want_dresidual and residual_dtype >= 0 \
        else None
    dw = torch.empty(n, dtype=weight.dtype, device=dev)
    db = torch.empty(n, dtype=_DTYPE[bias_dtype], device=dev) if bias_dtype >= 0 else None
    t = L.BwdTensors(dy.data_ptr(), sdy, h.data_ptr(), sh, weight.data_ptr(), rstd.data_ptr(),
                     mean.data_ptr() if mean is not None and not is_rms_norm else None,
                     rowscale.data_ptr() if rowscale is not None else None,
                     dresidual_out.data_ptr() if dresidual_out is not None else None, sdro,
                     mask.data_ptr() if mask is not None and mask.numel() > 0 else None,
                     dx.data_ptr(), 0, dres.data_ptr() if dres is not None else None, 0, dw.data_ptr(),
                     db.data_ptr() if db is not None else None)
    _call("bwd", backend, stream, guard, d, t, dev)
    return dx, dres, dw, db


# ---- autograd formulas, shared by the autograd.Function and the custom op ----------------------------------
def _setup_context(ctx, inputs, output):
    (x, weight, bias, residual, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight, residual_in_fp32,
     out_dtype, store_residual_out, store_mask, prenorm, seed, offset) = inputs[:16]
    out, resout, mask, rstd, mean, rng = output
    h = resout if store_residual_out else x
    ctx.save_for_backward(h, weight, rstd, mean, rowscale, mask if store_mask else None, rng)
    ctx.cfg = (eps, dropout_p, is_rms_norm, zero_centered_weight, residual_in_fp32, _CODE[x.dtype],
               _CODE[residual.dtype] if residual is not None else -1,
               _CODE[bias.dtype] if bias is not None else -1,
               bool(prenorm and store_residual_out))


def _grads(ctx, dout, dresout, bwd):
    h, weight, rstd, mean, rowscale, mask, rng = ctx.saved_tensors
    eps, p, is_rms, zc, rfp32, x_code, res_code, bias_code, use_dresout = ctx.cfg
    if dout is None:  # only the prenorm output was used
        dout = torch.zeros(h.shape, dtype=_DTYPE[ctx.out_code], device=h.device)
    want_dres = res_code >= 0 and ctx.needs_input_grad[3]
    dx, dres, dw, db = bwd(dout, h, weight, rstd, mean, rowscale, dresout if use_dresout else None, mask, rng,
                           eps, p, is_rms, zc, rfp32, x_code, res_code, bias_code, want_dres)
    return (dx, dw, db if bias_code >= 0 else None, dres if want_dres else None, None)


class _DarnFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, *inputs):
        output = _fwd_impl(*inputs)
        ctx.set_materialize_grads(False)
        ctx.out_code = inputs[10]
        _setup_context(ctx, inputs, output)
        ctx.mark_non_differentiable(*[t for t in output[2:] if t is not None])
        return output

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout, dresout, *unused):
        return _grads(ctx, dout, dresout, _bwd_impl) + (None,) * 11


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
    if rng is None:
        rng = torch.empty(0, dtype=torch.int64)
    return out, resout, mask, rstd, mean, rng


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
    ctx.out_code = inputs[10]
    _setup_context(ctx, inputs, output)


def _op_backward_with(bwd):
    def backward(ctx, dout, dresout, *unused):
        return _grads(ctx, dout, dresout, bwd) + (None,) * 11
    return backward


if HAS_CUSTOM_OP:
    from typing import Optional, Tuple

    from torch import Tensor

    @torch.library.custom_op("darn::fwd", mutates_args=())
    def _fwd_op(x: Tensor, weight: Tensor, bias: Optional[Tensor], residual: Optional[Tensor],
                rowscale: Optional[Tensor], eps: float, dropout_p: float, is_rms_norm: bool,
                zero_centered_weight: bool, residual_in_fp32: bool, out_dtype: int, store_residual_out: bool,
                store_mask: bool, prenorm: bool, seed: Optional[int],
                offset: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        return _fwd_op_body(x, weight, bias, residual, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight,
                            residual_in_fp32, out_dtype, store_residual_out, store_mask, prenorm, seed, offset)

    _fwd_op.register_fake(_fwd_fake)

    @torch.library.custom_op("darn::bwd", mutates_args=())
    def _bwd_op(dy: Tensor, h: Tensor, weight: Tensor, rstd: Tensor, mean: Tensor, rowscale: Optional[Tensor],
                dresidual_out: Optional[Tensor], mask: Optional[Tensor], rng: Tensor, eps: float, dropout_p: float,
                is_rms_norm: bool, zero_centered_weight: bool, residual_in_fp32: bool, x_dtype: int,
                residual_dtype: int, bias_dtype: int,
                want_dresidual: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        return _bwd_op_body(dy, h, weight, rstd, mean, rowscale, dresidual_out, mask, rng, eps, dropout_p,
                            is_rms_norm, zero_centered_weight, residual_in_fp32, x_dtype, residual_dtype, bias_dtype,
                            want_dresidual)

    _bwd_op.register_fake(_bwd_fake)
    torch.library.register_autograd("darn::fwd", _op_backward_with(lambda *a: torch.ops.darn.bwd(*a)),
                                    setup_context=_op_setup_context)


# ---- flash-attn's functions ---------------------------------------------------------------------------------
def _unpack_mask(packed, m, n, shape):
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(m, -1)[:, :n].bool().reshape(shape)


def _check_vector(t, n, what, dev):
    if not isinstance(t, torch.Tensor):
        raise TypeError("darn: %s must be a torch.Tensor, got %s" % (what, type(t).__name__))
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError("darn: %s has shape %s, expected (%d,) (the last dim of x)" % (what, tuple(t.shape), n))
    if t.device != dev:
        raise ValueError("darn: %s is on %s but x is on %s" % (what, t.device, dev))
    if t.dtype not in _CODE:
        _code(t.dtype, what)


def layer_norm_fn(x, weight, bias, residual=None, x1=None, weight1=None, bias1=None, eps=1e-6, dropout_p=0.0,
                  rowscale=None, prenorm=False, residual_in_fp32=False, zero_centered_weight=False,
                  is_rms_norm=False, return_dropout_mask=False, out_dtype=None, out=None, residual_out=None, *,
                  seed=None, offset=0):
    """flash_attn.ops.triton.layer_norm.layer_norm_fn on libdarn:
    h = dropout(x * rowscale) + residual; y = norm(h) * w' + b (LayerNorm, or RMSNorm with is_rms_norm).

    Returns y, or (y, residual_out) with prenorm; with return_dropout_mask, (y, mask, None) or
    (y, residual_out, mask, None), mask a bool tensor of x's shape (None with dropout_p = 0).
    residual_out has residual's dtype, float32 with residual_in_fp32 and no residual, else x's dtype; it is
    x itself when there is no residual, dropout or rowscale and no dtype change (as in flash-attn).
    darn extensions (keyword-only): seed / offset fix the dropout stream instead of drawing it from the
    default generator (see darn.ops). Not supported (NotImplementedError): x1 / weight1 / bias1, out=,
    residual_out=.
    """
    if x1 is not None or weight1 is not None or bias1 is not None:
        raise NotImplementedError("darn: x1 / weight1 / bias1 (flash-attn's parallel-residual / two-weight "
                                  "variant) are not supported yet")
    if out is not None or residual_out is not None:
        raise NotImplementedError("darn: preallocated out= / residual_out= are not supported yet; darn "
                                  "allocates its outputs")
    if not isinstance(x, torch.Tensor):
        raise TypeError("darn: x must be a torch.Tensor, got %s" % type(x).__name__)
    shape = x.shape
    if len(shape) < 1 or shape[-1] < 1:
        raise ValueError("darn: x has shape %s; it needs a last dim N >= 1" % (tuple(shape),))
    dropout_p = float(dropout_p)
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError("darn: dropout_p = %r, must be in [0, 1]" % dropout_p)
    if seed is None and offset != 0:
        raise ValueError("darn: offset= needs seed=; without seed the (seed, offset) pair comes from the generator")
    eps = float(eps)
    if not 0.0 < eps < float("inf"):
        raise ValueError("darn: eps = %r, must be finite and > 0" % eps)
    n = shape[-1]
    dev = x.device
    if x.dtype not in _CODE:
        _code(x.dtype, "x")
    _check_vector(weight, n, "weight", dev)
    if not weight.is_contiguous():
        weight = weight.contiguous()
    if bias is not None:
        _check_vector(bias, n, "bias", dev)
        if not bias.is_contiguous():
            bias = bias.contiguous()
    x2 = x if len(shape) == 2 else x.reshape(-1, n)
    m = x2.shape[0]
    if residual is not None:
        if not isinstance(residual, torch.Tensor):
            raise TypeError("darn: residual must be a torch.Tensor, got %s" % type(residual).__name__)
        if residual.shape != shape:
            raise ValueError("darn: residual has shape %s, x has %s" % (tuple(residual.shape), tuple(shape)))
        if residual.device != dev:
            raise ValueError("darn: residual is on %s but x is on %s" % (residual.device, dev))
        if residual.dtype not in _CODE:
            _code(residual.dtype, "residual")
        if len(shape) != 2:
            residual = residual.reshape(-1, n)
    if rowscale is not None:
        if rowscale.numel() != m:
            raise ValueError("darn: rowscale has %d elements, expected %d (one per row of x)" % (rowscale.numel(), m))
        if rowscale.device != dev:
            raise ValueError("darn: rowscale is on %s but x is on %s" % (rowscale.device, dev))
        rowscale = rowscale.reshape(-1).to(torch.float32).contiguous()
    out_code = _CODE.get(out_dtype if out_dtype is not None else x.dtype)
    if out_code is None:
        _code(out_dtype, "out_dtype")
    rfp32 = bool(residual_in_fp32) and residual is None  # flash-attn: with a residual, h has its dtype
    h_is_x = (residual is None and rowscale is None and dropout_p == 0.0
              and not (rfp32 and x.dtype != torch.float32))
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
        or (residual is not None and residual.requires_grad))
    store_resout = not h_is_x and (prenorm or needs_grad)
    store_mask = return_dropout_mask and dropout_p > 0.0
    args = (x2, weight, bias, residual, rowscale, eps, dropout_p, bool(is_rms_norm), bool(zero_centered_weight),
            rfp32, out_code, bool(store_resout), bool(store_mask), bool(prenorm),
            None if seed is None else _signed(int(seed) & _U64), _signed(int(offset) & _U64))
    if HAS_CUSTOM_OP and _is_compiling():
        y, resout, mask, _, _, _ = torch.ops.darn.fwd(*args)
    elif needs_grad:
        y, resout, mask, _, _, _ = _DarnFn.apply(*args)
    else:  # nothing to differentiate: skip autograd's bookkeeping
        y, resout, mask, _, _, _ = _fwd_impl(*args, stats=False)
    if len(shape) != 2:
        y = y.reshape(shape)
    if not prenorm and not return_dropout_mask:
        return y
    res = [y]
    if prenorm:
        res.append(resout.reshape(shape) if store_resout else x)
    if return_dropout_mask:
        res += [_unpack_mask(mask, m, n, shape) if store_mask else None, None]
    return tuple(res)


def rms_norm_fn(x, weight, bias, residual=None, x1=None, weight1=None, bias1=None, eps=1e-6, dropout_p=0.0,
                rowscale=None, prenorm=False, residual_in_fp32=False, zero_centered_weight=False,
                return_dropout_mask=False, out_dtype=None, out=None, residual_out=None, *, seed=None, offset=0):
    """flash_attn.ops.triton.layer_norm.rms_norm_fn on libdarn: layer_norm_fn with is_rms_norm=True."""
    return layer_norm_fn(x, weight, bias, residual, x1, weight1, bias1, eps, dropout_p, rowscale, prenorm,
                         residual_in_fp32, zero_centered_weight, True, return_dropout_mask, out_dtype, out,
                         residual_out, seed=seed, offset=offset)
