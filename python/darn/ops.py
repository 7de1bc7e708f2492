"""darn's PyTorch functions: flash-attn's layer_norm_fn / rms_norm_fn over libdarn, with autograd.

Layers:
- `_fwd_impl` / `_bwd_impl`: one darn_fwd / darn_bwd call on 2-D row tensors (CPU backend for CPU tensors,
  GPU backend for CUDA/ROCm tensors, on the tensor's device and the current stream).
- `torch.ops.darn.fwd` / `torch.ops.darn.bwd`: the same as `torch.library.custom_op`s with fake
  implementations and `register_autograd` (torch >= 2.4), so torch.compile(fullgraph=True) traces them.
- `_DarnFn`: a torch.autograd.Function over the same implementations. Eager calls use it (lower per-call
  overhead than the custom-op dispatcher); torch < 2.4 has nothing else.
Both paths run the same darn calls, so they give the same bits for the same (seed, offset).

Dropout RNG (seed, offset):
- `seed=` given (a darn extension): that seed and `offset=`, on every backend.
- CUDA/ROCm tensor, eager, not capturing: seed = initial_seed() of the device's default generator and
  offset = its Philox offset, which is then advanced by M*N rounded up to a multiple of 4 (PyTorch's own
  convention), so torch.manual_seed makes runs repeatable and successive calls draw fresh masks.
- CUDA/ROCm tensor under CUDA graph capture, inside torch.compile (the custom op), or torch < 2.1 (no
  Generator.get_offset): a 2-element int64 device tensor (seed, offset) is drawn with torch.randint from
  the default generator (graph-safe: capture records it, every replay draws new values), and darn reads it
  through desc.rng_seed_ptr / rng_offset_ptr when the kernel runs. The backward reads the same tensor.
- CPU tensor: (seed, offset) drawn with torch.randint from the default CPU generator.
The mask is not stored for the backward: darn regenerates it from (seed, offset), bit-identical. With
return_dropout_mask=True it is stored (bit-packed, darn's layout) and handed to the backward.
"""
import ctypes

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


def _ptr(t):
    return t.data_ptr() if t is not None else None


class _Device:
    """Backend, stream and device guard for a call on tensor `t`'s device."""
    __slots__ = ("backend", "stream", "guard")

    def __init__(self, t):
        if t.device.type == "cpu":
            self.backend, self.stream, self.guard = L.BACKEND_CPU, None, None
            return
        if t.device.type != "cuda":
            raise TypeError("darn: tensors on %s are not supported (CPU and CUDA/ROCm tensors are)" % t.device)
        if not L.gpu_available():
            raise RuntimeError("darn: %s has no usable GPU backend (built with DARN_GPU=none, or no device "
                               "visible to it); CUDA tensors need libdarn built with DARN_GPU=nvidia (CUDA "
                               "PyTorch) or DARN_GPU=amd (ROCm PyTorch)" % L.PATH)
        idx = t.device.index
        self.backend = L.BACKEND_GPU
        self.guard = torch.cuda.device(idx) if idx != torch.cuda.current_device() else None
        if _raw_stream is not None:
            self.stream = _raw_stream(idx)
        else:
            self.stream = torch.cuda.current_stream(idx).cuda_stream


def _call(kind, dev, desc, tensors, like):
    ws_bytes = L.workspace_size(kind, desc, dev.backend)
    ws = torch.empty(ws_bytes, dtype=torch.uint8, device=like.device) if ws_bytes else None
    (L.fwd if kind == "fwd" else L.bwd)(desc, tensors, _ptr(ws), ws_bytes, dev.backend, dev.stream)
    return ws  # kept alive by the caller until after the call (the caching allocator is stream-ordered)


def _draw_rng(x, p, seed, offset, graph_safe):
    """(rng tensor, seed, offset, device pointer): see the module docstring. rng is int64 [2] (seed, offset
    as two's-complement bits), or empty with p = 0."""
    if p == 0.0:
        return torch.empty(0, dtype=torch.int64), 0, 0, None
    if seed is not None:
        s, o = int(seed) & _U64, int(offset) & _U64
        return torch.tensor([_signed(s), _signed(o)], dtype=torch.int64), s, o, None
    if x.is_cuda:
        gen = torch.cuda.default_generators[x.device.index if x.device.index is not None
                                            else torch.cuda.current_device()]
        if not graph_safe and hasattr(gen, "get_offset") and not torch.cuda.is_current_stream_capturing():
            s = gen.initial_seed() & _U64
            o = gen.get_offset()
            numel = x.shape[0] * x.shape[1]
            gen.set_offset(o + max(4, (numel + 3) // 4 * 4))
            return torch.tensor([_signed(s), _signed(o)], dtype=torch.int64), s, o, None
        rng = torch.randint(0, _I64_HIGH, (2,), dtype=torch.int64, device=x.device)
        return rng, 0, 0, rng.data_ptr()
    rng = torch.randint(0, _I64_HIGH, (2,), dtype=torch.int64)
    s, o = rng.tolist()
    return rng, s, o, None


def _signed(v):
    return v - (1 << 64) if v >= (1 << 63) else v


def _rng_of(rng, p):
    """(seed, offset, device pointer) back from an rng tensor made by _draw_rng."""
    if p == 0.0 or rng.numel() == 0:
        return 0, 0, None
    if rng.is_cuda:
        return 0, 0, rng.data_ptr()
    s, o = rng.tolist()
    return s & _U64, o & _U64, None


def _set_rng(desc, seed, offset, dptr):
    desc.seed = seed
    desc.offset = offset
    if dptr is not None:  # darn reads seed = *ptr, offset = *(ptr + 1) + desc.offset (= 0 here) at run time
        desc.rng_seed_ptr = dptr
        desc.rng_offset_ptr = dptr + 8


# ---- the two calls ------------------------------------------------------------------------------------------
def _fwd_impl(x, weight, bias, residual, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight,
              residual_in_fp32, out_dtype, store_residual_out, store_mask, prenorm, seed, offset,
              graph_safe=False):
    """darn_fwd on 2-D x [M, N]. Returns (out, residual_out, mask, rstd, mean, rng); residual_out / mask /
    mean are empty (numel 0) when not stored; mask is darn's packed layout [M, mask_row_bytes(N)] uint8."""
    del prenorm  # used by the autograd formulas only
    m, n = x.shape
    dev = _Device(x)
    d = L.Desc()
    d.norm = L.RMSNORM if is_rms_norm else L.LAYERNORM
    d.rows, d.cols = m, n
    d.x_dtype = _code(x.dtype, "x")
    d.weight_dtype = _code(weight.dtype, "weight")
    d.out_dtype = out_dtype
    d.eps = eps
    d.dropout_p = dropout_p
    flags = L.FLAG_ZERO_CENTERED_WEIGHT if zero_centered_weight else 0
    t = L.FwdTensors()
    x, t.x_stride = _rows(x)
    t.x = x.data_ptr()
    t.weight = weight.data_ptr()
    if residual is not None:
        flags |= L.FLAG_HAS_RESIDUAL
        d.residual_dtype = _code(residual.dtype, "residual")
        residual, t.residual_stride = _rows(residual)
        t.residual = residual.data_ptr()
        rd = d.residual_dtype
    else:
        d.residual_dtype = d.x_dtype
        rd = d.x_dtype
    if residual_in_fp32:
        flags |= L.FLAG_RESIDUAL_IN_FP32
        rd = L.F32
    if bias is not None:
        flags |= L.FLAG_HAS_BIAS
        d.bias_dtype = _code(bias.dtype, "bias")
        t.bias = bias.data_ptr()
    else:
        d.bias_dtype = d.weight_dtype
    if rowscale is not None:
        flags |= L.FLAG_HAS_ROWSCALE
        t.rowscale = rowscale.data_ptr()
    d.flags = flags
    out = torch.empty((m, n), dtype=_DTYPE[out_dtype], device=x.device)
    t.out = out.data_ptr()
    if store_residual_out:
        resout = torch.empty((m, n), dtype=_DTYPE[rd], device=x.device)
        t.residual_out = resout.data_ptr()
    else:
        resout = torch.empty(0, dtype=_DTYPE[rd], device=x.device)
    if store_mask:
        mask = torch.empty((m, L.mask_row_bytes(n)), dtype=torch.uint8, device=x.device)
        t.mask = mask.data_ptr()
    else:
        mask = torch.empty(0, dtype=torch.uint8, device=x.device)
    rstd = torch.empty(m, dtype=torch.float32, device=x.device)
    t.rstd = rstd.data_ptr()
    if not is_rms_norm:
        mean = torch.empty(m, dtype=torch.float32, device=x.device)
        t.mean = mean.data_ptr()
    else:
        mean = torch.empty(0, dtype=torch.float32, device=x.device)
    rng, s, o, dptr = _draw_rng(x, dropout_p, seed, offset, graph_safe)
    _set_rng(d, s, o, dptr)
    if dev.guard is None:
        _call("fwd", dev, d, t, x)
    else:
        with dev.guard:
            _call("fwd", dev, d, t, x)
    return out, resout, mask, rstd, mean, rng


def _bwd_impl(dy, h, weight, rstd, mean, rowscale, dresidual_out, mask, rng, eps, dropout_p, is_rms_norm,
              zero_centered_weight, residual_in_fp32, x_dtype, residual_dtype, bias_dtype, want_dresidual):
    """darn_bwd on 2-D dy [M, N]. residual_dtype / bias_dtype are -1 without a residual / bias.
    Returns (dx, dresidual, dweight, dbias); dresidual / dbias empty when not produced."""
    m, n = dy.shape
    dev = _Device(dy)
    d = L.Desc()
    d.norm = L.RMSNORM if is_rms_norm else L.LAYERNORM
    d.rows, d.cols = m, n
    d.x_dtype = x_dtype
    d.weight_dtype = _code(weight.dtype, "weight")
    d.out_dtype = _code(dy.dtype, "dy")
    d.eps = eps
    d.dropout_p = dropout_p
    flags = L.FLAG_ZERO_CENTERED_WEIGHT if zero_centered_weight else 0
    if residual_in_fp32:
        flags |= L.FLAG_RESIDUAL_IN_FP32
    if residual_dtype >= 0:
        flags |= L.FLAG_HAS_RESIDUAL
        d.residual_dtype = residual_dtype
    else:
        d.residual_dtype = x_dtype
    if bias_dtype >= 0:
        flags |= L.FLAG_HAS_BIAS
        d.bias_dtype = bias_dtype
    else:
        d.bias_dtype = d.weight_dtype
    if rowscale is not None:
        flags |= L.FLAG_HAS_ROWSCALE
    d.flags = flags
    s, o, dptr = _rng_of(rng, dropout_p)
    _set_rng(d, s, o, dptr)
    t = L.BwdTensors()
    dy, t.dy_stride = _rows(dy)
    t.dy = dy.data_ptr()
    h, t.h_stride = _rows(h)
    t.h = h.data_ptr()
    t.weight = weight.data_ptr()
    t.rstd = rstd.data_ptr()
    if not is_rms_norm:
        t.mean = mean.data_ptr()
    if rowscale is not None:
        t.rowscale = rowscale.data_ptr()
    if dresidual_out is not None:
        dresidual_out, t.dresidual_out_stride = _rows(dresidual_out)
        t.dresidual_out = dresidual_out.data_ptr()
    if mask is not None and mask.numel() > 0:
        t.mask = mask.data_ptr()
    dx = torch.empty((m, n), dtype=_DTYPE[x_dtype], device=dy.device)
    t.dx = dx.data_ptr()
    if want_dresidual and residual_dtype >= 0:
        dres = torch.empty((m, n), dtype=_DTYPE[residual_dtype], device=dy.device)
        t.dresidual = dres.data_ptr()
    else:
        dres = torch.empty(0, dtype=dy.dtype, device=dy.device)
    dw = torch.empty(n, dtype=weight.dtype, device=dy.device)
    t.dweight = dw.data_ptr()
    if bias_dtype >= 0:
        db = torch.empty(n, dtype=_DTYPE[bias_dtype], device=dy.device)
        t.dbias = db.data_ptr()
    else:
        db = torch.empty(0, dtype=weight.dtype, device=dy.device)
    if dev.guard is None:
        ws = _call("bwd", dev, d, t, dy)
    else:
        with dev.guard:
            ws = _call("bwd", dev, d, t, dy)
    del ws
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
        ctx.mark_non_differentiable(*output[2:])
        return output

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout, dresout, *unused):
        return _grads(ctx, dout, dresout, _bwd_impl) + (None,) * 11


# ---- the custom ops (torch >= 2.4) --------------------------------------------------------------------------
if HAS_CUSTOM_OP:
    from typing import Optional, Tuple

    from torch import Tensor

    @torch.library.custom_op("darn::fwd", mutates_args=())
    def _fwd_op(x: Tensor, weight: Tensor, bias: Optional[Tensor], residual: Optional[Tensor],
                rowscale: Optional[Tensor], eps: float, dropout_p: float, is_rms_norm: bool,
                zero_centered_weight: bool, residual_in_fp32: bool, out_dtype: int, store_residual_out: bool,
                store_mask: bool, prenorm: bool, seed: Optional[int],
                offset: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        return _fwd_impl(x, weight, bias, residual, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight,
                         residual_in_fp32, out_dtype, store_residual_out, store_mask, prenorm, seed, offset,
                         graph_safe=True)

    @_fwd_op.register_fake
    def _fwd_fake(x, weight, bias, residual, rowscale, eps, dropout_p, is_rms_norm, zero_centered_weight,
                  residual_in_fp32, out_dtype, store_residual_out, store_mask, prenorm, seed, offset):
        m, n = x.shape
        rd = torch.float32 if residual_in_fp32 else (residual.dtype if residual is not None else x.dtype)
        out = x.new_empty((m, n), dtype=_DTYPE[out_dtype])
        resout = x.new_empty((m, n) if store_residual_out else (0,), dtype=rd)
        mask = x.new_empty((m, L.mask_row_bytes(n)) if store_mask else (0,), dtype=torch.uint8)
        rstd = x.new_empty((m,), dtype=torch.float32)
        mean = x.new_empty((0,) if is_rms_norm else (m,), dtype=torch.float32)
        rng_dev = x.device if (x.is_cuda and seed is None) else torch.device("cpu")
        rng = torch.empty((2,) if dropout_p > 0.0 else (0,), dtype=torch.int64,
                          device=rng_dev if dropout_p > 0.0 else torch.device("cpu"))
        return out, resout, mask, rstd, mean, rng

    @torch.library.custom_op("darn::bwd", mutates_args=())
    def _bwd_op(dy: Tensor, h: Tensor, weight: Tensor, rstd: Tensor, mean: Tensor, rowscale: Optional[Tensor],
                dresidual_out: Optional[Tensor], mask: Optional[Tensor], rng: Tensor, eps: float, dropout_p: float,
                is_rms_norm: bool, zero_centered_weight: bool, residual_in_fp32: bool, x_dtype: int,
                residual_dtype: int, bias_dtype: int,
                want_dresidual: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        return _bwd_impl(dy, h, weight, rstd, mean, rowscale, dresidual_out, mask, rng, eps, dropout_p,
                         is_rms_norm, zero_centered_weight, residual_in_fp32, x_dtype, residual_dtype, bias_dtype,
                         want_dresidual)

    @_bwd_op.register_fake
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

    def _op_backward(ctx, dout, dresout, *unused):
        return _grads(ctx, dout, dresout, torch.ops.darn.bwd) + (None,) * 11

    torch.library.register_autograd("darn::fwd", _op_backward, setup_context=_op_setup_context)


# ---- flash-attn's functions ---------------------------------------------------------------------------------
def _unpack_mask(packed, m, n, shape):
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(m, -1)[:, :n].bool().reshape(shape)


def _check_vector(t, n, what, x):
    if not isinstance(t, torch.Tensor):
        raise TypeError("darn: %s must be a torch.Tensor, got %s" % (what, type(t).__name__))
    if tuple(t.shape) != (n,):
        raise ValueError("darn: %s has shape %s, expected (%d,) (the last dim of x)" % (what, tuple(t.shape), n))
    if t.device != x.device:
        raise ValueError("darn: %s is on %s but x is on %s" % (what, t.device, x.device))
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
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError("darn: x has shape %s; it needs a last dim N >= 1" % (tuple(x.shape),))
    dropout_p = float(dropout_p)
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError("darn: dropout_p = %r, must be in [0, 1]" % dropout_p)
    if seed is None and offset != 0:
        raise ValueError("darn: offset= needs seed=; without seed the (seed, offset) pair comes from the generator")
    eps = float(eps)
    if not (eps > 0.0 and eps != float("inf")):
        raise ValueError("darn: eps = %r, must be finite and > 0" % eps)
    shape = x.shape
    n = shape[-1]
    _code(x.dtype, "x")
    _check_vector(weight, n, "weight", x)
    if bias is not None:
        _check_vector(bias, n, "bias", x)
        bias = bias.contiguous()
    weight = weight.contiguous()
    x2 = x.reshape(-1, n)
    m = x2.shape[0]
    if residual is not None:
        if not isinstance(residual, torch.Tensor):
            raise TypeError("darn: residual must be a torch.Tensor, got %s" % type(residual).__name__)
        if residual.shape != shape:
            raise ValueError("darn: residual has shape %s, x has %s" % (tuple(residual.shape), tuple(shape)))
        if residual.device != x.device:
            raise ValueError("darn: residual is on %s but x is on %s" % (residual.device, x.device))
        _code(residual.dtype, "residual")
        residual = residual.reshape(-1, n)
    if rowscale is not None:
        if rowscale.numel() != m:
            raise ValueError("darn: rowscale has %d elements, expected %d (one per row of x)" % (rowscale.numel(), m))
        if rowscale.device != x.device:
            raise ValueError("darn: rowscale is on %s but x is on %s" % (rowscale.device, x.device))
        rowscale = rowscale.reshape(-1).to(torch.float32).contiguous()
    out_code = _code(out_dtype if out_dtype is not None else x.dtype, "out_dtype")
    rfp32 = bool(residual_in_fp32) and residual is None  # flash-attn: with a residual, h has its dtype
    h_is_x = (residual is None and rowscale is None and dropout_p == 0.0
              and not (rfp32 and x.dtype != torch.float32))
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
        or (residual is not None and residual.requires_grad))
    store_resout = not h_is_x and (bool(prenorm) or needs_grad)
    store_mask = bool(return_dropout_mask) and dropout_p > 0.0
    args = (x2, weight, bias, residual, rowscale, eps, dropout_p, bool(is_rms_norm), bool(zero_centered_weight),
            rfp32, out_code, store_resout, store_mask, bool(prenorm),
            None if seed is None else _signed(int(seed) & _U64), _signed(int(offset) & _U64))
    if HAS_CUSTOM_OP and _is_compiling():
        y, resout, mask, _, _, _ = torch.ops.darn.fwd(*args)
    else:
        y, resout, mask, _, _, _ = _DarnFn.apply(*args)
    y = y.reshape(shape)
    res = []
    if prenorm:
        res.append(resout.reshape(shape) if store_resout else x)
    if return_dropout_mask:
        res += [_unpack_mask(mask, m, n, shape) if store_mask else None, None]
    return (y, *res) if res else y


def rms_norm_fn(x, weight, bias, residual=None, x1=None, weight1=None, bias1=None, eps=1e-6, dropout_p=0.0,
                rowscale=None, prenorm=False, residual_in_fp32=False, zero_centered_weight=False,
                return_dropout_mask=False, out_dtype=None, out=None, residual_out=None, *, seed=None, offset=0):
    """flash_attn.ops.triton.layer_norm.rms_norm_fn on libdarn: layer_norm_fn with is_rms_norm=True."""
    return layer_norm_fn(x, weight, bias, residual, x1, weight1, bias1, eps, dropout_p, rowscale, prenorm,
                         residual_in_fp32, zero_centered_weight, True, return_dropout_mask, out_dtype, out,
                         residual_out, seed=seed, offset=offset)
